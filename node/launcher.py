"""``idnode up``: start a whole hierarchy from a topology, set it up through its own APIs,
and stop every process it started on Ctrl-C.

The hierarchy is built the way operators would build it, over HTTP:

1. one embedded Redis (unless ``--redis-url``); each node gets its own database number;
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
its nodes (and they their Redis) down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    random_secrets: bool = False
    host: str = "127.0.0.1"
    out: Any = sys.stdout
    node_env: dict[str, str] = field(default_factory=dict)  # extra IDNODE_* for every node
    workers: dict[str, int] = field(default_factory=dict)  # --workers by node name (else 1)
    progress: Any = None  # where seeding progress is printed (None: nowhere)
    # Set up nodes that already run instead of starting them: each node's URL by its
    # topology port (a node left out answers at http://<host>:<port>).
    attach: dict[int, str] | None = None
    nodes: list[RunningNode] = field(default_factory=list)
    attached: list[NodeAt] = field(default_factory=list)
    identities: list[Identity] = field(default_factory=list)
    _redis: EmbeddedRedis | None = None
    _temp: Path | None = None
    _databases: int = 0

    # -- life cycle -------------------------------------------------------------------

    async def run_until_signal(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            self.print_table()
            print("Press Ctrl-C to stop every node.", file=self.out, flush=True)
            await stop.wait()
        finally:
            print("Stopping...", file=self.out, flush=True)
            await asyncio.to_thread(self.stop)

    async def start(self) -> None:
        if self.attach is None:
            self._prepare()
        elif self.random_secrets:  # the running nodes were given their secrets already
            raise ConfigError("random secrets cannot be given to nodes that already run")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await self._start_hierarchy(http)

    def _prepare(self) -> None:
        """Before starting processes: free ports, the logs folder and Redis."""
        self._check_ports_free()
        root = self._root()
        (root / "logs").mkdir(parents=True, exist_ok=True)
        if self.redis_url is None:
            self._redis = EmbeddedRedis(root / "redis", databases=_DATABASES)
            # Started from this thread: Linux ties a child's parent-death signal to the
            # thread that forks it, and a worker thread of asyncio.to_thread may end first.
            self.redis_url = self._redis.start()

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
        for spec in topo.secondaries:
            await self._wait_registered(http, top_url, spec)
        onboarded = await asyncio.gather(
            *(
                self._onboard(http, spec, ident)
                for spec, ident in zip(topo.secondaries, secondaries, strict=True)
            )
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
        await Seeder(http, progress=self.progress).seed(samples)
        # The traced products, each identifier by the enterprise holding its prefix.
        traced = topo.traced_items([job.prefix for job in samples])
        await Seeder(http).seed(
            [replace(job, items=traced[job.prefix]) for job in samples if job.prefix in traced]
        )
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
        name = f"{role}-{prefix}" if prefix else f"{role}-{port}"
        if self.attach is not None:  # it runs already: wait until it is ready
            found = NodeAt(name, role, prefix or "", self._url(port))
            self.attached.append(found)
            await _wait_ready(http, found, self.out)
            return found
        args = [sys.executable, "-m", "node", "serve", "--role", role, "--host", self.host]
        args += ["--port", str(port), "--redis-url", self._database_url()]
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
        env = {**os.environ, **self.node_env}
        if secret:
            env["IDNODE_ADMIN_SECRET"] = secret  # not on the command line, where ps shows it
        log = self._root() / "logs" / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env=env,
                preexec_fn=die_with_parent,
            )
        node = RunningNode(name, role, prefix or "", self._url(port), process, log)
        self.nodes.append(node)
        await _wait_ready(http, node, self.out)
        return node

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
        for port in self.topology.ports():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, port))
                except OSError:
                    raise ConfigError(
                        f"port {port} on {self.host} is in use: stop what runs there, "
                        "or give a topology with other ports"
                    ) from None

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
        for row in rows:
            cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            print("  ".join(cells).rstrip(), file=self.out)
        example = next((i.prefix for i in hosted), self.topology.top_prefix)
        print(
            f"\nTry: curl {self._url(self.topology.top_port)}/api/handles/{example}/demo-0001",
            file=self.out,
            flush=True,
        )
        for product in self.topology.products:
            print(
                f"Trace {product.name} across the hierarchy:\n"
                f"     curl {self._url(self.topology.top_port)}/api/trace/{product.root}",
                file=self.out,
                flush=True,
            )


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


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
