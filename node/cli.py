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
    serve.add_argument("--parent-url", help="the node above (top node, or a recursive's root)")
    serve.add_argument("--industry", help="sent when registering with the top node")
    serve.add_argument("--owner", help="the organisation running the node")
    for option, meaning in (
        ("--cache-max-ttl", "cap on a cached record's TTL"),
        ("--negative-ttl", "how long 'not found' is cached"),
        ("--max-stale", "how long past its TTL an answer may be served while its node is down"),
        ("--local-cache-ttl", "life of the in-process copy of a cached answer"),
        ("--upstream-timeout", "timeout of node-to-node requests"),
        ("--invalidation-interval", "how often change feeds are polled"),
        ("--change-retention", "how long this node's change feed keeps entries"),
    ):
        serve.add_argument(option, type=float, metavar="SECONDS", help=meaning)

    up = commands.add_parser(
        "up",
        help="run a whole hierarchy (the demo by default)",
        description="Start a top node, secondary nodes, enterprises and their sample "
        "identifiers from a topology file (the demo topology by default); Ctrl-C stops all.",
    )
    up.add_argument("--topology", help="a topology TOML file (default: the demo topology)")
    up.add_argument("--data-dir", help="keep state here across runs (default: a temp dir)")
    up.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    up.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    up.add_argument(
        "--random-secrets",
        action="store_true",
        help="generate fresh secrets instead of the documented demo-<prefix> ones",
    )
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


def up(args: dict[str, object]) -> None:
    import asyncio
    from pathlib import Path

    from node import log
    from node.launcher import Launcher
    from node.topology import Topology

    log.configure("warning")
    topology = Topology.load(Path(str(args["topology"]))) if args["topology"] else Topology.demo()
    launcher = Launcher(
        topology,
        data_dir=Path(str(args["data_dir"])).resolve() if args["data_dir"] else None,
        redis_url=str(args["redis_url"]) if args["redis_url"] else None,
        random_secrets=bool(args["random_secrets"]),
        host=str(args["host"]),
    )
    asyncio.run(launcher.run_until_signal())


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    command = args.pop("command")
    try:
        if command == "serve":
            serve(NodeConfig.from_sources(args, os.environ))
        elif command == "up":
            up(args)
    except ConfigError as exc:
        print(f"idnode: {exc.message}", file=sys.stderr)
        sys.exit(2)
