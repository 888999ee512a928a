"""``docker compose --profile cluster up`` as processes: six real redis-servers in
cluster mode, made one cluster by the ``redis-cluster-create`` job's own script, the
88.103 node storing in it, set up by the ``setup-cluster`` job; an identifier of its
enterprise resolves through the demo's top node."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from node.embedded_cluster import cluster_info, redis_cli_binary
from tests.containers.conftest import Setup
from tests.containers.hierarchy import HOSTNAME_OPTIONS, is_cluster_member

server = pytest.mark.server  # the tests using the compose hierarchy's processes
MEMBERS = [f"redis-cluster-{n}" for n in range(1, 7)]


def ask(setup: Setup, member: str, *command: str) -> str:
    """A command's reply from a cluster member, by redis-cli."""
    port = setup.hierarchy.redis[member].port
    done = subprocess.run(
        [redis_cli_binary(), "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def nodes(setup: Setup) -> list[tuple[str, str, str]]:
    """``CLUSTER NODES`` of the first member: (id, flags, slots) of each, sorted."""
    rows = []
    for line in ask(setup, MEMBERS[0], "CLUSTER", "NODES").splitlines():
        words = line.split()
        flags = ",".join(f for f in words[2].split(",") if f != "myself")
        rows.append((words[0], flags, " ".join(words[8:])))
    return sorted(rows)


@server
def test_the_emulation_runs_every_member_of_the_profile(cluster_hierarchy: Setup) -> None:
    hierarchy = cluster_hierarchy.hierarchy
    members = [n for n, s in hierarchy.services.items() if is_cluster_member(s)]
    assert members == MEMBERS
    assert set(members) <= set(hierarchy.redis)
    # Options a local redis-server older than 7.0 does not know (its clients run on this
    # host: nothing to announce); every other option of the members' commands applies.
    assert all(set(dropped) <= set(HOSTNAME_OPTIONS) for dropped in hierarchy.dropped.values())
    # Without the profile, none of them would be in the run at all.
    assert "redis-cluster-create" in hierarchy.completed


@server
def test_the_creation_job_made_one_cluster_of_three_masters_with_a_replica_each(
    cluster_hierarchy: Setup,
) -> None:
    created = cluster_hierarchy.hierarchy.completed["redis-cluster-create"]
    assert created.returncode == 0, created.stdout + created.stderr
    assert "creating the cluster" in created.stdout
    assert "[OK] All 16384 slots covered" in created.stdout
    for member in MEMBERS:
        info = cluster_info(ask(cluster_hierarchy, member, "CLUSTER", "INFO"))
        assert info["cluster_state"] == "ok", (member, info)
        assert info["cluster_known_nodes"] == "6", (member, info)
        assert info["cluster_size"] == "3", (member, info)
        appendfsync = ask(cluster_hierarchy, member, "CONFIG", "GET", "appendfsync").split()
        assert appendfsync == ["appendfsync", "always"], member
    rows = nodes(cluster_hierarchy)
    masters = [r for r in rows if "master" in r[1]]
    assert len(masters) == 3 and all(slots for _, _, slots in masters), rows
    assert sum(1 for r in rows if "slave" in r[1]) == 3, rows


@server
def test_the_creation_job_again_finds_the_cluster_made(cluster_hierarchy: Setup) -> None:
    """A second ``docker compose --profile cluster up`` runs the job on kept members."""
    before = nodes(cluster_hierarchy)
    again = cluster_hierarchy.hierarchy.run_job("redis-cluster-create")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "made already" in again.stdout
    assert "--cluster create" not in again.stdout and "Performing hash" not in again.stdout
    assert nodes(cluster_hierarchy) == before  # the same members, roles and slots


@server
def test_the_setup_job_set_the_cluster_node_up(cluster_hierarchy: Setup) -> None:
    assert cluster_hierarchy.returncode == 0, cluster_hierarchy.output
    for expected in ("88.103", "300:0.NA/88.103.1", "demo-88.103.1", "100/100"):
        assert expected in cluster_hierarchy.output, cluster_hierarchy.output


@server
def test_an_identifier_on_the_cluster_resolves_through_the_top_node(
    cluster_hierarchy: Setup,
) -> None:
    """The containers guide's curl for the cluster profile."""
    top = cluster_hierarchy.url("top-88")
    node = cluster_hierarchy.url("secondary-88-103")
    answer = httpx.get(f"{top}/api/handles/88.103.1/demo-0001", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-resolved-by"] == node
    values = {v["type"]: v["data"]["value"] for v in answer.json()["values"]}
    assert values["MANUFACTURER"] == "Donghu Servo Robotics"
    assert values["URL"] == "https://id.donghu-servo.example.cn/products/demo-0001"
    ready = httpx.get(f"{node}/readyz", timeout=30).json()
    assert ready["registered"] is True, ready


@server
def test_the_node_stores_in_the_cluster_over_every_master(cluster_hierarchy: Setup) -> None:
    """The 88.103 node's keys are on the cluster's masters, spread over all three (its
    prefixes' keys over 16 hash slots each), none in the shared Redis's databases."""
    masters = [m for m in MEMBERS if ask(cluster_hierarchy, m, "ROLE").splitlines()[0] == "master"]
    sizes = {m: int(ask(cluster_hierarchy, m, "DBSIZE")) for m in masters}
    assert len(sizes) == 3 and all(size > 0 for size in sizes.values()), sizes
    shared = cluster_hierarchy.hierarchy.redis["redis"].port
    keyspace = subprocess.run(
        [redis_cli_binary(), "-p", str(shared), "INFO", "keyspace"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "db0:" in keyspace and "db1:" not in keyspace, keyspace  # the top node's only


@server
def test_setup_again_changes_nothing(cluster_hierarchy: Setup) -> None:
    before = cluster_hierarchy.applications("secondary-88-103", "88.103")
    assert before == [("91420100MA4M7R3T67", "approved", "88.103.1")]
    again = cluster_hierarchy.hierarchy.run_job("setup-cluster")
    assert again.returncode == 0, again.stdout + again.stderr
    assert cluster_hierarchy.applications("secondary-88-103", "88.103") == before
