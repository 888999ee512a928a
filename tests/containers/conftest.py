"""Fixtures of the container tests: the compose file as ``docker-compose config`` reads
it, the Dockerfile, and the compose hierarchy run as processes, set up by its ``setup``
job and scraped after some traffic; and the cluster profile's part of it, likewise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from node.embedded_redis import free_port
from node.topology import demo_secret
from tests.conftest import basic
from tests.containers.dockerfile import Dockerfile
from tests.containers.hierarchy import ComposeHierarchy
from tests.containers.project import DOCKERFILE, ROOT, docker_compose, load_compose

PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="session")
def compose_binary() -> str:
    binary = docker_compose()
    if binary is None:
        pytest.skip("docker-compose is not installed and there is no apt-get to install it")
    return binary


@pytest.fixture(scope="session")
def compose(compose_binary: str) -> dict[str, Any]:
    """The compose file as ``docker-compose config`` resolves it (anchors merged,
    defaults filled in, paths absolute)."""
    return load_compose(compose_binary)


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(DOCKERFILE)


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text("utf-8"))
    assert isinstance(config, dict)
    return config


@dataclass
class Setup:
    hierarchy: ComposeHierarchy
    returncode: int
    output: str

    def url(self, service: str) -> str:
        return self.hierarchy.running[service].url

    def applications(self, service: str, prefix: str) -> list[tuple[str, str, str]]:
        """The enterprise applications the secondary node ``service`` (prefix
        ``prefix``) holds, as (credit code, status, prefix), asked with its demo secret."""
        admin = basic(f"300:0.NA/{prefix}", demo_secret(prefix))
        listing = httpx.get(f"{self.url(service)}/api/enterprises", headers=admin, timeout=30)
        return sorted(
            (a["creditCode"], a["status"], a["prefix"]) for a in listing.json()["applications"]
        )


@pytest.fixture(scope="session")
def compose_hierarchy(
    compose: dict[str, Any], dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    """Every service of the image started as compose would, then the ``setup`` job."""
    hierarchy = ComposeHierarchy(compose, dockerfile, tmp_path_factory.mktemp("compose"))
    try:
        hierarchy.start()
        job = hierarchy.run_job("setup")
        yield Setup(hierarchy, job.returncode, job.stdout + job.stderr)
    finally:
        hierarchy.stop()


@pytest.fixture(scope="module")
def cluster_hierarchy(
    compose: dict[str, Any], dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    """``docker compose --profile cluster up secondary-88-103`` as processes: the cluster
    members (real redis-servers in cluster mode), the ``redis-cluster-create`` job's
    command run for real against them, the shared Redis and the top node, the 88.103
    node; then the ``setup-cluster`` job. Module-scoped: gone before the next module's
    hierarchy starts."""
    hierarchy = ComposeHierarchy(
        compose,
        dockerfile,
        tmp_path_factory.mktemp("compose-cluster"),
        profiles=("cluster",),
        up=["secondary-88-103"],
    )
    try:
        hierarchy.start()
        job = hierarchy.run_job("setup-cluster")
        yield Setup(hierarchy, job.returncode, job.stdout + job.stderr)
    finally:
        hierarchy.stop()


@dataclass
class Scrape:
    """One Prometheus target's labels and what its ``/metrics`` answered."""

    target: str
    labels: dict[str, str]
    samples: list[Sample]
    families: dict[str, str]  # family name -> type


def demo_traffic(setup: Setup) -> None:
    """Resolutions through the top node (misses, then hits; a missing handle twice), at
    a secondary node (found, not found, a referral), a registration, and one resolution
    whose node is down (a prefix provisioned for a node not started, removed after)."""
    top = setup.url("top-88")
    secondary = setup.url("secondary-88-100")
    top_admin = ("300:0.NA/88", "demo-88")
    with httpx.Client(timeout=30) as http:
        planned = http.put(
            f"{top}/api/prefixes/88.199",
            json={"kind": "secondary", "nodeUrl": f"http://127.0.0.1:{free_port()}"},
            auth=top_admin,
        )
        assert planned.status_code == 201, planned.text
        assert http.get(f"{top}/api/handles/88.199/x").status_code == 502
        removed = http.delete(f"{top}/api/handles/0.NA/88.199", auth=top_admin)
        assert removed.status_code == 200, removed.text
        for _ in range(2):
            for handle in ("88.100.1/demo-0001", "88.101.1/demo-0002", "88.102.2/demo-0003"):
                answer = http.get(f"{top}/api/handles/{handle}")
                assert answer.status_code == 200, answer.text
            assert http.get(f"{top}/api/handles/88.100.2/no-such-thing").status_code == 404
        assert http.get(f"{secondary}/api/handles/88.100.1/demo-0004").status_code == 200
        assert http.get(f"{secondary}/api/handles/88.100.1/missing").status_code == 404
        referral = http.get(f"{secondary}/api/handles/88.102.1/demo-0001")
        assert referral.json()["responseCode"] == 301, referral.text
        created = http.put(
            f"{secondary}/api/handles/88.100.1/METRICS-1",
            json=[{"index": 1, "type": "URL", "data": "https://factory.example/m/1"}],
            auth=("300:0.NA/88.100.1", "demo-88.100.1"),
        )
        assert created.status_code == 201, created.text


@pytest.fixture(scope="session")
def scrapes(compose_hierarchy: Setup, prometheus_config: dict[str, Any]) -> list[Scrape]:
    """Every target of the Prometheus config scraped, after :func:`demo_traffic`."""
    assert compose_hierarchy.returncode == 0, compose_hierarchy.output
    demo_traffic(compose_hierarchy)
    found = []
    with httpx.Client(timeout=30) as http:
        for job in prometheus_config["scrape_configs"]:
            if job["job_name"] != "idnode":
                continue
            for group in job["static_configs"]:
                for target in group["targets"]:
                    local = compose_hierarchy.hierarchy.localize(f"http://{target}")
                    answer = http.get(f"{local}{job.get('metrics_path', '/metrics')}")
                    assert answer.status_code == 200, (target, answer.text)
                    families = list(text_string_to_metric_families(answer.text))
                    labels = {"job": job["job_name"], "instance": target, **group["labels"]}
                    found.append(
                        Scrape(
                            target,
                            labels,
                            [s for f in families for s in f.samples],
                            {f.name: f.type for f in families},
                        )
                    )
    return found
