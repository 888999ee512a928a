"""Node configuration: one typed object per process, read once from arguments and env.

Every setting has a command-line option and an ``IDNODE_*`` environment variable; the
option wins. This is the only module that reads the environment.

=====================  ========================  ==========================================
option                 environment               meaning
=====================  ========================  ==========================================
--role                 IDNODE_ROLE               top | secondary | enterprise | recursive
--prefix               IDNODE_PREFIX             the prefix this node holds, e.g. 88.100
                                                 (every role but recursive)
--parent-url           IDNODE_PARENT_URL         the node above: a secondary registers
                                                 with and files at its top node; 301
                                                 answers refer there; a recursive node's
                                                 root (required for recursive)
--industry             IDNODE_INDUSTRY           sent with the registration, e.g. automotive
--owner                IDNODE_OWNER              the organisation running the node
--host                 IDNODE_HOST               listen address (default 127.0.0.1)
--port                 IDNODE_PORT               listen port (default 8001)
--data-dir             IDNODE_DATA_DIR           embedded Redis data (default ./.idnode/<node>)
--redis-url            IDNODE_REDIS_URL          use this Redis instead of an embedded one
--admin-secret         IDNODE_ADMIN_SECRET       secret of 300:0.NA/<prefix>
--public-url           IDNODE_PUBLIC_URL         URL other nodes and clients use for this node
--appendfsync          IDNODE_APPENDFSYNC        embedded Redis AOF policy: always|everysec|no
--max-body-bytes       IDNODE_MAX_BODY_BYTES     request body limit (413 above it)
--log-level            IDNODE_LOG_LEVEL          debug | info | warning | error
--access-log           IDNODE_ACCESS_LOG         log every request (off by default: hot path)
--cache-max-ttl        IDNODE_CACHE_MAX_TTL      recursive cache: cap on a record's TTL (3600 s)
--negative-ttl         IDNODE_NEGATIVE_TTL       recursive cache: life of "not found" (10 s)
--max-stale            IDNODE_MAX_STALE          serve a stale answer this long past its
                                                 TTL while its node is down (86400 s)
--local-cache-ttl      IDNODE_LOCAL_CACHE_TTL    in-process copy life (1 s)
--upstream-timeout     IDNODE_UPSTREAM_TIMEOUT   node-to-node request timeout (5 s): one
                                                 deadline for connect, body and parsing
--max-upstream-bytes   IDNODE_MAX_UPSTREAM_BYTES largest answer taken from another node
                                                 (1048576); a larger one is dropped as
                                                 it streams and the node is unavailable
--invalidation-interval  IDNODE_INVALIDATION_INTERVAL  change-feed polling period (1 s)
--max-followed-nodes   IDNODE_MAX_FOLLOWED_NODES change feeds a recursive node follows at
                                                 most (1024); answers from further nodes
                                                 are served uncached
--allow-private-nodes  IDNODE_ALLOW_PRIVATE_NODES  let node-to-node calls reach loopback
                                                 and private addresses (off; the demo on
                                                 127.0.0.1 and private networks need it)
--change-retention     IDNODE_CHANGE_RETENTION   change-feed history kept (3600 s)
--session-ttl          IDNODE_SESSION_TTL        life of a Bearer session token (900 s)
--anonymous-session-ttl  IDNODE_ANONYMOUS_SESSION_TTL  life of a Handle session opened
                                                 without credentials until it is
                                                 authenticated (60 s)
--anonymous-sessions-per-minute  IDNODE_ANONYMOUS_SESSIONS_PER_MINUTE  such sessions
                                                 one client address may open a minute;
                                                 429 past it (60)
--rate-limit           IDNODE_RATE_LIMIT         requests/s per client address and per
                                                 identity (0 = no limit, the default)
--daily-quota          IDNODE_DAILY_QUOTA        requests/day per client address and per
                                                 identity (0 = no limit, the default)
--anonymous-rate       IDNODE_ANONYMOUS_RATE     anonymous /api/search and /api/trace
                                                 requests/s per client address, bursts of
                                                 twice that (10; 0 = no limit); see
                                                 :mod:`node.anonymous_limits`
--application-rate     IDNODE_APPLICATION_RATE   anonymous enterprise applications/minute
                                                 per client address, bursts of twice
                                                 that (5; 0 = no limit)
--max-pending-applications  IDNODE_MAX_PENDING_APPLICATIONS  anonymous applications are
                                                 refused (429) while this many are
                                                 pending (1000; 0 = no cap)
--application-lifetime IDNODE_APPLICATION_LIFETIME  a pending enterprise application
                                                 expires after this long (604800 s = 7
                                                 days; 0 = never)
--audit-entries        IDNODE_AUDIT_ENTRIES      audit log length kept (100000)
--secret-hash-cost     IDNODE_SECRET_HASH_COST   scrypt cost of new secret hashes, log2 N
                                                 (14; lower only for tests and demos)
--tls-cert / --tls-key IDNODE_TLS_CERT / _KEY    serve HTTPS with this PEM certificate
                                                 (chain) and private key
--tls-ca               IDNODE_TLS_CA             PEM CA bundle trusted for calls to other
                                                 nodes (default: the system's CAs)
--workers              IDNODE_WORKERS            worker processes serving the node (1);
                                                 see :mod:`node.workers`
--max-connections      IDNODE_MAX_CONNECTIONS    client connections held at once (4096);
                                                 past it the longest-idle one is closed
--max-header-bytes     IDNODE_MAX_HEADER_BYTES   request head size limit (16384; 431)
--header-timeout       IDNODE_HEADER_TIMEOUT     seconds to send a request head (10 s)
--body-timeout         IDNODE_BODY_TIMEOUT       seconds to send a request body after its
                                                 head (60 s)
--keep-alive-timeout   IDNODE_KEEP_ALIVE_TIMEOUT  idle keep-alive connection life (5 s)
--redis-max-connections  IDNODE_REDIS_MAX_CONNECTIONS  Redis pool size (64)
--redis-pool-timeout   IDNODE_REDIS_POOL_TIMEOUT  wait for a free Redis connection (2 s)
--min-free-disk-bytes  IDNODE_MIN_FREE_DISK_BYTES  embedded Redis: writes are refused
                                                 while its disk has less free (64 MiB)
--indexed-types        IDNODE_INDEXED_TYPES      value types indexed for reverse lookup
                                                 and queries, comma-separated (URL;
                                                 TEMPLATE and templates' queryable
                                                 items always; * = every type); see
                                                 :mod:`registry.index_policy`
--record-buckets       IDNODE_RECORD_BUCKETS     buckets a prefix's records spread over,
                                                 fixed when the store is created (524288:
                                                 ~190 records each at 1亿 a prefix); see
                                                 :mod:`registry.record_keys`
--prefix-shards        IDNODE_PREFIX_SHARDS      Redis Cluster hash slots a prefix spreads
                                                 over, a power of two dividing the record
                                                 buckets, fixed when the store is created
                                                 (1 on one Redis, 16 on a cluster)
--replica-acks         IDNODE_REPLICA_ACKS       replicas of its master that must confirm
                                                 a write (WAIT) before it is acknowledged
                                                 (auto: 1 where every master has one,
                                                 else 0); see :mod:`registry.replication`
--replica-ack-timeout  IDNODE_REPLICA_ACK_TIMEOUT  milliseconds a write waits for them
                                                 (1000); 503 when they fall short
=====================  ========================  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from node.connection_limits import ConnectionLimits, PoolLimits
from registry.enterprise import DEFAULT_LIFETIME
from registry.errors import ConfigError, IdnodeError
from registry.hierarchy import TRAITS, Role, Traits
from registry.identifier import Prefix
from registry.index_policy import IndexPolicy
from registry.limits import Limits
from registry.prefix_entry import node_url_problem
from registry.record_keys import DEFAULT_BUCKETS, MAX_SHARDS, layout_problem
from registry.redis_client import is_cluster_url
from registry.replication import DEFAULT_TIMEOUT_MS
from resolver.cache import CachePolicy
from resolver.upstream import DEFAULT_MAX_BYTES

ENV_PREFIX = "IDNODE_"
# Set by the supervisor of a node with several workers (node.workers) for each worker:
# the listening socket it inherits. Not a setting anybody else gives.
WORKER_FD_ENV = "IDNODE_WORKER_FD"
MAX_WORKERS = 64
APPENDFSYNC_POLICIES = ("always", "everysec", "no")
LOG_LEVELS = ("debug", "info", "warning", "error")
# The prefix shards of a store a node creates on a Redis Cluster: each prefix spreads
# over 16 hash slots, so over every master of a cluster of up to a few (with 3 masters,
# 5 or 6 tags each on average; a master without any is a chance of 0.5%), while a
# listing, search or query asks 16 shards, not hundreds (--prefix-shards to choose).
CLUSTER_PREFIX_SHARDS = 16


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node process needs, validated.

    >>> cfg = NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, env={})
    >>> cfg.name, cfg.public_url
    ('secondary-88.100', 'http://127.0.0.1:8001')
    """

    role: Role
    prefix: Prefix | None
    host: str = "127.0.0.1"
    port: int = 8001
    data_dir: Path | None = None
    redis_url: str | None = None
    admin_secret: str | None = None
    public_url_override: str | None = None
    appendfsync: str = "always"
    log_level: str = "info"
    access_log: bool = False
    limits: Limits = field(default_factory=Limits)
    parent_url: str | None = None
    industry: str = ""
    owner: str = ""
    cache: CachePolicy = field(default_factory=CachePolicy)
    upstream_timeout: float = 5.0
    max_upstream_bytes: int = DEFAULT_MAX_BYTES
    invalidation_interval: float = 1.0
    max_followed_nodes: int = 1024
    allow_private_nodes: bool = False
    change_retention: float = 3600.0
    session_ttl: int = 900
    anonymous_session_ttl: int = 60
    anonymous_sessions_per_minute: int = 60
    rate_limit: float = 0.0
    daily_quota: int = 0
    anonymous_rate: float = 10.0  # per second
    application_rate: float = 5.0  # per minute
    max_pending_applications: int = 1000
    application_lifetime: float = float(DEFAULT_LIFETIME)
    audit_entries: int = 100_000
    secret_hash_cost: int = 14
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    workers: int = 1
    worker_fd: int | None = None  # in a worker: the inherited listening socket
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    redis_pool: PoolLimits = field(default_factory=PoolLimits)
    min_free_disk_bytes: int = 64 * 1024 * 1024
    indexed_types: IndexPolicy = field(default_factory=IndexPolicy)
    record_buckets: int = DEFAULT_BUCKETS
    prefix_shards: int = 1  # CLUSTER_PREFIX_SHARDS by default on a Redis Cluster
    replica_acks: int | None = None  # None: 1 where every master has a replica, else 0
    replica_ack_timeout: int = DEFAULT_TIMEOUT_MS

    @property
    def traits(self) -> Traits:
        return TRAITS[self.role]

    @property
    def name(self) -> str:
        if self.prefix is None:
            return f"{self.role.value}-{self.port}"
        return f"{self.role.value}-{self.prefix.text}"

    @property
    def own_prefix(self) -> Prefix:
        """The prefix of a storing node (every role but recursive has one)."""
        if self.prefix is None:
            raise ConfigError(f"a {self.role.value} node holds no prefix")
        return self.prefix

    @property
    def public_url(self) -> str:
        if self.public_url_override:
            return self.public_url_override.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def embedded_data_dir(self) -> Path:
        return self.data_dir or Path(".idnode") / self.name

    @classmethod
    def from_sources(cls, args: Mapping[str, object | None], env: Mapping[str, str]) -> NodeConfig:
        """Build from parsed options (None = not given) and the environment."""

        def get(name: str) -> str | None:
            value = args.get(name)
            if value is None or value is False:
                value = env.get(ENV_PREFIX + name.upper())
            return None if value is None else str(value)

        def required(name: str) -> str:
            value = get(name)
            if not value:
                raise ConfigError(
                    f"missing setting {name!r}: pass --{name.replace('_', '-')} "
                    f"or set {ENV_PREFIX}{name.upper()}"
                )
            return value

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = (get(name) or default).lower()
            if value not in allowed:
                raise ConfigError(f"setting {name!r} must be one of {', '.join(allowed)}")
            return value

        role = Role(choice("role", tuple(r.value for r in Role), ""))
        traits = TRAITS[role]
        prefix: Prefix | None = None
        if traits.stores:
            given = required("prefix")  # its own message when missing, not wrapped below
            try:
                prefix = Prefix.parse_national(given)
            except IdnodeError as exc:
                raise ConfigError(f"setting 'prefix': {exc.message}") from None
        elif get("prefix"):
            raise ConfigError(f"a {role.value} node holds no prefix: drop setting 'prefix'")
        parent_url = (required("parent_url") if traits.needs_parent else get("parent_url")) or None
        if parent_url and (problem := node_url_problem(parent_url)):
            raise ConfigError(f"setting 'parent_url': {problem}")

        def seconds(name: str, default: float, low: float = 0.0) -> float:
            return _float_setting(name, get(name), default, low=low)

        defaults = CachePolicy()
        tls: dict[str, Path | None] = {}
        for name in ("tls_cert", "tls_key", "tls_ca"):
            raw = get(name)
            if raw and not Path(raw).is_file():
                raise ConfigError(f"setting {name!r}: no such file {raw}")
            tls[name] = Path(raw) if raw else None
        if (tls["tls_cert"] is None) != (tls["tls_key"] is None):
            raise ConfigError("settings 'tls_cert' and 'tls_key' go together: give both or neither")
        data_dir = get("data_dir")
        worker_fd = env.get(WORKER_FD_ENV)
        conn, pool = ConnectionLimits(), PoolLimits()
        record_buckets = _int_setting(
            "record_buckets", get("record_buckets"), DEFAULT_BUCKETS, low=1, high=2**32
        )
        # A prefix of one shard lives on one master of a cluster: there it is spread.
        on_cluster = is_cluster_url(get("redis_url") or "")
        prefix_shards = _int_setting(
            "prefix_shards",
            get("prefix_shards"),
            CLUSTER_PREFIX_SHARDS if on_cluster else 1,
            low=1,
            high=MAX_SHARDS,
        )
        if problem := layout_problem(record_buckets, prefix_shards):
            raise ConfigError(f"settings 'record_buckets' and 'prefix_shards': {problem}")
        return cls(
            role=role,
            prefix=prefix,
            host=get("host") or "127.0.0.1",
            port=_int_setting("port", get("port"), 8001, low=0, high=65535),
            data_dir=Path(data_dir) if data_dir else None,
            redis_url=get("redis_url") or None,
            admin_secret=get("admin_secret") or None,
            public_url_override=get("public_url") or None,
            appendfsync=choice("appendfsync", APPENDFSYNC_POLICIES, "always"),
            log_level=choice("log_level", LOG_LEVELS, "info"),
            access_log=_flag(get("access_log")),
            limits=Limits(
                max_body_bytes=_int_setting(
                    "max_body_bytes", get("max_body_bytes"), Limits().max_body_bytes, low=1024
                )
            ),
            parent_url=parent_url.rstrip("/") if parent_url else None,
            industry=get("industry") or "",
            owner=get("owner") or "",
            cache=CachePolicy(
                max_ttl=seconds("cache_max_ttl", defaults.max_ttl),
                negative_ttl=seconds("negative_ttl", defaults.negative_ttl),
                max_stale=seconds("max_stale", defaults.max_stale),
                local_ttl=seconds("local_cache_ttl", defaults.local_ttl),
            ),
            upstream_timeout=seconds("upstream_timeout", 5.0, low=0.05),
            max_upstream_bytes=_int_setting(
                "max_upstream_bytes", get("max_upstream_bytes"), DEFAULT_MAX_BYTES, low=1024
            ),
            invalidation_interval=seconds("invalidation_interval", 1.0, low=0.05),
            max_followed_nodes=_int_setting(
                "max_followed_nodes", get("max_followed_nodes"), 1024, low=1, high=1_000_000
            ),
            allow_private_nodes=_flag(get("allow_private_nodes")),
            change_retention=seconds("change_retention", 3600.0, low=1.0),
            session_ttl=int(seconds("session_ttl", 900.0, low=1.0)),
            anonymous_session_ttl=_int_setting(
                "anonymous_session_ttl", get("anonymous_session_ttl"), 60, low=1, high=86400
            ),
            anonymous_sessions_per_minute=_int_setting(
                "anonymous_sessions_per_minute",
                get("anonymous_sessions_per_minute"),
                60,
                low=1,
                high=1_000_000,
            ),
            rate_limit=seconds("rate_limit", 0.0),
            daily_quota=_int_setting("daily_quota", get("daily_quota"), 0, low=0),
            anonymous_rate=seconds("anonymous_rate", 10.0),
            application_rate=seconds("application_rate", 5.0),
            max_pending_applications=_int_setting(
                "max_pending_applications", get("max_pending_applications"), 1000, low=0
            ),
            application_lifetime=seconds("application_lifetime", float(DEFAULT_LIFETIME)),
            audit_entries=_int_setting("audit_entries", get("audit_entries"), 100_000, low=10),
            secret_hash_cost=_int_setting(
                "secret_hash_cost", get("secret_hash_cost"), 14, low=4, high=20
            ),
            tls_cert=tls["tls_cert"],
            tls_key=tls["tls_key"],
            tls_ca=tls["tls_ca"],
            workers=_int_setting("workers", get("workers"), 1, low=1, high=MAX_WORKERS),
            worker_fd=_int_setting(WORKER_FD_ENV, worker_fd, 0, low=0) if worker_fd else None,
            connections=ConnectionLimits(
                max_connections=_int_setting(
                    "max_connections", get("max_connections"), conn.max_connections, low=1
                ),
                max_header_bytes=_int_setting(
                    "max_header_bytes", get("max_header_bytes"), conn.max_header_bytes, low=1024
                ),
                header_timeout=seconds("header_timeout", conn.header_timeout, low=0.1),
                body_timeout=seconds("body_timeout", conn.body_timeout, low=0.1),
                keep_alive_timeout=seconds("keep_alive_timeout", conn.keep_alive_timeout, low=0.1),
            ),
            redis_pool=PoolLimits(
                max_connections=_int_setting(
                    "redis_max_connections",
                    get("redis_max_connections"),
                    pool.max_connections,
                    low=1,
                    high=10_000,
                ),
                timeout=seconds("redis_pool_timeout", pool.timeout, low=0.01),
            ),
            min_free_disk_bytes=_int_setting(
                "min_free_disk_bytes", get("min_free_disk_bytes"), 64 * 1024 * 1024, low=0
            ),
            indexed_types=IndexPolicy.parse(get("indexed_types")),
            record_buckets=record_buckets,
            prefix_shards=prefix_shards,
            replica_acks=_replica_acks(get("replica_acks")),
            replica_ack_timeout=_int_setting(
                "replica_ack_timeout",
                get("replica_ack_timeout"),
                DEFAULT_TIMEOUT_MS,
                low=1,
                high=60_000,
            ),
        )


def _flag(raw: str | None) -> bool:
    return (raw or "").lower() in ("1", "true", "yes", "on")


def _replica_acks(raw: str | None) -> int | None:
    """``--replica-acks``: a count, or ``auto`` (None, also when not given)."""
    if raw is None or raw.strip().lower() in ("", "auto"):
        return None
    return _int_setting("replica_acks", raw, 0, low=0, high=16)


def _int_setting(name: str, raw: str | None, default: int, *, low: int, high: int = 2**40) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"setting {name!r} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"setting {name!r} must be between {low} and {high}, got {value}")
    return value


def _float_setting(name: str, raw: str | None, default: float, *, low: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"setting {name!r} must be a number of seconds, got {raw!r}") from None
    if not low <= value <= 10**9:
        raise ConfigError(f"setting {name!r} must be between {low:g} and 1e9, got {raw}")
    return value
