"""Tailer positions (rolesanywhere.ship.positions): the state directory lock, restarts, crashes,
fingerprints, files rotated while down, lost, damaged or unwritable position databases.

The crash test kills a child process with SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rolesanywhere.errors import PositionsLostError, TailError
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


def test_second_tailer_on_same_state_dir_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with make_tailer(tmp_path, clock), pytest.raises(TailError, match="another Tailer"):
        make_tailer(tmp_path, clock)


# --- restarts and the position database ----------------------------------------------------------


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
        pages = t._store.conn.execute("PRAGMA page_count").fetchone()[0]
        t._store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        for i in range(300):
            (tmp_path / f"{'n' * 150}{i}.log").write_bytes(b"line %d\n" % i)
        clock.advance(61)  # re-scan: 300 new files, each a new row
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rolesanywhere.ship.positions"):
            chunks = drain(t)
            assert len(lines_of(chunks)) == 300
            for _ in range(3):
                with pytest.raises(TailError, match="database or disk is full"):
                    t.commit(chunks)
            assert "no transaction" not in t.db_error()  # type: ignore[operator]
            full = [r for r in caplog.records if "disk is full" in r.getMessage()]
            assert len(full) == 1, caplog.text  # named once, however often it fails
            assert "\n" not in full[0].getMessage() and full[0].exc_info is None
            t._store.conn.execute("PRAGMA max_page_count = 1000000")  # space freed
            t.commit(chunks)  # what failed is written now
            assert t.db_error() is None
            assert "written again" in caplog.text
    finally:
        t.close()
    assert len(db_rows(tmp_path / "state")) == 303
