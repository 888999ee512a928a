"""The FastAPI app factory: one app for every role, resources tied to its lifespan.

What a node runs follows from its role's traits (:data:`registry.hierarchy.TRAITS`):
every node has a store (a recursive node's holds nothing but its cache); recursive roles
get a resolver and a change-feed follower; the top node a prefix registry; secondary
nodes onboarding and a registration with their top node.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError
from starlette.types import Receive, Scope, Send

from node import (
    audit,
    changes,
    enterprises,
    handles,
    health,
    index_page,
    kpis,
    management,
    prefixes,
    query,
    search,
    sessions,
    status_page,
    templates,
    trace,
)
from node.address_limits import AddressLimits
from node.anonymous_limits import AnonymousGate, AnonymousLimits
from node.answerer import Answerer
from node.audit_recorder import AuditRecorder
from node.background import stop_all
from node.body_limit import BodyLimit
from node.config import NodeConfig
from node.daily_kpis import Kpis
from node.docs import install_docs
from node.embedded_redis import EmbeddedRedis
from node.fast_path import FastResolutions
from node.metrics import NodeMetrics, RequestMetrics
from node.parent import ParentLink, own_entry
from node.path_guard import PathGuard
from node.responses import SECURITY_SCHEMES, install_error_handlers
from node.schemas import describe
from node.startup import LoadingProgress, Startup
from node.state import NodeState, Registration
from registry.admission import DailyQuota, TokenBucket
from registry.audit import AuditLog
from registry.authority import Authority
from registry.delegation import Delegations
from registry.enterprise import Status
from registry.errors import IdnodeError
from registry.hierarchy import Traits
from registry.identifier import ADMIN_SECRET_INDEX
from registry.onboarding import Onboarding
from registry.paged_index import COMPACT_PAGES, page_encoding_problems
from registry.prefix_entry import PrefixEntry, PrefixKind
from registry.prefix_registry import PrefixRegistry
from registry.record_keys import COMPACT_BUCKETS, bucket_encoding_problems
from registry.redis_client import STORE_ERRORS, master_infos, open_redis
from registry.registrar import Registrar
from registry.replication import ReplicaAcks, replicas_everywhere
from registry.session import SessionStore
from registry.store import HandleStore, store_error
from registry.template import Template, TemplateRef
from registry.template_store import TemplateStore
from resolver.address_guard import GuardedResolver
from resolver.answer_cache import AnswerCache
from resolver.invalidation import Follower
from resolver.recursion import Resolver
from resolver.target import TargetPolicy
from resolver.template_source import TemplateSource
from resolver.upstream import Credentials, Upstream

log = logging.getLogger("idnode.node")
CHALLENGE_TTL = 60  # seconds a login nonce may be signed in
# Calls to other nodes in flight at once, and to any one node (host and port): a slow
# or hostile node holds at most a quarter of the pool, and its answers at most that many
# times --max-upstream-bytes of memory.
UPSTREAM_CONNECTIONS = 256
UPSTREAM_CONNECTIONS_PER_NODE = 64
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)
LOAD_POLL = 0.25  # seconds between looks at a loading store
LOAD_LOG_EVERY = 5.0  # seconds between log lines on its progress

DESCRIPTION = """
An industrial-internet identifier resolution node (工业互联网标识解析节点).

* **Handle REST API** (`/api/handles`, `/hrls/handles`): compatible with Handle.net
  clients such as pyhandle. Writes use HTTP Basic auth with username
  `300:0.NA/<prefix>` (percent-encoded by clients: `300%3A0.NA%2F88.100`).
* **Management API**: batch registration; on the top node the prefix registry; on
  secondary nodes enterprise onboarding; on storing nodes the change feed.
* Resolutions served from a cache say so: `X-Cache: HIT|MISS|STALE`, `Age`.
* Errors are JSON: `{"responseCode": N, "handle": H, "message": "..."}`.
"""


async def _failed_start(app: FastAPI, config: NodeConfig, error: IdnodeError) -> None:
    """Record a start-up that failed for a reason with a clear message, and log it once:
    no traceback, which would only bury the message."""
    app.state.startup.failed(error)
    log.error("node start-up failed", extra={"node": config.name, "error": error.message})


def create_app(config: NodeConfig) -> FastAPI:
    """Build a node app; Redis (embedded or given) is opened and closed in its lifespan.

    >>> app = create_app(NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, {}))
    >>> app.title
    'idnode secondary-88.100'
    """
    traits = config.traits

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        url = config.redis_url
        if url is None:
            embedded = EmbeddedRedis(
                config.embedded_data_dir,
                appendfsync=config.appendfsync,
                min_free_disk_bytes=config.min_free_disk_bytes,
                avoid_ports=(config.port,),  # bound only once the lifespan has started
            )
            # Not in a worker thread: Linux ties the server's parent-death signal to the
            # thread that starts it, and executor threads may end before the node does.
            # It returns once the server accepts connections, loaded or still loading.
            try:
                url = embedded.start()
            except IdnodeError as exc:
                await _failed_start(app, config, exc)
                yield  # serving only "failed to start" until the server stops
                return
            embedded.supervise()  # restarted when it exits; writes refused on a full disk
            log.info("embedded redis started", extra={"redis_url": url, "pid": embedded.pid})
        redis = open_redis(
            url,
            max_connections=config.redis_pool.max_connections,
            pool_timeout=config.redis_pool.timeout,
            socket_connect_timeout=5,
            socket_timeout=10,
        )
        # Calls to other nodes verify their certificates: against --tls-ca when given,
        # else the system's CAs (aiohttp's default).
        trust = ssl.create_default_context(cafile=config.tls_ca) if config.tls_ca else True
        # Host names are checked where they are connected to (resolver.address_guard).
        guard = GuardedResolver(TargetPolicy(allow_private=config.allow_private_nodes))
        connector = aiohttp.TCPConnector(
            limit=UPSTREAM_CONNECTIONS,
            limit_per_host=UPSTREAM_CONNECTIONS_PER_NODE,
            ttl_dns_cache=300,
            ssl=trust,
            resolver=guard,
        )
        session = aiohttp.ClientSession(connector=connector)
        tasks: list[asyncio.Task[None]] = []
        waiting = asyncio.Event()
        starting = asyncio.create_task(
            _start(app, config, redis, session, tasks, waiting, patient=embedded is not None)
        )
        try:
            # A loaded store: the node is built before it serves, as it always was. A
            # store still loading (minutes for a large one): the node serves at once,
            # answering 503 "loading" until the task has built it (node.startup).
            seen = asyncio.create_task(waiting.wait())
            await asyncio.wait({starting, seen}, return_when=asyncio.FIRST_COMPLETED)
            seen.cancel()
            if starting.done() and isinstance(error := starting.exception(), IdnodeError):
                # A condition we can name (a setting, an unreachable store): told in one
                # line; the server stops at its next tick (`idnode serve` exits 1).
                await _failed_start(app, config, error)
            elif starting.done():
                starting.result()  # anything else ends the node here, with its traceback
            else:
                log.info("serving while the store loads", extra={"node": config.name})
            yield
        finally:
            await stop_all([starting])
            await stop_all(tasks)
            if (built := getattr(app.state, "node", None)) is not None:
                await built.store.close()  # index builds resume at the next start
            await session.close()
            await redis.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    app = NodeApi(
        title=f"idnode {config.name}",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # node.docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    # Before the node is built: /healthz and /metrics answer, every other route says
    # the node is starting (node.startup).
    app.state.config = config
    app.state.metrics = NodeMetrics()
    app.state.startup = Startup()
    install_error_handlers(app)
    install_docs(app)
    _declare_security(app, traits, config.prefix.text if config.prefix else None)
    app.include_router(handles.router)
    app.include_router(management.router)
    app.include_router(trace.router)
    if traits.stores:
        app.include_router(changes.router)
        app.include_router(sessions.router)
        app.include_router(audit.router)
        app.include_router(templates.router)
        app.include_router(query.router)
        app.include_router(search.router)
    if traits.keeps_registry:
        app.include_router(prefixes.router)
        app.include_router(status_page.router)
    else:  # the hierarchy's status page is the top node's; this node shows its own view
        app.include_router(index_page.own_view)
    if traits.onboards:
        app.include_router(enterprises.router)
    app.include_router(kpis.router)
    app.include_router(health.router)
    app.include_router(index_page.router)
    app.add_middleware(AuditRecorder)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(PathGuard)
    app.add_middleware(
        AnonymousGate, limits=AnonymousLimits.from_config(config), parent_url=config.parent_url
    )
    app.add_middleware(AddressLimits)  # refuse over-limit clients before any work
    app.add_middleware(RequestMetrics)  # outermost: counts every answer, 429s included
    return app


class NodeApi(FastAPI):
    """The node's FastAPI app, with plain resolutions answered before anything else
    (:mod:`node.fast_path`): the hot path skips routing and the middleware stack."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.fast = FastResolutions()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.fast.answer(self.state._state.get("node"), scope, send):
            await super().__call__(scope, receive, send)


def _declare_security(app: FastAPI, traits: Traits, own: str | None) -> None:
    """Add the Basic and Bearer schemes that write operations name to the schema,
    document invalid parameters as the 400 they are answered with, and describe the
    bodies and the role's operations (:mod:`node.schemas`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    # Invalid parameters are answered 400 with responseCode 202, as in
                    # the Handle API, not with FastAPI's 422.
                    responses = operation.get("responses", {})
                    if responses.pop("422", None) is not None:
                        responses.setdefault(
                            "400", {"description": "Invalid parameter or body (202)"}
                        )
            # ...so FastAPI's validation error bodies are never answered.
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"].get("schemas", {}).pop(unused, None)
            app.openapi_schema = describe(schema, traits, own)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _start(
    app: FastAPI,
    config: NodeConfig,
    redis: Redis,
    session: aiohttp.ClientSession,
    tasks: list[asyncio.Task[None]],
    waiting: asyncio.Event,
    *,
    patient: bool,
) -> None:
    """Wait for the store to be loaded (``waiting`` is set if it is not at once),
    then build the node and start its background work (into ``tasks``); the node is
    ready, and ``app.state.node`` set, only at the end. A failure is recorded in the
    app's :class:`~node.startup.Startup` (``idnode serve`` then exits) and raised."""
    startup: Startup = app.state.startup
    try:
        await _wait_loaded(config, redis, startup, waiting, patient=patient)
        state = await _build_state(config, redis, session, app.state.metrics, startup)
        if state.kpis is not None:
            tasks.append(asyncio.create_task(state.kpis.run()))
        if config.traits.stores:  # other processes' writes reach the in-process copies
            tasks.append(asyncio.create_task(state.store.follow_changes()))
        if state.follower is not None:
            await state.follower.load()
            tasks.append(asyncio.create_task(state.follower.run()))
        if state.registration.needed:
            link = ParentLink(state.upstream, config.parent_url, _credentials(config))
            entry = own_entry(config.own_prefix, config.public_url, config.industry, config.owner)
            tasks.append(asyncio.create_task(link.keep_registering(entry, state.registration)))
        # What start-up built lives as long as the node: keep it out of every later
        # collection, so a full collection scans only what requests left behind
        # (tail latency), and collect the young generation less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    except Exception as exc:
        startup.failed(exc)
        if waiting.is_set():  # the lifespan has returned: no one else will tell
            log.error(
                "node start-up failed",
                extra={"node": config.name, "error": getattr(exc, "message", str(exc))},
            )
        raise
    app.state.node = state
    startup.ready()
    log.info("node ready", extra={"node": config.name, "url": config.public_url})


async def _wait_loaded(
    config: NodeConfig, redis: Redis, startup: Startup, waiting: asyncio.Event, *, patient: bool
) -> None:
    """Poll the store until it has loaded its data, however long that takes (``waiting``
    set meanwhile), logging the progress every :data:`LOAD_LOG_EVERY` seconds. A store
    that does not answer at all fails the start-up, unless it is ``patient`` (the
    embedded one, restarted by its supervisor) or was seen answering before."""
    next_log = 0.0
    while True:
        try:
            infos = await master_infos(redis, "persistence")  # each master's, on a cluster
            progress = LoadingProgress.of_all([LoadingProgress.from_info(i) for i in infos])
            if not progress.loading:
                await redis.ping()  # INFO may answer before the load has begun
                startup.loading(progress)
                return
            message, fields = progress.message, progress.fields()
        except BusyLoadingError:
            progress = LoadingProgress(loading=True)
            message, fields = progress.message, progress.fields()
        except STORE_ERRORS as exc:
            if not (patient or waiting.is_set()):
                raise store_error(exc) from exc
            progress = LoadingProgress(loading=False)  # not known: STARTING
            message, fields = "waiting for the store", {"error": str(exc)}
        startup.loading(progress)
        waiting.set()
        if time.monotonic() >= next_log:
            next_log = time.monotonic() + LOAD_LOG_EVERY
            log.info(message, extra={"node": config.name, **fields})
        await asyncio.sleep(LOAD_POLL)


async def _replica_acks(config: NodeConfig, redis: Redis) -> ReplicaAcks:
    """What each commit waits for (``--replica-acks``): as configured, or, by default,
    one replica where every master of the store has one at start-up (else none)."""
    wanted = config.replica_acks
    if wanted is None:
        try:
            wanted = 1 if await replicas_everywhere(redis) > 0 else 0
        except STORE_ERRORS as exc:  # INFO may be refused (managed Redis): wait for none
            log.warning("redis replicas not readable", extra={"error": str(exc)})
            wanted = 0
    if wanted:
        log.info("writes wait for replicas", extra={"replicas": wanted})
    return ReplicaAcks(wanted, config.replica_ack_timeout)


async def _check_bucket_encoding(redis: Redis) -> None:
    """Warn when an external Redis would keep record buckets or index pages out of the
    compact encoding (its hash- and zset-max-ziplist-* settings); the node works
    either way."""
    settings: dict[str, str] = {}
    try:
        for name in [*COMPACT_BUCKETS, *COMPACT_PAGES]:
            found = cast(dict[bytes | str, bytes | str], await redis.config_get(name))
            for key, value in found.items():
                settings[_text(key)] = _text(value)
    except STORE_ERRORS as exc:  # CONFIG may be renamed or refused (managed Redis)
        log.warning("redis settings not readable", extra={"error": str(exc)})
        return
    for problem in bucket_encoding_problems(settings):
        log.warning(
            "redis keeps record buckets uncompact: about 60 B more per identifier",
            extra={"problem": problem, "wanted": COMPACT_BUCKETS},
        )
    for problem in page_encoding_problems(settings):
        log.warning(
            "redis keeps index pages uncompact: about 100 B more per index entry",
            extra={"problem": problem, "wanted": COMPACT_PAGES},
        )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def _build_state(
    config: NodeConfig,
    redis: Redis,
    session: aiohttp.ClientSession,
    metrics: NodeMetrics,
    startup: Startup | None = None,
) -> NodeState:
    traits = config.traits
    indexes = config.indexed_types
    template_store = None
    if traits.stores:
        template_store = TemplateStore(redis)
        # The queryable items of the templates kept here are indexed from the start;
        # those of other nodes' templates once a write or query reads them.
        indexes = indexes.with_types(await template_store.queryable_types())
    store = HandleStore(
        redis,
        replica_acks=await _replica_acks(config, redis),
        change_retention_ms=int(config.change_retention * 1000),
        local_ttl=config.cache.local_ttl if traits.stores else 0.0,
        indexes=indexes,
        record_buckets=config.record_buckets,
        prefix_shards=config.prefix_shards,
        log=lambda message, extra: log.info(message, extra=extra),
    )
    if traits.stores and config.redis_url is not None:
        await _check_bucket_encoding(redis)
    converted = await store.upgrade(progress=startup.upgrading if startup else None)
    if converted:
        log.info("store layout upgraded", extra={"records": converted})
    sessions = SessionStore(
        redis,
        ttl=config.session_ttl,
        challenge_ttl=CHALLENGE_TTL,
        pending_ttl=config.anonymous_session_ttl,
        pending_per_minute=config.anonymous_sessions_per_minute,
    )
    # Sessions of a store written before their keys shared a hash slot: moved once.
    if moved := await sessions.upgrade(progress=startup.upgrading if startup else None):
        log.info("sessions moved to their hash slot", extra={"keys": moved})
    if startup is not None:
        startup.building()
    # Every call to another node goes through this policy, whoever named the node.
    policy = TargetPolicy(allow_private=config.allow_private_nodes)
    upstream = Upstream(
        session,
        timeout=config.upstream_timeout,
        policy=policy,
        max_bytes=config.max_upstream_bytes,
    )
    own = config.prefix
    delegations = Delegations(store, own, config.public_url) if own is not None else None
    registrar = Registrar(
        store,
        Authority((own,) if own is not None else ()),
        config.limits,
        delegations=delegations,
        parent_url=config.parent_url,
        sessions=sessions,
        secret_cost=config.secret_hash_cost,
    )
    if own is not None:
        generated = await registrar.ensure_prefix_admin(own, config.admin_secret)
        if generated is not None:
            _announce_secret(config, generated)
    resolver = follower = None
    if traits.recursive:
        cache = AnswerCache(redis, config.cache)
        follower = Follower(
            redis,
            cache,
            upstream,
            interval=config.invalidation_interval,
            max_nodes=config.max_followed_nodes,
        )
        resolver = Resolver(cache, upstream, follow=follower.follow, policy=policy)
    if template_store is not None:
        locate = templates.template_locator(registrar, config.parent_url)
        source = TemplateSource(template_store, locate, upstream).find

        async def find(ref: TemplateRef) -> Template:
            template = await source(ref)
            store.learn(template.queryable_types)  # indexed from now on
            return template

        registrar.templates = find
    answerer = Answerer(traits, own, store, delegations, resolver, config.parent_url)
    state = NodeState(
        config,
        store,
        registrar,
        answerer,
        upstream,
        follower=follower,
        audit=AuditLog(redis, max_entries=config.audit_entries) if traits.stores else None,
        rate=TokenBucket(config.rate_limit, 2 * config.rate_limit) if config.rate_limit else None,
        quota=DailyQuota(redis, config.daily_quota) if config.daily_quota else None,
        kpis=Kpis(redis),
        templates=template_store,
        metrics=metrics,
    )
    if traits.keeps_registry:
        state.registry = PrefixRegistry(registrar)
        await state.registry.describe_self(
            PrefixEntry(
                config.own_prefix,
                node_url=config.public_url,
                kind=PrefixKind.TOP,
                owner=config.owner,
            )
        )
    if traits.onboards:
        link = ParentLink(upstream, config.parent_url, _credentials(config))
        state.onboarding = Onboarding(
            redis,
            registrar,
            config.own_prefix,
            config.public_url,
            link.file,
            lifetime=config.application_lifetime,
            max_pending=config.max_pending_applications,
        )
        await state.onboarding.upgrade()
        approved, _ = await state.onboarding.list(Status.APPROVED, 0, 1)
        state.metrics.enterprises.set(approved)
    # An enterprise node does not register: the secondary node that approved it
    # delegates to it (SPEC §3).
    state.registration = Registration(needed=traits.registers and config.parent_url is not None)
    return state


def _credentials(config: NodeConfig) -> Credentials | None:
    if config.prefix is None or not config.admin_secret:
        return None
    return Credentials(f"{ADMIN_SECRET_INDEX}:0.NA/{config.prefix.text}", config.admin_secret)


def _announce_secret(config: NodeConfig, secret: str) -> None:
    """Show a generated admin secret once; only its hash is stored."""
    identity = f"{ADMIN_SECRET_INDEX}:0.NA/{config.own_prefix.text}"
    print(
        f"Generated admin secret for {identity}: {secret}\n"
        "It is shown only this once; pass --admin-secret or IDNODE_ADMIN_SECRET to set one.",
        file=sys.stderr,
        flush=True,
    )
