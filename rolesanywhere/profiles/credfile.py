"""Keeping a profile of the AWS shared credentials file up to date (the ``update`` command).

:func:`update_profile` is pure: it rewrites the text of a credentials file so that one profile
holds the given credentials, keeping every other line as it was. :func:`write_profile` does the
file work better than the Go helper (which writes in place, unlocked, and makes ``~/.aws`` with
mode 0600): the directory is made 0700, the file written whole, 0600, to an unpredictable
temporary name (``O_EXCL|O_NOFOLLOW``), fsynced, read back and compared, renamed over the old one
and its folder fsynced, under an exclusive lock of ``<file>.lock``, with retries. Any failure
removes the temporary file and leaves the old file as it was. A symlinked file is updated where it
points; bytes that are not UTF-8 are kept as they are.
:func:`run_update` refreshes the profile five minutes before the credentials expire.
"""

from __future__ import annotations

import errno
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from rolesanywhere.credentials import Credentials, format_expiration
from rolesanywhere.errors import (
    CredentialsFileError,
    IdentityError,
    InvalidParameterError,
    RolesAnywhereError,
    ServiceError,
    safe_text,
)
from rolesanywhere.retry import full_jitter
from rolesanywhere.session.protocol import is_retryable_status

__all__ = [
    "REFRESH_BEFORE",
    "credentials_file_path",
    "expand_home",
    "is_permanent",
    "next_update_in",
    "replace_file",
    "run_update",
    "update_profile",
    "write_profile",
]

#: How long before expiry the profile is refreshed (as the Go helper does).
REFRESH_BEFORE = timedelta(minutes=5)
_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_SECTION = re.compile(r"^\s*\[\s*([^\]]*?)\s*\]\s*(?:[#;].*)?$")
_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=")


def expand_home(path: str, environ: Mapping[str, str]) -> Path:
    """``path`` with a leading ``~`` replaced by ``environ``'s ``HOME`` (else the user's home),
    as the AWS SDKs expand the shared files' paths."""
    if path == "~" or path.startswith(("~/", "~\\")):
        path = (environ.get("HOME") or os.path.expanduser("~")) + path[1:]
    return Path(path)


def credentials_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials`` (``~``: ``$HOME``)."""
    env = os.environ if environ is None else environ
    return expand_home(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", env)


def update_profile(text: str, profile: str, credentials: Credentials) -> str:
    """``text`` with ``[profile]`` holding ``credentials``; every other line is kept.

    In the profile, the three key lines are replaced where they are (a second occurrence of one
    is dropped) and missing ones added after the section's last setting; other settings
    (``region``…) stay. A missing profile is appended. Line endings follow the file's.
    """
    if not profile or any(c in profile for c in "[]\r\n"):
        raise ValueError(f"not a profile name: {profile!r}")
    newline = "\r\n" if "\r\n" in text else "\n"
    values = {
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
        "aws_session_token": credentials.session_token or "",
    }
    lines = text.splitlines()
    out: list[str] = []
    in_profile = found = False
    written: set[str] = set()
    last_setting = -1  # index in ``out`` of the profile's last non-blank line

    def add_missing() -> None:
        missing = [f"{k} = {values[k]}" for k in _KEYS if k not in written]
        out[last_setting + 1 : last_setting + 1] = missing

    for line in lines:
        section = _SECTION.match(line)
        if section is not None:
            if in_profile:
                add_missing()
            in_profile = section.group(1) == profile
            found = found or in_profile
            out.append(line)
            if in_profile:
                written = set()
                last_setting = len(out) - 1
            continue
        if in_profile:
            key = _KEY_LINE.match(line)
            name = key.group(1).lower() if key else None
            if name in values:
                if name not in written:
                    out.append(f"{name} = {values[name]}")
                    written.add(name)
                    last_setting = len(out) - 1
                continue
            out.append(line)
            if line.strip():
                last_setting = len(out) - 1
            continue
        out.append(line)
    if in_profile:
        add_missing()
    if not found:
        if out and out[-1].strip():
            out.append("")
        out.append(f"[{profile}]")
        out.extend(f"{k} = {values[k]}" for k in _KEYS)
    return newline.join(out) + newline


def write_profile(
    path: Path,
    profile: str,
    credentials: Credentials,
    *,
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write ``credentials`` into ``profile`` of the file at ``path`` (see the module's doc).

    Raises :class:`CredentialsFileError` after ``attempts`` failures; the message names the
    file and the cause, never a secret, and the old file is then left as it was.
    """
    for attempt in range(1, attempts + 1):
        try:
            _write_once(path, profile, credentials)
            return
        except OSError as exc:
            if attempt == attempts:
                reason = exc.strerror or type(exc).__name__
                raise CredentialsFileError(
                    f"cannot write {path} ({reason}); the old file was left untouched: "
                    "free some space, check the permissions of its folder, "
                    "or set AWS_SHARED_CREDENTIALS_FILE"
                ) from None
            sleep(0.1 * 2**attempt)


def _open_lock(lock: str) -> int:
    """The lock file's descriptor: created exclusively, and never opened through a symlink."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(lock, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return os.open(lock, flags)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` or raise: a short write is carried on, a write of none fails."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _read_back(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while offset <= size:  # one read past the end, to see a longer file too
        chunk = os.pread(fd, max(size - offset, 0) + 1, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_once(path: Path, profile: str, credentials: Credentials) -> None:
    import fcntl

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A symlinked file is updated where it points; the lock and the temporary file sit beside
    # the real file, so every name of it takes the same lock and the rename stays in one folder.
    real = Path(os.path.realpath(path))
    real.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_fd = _open_lock(f"{real}.lock")
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            old = real.read_bytes()
        except FileNotFoundError:
            old = b""
        # Bytes that are not UTF-8 survive as they are (surrogateescape both ways).
        text = update_profile(old.decode("utf-8", "surrogateescape"), profile, credentials)
        new = text.encode("utf-8", "surrogateescape")
        replace_file(real, new, shown=path)
    finally:
        os.close(lock_fd)


def replace_file(real: Path, data: bytes, *, shown: Path | None = None) -> None:
    """Replace the file at ``real`` (not a symlink) with ``data``, mode 0600, all or nothing: the
    bytes go to an unpredictable temporary name beside it (``O_EXCL|O_NOFOLLOW``), are fsynced,
    read back and compared, then renamed over it, and the folder is fsynced. On failure the
    temporary file is removed and the old file left as it was (``OSError``;
    :class:`CredentialsFileError`, naming ``shown``, when only the folder's fsync failed)."""
    temp = real.with_name(f".{real.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    renamed = False
    try:
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
            if _read_back(fd, len(data)) != data:
                raise OSError(errno.EIO, "the written copy did not read back the same")
        finally:
            os.close(fd)
        os.replace(temp, real)
        renamed = True
    finally:
        if not renamed:
            temp.unlink(missing_ok=True)
    _fsync_folder(real.parent, shown or real)


def _fsync_folder(folder: Path, path: Path) -> None:
    """Make the rename durable. The new file is complete by now, so a failure here is not
    retried (the old file is gone) but reported as what it is."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP):  # a file system that cannot: nothing lost
            return
        raise CredentialsFileError(
            f"wrote {path} but could not flush its folder to disk "
            f"({exc.strerror or type(exc).__name__}): check the disk"
        ) from None


def next_update_in(
    credentials: Credentials,
    now: datetime | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds until the profile should be refreshed: between five and ten minutes before
    expiry, drawn with ``rand`` so that hosts started together drift apart (``rand`` 1: five
    minutes, as before), at least 10 s from now (``inf`` for credentials that never expire)."""
    if credentials.expiration is None:
        return float("inf")
    due = credentials.expiration - REFRESH_BEFORE * (2.0 - rand())
    return max((due - (now or datetime.now(UTC))).total_seconds(), 10.0)


def is_permanent(exc: BaseException) -> bool:
    """Whether no retry can fix ``exc``: the service refused the request with a status the
    client does not retry either (400, 403, 404…: the one decision,
    :func:`~rolesanywhere.session.protocol.is_retryable_status`), or the identity or a parameter is
    unusable (expired certificate, wrong key, bad ARN). Network errors, throttling, 5xx, a bad
    answer and a file that cannot be written now may all clear up, so they are retried."""
    if isinstance(exc, ServiceError):
        return not is_retryable_status(exc.status)
    return isinstance(exc, IdentityError | InvalidParameterError)


def run_update(
    fetch: Callable[[], Credentials],
    path: Path,
    profile: str,
    *,
    once: bool,
    wait: Callable[[float], bool],
    err: TextIO,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    rand: Callable[[], float] = random.random,
) -> int:
    """Fetch credentials and write them, then again before each expiry, until ``wait`` returns
    ``True`` (asked to stop) or, with ``once``, after the first write. A failed fetch or write
    is reported on ``err`` and retried with the refresher's full-jitter backoff (``rand``;
    below 10 s, doubling up to 2 minutes), so a fleet that failed together does not retry
    together; with ``once``, or when no retry can
    fix it (:func:`is_permanent`), it is raised. Returns the exit status."""
    from rolesanywhere.session.refresh import ADVISORY_BACKOFF_BASE, ADVISORY_BACKOFF_MAX

    failures = 0
    while True:
        try:
            credentials = fetch()
            write_profile(path, profile, credentials)
        except RolesAnywhereError as exc:
            if once or is_permanent(exc):
                raise
            failures += 1
            delay = full_jitter(failures, ADVISORY_BACKOFF_BASE, ADVISORY_BACKOFF_MAX, rand)
            print(
                f"update failed ({safe_text(exc)}); trying again in {delay:.3g} s",
                file=err,
                flush=True,
            )
            if wait(delay):
                return 0
            continue
        failures = 0
        expiry = format_expiration(credentials.expiration) if credentials.expiration else "never"
        print(
            f"updated profile [{profile}] in {path}; credentials expire {expiry}",
            file=err,
            flush=True,
        )
        if once:
            return 0
        if wait(next_update_in(credentials, clock(), rand)):
            return 0
