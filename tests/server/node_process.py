"""Real ``idnode serve`` processes on loopback, for the few tests that need them, and the
demo hierarchy on free ports."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from node.embedded_redis import free_port
from node.launcher import Launcher
from node.topology import Topology


@asynccontextmanager
async def demo_hierarchy(data_dir: Path, identifiers: int = 5) -> AsyncIterator[Launcher]:
    """The demo topology started on free ports with ``identifiers`` sample identifiers
    per enterprise; every process stopped on the way out."""
    topology = Topology.demo().on_ports(free_port).with_identifiers(identifiers)
    launcher = Launcher(topology, data_dir=data_dir, out=io.StringIO())
    try:
        await launcher.start()
        yield launcher
    finally:
        await asyncio.to_thread(launcher.stop)


class NodeProcess:
    """``idnode serve`` in a child process, with its own embedded Redis in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        prefix: str | None = "88.100",
        secret: str = "s3cret",
        role: str = "secondary",
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
        env: dict[str, str] | None = None,
    ):
        self.data_dir = data_dir
        self.env = env  # the child's environment (None: this process's)
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        self.args = [
            sys.executable,
            "-m",
            "node",
            "serve",
            "--role",
            role,
            *(("--prefix", prefix, "--admin-secret", secret) if prefix else ()),
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--allow-private-nodes",  # its other nodes are on loopback too
            *extra,
        ]
        self.log = data_dir.parent / f"node-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, *, wait: bool = True) -> NodeProcess:
        """Start the node and wait until its ``/readyz`` says ready (unless not ``wait``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, env=self.env)
        if not wait:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited early: {self.log.read_text()[-2000:]}")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=1, verify=self.verify)
                if ready.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node not ready in {timeout}s: {self.log.read_text()[-2000:]}")

    @property
    def redis_pid(self) -> int:
        return int((self.data_dir / "redis.pid").read_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
