"""Enterprise onboarding at a secondary node: applications in Redis, approvals that
allocate a prefix, file it with the top node and issue the enterprise's credentials.

Keys (each application is one JSON string, changed by compare-and-set)::

    ent:{ent}:app:<id>          STRING  the application (registry.enterprise.Application)
    ent:{ent}:apps              ZSET    every application id, scored by submission (Unix s)
    ent:{ent}:pending           ZSET    the pending ones, likewise: their count is capped
                                        (``max_pending``) and the oldest expire first
    ent:{ent}:code:<code>       STRING  the id of the application holding a credit code:
                                        the approved one (or one being approved); in
                                        stores written before, any application's, which
                                        only counts once approved
    ent:{ent}:code-apps:<code>  SET     ids of every application with that credit code
    ent:{ent}:next              STRING  counter of allocated enterprise prefixes
    ent:{ent}:layout            STRING  "3" once older stores' data is indexed and named
                                        as above (:meth:`Onboarding.upgrade`)

Every key shares the hash tag ``{ent}``: an application is added by one script over
four of them, and on a Redis Cluster the keys of a script (or a transaction) must map
to one hash slot. Applications are few (an administrator decides each), so one slot,
on one master, holds them all easily. Stores written before the tag named the keys
``ent:app:<id>``, ``ent:apps``, and so on: :meth:`Onboarding.upgrade` moves them once,
key by key (:mod:`registry.key_moves`), before the node serves.

An application is added in one script that first counts ``ent:pending``, so the cap
holds across worker processes. Who may hold a credit code, and why a pending
application must not block anyone, is :mod:`registry.enterprise`'s rule: an applicant
is refused only when the code is approved, and learns nothing about other applications.

An approval runs: allocate (kept on the application) -> claim the credit code -> file
with the top node -> write ``0.NA/<prefix>`` here with the enterprise identity -> mark
approved -> reject the other pending applications with that code. Each step can be
retried: filing is an upsert and the prefix stays allocated, so an approval that failed
because the top node was down succeeds later with the same prefix. Until the last steps
nothing is visible as approved, and the credentials are returned only then.

Pending applications expire after ``lifetime`` seconds: each application and each
listing first expires up to 100 of the oldest overdue ones, and an approval refuses an
overdue application.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import orjson
from redis.asyncio import Redis

from registry.credential import generate_secret
from registry.enterprise import (
    DEFAULT_LIFETIME,
    SUPERSEDED,
    Application,
    CodeClaim,
    Status,
    blocks_application,
    code_claim,
    next_enterprise_prefix,
    overdue,
)
from registry.errors import Conflict, NotFound, StoreUnavailable, TooManyApplications
from registry.identifier import ADMIN_SECRET_INDEX, Prefix
from registry.key_moves import move_key
from registry.prefix_entry import PrefixEntry
from registry.redis_client import STORE_ERRORS
from registry.registrar import KeyedLocks, Registrar
from registry.value import utc_timestamp

Filer = Callable[[PrefixEntry], Awaitable[bool]]
T = TypeVar("T")

_CAS_LUA = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

# KEYS: ent:{ent}:pending, ent:{ent}:app:<id>, ent:{ent}:apps, ent:{ent}:code-apps:<code>
# ARGV: cap (0: none), id, application JSON, submitted (Unix s)
_APPLY_LUA = """
local cap = tonumber(ARGV[1])
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
return 1
"""
# Every key shares one Redis Cluster slot (see above).
TAGGED = "ent:{ent}:"
APPS = TAGGED + "apps"
PENDING = TAGGED + "pending"
NEXT = TAGGED + "next"
LAYOUT = TAGGED + "layout"
OLD_LAYOUT = "ent:layout"  # "2" in stores indexed before the tag
EXPIRE_BATCH = 100  # overdue applications expired per application or listing
FULL_RETRY_AFTER = 3600  # seconds: pending applications wait for the administrator


@dataclass(frozen=True, slots=True)
class Approval:
    """What an approval returns: the application and, once only, the secret."""

    application: Application
    identity: str
    secret: str
    filed: bool


class Onboarding:
    """Applications and approvals for the secondary node holding ``prefix``.

    ``file`` files a prefix entry with the top node (True) or reports that this node
    has no top node to file with (False); it raises when the top node fails.

    >>> onboarding = Onboarding(redis, registrar, Prefix("88.100"),
    ...                         "http://127.0.0.1:8001", file)        # doctest: +SKIP
    >>> app = await onboarding.apply({"name": ..., "creditCode": ...})  # doctest: +SKIP
    >>> (await onboarding.approve(app.id)).application.prefix        # doctest: +SKIP
    '88.100.1'
    """

    def __init__(
        self,
        redis: Redis,
        registrar: Registrar,
        prefix: Prefix,
        node_url: str,
        file: Filer,
        clock: Callable[[], str] = utc_timestamp,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        max_pending: int = 0,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.registrar = registrar
        self.prefix = prefix
        self.node_url = node_url
        self.file = file
        self.clock = clock
        self.lifetime = lifetime  # seconds a pending application lives; 0: for ever
        self.max_pending = max_pending  # 0: no cap
        self.epoch = epoch
        self._locks = KeyedLocks()

    async def apply(self, body: object, *, capped: bool = True) -> Application:
        """Add a pending application. Refused (409) only when its credit code is already
        approved here; refused (429) when ``capped`` and ``max_pending`` applications
        are pending. Other applications with the same code change nothing."""
        application = Application.from_input(uuid.uuid4().hex[:12], body, now=self.clock())
        code = application.credit_code
        await self.expire_overdue()
        holder_id = cast(bytes | None, await self._redis(self.redis.get(_code_key(code))))
        holder = await self._find(holder_id.decode()) if holder_id else None
        if blocks_application(holder[0] if holder else None):
            raise Conflict(f"credit code {code} is already registered at this node")
        cap = self.max_pending if capped else 0
        keys = (PENDING, _app_key(application.id), APPS, _code_apps_key(code))
        args = (cap, application.id, _encode(application), self.epoch())
        if not await self._redis(self.redis.eval(_APPLY_LUA, len(keys), *keys, *args)):
            raise TooManyApplications(
                f"This node holds {cap} pending applications, as many as it accepts, "
                "until its administrator decides some; try again later",
                retry_after=FULL_RETRY_AFTER,
            )
        return application

    async def expire_overdue(self) -> int:
        """Expire up to EXPIRE_BATCH of the oldest overdue pending applications."""
        if self.lifetime <= 0:
            return 0
        cutoff = self.epoch() - self.lifetime
        ids = await self._redis(
            self.redis.zrangebyscore(PENDING, "-inf", cutoff, start=0, num=EXPIRE_BATCH)
        )
        expired = 0
        for raw_id in cast(list[bytes], ids):
            application_id = raw_id.decode()
            async with self._locks.hold(application_id):
                found = await self._find(application_id)
                if found is not None and found[0].status is Status.PENDING:
                    try:
                        await self._swap(
                            application_id,
                            found[1],
                            found[0].expired(self.lifetime, now=self.clock()),
                        )
                    except Conflict:
                        continue  # changed meanwhile: the next sweep looks again
                    expired += 1
                await self._redis(self.redis.zrem(PENDING, application_id))
        return expired

    async def upgrade(self) -> int:
        """Bring a store written by an older release to this layout, once per store
        (``ent:{ent}:layout``), before the node serves: move its keys to their tagged
        names (:meth:`_move_untagged`), then index applications stored before
        ``pending`` and ``code-apps`` existed (the old ``ent:layout`` not "2"). Returns
        how many applications were moved or indexed. Idempotent: an interrupted upgrade
        (or one of another worker at the same time) is finished by the next."""
        if await self._redis(self.redis.get(LAYOUT)) == b"3":
            return 0
        indexed = await self._redis(self.redis.get(OLD_LAYOUT)) == b"2"
        moved = await self._move_untagged()
        count = moved if indexed else max(moved, await self._index())
        # The old layout key goes first: if the upgrade stops in between, the next one
        # indexes again, which adds nothing twice.
        await self._redis(self.redis.delete(OLD_LAYOUT))
        await self._redis(self.redis.set(LAYOUT, "3"))
        return count

    async def _move_untagged(self) -> int:
        """Move every key of a store written before the ``{ent}`` tag to its tagged
        name; how many applications moved. The application ids come from the old
        ``ent:apps``, which moves last, so an interrupted move still finds them all;
        an application's credit code (from its body, at either name) names its two
        code keys."""
        ids = cast(list[bytes], await self._redis(self.redis.zrange(untagged(APPS), 0, -1)))
        moved = 0
        for raw_id in ids:
            key = _app_key(raw_id.decode())
            body = await self._redis(self.redis.get(untagged(key)))
            moved += await self._redis(move_key(self.redis, untagged(key), key))
            body = body or await self._redis(self.redis.get(key))
            if body is None:
                continue
            code = Application.from_json(orjson.loads(body)).credit_code
            for code_key in (_code_key(code), _code_apps_key(code)):
                await self._redis(move_key(self.redis, untagged(code_key), code_key))
        for key in (PENDING, NEXT, APPS):
            await self._redis(move_key(self.redis, untagged(key), key))
        return moved

    async def _index(self) -> int:
        """Index applications stored before ``pending`` and ``code-apps`` existed."""
        scored = cast(
            list[tuple[bytes, float]],
            await self._redis(self.redis.zrange(APPS, 0, -1, withscores=True)),
        )
        if not scored:
            return 0
        raw = await self._redis(self.redis.mget([_app_key(i.decode()) for i, _ in scored]))
        pipe = self.redis.pipeline(transaction=True)
        for (raw_id, score), body in zip(scored, raw, strict=True):
            if body is None:
                continue
            application = Application.from_json(orjson.loads(body))
            pipe.sadd(_code_apps_key(application.credit_code), raw_id)
            if application.status is Status.PENDING:
                pipe.zadd(PENDING, {raw_id: score})
        await self._redis(pipe.execute())
        return len(scored)

    async def get(self, application_id: str) -> Application:
        return (await self._load(application_id))[0]

    async def list(
        self, status: Status | None, page: int, page_size: int, credit_code: str | None = None
    ) -> tuple[int, list[Application]]:
        await self.expire_overdue()
        try:
            ids = [i.decode() for i in cast(list[bytes], await self.redis.zrange(APPS, 0, -1))]
            raw = await self.redis.mget([_app_key(i) for i in ids]) if ids else []
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        apps = [Application.from_json(orjson.loads(r)) for r in raw if r is not None]
        if status is not None:
            apps = [a for a in apps if a.status is status]
        if credit_code is not None:
            apps = [a for a in apps if a.credit_code == credit_code]
        start = page * page_size
        return len(apps), apps[start : start + page_size]

    async def approve(self, application_id: str, secret: str | None = None) -> Approval:
        async with self._locks.hold(application_id):
            application, raw = await self._load(application_id)
            if application.status is not Status.PENDING:
                application.approved(now=self.clock())  # raises Conflict, naming the status
            if await self._overdue(application_id):
                expired = application.expired(self.lifetime, now=self.clock())
                await self._swap(application_id, raw, expired)
                await self._redis(self.redis.zrem(PENDING, application_id))
                expired.approved(now=self.clock())  # raises Conflict: already expired
            code = application.credit_code
            async with self._locks.hold(f"code:{code}"):
                # Checked before allocating, so a refused approval uses up no prefix;
                # claimed after, so that a concurrent approval elsewhere sees this one
                # as in approval (pending with a prefix) and stops.
                await self._check_code(application)
                if not application.prefix:
                    allocated = application.allocated(await self._allocate())
                    await self._swap(application_id, raw, allocated)
                    application, raw = allocated, _encode(allocated)
                await self._claim_code(application)
                # Here the record names the enterprise's own node, if any (a
                # delegation); the top node learns that the prefix is served through
                # this secondary node, which answers for hosted enterprises and refers
                # onwards to their own nodes.
                entry = application.entry(application.node_url)
                filed = await self.file(application.entry(self.node_url))
                issued = secret or generate_secret()
                ttl = self.registrar.limits.default_ttl
                await self.registrar.grant_prefix(
                    entry.prefix, issued, entry.values(self.clock(), ttl)
                )
                approved = application.approved(now=self.clock())
                await self._swap(application_id, raw, approved)
            await self._redis(self.redis.zrem(PENDING, application_id))
        await self._supersede(approved)
        identity = f"{ADMIN_SECRET_INDEX}:{entry.prefix.record_handle.text}"
        return Approval(approved, identity, issued, filed)

    async def reject(self, application_id: str, reason: str) -> Application:
        async with self._locks.hold(application_id):
            application, raw = await self._load(application_id)
            rejected = application.rejected(reason, now=self.clock())
            await self._swap(application_id, raw, rejected)
            await self._redis(self.redis.zrem(PENDING, application_id))
            return rejected

    async def _check_code(self, application: Application) -> None:
        """Raise Conflict when another application holds the credit code."""
        key = _code_key(application.credit_code)
        holder_id = cast(bytes | None, await self._redis(self.redis.get(key)))
        holder = await self._find(holder_id.decode()) if holder_id else None
        _refuse(code_claim(application, holder[0] if holder else None), holder)

    async def _claim_code(self, application: Application) -> None:
        """Make ``application`` the holder of its credit code, or raise Conflict."""
        key = _code_key(application.credit_code)
        for _ in range(8):
            holder_id = cast(bytes | None, await self._redis(self.redis.get(key)))
            if holder_id is None:
                if await self._redis(self.redis.set(key, application.id, nx=True)):
                    return
                continue
            holder = await self._find(holder_id.decode())
            claim = code_claim(application, holder[0]) if holder else CodeClaim.STALE
            _refuse(claim, holder)
            if claim is CodeClaim.OURS:
                return
            if await self._redis(self.redis.eval(_CAS_LUA, 1, key, holder_id, application.id)):
                return  # taken over from a decided application, or a dangling id
        raise Conflict(f"credit code {application.credit_code} is being claimed concurrently")

    async def _supersede(self, approved: Application) -> None:
        """Reject the other pending applications with the approved one's credit code."""
        code_apps = _code_apps_key(approved.credit_code)
        members = cast(set[bytes], await self._redis(self.redis.smembers(code_apps)))
        for other_id in sorted(m.decode() for m in members if m.decode() != approved.id):
            async with self._locks.hold(other_id):
                found = await self._find(other_id)
                if found is None or found[0].status is not Status.PENDING:
                    continue
                try:
                    rejected = found[0].rejected(SUPERSEDED, now=self.clock())
                    await self._swap(other_id, found[1], rejected)
                except Conflict:
                    continue  # decided meanwhile
                await self._redis(self.redis.zrem(PENDING, other_id))

    async def _overdue(self, application_id: str) -> bool:
        submitted = await self._redis(self.redis.zscore(APPS, application_id))
        return submitted is not None and overdue(float(submitted), self.epoch(), self.lifetime)

    async def _allocate(self) -> str:
        """The next enterprise prefix whose record does not exist yet."""
        while True:
            try:
                counter = int(await self.redis.incr(NEXT))
            except STORE_ERRORS as exc:
                raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
            candidate = next_enterprise_prefix(self.prefix.text, counter)
            allocated = Prefix.parse_national(candidate)  # what we allocate is national
            if await self.registrar.store.load(allocated.record_handle) is None:
                return candidate

    async def _load(self, application_id: str) -> tuple[Application, bytes]:
        found = await self._find(application_id)
        if found is None:
            raise NotFound(f"no application {application_id!r} at this node")
        return found

    async def _find(self, application_id: str) -> tuple[Application, bytes] | None:
        raw = await self._redis(self.redis.get(_app_key(application_id)))
        if raw is None:
            return None
        return Application.from_json(orjson.loads(raw)), cast(bytes, raw)

    async def _redis(self, call: Awaitable[T]) -> T:
        """Await a Redis call, translating its failure."""
        try:
            return await call
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc

    async def _swap(self, application_id: str, before: bytes, after: Application) -> None:
        try:
            done = await self.redis.eval(
                _CAS_LUA, 1, _app_key(application_id), before, _encode(after)
            )
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        if not done:
            raise Conflict(f"application {application_id} changed meanwhile; try again")


def _refuse(claim: CodeClaim, holder: tuple[Application, bytes] | None) -> None:
    """Raise the Conflict an approval meets at a credit code held by ``holder``. Only
    the node administrator approves, so the message may name the other application."""
    if claim.proceeds or holder is None:
        return
    other = holder[0]
    if claim is CodeClaim.REGISTERED:
        raise Conflict(
            f"credit code {other.credit_code} is already registered: application "
            f"{other.id}, prefix {other.prefix}"
        )
    raise Conflict(
        f"application {other.id} with credit code {other.credit_code} is being approved "
        f"(prefix {other.prefix}); approve or reject it first"
    )


def _app_key(application_id: str) -> str:
    return f"{TAGGED}app:{application_id}"


def _code_key(credit_code: str) -> str:
    return f"{TAGGED}code:{credit_code}"


def _code_apps_key(credit_code: str) -> str:
    return f"{TAGGED}code-apps:{credit_code}"


def untagged(key: str) -> str:
    """The name ``key`` had in stores written before the ``{ent}`` tag. Pure.

    >>> untagged(_code_apps_key("91350100M000100Y43")), untagged(APPS)
    ('ent:code-apps:91350100M000100Y43', 'ent:apps')
    """
    return "ent:" + key.removeprefix(TAGGED)


def _encode(application: Application) -> bytes:
    return orjson.dumps(application.to_json())
