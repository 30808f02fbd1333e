"""ML-DSA keys: every PKCS#8 form OpenSSL writes, plain or encrypted, PEM or DER."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rolesanywhere.errors import (
    IdentityError,
    PasswordRequiredError,
    SourceError,
    WrongPasswordError,
)
from rolesanywhere.testing.pki import MLDSA_KEY_TYPES, PKI, KeyFormat
from rolesanywhere.x509.der import parse_mldsa_private_key, parse_mldsa_public_key
from rolesanywhere.x509.identity import Identity
from rolesanywhere.x509.keyfiles import load_private_key
from rolesanywhere.x509.keys import ALGORITHM_MLDSA, algorithm_for_public_key, verify_signature
from rolesanywhere.x509.mldsa import ExpandedMLDSAPrivateKey, MLDSASigningKey
from rolesanywhere.x509.pbes2 import decrypt_pkcs8
from tests import mldsa_keys as mk


def python_output(code: str) -> str:
    """What ``code`` prints, run in a fresh interpreter (a clean ``sys.modules``)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_the_stored_vectors_agree_with_cryptography(parameter_set: str) -> None:
    # The expanded keys were made by another FIPS 204 implementation: same seed, same key.
    public = mk.private_key(parameter_set).public_key().public_bytes_raw()
    assert hashlib.sha256(public).hexdigest() == mk.public_key_sha256(parameter_set)
    assert mk.expanded(parameter_set)[:32] == public[:32]  # rho


@pytest.mark.parametrize("case", mk.ALL_FILES, ids=mk.file_id)
def test_every_form_signs(case: tuple[str, str, bool, bool]) -> None:
    parameter_set, form, encrypted, as_pem = case
    data = mk.key_file(parameter_set, form, encrypted=encrypted, as_pem=as_pem)
    key = load_private_key(data, mk.PASSWORD if encrypted else None, source="key")
    assert isinstance(key, MLDSASigningKey)
    assert key.parameter_set == parameter_set
    assert key.algorithm == ALGORITHM_MLDSA == "AWS4-X509-MLDSA"
    expected = mk.private_key(parameter_set).public_key()
    assert key.public_key() == expected
    signature = key.sign(b"string to sign")
    assert verify_signature(expected, ALGORITHM_MLDSA, b"string to sign", signature)
    expected.verify(signature, b"string to sign", b"")  # pure ML-DSA, empty context
    assert not verify_signature(expected, ALGORITHM_MLDSA, b"string to sigN", signature)


def test_cryptographys_own_seed_files_load() -> None:
    private = mk.private_key("ML-DSA-65")
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        data = private.private_bytes(
            encoding,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(mk.PASSWORD),
        )
        key = load_private_key(data, mk.PASSWORD, source="key")
        assert key.public_key() == private.public_key()


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_the_expanded_form_alone_recomputes_the_seeds_public_key(parameter_set: str) -> None:
    key = load_private_key(mk.pkcs8(parameter_set, "expanded"), None, source="key.pem")
    assert isinstance(key, MLDSASigningKey)
    assert isinstance(key.private_key, ExpandedMLDSAPrivateKey)
    public = mk.private_key(parameter_set).public_key()
    assert key.public_key() == public
    assert key.public_key().public_bytes_raw() == public.public_bytes_raw()  # type: ignore[union-attr]
    assert repr(key.private_key) == (
        f"ExpandedMLDSAPrivateKey(parameter_set={parameter_set!r}, <redacted>)"
    )


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_the_expanded_form_signs_deterministically_on_request(parameter_set: str) -> None:
    key = load_private_key(mk.pkcs8(parameter_set, "expanded"), None, source="key")
    assert isinstance(key, MLDSASigningKey)
    private = key.private_key
    assert isinstance(private, ExpandedMLDSAPrivateKey)
    public = mk.private_key(parameter_set).public_key()
    first = private.sign(b"message", rnd=bytes(32))
    assert private.sign(b"message", rnd=bytes(32)) == first
    other = private.sign(b"massage", rnd=bytes(32))
    assert other != first
    public.verify(first, b"message")
    public.verify(other, b"massage")
    # Hedged by default: two signatures of one message differ, and both verify.
    hedged = key.sign(b"message"), key.sign(b"message")
    assert hedged[0] != hedged[1] and first not in hedged
    for signature in hedged:
        public.verify(signature, b"message", b"")


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (128, "s1 or s2 out of range"),  # first byte of s1: eta - 7 for eta = 2
        (129, "tr is not the hash"),  # s1 changed within range: another t, another public key
        (64, "tr is not the hash"),  # tr itself
        (-1, "t0 is not the one"),  # last byte of t0
    ],
)
def test_a_damaged_expanded_key_is_refused_in_one_line(where: int, reason: str) -> None:
    expanded = bytearray(mk.expanded("ML-DSA-44"))
    expanded[where] ^= 0xFF if where == 128 else 0x01
    der = mk.pkcs8("ML-DSA-44", "expanded", expanded_bytes=bytes(expanded))
    with pytest.raises(SourceError) as info:
        load_private_key(der, None, source="key.pem")
    message = str(info.value)
    assert "\n" not in message
    assert "ML-DSA-44 expanded key is damaged" in message and reason in message
    assert "key.pem" in message and "export the key again" in message


def test_a_signature_that_does_not_verify_is_never_returned() -> None:
    key = ExpandedMLDSAPrivateKey.from_expanded(
        "ML-DSA-65", mk.expanded("ML-DSA-65"), "key.pem", "key.pem"
    )
    # Another key's public key stands in for a signer that went wrong.
    key._public = mk.private_key("ML-DSA-44").public_key()
    with pytest.raises(IdentityError, match=r"signature does not verify with its public key"):
        key.sign(b"data")


@pytest.mark.parametrize("as_pem", [False, True])
@pytest.mark.parametrize("form", ["both", "expanded"])
def test_encrypted_forms_need_the_right_password(form: str, as_pem: bool) -> None:
    data = mk.key_file("ML-DSA-44", form, encrypted=True, as_pem=as_pem)
    with pytest.raises(PasswordRequiredError):
        load_private_key(data, None, source="key")
    with pytest.raises(WrongPasswordError):
        load_private_key(data, b"wrong", source="key")


def test_a_seed_and_an_expanded_key_of_different_keys_are_refused() -> None:
    der = mk.pkcs8("ML-DSA-65", "both", seed_bytes=bytes(32))
    with pytest.raises(SourceError, match="seed and expanded key are not the same key"):
        load_private_key(der, None, source="key")


@pytest.mark.parametrize(
    ("form", "kw"),
    [
        ("seed", {"seed_bytes": bytes(31)}),
        ("both", {"seed_bytes": bytes(33)}),
        ("expanded", {"expanded_bytes": bytes(2560)}),  # an ML-DSA-44 size for ML-DSA-65
        ("both", {"expanded_bytes": b""}),
    ],
)
def test_malformed_mldsa_keys_are_source_errors(form: str, kw: dict[str, bytes]) -> None:
    der = mk.pkcs8("ML-DSA-65", form, **kw)
    with pytest.raises(SourceError, match="malformed DER"):
        parse_mldsa_private_key(der)
    with pytest.raises(SourceError):
        load_private_key(der, None, source="key")


def test_the_der_reader_leaves_other_keys_alone() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert parse_mldsa_private_key(der) is None
    assert parse_mldsa_private_key(b"\x30\x00") is None
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parse_mldsa_public_key(spki) is None
    fields = parse_mldsa_private_key(mk.pkcs8("ML-DSA-87", "both"))
    assert fields is not None and fields.parameter_set == "ML-DSA-87"
    assert "seed" not in repr(fields) and mk.seed("ML-DSA-87").hex() not in repr(fields)


@pytest.mark.parametrize("parameter_set", mk.PARAMETER_SETS)
def test_public_keys_name_their_parameter_set(parameter_set: str) -> None:
    public = mk.private_key(parameter_set).public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert parse_mldsa_public_key(spki) == parameter_set
    assert algorithm_for_public_key(public) == ALGORITHM_MLDSA


def test_pbes2_reads_what_cryptography_encrypts() -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    plain = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert decrypt_pkcs8(encrypted, b"pw", source="k") == plain
    assert decrypt_pkcs8(encrypted, b"not it", source="k") != plain


def test_the_signing_key_hides_its_private_key() -> None:
    key = load_private_key(mk.pkcs8("ML-DSA-44", "seed"), None, source="key")
    assert repr(key) == "MLDSASigningKey(parameter_set='ML-DSA-44', private_key=<redacted>)"


@pytest.mark.parametrize("key_type", MLDSA_KEY_TYPES)
def test_identities_from_the_test_pki(key_type: str) -> None:
    pki = PKI(name="mldsa identity")
    leaf = pki.leaf(key_type)
    for fmt in KeyFormat.for_key_type(key_type):
        password = mk.PASSWORD if fmt.encrypted else None
        identity = Identity.load(leaf.cert_pem(), leaf.key_bytes(fmt, password), None, password)
        assert identity.algorithm == ALGORITHM_MLDSA
        assert identity.signing_key.public_key() == leaf.private_key.public_key()


def test_identity_from_an_openssl_default_file() -> None:
    # OpenSSL 3.5 writes "seed and expanded key" by default: certificate for that key.
    private = mk.private_key("ML-DSA-87")
    leaf = PKI(name="mldsa both").leaf(private_key=private)
    for encrypted in (False, True):
        data = mk.key_file("ML-DSA-87", "both", encrypted=encrypted, as_pem=True)
        identity = Identity.load(leaf.cert_pem(), data, None, mk.PASSWORD if encrypted else None)
        assert identity.algorithm == ALGORITHM_MLDSA


def test_rsa_and_ec_keys_do_not_import_the_mldsa_support() -> None:
    code = (
        "import sys\n"
        "from rolesanywhere.testing.pki import PKI, KeyFormat\n"
        "from rolesanywhere.x509.keyfiles import load_private_key\n"
        "leaf = PKI().leaf('ec-p256')\n"
        "for fmt in (KeyFormat.PKCS8_PEM, KeyFormat.PKCS8_ENCRYPTED_DER):\n"
        "    pw = b'pw' if fmt.encrypted else None\n"
        "    load_private_key(leaf.key_bytes(fmt, pw), pw, source='k')\n"
        "print(' '.join(m for m in sys.modules if m.startswith('rolesanywhere')))"
    )
    out = python_output(code)
    assert "rolesanywhere.x509.mldsa" not in out.split()
    assert "rolesanywhere.x509.mldsa_expanded" not in out.split()
    assert "rolesanywhere.x509.pbes2" not in out.split()


def test_keys_with_a_seed_do_not_import_the_pure_python_signer() -> None:
    code = (
        "import sys\n"
        "from rolesanywhere.x509.keyfiles import load_private_key\n"
        f"for der in ({mk.pkcs8('ML-DSA-44', 'seed')!r}, {mk.pkcs8('ML-DSA-44', 'both')!r}):\n"
        "    load_private_key(der, None, source='k').sign(b'data')\n"
        "print('rolesanywhere.x509.mldsa_expanded' in sys.modules)\n"
        f"load_private_key({mk.pkcs8('ML-DSA-44', 'expanded')!r}, None, source='k')\n"
        "print('rolesanywhere.x509.mldsa_expanded' in sys.modules)\n"
    )
    assert python_output(code).split() == ["False", "True"]


def test_a_cryptography_without_mldsa_refuses_mldsa_keys_only() -> None:
    # As with a cryptography older than 50: rolesanywhere.x509.mldsa does not import.
    code = (
        "import sys\n"
        "sys.modules['rolesanywhere.x509.mldsa'] = None\n"
        "from rolesanywhere.errors import UnsupportedKeyError\n"
        "from rolesanywhere.testing.pki import PKI, KeyFormat\n"
        "from rolesanywhere.x509.keyfiles import load_private_key\n"
        "pki = PKI()\n"
        "load_private_key(pki.leaf('ec-p384').key_bytes(), None, source='k')\n"
        f"mldsa_key = bytes.fromhex({mk.pkcs8('ML-DSA-44', 'seed').hex()!r})\n"
        "for data in (mldsa_key, pki.leaf('ed25519').key_bytes()):\n"
        "    try:\n"
        "        load_private_key(data, None, source='k')\n"
        "    except UnsupportedKeyError as exc:\n"
        "        print(exc)\n"
    )
    out = python_output(code).splitlines()
    assert len(out) == 2
    assert "ML-DSA key" in out[0] and "cryptography 50 or later" in out[0]
    assert "Ed25519PrivateKey keys are not supported" in out[1]
