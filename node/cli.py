"""The ``idnode`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from node.config import APPENDFSYNC_POLICIES, LOG_LEVELS, NodeConfig
from registry.errors import ConfigError
from registry.hierarchy import Role


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idnode",
        description="Industrial-internet identifier resolution node simulator.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run one node",
        description="Run one node. Every option can also be set as IDNODE_<OPTION>.",
    )
    serve.add_argument("--role", choices=[r.value for r in Role])
    serve.add_argument("--prefix", help="the prefix this node holds, e.g. 88.100")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8001)")
    serve.add_argument("--data-dir", help="embedded Redis data directory")
    serve.add_argument("--redis-url", help="use this Redis instead of starting one")
    serve.add_argument("--admin-secret", help="secret of identity 300:0.NA/<prefix>")
    serve.add_argument("--public-url", help="URL clients and other nodes use for this node")
    serve.add_argument("--appendfsync", choices=APPENDFSYNC_POLICIES)
    serve.add_argument("--max-body-bytes", type=int)
    serve.add_argument("--log-level", choices=LOG_LEVELS)
    serve.add_argument("--access-log", action="store_true", default=None)
    return parser


def serve(config: NodeConfig) -> None:
    import uvicorn

    from node import log
    from node.app import create_app

    log.configure(config.log_level)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_config=None,
            log_level=config.log_level,
            access_log=config.access_log,
            timeout_graceful_shutdown=10,
        )
    )
    server.run()


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    command = args.pop("command")
    try:
        if command == "serve":
            serve(NodeConfig.from_sources(args, os.environ))
    except ConfigError as exc:
        print(f"idnode: {exc.message}", file=sys.stderr)
        sys.exit(2)
