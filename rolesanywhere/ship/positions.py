"""The tailer's durable position store: state directory, lock, marker and SQLite database.

:class:`PositionStore` owns ``state_dir``: ``positions.db`` (WAL), the marker ``positions.used``
that tells a lost database from a first run, and the lock that keeps a second tailer out. File
fingerprints (:func:`fingerprint_of`) decide whether a saved offset can be trusted. The schema,
the reset choices and the durability argument are in docs/tailing.md (*Position database*).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rolesanywhere.errors import PositionsLostError, TailError

__all__ = ["PositionStore", "SavedPosition"]

_log = logging.getLogger(__name__)

FP_SPAN = 256  # bytes hashed at the head and before the offset
_SCHEMA_VERSION = 1
_MARKER = "positions.used"  # written once the database holds a run's state: "used before"
_DAMAGED_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_MARKER_TEXT = (
    b"This state directory holds the file positions of a rolesanywhere Tailer (positions.db).\n"
    b"While this file exists, a missing, empty or damaged positions.db is refused instead of\n"
    b"being taken for a first run; choose reset_positions 'head' or 'end' to start over.\n"
)
_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1
_UPSERT = (
    "INSERT INTO positions (dev, ino, path, offset, fingerprint, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dev, ino) DO UPDATE SET path = excluded.path, "
    "offset = excluded.offset, fingerprint = excluded.fingerprint, "
    "updated_at = excluded.updated_at"
)

FileKey = tuple[int, int]  # (st_dev, st_ino)


class _DamagedDatabase(TailError):
    """SQLite says the position database is corrupt or not a database."""


class _EmptyDatabase(TailError):
    """The position database has no schema (new or emptied) and must not be created."""


class SavedPosition(NamedTuple):
    """One row of the database: a file's last known name, committed offset and fingerprint."""

    path: str
    offset: int
    fingerprint: bytes


def fingerprint(offset: int, head: bytes, tail: bytes) -> bytes:
    """``sha256(offset as 8 bytes big-endian || head || tail)``."""
    digest = hashlib.sha256(offset.to_bytes(8, "big"))
    digest.update(head)
    digest.update(tail)
    return digest.digest()


EMPTY_FINGERPRINT = fingerprint(0, b"", b"")


def fingerprint_of(fd: int, offset: int) -> bytes | None:
    """Fingerprint of the file behind ``fd`` at ``offset``; None when the file is shorter."""
    span = min(FP_SPAN, offset)
    tail = os.pread(fd, span, offset - span)
    if len(tail) != span:
        return None
    head = tail if offset <= FP_SPAN else os.pread(fd, FP_SPAN, 0)
    if len(head) != span:
        return None
    return fingerprint(offset, head, tail)


def _signed(value: int) -> int:
    return value - _U64 if value > _I64_MAX else value


def _unsigned(value: int) -> int:
    return value + _U64 if value < 0 else value


if sys.platform == "win32":  # pragma: no cover - POSIX only

    def _lock_file(fd: int) -> bool:
        return True

else:
    import fcntl

    def _lock_file(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


class PositionStore:
    """The position database of one ``state_dir``, locked for this process while open."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        state = os.fspath(state_dir)
        self.state_dir = state
        self.db_path = os.path.join(state, "positions.db")
        self._lock_path = os.path.join(state, "positions.lock")
        self._marker_path = os.path.join(state, _MARKER)
        #: Why the positions were reset at start (``reset_positions`` was used), else None.
        self.reset_reason: str | None = None
        #: The write failure reported last, until a write works again.
        self.error: str | None = None
        self._conn: sqlite3.Connection | None = None
        try:
            os.makedirs(state, mode=0o700, exist_ok=True)
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise TailError(
                f"cannot use state_dir {state!r} ({exc.strerror}); pick a writable directory"
            ) from exc
        if not _lock_file(self._lock_fd):
            os.close(self._lock_fd)
            raise TailError(
                f"another Tailer is using state_dir {state!r}; stop it or use another state_dir"
            )

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "PositionStore.open() was not called"
        return self._conn

    def open(
        self, patterns: Sequence[str], synchronous: str, reset: str | None
    ) -> tuple[dict[FileKey, SavedPosition], bool]:
        """Open the database; returns the saved rows and whether this counts as a first run.

        A state directory used before (its marker file exists) whose database is missing,
        empty or damaged is refused (:class:`PositionsLostError`) unless ``reset`` says where
        to start over: never taken silently for a first run. After a reset, ``reset_reason``
        says what was reset.
        """
        state = self.state_dir
        used = os.path.lexists(self._marker_path)
        try:
            size: int | None = os.stat(self.db_path).st_size
        except FileNotFoundError:
            size = None
        except OSError as exc:
            raise TailError(
                f"cannot use position database {self.db_path!r} ({exc.strerror}); check the"
                " permissions of the state_dir"
            ) from exc
        problem: str | None = None
        if used and reset is None and size is None:  # not even created: refuse as it is
            raise PositionsLostError("is missing", self.db_path, state)
        try:
            # refused: leave an empty database as it is (no schema), so it is refused again
            self._conn = self._open_db(synchronous, create=not used or reset is not None)
            rows, had_patterns, changed = self._load(patterns)
        except _EmptyDatabase:
            assert reset is None
            problem = "is empty (0 bytes)" if not size else "holds no positions"
            raise PositionsLostError(problem, self.db_path, state) from None
        except _DamagedDatabase as exc:
            if reset is None:
                raise PositionsLostError(f"is damaged ({exc})", self.db_path, state) from None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            aside = self._move_aside()
            problem = f"was damaged ({exc}; moved to {aside!r})"
            self._conn = self._open_db(synchronous)
            rows, had_patterns, changed = self._load(patterns)
        else:
            if used and not had_patterns:
                if size is None:
                    problem = "is missing"
                elif size == 0:
                    problem = "is empty (0 bytes)"
                else:
                    problem = "holds no positions"
                if reset is None:
                    raise PositionsLostError(problem, self.db_path, state)
        if problem is not None:
            rows, changed = {}, True
            self.reset_reason = (
                f"position database {self.db_path!r} {problem}; starting over from the "
                f"{'beginning' if reset == 'head' else 'end'} of the files (reset_positions="
                f"{reset!r})"
            )
            _log.info("%s", self.reset_reason)
        self._save_patterns(patterns)
        if not used:
            self._write_marker()
        return rows, changed

    def own_paths(self) -> tuple[str, ...]:
        """The files of the state directory, never to be tailed themselves."""
        return (
            self.db_path,
            self.db_path + "-wal",
            self.db_path + "-shm",
            self._lock_path,
            self._marker_path,
            self._marker_path + ".tmp",
        )

    def write(
        self,
        upserts: Iterable[tuple[FileKey, str, int, bytes]],
        deletes: Iterable[FileKey],
    ) -> None:
        """Save ``(key, path, offset, fingerprint)`` rows and delete rows, in one transaction.

        A failure is logged once (a warning) until a write works again, kept in ``error`` and
        raised as :class:`TailError`.
        """
        now = time.time()
        ups = [
            (_signed(key[0]), _signed(key[1]), os.fsencode(path), offset, fp, now)
            for key, path, offset, fp in upserts
        ]
        dels = [(_signed(dev), _signed(ino)) for dev, ino in deletes]
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM positions WHERE dev = ? AND ino = ?", dels)
                conn.executemany(_UPSERT, ups)
                conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (SQLITE_FULL): a ROLLBACK then
                # fails with "no transaction is active" and would hide the real cause
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            message = (
                f"cannot write position database {self.db_path!r} ({exc}); check free space and"
                " permissions: positions are kept and written at the next commit (until then a"
                " restart sends lines again, never skips them)"
            )
            if message != self.error:
                self.error = message
                _log.warning("%s", message)
            raise TailError(message) from exc
        if self.error is not None:
            self.error = None
            _log.warning("position database %r is written again", self.db_path)

    def close(self) -> None:
        """Close the database and release the lock."""
        if self._conn is not None:
            self._conn.close()
        os.close(self._lock_fd)

    def _open_db(self, synchronous: str, *, create: bool = True) -> sqlite3.Connection:
        try:
            # created 0600 here: SQLite gives its -wal and -shm files the database's mode.
            # Files an older version left readable by others are tightened too.
            for path in (self.db_path, f"{self.db_path}-wal", f"{self.db_path}-shm"):
                flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
                try:
                    fd = os.open(path, flags | (os.O_CREAT if path == self.db_path else 0), 0o600)
                except FileNotFoundError:
                    continue
                try:
                    os.fchmod(fd, 0o600)
                finally:
                    os.close(fd)
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            cause = exc.strerror if isinstance(exc, OSError) else exc
            raise TailError(
                f"cannot open position database {self.db_path!r} ({cause}); check the state_dir"
            ) from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # writes nothing
            if version not in (0, _SCHEMA_VERSION):
                raise TailError(
                    f"position database {self.db_path!r} has schema version {version}, expected "
                    f"{_SCHEMA_VERSION}: it was written by another version of rolesanywhere; run"
                    " that version"
                )
            if version == 0 and not create:
                raise _EmptyDatabase("no schema")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                _log.warning("position database %s runs in %s mode, not WAL", self.db_path, mode)
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS positions (dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
                " path BLOB NOT NULL, offset INTEGER NOT NULL CHECK (offset >= 0),"
                " fingerprint BLOB NOT NULL, updated_at REAL NOT NULL,"
                " PRIMARY KEY (dev, ino)) WITHOUT ROWID"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                " WITHOUT ROWID"
            )
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise self._db_failure("use", exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _db_failure(self, doing: str, exc: sqlite3.Error) -> TailError:
        """A damaged database (:class:`_DamagedDatabase`) or another cause (full, permissions)."""
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _DAMAGED_CODES:
            return _DamagedDatabase(str(exc))
        return TailError(
            f"cannot {doing} position database {self.db_path!r} ({exc}); check free space and"
            " the permissions of the state_dir"
        )

    def _move_aside(self) -> str:
        """Rename a damaged database (and its -wal, -shm) to ``positions.db.damaged``."""
        aside = self.db_path + ".damaged"
        try:
            for suffix in ("", "-wal", "-shm"):
                if os.path.lexists(self.db_path + suffix):
                    os.replace(self.db_path + suffix, aside + suffix)
                elif os.path.lexists(aside + suffix):
                    os.unlink(aside + suffix)
        except OSError as exc:
            raise TailError(
                f"cannot move the damaged position database {self.db_path!r} aside "
                f"({exc.strerror}); move it yourself and keep reset_positions"
            ) from exc
        return aside

    def _write_marker(self) -> None:
        """Write the "used before" marker (0600, complete or absent: temp file + rename)."""
        tmp = self._marker_path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(_MARKER_TEXT)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._marker_path)
            dir_fd = os.open(os.path.dirname(self._marker_path), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise TailError(
                f"cannot write {self._marker_path!r} ({exc.strerror}); check free space and the"
                " permissions of the state_dir"
            ) from exc

    def _load(self, patterns: Sequence[str]) -> tuple[dict[FileKey, SavedPosition], bool, bool]:
        """Saved rows, whether the database holds a run's patterns, and whether they differ."""
        conn = self.conn
        try:
            rows = {
                (_unsigned(dev), _unsigned(ino)): SavedPosition(
                    os.fsdecode(bytes(path)), offset, bytes(fp)
                )
                for dev, ino, path, offset, fp in conn.execute(
                    "SELECT dev, ino, path, offset, fingerprint FROM positions"
                )
            }
            meta = conn.execute("SELECT value FROM meta WHERE key = 'patterns'").fetchone()
        except sqlite3.Error as exc:
            raise self._db_failure("read", exc) from exc
        wanted = json.dumps(sorted(patterns))
        return rows, meta is not None, meta is None or meta[0] != wanted

    def _save_patterns(self, patterns: Sequence[str]) -> None:
        try:
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('patterns', ?)",
                (json.dumps(sorted(patterns)),),
            )
        except sqlite3.Error as exc:
            raise self._db_failure("write", exc) from exc
