"""An X.509 identity: the leaf certificate, its signing key and the intermediates.

:meth:`Identity.load` reads PEM or DER certificates, PKCS#1 / SEC1 / PKCS#8 keys (plain or
encrypted), legacy encrypted PEM and PKCS#12, from anything
:func:`~rolesanywhere.x509.sources.read_source` accepts. Every failure is an
:class:`~rolesanywhere.errors.IdentityError` with a one-line message naming the source and the
fix, never the key or the password.
:class:`~rolesanywhere.x509.loader.IdentityLoader` caches the parsed identity and reloads it
when a file changes. The formats are read by :mod:`~rolesanywhere.x509.certificates`,
:mod:`~rolesanywhere.x509.keyfiles` and :mod:`~rolesanywhere.x509.pkcs12`.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from rolesanywhere.errors import (
    CertificateValidityError,
    KeyMismatchError,
    SourceError,
)
from rolesanywhere.x509 import der as _derlib
from rolesanywhere.x509.certificates import (
    fast_certificates,
    is_certificate_object,
    load_certificates,
)
from rolesanywhere.x509.keyfiles import (
    TPM_HANDLE_PREFIX,
    TSS2_PEM_LABEL,
    Password,
    load_private_key,
    password_bytes,
    read_signing_key,
    signing_key,
)
from rolesanywhere.x509.keys import SigningKey
from rolesanywhere.x509.matching import fast_match, matching_index
from rolesanywhere.x509.pem import is_pem, is_pkcs12, pem_blocks
from rolesanywhere.x509.pkcs12 import load_pkcs12
from rolesanywhere.x509.sources import (
    SPEC_TYPES,
    SourceSpec,
    describe,
    file_path,
    guard,
    is_pkcs11_uri,
    read_source,
)

__all__ = [
    "CertificateInput",
    "Identity",
    "IntermediatesInput",
    "KeyInput",
    "source_name",
]

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

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
        tpm_key_password: str | None = None,
        no_tpm_key_password: bool = False,
        pkcs11_lib: str | None = None,
        reuse_pin: bool = False,
    ) -> Identity:
        """Load and check an identity.

        ``private_key=None``: the certificate source holds the key too (PEM with both, or
        PKCS#12). Extra certificates in the certificate source (a PEM bundle or PKCS#12) become
        the chain unless ``intermediates`` is given. The leaf is the first certificate matching
        the key. ``private_key`` may name a TPM 2.0 key (``handle:0x81000101`` or a TSS2 key
        file, see :mod:`~rolesanywhere.x509.tpm`); ``tpm_key_password`` is that key's
        password, ``no_tpm_key_password`` says it has none. The certificate, the key or both
        may be ``pkcs11:`` URIs (see
        :mod:`~rolesanywhere.x509.pkcs11`; ``pkcs11_lib`` is the module, ``reuse_pin`` lets a
        key marked always-authenticate sign with the login PIN).
        """
        name = source_name(certificate)
        with guard(
            f"could not load the identity from {describe(name)}: check the certificate and key",
            name,
        ):
            identity: Identity | None
            if is_pkcs11_uri(certificate) or is_pkcs11_uri(private_key):
                identity = _load_token(
                    cls, certificate, private_key, intermediates, pkcs11_lib, reuse_pin
                )
            else:
                if isinstance(private_key, SPEC_TYPES) and _is_tpm_key(private_key):
                    private_key = read_signing_key(
                        private_key,
                        None,
                        tpm_key_password=tpm_key_password,
                        no_tpm_key_password=no_tpm_key_password,
                    )
                identity = _load_fast(cls, certificate, private_key, intermediates, password)
            if identity is None:
                identity = _load(cls, certificate, private_key, intermediates, password)
        if check_validity:
            identity.check_validity(now)
        return identity


def _is_tpm_key(spec: SourceSpec) -> bool:
    """Whether a key spec is a TPM key: ``handle:…``, or a file starting as a TSS2 key file."""
    if isinstance(spec, str) and spec.startswith(TPM_HANDLE_PREFIX):
        return True
    path = file_path(spec)
    if path is None:
        return isinstance(spec, bytes) and TSS2_PEM_LABEL in spec
    try:
        with open(path, "rb") as file:
            head = file.read(len(TSS2_PEM_LABEL) + 64)
    except OSError:
        return False
    return TSS2_PEM_LABEL in head


def source_name(spec: object) -> str:
    if isinstance(spec, bytes | bytearray | memoryview):
        return "<bytes>"
    if isinstance(spec, str | os.PathLike):
        path = file_path(spec)
        return str(path) if path is not None else describe(str(spec))
    return "<certificate>"


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
        isinstance(certificate, SPEC_TYPES)
        and isinstance(private_key, SPEC_TYPES)
        and (intermediates is None or isinstance(intermediates, SPEC_TYPES))
    ):
        return None
    src = read_source(certificate, what="certificate")
    if not is_pem(src.data) and is_pkcs12(src.data):
        return None
    try:
        certs = fast_certificates(src.data, src.name)
    except SourceError:
        return None
    if len(certs) != 1:
        return None
    key_src = read_source(private_key, what="private key")
    key = load_private_key(key_src.data, password_bytes(password), source=key_src.name)
    der, fields = certs[0]
    if not fast_match(fields.spki, key):
        return None  # a mismatch, or an unusual encoding of the key: let cryptography judge
    chain_der: tuple[bytes, ...] = ()
    if intermediates is not None:
        chain_src = read_source(intermediates, what="intermediate certificates")
        try:
            chain_der = tuple(d for d, _ in fast_certificates(chain_src.data, chain_src.name))
        except SourceError:
            return None
    return cls._from_der(der, fields, key, chain_der, src.name)


def _load_token(
    cls: type[Identity],
    certificate: CertificateInput,
    private_key: KeyInput | None,
    intermediates: IntermediatesInput | None,
    pkcs11_lib: str | None,
    reuse_pin: bool,
) -> Identity:
    from rolesanywhere.x509.pkcs11 import load_token_identity

    def file_certificates() -> list[x509.Certificate]:
        if not isinstance(certificate, SPEC_TYPES) and is_certificate_object(certificate):
            return [certificate]
        src = read_source(cast(SourceSpec, certificate), what="certificate")
        return load_certificates(src.data, source=src.name)

    leaf, key, others, source = load_token_identity(
        certificate, private_key, pkcs11_lib=pkcs11_lib, reuse_pin=reuse_pin,
        file_certificates=file_certificates,
    )  # fmt: skip
    if not is_pkcs11_uri(certificate):
        source = source_name(certificate)
    return cls(leaf, key, tuple(_chain(intermediates, others)), source)


def _chain(
    intermediates: IntermediatesInput | None, others: list[x509.Certificate]
) -> list[x509.Certificate]:
    if intermediates is None:
        return others
    if isinstance(intermediates, SPEC_TYPES):
        chain_src = read_source(intermediates, what="intermediate certificates")
        return load_certificates(chain_src.data, source=chain_src.name)
    chain = list(intermediates)
    if not all(is_certificate_object(c) for c in chain):
        raise SourceError(
            "intermediates must be a path, env:NAME, -, bytes or x509.Certificate objects",
            source="<intermediates>",
        )
    return chain


def _load(
    cls: type[Identity],
    certificate: CertificateInput,
    private_key: KeyInput | None,
    intermediates: IntermediatesInput | None,
    password: Password,
) -> Identity:
    pw = password_bytes(password)
    embedded_key: SigningKey | None = None
    if not isinstance(certificate, SPEC_TYPES) and is_certificate_object(certificate):
        cert_name = "<certificate>"
        certs = [certificate]
    else:
        src = read_source(cast(SourceSpec, certificate), what="certificate")
        cert_name = src.name
        if not is_pem(src.data) and is_pkcs12(src.data):
            leaf, embedded_key, others = load_pkcs12(src.data, pw, source=cert_name)
            certs = [leaf, *others]
        else:
            certs = load_certificates(src.data, source=cert_name)
            if private_key is None:
                if not is_pem(src.data) or not any(
                    b.label.endswith("PRIVATE KEY") for b in pem_blocks(src.data)
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
    elif isinstance(private_key, SPEC_TYPES):
        key_src = read_source(private_key, what="private key")
        key_label = key_src.label
        key = load_private_key(key_src.data, pw, source=key_src.name)
    elif isinstance(private_key, SigningKey):
        key, key_label = private_key, "<signing key>"
    else:
        key_label = "<private key>"
        key = signing_key(private_key, key_label, key_label)

    index = matching_index(certs, key)
    if index is None:
        raise KeyMismatchError(
            f"private key {key_label} does not match certificate {cert_label}: "
            "pass the key that was issued with this certificate",
            source=cert_name,
        )
    leaf = certs.pop(index)
    return cls(leaf, key, tuple(_chain(intermediates, certs)), cert_name)
