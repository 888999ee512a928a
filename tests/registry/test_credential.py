"""registry.credential: scrypt hashes, Basic credentials and the verification memo.

scrypt costs tens of milliseconds per call, so the hash of "pw" is made once per module
and the memo tests use fake stored strings wherever no real verification is needed.
"""

from __future__ import annotations

import base64
import string

import pytest

from registry.credential import (
    VerifiedSecrets,
    generate_secret,
    hash_secret,
    is_hashed,
    parse_basic,
    verify_secret,
)
from registry.errors import AuthenticationRequired
from registry.identifier import Identity

IDENTITY = "300:0.na/88.100"  # an identity key, as the registrar passes it


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_secret("pw")


# --- hashing -----------------------------------------------------------------------------


def test_hash_is_self_describing_scrypt(stored: str) -> None:
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(digest, validate=True)) == 64
    assert is_hashed(stored)
    assert "pw" not in stored.split("$")


def test_verify_right_and_wrong_secret(stored: str) -> None:
    assert verify_secret("pw", stored) is True
    assert verify_secret("pW", stored) is False


def test_hashes_of_one_secret_are_salted_differently(stored: str) -> None:
    again = hash_secret("pw")
    assert again != stored
    assert again.split("$")[4] != stored.split("$")[4]


def test_tampered_digest_does_not_verify(stored: str) -> None:
    parts = stored.split("$")
    digest = bytearray(base64.b64decode(parts[5]))
    digest[0] ^= 1
    parts[5] = base64.b64encode(bytes(digest)).decode()
    assert verify_secret("pw", "$".join(parts)) is False


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "pw",
        "scrypt",
        "scrypt$16384$8$1$AAAA",  # too few fields
        "scrypt$16384$8$1$AAAA$AAAA$AAAA",  # too many fields
        "bcrypt$16384$8$1$AAAA$AAAA",  # another scheme
        "scrypt$x$8$1$AAAA$AAAA",  # n not a number
        "scrypt$16384$8$1$!!!!$AAAA",  # salt not base64
        "scrypt$16384$8$1$AAAA$A",  # digest not base64
        "scrypt$16384$8$1$é$AAAA",  # non-ASCII base64
        "scrypt$3$8$1$AAAA$AAAA",  # n not a power of two
        "scrypt$16384$0$1$AAAA$AAAA",  # r = 0
        "scrypt$-1$8$1$AAAA$AAAA",
        "scrypt$" + "9" * 30 + "$8$1$AAAA$AAAA",
    ],
)
def test_malformed_stored_hash_never_verifies(malformed: str) -> None:
    assert verify_secret("pw", malformed) is False


def test_is_hashed() -> None:
    assert not is_hashed("pw")
    assert not is_hashed("scrypt")
    assert is_hashed("scrypt$anything")


def test_generate_secret_is_random_and_url_safe() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    allowed = set(string.ascii_letters + string.digits + "-_")
    for secret in secrets:
        assert len(secret) == 24
        assert set(secret) <= allowed


# --- parse_basic -------------------------------------------------------------------------


def basic(credentials: str | bytes, scheme: str = "Basic") -> str:
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return f"{scheme} {base64.b64encode(raw).decode()}"


@pytest.mark.parametrize(
    ("credentials", "identity", "secret"),
    [
        ("300%3A0.NA%2F88.100:pw", "300:0.NA/88.100", "pw"),
        ("300%3a0.NA%2f88.100:pw", "300:0.NA/88.100", "pw"),
        ("300:0.NA/88.100:pw", "300:0.NA/88.100", "pw"),
        ("300%3A0.NA%2F88.100:p:w:x", "300:0.NA/88.100", "p:w:x"),
        ("300:0.NA/88.100:p:w:x", "300:0.NA/88.100", "p:w:x"),
        ("300:0.na/88.100:pw", "300:0.NA/88.100", "pw"),
        ("1%3A88.100%2Fuser:sécret", "1:88.100/user", "sécret"),
        ("300%3A88%2Fa%3Ab:pw", "300:88/a:b", "pw"),  # encoded colon inside the handle
    ],
)
def test_parse_basic(credentials: str, identity: str, secret: str) -> None:
    parsed_identity, parsed_secret = parse_basic(basic(credentials))
    assert parsed_identity == Identity.parse(identity)
    assert parsed_identity.text == identity
    assert parsed_secret == secret


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_scheme_is_case_insensitive(scheme: str) -> None:
    identity, secret = parse_basic(basic("300:0.NA/88.100:pw", scheme))
    assert (identity.text, secret) == ("300:0.NA/88.100", "pw")


def test_token_whitespace_is_tolerated() -> None:
    token = base64.b64encode(b"300:0.NA/88.100:pw").decode()
    identity, secret = parse_basic(f"Basic  {token} ")
    assert (identity.text, secret) == ("300:0.NA/88.100", "pw")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("", "Use HTTP Basic"),
        ("Basic", "Use HTTP Basic"),
        ("Basic ", "Use HTTP Basic"),
        ("Bearer abc", "Use HTTP Basic"),
        ("Digest " + base64.b64encode(b"300:0.NA/88.100:pw").decode(), "Use HTTP Basic"),
        ("Basic !!!!", "Malformed Basic credentials"),
        ("Basic abc", "Malformed Basic credentials"),  # bad padding
        (basic(b"\xff\xfe:pw"), "Malformed Basic credentials"),  # not UTF-8
        (basic("300%3A0.NA%2F88.100"), "no secret"),
        (basic("300:0.NA/88.100"), "no secret"),
        (basic("user"), "no secret"),
        (basic("user:pw"), "Malformed username"),
        (basic("300:88:pw"), "Malformed username"),
        (basic("300%3A88:pw"), "Malformed username"),
        (basic("x%3A0.NA%2F88.100:pw"), "Malformed username"),
        (basic(":pw"), "Malformed username"),
    ],
)
def test_malformed_credentials_need_authentication(header: str, problem: str) -> None:
    with pytest.raises(AuthenticationRequired) as info:
        parse_basic(header)
    assert problem in info.value.message
    assert (info.value.response_code, info.value.http_status) == (402, 401)


def test_non_ascii_token_needs_authentication() -> None:
    with pytest.raises(AuthenticationRequired):
        parse_basic("Basic é")


def test_huge_identity_index_needs_authentication() -> None:
    with pytest.raises(AuthenticationRequired):
        parse_basic(basic("9" * 5000 + ":0.NA/88.100:pw"))


# --- VerifiedSecrets ---------------------------------------------------------------------


def test_remember_and_remembered_without_scrypt() -> None:
    memo = VerifiedSecrets()
    assert not memo.remembered(IDENTITY, "pw", "stored-1")
    memo.remember(IDENTITY, "pw", "stored-1")
    assert memo.remembered(IDENTITY, "pw", "stored-1")
    assert not memo.remembered(IDENTITY, "other", "stored-1")  # a different secret
    assert not memo.remembered(IDENTITY, "pw", "stored-2")  # a changed stored hash
    assert not memo.remembered("301:0.na/88.100", "pw", "stored-1")  # another identity


def test_remembering_a_new_secret_replaces_the_old_one() -> None:
    memo = VerifiedSecrets()
    memo.remember(IDENTITY, "old", "stored")
    memo.remember(IDENTITY, "new", "stored")
    assert memo.remembered(IDENTITY, "new", "stored")
    assert not memo.remembered(IDENTITY, "old", "stored")


def test_memos_do_not_share_their_key() -> None:
    first, second = VerifiedSecrets(), VerifiedSecrets()
    first.remember(IDENTITY, "pw", "stored")
    assert not second.remembered(IDENTITY, "pw", "stored")


def test_check_verifies_then_remembers(stored: str) -> None:
    memo = VerifiedSecrets()
    assert not memo.remembered(IDENTITY, "pw", stored)
    assert memo.check(IDENTITY, "pw", stored) is True
    assert memo.remembered(IDENTITY, "pw", stored)
    assert memo.check(IDENTITY, "pw", stored) is True


def test_check_with_a_wrong_secret_fails_and_is_not_remembered(stored: str) -> None:
    memo = VerifiedSecrets()
    memo.remember(IDENTITY, "pw", stored)
    assert memo.check(IDENTITY, "wrong", stored) is False
    assert not memo.remembered(IDENTITY, "wrong", stored)
    assert memo.remembered(IDENTITY, "pw", stored)  # the right secret stays remembered


def test_check_after_rotation_falls_back_to_verification(stored: str) -> None:
    memo = VerifiedSecrets()
    memo.remember(IDENTITY, "pw", stored)
    rotated = "scrypt$16384$8$1$AAAA$AAAA"  # "pw" does not verify against it
    assert memo.check(IDENTITY, "pw", rotated) is False
    assert not memo.remembered(IDENTITY, "pw", rotated)


def test_check_never_trusts_an_unverified_memo_for_another_hash() -> None:
    memo = VerifiedSecrets()
    assert memo.check(IDENTITY, "pw", "not-a-hash") is False
    assert not memo.remembered(IDENTITY, "pw", "not-a-hash")


def test_memo_is_bounded() -> None:
    memo = VerifiedSecrets(max_entries=2)
    memo.remember("1:88/a", "pw", "s")
    memo.remember("2:88/a", "pw", "s")
    assert memo.remembered("1:88/a", "pw", "s")
    memo.remember("3:88/a", "pw", "s")  # full: the memo is emptied first
    assert not memo.remembered("1:88/a", "pw", "s")
    assert not memo.remembered("2:88/a", "pw", "s")
    assert memo.remembered("3:88/a", "pw", "s")
