"""Secrets: hashing, verification and HTTP Basic credentials.

Secrets live in HS_SECKEY values, as in the Handle System: identity ``300:0.NA/88.100``
is the secret at index 300 of handle ``0.NA/88.100``. Nodes store only an scrypt hash.

scrypt is deliberately slow (tens of milliseconds), which would make every authenticated
write slow too. :class:`VerifiedSecrets` remembers, per identity and stored hash, a keyed
digest of the secret that last verified, so later requests with the same secret cost one
HMAC; a changed stored hash (rotation) or a different secret falls back to scrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import unquote

from registry.errors import AuthenticationRequired, InvalidHandle
from registry.identifier import Identity

DEFAULT_COST = 14  # scrypt N = 2**cost; the hash records it, so costs can change later
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCHEME = "scrypt"


def hash_secret(secret: str, cost: int = DEFAULT_COST) -> str:
    """An scrypt hash of ``secret`` (N = 2**cost) in a self-describing text form.

    >>> verify_secret("s3cret", hash_secret("s3cret", cost=4))
    True
    """
    salt = secrets.token_bytes(16)
    n = 2**cost
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P)
    return "$".join([_SCHEME, str(n), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)])


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a hash made by :func:`hash_secret`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError, OverflowError):  # malformed or absurd stored parameters
        return False
    return hmac.compare_digest(actual, expected)


def is_hashed(value: str) -> bool:
    return value.startswith(_SCHEME + "$")


def generate_secret() -> str:
    return secrets.token_urlsafe(18)


def parse_basic(header: str) -> tuple[Identity, str]:
    """Identity and secret from an ``Authorization: Basic`` header.

    The username is ``<index>:<handle>``, percent-encoded by Handle clients
    (``300%3A0.NA%2F88.100``); both encoded and plain forms are accepted.
    """
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise AuthenticationRequired("Use HTTP Basic credentials or a Bearer session token")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError and non-ASCII tokens
        raise AuthenticationRequired("Malformed Basic credentials") from None
    username, colon, secret = decoded.partition(":")
    # Handle clients percent-encode the username, whose own colon would otherwise be
    # taken for the username/password separator; a plain "300:0.NA/x:pw" also parses,
    # because the index is digits only and so the first colon belongs to the username.
    if "%" not in username and username.isdigit() and colon:
        handle_part, colon, secret = secret.partition(":")
        username = f"{username}:{handle_part}"
    if not colon:
        raise AuthenticationRequired("Malformed Basic credentials: no secret")
    try:
        identity = Identity.parse(unquote(username))
    except InvalidHandle as exc:
        raise AuthenticationRequired(f"Malformed username: {exc.message}") from None
    return identity, secret


class VerifiedSecrets:
    """Memo of secrets that verified, keyed by identity and the stored hash.

    >>> memo = VerifiedSecrets()
    >>> stored = hash_secret("pw")
    >>> memo.check("300:0.na/1", "pw", stored)   # scrypt, then remembered
    True
    >>> memo.check("300:0.na/1", "pw", stored)   # one HMAC
    True
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._key = secrets.token_bytes(32)
        self._memo: dict[tuple[str, str], bytes] = {}
        self._max_entries = max_entries

    def remembered(self, identity_key: str, secret: str, stored: str) -> bool:
        """True when this secret already verified against this stored hash (cheap)."""
        known = self._memo.get((identity_key, stored))
        return known is not None and hmac.compare_digest(known, self._digest(secret))

    def remember(self, identity_key: str, secret: str, stored: str) -> None:
        if len(self._memo) >= self._max_entries:
            self._memo.clear()
        self._memo[(identity_key, stored)] = self._digest(secret)

    def check(self, identity_key: str, secret: str, stored: str) -> bool:
        """Synchronous verify-and-remember (the node runs scrypt in a worker thread)."""
        if self.remembered(identity_key, secret, stored):
            return True
        if verify_secret(secret, stored):
            self.remember(identity_key, secret, stored)
            return True
        return False

    def _digest(self, secret: str) -> bytes:
        return hmac.digest(self._key, secret.encode(), "sha256")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
