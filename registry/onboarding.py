"""Enterprise onboarding at a secondary node: applications in Redis, approvals that
allocate a prefix, file it with the top node and issue the enterprise's credentials.

Keys (each application is one JSON string, changed by compare-and-set)::

    ent:app:<id>          STRING  the application (registry.enterprise.Application)
    ent:apps              ZSET    application ids by submission order
    ent:code:<code>       STRING  the id of the application holding a credit code
    ent:next              STRING  counter of allocated enterprise prefixes

An approval runs: allocate (kept on the application) -> file with the top node ->
write ``0.NA/<prefix>`` here with the enterprise identity -> mark approved. Each step can
be retried: filing is an upsert and the prefix stays allocated, so an approval that
failed because the top node was down succeeds later with the same prefix. Until the
last step nothing is visible as approved, and the credentials are returned only then.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from registry.credential import generate_secret
from registry.enterprise import Application, Status, next_enterprise_prefix
from registry.errors import Conflict, NotFound, StoreUnavailable
from registry.identifier import ADMIN_SECRET_INDEX, Prefix
from registry.prefix_entry import PrefixEntry
from registry.registrar import KeyedLocks, Registrar
from registry.value import utc_timestamp

Filer = Callable[[PrefixEntry], Awaitable[bool]]

_CAS_LUA = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


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
    ) -> None:
        self.redis = redis
        self.registrar = registrar
        self.prefix = prefix
        self.node_url = node_url
        self.file = file
        self.clock = clock
        self._locks = KeyedLocks()

    async def apply(self, body: object) -> Application:
        application = Application.from_input(uuid.uuid4().hex[:12], body, now=self.clock())
        code_key = f"ent:code:{application.credit_code}"
        try:
            claimed = await self.redis.set(code_key, application.id, nx=True)
            if not claimed:
                holder = await self.get(cast(bytes, await self.redis.get(code_key)).decode())
                if holder.status is not Status.REJECTED:
                    raise Conflict(
                        f"credit code {application.credit_code} already has application "
                        f"{holder.id} ({holder.status.value})"
                    )
                await self.redis.set(code_key, application.id)  # re-apply after a rejection
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(_app_key(application.id), _encode(application))
            pipe.zadd("ent:apps", {application.id: time.time()})
            await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        return application

    async def get(self, application_id: str) -> Application:
        return (await self._load(application_id))[0]

    async def list(
        self, status: Status | None, page: int, page_size: int
    ) -> tuple[int, list[Application]]:
        try:
            ids = [
                i.decode() for i in cast(list[bytes], await self.redis.zrange("ent:apps", 0, -1))
            ]
            raw = await self.redis.mget([_app_key(i) for i in ids]) if ids else []
        except RedisError as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        apps = [Application.from_json(orjson.loads(r)) for r in raw if r is not None]
        if status is not None:
            apps = [a for a in apps if a.status is status]
        start = page * page_size
        return len(apps), apps[start : start + page_size]

    async def approve(self, application_id: str, secret: str | None = None) -> Approval:
        async with self._locks.hold(application_id):
            application, raw = await self._load(application_id)
            if application.status is not Status.PENDING:
                application.approved(now=self.clock())  # raises Conflict, naming the status
            if not application.prefix:
                allocated = application.allocated(await self._allocate())
                await self._swap(application_id, raw, allocated)
                application, raw = allocated, _encode(allocated)
            # Here the record names the enterprise's own node, if any (a delegation); the
            # top node learns that the prefix is served through this secondary node, which
            # answers for hosted enterprises and refers onwards to their own nodes.
            entry = application.entry(application.node_url)
            filed = await self.file(application.entry(self.node_url))
            issued = secret or generate_secret()
            ttl = self.registrar.limits.default_ttl
            await self.registrar.grant_prefix(entry.prefix, issued, entry.values(self.clock(), ttl))
            approved = application.approved(now=self.clock())
            await self._swap(application_id, raw, approved)
        identity = f"{ADMIN_SECRET_INDEX}:{entry.prefix.record_handle.text}"
        return Approval(approved, identity, issued, filed)

    async def reject(self, application_id: str, reason: str) -> Application:
        async with self._locks.hold(application_id):
            application, raw = await self._load(application_id)
            rejected = application.rejected(reason, now=self.clock())
            await self._swap(application_id, raw, rejected)
            return rejected

    async def _allocate(self) -> str:
        """The next enterprise prefix whose record does not exist yet."""
        while True:
            try:
                counter = int(await self.redis.incr("ent:next"))
            except RedisError as exc:
                raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
            candidate = next_enterprise_prefix(self.prefix.text, counter)
            if await self.registrar.store.load(Prefix(candidate).record_handle) is None:
                return candidate

    async def _load(self, application_id: str) -> tuple[Application, bytes]:
        try:
            raw = await self.redis.get(_app_key(application_id))
        except RedisError as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        if raw is None:
            raise NotFound(f"no application {application_id!r} at this node")
        return Application.from_json(orjson.loads(raw)), cast(bytes, raw)

    async def _swap(self, application_id: str, before: bytes, after: Application) -> None:
        try:
            done = await self.redis.eval(
                _CAS_LUA, 1, _app_key(application_id), before, _encode(after)
            )
        except RedisError as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        if not done:
            raise Conflict(f"application {application_id} changed meanwhile; try again")


def _app_key(application_id: str) -> str:
    return f"ent:app:{application_id}"


def _encode(application: Application) -> bytes:
    return orjson.dumps(application.to_json())
