"""Sessions (Handle sessions and Bearer tokens), login challenges and secret rotation,
kept in Redis.

::

    sess:{sess}:t:<sha-256 of token>  STRING  "<nonce>\n<identity text>" (:func:`encode`),
                                              expires with the session; identity empty
                                              until it is authenticated; ~100 bytes
    sess:{sess}:i:<identity key>      SET     its sessions' token keys (to revoke them all)
    sess:{sess}:layout                STRING  "2" once the sessions of older stores have
                                              their names above (:meth:`SessionStore.upgrade`)
    sess:a:<client address>           STRING  sessions opened anonymously from that address
                                              in the current minute (a counter, see below)
    sess:n:<nonce>                    STRING  identity a login challenge was issued to
                                              (single use)
    sess:r:<identity key>             STRING  the previous secret's hash, during a rotation

A session's token key and its identity's set change together, in one transaction, so
that ending every session of an identity finds them all. On a Redis Cluster the keys of
a transaction must be in one hash slot: the hash tag ``{sess}`` puts every token and
every identity's set in the same slot, so one master holds them all. Sessions are few
and small beside the records (one GET per request that names a token), so that master
carries them easily. The other keys are read and written alone and keep untagged names,
spread over the cluster. Stores written before the tag (``sess:t:...``, ``sess:i:...``)
are moved once at start-up, each key with the time it had left (:mod:`registry.key_moves`).

A session's token is also its Handle ``sessionId``: ``Authorization: Bearer <token>``
and ``Authorization: Handle sessionId="<token>"`` name the same session. Only hashes of
tokens are stored, so a copy of the store does not yield sessions. A token is 256 random
bits; it is valid until it expires or is revoked, whichever comes first, and revocation
takes effect on the next request (every use is one GET).

A session opened without credentials (Handle's ``POST /api/sessions``, to be
authenticated by answering its nonce) lives ``pending_ttl`` seconds only, and one client
address may open at most ``pending_per_minute`` of them a minute (a window that starts
with the first), so anonymous callers cannot fill the store. Authenticating it gives it
the full ``ttl``. Both limits are node settings (:mod:`node.config`).

The nonce is single use: answering it, rightly or wrongly, replaces it (a compare-and-set
under WATCH), so a captured answer cannot be replayed on the same session, and a
signature for one session's nonce is worthless for another's.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import WatchError

from registry import authorization, keyspace
from registry.errors import TooManyRequests
from registry.identifier import Identity
from registry.key_moves import move_key
from registry.pubkey import new_nonce
from registry.record import HandleRecord
from registry.store import UpgradeProgress, translated


def changed_identities(before: HandleRecord | None, after: HandleRecord | None) -> list[Identity]:
    """Identities (key values: HS_SECKEY, HS_PUBKEY) that a write removes or replaces;
    their sessions must end, since what they logged in with is gone. Pure.

    A rotation (:meth:`Registrar.rotate_secret`) replaces a secret too, but keeps
    sessions on purpose; it writes through a path that does not call this.
    """
    if before is None:
        return []
    kept = {v.index: v for v in after.values} if after is not None else {}
    return [
        Identity(v.index, before.handle)
        for v in before.values
        if v.is_key and kept.get(v.index) != v
    ]


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    identity: Identity
    expires_in: int
    nonce: str = ""


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a session holds: its current nonce and, once authenticated, its identity.

    >>> decode(encode(SessionState("bm9uY2U=", None)))
    SessionState(nonce='bm9uY2U=', identity=None)
    """

    nonce: str
    identity: Identity | None


def encode(state: SessionState) -> bytes:
    """A session as stored. Pure; a nonce is base64, so it holds no newline."""
    return f"{state.nonce}\n{state.identity.text if state.identity else ''}".encode()


def decode(raw: bytes) -> SessionState:
    """The inverse of :func:`encode`. A value without a newline is a token stored before
    sessions had nonces (the identity text alone): it stays valid until it expires."""
    text = raw.decode()
    nonce, newline, identity = text.partition("\n")
    if not newline:
        return SessionState("", Identity.parse(text))
    return SessionState(nonce, Identity.parse(identity) if identity else None)


_PENDING_WINDOW = 60  # seconds: anonymous sessions are counted per address per minute


# Every token and identity set shares one Redis Cluster slot (see above).
_TAGGED = "sess:{sess}:"
_TOKENS = _TAGGED + "t:"
_IDENTITIES = _TAGGED + "i:"
LAYOUT = _TAGGED + "layout"
UPGRADE_STEP = "sessions under the {sess} tag"  # as SessionStore.upgrade tells its progress
_SCAN_PAGE = 10_000  # keys a SCAN call of the upgrade goes through (about)
_OLD_TOKENS = "sess:t:"  # the names before the tag (moved by SessionStore.upgrade)
_OLD_IDENTITIES = "sess:i:"

# KEYS: an identity's set. ARGV: its time to live in ms (0: none), the token keys to add.
# The set may already hold sessions (another worker moved it first, or the node served
# since): members are added, and its expiry is only lengthened.
_MERGE_SET_LUA = """
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
local ttl = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if ttl > 0 and left < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""
_MERGED_PER_CALL = 1000  # token keys added by one call of _MERGE_SET_LUA


def _token_key(token: str) -> str:
    return _TOKENS + hashlib.sha256(token.encode()).hexdigest()


def _identity_key(identity: Identity) -> str:
    return _IDENTITIES + identity.key


def renamed(old: bytes) -> bytes:
    """The name a session key of an older store has now: its token key or identity set
    with the ``{sess}`` tag; other names are left as they are. Pure.

    >>> renamed(b"sess:t:ab12"), renamed(b"sess:i:300:0.na/88.100"), renamed(b"sess:n:x")
    (b'sess:{sess}:t:ab12', b'sess:{sess}:i:300:0.na/88.100', b'sess:n:x')
    """
    for before, after in ((_OLD_TOKENS, _TOKENS), (_OLD_IDENTITIES, _IDENTITIES)):
        if old.startswith(before.encode()):
            return after.encode() + old[len(before) :]
    return old


class SessionStore:
    """Tokens, challenges and rotation grace periods.

    >>> sessions = SessionStore(redis, ttl=900, challenge_ttl=60,   # doctest: +SKIP
    ...                         pending_ttl=60, pending_per_minute=60)
    >>> session = await sessions.open(identity)                    # doctest: +SKIP
    >>> await sessions.identity(session.token) == identity         # doctest: +SKIP
    True
    """

    def __init__(
        self,
        redis: Redis,
        *,
        ttl: int,
        challenge_ttl: int,
        pending_ttl: int,
        pending_per_minute: int,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.challenge_ttl = challenge_ttl
        self.pending_ttl = pending_ttl
        self.pending_per_minute = pending_per_minute

    async def upgrade(self, progress: UpgradeProgress | None = None) -> int:
        """Move the token keys and identity sets of a store written before the
        ``{sess}`` tag to their tagged names, each with the time it had left; once per
        store (``sess:{sess}:layout``), before the node serves. Returns how many keys
        moved. Idempotent: an interrupted or concurrent move is finished by the next.

        Nothing lists every session, so this walks the whole keyspace once (every
        master of a cluster), telling ``progress`` the keys gone through after each
        page: on a store of many records, its first start takes that much longer."""
        async with translated():
            if await self.redis.get(LAYOUT) == b"2":
                return 0
            moved = seen = 0
            cursor = keyspace.START
            while True:
                cursor, keys = await keyspace.scan_page(
                    self.redis, cursor, match="sess:[ti]:*", count=_SCAN_PAGE
                )
                for key in keys:
                    moved += await self._move(key)
                seen += _SCAN_PAGE
                if progress is not None:
                    progress(UPGRADE_STEP, seen)
                if cursor == keyspace.START:
                    break
            await self.redis.set(LAYOUT, "2")
        return moved

    async def _move(self, old: bytes) -> int:
        """Move one session key of an older store (:func:`renamed`); 1 if it moved."""
        if old.startswith(_OLD_TOKENS.encode()):
            return int(await move_key(self.redis, old, renamed(old)))
        # An identity's set names its sessions' token keys, which are renamed too.
        pipe = self.redis.pipeline(transaction=False)
        pipe.pttl(old)
        pipe.smembers(old)
        left, members = await pipe.execute()
        if not members:
            return 0  # gone meanwhile
        tokens = sorted(renamed(m) for m in cast(set[bytes], members))
        for at in range(0, len(tokens), _MERGED_PER_CALL):  # Lua's unpack has a limit
            chunk = tokens[at : at + _MERGED_PER_CALL]
            await self.redis.eval(_MERGE_SET_LUA, 1, renamed(old), max(0, int(left)), *chunk)
        await self.redis.delete(old)
        return 1

    async def open(self, identity: Identity) -> Session:
        """A new session, authenticated as ``identity`` (a Basic or signed login)."""
        token = secrets.token_urlsafe(32)
        nonce = authorization.new_nonce()
        key = _token_key(token)
        async with translated():
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(key, encode(SessionState(nonce, identity)), ex=self.ttl)
            pipe.sadd(_identity_key(identity), key)
            pipe.expire(_identity_key(identity), self.ttl)
            await pipe.execute()
        return Session(token, identity, self.ttl, nonce)

    async def begin(self, address: str) -> tuple[str, str]:
        """A new unauthenticated session for a caller at ``address``: (token, nonce).
        429 past ``pending_per_minute`` such sessions in the current minute."""
        counter = f"sess:a:{address[:64]}"
        async with translated():
            pipe = self.redis.pipeline(transaction=True)
            # The window starts with the first session (SET NX); INCR keeps its expiry.
            pipe.set(counter, 0, ex=_PENDING_WINDOW, nx=True)
            pipe.incr(counter)
            pipe.ttl(counter)
            _, opened, left = await pipe.execute()
        if int(opened) > self.pending_per_minute:
            raise TooManyRequests(
                f"More than {self.pending_per_minute} sessions opened without credentials "
                f"from {address} in a minute; authenticate the ones you have",
                retry_after=max(1, int(left)),
            )
        token = secrets.token_urlsafe(32)
        nonce = authorization.new_nonce()
        async with translated():
            await self.redis.set(
                _token_key(token), encode(SessionState(nonce, None)), ex=self.pending_ttl
            )
        return token, nonce

    async def state(self, token: str) -> SessionState | None:
        """The session named by ``token``; None if unknown, expired or ended."""
        if not token or len(token) > 256:
            return None
        async with translated():
            raw = await self.redis.get(_token_key(token))
        return decode(cast(bytes, raw)) if raw else None

    async def expires_in(self, token: str) -> int:
        async with translated():
            left = await self.redis.ttl(_token_key(token))
        return max(0, int(left))

    async def identity(self, token: str) -> Identity | None:
        found = await self.state(token)
        return found.identity if found else None

    async def take_nonce(self, token: str, nonce: str) -> bool:
        """Replace the session's nonce if it is still ``nonce``; False if the session is
        gone or its nonce already changed (used, or answered concurrently)."""

        def fresh(before: SessionState) -> SessionState | None:
            if not before.nonce or before.nonce != nonce:
                return None
            return SessionState(authorization.new_nonce(), before.identity)

        return await self._replace(token, fresh, ttl=None)

    async def authenticate(self, token: str, identity: Identity) -> bool:
        """Mark the session as ``identity``'s, for the full ``ttl``; False if it ended
        meanwhile. An earlier identity of the session loses it."""
        return await self._replace(
            token, lambda before: SessionState(before.nonce, identity), ttl=self.ttl
        )

    async def _replace(
        self,
        token: str,
        change: Callable[[SessionState], SessionState | None],
        *,
        ttl: int | None,
    ) -> bool:
        """Compare-and-set of a session under WATCH: ``change`` gets what is stored and
        returns what to store, or None to leave it. ``ttl`` None keeps the expiry; a new
        ``ttl`` also (re)files the session under its identity. False if the session is
        gone, ``change`` declined, or another request changed it meanwhile."""
        key = _token_key(token)
        async with translated(), self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                before = decode(cast(bytes, raw)) if raw else None
                after = change(before) if before is not None else None
                if before is None or after is None:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                if ttl is None:
                    pipe.set(key, encode(after), keepttl=True)
                else:
                    pipe.set(key, encode(after), ex=ttl)
                old, new = before.identity, after.identity
                if old is not None and (new is None or old.key != new.key):
                    pipe.srem(_identity_key(old), key)
                if new is not None and ttl is not None:
                    pipe.sadd(_identity_key(new), key)
                    pipe.expire(_identity_key(new), ttl)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def revoke(self, token: str) -> bool:
        async with translated():
            return bool(await self.redis.delete(_token_key(token)))

    async def revoke_all(self, identity: Identity) -> int:
        """End every session of ``identity``; returns how many were open."""
        index = _identity_key(identity)
        async with translated():
            keys = cast(set[bytes], await self.redis.smembers(index))
            if not keys:
                return 0
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(*keys)
            pipe.delete(index)
            removed, _ = await pipe.execute()
        return int(removed)

    async def new_challenge(self, identity: Identity) -> str:
        nonce = new_nonce()
        async with translated():
            await self.redis.set(f"sess:n:{nonce}", identity.text, ex=self.challenge_ttl)
        return nonce

    async def take_challenge(self, nonce: str) -> str | None:
        """The identity the nonce was issued to, once; None if unknown, used or expired."""
        if not nonce.isalnum() or len(nonce) > 64:
            return None
        async with translated():
            raw = await self.redis.getdel(f"sess:n:{nonce}")
        return cast(bytes, raw).decode() if raw else None

    async def keep_previous_secret(self, identity: Identity, hashed: str, grace: int) -> None:
        async with translated():
            if grace > 0:
                await self.redis.set(f"sess:r:{identity.key}", hashed, ex=grace)
            else:
                await self.redis.delete(f"sess:r:{identity.key}")

    async def previous_secret(self, identity: Identity) -> str | None:
        async with translated():
            raw = await self.redis.get(f"sess:r:{identity.key}")
        return cast(bytes, raw).decode() if raw else None
