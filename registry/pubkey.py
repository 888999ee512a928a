"""Public-key identities and challenge-response login: SM2 with SM3, Ed25519, and
Handle's own RSA and DSA keys.

An identity may hold a public key instead of a secret: an ``HS_PUBKEY`` value whose data
is ``sm2:<128 hex digits, the point x||y>`` (SM2, GB/T 32918, signed with SM3 per
GB/T 35276 through ``gmssl``; China's commercial cryptography, 商用密码) or
``ed25519:<64 hex digits>`` (through ``cryptography``), or a key in Handle's ``key``
data format (:mod:`registry.value_formats`: RSA ``n``/``e`` or DSA ``y``/``p``/``q``/``g``),
which verifies what a Handle client signs with it: SHA256withRSA (PKCS #1 v1.5) or
SHA256withDSA (a DER ``SEQUENCE {r, s}``). To log in, a client asks the
node for a nonce, signs :func:`challenge` for it with the private key, and sends the
signature back; the node checks it against the identity's public key and issues a
session token. The nonce is used once and expires, so a signature cannot be replayed.

Keys and signatures travel as hex text. ``idnode keys`` wraps :func:`generate` and
:func:`sign` for users (SM2 and Ed25519; RSA and DSA keys come from Handle's tools).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from cryptography.utils import CryptographyDeprecationWarning
from gmssl import func, sm2  # type: ignore[import-untyped]

from registry.errors import InvalidValue

_HEX = set("0123456789abcdef")


@contextlib.contextmanager
def handle_dsa() -> Iterator[None]:
    """DSA used as Handle's own tools use it, without cryptography's warning: from
    release 51 the library warns at every DSA operation that DSA "will be removed". The
    node accepts Handle's DSA keys for as long as the library can check them; a
    deprecation warning per login would say nothing an operator can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
        yield


class Algorithm(StrEnum):
    SM2 = "sm2"
    ED25519 = "ed25519"


class KeyType(StrEnum):
    """Handle's own key types, held as ``{"format": "key", "value": {"kty", ...}}``."""

    RSA = "rsa"
    DSA = "dsa"


# Below this a key is a toy: a signature by it proves nothing.
_MIN_KEY_BITS = {KeyType.RSA: 1024, KeyType.DSA: 1024}
_KEY_HEX_CHARS = {Algorithm.SM2: 128, Algorithm.ED25519: 64}
_SM2_N = int(sm2.default_ecc_table["n"], 16)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key as an ``HS_PUBKEY`` value holds it.

    >>> private, public = generate(Algorithm.ED25519)
    >>> key = PublicKey.parse(public)
    >>> message = challenge("300:88.100/dev", "n1")
    >>> key.verifies(message, sign(private, message))
    True
    """

    algorithm: Algorithm | KeyType
    hex: str  # SM2 x||y, Ed25519's 32 bytes, or an RSA/DSA key's DER SubjectPublicKeyInfo

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        name, _, key = text.strip().partition(":")
        try:
            algorithm = Algorithm(name.lower())
        except ValueError:
            raise InvalidValue(
                f"a public key starts with {' or '.join(a.value + ':' for a in Algorithm)}"
            ) from None
        key = key.lower()
        if len(key) != _KEY_HEX_CHARS[algorithm] or set(key) - _HEX:
            raise InvalidValue(
                f"an {algorithm.value} public key is {_KEY_HEX_CHARS[algorithm]} hex digits"
            )
        return cls(algorithm, key)

    @classmethod
    def from_key_data(cls, data: dict[str, str]) -> PublicKey:
        """A key in Handle's ``key`` data format, as :func:`registry.value_formats.parse_key`
        returns it; InvalidValue when it is not a key a signature can be checked with."""
        kty = str(data.get("kty", "")).lower()
        with handle_dsa():
            try:
                kind = KeyType(kty)
                public: rsa.RSAPublicKey | dsa.DSAPublicKey
                if kind is KeyType.RSA:
                    numbers = rsa.RSAPublicNumbers(_number(data["e"]), _number(data["n"]))
                    public = numbers.public_key()
                else:
                    parameters = dsa.DSAParameterNumbers(
                        _number(data["p"]), _number(data["q"]), _number(data["g"])
                    )
                    public = dsa.DSAPublicNumbers(_number(data["y"]), parameters).public_key()
            except (KeyError, ValueError, UnsupportedAlgorithm) as exc:
                raise InvalidValue(
                    f"not a usable {kty.upper() or 'key'} public key: {exc}"
                ) from None
            if public.key_size < _MIN_KEY_BITS[kind]:
                raise InvalidValue(
                    f"an {kind.name} public key needs at least {_MIN_KEY_BITS[kind]} bits, "
                    f"got {public.key_size}"
                )
            der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return cls(kind, der.hex())

    @property
    def text(self) -> str:
        return f"{self.algorithm.value}:{self.hex}"

    def verifies(self, message: bytes, signature_hex: str) -> bool:
        """Whether ``signature_hex`` is this key's signature of ``message``."""
        signature = signature_hex.strip().lower()
        if not signature or set(signature) - _HEX or len(signature) % 2:
            return False
        if isinstance(self.algorithm, KeyType):
            return _handle_key_verifies(self.hex, message, bytes.fromhex(signature))
        if self.algorithm is Algorithm.SM2:
            if len(signature) != 128:
                return False
            # r and s must lie in [1, n-1] (GB/T 32918.2); gmssl does not check s, and
            # (r, s + n) would otherwise verify as well.
            r, s = int(signature[:64], 16), int(signature[64:], 16)
            if not (0 < r < _SM2_N and 0 < s < _SM2_N):
                return False
            try:
                return bool(_sm2("", self.hex).verify_with_sm3(signature, message))
            except (ValueError, ZeroDivisionError, TypeError):
                return False
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.hex)).verify(
                bytes.fromhex(signature), message
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def _sm2(private_hex: str, public_hex: str) -> sm2.CryptSM2:
    """gmssl's SM2 with ``public_hex`` (x||y) as given. Its constructor takes a key that
    starts with "04" for one with the uncompressed-point prefix and strips every leading
    0 and 4 from it: about one key in 256 would then sign and verify over a wrong Z."""
    curve = sm2.CryptSM2(private_key=private_hex, public_key="")
    curve.public_key = public_hex
    return curve


def _number(member: str) -> int:
    """An unsigned big-endian number in unpadded base64url, as Handle's key JSON has it."""
    return int.from_bytes(base64.urlsafe_b64decode(member + "=" * (-len(member) % 4)), "big")


def _handle_key_verifies(der_hex: str, message: bytes, signature: bytes) -> bool:
    """SHA256withRSA (PKCS #1 v1.5) or SHA256withDSA (DER r, s), as Handle signs."""
    with handle_dsa():
        public = load_der_public_key(bytes.fromhex(der_hex))
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(public, dsa.DSAPublicKey):
                public.verify(signature, message, hashes.SHA256())
            else:  # pragma: no cover - from_key_data makes only those two
                return False
        except (InvalidSignature, ValueError):
            return False
    return True


def challenge(identity_text: str, nonce: str) -> bytes:
    """The bytes a client signs to log in as ``identity_text`` with ``nonce``."""
    return f"idnode-login\n{identity_text}\n{nonce}".encode()


def new_nonce() -> str:
    return secrets.token_hex(16)


def generate(algorithm: Algorithm) -> tuple[str, str]:
    """A new key pair as text: (``<alg>:<private hex>``, ``<alg>:<public hex>``)."""
    if algorithm is Algorithm.SM2:
        private = func.random_hex(64)
        curve = sm2.CryptSM2(private_key=private, public_key="")
        public = curve._kg(int(private, 16), sm2.default_ecc_table["g"])
        return f"sm2:{private}", f"sm2:{public}"
    key = Ed25519PrivateKey.generate()
    public_bytes = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"ed25519:{key.private_bytes_raw().hex()}", f"ed25519:{public_bytes.hex()}"


def sign(private_text: str, message: bytes) -> str:
    """Sign ``message`` with a private key from :func:`generate`; hex signature."""
    name, _, private = private_text.strip().partition(":")
    algorithm = Algorithm(name.lower())
    if algorithm is Algorithm.SM2:
        curve = sm2.CryptSM2(private_key=private, public_key="")
        public = curve._kg(int(private, 16), sm2.default_ecc_table["g"])
        signer = _sm2(private, public)
        return str(signer.sign_with_sm3(message, func.random_hex(signer.para_len)))
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private))
    return key.sign(message).hex()
