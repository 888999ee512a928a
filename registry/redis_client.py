"""The node's Redis client: redis-py's asyncio client with commands packed by hiredis.

redis-py's asyncio connections pack every command in Python, about a microsecond an
argument; a batch commit carries tens of thousands (record bodies, index members), so
packing alone cost more than the rest of its client work. Its synchronous client packs
with hiredis when hiredis is installed, and so do these connections: the same bytes
(``test_redis_client`` compares them), several times faster.

The pool is bounded and blocking: a request that finds all ``max_connections`` in use
waits up to ``pool_timeout`` seconds for one to come back, instead of failing at once
(redis-py's default pool raised "Too many connections" past 100, so a burst of 500
requests got 503s). A wait that runs out raises redis-py's ConnectionError("No
connection available."), which the store translates like any other Redis failure.

Replies by which Redis refuses writes but still serves reads are parsed into
:class:`WritesRefused`, whose message names the cause, wherever they come from:
``READONLY`` (how the embedded Redis is made to refuse writes while its disk is full:
:mod:`node.embedded_redis`), ``MISCONF`` (it could not write its AOF) and ``OOM``
(``maxmemory`` reached). A script's refused write comes as an ``ERR`` that quotes the
``-READONLY``: :func:`refusal_in` finds it.

A Redis Cluster is named by a URL of its own scheme, ``redis+cluster://`` (TLS:
``rediss+cluster://``), with one or more of its members separated by commas; any member
that answers tells the client of the rest. A cluster has database 0 only, so the URL
names none (or ``/0``); redis-py options go in the query, as in a ``redis://`` URL:

>>> cluster_members("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000")
[('10.0.0.1', 7000), ('10.0.0.2', 7000)]
>>> redis = open_redis("redis://127.0.0.1:6379/0")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, DefaultParser, parse_url
from redis.exceptions import (
    ConnectionError,
    DataError,
    RedisClusterUnreachableError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
)

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# What a store that fails raises: redis-py's errors, and the two by which its cluster
# client says no member answers or no master holds a key's slot (they are not
# RedisErrors). The cluster client's other errors (keys of a transaction or script in
# several slots) are mistakes of the caller, not failures of the store, and are not here.
STORE_ERRORS: tuple[type[Exception], ...] = (
    RedisError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
)

_packed_classes: dict[type[AbstractConnection], type[AbstractConnection]] = {}

_REFUSALS = {
    "READONLY": "the store's disk is full (or it is a read-only replica)",
    "MISCONF": "the store cannot write to its disk",
    "OOM": "the store's memory is full",
}


class WritesRefused(ResponseError):
    """Redis refuses writes (disk or memory full) and goes on serving reads."""

    def __init__(self, reply: str, *, status_code: str | None = None) -> None:
        cause = _REFUSALS.get(status_code or "", "the store refuses writes")
        super().__init__(
            f"{cause}: writes are refused, reads go on (Redis: {status_code} {reply})",
            status_code=status_code,
        )


def refusal_in(exc: BaseException) -> WritesRefused | None:
    """``exc`` as a :class:`WritesRefused` if it is one, or a script error caused by one."""
    if isinstance(exc, WritesRefused):
        return exc
    if isinstance(exc, ResponseError):
        text = str(exc)
        for code in _REFUSALS:
            if f"-{code} " in text:
                return WritesRefused(text.split(f"-{code} ", 1)[1], status_code=code)
    return None


class _Parser(DefaultParser):  # type: ignore[valid-type,misc]
    """redis-py's parser, with the write refusals parsed into :class:`WritesRefused`."""

    EXCEPTION_CLASSES = {
        **DefaultParser.EXCEPTION_CLASSES,
        **dict.fromkeys(_REFUSALS, WritesRefused),
    }


def open_redis(
    url: str, *, max_connections: int = 64, pool_timeout: float = 2.0, **options: Any
) -> Redis:
    """A client of ``url`` on a blocking pool of ``max_connections`` (waits up to
    ``pool_timeout`` s for a free one), whose connections pack with hiredis (TCP, TLS
    and Unix sockets alike: the connection class the URL chose is kept, only packing
    changes); ``options`` are redis-py connection options. A cluster URL gives a
    :func:`cluster client <open_cluster>`."""
    if is_cluster_url(url):
        return open_cluster(
            url, max_connections=max_connections, pool_timeout=pool_timeout, **options
        )
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout, parser_class=_Parser, **options
    )
    pool.connection_class = packed(pool.connection_class)
    redis = Redis.from_pool(pool)
    return redis


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (:data:`CLUSTER_SCHEMES`)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_members(url: str) -> list[tuple[str, int]]:
    """The members a cluster URL names, as (host, port); port 6379 where none is given.
    Raises ValueError for a URL that is not a cluster's or names a database but 0."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {parts.scheme}:// (use redis+cluster://)")
    if parts.path not in ("", "/", "/0"):
        raise ValueError(f"a Redis Cluster has database 0 only, not {parts.path}")
    where = parts.netloc.rpartition("@")[2]
    members = []
    for member in where.split(","):
        host, colon, port = member.strip().rpartition(":")
        if not colon or port.startswith("]"):  # no port (an IPv6 host may hold colons)
            host, port = member.strip(), "6379"
        if not host or not port.isdigit():
            raise ValueError(f"not a host:port in the cluster URL: {member!r}")
        members.append((host.strip("[]"), int(port)))
    return members


def member_url(url: str, host: str, port: int) -> str:
    """The plain ``redis://`` URL of one member of the cluster ``url`` names (same
    credentials and options): how one member is reached alone."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    netloc = f"{credentials}@{address}" if credentials else address
    return urlunsplit((CLUSTER_SCHEMES[parts.scheme], netloc, "", parts.query, ""))


def open_cluster(
    url: str, *, max_connections: int = 64, pool_timeout: float = 2.0, **options: Any
) -> Redis:
    """A Redis Cluster client of the cluster ``url`` names: redis-py's asyncio
    ``RedisCluster`` (it follows MOVED and ASK, and finds a failed-over master's
    replacement), with the same hiredis packing and write-refusal replies as
    :func:`open_redis`. At most ``max_connections`` commands and pipelines are under
    way at once, a call beyond them waiting up to ``pool_timeout`` s for one to end,
    as on a single Redis's blocking pool (redis-py's cluster client would refuse it at
    once, with MaxConnectionsError); see :class:`_WaitingCluster`.

    It is typed as a :class:`~redis.asyncio.Redis`: the node uses the commands both
    clients have, pipelines and transactions whose keys share one hash slot, and Lua
    scripts whose keys do (the store's layout keeps them so: registry.record_keys)."""
    members = cluster_members(url)
    # The credentials and query options, as redis-py reads them from a member's URL.
    given = parse_url(member_url(url, *members[0]))
    skipped = ("host", "port", "db", "connection_class")  # TLS is the scheme's: ssl= below
    settings: dict[str, Any] = {k: v for k, v in given.items() if k not in skipped}
    settings.update(options)
    cluster = _WaitingCluster(
        max_connections,
        pool_timeout,
        startup_nodes=[ClusterNode(host, port) for host, port in members],
        # Room per member beyond the calls under way: a transaction's WATCH holds its
        # connection while the caller reads (registry.store's upgrades), outside them.
        max_connections=2 * max_connections,
        ssl=urlsplit(url).scheme == "rediss+cluster",
        require_full_coverage=False,  # a failing master's slots do not stop the others'
        **settings,
    )
    # Every member's connections (the ones it finds later too) pack with hiredis and
    # parse write refusals: the client's connection settings are shared by its members.
    packing = packed(cast(type[AbstractConnection], cluster.connection_kwargs["connection_class"]))
    cluster.connection_kwargs["connection_class"] = packing
    cluster.connection_kwargs["parser_class"] = _Parser
    for node in cluster.startup_nodes:
        node.connection_class = cast(type[Connection], packing)
        node.connection_kwargs["parser_class"] = _Parser
    return cast(Redis, cluster)


# Whether the running task holds a call of a _WaitingCluster already (a pipeline's
# redirected commands are sent by the client's execute_command: not a second call).
_calling: ContextVar[bool] = ContextVar("calling the cluster", default=False)


class _WaitingCluster(RedisCluster):
    """redis-py's cluster client with at most ``calls`` commands and pipelines under way
    at once; one beyond them waits up to ``timeout`` s for one to end, then fails as
    the single Redis's blocking pool does, with ConnectionError("No connection
    available.") (:func:`registry.store.store_error` says the store is busy)."""

    def __init__(self, calls: int, timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self._calls = asyncio.Semaphore(calls)
        self._timeout = timeout

    @asynccontextmanager
    async def calling(self) -> AsyncIterator[None]:
        """Hold one of the calls while the block runs (at once if the task holds one)."""
        if _calling.get():
            yield
            return
        try:
            await asyncio.wait_for(self._calls.acquire(), self._timeout)
        except TimeoutError:
            raise ConnectionError("No connection available.") from None
        held = _calling.set(True)
        try:
            yield
        finally:
            _calling.reset(held)
            self._calls.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.calling():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused, as redis-py does
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """A pipeline of a :class:`_WaitingCluster`, sent as one of its calls."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        cluster = cast(_WaitingCluster, self.cluster_client)
        async with cluster.calling():
            return await super().execute(raise_on_error, allow_redirections)


def packed(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with hiredis packing (one subclass per class, made once)."""
    made = _packed_classes.get(connection_class)
    if made is None:
        made = type(
            f"Hiredis{connection_class.__name__}",
            (_HiredisPacking, connection_class),
            {},
        )
        _packed_classes[connection_class] = made
    return made


class _HiredisPacking:
    """Mixin: ``pack_command`` as redis-py's own hiredis serializer does it."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # A first argument with spaces is several words ("CONFIG GET"), as redis-py does.
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass  # a bytearray (or an argument Redis cannot take): convert and retry
        plain = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
        try:
            # hiredis's stub types the argument as a 1-tuple; it takes any length.
            return [hiredis.pack_command(plain)]  # type: ignore[arg-type]
        except TypeError as exc:
            raise DataError(str(exc)) from None


def reachability_problem(url: str, timeout: float = 3.0) -> str | None:
    """Why the Redis at ``url`` does not answer PING (None when it does): checked once
    before a node starts, so that a wrong ``--redis-url`` is one line, not a traceback
    out of the node's start-up. Synchronous: nothing else runs yet."""
    from redis import Redis as SyncRedis
    from redis.exceptions import BusyLoadingError, RedisError

    if is_cluster_url(url):
        return _cluster_problem(url, timeout)
    try:
        client = SyncRedis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except (ValueError, RedisError) as exc:  # a URL redis-py cannot read
        return f"not a Redis URL ({exc})"
    try:
        client.ping()
    except BusyLoadingError:
        return None  # it answers, and loads its data: the node's start-up waits for that
    except RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def _cluster_problem(url: str, timeout: float) -> str | None:
    """Why no member the cluster URL names answers as a member of a whole cluster
    (``cluster_state:ok``), or None when one does."""
    from redis import Redis as SyncRedis
    from redis.exceptions import RedisError

    try:
        members = cluster_members(url)
    except ValueError as exc:
        return str(exc)
    problems = []
    for host, port in members:
        client = SyncRedis.from_url(
            member_url(url, host, port), socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            # redis-py parses CLUSTER INFO's name:value lines into a dict of texts.
            info = cast(dict[str, str], client.execute_command("CLUSTER INFO"))  # type: ignore[no-untyped-call]
        except RedisError as exc:
            problems.append(f"{host}:{port}: {exc or type(exc).__name__}")
            continue
        finally:
            client.close()
        if info.get("cluster_state") == "ok":
            return None
        problems.append(f"{host}:{port}: the cluster is not whole (cluster_state is not ok)")
    return "; ".join(problems)


async def master_infos(redis: Redis, section: str) -> list[dict[str, Any]]:
    """``INFO <section>`` of every master of the store: of the one Redis, or of each
    master of a cluster (whose client would otherwise ask one of them)."""
    if isinstance(redis, RedisCluster):
        found = await redis.info(section, target_nodes=RedisCluster.PRIMARIES)
        return list(cast(dict[str, dict[str, Any]], found).values())
    return [await redis.info(section)]
