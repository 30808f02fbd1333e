"""Helpers for the tailer tests (tests/ship/test_tail.py and its neighbours): a fake clock,
draining, the database."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

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


def make_tailer(tmp_path: Path, clock: FakeClock, pattern: str = "*.log", **kw: object) -> Tailer:
    kw.setdefault("refresh_interval", 60.0)
    return Tailer(str(tmp_path / pattern), state_dir=tmp_path / "state", clock=clock, **kw)  # type: ignore[arg-type]
