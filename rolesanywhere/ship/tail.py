"""Follow log files like Fluent Bit's ``tail`` input, with offsets committed only after delivery.

The :class:`Tailer` watches glob patterns, reads new lines in big bursts and hands them out as
:class:`Chunk` objects. A file's position in the durable database moves **only** when the consumer
calls :meth:`Tailer.commit` after the lines were delivered, so after a crash (even ``kill -9``)
reading resumes at the last delivered line: nothing is lost, and the duplicates are at most the
lines that were handed out but not yet committed. (Fluent Bit saves offsets when lines are read.)

Use::

    with Tailer(["/var/log/app/*.log"], state_dir="/var/lib/shipper") as tailer:
        while running:
            chunks = tailer.poll(max_bytes=1 << 20)       # non-blocking; [] when idle
            if not chunks:
                time.sleep(0.2)
                continue
            send(line for c in chunks for line in c.lines)  # retry until HTTP 2xx
            tailer.commit(chunks)                         # one SQLite transaction

API
---
``Tailer(patterns, *, state_dir, read_from_head=False, refresh_interval=60.0, rotate_wait=5.0,
max_line_bytes=32768, long_lines="split", synchronous="NORMAL", clock=time.monotonic, exclude=(),
reset_positions=None)``
    ``patterns``: one glob or a sequence of globs (``**`` recurses); relative ones are made
    absolute; a file whose path or base name matches a shell pattern in ``exclude`` is skipped
    (Fluent Bit's ``Exclude_Path``). ``state_dir`` (created with mode 0700) holds
    ``positions.db``, the marker ``positions.used`` and a lock file, all created with mode 0600:
    two tailers cannot share one ``state_dir``. ``reset_positions`` (``"head"``, ``"end"`` or
    ``None``) says where to start over when the database of a ``state_dir`` used before is
    missing, empty or damaged (see *Position database*); ``reset_reason`` then says what was
    reset, else it is None. The constructor scans the patterns once.
``poll(max_bytes=1 << 20) -> list[Chunk]``
    Reads what is available now and returns chunks covering at most ``max_bytes`` plus one
    held line per file (reads are at most 1 MiB each, files are served round robin); ``[]``
    means every file is read to its end (or, in ``"truncate"`` mode, that this poll spent
    ``8 * max(max_bytes, 1 MiB)`` bytes skipping an endless line). Re-scans the patterns every
    ``refresh_interval`` seconds, notices rotations, truncations and deletions. Never blocks on
    a writer; the consumer controls memory by how much it polls and how many chunks it keeps
    in flight.
``commit(chunks)`` / ``commit_positions({file_id: end_offset})``
    Marks chunks delivered and persists, in one transaction, each file's offset up to the end
    of its **contiguous delivered prefix**: chunks may be delivered and committed in any order
    (a pipelined shipper); a chunk committed before an earlier one of the same file is
    remembered and counted once the gap is filled. ``commit_positions`` says "everything of
    this file up to ``end_offset`` is delivered" (``end_offset`` must be a chunk end). Chunks
    of a stream that was since truncated or replaced are ignored (``stale_commits``); a chunk
    this tailer never handed out raises ``ValueError``.
``commit`` raises :class:`TailError` when the database cannot be written (disk full); the
    positions stay in memory and are written by the next ``commit`` or ``poll``. The cause is
    logged once (a warning) until a write works again; ``db_error()`` returns it meanwhile.
``lag_bytes()``: bytes present in the watched files and not yet handed out.
``uncommitted_bytes()``: bytes handed out and not yet committed.
``stats() -> TailStats``: counters (a copy); ``files() -> list[TailedFile]``: per-file status.
``close()``: closes files, the database and the lock; commits nothing. Also a context manager.
All methods are thread-safe (one internal lock): ``poll`` and ``commit`` may run on different
threads.

Chunks and lines
----------------
``Chunk(file_id, path, start_offset, end_offset, lines)``: one per read burst per file.
``lines`` are ``bytes`` without the ``\\n`` (and without one ``\\r`` before it). Chunks of
one ``file_id`` are contiguous (``start_offset`` == previous ``end_offset``) and come out in
order. ``file_id`` names one *stream*: a file from the moment it is opened until it is closed,
or until it is truncated (a truncated file continues as a new ``file_id`` from offset 0).

A trailing line without ``\\n`` is held until it is completed; it is flushed as it is (no
``\\r`` stripping) when a rotated file is closed, a deleted file is dropped or a file is
truncated. Lines longer than ``max_line_bytes`` (after stripping ``\\r``) are split into
``max_line_bytes`` pieces (``long_lines="split"``; the committed offset may then fall inside a
line, and a restart continues with the next piece) or cut to their first ``max_line_bytes``
bytes (``"truncate"``; the rest is dropped and counted). Memory per file is at most about
``max_line_bytes`` plus one read.

Files
-----
- Files present at the first start are read from their end (more exactly, from the start of
  the last, still incomplete line) unless ``read_from_head=True``; files that appear later are
  read from the head. On a later start with the **same patterns**, a file the database does not
  know appeared while the tailer was down and is read from the head (Fluent Bit would read it
  from its end and lose what was written during the downtime). When the patterns changed,
  unknown files present at start follow ``read_from_head``.
- Rotation by rename + create: when the path no longer leads to the open file (checked every
  0.25 s per file and at every re-scan) the patterns are re-scanned at once. If the file's new
  name still matches, it is simply followed under that name. Otherwise it is read through its
  open descriptor to its end; once ``rotate_wait`` seconds have passed since the rotation was
  seen **and** it is fully read (never earlier, even with a backlog) it is closed. A new file
  at the old path is read from the head.
- Copytruncate / truncation: each read re-reads the 256 bytes before the current offset; if
  they changed or the file got shorter, the file was truncated (or rewritten): the held partial
  line is flushed and reading restarts at offset 0 as a new ``file_id`` (``truncations``).
- Deleted while open: read to the end, flushed, closed.
- A closed file's row is deleted once all of its chunks are committed.

Position database
-----------------
SQLite in WAL mode at ``state_dir/positions.db``::

    CREATE TABLE positions (dev INTEGER, ino INTEGER, path BLOB, offset INTEGER,
                            fingerprint BLOB, updated_at REAL, PRIMARY KEY (dev, ino))
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)   -- 'patterns': JSON list

Lost or damaged positions: once a database holds a run's state, the marker file
``positions.used`` is written next to it. A later start that finds the marker but a database
missing, empty (0 bytes, or no saved patterns) or damaged (SQLite: corrupt, not a database)
raises :class:`PositionsLostError` (a one-line :class:`TailError`) instead of taking it for a
first run, which would read files from their end and skip what was written meanwhile. The
caller chooses: ``reset_positions="head"`` reads every file again from its beginning
(duplicates), ``"end"`` starts at the end of the files present (lines written since the last
saved positions are skipped). A damaged database is then renamed ``positions.db.damaged``
(with its ``-wal``/``-shm``) and a new one created. ``reset_positions`` changes nothing when
the positions are fine. A state directory of an older version (a database with patterns, no
marker) gets its marker and is resumed.

``dev``/``ino`` are ``st_dev``/``st_ino`` (stored as signed 64-bit), ``path`` the file's last
known name (``os.fsencode``), ``offset`` the committed offset, ``fingerprint`` =
``sha256(offset as 8 bytes big-endian || file[0:min(256, offset)] || file[max(0, offset -
256):offset])``. On start a row is trusted only if the file is at least ``offset`` long and the
fingerprint matches; otherwise (inode reused, file replaced or rewritten, truncated while down)
the file is read from the head (``fingerprint_mismatches``). A row whose file no longer matches
the patterns but still exists, under its last known name or (rotated while the tailer was down)
under another name in the same directory, found by inode, and whose fingerprint matches, is
resumed as a rotated file (``resumed_rotated``): lines handed out but not committed before a
crash are not lost because the file was rotated meanwhile. Rows of files gone are deleted.

``synchronous=NORMAL`` is the default: in WAL mode a committed transaction survives a process
crash (``kill -9``) because it is in the WAL file before ``commit`` returns; only an OS crash or
power loss can roll back the latest commits, which makes offsets go *back* (duplicates), never
forward (loss), since an offset is only written after its lines were delivered. ``FULL`` adds
one fsync per commit for those who prefer fewer duplicates after a power loss.

Limits: a file rotated out and replaced twice within one check interval before it was ever
seen is not read; a copytruncated file regrown past the old offset with the very same 256 bytes
before that offset is not recognised as truncated; lines copytruncate moves to the copy before
they were read are not read (the copy is not watched); uncommitted lines of a file deleted
before a crash cannot be read again; if ``st_dev`` changes across reboots (some network or
overlay filesystems) rows no longer match and files are read again from the head (duplicates);
POSIX only (``fcntl`` lock, inode numbers, ``/proc/self/fd`` for renamed paths on Linux).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import hashlib
import json
import logging
import os
import sqlite3
import stat as stat_mod
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

from rolesanywhere.errors import PositionsLostError, TailError

__all__ = ["Chunk", "PositionsLostError", "TailError", "TailStats", "TailedFile", "Tailer"]

_log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20  # largest single read, hence largest chunk
_FP_SPAN = 256  # bytes hashed at the head and before the offset
_RAW_FACTOR = 8  # a poll reads at most this many times max(max_bytes, 1 MiB)
_STAT_INTERVAL = 0.25  # seconds between "does the path still lead to this file" checks
_TAIL_WINDOW = 1 << 16  # how far back to look for a line start when starting at the end
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

_Key = tuple[int, int]  # (st_dev, st_ino)


class _DamagedDatabase(TailError):
    """SQLite says the position database is corrupt or not a database."""


class _EmptyDatabase(TailError):
    """The position database has no schema (new or emptied) and must not be created."""


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Chunk:
    """Lines from one read burst of one file: bytes ``[start_offset, end_offset)``.

    Commit it (``Tailer.commit``) once every line in it was delivered.
    """

    file_id: int
    path: str
    start_offset: int
    end_offset: int
    lines: list[bytes]

    @property
    def nbytes(self) -> int:
        """File bytes covered by this chunk."""
        return self.end_offset - self.start_offset

    def __repr__(self) -> str:
        return (
            f"Chunk(file_id={self.file_id}, path={self.path!r}, "
            f"offsets={self.start_offset}..{self.end_offset}, lines={len(self.lines)})"
        )


@dataclasses.dataclass(slots=True)
class TailStats:
    """Counters since the tailer was created; nothing is dropped without being counted here."""

    lines: int = 0  # lines (and long-line pieces) handed out
    bytes: int = 0  # file bytes read
    chunks: int = 0
    long_lines_split: int = 0  # lines longer than max_line_bytes, split into pieces
    long_lines_truncated: int = 0  # lines longer than max_line_bytes, cut
    bytes_dropped: int = 0  # bytes cut from truncated lines (line endings excluded)
    partial_lines_flushed: int = 0  # unterminated last lines handed out on close/truncation
    files_opened: int = 0
    files_closed: int = 0
    rotations: int = 0  # renamed out of the patterns while open
    deletions: int = 0  # deleted while open
    truncations: int = 0  # shrunk or rewritten under the read offset (copytruncate)
    fingerprint_mismatches: int = 0  # saved position not trusted: read from the head
    resumed_rotated: int = 0  # rotated files resumed from the database at start
    open_errors: int = 0
    read_errors: int = 0
    commits: int = 0  # database transactions
    stale_commits: int = 0  # chunks committed for a stream already truncated or replaced


@dataclasses.dataclass(frozen=True, slots=True)
class TailedFile:
    """Status of one stream, for a status line or debugging."""

    file_id: int
    path: str
    size: int | None  # None once closed
    read_offset: int
    handed_out_offset: int
    committed_offset: int
    rotated: bool
    deleted: bool
    open: bool


class _Row(NamedTuple):
    path: str
    offset: int
    fingerprint: bytes


def _fingerprint(offset: int, head: bytes, tail: bytes) -> bytes:
    digest = hashlib.sha256(offset.to_bytes(8, "big"))
    digest.update(head)
    digest.update(tail)
    return digest.digest()


_EMPTY_FP = _fingerprint(0, b"", b"")


def _fingerprint_of(fd: int, offset: int) -> bytes | None:
    """Fingerprint of the file behind ``fd`` at ``offset``; None when the file is shorter."""
    span = min(_FP_SPAN, offset)
    tail = os.pread(fd, span, offset - span)
    if len(tail) != span:
        return None
    head = tail if offset <= _FP_SPAN else os.pread(fd, _FP_SPAN, 0)
    if len(head) != span:
        return None
    return _fingerprint(offset, head, tail)


def _signed(value: int) -> int:
    return value - _U64 if value > _I64_MAX else value


def _unsigned(value: int) -> int:
    return value + _U64 if value < 0 else value


def _fd_path(fd: int) -> str | None:
    """Current name of an open file (Linux ``/proc``), None if unknown or deleted."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if target.endswith(" (deleted)") or not target.startswith("/"):
        return None
    return target


class _Stream:
    """One open (or closed, awaiting commits) file from one starting offset."""

    __slots__ = (
        "at_eof",
        "deleted",
        "discarding",
        "dropped",
        "fd",
        "file_id",
        "fps",
        "frontier",
        "frontier_fp",
        "head",
        "key",
        "last_cr",
        "long_open",
        "next_check",
        "partial",
        "path",
        "pending",
        "read_offset",
        "recent",
        "rotated_at",
        "safe_end",
        "watch_path",
    )

    def __init__(
        self, file_id: int, key: _Key, path: str, fd: int, offset: int, fp: bytes, recent: bytes
    ) -> None:
        self.file_id = file_id
        self.key = key
        self.path = path
        self.watch_path = path  # where a replacement appears after a rotation
        self.fd: int | None = fd
        self.read_offset = offset  # next byte to read
        self.safe_end = offset  # end of the last chunk handed out
        self.partial = b""  # held bytes of an unfinished line (the kept piece when discarding)
        self.discarding = False  # truncate mode: skipping the rest of an over-long line
        self.dropped = 0  # bytes skipped so far in the current over-long line
        self.last_cr = False  # the last skipped byte was b"\r"
        self.long_open = False  # split mode: pieces of the current line were handed out
        self.recent = recent  # file[read_offset - min(256, read_offset):read_offset]
        self.head: bytes | None = None  # file[:256] once known
        self.frontier = offset  # committed offset (end of the contiguous delivered prefix)
        self.frontier_fp = fp
        self.pending: dict[int, int] = {}  # delivered out of order: start -> end
        self.fps: OrderedDict[int, tuple[int, bytes]] = OrderedDict()  # end -> (start, fp)
        self.rotated_at: float | None = None
        self.deleted = False
        self.at_eof = False  # reached the end of the file during the current poll
        self.next_check = 0.0


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


_UPSERT = (
    "INSERT INTO positions (dev, ino, path, offset, fingerprint, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dev, ino) DO UPDATE SET path = excluded.path, "
    "offset = excluded.offset, fingerprint = excluded.fingerprint, "
    "updated_at = excluded.updated_at"
)


class Tailer:
    """Follow files matching glob patterns; see the module documentation."""

    def __init__(
        self,
        patterns: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        state_dir: str | os.PathLike[str],
        read_from_head: bool = False,
        refresh_interval: float = 60.0,
        rotate_wait: float = 5.0,
        max_line_bytes: int = 32768,
        long_lines: Literal["split", "truncate"] = "split",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        clock: Callable[[], float] = time.monotonic,
        exclude: Sequence[str] = (),
        reset_positions: Literal["head", "end"] | None = None,
    ) -> None:
        if isinstance(patterns, str | os.PathLike):
            patterns = [patterns]
        self._patterns = [os.path.abspath(os.fspath(p)) for p in patterns]
        #: Paths (or base names) matching one of these shell patterns are never read.
        self._exclude = tuple(exclude)
        if not self._patterns:
            raise ValueError("Tailer needs at least one glob pattern, e.g. '/var/log/*.log'")
        if not refresh_interval >= 0:
            raise ValueError(f"refresh_interval must be >= 0 seconds, got {refresh_interval!r}")
        if not rotate_wait >= 0:
            raise ValueError(f"rotate_wait must be >= 0 seconds, got {rotate_wait!r}")
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be at least 1, got {max_line_bytes!r}")
        if long_lines not in ("split", "truncate"):
            raise ValueError(f"long_lines must be 'split' or 'truncate', got {long_lines!r}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if reset_positions not in (None, "head", "end"):
            raise ValueError(
                f"reset_positions must be 'head', 'end' or None, got {reset_positions!r}"
            )
        self._read_from_head = read_from_head
        #: Why the positions were reset at start (``reset_positions`` was used), else None.
        self.reset_reason: str | None = None
        self._db_error: str | None = None  # the write failure reported last, until a write works
        self._refresh = float(refresh_interval)
        self._rotate_wait = float(rotate_wait)
        self._max_line = max_line_bytes
        self._split = long_lines == "split"
        self._clock = clock
        self._lock = threading.Lock()
        self._stats = TailStats()
        self._streams: dict[int, _Stream] = {}
        self._by_key: dict[_Key, _Stream] = {}
        self._dirty: set[_Stream] = set()
        self._deletes: set[_Key] = set()
        self._next_id = 1
        self._rr = 0
        self._raw_left = 0
        self._warned: set[str] = set()
        self._saved: dict[_Key, _Row] = {}  # rows loaded at start, not yet claimed by a file
        self._closed = False

        state = os.fspath(state_dir)
        self.db_path = os.path.join(state, "positions.db")
        self._lock_path = os.path.join(state, "positions.lock")
        self._marker_path = os.path.join(state, _MARKER)
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
        try:
            self._saved, first_run = self._open_state(state, synchronous, reset_positions)
            now = self._clock()
            found = self._scan(now, initial=True, first_run=first_run)
            self._resume_rotated(found, now)
            with contextlib.suppress(TailError):  # reported once; written at the next commit
                self._flush_db()
        except BaseException:
            self._release()
            raise

    # --- public API ----------------------------------------------------------------------------

    def poll(self, max_bytes: int = 1 << 20) -> list[Chunk]:
        """Return the chunks readable now, about ``max_bytes`` of file data at most.

        An empty list means every file is read to its end (up to a held unfinished line).
        """
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes!r}")
        with self._lock:
            self._check_open()
            now = self._clock()
            out: list[Chunk] = []
            self._housekeep(now)
            streams = [s for s in self._streams.values() if s.fd is not None]
            for s in streams:
                s.at_eof = False
            budget = max_bytes
            # bytes skipped in an over-long line do not use the budget; bound them anyway
            self._raw_left = _RAW_FACTOR * max(max_bytes, _READ_SIZE)
            while budget > 0 and self._raw_left > 0:
                progress = False
                live = [s for s in self._streams.values() if s.fd is not None and not s.at_eof]
                if not live:
                    break
                start = self._rr % len(live)
                self._rr += 1
                for s in live[start:] + live[:start]:
                    if budget <= 0:
                        break
                    if s.fd is None:
                        continue
                    used, moved = self._read_burst(s, min(budget, _READ_SIZE), out)
                    budget -= used
                    progress = progress or moved
                if not progress:
                    break
            self._close_finished(now, out)
            # a failure is reported once by _flush_db; the rows stay dirty and are retried
            with contextlib.suppress(TailError):
                self._flush_db()
            return out

    def commit(self, chunks: Iterable[Chunk]) -> None:
        """Mark delivered chunks and persist each file's contiguous delivered offset."""
        with self._lock:
            self._check_open()
            marks: list[tuple[_Stream, int, int]] = []
            for chunk in chunks:
                s = self._stream_for(chunk.file_id)
                if s is not None and chunk.end_offset > s.frontier:
                    issued = s.fps.get(chunk.end_offset)
                    if issued is None or issued[0] != chunk.start_offset:
                        raise ValueError(
                            f"chunk {chunk.start_offset}..{chunk.end_offset} of file_id "
                            f"{chunk.file_id} was not handed out by this Tailer; commit only "
                            "chunks returned by poll()"
                        )
                    marks.append((s, chunk.start_offset, chunk.end_offset))
            for s, start, end in marks:
                if end <= s.frontier:
                    continue  # listed twice
                if start == s.frontier:
                    self._advance(s, end)
                else:
                    s.pending[start] = end
            self._finish_commit()

    def commit_positions(self, positions: Mapping[int, int]) -> None:
        """Persist ``{file_id: end_offset}``: everything of the file before it was delivered."""
        with self._lock:
            self._check_open()
            marks: list[tuple[_Stream, int]] = []
            for file_id, end in positions.items():
                s = self._stream_for(file_id)
                if s is not None and end > s.frontier:
                    if end not in s.fps:
                        raise ValueError(
                            f"offset {end} of file_id {file_id} is not the end of a chunk "
                            "handed out by this Tailer; commit chunk end offsets only"
                        )
                    marks.append((s, end))
            for s, end in marks:
                if end <= s.frontier:
                    continue
                for start in [k for k in s.pending if k < end]:
                    del s.pending[start]  # chunks are contiguous: these end at or before `end`
                self._advance(s, end)
            self._finish_commit()

    def lag_bytes(self) -> int:
        """Bytes in the watched files not yet handed out (for a status line)."""
        with self._lock:
            self._check_open()
            total = 0
            for s in self._streams.values():
                if s.fd is None:
                    continue
                try:
                    size = os.fstat(s.fd).st_size
                except OSError:
                    continue
                total += max(0, size - s.safe_end)
            return total

    def uncommitted_bytes(self) -> int:
        """Bytes handed out in chunks and not yet committed."""
        with self._lock:
            return sum(s.safe_end - s.frontier for s in self._streams.values())

    def db_error(self) -> str | None:
        """Why the latest write of the position database failed, or None when it worked."""
        with self._lock:
            return self._db_error

    def stats(self) -> TailStats:
        """A copy of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def files(self) -> list[TailedFile]:
        """Status of every stream, open or awaiting commits."""
        with self._lock:
            out = []
            for s in self._streams.values():
                size = None
                if s.fd is not None:
                    try:
                        size = os.fstat(s.fd).st_size
                    except OSError:
                        size = None
                out.append(
                    TailedFile(
                        file_id=s.file_id,
                        path=s.path,
                        size=size,
                        read_offset=s.read_offset,
                        handed_out_offset=s.safe_end,
                        committed_offset=s.frontier,
                        rotated=s.rotated_at is not None,
                        deleted=s.deleted,
                        open=s.fd is not None,
                    )
                )
            return out

    def close(self) -> None:
        """Close files, the database and the lock. Commits nothing that was not committed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(TailError):  # reported once by _flush_db, see db_error()
                self._flush_db()
            self._release()

    def __enter__(self) -> Tailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- database ------------------------------------------------------------------------------

    def _open_state(
        self, state: str, synchronous: str, reset: str | None
    ) -> tuple[dict[_Key, _Row], bool]:
        """Open the database; returns the saved rows and whether this counts as a first run.

        A state directory used before (its marker file exists) whose database is missing,
        empty or damaged is refused (:class:`PositionsLostError`) unless ``reset`` says where
        to start over: never taken silently for a first run.
        """
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
            rows, had_patterns, changed = self._load()
        except _EmptyDatabase:
            assert reset is None
            problem = "is empty (0 bytes)" if not size else "holds no positions"
            raise PositionsLostError(problem, self.db_path, state) from None
        except _DamagedDatabase as exc:
            if reset is None:
                raise PositionsLostError(f"is damaged ({exc})", self.db_path, state) from None
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
            aside = self._move_aside()
            problem = f"was damaged ({exc}; moved to {aside!r})"
            self._conn = self._open_db(synchronous)
            rows, had_patterns, changed = self._load()
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
            self._read_from_head = reset == "head"
            self.reset_reason = (
                f"position database {self.db_path!r} {problem}; starting over from the "
                f"{'beginning' if reset == 'head' else 'end'} of the files (reset_positions="
                f"{reset!r})"
            )
            _log.info("%s", self.reset_reason)
        self._save_patterns()
        if not used:
            self._write_marker()
        return rows, changed

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

    def _load(self) -> tuple[dict[_Key, _Row], bool, bool]:
        """Saved rows, whether the database holds a run's patterns, and whether they differ."""
        try:
            rows = {
                (_unsigned(dev), _unsigned(ino)): _Row(os.fsdecode(bytes(path)), offset, bytes(fp))
                for dev, ino, path, offset, fp in self._conn.execute(
                    "SELECT dev, ino, path, offset, fingerprint FROM positions"
                )
            }
            meta = self._conn.execute("SELECT value FROM meta WHERE key = 'patterns'").fetchone()
        except sqlite3.Error as exc:
            raise self._db_failure("read", exc) from exc
        wanted = json.dumps(sorted(self._patterns))
        return rows, meta is not None, meta is None or meta[0] != wanted

    def _save_patterns(self) -> None:
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('patterns', ?)",
                (json.dumps(sorted(self._patterns)),),
            )
        except sqlite3.Error as exc:
            raise self._db_failure("write", exc) from exc

    def _flush_db(self) -> None:
        """Write dirty rows and scheduled deletions in one transaction."""
        if not self._dirty and not self._deletes:
            return
        now = time.time()
        ups = [
            (
                _signed(s.key[0]),
                _signed(s.key[1]),
                os.fsencode(s.path),
                s.frontier,
                s.frontier_fp,
                now,
            )
            for s in self._dirty
            if self._by_key.get(s.key) is s
        ]
        dels = [(_signed(dev), _signed(ino)) for dev, ino in self._deletes]
        conn = self._conn
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
            if message != self._db_error:
                self._db_error = message
                _log.warning("%s", message)
            raise TailError(message) from exc
        if self._db_error is not None:
            self._db_error = None
            _log.warning("position database %r is written again", self.db_path)
        self._dirty.clear()
        self._deletes.clear()
        self._stats.commits += 1

    def _release(self) -> None:
        for s in list(self._streams.values()):
            if s.fd is not None:
                os.close(s.fd)
                s.fd = None
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
        os.close(self._lock_fd)

    # --- commit bookkeeping --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TailError("this Tailer is closed; create a new one")

    def _stream_for(self, file_id: int) -> _Stream | None:
        s = self._streams.get(file_id)
        if s is None:
            if not 0 < file_id < self._next_id:
                raise ValueError(
                    f"file_id {file_id!r} was never handed out by this Tailer; commit only "
                    "chunks returned by its poll()"
                )
            self._stats.stale_commits += 1
        return s

    def _advance(self, s: _Stream, end: int) -> None:
        s.frontier = end
        while s.frontier in s.pending:
            s.frontier = s.pending.pop(s.frontier)
        while s.fps:
            first = next(iter(s.fps))
            if first > s.frontier:
                break
            _, (_, fp) = s.fps.popitem(last=False)
            if first == s.frontier:
                s.frontier_fp = fp
        self._dirty.add(s)

    def _finish_commit(self) -> None:
        for s in list(self._streams.values()):
            if s.fd is None and s.frontier >= s.safe_end:
                self._drop(s)
        self._flush_db()

    # --- stream registry -----------------------------------------------------------------------

    def _register(self, s: _Stream) -> None:
        self._streams[s.file_id] = s
        self._by_key[s.key] = s
        self._deletes.discard(s.key)
        self._dirty.add(s)

    def _retire(self, s: _Stream) -> None:
        self._streams.pop(s.file_id, None)
        if self._by_key.get(s.key) is s:
            del self._by_key[s.key]
        self._dirty.discard(s)
        if s.fd is not None:
            os.close(s.fd)
            s.fd = None

    def _drop(self, s: _Stream) -> None:
        """Forget a closed, fully committed stream and delete its row."""
        owner = self._by_key.get(s.key) is s
        self._retire(s)
        if owner:
            self._deletes.add(s.key)

    def _warn_once(self, path: str, message: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            _log.warning("%s", message)

    def _open_stream(
        self,
        path: str,
        key: _Key,
        *,
        known: tuple[int, bytes] | None,
        from_end: bool,
        only_if_known: bool = False,
    ) -> _Stream | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._stats.open_errors += 1
            self._warn_once(path, f"cannot open {path!r} ({exc.strerror}); retrying at re-scan")
            return None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != key or not stat_mod.S_ISREG(st.st_mode):
                os.close(fd)  # replaced between glob and open: the next scan sees the new one
                return None
            offset = 0
            fp: bytes | None = _EMPTY_FP
            if known is not None:
                if known[0] <= st.st_size and _fingerprint_of(fd, known[0]) == known[1]:
                    offset, fp = known
                else:
                    self._stats.fingerprint_mismatches += 1
                    if only_if_known:
                        os.close(fd)
                        return None
                    _log.info("saved position of %s does not match the file; reading it all", path)
            elif from_end:
                offset = self._line_start_before(fd, st.st_size)
                fp = _fingerprint_of(fd, offset)
            if fp is None:  # shrank meanwhile
                offset, fp = 0, _EMPTY_FP
            span = min(_FP_SPAN, offset)
            recent = os.pread(fd, span, offset - span)
        except OSError as exc:
            os.close(fd)
            self._stats.open_errors += 1
            self._warn_once(path, f"cannot read {path!r} ({exc.strerror}); retrying at re-scan")
            return None
        s = _Stream(self._next_id, key, path, fd, offset, fp, recent)
        self._next_id += 1
        self._register(s)
        self._stats.files_opened += 1
        return s

    def _line_start_before(self, fd: int, size: int) -> int:
        """Offset just after the last ``\\n`` near ``size``, so a line being written is whole."""
        window = min(size, _TAIL_WINDOW)
        data = os.pread(fd, window, size - window)
        nl = data.rfind(b"\n")
        if nl >= 0:
            return size - len(data) + nl + 1
        return 0 if window == size else size

    # --- discovery and rotation ----------------------------------------------------------------

    def _own_keys(self) -> set[_Key]:
        keys = set()
        for path in (
            self.db_path,
            self.db_path + "-wal",
            self.db_path + "-shm",
            self._lock_path,
            self._marker_path,
            self._marker_path + ".tmp",
        ):
            try:
                st = os.stat(path)
            except OSError:
                continue
            keys.add((st.st_dev, st.st_ino))
        return keys

    def _excluded(self, path: str) -> bool:
        """Whether ``path`` matches an exclusion (like Fluent Bit's ``Exclude_Path``)."""
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in self._exclude)

    def _scan(self, now: float, *, initial: bool = False, first_run: bool = False) -> set[_Key]:
        """Glob the patterns, open new files, notice files gone; returns the keys found."""
        self._next_scan = now + self._refresh
        own = self._own_keys()
        found: dict[_Key, str] = {}
        for pattern in self._patterns:
            for path in sorted(glob.glob(pattern, recursive=True)):
                if self._excluded(path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if stat_mod.S_ISREG(st.st_mode) and key not in own and key not in found:
                    found[key] = path
        for key, path in found.items():
            s = self._by_key.get(key)
            if s is not None and s.fd is not None:
                if s.path != path:  # renamed, still matched: keep following it
                    s.path = path
                    self._dirty.add(s)
                if s.rotated_at is not None and not s.deleted:
                    s.rotated_at = None
                continue
            known = None
            if s is not None:  # closed, awaiting commits, and matched again
                known = (s.frontier, s.frontier_fp)
                self._retire(s)
            elif key in self._saved:
                row = self._saved[key]
                known = (row.offset, row.fingerprint)
            from_end = initial and first_run and not self._read_from_head and known is None
            if self._open_stream(path, key, known=known, from_end=from_end) is not None:
                self._saved.pop(key, None)
        for s in list(self._streams.values()):
            if s.fd is not None and s.key not in found:
                self._mark_gone(s, now)
        return set(found)

    def _mark_gone(self, s: _Stream, now: float) -> None:
        """The patterns no longer lead to this open file: it was rotated or deleted."""
        assert s.fd is not None
        try:
            nlink = os.fstat(s.fd).st_nlink
        except OSError:
            nlink = 1
        if nlink == 0 and not s.deleted:
            s.deleted = True
            self._stats.deletions += 1
            if s.rotated_at is None:
                s.rotated_at = now
                s.watch_path = s.path
            return
        if s.rotated_at is None:
            s.rotated_at = now
            s.watch_path = s.path
            self._stats.rotations += 1
            new = _fd_path(s.fd)
            if new is not None and new != s.path:
                s.path = new
                self._dirty.add(s)

    def _resume_rotated(self, found: set[_Key], now: float) -> None:
        """Rows not matched at start: resume files rotated away with uncommitted data.

        The file is looked for under its last known name, then by inode in that name's
        directory (rotated while the tailer was down). Rows of matched files that could not be
        opened stay saved for the next scan.
        """
        listings: dict[str, dict[int, str]] = {}
        for key, row in list(self._saved.items()):
            if key in found:
                continue
            del self._saved[key]
            self._deletes.add(key)
            path = self._find_by_inode(row.path, key, listings)
            if path is None:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != key or st.st_size <= row.offset:
                continue
            known = (row.offset, row.fingerprint)
            s = self._open_stream(path, key, known=known, from_end=False, only_if_known=True)
            if s is not None:
                s.rotated_at = now
                self._stats.resumed_rotated += 1

    @staticmethod
    def _find_by_inode(path: str, key: _Key, listings: dict[str, dict[int, str]]) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == key:
            return path
        folder = os.path.dirname(path)
        if folder not in listings:
            try:
                with os.scandir(folder) as entries:
                    listings[folder] = {e.inode(): e.path for e in entries}
            except OSError:
                listings[folder] = {}
        return listings[folder].get(key[1])

    def _housekeep(self, now: float) -> None:
        rescan = now >= self._next_scan
        if not rescan:
            for s in self._streams.values():
                if s.fd is None or now < s.next_check:
                    continue
                s.next_check = now + _STAT_INTERVAL
                watched = s.path if s.rotated_at is None else s.watch_path
                try:
                    st = os.stat(watched)
                    key: _Key | None = (st.st_dev, st.st_ino)
                except OSError:
                    key = None
                if (s.rotated_at is None and key != s.key) or (
                    s.rotated_at is not None and key is not None and key not in self._by_key
                ):
                    rescan = True
                    break
        if rescan:
            self._scan(now)

    def _close_finished(self, now: float, out: list[Chunk]) -> None:
        for s in list(self._streams.values()):
            if s.fd is None or s.rotated_at is None or not s.at_eof:
                continue
            if s.deleted or now - s.rotated_at >= self._rotate_wait:
                self._flush_partial(s, out, keep_fp=True)
                os.close(s.fd)
                s.fd = None
                self._stats.files_closed += 1
                if s.frontier >= s.safe_end:
                    self._drop(s)

    # --- reading and splitting -----------------------------------------------------------------

    def _read_burst(self, s: _Stream, want: int, out: list[Chunk]) -> tuple[int, bool]:
        """Read up to ``want`` new bytes of ``s``; returns (bytes handed out, made progress).

        Bytes that only extend a held line (at most ``max_line_bytes`` of them are kept) or are
        discarded do not count, so a poll returns nothing only when nothing more is readable.
        """
        fd = s.fd
        assert fd is not None
        recent = s.recent
        pos = s.read_offset
        try:
            # the bytes before our offset must not have changed: else truncated or rewritten
            if recent and os.pread(fd, len(recent), pos - len(recent)) != recent:
                self._truncated(s, out)
                return 0, True
            data = os.pread(fd, want, pos)
        except OSError as exc:
            self._stats.read_errors += 1
            self._warn_once(s.path, f"cannot read {s.path!r} ({exc.strerror}); will retry")
            s.at_eof = True
            return 0, False
        n = len(data)
        if n == 0:
            s.at_eof = True
            return 0, False
        self._raw_left -= n
        if n < want:
            s.at_eof = True
        if n >= _FP_SPAN:
            window, window_start = data, pos
        else:  # small read: keep the bytes before it at hand for the fingerprint
            window, window_start = recent + data, pos - len(recent)
        s.recent = window[-_FP_SPAN:]
        s.read_offset = pos + n
        start = s.safe_end
        lines = self._split_lines(s, data, pos)
        self._stats.bytes += n
        if lines:
            end = s.safe_end
            s.fps[end] = (start, self._fingerprint_at(s, end, window, window_start))
            out.append(Chunk(s.file_id, s.path, start, end, lines))
            self._stats.lines += len(lines)
            self._stats.chunks += 1
            return end - start, True
        return 0, True

    def _fingerprint_at(self, s: _Stream, end: int, data: bytes, data_start: int) -> bytes:
        span = min(_FP_SPAN, end)
        lo = end - span
        assert s.fd is not None
        if lo >= data_start and end <= data_start + len(data):
            tail = data[lo - data_start : end - data_start]
        else:
            tail = os.pread(s.fd, span, lo)
        if end <= _FP_SPAN:
            return _fingerprint(end, tail, tail)
        if s.head is None:
            if data_start == 0 and len(data) >= _FP_SPAN:
                head = data[:_FP_SPAN]
            else:
                head = os.pread(s.fd, _FP_SPAN, 0)
            if len(head) < _FP_SPAN:
                return _fingerprint(end, head, tail)  # file shrank; will not verify: re-read
            s.head = head
        return _fingerprint(end, s.head, tail)

    def _split_lines(self, s: _Stream, new: bytes, new_start: int) -> list[bytes]:
        """Split ``new`` (file bytes at ``new_start``) into lines; updates ``s.safe_end``."""
        m = self._max_line
        out: list[bytes] = []
        if s.discarding:
            nl = new.find(b"\n")
            if nl < 0:
                s.dropped += len(new)
                s.last_cr = new.endswith(b"\r")
                return out
            ends_cr = new[nl - 1 : nl] == b"\r" if nl else s.last_cr
            out.append(s.partial)
            self._stats.long_lines_truncated += 1
            self._stats.bytes_dropped += s.dropped + nl - ends_cr
            s.partial = b""
            s.discarding = False
            s.dropped = 0
            s.safe_end = new_start + nl + 1
            new = new[nl + 1 :]
            new_start += nl + 1
            if not new:
                return out
        held = s.partial
        buf = held + new if held else new
        buf_start = new_start - len(held)
        last = buf.rfind(b"\n")
        if last < 0:
            s.partial = buf
        else:
            # CRLF: dropping the b"\r" of every b"\r\n" keeps the split a single C call
            # (b"\r" is looked for with memchr, b"\r\n" would be a 70x slower substring search)
            parts = (buf.replace(b"\r\n", b"\n") if b"\r" in buf else buf).split(b"\n")
            s.partial = parts.pop()
            s.safe_end = buf_start + last + 1
            if len(buf) > m and max(map(len, parts)) > m:
                parts = self._cap_lines(parts, continuation=s.long_open)
            s.long_open = False
            if out:
                out.extend(parts)
            else:
                out = parts
        held = s.partial
        if len(held) > m + 1:  # long enough to be over-long whatever ends it
            if self._split:
                # emit whole pieces, keeping 2..m+1 bytes so a final b"\r" is still seen
                count = -(-(len(held) - m - 1) // m)
                out.extend(held[i : i + m] for i in range(0, count * m, m))
                if not s.long_open:
                    self._stats.long_lines_split += 1
                    s.long_open = True
                s.partial = held[count * m :]
                s.safe_end += count * m
            else:
                s.discarding = True
                s.dropped = len(held) - m
                s.last_cr = held.endswith(b"\r")
                s.partial = held[:m]
        return out

    def _cap_lines(self, parts: list[bytes], *, continuation: bool) -> list[bytes]:
        m = self._max_line
        out: list[bytes] = []
        for i, line in enumerate(parts):
            if len(line) <= m:
                out.append(line)
            elif self._split:
                out.extend(line[j : j + m] for j in range(0, len(line), m))
                if not (i == 0 and continuation):
                    self._stats.long_lines_split += 1
            else:
                out.append(line[:m])
                self._stats.long_lines_truncated += 1
                self._stats.bytes_dropped += len(line) - m
        return out

    def _flush_partial(self, s: _Stream, out: list[Chunk], *, keep_fp: bool) -> None:
        """Hand out the held unterminated line as it is (close, deletion, truncation)."""
        start, end = s.safe_end, s.read_offset
        if end <= start:
            return
        if s.discarding:
            lines = [s.partial]
            self._stats.long_lines_truncated += 1
            self._stats.bytes_dropped += s.dropped
        else:
            lines = self._cap_lines([s.partial], continuation=s.long_open)
        self._stats.partial_lines_flushed += 1
        s.partial = b""
        s.discarding = False
        s.dropped = 0
        s.long_open = False
        s.safe_end = end
        fp = None
        if keep_fp and s.fd is not None:
            try:
                fp = _fingerprint_of(s.fd, end)
            except OSError:
                fp = None
        s.fps[end] = (start, fp or b"")
        out.append(Chunk(s.file_id, s.path, start, end, lines))
        self._stats.lines += len(lines)
        self._stats.chunks += 1

    def _truncated(self, s: _Stream, out: list[Chunk]) -> None:
        """The bytes before our offset changed: flush, then restart the file at offset 0."""
        self._stats.truncations += 1
        _log.info("%s was truncated; reading it again from offset 0", s.path)
        self._flush_partial(s, out, keep_fp=False)
        fd = s.fd
        assert fd is not None
        s.fd = None
        self._retire(s)
        fresh = _Stream(self._next_id, s.key, s.path, fd, 0, _EMPTY_FP, b"")
        self._next_id += 1
        fresh.rotated_at = s.rotated_at
        fresh.deleted = s.deleted
        fresh.watch_path = s.watch_path
        fresh.next_check = s.next_check
        self._register(fresh)
