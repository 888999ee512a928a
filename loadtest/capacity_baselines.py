"""The two baselines of ``idnode bench --capacity``, as running processes.

* nginx (the Debian package) answering ``GET /api/handles/...`` with the node's
  resolution body as a static file (``loadtest/capacity_nginx.conf``, one worker): the
  machine's HTTP limit for that response;
* the FastAPI + Redis app of ``loadtest/baseline.py`` under uvicorn with its defaults (one
  worker, uvloop and httptools like the nodes; only the access log is off, as on the
  nodes), the body stored under the identifier in a spare database of the hierarchy's
  Redis: what a user would write instead of a node.

Each listens on a free loopback port, dies with this process (PDEATHSIG) and is stopped
by :meth:`Baseline.stop`; :meth:`Baseline.check` makes sure it answers with exactly the
node's bytes before anything is measured.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from node.embedded_redis import die_with_parent, free_port
from registry.errors import ConfigError

NGINX_TEMPLATE = Path(__file__).with_name("capacity_nginx.conf")
START_SECONDS = 20.0
HOST = "127.0.0.1"


@dataclass
class Baseline:
    """A baseline server this benchmark started.

    >>> nginx = start_nginx("/usr/sbin/nginx", body)     # doctest: +SKIP
    >>> nginx.check("/api/handles/88.100.1/demo-0001", body)  # doctest: +SKIP
    >>> nginx.stop()                                      # doctest: +SKIP
    """

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    workdir: Path | None = None  # removed on stop

    def pids(self) -> list[int]:
        """The process and its children (nginx's worker)."""
        pids = [self.process.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids += [int(pid) for pid in children.read_text().split()]
        return pids

    def check(self, path: str, body: bytes) -> None:
        """Wait until it answers ``path`` with ``body`` exactly; ConfigError otherwise."""
        deadline = time.monotonic() + START_SECONDS
        seen = b""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(self.url + path, timeout=2) as answer:
                    seen = answer.read()
                    if seen == body:
                        return
            time.sleep(0.1)
        raise ConfigError(
            f"the {self.name} baseline at {self.url} did not answer {path} with the node's "
            f"body (got {seen[:80]!r}); see {self.log}:\n{_tail(self.log)}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def start_nginx(binary: str, body: bytes) -> Baseline:
    """nginx in the foreground from a temporary directory, serving ``body``."""
    workdir = Path(tempfile.mkdtemp(prefix="idnode-capacity-nginx-"))
    www = workdir / "www"
    (workdir / "temp").mkdir()
    www.mkdir()
    (www / "body.json").write_bytes(body)
    # Started as root, nginx's worker runs as nobody: it must be able to read the file.
    for path, mode in ((workdir, 0o755), (www, 0o755), (www / "body.json", 0o644)):
        path.chmod(mode)
    port = free_port(HOST)
    conf = workdir / "nginx.conf"
    template = string.Template(NGINX_TEMPLATE.read_text())
    conf.write_text(template.substitute(root=str(workdir), host=HOST, port=port))
    log = workdir / "error.log"
    process = _spawn(
        [binary, "-p", str(workdir), "-c", str(conf), "-e", str(log)], workdir / "stdout.log"
    )
    return Baseline("nginx", f"http://{HOST}:{port}", process, log, workdir)


def start_fastapi(redis_url: str, handle: str, body: bytes, logs: Path) -> Baseline:
    """``loadtest.baseline:app`` under uvicorn, with ``body`` stored under ``handle``."""
    client = Redis.from_url(redis_url)
    try:
        client.set(handle, body)
    finally:
        client.close()
    port = free_port(HOST)
    log = logs / "baseline-fastapi.log"
    command = [sys.executable, "-m", "uvicorn", "loadtest.baseline:app"]
    command += ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    process = _spawn(command, log, env={"IDNODE_BASELINE_REDIS_URL": redis_url})
    return Baseline("FastAPI + Redis", f"http://{HOST}:{port}", process, log)


def _spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent,
        )


def _tail(log: Path, lines: int = 10) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
