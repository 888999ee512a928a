"""``idnode import`` against a real node: killed with SIGKILL mid-run and run again, it
imports every identifier exactly once; lines the node refuses (no right for the
prefix) and lines that are no record land in the rejects file, once each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_AUTH, ADMIN_SECRET
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server

LINES = 20_000
OWN, FOREIGN = "88.100.1", "88.100.2"  # the importer administers only the first
IMPORTER, IMPORTER_SECRET = f"300:0.NA/{OWN}", "importer-secret"
BAD_LINE = 7_777  # not JSON
LOOKALIKE = 12_345  # not JSON either, but like an object: the node refuses its chunk


def _foreign(n: int) -> bool:
    return n % 1000 == 500


def _write(path: Path) -> None:
    with path.open("wb") as out:
        for n in range(1, LINES + 1):
            if n == BAD_LINE:
                out.write(b"{oops\n")
                continue
            if n == LOOKALIKE:
                out.write(b'{"handle": "88.100.1/imp-12345", oops}\n')
                continue
            prefix = FOREIGN if _foreign(n) else OWN
            values = [
                {"index": 1, "type": "URL", "data": f"https://f.example.cn/p/{n}"},
                {"index": 2, "type": "BATCH", "data": f"B{n // 100:04d}"},
            ]
            out.write(orjson.dumps({"handle": f"{prefix}/imp-{n:05d}", "values": values}) + b"\n")


def _import(node: NodeProcess, file: Path) -> subprocess.Popen[bytes]:
    """The import command, its progress and summary read with ``communicate()``."""
    command = [sys.executable, "-m", "node", "import", str(file), "--url", node.url]
    command += ["--identity", IMPORTER, "--chunk", "500", "--in-flight", "4"]
    command += ["--progress-every", "0.05"]
    env = {**os.environ, "IDNODE_IMPORT_SECRET": IMPORTER_SECRET}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _listed(node: NodeProcess, prefix: str) -> list[str]:
    handles: list[str] = []
    for page in range(3):
        answer = httpx.get(
            f"{node.url}/api/handles",
            params={"prefix": prefix, "page": page, "pageSize": 10_000},
            headers=ADMIN_AUTH,
        )
        assert answer.status_code == 200, answer.text
        handles += answer.json()["handles"]
    return handles


def test_import_killed_and_resumed_writes_every_identifier_once(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data").start()
    try:
        secret = [{"index": 300, "type": "HS_SECKEY", "data": IMPORTER_SECRET}]
        put = httpx.put(f"{node.url}/api/handles/0.NA/{OWN}", json=secret, headers=ADMIN_AUTH)
        assert put.status_code in (200, 201), put.text
        file = tmp_path / "ids.ndjson"
        _write(file)
        checkpoint = tmp_path / "ids.ndjson.checkpoint"

        first = _import(node, file)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill it once a few chunks are acknowledged
            if checkpoint.exists() and orjson.loads(checkpoint.read_bytes())["line"] > 3000:
                break
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=10)
        stopped_at = orjson.loads(checkpoint.read_bytes())["line"]
        assert 3000 < stopped_at < LINES, "the import was not interrupted mid-run"

        second = _import(node, file)
        _, err = second.communicate(timeout=50)
        assert second.returncode == 1, err  # 1: some lines were rejected
        foreign = [n for n in range(1, LINES + 1) if _foreign(n)]
        good = LINES - len(foreign) - 2
        summary = err.decode().strip().splitlines()
        assert f"imported {good:,}, rejected {len(foreign) + 2}" in "\n".join(summary)
        assert any("ETA" in line for line in summary), summary

        listed = _listed(node, OWN)
        assert len(listed) == len(set(listed)) == good
        expected = {f"{OWN}/imp-{n:05d}" for n in range(1, LINES + 1)}
        expected -= {f"{OWN}/imp-{n:05d}" for n in [*foreign, BAD_LINE, LOOKALIKE]}
        assert set(listed) == expected
        assert _listed(node, FOREIGN) == []  # nothing written for the refused prefix
        around = (1, stopped_at - 1, stopped_at, stopped_at + 1, LINES)
        picks = [n for n in around if f"{OWN}/imp-{n:05d}" in expected]  # not refused ones
        assert len(picks) >= 3
        for n in picks:
            answer = httpx.get(f"{node.url}/api/handles/{OWN}/imp-{n:05d}")
            assert answer.status_code == 200
            assert answer.json()["values"][0]["data"]["value"] == f"https://f.example.cn/p/{n}"

        rejects_file = tmp_path / "ids.ndjson.rejects"
        rejects = [orjson.loads(line) for line in rejects_file.read_bytes().splitlines()]
        assert [r["line"] for r in rejects] == sorted([*foreign, BAD_LINE, LOOKALIKE])  # once each
        refused = [r for r in rejects if r["line"] not in (BAD_LINE, LOOKALIKE)]
        assert {(r["status"], r["responseCode"]) for r in refused} == {(403, 400)}
        assert refused[0]["handle"] == f"{FOREIGN}/imp-00500"
        for line in (BAD_LINE, LOOKALIKE):
            assert next(r for r in rejects if r["line"] == line)["reason"].startswith("not JSON")

        # Run again: the checkpoint says everything is done; nothing is sent again.
        third = _import(node, file)
        _, err = third.communicate(timeout=20)
        assert "(0/s this run)" in err.decode()
    finally:
        node.stop()


def test_wrong_credentials_stop_the_import_and_so_does_a_reject_with_stop_on_error(
    tmp_path: Path,
) -> None:
    node = NodeProcess(tmp_path / "data").start()
    try:
        file = tmp_path / "ids.csv"
        file.write_text("handle,URL\n88.100/a,https://x.cn/a\n")
        command = [sys.executable, "-m", "node", "import", str(file), "--url", node.url]
        command += ["--identity", "300:0.NA/88.100", "--secret", "wrong"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert done.returncode == 1
        assert "refused the credentials" in done.stderr
        assert httpx.get(f"{node.url}/api/handles/88.100/a").status_code == 404

        # --stop-on-error: a CSV row of the wrong width (line 4) stops the import after
        # its chunk; run again without it, the import goes on from there.
        rows = ["handle,URL", *(f"88.100/c{n},https://x.cn/{n}" for n in range(1, 6))]
        rows[3] = "88.100/c3,https://x.cn/3,extra"
        file.write_text("\n".join(rows) + "\n")
        command[-1] = ADMIN_SECRET
        command += ["--chunk", "1", "--in-flight", "1", "--restart"]
        done = subprocess.run([*command, "--stop-on-error"], capture_output=True, text=True)
        assert done.returncode == 1 and "--stop-on-error" in done.stderr, done.stderr
        found = [httpx.get(f"{node.url}/api/handles/88.100/c{n}").status_code for n in range(1, 6)]
        assert found == [200, 200, 404, 200, 404]  # line 4 rode with line 5
        command.remove("--restart")
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
        assert "imported 4, rejected 1" in done.stderr, done.stderr
        found = [httpx.get(f"{node.url}/api/handles/88.100/c{n}").status_code for n in range(1, 6)]
        assert found == [200, 200, 404, 200, 200]
        rejects = (tmp_path / "ids.csv.rejects").read_bytes().splitlines()
        assert [orjson.loads(r)["line"] for r in rejects] == [4]
    finally:
        node.stop()
