"""TPM 2.0 signing keys, as the Go helper takes them: ``handle:0x81000101`` (a persistent key)
or a TSS2 key file (``-----BEGIN TSS2 PRIVATE KEY-----``, the format of tpm2-openssl and
``tpm2tss-genkey``: OID, emptyAuth, parent, public and private blobs).

A TSS2 key file whose parent is the owner hierarchy (``0x40000001``) is loaded under the
standard storage primary (ECC P-256, AES-128-CFB, or RSA-2048 on a TPM without ECC), created
again on each use; a persistent parent handle is used as it is. RSA keys sign with RSASSA-PKCS1-v1_5
over SHA-256, EC keys with ECDSA over SHA-256 (the TPM's r and s encoded as DER). Every
signature is checked against the key's public key (the one matched with the certificate)
before it is used.

Needs the optional ``tpm`` extra (``tpm2-pytss``, over the system's ``libtss2``). The TPM is
the one the TCTI in :data:`TCTI_ENV` names (``device:/dev/tpmrm0``, ``swtpm:port=2321``,
``tabrmd``…), else the TSS default (the kernel's resource manager ``/dev/tpmrm0``). The
connection is opened for each use and closed after it, so ``serve`` and ``update`` survive a
restarted resource manager. The key's password is kept only in memory and never shown.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rolesanywhere.errors import (
    IdentityError,
    PasswordRequiredError,
    SourceError,
    UnsupportedKeyError,
    WrongPasswordError,
    parameter,
)
from rolesanywhere.x509.keyfiles import TPM_HANDLE_PREFIX
from rolesanywhere.x509.keys import ALGORITHM_RSA, algorithm_for_public_key, verify_signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "TCTI_ENV",
    "TpmSigningKey",
]

#: The environment variable naming the TCTI (as tpm2-tools read it).
TCTI_ENV = "TPM2TOOLS_TCTI"

_PERSISTENT = range(0x81000000, 0x82000000)
_INSTALL = "install the 'tpm' extra (pip install 'rolesanywhere[tpm]') and the system's libtss2"


def _handle_number(spec: str) -> int:
    text = spec[len(TPM_HANDLE_PREFIX) :]
    try:
        number = int(text, 16 if text.lower().startswith("0x") else 10)
    except ValueError:
        number = -1
    if number not in _PERSISTENT:
        raise SourceError(
            f"TPM key {spec!r} is not a persistent handle: write handle:0x81000000 to "
            "handle:0x81FFFFFF (tpm2_getcap handles-persistent lists them)",
            source=spec,
        )
    return number


def _tpm2_pytss() -> Any:
    # The TSS libraries log their errors to stderr; this module reports them as exceptions.
    os.environ.setdefault("TSS2_LOG", "all+NONE")
    try:
        import tpm2_pytss
    except ImportError as exc:  # the extra, or libtss2 under it, is missing
        raise UnsupportedKeyError(f"TPM keys need tpm2-pytss ({exc}): {_INSTALL}") from None
    return tpm2_pytss


class TpmSigningKey:
    """A :class:`~rolesanywhere.x509.keys.SigningKey` whose private key stays in a TPM.

    Build one with :meth:`from_handle` or :meth:`from_tss2`; both talk to the TPM once to read
    the public key (which must be RSA 2048-4096 or EC P-256/384/521).
    """

    __slots__ = ("_auth", "_key", "_no_auth", "_public", "_tcti", "algorithm", "source")

    algorithm: str
    #: ``handle:0x…`` or the key file's name, for messages.
    source: str

    def __init__(
        self,
        key: int | bytes,
        source: str,
        password: str | None,
        tcti: str | None,
        *,
        no_password: bool = False,
    ) -> None:
        self._key = key
        self.source = source
        self._auth = password.encode("utf-8") if password else b""
        #: ``--no-tpm-key-password``: use empty auth even when a key file says it has one
        #: (tpm2_encodeobject before 5.5 writes emptyAuth FALSE for keys made without -p).
        self._no_auth = no_password
        self._tcti = tcti
        with self._loaded() as (esapi, handle):
            public, _, _ = esapi.read_public(handle)
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        self._public: PublicKeyTypes = load_pem_public_key(public.to_pem())
        self.algorithm = algorithm_for_public_key(self._public, source=source)

    @classmethod
    def from_handle(
        cls,
        spec: str,
        *,
        password: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TpmSigningKey:
        """The persistent key ``spec`` (``handle:0x81000101``) names."""
        return cls(_handle_number(spec), spec, password, _tcti(environ))

    @classmethod
    def from_tss2(
        cls,
        data: bytes,
        source: str,
        *,
        password: str | None = None,
        no_password: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> TpmSigningKey:
        """The key of a TSS2 key file's bytes (PEM); ``source`` names the file.
        ``no_password``: the key has none, whatever the file's emptyAuth says."""
        return cls(data, source, password, _tcti(environ), no_password=no_password)

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` in the TPM (SHA-256 computed here), checked before it is returned."""
        tss = _tpm2_pytss()
        rsa = self.algorithm == ALGORITHM_RSA
        scheme = tss.TPMT_SIG_SCHEME(scheme=tss.TPM2_ALG.RSASSA if rsa else tss.TPM2_ALG.ECDSA)
        scheme.details.any.hashAlg = tss.TPM2_ALG.SHA256
        ticket = tss.TPMT_TK_HASHCHECK(tag=tss.TPM2_ST.HASHCHECK, hierarchy=tss.TPM2_RH.NULL)
        digest = tss.TPM2B_DIGEST(hashlib.sha256(data).digest())
        with self._loaded() as (esapi, handle):
            signature = self._call(lambda: esapi.sign(handle, digest, scheme, ticket))
        if rsa:
            raw = bytes(signature.signature.rsassa.sig)
        else:
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

            ecdsa = signature.signature.ecdsa
            raw = encode_dss_signature(
                int.from_bytes(bytes(ecdsa.signatureR), "big"),
                int.from_bytes(bytes(ecdsa.signatureS), "big"),
            )
        if not verify_signature(self._public, self.algorithm, data, raw):
            raise IdentityError(
                f"TPM key {self.source}: its signature does not verify with its public key: "
                "check the key's scheme (it must allow RSASSA or ECDSA with SHA-256)",
                source=self.source,
            )
        return raw

    # --- the TPM session ------------------------------------------------------------------

    @contextmanager
    def _loaded(self) -> Iterator[tuple[Any, Any]]:
        """An ESAPI connection and the key's handle in it (transient objects flushed after)."""
        tss = _tpm2_pytss()
        esapi = self._call(lambda: tss.ESAPI(self._tcti))
        try:
            if isinstance(self._key, int):
                number = self._key
                handle = self._call(lambda: esapi.tr_from_tpmpublic(number))
                esapi.tr_set_auth(handle, self._auth)
                yield esapi, handle
            else:
                handle = self._load_tss2(tss, esapi, self._key)
                try:
                    yield esapi, handle
                finally:
                    esapi.flush_context(handle)
        finally:
            esapi.close()

    def _load_tss2(self, tss: Any, esapi: Any, data: bytes) -> Any:
        from tpm2_pytss.tsskey import TSSPrivKey

        try:
            key = TSSPrivKey.from_pem(data)
        except Exception as exc:
            raise SourceError(
                f"TPM key file {self.source} could not be read ({type(exc).__name__}): "
                "pass a TSS2 PRIVATE KEY PEM file",
                source=self.source,
            ) from None
        if not self._auth and not key.empty_auth:
            if not self._no_auth:
                raise PasswordRequiredError(
                    f"TPM key {self.source} has a password: pass it "
                    f"({parameter('tpm_key_password')}), or "
                    f"{parameter('no_tpm_key_password')} if it has none",
                    source=self.source,
                )
            key = TSSPrivKey(key.private, key.public, empty_auth=True, parent=key.parent)
        return self._call(lambda: key.load(esapi, password=self._auth or None))

    def _call(self, call: Callable[[], Any]) -> Any:
        """``call()``, with TSS failures as one-line identity errors (never the password)."""
        tss = _tpm2_pytss()
        try:
            return call()
        except tss.TSS2_Exception as exc:
            if exc.error in (tss.TPM2_RC.AUTH_FAIL, tss.TPM2_RC.BAD_AUTH):
                raise WrongPasswordError(
                    f"wrong password for TPM key {self.source}: pass the key's own password "
                    f"({parameter('tpm_key_password')})",
                    source=self.source,
                ) from None
            where = self._tcti or "the default TPM (/dev/tpmrm0)"
            raise SourceError(
                f"TPM key {self.source} could not be used on {where}: {exc}: check that the "
                f"TPM is reachable ({TCTI_ENV}) and that the key is there",
                source=self.source,
            ) from None

    def __repr__(self) -> str:
        return f"TpmSigningKey(algorithm={self.algorithm!r}, source={self.source!r})"


def _tcti(environ: Mapping[str, str] | None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get(TCTI_ENV) or None
