"""Which certificate belongs to which key: public keys compared as SubjectPublicKeyInfo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rolesanywhere.errors import SourceError
from rolesanywhere.x509 import der as _derlib
from rolesanywhere.x509.keys import SigningKey, public_key_matches

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = ["fast_match", "matching_index"]


def _spki(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fast_match(spki: bytes, key: SigningKey) -> bool:
    """Whether the certificate's SPKI is, exactly, ``key``'s public key (read with
    rolesanywhere.x509.der, so no serialization import); ``False`` for anything unusual."""
    try:
        fields = _derlib.parse_public_key(spki)
    except SourceError:
        return False
    return public_key_matches(fields, key.public_key())


def matching_index(certs: Sequence[x509.Certificate], key: SigningKey) -> int | None:
    wanted = _spki(key.public_key())
    for index, cert in enumerate(certs):
        try:
            if _spki(cert.public_key()) == wanted:
                return index
        except Exception:  # noqa: S112 - a key we cannot read cannot match
            continue
    return None
