"""The DER reader against cryptography's parser: same serial, dates and SPKI; only SourceError."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.der import parse_certificate
from rolesanywhere.errors import SourceError
from rolesanywhere.testing.pki import KEY_TYPES, PKI

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
    end = min(start + timedelta(days=length), datetime(9999, 12, 31, tzinfo=UTC))
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
