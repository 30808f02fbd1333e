"""Signing keys and the fast key reader, differentially against cryptography's loaders.

The fast reader (rolesanywhere.x509.der + keys built from their numbers) must never accept a key
cryptography would not, nor read a different one: on any doubt it returns ``None`` and
cryptography's loader runs as before.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import RolesAnywhereError, UnsupportedKeyError
from rolesanywhere.testing.pki import (
    KEY_TYPES,
    PKI,
    UNSUPPORTED_KEY_TYPES,
    KeyFormat,
    generate_private_key,
)
from rolesanywhere.x509 import keyfiles, matching
from rolesanywhere.x509.der import (
    ECPublicKeyFields,
    RSAPrivateKeyFields,
    RSAPublicKeyFields,
    parse_public_key,
)
from rolesanywhere.x509.keyfiles import load_private_key
from rolesanywhere.x509.keys import (
    ALGORITHM_ECDSA,
    ALGORITHM_RSA,
    SigningKey,
    SoftwareSigningKey,
    private_key_from_fields,
    public_key_matches,
    rsa_numbers_consistent,
    verify_signature,
)
from rolesanywhere.x509.pem import pem_blocks
from tests.strategies import mutations
from tests.x509.test_der import (
    RSA_ALG,
    bits,
    ec_alg,
    integer,
    pkcs1,
    pkcs8,
    sec1,
    seq,
    tlv,
    uncompressed,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PLAIN_FORMATS = [f for f in KeyFormat if not f.encrypted]
_PKI = PKI(name="key tests")
_LEAVES = {kt: _PKI.leaf(kt) for kt in KEY_TYPES}
_LABELS = {"pkcs8": "PRIVATE KEY", "pkcs1": "RSA PRIVATE KEY", "sec1": "EC PRIVATE KEY"}
_EC_BITS = {"ec-p256": 256, "ec-p384": 384, "ec-p521": 521}
_CURVES: dict[str, ec.EllipticCurve] = {
    "ec-p256": ec.SECP256R1(),
    "ec-p384": ec.SECP384R1(),
    "ec-p521": ec.SECP521R1(),
}


def numbers(key: object) -> object:
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key.private_numbers()


def serialize(key: PrivateKey, fmt: KeyFormat) -> bytes:
    enc = serialization.Encoding.PEM if fmt.pem else serialization.Encoding.DER
    private_format = (
        serialization.PrivateFormat.PKCS8
        if fmt in (KeyFormat.PKCS8_PEM, KeyFormat.PKCS8_DER)
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(enc, private_format, serialization.NoEncryption())


def pem(label: str, der: bytes, newline: bytes = b"\n") -> bytes:
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return newline.join(
        [f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""]
    )


def fast(data: bytes) -> PrivateKey | None:
    """What the fast reader makes of a key file, as _parse_private_key would call it."""
    if b"-----BEGIN " not in data:
        return keyfiles._fast_der_key(data)
    blocks = pem_blocks(data)
    assert len(blocks) == 1
    return keyfiles._fast_pem_key(blocks[0])


def cryptography_load(data: bytes) -> object:
    if b"-----BEGIN " in data:
        block = pem_blocks(data)[0]
        return serialization.load_pem_private_key(block.text, None)
    return serialization.load_der_private_key(data, None)


@contextmanager
def fast_path_disabled() -> Iterator[None]:
    with (
        mock.patch.object(keyfiles, "_fast_der_key", return_value=None),
        mock.patch.object(keyfiles, "_fast_pem_key", return_value=None),
    ):
        yield


def outcome(data: bytes, password: bytes | None = None) -> tuple[object, object]:
    """("key", private numbers) or (error type, message) of ``load_private_key``."""
    try:
        key = load_private_key(data, password, source="key.pem")
    except RolesAnywhereError as exc:
        return type(exc), str(exc)
    assert isinstance(key, SoftwareSigningKey)
    return "key", numbers(key.private_key)


def same_as_without_fast_path(data: bytes, password: bytes | None = None) -> tuple[object, object]:
    with_fast = outcome(data, password)
    with fast_path_disabled():
        without = outcome(data, password)
    assert with_fast == without
    return with_fast


@contextmanager
def cryptography_loader_forbidden() -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cryptography's loader was used")

    with mock.patch.object(keyfiles, "_decrypt_key", refuse):
        yield


# --- every key type and plain format takes the fast path, with cryptography's numbers ---------


def _plain_cases(key_types: tuple[str, ...]) -> list[tuple[str, KeyFormat]]:
    return [(kt, fmt) for kt in key_types for fmt in PLAIN_FORMATS if fmt.applies_to(kt)]


@pytest.mark.parametrize(("key_type", "fmt"), _plain_cases(KEY_TYPES), ids=str)
def test_fast_reader_matches_cryptography(key_type: str, fmt: KeyFormat) -> None:
    leaf = _LEAVES[key_type]
    data = leaf.key_bytes(fmt)  # the project's PKI factory
    key = fast(data)
    assert key is not None
    assert numbers(key) == numbers(cryptography_load(data)) == numbers(leaf.private_key)
    with cryptography_loader_forbidden():
        signing_key = load_private_key(data, None, source="key")
    assert isinstance(signing_key, SoftwareSigningKey)
    assert numbers(signing_key.private_key) == numbers(leaf.private_key)
    expected = ALGORITHM_RSA if key_type.startswith("rsa-") else ALGORITHM_ECDSA
    assert signing_key.algorithm == expected
    signature = signing_key.sign(b"string to sign")
    assert verify_signature(leaf.certificate.public_key(), expected, b"string to sign", signature)


@st.composite
def plain_keys(draw: st.DrawFn) -> tuple[PrivateKey, KeyFormat, bytes]:
    key_type = draw(st.sampled_from(KEY_TYPES))
    key: PrivateKey
    if key_type in _EC_BITS:
        # Deterministic EC keys, small private values (leading zero bytes) included.
        top = 2 ** (_EC_BITS[key_type] - 1)  # below every curve's order
        d = draw(st.one_of(st.integers(1, 2**64), st.integers(1, top)))
        key = ec.derive_private_key(d, _CURVES[key_type])
    else:
        slot = draw(st.integers(0, 1)) if key_type == "rsa-2048" else 0
        generated = generate_private_key(key_type, slot=slot)
        assert isinstance(generated, rsa.RSAPrivateKey)
        key = generated
    fmt = draw(st.sampled_from([f for f in PLAIN_FORMATS if f.applies_to(key_type)]))
    data = serialize(key, fmt)
    if fmt.pem and draw(st.booleans()):
        data = data.replace(b"\n", b"\r\n")
    return key, fmt, data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=plain_keys())
def test_fast_reader_matches_cryptography_for_any_key(
    sample: tuple[PrivateKey, KeyFormat, bytes],
) -> None:
    key, _, data = sample
    read = fast(data)
    assert read is not None
    assert numbers(read) == numbers(cryptography_load(data)) == numbers(key)


# --- mutations: fall back, or exactly cryptography's key ----------------------------------------


def _samples() -> list[bytes]:
    out = []
    for key_type in ("rsa-2048", "ec-p256", "ec-p384", "ec-p521"):
        key = _LEAVES[key_type].private_key
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        for fmt in PLAIN_FORMATS:
            if fmt.applies_to(key_type):
                out.append(serialize(key, fmt))
    return out


_SAMPLES = _samples()


@st.composite
def mutated_keys(draw: st.DrawFn) -> bytes:
    data = draw(mutations(_SAMPLES, max_ops=3, max_insert=4, max_delete=8))
    if draw(st.booleans()) and b"-----BEGIN " not in data:
        # A mutated DER key under each PEM label: the label picks the format.
        data = pem(_LABELS[draw(st.sampled_from(sorted(_LABELS)))], data)
    return data


def _check_mutant(data: bytes) -> None:
    single_block = b"-----BEGIN " not in data or len(pem_blocks(data)) == 1
    if single_block:
        read = fast(data)  # never raises
        if read is not None:
            assert numbers(read) == numbers(cryptography_load(data))
    same_as_without_fast_path(data)


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_keys())
def test_mutated_keys_fall_back_or_match_cryptography(data: bytes) -> None:
    _check_mutant(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), label=st.sampled_from([None, *sorted(_LABELS)]))
def test_random_bytes_fall_back(data: bytes, label: str | None) -> None:
    _check_mutant(data if label is None else pem(_LABELS[label], data))


# --- structures cryptography reads but the fast reader leaves to it ------------------------------


def pkcs1_of(*numbers: int) -> bytes:
    """A version-0 PKCS#1 RSAPrivateKey of ``n, e, d, p, q, dmp1, dmq1, iqmp``, as given."""
    return seq(integer(0), *map(integer, numbers))


def _variants() -> dict[str, tuple[bytes, bool]]:
    """name -> (key file, whether the fast reader takes it)."""
    r = _LEAVES["rsa-2048"].private_key
    k = _LEAVES["ec-p256"].private_key
    assert isinstance(r, rsa.RSAPrivateKey)
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    point = uncompressed(k)
    other = generate_private_key("ec-p256")
    assert isinstance(other, ec.EllipticCurvePrivateKey)
    p256 = ec_alg("secp256r1")
    nums = r.private_numbers()
    public = nums.public_numbers
    good_pem = serialize(k, KeyFormat.PKCS8_PEM)
    body = good_pem.split(b"\n")[1:-2]
    return {
        "sec1 without public key": (sec1(k, point=b""), True),
        "pkcs8 with curve in both places": (pkcs8(p256, sec1(k)), True),
        "pem with CRLF": (pem("EC PRIVATE KEY", sec1(k), b"\r\n"), True),
        "pem with one long line": (
            b"-----BEGIN PRIVATE KEY-----\n"
            + base64.b64encode(pkcs8(RSA_ALG, pkcs1(r)))
            + b"\n-----END PRIVATE KEY-----\n",
            True,
        ),
        "sec1 with another key's point": (sec1(k, point=bits(uncompressed(other))), False),
        "sec1 compressed point": (
            sec1(k, point=bits(bytes((2 + (point[-1] & 1),)) + point[1:33])),
            False,
        ),
        "pkcs8 v2": (pkcs8(p256, sec1(k, params=b""), version=1), False),
        "pkcs8 attributes": (pkcs8(p256, sec1(k, params=b""), extra=tlv(0xA0, b"")), False),
        "pkcs8 rsa without NULL": (
            pkcs8(seq(tlv(0x06, bytes.fromhex("2a864886f70d010101"))), pkcs1(r)),
            False,
        ),
        "sec1 params conflict": (pkcs8(ec_alg("secp384r1"), sec1(k)), False),
        "sec1 d = 0": (sec1(k, point=b"", private=bytes(32)), False),
        "sec1 d = 2^256 - 1": (sec1(k, point=b"", private=b"\xff" * 32), False),
        "rsa wrong iqmp": (
            pkcs1_of(
                public.n, public.e, nums.d, nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp + 1
            ),
            False,
        ),
        "rsa p and q swapped": (
            pkcs1_of(public.n, public.e, nums.d, nums.q, nums.p, nums.dmq1, nums.dmp1, nums.iqmp),
            False,
        ),
        "pem with trailing spaces": (good_pem.replace(b"\n", b" \n", 2), False),
        "pem with a header": (
            good_pem.replace(b"-----\n", b"-----\nComment: x\n\n", 1),
            False,
        ),
        "pem with non-canonical base64": (
            pem_last_char_changed(pem("EC PRIVATE KEY", sec1(k))),  # 121 bytes: "==" padding
            False,
        ),
        "pem with a blank line": (
            b"\n".join([b"-----BEGIN PRIVATE KEY-----", body[0], b"", *body[1:]])
            + b"\n-----END PRIVATE KEY-----\n",
            False,
        ),
        "pkcs8 ed25519": (serialize_any(generate_private_key("ed25519")), False),
        "sec1 p-224": (serialize_any(generate_private_key("ec-p224")), False),
    }


def serialize_any(key: object) -> bytes:
    assert hasattr(key, "private_bytes")
    data = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert isinstance(data, bytes)
    return data


def pem_last_char_changed(data: bytes) -> bytes:
    """The same PEM with its last base64 character carrying non-zero padding bits."""
    lines = data.split(b"\n")
    last = lines[-3]
    assert last.endswith(b"=")
    stem = last.rstrip(b"=")
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = alphabet.index(stem[-1:])
    stem = stem[:-1] + alphabet[value | 1 : (value | 1) + 1]
    lines[-3] = stem + b"=" * (len(last) - len(stem))
    return b"\n".join(lines)


@pytest.mark.parametrize("name", list(_variants()))
def test_variants(name: str) -> None:
    data, taken = _variants()[name]
    assert (fast(data) is not None) is taken
    same_as_without_fast_path(data)


def _rsa_fields(**changes: int) -> RSAPrivateKeyFields:
    numbers = _RSA_KEY.private_numbers()
    values = {
        "n": numbers.public_numbers.n, "e": numbers.public_numbers.e, "d": numbers.d,
        "p": numbers.p, "q": numbers.q, "dmp1": numbers.dmp1, "dmq1": numbers.dmq1,
        "iqmp": numbers.iqmp,
    }  # fmt: skip
    values.update(changes)
    return RSAPrivateKeyFields(**values)


_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_rsa_numbers_of_a_real_key_are_consistent() -> None:
    fields = _rsa_fields()
    assert rsa_numbers_consistent(fields)
    key = private_key_from_fields(fields)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.private_numbers() == _RSA_KEY.private_numbers()
    signing = SoftwareSigningKey.from_private_key(key)
    verify_signature(key.public_key(), b"data", signing.sign(b"data"), signing.algorithm)


def _broken_rsa_numbers() -> dict[str, dict[str, int]]:
    numbers = _RSA_KEY.private_numbers()
    p, q, d = numbers.p, numbers.q, numbers.d
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    return {
        "n is not p*q": {"n": n + 2},
        "p and q equal": {"q": p, "n": p * p},
        "p is 1": {"p": 1},
        "e even": {"e": e + 1},
        "e is 1": {"e": 1},
        "d off by one": {"d": d + 1},
        "d is 0": {"d": 0},
        "dmp1 wrong": {"dmp1": numbers.dmp1 + 1},
        "dmq1 wrong": {"dmq1": numbers.dmq1 - 1},
        "iqmp wrong": {"iqmp": numbers.iqmp + 1},
        "iqmp unreduced": {"iqmp": numbers.iqmp + p},
        "p and q swapped": {"p": q, "q": p},
    }


@pytest.mark.parametrize("name", list(_broken_rsa_numbers()))
def test_inconsistent_rsa_numbers_are_left_to_cryptography(name: str) -> None:
    fields = _rsa_fields(**_broken_rsa_numbers()[name])
    assert not rsa_numbers_consistent(fields)
    assert private_key_from_fields(fields) is None


@pytest.mark.parametrize(("key_type", "fmt"), _plain_cases(UNSUPPORTED_KEY_TYPES), ids=str)
def test_unsupported_keys_give_the_same_error(key_type: str, fmt: KeyFormat) -> None:
    key = generate_private_key(key_type)
    data = _PKI.leaf(private_key=key).key_bytes(fmt)
    assert (fast(data) is not None) is (key_type == "rsa-1024")  # a valid key, refused later
    kind, message = same_as_without_fast_path(data)
    assert kind is UnsupportedKeyError
    assert isinstance(message, str)
    assert message.startswith("private key key.pem: ")


# --- matching a certificate's public key --------------------------------------------------------


def _public_spki(key: object) -> bytes:
    assert hasattr(key, "public_key")
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert isinstance(spki, bytes)
    return spki


def test_public_key_matches_only_its_own_key() -> None:
    keys = {kt: leaf.private_key for kt, leaf in _LEAVES.items()}
    keys["ec-p256-other"] = generate_private_key("ec-p256")
    keys["rsa-2048-other"] = generate_private_key("rsa-2048", slot=1)
    for name, key in keys.items():
        fields = parse_public_key(_public_spki(key))
        for other_name, other in keys.items():
            assert public_key_matches(fields, other.public_key()) is (name == other_name)
        signing: SigningKey = SoftwareSigningKey.from_private_key(key)
        assert matching.fast_match(_public_spki(key), signing)
    rsa_public = keys["rsa-2048"].public_key()
    assert isinstance(rsa_public, rsa.RSAPublicKey)
    n, e = rsa_public.public_numbers().n, rsa_public.public_numbers().e
    assert public_key_matches(RSAPublicKeyFields(n, e), rsa_public)
    assert not public_key_matches(RSAPublicKeyFields(n, e + 2), rsa_public)
    assert not public_key_matches(RSAPublicKeyFields(n + 2, e), rsa_public)
    ec_key = keys["ec-p256"]
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    point = uncompressed(ec_key)
    assert public_key_matches(ECPublicKeyFields("secp256r1", point), ec_key.public_key())
    assert not public_key_matches(ECPublicKeyFields("secp384r1", point), ec_key.public_key())
    other_point = point[:-1] + bytes((point[-1] ^ 1,))
    assert not public_key_matches(ECPublicKeyFields("secp256r1", other_point), ec_key.public_key())


@settings(max_examples=800, deadline=None)
@given(
    name=st.sampled_from(["rsa-2048", "ec-p256", "ec-p384", "ec-p521"]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        max_size=3,
    ),
    cut=st.integers(0, 3),
)
def test_fast_match_implies_identical_spki(
    name: str, edits: list[tuple[int, int]], cut: int
) -> None:
    """The old check compared SPKI bytes with cryptography's encoding of the key: the new one
    accepts exactly that."""
    key = SoftwareSigningKey.from_private_key(_LEAVES[name].private_key)
    spki = bytearray(_public_spki(key.private_key))
    for where, value in edits:
        spki[where % len(spki)] = value
    data = bytes(spki[: len(spki) - cut])
    assert matching.fast_match(data, key) is (data == _public_spki(key.private_key))


def test_fast_match_refuses_other_signing_keys() -> None:
    class Hardware:
        algorithm = ALGORITHM_ECDSA

        def __init__(self, public: object) -> None:
            self._public = public

        def sign(self, data: bytes) -> bytes:
            raise NotImplementedError

        def public_key(self) -> object:
            return self._public

    ed = generate_private_key("ed25519")
    spki = _public_spki(ed)
    assert not matching.fast_match(spki, Hardware(ed.public_key()))  # type: ignore[arg-type]
    p256 = _LEAVES["ec-p256"].private_key
    assert matching.fast_match(
        _public_spki(p256),
        Hardware(p256.public_key()),  # type: ignore[arg-type]
    )


# --- building keys from numbers ----------------------------------------------------------------


def test_private_key_from_fields_checks_the_embedded_point() -> None:
    from rolesanywhere.x509.der import ECPrivateKeyFields, RSAPrivateKeyFields

    k = _LEAVES["ec-p384"].private_key
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    d = k.private_numbers().private_value
    built = private_key_from_fields(ECPrivateKeyFields("secp384r1", d, uncompressed(k)))
    assert built is not None
    assert numbers(built) == numbers(k)
    assert private_key_from_fields(ECPrivateKeyFields("secp384r1", d + 1, uncompressed(k))) is None
    assert private_key_from_fields(ECPrivateKeyFields("secp384r1", 0, None)) is None
    assert private_key_from_fields(ECPrivateKeyFields("secp256k1", d, None)) is None
    r = _LEAVES["rsa-2048"].private_key
    assert isinstance(r, rsa.RSAPrivateKey)
    n = r.private_numbers()
    pub = n.public_numbers
    fields = RSAPrivateKeyFields(pub.n, pub.e, n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp)
    built_rsa = private_key_from_fields(fields)
    assert built_rsa is not None
    assert numbers(built_rsa) == n
    wrong = RSAPrivateKeyFields(pub.n + 2, pub.e, n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp)
    assert private_key_from_fields(wrong) is None


# --- SoftwareSigningKey as a record ---------------------------------------------------------------


def test_software_signing_key_record() -> None:
    key = _LEAVES["ec-p256"].private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signing = SoftwareSigningKey(private_key=key, algorithm=ALGORITHM_ECDSA)
    assert not dataclasses.is_dataclass(signing)
    assert not hasattr(signing, "__dict__")
    assert signing == SoftwareSigningKey.from_private_key(key)
    assert hash(signing) == hash(SoftwareSigningKey.from_private_key(key))
    assert signing != SoftwareSigningKey.from_private_key(generate_private_key("ec-p256"))
    assert signing.private_key is key
    assert signing.algorithm == ALGORITHM_ECDSA
    text = repr(signing)
    assert text == f"SoftwareSigningKey(algorithm={ALGORITHM_ECDSA!r}, private_key=<redacted>)"
    assert str(key.private_numbers().private_value) not in text
    with pytest.raises(AttributeError, match="read-only"):
        signing.algorithm = ALGORITHM_RSA
    with pytest.raises(AttributeError, match="read-only"):
        del signing.private_key
    with pytest.raises(TypeError):
        SoftwareSigningKey(key)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        pickle.dumps(signing)  # the cryptography key refuses, as it did before


def test_signing_keys_sign_and_verify() -> None:
    for key_type, leaf in _LEAVES.items():
        signing = SoftwareSigningKey.from_private_key(leaf.private_key)
        public = leaf.certificate.public_key()
        signature = signing.sign(b"data")
        assert verify_signature(public, signing.algorithm, b"data", signature), key_type
        assert not verify_signature(public, signing.algorithm, b"other", signature)
        other = ALGORITHM_ECDSA if signing.algorithm == ALGORITHM_RSA else ALGORITHM_RSA
        assert not verify_signature(public, other, b"data", signature)


def test_ecdsa_signatures_verify_with_cryptographys_own_ecdsa() -> None:
    # Our ECDSA-SHA256 object skips ECDSA.__init__: its signatures must be plain ECDSA over
    # SHA-256, randomised (not RFC 6979), as cryptography's standard object verifies them.
    from cryptography.hazmat.primitives import hashes

    for key_type, leaf in _LEAVES.items():
        if not key_type.startswith("ec"):
            continue
        signing = SoftwareSigningKey.from_private_key(leaf.private_key)
        first, second = signing.sign(b"data"), signing.sign(b"data")
        assert first != second, key_type
        for signature in (first, second):
            public = leaf.certificate.public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, b"data", ec.ECDSA(hashes.SHA256()))


def _encrypted_rsa(**changes: int) -> bytes:
    """An encrypted PKCS#8 PEM of _RSA_KEY's numbers with ``changes`` (possibly inconsistent)."""
    fields = _rsa_fields(**changes)
    der = pkcs1_of(*(getattr(fields, f) for f in RSAPrivateKeyFields._fields))
    loose = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    return loose.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )


def test_encrypted_rsa_keys_are_checked_as_the_fast_path_checks() -> None:
    key = load_private_key(_encrypted_rsa(), b"pw", source="key.pem")
    assert isinstance(key, SoftwareSigningKey)
    assert key.private_key.private_numbers() == _RSA_KEY.private_numbers()
    # Inconsistent numbers: refused exactly as cryptography's own full check refuses them.
    bad = _encrypted_rsa(iqmp=_RSA_KEY.private_numbers().iqmp + 1)
    with pytest.raises(RolesAnywhereError) as caught:
        load_private_key(bad, b"pw", source="key.pem")
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(bad, b"pw")
    assert "key.pem" in str(caught.value)
