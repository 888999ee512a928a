"""Several worker processes serving one node (``idnode serve --workers N``).

One Python process uses one core. A node that is CPU-bound (batch registration parses,
validates and encodes every identifier) gets more of the machine from several
processes, all of them the same node: same prefix, same Redis, one listening socket.

The supervisor (this module, in the process ``idnode serve`` started):

1. binds the node's address once and hands the socket to every worker (inherited file
   descriptor ``IDNODE_WORKER_FD``), so the kernel spreads connections across them;
2. starts the embedded Redis itself when the node has no ``--redis-url``, and gives the
   workers its URL: one store, whatever the number of workers; it supervises that
   server (restarted on the same port when it exits, see :mod:`node.embedded_redis`);
3. gives the workers a directory for prometheus-client's multiprocess mode
   (``PROMETHEUS_MULTIPROC_DIR``, unless set), so ``/metrics`` from any worker counts
   every worker's requests (:mod:`node.metrics`);
4. starts the first worker alone and the others once its ``/readyz`` says it is built
   (however long its store takes to load: the wait's timeout counts from the last
   progress the worker showed): start-up
   work that must happen once (upgrading the store, generating the admin secret and
   showing it, registering with the top node) happens in that first worker, and the
   others find it done;
5. stops them all on SIGTERM or SIGINT (each finishes its requests in flight), and
   stops the node when any worker exits by itself: a crash is not hidden behind a
   restart, whoever runs the node (compose, systemd) restarts it whole.

What stays per worker: the in-process copies of hot records (each follows the change
stream, as separate nodes on one Redis do) and the ``--rate-limit`` token buckets (a
client may get up to N times the rate; the daily quota is kept in Redis and is exact).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from types import FrameType

from node.config import WORKER_FD_ENV, NodeConfig
from node.embedded_redis import EmbeddedRedis, die_with_parent
from node.probe import healthz_url, readiness
from node.startup import built, still_loading
from registry.errors import ConfigError

log = logging.getLogger("idnode.node")
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
FIRST_READY_TIMEOUT = 120.0  # seconds without load progress: a store upgrade may take a while
STOP_TIMEOUT = 12.0  # seconds for all workers (uvicorn's graceful shutdown takes up to 10)
_POLL = 0.1


def listening_socket(host: str, port: int) -> socket.socket:
    """The node's listening socket, inheritable by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = ": another process listens there; pass --port (or IDNODE_PORT) to use another"
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Runs ``count`` workers of the node ``argv`` describes (``idnode serve`` options)."""

    def __init__(self, config: NodeConfig, argv: Sequence[str], count: int) -> None:
        self.config = config
        self.argv = list(argv)
        self.count = count
        self.workers: list[subprocess.Popen[bytes]] = []
        self._stopping = False
        self._port = config.port

    def run(self) -> int:
        """Serve until signalled (exit status 0) or until a worker exits (1)."""
        with self._resources() as env:
            previous = {
                sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                self.workers.append(self._start(env))
                if not self._first_ready():
                    return 1
                self.workers += [self._start(env) for _ in range(self.count - 1)]
                log.info("workers ready", extra={"node": self.config.name, "workers": self.count})
                return self._watch()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                self._terminate()

    @contextlib.contextmanager
    def _resources(self) -> Iterator[dict[str, str]]:
        """The socket, the store and the metrics directory, released at the end; yields
        the workers' environment."""
        config = self.config
        env = dict(os.environ)
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(listening_socket(config.host, config.port))
            self._port = sock.getsockname()[1]  # the one bound, also for --port 0
            env[WORKER_FD_ENV] = str(sock.fileno())
            if config.redis_url is None:
                embedded = EmbeddedRedis(
                    config.embedded_data_dir,
                    appendfsync=config.appendfsync,
                    min_free_disk_bytes=config.min_free_disk_bytes,
                )
                env["IDNODE_REDIS_URL"] = embedded.start()
                stack.callback(embedded.stop)
                embedded.supervise()
            if METRICS_DIR_ENV not in env:
                metrics = tempfile.mkdtemp(prefix="idnode-metrics-")
                stack.callback(shutil.rmtree, metrics, ignore_errors=True)
                env[METRICS_DIR_ENV] = metrics
            yield env

    def _start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "node", "serve", *self.argv]
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            env=env,
            pass_fds=[int(env[WORKER_FD_ENV])],
            # A worker outliving its supervisor would serve a node nobody stops: it is
            # killed outright (acknowledged writes are in Redis already).
            preexec_fn=functools.partial(die_with_parent, signal.SIGKILL, os.getpid()),
            # Its own session: a terminal's Ctrl-C reaches the supervisor only, which
            # then stops each worker once (a second signal would cut requests short).
            start_new_session=True,
        )

    def _first_ready(self) -> bool:
        """Wait until the first worker has built the node (its ``/readyz`` says ready).
        A store that is loading is waited for however long it takes: the timeout counts
        from the last progress seen, not from the start."""
        url = healthz_url(dataclasses.replace(self.config, port=self._port))
        url = url.removesuffix("/healthz") + "/readyz"
        deadline = time.monotonic() + FIRST_READY_TIMEOUT
        while not self._stopping and time.monotonic() < deadline:
            if self.workers[0].poll() is not None:
                log.error("first worker exited while starting", extra={"node": self.config.name})
                return False
            body = readiness(url, timeout=1.0)
            if built(body):
                return True
            if still_loading(body) is not None:  # the worker logs the progress
                deadline = time.monotonic() + FIRST_READY_TIMEOUT
            time.sleep(_POLL)
        log.error(
            "first worker not ready in time",
            extra={"node": self.config.name, "timeout": FIRST_READY_TIMEOUT},
        )
        return False

    def _watch(self) -> int:
        while not self._stopping:
            for worker in self.workers:
                if worker.poll() is not None:
                    status = worker.returncode
                    log.error(
                        "a worker exited; stopping the node",
                        extra={"node": self.config.name, "pid": worker.pid, "status": status},
                    )
                    return 1
            time.sleep(_POLL)
        return 0

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _terminate(self) -> None:
        """SIGTERM every worker still running and wait for them (uvicorn lets requests in
        flight finish first); SIGKILL whatever still runs after ``STOP_TIMEOUT`` in all."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
