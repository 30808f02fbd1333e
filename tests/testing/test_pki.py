"""The test PKI factory, checked with cryptography's own loaders and path validator."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store

from rolesanywhere.testing.pki import (
    KEY_TYPES,
    MLDSA_KEY_TYPES,
    PKI,
    UNSUPPORTED_KEY_TYPES,
    IssuedCert,
    KeyFormat,
    generate_private_key,
    openssl_available,
)

needs_openssl = pytest.mark.skipif(not openssl_available(), reason="openssl CLI not on PATH")
PASSWORD = b"correct horse"


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


def client_verifier(pki: PKI) -> object:
    # Roles Anywhere leaves carry no SAN, so relax only the end-entity extension policy.
    return (
        PolicyBuilder()
        .store(Store([pki.root.certificate]))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )


def load_key(data: bytes, fmt: KeyFormat, password: bytes | None) -> object:
    loader = serialization.load_pem_private_key if fmt.pem else serialization.load_der_private_key
    return loader(data, password)


def same_key(a: object, b: object) -> bool:
    def spki(k: object) -> bytes:
        return k.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    return spki(a) == spki(b)


# --- certificates -----------------------------------------------------------------------------


def test_ca_certificates_have_ca_extensions(pki: PKI) -> None:
    for ca in (pki.root, pki.intermediate):
        ext = ca.certificate.extensions
        assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is True
        usage = ext.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign
        assert usage.crl_sign
        assert not usage.digital_signature
    assert pki.root.certificate.subject == pki.root.certificate.issuer
    assert pki.intermediate.certificate.issuer == pki.root.certificate.subject
    ski = pki.root.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = pki.intermediate.certificate.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    )
    assert aki.value.key_identifier == ski.value.digest


def test_leaf_is_a_client_certificate(pki: PKI) -> None:
    leaf = pki.leaf()
    ext = leaf.certificate.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = pki.intermediate.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki == ski.value.digest
    leaf.certificate.verify_directly_issued_by(pki.intermediate.certificate)
    assert leaf.chain == (pki.intermediate.certificate,)
    assert leaf.certificate.subject.rfc4514_string().startswith("CN=client")


def test_chains_validate_with_cryptography(pki: PKI) -> None:
    verifier = client_verifier(pki)
    chain = verifier.verify(pki.leaf().certificate, [pki.intermediate.certificate])  # type: ignore[attr-defined]
    assert [c.subject for c in chain.chain] == [
        pki.leaf().certificate.subject,
        pki.intermediate.certificate.subject,
        pki.root.certificate.subject,
    ]
    root_issued = pki.leaf(issuer="root")
    assert root_issued.chain == ()
    verifier.verify(root_issued.certificate, [])  # type: ignore[attr-defined]


def test_untrusted_leaf_does_not_chain_to_the_root(pki: PKI) -> None:
    untrusted = pki.untrusted_leaf()
    assert untrusted.certificate.issuer != pki.intermediate.certificate.subject
    with pytest.raises(x509.verification.VerificationError):
        client_verifier(pki).verify(  # type: ignore[attr-defined]
            untrusted.certificate, [pki.intermediate.certificate]
        )
    # Same foreign CA every time.
    assert pki.untrusted_leaf().certificate.issuer == untrusted.certificate.issuer


def test_serials_are_random_64_to_159_bits(pki: PKI) -> None:
    serials = {pki.leaf().serial_number for _ in range(30)}
    assert len(serials) == 30
    assert all(64 <= s.bit_length() <= 159 for s in serials)
    assert pki.leaf(serial=12345).serial_number == 12345


def test_validity_windows(pki: PKI) -> None:
    now = datetime.now(UTC)
    leaf = pki.leaf()
    assert leaf.certificate.not_valid_before_utc < now < leaf.certificate.not_valid_after_utc
    expired = pki.expired_leaf(days_ago=3)
    assert expired.certificate.not_valid_after_utc < now - timedelta(days=2)
    future = pki.not_yet_valid_leaf(days_ahead=2)
    assert future.certificate.not_valid_before_utc > now + timedelta(days=1)
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    fixed = pki.leaf(not_before=start, not_after=start + timedelta(days=1))
    assert fixed.certificate.not_valid_before_utc == start


def test_server_cert_for_loopback(pki: PKI) -> None:
    server = pki.server_cert()
    san = server.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    verifier = (
        PolicyBuilder()
        .store(Store([pki.root.certificate]))
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    )
    verifier.verify(server.certificate, [])


@pytest.mark.parametrize("key_type", KEY_TYPES + UNSUPPORTED_KEY_TYPES)
def test_key_types(pki: PKI, key_type: str) -> None:
    leaf = pki.leaf(key_type)
    key = leaf.private_key
    if key_type.startswith("rsa-"):
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == int(key_type.split("-")[1])
    elif key_type == "ed25519":
        assert isinstance(key, ed25519.Ed25519PrivateKey)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert same_key(key, leaf.certificate)  # cert public key is the leaf key


def test_ca_key_type_and_signature_hash() -> None:
    rsa_pki = PKI(key_type="rsa-2048")
    assert isinstance(rsa_pki.root.private_key, rsa.RSAPrivateKey)
    leaf = rsa_pki.leaf(signature_hash="sha384")
    assert leaf.certificate.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA384
    leaf.certificate.verify_directly_issued_by(rsa_pki.intermediate.certificate)


def test_key_cache() -> None:
    assert generate_private_key("rsa-2048") is generate_private_key("rsa-2048", slot=0)
    assert not same_key(generate_private_key("rsa-2048"), generate_private_key("rsa-2048", slot=1))
    assert generate_private_key("ec-p256", slot=7) is generate_private_key("ec-p256", slot=7)
    assert not same_key(generate_private_key("ec-p256"), generate_private_key("ec-p256"))
    with pytest.raises(ValueError, match="unknown key type"):
        generate_private_key("dsa-1024")


# --- key formats ------------------------------------------------------------------------------


def test_format_applicability() -> None:
    assert KeyFormat.PKCS1_PEM.applies_to("rsa-2048")
    assert not KeyFormat.PKCS1_PEM.applies_to("ec-p256")
    assert KeyFormat.SEC1_DER.applies_to("ec-p384")
    assert not KeyFormat.SEC1_DER.applies_to("rsa-4096")
    assert not KeyFormat.TRADITIONAL_ENCRYPTED_PEM.applies_to("ed25519")
    assert KeyFormat.PKCS8_SCRYPT_PEM.needs_openssl
    assert not KeyFormat.PKCS8_ENCRYPTED_DER.needs_openssl
    assert KeyFormat.PKCS8_ENCRYPTED_DER.encrypted
    assert not KeyFormat.PKCS8_ENCRYPTED_DER.pem
    assert not KeyFormat.SEC1_PEM.encrypted
    plain = KeyFormat.for_key_type("ec-p256", include_openssl=False)
    assert KeyFormat.SEC1_PEM in plain
    assert KeyFormat.PKCS1_PEM not in plain
    assert not any(f.needs_openssl for f in plain)


@pytest.mark.parametrize(
    ("key_type", "fmt"),
    [(k, f) for k in ("rsa-2048", "ec-p256", "ec-p521") for f in KeyFormat if f.applies_to(k)],
    ids=str,
)
def test_every_format_round_trips(pki: PKI, key_type: str, fmt: KeyFormat) -> None:
    if fmt.needs_openssl and not openssl_available():
        pytest.skip("openssl CLI not on PATH")
    leaf = pki.leaf(key_type)
    password = PASSWORD if fmt.encrypted else None
    data = leaf.key_bytes(fmt, password)
    assert data.startswith(b"-----BEGIN ") == fmt.pem
    assert same_key(load_key(data, fmt, password), leaf.private_key)
    if fmt.encrypted:
        with pytest.raises((TypeError, ValueError)):
            load_key(data, fmt, None)


def test_format_markers(pki: PKI) -> None:
    rsa_leaf, ec_leaf = pki.leaf("rsa-2048"), pki.leaf("ec-p256")
    assert rsa_leaf.key_bytes(KeyFormat.PKCS1_PEM).startswith(b"-----BEGIN RSA PRIVATE KEY")
    assert ec_leaf.key_bytes(KeyFormat.SEC1_PEM).startswith(b"-----BEGIN EC PRIVATE KEY")
    assert ec_leaf.key_bytes(KeyFormat.PKCS8_PEM).startswith(b"-----BEGIN PRIVATE KEY")
    enc = ec_leaf.key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM, PASSWORD)
    assert enc.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    legacy = rsa_leaf.key_bytes(KeyFormat.TRADITIONAL_ENCRYPTED_PEM, PASSWORD)
    assert b"Proc-Type: 4,ENCRYPTED" in legacy


def test_format_misuse_is_refused(pki: PKI) -> None:
    ec_leaf = pki.leaf("ec-p256")
    with pytest.raises(ValueError, match="RSA keys only"):
        ec_leaf.key_bytes(KeyFormat.PKCS1_PEM)
    with pytest.raises(ValueError, match="EC keys only"):
        pki.leaf("rsa-2048").key_bytes(KeyFormat.SEC1_DER)
    with pytest.raises(ValueError, match="needs a non-empty password"):
        ec_leaf.key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM)
    with pytest.raises(ValueError, match="not encrypted"):
        ec_leaf.key_bytes(KeyFormat.PKCS8_PEM, PASSWORD)


# --- PKCS#12, combined PEM, files --------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("password", [None, PASSWORD])
def test_pkcs12(pki: PKI, legacy: bool, password: bytes | None) -> None:
    leaf = pki.leaf("rsa-2048")
    chain = [pki.intermediate.certificate, pki.root.certificate]
    data = leaf.pkcs12(password, legacy=legacy, chain=chain)
    loaded = pkcs12.load_pkcs12(data, password)
    assert loaded.cert is not None
    assert loaded.cert.certificate == leaf.certificate
    assert same_key(loaded.key, leaf.private_key)
    assert [c.certificate for c in loaded.additional_certs] == chain
    if password is not None:
        with pytest.raises(ValueError, match="password"):
            pkcs12.load_pkcs12(data, b"wrong")


@needs_openssl
@pytest.mark.parametrize("legacy", [False, True])
def test_openssl_pkcs12(pki: PKI, legacy: bool) -> None:
    leaf = pki.leaf("ec-p384")
    data = leaf.openssl_pkcs12(PASSWORD, legacy=legacy, chain=[pki.intermediate.certificate])
    loaded = pkcs12.load_pkcs12(data, PASSWORD)
    assert loaded.cert is not None
    assert loaded.cert.certificate == leaf.certificate
    assert [c.certificate for c in loaded.additional_certs] == [pki.intermediate.certificate]


def test_pem_helpers(pki: PKI) -> None:
    leaf = pki.leaf()
    assert x509.load_pem_x509_certificate(leaf.cert_pem()) == leaf.certificate
    assert x509.load_der_x509_certificate(leaf.cert_der()) == leaf.certificate
    assert x509.load_pem_x509_certificates(leaf.chain_pem()) == [pki.intermediate.certificate]
    assert pki.trust_anchor_pem() == pki.root.cert_pem()
    assert IssuedCert(leaf.certificate, leaf.private_key).chain_pem() == b""
    both = leaf.combined_pem(key_first=True, with_chain=True)
    assert both.index(b"PRIVATE KEY") < both.index(b"CERTIFICATE")
    assert x509.load_pem_x509_certificates(both) == [leaf.certificate, pki.intermediate.certificate]
    assert "private_key" not in repr(leaf)


def test_write(pki: PKI, tmp_path: Path) -> None:
    leaf = pki.leaf("ec-p256")
    cert_path, key_path = leaf.write(
        tmp_path / "sub", "alice", key_format=KeyFormat.PKCS8_ENCRYPTED_DER, password=PASSWORD
    )
    assert cert_path == tmp_path / "sub" / "alice.crt"
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == leaf.certificate
    key = serialization.load_der_private_key(key_path.read_bytes(), PASSWORD)
    assert same_key(key, leaf.private_key)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_write_refuses_a_format_the_key_cannot_take_before_writing(
    pki: PKI, tmp_path: Path
) -> None:
    rsa_leaf = pki.leaf("rsa-2048")
    with pytest.raises(ValueError, match="EC keys only"):
        rsa_leaf.write(tmp_path / "out", "client", key_format=KeyFormat.SEC1_PEM)
    assert not (tmp_path / "out").exists()  # no certificate left without its key
    cert, key = rsa_leaf.write(tmp_path / "out", "client", key_format=KeyFormat.PKCS1_PEM)
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY")
    assert cert.read_bytes() == rsa_leaf.cert_pem()


# --- ML-DSA -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", MLDSA_KEY_TYPES)
def test_mldsa_leaves_in_the_formats_cryptography_writes(pki: PKI, key_type: str) -> None:
    from rolesanywhere.x509.keyfiles import load_private_key

    leaf = pki.leaf(key_type)
    assert (
        type(leaf.certificate.public_key()).__name__ == type(leaf.private_key.public_key()).__name__
    )
    formats = KeyFormat.for_key_type(key_type)
    assert set(formats) == {
        KeyFormat.PKCS8_PEM,
        KeyFormat.PKCS8_DER,
        KeyFormat.PKCS8_ENCRYPTED_PEM,
        KeyFormat.PKCS8_ENCRYPTED_DER,
    }
    for fmt in formats:
        password = PASSWORD if fmt.encrypted else None
        key = load_private_key(leaf.key_bytes(fmt, password), password, source="k")
        assert key.public_key() == leaf.private_key.public_key()
    with pytest.raises(ValueError, match="ML-DSA"):
        leaf.pkcs12(PASSWORD)
