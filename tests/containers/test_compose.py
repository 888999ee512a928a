"""The compose file, as ``docker-compose config`` validates and resolves it, against the
containers guide (docs/guides/containers.md) and the demo hierarchy; and its ``cluster``
profile against deploy/cluster (the cluster's creation job, the 88.103 node's topology)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from node.config import NodeConfig
from node.embedded_cluster import NODE_TIMEOUT_MS
from node.topology import Topology, demo_secret
from registry.redis_client import cluster_members, is_cluster_url
from tests.containers.hierarchy import (
    COMPLETED,
    HEALTHY,
    is_cluster_member,
    is_image_service,
    is_one_shot,
    is_redis,
    profiles,
    redis_options,
    redis_port,
)
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

CLUSTER = "cluster"  # the profile: docker compose --profile cluster up
CLUSTER_TOPOLOGY = ROOT / "deploy" / "cluster" / "topology.toml"
CREATE_SCRIPT = ROOT / "deploy" / "cluster" / "create-cluster.sh"


def in_profile(service: dict[str, Any], profile: str | None) -> bool:
    """Whether the service is the default run's (``profile`` None) or only the profile's."""
    return profiles(service) == (() if profile is None else (profile,))


def node_services(compose: dict[str, Any], profile: str | None = None) -> dict[str, dict[str, Any]]:
    """The node services of the default run, or those the profile adds."""
    return {
        name: service
        for name, service in compose["services"].items()
        if is_image_service(service) and not is_one_shot(service) and in_profile(service, profile)
    }


def setup_job(compose: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """The one ``idnode setup`` job of the default run, or of the profile."""
    jobs: list[dict[str, Any]] = [
        s
        for s in compose["services"].values()
        if is_image_service(s) and is_one_shot(s) and in_profile(s, profile)
    ]
    assert len(jobs) == 1, (profile, jobs)
    return jobs[0]


def cluster_members_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if is_cluster_member(s)}


def setup_urls(job: dict[str, Any]) -> dict[str, str]:
    command = [str(w) for w in job["command"]]
    assert command[0] == "setup"
    return dict(
        word.removeprefix("--url=").split("=", 1) for word in command if word.startswith("--url=")
    )


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
    members = {f"redis-cluster-{n}-data" for n in range(1, 7)}
    assert set(compose["volumes"]) == {"redis-data", "prometheus-data", "grafana-data"} | members
    with_profile = compose_config(compose_binary, "--quiet", profile=CLUSTER)
    assert with_profile.returncode == 0, with_profile.stderr
    assert "WARNING" not in with_profile.stderr, with_profile.stderr


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
    """Every dependency waits for the service to be healthy, or, for a one-shot job, for
    it to have exited 0; a default service never depends on a profile's."""
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            expected = COMPLETED if is_one_shot(services[dependency]) else HEALTHY
            assert rule == expected, (name, dependency, rule)
            needs = set(profiles(services[dependency]))
            assert not needs or needs <= set(profiles(service)), (
                f"{name} needs {dependency}, which only a profile starts"
            )
    redis_services = [n for n, s in services.items() if is_redis(s)]
    for profile in (None, CLUSTER):
        for name, service in node_services(compose, profile).items():
            env = service["environment"]
            url = env["IDNODE_REDIS_URL"]
            if is_cluster_url(url):
                # It waits for the job that makes the cluster of the members it names.
                (job,) = [d for d, rule in service["depends_on"].items() if rule == COMPLETED]
                hosts = {host for host, _ in cluster_members(url)}
                assert hosts <= set(services[job]["depends_on"]), (name, job)
            else:
                # A node waits for the Redis it uses.
                store = urlsplit(url).hostname
                assert store in redis_services and store in service["depends_on"], name
            # ... and for the node above it.
            parent = env.get("IDNODE_PARENT_URL")
            if parent:
                assert urlsplit(parent).hostname in service["depends_on"], name
    # Each setup job waits for every node it sets up.
    for profile in (None, CLUSTER):
        job = setup_job(compose, profile)
        named = {urlsplit(url).hostname for url in setup_urls(job).values()}
        assert set(job["depends_on"]) == named, profile
    assert set(setup_job(compose)["depends_on"]) == set(node_services(compose))
    grafana = services["grafana"]
    assert "prometheus" in grafana["depends_on"]


def test_only_the_cluster_profile_adds_services(compose: dict[str, Any]) -> None:
    """``docker compose up`` without ``--profile cluster`` starts what it did before: the
    profile's services are the cluster's members, its creation job, the 88.103 node and
    its setup job, nothing else, and no other service has a profile."""
    added = {n for n, s in compose["services"].items() if profiles(s)}
    assert all(profiles(compose["services"][n]) == (CLUSTER,) for n in added)
    assert added == {
        *cluster_members_of(compose),
        "redis-cluster-create",
        "secondary-88-103",
        "setup-cluster",
    }
    assert set(cluster_members_of(compose)) == {f"redis-cluster-{n}" for n in range(1, 7)}


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
    assert running_nodes(compose, None) == expected


def test_the_cluster_node_is_its_topology_under_the_demo_top(compose: dict[str, Any]) -> None:
    """The profile's nodes are the secondaries of deploy/cluster/topology.toml, whose top
    is the demo's, on ports no default node uses."""
    topology = Topology.load(CLUSTER_TOPOLOGY)
    demo = Topology.demo()
    assert (topology.top_prefix, topology.top_port) == (demo.top_prefix, demo.top_port)
    expected = {
        spec.prefix: ("secondary", spec.port, spec.industry, spec.owner)
        for spec in topology.secondaries
    }
    assert running_nodes(compose, CLUSTER) == expected
    assert not {s.port for s in topology.secondaries} & set(demo.ports())
    assert not {s.prefix for s in topology.secondaries} & {s.prefix for s in demo.secondaries}
    for spec in topology.secondaries:
        assert not any(e.port for e in spec.enterprises), "an enterprise node needs a service"


def running_nodes(
    compose: dict[str, Any], profile: str | None
) -> dict[str, tuple[str, int, str, str]]:
    """prefix -> (role, port, industry, owner) of the run's (or profile's) node services,
    each checked to be named, reached and published as the demo's are."""
    running: dict[str, tuple[str, int, str, str]] = {}
    for name, service in node_services(compose, profile).items():
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
    return running


def test_each_node_has_its_own_database_on_the_shared_redis(compose: dict[str, Any]) -> None:
    urls = [s["environment"]["IDNODE_REDIS_URL"] for s in node_services(compose).values()]
    assert all(urlsplit(url).hostname == "redis" for url in urls), urls
    databases = [urlsplit(url).path for url in urls]
    assert len(set(databases)) == len(databases), databases
    assert all(re.fullmatch(r"/\d+", db) for db in databases), databases


def test_the_cluster_node_names_every_member_of_the_cluster(compose: dict[str, Any]) -> None:
    """``redis+cluster://`` with each member, at the port it listens on (any would do, but
    the node then starts whichever members are up)."""
    members = cluster_members_of(compose)
    for name, service in node_services(compose, CLUSTER).items():
        url = service["environment"]["IDNODE_REDIS_URL"]
        assert is_cluster_url(url), (name, url)
        named = cluster_members(url)
        assert sorted(named) == sorted((m, redis_port(s)) for m, s in members.items()), url


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
    """The shared Redis and every cluster member: AOF, fsync before every reply, on a
    volume of its own."""
    redis_services = {n: s for n, s in compose["services"].items() if is_redis(s)}
    assert set(redis_services) == {"redis", *cluster_members_of(compose)}
    sources = []
    for name, service in redis_services.items():
        options = redis_options(service)
        assert options["appendonly"] == "yes", name
        assert options["appendfsync"] == "always", name
        (volume,) = mounts(service)
        assert volume.type == "volume" and volume.target == "/data", name
        assert volume.source in compose["volumes"], name
        sources.append(volume.source)
    assert len(set(sources)) == len(sources), sources


def test_the_cluster_members_have_the_embedded_clusters_settings(compose: dict[str, Any]) -> None:
    """Those of node/embedded_cluster.py, and each announces its own service name, which
    clients in other containers resolve (redirects name it, not an address)."""
    images = {s["image"] for s in compose["services"].values() if is_redis(s)}
    assert images == {compose["services"]["redis"]["image"]}
    for name, service in cluster_members_of(compose).items():
        options = redis_options(service)
        assert options["cluster-config-file"] == "nodes.conf", name
        assert options["cluster-node-timeout"] == str(NODE_TIMEOUT_MS), name
        assert options["cluster-require-full-coverage"] == "no", name
        assert options["cluster-announce-hostname"] == name
        assert options["cluster-preferred-endpoint-type"] == "hostname", name
        assert service["healthcheck"]["test"] == compose["services"]["redis"]["healthcheck"]["test"]


def test_the_cluster_creation_job_is_one_shot_and_idempotent(compose: dict[str, Any]) -> None:
    """One job in the members' image runs deploy/cluster/create-cluster.sh on every
    member, one replica per master; the script creates the cluster only when the first
    member holds no slots, and waits until it is whole. (Run for real against local
    members, twice, in test_cluster_profile.py.)"""
    services = compose["services"]
    job = services["redis-cluster-create"]
    assert is_one_shot(job) and not is_image_service(job)
    assert job["image"] == services["redis"]["image"]
    members = cluster_members_of(compose)
    assert set(job["depends_on"]) == set(members)
    (mount,) = mounts(job)
    assert mount.type == "bind" and mount.read_only
    assert Path(mount.source) == CREATE_SCRIPT.parent
    command = [str(w) for w in job["command"]]
    assert command[:2] == ["sh", f"{mount.target}/{CREATE_SCRIPT.name}"]
    assert command[2:4] == ["--replicas", "1"]
    assert command[4:] == [f"{m}:{redis_port(s)}" for m, s in members.items()]
    assert len(members) == 3 * (1 + 1)  # three masters: the fewest redis-cli accepts
    script = CREATE_SCRIPT.read_text("utf-8")
    assert script.startswith("#!/bin/sh\n") and "set -eu" in script
    made = script.index('"$(info "$first" cluster_slots_assigned)" = 16384')
    assert made < script.index("redis-cli --cluster create $members") < script.index("until whole")
    assert "getent hosts" in script  # CLUSTER MEET takes addresses, not names


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
    setup = setup_job(compose)
    assert not any(str(w).startswith("--topology") for w in setup["command"])  # the demo's
    urls = setup_urls(setup)
    advertised = {
        str(node_config(s).port): node_config(s).public_url for s in node_services(compose).values()
    }
    assert urls == advertised
    assert sorted(int(p) for p in urls) == sorted(Topology.demo().ports())


def test_the_cluster_setup_job_knows_its_node_and_the_top(compose: dict[str, Any]) -> None:
    """``idnode setup --topology deploy/cluster/topology.toml`` (mounted read-only), with
    the URL of each node of that topology: the demo's top node and the 88.103 node."""
    setup = setup_job(compose, CLUSTER)
    topologies = [str(w) for w in setup["command"] if str(w).startswith("--topology=")]
    (given,) = topologies
    (mount,) = [m for m in mounts(setup) if m.target == given.removeprefix("--topology=")]
    assert mount.type == "bind" and mount.read_only
    assert Path(mount.source) == CLUSTER_TOPOLOGY
    nodes = {**node_services(compose), **node_services(compose, CLUSTER)}
    advertised = {str(node_config(s).port): node_config(s).public_url for s in nodes.values()}
    urls = setup_urls(setup)
    assert urls == {port: advertised[port] for port in urls}
    assert sorted(int(p) for p in urls) == sorted(Topology.load(CLUSTER_TOPOLOGY).ports())
