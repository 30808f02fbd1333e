"""A per-user cache of ``credential-process`` answers (``--cache``, ``ROLESANYWHERE_CACHE=1``).

The AWS CLI and SDKs run ``credential_process`` in every new process (botocore runs it again 15
minutes before expiry), so without a cache every ``aws`` command costs a CreateSession call.
:class:`CredentialCache` keeps the printed answer in ``$XDG_CACHE_HOME/rolesanywhere`` (else
``~/.cache/rolesanywhere``; folder 0700, files 0600, written by
:func:`~rolesanywhere.profiles.credfile.replace_file`), one file per *key*: a SHA-256 of every
setting that decides the answer (ARNs, region, duration, session name, endpoint, TLS and proxy
settings) and of the certificate, key and intermediates inputs' bytes (so a rotated certificate
never gets old credentials). An entry is served while more than :func:`margin` of it remains,
plus its :func:`spread`: a share of the margin (a fraction in [0, 0.5) of it, and never more than
half of what the margin leaves of the lifetime) taken from a hash of the key and the entry's
issue time. Every process of a host computes the same point for an entry (no randomness at read
time), while hosts whose entries were issued at different instants refresh at different points
of the window instead of all together. An entry is always served for at least half of its
lifetime minus the margin, so one CreateSession serves every run until then.

A miss is single-flight across processes: :meth:`CredentialCache.answer` takes an exclusive
``flock`` on ``<key>.lock`` beside the entry (0600, never through a symlink; it stays, empty),
reads the entry again (a process that held the lock may just have written it) and only then asks
for credentials, so processes that miss together (cron starting many jobs in the same second)
make one CreateSession call. The wait is bounded (``credential-process`` gives it half of its
``--timeout``, and the call what is left): a lock not had by then is one warning line and the
run asks anyway, as one extra call beats a failure. A holder that dies loses its lock with its
descriptor (the kernel releases it); the hit path takes no lock. A corrupt entry, one owned by
another user, or one group or others may read, is ignored (one warning line) and replaced.

The hit path reads a few small files and imports nothing heavy (no ``cryptography``, no ``ssl``,
not even ``pathlib`` or ``json``): it is the path every ``aws`` command pays for. An entry is a
header line (format, key, issue and expiry times) and the output, as printed. The password is
not part of the key: a cache entry is readable only by the user who had the credentials already.
"""

from __future__ import annotations

import os
import stat
import sys
import time

TYPE_CHECKING = False  # no typing import at run time: the hit path imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from rolesanywhere.credentials import Credentials

__all__ = [
    "CACHE_ENV", "LOCK_POLL", "CredentialCache", "cache_enabled", "cache_folder", "cache_key",
    "margin", "spread",
]  # fmt: skip

#: Set to 1 (or true, yes, on) to cache as ``--cache`` does.
CACHE_ENV = "ROLESANYWHERE_CACHE"

#: The settings (Python names) that decide the answer, besides the identity inputs.
_KEYED = (
    "trust_anchor_arn", "profile_arn", "role_arn", "duration_seconds", "role_session_name",
    "region", "endpoint", "verify", "proxy_from_env", "pkcs11_lib",
)  # fmt: skip
_INPUTS = ("certificate", "private_key", "intermediates")
#: Largest input file hashed (larger ones are refused by the loader anyway).
_MAX_INPUT = 1 << 20
_MAGIC = "rolesanywhere-credential-cache/1"
#: Seconds between two tries of a lock another process holds.
LOCK_POLL = 0.02


_sha256_new: Callable[[bytes], Any] | None = None


def _sha256(data: bytes) -> str:
    # The built-in module: ``hashlib`` would load OpenSSL, milliseconds of every cache hit. Found
    # once: a failed import searches every folder of ``sys.path`` each time it is tried.
    global _sha256_new
    if _sha256_new is None:
        try:
            if sys.version_info >= (3, 12):
                from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]
            else:
                from _sha256 import sha256  # type: ignore[import-not-found, no-redef, unused-ignore]
        except ImportError:  # pragma: no cover - a Python without it
            from hashlib import sha256
        _sha256_new = sha256
    return str(_sha256_new(data).hexdigest())


def cache_enabled(flag: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """``--cache`` given, or :data:`CACHE_ENV` set to 1, true, yes or on."""
    env = os.environ if environ is None else environ
    return bool(flag) or env.get(CACHE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def cache_folder(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/rolesanywhere`` (an absolute path), else ``~/.cache/rolesanywhere``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rolesanywhere")


def margin(lifetime: float) -> float:
    """Seconds that must remain for an entry to be served: 5 minutes or 10 % of its lifetime,
    whichever is larger."""
    return max(300.0, 0.1 * lifetime)


def spread(key: str, issued: float, lifetime: float) -> float:
    """Seconds by which the entry ``key`` issued at ``issued`` stops being served before
    :func:`margin` does: a fraction in [0, 0.5), from a SHA-256 of both, of the margin or of what
    the margin leaves of ``lifetime``, whichever is smaller. The same for every process."""
    fraction = int(_sha256(f"{key} {issued!r}".encode())[:8], 16) / float(1 << 33)
    edge = margin(lifetime)
    return fraction * min(edge, max(0.0, lifetime - edge))


class _Uncacheable(Exception):
    """An input the cache cannot key (standard input, a certificate on a token)."""


def _input_digest(name: str, spec: object, environ: Mapping[str, str]) -> str | None:
    if spec is None:
        return None
    if not isinstance(spec, str) or spec == "-":
        raise _Uncacheable(f"--{name.replace('_', '-')} reads standard input")
    if spec.startswith("pkcs11:") and name == "certificate":
        raise _Uncacheable("the certificate is on a PKCS#11 token")
    if spec.startswith(("pkcs11:", "handle:")):  # the key stays; the certificate is keyed
        return _sha256(spec.encode("utf-8", "surrogateescape"))
    if spec.startswith("env:"):
        return _sha256(environ.get(spec[4:], "").encode("utf-8", "surrogateescape"))
    path = os.path.expanduser(spec)
    with open(path, "rb") as stream:  # an unreadable file: no key, the loader says why
        data = stream.read(_MAX_INPUT + 1)
    return _sha256(os.path.abspath(path).encode("utf-8", "surrogateescape") + b"\0" + data)


def cache_key(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """The key of the answer ``values`` (settings by Python name) give: hex SHA-256. Raises
    ``OSError`` for an unreadable input, ``ValueError`` for an input it cannot key."""
    env = os.environ if environ is None else environ
    material: dict[str, Any] = {"format": _MAGIC}
    material.update((name, values.get(name)) for name in _KEYED)
    try:
        material.update((n, _input_digest(n, values.get(n), env)) for n in _INPUTS)
    except _Uncacheable as exc:
        raise ValueError(str(exc)) from None
    # repr of str, int, float, bool and None is stable; no json import on the hit path
    return _sha256(repr(sorted(material.items())).encode("utf-8", "surrogateescape"))


class CredentialCache:
    """The cache entry of one set of settings: :meth:`get` the answer to print, :meth:`put` a
    new one, :meth:`answer` either (one CreateSession for the processes that miss together).
    ``warn`` gets one line per problem (never a secret); ``clock``: epoch seconds; ``timer`` and
    ``sleep`` time the wait for the lock."""

    def __init__(
        self,
        values: Mapping[str, Any],
        *,
        warn: Callable[[str], None],
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.warn = warn
        self.clock = clock
        self.timer = timer
        self.sleep = sleep
        self.folder = cache_folder(environ)
        self.path: str | None = None
        try:
            self.key = cache_key(values, environ)
        except ValueError as exc:
            warn(f"not caching: {exc}")
            return
        except OSError:
            return  # the loader reports the file
        self.path = os.path.join(self.folder, f"{self.key}.json")

    def get(self) -> str | None:
        """The cached ``credential_process`` output, or ``None`` (missing, expiring, ignored)."""
        return self._read(self._ignore)

    def answer(self, fetch: Callable[[], Credentials], wait: float) -> str:
        """The output to print: the cached one, else that of ``fetch()`` (a CreateSession call),
        kept for the next runs. A miss takes the entry's lock (waiting at most ``wait`` seconds)
        and reads the entry again before it calls ``fetch``."""
        output = self.get()
        if output is not None or self.path is None:
            return output if output is not None else fetch().to_process_json()
        fd = self._lock(self.path[: -len(".json")] + ".lock", wait)
        try:
            if fd is not None:  # a process that held the lock may just have written the entry
                output = self._read(lambda reason: None)  # get() already said what was wrong
                if output is not None:
                    return output
            credentials = fetch()
            self.put(credentials)
            return credentials.to_process_json()
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock

    def _read(self, ignore: Callable[[str], None]) -> str | None:
        if self.path is None:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            ignore(exc.strerror or "it cannot be opened")
            return None
        try:
            info = os.fstat(fd)
            problem = _problem(info)
            if problem is not None:
                ignore(problem)
                return None
            data = os.read(fd, _MAX_INPUT)
        finally:
            os.close(fd)
        try:
            header, output = data.decode().split("\n", 1)
            magic, key, issued, expires = header.rsplit(" ", 3)
            if (magic, key) != (_MAGIC, self.key) or not output.startswith('{"Version":1,'):
                raise ValueError
            if not output.endswith("}") or "\n" in output:
                raise ValueError
            left, lifetime = float(expires) - self.clock(), float(expires) - float(issued)
        except ValueError:  # UnicodeDecodeError too
            ignore("it is not a valid cache entry")
            return None
        return output if left > margin(lifetime) + spread(key, float(issued), lifetime) else None

    def put(self, credentials: Credentials) -> None:
        """Keep ``credentials`` (with an expiry) as the answer; a failure is a warning."""
        if self.path is None or credentials.expiration is None:
            return
        from pathlib import Path

        from rolesanywhere.errors import RolesAnywhereError
        from rolesanywhere.profiles.credfile import replace_file

        expires = credentials.expiration.timestamp()
        entry = f"{_MAGIC} {self.key} {self.clock()!r} {expires!r}\n{credentials.to_process_json()}"
        try:
            self._folder_ready()
            replace_file(Path(self.path), entry.encode())
        except (OSError, RolesAnywhereError, _Uncacheable) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.warn(f"could not write the credential cache {self.folder} ({reason})")

    def _folder_ready(self) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        info = os.lstat(self.folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise _Uncacheable("it is not a folder of this user's")
        if info.st_mode & 0o077:
            os.chmod(self.folder, 0o700)

    def _lock(self, path: str, wait: float) -> int | None:
        """A descriptor holding the exclusive lock ``path``, or ``None`` (one warning line) when
        it cannot be had within ``wait`` seconds or at all."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no single flight
            return None
        from rolesanywhere.profiles.credfile import _open_lock

        try:
            self._folder_ready()
            fd = _open_lock(path)
        except (OSError, _Uncacheable) as exc:
            self._unlocked(path, exc)
            return None
        deadline = self.timer() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                left = deadline - self.timer()
                if left > 0:
                    self.sleep(min(LOCK_POLL, left))
                    continue
                problem: Exception = _Uncacheable(f"another process held it for {wait:g} s")
            except OSError as exc:
                problem = exc
            os.close(fd)
            self._unlocked(path, problem)
            return None

    def _unlocked(self, path: str, exc: Exception) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.warn(f"could not lock the credential cache entry {path} ({reason}); asking anyway")

    def _ignore(self, reason: str) -> None:
        self.warn(f"ignoring the cache entry {self.path}: {reason}; it will be replaced")


def _problem(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if info.st_uid != os.getuid():
        return "it is owned by another user"
    if info.st_mode & 0o077:
        return "group or others may read or write it"
    return None
