"""PEM and DER scanning: the blocks of a PEM file, the DER inside one, and what kind of
DER structure (PKCS#12, encrypted PKCS#8) a file holds, read without cryptography."""

from __future__ import annotations

import base64
import binascii
import re

from rolesanywhere.values import Value

__all__ = [
    "CERT_LABELS",
    "PemBlock",
    "der_content",
    "is_encrypted_pkcs8_der",
    "is_pem",
    "is_pkcs12",
    "pem_blocks",
    "pem_der",
]

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9][A-Z0-9 ._]*)-----(.*?)-----END \1-----", re.S)
_PEM_MARK = b"-----BEGIN "
CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE"})


class PemBlock(Value):
    __slots__ = ("label", "text", "body")

    label: str
    #: The whole block, BEGIN and END lines included, and a newline.
    text: bytes
    #: What lies between the BEGIN and END lines.
    body: bytes

    def __init__(self, label: str, text: bytes, body: bytes) -> None:
        super().__init__(label, text, body)


def pem_blocks(data: bytes) -> list[PemBlock]:
    return [
        PemBlock(m.group(1).decode("ascii"), m.group(0) + b"\n", m.group(2))
        for m in _PEM_RE.finditer(data)
    ]


def pem_der(body: bytes) -> bytes | None:
    """The DER inside a PEM body (RFC 7468 headers skipped); ``None`` if not valid base64."""
    lines = body.strip().splitlines()
    if any(b":" in line for line in lines):
        try:
            lines = lines[lines.index(b"") + 1 :]
        except ValueError:
            lines = [line for line in lines if b":" not in line]
    try:
        return base64.b64decode(b"".join(b"".join(lines).split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def der_content(data: bytes, offset: int = 0) -> tuple[int, int] | None:
    """(tag, content offset) of the DER/BER element at ``offset``; ``None`` if truncated."""
    if len(data) < offset + 2:
        return None
    tag, first = data[offset], data[offset + 1]
    if first <= 0x80:  # short form, or BER indefinite length
        return tag, offset + 2
    size = first & 0x7F
    if size > 4 or len(data) < offset + 2 + size:
        return None
    return tag, offset + 2 + size


def is_pkcs12(data: bytes) -> bool:
    """PFX: SEQUENCE { INTEGER 3, SEQUENCE authSafe, ... }."""
    outer = der_content(data)
    if outer is None or outer[0] != 0x30:
        return False
    start = outer[1]
    return data[start : start + 4] == b"\x02\x01\x03\x30"


def is_encrypted_pkcs8_der(data: bytes) -> bool:
    """EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID, ... }, OCTET STRING }."""
    outer = der_content(data)
    if outer is None or outer[0] != 0x30:
        return False
    inner = der_content(data, outer[1])
    return inner is not None and inner[0] == 0x30 and data[inner[1] : inner[1] + 1] == b"\x06"


def is_pem(data: bytes) -> bool:
    return _PEM_MARK in data
