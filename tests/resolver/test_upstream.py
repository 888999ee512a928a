"""Upstream against hostile nodes at the wire: every answer is bounded in size and time,
refused early when its headers already say so, and described in this node's words."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable

import aiohttp
import pytest

from registry.errors import UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle
from resolver.upstream import DEFAULT_MAX_BYTES, Upstream
from tests.resolver.conftest import LOOPBACK, FakeNode
from tests.resolver.hostile import HostileNode

HANDLE = Handle.parse("88.100/x")
CAP = 64 * 1024


@pytest.fixture
async def hostile() -> AsyncIterator[HostileNode]:
    node = await HostileNode().start()
    yield node
    await node.stop()


@pytest.fixture
def upstream(session: aiohttp.ClientSession) -> Upstream:
    return Upstream(session, timeout=2.0, policy=LOOPBACK, max_bytes=CAP)


async def peak_memory_of(call: Awaitable[object]) -> tuple[UpstreamUnavailable, int]:
    """Await ``call`` (which must fail) under tracemalloc: its error and the peak of
    Python memory allocated meanwhile (the hostile server's writes included)."""
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await call
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return raised.value, peak


def test_the_default_cap_is_one_mib() -> None:
    assert DEFAULT_MAX_BYTES == 1 << 20


async def test_an_answer_within_the_cap_is_taken(upstream: Upstream, hostile: HostileNode) -> None:
    hostile.answer = {"responseCode": 1, "handles": ["88.100/" + "a" * 100] * 100}
    assert await upstream.get_json(hostile.url, "/api/search", {}) == hostile.answer


@pytest.mark.parametrize("mode", ["endless", "declared"])
async def test_a_body_over_the_cap_is_dropped_without_being_read(
    upstream: Upstream, hostile: HostileNode, mode: str
) -> None:
    hostile.mode = mode
    started = time.monotonic()
    error, peak = await peak_memory_of(upstream.get_handle(hostile.url, HANDLE))
    assert time.monotonic() - started < 1.5
    assert hostile.url in error.message and f"{CAP}-byte limit" in error.message
    assert error.http_status == 502 and error.response_code == 2
    assert peak < 8 * CAP + (4 << 20)  # a few chunks and aiohttp's buffers, not 1 GiB
    await asyncio.sleep(0.1)
    assert hostile.sent < 64 << 20  # the node hung up; the server did not get far
    if mode == "declared":
        assert "announced a 1073741824-byte answer" in error.message


async def test_a_gzip_bomb_is_refused_before_its_body_is_read(
    upstream: Upstream, hostile: HostileNode
) -> None:
    hostile.mode = "gzip"
    error, peak = await peak_memory_of(upstream.get_json(hostile.url, "/api/search", {}))
    assert "Content-Encoding gzip" in error.message and hostile.url in error.message
    assert peak < 4 << 20  # 1 GiB inflated would need 1 GiB


async def test_a_gzip_bomb_within_a_cap_larger_than_it_is_still_not_inflated(
    session: aiohttp.ClientSession, hostile: HostileNode
) -> None:
    """Even when the compressed bytes fit the cap, nothing is decompressed."""
    hostile.mode = "gzip"
    generous = Upstream(session, timeout=5.0, policy=LOOPBACK, max_bytes=2 << 20)
    error, peak = await peak_memory_of(generous.get_handle(hostile.url, HANDLE))
    assert "only identity is accepted" in error.message
    assert peak < 8 << 20


async def test_the_deadline_covers_reading_the_body(
    session: aiohttp.ClientSession, hostile: HostileNode
) -> None:
    """A node dripping one byte at a time never lets a per-read timeout fire; the one
    deadline of the call does."""
    hostile.mode = "drip"
    upstream = Upstream(session, timeout=0.5, policy=LOOPBACK, max_bytes=CAP)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="did not answer within 0.5s") as raised:
        await upstream.get_json(hostile.url, "/api/search", {})
    assert time.monotonic() - started < 1.5
    assert hostile.url in raised.value.message and hostile.sent > 0


async def test_a_call_is_bounded_by_its_own_timeout_too(
    upstream: Upstream, hostile: HostileNode
) -> None:
    hostile.mode = "drip"
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="within 0.3s"):
        await upstream.fetch_json(hostile.url, "/api/templates/88.100/x", {}, timeout=0.3)
    assert time.monotonic() - started < 1.3


async def test_other_calls_go_on_while_a_hostile_node_streams(
    upstream: Upstream, hostile: HostileNode, node: FakeNode
) -> None:
    hostile.mode = "drip"
    attack = asyncio.create_task(upstream.get_handle(hostile.url, HANDLE))
    await asyncio.sleep(0.1)
    for _ in range(5):
        started = time.monotonic()
        answer = await upstream.get_handle(node.url, HANDLE)
        assert answer.status == 200 and time.monotonic() - started < 1.0
    with pytest.raises(UpstreamTimeout):
        await attack


async def test_a_redirect_is_not_followed(upstream: Upstream, hostile: HostileNode) -> None:
    target = await HostileNode().start()
    try:
        hostile.mode, hostile.location = "redirect", f"{target.url}/api/handles/88.100/x"
        with pytest.raises(UpstreamUnavailable, match="redirect") as raised:
            await upstream.get_handle(hostile.url, HANDLE)
        assert "HTTP 302" in raised.value.message and hostile.url in raised.value.message
        assert target.requests == []
    finally:
        await target.stop()


async def test_only_identity_is_asked_for_and_no_redirect_followed(
    upstream: Upstream, hostile: HostileNode
) -> None:
    await upstream.get_json(hostile.url, "/api/search", {})
    assert hostile.headers[0]["Accept-Encoding"] == "identity"


async def test_another_nodes_message_is_not_quoted(
    upstream: Upstream, hostile: HostileNode
) -> None:
    hostile.status = 500
    hostile.answer = {"responseCode": 2, "message": "<script>INJECTED</script>"}
    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.get_json(hostile.url, "/api/search", {})
    assert raised.value.message == (
        f"node {hostile.url} answered HTTP 500 (responseCode 2) to /api/search"
    )


@pytest.mark.parametrize("body", [b"<html>", b"\xff\xfe", b'{"a": '])
async def test_a_body_that_is_not_json_is_upstream_unavailable(
    upstream: Upstream, hostile: HostileNode, body: bytes
) -> None:
    hostile.mode, hostile.raw = "raw", body
    with pytest.raises(UpstreamUnavailable, match="not JSON") as raised:
        await upstream.fetch_json(hostile.url, "/api/templates/88.100/x", {})
    assert hostile.url in raised.value.message


async def test_a_refused_connection_names_the_node_in_plain_words(upstream: Upstream) -> None:
    closed = await HostileNode().start()
    url = closed.url
    await closed.stop()
    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.get_handle(url, HANDLE)
    assert raised.value.message.startswith(f"node {url} is unreachable: ")
    assert "Connect call failed" not in raised.value.message  # aiohttp's text: logged only
