"""A small, strict DER reader for the few X.509 certificate fields the client needs.

Reading the serial number, the validity period and the SubjectPublicKeyInfo here spares the
common ``credential-process`` path the import of :mod:`cryptography.x509` (tens of
milliseconds). Anything malformed raises :class:`~rolesanywhere.errors.SourceError`; callers
fall back to cryptography's full parser then, so this module never decides what is valid on its
own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import SourceError

__all__ = ["CertificateFields", "parse_certificate"]

_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_VERSION = 0xA0  # [0] EXPLICIT, constructed
_MAX_LENGTH_BYTES = 4


@dataclass(frozen=True, slots=True)
class CertificateFields:
    """What :func:`parse_certificate` extracts from one certificate."""

    serial_number: int
    not_before: datetime
    not_after: datetime
    #: The complete SubjectPublicKeyInfo element (tag, length and content), as encoded.
    spki: bytes


def _fail(what: str, source: str) -> SourceError:
    return SourceError(f"malformed DER certificate: {what}", source=source)


def _element(data: bytes, offset: int, end: int, source: str) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``offset``, within ``end``."""
    if offset + 2 > end:
        raise _fail("truncated element", source)
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise _fail("high tag numbers are not used in certificates", source)
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise _fail("indefinite length", source)
    else:
        size = first & 0x7F
        if size > _MAX_LENGTH_BYTES or start + size > end:
            raise _fail("bad length", source)
        raw = data[start : start + size]
        if raw[0] == 0:
            raise _fail("non-minimal length", source)
        length = int.from_bytes(raw, "big")
        if length < 0x80:
            raise _fail("non-minimal length", source)
        start += size
    if start + length > end:
        raise _fail("length beyond the data", source)
    return tag, start, start + length


def _expect(
    data: bytes, offset: int, end: int, tag: int, what: str, source: str
) -> tuple[int, int]:
    got, start, stop = _element(data, offset, end, source)
    if got != tag:
        raise _fail(f"expected {what}", source)
    return start, stop


def _digits(text: bytes, source: str) -> int:
    if not text or not all(0x30 <= c <= 0x39 for c in text):
        raise _fail("bad time", source)
    return int(text)


def _time(data: bytes, offset: int, end: int, source: str) -> tuple[datetime, int]:
    """A UTCTime or GeneralizedTime as RFC 5280 restricts them (seconds, ``Z``)."""
    tag, start, stop = _element(data, offset, end, source)
    text = data[start:stop]
    if tag == _UTC_TIME and len(text) == 13 and text[-1:] == b"Z":
        yy = _digits(text[0:2], source)
        year, rest = (1900 + yy if yy >= 50 else 2000 + yy), text[2:12]
    elif tag == _GENERALIZED_TIME and len(text) == 15 and text[-1:] == b"Z":
        year, rest = _digits(text[0:4], source), text[4:14]
    else:
        raise _fail("bad time", source)
    month, day, hour, minute, second = (_digits(rest[i : i + 2], source) for i in range(0, 10, 2))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC), stop
    except ValueError:
        raise _fail("bad time", source) from None


def parse_certificate(der: bytes, *, source: str = "<certificate>") -> CertificateFields:
    """Serial, validity and SPKI of one DER certificate that fills ``der`` exactly."""
    data = bytes(der)
    end = len(data)
    cert_start, cert_end = _expect(data, 0, end, _SEQUENCE, "a SEQUENCE", source)
    if cert_end != end:
        raise _fail("trailing data", source)
    tbs_start, tbs_end = _expect(data, cert_start, cert_end, _SEQUENCE, "a SEQUENCE", source)
    # signatureAlgorithm, signatureValue, nothing else.
    alg_start, alg_end = _expect(data, tbs_end, cert_end, _SEQUENCE, "a SEQUENCE", source)
    _, sig_end = _expect(data, alg_end, cert_end, _BIT_STRING, "a BIT STRING", source)
    if sig_end != cert_end or alg_start == alg_end:
        raise _fail("unexpected signature fields", source)

    pos = tbs_start
    tag, start, stop = _element(data, pos, tbs_end, source)
    if tag == _VERSION:
        v_start, v_stop = _expect(data, start, stop, _INTEGER, "an INTEGER", source)
        if v_stop != stop or v_stop - v_start != 1 or data[v_start] > 2:
            raise _fail("bad version", source)
        pos = stop
    serial_start, pos = _expect(data, pos, tbs_end, _INTEGER, "an INTEGER", source)
    raw = data[serial_start:pos]
    if not raw or (len(raw) > 1 and (raw[0], raw[1] & 0x80) in ((0, 0), (0xFF, 0x80))):
        raise _fail("bad serial number", source)
    serial = int.from_bytes(raw, "big", signed=True)
    for what in ("signature", "issuer"):
        _, pos = _expect(data, pos, tbs_end, _SEQUENCE, f"the {what}", source)
    validity_start, validity_end = _expect(data, pos, tbs_end, _SEQUENCE, "validity", source)
    not_before, at = _time(data, validity_start, validity_end, source)
    not_after, at = _time(data, at, validity_end, source)
    if at != validity_end:
        raise _fail("bad validity", source)
    _, pos = _expect(data, validity_end, tbs_end, _SEQUENCE, "the subject", source)
    spki_offset = pos
    _, pos = _expect(data, pos, tbs_end, _SEQUENCE, "the public key", source)
    spki = data[spki_offset:pos]
    last = 0
    while pos < tbs_end:  # [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions
        tag, _, pos = _element(data, pos, tbs_end, source)
        number = tag & 0x1F
        if tag & 0xC0 != 0x80 or not last < number <= 3:
            raise _fail("unexpected field", source)
        last = number
    return CertificateFields(serial, not_before, not_after, spki)
