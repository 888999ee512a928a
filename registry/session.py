"""Sessions (Bearer tokens), login challenges and secret rotation, kept in Redis.

::

    sess:t:<sha-256 of token>   STRING  identity text, expires with the session
    sess:i:<identity key>       SET     its sessions' token hashes (to revoke them all)
    sess:n:<nonce>              STRING  identity a login challenge was issued to (single use)
    sess:r:<identity key>       STRING  the previous secret's hash, during a rotation

Only hashes of tokens are stored, so a copy of the store does not yield sessions. A
token is 256 random bits; it is valid until it expires or is revoked, whichever comes
first, and revocation takes effect on the next request (every use is one GET).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from registry.identifier import Identity
from registry.pubkey import new_nonce
from registry.record import HandleRecord
from registry.store import translated


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


def _token_key(token: str) -> str:
    return "sess:t:" + hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Tokens, challenges and rotation grace periods.

    >>> sessions = SessionStore(redis, ttl=900, challenge_ttl=60)   # doctest: +SKIP
    >>> session = await sessions.open(identity)                    # doctest: +SKIP
    >>> await sessions.identity(session.token) == identity         # doctest: +SKIP
    True
    """

    def __init__(self, redis: Redis, *, ttl: int, challenge_ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self.challenge_ttl = challenge_ttl

    async def open(self, identity: Identity) -> Session:
        token = secrets.token_urlsafe(32)
        key = _token_key(token)
        async with translated():
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(key, identity.text, ex=self.ttl)
            pipe.sadd(f"sess:i:{identity.key}", key)
            pipe.expire(f"sess:i:{identity.key}", self.ttl)
            await pipe.execute()
        return Session(token, identity, self.ttl)

    async def identity(self, token: str) -> Identity | None:
        async with translated():
            raw = await self.redis.get(_token_key(token))
        return Identity.parse(cast(bytes, raw).decode()) if raw else None

    async def revoke(self, token: str) -> bool:
        async with translated():
            return bool(await self.redis.delete(_token_key(token)))

    async def revoke_all(self, identity: Identity) -> int:
        """End every session of ``identity``; returns how many were open."""
        index = f"sess:i:{identity.key}"
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
