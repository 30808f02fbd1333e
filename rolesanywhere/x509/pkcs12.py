"""PKCS#12 files: the leaf certificate, its key and the other certificates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm

from rolesanywhere.errors import (
    PasswordRequiredError,
    SourceError,
    UnsupportedKeyError,
    WrongPasswordError,
)
from rolesanywhere.x509.keyfiles import HOW_TO_UNLOCK, Password, password_bytes, signing_key
from rolesanywhere.x509.keys import SigningKey
from rolesanywhere.x509.matching import matching_index
from rolesanywhere.x509.sources import describe, guard

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["load_pkcs12"]


def load_pkcs12(
    data: bytes, password: Password, *, source: str
) -> tuple[x509.Certificate, SigningKey, list[x509.Certificate]]:
    """(leaf, key, other certificates in file order) from a PKCS#12 file.

    With no password, both "no password" and the empty password are tried.
    """
    from cryptography.hazmat.primitives.serialization import pkcs12

    label = describe(source)
    pw = password_bytes(password)
    attempts: list[bytes | None] = [None, b""] if not pw else [pw]
    with guard(f"{label} is not a valid PKCS#12 file: export it again", source):
        bundle = None
        password_failed = False
        for attempt in attempts:
            try:
                bundle = pkcs12.load_pkcs12(data, attempt)
                break
            except UnsupportedAlgorithm:
                raise UnsupportedKeyError(
                    f"PKCS#12 file {label} uses an algorithm this library cannot read: "
                    "export it again with AES-256 and PBKDF2 (openssl pkcs12 -export)",
                    source=source,
                ) from None
            except ValueError as exc:
                password_failed = password_failed or "password" in str(exc).lower()
        if bundle is None:
            if not password_failed:
                raise SourceError(
                    f"{label} is not a valid PKCS#12 file: export it again", source=source
                )
            if not pw:
                raise PasswordRequiredError(
                    f"PKCS#12 file {label} is encrypted: {HOW_TO_UNLOCK}", source=source
                )
            raise WrongPasswordError(
                f"wrong password for PKCS#12 file {label}: pass the password it was exported with",
                source=source,
            )
        if bundle.key is None:
            raise SourceError(
                f"PKCS#12 file {label} holds no private key: export it with the key",
                source=source,
            )
        key = signing_key(bundle.key, label, source)
        others = [c.certificate for c in bundle.additional_certs]
        leaf = bundle.cert.certificate if bundle.cert is not None else None
        if leaf is None:
            index = matching_index(others, key)
            if index is None:
                raise SourceError(
                    f"PKCS#12 file {label} holds no certificate for its private key: "
                    "export it with the certificate",
                    source=source,
                )
            leaf = others.pop(index)
        _ = leaf.serial_number, leaf.not_valid_before_utc, leaf.not_valid_after_utc
        return leaf, key, others
