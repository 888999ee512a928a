"""Metadata templates kept in Redis (the rules are in :mod:`registry.template`).

Key layout (``{...}`` is a Redis Cluster hash tag: a prefix's templates share a slot)::

    t:{<prefix>}:<name, lower-cased>   HASH  draft = the draft's JSON
                                             v1, v2, ... = each published version's JSON
                                             latest = the newest published version number
    ts:{<prefix>}                      SET   the names of the prefix's templates
    template-prefixes                  SET   every prefix that has templates here

Publishing is one script that checks nothing changed since the caller read the draft
(compare-and-set on the draft's bytes and ``latest``), so two publishers cannot both
make version N, and a published version is never written twice.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from redis.asyncio import Redis

from registry.identifier import Prefix, ascii_lower
from registry.store import translated
from registry.template import State, Template

PREFIXES_KEY = "template-prefixes"

# KEYS[1] template hash. ARGV[1] expected latest ('' = none), ARGV[2] expected draft
# ('' = none), ARGV[3] field to set, ARGV[4] its JSON, ARGV[5] new latest ('' = keep),
# ARGV[6] '1' to delete the draft.
_WRITE_LUA = """
local latest = redis.call('HGET', KEYS[1], 'latest') or ''
local draft = redis.call('HGET', KEYS[1], 'draft') or ''
if latest ~= ARGV[1] or draft ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'latest', ARGV[5]) end
if ARGV[6] == '1' then redis.call('HDEL', KEYS[1], 'draft') end
return 1
"""


def template_key(prefix: Prefix, name: str) -> str:
    return f"t:{{{prefix.text.lower()}}}:{ascii_lower(name)}"


def names_key(prefix: Prefix) -> str:
    return f"ts:{{{prefix.text.lower()}}}"


class Snapshot:
    """A template's stored state, as read: what a compare-and-set must still find."""

    def __init__(self, latest: bytes | None, draft: bytes | None) -> None:
        self.latest_raw = latest or b""
        self.draft_raw = draft or b""

    @property
    def latest(self) -> int:
        return int(self.latest_raw) if self.latest_raw else 0

    @property
    def draft(self) -> Template | None:
        return _decode(self.draft_raw) if self.draft_raw else None


class TemplateStore:
    """Templates of the prefixes a node holds.

    >>> store = TemplateStore(redis)                                        # doctest: +SKIP
    >>> await store.version(Prefix("88.100"), "battery-pack", None)         # doctest: +SKIP
    Template(prefix=Prefix(text='88.100'), name='battery-pack', version=2, ...)
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._write = redis.register_script(_WRITE_LUA)

    async def snapshot(self, prefix: Prefix, name: str) -> Snapshot:
        async with translated():
            latest, draft = await self._redis.hmget(template_key(prefix, name), ["latest", "draft"])
        return Snapshot(cast(bytes | None, latest), cast(bytes | None, draft))

    async def version(self, prefix: Prefix, name: str, version: int | None) -> Template | None:
        """A published version (the latest when ``version`` is None), or None."""
        key = template_key(prefix, name)
        async with translated():
            if version is None:
                raw = await self._redis.hget(key, "latest")
                if raw is None:
                    return None
                version = int(raw)
            body = cast(bytes | None, await self._redis.hget(key, f"v{version}"))
        return _decode(body) if body else None

    async def versions(self, prefix: Prefix, name: str) -> list[Template]:
        async with translated():
            fields = cast(dict[bytes, bytes], await self._redis.hgetall(template_key(prefix, name)))
        found = [_decode(v) for k, v in fields.items() if k.startswith(b"v")]
        return sorted(found, key=lambda t: t.version)

    async def save_draft(self, before: Snapshot, draft: Template) -> bool:
        """Store ``draft`` if the template is still as ``before``; False if it changed."""
        return await self._cas(before, draft, "draft", latest="", drop_draft=False)

    async def publish(self, before: Snapshot, published: Template) -> bool:
        """Make the draft read in ``before`` published version ``published.version``."""
        assert published.state is State.PUBLISHED
        return await self._cas(
            before, published, f"v{published.version}", str(published.version), drop_draft=True
        )

    async def drop_draft(self, before: Snapshot) -> bool:
        return await self._cas(before, None, "", latest="", drop_draft=True)

    async def _cas(
        self,
        before: Snapshot,
        template: Template | None,
        field: str,
        latest: str,
        *,
        drop_draft: bool,
    ) -> bool:
        if template is None:
            key_template = before.draft
            assert key_template is not None
        else:
            key_template = template
        prefix, name = key_template.prefix, key_template.name
        body = orjson.dumps(template.to_json()) if template is not None else b""
        async with translated():
            done = await self._write(
                keys=[template_key(prefix, name)],
                args=[
                    before.latest_raw,
                    before.draft_raw,
                    field,
                    body,
                    latest,
                    "1" if drop_draft else "0",
                ],
            )
            if done:
                pipe = self._redis.pipeline(transaction=False)
                pipe.sadd(names_key(prefix), name)
                pipe.sadd(PREFIXES_KEY, prefix.text)
                await pipe.execute()
        return bool(done)

    async def listing(self, within: Prefix | None) -> list[dict[str, Any]]:
        """A summary of every template here (under ``within`` when given)."""
        async with translated():
            prefixes = [
                Prefix(p.decode())
                for p in cast(set[bytes], await self._redis.smembers(PREFIXES_KEY))
            ]
            prefixes = sorted(
                (p for p in prefixes if within is None or within.contains(p)), key=lambda p: p.text
            )
            pipe = self._redis.pipeline(transaction=False)
            for prefix in prefixes:
                pipe.smembers(names_key(prefix))
            named = await pipe.execute()
            pairs = [
                (p, n.decode()) for p, names in zip(prefixes, named, strict=True) for n in names
            ]
            pairs.sort(key=lambda pair: (pair[0].text, ascii_lower(pair[1])))
            pipe = self._redis.pipeline(transaction=False)
            for prefix, name in pairs:
                pipe.hmget(template_key(prefix, name), ["latest", "draft"])
            states = await pipe.execute()
            pipe = self._redis.pipeline(transaction=False)
            for (prefix, name), (latest, _) in zip(pairs, states, strict=True):
                pipe.hget(template_key(prefix, name), f"v{int(latest)}" if latest else "draft")
            bodies = await pipe.execute()
        out = []
        for (prefix, _), (latest, draft), body in zip(pairs, states, bodies, strict=True):
            if body is None:
                continue  # the draft was dropped and nothing was ever published
            shown = _decode(body)
            out.append(
                {
                    "template": f"{prefix.text}/{shown.name}",
                    "latest": int(latest) if latest else None,
                    "draft": draft is not None,
                    "description": shown.description,
                    "items": len(shown.items),
                }
            )
        return out

    async def queryable_types(self) -> frozenset[str]:
        """The value types the latest published version of any template here declares
        queryable (:attr:`registry.template.Template.queryable_types`)."""
        async with translated():
            prefixes = cast(set[bytes], await self._redis.smembers(PREFIXES_KEY))
            pipe = self._redis.pipeline(transaction=False)
            for raw in prefixes:
                pipe.smembers(names_key(Prefix(raw.decode())))
            keys = [
                template_key(Prefix(raw.decode()), name.decode())
                for raw, names in zip(prefixes, await pipe.execute(), strict=True)
                for name in names
            ]
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "latest")
            latest = await pipe.execute()
            pipe = self._redis.pipeline(transaction=False)
            published = [(k, int(n)) for k, n in zip(keys, latest, strict=True) if n]
            for key, version in published:
                pipe.hget(key, f"v{version}")
            bodies = await pipe.execute()
        return frozenset(t for body in bodies if body for t in _decode(body).queryable_types)


def _decode(body: bytes) -> Template:
    return Template.from_json(orjson.loads(body))
