"""The Authorization: Handle header and the answers to a session's nonce. Pure."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from registry.authorization import (
    Answer,
    HandleAuthorization,
    is_handle_scheme,
    new_nonce,
    nonce_bytes,
    parse,
)
from registry.errors import AuthenticationRequired
from registry.pubkey import Algorithm, PublicKey, generate, sign

NONCE = b"n" * 24
CNONCE = b"c" * 16


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def answer_for(private: str, *, alg: str, nonce: bytes = NONCE, der: bool = False) -> Answer:
    signature = bytes.fromhex(sign(private, nonce + CNONCE))
    if der:
        signature = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
    header = (
        f'Handle sessionId="s", id="300%3A88.100%2Fdev", type="HS_PUBKEY", alg="{alg}", '
        f'cnonce="{b64(CNONCE)}", signature="{b64(signature)}"'
    )
    return Answer.of(parse(header))


def test_parse_reads_every_field() -> None:
    auth = parse(
        'Handle version="0", sessionId="abc", id="300%3A0.NA%2F88.100", type=HS_PUBKEY, '
        'alg="SM3", cnonce="Y24=", signature="c2ln", clientCert="false"'
    )
    assert auth == HandleAuthorization(
        session_id="abc",
        version="0",
        id="300:0.NA/88.100",
        type="HS_PUBKEY",
        alg="SM3",
        cnonce="Y24=",
        signature="c2ln",
    )
    assert auth.authenticating


def test_parse_names_ignore_case_and_quotes_unescape() -> None:
    auth = parse('handle SESSIONID = "a\\"b" ,  Id="300:88.100/y"')
    assert auth.session_id == 'a"b' and auth.id == "300:88.100/y"


def test_session_id_alone_is_not_authenticating() -> None:
    assert not parse('Handle sessionId="abc"').authenticating


@pytest.mark.parametrize(
    "header",
    [
        "Handle",
        "Handle   ",
        "Basic abc",
        "Handle sessionId",
        'Handle sessionId="open',
        'Handle sessionId="a" id="b"',
        "Handle =x",
        "Handle a=b,,c",
        "Handle sessionId=" + "x" * 5000,
    ],
)
def test_malformed_headers_are_refused_clearly(header: str) -> None:
    with pytest.raises(AuthenticationRequired) as raised:
        parse(header)
    assert raised.value.http_status == 401 and raised.value.response_code == 402
    assert raised.value.message


@given(st.text(max_size=300))
def test_parse_never_fails_otherwise(text: str) -> None:
    try:
        parse("Handle " + text)
    except AuthenticationRequired:
        pass


def test_scheme_detection() -> None:
    assert is_handle_scheme('  HANDLE sessionId="x"')
    assert not is_handle_scheme("Bearer x") and not is_handle_scheme("Handles x")


def test_body_fields_fill_what_the_header_lacks() -> None:
    auth = parse('Handle sessionId="s", alg="SM3"').with_defaults(
        {"sessionId": "other", "id": "300:88.100/y", "alg": "Ed25519"}
    )
    assert (auth.session_id, auth.id, auth.alg) == ("s", "300:88.100/y", "SM3")


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ('Handle sessionId="s"', "Missing"),
        ('Handle id="300:88.100/y", type=HS_PUBKEY, alg=SM3, cnonce="Y24="', "signature"),
        (
            'Handle version=1, id="300:88.100/y", type=HS_PUBKEY, alg=SM3, '
            'cnonce="Y24=", signature="c2ln"',
            "version",
        ),
        ('Handle id="88.100/y", type=HS_PUBKEY, alg=SM3, cnonce="Y24=", signature="c2ln"', "id"),
        (
            'Handle id="300:88.100/y", type=HS_VLIST, alg=SM3, cnonce="Y24=", signature="c2ln"',
            "type",
        ),
        (
            'Handle id="300:88.100/y", type=HS_PUBKEY, alg=SM3, cnonce="*", signature="c2ln"',
            "base64",
        ),
        (
            'Handle id="300:88.100/y", type=HS_PUBKEY, alg=SM3, cnonce="Y24=", signature="%%"',
            "base64",
        ),
    ],
)
def test_incomplete_or_malformed_answers(header: str, complaint: str) -> None:
    with pytest.raises(AuthenticationRequired, match=complaint):
        Answer.of(parse(header))


def test_overlong_cnonce_is_refused() -> None:
    header = (
        f'Handle id="300:88.100/y", type=HS_PUBKEY, alg=SM3, cnonce="{b64(b"c" * 257)}", '
        'signature="c2ln"'
    )
    with pytest.raises(AuthenticationRequired, match="cnonce"):
        Answer.of(parse(header))


@pytest.mark.parametrize(
    ("algorithm", "alg"), [(Algorithm.SM2, "sm3"), (Algorithm.ED25519, "Ed-25519")]
)
def test_answers_verify_over_nonce_and_cnonce(algorithm: Algorithm, alg: str) -> None:
    private, public = generate(algorithm)
    key = PublicKey.parse(public)
    assert answer_for(private, alg=alg).verifies(key, NONCE)
    assert not answer_for(private, alg=alg).verifies(key, b"m" * 24)  # another nonce
    assert not answer_for(private, alg="SHA256").verifies(key, NONCE)  # Handle's RSA alg
    other_private, _ = generate(algorithm)
    assert not answer_for(other_private, alg=alg).verifies(key, NONCE)


def test_sm2_der_signature_verifies_and_garbage_does_not() -> None:
    private, public = generate(Algorithm.SM2)
    key = PublicKey.parse(public)
    assert answer_for(private, alg="SM3", der=True).verifies(key, NONCE)
    garbage = Answer.of(
        parse(
            'Handle id="300:88.100/y", type=HS_PUBKEY, alg=SM3, cnonce="Y24=", '
            f'signature="{b64(b"x" * 70)}"'
        )
    )
    assert not garbage.verifies(key, NONCE)


def test_secret_key_answers_never_verify_against_a_public_key() -> None:
    private, public = generate(Algorithm.ED25519)
    signature = bytes.fromhex(sign(private, NONCE + CNONCE))
    answer = Answer.of(
        parse(
            f'Handle id="300:88.100/y", type=HS_SECKEY, alg=Ed25519, cnonce="{b64(CNONCE)}", '
            f'signature="{b64(signature)}"'
        )
    )
    assert answer.type == "HS_SECKEY" and not answer.verifies(PublicKey.parse(public), NONCE)


def test_nonces_are_fresh_base64() -> None:
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50 and all(len(nonce_bytes(n)) == 24 for n in nonces)
