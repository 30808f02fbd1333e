"""Loading identities: every key format, PKCS#12, combined files, errors, caching, fuzzing."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import (
    CertificateValidityError,
    IdentityError,
    KeyMismatchError,
    PasswordRequiredError,
    RolesAnywhereError,
    SourceError,
    UnsupportedKeyError,
    WrongPasswordError,
)
from rolesanywhere.testing.pki import (
    KEY_TYPES,
    PKI,
    IssuedCert,
    KeyFormat,
    generate_private_key,
    openssl_available,
)
from rolesanywhere.x509 import identity as identity_module
from rolesanywhere.x509 import sources
from rolesanywhere.x509.certificates import load_certificate, load_certificates
from rolesanywhere.x509.identity import Identity
from rolesanywhere.x509.keyfiles import load_private_key
from rolesanywhere.x509.keys import (
    ALGORITHM_ECDSA,
    ALGORITHM_RSA,
    SoftwareSigningKey,
    verify_signature,
)
from rolesanywhere.x509.loader import IdentityLoader
from rolesanywhere.x509.pkcs12 import load_pkcs12
from tests.conformance import X509, require, x509_cases
from tests.strategies import mutations

PASSWORD = b"s3cret-Passw0rd"
STR_PASSWORD = "pässwörd-ünïcode"


@cache
def shared_pki() -> PKI:
    return PKI()


@cache
def leaf_for(key_type: str) -> IssuedCert:
    return shared_pki().leaf(key_type)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return shared_pki()


def secrets_of(leaf: IssuedCert, *passwords: bytes | str | None) -> list[str]:
    """Strings that must never show up in a message."""
    der = leaf.key_bytes(KeyFormat.PKCS8_DER)
    b64, hexed = base64.b64encode(der).decode(), der.hex()
    out = [b64[i : i + 24] for i in range(0, len(b64) - 23, 24)]
    out += [hexed[i : i + 24] for i in range(0, len(hexed) - 23, 24)]
    for pw in passwords:
        if pw:
            out.append(pw.decode() if isinstance(pw, bytes) else pw)
    return out


def check_message(exc: BaseException, *, names: str, secrets: list[str]) -> str:
    """One line, names the source, holds no secret, no key markers."""
    text = str(exc)
    assert text
    assert "\n" not in text
    assert names in text, f"{names!r} not in {text!r}"
    assert "PRIVATE KEY-----" not in text
    for secret in secrets:
        assert secret not in text, f"secret {secret!r} leaked into {text!r}"
    return text


def check_identity(ident: Identity, leaf: IssuedCert) -> None:
    assert ident.certificate == leaf.certificate
    assert ident.serial_number == leaf.serial_number
    is_rsa = isinstance(leaf.private_key, rsa.RSAPrivateKey)
    expected = ALGORITHM_RSA if is_rsa else ALGORITHM_ECDSA
    assert ident.algorithm == expected
    signature = ident.signing_key.sign(b"string to sign")
    assert verify_signature(
        leaf.certificate.public_key(), ident.algorithm, b"string to sign", signature
    )


# --- every key format x every key type ------------------------------------------------------


# Loading an RSA-4096 key costs ~0.4 s (cryptography checks the key), so the big RSA sizes get a
# representative subset; RSA-2048 and every EC curve get every format.
_BIG_RSA_FORMATS = {
    "rsa-3072": {
        KeyFormat.PKCS1_PEM,
        KeyFormat.PKCS8_DER,
        KeyFormat.PKCS8_ENCRYPTED_PEM,
        KeyFormat.PKCS8_SCRYPT_PEM,
    },
    "rsa-4096": {
        KeyFormat.PKCS1_DER,
        KeyFormat.PKCS8_PEM,
        KeyFormat.PKCS8_ENCRYPTED_DER,
        KeyFormat.TRADITIONAL_ENCRYPTED_PEM,
    },
}


def _format_cases() -> list[tuple[str, KeyFormat]]:
    return [
        (key_type, fmt)
        for key_type in KEY_TYPES
        for fmt in KeyFormat
        if fmt.applies_to(key_type) and fmt in _BIG_RSA_FORMATS.get(key_type, set(KeyFormat))
    ]


@pytest.mark.parametrize(("key_type", "fmt"), _format_cases(), ids=str)
def test_key_format_loads(tmp_path: Path, key_type: str, fmt: KeyFormat) -> None:
    if fmt.needs_openssl and not openssl_available():
        pytest.skip("openssl CLI not on PATH")
    leaf = leaf_for(key_type)
    password = PASSWORD if fmt.encrypted else None
    cert_path, key_path = leaf.write(tmp_path, "id", key_format=fmt, password=password)
    ident = Identity.load(cert_path, key_path, password=password)
    check_identity(ident, leaf)
    assert ident.source == str(cert_path)
    # DER certificate, key as bytes, password as str.
    ident = Identity.load(
        leaf.cert_der(),
        leaf.key_bytes(fmt, password),
        password=password.decode() if password else None,
    )
    check_identity(ident, leaf)
    if fmt.encrypted:
        secrets = secrets_of(leaf, PASSWORD, "wrong-one")
        with pytest.raises(PasswordRequiredError) as info:
            Identity.load(cert_path, key_path)
        text = check_message(info.value, names=str(key_path), secrets=secrets)
        assert text.endswith("is encrypted: pass its password (password)")
        assert "(PASSWORD)" in info.value.naming(str.upper)  # the CLI shows its flag there
        with pytest.raises(WrongPasswordError) as wrong:
            Identity.load(cert_path, key_path, password="wrong-one")
        text = check_message(wrong.value, names=str(key_path), secrets=secrets)
        assert text.startswith(f"wrong password for private key {key_path}")


def test_unicode_password(pki: PKI) -> None:
    leaf = leaf_for("ec-p384")
    data = leaf.key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM, STR_PASSWORD.encode())
    ident = Identity.load(leaf.cert_pem(), data, password=STR_PASSWORD)
    check_identity(ident, leaf)


def test_password_for_unencrypted_key_is_ignored() -> None:
    leaf = leaf_for("ec-p256")
    ident = Identity.load(leaf.cert_pem(), leaf.key_bytes(KeyFormat.SEC1_DER), password=PASSWORD)
    check_identity(ident, leaf)


# --- PKCS#12 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256", "ec-p521"])
@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
@pytest.mark.parametrize("password", [None, PASSWORD], ids=["nopass", "pass"])
def test_pkcs12(
    tmp_path: Path, pki: PKI, key_type: str, legacy: bool, password: bytes | None
) -> None:
    leaf = leaf_for(key_type)
    chain = [pki.intermediate.certificate, pki.root.certificate]
    path = tmp_path / "identity.bin"  # detected by content, not by extension
    path.write_bytes(leaf.pkcs12(password, legacy=legacy, chain=chain))
    ident = Identity.load(path, password=password)
    check_identity(ident, leaf)
    assert ident.chain == tuple(chain)
    assert ident.source == str(path)
    # Explicit intermediates win over the PKCS#12's extra certificates.
    bundle = tmp_path / "chain.pem"
    bundle.write_bytes(pki.intermediate.cert_pem())
    ident = Identity.load(path, intermediates=bundle, password=password)
    assert ident.chain == (pki.intermediate.certificate,)
    if password is not None:
        secrets = secrets_of(leaf, PASSWORD, b"nope")
        with pytest.raises(PasswordRequiredError) as info:
            Identity.load(path)
        check_message(info.value, names=str(path), secrets=secrets)
        with pytest.raises(WrongPasswordError) as wrong:
            Identity.load(path, password=b"nope")
        check_message(wrong.value, names=str(path), secrets=secrets)


@pytest.mark.skipif(not openssl_available(), reason="openssl CLI not on PATH")
@pytest.mark.parametrize("legacy", [False, True], ids=["openssl3-default", "openssl-legacy-rc2"])
def test_openssl_pkcs12(pki: PKI, legacy: bool) -> None:
    leaf = leaf_for("rsa-2048")
    data = leaf.openssl_pkcs12(PASSWORD, legacy=legacy, chain=[pki.intermediate.certificate])
    ident = Identity.load(data, password=PASSWORD)
    check_identity(ident, leaf)
    assert ident.chain == (pki.intermediate.certificate,)


@pytest.mark.skipif(not openssl_available(), reason="openssl CLI not on PATH")
def test_pkcs12_with_empty_password_loads_without_one() -> None:
    leaf = leaf_for("ec-p256")
    check_identity(Identity.load(leaf.openssl_pkcs12(b"")), leaf)


def test_load_pkcs12_function() -> None:
    leaf = leaf_for("ec-p256")
    cert, key, others = load_pkcs12(leaf.pkcs12(PASSWORD), PASSWORD.decode(), source="x.p12")
    assert cert == leaf.certificate
    assert key.algorithm == ALGORITHM_ECDSA
    assert others == []


def test_pkcs12_as_private_key_is_explained(tmp_path: Path) -> None:
    leaf = leaf_for("ec-p256")
    with pytest.raises(SourceError) as info:
        Identity.load(leaf.cert_pem(), leaf.pkcs12(None))
    assert "is a PKCS#12 file: pass it as the certificate" in check_message(
        info.value, names="<bytes>", secrets=secrets_of(leaf)
    )


def test_pkcs12_unsupported_key(pki: PKI) -> None:
    leaf = pki.leaf("ed25519")
    with pytest.raises(UnsupportedKeyError) as info:
        Identity.load(leaf.pkcs12(None))
    check_message(info.value, names="<bytes>", secrets=secrets_of(leaf))


# --- combined files, bundles and chains ---------------------------------------------------------


@pytest.mark.parametrize("key_first", [False, True])
def test_combined_pem(tmp_path: Path, pki: PKI, key_first: bool) -> None:
    leaf = leaf_for("ec-p256")
    path = tmp_path / "both.pem"
    path.write_bytes(b"Bag Attributes\n" + leaf.combined_pem(key_first=key_first, with_chain=True))
    ident = Identity.load(path)
    check_identity(ident, leaf)
    assert ident.chain == (pki.intermediate.certificate,)


def test_combined_pem_with_encrypted_key() -> None:
    leaf = leaf_for("rsa-2048")
    data = leaf.key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM, PASSWORD) + leaf.cert_pem()
    check_identity(Identity.load(data, password=PASSWORD), leaf)
    with pytest.raises(PasswordRequiredError):
        Identity.load(data)


def test_leaf_is_the_certificate_matching_the_key(pki: PKI) -> None:
    leaf = leaf_for("ec-p256")
    # A bundle with the intermediate first: the leaf is found by its key, the rest is the chain.
    bundle = pki.intermediate.cert_pem() + leaf.cert_pem() + pki.root.cert_pem()
    ident = Identity.load(bundle, leaf.key_bytes())
    assert ident.certificate == leaf.certificate
    assert ident.chain == (pki.intermediate.certificate, pki.root.certificate)


def test_intermediates_bundle_with_text_between_blocks(tmp_path: Path, pki: PKI) -> None:
    leaf = leaf_for("ec-p256")
    stranger = pki.untrusted_leaf().certificate
    other = stranger.public_bytes(serialization.Encoding.PEM)
    bundle = (
        b"subject=/CN=Test Intermediate CA\r\nissuer=/CN=Test Root CA\r\n"
        + pki.intermediate.cert_pem().replace(b"\n", b"\r\n")
        + b"\n# a comment\n\n"
        + other
        + b"trailing text"
    )
    path = tmp_path / "chain.pem"
    path.write_bytes(bundle)
    ident = Identity.load(leaf.cert_pem(), leaf.key_bytes(), path)
    assert ident.chain == (pki.intermediate.certificate, stranger)
    assert ident.chain_b64 == tuple(
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in ident.chain
    )


def test_intermediates_single_der_and_objects(pki: PKI) -> None:
    leaf = leaf_for("ec-p256")
    ident = Identity.load(leaf.cert_pem(), leaf.key_bytes(), pki.intermediate.cert_der())
    assert ident.chain == (pki.intermediate.certificate,)
    ident = Identity.load(leaf.cert_pem(), leaf.key_bytes(), [pki.intermediate.certificate])
    assert ident.chain == (pki.intermediate.certificate,)
    with pytest.raises(SourceError, match="intermediates must be"):
        Identity.load(leaf.cert_pem(), leaf.key_bytes(), [b"not a cert"])  # type: ignore[list-item]


def test_no_chain_by_default() -> None:
    leaf = leaf_for("ec-p256")
    assert Identity.load(leaf.cert_pem(), leaf.key_bytes()).chain == ()


# --- other inputs: env, stdin, bytes, objects ---------------------------------------------------


def test_env_sources(monkeypatch: pytest.MonkeyPatch, pki: PKI) -> None:
    leaf = leaf_for("ec-p256")
    monkeypatch.setenv("RA_CERT", leaf.cert_pem().decode())
    monkeypatch.setenv("RA_KEY", base64.b64encode(leaf.key_bytes(KeyFormat.PKCS8_DER)).decode())
    monkeypatch.setenv("RA_CHAIN", base64.b64encode(pki.intermediate.cert_der()).decode())
    ident = Identity.load("env:RA_CERT", "env:RA_KEY", "env:RA_CHAIN")
    check_identity(ident, leaf)
    assert ident.source == "env:RA_CERT"
    assert ident.chain == (pki.intermediate.certificate,)
    monkeypatch.setenv("RA_P12", base64.b64encode(leaf.pkcs12(PASSWORD)).decode())
    check_identity(Identity.load("env:RA_P12", password=PASSWORD), leaf)


def test_stdin_source(monkeypatch: pytest.MonkeyPatch) -> None:
    leaf = leaf_for("rsa-2048")
    monkeypatch.setattr(sources, "_stdin_data", None)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(leaf.combined_pem())))
    ident = Identity.load("-")
    check_identity(ident, leaf)
    assert ident.source == "-"
    # Reading "-" again (certificate and key both on stdin) uses the cached bytes.
    check_identity(Identity.load("-", "-"), leaf)


def test_objects(pki: PKI) -> None:
    leaf = leaf_for("ec-p256")
    key = SoftwareSigningKey.from_private_key(leaf.private_key)
    ident = Identity.load(leaf.certificate, key)
    assert ident.signing_key is key
    assert ident.source == "<certificate>"
    check_identity(Identity.load(leaf.cert_pem(), leaf.private_key), leaf)
    with pytest.raises(SourceError, match="no private key given for certificate <certificate>"):
        Identity.load(leaf.certificate)
    with pytest.raises(KeyMismatchError, match="private key <signing key> does not match"):
        Identity.load(
            leaf.certificate,
            SoftwareSigningKey.from_private_key(generate_private_key("ec-p256")),
        )


def test_conformance_vectors() -> None:
    for case in x509_cases():
        folder = require(X509) / case
        info = json.loads((folder / "case.json").read_text())
        ident = Identity.load(folder / "cert.pem", folder / "key.pem", check_validity=False)
        serial = re.search(r"Credential=(\d+)/", info["expected_authorization"])
        assert serial is not None
        assert ident.serial_number == int(serial.group(1))
        assert ident.algorithm == info["algorithm"]


# --- the Identity object ------------------------------------------------------------------------


def test_identity_properties(pki: PKI) -> None:
    leaf = leaf_for("rsa-2048")
    ident = Identity.load(leaf.cert_pem(), leaf.key_bytes(), pki.intermediate.cert_pem())
    der = leaf.cert_der()
    assert ident.certificate_der == der
    assert ident.certificate_b64 == base64.b64encode(der).decode()
    assert "\n" not in ident.certificate_b64
    assert ident.chain_der == (pki.intermediate.cert_der(),)
    assert ident.not_before == leaf.certificate.not_valid_before_utc
    assert ident.not_after.tzinfo is not None
    assert ident.not_after.utcoffset() == timedelta(0)
    text = repr(ident)
    assert str(leaf.serial_number) in text
    assert "AWS4-X509-RSA-SHA256" in text
    for secret in secrets_of(leaf):
        assert secret not in text
    assert "private_numbers" not in text
    with pytest.raises(AttributeError, match="read-only"):
        ident.source = "x"
    with pytest.raises(AttributeError, match="read-only"):
        del ident.signing_key


# --- the common path imports neither serialization, x509 nor dataclasses -----------------------

_HEAVY_MODULES = (
    "cryptography.hazmat.primitives.serialization",
    "cryptography.x509",
    "dataclasses",
)
_IMPORT_CHECK = """
import sys
from rolesanywhere.x509.identity import Identity

cert, key, chain, password = sys.argv[1:5]
identity = Identity.load(cert, key, chain or None, password or None)
identity.signing_key.sign(b"string to sign")
print(identity.serial_number)
print(",".join(m for m in sys.argv[5:] if m in sys.modules))
"""


def _imported_by_load(
    tmp_path: Path, leaf: IssuedCert, fmt: KeyFormat, chain: bytes, password: bytes | None
) -> list[str]:
    cert_path, key_path = leaf.write(tmp_path, "id", key_format=fmt, password=password)
    chain_path = tmp_path / "chain.pem"
    chain_path.write_bytes(chain)
    args = [
        str(cert_path),
        str(key_path),
        str(chain_path) if chain else "",
        (password or b"").decode(),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK, *args, *_HEAVY_MODULES],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    serial, modules = proc.stdout.splitlines()
    assert int(serial) == leaf.serial_number
    return [m for m in modules.split(",") if m]


@pytest.mark.parametrize(
    ("key_type", "fmt"),
    [
        ("ec-p256", KeyFormat.PKCS8_PEM),
        ("ec-p384", KeyFormat.SEC1_PEM),
        ("ec-p521", KeyFormat.SEC1_DER),
        ("ec-p256", KeyFormat.PKCS8_DER),
        ("rsa-2048", KeyFormat.PKCS1_PEM),
        ("rsa-2048", KeyFormat.PKCS1_DER),
        ("rsa-2048", KeyFormat.PKCS8_PEM),
        ("rsa-2048", KeyFormat.PKCS8_DER),
    ],
    ids=str,
)
def test_common_path_skips_heavy_imports(
    tmp_path: Path, pki: PKI, key_type: str, fmt: KeyFormat
) -> None:
    chain = pki.intermediate.cert_pem() if fmt.pem else b""
    assert _imported_by_load(tmp_path, leaf_for(key_type), fmt, chain, None) == []


def test_heavy_import_check_sees_the_full_path(tmp_path: Path) -> None:
    """The check above would notice: an encrypted key goes through cryptography's loader."""
    leaf = leaf_for("ec-p256")
    modules = _imported_by_load(tmp_path, leaf, KeyFormat.PKCS8_ENCRYPTED_PEM, b"", PASSWORD)
    assert modules == ["cryptography.hazmat.primitives.serialization", "dataclasses"]


def test_check_validity_with_now() -> None:
    leaf = leaf_for("ec-p256")
    ident = Identity.load(leaf.cert_pem(), leaf.key_bytes())
    ident.check_validity(ident.not_before)
    ident.check_validity(ident.not_after.replace(tzinfo=None))  # naive means UTC
    with pytest.raises(CertificateValidityError, match="expired on"):
        ident.check_validity(ident.not_after + timedelta(seconds=1))
    with pytest.raises(CertificateValidityError, match="is not valid until"):
        Identity.load(leaf.cert_pem(), leaf.key_bytes(), now=ident.not_before - timedelta(days=1))


# --- errors -------------------------------------------------------------------------------------


def test_expired(tmp_path: Path, pki: PKI) -> None:
    start = datetime(2023, 12, 1, tzinfo=UTC)
    leaf = pki.leaf(not_before=start, not_after=datetime(2024, 1, 1, tzinfo=UTC))
    cert, key = leaf.write(tmp_path, "old")
    with pytest.raises(CertificateValidityError) as info:
        Identity.load(cert, key)
    assert check_message(info.value, names=str(cert), secrets=secrets_of(leaf)) == (
        f"certificate {cert} expired on 2024-01-01T00:00:00Z "
        "(valid from 2023-12-01T00:00:00Z to 2024-01-01T00:00:00Z): renew it"
    )
    assert Identity.load(cert, key, check_validity=False).certificate == leaf.certificate


def test_not_yet_valid(tmp_path: Path, pki: PKI) -> None:
    leaf = pki.not_yet_valid_leaf()
    cert, key = leaf.write(tmp_path, "future")
    with pytest.raises(CertificateValidityError) as info:
        Identity.load(cert, key)
    text = check_message(info.value, names=str(cert), secrets=secrets_of(leaf))
    assert "is not valid until" in text
    assert "valid from" in text


def test_key_mismatch(tmp_path: Path, pki: PKI) -> None:
    leaf = leaf_for("rsa-2048")
    other = pki.leaf("rsa-2048", private_key=generate_private_key("rsa-2048", slot=1))
    cert, _ = leaf.write(tmp_path, "a")
    _, key = other.write(tmp_path, "b")
    with pytest.raises(KeyMismatchError) as info:
        Identity.load(cert, key)
    assert check_message(info.value, names=str(cert), secrets=secrets_of(other)) == (
        f"private key {key} does not match certificate {cert}: "
        "pass the key that was issued with this certificate"
    )


@pytest.mark.parametrize("key_type", ["ed25519", "rsa-1024", "ec-secp256k1", "ec-p224"])
def test_unsupported_keys(tmp_path: Path, pki: PKI, key_type: str) -> None:
    leaf = pki.leaf(key_type)
    cert, key = leaf.write(tmp_path, "k")
    with pytest.raises(UnsupportedKeyError) as info:
        Identity.load(cert, key)
    text = check_message(info.value, names=str(key), secrets=secrets_of(leaf))
    assert "not supported" in text


def test_missing_files(tmp_path: Path) -> None:
    leaf = leaf_for("ec-p256")
    cert, key = leaf.write(tmp_path, "k")
    with pytest.raises(SourceError) as info:
        Identity.load(tmp_path / "missing.crt", key)
    assert (
        str(info.value)
        == f"certificate file {tmp_path / 'missing.crt'} does not exist: check the path"
    )
    with pytest.raises(SourceError, match=r"private key file .*missing\.key does not exist"):
        Identity.load(cert, tmp_path / "missing.key")
    with pytest.raises(SourceError, match=r"intermediate certificates file .* does not exist"):
        Identity.load(cert, key, tmp_path / "missing-chain.pem")


def test_source_errors(tmp_path: Path, pki: PKI) -> None:
    leaf = leaf_for("ec-p256")
    secrets = secrets_of(leaf)
    cert, key = leaf.write(tmp_path, "k")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"this is not a certificate")
    cases: list[tuple[Callable[[], object], type[IdentityError], str, str]] = [
        (
            lambda: Identity.load(garbage, key),
            SourceError,
            str(garbage),
            f"no certificate found in {garbage}: expected a PEM or DER X.509 certificate",
        ),
        (lambda: Identity.load(cert), SourceError, str(cert), "no private key found in"),
        (lambda: Identity.load(cert, cert), SourceError, str(cert), "it holds only certificates"),
        (
            lambda: Identity.load(cert, leaf.cert_der()),
            SourceError,
            "<bytes>",
            "holds a certificate, not a private key",
        ),
        (lambda: Identity.load(leaf.cert_der()), SourceError, "<bytes>", "no private key found"),
        (
            lambda: Identity.load(cert, key.read_bytes() * 2),
            SourceError,
            "<bytes>",
            "holds 2 private keys",
        ),
        (
            lambda: Identity.load(
                cert,
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            ),
            UnsupportedKeyError,
            "<bytes>",
            "ssh-keygen -p -m PKCS8",
        ),
        (
            lambda: Identity.load(
                cert, b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"
            ),
            SourceError,
            "<bytes>",
            "no private key found",
        ),
        (
            lambda: Identity.load(
                b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n", key
            ),
            SourceError,
            "<bytes>",
            "not valid base64",
        ),
        (
            lambda: Identity.load(b"\x30\x82\x01\x00\x02\x01\x03\x30garbage"),
            SourceError,
            "<bytes>",
            "is not a valid PKCS#12 file",
        ),
        (
            lambda: Identity.load(cert, key, garbage),
            SourceError,
            str(garbage),
            "no certificate found in",
        ),
    ]
    for call, kind, name, fragment in cases:
        with pytest.raises(kind) as info:
            call()
        text = check_message(info.value, names=name, secrets=secrets)
        assert fragment in text, (fragment, text)
        assert info.value.source in (name, str(cert)), info.value.source


@pytest.mark.parametrize("password", [None, PASSWORD])
@pytest.mark.parametrize(
    "dek_info",
    [b"AES-256-CBC,CD328E867DA43E9E752568", b"DES-EDE3-CBC,00", b"AES-128-CBC,", None],
)
def test_malformed_dek_info(password: bytes | None, dek_info: bytes | None) -> None:
    # A short IV once made cryptography panic (found by fuzzing): refuse it before decrypting.
    leaf = leaf_for("ec-p256")
    good = leaf.key_bytes(KeyFormat.TRADITIONAL_ENCRYPTED_PEM, PASSWORD)
    line = next(x for x in good.splitlines() if x.startswith(b"DEK-Info:"))
    bad = good.replace(line + b"\n", b"" if dek_info is None else b"DEK-Info: " + dek_info + b"\n")
    with pytest.raises(SourceError) as info:
        load_private_key(bad, password, source="legacy.pem")
    text = check_message(info.value, names="legacy.pem", secrets=secrets_of(leaf, PASSWORD))
    assert "malformed DEK-Info header" in text
    assert info.value.__cause__ is None


def test_stdin_errors_name_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_stdin_data", None)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"junk")))
    with pytest.raises(SourceError) as info:
        Identity.load("-")
    assert (
        str(info.value) == "no certificate found in stdin: expected a PEM or DER X.509 certificate"
    )
    assert info.value.source == "-"


# --- IdentityLoader ---------------------------------------------------------------------------


class ParseCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = load_private_key

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        # Identity.load calls the name it imported from keyfiles: patch it there.
        monkeypatch.setattr(identity_module, "load_private_key", counting)


def _replace_atomically(leaf: IssuedCert, cert: Path, key: Path) -> None:
    tmp = cert.parent / "staging"
    new_cert, new_key = leaf.write(
        tmp, "next", key_format=KeyFormat.PKCS8_ENCRYPTED_PEM, password=PASSWORD
    )
    os.replace(new_key, key)
    os.replace(new_cert, cert)


def test_loader_caches_and_reloads(
    tmp_path: Path, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = ParseCounter(monkeypatch)
    first = pki.leaf("ec-p256")
    cert, key = first.write(
        tmp_path, "id", key_format=KeyFormat.PKCS8_ENCRYPTED_PEM, password=PASSWORD
    )
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.intermediate.cert_pem())
    loader = IdentityLoader(cert, key, chain, PASSWORD)
    ident = loader.get()
    assert ident.serial_number == first.serial_number
    for _ in range(20):
        assert loader.get() is ident
    assert counter.calls == 1
    assert loader.loads == 1

    second = pki.leaf("ec-p256")
    _replace_atomically(second, cert, key)
    assert loader.get().serial_number == second.serial_number
    assert loader.get().serial_number == second.serial_number
    assert counter.calls == 2

    # In-place rewrite: content and mtime change, the inode does not.
    third = pki.leaf("ec-p384")
    cert.write_bytes(third.cert_pem())
    key.write_bytes(third.key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM, PASSWORD))
    st = cert.stat()
    os.utime(cert, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert loader.get().serial_number == third.serial_number
    assert counter.calls == 3

    # A change to the intermediates alone reloads too.
    chain.write_bytes(pki.intermediate.cert_pem() + pki.root.cert_pem())
    assert len(loader.get().chain) == 2
    assert loader.loads == 4
    assert "s3cret" not in repr(loader)


def test_loader_raises_the_new_error_then_recovers(tmp_path: Path, pki: PKI) -> None:
    leaf = pki.leaf("ec-p256")
    cert, key = leaf.write(tmp_path, "id")
    loader = IdentityLoader(str(cert), str(key))
    assert loader.get().serial_number == leaf.serial_number
    key.unlink()
    with pytest.raises(SourceError, match="does not exist"):
        loader.get()
    with pytest.raises(SourceError, match="does not exist"):
        loader.get()  # still no stale identity
    key.write_bytes(
        generate_private_key("rsa-2048", slot=1).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyMismatchError):
        loader.get()
    _replace_atomically(leaf, cert, key)
    with pytest.raises(PasswordRequiredError):
        loader.get()  # staging wrote an encrypted key and this loader has no password
    key.write_bytes(leaf.key_bytes())
    assert loader.get().serial_number == leaf.serial_number


def test_loader_checks_validity_on_every_get(tmp_path: Path, pki: PKI) -> None:
    leaf = pki.leaf("ec-p256")
    cert, key = leaf.write(tmp_path, "id")
    loader = IdentityLoader(cert, key)
    ident = loader.get()
    with pytest.raises(CertificateValidityError, match="expired on"):
        loader.get(now=ident.not_after + timedelta(hours=1))
    assert loader.loads == 1
    unchecked = IdentityLoader(cert, key, check_validity=False)
    assert (
        unchecked.get(now=ident.not_after + timedelta(hours=1)).serial_number == leaf.serial_number
    )


def test_loader_non_file_sources_never_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    leaf = leaf_for("ec-p256")
    monkeypatch.setenv("RA_LOADER_CERT", leaf.cert_pem().decode())
    loader = IdentityLoader("env:RA_LOADER_CERT", leaf.key_bytes())
    ident = loader.get()
    monkeypatch.setenv("RA_LOADER_CERT", "changed")
    assert loader.get() is ident
    loader.invalidate()
    with pytest.raises(SourceError):
        loader.get()
    assert loader.loads == 1


def test_loader_is_thread_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = ParseCounter(monkeypatch)
    leaf = leaf_for("ec-p256")
    cert, key = leaf.write(tmp_path, "id")
    loader = IdentityLoader(cert, key)
    seen: set[int] = set()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(50):
                seen.add(id(loader.get()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == 1
    assert counter.calls == 1


# --- fuzzing: every loader raises only library errors -----------------------------------------


@cache
def fuzz_samples() -> tuple[bytes, ...]:
    pki = shared_pki()
    ec_leaf, rsa_leaf = leaf_for("ec-p256"), leaf_for("rsa-2048")
    return (
        ec_leaf.cert_pem(),
        ec_leaf.cert_der(),
        ec_leaf.key_bytes(KeyFormat.PKCS8_PEM),
        ec_leaf.key_bytes(KeyFormat.SEC1_DER),
        rsa_leaf.key_bytes(KeyFormat.PKCS1_PEM),
        rsa_leaf.key_bytes(KeyFormat.PKCS8_DER),
        ec_leaf.key_bytes(KeyFormat.PKCS8_ENCRYPTED_PEM, PASSWORD),
        ec_leaf.key_bytes(KeyFormat.PKCS8_ENCRYPTED_DER, PASSWORD),
        ec_leaf.key_bytes(KeyFormat.TRADITIONAL_ENCRYPTED_PEM, PASSWORD),
        ec_leaf.pkcs12(PASSWORD, chain=[pki.intermediate.certificate]),
        ec_leaf.pkcs12(PASSWORD, legacy=True),
        ec_leaf.pkcs12(None),
        ec_leaf.combined_pem(with_chain=True),
        pki.intermediate.cert_pem() + b"text\n" + pki.root.cert_pem(),
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    return draw(mutations(fuzz_samples()))


inputs = st.one_of(st.binary(max_size=512), mutated())
passwords = st.sampled_from([None, PASSWORD, b"", "wrong"])
fuzz = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_library_errors(call: Callable[[], object]) -> object:
    try:
        return call()
    except RolesAnywhereError as exc:
        message = str(exc)
    assert "\n" not in message
    return None


@fuzz
@given(data=inputs)
def test_fuzz_load_certificates(data: bytes) -> None:
    one = only_library_errors(lambda: load_certificate(data, source="fuzz"))
    assert one is None or isinstance(one, x509.Certificate)
    many = only_library_errors(lambda: load_certificates(data, source="fuzz"))
    assert many is None or (isinstance(many, list) and many)


@fuzz
@given(data=inputs, password=passwords)
def test_fuzz_load_private_key(data: bytes, password: bytes | str | None) -> None:
    key = only_library_errors(lambda: load_private_key(data, password, source="fuzz"))
    assert key is None or key.algorithm in (ALGORITHM_RSA, ALGORITHM_ECDSA)  # type: ignore[attr-defined]


@fuzz
@given(data=inputs, password=passwords)
def test_fuzz_load_pkcs12(data: bytes, password: bytes | str | None) -> None:
    only_library_errors(lambda: load_pkcs12(data, password, source="fuzz"))


@fuzz
@given(cert=inputs, key=st.one_of(st.none(), inputs), password=passwords)
def test_fuzz_identity_load(cert: bytes, key: bytes | None, password: bytes | str | None) -> None:
    result = only_library_errors(
        lambda: Identity.load(cert, key, password=password, check_validity=False)
    )
    assert result is None or isinstance(result, Identity)
