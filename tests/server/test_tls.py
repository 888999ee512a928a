"""Nodes over HTTPS: a secondary node serving TLS, a top node that verifies it."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ADMIN_AUTH, basic
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server


def _write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 it signed: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idnode test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_a_top_node_resolves_over_verified_https(tmp_path: Path) -> None:
    ca, cert, key = _write_pki(tmp_path)
    secondary = NodeProcess(
        tmp_path / "secondary",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        scheme="https",
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    trusting = NodeProcess(tmp_path / "top", "--role", "top", "--tls-ca", str(ca), prefix="88")
    distrusting = NodeProcess(tmp_path / "top2", "--role", "top", prefix="88")
    nodes = [secondary, trusting, distrusting]
    try:
        for node in nodes:
            node.start()
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as http:
            put = http.put(
                f"{secondary.url}/api/handles/88.100/secure-1",
                json=[{"index": 1, "type": "URL", "data": "https://example.cn/s1"}],
                headers=ADMIN_AUTH,
            )
            assert put.status_code == 201
            for top in (trusting, distrusting):
                filed = http.put(
                    f"{top.url}/api/prefixes/88.100",
                    json={"kind": "secondary", "nodeUrl": secondary.url},
                    headers=basic("300:0.NA/88", "s3cret"),
                )
                assert filed.status_code == 201, filed.text

            answer = http.get(f"{trusting.url}/api/handles/88.100/secure-1")
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-cache"] == "MISS"
            assert answer.headers["x-resolved-by"] == secondary.url

            refused = http.get(f"{distrusting.url}/api/handles/88.100/secure-1")
            assert refused.status_code == 502
            assert "certificate" in refused.json()["message"]
            assert secondary.url in refused.json()["message"]
    finally:
        for node in nodes:
            node.stop()
