"""Tailer: where reading starts, exclusions, polling budgets, arguments, out-of-order commits.

The other tailer tests mirror its modules: test_tail_lines.py (line framing),
test_tail_discovery.py (globbing, rotation, truncation, deletion) and test_tail_positions.py (the
position database, restarts, crashes, lost positions). Everything runs on real files in
``tmp_path``; most tests drive a fake clock (tests/ship/tailing.py) so ``rotate_wait``,
``refresh_interval`` and the 0.25 s path checks are deterministic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rolesanywhere.ship.tail import Chunk, Tailer
from tests.ship.tailing import (
    FakeClock,
    db_rows,
    drain,
    lines_of,
    make_tailer,
    numbered,
    seq_of,
)


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


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="long_lines"):
        Tailer("x", state_dir=tmp_path, long_lines="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_line_bytes"):
        Tailer("x", state_dir=tmp_path, max_line_bytes=0)
    with pytest.raises(ValueError, match="at least one glob"):
        Tailer([], state_dir=tmp_path)


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
