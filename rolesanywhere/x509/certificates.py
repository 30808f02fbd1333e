"""Certificates from PEM or DER: cryptography's parser (:func:`load_certificates`), and the
strict DER reader of the cold path (:func:`fast_certificates`, :func:`certificate_der_fields`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rolesanywhere.errors import SourceError
from rolesanywhere.x509 import der as _derlib
from rolesanywhere.x509.pem import CERT_LABELS, is_pem, pem_blocks, pem_der
from rolesanywhere.x509.sources import describe, guard

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "NO_CERT",
    "certificate_der_fields",
    "fast_certificates",
    "is_certificate_object",
    "load_certificate",
    "load_certificates",
]

NO_CERT = "no certificate found in {src}: expected a PEM or DER X.509 certificate"


def _parse_der_certificate(der: bytes, label: str, source: str) -> x509.Certificate:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        # Touch the fields the library uses so malformed ones fail here, not later.
        _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
    except Exception as exc:
        raise SourceError(NO_CERT.format(src=label), source=source) from exc
    return cert


def load_certificates(data: bytes, *, source: str) -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM blocks (any other text or blocks ignored) or one DER."""
    label = describe(source)
    with guard(NO_CERT.format(src=label), source):
        if not is_pem(data):
            return [_parse_der_certificate(data, label, source)]
        blocks = [b for b in pem_blocks(data) if b.label in CERT_LABELS]
        if not blocks:
            raise SourceError(NO_CERT.format(src=label), source=source)
        certs = []
        for block in blocks:
            der = pem_der(block.body)
            if der is None:
                raise SourceError(
                    f"a certificate block in {label} is not valid base64: "
                    "replace the file with a clean PEM copy",
                    source=source,
                )
            certs.append(_parse_der_certificate(der, label, source))
        return certs


def load_certificate(data: bytes, *, source: str) -> x509.Certificate:
    """The first certificate in ``data`` (PEM or DER)."""
    return load_certificates(data, source=source)[0]


def fast_certificates(data: bytes, source: str) -> list[tuple[bytes, _derlib.CertificateFields]]:
    """(DER, fields) of every certificate in ``data`` read without cryptography.x509.

    Raises :class:`SourceError` on anything unusual; the caller then takes the full path,
    which gives the real error message.
    """
    if not is_pem(data):
        ders: list[bytes | None] = [bytes(data)]
    else:
        ders = [pem_der(b.body) for b in pem_blocks(data) if b.label in CERT_LABELS]
    out = []
    for der in ders:
        if der is None:
            raise SourceError("not base64", source=source)
        out.append((der, _derlib.parse_certificate(der, source=source)))
    if not out:
        raise SourceError("no certificate", source=source)
    return out


def certificate_der_fields(data: bytes, *, source: str) -> tuple[bytes, _derlib.CertificateFields]:
    """The first certificate in ``data`` (PEM or DER): its DER and what the DER reader takes
    from it. A certificate the strict reader refuses is read by cryptography instead, whose
    errors name what is wrong."""
    try:
        return fast_certificates(data, source)[0]
    except SourceError:
        pass
    from cryptography.hazmat.primitives import serialization

    cert = load_certificate(data, source=source)
    fields = _derlib.CertificateFields(
        cert.serial_number,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return cert.public_bytes(serialization.Encoding.DER), fields


def is_certificate_object(value: object) -> bool:
    from cryptography import x509

    return isinstance(value, x509.Certificate)
