"""Prometheus's scrape config: every node service of the compose file, labelled the way
the dashboard groups, and each one answering its scrape."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from tests.containers.conftest import PROMETHEUS_CONFIG, Scrape
from tests.containers.hierarchy import is_image_service, is_one_shot, profiles
from tests.containers.project import mounts


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match[2]]


def idnode_job(prometheus_config: dict[str, Any]) -> dict[str, Any]:
    (job,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "idnode"]
    assert isinstance(job, dict)
    return job


def test_the_scrape_config_is_every_node_service(
    prometheus_config: dict[str, Any], compose: dict[str, Any]
) -> None:
    job = idnode_job(prometheus_config)
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    targets = {
        target: group["labels"] for group in job["static_configs"] for target in group["targets"]
    }
    expected = {}
    for name, service in compose["services"].items():
        # The default profile's nodes: a profile's node is not always there to scrape.
        if not is_image_service(service) or is_one_shot(service) or profiles(service):
            continue
        config = NodeConfig.from_sources({}, {k: str(v) for k, v in service["environment"].items()})
        expected[f"{name}:{config.port}"] = {
            "node": config.name,
            "role": config.role.value,
            "prefix": config.own_prefix.text,
        }
    assert targets == expected


def test_scraping_is_frequent_enough_for_the_dashboard(prometheus_config: dict[str, Any]) -> None:
    settings = prometheus_config["global"]
    interval = seconds(settings["scrape_interval"])
    assert interval <= 15
    assert seconds(settings["scrape_timeout"]) < interval
    (own,) = [j for j in prometheus_config["scrape_configs"] if j["job_name"] == "prometheus"]
    assert own["static_configs"][0]["targets"] == ["127.0.0.1:9090"]


def test_compose_mounts_the_scrape_config(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    binds = {Path(m.source).resolve(): m for m in mounts(prometheus) if m.type == "bind"}
    mount = binds[PROMETHEUS_CONFIG.resolve()]
    assert mount.target == "/etc/prometheus/prometheus.yml" and mount.read_only
    assert "9090" in " ".join(prometheus["healthcheck"]["test"])


def test_every_target_answers_with_the_node_metrics(
    scrapes: list[Scrape], prometheus_config: dict[str, Any]
) -> None:
    job = idnode_job(prometheus_config)
    assert len(scrapes) == sum(len(g["targets"]) for g in job["static_configs"])
    for scrape in scrapes:
        names = {s.name for s in scrape.samples}
        for metric in (
            "idnode_http_requests_total",
            "idnode_http_request_duration_seconds_bucket",
            "idnode_resolutions_total",
            "idnode_cache_hit_ratio",
            "idnode_registrations_total",
            "idnode_enterprises",
        ):
            assert metric in names, (scrape.target, metric)
        # Target labels must not clash with the nodes' own (Prometheus would rename them).
        own = {label for s in scrape.samples for label in s.labels}
        assert not own & set(scrape.labels), (scrape.target, own & set(scrape.labels))


def test_the_traffic_shows_in_the_scrapes(scrapes: list[Scrape]) -> None:
    """The scrapes the dashboard test reads saw real traffic: the top node's cache hits,
    the secondary's authoritative answers and registrations, approved enterprises."""

    def value(node: str, name: str, **labels: str) -> float:
        (scrape,) = [s for s in scrapes if s.labels["node"] == node]
        return sum(
            s.value
            for s in scrape.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert value("top-88", "idnode_resolutions_total", outcome="cache_hit") >= 3
    assert value("top-88", "idnode_resolutions_total", outcome="negative_hit") >= 1
    assert 0 < value("top-88", "idnode_cache_hit_ratio") < 1
    assert value("secondary-88.100", "idnode_resolutions_total", outcome="authoritative") >= 2
    assert value("secondary-88.100", "idnode_resolutions_total", outcome="referral") >= 1
    assert value("secondary-88.100", "idnode_registrations_total") >= 301  # seeded + 1
    assert value("secondary-88.100", "idnode_enterprises") == 3
    assert value("secondary-88.101", "idnode_enterprises") == 2
    assert value("top-88", "idnode_resolutions_total", outcome="upstream_error") >= 1
    assert value("top-88", "idnode_upstream_errors_total", kind="unavailable") >= 1
