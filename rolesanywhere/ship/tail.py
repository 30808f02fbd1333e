"""Follow log files like Fluent Bit's ``tail`` input, with offsets committed only after delivery.

The :class:`Tailer` watches glob patterns, reads new lines in big bursts and hands them out as
:class:`Chunk` objects; a file's saved position moves only when the consumer calls
:meth:`Tailer.commit` after delivering them, so a crash (even ``kill -9``) loses nothing. Use::

    with Tailer(["/var/log/app/*.log"], state_dir="/var/lib/shipper") as tailer:
        while running:
            chunks = tailer.poll(max_bytes=1 << 20)       # non-blocking; [] when idle
            if not chunks:
                time.sleep(0.2)
                continue
            send(line for c in chunks for line in c.lines)  # retry until HTTP 2xx
            tailer.commit(chunks)                         # one SQLite transaction

The full specification (API, lines, files and rotation, the position database, limits) is
docs/tailing.md. The pieces: :mod:`rolesanywhere.ship.positions` (the state directory and its
database), :mod:`rolesanywhere.ship.discovery` (finding files), :mod:`rolesanywhere.ship.lines`
(line framing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from rolesanywhere.errors import TailError
from rolesanywhere.ship.discovery import (
    fd_path,
    file_keys,
    find_by_inode,
    line_start_before,
    match_files,
)
from rolesanywhere.ship.lines import Chunk, LineFramer
from rolesanywhere.ship.positions import (
    EMPTY_FINGERPRINT,
    FP_SPAN,
    FileKey,
    PositionStore,
    SavedPosition,
    fingerprint_of,
)
from rolesanywhere.ship.streams import Stream, TailedFile

__all__ = ["Chunk", "TailStats", "TailedFile", "Tailer"]

_log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20  # largest single read, hence largest chunk
_RAW_FACTOR = 8  # a poll reads at most this many times max(max_bytes, 1 MiB)
_STAT_INTERVAL = 0.25  # seconds between "does the path still lead to this file" checks


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


class Tailer:
    """Follow files matching glob patterns; specified in docs/tailing.md."""

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
        self._refresh = float(refresh_interval)
        self._rotate_wait = float(rotate_wait)
        self._max_line = max_line_bytes
        self._split = long_lines == "split"
        self._clock = clock
        self._lock = threading.Lock()
        self._stats = TailStats()
        self._streams: dict[int, Stream] = {}
        self._by_key: dict[FileKey, Stream] = {}
        self._dirty: set[Stream] = set()
        self._deletes: set[FileKey] = set()
        self._next_id = 1
        self._rr = 0
        self._raw_left = 0
        self._warned: set[str] = set()
        self._saved: dict[FileKey, SavedPosition] = {}  # loaded at start, not yet claimed
        self._closed = False

        self._store = PositionStore(state_dir)
        self.db_path = self._store.db_path
        try:
            self._saved, first_run = self._store.open(self._patterns, synchronous, reset_positions)
            if self._store.reset_reason is not None:
                self._read_from_head = reset_positions == "head"
                self.reset_reason = self._store.reset_reason
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
            marks: list[tuple[Stream, int, int]] = []
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
                    s.advance(end)
                    self._dirty.add(s)
                else:
                    s.pending[start] = end
            self._finish_commit()

    def commit_positions(self, positions: Mapping[int, int]) -> None:
        """Persist ``{file_id: end_offset}``: everything of the file before it was delivered."""
        with self._lock:
            self._check_open()
            marks: list[tuple[Stream, int]] = []
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
                s.advance(end)
                self._dirty.add(s)
            self._finish_commit()

    def lag_bytes(self) -> int:
        """Bytes in the watched files not yet handed out (for a status line)."""
        with self._lock:
            self._check_open()
            total = 0
            for s in self._streams.values():
                size = s.size()
                if size is not None:
                    total += max(0, size - s.framer.end)
            return total

    def uncommitted_bytes(self) -> int:
        """Bytes handed out in chunks and not yet committed."""
        with self._lock:
            return sum(s.framer.end - s.frontier for s in self._streams.values())

    def db_error(self) -> str | None:
        """Why the latest write of the position database failed, or None when it worked."""
        with self._lock:
            return self._store.error

    def stats(self) -> TailStats:
        """A copy of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def files(self) -> list[TailedFile]:
        """Status of every stream, open or awaiting commits."""
        with self._lock:
            return [s.status() for s in self._streams.values()]

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

    def _flush_db(self) -> None:
        """Write dirty rows and scheduled deletions in one transaction."""
        if not self._dirty and not self._deletes:
            return
        self._store.write(
            (
                (s.key, s.path, s.frontier, s.frontier_fp)
                for s in self._dirty
                if self._by_key.get(s.key) is s
            ),
            self._deletes,
        )
        self._dirty.clear()
        self._deletes.clear()
        self._stats.commits += 1

    def _release(self) -> None:
        for s in list(self._streams.values()):
            if s.fd is not None:
                os.close(s.fd)
                s.fd = None
        self._store.close()

    # --- commit bookkeeping --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TailError("this Tailer is closed; create a new one")

    def _stream_for(self, file_id: int) -> Stream | None:
        s = self._streams.get(file_id)
        if s is None:
            if not 0 < file_id < self._next_id:
                raise ValueError(
                    f"file_id {file_id!r} was never handed out by this Tailer; commit only "
                    "chunks returned by its poll()"
                )
            self._stats.stale_commits += 1
        return s

    def _finish_commit(self) -> None:
        for s in list(self._streams.values()):
            if s.fd is None and s.frontier >= s.framer.end:
                self._drop(s)
        self._flush_db()

    # --- stream registry -----------------------------------------------------------------------

    def _register(self, s: Stream) -> None:
        self._streams[s.file_id] = s
        self._by_key[s.key] = s
        self._deletes.discard(s.key)
        self._dirty.add(s)

    def _retire(self, s: Stream) -> None:
        self._streams.pop(s.file_id, None)
        if self._by_key.get(s.key) is s:
            del self._by_key[s.key]
        self._dirty.discard(s)
        if s.fd is not None:
            os.close(s.fd)
            s.fd = None

    def _drop(self, s: Stream) -> None:
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
        key: FileKey,
        *,
        known: tuple[int, bytes] | None,
        from_end: bool,
        only_if_known: bool = False,
    ) -> Stream | None:
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
            fp: bytes | None = EMPTY_FINGERPRINT
            if known is not None:
                if known[0] <= st.st_size and fingerprint_of(fd, known[0]) == known[1]:
                    offset, fp = known
                else:
                    self._stats.fingerprint_mismatches += 1
                    if only_if_known:
                        os.close(fd)
                        return None
                    _log.info("saved position of %s does not match the file; reading it all", path)
            elif from_end:
                offset = line_start_before(fd, st.st_size)
                fp = fingerprint_of(fd, offset)
            if fp is None:  # shrank meanwhile
                offset, fp = 0, EMPTY_FINGERPRINT
            span = min(FP_SPAN, offset)
            recent = os.pread(fd, span, offset - span)
        except OSError as exc:
            os.close(fd)
            self._stats.open_errors += 1
            self._warn_once(path, f"cannot read {path!r} ({exc.strerror}); retrying at re-scan")
            return None
        s = self._new_stream(key, path, fd, offset, fp, recent)
        self._register(s)
        self._stats.files_opened += 1
        return s

    def _new_stream(
        self, key: FileKey, path: str, fd: int, offset: int, fp: bytes, recent: bytes
    ) -> Stream:
        framer = LineFramer(
            offset, max_line=self._max_line, split=self._split, counters=self._stats
        )
        s = Stream(self._next_id, key, path, fd, offset, fp, recent, framer)
        self._next_id += 1
        return s

    # --- discovery and rotation ----------------------------------------------------------------

    def _scan(self, now: float, *, initial: bool = False, first_run: bool = False) -> set[FileKey]:
        """Glob the patterns, open new files, notice files gone; returns the keys found."""
        self._next_scan = now + self._refresh
        own = file_keys(self._store.own_paths())
        found = match_files(self._patterns, self._exclude, own)
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

    def _mark_gone(self, s: Stream, now: float) -> None:
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
            new = fd_path(s.fd)
            if new is not None and new != s.path:
                s.path = new
                self._dirty.add(s)

    def _resume_rotated(self, found: set[FileKey], now: float) -> None:
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
            path = find_by_inode(row.path, key, listings)
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
                    key: FileKey | None = (st.st_dev, st.st_ino)
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
                if s.frontier >= s.framer.end:
                    self._drop(s)

    # --- reading and splitting -----------------------------------------------------------------

    def _read_burst(self, s: Stream, want: int, out: list[Chunk]) -> tuple[int, bool]:
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
        if n >= FP_SPAN:
            window, window_start = data, pos
        else:  # small read: keep the bytes before it at hand for the fingerprint
            window, window_start = recent + data, pos - len(recent)
        s.recent = window[-FP_SPAN:]
        s.read_offset = pos + n
        start = s.framer.end
        lines = s.framer.feed(data, pos)
        self._stats.bytes += n
        if lines:
            end = s.framer.end
            s.fps[end] = (start, s.fingerprint_at(end, window, window_start))
            out.append(Chunk(s.file_id, s.path, start, end, lines))
            self._stats.lines += len(lines)
            self._stats.chunks += 1
            return end - start, True
        return 0, True

    def _flush_partial(self, s: Stream, out: list[Chunk], *, keep_fp: bool) -> None:
        """Hand out the held unterminated line as it is (close, deletion, truncation)."""
        start, end = s.framer.end, s.read_offset
        lines = s.framer.flush(end)
        if lines is None:
            return
        self._stats.partial_lines_flushed += 1
        fp = None
        if keep_fp and s.fd is not None:
            try:
                fp = fingerprint_of(s.fd, end)
            except OSError:
                fp = None
        s.fps[end] = (start, fp or b"")
        out.append(Chunk(s.file_id, s.path, start, end, lines))
        self._stats.lines += len(lines)
        self._stats.chunks += 1

    def _truncated(self, s: Stream, out: list[Chunk]) -> None:
        """The bytes before our offset changed: flush, then restart the file at offset 0."""
        self._stats.truncations += 1
        _log.info("%s was truncated; reading it again from offset 0", s.path)
        self._flush_partial(s, out, keep_fp=False)
        fd = s.fd
        assert fd is not None
        s.fd = None
        self._retire(s)
        fresh = self._new_stream(s.key, s.path, fd, 0, EMPTY_FINGERPRINT, b"")
        fresh.rotated_at = s.rotated_at
        fresh.deleted = s.deleted
        fresh.watch_path = s.watch_path
        fresh.next_check = s.next_check
        self._register(fresh)
