"""Finding the template an identifier declares, wherever in the hierarchy it is kept.

A template lives at the node holding its prefix: an industry template ``88.100/...`` at
the secondary node 88.100, an enterprise template at the node holding the enterprise's
prefix. A node checking a write asks, for the template's prefix, where to look
(``locate``: None for its own store, else the node it would refer a client to, a
delegated enterprise node or its parent) and follows the 301 referrals of
``GET /api/templates/{prefix}/{name}`` from there, at most :data:`MAX_HOPS` nodes, the
way resolution follows referrals.

Published versions never change, so a pinned version (``@2``) is kept in process for an
hour; "the latest version" for :data:`LATEST_TTL` seconds, which is how long a newly
published version may take to be enforced at other nodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from registry.errors import InvalidValue, TemplateViolation, UpstreamUnavailable
from registry.identifier import Prefix, ascii_lower
from registry.template import MAX_ITEMS, Template, TemplateRef
from registry.template_store import TemplateStore
from resolver.upstream import Upstream

log = logging.getLogger(__name__)

MAX_HOPS = 4
LATEST_TTL = 5.0
PINNED_TTL = 3600.0
_MAX_ENTRIES = 1024

Locate = Callable[[Prefix], Awaitable[str | None]]


def missing(ref: TemplateRef) -> TemplateViolation:
    version = f" version {ref.version}" if ref.version is not None else ""
    return TemplateViolation(
        f"template {ref.text} has no published{version}",
        violations=[
            {
                "field": "TEMPLATE",
                "index": None,
                "message": f"template {ref.text} has no published{version}",
            }
        ],
    )


class TemplateSource:
    """Templates by reference, from this node's store or through other nodes.

    >>> source = TemplateSource(store, locate, upstream)                    # doctest: +SKIP
    >>> (await source.find(TemplateRef.parse("88.100/battery-pack"))).version  # doctest: +SKIP
    2
    """

    def __init__(self, store: TemplateStore, locate: Locate, upstream: Upstream) -> None:
        self.store = store
        self.locate = locate
        self.upstream = upstream
        self._kept: dict[str, tuple[float, Template]] = {}

    async def find(self, ref: TemplateRef) -> Template:
        """The published version ``ref`` names; TemplateViolation if there is none,
        UpstreamUnavailable/UpstreamTimeout if the node keeping it cannot be asked."""
        node = await self.locate(ref.prefix)
        if node is None:
            found = await self.store.version(ref.prefix, ref.name, ref.version)
            if found is None:
                raise missing(ref)
            return found
        cache_key = ref.key + ("" if ref.version is None else f"@{ref.version}")
        kept = self._kept.get(cache_key)
        now = time.monotonic()
        if kept is not None and kept[0] > now:
            return kept[1]
        found = await self._fetch(node, ref)
        if len(self._kept) >= _MAX_ENTRIES:
            self._kept.clear()
        ttl = LATEST_TTL if ref.version is None else PINNED_TTL
        self._kept[cache_key] = (now + ttl, found)
        return found

    async def _fetch(self, node: str, ref: TemplateRef) -> Template:
        path = f"/api/templates/{ref.prefix.text}/{quote(ref.name, safe='')}"
        params = {} if ref.version is None else {"version": str(ref.version)}
        visited = []
        for _ in range(MAX_HOPS):
            visited.append(node)
            status, answer = await self.upstream.fetch_json(node, path, params)
            if status == 200:
                return remote_template(node, ref, answer)
            if status == 404:
                raise missing(ref)
            referral = _referral(answer) if status == 400 else None
            if referral is None or referral in visited:
                raise UpstreamUnavailable(
                    f"node {node} answered HTTP {status} when asked for template {ref.text}"
                )
            node = referral
        raise UpstreamUnavailable(
            f"template {ref.text}: more than {MAX_HOPS} referrals ({', '.join(visited)})"
        )


def remote_template(node: str, ref: TemplateRef, answer: object) -> Template:
    """The template another node answered for ``ref``, read defensively: it must be a
    published version of that very template (the prefix and name asked for, and the
    version when one was pinned), well-formed item by item; else UpstreamUnavailable
    naming the node (why is logged: the node's text is not passed on).

    >>> remote_template("http://n", TemplateRef.parse("88.100/cell"), {"junk": 1})
    Traceback (most recent call last):
    ...
    registry.errors.UpstreamUnavailable: node http://n sent an invalid template for 88.100/cell
    """
    problem = _template_problem(ref, answer)
    if problem is None:
        assert isinstance(answer, dict)
        try:
            return Template.from_json(answer)
        except (InvalidValue, KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = str(exc)[:200]
    log.info("invalid template from another node", extra={"node": node, "problem": problem})
    raise UpstreamUnavailable(f"node {node} sent an invalid template for {ref.text}")


def _template_problem(ref: TemplateRef, answer: object) -> str | None:
    if not isinstance(answer, dict):
        return "not an object"
    version, prefix, name = answer.get("version"), answer.get("prefix"), answer.get("name")
    # Names are case-insensitive (TemplateRef.key); prefixes are digits and dots.
    if not isinstance(prefix, str) or not isinstance(name, str):
        return "no prefix or name"
    if f"{prefix}/{ascii_lower(name)}" != ref.key:
        return "another template than the one asked for"
    if type(version) is not int or version < 1:
        return "no valid version"
    if ref.version is not None and version != ref.version:
        return f"version {version}, not the version asked for"
    if answer.get("state") != "published":
        return "not a published version"
    items = answer.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        return f"items is not a list of at most {MAX_ITEMS}"
    return None


def _referral(answer: object) -> str | None:
    if not isinstance(answer, dict) or answer.get("responseCode") != 301:
        return None
    referral = answer.get("referral")
    url = referral.get("url") if isinstance(referral, dict) else None
    return url if isinstance(url, str) and url else None
