"""A node's start-up while its store loads: the progress Redis reports, and what a node
that is not built yet answers (in process, before its lifespan has built it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from node.app import create_app
from node.startup import (
    LoadingProgress,
    Phase,
    Startup,
    built,
    parse_info,
    size,
    still_loading,
)
from registry.errors import StoreLoading, StoreUnavailable
from tests.conftest import node_config

# INFO persistence of a Redis 6.2 loading an AOF with an RDB preamble (abridged).
LOADING_INFO = (
    "# Persistence\r\n"
    "loading:1\r\n"
    "aof_enabled:1\r\n"
    "loading_start_time:1796468964\r\n"
    "loading_total_bytes:3100000000\r\n"
    "loading_rdb_used_mem:274346888\r\n"
    "loading_loaded_bytes:1302000000\r\n"
    "loading_loaded_perc:42.00\r\n"
    "loading_eta_seconds:17\r\n"
)
LOADED_INFO = "# Persistence\r\nloading:0\r\naof_enabled:1\r\n"


def test_progress_is_parsed_from_info_text() -> None:
    progress = LoadingProgress.from_info(parse_info(LOADING_INFO))
    assert progress == LoadingProgress(
        loading=True,
        percent=42.0,
        eta_seconds=17,
        loaded_bytes=1_302_000_000,
        total_bytes=3_100_000_000,
    )
    assert progress.message == "store loading: 42% of 3.1 GB, eta 17 s"
    assert progress.fields() == {
        "loadedPercent": 42.0,
        "etaSeconds": 17,
        "loadedBytes": 1_302_000_000,
        "totalBytes": 3_100_000_000,
    }


def test_progress_is_parsed_from_redis_py_fields() -> None:
    parsed = {"loading": 1, "loading_loaded_perc": 4.42, "loading_eta_seconds": 1}
    progress = LoadingProgress.from_info(parsed)
    assert progress.loading and progress.percent == 4.42 and progress.eta_seconds == 1
    assert progress.message == "store loading: 4%, eta 1 s"  # no size known: none said


def test_a_loaded_store_is_not_loading() -> None:
    assert LoadingProgress.from_info(parse_info(LOADED_INFO)) == LoadingProgress(loading=False)
    assert LoadingProgress.from_info({}) == LoadingProgress(loading=False)
    assert LoadingProgress.from_info(parse_info("")).message == "store loaded"


@pytest.mark.parametrize("eta", ["-1", "nonsense"])
def test_an_unknown_eta_is_left_out(eta: str) -> None:
    progress = LoadingProgress.from_info({"loading": "1", "loading_eta_seconds": eta})
    assert progress.eta_seconds is None
    assert progress.message == "store loading: 0%"


def test_sizes_read_as_disks_are_sold() -> None:
    assert [size(n) for n in (0, 999, 1000, 3_100_000_000, 2 * 10**12)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "3.1 GB",
        "2.0 TB",
    ]


def test_the_phases_answer_what_the_table_says() -> None:
    startup = Startup()
    assert startup.readyz() == {
        "status": "starting",
        "responseCode": 2,
        "message": "the node is starting",
    }
    startup.loading(LoadingProgress.from_info(parse_info(LOADING_INFO)))
    assert startup.phase is Phase.LOADING
    assert startup.readyz() == {
        "status": "loading",
        "responseCode": 2,
        "message": "store loading: 42% of 3.1 GB, eta 17 s",
        "loadedPercent": 42.0,
        "etaSeconds": 17,
        "loadedBytes": 1_302_000_000,
        "totalBytes": 3_100_000_000,
    }
    refusal = startup.refusal()
    assert isinstance(refusal, StoreLoading) and isinstance(refusal, StoreUnavailable)
    assert (refusal.http_status, refusal.response_code) == (503, 2)
    assert refusal.message == "the node is starting: its store is loading (42%)"
    startup.loading(LoadingProgress(loading=False))  # loaded; the node is being built
    assert startup.readyz()["status"] == Phase.STARTING.value
    startup.failed(StoreUnavailable("nothing answers"))
    assert startup.readyz()["status"] == "failed"
    assert startup.refusal().message == "the node failed to start: nothing answers"


def test_an_upgrade_is_a_phase_that_names_its_step_and_progress() -> None:
    startup = Startup()
    startup.upgrading("records in bucket hashes", 120_000)
    assert startup.phase is Phase.UPGRADING
    assert startup.readyz() == {
        "status": "upgrading",
        "responseCode": 2,
        "message": "store upgrade: records in bucket hashes, 120,000 records done",
        "upgradeStep": "records in bucket hashes",
        "recordsDone": 120_000,
    }
    refusal = startup.refusal()
    assert (refusal.http_status, refusal.response_code) == (503, 2)
    assert refusal.message == (
        "the node is starting: its store is upgraded (records in bucket hashes)"
    )
    # An upgrading node is progressing: whoever waits for it counts no timeout.
    assert still_loading(startup.readyz()) == startup.readyz()["message"]
    startup.building()
    assert startup.readyz()["status"] == "starting" and still_loading(startup.readyz()) is None


def test_waiters_tell_loading_from_built() -> None:
    assert still_loading({"status": "loading", "message": "store loading: 1%"}) == (
        "store loading: 1%"
    )
    for body in ({"status": "starting"}, {"status": "ready"}, None, "text"):
        assert still_loading(body) is None
    assert built({"status": "ready"}) and built({"status": "unavailable"})
    unbuilt: list[object] = [{"status": "starting"}, {"status": "failed"}, []]
    assert not any(built(body) for body in unbuilt)


@pytest.fixture
async def unbuilt() -> AsyncIterator[tuple[httpx.AsyncClient, Startup]]:
    """A node app whose lifespan has not run: what a node answers while its store loads."""
    app = create_app(node_config("redis://127.0.0.1:1/0"))
    startup: Startup = app.state.startup
    startup.loading(LoadingProgress.from_info(parse_info(LOADING_INFO)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        yield http, startup


async def test_a_node_not_built_is_alive_and_says_it_is_loading(
    unbuilt: tuple[httpx.AsyncClient, Startup],
) -> None:
    http, _ = unbuilt
    health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "role": "secondary", "prefix": "88.100"}
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "loading" and ready.json()["loadedPercent"] == 42.0
    metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    # The 503s answered meanwhile are counted.
    assert 'route="/readyz",status="503"' in metrics.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/handles/88.100/a"),  # the fast path's shape: left to the app
        ("GET", "/api/handles/88.100/a?type=URL"),
        ("PUT", "/api/handles/88.100/a"),
        ("GET", "/api/search?query=x"),
        ("POST", "/api/batch/handles"),
    ],
)
async def test_every_other_route_says_the_node_is_starting(
    unbuilt: tuple[httpx.AsyncClient, Startup], method: str, path: str
) -> None:
    http, _ = unbuilt
    answer = await http.request(method, path, json={})
    assert answer.status_code == 503, answer.text
    assert answer.json() == {
        "responseCode": 2,
        "message": "the node is starting: its store is loading (42%)",
    }


async def test_a_failed_start_is_told(unbuilt: tuple[httpx.AsyncClient, Startup]) -> None:
    http, startup = unbuilt
    startup.failed(StoreUnavailable("no Redis at redis://127.0.0.1:1/0"))
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["message"] == "the node failed to start: no Redis at redis://127.0.0.1:1/0"
