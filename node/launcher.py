"""``idnode up``: start a whole hierarchy from a topology, set it up through its own APIs,
and stop every process it started on Ctrl-C.

The hierarchy is built the way operators would build it, over HTTP:

1. one embedded Redis (unless ``--redis-url``); each node gets its own database number;
   with ``--cluster N`` instead, each node gets an embedded Redis Cluster of its own,
   N masters and a replica each (a cluster has database 0 only, and a real node's
   operator runs its own): the top and secondary nodes' clusters made together, an
   enterprise node's just before it starts (its prefix is allocated meanwhile);
2. the top node; its administrator provisions every secondary prefix with the secret
   that secondary node will log in with;
3. the secondary nodes, which register themselves with the top node;
4. the enterprises apply at their secondary node, which approves them (allocating
   ``<secondary>.1``, ``.2``, ... in topology order and filing them with the top node);
5. enterprise nodes, for enterprises that run their own;
6. the sample identifiers, then the traced products' identifiers (``[[product]]``), each
   registered with the credentials of the enterprise holding it;
7. recursive nodes, if any.

With ``attach`` (``idnode setup``) the launcher starts nothing: the nodes already run
(containers, or ``idnode serve`` by hand, with the demo secrets), and the same steps wait
for each node at its URL instead of starting it, then set the hierarchy up through its
APIs. Every step is idempotent, so running it again changes nothing.

Every child process is started with PDEATHSIG, so even a launcher killed with -9 takes
its nodes (and they their Redis) down with it, and in a process group of its own, so a
Ctrl-C at the terminal reaches the launcher only (which stops the nodes in order) and
not each node (which would print its own KeyboardInterrupt).

:meth:`Launcher.run_until_signal` (``idnode up``) prints one line per step as it goes,
then the table, then a line starting ``ready:``: only then is the hierarchy built and
seeded (a node's ``/readyz`` only says that node can serve). A signal during start-up
stops at once; a node that exits later is reported with the end of its log, and the
hierarchy is stopped. The embedded Redis is supervised: when it exits it is restarted
on the same port with its data, and a line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from node.embedded_cluster import EmbeddedCluster, start_clusters
from node.embedded_redis import EmbeddedRedis, die_with_parent
from node.seeder import Seeder, SeedJob
from node.startup import still_loading
from node.topology import EnterpriseSpec, SecondarySpec, Topology, demo_secret
from registry.credential import generate_secret
from registry.errors import ConfigError
from registry.prefix_entry import node_url_problem
from resolver.upstream import Credentials

READY_TIMEOUT = 60.0  # seconds without progress (a store that loads is progressing)
LOAD_SHOWN_EVERY = 5.0  # seconds between lines on a loading store's progress
_DATABASES = 256


DEMO_INDEXED_TYPES = "URL,PRODUCT_NAME,BATCH,PRODUCTION_DATE,MANUFACTURER"


@dataclass
class NodeAt:
    """A node of the hierarchy and where it answers."""

    name: str
    role: str
    prefix: str
    url: str


@dataclass
class RunningNode(NodeAt):
    """A node this launcher started."""

    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Identity:
    prefix: str
    secret: str
    node: str  # where it is used

    @property
    def text(self) -> str:
        return f"300:0.NA/{self.prefix}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.text, self.secret)


@dataclass
class Launcher:
    """Starts and stops one hierarchy.

    >>> launcher = Launcher(Topology.demo(), data_dir=None)   # doctest: +SKIP
    >>> asyncio.run(launcher.run_until_signal())              # doctest: +SKIP
    """

    topology: Topology
    data_dir: Path | None
    redis_url: str | None = None
    cluster: int = 0  # masters of each node's embedded Redis Cluster (0: one Redis for all)
    random_secrets: bool = False
    host: str = "127.0.0.1"
    out: Any = sys.stdout
    node_env: dict[str, str] = field(default_factory=dict)  # extra IDNODE_* for every node
    # What the nodes index (--indexed-types): every field the sample identifiers carry,
    # so the walk-through's searches and queries work; IDNODE_INDEXED_TYPES in node_env wins.
    indexed_types: str = DEMO_INDEXED_TYPES
    workers: dict[str, int] = field(default_factory=dict)  # --workers by node name (else 1)
    progress: Any = None  # where seeding progress is printed (None: nowhere)
    steps: Any = None  # where one line per start-up step is printed (None: nowhere)
    log_dir: Path | None = None  # the nodes' and Redis's logs (None: <data dir>/logs)
    ready_file: Path | None = None  # written once ready, removed on stop (run_until_signal)
    # Set up nodes that already run instead of starting them: each node's URL by its
    # topology port (a node left out answers at http://<host>:<port>).
    attach: dict[int, str] | None = None
    nodes: list[RunningNode] = field(default_factory=list)
    attached: list[NodeAt] = field(default_factory=list)
    identities: list[Identity] = field(default_factory=list)
    _redis: EmbeddedRedis | None = None
    # Each node's embedded Redis Cluster (--cluster), by node name.
    clusters: dict[str, EmbeddedCluster] = field(default_factory=dict)
    _temp: Path | None = None
    _databases: int = 0
    _began: float = field(default_factory=time.monotonic)
    _output_closed: Any = None  # called once when ``out`` turns out to be a closed pipe

    # -- life cycle -------------------------------------------------------------------

    async def run_until_signal(self) -> int:
        """Start the hierarchy, report it ready, and run until a signal or until a node
        dies; stop everything. Returns the exit status: 0 when stopped after being ready,
        128 + the signal when stopped during start-up (130 for Ctrl-C), 1 when a node
        died, 141 when ``out`` was closed (``idnode up | head``)."""
        self._check_ports_free()  # before anything starts, so there is nothing to stop
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[Any] = loop.create_future()

        def stop_with(signum: int) -> None:
            if not stopped.done():
                stopped.set_result(signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_with, sig)
        self._output_closed = lambda: stop_with(signal.SIGPIPE)
        starting: asyncio.Future[Any] = asyncio.ensure_future(self.start())
        died: asyncio.Future[Any] = asyncio.ensure_future(self._first_death())
        redis_watch = asyncio.ensure_future(self._report_redis_restarts())
        ready = False
        try:
            await asyncio.wait({starting, stopped, died}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a start-up error is raised here
                self.print_table()
                self._announce_ready()
                ready = True
                await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
            if died.done() and not stopped.done():
                self._report_death(died.result())
                return 1
            signum = stopped.result()
            return 0 if ready and signum != signal.SIGPIPE else 128 + signum
        finally:
            for task in (starting, died, redis_watch):
                task.cancel()
            # A start-up interrupted by a signal ends with CancelledError: nothing to report.
            await asyncio.gather(starting, died, redis_watch, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self.ready_file is not None:
                self.ready_file.unlink(missing_ok=True)
            if self.nodes or self._redis is not None or self.clusters:
                self._say("Stopping...")
            await asyncio.to_thread(self.stop)
            self._say(f"Stopped. The logs are kept in {self.logs}" if self.log_dir else "Stopped.")

    def _announce_ready(self) -> None:
        top = self._url(self.topology.top_port)
        self._say(
            f"\nStatus page: {top}/status    API docs: {top}/docs\n"
            f"Logs: {self.logs}" + (" (kept after exit)" if self.log_dir else "")
        )
        if self.ready_file is not None:
            note = {"pid": os.getpid(), "top": top, "logs": str(self.logs)}
            partial = self.ready_file.with_name(self.ready_file.name + ".partial")
            partial.write_text(json.dumps(note) + "\n")
            partial.replace(self.ready_file)  # whole or absent, never half written
        seconds = time.monotonic() - self._began
        self._say(
            f"ready: every node answers and the sample identifiers are seeded "
            f"({seconds:.1f} s). Press Ctrl-C to stop every node."
        )

    async def _first_death(self) -> RunningNode:
        """The first node found exited (reaped by ``poll``: no zombie is left)."""
        while True:
            for node in self.nodes:
                if node.process.poll() is not None:
                    return node
            await asyncio.sleep(0.2)

    async def _report_redis_restarts(self) -> None:
        """Say so each time the embedded Redis's supervision restarted it: meanwhile the
        nodes answered 503, and a user seeing those should learn why (runs until
        cancelled)."""
        reported: dict[Path, int] = {}
        while True:
            servers = [self._redis] if self._redis is not None else []
            servers += [m for cluster in self.clusters.values() for m in cluster.members]
            for redis in servers:
                if redis.restarts > reported.get(redis.log_file, 0):
                    reported[redis.log_file] = count = redis.restarts
                    self._say(self._restart_note(redis, count))
            await asyncio.sleep(0.2)

    def _restart_note(self, redis: EmbeddedRedis, count: int) -> str:
        if not self.clusters:
            return (
                f"Redis (embedded redis-server) exited and was restarted on the same "
                f"port, its data reloaded (restart {count}); the nodes answered 503 "
                f"meanwhile. Its log: {redis.log_file}"
            )
        return (
            f"A member of a node's Redis Cluster (port {redis.port}) exited and was "
            f"restarted on the same port (restart {count}), as a replica if it was a "
            f"master: its replica had taken its slots over. Its log: {redis.log_file}"
        )

    def _report_death(self, node: RunningNode) -> None:
        code = node.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
        lines = "\n".join(f"  | {line}" for line in _tail(node.log, 10).splitlines())
        self._say(
            f"idnode up: node {node.name} ({node.url}) {how}; the end of {node.log}:\n"
            f"{lines}\nStopping the hierarchy.",
            stream=sys.stderr,
        )

    def _say(self, text: str, stream: Any = None) -> None:
        """Print a line; a closed pipe (``idnode up | head -3``) ends the run quietly."""
        out = self.out if stream is None else stream
        try:
            print(text, file=out, flush=True)
        except BrokenPipeError:
            # Later writes, and the interpreter's last flush, go nowhere instead of failing.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, out.fileno())
                os.close(devnull)
            if self._output_closed is not None:
                self._output_closed()

    def _step(self, text: str) -> None:
        if self.steps is not None:
            seconds = time.monotonic() - self._began
            self._say(f"[{seconds:5.1f}s] {text}", stream=self.steps)

    async def start(self) -> None:
        if self.attach is None:
            self._prepare()
        elif self.random_secrets:  # the running nodes were given their secrets already
            raise ConfigError("random secrets cannot be given to nodes that already run")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await self._start_hierarchy(http)

    @property
    def logs(self) -> Path:
        """The folder of the nodes' and Redis's logs."""
        return self.log_dir if self.log_dir is not None else self._root() / "logs"

    def _prepare(self) -> None:
        """Before starting processes: free ports, the logs folder and Redis."""
        self._check_ports_free()
        root = self._root()
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.ready_file is not None:  # a previous run's must not say this one is ready
            self.ready_file.unlink(missing_ok=True)
        if self.cluster:
            if self.redis_url is not None:
                raise ConfigError("--cluster starts Redis Clusters: leave --redis-url out")
            # The top and secondary nodes' clusters are made together (most of making
            # one is waiting); enterprise nodes' once their prefixes are known.
            topo = self.topology
            names = [node_name("top", topo.top_prefix, topo.top_port)]
            names += [node_name("secondary", s.prefix, s.port) for s in topo.secondaries]
            self._step(
                f"Starting a Redis Cluster of {self.cluster} masters and {self.cluster} "
                f"replicas for each of {len(names)} nodes (embedded redis-servers, in "
                f"{root / 'clusters'}); enterprise nodes get theirs as they start"
            )
            for name in names:
                self.clusters[name] = self._cluster_of(name)
            start_clusters(list(self.clusters.values()))
            for cluster in self.clusters.values():
                cluster.supervise()
        elif self.redis_url is None:
            redis = EmbeddedRedis(root / "redis", databases=_DATABASES, log_dir=self.logs)
            self._step(f"Starting Redis (embedded redis-server, log {redis.log_file})")
            # Started from this thread: Linux ties a child's parent-death signal to the
            # thread that forks it, and a worker thread of asyncio.to_thread may end first.
            self.redis_url = redis.start()
            self._redis = redis
            # A Redis that dies is restarted on the same port, with its AOF: the nodes'
            # pools reconnect by themselves (run_until_signal says when it happened).
            redis.supervise()
        else:
            self._step(f"Using Redis at {_without_password(self.redis_url)}")

    def node(self, name: str) -> RunningNode:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        """SIGTERM every node (newest first), then Redis; SIGKILL what lingers."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.process.terminate()
        deadline = time.monotonic() + 15
        for node in reversed(self.nodes):
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        self.nodes.clear()
        for cluster in self.clusters.values():
            cluster.stop()
        self.clusters.clear()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    # -- building the hierarchy -------------------------------------------------------

    async def _start_hierarchy(self, http: aiohttp.ClientSession) -> None:
        topo = self.topology
        top = self._identity(topo.top_prefix, "top")
        top_url = self._url(topo.top_port)
        self._step(f"Starting the top node {topo.top_prefix} at {top_url}")
        await self._spawn(
            http, "top", topo.top_prefix, topo.top_port, top.secret, owner=topo.top_owner
        )
        secondaries = [self._identity(s.prefix, s.prefix) for s in topo.secondaries]
        for spec, ident in zip(topo.secondaries, secondaries, strict=True):
            await _call(
                http,
                "PUT",
                f"{top_url}/api/prefixes/{spec.prefix}",
                top.credentials,
                {
                    "kind": "secondary",
                    "industry": spec.industry,
                    "owner": spec.owner,
                    "secret": ident.secret,
                },
            )
        if topo.secondaries:
            self._step(
                f"Starting {len(topo.secondaries)} secondary node(s): "
                + ", ".join(f"{s.prefix} at :{s.port}" for s in topo.secondaries)
            )
        await asyncio.gather(
            *(
                self._spawn(
                    http,
                    "secondary",
                    spec.prefix,
                    spec.port,
                    ident.secret,
                    parent=top_url,
                    industry=spec.industry,
                    owner=spec.owner,
                )
                for spec, ident in zip(topo.secondaries, secondaries, strict=True)
            )
        )
        if topo.secondaries:
            self._step("Building the hierarchy: secondaries registered, enterprises onboarded")
        for spec in topo.secondaries:
            await self._wait_registered(http, top_url, spec)
        onboarded = await asyncio.gather(
            *(
                self._onboard(http, spec, ident)
                for spec, ident in zip(topo.secondaries, secondaries, strict=True)
            )
        )
        own_nodes = [ent for spec in topo.secondaries for ent in spec.enterprises if ent.port]
        if own_nodes:
            self._step(
                f"Starting {len(own_nodes)} enterprise node(s): "
                + ", ".join(f"{ent.name} at :{ent.port}" for ent in own_nodes)
            )
        await asyncio.gather(
            *(
                self._spawn(
                    http,
                    "enterprise",
                    prefix,
                    ent.port,
                    ident.secret,
                    parent=self._url(spec.port),
                    owner=ent.name,
                )
                for spec, done in zip(topo.secondaries, onboarded, strict=True)
                for ent, prefix, ident in done
                if ent.port is not None
            )
        )
        samples = [
            SeedJob(
                prefix,
                self._url(ent.port if ent.port is not None else spec.port),
                ident.credentials,
                ent.sample_batch(prefix),
            )
            for spec, done in zip(topo.secondaries, onboarded, strict=True)
            for ent, prefix, ident in done
        ]
        # The traced products, each identifier by the enterprise holding its prefix.
        traced = topo.traced_items([job.prefix for job in samples])
        self._step(
            f"Seeding {sum(len(job.items) for job in samples):,} sample identifiers and "
            f"{sum(map(len, traced.values()))} traced-product identifiers"
        )
        await Seeder(http, progress=self.progress).seed(samples)
        await Seeder(http).seed(
            [replace(job, items=traced[job.prefix]) for job in samples if job.prefix in traced]
        )
        if topo.recursive_ports:
            self._step(f"Starting {len(topo.recursive_ports)} recursive node(s)")
        for port in topo.recursive_ports:
            await self._spawn(http, "recursive", None, port, None, parent=top_url)

    async def _onboard(
        self, http: aiohttp.ClientSession, spec: SecondarySpec, admin: Identity
    ) -> list[tuple[EnterpriseSpec, str, Identity]]:
        """Apply and approve each enterprise in order; re-runs find earlier approvals."""
        url = self._url(spec.port)
        done = []
        for ent in spec.enterprises:
            body: dict[str, str] = {
                "name": ent.name,
                "creditCode": ent.credit_code,
                "industry": spec.industry,
                "contact": ent.contact,
            }
            if ent.port is not None:
                body["nodeUrl"] = self._url(ent.port)
            # As the secondary's administrator: not subject to the anonymous limits.
            applying = f"{url}/api/enterprises"
            status, answer = await _request(http, "POST", applying, admin.credentials, body)
            if status == 409:
                answer = await self._existing_application(http, url, admin, ent.credit_code)
            elif status != 201:
                raise ConfigError(f"{url} refused the application of {ent.name}: {answer}")
            if answer["status"] == "approved":  # in an earlier run with this --data-dir
                prefix = answer["prefix"]
                ident = self._identity(prefix, ent.name)
                await self._set_secret(http, url, admin, prefix, ident.secret)
            else:
                approve = f"{url}/api/enterprises/{answer['id']}/approve"
                approval = await _call(http, "POST", approve, admin.credentials, {})
                prefix = approval["prefix"]
                if self.random_secrets:
                    ident = self._identity(prefix, ent.name, secret=approval["secret"])
                else:  # the documented demo secret, set by the secondary's administrator
                    ident = self._identity(prefix, ent.name)
                    await self._set_secret(http, url, admin, prefix, ident.secret)
            done.append((ent, prefix, ident))
        return done

    async def _existing_application(
        self, http: aiohttp.ClientSession, url: str, admin: Identity, code: str
    ) -> dict[str, Any]:
        listing = await _call(http, "GET", f"{url}/api/enterprises", admin.credentials, None)
        for application in listing["applications"]:
            if application["creditCode"] == code and application["status"] == "approved":
                return dict(application)
        raise ConfigError(f"{url} has no application for credit code {code}")

    async def _set_secret(
        self, http: aiohttp.ClientSession, url: str, admin: Identity, prefix: str, secret: str
    ) -> None:
        """Give an enterprise approved in an earlier run the secret of this run."""
        value = {"index": 300, "type": "HS_SECKEY", "data": {"format": "string", "value": secret}}
        await _call(
            http,
            "PUT",
            f"{url}/api/handles/0.NA/{prefix}?index=300&overwrite=true",
            admin.credentials,
            {"values": [value]},
        )

    async def _wait_registered(
        self, http: aiohttp.ClientSession, top_url: str, spec: SecondarySpec
    ) -> None:
        url = self._url(spec.port)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            status, entry = await _request(
                http, "GET", f"{top_url}/api/prefixes/{spec.prefix}", None, None
            )
            if status == 200 and entry.get("nodeUrl") == url:
                return
            await asyncio.sleep(0.1)
        raise ConfigError(f"secondary node {spec.prefix} did not register with the top node")

    # -- processes --------------------------------------------------------------------

    async def _spawn(
        self,
        http: aiohttp.ClientSession,
        role: str,
        prefix: str | None,
        port: int,
        secret: str | None,
        *,
        parent: str | None = None,
        industry: str = "",
        owner: str = "",
    ) -> NodeAt:
        name = node_name(role, prefix, port)
        if self.attach is not None:  # it runs already: wait until it is ready
            found = NodeAt(name, role, prefix or "", self._url(port))
            self.attached.append(found)
            await _wait_ready(http, found, self.out)
            return found
        args = [sys.executable, "-m", "node", "serve", "--role", role, "--host", self.host]
        args += ["--port", str(port), "--redis-url", self._store_url(name)]
        # The hierarchy runs on this machine: its nodes call each other on loopback.
        args += ["--allow-private-nodes"]
        if prefix:
            args += ["--prefix", prefix]
        if parent:
            args += ["--parent-url", parent]
        if industry:
            args += ["--industry", industry]
        if owner:
            args += ["--owner", owner]
        if self.workers.get(name, 1) > 1:
            args += ["--workers", str(self.workers[name])]
        if "IDNODE_INDEXED_TYPES" not in self.node_env:
            args += ["--indexed-types", self.indexed_types]
        env = {**os.environ, **self.node_env}
        if secret:
            env["IDNODE_ADMIN_SECRET"] = secret  # not on the command line, where ps shows it
        log = self.logs / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env=env,
                preexec_fn=die_with_parent,
                # Its own process group: a Ctrl-C at the terminal reaches the launcher,
                # which stops the nodes, not each node in the middle of its start-up.
                process_group=0,
            )
        node = RunningNode(name, role, prefix or "", self._url(port), process, log)
        self.nodes.append(node)
        await _wait_ready(http, node, self.out)
        return node

    def _store_url(self, name: str) -> str:
        """The Redis a node stores in: a database of the one Redis, or a cluster of its
        own (made in :meth:`_prepare`, or here, from the event loop's thread)."""
        if not self.cluster:
            return self._database_url()
        cluster = self.clusters.get(name)
        if cluster is None:
            cluster = self.clusters[name] = self._cluster_of(name)
            self._step(f"Starting a Redis Cluster for {name} ({cluster.size} redis-servers)")
            cluster.start()
            cluster.supervise()  # a member that exits comes back on its port, as a replica
        return cluster.url

    def _cluster_of(self, name: str) -> EmbeddedCluster:
        return EmbeddedCluster(self._root() / "clusters" / name, masters=self.cluster)

    def _database_url(self) -> str:
        assert self.redis_url is not None
        db = self._databases
        self._databases += 1
        parts = urlsplit(self.redis_url)
        return urlunsplit(parts._replace(path=f"/{db}"))

    def _identity(self, prefix: str, node: str, secret: str | None = None) -> Identity:
        chosen = secret or (generate_secret() if self.random_secrets else demo_secret(prefix))
        identity = Identity(prefix, chosen, node)
        self.identities.append(identity)
        return identity

    def _url(self, port: int) -> str:
        if self.attach and port in self.attach:
            return self.attach[port]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    def _root(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        if self._temp is None:
            self._temp = Path(tempfile.mkdtemp(prefix="idnode-up-"))
        return self._temp

    def _check_ports_free(self) -> None:
        busy = [port for port in self.topology.ports() if not _free(self.host, port)]
        if not busy:
            return
        listed = ", ".join(map(str, busy))
        what = f"port {listed} is" if len(busy) == 1 else f"ports {listed} are"
        hint = "stop what runs there"
        if base := self._free_base():
            hint += f", or move the hierarchy: --port-base {base}"
        raise ConfigError(f"{what} in use on {self.host}: {hint}")

    def _free_base(self) -> int | None:
        """A base (for ``--port-base``) where every port of the topology is free."""
        ports = self.topology.ports()
        span = max(ports) - self.topology.top_port
        for base in range(9000, 65536 - span, 1000):
            moved = [base + port - self.topology.top_port for port in ports]
            if min(moved) >= 1024 and all(_free(self.host, port) for port in moved):
                return base
        return None

    # -- output -----------------------------------------------------------------------

    def print_table(self) -> None:
        secrets = {i.prefix: i for i in self.identities}
        rows = [("node", "role", "prefix", "url", "identity", "secret")]
        listed: list[NodeAt] = [*self.nodes, *self.attached]
        for node in listed:
            ident = secrets.get(node.prefix)
            rows.append(
                (
                    node.name,
                    node.role,
                    node.prefix or "-",
                    node.url,
                    ident.text if ident else "-",
                    ident.secret if ident else "-",
                )
            )
        running = {n.prefix for n in listed}
        hosted = sorted(
            (i for i in self.identities if i.prefix not in running),
            key=lambda i: [int(part) for part in i.prefix.split(".")],
        )
        for ident in hosted:
            rows.append((f"  {ident.node}", "hosted", ident.prefix, "-", ident.text, ident.secret))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        top = self._url(self.topology.top_port)
        example = next((i.prefix for i in hosted), self.topology.top_prefix)
        lines.append(f"\nTry: curl {top}/api/handles/{example}/demo-0001")
        for product in self.topology.products:
            lines.append(
                f"Trace {product.name} across the hierarchy:\n"
                f"     curl {top}/api/trace/{product.root}"
            )
        self._say("\n".join(lines))


def node_name(role: str, prefix: str | None, port: int) -> str:
    """A node's name (its log file, its cluster's folder): role and prefix, or role and
    port for a node without a prefix.

    >>> node_name("secondary", "88.100", 8001), node_name("recursive", None, 8020)
    ('secondary-88.100', 'recursive-8020')
    """
    return f"{role}-{prefix}" if prefix else f"{role}-{port}"


def attach_urls(topology: Topology, pairs: list[str]) -> dict[int, str]:
    """``PORT=URL`` pairs (``idnode setup --url``): where the node the topology puts on
    PORT answers.

    >>> attach_urls(Topology.demo(), ["8000=http://top-88:8000/"])
    {8000: 'http://top-88:8000'}
    """
    urls: dict[int, str] = {}
    ports = topology.ports()
    for pair in pairs:
        port, sep, url = pair.partition("=")
        if not sep or not port.strip().isdigit() or int(port) not in ports:
            known = ", ".join(map(str, ports))
            raise ConfigError(f"--url {pair!r}: expected PORT=URL with a topology port ({known})")
        if problem := node_url_problem(url.strip()):
            raise ConfigError(f"--url {pair!r}: {problem}")
        urls[int(port)] = url.strip().rstrip("/")
    return urls


async def _wait_ready(http: aiohttp.ClientSession, node: NodeAt, out: Any = None) -> None:
    """Wait for ``node``'s ``/readyz``. A node whose store is loading is alive: the
    timeout counts from its last progress, which is shown on ``out`` every 5 s."""
    started = node if isinstance(node, RunningNode) else None
    deadline = time.monotonic() + READY_TIMEOUT
    shown = 0.0
    while time.monotonic() < deadline:
        if started is not None and started.process.poll() is not None:
            raise ConfigError(f"{node.name} exited at start-up:\n{_tail(started.log)}")
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with http.get(f"{node.url}/readyz") as response:
                if response.status == 200:
                    return
                loading = still_loading(await response.json(content_type=None))
                if loading is not None:
                    deadline = time.monotonic() + READY_TIMEOUT
                    if out is not None and time.monotonic() >= shown + LOAD_SHOWN_EVERY:
                        shown = time.monotonic()
                        print(f"{node.name}: {loading}", file=out, flush=True)
        await asyncio.sleep(0.1)
    where = f":\n{_tail(started.log)}" if started is not None else f" at {node.url}"
    raise ConfigError(f"{node.name} was not ready within {READY_TIMEOUT:g}s{where}")


async def _request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    credentials: Credentials | None,
    body: object,
) -> tuple[int, Any]:
    headers = {"Authorization": credentials.header()} if credentials else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def _call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    credentials: Credentials | None,
    body: object,
) -> Any:
    status, answer = await _request(http, method, url, credentials, body)
    if status >= 300:
        raise ConfigError(f"{method} {url} failed with HTTP {status}: {answer}")
    return answer


def _free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _without_password(url: str) -> str:
    """``url`` fit to print: a password in it is replaced by ``***``.

    >>> _without_password("redis://:s3cret@redis:6379/0")
    'redis://:***@redis:6379/0'
    """
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
