"""A node's link to the node above it: registration at start-up and filings.

A secondary node registers its prefix with its top node (``PUT /api/prefixes/<prefix>``
with ``nodeUrl``) using its node credentials, ``300:0.NA/<prefix>`` and the admin secret,
which the top node's operator provisioned; then it files every enterprise prefix it
allocates. Registration is retried in the background with backoff until the top node
accepts it, so nodes may start in any order.
"""

from __future__ import annotations

import asyncio
import logging

from node.state import Registration
from registry.errors import IdnodeError, UpstreamUnavailable
from registry.identifier import Prefix
from registry.prefix_entry import PrefixEntry, PrefixKind
from resolver.upstream import Credentials, Upstream

log = logging.getLogger("idnode.node")
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


class ParentLink:
    """Calls to the parent node made with this node's credentials.

    >>> link = ParentLink(upstream, "http://127.0.0.1:8000", creds)   # doctest: +SKIP
    >>> await link.file(entry)                                        # doctest: +SKIP
    True
    """

    def __init__(self, upstream: Upstream, url: str | None, credentials: Credentials | None):
        self.upstream = upstream
        self.url = url
        self.credentials = credentials

    async def file(self, entry: PrefixEntry) -> bool:
        """File ``entry`` with the parent; False when this node has no parent."""
        if self.url is None:
            return False
        if self.credentials is None:
            raise UpstreamUnavailable(
                "cannot file with the top node: start this node with --admin-secret, "
                "the secret the top node knows for it"
            )
        payload = {k: v for k, v in entry.to_json().items() if k not in ("prefix", "filedBy")}
        status, body = await self.upstream.put_json(
            self.url, f"/api/prefixes/{entry.prefix.text}", payload, self.credentials
        )
        if status not in (200, 201):
            said = body.get("message") if isinstance(body, dict) else None
            raise UpstreamUnavailable(
                f"top node {self.url} refused to file {entry.prefix.text} "
                f"(HTTP {status}): {said or 'no reason given'}"
            )
        return True

    async def keep_registering(self, entry: PrefixEntry, status: Registration) -> None:
        """Register ``entry`` (this node's own prefix), retrying until it is accepted."""
        attempt = 0
        while True:
            try:
                await self.file(entry)
            except IdnodeError as exc:
                status.last_error = exc.message
                if attempt == 0 or attempt % 20 == 0:
                    log.warning("registration with %s failed, retrying: %s", self.url, exc.message)
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
                continue
            status.done, status.last_error = True, None
            log.info("registered with the top node", extra={"parent": self.url})
            return


def own_entry(prefix: Prefix, node_url: str, industry: str, owner: str) -> PrefixEntry:
    """What a secondary node registers about itself."""
    return PrefixEntry(
        prefix,
        node_url=node_url,
        kind=PrefixKind.SECONDARY,
        industry=industry,
        owner=owner,
    )
