"""The connect-time half of :mod:`resolver.target`: a DNS resolver for aiohttp that
refuses loopback and private addresses unless the node allows private nodes.

:class:`resolver.target.TargetPolicy` judges a node URL by its text; a host *name*
passes it. What the name resolves to is checked here, on every connection, so a name
that resolves (or is re-pointed, DNS rebinding) to an internal address is not connected
to: the addresses checked are the addresses aiohttp connects to. IP literals do not go
through a resolver; the policy has already judged them.

A refused name fails like a name that does not resolve (``OSError``), which
:mod:`resolver.upstream` turns into ``UpstreamUnavailable`` like any other.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from resolver.target import TargetPolicy


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver and keeps only allowed addresses.

    >>> connector = aiohttp.TCPConnector(resolver=GuardedResolver(TargetPolicy()))  # doctest: +SKIP
    """

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        allowed = [r for r in found if self.policy.address_allowed(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to loopback or private addresses")
        return allowed

    async def close(self) -> None:
        await self.inner.close()
