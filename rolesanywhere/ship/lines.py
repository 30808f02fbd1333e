"""Line framing for the tailer: :class:`Chunk` and the per-file :class:`LineFramer`.

A framer turns the bytes of one file, read in pieces, into lines without their ``\\n`` (and one
``\\r`` before it); it holds an unfinished last line and splits or cuts lines longer than
``max_line_bytes``. The rules are in docs/tailing.md (*Chunks and lines*).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

__all__ = ["Chunk", "LineCounters", "LineFramer"]


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


class LineCounters(Protocol):
    """Where a framer counts long lines (``TailStats`` qualifies)."""

    long_lines_split: int  # lines longer than max_line_bytes, split into pieces
    long_lines_truncated: int  # lines longer than max_line_bytes, cut
    bytes_dropped: int  # bytes cut from truncated lines (line endings excluded)


class LineFramer:
    """Frames one file's bytes, fed in order from offset ``end``, into lines.

    ``end`` is the file offset just after the last line (or piece of a long line) handed out:
    bytes before it are framed, bytes from it on are held (``partial``) or not read yet.
    """

    __slots__ = (
        "counters",
        "discarding",
        "dropped",
        "end",
        "last_cr",
        "long_open",
        "max_line",
        "partial",
        "split",
    )

    def __init__(self, end: int, *, max_line: int, split: bool, counters: LineCounters) -> None:
        self.max_line = max_line
        self.split = split  # long lines: split into pieces, else truncate
        self.counters = counters
        self.end = end
        self.partial = b""  # held bytes of an unfinished line (the kept piece when discarding)
        self.discarding = False  # truncate mode: skipping the rest of an over-long line
        self.dropped = 0  # bytes skipped so far in the current over-long line
        self.last_cr = False  # the last skipped byte was b"\r"
        self.long_open = False  # split mode: pieces of the current line were handed out

    def feed(self, new: bytes, new_start: int) -> list[bytes]:
        """Split ``new`` (file bytes at ``new_start``) into lines; updates ``end``."""
        m = self.max_line
        stats = self.counters
        out: list[bytes] = []
        if self.discarding:
            nl = new.find(b"\n")
            if nl < 0:
                self.dropped += len(new)
                self.last_cr = new.endswith(b"\r")
                return out
            ends_cr = new[nl - 1 : nl] == b"\r" if nl else self.last_cr
            out.append(self.partial)
            stats.long_lines_truncated += 1
            stats.bytes_dropped += self.dropped + nl - ends_cr
            self.partial = b""
            self.discarding = False
            self.dropped = 0
            self.end = new_start + nl + 1
            new = new[nl + 1 :]
            new_start += nl + 1
            if not new:
                return out
        held = self.partial
        buf = held + new if held else new
        buf_start = new_start - len(held)
        last = buf.rfind(b"\n")
        if last < 0:
            self.partial = buf
        else:
            # CRLF: dropping the b"\r" of every b"\r\n" keeps the split a single C call
            # (b"\r" is looked for with memchr, b"\r\n" would be a 70x slower substring search)
            parts = (buf.replace(b"\r\n", b"\n") if b"\r" in buf else buf).split(b"\n")
            self.partial = parts.pop()
            self.end = buf_start + last + 1
            if len(buf) > m and max(map(len, parts)) > m:
                parts = self.cap(parts, continuation=self.long_open)
            self.long_open = False
            if out:
                out.extend(parts)
            else:
                out = parts
        held = self.partial
        if len(held) > m + 1:  # long enough to be over-long whatever ends it
            if self.split:
                # emit whole pieces, keeping 2..m+1 bytes so a final b"\r" is still seen
                count = -(-(len(held) - m - 1) // m)
                out.extend(held[i : i + m] for i in range(0, count * m, m))
                if not self.long_open:
                    stats.long_lines_split += 1
                    self.long_open = True
                self.partial = held[count * m :]
                self.end += count * m
            else:
                self.discarding = True
                self.dropped = len(held) - m
                self.last_cr = held.endswith(b"\r")
                self.partial = held[:m]
        return out

    def cap(self, parts: list[bytes], *, continuation: bool) -> list[bytes]:
        """Split or cut the lines of ``parts`` longer than ``max_line``, counting them."""
        m = self.max_line
        stats = self.counters
        out: list[bytes] = []
        for i, line in enumerate(parts):
            if len(line) <= m:
                out.append(line)
            elif self.split:
                out.extend(line[j : j + m] for j in range(0, len(line), m))
                if not (i == 0 and continuation):
                    stats.long_lines_split += 1
            else:
                out.append(line[:m])
                stats.long_lines_truncated += 1
                stats.bytes_dropped += len(line) - m
        return out

    def flush(self, to: int) -> list[bytes] | None:
        """The held unterminated line as it is, ending at offset ``to``; None if none is held.

        Used when a file is closed, dropped or truncated; ``end`` becomes ``to``.
        """
        if to <= self.end:
            return None
        if self.discarding:
            lines = [self.partial]
            self.counters.long_lines_truncated += 1
            self.counters.bytes_dropped += self.dropped
        else:
            lines = self.cap([self.partial], continuation=self.long_open)
        self.partial = b""
        self.discarding = False
        self.dropped = 0
        self.long_open = False
        self.end = to
        return lines
