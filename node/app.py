"""The FastAPI app factory: one app for every role, resources tied to its lifespan."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from node import handles, health, management
from node.body_limit import BodyLimit
from node.config import NodeConfig
from node.embedded_redis import EmbeddedRedis
from node.responses import install_error_handlers
from node.state import NodeState
from registry.authority import Authority
from registry.registrar import ADMIN_SECRET_INDEX, Registrar
from registry.store import HandleStore

log = logging.getLogger("idnode.node")

DESCRIPTION = """
An industrial-internet identifier resolution node (工业互联网标识解析节点).

* **Handle REST API** (`/api/handles`, `/hrls/handles`): compatible with Handle.net
  clients such as pyhandle. Writes use HTTP Basic auth with username
  `300:0.NA/<prefix>` (percent-encoded by clients: `300%3A0.NA%2F88.100`).
* **Management API**: batch registration.
* Errors are JSON: `{"responseCode": N, "handle": H, "message": "..."}`.
"""


def create_app(config: NodeConfig) -> FastAPI:
    """Build a node app; Redis (embedded or given) is opened and closed in its lifespan.

    >>> app = create_app(NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, {}))
    >>> app.title
    'idnode secondary-88.100'
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        url = config.redis_url
        if url is None:
            embedded = EmbeddedRedis(config.embedded_data_dir, appendfsync=config.appendfsync)
            url = await asyncio.to_thread(embedded.start)
            log.info("embedded redis started", extra={"redis_url": url, "pid": embedded.pid})
        redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        try:
            store = HandleStore(redis)
            registrar = Registrar(store, Authority((config.prefix,)), config.limits)
            generated = await registrar.ensure_prefix_admin(config.prefix, config.admin_secret)
            if generated is not None:
                _announce_secret(config, generated)
            app.state.node = NodeState(config, store, registrar)
            log.info("node ready", extra={"node": config.name, "url": config.public_url})
            yield
        finally:
            await redis.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    app = FastAPI(
        title=f"idnode {config.name}",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(handles.router)
    app.include_router(management.router)
    app.include_router(health.router)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    return app


def _announce_secret(config: NodeConfig, secret: str) -> None:
    """Show a generated admin secret once; only its hash is stored."""
    identity = f"{ADMIN_SECRET_INDEX}:0.NA/{config.prefix.text}"
    print(
        f"Generated admin secret for {identity}: {secret}\n"
        "It is shown only this once; pass --admin-secret or IDNODE_ADMIN_SECRET to set one.",
        file=sys.stderr,
        flush=True,
    )
