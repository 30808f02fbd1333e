"""The caching identity loader: parse once, reload when a file changes."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rolesanywhere.x509.identity import Identity, source_name
from rolesanywhere.x509.sources import SPEC_TYPES, file_path

if TYPE_CHECKING:
    from rolesanywhere.x509.identity import CertificateInput, IntermediatesInput, KeyInput
    from rolesanywhere.x509.keyfiles import Password

__all__ = ["IdentityLoader"]

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
        tpm_key_password: str | None = None,
        no_tpm_key_password: bool = False,
        pkcs11_lib: str | None = None,
        reuse_pin: bool = False,
    ) -> None:
        self._args = (certificate, private_key, intermediates)
        self._pkcs11_lib = pkcs11_lib
        self._reuse_pin = reuse_pin
        self._password = password
        self._tpm_password = tpm_key_password
        self._no_tpm_password = no_tpm_key_password
        self._check_validity = check_validity
        self._paths: tuple[Path, ...] = tuple(
            path
            for spec in self._args
            if isinstance(spec, SPEC_TYPES) and (path := file_path(spec)) is not None
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
                    certificate,
                    private_key,
                    intermediates,
                    self._password,
                    check_validity=False,
                    tpm_key_password=self._tpm_password,
                    no_tpm_key_password=self._no_tpm_password,
                    pkcs11_lib=self._pkcs11_lib,
                    reuse_pin=self._reuse_pin,
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
        names = ", ".join(source_name(a) for a in self._args if a is not None)
        return f"IdentityLoader({names}, loads={self.loads})"
