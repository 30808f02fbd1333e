"""Tailer line framing (rolesanywhere.ship.lines): held partial lines, CRLF, long lines, and a
property test: arbitrary bytes written in arbitrary pieces reassemble into the original lines.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rolesanywhere.ship.tail import Chunk, Tailer
from tests.ship.tailing import (
    STAT_STEP,
    FakeClock,
    drain,
    lines_of,
    make_tailer,
)


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
