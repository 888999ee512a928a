"""The compose file, as ``docker-compose config`` validates and resolves it, against the
containers guide (docs/guides/containers.md) and the demo hierarchy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from node.config import NodeConfig
from node.topology import Topology, demo_secret
from tests.containers.hierarchy import is_image_service, is_one_shot
from tests.containers.project import (
    COMPOSE_FILE,
    ROOT,
    compose_config,
    guide_section,
    guide_services,
    mounts,
    ports,
    pyproject,
)


def node_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if is_image_service(service) and not is_one_shot(service)
    }


def node_config(service: dict[str, Any]) -> NodeConfig:
    """The settings the node in this container runs with (compose's environment over
    the image's defaults, which the compose environment must not need)."""
    return NodeConfig.from_sources({}, {k: str(v) for k, v in service["environment"].items()})


def test_docker_compose_config_validates_the_file(
    compose_binary: str, compose: dict[str, Any]
) -> None:
    result = compose_config(compose_binary, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr and "WARNING" not in result.stderr, result.stderr
    services = compose_config(compose_binary, "--services")
    assert services.returncode == 0, services.stderr
    assert sorted(services.stdout.split()) == sorted(compose["services"])
    assert set(compose["volumes"]) == {"redis-data", "prometheus-data", "grafana-data"}


def test_docker_compose_config_rejects_a_broken_file(compose_binary: str, tmp_path: Path) -> None:
    """The validation above can fail: the same file with a misspelt key does not pass."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("depends_on:", "depend_on:", 1))
    result = compose_config(compose_binary, "--quiet", file=broken)
    assert result.returncode != 0
    assert "depend_on" in result.stderr


def test_every_service_the_readme_names_is_there_with_a_health_check(
    compose: dict[str, Any],
) -> None:
    where, section = guide_section()
    named = guide_services(section)
    services = compose["services"]
    missing = sorted(set(named) - set(services))
    assert not missing, f"{where} names services compose.yaml lacks: {missing}"
    for name, row in named.items():
        service = services[name]
        if is_one_shot(service):
            # A job that runs once says so, in the guide and by its settings.
            assert "one-shot" in row, f"{where}: say that {name} is a one-shot job"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_every_service_is_in_the_readme(compose: dict[str, Any]) -> None:
    where, section = guide_section()
    undocumented = sorted(set(compose["services"]) - set(guide_services(section)))
    assert not undocumented, f"{where} does not name {undocumented}"


def test_start_up_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nodes = node_services(compose)
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert rule == {"condition": "service_healthy"}, (name, dependency, rule)
    redis_services = [n for n, s in services.items() if str(s["image"]).startswith("redis:")]
    for name, service in nodes.items():
        env = service["environment"]
        # A node waits for the Redis it uses and for the node above it.
        store = urlsplit(env["IDNODE_REDIS_URL"]).hostname
        assert store in redis_services and store in service["depends_on"], name
        parent = env.get("IDNODE_PARENT_URL")
        if parent:
            assert urlsplit(parent).hostname in service["depends_on"], name
    (setup,) = [n for n, s in services.items() if is_image_service(s) and is_one_shot(s)]
    assert set(services[setup]["depends_on"]) == set(nodes)
    grafana = services["grafana"]
    assert "prometheus" in grafana["depends_on"]


def test_the_nodes_are_the_demo_topology(compose: dict[str, Any]) -> None:
    """The same prefixes, ports, industries, owners and secrets as ``idnode up``."""
    demo = Topology.demo()
    expected: dict[str, tuple[str, int, str, str]] = {
        demo.top_prefix: ("top", demo.top_port, "", demo.top_owner)
    }
    for spec in demo.secondaries:
        expected[spec.prefix] = ("secondary", spec.port, spec.industry, spec.owner)
        for n, ent in enumerate(spec.enterprises, start=1):
            if ent.port is not None:
                expected[f"{spec.prefix}.{n}"] = ("enterprise", ent.port, "", ent.name)
    running: dict[str, tuple[str, int, str, str]] = {}
    for name, service in node_services(compose).items():
        config = node_config(service)
        prefix = config.own_prefix.text
        running[prefix] = (config.role.value, config.port, config.industry, config.owner)
        assert config.admin_secret == demo_secret(prefix), name
        # The service's name is the node's, with dashes: where the others reach it.
        assert name == config.name.replace(".", "-"), name
        assert config.public_url == f"http://{name}:{config.port}"
        assert config.host == "0.0.0.0"
        published = [(p.host_ip, p.published) for p in ports(service) if p.target == config.port]
        assert published == [("127.0.0.1", str(config.port))], (name, service["ports"])
    assert running == expected


def test_each_node_has_its_own_database_on_the_shared_redis(compose: dict[str, Any]) -> None:
    urls = [s["environment"]["IDNODE_REDIS_URL"] for s in node_services(compose).values()]
    databases = [urlsplit(url).path for url in urls]
    assert len(set(databases)) == len(databases), databases
    assert all(re.fullmatch(r"/\d+", db) for db in databases), databases


def test_the_parents_are_the_hierarchy(compose: dict[str, Any]) -> None:
    nodes = {name: node_config(s) for name, s in node_services(compose).items()}
    by_url = {config.public_url: config for config in nodes.values()}
    for name, config in nodes.items():
        parent = by_url.get(config.parent_url or "")
        if config.role.value == "top":
            assert config.parent_url is None, name
            continue
        assert parent is not None, f"{name}: parent {config.parent_url} is no node service"
        assert parent.own_prefix.contains(config.own_prefix), name
        assert parent.role == config.traits.parent, name


def test_redis_keeps_every_acknowledged_write(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = [str(w) for w in redis["command"]]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    (volume,) = mounts(redis)
    assert volume.type == "volume" and volume.target == "/data"
    assert volume.source in compose["volumes"]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    version = pyproject()["project"]["version"]
    for name, service in compose["services"].items():
        image = str(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image}"
        if is_image_service(service):
            assert image == f"idnode:{version}", name
            assert service["build"]["dockerfile"] == "Dockerfile"
            assert service["pull_policy"] == "build", name
        else:
            assert re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z0-9.]+)?", tag), f"{name}: pin {image}"


def test_published_ports_are_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in ports(service):
            assert port.host_ip == "127.0.0.1", (name, port)


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in mounts(service):
            if volume.type == "bind":
                source = Path(volume.source)
                assert source.exists(), (name, source)
                assert source.resolve().is_relative_to(ROOT), (name, source)
                assert volume.read_only, (name, volume)


def test_the_setup_job_knows_every_node(compose: dict[str, Any]) -> None:
    """``idnode setup --url PORT=URL``: one per node of the topology, each the URL the
    node advertises."""
    services = compose["services"]
    (setup,) = [s for s in services.values() if is_image_service(s) and is_one_shot(s)]
    command = [str(w) for w in setup["command"]]
    assert command[0] == "setup"
    urls = dict(
        word.removeprefix("--url=").split("=", 1) for word in command if word.startswith("--url=")
    )
    advertised = {
        str(node_config(s).port): node_config(s).public_url for s in node_services(compose).values()
    }
    assert urls == advertised
    assert sorted(int(p) for p in urls) == sorted(Topology.demo().ports())
