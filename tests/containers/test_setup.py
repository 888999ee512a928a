"""``docker compose up`` as processes: the node services start in health-check order,
the ``setup`` job (``idnode setup``) builds the demo hierarchy through their APIs, and
identifiers resolve through the top node as with ``idnode up``."""

from __future__ import annotations

import httpx
import pytest

from node.launcher import attach_urls
from node.topology import Topology
from registry.errors import ConfigError
from tests.conftest import basic
from tests.containers.conftest import Setup
from tests.containers.hierarchy import profiles

server = pytest.mark.server  # the tests using the compose hierarchy's processes


@server
def test_setup_job_succeeds_and_prints_the_credentials(compose_hierarchy: Setup) -> None:
    assert compose_hierarchy.returncode == 0, compose_hierarchy.output
    output = compose_hierarchy.output
    for expected in ("top-88", "enterprise-88.101.1", "300:0.NA/88.100.1", "demo-88.100.1"):
        assert expected in output, output
    assert "700/700" in output  # 7 enterprises x 100 sample identifiers seeded


@server
def test_an_identifier_resolves_through_the_top_node(compose_hierarchy: Setup) -> None:
    """The containers guide's curl: ``/api/handles/88.100.1/demo-0001`` at the top node."""
    top = compose_hierarchy.url("top-88")
    secondary = compose_hierarchy.url("secondary-88-100")
    answer = httpx.get(f"{top}/api/handles/88.100.1/demo-0001", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-resolved-by"] == secondary
    values = {v["type"]: v["data"]["value"] for v in answer.json()["values"]}
    assert values["MANUFACTURER"] == "Jianghan Motor Works"
    assert values["URL"] == "https://id.jianghan-motor.example.cn/products/demo-0001"


@server
def test_the_enterprise_node_is_reached_through_its_secondary(compose_hierarchy: Setup) -> None:
    top = compose_hierarchy.url("top-88")
    enterprise = compose_hierarchy.url("enterprise-88-101-1")
    secondary = compose_hierarchy.url("secondary-88-101")
    referral = httpx.get(f"{secondary}/api/handles/88.101.1/demo-0100", timeout=30)
    assert referral.json()["referral"]["url"] == enterprise
    answer = httpx.get(f"{top}/api/handles/88.101.1/demo-0100", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-resolved-by"] == enterprise


@server
def test_the_secondary_nodes_registered_their_service_urls(compose_hierarchy: Setup) -> None:
    top = compose_hierarchy.url("top-88")
    registry = httpx.get(f"{top}/api/prefixes", timeout=30).json()["prefixes"]
    nodes = {e["prefix"]: e["nodeUrl"] for e in registry if e["kind"] == "secondary"}
    assert nodes == {
        "88.100": compose_hierarchy.url("secondary-88-100"),
        "88.101": compose_hierarchy.url("secondary-88-101"),
        "88.102": compose_hierarchy.url("secondary-88-102"),
    }
    filed = sorted(e["prefix"] for e in registry if e["kind"] == "enterprise")
    demo = Topology.demo().secondaries
    assert filed == [f"{s.prefix}.{n}" for s in demo for n in range(1, len(s.enterprises) + 1)]
    for service in ("secondary-88-100", "secondary-88-101", "secondary-88-102"):
        ready = httpx.get(f"{compose_hierarchy.url(service)}/readyz", timeout=30).json()
        assert ready["registered"] is True, (service, ready)


@server
def test_setup_again_changes_nothing(compose_hierarchy: Setup) -> None:
    """``docker compose up`` a second time runs the job again on the kept data."""
    secondary = compose_hierarchy.url("secondary-88-100")
    before = compose_hierarchy.applications("secondary-88-100", "88.100")
    assert [status for _, status, _ in before] == ["approved"] * 3
    again = compose_hierarchy.hierarchy.run_job("setup")
    assert again.returncode == 0, again.stdout + again.stderr
    assert compose_hierarchy.applications("secondary-88-100", "88.100") == before
    # The enterprise keeps its documented secret, and its identifiers resolve.
    top = compose_hierarchy.url("top-88")
    assert httpx.get(f"{top}/api/handles/88.102.2/demo-0042", timeout=30).status_code == 200
    whoami = httpx.post(
        f"{secondary}/api/sessions", headers=basic("300:0.NA/88.100.3", "demo-88.100.3"), timeout=30
    )
    assert whoami.status_code == 201, whoami.text


def test_attach_urls_reads_port_url_pairs() -> None:
    demo = Topology.demo()
    assert attach_urls(demo, ["8001=http://secondary-88-100:8001/", " 8010=https://e:9 "]) == {
        8001: "http://secondary-88-100:8001",
        8010: "https://e:9",
    }
    assert attach_urls(demo, []) == {}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("http://top-88:8000", "expected PORT=URL"),
        ("9999=http://top-88:8000", "with a topology port (8000"),
        ("top=http://top-88:8000", "expected PORT=URL"),
        ("8000=top-88:8000", "starts with http:// or https://"),
        ("8000=http://top-88:8000/?x=1", "no query"),
    ],
)
def test_attach_urls_refuses_what_names_no_node(pair: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        attach_urls(Topology.demo(), [pair])
    assert message in refused.value.message
    assert pair in refused.value.message


@server
def test_the_default_run_starts_no_profile_service(compose_hierarchy: Setup) -> None:
    """``docker compose up`` without ``--profile cluster``: none of its services exist."""
    hierarchy = compose_hierarchy.hierarchy
    assert not any(profiles(s) for s in hierarchy.services.values())
    assert set(hierarchy.redis) == {"redis"}
    assert "secondary-88-103" not in hierarchy.running
