"""Tailer: reading, long lines, discovery, rotation, truncation, the position database, crashes.

Everything runs on real files in ``tmp_path``. Most tests drive a fake clock so ``rotate_wait``,
``refresh_interval`` and the 0.25 s path checks are deterministic; the two writer-thread tests
(rename+create, copytruncate) use the real clock. The crash test kills a child process with
SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import PositionsLostError, TailError
from rolesanywhere.ship.tail import Chunk, Tailer

STAT_STEP = 0.3  # more than the tailer's 0.25 s between path checks


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def lines_of(chunks: Iterable[Chunk]) -> list[bytes]:
    return [line for c in chunks for line in c.lines]


def drain(tailer: Tailer, *, max_bytes: int = 1 << 20, commit: bool = False) -> list[Chunk]:
    """Poll until nothing more is available now."""
    out: list[Chunk] = []
    while chunks := tailer.poll(max_bytes=max_bytes):
        out.extend(chunks)
        if commit:
            tailer.commit(chunks)
    return out


def db_rows(state: Path) -> dict[str, int]:
    """{path: committed offset} straight from the position database."""
    conn = sqlite3.connect(state / "positions.db")
    try:
        return {
            os.fsdecode(bytes(path)): offset
            for path, offset in conn.execute("SELECT path, offset FROM positions")
        }
    finally:
        conn.close()


def numbered(start: int, stop: int, width: int = 40) -> bytes:
    return b"".join(b"line %08d %s\n" % (i, b"x" * (i % width)) for i in range(start, stop))


def seq_of(line: bytes) -> int:
    return int(line.split()[1])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def make_tailer(tmp_path: Path, clock: FakeClock, pattern: str = "*.log", **kw: object) -> Tailer:
    kw.setdefault("refresh_interval", 60.0)
    return Tailer(str(tmp_path / pattern), state_dir=tmp_path / "state", clock=clock, **kw)  # type: ignore[arg-type]


# --- start position, partial lines, CRLF, long lines ---------------------------------------------


def test_existing_file_read_from_end_by_default(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old 1\nold 2\nbeing writ")  # the last line is still being written
    with make_tailer(tmp_path, clock) as t:
        assert drain(t) == []
        with log.open("ab") as f:
            f.write(b"ten\nnew 3\n")
        # the line being written when we started is read whole, the older ones not at all
        assert lines_of(drain(t)) == [b"being written", b"new 3"]


def test_existing_file_read_from_head_on_request(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "app.log").write_bytes(b"old 1\nold 2\n")
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        chunks = drain(t)
        assert lines_of(chunks) == [b"old 1", b"old 2"]
        assert (chunks[0].start_offset, chunks[-1].end_offset) == (0, 12)
        assert chunks[0].path == str(tmp_path / "app.log")


def test_excluded_paths_are_never_read(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "app.log").write_bytes(b"keep\n")
    (tmp_path / "debug.log").write_bytes(b"skip by name\n")
    (tmp_path / "old.gz.log").write_bytes(b"skip by path\n")
    exclude = ["debug.*", str(tmp_path / "*.gz.log")]
    with make_tailer(tmp_path, clock, read_from_head=True, exclude=exclude) as t:
        assert lines_of(drain(t)) == [b"keep"]


def test_partial_line_is_held_until_completed(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock) as t, log.open("ab", buffering=0) as f:
        f.write(b"hel")
        assert drain(t) == []
        f.write(b"lo\nwor")
        first = drain(t)
        assert lines_of(first) == [b"hello"]
        assert first[-1].end_offset == 6  # the held "wor" is not part of any chunk yet
        f.write(b"ld\n")
        second = drain(t)
        assert lines_of(second) == [b"world"]
        assert second[0].start_offset == 6
        assert t.stats().lines == 2


def test_crlf_loses_exactly_one_cr(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock) as t, log.open("ab", buffering=0) as f:
        f.write(b"a\r\nb\r\r\nc\rd\n\r\n")
        f.write(b"split\r")  # b"\r" and b"\n" in different reads
        assert lines_of(drain(t)) == [b"a", b"b\r", b"c\rd", b""]
        f.write(b"\n")
        assert lines_of(drain(t)) == [b"split"]


def test_long_lines_split_into_pieces(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock, max_line_bytes=4) as t, log.open("ab", buffering=0) as f:
        f.write(b"abcdefghij\nok\n1234\r\n")  # over-long line complete in one read
        assert lines_of(drain(t)) == [b"abcd", b"efgh", b"ij", b"ok", b"1234"]
        f.write(b"ABCDEFGHIJ")  # over-long and unfinished: pieces go out before the newline
        early = drain(t)
        assert lines_of(early) == [b"ABCD", b"EFGH"]
        f.write(b"KL\r\n")
        assert lines_of(drain(t)) == [b"IJKL"]
        f.write(b"abcdefgh\r")  # the b"\r" may end the line: it must not start a new piece
        assert lines_of(drain(t)) == [b"abcd"]
        f.write(b"\n")
        assert lines_of(drain(t)) == [b"efgh"]
        stats = t.stats()
        assert stats.long_lines_split == 3  # each long line counted once
        assert stats.long_lines_truncated == 0
        assert stats.lines == 10


def test_long_lines_truncated_and_counted(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tailer = make_tailer(tmp_path, clock, max_line_bytes=4, long_lines="truncate")
    with tailer as t, log.open("ab", buffering=0) as f:
        f.write(b"abcdefghij\nok\n1234\r\n")
        assert lines_of(drain(t)) == [b"abcd", b"ok", b"1234"]
        assert (t.stats().long_lines_truncated, t.stats().bytes_dropped) == (1, 6)
        f.write(b"ABCDEFGHIJ")
        assert drain(t) == []  # the kept piece waits for the end of the line
        f.write(b"KL\r\nnext\n")
        chunks = drain(t)
        assert lines_of(chunks) == [b"ABCD", b"next"]
        assert chunks[-1].end_offset == log.stat().st_size  # the dropped bytes are covered
        stats = t.stats()
        assert (stats.long_lines_truncated, stats.bytes_dropped) == (2, 6 + 8)


def test_poll_respects_max_bytes(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 1000))
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        total = log.stat().st_size
        assert t.lag_bytes() == total
        chunks = t.poll(max_bytes=4096)
        assert 4096 - 60 < sum(c.nbytes for c in chunks) <= 4096 + 60  # + one held line
        assert t.lag_bytes() == total - chunks[-1].end_offset
        assert t.uncommitted_bytes() == chunks[-1].end_offset
        rest = drain(t, max_bytes=4096)
        assert [seq_of(x) for x in lines_of(chunks + rest)] == list(range(1000))
        assert t.lag_bytes() == 0


# --- discovery -----------------------------------------------------------------------------------


def test_glob_rescan_picks_up_new_files_from_head(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "a").mkdir()
    with make_tailer(tmp_path, clock, pattern="**/*.log", refresh_interval=10.0) as t:
        (tmp_path / "a" / "b").mkdir()
        (tmp_path / "a" / "b" / "deep.log").write_bytes(b"one\ntwo\n")
        (tmp_path / "a" / "skip.txt").write_bytes(b"no\n")
        clock.advance(5)
        assert drain(t) == []  # not before refresh_interval
        clock.advance(5)
        chunks = drain(t)
        assert lines_of(chunks) == [b"one", b"two"]
        assert chunks[0].path == str(tmp_path / "a" / "b" / "deep.log")
        assert t.stats().files_opened == 1


def test_second_tailer_on_same_state_dir_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with make_tailer(tmp_path, clock), pytest.raises(TailError, match="another Tailer"):
        make_tailer(tmp_path, clock)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="long_lines"):
        Tailer("x", state_dir=tmp_path, long_lines="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_line_bytes"):
        Tailer("x", state_dir=tmp_path, max_line_bytes=0)
    with pytest.raises(ValueError, match="at least one glob"):
        Tailer([], state_dir=tmp_path)


# --- rotation, truncation, deletion --------------------------------------------------------------


def test_rotate_wait_keeps_reading_old_file_then_closes(tmp_path: Path, clock: FakeClock) -> None:
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock, pattern="app.log", rotate_wait=5.0) as t:
        log.write_bytes(b"before\n")
        before = drain(t)
        assert lines_of(before) == [b"before"]
        log.rename(old)
        log.write_bytes(b"new file\n")
        clock.advance(STAT_STEP)
        assert lines_of(drain(t)) == [b"new file"]
        assert t.stats().rotations == 1
        with old.open("ab") as f:
            f.write(b"late\nunfinished")
        clock.advance(3)
        late = drain(t)
        assert lines_of(late) == [b"late"]
        assert late[0].path == str(old)  # renamed path followed through /proc/self/fd
        assert t.stats().files_closed == 0
        clock.advance(2)  # rotate_wait elapsed: the held partial line is flushed and we close
        last = drain(t)
        assert lines_of(last) == [b"unfinished"]
        assert t.stats().files_closed == 1
        assert t.stats().partial_lines_flushed == 1
        with old.open("ab") as f:
            f.write(b"too late\n")
        assert drain(t) == []
        assert str(old) in db_rows(tmp_path / "state")  # kept until committed
        t.commit(last)
        assert str(old) in db_rows(tmp_path / "state")  # "before" and "late" still missing
        t.commit(before + late)
        assert str(old) not in db_rows(tmp_path / "state")
        assert [f.path for f in t.files()] == [str(log)]


def test_rotated_file_with_backlog_is_read_to_its_end(tmp_path: Path, clock: FakeClock) -> None:
    """rotate_wait is a minimum: a slow consumer still gets every line of the rotated file."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock, pattern="app.log", rotate_wait=1.0) as t:
        log.write_bytes(numbered(0, 500))
        log.rename(tmp_path / "app.log.1")
        clock.advance(STAT_STEP)
        got = t.poll(max_bytes=100)
        clock.advance(10)  # long past rotate_wait, most of the file still unread
        got += drain(t, max_bytes=100)
        assert [seq_of(x) for x in lines_of(got)] == list(range(500))
        assert t.stats().files_closed == 1


def test_rename_within_patterns_is_followed_not_reread(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock, pattern="app.log*", rotate_wait=0.0) as t:
        log.write_bytes(b"a\n")
        assert lines_of(drain(t)) == [b"a"]
        log.rename(tmp_path / "app.log.1")
        log.write_bytes(b"b\n")
        clock.advance(STAT_STEP)
        got = drain(t)
        assert lines_of(got) == [b"b"]
        with (tmp_path / "app.log.1").open("ab") as f:
            f.write(b"c\n")
        clock.advance(STAT_STEP)
        assert lines_of(drain(t)) == [b"c"]  # still followed: not rotated out, not re-read
        assert t.stats().rotations == 0
        assert t.stats().files_opened == 2


def test_rename_create_rotation_with_writer_thread(tmp_path: Path) -> None:
    """A writer appends and rotates five times; every line arrives once, in order per file."""
    log = tmp_path / "app.log"
    per_file, rotations = 3000, 5
    total = per_file * (rotations + 1)
    seen = threading.Condition()
    highest = [-1]

    def writer() -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        seq = 0
        for r in range(rotations + 1):
            while seq < per_file * (r + 1) - 2:
                burst = min(37, per_file * (r + 1) - 2 - seq)
                os.write(fd, numbered(seq, seq + burst))
                seq += burst
            if r < rotations:

                def caught_up(target: int = seq - 1) -> bool:
                    return highest[0] >= target

                with seen:  # rotate only once the tailer has found the current file
                    seen.wait_for(caught_up, timeout=10)
                os.rename(log, f"{log}.{r + 1}")
                os.write(fd, numbered(seq, seq + 2))  # the logger writes before it reopens
                seq += 2
                os.close(fd)
                fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            else:
                os.write(fd, numbered(seq, seq + 2))
                seq += 2
        os.close(fd)

    log.write_bytes(b"")
    got: dict[int, list[int]] = {}
    with Tailer(str(log), state_dir=tmp_path / "state", rotate_wait=0.5, refresh_interval=0.2) as t:
        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.monotonic() + 20
        count = 0
        while time.monotonic() < deadline and (count < total or t.stats().files_closed < rotations):
            chunks = t.poll(max_bytes=64 << 10)
            for c in chunks:
                got.setdefault(c.file_id, []).extend(seq_of(x) for x in c.lines)
                count += len(c.lines)
            if chunks:
                t.commit(chunks)
                with seen:
                    highest[0] = max(highest[0], *(seq_of(c.lines[-1]) for c in chunks))
                    seen.notify_all()
            else:
                time.sleep(0.002)
        thread.join()
        stats = t.stats()
    every = sorted(s for seqs in got.values() for s in seqs)
    assert every == list(range(total))  # nothing lost, nothing twice
    for seqs in got.values():
        assert seqs == sorted(seqs)
    assert len(got) == rotations + 1
    assert stats.rotations == rotations
    assert stats.files_closed == rotations


def test_copytruncate_with_writer_thread(tmp_path: Path) -> None:
    """copytruncate while a writer appends: 0 lines lost by the tailer.

    copytruncate itself loses lines written between its copy and its truncate, and lines the
    tailer had not read yet end up only in the copy. The test excludes both (the writer is paused
    under a lock, and the tailer drains the file before the copy), so what it measures is the
    tailer: noticing the truncation and re-reading the file from offset 0 without skipping bytes.
    """
    log = tmp_path / "app.log"
    total, every = 20000, 2500
    lock = threading.Lock()

    def writer() -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        for seq in range(0, total, 10):
            with lock:
                os.write(fd, numbered(seq, seq + 10))
            if seq % 100 == 0:
                time.sleep(0.0005)  # let the reader keep up, so that all the cuts happen
        os.close(fd)

    log.write_bytes(b"")
    got: list[int] = []
    cuts = 0
    with Tailer(str(log), state_dir=tmp_path / "state", refresh_interval=0.2) as t:
        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < total:
            chunks = t.poll(max_bytes=32 << 10)
            got.extend(seq_of(x) for x in lines_of(chunks))
            t.commit(chunks)
            if len(got) >= every * (cuts + 1) and cuts < 6:
                with lock:
                    got.extend(seq_of(x) for x in lines_of(drain(t)))
                    shutil.copyfile(log, tmp_path / f"app.log.{cuts}")
                    os.truncate(log, 0)
                cuts += 1
            if not chunks:
                time.sleep(0.002)
        thread.join()
        got.extend(seq_of(x) for x in lines_of(drain(t)))
        stats = t.stats()
    assert got == list(range(total))  # in order, none lost, none twice
    assert cuts >= 4
    assert 1 <= stats.truncations <= cuts


def test_truncation_detected_even_when_regrown_past_offset(
    tmp_path: Path, clock: FakeClock
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock) as t:
        log.write_bytes(numbered(0, 50))
        before = drain(t)
        assert len(lines_of(before)) == 50
        os.truncate(log, 0)
        with log.open("ab") as f:  # regrows past our offset before we look again
            f.write(numbered(100, 200))
        after = drain(t)
        assert [seq_of(x) for x in lines_of(after)] == list(range(100, 200))
        assert after[0].start_offset == 0
        assert after[0].file_id != before[0].file_id  # a new stream
        assert t.stats().truncations == 1
        t.commit(before)  # chunks of the stream before the truncation: ignored, counted
        assert t.stats().stale_commits == len(before)
        t.commit(after)
        assert db_rows(tmp_path / "state") == {str(log): log.stat().st_size}


def test_shrinking_file_flushes_partial_and_restarts(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock) as t:
        log.write_bytes(b"one\ntwo\nhalf")
        assert lines_of(drain(t)) == [b"one", b"two"]
        log.write_bytes(b"3\n")  # "w" truncates
        assert lines_of(drain(t)) == [b"half", b"3"]
        stats = t.stats()
        assert (stats.truncations, stats.partial_lines_flushed) == (1, 1)


def test_deleted_file_read_to_end_then_dropped(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock) as t, log.open("ab", buffering=0) as f:
        f.write(b"a\n")
        first = drain(t)
        f.write(b"b\nc")
        log.unlink()
        f.write(b" end")  # still written through the open descriptor
        clock.advance(STAT_STEP)
        rest = drain(t)
        assert lines_of(first + rest) == [b"a", b"b", b"c end"]
        stats = t.stats()
        assert (stats.deletions, stats.files_closed) == (1, 1)
        assert len(t.files()) == 1 and not t.files()[0].open  # awaiting its commit
        t.commit(first + rest)
        assert t.files() == []
        assert db_rows(tmp_path / "state") == {}


# --- commits and the position database -----------------------------------------------------------


def test_commit_out_of_order_persists_contiguous_prefix(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    state = tmp_path / "state"
    with make_tailer(tmp_path, clock) as t:
        log.write_bytes(b"l1\nl2\nl3\nl4\nl5\nl6\n")
        c1, c2, c3 = (t.poll(max_bytes=6)[0] for _ in range(3))
        assert [c.lines for c in (c1, c2, c3)] == [[b"l1", b"l2"], [b"l3", b"l4"], [b"l5", b"l6"]]
        t.commit([c3])
        assert db_rows(state) == {str(log): 0}
        t.commit([c1])
        assert db_rows(state) == {str(log): c1.end_offset}
        assert t.uncommitted_bytes() == c3.end_offset - c1.end_offset
        t.commit([c2])
        assert db_rows(state) == {str(log): c3.end_offset}
        assert t.files()[0].committed_offset == 18
        t.commit([c1, c2, c3])  # again: harmless
        assert db_rows(state) == {str(log): 18}


def test_commit_positions_and_refusals(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    state = tmp_path / "state"
    with make_tailer(tmp_path, clock) as t:
        log.write_bytes(b"l1\nl2\nl3\nl4\n")
        c1, c2 = t.poll(max_bytes=6)[0], t.poll(max_bytes=6)[0]
        with pytest.raises(ValueError, match="not the end of a chunk"):
            t.commit_positions({c1.file_id: 4})
        with pytest.raises(ValueError, match="never handed out"):
            t.commit_positions({99: 4})
        forged = Chunk(c1.file_id, c1.path, 3, c1.end_offset, [b"l2"])
        with pytest.raises(ValueError, match="not handed out"):
            t.commit([forged])
        assert db_rows(state) == {str(log): 0}
        t.commit_positions({c2.file_id: c2.end_offset})
        assert db_rows(state) == {str(log): 12}
        assert t.uncommitted_bytes() == 0


def test_restart_resumes_at_committed_offset(tmp_path: Path, clock: FakeClock) -> None:
    """A crash after reading but before committing: the uncommitted lines come again, once."""
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 300))
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        chunks = drain(t, max_bytes=1000)
        assert len(chunks) > 4
        t.commit(chunks[:2] + chunks[3:4])  # chunk 2 never delivered: 3 is held back too
        delivered = lines_of(chunks[:2])
        uncommitted = lines_of(chunks[2:])
    # leaving the context commits nothing, exactly like a crash after the last commit
    with log.open("ab") as f:
        f.write(numbered(300, 310))
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        again = lines_of(drain(t))
        assert t.stats().fingerprint_mismatches == 0
    assert again == uncommitted + numbered(300, 310).splitlines()
    assert delivered + again == numbered(0, 310).splitlines()  # nothing lost


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from rolesanywhere.ship.tail import Tailer
    t = Tailer(sys.argv[1], state_dir=sys.argv[2], read_from_head=True)
    committed = uncommitted = 0
    for i in range(12):
        chunks = t.poll(max_bytes=2000)
        if i < 8:
            t.commit(chunks)
            committed += sum(len(c.lines) for c in chunks)
        else:
            uncommitted += sum(len(c.lines) for c in chunks)
    print(json.dumps([committed, uncommitted]), flush=True)
    time.sleep(60)
    """
)


def test_kill_9_then_restart_loses_nothing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 2000))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(log), str(tmp_path / "state")],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        committed, uncommitted = json.loads(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert committed > 0 and uncommitted > 0
    with Tailer(str(log), state_dir=tmp_path / "state", read_from_head=True) as t:
        again = [seq_of(x) for x in lines_of(drain(t))]
    assert again == list(range(committed, 2000))  # resumes at the commit: 0 lost
    duplicates = (committed + uncommitted) + len(again) - 2000
    assert duplicates == uncommitted  # duplicates = exactly what was read but not committed


def test_file_rewritten_while_down_fails_fingerprint(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"aaaa\nbbbb\n")
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        drain(t, commit=True)
    inode = log.stat().st_ino
    with log.open("r+b") as f:  # same inode, different bytes before the saved offset
        f.write(b"XXXX\nYYYY\nZZZZ\n")
    assert log.stat().st_ino == inode
    with make_tailer(tmp_path, clock) as t:
        assert lines_of(drain(t)) == [b"XXXX", b"YYYY", b"ZZZZ"]
        assert t.stats().fingerprint_mismatches == 1


def test_file_shrunk_while_down_is_read_from_head(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"aaaa\nbbbb\n")
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        drain(t, commit=True)
    with log.open("r+b") as f:
        f.truncate(0)
        f.write(b"c\n")
    with make_tailer(tmp_path, clock) as t:
        assert lines_of(drain(t)) == [b"c"]
        assert t.stats().fingerprint_mismatches == 1


def test_reused_inode_is_not_trusted(tmp_path: Path, clock: FakeClock) -> None:
    """The database knows this inode from an earlier file: the fingerprint tells them apart."""
    state = tmp_path / "state"
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock):
        pass
    log.write_bytes(b"fresh 1\nfresh 2\nfresh 3\n")
    st_ = log.stat()
    conn = sqlite3.connect(state / "positions.db")
    with conn:  # what a previous file with this inode left behind
        conn.execute("DELETE FROM positions")
        conn.execute(
            "INSERT INTO positions VALUES (?, ?, ?, ?, ?, 0)",
            (st_.st_dev, st_.st_ino, b"/old/name.log", 8, b"\x00" * 32),
        )
    conn.close()
    with make_tailer(tmp_path, clock) as t:
        assert lines_of(drain(t)) == [b"fresh 1", b"fresh 2", b"fresh 3"]
        assert t.stats().fingerprint_mismatches == 1


def test_file_created_while_down_is_read_from_head(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "a.log").write_bytes(b"a\n")
    with make_tailer(tmp_path, clock) as t:
        assert drain(t) == []  # first run: existing files from their end
    (tmp_path / "b.log").write_bytes(b"written while down\n")
    with make_tailer(tmp_path, clock) as t:  # same patterns: b.log is new since the last run
        assert lines_of(drain(t, commit=True)) == [b"written while down"]
    (tmp_path / "c.txt").write_bytes(b"history\n")
    with make_tailer(tmp_path, clock, pattern="*.txt") as t:  # other patterns: from the end
        assert drain(t) == []


def test_rotated_file_with_uncommitted_lines_resumed_after_crash(
    tmp_path: Path, clock: FakeClock
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock, pattern="app.log") as t:
        log.write_bytes(b"one\ntwo\n")
        first = drain(t)
        log.write_bytes(b"one\ntwo\nthree\n")  # same inode, appended
        second = drain(t)
        t.commit(first)
        log.rename(tmp_path / "app.log.1")
        clock.advance(STAT_STEP)
        drain(t)  # sees the rotation and records the new name
        assert str(tmp_path / "app.log.1") in db_rows(tmp_path / "state")
    # crash: "three" was handed out but never delivered; the file is no longer matched
    with make_tailer(tmp_path, clock, pattern="app.log") as t:
        assert lines_of(drain(t)) == lines_of(second) == [b"three"]
        assert t.stats().resumed_rotated == 1


def test_file_rotated_while_down_found_by_inode(tmp_path: Path, clock: FakeClock) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with make_tailer(tmp_path, clock, pattern="app.log") as t:
        log.write_bytes(b"one\n")
        drain(t, commit=True)
    with log.open("ab") as f:
        f.write(b"two\n")
    log.rename(tmp_path / "app.log.1")  # rotated while the tailer was down
    log.write_bytes(b"three\n")
    with make_tailer(tmp_path, clock, pattern="app.log") as t:
        got = drain(t)
        assert sorted(lines_of(got)) == [b"three", b"two"]
        assert t.stats().resumed_rotated == 1


def test_rows_of_vanished_files_are_cleaned_up(tmp_path: Path, clock: FakeClock) -> None:
    for name in ("a.log", "b.log"):
        (tmp_path / name).write_bytes(b"x\n")
    with make_tailer(tmp_path, clock) as t:
        drain(t)
    assert len(db_rows(tmp_path / "state")) == 2
    (tmp_path / "a.log").unlink()
    with make_tailer(tmp_path, clock):
        pass
    assert list(db_rows(tmp_path / "state")) == [str(tmp_path / "b.log")]


# --- property: arbitrary bytes in arbitrary pieces ------------------------------------------------

_alphabet = st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"xyzw"])
_content = st.one_of(st.lists(_alphabet, max_size=120).map(b"".join), st.binary(max_size=300))


def _expected(content: bytes, max_line: int, mode: str) -> list[bytes]:
    *complete, last = content.split(b"\n")
    lines = [x[:-1] if x.endswith(b"\r") else x for x in complete]
    if last:  # flushed as it is when the file is deleted
        lines.append(last)
    out: list[bytes] = []
    for line in lines:
        if mode == "truncate":
            out.append(line[:max_line])
        else:
            out.extend([line[i : i + max_line] for i in range(0, len(line), max_line)] or [b""])
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=_content,
    cuts=st.lists(st.integers(1, 40), max_size=30),
    budgets=st.lists(st.integers(1, 64), min_size=1, max_size=5),
    max_line=st.one_of(st.integers(1, 9), st.just(32768)),
    mode=st.sampled_from(["split", "truncate"]),
)
def test_arbitrary_writes_reassemble_into_original_lines(
    content: bytes, cuts: list[int], budgets: list[int], max_line: int, mode: str
) -> None:
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "app.log"
        log.write_bytes(b"")
        got: list[Chunk] = []
        tailer = Tailer(
            str(log),
            state_dir=Path(tmp) / "state",
            clock=clock,
            max_line_bytes=max_line,
            long_lines=mode,  # type: ignore[arg-type]
        )
        with tailer as t, log.open("ab", buffering=0) as f:
            pos, i = 0, 0
            while pos < len(content):
                step = cuts[i % len(cuts)] if cuts else len(content)
                f.write(content[pos : pos + step])
                pos += step
                got.extend(t.poll(max_bytes=budgets[i % len(budgets)]))
                i += 1
            got.extend(drain(t, max_bytes=budgets[0]))
            log.unlink()
            clock.advance(STAT_STEP)
            got.extend(drain(t, max_bytes=budgets[-1]))
        assert lines_of(got) == _expected(content, max_line, mode)
        ends = [c.start_offset for c in got[1:]]
        assert ends == [c.end_offset for c in got[:-1]]  # contiguous, in order
        if got:
            assert got[-1].end_offset == len(content)


# --- lost, damaged or unwritable position database -----------------------------------------------


def _used_state_dir(tmp_path: Path, clock: FakeClock) -> Path:
    """A state directory after one run that shipped 100 lines; 50 more lines written since."""
    log = tmp_path / "app.log"
    log.write_bytes(numbered(0, 100))
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        drain(t, commit=True)
    with log.open("ab") as f:
        f.write(numbered(100, 150))
    return tmp_path / "state"


def _lose_positions(state: Path, how: str) -> None:
    db = state / "positions.db"
    if how == "empty":
        db.write_bytes(b"")
    elif how == "missing":
        db.unlink()
    elif how == "cleared":
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM positions")
        conn.execute("DELETE FROM meta")
        conn.commit()
        conn.close()
    else:
        db.write_bytes(b"this is not an SQLite database\n" * 200)


@pytest.mark.parametrize("how", ["empty", "missing", "cleared", "damaged"])
def test_lost_positions_of_a_used_state_dir_are_refused_not_a_first_run(
    tmp_path: Path, clock: FakeClock, how: str
) -> None:
    """Taken for a first run, the 50 lines written since would be skipped (read from the end)."""
    state = _used_state_dir(tmp_path, clock)
    _lose_positions(state, how)
    for _ in range(2):  # a refusal changes nothing: refused again
        with pytest.raises(PositionsLostError) as info:
            make_tailer(tmp_path, clock)
        message = str(info.value)
        assert "\n" not in message
        assert "reset_positions='head'" in message and "reset_positions='end'" in message
        assert info.value.problem.startswith("is damaged" if how == "damaged" else "")
    # read_from_head does not make it a first run either: the choice must be explicit
    with pytest.raises(PositionsLostError):
        make_tailer(tmp_path, clock, read_from_head=True)


@pytest.mark.parametrize("how", ["empty", "missing", "damaged"])
def test_reset_positions_head_reads_everything_again(
    tmp_path: Path, clock: FakeClock, how: str
) -> None:
    state = _used_state_dir(tmp_path, clock)
    _lose_positions(state, how)
    with make_tailer(tmp_path, clock, reset_positions="head") as t:
        assert t.reset_reason is not None and "beginning" in t.reset_reason
        assert lines_of(drain(t, commit=True)) == numbered(0, 150).splitlines()
    if how == "damaged":
        assert (state / "positions.db.damaged").read_bytes().startswith(b"this is not")
    with make_tailer(tmp_path, clock) as t:  # the new database is trusted again
        assert t.reset_reason is None
        assert drain(t) == []


def test_reset_positions_end_starts_at_the_end(tmp_path: Path, clock: FakeClock) -> None:
    state = _used_state_dir(tmp_path, clock)
    _lose_positions(state, "empty")
    with make_tailer(tmp_path, clock, reset_positions="end") as t:
        assert t.reset_reason is not None and "end of the files" in t.reset_reason
        assert drain(t) == []
        with (tmp_path / "app.log").open("ab") as f:
            f.write(b"after\n")
        assert lines_of(drain(t)) == [b"after"]


def test_reset_positions_is_ignored_when_the_positions_are_fine(
    tmp_path: Path, clock: FakeClock
) -> None:
    _used_state_dir(tmp_path, clock)
    with make_tailer(tmp_path, clock, reset_positions="end") as t:
        assert t.reset_reason is None
        assert lines_of(drain(t)) == numbered(100, 150).splitlines()


def test_state_dir_without_marker_but_with_positions_is_resumed(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A state directory of a version that wrote no marker: resumed, and marked now."""
    state = _used_state_dir(tmp_path, clock)
    (state / "positions.used").unlink()
    with make_tailer(tmp_path, clock) as t:
        assert lines_of(drain(t)) == numbered(100, 150).splitlines()
    assert (state / "positions.used").is_file()


def test_state_files_are_private(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "app.log").write_bytes(b"one\n")
    old = os.umask(0o022)
    try:
        with make_tailer(tmp_path, clock, read_from_head=True) as t:
            drain(t, commit=True)
            state = tmp_path / "state"
            modes = {p.name: p.stat().st_mode & 0o777 for p in state.iterdir()}
    finally:
        os.umask(old)
    assert state.stat().st_mode & 0o777 == 0o700
    assert modes["positions.db"] == 0o600, modes
    assert {"positions.db-wal", "positions.lock", "positions.used"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes  # -wal and -shm too


def test_state_files_an_older_version_left_readable_are_tightened(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "app.log").write_bytes(b"one\n")
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        drain(t, commit=True)
    state = tmp_path / "state"
    for path in state.iterdir():
        path.chmod(0o644)
    with make_tailer(tmp_path, clock, read_from_head=True) as t:
        drain(t, commit=True)
        modes = {p.name: p.stat().st_mode & 0o777 for p in state.glob("positions.db*")}
    assert modes and set(modes.values()) == {0o600}, modes


def test_disk_full_names_the_cause_once_and_positions_are_written_later(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLITE_FULL rolls the transaction back by itself: the cause must not become the
    "cannot rollback - no transaction is active" of a second ROLLBACK."""
    for i in range(3):
        (tmp_path / f"{i}.log").write_bytes(b"x\n")
    t = make_tailer(tmp_path, clock, read_from_head=True)
    try:
        drain(t, commit=True)
        pages = t._conn.execute("PRAGMA page_count").fetchone()[0]
        t._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        for i in range(300):
            (tmp_path / f"{'n' * 150}{i}.log").write_bytes(b"line %d\n" % i)
        clock.advance(61)  # re-scan: 300 new files, each a new row
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rolesanywhere.ship.tail"):
            chunks = drain(t)
            assert len(lines_of(chunks)) == 300
            for _ in range(3):
                with pytest.raises(TailError, match="database or disk is full"):
                    t.commit(chunks)
            assert "no transaction" not in t.db_error()  # type: ignore[operator]
            full = [r for r in caplog.records if "disk is full" in r.getMessage()]
            assert len(full) == 1, caplog.text  # named once, however often it fails
            assert "\n" not in full[0].getMessage() and full[0].exc_info is None
            t._conn.execute("PRAGMA max_page_count = 1000000")  # space freed
            t.commit(chunks)  # what failed is written now
            assert t.db_error() is None
            assert "written again" in caplog.text
    finally:
        t.close()
    assert len(db_rows(tmp_path / "state")) == 303
