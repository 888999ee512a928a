# Minimal node image; the containers issue turns this into a multi-stage production image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY node ./node
COPY registry ./registry
COPY resolver ./resolver
COPY loadtest ./loadtest
RUN pip install --no-cache-dir . && useradd --system --uid 10001 idnode \
    && mkdir /data && chown idnode /data
USER idnode
ENV IDNODE_HOST=0.0.0.0 IDNODE_PORT=8001 IDNODE_DATA_DIR=/data
EXPOSE 8001
CMD ["idnode", "serve"]
