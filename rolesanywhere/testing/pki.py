"""A throw-away PKI for tests and the demo: a root CA, an intermediate CA and leaves.

Every key format Roles Anywhere clients meet can be produced (PKCS#1, SEC1, PKCS#8 plain and
encrypted, legacy encrypted PEM, PKCS#12). Formats ``cryptography`` cannot write (PBES2 with
chosen ciphers/PRFs, scrypt, PBES1) are made with the ``openssl`` CLI; check
:func:`openssl_available` / :attr:`KeyFormat.needs_openssl` before using them.

RSA key generation is slow, so RSA private keys are cached per ``(key_type, slot)`` for the
whole process; EC, ML-DSA and Ed25519 keys are cheap and fresh unless a slot is asked for.
ML-DSA keys (:data:`MLDSA_KEY_TYPES`) are written as PKCS#8 in their seed form (plain or
encrypted), the one form cryptography writes.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12 as _pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from rolesanywhere.x509.identity import Identity
    from rolesanywhere.x509.mldsa import MLDSAPrivateKey

__all__ = [
    "KEY_TYPES",
    "MLDSA_KEY_TYPES",
    "PKI",
    "UNSUPPORTED_KEY_TYPES",
    "IssuedCert",
    "KeyFormat",
    "PrivateKey",
    "generate_private_key",
    "openssl_available",
]

#: Key types Roles Anywhere accepts.
KEY_TYPES: tuple[str, ...] = ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ec-p521")
#: ML-DSA key types Roles Anywhere accepts (kept apart: fewer formats apply to them).
MLDSA_KEY_TYPES: tuple[str, ...] = ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87")
#: Key types the library must refuse (for negative tests).
UNSUPPORTED_KEY_TYPES: tuple[str, ...] = ("rsa-1024", "ec-secp256k1", "ec-p224", "ed25519")

if TYPE_CHECKING:
    PrivateKey = (
        rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | MLDSAPrivateKey
    )
else:  # the ML-DSA classes are imported when an ML-DSA key is made
    PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ec-p256": ec.SECP256R1,
    "ec-p384": ec.SECP384R1,
    "ec-p521": ec.SECP521R1,
    "ec-p224": ec.SECP224R1,
    "ec-secp256k1": ec.SECP256K1,
}
_RSA_BITS: dict[str, int] = {"rsa-1024": 1024, "rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
HashName = Literal["sha256", "sha384", "sha512"]

_key_cache: dict[tuple[str, int], PrivateKey] = {}
_key_lock = threading.Lock()


def _new_key(key_type: str) -> PrivateKey:
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type in MLDSA_KEY_TYPES:
        from rolesanywhere.x509.mldsa import PRIVATE_KEY_CLASSES

        return PRIVATE_KEY_CLASSES[key_type.upper()].generate()
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    known = ", ".join(KEY_TYPES + MLDSA_KEY_TYPES + UNSUPPORTED_KEY_TYPES)
    raise ValueError(f"unknown key type {key_type!r}: use one of {known}")


def generate_private_key(key_type: str, *, slot: int | None = None) -> PrivateKey:
    """A private key of ``key_type`` (see :data:`KEY_TYPES`, :data:`UNSUPPORTED_KEY_TYPES`).

    With ``slot`` the key is cached: the same ``(key_type, slot)`` always gives the same key in
    this process, and different slots give different keys. ``slot=None`` caches RSA keys in
    slot 0 and makes a fresh key for the other (cheap) types.
    """
    if slot is None:
        if key_type not in _RSA_BITS:
            return _new_key(key_type)
        slot = 0
    with _key_lock:
        key = _key_cache.get((key_type, slot))
        if key is None:
            key = _key_cache[(key_type, slot)] = _new_key(key_type)
        return key


def openssl_available() -> bool:
    """Whether the ``openssl`` CLI (needed by some :class:`KeyFormat` members) is on ``PATH``."""
    return shutil.which("openssl") is not None


class KeyFormat(enum.Enum):
    """How :meth:`IssuedCert.key_bytes` serialises a private key."""

    PKCS1_PEM = "pkcs1-pem"  # RSA only, "BEGIN RSA PRIVATE KEY"
    PKCS1_DER = "pkcs1-der"
    SEC1_PEM = "sec1-pem"  # EC only, "BEGIN EC PRIVATE KEY"
    SEC1_DER = "sec1-der"
    PKCS8_PEM = "pkcs8-pem"
    PKCS8_DER = "pkcs8-der"
    #: PBES2, AES-256-CBC, PBKDF2-HMAC-SHA256 (cryptography's BestAvailableEncryption).
    PKCS8_ENCRYPTED_PEM = "pkcs8-encrypted-pem"
    PKCS8_ENCRYPTED_DER = "pkcs8-encrypted-der"
    #: Legacy OpenSSL PEM ("Proc-Type: 4,ENCRYPTED", DEK-Info AES-256-CBC), PKCS#1 or SEC1 inside.
    TRADITIONAL_ENCRYPTED_PEM = "traditional-encrypted-pem"
    # The following need the openssl CLI.
    PKCS8_AES128_SHA1_PEM = "pkcs8-aes128-sha1-pem"
    PKCS8_AES192_SHA384_PEM = "pkcs8-aes192-sha384-pem"
    PKCS8_AES256_SHA512_PEM = "pkcs8-aes256-sha512-pem"
    PKCS8_AES256_SHA256_DER = "pkcs8-aes256-sha256-der"
    PKCS8_SCRYPT_PEM = "pkcs8-scrypt-pem"
    PKCS8_PBES1_3DES_PEM = "pkcs8-pbes1-3des-pem"

    @property
    def encrypted(self) -> bool:
        """Whether this format needs a password."""
        return self not in _PLAIN_FORMATS

    @property
    def pem(self) -> bool:
        """Whether the output is PEM (else DER)."""
        return self.value.endswith("-pem")

    @property
    def needs_openssl(self) -> bool:
        """Whether producing this format runs the ``openssl`` CLI."""
        return self in _OPENSSL_ARGS

    def applies_to(self, key_type: str) -> bool:
        """Whether a key of ``key_type`` can be written in this format."""
        if self in (KeyFormat.PKCS1_PEM, KeyFormat.PKCS1_DER):
            return key_type.startswith("rsa-")
        if self in (KeyFormat.SEC1_PEM, KeyFormat.SEC1_DER):
            return key_type.startswith("ec-")
        if self is KeyFormat.TRADITIONAL_ENCRYPTED_PEM:
            return not key_type.startswith(("ed", "ml-dsa"))
        return not (key_type.startswith("ml-dsa") and self.needs_openssl)

    @classmethod
    def for_key_type(cls, key_type: str, *, include_openssl: bool = True) -> list[KeyFormat]:
        """Every format that applies to ``key_type``."""
        return [
            f for f in cls if f.applies_to(key_type) and (include_openssl or not f.needs_openssl)
        ]


_PLAIN_FORMATS = frozenset(
    {
        KeyFormat.PKCS1_PEM,
        KeyFormat.PKCS1_DER,
        KeyFormat.SEC1_PEM,
        KeyFormat.SEC1_DER,
        KeyFormat.PKCS8_PEM,
        KeyFormat.PKCS8_DER,
    }
)
_OPENSSL_ARGS: dict[KeyFormat, tuple[str, ...]] = {
    KeyFormat.PKCS8_AES128_SHA1_PEM: ("-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"),
    KeyFormat.PKCS8_AES192_SHA384_PEM: ("-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA384"),
    KeyFormat.PKCS8_AES256_SHA512_PEM: ("-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA512"),
    KeyFormat.PKCS8_AES256_SHA256_DER: (
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA256",
        "-outform",
        "DER",
    ),
    KeyFormat.PKCS8_SCRYPT_PEM: ("-scrypt",),
    KeyFormat.PKCS8_PBES1_3DES_PEM: ("-v1", "PBE-SHA1-3DES"),
}


def _openssl_pkcs8(key: PrivateKey, fmt: KeyFormat, password: bytes) -> bytes:
    if not openssl_available():
        raise RuntimeError(f"key format {fmt.name} needs the openssl CLI, which is not on PATH")
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    env = dict(os.environ, ROLESANYWHERE_TEST_PKI_PASS=password.decode("utf-8"))
    proc = subprocess.run(
        [
            "openssl",
            "pkcs8",
            "-topk8",
            "-passout",
            "env:ROLESANYWHERE_TEST_PKI_PASS",
            *_OPENSSL_ARGS[fmt],
        ],
        input=plain,
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"openssl pkcs8 failed for {fmt.name}: {err[:1]}")
    return proc.stdout


def _serialize_key(key: PrivateKey, fmt: KeyFormat, password: bytes | None) -> bytes:
    if fmt.encrypted and not password:
        raise ValueError(f"key format {fmt.name} needs a non-empty password")
    if not fmt.encrypted and password is not None:
        raise ValueError(f"key format {fmt.name} is not encrypted: pass password=None")
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
    if fmt in (KeyFormat.PKCS1_PEM, KeyFormat.PKCS1_DER) and not is_rsa:
        raise ValueError(f"{fmt.name} holds RSA keys only")
    if fmt in (KeyFormat.SEC1_PEM, KeyFormat.SEC1_DER) and not is_ec:
        raise ValueError(f"{fmt.name} holds EC keys only")
    if fmt in _OPENSSL_ARGS:
        assert password is not None
        return _openssl_pkcs8(key, fmt, password)
    enc = serialization.Encoding.PEM if fmt.pem else serialization.Encoding.DER
    if fmt in (
        KeyFormat.PKCS1_PEM,
        KeyFormat.PKCS1_DER,
        KeyFormat.SEC1_PEM,
        KeyFormat.SEC1_DER,
        KeyFormat.TRADITIONAL_ENCRYPTED_PEM,
    ):
        if not (is_rsa or is_ec):
            raise ValueError(f"{fmt.name} holds RSA or EC keys only")
        private_format = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        private_format = serialization.PrivateFormat.PKCS8
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(enc, private_format, encryption)


@dataclass(frozen=True)
class IssuedCert:
    """A certificate with its private key and the intermediates between it and the root."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    #: Issuing intermediates, nearest first, root excluded (empty for roots and root-issued).
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def serial_number(self) -> int:
        return self.certificate.serial_number

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def chain_pem(self) -> bytes:
        """The intermediates as one PEM bundle (empty bytes when there are none)."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def identity(self) -> Identity:
        """This certificate, its key and its intermediates as a loaded :class:`Identity`."""
        from rolesanywhere.x509.identity import Identity

        return Identity.load(self.cert_pem(), self.key_bytes(), self.chain_pem() or None)

    def key_bytes(
        self, fmt: KeyFormat = KeyFormat.PKCS8_PEM, password: bytes | None = None
    ) -> bytes:
        """The private key in ``fmt``; encrypted formats need ``password``, others refuse one."""
        return _serialize_key(self.private_key, fmt, password)

    def pkcs12(
        self,
        password: bytes | None,
        *,
        legacy: bool = False,
        chain: Sequence[x509.Certificate] = (),
        friendly_name: bytes | None = b"client",
    ) -> bytes:
        """A PKCS#12 file: modern (PBES2 AES-256 / PBKDF2-SHA256, SHA-256 MAC) or legacy
        (PBES1 3DES, SHA-1 MAC). ``password=None`` writes an unencrypted, MAC-less file."""
        encryption: serialization.KeySerializationEncryption
        if password is None:
            encryption = serialization.NoEncryption()
        else:
            pbes = (
                _pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC
                if legacy
                else _pkcs12.PBES.PBESv2SHA256AndAES256CBC
            )
            mac: hashes.HashAlgorithm = hashes.SHA1() if legacy else hashes.SHA256()  # noqa: S303
            encryption = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .kdf_rounds(2048)
                .key_cert_algorithm(pbes)
                .hmac_hash(mac)
                .build(password)
            )
        key = self.private_key
        if not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ValueError("cryptography writes no PKCS#12 file for an ML-DSA key")
        return _pkcs12.serialize_key_and_certificates(
            friendly_name, key, self.certificate, list(chain) or None, encryption
        )

    def openssl_pkcs12(
        self, password: bytes, *, legacy: bool = True, chain: Sequence[x509.Certificate] = ()
    ) -> bytes:
        """A PKCS#12 file made by the ``openssl`` CLI: ``legacy`` gives RC2-40 certificates and
        a 3DES key (``openssl pkcs12 -export -legacy``), else OpenSSL 3's AES defaults."""
        if not openssl_available():
            raise RuntimeError("openssl_pkcs12 needs the openssl CLI, which is not on PATH")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            cert, key = self.write(folder, "leaf")
            args = ["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key)]
            if chain:
                bundle = folder / "chain.pem"
                bundle.write_bytes(
                    b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
                )
                args += ["-certfile", str(bundle)]
            args += ["-passout", "env:ROLESANYWHERE_TEST_PKI_PASS"]
            if legacy:
                args.append("-legacy")
            env = dict(os.environ, ROLESANYWHERE_TEST_PKI_PASS=password.decode("utf-8"))
            proc = subprocess.run(args, capture_output=True, env=env, check=False, timeout=60)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"openssl pkcs12 failed: {err[:1]}")
        return proc.stdout

    def combined_pem(self, *, key_first: bool = False, with_chain: bool = False) -> bytes:
        """One PEM file holding the certificate and the (unencrypted PKCS#8) key."""
        cert = self.cert_pem() + (self.chain_pem() if with_chain else b"")
        key = self.key_bytes(KeyFormat.PKCS8_PEM)
        return key + cert if key_first else cert + key

    def write(
        self,
        directory: Path,
        name: str,
        *,
        key_format: KeyFormat = KeyFormat.PKCS8_PEM,
        password: bytes | None = None,
    ) -> tuple[Path, Path]:
        """Write ``<name>.crt`` (PEM) and ``<name>.key``; return their paths.

        ``ValueError`` before anything is written when the key cannot take ``key_format``
        (``SEC1_*`` is for EC keys, ``PKCS1_*`` for RSA keys).
        """
        key = self.key_bytes(key_format, password)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{name}.crt"
        key_path = directory / f"{name}.key"
        cert_path.write_bytes(self.cert_pem())
        key_path.write_bytes(key)
        key_path.chmod(0o600)
        return cert_path, key_path


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _random_serial() -> int:
    while True:
        serial = x509.random_serial_number()  # < 2**159
        if serial.bit_length() >= 64:
            return serial


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rolesanywhere tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _sign_hash(key: PrivateKey, name: HashName) -> hashes.HashAlgorithm | None:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return None
    return _HASHES[name]()


def _issue(
    *,
    subject: x509.Name,
    public_key: PrivateKey,
    issuer: IssuedCert | None,
    issuer_key: PrivateKey,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    serial: int,
    signature_hash: HashName = "sha256",
    server: tuple[str, ...] | None = None,
) -> x509.Certificate:
    pub = public_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(pub)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
    else:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=isinstance(public_key, rsa.RSAPrivateKey) and server is not None,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        eku = (
            ExtendedKeyUsageOID.SERVER_AUTH
            if server is not None
            else ExtendedKeyUsageOID.CLIENT_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    builder = builder.add_extension(usage, critical=True)
    if server is not None:
        names: list[x509.GeneralName] = []
        for host in server:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, _sign_hash(issuer_key, signature_hash))  # type: ignore[arg-type]


def _make_ca(common_name: str, key_type: str, issuer: IssuedCert | None) -> IssuedCert:
    key = generate_private_key(key_type)
    now = _now()
    cert = _issue(
        subject=_name(common_name),
        public_key=key,
        issuer=issuer,
        issuer_key=issuer.private_key if issuer else key,
        ca=True,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=3650),
        serial=_random_serial(),
    )
    return IssuedCert(cert, key)


class PKI:
    """A root CA and an intermediate CA under it, issuing leaves on demand."""

    def __init__(self, *, key_type: str = "ec-p256", name: str = "Test") -> None:
        self.key_type = key_type
        self.root: IssuedCert = _make_ca(f"{name} Root CA", key_type, None)
        self.intermediate: IssuedCert = _make_ca(f"{name} Intermediate CA", key_type, self.root)
        self._foreign: PKI | None = None
        self._name = name

    def trust_anchor_pem(self) -> bytes:
        """The root certificate, PEM (what a trust anchor holds)."""
        return self.root.cert_pem()

    def leaf(
        self,
        key_type: str = "ec-p256",
        *,
        issuer: Literal["root", "intermediate"] = "intermediate",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        serial: int | None = None,
        common_name: str = "client",
        private_key: PrivateKey | None = None,
        signature_hash: HashName = "sha256",
    ) -> IssuedCert:
        """A client certificate (EKU clientAuth). Default validity: one hour ago to 30 days on."""
        ca = self.intermediate if issuer == "intermediate" else self.root
        key = private_key if private_key is not None else generate_private_key(key_type)
        now = _now()
        nb = not_before if not_before is not None else now - timedelta(hours=1)
        na = not_after if not_after is not None else now + timedelta(days=30)
        cert = _issue(
            subject=_name(common_name),
            public_key=key,
            issuer=ca,
            issuer_key=ca.private_key,
            ca=False,
            not_before=nb,
            not_after=na,
            serial=serial if serial is not None else _random_serial(),
            signature_hash=signature_hash,
        )
        chain = (self.intermediate.certificate,) if issuer == "intermediate" else ()
        return IssuedCert(cert, key, chain)

    def untrusted_leaf(self, key_type: str = "ec-p256") -> IssuedCert:
        """A leaf issued by a separate CA that has nothing to do with this PKI."""
        if self._foreign is None:
            self._foreign = PKI(key_type=self.key_type, name=f"Untrusted {self._name}")
        return self._foreign.leaf(key_type, common_name="untrusted-client")

    def expired_leaf(self, key_type: str = "ec-p256", *, days_ago: int = 1) -> IssuedCert:
        """A leaf that expired ``days_ago`` days ago (valid for 30 days before that)."""
        end = _now() - timedelta(days=days_ago)
        return self.leaf(key_type, not_before=end - timedelta(days=30), not_after=end)

    def not_yet_valid_leaf(self, key_type: str = "ec-p256", *, days_ahead: int = 1) -> IssuedCert:
        """A leaf whose validity starts ``days_ahead`` days from now."""
        start = _now() + timedelta(days=days_ahead)
        return self.leaf(key_type, not_before=start, not_after=start + timedelta(days=30))

    def server_cert(self, host: str = "127.0.0.1") -> IssuedCert:
        """A TLS server certificate issued by the root (SAN: ``host``, 127.0.0.1, localhost)."""
        hosts = tuple(dict.fromkeys((host, "127.0.0.1", "localhost")))
        key = generate_private_key("ec-p256")
        now = _now()
        cert = _issue(
            subject=_name(host),
            public_key=key,
            issuer=self.root,
            issuer_key=self.root.private_key,
            ca=False,
            not_before=now - timedelta(hours=1),
            not_after=now + timedelta(days=30),
            serial=_random_serial(),
            server=hosts,
        )
        return IssuedCert(cert, key)
