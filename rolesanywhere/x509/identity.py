"""An X.509 identity: the leaf certificate, its signing key and the intermediates.

:meth:`Identity.load` reads PEM or DER certificates, PKCS#1 / SEC1 / PKCS#8 keys (plain or
encrypted), legacy encrypted PEM and PKCS#12, from anything
:func:`~rolesanywhere.x509.sources.read_source` accepts. Every failure is an
:class:`~rolesanywhere.errors.IdentityError` with a one-line message naming the source and the
fix, never the key or the password.
:class:`IdentityLoader` caches the parsed identity and reloads it when a file changes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rolesanywhere.errors import (
    CertificateValidityError,
    KeyMismatchError,
    PasswordRequiredError,
    RolesAnywhereError,
    SourceError,
    UnsupportedKeyError,
    WrongPasswordError,
)
from rolesanywhere.values import Value
from rolesanywhere.x509 import der as _derlib
from rolesanywhere.x509.keys import (
    SigningKey,
    SoftwareSigningKey,
    private_key_from_fields,
    public_key_matches,
    rsa_key_consistent,
)
from rolesanywhere.x509.sources import SourceSpec, describe, file_path, read_source

__all__ = [
    "CertificateInput",
    "Identity",
    "IdentityLoader",
    "IntermediatesInput",
    "KeyInput",
    "Password",
    "load_certificate",
    "load_certificates",
    "load_pkcs12",
    "load_private_key",
]

Password = str | bytes | None
_FastKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    CertificateInput = SourceSpec | x509.Certificate
    KeyInput = SourceSpec | SigningKey | PrivateKeyTypes
    IntermediatesInput = SourceSpec | Sequence[x509.Certificate]


def __getattr__(name: str) -> Any:
    # The input aliases mention x509.Certificate: build them on first use so that importing
    # this module does not import cryptography.x509.
    if name not in {"CertificateInput", "KeyInput", "IntermediatesInput"}:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    aliases = {
        "CertificateInput": SourceSpec | x509.Certificate,
        "KeyInput": SourceSpec | SigningKey | PrivateKeyTypes,
        "IntermediatesInput": SourceSpec | Sequence[x509.Certificate],
    }
    globals().update(aliases)
    return aliases[name]


_SPEC_TYPES = (str, bytes, bytearray, memoryview, os.PathLike)
_HOW_TO_UNLOCK = (
    # "\x1f" brackets a parameter's name (rolesanywhere.errors.parameter)
    "pass its password (\x1fpassword\x1f)"
)
_NO_CERT = "no certificate found in {src}: expected a PEM or DER X.509 certificate"
_NO_KEY = (
    "no private key found in {src}: expected a PEM or DER private key (PKCS#1, SEC1 or PKCS#8)"
)

# --- PEM and DER scanning ---------------------------------------------------------------------

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9][A-Z0-9 ._]*)-----(.*?)-----END \1-----", re.S)
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
_PEM_MARK = b"-----BEGIN "
_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE"})
_KEY_LABELS = frozenset(
    {
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "DSA PRIVATE KEY",
    }
)


class _PemBlock(Value):
    __slots__ = ("label", "text", "body")

    label: str
    #: The whole block, BEGIN and END lines included, and a newline.
    text: bytes
    #: What lies between the BEGIN and END lines.
    body: bytes

    def __init__(self, label: str, text: bytes, body: bytes) -> None:
        super().__init__(label, text, body)


def _pem_blocks(data: bytes) -> list[_PemBlock]:
    return [
        _PemBlock(m.group(1).decode("ascii"), m.group(0) + b"\n", m.group(2))
        for m in _PEM_RE.finditer(data)
    ]


def _pem_der(body: bytes) -> bytes | None:
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


def _der_content(data: bytes, offset: int = 0) -> tuple[int, int] | None:
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


def _is_pkcs12(data: bytes) -> bool:
    """PFX: SEQUENCE { INTEGER 3, SEQUENCE authSafe, ... }."""
    outer = _der_content(data)
    if outer is None or outer[0] != 0x30:
        return False
    start = outer[1]
    return data[start : start + 4] == b"\x02\x01\x03\x30"


def _is_encrypted_pkcs8_der(data: bytes) -> bool:
    """EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID, ... }, OCTET STRING }."""
    outer = _der_content(data)
    if outer is None or outer[0] != 0x30:
        return False
    inner = _der_content(data, outer[1])
    return inner is not None and inner[0] == 0x30 and data[inner[1] : inner[1] + 1] == b"\x06"


def _is_pem(data: bytes) -> bool:
    return _PEM_MARK in data


# --- error conversion -------------------------------------------------------------------------


@contextmanager
def _guard(message: str, source: str) -> Iterator[None]:
    """Turn anything that is not already one of ours into a :class:`SourceError`."""
    try:
        yield
    except RolesAnywhereError:
        raise
    except Exception as exc:
        raise SourceError(message, source=source) from exc
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if type(exc).__name__ == "PanicException":
            raise SourceError(message, source=source) from exc
        raise


def _password_bytes(password: Password) -> bytes | None:
    if password is None or isinstance(password, bytes):
        return password
    return password.encode("utf-8")


# --- certificates -----------------------------------------------------------------------------


def _parse_der_certificate(der: bytes, label: str, source: str) -> x509.Certificate:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        # Touch the fields the library uses so malformed ones fail here, not later.
        _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
    except Exception as exc:
        raise SourceError(_NO_CERT.format(src=label), source=source) from exc
    return cert


def load_certificates(data: bytes, *, source: str) -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM blocks (any other text or blocks ignored) or one DER."""
    label = describe(source)
    with _guard(_NO_CERT.format(src=label), source):
        if not _is_pem(data):
            return [_parse_der_certificate(data, label, source)]
        blocks = [b for b in _pem_blocks(data) if b.label in _CERT_LABELS]
        if not blocks:
            raise SourceError(_NO_CERT.format(src=label), source=source)
        certs = []
        for block in blocks:
            der = _pem_der(block.body)
            if der is None:
                raise SourceError(
                    f"a certificate block in {label} is not valid base64: "
                    "replace the file with a clean PEM copy",
                    source=source,
                )
            certs.append(_parse_der_certificate(der, label, source))
        return certs


def load_certificate(data: bytes, *, source: str) -> x509.Certificate:
    """The first certificate in ``data`` (PEM or DER)."""
    return load_certificates(data, source=source)[0]


# --- private keys -----------------------------------------------------------------------------


def _signing_key(key: Any, label: str, source: str) -> SoftwareSigningKey:
    try:
        return SoftwareSigningKey.from_private_key(key, source=source)
    except UnsupportedKeyError as exc:
        raise UnsupportedKeyError(f"private key {label}: {exc}", source=source) from None


def _decrypt_key(
    data: bytes, pem: bool, encrypted: bool, password: bytes | None, label: str, source: str
) -> PrivateKeyTypes:
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
            f"private key {label} is encrypted: {_HOW_TO_UNLOCK}", source=source
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
                f"private key {label} is encrypted: {_HOW_TO_UNLOCK}", source=source
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


def _fast_pem_key(block: _PemBlock) -> _FastKey | None:
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


def _check_dek_info(body: bytes, label: str, source: str) -> None:
    match = _DEK_INFO.search(body)
    size = _DEK_IV_BYTES.get(match.group(1).upper()) if match else None
    if match is None or (size is not None and len(match.group(2)) != 2 * size):
        raise SourceError(
            f"private key {label} has a malformed DEK-Info header: export the key again "
            "(openssl pkcs8 -topk8)",
            source=source,
        )


def _parse_private_key(data: bytes, password: bytes | None, source: str) -> PrivateKeyTypes:
    label = describe(source)
    if _is_pem(data):
        blocks = _pem_blocks(data)
        keys = [b for b in blocks if b.label.endswith("PRIVATE KEY")]
        if not keys:
            only_certs = blocks and all(b.label in _CERT_LABELS for b in blocks)
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
        return _decrypt_key(block.text, True, encrypted, password, label, source)
    if _is_pkcs12(data):
        raise SourceError(
            f"private key {label} is a PKCS#12 file: pass it as the certificate and leave "
            "the private key out",
            source=source,
        )
    encrypted = _is_encrypted_pkcs8_der(data)
    if not encrypted and _looks_like_certificate(data):
        raise SourceError(
            f"{label} holds a certificate, not a private key: pass the private key file",
            source=source,
        )
    if not encrypted and (key := _fast_der_key(data)) is not None:
        return key
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
    outer = _der_content(data)
    if outer is None or outer[0] != 0x30 or data[outer[1] : outer[1] + 1] != b"\x30":
        return False
    from cryptography import x509

    try:
        x509.load_der_x509_certificate(data)
    except Exception:
        return False
    return True


def load_private_key(data: bytes, password: Password, *, source: str) -> SigningKey:
    """A signing key from PKCS#1, SEC1 or PKCS#8 (PEM or DER, PKCS#8 possibly encrypted).

    A PEM file may hold other blocks (certificates) too. A password given for an unencrypted
    key is ignored.
    """
    label = describe(source)
    with _guard(_NO_KEY.format(src=label), source):
        key = _parse_private_key(data, _password_bytes(password), source)
        return _signing_key(key, label, source)


# --- PKCS#12 ----------------------------------------------------------------------------------


def load_pkcs12(
    data: bytes, password: Password, *, source: str
) -> tuple[x509.Certificate, SigningKey, list[x509.Certificate]]:
    """(leaf, key, other certificates in file order) from a PKCS#12 file.

    With no password, both "no password" and the empty password are tried.
    """
    from cryptography.hazmat.primitives.serialization import pkcs12

    label = describe(source)
    pw = _password_bytes(password)
    attempts: list[bytes | None] = [None, b""] if not pw else [pw]
    with _guard(f"{label} is not a valid PKCS#12 file: export it again", source):
        bundle = None
        password_failed = False
        for attempt in attempts:
            try:
                bundle = pkcs12.load_pkcs12(data, attempt)
                break
            except UnsupportedAlgorithm:
                raise UnsupportedKeyError(
                    f"PKCS#12 file {label} uses an algorithm this library cannot read: "
                    "export it again with AES-256 and PBKDF2 (openssl pkcs12 -export)",
                    source=source,
                ) from None
            except ValueError as exc:
                password_failed = password_failed or "password" in str(exc).lower()
        if bundle is None:
            if not password_failed:
                raise SourceError(
                    f"{label} is not a valid PKCS#12 file: export it again", source=source
                )
            if not pw:
                raise PasswordRequiredError(
                    f"PKCS#12 file {label} is encrypted: {_HOW_TO_UNLOCK}", source=source
                )
            raise WrongPasswordError(
                f"wrong password for PKCS#12 file {label}: pass the password it was exported with",
                source=source,
            )
        if bundle.key is None:
            raise SourceError(
                f"PKCS#12 file {label} holds no private key: export it with the key",
                source=source,
            )
        key = _signing_key(bundle.key, label, source)
        others = [c.certificate for c in bundle.additional_certs]
        leaf = bundle.cert.certificate if bundle.cert is not None else None
        if leaf is None:
            index = _matching_index(others, key)
            if index is None:
                raise SourceError(
                    f"PKCS#12 file {label} holds no certificate for its private key: "
                    "export it with the certificate",
                    source=source,
                )
            leaf = others.pop(index)
        _ = leaf.serial_number, leaf.not_valid_before_utc, leaf.not_valid_after_utc
        return leaf, key, others


# --- matching ---------------------------------------------------------------------------------


def _spki(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _fast_match(spki: bytes, key: SigningKey) -> bool:
    """Whether the certificate's SPKI is, exactly, ``key``'s public key (read with
    rolesanywhere.x509.der, so no serialization import); ``False`` for anything unusual."""
    try:
        fields = _derlib.parse_public_key(spki)
    except SourceError:
        return False
    return public_key_matches(fields, key.public_key())


def _matching_index(certs: Sequence[x509.Certificate], key: SigningKey) -> int | None:
    wanted = _spki(key.public_key())
    for index, cert in enumerate(certs):
        try:
            if _spki(cert.public_key()) == wanted:
                return index
        except Exception:  # noqa: S112 - a key we cannot read cannot match
            continue
    return None


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _iso(when: datetime) -> str:
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the identity -----------------------------------------------------------------------------


class Identity:
    """A leaf certificate, the key that signs for it, and its intermediates (leaf excluded).

    Frozen. Loaded by :meth:`load` from files, the certificates are kept as DER and parsed
    with cryptography only when :attr:`certificate` or :attr:`chain` is first read.
    """

    __slots__ = (
        "_certificate",
        "_chain",
        "_chain_der",
        "_der",
        "_fields",
        "_lock",
        "signing_key",
        "source",
    )

    signing_key: SigningKey
    #: Where the certificate came from (path, ``env:NAME``, ``-``…), for messages.
    source: str
    _certificate: x509.Certificate | None
    _chain: tuple[x509.Certificate, ...] | None
    _der: bytes
    _chain_der: tuple[bytes, ...]
    _fields: _derlib.CertificateFields | None
    _lock: threading.Lock

    def __init__(
        self,
        certificate: x509.Certificate,
        signing_key: SigningKey,
        chain: Sequence[x509.Certificate] = (),
        source: str = "",
    ) -> None:
        from cryptography.hazmat.primitives import serialization

        enc = serialization.Encoding.DER
        chain = tuple(chain)
        self._init(
            certificate.public_bytes(enc),
            tuple(c.public_bytes(enc) for c in chain),
            signing_key,
            source,
            certificate=certificate,
            chain=chain,
        )

    def _init(
        self,
        der: bytes,
        chain_der: tuple[bytes, ...],
        signing_key: SigningKey,
        source: str,
        *,
        fields: _derlib.CertificateFields | None = None,
        certificate: x509.Certificate | None = None,
        chain: tuple[x509.Certificate, ...] | None = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "signing_key", signing_key)
        setter(self, "source", source)
        setter(self, "_der", der)
        setter(self, "_chain_der", chain_der)
        setter(self, "_fields", fields)
        setter(self, "_certificate", certificate)
        setter(self, "_chain", chain)
        setter(self, "_lock", threading.Lock())

    @classmethod
    def _from_der(
        cls,
        der: bytes,
        fields: _derlib.CertificateFields,
        signing_key: SigningKey,
        chain_der: tuple[bytes, ...],
        source: str,
    ) -> Identity:
        self = cls.__new__(cls)
        self._init(der, chain_der, signing_key, source, fields=fields)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Identity is read-only: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Identity is read-only: cannot delete {name!r}")

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate (parsed with cryptography on first use)."""
        cert = self._certificate
        if cert is None:
            from cryptography import x509

            with self._lock:
                cert = self._certificate
                if cert is None:
                    cert = x509.load_der_x509_certificate(self._der)
                    object.__setattr__(self, "_certificate", cert)
        return cert

    def _parsed_chain(self) -> tuple[x509.Certificate, ...]:
        chain = self._chain
        if chain is None:
            from cryptography import x509

            with self._lock:
                chain = self._chain
                if chain is None:
                    chain = tuple(x509.load_der_x509_certificate(d) for d in self._chain_der)
                    object.__setattr__(self, "_chain", chain)
        return chain

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The intermediates, leaf excluded (parsed with cryptography on first use; request
        code uses :attr:`chain_der` / :attr:`chain_b64`, which need no parsing)."""
        if self._chain is not None:
            return self._chain
        if not self._chain_der:
            return ()
        return self._parsed_chain()

    @property
    def serial_number(self) -> int:
        """The leaf's serial number (the SigV4 credential, in decimal)."""
        fields = self._fields
        return fields.serial_number if fields is not None else self.certificate.serial_number

    @property
    def certificate_der(self) -> bytes:
        return self._der

    @property
    def certificate_b64(self) -> str:
        """Standard padded base64 of the leaf DER, one line (the ``X-Amz-X509`` value)."""
        return base64.b64encode(self._der).decode("ascii")

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        return self._chain_der

    @property
    def chain_b64(self) -> tuple[str, ...]:
        """Base64 DER of each intermediate (joined with ``,`` for ``X-Amz-X509-Chain``)."""
        return tuple(base64.b64encode(d).decode("ascii") for d in self._chain_der)

    @property
    def algorithm(self) -> str:
        return self.signing_key.algorithm

    @property
    def not_before(self) -> datetime:
        fields = self._fields
        return fields.not_before if fields is not None else self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        fields = self._fields
        return fields.not_after if fields is not None else self.certificate.not_valid_after_utc

    def check_validity(self, now: datetime | None = None) -> None:
        """Raise :class:`CertificateValidityError` unless ``now`` is within the validity period."""
        at = _utc(now) if now is not None else datetime.now(UTC)
        label = describe(self.source or "<certificate>")
        period = f"valid from {_iso(self.not_before)} to {_iso(self.not_after)}"
        if at > self.not_after:
            raise CertificateValidityError(
                f"certificate {label} expired on {_iso(self.not_after)} ({period}): renew it",
                source=self.source,
            )
        if at < self.not_before:
            raise CertificateValidityError(
                f"certificate {label} is not valid until {_iso(self.not_before)} ({period}): "
                "wait, or check the system clock",
                source=self.source,
            )

    def __repr__(self) -> str:
        return (
            f"Identity(serial_number={self.serial_number}, "
            f"subject={self.certificate.subject.rfc4514_string()!r}, "
            f"algorithm={self.algorithm!r}, chain={len(self.chain)}, source={self.source!r})"
        )

    @classmethod
    def load(
        cls,
        certificate: CertificateInput,
        private_key: KeyInput | None = None,
        intermediates: IntermediatesInput | None = None,
        password: Password = None,
        *,
        check_validity: bool = True,
        now: datetime | None = None,
    ) -> Identity:
        """Load and check an identity.

        ``private_key=None``: the certificate source holds the key too (PEM with both, or
        PKCS#12). Extra certificates in the certificate source (a PEM bundle or PKCS#12) become
        the chain unless ``intermediates`` is given. The leaf is the first certificate matching
        the key.
        """
        name = _source_name(certificate)
        with _guard(
            f"could not load the identity from {describe(name)}: check the certificate and key",
            name,
        ):
            identity = _load_fast(cls, certificate, private_key, intermediates, password)
            if identity is None:
                identity = _load(cls, certificate, private_key, intermediates, password)
        if check_validity:
            identity.check_validity(now)
        return identity


def _source_name(spec: object) -> str:
    if isinstance(spec, bytes | bytearray | memoryview):
        return "<bytes>"
    if isinstance(spec, str | os.PathLike):
        path = file_path(spec)
        return str(path) if path is not None else describe(str(spec))
    return "<certificate>"


def _fast_certificates(data: bytes, source: str) -> list[tuple[bytes, _derlib.CertificateFields]]:
    """(DER, fields) of every certificate in ``data`` read without cryptography.x509.

    Raises :class:`SourceError` on anything unusual; the caller then takes the full path,
    which gives the real error message.
    """
    if not _is_pem(data):
        ders: list[bytes | None] = [bytes(data)]
    else:
        ders = [_pem_der(b.body) for b in _pem_blocks(data) if b.label in _CERT_LABELS]
    out = []
    for der in ders:
        if der is None:
            raise SourceError("not base64", source=source)
        out.append((der, _derlib.parse_certificate(der, source=source)))
    if not out:
        raise SourceError("no certificate", source=source)
    return out


def certificate_der_fields(data: bytes, *, source: str) -> tuple[bytes, _derlib.CertificateFields]:
    """The first certificate in ``data`` (PEM or DER): its DER and what the DER reader takes
    from it. A certificate the strict reader refuses is read by cryptography instead, whose
    errors name what is wrong."""
    try:
        return _fast_certificates(data, source)[0]
    except SourceError:
        pass
    from cryptography.hazmat.primitives import serialization

    cert = load_certificate(data, source=source)
    fields = _derlib.CertificateFields(
        cert.serial_number,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return cert.public_bytes(serialization.Encoding.DER), fields


def _is_certificate_object(value: object) -> bool:
    from cryptography import x509

    return isinstance(value, x509.Certificate)


def _load_fast(
    cls: type[Identity],
    certificate: object,
    private_key: KeyInput | None,
    intermediates: IntermediatesInput | None,
    password: Password,
) -> Identity | None:
    """The common case (one certificate file, a key file, intermediates from a file or none)
    without importing cryptography.x509; ``None`` for anything else, or on any problem with
    the certificates, so that :func:`_load` handles it (and words the error)."""
    if not (
        isinstance(certificate, _SPEC_TYPES)
        and isinstance(private_key, _SPEC_TYPES)
        and (intermediates is None or isinstance(intermediates, _SPEC_TYPES))
    ):
        return None
    src = read_source(certificate, what="certificate")
    if not _is_pem(src.data) and _is_pkcs12(src.data):
        return None
    try:
        certs = _fast_certificates(src.data, src.name)
    except SourceError:
        return None
    if len(certs) != 1:
        return None
    key_src = read_source(private_key, what="private key")
    key = load_private_key(key_src.data, _password_bytes(password), source=key_src.name)
    der, fields = certs[0]
    if not _fast_match(fields.spki, key):
        return None  # a mismatch, or an unusual encoding of the key: let cryptography judge
    chain_der: tuple[bytes, ...] = ()
    if intermediates is not None:
        chain_src = read_source(intermediates, what="intermediate certificates")
        try:
            chain_der = tuple(d for d, _ in _fast_certificates(chain_src.data, chain_src.name))
        except SourceError:
            return None
    return cls._from_der(der, fields, key, chain_der, src.name)


def _load(
    cls: type[Identity],
    certificate: CertificateInput,
    private_key: KeyInput | None,
    intermediates: IntermediatesInput | None,
    password: Password,
) -> Identity:
    pw = _password_bytes(password)
    embedded_key: SigningKey | None = None
    if not isinstance(certificate, _SPEC_TYPES) and _is_certificate_object(certificate):
        cert_name = "<certificate>"
        certs = [certificate]
    else:
        src = read_source(cast(SourceSpec, certificate), what="certificate")
        cert_name = src.name
        if not _is_pem(src.data) and _is_pkcs12(src.data):
            leaf, embedded_key, others = load_pkcs12(src.data, pw, source=cert_name)
            certs = [leaf, *others]
        else:
            certs = load_certificates(src.data, source=cert_name)
            if private_key is None:
                if not _is_pem(src.data) or not any(
                    b.label.endswith("PRIVATE KEY") for b in _pem_blocks(src.data)
                ):
                    raise SourceError(
                        f"no private key found in {src.label}: pass the private key "
                        "(\x1fprivate_key\x1f), or a PEM file holding both, or a PKCS#12 file",
                        source=cert_name,
                    )
                embedded_key = load_private_key(src.data, pw, source=cert_name)
    cert_label = describe(cert_name)

    key_label = cert_label
    if private_key is None:
        if embedded_key is None:
            raise SourceError(
                f"no private key given for certificate {cert_label}: pass the private key",
                source=cert_name,
            )
        key = embedded_key
    elif isinstance(private_key, _SPEC_TYPES):
        key_src = read_source(private_key, what="private key")
        key_label = key_src.label
        key = load_private_key(key_src.data, pw, source=key_src.name)
    elif isinstance(private_key, SigningKey):
        key, key_label = private_key, "<signing key>"
    else:
        key_label = "<private key>"
        key = _signing_key(private_key, key_label, key_label)

    index = _matching_index(certs, key)
    if index is None:
        raise KeyMismatchError(
            f"private key {key_label} does not match certificate {cert_label}: "
            "pass the key that was issued with this certificate",
            source=cert_name,
        )
    leaf = certs.pop(index)

    if intermediates is None:
        chain = certs
    elif isinstance(intermediates, _SPEC_TYPES):
        chain_src = read_source(intermediates, what="intermediate certificates")
        chain = load_certificates(chain_src.data, source=chain_src.name)
    else:
        chain = list(intermediates)
        if not all(_is_certificate_object(c) for c in chain):
            raise SourceError(
                "intermediates must be a path, env:NAME, -, bytes or x509.Certificate objects",
                source="<intermediates>",
            )
    return cls(leaf, key, tuple(chain), cert_name)


# --- caching loader ---------------------------------------------------------------------------

_Stamp = tuple[tuple[int, int, int, int] | None, ...]


class IdentityLoader:
    """Loads an identity once and again only when one of its files changes.

    :meth:`get` costs one ``os.stat`` per file. A file counts as changed when its device,
    inode, mtime (ns) or size differ, so replacing it atomically (write then rename, or a
    symlink swap as Kubernetes does) is always seen. If a reload fails the new error is
    raised (a stale identity is never served) and the next :meth:`get` tries again.
    Validity is checked on every call, so a cached certificate that expires is refused.
    Thread-safe.
    """

    def __init__(
        self,
        certificate: CertificateInput,
        private_key: KeyInput | None = None,
        intermediates: IntermediatesInput | None = None,
        password: Password = None,
        *,
        check_validity: bool = True,
    ) -> None:
        self._args = (certificate, private_key, intermediates)
        self._password = password
        self._check_validity = check_validity
        self._paths: tuple[Path, ...] = tuple(
            path
            for spec in self._args
            if isinstance(spec, _SPEC_TYPES) and (path := file_path(spec)) is not None
        )
        self._lock = threading.Lock()
        self._identity: Identity | None = None
        self._stamp: _Stamp | None = None
        #: How many times the files were parsed.
        self.loads = 0

    def _stat(self) -> _Stamp:
        stamps: list[tuple[int, int, int, int] | None] = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                stamps.append(None)
            else:
                stamps.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def get(self, *, now: datetime | None = None) -> Identity:
        """The identity, reloaded first if any of its files changed."""
        with self._lock:
            stamp = self._stat()
            if self._identity is None or stamp != self._stamp:
                certificate, private_key, intermediates = self._args
                self._identity = None
                identity = Identity.load(
                    certificate, private_key, intermediates, self._password, check_validity=False
                )
                self._identity, self._stamp = identity, stamp
                self.loads += 1
            identity = self._identity
        if self._check_validity:
            identity.check_validity(now)
        return identity

    def invalidate(self) -> None:
        """Forget the cached identity; the next :meth:`get` reloads."""
        with self._lock:
            self._identity = None
            self._stamp = None

    def __repr__(self) -> str:
        names = ", ".join(_source_name(a) for a in self._args if a is not None)
        return f"IdentityLoader({names}, loads={self.loads})"
