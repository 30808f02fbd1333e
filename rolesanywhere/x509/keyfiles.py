"""Private keys from their file formats: PKCS#1, SEC1 and PKCS#8 (plain or encrypted), PEM or
DER, and legacy encrypted PEM; RSA, EC and ML-DSA (:mod:`~rolesanywhere.x509.mldsa`).
:func:`load_private_key` returns a :class:`~rolesanywhere.x509.keys.SigningKey`; every failure is an
:class:`~rolesanywhere.errors.IdentityError` naming the source, never the key or password."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rolesanywhere.errors import (
    PasswordRequiredError,
    SourceError,
    UnsupportedKeyError,
    UsageError,
    WrongPasswordError,
    parameter,
)
from rolesanywhere.x509 import der as _derlib
from rolesanywhere.x509.keys import (
    ALGORITHM_MLDSA,
    SigningKey,
    SoftwareSigningKey,
    algorithm_for_public_key,
    private_key_from_fields,
    rsa_key_consistent,
)
from rolesanywhere.x509.pem import (
    CERT_LABELS,
    PemBlock,
    der_content,
    is_encrypted_pkcs8_der,
    is_pem,
    is_pkcs12,
    pem_blocks,
    pem_der,
)
from rolesanywhere.x509.sources import SourceSpec, describe, guard, read_source

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from rolesanywhere.x509.mldsa import ExpandedMLDSAPrivateKey

    #: What a key file holds: a cryptography key, or an ML-DSA key known only expanded.
    LoadedKey = PrivateKeyTypes | ExpandedMLDSAPrivateKey

__all__ = [
    "HOW_TO_UNLOCK",
    "TPM_HANDLE_PREFIX",
    "TSS2_PEM_LABEL",
    "Password",
    "load_private_key",
    "password_bytes",
    "read_signing_key",
    "signing_key",
]

Password = str | bytes | None
_FastKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
HOW_TO_UNLOCK = (
    # "\x1f" brackets a parameter's name (rolesanywhere.errors.parameter)
    "pass its password (\x1fpassword\x1f)"
)
_NO_KEY = (
    "no private key found in {src}: expected a PEM or DER private key (PKCS#1, SEC1 or PKCS#8)"
)

_LEGACY_ENCRYPTED = re.compile(rb"Proc-Type:[ \t]*4,[ \t]*ENCRYPTED")
_DEK_INFO = re.compile(
    rb"DEK-Info:[ \t]*([A-Za-z0-9-]+)[ \t]*,[ \t]*([0-9A-Fa-f]*)[ \t]*\r?$", re.M
)
#: IV sizes of legacy PEM ciphers; a wrong size makes cryptography panic, so check it first.
_DEK_IV_BYTES = {
    b"AES-128-CBC": 16,
    b"AES-192-CBC": 16,
    b"AES-256-CBC": 16,
    b"DES-EDE3-CBC": 8,
    b"DES-CBC": 8,
}
_KEY_LABELS = frozenset(
    {
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "DSA PRIVATE KEY",
    }
)


def password_bytes(password: Password) -> bytes | None:
    if password is None or isinstance(password, bytes):
        return password
    return password.encode("utf-8")


def signing_key(key: Any, label: str, source: str) -> SigningKey:
    try:
        if isinstance(key, _FastKey) or algorithm_for_public_key(key) != ALGORITHM_MLDSA:
            return SoftwareSigningKey.from_private_key(key, source=source)
        from rolesanywhere.x509.mldsa import MLDSASigningKey

        return MLDSASigningKey.from_private_key(key, source=source)
    except UnsupportedKeyError as exc:
        raise UnsupportedKeyError(f"private key {label}: {exc}", source=source) from None


def _decrypt_key(
    data: bytes, pem: bool, encrypted: bool, password: bytes | None, label: str, source: str
) -> LoadedKey:
    from cryptography.hazmat.primitives import serialization

    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key

    def load(data: bytes, password: bytes | None) -> PrivateKeyTypes:
        # OpenSSL's RSA check tests p and q for primality (~60 ms for RSA-2048): check the
        # numbers as the fast path does instead; OpenSSL's check words any refusal.
        key = loader(data, password, unsafe_skip_rsa_key_validation=True)
        if isinstance(key, rsa.RSAPrivateKey) and not rsa_key_consistent(key):
            return loader(data, password)
        return key

    if encrypted and password is None:
        raise PasswordRequiredError(
            f"private key {label} is encrypted: {HOW_TO_UNLOCK}", source=source
        )
    wrong = WrongPasswordError(
        f"wrong password for private key {label}: pass the password it was encrypted with",
        source=source,
    )
    try:
        return load(data, password if encrypted else None)
    except TypeError as exc:
        # Our guess about encryption was wrong; cryptography knows better.
        if "not encrypted" in str(exc):
            return load(data, None)
        if password is None:
            raise PasswordRequiredError(
                f"private key {label} is encrypted: {HOW_TO_UNLOCK}", source=source
            ) from None
        try:
            return load(data, password)
        except ValueError:
            raise wrong from None
    except UnsupportedAlgorithm:
        raise UnsupportedKeyError(
            f"private key {label} uses a key type or encryption this library cannot read: "
            "use an RSA or EC key in PKCS#8 (AES with PBKDF2 or scrypt)",
            source=source,
        ) from None
    except ValueError as exc:
        if encrypted and password is not None:
            # cryptography reads ML-DSA keys in their seed form only: try the other forms.
            key = _encrypted_mldsa_key(data, pem, password, label, source)
            if key is not None:
                return key
        if encrypted or "password" in str(exc).lower():
            raise wrong from None
        raise SourceError(_NO_KEY.format(src=label), source=source) from None


# The common case, an unencrypted RSA or P-256/384/521 key, is read by rolesanywhere.x509.der and
# built from its numbers, which spares the import of cryptography's serialization module
# (~35 ms). Anything else, or any doubt, goes to cryptography's loader, which words the errors.

_FAST_FORMATS: dict[str, _derlib.PrivateKeyFormat] = {
    "PRIVATE KEY": "pkcs8",
    "RSA PRIVATE KEY": "pkcs1",
    "EC PRIVATE KEY": "sec1",
}
#: A PEM body without headers: lines of base64, LF or CRLF, nothing else.
_PLAIN_PEM_BODY = re.compile(rb"\r?\n(?:[A-Za-z0-9+/=]+\r?\n)+")


def _fast_der_key(
    der: bytes, key_format: _derlib.PrivateKeyFormat | None = None
) -> _FastKey | None:
    """The unencrypted key in ``der``, or ``None`` when the fast reader does not take it."""
    try:
        fields = _derlib.parse_private_key(der, key_format)
    except SourceError:
        return None
    return private_key_from_fields(fields)


def _fast_pem_key(block: PemBlock) -> _FastKey | None:
    """The key in an unencrypted PEM block, or ``None`` when the fast reader does not take it.

    Only canonical base64 is read (what every tool writes), so that no body cryptography's
    stricter PEM decoder would refuse is accepted here.
    """
    key_format = _FAST_FORMATS.get(block.label)
    if key_format is None or not _PLAIN_PEM_BODY.fullmatch(block.body):
        return None
    text = block.body.replace(b"\r", b"").replace(b"\n", b"")
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(der) != text:
        return None
    return _fast_der_key(der, key_format)


#: The DER of an ML-DSA OID (2.16.840.1.101.3.4.3.17-19) without its last byte.
_MLDSA_OID = bytes.fromhex("06096086480165030403")


def _mldsa_key(der: bytes, label: str, source: str) -> LoadedKey | None:
    """The key of an unencrypted ML-DSA PKCS#8 ``der`` in any of its three forms, else ``None``
    (the ML-DSA module is imported only when the OID is there)."""
    if _MLDSA_OID not in der[:32]:
        return None
    try:
        from rolesanywhere.x509.mldsa import mldsa_key_from_pkcs8
    except ImportError:
        raise UnsupportedKeyError(
            f"private key {label} is an ML-DSA key, which this version of cryptography cannot "
            "use: install cryptography 50 or later",
            source=source,
        ) from None

    return mldsa_key_from_pkcs8(der, label, source)


def _encrypted_mldsa_key(
    data: bytes, pem: bool, password: bytes, label: str, source: str
) -> LoadedKey | None:
    from rolesanywhere.x509.pbes2 import decrypt_pkcs8

    der = pem_der(pem_blocks(data)[0].body) if pem else data
    if der is None:
        return None
    try:
        plain = decrypt_pkcs8(der, password, source=source)
    except SourceError:
        return None
    return None if plain is None else _mldsa_key(plain, label, source)


def _check_dek_info(body: bytes, label: str, source: str) -> None:
    match = _DEK_INFO.search(body)
    size = _DEK_IV_BYTES.get(match.group(1).upper()) if match else None
    if match is None or (size is not None and len(match.group(2)) != 2 * size):
        raise SourceError(
            f"private key {label} has a malformed DEK-Info header: export the key again "
            "(openssl pkcs8 -topk8)",
            source=source,
        )


def _parse_private_key(data: bytes, password: bytes | None, source: str) -> LoadedKey:
    label = describe(source)
    if is_pem(data):
        blocks = pem_blocks(data)
        keys = [b for b in blocks if b.label.endswith("PRIVATE KEY")]
        if not keys:
            only_certs = blocks and all(b.label in CERT_LABELS for b in blocks)
            hint = " (it holds only certificates)" if only_certs else ""
            raise SourceError(_NO_KEY.format(src=label + hint), source=source)
        if len(keys) > 1:
            raise SourceError(
                f"{label} holds {len(keys)} private keys: keep only the one issued with the "
                "certificate",
                source=source,
            )
        block = keys[0]
        if block.label not in _KEY_LABELS:
            raise UnsupportedKeyError(
                f"private key {label} is a {block.label!r} block: convert it to PKCS#8 "
                "(openssl pkcs8 -topk8, or ssh-keygen -p -m PKCS8 for OpenSSH keys)",
                source=source,
            )
        legacy = bool(_LEGACY_ENCRYPTED.search(block.body))
        if legacy:
            _check_dek_info(block.body, label, source)
        encrypted = legacy or block.label == "ENCRYPTED PRIVATE KEY"
        if not encrypted and (key := _fast_pem_key(block)) is not None:
            return key
        der = pem_der(block.body) if block.label == "PRIVATE KEY" else None
        if der is not None and (mldsa_key := _mldsa_key(der, label, source)) is not None:
            return mldsa_key
        return _decrypt_key(block.text, True, encrypted, password, label, source)
    if is_pkcs12(data):
        raise SourceError(
            f"private key {label} is a PKCS#12 file: pass it as the certificate and leave "
            "the private key out",
            source=source,
        )
    encrypted = is_encrypted_pkcs8_der(data)
    if not encrypted and _looks_like_certificate(data):
        raise SourceError(
            f"{label} holds a certificate, not a private key: pass the private key file",
            source=source,
        )
    if not encrypted and (key := _fast_der_key(data)) is not None:
        return key
    if not encrypted and (mldsa_key := _mldsa_key(data, label, source)) is not None:
        return mldsa_key
    return _decrypt_key(data, False, encrypted, password, label, source)


def _looks_like_certificate(data: bytes) -> bool:
    try:
        _derlib.parse_certificate(data)
    except SourceError:
        pass
    else:
        return True
    # Every key format starts SEQUENCE { INTEGER ...; a certificate SEQUENCE { SEQUENCE ...:
    # only ask cryptography about the latter.
    outer = der_content(data)
    if outer is None or outer[0] != 0x30 or data[outer[1] : outer[1] + 1] != b"\x30":
        return False
    from cryptography import x509

    try:
        x509.load_der_x509_certificate(data)
    except Exception:
        return False
    return True


def load_private_key(data: bytes, password: Password, *, source: str) -> SigningKey:
    """A signing key from PKCS#1, SEC1 or PKCS#8 (PEM or DER, PKCS#8 possibly encrypted);
    an ML-DSA key in any of the PKCS#8 forms OpenSSL writes (see :mod:`~rolesanywhere.x509.mldsa`).

    A PEM file may hold other blocks (certificates) too. A password given for an unencrypted
    key is ignored.
    """
    label = describe(source)
    with guard(_NO_KEY.format(src=label), source):
        key = _parse_private_key(data, password_bytes(password), source)
        return signing_key(key, label, source)


#: ``--private-key handle:0x81000101``: a persistent key in a TPM.
TPM_HANDLE_PREFIX = "handle:"
#: The PEM header of a TSS2 (TPM 2.0) key file.
TSS2_PEM_LABEL = b"-----BEGIN TSS2 PRIVATE KEY-----"


def read_signing_key(
    spec: SourceSpec,
    password: Password,
    *,
    tpm_key_password: str | None = None,
    no_tpm_key_password: bool = False,
) -> SigningKey:
    """The signing key a ``--private-key`` spec names: a key file (:func:`load_private_key`), a
    persistent TPM key (``handle:0x81000101``) or a TSS2 key file (see
    :mod:`~rolesanywhere.x509.tpm`, imported only for those)."""
    if no_tpm_key_password and tpm_key_password:
        raise UsageError(
            f"{parameter('tpm_key_password')} and {parameter('no_tpm_key_password')} "
            "contradict each other: pass one of them"
        )
    tpm = None if no_tpm_key_password else tpm_key_password
    if isinstance(spec, str) and spec.startswith(TPM_HANDLE_PREFIX):
        from rolesanywhere.x509.tpm import TpmSigningKey

        return TpmSigningKey.from_handle(spec, password=tpm)
    source = read_source(spec, what="private key")
    if TSS2_PEM_LABEL in source.data:
        from rolesanywhere.x509.tpm import TpmSigningKey

        return TpmSigningKey.from_tss2(
            source.data, source.name, password=tpm, no_password=no_tpm_key_password
        )
    return load_private_key(source.data, password, source=source.name)
