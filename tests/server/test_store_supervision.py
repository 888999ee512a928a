"""Finding 7 against real processes: the embedded Redis is supervised. Killed, it is
restarted (readiness 503 meanwhile, then 200, no node restart); on a full disk writes
are refused with a message naming the cause while reads go on, and resume when space
returns. Through each fault, concurrent writers run, and every write the node
acknowledged is there afterwards, also after a restart of the node."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server


def _values(n: int) -> list[dict[str, object]]:
    return [{"index": 1, "type": "URL", "data": f"https://factory.example/w/{n}"}]


class Writers:
    """``count`` concurrent writers PUTting fresh handles until stopped; remembers
    which the node acknowledged (201) and how the others were refused."""

    def __init__(self, node: NodeProcess, count: int = 8) -> None:
        self.node = node
        self.count = count
        self.acked: list[int] = []
        self.refused: list[tuple[int, dict[str, object]]] = []
        self._stop = asyncio.Event()
        self._next = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.gather(*(self._one(http) for _ in range(self.count)))

    def stop(self) -> None:
        self._stop.set()

    async def _one(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            n, self._next = self._next, self._next + 1
            try:
                put = await http.put(
                    f"{self.node.url}/api/handles/88.100/W{n}", json=_values(n), headers=ADMIN_AUTH
                )
            except httpx.TransportError:
                continue
            if put.status_code == 201:
                self.acked.append(n)
            else:
                assert put.status_code in (503, 507), put.text
                self.refused.append((put.status_code, put.json()))
                await asyncio.sleep(0.02)

    def check_all_acked_resolve(self, node: NodeProcess) -> None:
        assert self.acked
        with httpx.Client(timeout=10) as http:
            for n in self.acked:
                got = http.get(f"{node.url}/api/handles/88.100/W{n}")
                assert got.status_code == 200, (n, got.text)
                assert got.json()["values"][0]["data"]["value"] == f"https://factory.example/w/{n}"


def _survives_node_restart(
    data: Path, writers: Writers | None, present: Sequence[str] = (), absent: Sequence[str] = ()
) -> None:
    """After the node (and its Redis) restart from ``data``, every acknowledged write
    is there, ``present`` handles too, ``absent`` ones not."""
    restarted = NodeProcess(data).start()
    try:
        if writers is not None:
            writers.check_all_acked_resolve(restarted)
        for name, code in [*((p, 200) for p in present), *((a, 404) for a in absent)]:
            assert httpx.get(f"{restarted.url}/api/handles/88.100/{name}").status_code == code
    finally:
        restarted.stop()


async def _readiness(node: NodeProcess, until: float) -> list[int]:
    seen: list[int] = []
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < until:
            seen.append((await http.get(f"{node.url}/readyz")).status_code)
            await asyncio.sleep(0.05)
    return seen


async def _kill_and_hold_port(node: NodeProcess) -> socket.socket:
    """Kill the node's Redis and bind its port before the supervisor restarts it. The
    bind is tried in a tight loop (the event loop may be slow on a busy machine); if
    the supervisor still wins, Redis is killed again, up to five times."""
    port = _redis_port(node)
    for _ in range(5):
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        os.kill(node.redis_pid, signal.SIGKILL)
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            try:
                blocker.bind(("127.0.0.1", port))
                return blocker
            except OSError:
                time.sleep(0.001)
        blocker.close()
        await _readiness_reached(node, time.monotonic() + 10.0)
    raise AssertionError(f"the supervisor restarted Redis each time before port {port} was held")


async def _readiness_reached(node: NodeProcess, until: float) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < until:
            if (await http.get(f"{node.url}/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.05)


def _supervision_story(node: NodeProcess) -> str:
    """What the supervisor and Redis logged, for a failure's message."""
    lines = [
        line[:300]
        for line in node.log.read_text(errors="replace").splitlines()
        if "embedded redis" in line or "supervision" in line
    ]
    redis_log = node.data_dir / "redis.log"
    tail = redis_log.read_text(errors="replace").splitlines()[-15:] if redis_log.exists() else []
    return "\n".join(["node:", *lines[-15:], "redis:", *tail])


def _redis_port(node: NodeProcess) -> int:
    conf = (node.data_dir / "redis.conf").read_text()
    return int(next(line.split()[1] for line in conf.splitlines() if line.startswith("port ")))


async def test_a_killed_redis_is_restarted_and_no_acknowledged_write_is_lost(
    tmp_path: Path,
) -> None:
    node = NodeProcess(tmp_path / "data").start()
    try:
        writers = Writers(node)
        running = asyncio.create_task(writers.run())
        await asyncio.sleep(1.0)
        old_pid = node.redis_pid
        # Kill it, and hold its port (bound, not listening) for 2 s: the node sees
        # the store down, and the supervisor's restarts fail and back off meanwhile.
        blocker = await _kill_and_hold_port(node)
        down = await _readiness(node, time.monotonic() + 2.0)
        blocker.close()
        back = await _readiness(node, time.monotonic() + 8.0)
        await asyncio.sleep(1.0)
        writers.stop()
        await running
        assert 503 in down
        assert back[-1] == 200
        assert node.redis_pid != old_pid
        assert node.process is not None and node.process.poll() is None  # same node
        refused = [body for _, body in writers.refused]
        assert all(body["responseCode"] == 2 for body in refused)
        acked_after = [n for n in writers.acked if n > 0]
        assert len(acked_after) > 20
        writers.check_all_acked_resolve(node)
    finally:
        node.stop()
    _survives_node_restart(tmp_path / "data", writers)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (needs root and mount; CI runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


class _Hog:
    """Takes every byte freed on ``disk`` as soon as it is freed (as a busy log on the
    same disk would), until stopped; then frees all it took."""

    def __init__(self, disk: Path) -> None:
        self.file = disk / "hog"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._take, daemon=True)

    def __enter__(self) -> _Hog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.file.unlink()

    def _take(self) -> None:
        with self.file.open("wb", buffering=0) as out:
            while not self._stop.is_set():
                try:
                    out.write(b"\0" * 4096)
                except OSError:
                    time.sleep(0.0005)


def _fill(disk: Path, leave: int) -> Path:
    """A filler file leaving about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    size = stat.f_bavail * stat.f_frsize - leave
    chunk = b"\0" * (256 * 1024)
    with filler.open("wb", buffering=0) as out:
        while size > 0:
            try:
                size -= out.write(chunk[: min(size, len(chunk))])
            except OSError:
                break  # full
    return filler


async def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(small_disk: Path) -> None:
    data = small_disk / "data"
    node = NodeProcess(data, "--min-free-disk-bytes", str(4 * 1024 * 1024)).start()
    try:
        kept = httpx.put(
            f"{node.url}/api/handles/88.100/KEPT", json=_values(-1), headers=ADMIN_AUTH
        )
        assert kept.status_code == 201
        writers = Writers(node)
        running = asyncio.create_task(writers.run())
        await asyncio.sleep(0.5)
        filler = _fill(small_disk, leave=1024 * 1024)
        await asyncio.sleep(2.0)  # the supervisor looks at the disk twice a second
        refused_put = httpx.put(
            f"{node.url}/api/handles/88.100/REFUSED", json=_values(-2), headers=ADMIN_AUTH
        )
        read = httpx.get(f"{node.url}/api/handles/88.100/KEPT")
        ready = httpx.get(f"{node.url}/readyz")
        filler.unlink()
        await asyncio.sleep(2.0)
        resumed = httpx.put(
            f"{node.url}/api/handles/88.100/RESUMED", json=_values(-3), headers=ADMIN_AUTH
        )
        writers.stop()
        await running

        assert refused_put.status_code == 507, refused_put.text
        body = refused_put.json()
        assert body["responseCode"] == 2
        assert "disk is full" in body["message"] and "reads go on" in body["message"]
        assert read.status_code == 200
        assert ready.status_code == 200
        assert resumed.status_code == 201
        assert httpx.get(f"{node.url}/api/handles/88.100/REFUSED").status_code == 404
        assert any(code == 507 for code, _ in writers.refused)
        writers.check_all_acked_resolve(node)
    finally:
        node.stop()
    _survives_node_restart(data, writers, present=["RESUMED"], absent=["REFUSED"])


async def test_a_disk_filled_between_looks_makes_redis_exit_unacknowledged_and_recover(
    small_disk: Path,
) -> None:
    """Filled to the last byte at once (faster than the watcher's look every 0.1 s):
    Redis (appendfsync always) exits on the failed AOF write without acknowledging it.
    It is restarted as soon as it can start, which on a disk full to the last byte may
    take until space returns (in about 2 runs of 12, more than 15 s), so reads are not
    promised meanwhile; once space returns the node recovers by itself and every
    acknowledged write resolves."""
    data = small_disk / "data"
    node = NodeProcess(data, "--min-free-disk-bytes", str(4 * 1024 * 1024)).start()
    try:
        writers = Writers(node)
        running = asyncio.create_task(writers.run())
        await asyncio.sleep(0.5)
        filler = _fill(small_disk, leave=0)
        await asyncio.sleep(3.0)
        filler.unlink()
        # The restarts back off up to 5 s (embedded_redis._BACKOFF_MAX): one may be due
        # just after the space returns, and Redis then loads its data.
        back = await _readiness(node, time.monotonic() + 20.0)
        await asyncio.sleep(1.0)
        writers.stop()
        await running
        assert back[-1] == 200, _supervision_story(node)
        writers.check_all_acked_resolve(node)
    finally:
        node.stop()
    _survives_node_restart(data, writers)


async def test_redis_restarts_on_a_disk_with_not_one_free_byte(small_disk: Path) -> None:
    """A restart must not need a byte of disk (no configuration or pid file rewritten
    to start it): killed while something takes every byte freed on its disk, Redis is
    back for reads at once, writes are refused, and once space returns they resume."""
    data = small_disk / "data"
    node = NodeProcess(data, "--min-free-disk-bytes", str(4 * 1024 * 1024)).start()
    try:
        kept = httpx.put(
            f"{node.url}/api/handles/88.100/KEPT", json=_values(-1), headers=ADMIN_AUTH
        )
        assert kept.status_code == 201
        with _Hog(small_disk):
            await asyncio.sleep(1.0)  # the watcher has seen the disk short
            assert os.statvfs(small_disk).f_bavail == 0
            os.kill(node.redis_pid, signal.SIGKILL)
            await asyncio.sleep(0.5)
            back = await _readiness(node, time.monotonic() + 8.0)
            read = httpx.get(f"{node.url}/api/handles/88.100/KEPT")
            refused = httpx.put(
                f"{node.url}/api/handles/88.100/REFUSED", json=_values(-2), headers=ADMIN_AUTH
            )
        await asyncio.sleep(1.5)  # the watcher looks at the disk twice a second
        resumed = httpx.put(
            f"{node.url}/api/handles/88.100/RESUMED", json=_values(-3), headers=ADMIN_AUTH
        )
        assert back[-1] == 200
        assert read.status_code == 200
        assert refused.status_code == 507, refused.text
        assert resumed.status_code == 201, resumed.text
    finally:
        node.stop()
    _survives_node_restart(data, None, present=["KEPT", "RESUMED"], absent=["REFUSED"])
