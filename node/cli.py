"""The ``idnode`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from node.config import APPENDFSYNC_POLICIES, LOG_LEVELS, NodeConfig
from registry.errors import ConfigError, IdnodeError
from registry.hierarchy import Role
from registry.limits import Limits
from resolver.trace import DEFAULT_DEPTH as DEFAULT_TRACE_DEPTH
from resolver.trace import MAX_DEPTH as MAX_TRACE_DEPTH

if TYPE_CHECKING:
    from node.topology import Topology


_BODY = Limits().max_body_bytes


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default after its help, unless the help names it already or
    there is none to show (``idnode serve``'s options default to None, so that the
    environment can fill them: their help states the default itself)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False) or action.required:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idnode")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def _count(text: str) -> int:
    """A count such as ``200000``, ``200_000`` or ``1e8``.

    >>> _count("1e8"), _count("200_000")
    (100000000, 200000)
    """
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idnode",
        description="Industrial-internet identifier resolution node simulator.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"idnode {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=description, formatter_class=_HelpFormatter
        )

    serve = command(
        "serve",
        help="run one node",
        description="Run one node. Every option can also be set as IDNODE_<OPTION> "
        "(IDNODE_REDIS_URL for --redis-url); the option wins.",
    )
    serve.add_argument(
        "--role",
        choices=[r.value for r in Role],
        help="the node's place in the hierarchy (required)",
    )
    serve.add_argument(
        "--prefix", help="the prefix this node holds, e.g. 88.100 (required but for recursive)"
    )
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8001)")
    serve.add_argument(
        "--data-dir", help="embedded Redis data directory (default .idnode/<role>-<prefix>)"
    )
    serve.add_argument(
        "--redis-url", help="use this Redis instead of starting one (default: start one)"
    )
    serve.add_argument(
        "--admin-secret",
        help="secret of identity 300:0.NA/<prefix> (default: generated once, printed once)",
    )
    serve.add_argument(
        "--public-url",
        help="URL clients and other nodes use for this node (default http://<host>:<port>)",
    )
    serve.add_argument(
        "--appendfsync",
        choices=APPENDFSYNC_POLICIES,
        help="embedded Redis: when the AOF is fsynced; 'always' loses no acknowledged "
        "write (default always)",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, help=f"request body limit, 413 above (default {_BODY})"
    )
    serve.add_argument(
        "--max-upstream-bytes",
        type=int,
        help="largest answer taken from another node (default 1048576)",
    )
    serve.add_argument("--log-level", choices=LOG_LEVELS, help="(default info)")
    serve.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (default off: it costs the hot path)",
    )
    serve.add_argument(
        "--parent-url",
        help="the node above: a secondary's top node, a recursive's root (default none; "
        "required for secondary and recursive)",
    )
    serve.add_argument("--industry", help="sent when registering with the top node (default none)")
    serve.add_argument("--owner", help="the organisation running the node (default none)")
    for option, meaning, default in (
        ("--cache-max-ttl", "cap on a cached record's TTL", 3600),
        ("--negative-ttl", "how long 'not found' is cached", 10),
        (
            "--max-stale",
            "how long past its TTL an answer may be served while its node is down",
            86400,
        ),
        ("--local-cache-ttl", "life of the in-process copy of a cached answer", 1),
        ("--upstream-timeout", "timeout of node-to-node requests", 5),
        ("--invalidation-interval", "how often change feeds are polled", 1),
        ("--change-retention", "how long this node's change feed keeps entries", 3600),
        ("--session-ttl", "life of a Bearer session token", 900),
    ):
        serve.add_argument(
            option, type=float, metavar="SECONDS", help=f"{meaning} (default {default})"
        )
    serve.add_argument(
        "--anonymous-session-ttl",
        type=int,
        metavar="SECONDS",
        help="life of a Handle session opened without credentials (POST /api/sessions) "
        "until it is authenticated (default 60)",
    )
    serve.add_argument(
        "--anonymous-sessions-per-minute",
        type=int,
        metavar="N",
        help="Handle sessions one client address may open without credentials per "
        "minute; 429 past it (default 60)",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        help="requests/s per address and identity (default 0 = no limit)",
    )
    serve.add_argument(
        "--daily-quota",
        type=int,
        help="requests/day per address and identity (default 0 = no limit)",
    )
    serve.add_argument(
        "--anonymous-rate",
        type=float,
        help="anonymous /api/search and /api/trace requests/s per address, bursts of "
        "twice that (default 10; 0 = no limit)",
    )
    serve.add_argument(
        "--application-rate",
        type=float,
        help="anonymous enterprise applications/minute per address, bursts of twice "
        "that (default 5; 0 = no limit)",
    )
    serve.add_argument(
        "--max-pending-applications",
        type=int,
        help="anonymous applications refused (429) while this many are pending "
        "(default 1000; 0 = no cap)",
    )
    serve.add_argument(
        "--application-lifetime",
        type=float,
        metavar="SECONDS",
        help="a pending application expires after this long (default 604800 = 7 days; 0 = never)",
    )
    serve.add_argument("--audit-entries", type=int, help="audit log entries kept (default 100000)")
    serve.add_argument(
        "--secret-hash-cost", type=int, help="scrypt cost (log2 N) of new hashes (default 14)"
    )
    serve.add_argument(
        "--tls-cert", help="serve HTTPS: PEM certificate (chain) (default: plain HTTP)"
    )
    serve.add_argument("--tls-key", help="serve HTTPS: PEM private key (default none)")
    serve.add_argument(
        "--tls-ca",
        help="PEM CA bundle trusted for calls to other nodes (default: the system's CAs)",
    )
    serve.add_argument("--workers", type=int, help="worker processes serving the node (default 1)")
    serve.add_argument(
        "--max-followed-nodes", type=int, help="change feeds followed at most (default 1024)"
    )
    serve.add_argument(
        "--allow-private-nodes",
        action="store_true",
        default=None,
        help="let calls to other nodes reach loopback and private addresses (default off)",
    )
    serve.add_argument(
        "--indexed-types",
        metavar="TYPES",
        help="value types indexed for reverse lookup (/hrls/handles, /api/search) and "
        "queries (/api/query), comma-separated, e.g. URL,BATCH; TEMPLATE and the items "
        "metadata templates declare queryable are always indexed; '*' indexes every "
        "type; searches on other types are refused (400). Changing it rebuilds or drops "
        "indexes at start (default URL)",
    )
    serve.add_argument(
        "--record-buckets",
        type=int,
        metavar="N",
        help="buckets (small Redis hashes) each prefix's records spread over; fixed when "
        "the store is created, later values are ignored. Size it for a few dozen to a few "
        "hundred records a bucket at the expected identifiers per prefix (default 524288: "
        "1亿 a prefix)",
    )
    serve.add_argument(
        "--prefix-shards",
        type=int,
        metavar="N",
        help="Redis Cluster hash slots (shards) each prefix's records and indexes spread "
        "over: a power of two up to 4096 that divides --record-buckets; fixed when the "
        "store is created, later values are ignored. With more than one, a listing is "
        "ordered by shard, then byte order (default 1: a prefix in one slot)",
    )
    serve.add_argument(
        "--replica-acks",
        metavar="N|auto",
        help="replicas of its Redis master that must confirm each write (WAIT) before the "
        "node acknowledges it; 503 when they do not within --replica-ack-timeout. auto: 1 "
        "where every master has a replica at start-up, else 0 (default auto)",
    )
    serve.add_argument(
        "--replica-ack-timeout",
        type=int,
        metavar="MS",
        help="milliseconds a write waits for --replica-acks replicas (default 1000)",
    )
    hygiene = serve.add_argument_group(
        "connection limits", "bounds on client connections and on the Redis pool"
    )
    hygiene.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="client connections held at once, per worker (default 4096, and at most the "
        "open-file limit less 512); past it the longest-idle connection is closed, or the "
        "new one answered 503 when all are busy",
    )
    hygiene.add_argument(
        "--max-header-bytes",
        type=int,
        metavar="BYTES",
        help="size limit of a request head: request line and headers (default 16384; 431)",
    )
    hygiene.add_argument(
        "--header-timeout",
        type=float,
        metavar="SECONDS",
        help="a request head must arrive whole this long after the connection is ready "
        "for it, else the connection is closed (default 10; stops slowloris)",
    )
    hygiene.add_argument(
        "--body-timeout",
        type=float,
        metavar="SECONDS",
        help="a request body must arrive whole this long after its head, else the "
        "connection is closed (default 60; stops slow bodies)",
    )
    hygiene.add_argument(
        "--keep-alive-timeout",
        type=float,
        metavar="SECONDS",
        help="an idle keep-alive connection is closed after this long (default 5)",
    )
    hygiene.add_argument(
        "--redis-max-connections",
        type=int,
        metavar="N",
        help="Redis connections per worker (default 64); requests beyond wait for one",
    )
    hygiene.add_argument(
        "--redis-pool-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a request waits for a free Redis connection before 503 (default 2)",
    )
    hygiene.add_argument(
        "--min-free-disk-bytes",
        type=int,
        metavar="BYTES",
        help="embedded Redis: writes are refused (507) while its data directory's disk "
        "has less free space than this, and resume when it has (default 67108864)",
    )

    up = command(
        "up",
        help="run a whole hierarchy (the demo by default)",
        description="Start a top node, secondary nodes, enterprises and their sample "
        "identifiers from a topology file (the demo topology by default), printing one "
        "line per step, then the table of nodes and secrets, then a line starting "
        "'ready:' once every node answers and the samples are seeded. Ctrl-C stops all. "
        "Exit status: 0 after a stop once ready, 130 (143) when Ctrl-C (SIGTERM) came "
        "during start-up, 1 when a node died, 2 for a setting or port problem.",
    )
    up.add_argument("--topology", help="a topology TOML file (default: the demo topology)")
    up.add_argument(
        "--port-base",
        type=int,
        metavar="PORT",
        help="move the hierarchy: the top node on PORT, every other node at the same "
        "offset from it as in the topology (the demo: PORT+1..+3, PORT+10) "
        "(default: the topology's ports, 8000-8010 for the demo)",
    )
    up.add_argument("--data-dir", help="keep state here across runs (default: a temp dir)")
    up.add_argument(
        "--log-dir",
        help="folder for each node's log and Redis's, kept after exit "
        "(default .idnode/logs/<timestamp>)",
    )
    up.add_argument(
        "--ready-file",
        metavar="PATH",
        help="write this file (JSON: pid, top URL, logs) once the hierarchy is ready, and "
        "remove it on stop: scripts can wait for it (default: none)",
    )
    up_store = up.add_mutually_exclusive_group()
    up_store.add_argument(
        "--redis-url", help="use this Redis instead of an embedded one (default: embedded)"
    )
    up_store.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="give each node an embedded Redis Cluster of N masters (3 or more) with a "
        "replica each, instead of a database of one embedded Redis (default: one Redis)",
    )
    up.add_argument("--host", default="127.0.0.1", help="listen address")
    up.add_argument(
        "--random-secrets",
        action="store_true",
        help="generate fresh secrets instead of the documented demo-<prefix> ones",
    )

    setup = command(
        "setup",
        help="set up a hierarchy whose nodes already run (containers), as `up` does",
        description="Provision the secondary prefixes at the top node, wait for the "
        "secondary nodes to register, onboard the enterprises and seed their sample "
        "identifiers, through the APIs of nodes that already run (e.g. the compose file's "
        "containers) with the demo secrets (demo-<prefix>). Safe to run again.",
    )
    setup.add_argument("--topology", help="a topology TOML file (default: the demo topology)")
    setup.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="PORT=URL",
        help="where the node the topology puts on PORT answers, e.g. "
        "8001=http://secondary-88-100:8001 (default: http://<host>:<port>)",
    )
    setup.add_argument("--host", default="127.0.0.1", help="host of nodes without --url")

    check = command(
        "check",
        help="judge a running hierarchy against a seed plan's targets",
        description="Measure a running hierarchy through its top node and compare it with "
        "the targets of a seed plan; exits 1 when a target is missed.",
    )
    check.add_argument("--plan", help="the seed plan, e.g. wuhan-5g-2021 (required; see --list)")
    check.add_argument("--list", action="store_true", help="list the seed plans and exit")
    check_where = check.add_mutually_exclusive_group()
    check_where.add_argument("--url", default="http://127.0.0.1:8000", help="the top node")
    check_where.add_argument(
        "--node",
        help="check one secondary node at this URL instead, by its own KPIs (the "
        "hierarchy's targets are then not measured; default: the top node at --url)",
    )
    check.add_argument("--day", help="UTC day YYYYMMDD (default: today)")
    check.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the targets, e.g. 0.001 for the demo (ranks are not scaled)",
    )
    check.add_argument("--markdown", help="also write the table as Markdown here (default: no)")
    check.add_argument("--json", help="also write the rows as JSON here (default: no)")

    bench = command(
        "bench",
        help="load-test a hierarchy with Locust and report against the plan's targets",
        description="Run a Locust scenario (headless, its own process) against the demo "
        "hierarchy (--up) or a running one (--target), write reports/<timestamp>/ and exit 1 "
        "when a secondary node misses the per-node daily resolutions target or the error "
        "budget.",
    )
    where = bench.add_mutually_exclusive_group()
    where.add_argument("--up", action="store_true", help="start the demo hierarchy (default)")
    where.add_argument("--target", help="a running hierarchy's top node URL (default: --up)")
    where.add_argument(
        "--catalog", help="a JSON file describing the hierarchy (see docs) (default: --up)"
    )
    bench.add_argument(
        "--scenario",
        choices=["resolve", "mixed"],
        default="resolve",
        help="resolve: resolutions only; mixed: also registrations, queries and searches",
    )
    bench.add_argument("--duration", type=int, default=60, help="seconds")
    bench.add_argument("--users", type=int, default=20, help="peak users")
    bench.add_argument(
        "--shape",
        choices=["day", "flat"],
        default="day",
        help="day: users rise and fall like a working day's traffic; flat: all at once",
    )
    bench.add_argument(
        "--identifiers", type=int, default=100, help="sample identifiers per enterprise"
    )
    bench.add_argument("--processes", type=int, default=1, help="Locust worker processes")
    bench.add_argument(
        "--unknown-share",
        type=float,
        default=0.02,
        help="share of resolutions asking for identifiers that do not exist",
    )
    bench.add_argument(
        "--error-budget",
        type=float,
        default=0.001,
        help="largest share of failed requests that still passes",
    )
    bench.add_argument(
        "--plan",
        default="wuhan-5g-2021",
        help="seed plan whose per-node daily resolutions are the target (idnode check --list)",
    )
    bench.add_argument(
        "--per-day", type=float, help="per-node resolutions/day target (default: the plan's)"
    )
    bench.add_argument(
        "--seed", action="store_true", help="with --target: seed --identifiers per enterprise"
    )
    bench.add_argument("--reports", default="reports", help="folder for <timestamp>/ reports")
    bench.add_argument(
        "--capacity",
        action="store_true",
        help="instead of Locust: maximum rates and latency of the demo hierarchy against "
        "nginx and FastAPI+Redis baselines (needs wrk and nginx: make bench-tools)",
    )
    bench.add_argument(
        "--seconds", type=int, default=10, help="with --capacity: seconds per measurement"
    )
    bench.add_argument(
        "--profile", action="store_true", help="with --capacity: also sample the top node (py-spy)"
    )
    scale = bench.add_argument_group(
        "storage scale (--scale)",
        "instead of Locust: load N identifiers into one node (its own processes and Redis) "
        "and report memory and disk per identifier, import rate, resolve p50/p99 and "
        "restart time as N grows, in reports/<timestamp>/scale.md, .json and .svg. Exits 2 "
        "without loading when N's projection (from a calibration load) does not fit the "
        "machine",
    )
    scale.add_argument(
        "--scale",
        type=_count,
        metavar="N",
        help="identifiers to load, e.g. 200000 or 1e8 (default: the Locust benchmark)",
    )
    scale.add_argument(
        "--work",
        default=".idnode/bench-scale",
        metavar="DIR",
        help="the store, import files and state.json of the run",
    )
    scale.add_argument(
        "--resume", action="store_true", help="continue the run whose state is in --work"
    )
    scale.add_argument(
        "--force",
        action="store_true",
        help="load even when the projection says N does not fit (the refusal is printed)",
    )
    scale.add_argument(
        "--calibration",
        type=_count,
        default=200_000,
        metavar="N",
        help="identifiers of the calibration load (at most N), from which N's memory and "
        "disk are projected (default 200000: fixed costs spread, the records' dictionary "
        "trained, as in a large store)",
    )
    scale.add_argument(
        "--first-checkpoint",
        type=_count,
        default=10_000,
        metavar="N",
        help="the first checkpoint; then each tenfold of it, and N (default 10000)",
    )
    scale.add_argument(
        "--resolve-requests",
        type=_count,
        default=2000,
        metavar="N",
        help="resolve GETs timed at each checkpoint",
    )
    scale.add_argument(
        "--headroom",
        type=float,
        default=0.15,
        help="memory share added to Redis's used_memory in the projection: fragmentation "
        "and the pages an AOF rewrite's fork copies",
    )
    scale.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="the node's worker processes (default: the cores)",
    )
    scale.add_argument(
        "--segment",
        type=_count,
        default=1_000_000,
        metavar="N",
        help="identifiers per import file (written ahead, removed once imported)",
    )
    scale.add_argument(
        "--cluster",
        type=int,
        metavar="M",
        help="instead of the checkpoints: the same N identifiers into a node on a single "
        "Redis, then into a node on an embedded Redis Cluster of M masters (at least 3) "
        "with a replica each, side by side (import rate, memory and AOF per identifier, "
        "resolve p50/p99, CPU per identifier) in reports/<timestamp>/cluster.md and "
        ".json. Exits 1 when a node refused any identifier (default: no cluster, the "
        "checkpoints of one store)",
    )

    seed = command(
        "seed",
        help="load sample identifiers into a running hierarchy through its batch API",
        description="Register --identifiers sample identifiers (<prefix>/demo-0001, ...) for "
        "every enterprise filed at the top node, with the demo credentials, 2000 per batch "
        "call, and show progress. Existing sample identifiers are overwritten. Enterprises "
        "whose secret is not the demo one (onboarded by hand) are skipped, and named.",
    )
    seed.add_argument("--target", required=True, help="the top node's URL")
    seed.add_argument(
        "--identifiers", type=int, default=1000, help="sample identifiers per enterprise"
    )

    trace = command(
        "trace",
        help="draw the traceability tree of a product (GET /api/trace/HANDLE)",
        description="Ask a node to trace HANDLE's links (COMPONENT, MADE_FROM, "
        "COMPONENT_OF, SHIPPED_IN) across the hierarchy and draw the tree it answers: "
        "one line per handle with its status and the node that resolved it (and its cache: "
        "HIT, MISS, STALE, or 'store' for a node's own store); 'seen' marks a back-reference "
        "to a handle already drawn. Exit status 0 when the node answered (a trace with "
        "unreachable branches included: the last line says so), 1 when it refused or failed.",
    )
    trace.add_argument(
        "handle", metavar="HANDLE", help="the product, e.g. 88.100.1/JM-E5-2026-000123"
    )
    trace.add_argument(
        "--node",
        default="http://127.0.0.1:8000",
        metavar="URL",
        help="the node to ask: any role traces (default: the demo's top node, %(default)s)",
    )
    trace.add_argument(
        "--depth",
        type=int,
        default=DEFAULT_TRACE_DEPTH,
        metavar="N",
        help=f"levels of links followed below HANDLE, 0 to {MAX_TRACE_DEPTH}",
    )
    trace.add_argument(
        "--relations",
        action="append",
        metavar="R[,R...]",
        help="the relations to follow, comma-separated or repeated (default: all four)",
    )
    trace.add_argument(
        "--json", action="store_true", help="print the node's JSON answer instead of the tree"
    )

    importing = command(
        "import",
        help="stream a file of identifiers (NDJSON or CSV) into a node's batch API",
        description="Register every identifier of FILE at the node --url, --chunk per batch "
        "call, --in-flight calls at once, as the identity --identity (its secret from "
        "--secret or IDNODE_IMPORT_SECRET). Existing identifiers are replaced. Lines the node "
        "refuses go to the rejects file with their line number and reason; the rest go on. "
        "Progress and an ETA every few seconds on stderr. Interrupted, the same command "
        "resumes after the last acknowledged chunk (the checkpoint file).",
    )
    importing.add_argument("file", help="NDJSON (one batch item a line) or CSV (handle,TYPE,...)")
    importing.add_argument("--url", required=True, help="the node holding the prefixes")
    importing.add_argument("--identity", required=True, help="e.g. 300:0.NA/88.100.1")
    importing.add_argument("--secret", help="the identity's secret (default IDNODE_IMPORT_SECRET)")
    importing.add_argument(
        "--format", choices=["ndjson", "csv"], help="default: from the suffix (.ndjson .jsonl .csv)"
    )
    importing.add_argument("--chunk", type=int, default=2000, help="identifiers per batch call")
    importing.add_argument("--in-flight", type=int, default=4, help="batch calls at once")
    importing.add_argument("--checkpoint", help="default FILE.checkpoint")
    importing.add_argument("--rejects", help="default FILE.rejects (one JSON object a line)")
    importing.add_argument(
        "--stop-on-error",
        action="store_true",
        help="stop after the chunk holding the first rejected line",
    )
    importing.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint: import the whole file"
    )
    importing.add_argument(
        "--progress-every", type=float, default=5.0, help="seconds between progress lines"
    )

    keys = command(
        "keys",
        help="public-key identities: generate a key pair, sign a login challenge, log in",
        description="SM2 (with SM3) or Ed25519 key pairs for HS_PUBKEY identities.",
    )
    key_commands = keys.add_subparsers(dest="key_command", required=True)

    def key_command(name: str, about: str) -> argparse.ArgumentParser:
        return key_commands.add_parser(name, help=about, formatter_class=_HelpFormatter)

    generate = key_command("generate", "print a new private and public key")
    generate.add_argument(
        "--algorithm", choices=["sm2", "ed25519"], default="sm2", help="key algorithm"
    )
    sign = key_command("sign", "sign the login challenge for a nonce")
    sign.add_argument("--key", required=True, help="private key text, or @file holding it")
    sign.add_argument("--identity", required=True, help="e.g. 300:88.100.1/devices/plc-7")
    sign.add_argument("--nonce", required=True, help="the nonce the node's challenge gave")
    login = key_command(
        "login", "open a Handle session, answer its nonce with the key, print the session token"
    )
    login.add_argument("--url", required=True, help="the node holding the identity")
    login.add_argument("--key", required=True, help="private key text, or @file holding it")
    login.add_argument("--identity", required=True, help="e.g. 300:88.100.1/devices/plc-7")
    return parser


def keys(args: dict[str, object]) -> None:
    try:
        _keys(args)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"keys: {exc}") from None


def _keys(args: dict[str, object]) -> None:
    from pathlib import Path

    from registry.pubkey import Algorithm, challenge, generate, sign

    command = args["key_command"]
    if command == "generate":
        private, public = generate(Algorithm(str(args["algorithm"])))
        print(f"private key (keep it secret): {private}")
        print(f"public key (HS_PUBKEY value): {public}")
        return
    key = str(args["key"])
    if key.startswith("@"):
        key = Path(key[1:]).read_text().strip()
    identity = str(args["identity"])
    if command == "sign":
        print(sign(key, challenge(identity, str(args["nonce"]))))
        return

    print(_handle_session(str(args["url"]).rstrip("/"), key, identity))


def _handle_session(url: str, private: str, identity: str) -> str:
    """Log in as Handle clients do: ``POST /api/sessions`` opens a session (its
    ``sessionId`` and ``nonce``), ``PUT /api/sessions/this`` answers the nonce with
    ``Authorization: Handle``, signing the nonce's bytes followed by a client nonce's.
    The session id is the token printed (also a Bearer token)."""
    import base64
    import json
    import secrets
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    from registry.authorization import ALG_FOR_KEY
    from registry.pubkey import Algorithm, sign

    def call(method: str, path: str, headers: dict[str, str]) -> dict[str, object]:
        request = urllib.request.Request(f"{url}{path}", headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: dict[str, object] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise ConfigError(f"{method} {path}: HTTP {exc.code} {exc.read().decode()}") from None
        except urllib.error.URLError as exc:
            raise ConfigError(f"{method} {path}: {exc.reason}") from None

    opened = call("POST", "/api/sessions", {})
    session_id, nonce = str(opened["sessionId"]), str(opened["nonce"])
    cnonce = secrets.token_bytes(16)
    algorithm = Algorithm(private.strip().partition(":")[0].lower())
    signature = bytes.fromhex(sign(private, base64.b64decode(nonce) + cnonce))
    fields = {
        "version": "0",
        "sessionId": session_id,
        "id": quote(identity, safe=""),
        "type": "HS_PUBKEY",
        "alg": ALG_FOR_KEY[algorithm],
        "cnonce": base64.b64encode(cnonce).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    header = "Handle " + ", ".join(f'{name}="{value}"' for name, value in fields.items())
    call("PUT", "/api/sessions/this", {"Authorization": header})
    return session_id


def trace(args: dict[str, object]) -> None:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    from node.trace_tree import draw

    query = [("depth", str(args["depth"]))]
    query += [("relations", str(r)) for r in cast(list[object], args["relations"] or [])]
    handle = urllib.parse.quote(str(args["handle"]), safe="/")
    url = f"{str(args['node']).rstrip('/')}/api/trace/{handle}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # the node's error body names the problem
        try:
            message = json.loads(exc.read()).get("message")
        except (ValueError, AttributeError):
            message = None
        raise IdnodeError(f"{url}: HTTP {exc.code}: {message or exc.reason}") from None
    except urllib.error.URLError as exc:
        raise IdnodeError(f"{url}: {exc.reason}") from None
    except (TimeoutError, ValueError) as exc:
        raise IdnodeError(f"{url}: {exc}") from None
    if args["json"]:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        print("\n".join(draw(answer)))


def check(args: dict[str, object]) -> int:
    import json
    from pathlib import Path

    from loadtest.check import observe, observe_node
    from loadtest.plan import Plan, evaluate, failed, render_markdown, render_text

    if args["list"]:
        for name in Plan.names():
            plan = Plan.load(name)
            print(f"{name:<22} {plan.english} ({plan.title})")
        return 0
    if not args["plan"]:
        raise ConfigError("check: give --plan NAME (idnode check --list shows the plans)")
    plan = Plan.load(str(args["plan"]))
    scale = float(str(args["scale"]))
    if not scale > 0:
        raise ConfigError("--scale must be positive")
    day = str(args["day"]) if args["day"] else None
    observed = (
        observe_node(str(args["node"]), day) if args["node"] else observe(str(args["url"]), day)
    )
    rows = evaluate(plan, observed, scale)
    print(render_text(plan, rows, scale))
    if args["markdown"]:
        Path(str(args["markdown"])).write_text(render_markdown(plan, rows, scale), "utf-8")
    if args["json"]:
        report = {"plan": plan.name, "scale": scale, "rows": [r.to_json() for r in rows]}
        text = json.dumps(report, ensure_ascii=False, indent=2)
        Path(str(args["json"])).write_text(text, "utf-8")
    return 1 if failed(rows) else 0


def bench(args: dict[str, object], argv: Sequence[str]) -> int:
    from pathlib import Path

    from loadtest.bench import BenchOptions
    from loadtest.bench import bench as run

    if args["scale"] is not None:
        return scale(args, argv)
    if args["capacity"]:
        return capacity(args, argv)
    if int(str(args["duration"])) < 5 or int(str(args["users"])) < 1:
        raise ConfigError("--duration is at least 5 s and --users at least 1")
    options = BenchOptions(
        scenario=str(args["scenario"]),
        duration=int(str(args["duration"])),
        users=int(str(args["users"])),
        shape=str(args["shape"]),
        up=not args["target"] and not args["catalog"],
        target=str(args["target"]) if args["target"] else None,
        catalog=Path(str(args["catalog"])) if args["catalog"] else None,
        identifiers=int(str(args["identifiers"])),
        processes=int(str(args["processes"])),
        unknown_share=float(str(args["unknown_share"])),
        error_budget=float(str(args["error_budget"])),
        plan=str(args["plan"]),
        per_day=float(str(args["per_day"])) if args["per_day"] is not None else None,
        seed=bool(args["seed"]),
        reports=Path(str(args["reports"])),
    )
    return run(options, "idnode " + " ".join(argv))


def scale(args: dict[str, object], argv: Sequence[str]) -> int:
    from pathlib import Path

    from loadtest.scale_bench import ScaleBench, ScaleOptions

    if args["capacity"] or args["target"] or args["catalog"]:
        raise ConfigError("--scale starts its own node: drop --capacity, --target and --catalog")
    if int(str(args["workers"])) < 1:
        raise ConfigError("--workers is at least 1")
    if args["cluster"] is not None:
        return cluster_bench(args, argv)
    options = ScaleOptions(
        n=int(str(args["scale"])),
        work=Path(str(args["work"])),
        reports=Path(str(args["reports"])),
        resume=bool(args["resume"]),
        force=bool(args["force"]),
        calibration=int(str(args["calibration"])),
        first_checkpoint=int(str(args["first_checkpoint"])),
        requests=int(str(args["resolve_requests"])),
        headroom=float(str(args["headroom"])),
        workers=int(str(args["workers"])),
        segment=int(str(args["segment"])),
    )
    ScaleBench(options, "idnode " + " ".join(argv)).run()
    return 0


def cluster_bench(args: dict[str, object], argv: Sequence[str]) -> int:
    from pathlib import Path

    from loadtest.cluster_bench import ClusterBench, ClusterOptions

    if args["resume"]:
        raise ConfigError("--cluster runs start fresh: drop --resume")
    options = ClusterOptions(
        n=int(str(args["scale"])),
        masters=int(str(args["cluster"])),
        work=Path(str(args["work"])),
        reports=Path(str(args["reports"])),
        requests=int(str(args["resolve_requests"])),
        workers=int(str(args["workers"])),
        segment=int(str(args["segment"])),
    )
    _, report = ClusterBench(options, "idnode " + " ".join(argv)).run()
    return 1 if report.failures() else 0


def capacity(args: dict[str, object], argv: Sequence[str]) -> int:
    from pathlib import Path

    from loadtest.capacity import CapacityOptions
    from loadtest.capacity import capacity as run

    if args["target"] or args["catalog"]:
        raise ConfigError("--capacity starts its own hierarchy: drop --target and --catalog")
    if int(str(args["seconds"])) < 1:
        raise ConfigError("--seconds is at least 1")
    options = CapacityOptions(
        seconds=int(str(args["seconds"])),
        reports=Path(str(args["reports"])),
        profile=bool(args["profile"]),
    )
    return run(options, "idnode " + " ".join(argv))


def seed(args: dict[str, object]) -> None:
    import asyncio

    from loadtest import catalog
    from loadtest.bench import seed as run

    count = int(str(args["identifiers"]))
    if count < 1:
        raise ConfigError("--identifiers is at least 1")
    jobs = catalog.seed_jobs(catalog.from_top(str(args["target"]), count))
    written, skipped = asyncio.run(run(jobs))
    note = f"; skipped {len(skipped)} (named above)" if skipped else ""
    print(f"seeded {written:,} identifiers for {len(jobs) - len(skipped)} enterprises{note}")


def bulk_import(args: dict[str, object]) -> int:
    import asyncio
    from pathlib import Path

    from node.import_format import format_of
    from node.importer import Importer, ImportOptions
    from resolver.upstream import Credentials

    secret = args["secret"] or os.environ.get("IDNODE_IMPORT_SECRET")
    if not secret:
        raise ConfigError("give the identity's secret: --secret or IDNODE_IMPORT_SECRET")
    file = Path(str(args["file"]))
    if not file.is_file():
        raise ConfigError(f"no such file: {file}")
    options = ImportOptions(
        file=file,
        url=str(args["url"]),
        credentials=Credentials(str(args["identity"]), str(secret)),
        fmt=format_of(str(file), str(args["format"]) if args["format"] else None),
        chunk=int(str(args["chunk"])),
        in_flight=int(str(args["in_flight"])),
        checkpoint=Path(str(args["checkpoint"])) if args["checkpoint"] else None,
        rejects=Path(str(args["rejects"])) if args["rejects"] else None,
        stop_on_error=bool(args["stop_on_error"]),
        restart=bool(args["restart"]),
        progress_every=float(str(args["progress_every"])),
    )
    outcome = asyncio.run(Importer(options, progress=sys.stderr).run())
    print(outcome.summary(), file=sys.stderr)
    if outcome.rejected:
        print(f"rejected lines: {options.rejects_path}", file=sys.stderr)
    if outcome.stopped:
        print("stopped after the first rejected line (--stop-on-error)", file=sys.stderr)
    return 1 if outcome.rejected else 0


def serve(config: NodeConfig, argv: Sequence[str]) -> None:
    import socket

    import uvicorn

    from node import log

    log.configure(config.log_level)
    if config.workers > 1 and config.worker_fd is None:
        from node.workers import Supervisor

        sys.exit(Supervisor(config, argv[1:], config.workers).run())
    from node.app import create_app
    from node.connection_guard import fitted_limits, guarded_protocol
    from node.startup import Phase, Startup
    from node.workers import listening_socket
    from registry.redis_client import reachability_problem

    class NodeServer(uvicorn.Server):
        """Stops serving when the node's start-up fails after it began serving (its
        store was loading): the process must exit with the error, not hang at 503."""

        async def on_tick(self, counter: int) -> bool:
            return startup.phase is Phase.FAILED or await super().on_tick(counter)

    if config.worker_fd is None:
        # Before anything is announced (a generated secret, "node ready"): a port taken
        # or a Redis out of reach is one clear message, not a start-up then a traceback.
        listener = listening_socket(config.host, config.port)
    else:  # a worker of node.workers: serve on the socket the supervisor bound
        listener = socket.socket(fileno=config.worker_fd)
    if config.redis_url and (problem := reachability_problem(config.redis_url)):
        listener.close()
        raise ConfigError(f"cannot reach Redis at --redis-url {config.redis_url}: {problem}")
    limits = fitted_limits(config.connections)
    app = create_app(config)
    startup: Startup = app.state.startup
    server = NodeServer(
        uvicorn.Config(
            app,
            http=guarded_protocol(limits),
            host=config.host,
            port=config.port,
            log_config=None,
            log_level=config.log_level,
            access_log=config.access_log,
            timeout_keep_alive=max(1, round(limits.keep_alive_timeout)),
            timeout_graceful_shutdown=10,
            ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
            ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        )
    )
    server.run(sockets=[listener])
    if startup.error is not None:  # logged when it happened; the cause once more, and 1
        error = startup.error
        print(f"idnode: start-up failed: {getattr(error, 'message', error)}", file=sys.stderr)
        sys.exit(1)


def up(args: dict[str, object]) -> int:
    import asyncio
    from datetime import datetime
    from pathlib import Path

    from node import log
    from node.launcher import Launcher

    log.configure("warning")
    topology = _topology(args)
    if args["port_base"] is not None:
        topology = topology.moved_to(int(str(args["port_base"])))
    if args["log_dir"]:
        logs = Path(str(args["log_dir"]))
    else:  # kept after exit, one folder per run, next to the default node data
        logs = Path(".idnode") / "logs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    launcher = Launcher(
        topology,
        data_dir=Path(str(args["data_dir"])).resolve() if args["data_dir"] else None,
        redis_url=str(args["redis_url"]) if args["redis_url"] else None,
        cluster=_cluster_masters(args["cluster"]),
        random_secrets=bool(args["random_secrets"]),
        host=str(args["host"]),
        steps=sys.stdout,
        log_dir=logs.resolve(),
        ready_file=Path(str(args["ready_file"])).resolve() if args["ready_file"] else None,
    )
    return asyncio.run(launcher.run_until_signal())


def _cluster_masters(given: object) -> int:
    """``--cluster``'s masters (0 when not given); a cluster needs at least 3."""
    if given is None:
        return 0
    masters = int(str(given))
    if masters < 3:
        raise ConfigError(
            f"--cluster {masters}: a Redis Cluster needs at least 3 masters (a majority "
            "of them votes a failed master's replica in)"
        )
    return masters


def setup(args: dict[str, object]) -> None:
    import asyncio

    from node import log
    from node.launcher import Launcher, attach_urls

    log.configure("warning")
    topology = _topology(args)
    urls = attach_urls(topology, [str(pair) for pair in cast(list[object], args["url"])])
    launcher = Launcher(
        topology, data_dir=None, host=str(args["host"]), attach=urls, progress=sys.stdout
    )
    asyncio.run(launcher.start())
    launcher.print_table()


def _topology(args: dict[str, object]) -> Topology:
    from pathlib import Path

    from node.topology import Topology

    return Topology.load(Path(str(args["topology"]))) if args["topology"] else Topology.demo()


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = vars(_parser().parse_args(argv))
    command = args.pop("command")
    try:
        if command == "serve":
            serve(NodeConfig.from_sources(args, os.environ), argv)
        elif command == "up":
            sys.exit(up(args))
        elif command == "setup":
            setup(args)
        elif command == "keys":
            keys(args)
        elif command == "trace":
            trace(args)
        elif command == "check":
            sys.exit(check(args))
        elif command == "seed":
            seed(args)
        elif command == "import":
            sys.exit(bulk_import(args))
        elif command == "bench":
            sys.exit(bench(args, argv))
    except ConfigError as exc:  # a setting, a port, a file: the user can fix it
        print(f"idnode: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except IdnodeError as exc:  # Redis or another node failed
        print(f"idnode: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C before a command's own handling took over
        print("idnode: stopped", file=sys.stderr)
        sys.exit(130)
