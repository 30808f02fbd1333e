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
- expanded key only: cryptography has no loader or constructor for it, and the seed cannot be
  recovered from it, so :class:`ExpandedMLDSAPrivateKey` signs with it in pure Python
  (:mod:`rolesanywhere.x509.mldsa_expanded`, imported only for this form; tens of milliseconds
  a signature). Its public key ``rho || t1`` is recomputed from ``t = A·s1 + s2`` and must hash to
  the key's ``tr`` (and give back its ``t0``), so a damaged key is refused; it is the public key
  checked against the certificate, and every signature is verified with it (by cryptography)
  before it is returned.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa

from rolesanywhere.errors import IdentityError, SourceError, UnsupportedKeyError
from rolesanywhere.values import Value
from rolesanywhere.x509.der import MLDSAPrivateKeyFields, parse_mldsa_private_key
from rolesanywhere.x509.keys import ALGORITHM_MLDSA

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    from rolesanywhere.x509.mldsa_expanded import ExpandedKey

__all__ = [
    "PARAMETER_SETS",
    "PRIVATE_KEY_CLASSES",
    "PUBLIC_KEY_CLASSES",
    "ExpandedMLDSAPrivateKey",
    "MLDSAPrivateKey",
    "MLDSASigningKey",
    "mldsa_key_from_fields",
    "mldsa_key_from_pkcs8",
    "parameter_set",
    "verify_mldsa",
]

MLDSAPrivateKey = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
MLDSAPublicKey = mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey

#: Parameter set -> cryptography's private key class.
PRIVATE_KEY_CLASSES: dict[str, type[MLDSAPrivateKey]] = {
    "ML-DSA-44": mldsa.MLDSA44PrivateKey,
    "ML-DSA-65": mldsa.MLDSA65PrivateKey,
    "ML-DSA-87": mldsa.MLDSA87PrivateKey,
}
#: Parameter set -> cryptography's public key class.
PUBLIC_KEY_CLASSES: dict[str, type[MLDSAPublicKey]] = {
    "ML-DSA-44": mldsa.MLDSA44PublicKey,
    "ML-DSA-65": mldsa.MLDSA65PublicKey,
    "ML-DSA-87": mldsa.MLDSA87PublicKey,
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
    if isinstance(key, ExpandedMLDSAPrivateKey):
        return key.parameter_set
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


class ExpandedMLDSAPrivateKey:
    """An ML-DSA private key known only in its expanded form, signing in pure Python.

    It answers ``sign`` and ``public_key`` as cryptography's ML-DSA private keys do. The public
    key is cryptography's, built from the ``rho || t1`` recomputed from the private key.
    """

    __slots__ = ("parameter_set", "_key", "_public", "_label", "_source")

    parameter_set: str

    def __init__(self, key: ExpandedKey, *, label: str, source: str) -> None:
        self.parameter_set = key.params.name
        self._key = key
        self._public = PUBLIC_KEY_CLASSES[self.parameter_set].from_public_bytes(key.public_key)
        self._label, self._source = label, source

    @classmethod
    def from_expanded(
        cls, parameter_set: str, expanded: bytes, label: str, source: str
    ) -> ExpandedMLDSAPrivateKey:
        """The key of a FIPS 204 ``skEncode`` encoding; :class:`SourceError` when it is damaged
        (its ``tr`` or ``t0`` are not the ones its ``s1`` and ``s2`` give)."""
        from rolesanywhere.x509.mldsa_expanded import prepare

        try:
            key = prepare(parameter_set, expanded)
        except ValueError as exc:
            raise SourceError(
                f"private key {label}: its {parameter_set} expanded key is damaged ({exc}): "
                "export the key again",
                source=source,
            ) from None
        return cls(key, label=label, source=source)

    def sign(self, data: bytes, *, rnd: bytes | None = None) -> bytes:
        """Pure ML-DSA over ``data``, empty context: hedged, or deterministic with
        ``rnd=bytes(32)``. The signature is verified with :meth:`public_key` first."""
        from rolesanywhere.x509.mldsa_expanded import sign

        signature = sign(self._key, data, rnd=rnd)
        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            raise IdentityError(
                f"private key {self._label}: its {self.parameter_set} signature does not verify "
                "with its public key: export the key again, with its seed",
                source=self._source,
            ) from None
        return signature

    def public_key(self) -> MLDSAPublicKey:
        return self._public

    def __repr__(self) -> str:
        return f"ExpandedMLDSAPrivateKey(parameter_set={self.parameter_set!r}, <redacted>)"


class MLDSASigningKey(Value):
    """An ML-DSA private key held in memory: cryptography's (from a seed) or an
    :class:`ExpandedMLDSAPrivateKey`."""

    __slots__ = ("private_key", "algorithm", "parameter_set")
    _hidden = frozenset({"private_key"})

    private_key: MLDSAPrivateKey | ExpandedMLDSAPrivateKey
    algorithm: str
    #: ``ML-DSA-44``, ``ML-DSA-65`` or ``ML-DSA-87``.
    parameter_set: str

    def __init__(
        self,
        private_key: MLDSAPrivateKey | ExpandedMLDSAPrivateKey,
        algorithm: str,
        parameter_set: str,
    ) -> None:
        super().__init__(private_key, algorithm, parameter_set)

    @classmethod
    def from_private_key(
        cls, key: PrivateKeyTypes | ExpandedMLDSAPrivateKey, *, source: str | None = None
    ) -> MLDSASigningKey:
        name = parameter_set(key)
        if name is None:
            raise UnsupportedKeyError(f"{type(key).__name__} is not an ML-DSA key", source=source)
        assert isinstance(key, MLDSAPrivateKey | ExpandedMLDSAPrivateKey)
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
) -> MLDSAPrivateKey | ExpandedMLDSAPrivateKey:
    """The key of a parsed ML-DSA ``PrivateKeyInfo``: rebuilt from its seed, or from the
    expanded key when the file holds no seed (see the module)."""
    name = fields.parameter_set
    if fields.seed is None:
        assert fields.expanded is not None
        return ExpandedMLDSAPrivateKey.from_expanded(name, fields.expanded, label, source)
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


def mldsa_key_from_pkcs8(
    der: bytes, label: str, source: str
) -> MLDSAPrivateKey | ExpandedMLDSAPrivateKey | None:
    """The ML-DSA key of an unencrypted PKCS#8 ``der``; ``None`` when it is not ML-DSA."""
    fields = parse_mldsa_private_key(der, source=source)
    if fields is None:
        return None
    return mldsa_key_from_fields(fields, label, source)
