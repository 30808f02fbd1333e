"""Signing keys: the small interface request code signs through.

Request building only needs two things from a key: the Roles Anywhere algorithm name and a
``sign(string_to_sign) -> signature`` call. Software keys (RSA, EC) live here; hardware tokens
(PKCS#11) and ML-DSA plug in later by implementing :class:`SigningKey`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from .errors import UnsupportedKeyError

__all__ = [
    "ALGORITHM_ECDSA",
    "ALGORITHM_RSA",
    "SUPPORTED_CURVES",
    "SigningKey",
    "SoftwareSigningKey",
    "algorithm_for_public_key",
    "verify_signature",
]

ALGORITHM_RSA = "AWS4-X509-RSA-SHA256"
ALGORITHM_ECDSA = "AWS4-X509-ECDSA-SHA256"

#: EC curves Roles Anywhere accepts.
SUPPORTED_CURVES: frozenset[str] = frozenset({"secp256r1", "secp384r1", "secp521r1"})
#: RSA modulus sizes Roles Anywhere accepts (inclusive).
RSA_BITS = (2048, 4096)

_SHA256 = hashes.SHA256()
_PKCS1 = padding.PKCS1v15()
_ECDSA = ec.ECDSA(_SHA256)


@runtime_checkable
class SigningKey(Protocol):
    """What request code needs from a private key."""

    @property
    def algorithm(self) -> str:
        """The ``Authorization`` algorithm, e.g. ``AWS4-X509-RSA-SHA256``."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (the UTF-8 string to sign) and return the raw signature bytes."""
        ...

    def public_key(self) -> PublicKeyTypes:
        """The matching public key, used to check it belongs to the certificate."""
        ...


def algorithm_for_public_key(
    key: PublicKeyTypes | PrivateKeyTypes, *, source: str | None = None
) -> str:
    """The algorithm name for a key, from the key type only (never the certificate's hash).

    Raises :class:`UnsupportedKeyError` for key types or sizes Roles Anywhere refuses.
    """
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        lo, hi = RSA_BITS
        if not lo <= key.key_size <= hi:
            raise UnsupportedKeyError(
                f"RSA key of {key.key_size} bits is not supported: use {lo} to {hi} bits",
                source=source,
            )
        return ALGORITHM_RSA
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if key.curve.name not in SUPPORTED_CURVES:
            raise UnsupportedKeyError(
                f"EC curve {key.curve.name} is not supported: use P-256, P-384 or P-521",
                source=source,
            )
        return ALGORITHM_ECDSA
    raise UnsupportedKeyError(
        f"{type(key).__name__.lstrip('_')} keys are not supported: use RSA (2048-4096 bits) "
        "or EC (P-256, P-384, P-521)",
        source=source,
    )


@dataclass(frozen=True, slots=True, repr=False)
class SoftwareSigningKey:
    """An RSA or EC private key held in memory by ``cryptography``."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str

    @classmethod
    def from_private_key(
        cls, key: PrivateKeyTypes, *, source: str | None = None
    ) -> SoftwareSigningKey:
        algorithm = algorithm_for_public_key(key, source=source)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        return cls(key, algorithm)

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, _PKCS1, _SHA256)
        return key.sign(data, _ECDSA)

    def public_key(self) -> PublicKeyTypes:
        return self.private_key.public_key()

    def __repr__(self) -> str:
        return f"SoftwareSigningKey(algorithm={self.algorithm!r}, private_key=<redacted>)"


def verify_signature(
    public_key: PublicKeyTypes, algorithm: str, data: bytes, signature: bytes
) -> bool:
    """Check a Roles Anywhere signature; ``False`` when it does not verify or types disagree."""
    try:
        if algorithm == ALGORITHM_RSA and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, _PKCS1, _SHA256)
            return True
        if algorithm == ALGORITHM_ECDSA and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, _ECDSA)
            return True
    except InvalidSignature:
        return False
    return False
