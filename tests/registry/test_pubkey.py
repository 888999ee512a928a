"""Public keys, signatures and login challenges (SM2 with SM3, Ed25519). Pure."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from registry.errors import InvalidValue
from registry.pubkey import (
    Algorithm,
    KeyType,
    PublicKey,
    challenge,
    generate,
    handle_dsa,
    new_nonce,
    sign,
)

IDENTITY = "300:88.100/devices/plc-7"
ALGORITHMS = [pytest.param(a, id=a.value) for a in Algorithm]
KEY_HEX = {Algorithm.SM2: 128, Algorithm.ED25519: 64}


def pair(algorithm: Algorithm) -> tuple[str, PublicKey]:
    private, public = generate(algorithm)
    return private, PublicKey.parse(public)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_generated_pair_signs_and_verifies(algorithm: Algorithm) -> None:
    private, public = generate(algorithm)
    assert private.startswith(f"{algorithm.value}:") and public.startswith(f"{algorithm.value}:")
    key = PublicKey.parse(public)
    assert key.algorithm is algorithm and len(key.hex) == KEY_HEX[algorithm]
    message = challenge(IDENTITY, new_nonce())
    signature = sign(private, message)
    assert key.verifies(message, signature)
    assert key.verifies(message, signature.upper())  # hex is case-insensitive


def test_an_sm2_key_whose_x_starts_with_04_signs_and_verifies() -> None:
    # gmssl reads a key starting with "04" as prefixed and strips its leading 0s and 4s.
    private = "sm2:9fcb5f11c59ad4b3cb937d2ac8ec6d559f379f0df6008c05ccceaacfa50dab44"
    public = (
        "sm2:04dc4f6b7140ca3f24aa118b6ed02a112e2e3ff0ba486cfdfabdb4eafc39df32"
        "39085fed8d019305f5854991a029bdb75bed056dfd1681d808830b5d36b85350"
    )
    key = PublicKey.parse(public)
    message = challenge(IDENTITY, "n1")
    signature = sign(private, message)
    assert key.verifies(message, signature)
    assert not key.verifies(challenge(IDENTITY, "n2"), signature)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tampered_message_does_not_verify(algorithm: Algorithm) -> None:
    private, key = pair(algorithm)
    message = challenge(IDENTITY, "n1")
    signature = sign(private, message)
    assert not key.verifies(challenge(IDENTITY, "n2"), signature)
    assert not key.verifies(challenge("300:88.100/devices/plc-8", "n1"), signature)
    assert not key.verifies(message + b"x", signature)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_another_pairs_signature_does_not_verify(algorithm: Algorithm) -> None:
    _, key = pair(algorithm)
    other_private, other_key = pair(algorithm)
    message = challenge(IDENTITY, "n1")
    signature = sign(other_private, message)
    assert other_key.verifies(message, signature)
    assert not key.verifies(message, signature)


def test_signature_of_the_other_algorithm_does_not_verify() -> None:
    sm2_private, sm2_key = pair(Algorithm.SM2)
    ed_private, ed_key = pair(Algorithm.ED25519)
    message = challenge(IDENTITY, "n1")
    assert not sm2_key.verifies(message, sign(ed_private, message))
    assert not ed_key.verifies(message, sign(sm2_private, message))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("abc", id="odd-length"),
        pytest.param("zz" * 64, id="non-hex"),
        pytest.param("00" * 64, id="zeros"),
        pytest.param("ff" * 64, id="ones"),
        pytest.param("ab" * 200, id="too-long"),
        pytest.param("01", id="too-short"),
        pytest.param("ég" * 32, id="non-ascii"),
    ],
)
def test_garbage_signature_is_refused(algorithm: Algorithm, signature: str) -> None:
    _, key = pair(algorithm)
    assert key.verifies(challenge(IDENTITY, "n1"), signature) is False


@pytest.mark.parametrize("cut", [2, 126, 130])
def test_sm2_signature_of_the_wrong_length_is_refused(cut: int) -> None:
    private, key = pair(Algorithm.SM2)
    message = challenge(IDENTITY, "n1")
    signature = sign(private, message)
    assert len(signature) == 128
    wrong = signature[:cut] if cut < 128 else signature + "00"
    assert key.verifies(message, wrong) is False


def test_tampered_sm2_signature_is_refused() -> None:
    private, key = pair(Algorithm.SM2)
    message = challenge(IDENTITY, "n1")
    signature = sign(private, message)
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert key.verifies(message, flipped) is False


def test_ed25519_signature_of_the_wrong_length_is_refused() -> None:
    private, key = pair(Algorithm.ED25519)
    message = challenge(IDENTITY, "n1")
    signature = sign(private, message)
    assert len(signature) == 128
    assert key.verifies(message, signature[:-2]) is False
    assert key.verifies(message, signature + "00") is False


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("rsa:" + "ab" * 32, id="unknown-algorithm"),
        pytest.param("ab" * 32, id="no-algorithm"),
        pytest.param("", id="empty"),
        pytest.param("sm2:" + "ab" * 32, id="sm2-too-short"),
        pytest.param("sm2:" + "ab" * 65, id="sm2-too-long"),
        pytest.param("ed25519:" + "ab" * 31, id="ed25519-too-short"),
        pytest.param("ed25519:" + "ab" * 64, id="ed25519-too-long"),
        pytest.param("sm2:" + "zz" * 64, id="sm2-non-hex"),
        pytest.param("ed25519:" + "g" * 64, id="ed25519-non-hex"),
        pytest.param("ed25519:", id="no-key"),
        pytest.param("ed25519:" + "ab" * 31 + " a", id="inner-space"),
    ],
)
def test_parse_refuses_malformed_keys(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        PublicKey.parse(text)
    assert caught.value.http_status == 400 and caught.value.response_code == 202


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_parse_accepts_upper_case_and_round_trips(algorithm: Algorithm) -> None:
    private, public = generate(algorithm)
    shouted = PublicKey.parse(f"  {public.upper()}  ")
    assert shouted == PublicKey.parse(public)
    assert shouted.algorithm is algorithm and shouted.hex == shouted.hex.lower()
    assert shouted.text == public
    assert PublicKey.parse(shouted.text) == shouted
    message = challenge(IDENTITY, "n1")
    assert shouted.verifies(message, sign(private, message))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sign_accepts_an_upper_case_algorithm_name(algorithm: Algorithm) -> None:
    private, key = pair(algorithm)
    name, _, hex_key = private.partition(":")
    message = challenge(IDENTITY, "n1")
    assert key.verifies(message, sign(f"{name.upper()}:{hex_key}", message))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pairs_are_fresh(algorithm: Algorithm) -> None:
    first, second = generate(algorithm), generate(algorithm)
    assert first[0] != second[0] and first[1] != second[1]


def test_challenge_names_identity_and_nonce() -> None:
    nonce = new_nonce()
    message = challenge(IDENTITY, nonce)
    assert isinstance(message, bytes)
    assert IDENTITY.encode() in message and nonce.encode() in message
    assert message == f"idnode-login\n{IDENTITY}\n{nonce}".encode()
    assert challenge(IDENTITY, "a") != challenge(IDENTITY, "b")
    assert challenge("300:88.100/a", "n") != challenge("300:88.100/b", "n")


def test_nonces_are_fresh_hex() -> None:
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 32 and n.isalnum() and int(n, 16) >= 0 for n in nonces)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("sm2:" + "00" * 64, id="sm2-zero"),
        pytest.param("sm2:" + "ff" * 64, id="sm2-off-curve"),
        pytest.param("ed25519:" + "00" * 32, id="ed25519-zero"),
        pytest.param("ed25519:" + "ff" * 32, id="ed25519-off-curve"),
    ],
)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_key_off_the_curve_verifies_nothing(text: str, algorithm: Algorithm) -> None:
    key = PublicKey.parse(text)
    private, _ = generate(algorithm)
    message = challenge(IDENTITY, "n1")
    assert key.verifies(message, sign(private, message)) is False
    assert key.verifies(message, "01" * 64) is False


# --- Handle's own keys: HS_PUBKEY data in format "key" (RSA, DSA), signed with SHA-256 ---


def _b64url(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def dsa_private() -> dsa.DSAPrivateKey:
    with handle_dsa():
        return dsa.generate_private_key(key_size=2048)


def key_data(private: rsa.RSAPrivateKey | dsa.DSAPrivateKey) -> dict[str, str]:
    """The public half as Handle writes it in a ``key`` value."""
    if isinstance(private, rsa.RSAPrivateKey):
        n = private.public_key().public_numbers()
        return {"kty": "RSA", "n": _b64url(n.n), "e": _b64url(n.e)}
    d = private.public_key().public_numbers()
    p = d.parameter_numbers
    return {
        "kty": "DSA",
        "y": _b64url(d.y),
        "p": _b64url(p.p),
        "q": _b64url(p.q),
        "g": _b64url(p.g),
    }


def handle_sign(private: rsa.RSAPrivateKey | dsa.DSAPrivateKey, message: bytes) -> str:
    """What a Handle client sends: SHA256withRSA (PKCS #1 v1.5) or SHA256withDSA (DER)."""
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()
    with handle_dsa():
        return private.sign(message, hashes.SHA256()).hex()


@pytest.mark.parametrize("kind", ["rsa", "dsa"])
def test_a_handle_key_verifies_its_sha256_signatures(
    kind: str, rsa_private: rsa.RSAPrivateKey, dsa_private: dsa.DSAPrivateKey
) -> None:
    private = rsa_private if kind == "rsa" else dsa_private
    key = PublicKey.from_key_data(key_data(private))
    assert key.algorithm is KeyType(kind)
    message = challenge(IDENTITY, "n1")
    signature = handle_sign(private, message)
    assert key.verifies(message, signature)
    assert not key.verifies(challenge(IDENTITY, "n2"), signature)
    assert not key.verifies(message, signature[:-2] + ("00" if signature[-2:] != "00" else "01"))
    assert not key.verifies(message, "zz")
    assert not key.verifies(message, "")


def test_a_handle_key_is_not_another_ones(
    rsa_private: rsa.RSAPrivateKey, dsa_private: dsa.DSAPrivateKey
) -> None:
    message = challenge(IDENTITY, "n1")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not PublicKey.from_key_data(key_data(other)).verifies(
        message, handle_sign(rsa_private, message)
    )
    assert not PublicKey.from_key_data(key_data(rsa_private)).verifies(
        message, handle_sign(dsa_private, message)
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"kty": "RSA", "n": "AA", "e": "AQAB"}, id="rsa-modulus-zero"),
        pytest.param({"kty": "RSA", "n": "sXch", "e": "AQAB"}, id="rsa-modulus-tiny"),
        pytest.param({"kty": "DSA", "y": "Ag", "p": "Aw", "q": "Ag", "g": "Ag"}, id="dsa-toy"),
        pytest.param({"kty": "EC", "x": "AA"}, id="unknown-kty"),
    ],
)
def test_a_key_that_cannot_verify_is_refused(data: dict[str, str]) -> None:
    with pytest.raises(InvalidValue):
        PublicKey.from_key_data(data)
