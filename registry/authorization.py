"""The ``Authorization: Handle`` scheme of the Handle REST API, parsed and checked. Pure.

A Handle client opens a session (``POST /api/sessions`` answers a ``sessionId`` and a
base64 server ``nonce``), then proves who it is by sending, in the header or as JSON
fields of ``PUT /api/sessions/this``::

    Authorization: Handle version="0", sessionId="...", id="300%3A88.100%2Fdev",
                   type="HS_PUBKEY", alg="SM3", cnonce="<base64>", signature="<base64>"

and afterwards names the session alone (``Handle sessionId="..."``) on every request.
Parameters are ``name=token`` or ``name="quoted string"``, comma separated, names case
insensitive; ``id`` is percent-decoded, as the Handle server does.

What is signed, as in Handle: the server nonce's bytes followed by the client nonce's
bytes. How it is signed is where this node differs, because its keys are not Handle's:

==========  =============  ========================================================
key         ``alg``        ``signature`` (base64)
==========  =============  ========================================================
sm2:<hex>   ``SM3``        SM2 with SM3 (GB/T 32918, Z_A with the default user id),
                           r||s as 64 bytes, or DER ``SEQUENCE {r, s}`` (GB/T 35276)
ed25519     ``Ed25519``    the 64-byte Ed25519 signature of the bytes themselves
key: RSA    ``SHA256``     SHA256withRSA, PKCS #1 v1.5, as Handle signs
key: DSA    ``SHA256``     SHA256withDSA, DER ``SEQUENCE {r, s}``, as Handle signs
==========  =============  ========================================================

The last two are Handle's own keys, held in its ``key`` data format. ``alg="SHA1"``,
which older Handle clients may send, is refused: SHA-1 signatures are deprecated.
``type="HS_SECKEY"`` is parsed but cannot be checked here: Handle verifies a
keyed digest (HMAC-SHA256 etc.) of the nonces with the secret itself, and this node keeps
only an scrypt hash of a secret (:mod:`registry.credential`); see
:data:`SECRET_KEY_DIGEST_REFUSED`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from registry.errors import AuthenticationRequired, InvalidHandle
from registry.identifier import Identity
from registry.pubkey import Algorithm, KeyType, PublicKey

SCHEME = "handle"
MAX_HEADER_CHARS = 4096
MAX_CNONCE_BYTES = 256
# Parameters this node reads; others (clientCert, renegotiate, salt, ...) are ignored,
# as Handle ignores the ones it does not know.
FIELDS = ("version", "sessionId", "id", "type", "alg", "cnonce", "signature")
_FIELD_BY_KEY = {name.lower(): name for name in FIELDS}
# The alg each key algorithm signs with; compared ignoring case and punctuation, as
# Handle compares its own algorithm names ("SHA-256" = "sha256").
ALG_FOR_KEY: dict[Algorithm | KeyType, str] = {
    Algorithm.SM2: "SM3",
    Algorithm.ED25519: "ED25519",
    KeyType.RSA: "SHA256",
    KeyType.DSA: "SHA256",
}
PUBKEY = "HS_PUBKEY"
SECKEY = "HS_SECKEY"
SECRET_KEY_DIGEST_REFUSED = (
    "This node keeps only scrypt hashes of secrets, so it cannot check a digest keyed "
    "with the secret (Authorization: Handle type=HS_SECKEY). Authenticate the session "
    "with HTTP Basic credentials instead: PUT /api/sessions/this?sessionId=... with "
    "Authorization: Basic, or POST /api/sessions with Basic; or use an HS_PUBKEY identity"
)

_TOKEN = r"[-A-Za-z0-9!#$%&'*+.`^_|~]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*(,?)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class HandleAuthorization:
    """The parameters of one ``Authorization: Handle`` header (each None when absent).

    >>> auth = parse('Handle sessionId="s1", id="300%3A88.100%2Fdev", type=HS_PUBKEY')
    >>> auth.session_id, auth.id, auth.authenticating
    ('s1', '300:88.100/dev', True)
    """

    session_id: str | None = None
    version: str | None = None
    id: str | None = None
    type: str | None = None
    alg: str | None = None
    cnonce: str | None = None
    signature: str | None = None

    @property
    def authenticating(self) -> bool:
        """Whether it carries an answer to the nonce, not only a session id (Handle's
        ``isAuthenticating``)."""
        return any(v is not None for v in (self.id, self.type, self.alg, self.signature))

    def with_defaults(self, fields: dict[str, str]) -> HandleAuthorization:
        """These parameters, completed by ``fields`` (e.g. JSON body members or query
        parameters) where the header gave none, as Handle merges request parameters."""
        mine = self._as_dict()
        merged = {name: mine.get(name) or fields.get(name) for name in FIELDS}
        return _build(merged)

    def _as_dict(self) -> dict[str, str | None]:
        return {
            "sessionId": self.session_id,
            "version": self.version,
            "id": self.id,
            "type": self.type,
            "alg": self.alg,
            "cnonce": self.cnonce,
            "signature": self.signature,
        }


def is_handle_scheme(header: str) -> bool:
    scheme, _, _ = header.strip().partition(" ")
    return scheme.lower() == SCHEME


def parse(header: str) -> HandleAuthorization:
    """The parameters of an ``Authorization: Handle ...`` header; 401 if malformed."""
    if len(header) > MAX_HEADER_CHARS:
        raise AuthenticationRequired("The Authorization: Handle header is too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME or not rest.strip():
        raise AuthenticationRequired(
            'Malformed Authorization: Handle header: expected Handle sessionId="..." and '
            "optionally version, id, type, alg, cnonce, signature"
        )
    found: dict[str, str] = {}
    position, more = 0, True
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or not more:
            raise AuthenticationRequired(
                f"Malformed Authorization: Handle header near {rest[position : position + 40]!r}"
            )
        name, raw, comma = match.groups()
        value = _unquote(raw)
        if name.lower() == "id":
            value = unquote(value)
        field = _FIELD_BY_KEY.get(name.lower())
        if field is not None:
            found[field] = value
        more = bool(comma)
        position = match.end()
    return _build(found)


def _build(fields: Mapping[str, str | None]) -> HandleAuthorization:
    return HandleAuthorization(
        session_id=fields.get("sessionId"),
        version=fields.get("version"),
        id=fields.get("id"),
        type=fields.get("type"),
        alg=fields.get("alg"),
        cnonce=fields.get("cnonce"),
        signature=fields.get("signature"),
    )


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer to a session's nonce: who, with which key type, and the proof.

    >>> answer = Answer.of(parse('Handle id="300:88.100/d", type=HS_PUBKEY, '
    ...                          'alg=Ed-25519, cnonce="AAAA", signature="AAAA"'))
    >>> answer.identity.text, answer.alg, answer.cnonce
    ('300:88.100/d', 'ED25519', b'\\x00\\x00\\x00')
    """

    identity: Identity
    type: str
    alg: str
    cnonce: bytes
    signature: bytes

    @classmethod
    def of(cls, auth: HandleAuthorization) -> Answer:
        """Check that every field is there and well formed; 401 naming what is wrong."""
        if auth.version is not None and auth.version != "0":
            raise AuthenticationRequired(f"Unknown version {auth.version[:20]!r}: only 0")
        missing = [
            name
            for name, value in (
                ("id", auth.id),
                ("type", auth.type),
                ("alg", auth.alg),
                ("cnonce", auth.cnonce),
                ("signature", auth.signature),
            )
            if not value
        ]
        if missing:
            raise AuthenticationRequired(f"Missing in the authentication: {', '.join(missing)}")
        assert auth.id and auth.type and auth.alg and auth.cnonce and auth.signature
        try:
            identity = Identity.parse(auth.id)
        except InvalidHandle as exc:
            raise AuthenticationRequired(f"Malformed id: {exc.message}") from None
        kind = auth.type.upper()
        if kind not in (PUBKEY, SECKEY):
            raise AuthenticationRequired(f"Unknown type {auth.type[:20]!r}: HS_PUBKEY or HS_SECKEY")
        cnonce = _base64(auth.cnonce, "cnonce")
        if not 1 <= len(cnonce) <= MAX_CNONCE_BYTES:
            raise AuthenticationRequired(f"The cnonce must be 1 to {MAX_CNONCE_BYTES} bytes")
        return cls(
            identity, kind, _alg_name(auth.alg), cnonce, _base64(auth.signature, "signature")
        )

    def verifies(self, key: PublicKey, nonce: bytes) -> bool:
        """Whether this answer is ``key``'s signature of ``nonce`` + cnonce, made with the
        ``alg`` that key signs with."""
        if self.type != PUBKEY or self.alg != ALG_FOR_KEY[key.algorithm]:
            return False
        signature = self.signature
        if key.algorithm is Algorithm.SM2 and len(signature) != 64:
            signature = _sm2_der_to_raw(signature)
        return key.verifies(nonce + self.cnonce, signature.hex())


def _alg_name(alg: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", alg.upper())


def _base64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationRequired(f"The {name} is not base64") from None


def _sm2_der_to_raw(signature: bytes) -> bytes:
    """r||s from a DER SEQUENCE {r, s}; empty (never verifies) when it is not one."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return b""
    if not (0 < r < 2**256 and 0 < s < 2**256):
        return b""
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def new_nonce() -> str:
    """A server nonce: 24 random bytes, base64 as Handle sends them."""
    return base64.b64encode(secrets.token_bytes(24)).decode()


def nonce_bytes(nonce: str) -> bytes:
    return base64.b64decode(nonce)
