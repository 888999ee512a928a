"""``idnode up`` and ``idnode serve`` as processes, the way a user meets them in the first
hour: progress and readiness, moved and busy ports, Ctrl-C and SIGTERM during start-up, a
node that dies, a closed pipe, a broken redis-server, an unreachable Redis."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from node.embedded_redis import free_port
from tests.server.test_up import _alive, _descendants

pytestmark = pytest.mark.server

DEMO_OFFSETS = (0, 1, 2, 3, 10)  # the demo's ports from its top node's


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base() -> int:
    """A base for ``--port-base`` where the whole demo finds free ports."""
    for _ in range(100):
        base = free_port()
        if base + 10 < 65536 and all(_bindable(base + o) for o in DEMO_OFFSETS):
            return base
    raise AssertionError("no free port range")


def _up(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``idnode up`` in a session of its own, as a terminal would run it (a Ctrl-C there
    goes to the whole foreground process group: :func:`_ctrl_c` sends it the same way)."""
    return subprocess.Popen(
        [sys.executable, "-m", "node", "up", "--log-dir", str(tmp_path / "logs"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    text = "".join(seen)
    assert marker in text, text
    return text


def _ctrl_c(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGINT)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)


def test_up_on_a_moved_base_reports_each_step_then_ready_and_keeps_its_logs(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    base = _free_base()
    ready_file = tmp_path / "ready.json"
    up = _up(tmp_path, "--port-base", str(base), "--ready-file", str(ready_file))
    processes.append(up)
    shown = _read_until(up, "ready:")
    for step in ("Starting Redis", "Starting the top node", "secondary node", "Seeding"):
        assert step in shown, shown
    assert shown.index("Seeding") < shown.index("node  ") < shown.index("ready:")
    assert f"http://127.0.0.1:{base}/status" in shown and f"{base}/docs" in shown
    logs = tmp_path / "logs"
    assert f"Logs: {logs}" in shown
    note = json.loads(ready_file.read_text())
    assert note["top"] == f"http://127.0.0.1:{base}" and note["pid"] == up.pid
    for offset in DEMO_OFFSETS:  # every node on the moved ports, the samples seeded
        assert httpx.get(f"http://127.0.0.1:{base + offset}/readyz").status_code == 200
    sample = httpx.get(f"http://127.0.0.1:{base}/api/handles/88.100.1/demo-0001")
    assert sample.status_code == 200

    _ctrl_c(up)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    assert "Traceback" not in out + err
    # The terminal's Ctrl-C reaches the launcher, which stops Redis last: Redis is not
    # in the terminal's process group, so it neither stops first nor is restarted.
    assert "embedded redis exited" not in err, err
    assert not ready_file.exists()  # no longer ready
    assert {p.name for p in logs.iterdir()} >= {"top-88.log", "secondary-88.100.log", "redis.log"}


def test_a_busy_port_is_one_message_naming_it_and_how_to_move(tmp_path: Path) -> None:
    base = _free_base()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 2))
        holder.listen()
        done = subprocess.run(
            [sys.executable, "-m", "node", "up", "--port-base", str(base)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode == 2
    assert done.stdout == ""  # no "Stopping...": nothing was started
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"port {base + 2} is in use" in message and "--port-base " in message


def test_ctrl_c_during_start_up_stops_at_once_quietly_with_130(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    up = _up(tmp_path, "--port-base", str(_free_base()))
    processes.append(up)
    _read_until(up, "Starting the top node")
    time.sleep(0.5)  # the top node is importing: the worst moment for a stray traceback
    children = _descendants(up.pid)
    _ctrl_c(up)
    out, err = up.communicate(timeout=30)
    assert up.returncode == 130, out + err
    assert "Stopped" in out and "node  " not in out  # stopped before the table
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    for log in (tmp_path / "logs").iterdir():
        assert "KeyboardInterrupt" not in log.read_text(errors="replace"), log.name
    assert not [pid for pid in children if _alive(pid)]


def test_sigterm_during_start_up_acts_at_once(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    up = _up(tmp_path, "--port-base", str(_free_base()))
    processes.append(up)
    _read_until(up, "Starting the top node")
    sent = time.monotonic()
    up.send_signal(signal.SIGTERM)
    out, err = up.communicate(timeout=30)
    assert up.returncode == 128 + signal.SIGTERM, out + err
    assert time.monotonic() - sent < 15  # not after the whole hierarchy was built
    assert "ready:" not in out and "Traceback" not in out + err


def test_a_node_that_dies_is_named_with_its_log_and_the_hierarchy_stops(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    up = _up(tmp_path, "--port-base", str(_free_base()))
    processes.append(up)
    _read_until(up, "ready:")
    victim = next(
        pid
        for pid in _descendants(up.pid)
        if b"88.101\x00" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    children = _descendants(up.pid)
    os.kill(victim, signal.SIGKILL)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 1
    assert "node secondary-88.101" in err and "SIGKILL" in err, err
    assert "secondary-88.101.log" in err and "Stopping the hierarchy" in err
    assert "Traceback" not in out + err
    assert not [pid for pid in children if _alive(pid)]  # reaped, none left behind


def test_a_redis_that_dies_is_restarted_and_the_launcher_says_so(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    base = _free_base()
    up = _up(tmp_path, "--port-base", str(base))
    processes.append(up)
    _read_until(up, "ready:")
    redis = _redis_server(up.pid)
    os.kill(redis, signal.SIGKILL)
    killed = time.monotonic()
    # A record read from the secondary node's store, never cached before: Redis answers.
    sample = f"http://127.0.0.1:{base + 1}/api/handles/88.100.1/demo-0002"
    status = None
    while time.monotonic() - killed < 15:
        with contextlib.suppress(httpx.TransportError):
            status = httpx.get(sample, timeout=2).status_code
            if status == 200:
                break
        time.sleep(0.2)
    assert status == 200, status
    assert time.monotonic() - killed < 10
    said = _read_until(up, "Redis (embedded redis-server) exited and was restarted", 20)
    assert "(restart 1)" in said and "redis.log" in said
    assert _redis_server(up.pid) != redis  # a new server, on the same port
    assert up.poll() is None  # the hierarchy runs on

    _ctrl_c(up)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    assert "Traceback" not in out + err


def _redis_server(launcher: int) -> int:
    """The pid of the redis-server a launcher started (there is one)."""
    for pid in _descendants(launcher):
        with contextlib.suppress(FileNotFoundError):
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes() and _alive(pid):
                return pid
    raise AssertionError("no redis-server under the launcher")


def test_a_closed_pipe_stops_quietly_and_leaves_no_temp_folder(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    base = _free_base()
    done = subprocess.run(
        f"{sys.executable} -m node up --port-base {base} --log-dir logs | head -3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert len(done.stdout.splitlines()) == 3
    assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr
    assert list(temp.iterdir()) == []
    # Nothing left running: every port free again, within a bound (in a loaded CI run a
    # port was once still held half a second after the stop; the cause was not found).
    deadline = time.monotonic() + 10
    while not all(_bindable(base + offset) for offset in DEMO_OFFSETS):
        assert time.monotonic() < deadline, "a demo port is still held 10 s after the stop"
        time.sleep(0.1)


def _broken_redis_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH starts with a redis-server that cannot run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "redis-server"
    broken.write_text(
        "#!/bin/sh\necho 'redis-server: error while loading shared libraries: libssl.so.3' >&2\n"
        "exit 127\n"
    )
    broken.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_broken_redis_server_is_named_with_a_log_that_is_kept(tmp_path: Path) -> None:
    env = _broken_redis_on_path(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "node", "up", "--port-base", str(_free_base())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    logs = list((tmp_path / ".idnode" / "logs").iterdir())  # the default log folder
    log = logs[0] / "redis.log"
    assert f"see {log}" in done.stderr, done.stderr
    assert "libssl.so.3" in log.read_text()  # Redis's own words, kept


def _serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "serve", "--role", "top", "--prefix", "88", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


def test_serve_with_a_broken_redis_server_fails_in_one_message(tmp_path: Path) -> None:
    env = _broken_redis_on_path(tmp_path)
    data = tmp_path / "data"
    done = _serve(tmp_path, "--port", str(free_port()), "--data-dir", str(data), env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("idnode: start-up failed: embedded redis-server did not start; see ")
    assert "libssl.so.3" in last and str(data / "redis.log") in last


def test_serve_on_a_busy_port_says_so_before_announcing_anything(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Generated admin secret" not in done.stderr and "node ready" not in done.stderr
    assert "Errno" not in done.stderr and "Traceback" not in done.stderr


def test_serve_with_an_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = _serve(tmp_path, "--port", str(free_port()), "--redis-url", url)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"cannot reach Redis at --redis-url {url}" in done.stderr
