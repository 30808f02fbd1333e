"""ML-DSA (FIPS 204) signing keys, imported only when an ML-DSA key is met.

Roles Anywhere signs with pure ML-DSA over the raw string to sign and an empty context
(``AWS4-X509-MLDSA``, PROTOCOL.md §1). cryptography builds ML-DSA private keys from their 32-byte
seed only, and its PKCS#8 loader reads only the seed form. A cryptography without ML-DSA
(older than 50, where the classes had other names) cannot import this module: callers then
refuse ML-DSA keys with a message saying so. OpenSSL 3.5 writes two more forms
(RFC 9881): the seed with the expanded key (its default) and the expanded key alone. This module
reads all three with :mod:`rolesanywhere.x509.der`:

- seed: the key is rebuilt from the seed;
- seed and expanded key: rebuilt from the seed, after checking that the expanded key's ``rho``
  and ``tr`` are the ones the seed's public key gives (a mismatched pair is refused);
- expanded key only: refused. The seed cannot be recovered from the expanded key, and
  cryptography cannot sign with an expanded key (it has no loader or constructor for one).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa

from rolesanywhere.errors import SourceError, UnsupportedKeyError
from rolesanywhere.values import Value
from rolesanywhere.x509.der import MLDSAPrivateKeyFields, parse_mldsa_private_key
from rolesanywhere.x509.keys import ALGORITHM_MLDSA

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

__all__ = [
    "PARAMETER_SETS",
    "PRIVATE_KEY_CLASSES",
    "MLDSAPrivateKey",
    "MLDSASigningKey",
    "mldsa_key_from_fields",
    "mldsa_key_from_pkcs8",
    "parameter_set",
    "verify_mldsa",
]

MLDSAPrivateKey = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey

#: Parameter set -> cryptography's private key class.
PRIVATE_KEY_CLASSES: dict[str, type[MLDSAPrivateKey]] = {
    "ML-DSA-44": mldsa.MLDSA44PrivateKey,
    "ML-DSA-65": mldsa.MLDSA65PrivateKey,
    "ML-DSA-87": mldsa.MLDSA87PrivateKey,
}
_KEY_CLASSES: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("ML-DSA-44", (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey)),
    ("ML-DSA-65", (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey)),
    ("ML-DSA-87", (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey)),
)
#: The parameter sets, as ``read-certificate-data`` names them in ``keyType``.
PARAMETER_SETS: tuple[str, ...] = tuple(PRIVATE_KEY_CLASSES)

_RHO = slice(0, 32)  # skEncode: rho (32) || K (32) || tr (64) || s1 || s2 || t0
_TR = slice(64, 128)


def parameter_set(key: object) -> str | None:
    """``ML-DSA-44``, ``ML-DSA-65`` or ``ML-DSA-87`` for an ML-DSA key (private or public),
    else ``None``."""
    for name, classes in _KEY_CLASSES:
        if isinstance(key, classes):
            return name
    return None


def verify_mldsa(public_key: PublicKeyTypes, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a pure ML-DSA signature of ``data`` (empty context)."""
    if parameter_set(public_key) is None:
        return False
    try:
        public_key.verify(signature, data)  # type: ignore[call-arg,union-attr]
    except InvalidSignature:
        return False
    return True


class MLDSASigningKey(Value):
    """An ML-DSA private key held in memory by ``cryptography``."""

    __slots__ = ("private_key", "algorithm", "parameter_set")
    _hidden = frozenset({"private_key"})

    private_key: MLDSAPrivateKey
    algorithm: str
    #: ``ML-DSA-44``, ``ML-DSA-65`` or ``ML-DSA-87``.
    parameter_set: str

    def __init__(self, private_key: MLDSAPrivateKey, algorithm: str, parameter_set: str) -> None:
        super().__init__(private_key, algorithm, parameter_set)

    @classmethod
    def from_private_key(
        cls, key: PrivateKeyTypes, *, source: str | None = None
    ) -> MLDSASigningKey:
        name = parameter_set(key)
        if name is None:
            raise UnsupportedKeyError(f"{type(key).__name__} is not an ML-DSA key", source=source)
        assert isinstance(key, MLDSAPrivateKey)
        return cls(key, ALGORITHM_MLDSA, name)

    def sign(self, data: bytes) -> bytes:
        """Pure ML-DSA over ``data``, empty context (hedged: a fresh signature each call)."""
        return self.private_key.sign(data)

    def public_key(self) -> PublicKeyTypes:
        return self.private_key.public_key()

    def __repr__(self) -> str:
        return f"MLDSASigningKey(parameter_set={self.parameter_set!r}, private_key=<redacted>)"


def mldsa_key_from_fields(
    fields: MLDSAPrivateKeyFields, label: str, source: str
) -> MLDSAPrivateKey:
    """The key of a parsed ML-DSA ``PrivateKeyInfo``, rebuilt from its seed (see the module)."""
    name = fields.parameter_set
    if fields.seed is None:
        raise UnsupportedKeyError(
            f"private key {label} holds an {name} key in its expanded form only, without the "
            "32-byte seed it was made from: this library (cryptography) signs only with a key "
            "rebuilt from its seed, and the seed cannot be recovered from the expanded key. "
            "Use the key file with its seed (OpenSSL 3.5 writes it by default)",
            source=source,
        )
    key = PRIVATE_KEY_CLASSES[name].from_seed_bytes(fields.seed)
    if fields.expanded is not None:
        public = key.public_key().public_bytes_raw()
        expanded = fields.expanded
        if expanded[_RHO] != public[_RHO] or expanded[_TR] != hashlib.shake_256(public).digest(64):
            raise SourceError(
                f"private key {label}: its ML-DSA seed and expanded key are not the same key: "
                "export the key again",
                source=source,
            )
    return key


def mldsa_key_from_pkcs8(der: bytes, label: str, source: str) -> MLDSAPrivateKey | None:
    """The ML-DSA key of an unencrypted PKCS#8 ``der``; ``None`` when it is not ML-DSA."""
    fields = parse_mldsa_private_key(der, source=source)
    if fields is None:
        return None
    return mldsa_key_from_fields(fields, label, source)
