"""Templates fetched from another node (a real HTTP server at the wire): only a published
version of the template asked for is taken, read defensively and bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from registry.errors import UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Prefix
from registry.template import TemplateRef
from registry.template_store import TemplateStore
from resolver.template_source import TemplateSource
from resolver.upstream import Upstream
from tests.resolver.conftest import LOOPBACK
from tests.resolver.hostile import HostileNode

CELL = {
    "template": "88.100/cell",
    "prefix": "88.100",
    "name": "cell",
    "version": 2,
    "state": "published",
    "description": "",
    "updated": "2026-01-01T00:00:00Z",
    "items": [{"name": "capacity_ah", "index": 2000, "type": "number", "required": True}],
}


@pytest.fixture
async def keeper() -> AsyncIterator[HostileNode]:
    node = await HostileNode().start()
    node.answer = {"responseCode": 1, **CELL}
    yield node
    await node.stop()


@pytest.fixture
def source(redis: Redis, session: aiohttp.ClientSession, keeper: HostileNode) -> TemplateSource:
    async def locate(prefix: Prefix) -> str | None:
        return keeper.url

    return TemplateSource(
        TemplateStore(redis),
        locate,
        Upstream(session, timeout=0.5, policy=LOOPBACK, max_bytes=16384),
    )


async def test_the_template_asked_for_is_taken(source: TemplateSource) -> None:
    found = await source.find(TemplateRef.parse("88.100/CELL@2"))
    assert (found.prefix.text, found.name, found.version) == ("88.100", "cell", 2)


@pytest.mark.parametrize(
    "change",
    [
        {"prefix": "88.101"},  # another prefix's template
        {"prefix": "88"},
        {"name": "pack"},
        {"name": 7},
        {"version": 3},  # not the pinned version
        {"version": "2"},
        {"version": True},
        {"state": "draft"},
        {"items": "all"},
        {"items": [{"name": "x"}]},
        {"items": [{"name": "capacity_ah", "index": 2000, "type": "number"}] * 201},
        {"description": {"nested": ["<script>"]}, "items": [7]},
    ],
)
async def test_anything_else_is_an_invalid_template_naming_the_node(
    source: TemplateSource, keeper: HostileNode, change: dict[str, Any]
) -> None:
    keeper.answer = {"responseCode": 1, **CELL, **change}
    with pytest.raises(UpstreamUnavailable) as raised:
        await source.find(TemplateRef.parse("88.100/cell@2"))
    assert raised.value.message == f"node {keeper.url} sent an invalid template for 88.100/cell@2"


@pytest.mark.parametrize("answer", [None, [], "text", {"responseCode": 1}])
async def test_junk_is_an_invalid_template(
    source: TemplateSource, keeper: HostileNode, answer: object
) -> None:
    keeper.answer = answer
    with pytest.raises(UpstreamUnavailable, match="invalid template"):
        await source.find(TemplateRef.parse("88.100/cell"))


@pytest.mark.parametrize(
    ("mode", "error", "says"),
    [
        ("endless", UpstreamUnavailable, "over the 16384-byte limit"),
        ("gzip", UpstreamUnavailable, "only identity is accepted"),
        ("drip", UpstreamTimeout, "did not answer within 0.5s"),
    ],
)
async def test_a_hostile_keeper_is_bounded(
    source: TemplateSource, keeper: HostileNode, mode: str, error: type[Exception], says: str
) -> None:
    keeper.mode = mode
    with pytest.raises(error, match=says):
        await source.find(TemplateRef.parse("88.100/cell"))


async def test_a_failing_keepers_message_is_not_passed_on(
    source: TemplateSource, keeper: HostileNode
) -> None:
    keeper.status, keeper.answer = 500, {"responseCode": 2, "message": "call +86 000"}
    with pytest.raises(UpstreamUnavailable) as raised:
        await source.find(TemplateRef.parse("88.100/cell"))
    assert raised.value.message == (
        f"node {keeper.url} answered HTTP 500 when asked for template 88.100/cell"
    )
