"""The DER reader against cryptography's parser: same serial, dates, SPKI and key numbers; it
raises only SourceError, and refuses every structure it does not fully understand."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import SourceError
from rolesanywhere.testing.pki import KEY_TYPES, PKI, generate_private_key
from rolesanywhere.x509.der import (
    ECPrivateKeyFields,
    ECPublicKeyFields,
    PrivateKeyFormat,
    RSAPrivateKeyFields,
    RSAPublicKeyFields,
    parse_certificate,
    parse_private_key,
    parse_public_key,
)

_PKI = PKI(name="der tests")
_LEAVES = {kt: _PKI.leaf(kt) for kt in KEY_TYPES}

_dates = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(9998, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
_serials = st.one_of(
    st.integers(min_value=1, max_value=2**159 - 1),
    st.integers(min_value=1, max_value=159).map(lambda bits: 2 ** (bits - 1)),  # high bit set
    st.integers(min_value=1, max_value=159).map(lambda bits: 2**bits - 1),
)


def _check(der: bytes) -> None:
    cert = x509.load_der_x509_certificate(der)
    fields = parse_certificate(der)
    assert fields.serial_number == cert.serial_number
    assert fields.not_before == cert.not_valid_before_utc
    assert fields.not_after == cert.not_valid_after_utc
    assert fields.spki == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key_type=st.sampled_from(KEY_TYPES),
    serial=_serials,
    start=_dates,
    length=st.integers(min_value=0, max_value=100 * 365),
)
def test_matches_cryptography(key_type: str, serial: int, start: datetime, length: int) -> None:
    last = datetime(9999, 12, 31, tzinfo=UTC)  # adding past it would overflow
    end = start + timedelta(days=min(length, (last - start).days))
    leaf = _PKI.leaf(
        key_type,
        serial=serial,
        not_before=start,
        not_after=end,
        private_key=_LEAVES[key_type].private_key,
    )
    _check(leaf.cert_der())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(1950, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2050, 1, 1, tzinfo=UTC)),
        (datetime(1950, 6, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_utc_and_generalized_time_boundaries(start: datetime, end: datetime) -> None:
    _check(_PKI.leaf(serial=2**63, not_before=start, not_after=end).cert_der())


def test_ca_certificates_and_every_key_type() -> None:
    for cert in (_PKI.root, _PKI.intermediate, *_LEAVES.values()):
        _check(cert.cert_der())


def test_trailing_data_and_truncation_are_refused() -> None:
    der = _LEAVES["ec-p256"].cert_der()
    for bad in (der + b"\x00", der[:-1], der[:10], b"", b"\x30\x80" + der[2:]):
        with pytest.raises(SourceError):
            parse_certificate(bad)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_source_error(data: bytes) -> None:
    with contextlib.suppress(SourceError):
        parse_certificate(data)


@settings(max_examples=1500, deadline=None)
@given(
    key_type=st.sampled_from(KEY_TYPES),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(min_value=0),
)
def test_mutated_certificates_raise_only_source_error(
    key_type: str, edits: list[tuple[int, int]], cut: int
) -> None:
    der = bytearray(_LEAVES[key_type].cert_der())
    for where, value in edits:
        der[where % len(der)] = value
    data = bytes(der[: len(der) - cut % 8])
    try:
        fields = parse_certificate(data)
    except SourceError:
        return
    assert isinstance(fields.serial_number, int)
    assert fields.not_before.tzinfo is UTC


# --- a tiny DER writer, to build the structures cryptography will not write ---------------------


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element (definite, minimal length)."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(value: int) -> bytes:
    """A minimal INTEGER (non-negative ``value``)."""
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def octets(content: bytes) -> bytes:
    return tlv(0x04, content)


def bits(content: bytes) -> bytes:
    return tlv(0x03, b"\x00" + content)


NULL = b"\x05\x00"
RSA_ALG = seq(tlv(0x06, bytes.fromhex("2a864886f70d010101")), NULL)
EC_OID = tlv(0x06, bytes.fromhex("2a8648ce3d0201"))
CURVE_OIDS = {
    "secp256r1": tlv(0x06, bytes.fromhex("2a8648ce3d030107")),
    "secp384r1": tlv(0x06, bytes.fromhex("2b81040022")),
    "secp521r1": tlv(0x06, bytes.fromhex("2b81040023")),
}


def ec_alg(curve: str) -> bytes:
    return seq(EC_OID, CURVE_OIDS[curve])


def rsa_numbers(key: rsa.RSAPrivateKey) -> list[int]:
    """n, e, d, p, q, dmp1, dmq1, iqmp."""
    nums = key.private_numbers()
    pub = nums.public_numbers
    return [pub.n, pub.e, nums.d, nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp]


def pkcs1(key: rsa.RSAPrivateKey, *, version: int = 0, extra: bytes = b"") -> bytes:
    return seq(integer(version), *(integer(v) for v in rsa_numbers(key)), extra)


def uncompressed(key: ec.EllipticCurvePrivateKey) -> bytes:
    size = (key.curve.key_size + 7) // 8
    pub = key.public_key().public_numbers()
    return b"\x04" + pub.x.to_bytes(size, "big") + pub.y.to_bytes(size, "big")


def sec1(
    key: ec.EllipticCurvePrivateKey,
    *,
    params: bytes | None = None,
    point: bytes | None = None,
    version: int = 1,
    private: bytes | None = None,
) -> bytes:
    """ECPrivateKey; ``params``/``point`` are the [0]/[1] contents (``b""`` leaves one out)."""
    size = (key.curve.key_size + 7) // 8
    d = key.private_numbers().private_value.to_bytes(size, "big") if private is None else private
    own_params = CURVE_OIDS[key.curve.name] if params is None else params
    own_point = bits(uncompressed(key)) if point is None else point
    return seq(
        integer(version),
        octets(d),
        tlv(0xA0, own_params) if own_params else b"",
        tlv(0xA1, own_point) if own_point else b"",
    )


def pkcs8(alg: bytes, inner: bytes, *, version: int = 0, extra: bytes = b"") -> bytes:
    return seq(integer(version), alg, octets(inner), extra)


def cryptography_der(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: str) -> bytes:
    private_format = (
        serialization.PrivateFormat.PKCS8
        if fmt == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(
        serialization.Encoding.DER, private_format, serialization.NoEncryption()
    )


# --- private keys -------------------------------------------------------------------------------


def _key_formats(key_type: str) -> list[PrivateKeyFormat]:
    return ["pkcs8", "pkcs1" if key_type.startswith("rsa-") else "sec1"]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_private_key_numbers_match_cryptography(key_type: str) -> None:
    key = _LEAVES[key_type].private_key
    for fmt in _key_formats(key_type):
        der = cryptography_der(key, fmt)  # type: ignore[arg-type]
        for given_format in (fmt, None):
            fields = parse_private_key(der, given_format)
            if isinstance(key, rsa.RSAPrivateKey):
                assert isinstance(fields, RSAPrivateKeyFields)
                assert [getattr(fields, f) for f in RSAPrivateKeyFields._fields] == rsa_numbers(key)
            else:
                assert isinstance(key, ec.EllipticCurvePrivateKey)
                assert fields == ECPrivateKeyFields(
                    key.curve.name, key.private_numbers().private_value, uncompressed(key)
                )


def test_test_writer_matches_cryptography() -> None:
    """The writer above produces exactly what cryptography writes, so variants of its output
    differ from real keys only where a test says so."""
    rsa_key = _LEAVES["rsa-2048"].private_key
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert pkcs1(rsa_key) == cryptography_der(rsa_key, "pkcs1")
    assert pkcs8(RSA_ALG, pkcs1(rsa_key)) == cryptography_der(rsa_key, "pkcs8")
    for key_type in ("ec-p256", "ec-p384", "ec-p521"):
        ec_key = _LEAVES[key_type].private_key
        assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
        assert sec1(ec_key) == cryptography_der(ec_key, "sec1")
        inner = sec1(ec_key, params=b"")
        assert pkcs8(ec_alg(ec_key.curve.name), inner) == cryptography_der(ec_key, "pkcs8")


def test_private_key_variants_that_are_read() -> None:
    key = generate_private_key("ec-p384")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    d = key.private_numbers().private_value
    alg = ec_alg("secp384r1")
    # No public key; the curve in both places; a private value with leading zero bytes.
    assert parse_private_key(sec1(key, point=b"")) == ECPrivateKeyFields("secp384r1", d, None)
    both = pkcs8(alg, sec1(key))
    assert parse_private_key(both) == ECPrivateKeyFields("secp384r1", d, uncompressed(key))
    small = parse_private_key(sec1(key, point=b"", private=(5).to_bytes(48, "big")))
    assert small == ECPrivateKeyFields("secp384r1", 5, None)


def _refused_private_keys() -> dict[str, tuple[bytes, PrivateKeyFormat | None]]:
    r = _LEAVES["rsa-2048"].private_key
    k = _LEAVES["ec-p256"].private_key
    assert isinstance(r, rsa.RSAPrivateKey)
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    n, e, d, p, q, dmp1, dmq1, iqmp = rsa_numbers(r)
    p256 = ec_alg("secp256r1")
    inner = sec1(k, params=b"")
    good_rsa, good_ec = pkcs1(r), sec1(k)
    explicit = seq(integer(1), seq(tlv(0x06, bytes.fromhex("2a8648ce3d0101")), integer(7)))
    point = uncompressed(k)
    return {
        "pkcs1 trailing data": (good_rsa + b"\x00", None),
        "pkcs1 truncated": (good_rsa[:-1], None),
        "pkcs1 multi-prime version": (pkcs1(r, version=1), None),
        "pkcs1 extra field": (pkcs1(r, extra=integer(3)), None),
        "pkcs1 negative": (
            seq(
                *map(integer, [0, n, e]),
                tlv(0x02, b"\xff"),
                *map(integer, [p, q, dmp1, dmq1, iqmp]),
            ),
            None,
        ),
        "pkcs1 leading zero": (
            seq(
                integer(0),
                integer(n),
                tlv(0x02, b"\x00\x01\x00\x01"),
                *map(integer, [d, p, q, dmp1, dmq1, iqmp]),
            ),
            None,
        ),
        "pkcs1 under the EC label": (good_rsa, "sec1"),
        "sec1 under the PKCS#8 label": (good_ec, "pkcs8"),
        "pkcs8 under the RSA label": (pkcs8(RSA_ALG, good_rsa), "pkcs1"),
        "indefinite length": (b"\x30\x80" + good_ec[2:] + b"\x00\x00", None),
        "sec1 version 2": (sec1(k, version=2), None),
        "sec1 without a curve": (sec1(k, params=b""), None),
        "sec1 explicit curve": (sec1(k, params=explicit), None),
        "sec1 unknown curve": (sec1(k, params=tlv(0x06, bytes.fromhex("2b8104000a"))), None),
        "sec1 short private key": (sec1(k, private=b"\x01" * 31), None),
        "sec1 long private key": (sec1(k, private=b"\x00" + b"\x01" * 32), None),
        "sec1 compressed point": (sec1(k, point=bits(b"\x02" + point[1:33])), None),
        "sec1 point with unused bits": (sec1(k, point=tlv(0x03, b"\x01" + point)), None),
        "sec1 short point": (sec1(k, point=bits(point[:-1])), None),
        "sec1 fields out of order": (
            seq(integer(1), octets(b"\x01" * 32), tlv(0xA1, bits(point)), tlv(0xA0, b"")),
            None,
        ),
        "pkcs8 version 1": (pkcs8(p256, inner, version=1), None),
        "pkcs8 attributes": (pkcs8(p256, inner, extra=tlv(0xA0, seq())), None),
        "pkcs8 v2 public key": (
            pkcs8(p256, inner, version=1, extra=tlv(0x81, b"\x00" + point)),
            None,
        ),
        "pkcs8 curves differ": (pkcs8(ec_alg("secp384r1"), good_ec), None),
        "pkcs8 rsa without NULL": (
            pkcs8(seq(tlv(0x06, bytes.fromhex("2a864886f70d010101"))), good_rsa),
            None,
        ),
        "pkcs8 ed25519": (
            pkcs8(seq(tlv(0x06, bytes.fromhex("2b6570"))), octets(b"\x01" * 32)),
            None,
        ),
        "pkcs8 rsa holding an EC key": (pkcs8(RSA_ALG, good_ec), None),
        "pkcs8 EC holding an RSA key": (pkcs8(p256, good_rsa), None),
        "pkcs8 trailing data in the octets": (pkcs8(p256, inner + b"\x00"), None),
        "not a key": (seq(integer(0)), None),
        "empty": (b"", None),
    }


#: Why each structure above is refused: each must fail for its own reason.
_REFUSAL_REASONS = {
    "pkcs1 trailing data": "data after a SEQUENCE",
    "pkcs1 truncated": "length beyond the data",
    "pkcs1 multi-prime version": "unsupported RSAPrivateKey version",
    "pkcs1 extra field": "unexpected RSAPrivateKey fields",
    "pkcs1 negative": "negative INTEGER",
    "pkcs1 leading zero": "bad INTEGER",
    "pkcs1 under the EC label": "unsupported ECPrivateKey version",
    "sec1 under the PKCS#8 label": "unsupported PrivateKeyInfo version",
    "pkcs8 under the RSA label": "expected an INTEGER",
    "indefinite length": "indefinite length",
    "sec1 version 2": "unsupported ECPrivateKey version",
    "sec1 without a curve": "no curve",
    "sec1 explicit curve": "expected an OBJECT IDENTIFIER",
    "sec1 unknown curve": "unsupported curve",
    "sec1 short private key": "private key of the wrong size",
    "sec1 long private key": "private key of the wrong size",
    "sec1 compressed point": "public key not an uncompressed point",
    "sec1 point with unused bits": "BIT STRING with unused bits",
    "sec1 short point": "public key not an uncompressed point",
    "sec1 fields out of order": "unexpected ECPrivateKey fields",
    "pkcs8 version 1": "unsupported PrivateKeyInfo version",
    "pkcs8 attributes": "PrivateKeyInfo attributes",
    "pkcs8 v2 public key": "unsupported PrivateKeyInfo version",
    "pkcs8 curves differ": "conflicting curves",
    "pkcs8 rsa without NULL": "rsaEncryption without NULL parameters",
    "pkcs8 ed25519": "unsupported key algorithm",
    "pkcs8 rsa holding an EC key": "unsupported RSAPrivateKey version",
    "pkcs8 EC holding an RSA key": "unsupported ECPrivateKey version",
    "pkcs8 trailing data in the octets": "data after an ECPrivateKey",
    "not a key": "not a private key",
    "empty": "truncated element",
}


def test_every_refused_structure_has_its_reason() -> None:
    assert set(_REFUSAL_REASONS) == set(_refused_private_keys())


@pytest.mark.parametrize("name", list(_REFUSAL_REASONS))
def test_private_key_refusals(name: str) -> None:
    der, key_format = _refused_private_keys()[name]
    reason = re.escape(_REFUSAL_REASONS[name])
    with pytest.raises(SourceError, match=rf"^malformed DER: {reason}$"):
        parse_private_key(der, key_format)


# --- public keys --------------------------------------------------------------------------------


def test_public_keys_match_cryptography() -> None:
    for leaf in (*_LEAVES.values(), _PKI.root, _PKI.intermediate):
        public = leaf.certificate.public_key()
        fields = parse_public_key(parse_certificate(leaf.cert_der()).spki)
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            assert fields == RSAPublicKeyFields(numbers.n, numbers.e)
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            key = leaf.private_key
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            assert fields == ECPublicKeyFields(public.curve.name, uncompressed(key))


@pytest.mark.parametrize("key_type", ["ed25519", "ec-p224", "ec-secp256k1"])
def test_public_keys_of_other_types_are_refused(key_type: str) -> None:
    spki = (
        generate_private_key(key_type)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SourceError):
        parse_public_key(spki)


def test_public_key_refusals() -> None:
    k = _LEAVES["ec-p256"].private_key
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    point = uncompressed(k)
    rsa_key = seq(integer(65537 * 1000003), integer(65537))
    bad = [
        seq(ec_alg("secp256r1"), bits(b"\x02" + point[1:33])),  # compressed
        seq(ec_alg("secp256r1"), bits(point[:-1])),
        seq(ec_alg("secp384r1"), bits(point)),  # a P-256 point on P-384
        seq(ec_alg("secp256r1"), tlv(0x03, b"\x04" + point)),  # unused bits
        seq(ec_alg("secp256r1"), bits(point), b"\x05\x00"),
        seq(seq(tlv(0x06, bytes.fromhex("2a864886f70d010101"))), bits(rsa_key)),  # no NULL
        seq(RSA_ALG, bits(rsa_key + b"\x00")),
        seq(RSA_ALG, bits(seq(integer(3), integer(3), integer(3)))),
        seq(RSA_ALG, bits(rsa_key)) + b"\x00",
    ]
    assert parse_public_key(seq(RSA_ALG, bits(rsa_key))) == RSAPublicKeyFields(
        65537 * 1000003, 65537
    )
    for der in bad:
        with pytest.raises(SourceError):
            parse_public_key(der)


# --- records and fuzzing ------------------------------------------------------------------------


def test_records_hide_private_numbers() -> None:
    rsa_key = _LEAVES["rsa-2048"].private_key
    ec_key = _LEAVES["ec-p256"].private_key
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    rsa_fields = parse_private_key(cryptography_der(rsa_key, "pkcs1"))
    ec_fields = parse_private_key(cryptography_der(ec_key, "sec1"))
    n, e, *secret = rsa_numbers(rsa_key)
    text = repr(rsa_fields)
    assert str(n) in text
    assert str(e) in text
    for value in secret:
        assert str(value) not in text
    assert str(ec_key.private_numbers().private_value) not in repr(ec_fields)
    with pytest.raises(AttributeError):
        ec_fields.curve = "secp384r1"
    fields = parse_certificate(_LEAVES["ec-p256"].cert_der())
    assert not hasattr(fields, "__dict__")
    with pytest.raises(AttributeError):
        fields.serial_number = 1


def _key_samples() -> list[bytes]:
    out = []
    for key_type in ("rsa-2048", "ec-p256", "ec-p521"):
        key = _LEAVES[key_type].private_key
        for fmt in _key_formats(key_type):
            out.append(cryptography_der(key, fmt))  # type: ignore[arg-type]
    out += [leaf.cert_der() for leaf in _LEAVES.values()]
    return out


_KEY_SAMPLES = _key_samples()


@settings(max_examples=1500, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(_KEY_SAMPLES) - 1),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(min_value=0),
    key_format=st.sampled_from([None, "pkcs8", "pkcs1", "sec1"]),
)
def test_mutated_keys_raise_only_source_error(
    index: int, edits: list[tuple[int, int]], cut: int, key_format: PrivateKeyFormat | None
) -> None:
    der = bytearray(_KEY_SAMPLES[index])
    for where, value in edits:
        der[where % len(der)] = value
    data = bytes(der[: len(der) - cut % 8])
    with contextlib.suppress(SourceError):
        parse_private_key(data, key_format)
    with contextlib.suppress(SourceError):
        parse_public_key(data)
    with contextlib.suppress(SourceError):
        parse_public_key(parse_certificate(data).spki)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_source_error_for_keys(data: bytes) -> None:
    with contextlib.suppress(SourceError):
        parse_private_key(data)
    with contextlib.suppress(SourceError):
        parse_public_key(data)
