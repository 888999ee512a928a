"""The FastAPI + Redis baseline of ``idnode bench --capacity``: what a user would write
instead of a node. One route, one Redis GET per request, the stored bytes returned.

Deliberately written the way a typical FastAPI user writes it (the client made at import,
no in-process cache, no tuning), not the way the project's nodes are written: it is the
yardstick the nodes' hot path is measured against. The benchmark stores the node's
resolution body under the identifier as key and runs it with uvicorn's defaults, one
worker::

    IDNODE_BASELINE_REDIS_URL=redis://127.0.0.1:6379/0 \\
        uvicorn loadtest.baseline:app --host 127.0.0.1 --port 8100 --no-access-log
"""

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from redis.asyncio import Redis

app = FastAPI()
redis = Redis.from_url(os.environ.get("IDNODE_BASELINE_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.get("/api/handles/{handle:path}")
async def resolve(handle: str) -> Response:
    body = await redis.get(handle)
    if body is None:
        return JSONResponse({"responseCode": 100, "handle": handle}, status_code=404)
    return Response(body, media_type="application/json")
