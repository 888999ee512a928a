"""A local Redis Cluster for development and tests: ``masters`` real ``redis-server``
processes with ``cluster-enabled yes`` on loopback, each followed by ``replicas``
replicas, made one cluster by ``redis-cli --cluster create`` (Redis's own tool: the
slots are cut evenly among the masters, each replica is given a master).

Each member is an :class:`node.embedded_redis.EmbeddedRedis` in a directory of its own
(AOF on, ``appendfsync always`` unless told otherwise, the compact encodings the store
relies on), plus the cluster's settings. A member's port is part of the cluster's state
(every member's ``nodes.conf`` names the others by address), so the ports are chosen
once, kept in ``cluster.json``, and a cluster started again from the same directory
comes back on the same ports with its data and roles::

    <data_dir>/cluster.json    the members' ports, masters first, as created
    <data_dir>/<n>/            member n: redis.conf, nodes.conf, appendonly.aof, redis.log

``cluster-node-timeout`` is short (:data:`NODE_TIMEOUT_MS`): a master that stops
answering is replaced by its replica within a few seconds. With
``cluster-require-full-coverage no`` the slots of the masters that are up stay served
while another's are being failed over. :meth:`EmbeddedCluster.supervise` restarts a
member that exits, on its port: a master killed and replaced comes back as a replica.

The cluster is reached by the URL :meth:`EmbeddedCluster.url` gives,
``redis+cluster://127.0.0.1:<port>,127.0.0.1:<port>,...`` (the masters as created; any
member a client can reach finds the rest).

>>> cluster = EmbeddedCluster(Path("/tmp/idnode-cluster"), masters=3)  # doctest: +SKIP
>>> url = cluster.start()                                              # doctest: +SKIP
>>> cluster.stop()                                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from node.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from registry.errors import ConfigError, StoreUnavailable

log = logging.getLogger("idnode.node")

SCHEME = "redis+cluster"
NODE_TIMEOUT_MS = 3000  # a master silent this long is failed over to its replica
STATE_FILE = "cluster.json"
_CREATE_TIMEOUT = 60.0  # seconds redis-cli may take to create the cluster
_SETTLE_TIMEOUT = 30.0  # seconds for every member to agree the cluster is whole


BUS_OFFSET = 10_000  # a member also listens on its port + this, for the cluster bus


def member_port(host: str, avoid: list[int]) -> int:
    """A free port for a member whose bus port (+ :data:`BUS_OFFSET`) is free too (and
    so at most 65535: Redis refuses a member port above 55535)."""
    while True:
        port = free_port(host, avoid=avoid)
        if port + BUS_OFFSET > 65535 or port + BUS_OFFSET in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port + BUS_OFFSET))
            except OSError:
                continue
        return port


def redis_cli_binary() -> str:
    """The ``redis-cli`` beside the ``redis-server`` that runs (they must agree on the
    cluster protocol), else the one on PATH."""
    server = Path(redis_server_binary())
    beside = server.with_name("redis-cli")
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise ConfigError(f"no redis-cli beside {server} nor on PATH: it creates the cluster")
    return found


def cluster_url(host: str, ports: list[int]) -> str:
    """
    >>> cluster_url("127.0.0.1", [7000, 7001])
    'redis+cluster://127.0.0.1:7000,127.0.0.1:7001'
    """
    return f"{SCHEME}://" + ",".join(f"{host}:{port}" for port in ports)


def cluster_info(reply: str) -> dict[str, str]:
    """``CLUSTER INFO``'s ``name:value`` lines as a dict.

    >>> cluster_info("cluster_state:ok\\r\\ncluster_known_nodes:6\\r\\n")["cluster_state"]
    'ok'
    """
    pairs = (line.partition(":") for line in reply.splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, _, value in pairs}


class EmbeddedCluster:
    """``masters`` masters with ``replicas`` replicas each, owning ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        appendfsync: str = "always",
        host: str = "127.0.0.1",
        node_timeout_ms: int = NODE_TIMEOUT_MS,
    ) -> None:
        if masters < 3:
            # redis-cli --cluster create refuses fewer: a majority of masters must be
            # able to vote a failed one out.
            raise ConfigError(f"a Redis Cluster needs at least 3 masters, not {masters}")
        if replicas < 0:
            raise ConfigError(f"replicas per master must be 0 or more, not {replicas}")
        self.data_dir = data_dir.resolve()
        self.masters, self.replicas = masters, replicas
        self.appendfsync = appendfsync
        self.host = host
        self.node_timeout_ms = node_timeout_ms
        self.members: list[EmbeddedRedis] = []

    @property
    def size(self) -> int:
        return self.masters * (1 + self.replicas)

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def url(self) -> str:
        if not self.members:
            raise StoreUnavailable("the embedded Redis Cluster is not running")
        return cluster_url(self.host, [m.fixed_port or 0 for m in self.members[: self.masters]])

    def start(self) -> str:
        """Start every member and, the first time, create the cluster; return once every
        member sees the whole cluster in state ok. The URL names the masters."""
        start_clusters([self])
        return self.url

    def _launch(self) -> list[int] | None:
        """Start every member (from the calling thread: see :func:`start_clusters`);
        the ports of the masters and replicas to make a cluster of, or None when it
        was made before."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports, created = self._ports()
        added = self._added() if created else []
        self.members = [self._member(n, port) for n, port in enumerate(ports + added)]
        for member in self.members:
            member.start()
        return None if created else ports

    def _form(self, ports: list[int] | None) -> None:
        """Make the cluster of ``ports`` (unless None: made before), and wait until it
        has settled."""
        if ports is not None:
            self._create(ports)
            self._save(ports, [])
        self._wait_settled()

    def node_id(self, port: int) -> str:
        """The cluster's id of the member on ``port`` (``CLUSTER MYID``)."""
        found = self.command(port, "CLUSTER", "MYID").strip()
        if not found:
            raise StoreUnavailable(f"the cluster member on port {port} does not answer")
        return found

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move ``slots`` hash slots, with their keys, from the master on port ``source``
        to the one on ``target`` (``redis-cli --cluster reshard``: each key moves by
        MIGRATE; meanwhile clients are redirected with ASK, and a command over several
        keys of a slot half moved is answered TRYAGAIN)."""
        self._cluster_tool(
            "reshard",
            f"{self.host}:{source}",
            "--cluster-from",
            self.node_id(source),
            "--cluster-to",
            self.node_id(target),
            "--cluster-slots",
            str(slots),
            "--cluster-yes",
        )

    def add_master(self) -> int:
        """Add a machine: a new master (and ``replicas`` replicas of it) joins the
        cluster (``redis-cli --cluster add-node``), then the slots are rebalanced so it
        holds its share (``--cluster rebalance --cluster-use-empty-masters``). The new
        members are kept in ``cluster.json``, so a restart brings them back. Returns the
        new master's port."""
        taken = self._ports_running()
        fresh: list[int] = []
        for _ in range(1 + self.replicas):
            avoid = taken + fresh
            fresh.append(member_port(self.host, [*avoid, *(p + BUS_OFFSET for p in avoid)]))
        self._save(self._ports()[0], self._added() + fresh)
        known = f"{self.host}:{taken[0]}"
        join: tuple[str, ...] = ()  # the first joins as a master, the rest as its replicas
        for port in fresh:
            member = self._member(len(self.members), port)
            member.start()
            self.members.append(member)
            self._cluster_tool("add-node", f"{self.host}:{port}", known, *join)
            self._wait_known(len(self.members))
            join = ("--cluster-slave", "--cluster-master-id", self.node_id(fresh[0]))
        self._cluster_tool("rebalance", known, "--cluster-use-empty-masters", "--cluster-yes")
        return fresh[0]

    def supervise(self) -> None:
        """Restart any member that exits, on its own port (see the module docstring)."""
        for member in self.members:
            member.supervise()

    def stop(self) -> None:
        """Stop every member (SIGTERM: each fsyncs its AOF and saves nodes.conf)."""
        for member in self.members:
            with contextlib.suppress(Exception):
                member.stop()
        self.members = []

    def master_ports(self) -> list[int]:
        """The ports of the members that are masters now (after failovers too)."""
        return [p for p in self._ports_running() if self.role(p) == "master"]

    def _ports(self) -> tuple[list[int], bool]:
        """The members' ports, and whether the cluster was created already."""
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            ports: list[int] = []
            for _ in range(self.size):
                ports.append(member_port(self.host, [*ports, *(p + BUS_OFFSET for p in ports)]))
            return ports, False
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.state_file} is unreadable: {exc}") from None
        kept = [int(port) for port in state["ports"]]
        if len(kept) != self.size or int(state["masters"]) != self.masters:
            raise ConfigError(
                f"{self.data_dir} holds a cluster of {state['masters']} masters and "
                f"{len(kept)} members, not {self.masters} and {self.size}: use another "
                "data directory, or the same shape"
            )
        return kept, True

    def _added(self) -> list[int]:
        """The ports of the members :meth:`add_master` added since the cluster was made."""
        state = json.loads(self.state_file.read_text())
        return [int(port) for port in state.get("added", [])]

    def _save(self, ports: list[int], added: list[int]) -> None:
        state = {"ports": ports, "masters": self.masters, "added": added}
        self.state_file.write_text(json.dumps(state))

    def _cluster_tool(self, *args: str) -> str:
        """``redis-cli --cluster <args>``; its output, or a clear error if it failed. A
        run refused because the members do not agree on the slots yet (the gossip of a
        move made just before is still spreading) is made again, for up to
        :data:`_SETTLE_TIMEOUT` seconds."""
        command = [redis_cli_binary(), "--cluster", *args]
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        while True:
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=_CREATE_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired:
                raise StoreUnavailable(
                    f"redis-cli --cluster {args[0]} did not finish in {_CREATE_TIMEOUT:.0f} s"
                ) from None
            if "Nodes don't agree about configuration" not in done.stdout:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if done.returncode != 0 or "[ERR]" in done.stdout:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise StoreUnavailable(f"redis-cli --cluster {args[0]} failed: {' | '.join(tail)}")
        return done.stdout

    def _member(self, number: int, port: int) -> EmbeddedRedis:
        return EmbeddedRedis(
            self.data_dir / str(number),
            appendfsync=self.appendfsync,
            host=self.host,
            databases=1,  # a cluster has database 0 only
            port=port,
            extra_config=[
                "cluster-enabled yes",
                'cluster-config-file "nodes.conf"',
                f"cluster-node-timeout {self.node_timeout_ms}",
                "cluster-require-full-coverage no",
            ],
        )

    def _create(self, ports: list[int]) -> None:
        members = [f"{self.host}:{port}" for port in ports]
        done = self._cluster_tool(
            "create", *members, "--cluster-replicas", str(self.replicas), "--cluster-yes"
        )
        if "[OK] All 16384 slots covered" not in done:
            tail = done.strip().splitlines()[-5:]
            raise StoreUnavailable(f"redis-cli --cluster create failed: {' | '.join(tail)}")
        log.info("embedded redis cluster created", extra={"ports": ports})

    def _wait_settled(self) -> None:
        """Until every member says the cluster is ok, knows every member, and the
        masters hold every slot; a clear error after :data:`_SETTLE_TIMEOUT`."""
        self._wait_until(
            lambda i: (
                i.get("cluster_state") == "ok"
                and i.get("cluster_known_nodes") == str(len(self.members))
                and i.get("cluster_slots_assigned") == "16384"
            )
        )

    def _wait_known(self, count: int) -> None:
        """Until every running member knows ``count`` members (a node added is met by
        gossip, which takes a moment)."""
        self._wait_until(lambda i: i.get("cluster_known_nodes") == str(count))

    def _wait_until(self, holds: Callable[[dict[str, str]], bool]) -> None:
        """Until ``holds`` holds for every running member's ``CLUSTER INFO``; a clear
        error after :data:`_SETTLE_TIMEOUT`."""
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            ports = self._ports_running()
            infos = [cluster_info(self.command(p, "CLUSTER", "INFO")) for p in ports]
            if infos and all(holds(info) for info in infos):
                return
            seen = next((info for info in infos if not holds(info)), {})
            time.sleep(0.1)
        raise StoreUnavailable(
            f"the embedded Redis Cluster in {self.data_dir} did not settle in "
            f"{_SETTLE_TIMEOUT:.0f} s: {seen.get('cluster_state', 'no answer')}, "
            f"{seen.get('cluster_known_nodes', '?')} of {len(self.members)} members known"
        )

    def _ports_running(self) -> list[int]:
        return [m.port for m in self.members if m.port is not None]

    def role(self, port: int) -> str:
        """The role (``master``, ``slave``) of the member on ``port``, "" if it is down."""
        reply = self.command(port, "ROLE")
        return reply.splitlines()[0].strip() if reply else ""

    def command(self, port: int, *args: str) -> str:
        """A command's reply through redis-cli, "" when the member does not answer."""
        cli = [redis_cli_binary(), "-h", self.host, "-p", str(port), *args]
        try:
            done = subprocess.run(cli, capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout if done.returncode == 0 else ""


def start_clusters(clusters: list[EmbeddedCluster]) -> None:
    """Start several clusters at once: every member from the calling thread (a server
    dies with the thread that forked it, and this one lives as long as the caller),
    then each cluster made and settled on a thread of its own, as ``redis-cli
    --cluster create`` spends most of its seconds waiting. On any failure every
    cluster is stopped and the first error raised."""
    try:
        made = [cluster._launch() for cluster in clusters]
        with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as pool:
            forming = [
                pool.submit(cluster._form, ports)
                for cluster, ports in zip(clusters, made, strict=True)
            ]
            for done in forming:
                done.result()
    except BaseException:
        for cluster in clusters:
            cluster.stop()
        raise
