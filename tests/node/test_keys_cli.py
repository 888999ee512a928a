"""``idnode keys`` as a user runs it: generate a key pair, sign a challenge, log in."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.pubkey import Algorithm, PublicKey, challenge
from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

IDENTITY = "300:88.100/d"
ALGORITHMS = [pytest.param(a, id=a.value) for a in Algorithm]
KEY_LINE = re.compile(r"^(private|public) key \([^)]*\): (\S+)$")


def idnode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def generated(algorithm: Algorithm) -> tuple[str, str]:
    """Run ``keys generate``; (private, public) as printed."""
    run = idnode("generate", "--algorithm", algorithm.value)
    assert run.returncode == 0, run.stderr
    found: dict[str, str] = {}
    for line in run.stdout.splitlines():
        match = KEY_LINE.match(line)
        assert match, f"unexpected output line {line!r}"
        found[match.group(1)] = match.group(2)
    assert set(found) == {"private", "public"}
    return found["private"], found["public"]


def signed(key: str, nonce: str = "abc", identity: str = IDENTITY) -> str:
    run = idnode("sign", "--key", key, "--identity", identity, "--nonce", nonce)
    assert run.returncode == 0, run.stderr
    signature = run.stdout.strip()
    assert "\n" not in signature
    return signature


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_generate_then_sign_verifies(algorithm: Algorithm) -> None:
    private, public = generated(algorithm)
    assert private.startswith(f"{algorithm.value}:") and public.startswith(f"{algorithm.value}:")
    assert private != public
    key = PublicKey.parse(public)
    assert key.algorithm is algorithm and key.text == public
    signature = signed(private)
    assert re.fullmatch(r"[0-9a-f]{128}", signature)
    assert key.verifies(challenge(IDENTITY, "abc"), signature)
    assert not key.verifies(challenge(IDENTITY, "abd"), signature)
    assert not key.verifies(challenge("300:88.100/e", "abc"), signature)


def test_generate_defaults_to_sm2() -> None:
    run = idnode("generate")
    assert run.returncode == 0, run.stderr
    assert "private key (keep it secret): sm2:" in run.stdout
    assert "public key (HS_PUBKEY value): sm2:" in run.stdout


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sign_reads_the_key_from_a_file(algorithm: Algorithm, tmp_path: Path) -> None:
    private, public = generated(algorithm)
    key_file = tmp_path / "device.key"
    key_file.write_text(private + "\n")
    signature = signed(f"@{key_file}", nonce="n42")
    assert PublicKey.parse(public).verifies(challenge(IDENTITY, "n42"), signature)


def test_generate_refuses_an_unknown_algorithm() -> None:
    run = idnode("generate", "--algorithm", "rsa")
    assert run.returncode == 2 and "invalid choice" in run.stderr


def test_sign_needs_its_options() -> None:
    run = idnode("sign", "--identity", IDENTITY, "--nonce", "abc")
    assert run.returncode == 2 and "--key" in run.stderr


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("rsa:00", id="unknown-algorithm"),
        pytest.param("sm2:zz", id="sm2-not-hex"),
        pytest.param("ed25519:abcd", id="ed25519-short"),
        pytest.param("@/nonexistent/device.key", id="missing-file"),
    ],
)
def test_sign_with_a_bad_key_is_a_clean_error(key: str) -> None:
    run = idnode("sign", "--key", key, "--identity", IDENTITY, "--nonce", "abc")
    assert run.returncode == 2
    assert run.stderr.startswith("idnode: ") and "Traceback" not in run.stderr


def test_login_to_a_node_that_is_down() -> None:
    key = "ed25519:" + "00" * 32
    run = idnode("login", "--url", "http://127.0.0.1:1", "--key", key, "--identity", IDENTITY)
    assert run.returncode == 2
    assert run.stderr.startswith("idnode: POST /api/sessions: ")
    assert "Traceback" not in run.stderr


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.server
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_login_prints_a_working_token(node: NodeProcess, algorithm: Algorithm) -> None:
    private, public = generated(algorithm)
    device = "88.100/devices/plc-7"
    identity = f"300:{device}"
    with httpx.Client(base_url=node.url, timeout=10) as http:
        created = http.put(
            f"/api/handles/{device}",
            json=[{"index": 300, "type": "HS_PUBKEY", "data": public}],
            headers=ADMIN_AUTH,
        )
        assert created.status_code == 201, created.text

        run = idnode("login", "--url", node.url, "--key", private, "--identity", identity)
        assert run.returncode == 0, run.stderr
        token = run.stdout.strip()
        assert token and "\n" not in token
        audit = http.get("/api/audit", headers={"Authorization": f"Bearer {token}"})
        assert audit.status_code == 403  # a known identity, just not the administrator
        assert "plc-7" in audit.json()["message"]

        # a Handle session: the token names it, and shows who it is authenticated as
        shown = http.get(
            "/api/sessions/this", headers={"Authorization": f'Handle sessionId="{token}"'}
        )
        assert shown.status_code == 200 and shown.json()["id"] == identity
        used = _login_requests(http)
        assert used["PUT /api/sessions/this 200"] == 1 and used["POST /api/sessions 201"] == 1
        assert not any("challenge" in route for route in used)  # no longer the old endpoint

        other_private, _ = generated(algorithm)
        wrong = idnode("login", "--url", node.url, "--key", other_private, "--identity", identity)
        assert wrong.returncode == 2
        assert wrong.stderr.startswith("idnode: PUT /api/sessions/this: HTTP 401")
        assert "signature" in wrong.stderr


def _login_requests(http: httpx.Client) -> dict[str, float]:
    """The node's request counts for the session routes, as '<method> <route> <status>'."""
    found: dict[str, float] = {}
    for line in http.get("/metrics").text.splitlines():
        match = re.match(
            r'idnode_http_requests_total\{method="(\w+)",route="([^"]*sessions[^"]*)",'
            r'status="(\d+)"\} (\S+)',
            line,
        )
        if match:
            method, route, status, count = match.groups()
            found[f"{method} {route} {status}"] = float(count)
    return found
