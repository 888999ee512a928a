"""resolver.target and resolver.address_guard: which node URLs and addresses may be asked."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from registry.errors import UpstreamUnavailable
from registry.identifier import Handle
from resolver.address_guard import GuardedResolver
from resolver.target import TargetPolicy
from resolver.upstream import Upstream
from tests.resolver.conftest import FakeNode

STRICT = TargetPolicy()
OPEN = TargetPolicy(allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://node.example",
        "https://node.example:8443",
        "http://8.8.8.8:8000",
        "http://[2001:4860:4860::8888]:80",
        "https://node.example/base/path",
    ],
)
def test_public_node_urls_are_allowed(url: str) -> None:
    assert STRICT.problem(url) is None
    assert OPEN.problem(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://node.example", "only http and https"),
        ("node.example:80", "only http and https"),
        ("http://u:p@node.example", "user name or password"),
        ("http://u@node.example", "user name or password"),
        ("http://node.example/?a=1", "no query or fragment"),
        ("http://node.example/#x", "no query or fragment"),
        ("http://node.example?", "no query or fragment"),
        ("http://:80", "names a host"),
        ("http://node.example:0", "valid port"),
        ("http://node.example:70000", "not a valid URL"),
        ("http://[::1", "not a valid URL"),
    ],
)
def test_malformed_node_urls_are_refused_even_when_private_is_allowed(url: str, why: str) -> None:
    for policy in (STRICT, OPEN):
        problem = policy.problem(url)
        assert problem is not None and why in problem


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:10.0.0.1]",
        "localhost",
        "LOCALHOST.",
        "api.localhost",
    ],
)
def test_loopback_and_private_hosts_need_allow_private(host: str) -> None:
    url = f"http://{host}:8000"
    problem = STRICT.problem(url)
    assert problem is not None and "loopback or private" in problem
    assert host.strip("[]").lower().rstrip(".") not in problem  # never echoed
    assert OPEN.problem(url) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.9.8.7", False),
        ("fe80::1%eth0", False),
        ("::ffff:192.168.0.1", False),
        ("not an address", False),
    ],
)
def test_resolved_addresses(address: str, allowed: bool) -> None:
    assert STRICT.address_allowed(address) is allowed
    assert OPEN.address_allowed(address) is True


class Fixed(AbstractResolver):
    """A resolver answering fixed addresses: stands in for DNS, which tests may not use."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_the_guard_keeps_only_allowed_addresses() -> None:
    guard = GuardedResolver(STRICT, Fixed("10.0.0.1", "8.8.8.8"))
    assert [r["host"] for r in await guard.resolve("node.example", 80)] == ["8.8.8.8"]


async def test_a_name_resolving_only_to_private_addresses_is_refused() -> None:
    inner = Fixed("127.0.0.1", "192.168.1.1")
    with pytest.raises(OSError, match="loopback or private"):
        await GuardedResolver(STRICT, inner).resolve("rebound.example", 80)
    assert len(await GuardedResolver(OPEN, inner).resolve("rebound.example", 80)) == 2
    await GuardedResolver(OPEN, inner).close()
    assert inner.closed


async def test_a_session_with_the_guard_does_not_connect_to_a_name_for_loopback(
    node: FakeNode,
) -> None:
    port = node.url.rsplit(":", 1)[1]
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(STRICT))
    async with aiohttp.ClientSession(connector=connector) as session:
        upstream = Upstream(session, timeout=2.0, policy=OPEN)
        with pytest.raises(UpstreamUnavailable):
            await upstream.get_handle(f"http://localhost:{port}", Handle.parse("88.100/x"))
    assert node.count == 0
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(OPEN))
    async with aiohttp.ClientSession(connector=connector) as session:
        answer = await Upstream(session, timeout=2.0, policy=OPEN).get_handle(
            f"http://localhost:{port}", Handle.parse("88.100/x")
        )
    assert answer.status == 200 and node.count == 1
