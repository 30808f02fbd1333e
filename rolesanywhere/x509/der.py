"""A small, strict DER reader for the few structures the common path needs.

Reading a certificate's serial number, validity period and SubjectPublicKeyInfo here spares the
common ``credential-process`` path the import of :mod:`cryptography.x509` (tens of
milliseconds); reading unencrypted private keys (PKCS#1, SEC1, PKCS#8) and public keys to their
numbers spares it :mod:`cryptography.hazmat.primitives.serialization`. Anything malformed or
unusual raises :class:`~rolesanywhere.errors.SourceError`; callers fall back to cryptography's
full parser then, so this module never decides what is valid on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from rolesanywhere.errors import SourceError
from rolesanywhere.values import Value

__all__ = [
    "CertificateFields",
    "ECPrivateKeyFields",
    "ECPublicKeyFields",
    "MLDSAPrivateKeyFields",
    "PrivateKeyFields",
    "PrivateKeyFormat",
    "PublicKeyFields",
    "RSAPrivateKeyFields",
    "RSAPublicKeyFields",
    "parse_certificate",
    "parse_mldsa_private_key",
    "parse_mldsa_public_key",
    "parse_private_key",
    "parse_public_key",
]

_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_EXPLICIT_0 = 0xA0  # [0] EXPLICIT, constructed
_EXPLICIT_1 = 0xA1  # [1] EXPLICIT, constructed
_IMPLICIT_0 = 0x80  # [0] IMPLICIT, primitive
_VERSION = _EXPLICIT_0
_MAX_LENGTH_BYTES = 4
_NULL_ELEMENT = b"\x05\x00"

# Object identifiers, as the content octets of their DER encoding.
_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
#: Named curve OID -> (cryptography's curve name, bytes of a scalar or coordinate).
_CURVES: dict[bytes, tuple[str, int]] = {
    bytes.fromhex("2a8648ce3d030107"): ("secp256r1", 32),  # 1.2.840.10045.3.1.7, P-256
    bytes.fromhex("2b81040022"): ("secp384r1", 48),  # 1.3.132.0.34, P-384
    bytes.fromhex("2b81040023"): ("secp521r1", 66),  # 1.3.132.0.35, P-521
}
#: ML-DSA OID (2.16.840.1.101.3.4.3.17-19) -> (parameter set, bytes of the expanded key).
_MLDSA: dict[bytes, tuple[str, int]] = {
    bytes.fromhex("608648016503040311"): ("ML-DSA-44", 2560),
    bytes.fromhex("608648016503040312"): ("ML-DSA-65", 4032),
    bytes.fromhex("608648016503040313"): ("ML-DSA-87", 4896),
}
_MLDSA_SEED_BYTES = 32

#: How a private key is wrapped: PKCS#8 ``PRIVATE KEY``, PKCS#1 ``RSA PRIVATE KEY`` or SEC1
#: ``EC PRIVATE KEY``.
PrivateKeyFormat = Literal["pkcs8", "pkcs1", "sec1"]


class CertificateFields(Value):
    """What :func:`parse_certificate` extracts from one certificate."""

    __slots__ = ("serial_number", "not_before", "not_after", "spki")

    serial_number: int
    not_before: datetime
    not_after: datetime
    #: The complete SubjectPublicKeyInfo element (tag, length and content), as encoded.
    spki: bytes

    def __init__(
        self, serial_number: int, not_before: datetime, not_after: datetime, spki: bytes
    ) -> None:
        super().__init__(serial_number, not_before, not_after, spki)


class RSAPrivateKeyFields(Value):
    """The numbers of a two-prime RSA private key (PKCS#1 ``RSAPrivateKey``)."""

    __slots__ = ("n", "e", "d", "p", "q", "dmp1", "dmq1", "iqmp")
    _hidden = frozenset({"d", "p", "q", "dmp1", "dmq1", "iqmp"})

    n: int
    e: int
    d: int
    p: int
    q: int
    dmp1: int
    dmq1: int
    iqmp: int

    def __init__(
        self, n: int, e: int, d: int, p: int, q: int, dmp1: int, dmq1: int, iqmp: int
    ) -> None:
        super().__init__(n, e, d, p, q, dmp1, dmq1, iqmp)


class ECPrivateKeyFields(Value):
    """An EC private key on a named curve (SEC1 ``ECPrivateKey``)."""

    __slots__ = ("curve", "private_value", "public_point")
    _hidden = frozenset({"private_value"})

    #: cryptography's curve name: ``secp256r1``, ``secp384r1`` or ``secp521r1``.
    curve: str
    private_value: int
    #: The embedded public key, uncompressed (``04 || X || Y``), when the key has one.
    public_point: bytes | None

    def __init__(self, curve: str, private_value: int, public_point: bytes | None) -> None:
        super().__init__(curve, private_value, public_point)


class RSAPublicKeyFields(Value):
    """An RSA public key: modulus and public exponent."""

    __slots__ = ("n", "e")

    n: int
    e: int

    def __init__(self, n: int, e: int) -> None:
        super().__init__(n, e)


class ECPublicKeyFields(Value):
    """An EC public key on a named curve."""

    __slots__ = ("curve", "point")

    #: cryptography's curve name: ``secp256r1``, ``secp384r1`` or ``secp521r1``.
    curve: str
    #: The uncompressed point, ``04 || X || Y``.
    point: bytes

    def __init__(self, curve: str, point: bytes) -> None:
        super().__init__(curve, point)


class MLDSAPrivateKeyFields(Value):
    """An ML-DSA private key (PKCS#8, RFC 9881): its seed, its expanded form, or both."""

    __slots__ = ("parameter_set", "seed", "expanded")
    _hidden = frozenset({"seed", "expanded"})

    #: ``ML-DSA-44``, ``ML-DSA-65`` or ``ML-DSA-87``.
    parameter_set: str
    #: The 32-byte seed ``ξ`` the key is generated from, when the file holds it.
    seed: bytes | None
    #: The expanded private key (FIPS 204 ``skEncode``), when the file holds it.
    expanded: bytes | None

    def __init__(self, parameter_set: str, seed: bytes | None, expanded: bytes | None) -> None:
        super().__init__(parameter_set, seed, expanded)


PrivateKeyFields = RSAPrivateKeyFields | ECPrivateKeyFields
PublicKeyFields = RSAPublicKeyFields | ECPublicKeyFields


# --- TLV primitives ---------------------------------------------------------------------------


def _fail(what: str, source: str) -> SourceError:
    return SourceError(f"malformed DER: {what}", source=source)


def _element(data: bytes, offset: int, end: int, source: str) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``offset``, within ``end``."""
    if offset + 2 > end:
        raise _fail("truncated element", source)
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise _fail("high tag numbers are not used here", source)
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


def _exactly(
    data: bytes, start: int, end: int, tag: int, what: str, source: str
) -> tuple[int, int]:
    """Content range of the one element that fills ``data[start:end]`` exactly."""
    content_start, content_end = _expect(data, start, end, tag, what, source)
    if content_end != end:
        raise _fail(f"data after {what}", source)
    return content_start, content_end


def _integer(data: bytes, offset: int, end: int, source: str) -> tuple[int, int]:
    """(value, end) of a minimally encoded INTEGER at ``offset``."""
    start, stop = _expect(data, offset, end, _INTEGER, "an INTEGER", source)
    raw = data[start:stop]
    if not raw or (len(raw) > 1 and (raw[0], raw[1] & 0x80) in ((0, 0), (0xFF, 0x80))):
        raise _fail("bad INTEGER", source)
    return int.from_bytes(raw, "big", signed=True), stop


def _unsigned(data: bytes, offset: int, end: int, source: str) -> tuple[int, int]:
    value, stop = _integer(data, offset, end, source)
    if value < 0:
        raise _fail("negative INTEGER", source)
    return value, stop


def _bit_string_bytes(data: bytes, start: int, end: int, source: str) -> bytes:
    """The octets of the BIT STRING filling ``data[start:end]``, which must use whole bytes."""
    content_start, content_end = _exactly(data, start, end, _BIT_STRING, "a BIT STRING", source)
    if content_start == content_end or data[content_start] != 0:
        raise _fail("BIT STRING with unused bits", source)
    return data[content_start + 1 : content_end]


# --- certificates -----------------------------------------------------------------------------


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
    cert_start, cert_end = _exactly(data, 0, end, _SEQUENCE, "a SEQUENCE", source)
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
    serial, pos = _integer(data, pos, tbs_end, source)
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


# --- keys -------------------------------------------------------------------------------------


def _oid(data: bytes, start: int, end: int, source: str) -> bytes:
    """The content octets of the OBJECT IDENTIFIER filling ``data[start:end]``."""
    content_start, content_end = _exactly(data, start, end, _OID, "an OBJECT IDENTIFIER", source)
    return data[content_start:content_end]


def _curve(oid: bytes, source: str) -> tuple[str, int]:
    curve = _CURVES.get(oid)
    if curve is None:
        raise _fail("unsupported curve", source)
    return curve


def _algorithm(data: bytes, offset: int, end: int, source: str) -> tuple[bytes | None, int]:
    """An AlgorithmIdentifier: rsaEncryption (NULL parameters) gives ``None``, id-ecPublicKey
    with a named curve gives the curve's OID; anything else fails. Returns (that, end)."""
    start, stop = _expect(data, offset, end, _SEQUENCE, "an AlgorithmIdentifier", source)
    oid_start, oid_end = _expect(data, start, stop, _OID, "an OBJECT IDENTIFIER", source)
    algorithm = data[oid_start:oid_end]
    if algorithm == _RSA_ENCRYPTION:
        if data[oid_end:stop] != _NULL_ELEMENT:
            raise _fail("rsaEncryption without NULL parameters", source)
        return None, stop
    if algorithm == _EC_PUBLIC_KEY:
        curve = _oid(data, oid_end, stop, source)
        _curve(curve, source)
        return curve, stop
    raise _fail("unsupported key algorithm", source)


def _rsa_private_key(data: bytes, start: int, end: int, source: str) -> RSAPrivateKeyFields:
    """RSAPrivateKey (RFC 8017), two-prime, filling ``data[start:end]``."""
    pos, stop = _exactly(data, start, end, _SEQUENCE, "an RSAPrivateKey", source)
    version, pos = _unsigned(data, pos, stop, source)
    if version != 0:
        raise _fail("unsupported RSAPrivateKey version", source)
    numbers = []
    for _ in range(8):
        value, pos = _unsigned(data, pos, stop, source)
        numbers.append(value)
    if pos != stop:
        raise _fail("unexpected RSAPrivateKey fields", source)
    n, e, d, p, q, dmp1, dmq1, iqmp = numbers
    return RSAPrivateKeyFields(n, e, d, p, q, dmp1, dmq1, iqmp)


def _ec_private_key(
    data: bytes, start: int, end: int, curve_oid: bytes | None, source: str
) -> ECPrivateKeyFields:
    """ECPrivateKey (RFC 5915) filling ``data[start:end]``; ``curve_oid`` is the curve named
    outside it (PKCS#8), which the key's own parameters, if any, must repeat."""
    pos, stop = _exactly(data, start, end, _SEQUENCE, "an ECPrivateKey", source)
    version, pos = _unsigned(data, pos, stop, source)
    if version != 1:
        raise _fail("unsupported ECPrivateKey version", source)
    key_start, pos = _expect(data, pos, stop, _OCTET_STRING, "an OCTET STRING", source)
    private = data[key_start:pos]
    if pos < stop and data[pos] == _EXPLICIT_0:
        params_start, params_end = _expect(data, pos, stop, _EXPLICIT_0, "parameters", source)
        own = _oid(data, params_start, params_end, source)
        if curve_oid is not None and own != curve_oid:
            raise _fail("conflicting curves", source)
        curve_oid, pos = own, params_end
    point = None
    if pos < stop and data[pos] == _EXPLICIT_1:
        point_start, point_end = _expect(data, pos, stop, _EXPLICIT_1, "publicKey", source)
        point = _bit_string_bytes(data, point_start, point_end, source)
        pos = point_end
    if pos != stop:
        raise _fail("unexpected ECPrivateKey fields", source)
    if curve_oid is None:
        raise _fail("no curve", source)
    name, size = _curve(curve_oid, source)
    if len(private) != size:
        raise _fail("private key of the wrong size", source)
    if point is not None and (len(point) != 1 + 2 * size or point[0] != 0x04):
        raise _fail("public key not an uncompressed point", source)
    return ECPrivateKeyFields(name, int.from_bytes(private, "big"), point)


def _pkcs8(data: bytes, start: int, end: int, source: str) -> PrivateKeyFields:
    """PrivateKeyInfo (RFC 5208), version 0 and no attributes, filling ``data[start:end]``."""
    pos, stop = _exactly(data, start, end, _SEQUENCE, "a PrivateKeyInfo", source)
    version, pos = _unsigned(data, pos, stop, source)
    if version != 0:
        raise _fail("unsupported PrivateKeyInfo version", source)
    curve_oid, pos = _algorithm(data, pos, stop, source)
    key_start, key_end = _expect(data, pos, stop, _OCTET_STRING, "an OCTET STRING", source)
    if key_end != stop:
        raise _fail("PrivateKeyInfo attributes", source)
    if curve_oid is None:
        return _rsa_private_key(data, key_start, key_end, source)
    return _ec_private_key(data, key_start, key_end, curve_oid, source)


def _guess_format(data: bytes, source: str) -> PrivateKeyFormat:
    """The format a DER key is in, from the element after its version."""
    pos, stop = _exactly(data, 0, len(data), _SEQUENCE, "a SEQUENCE", source)
    _, pos = _unsigned(data, pos, stop, source)
    if pos < stop:
        tag = data[pos]
        if tag == _SEQUENCE:
            return "pkcs8"
        if tag == _INTEGER:
            return "pkcs1"
        if tag == _OCTET_STRING:
            return "sec1"
    raise _fail("not a private key", source)


def parse_private_key(
    der: bytes, key_format: PrivateKeyFormat | None = None, *, source: str = "<private key>"
) -> PrivateKeyFields:
    """The numbers of an unencrypted RSA or named-curve EC private key that fills ``der``.

    ``key_format`` is known from a PEM label; ``None`` (DER) tells the three apart by their
    structure, which never overlaps.
    """
    data = bytes(der)
    if key_format is None:
        key_format = _guess_format(data, source)
    if key_format == "pkcs8":
        return _pkcs8(data, 0, len(data), source)
    if key_format == "pkcs1":
        return _rsa_private_key(data, 0, len(data), source)
    return _ec_private_key(data, 0, len(data), None, source)


def parse_public_key(spki: bytes, *, source: str = "<public key>") -> PublicKeyFields:
    """The RSA or named-curve EC key of a SubjectPublicKeyInfo that fills ``spki`` exactly."""
    data = bytes(spki)
    pos, stop = _exactly(data, 0, len(data), _SEQUENCE, "a SubjectPublicKeyInfo", source)
    curve_oid, pos = _algorithm(data, pos, stop, source)
    key = _bit_string_bytes(data, pos, stop, source)
    if curve_oid is not None:
        name, size = _curve(curve_oid, source)
        if len(key) != 1 + 2 * size or key[0] != 0x04:
            raise _fail("public key not an uncompressed point", source)
        return ECPublicKeyFields(name, key)
    pos, stop = _exactly(key, 0, len(key), _SEQUENCE, "an RSAPublicKey", source)
    n, pos = _unsigned(key, pos, stop, source)
    e, pos = _unsigned(key, pos, stop, source)
    if pos != stop:
        raise _fail("unexpected RSAPublicKey fields", source)
    return RSAPublicKeyFields(n, e)


def _mldsa_choice(
    data: bytes, start: int, end: int, name: str, size: int, source: str
) -> MLDSAPrivateKeyFields:
    """ML-DSA-PrivateKey ::= CHOICE { seed [0] IMPLICIT OCTET STRING (32), expandedKey OCTET
    STRING, both SEQUENCE { seed OCTET STRING, expandedKey OCTET STRING } }."""
    tag, content_start, content_end = _element(data, start, end, source)
    if content_end != end:
        raise _fail("data after the ML-DSA private key", source)
    seed = expanded = None
    if tag == _IMPLICIT_0:
        seed = data[content_start:content_end]
    elif tag == _OCTET_STRING:
        expanded = data[content_start:content_end]
    elif tag == _SEQUENCE:
        seed_start, pos = _expect(data, content_start, content_end, _OCTET_STRING, "a seed", source)
        seed = data[seed_start:pos]
        key_start, key_end = _exactly(
            data, pos, content_end, _OCTET_STRING, "an expanded key", source
        )
        expanded = data[key_start:key_end]
    else:
        raise _fail("unknown ML-DSA private key form", source)
    if seed is not None and len(seed) != _MLDSA_SEED_BYTES:
        raise _fail("ML-DSA seed of the wrong size", source)
    if expanded is not None and len(expanded) != size:
        raise _fail(f"{name} expanded key of the wrong size", source)
    return MLDSAPrivateKeyFields(name, seed, expanded)


def parse_mldsa_private_key(
    der: bytes, *, source: str = "<private key>"
) -> MLDSAPrivateKeyFields | None:
    """The ML-DSA key of an unencrypted PKCS#8 ``PrivateKeyInfo`` (version 0, no attributes)
    that fills ``der``, in any of the three forms OpenSSL writes; ``None`` when the key is of
    another algorithm (or ``der`` is no PKCS#8), :class:`SourceError` when it is a malformed
    ML-DSA key."""
    data = bytes(der)
    try:
        pos, stop = _exactly(data, 0, len(data), _SEQUENCE, "a PrivateKeyInfo", source)
        version, pos = _unsigned(data, pos, stop, source)
        alg_start, alg_end = _expect(data, pos, stop, _SEQUENCE, "an AlgorithmIdentifier", source)
        algorithm = _oid(data, alg_start, alg_end, source)
    except SourceError:
        return None
    if algorithm not in _MLDSA:
        return None
    name, size = _MLDSA[algorithm]
    if version != 0:
        raise _fail("unsupported PrivateKeyInfo version", source)
    key_start, key_end = _expect(data, alg_end, stop, _OCTET_STRING, "an OCTET STRING", source)
    if key_end != stop:
        raise _fail("PrivateKeyInfo attributes", source)
    return _mldsa_choice(data, key_start, key_end, name, size, source)


def parse_mldsa_public_key(spki: bytes, *, source: str = "<public key>") -> str | None:
    """The parameter set (``ML-DSA-44``…) of an ML-DSA SubjectPublicKeyInfo that fills ``spki``
    exactly; ``None`` for another algorithm or a malformed structure."""
    data = bytes(spki)
    try:
        pos, stop = _exactly(data, 0, len(data), _SEQUENCE, "a SubjectPublicKeyInfo", source)
        alg_start, alg_end = _expect(data, pos, stop, _SEQUENCE, "an AlgorithmIdentifier", source)
        algorithm = _oid(data, alg_start, alg_end, source)
        _bit_string_bytes(data, alg_end, stop, source)
    except SourceError:
        return None
    found = _MLDSA.get(algorithm)
    return None if found is None else found[0]
