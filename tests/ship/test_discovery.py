"""Tailer file discovery (rolesanywhere.ship.discovery): re-scans, rotation by rename+create,
copytruncate, truncation, deletion.

The two writer-thread tests (rename+create, copytruncate) use the real clock.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from rolesanywhere.ship.tail import Tailer
from tests.ship.tailing import (
    STAT_STEP,
    FakeClock,
    db_rows,
    drain,
    lines_of,
    make_tailer,
    numbered,
    seq_of,
)

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
