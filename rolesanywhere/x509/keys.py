"""Signing keys: the small interface request code signs through.

Request building only needs two things from a key: the Roles Anywhere algorithm name and a
``sign(string_to_sign) -> signature`` call. Software keys (RSA, EC) live here; hardware tokens
(PKCS#11) plug in by implementing :class:`SigningKey`; ML-DSA keys live in
:mod:`rolesanywhere.x509.mldsa`, imported only when one is met.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rolesanywhere.errors import UnsupportedKeyError
from rolesanywhere.values import Value
from rolesanywhere.x509.der import (
    ECPrivateKeyFields,
    PrivateKeyFields,
    PublicKeyFields,
    RSAPrivateKeyFields,
    RSAPublicKeyFields,
)

if TYPE_CHECKING:
    # Only for annotations: the module imports every key type (DSA, X25519…).
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

__all__ = [
    "ALGORITHM_ECDSA",
    "ALGORITHM_MLDSA",
    "ALGORITHM_RSA",
    "SUPPORTED_CURVES",
    "SigningKey",
    "SoftwareSigningKey",
    "algorithm_for_public_key",
    "verify_signature",
]

ALGORITHM_RSA = "AWS4-X509-RSA-SHA256"
ALGORITHM_ECDSA = "AWS4-X509-ECDSA-SHA256"
#: Pure ML-DSA (44, 65 or 87) over the raw string to sign, empty context.
ALGORITHM_MLDSA = "AWS4-X509-MLDSA"

#: EC curves Roles Anywhere accepts.
SUPPORTED_CURVES: frozenset[str] = frozenset({"secp256r1", "secp384r1", "secp521r1"})
#: RSA modulus sizes Roles Anywhere accepts (inclusive).
RSA_BITS = (2048, 4096)

_SHA256 = hashes.SHA256()
_PKCS1 = padding.PKCS1v15()


class _EcdsaSha256(ec.ECDSA):
    """``ec.ECDSA(hashes.SHA256())``, non-deterministic, built without ``ECDSA.__init__``.

    That constructor imports cryptography's whole OpenSSL backend module (~9 ms of a cold
    start) only to check RFC 6979 support, which plain ECDSA does not use. The signing code
    reads just the public ``algorithm`` and ``deterministic_signing`` properties.
    """

    def __init__(self) -> None:
        pass

    @property
    def algorithm(self) -> hashes.SHA256:
        return _SHA256

    @property
    def deterministic_signing(self) -> bool:
        return False


_ECDSA = _EcdsaSha256()


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
    try:
        from rolesanywhere.x509.mldsa import parameter_set
    except ImportError:  # a cryptography without ML-DSA: no key is one
        pass
    else:
        if parameter_set(key) is not None:
            return ALGORITHM_MLDSA
    raise UnsupportedKeyError(
        f"{type(key).__name__.lstrip('_')} keys are not supported: use RSA (2048-4096 bits), "
        "EC (P-256, P-384, P-521) or ML-DSA (44, 65, 87)",
        source=source,
    )


class SoftwareSigningKey(Value):
    """An RSA or EC private key held in memory by ``cryptography``."""

    __slots__ = ("private_key", "algorithm")
    _hidden = frozenset({"private_key"})

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str

    def __init__(
        self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, algorithm: str
    ) -> None:
        super().__init__(private_key, algorithm)

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
        if algorithm == ALGORITHM_MLDSA:
            from rolesanywhere.x509.mldsa import verify_mldsa

            return verify_mldsa(public_key, data, signature)
    except ImportError:  # a cryptography without ML-DSA
        return False
    except InvalidSignature:
        return False
    return False


# --- keys from their numbers (the fast path of identity loading) -------------------------------

_CURVE_TYPES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}


def _uncompressed_point(key: ec.EllipticCurvePublicKey) -> bytes:
    size = (key.curve.key_size + 7) // 8
    numbers = key.public_numbers()
    return b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def rsa_numbers_consistent(fields: RSAPrivateKeyFields) -> bool:
    """Whether a two-prime RSA key's numbers fit together: ``n = p·q``, ``d·e ≡ 1`` modulo
    ``p - 1`` and ``q - 1``, and the CRT values are the ones ``p``, ``q`` and ``d`` give.

    What Go's ``rsa.PrivateKey.Validate`` (and so the Go helper) checks, in microseconds; a key
    file damaged anywhere in its numbers fails it. Primality of ``p`` and ``q`` is not tested.
    """
    n, e, d, p, q = fields.n, fields.e, fields.d, fields.p, fields.q
    return (
        p > 2
        and q > 2
        and p != q
        and n == p * q
        and 3 <= e < n
        and e % 2 == 1
        and 1 < d < n
        and (d * e) % (p - 1) == 1
        and (d * e) % (q - 1) == 1
        and fields.dmp1 == d % (p - 1)
        and fields.dmq1 == d % (q - 1)
        and (fields.iqmp * q) % p == 1
        and 0 < fields.iqmp < p
    )


def rsa_key_consistent(key: rsa.RSAPrivateKey) -> bool:
    """:func:`rsa_numbers_consistent` for a key cryptography loaded."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    return rsa_numbers_consistent(
        RSAPrivateKeyFields(
            public.n, public.e, numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1,
            numbers.iqmp,
        )
    )  # fmt: skip


def private_key_from_fields(
    fields: PrivateKeyFields,
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None:
    """The key :func:`~rolesanywhere.x509.der.parse_private_key` read, built from its numbers
    (without :mod:`cryptography.hazmat.primitives.serialization`).

    ``None`` when cryptography refuses the numbers, or when an EC key's embedded public key is
    not the one its private value gives: the caller then lets cryptography's loader judge.
    """
    try:
        if isinstance(fields, ECPrivateKeyFields):
            curve = _CURVE_TYPES[fields.curve]()
            key = ec.derive_private_key(fields.private_value, curve)
            if key.private_numbers().private_value != fields.private_value:
                return None
            point = fields.public_point
            if point is not None and _uncompressed_point(key.public_key()) != point:
                return None
            return key
        if not rsa_numbers_consistent(fields):
            return None
        public = rsa.RSAPublicNumbers(fields.e, fields.n)
        # The numbers were just checked as the Go helper checks them; OpenSSL's own check adds
        # primality tests of p and q that cost ~60 ms for RSA-2048 on every cold start.
        return rsa.RSAPrivateNumbers(
            fields.p, fields.q, fields.d, fields.dmp1, fields.dmq1, fields.iqmp, public
        ).private_key(unsafe_skip_rsa_key_validation=True)
    except Exception:  # cryptography refuses these numbers: let its loader say why
        return None
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if type(exc).__name__ == "PanicException":
            return None
        raise


def public_key_matches(fields: PublicKeyFields, key: PublicKeyTypes) -> bool:
    """Whether ``key`` is the public key :func:`~rolesanywhere.x509.der.parse_public_key` read."""
    if isinstance(fields, RSAPublicKeyFields):
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        numbers = key.public_numbers()
        return numbers.n == fields.n and numbers.e == fields.e
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != fields.curve:
        return False
    return _uncompressed_point(key) == fields.point
