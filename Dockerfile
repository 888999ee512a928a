# The node image: one image for every role (top, secondary, enterprise, recursive),
# configured by IDNODE_* environment variables (docs/reference/configuration.md).
#
#   docker build -t idnode:0.1.0 .
#   docker run --rm -p 8001:8001 -e IDNODE_ROLE=secondary -e IDNODE_PREFIX=88.100 idnode:0.1.0
#
# Stage 1 builds a virtualenv holding the node's runtime dependencies, exactly
# [project.dependencies] of pyproject.toml (not the bench or dev extras), and the
# package. Stage 2 is the slim Python base with that virtualenv and nothing else, run as
# an unprivileged user. Without IDNODE_REDIS_URL a node starts its own embedded Redis in
# /data (mount a volume there to keep it); the compose file gives every node a Redis.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/idnode/bin:$PATH
RUN python -m venv /opt/idnode
WORKDIR /src
# The dependencies first, in a layer of their own: changing the code does not
# reinstall them.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > requirements.txt \
    && pip install --requirement requirements.txt
COPY README.md ./
COPY node ./node
COPY registry ./registry
COPY resolver ./resolver
COPY loadtest ./loadtest
RUN pip install --no-deps . \
    && pip check

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/idnode/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IDNODE_HOST=0.0.0.0 \
    IDNODE_PORT=8001 \
    IDNODE_DATA_DIR=/data
RUN groupadd --system --gid 10001 idnode \
    && useradd --system --uid 10001 --gid idnode --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin idnode \
    && install --directory --owner=idnode --group=idnode --mode=0750 /data
COPY --from=builder /opt/idnode /opt/idnode
WORKDIR /data
USER 10001:10001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "node.probe"]
ENTRYPOINT ["idnode"]
CMD ["serve"]
