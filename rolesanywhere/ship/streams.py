"""One followed file stream: its offsets (read, handed out, committed) and fingerprints.

A stream is a file from the moment it is opened until it is closed or truncated. The tailer
hands out its bytes in chunks and moves its committed *frontier* only over a contiguous
delivered prefix (docs/tailing.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict

from rolesanywhere.ship.lines import LineFramer
from rolesanywhere.ship.positions import FP_SPAN, FileKey, fingerprint

__all__ = ["Stream", "TailedFile"]


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


class Stream:
    """One open (or closed, awaiting commits) file from one starting offset."""

    __slots__ = (
        "at_eof",
        "deleted",
        "fd",
        "file_id",
        "fps",
        "framer",
        "frontier",
        "frontier_fp",
        "head",
        "key",
        "next_check",
        "path",
        "pending",
        "read_offset",
        "recent",
        "rotated_at",
        "watch_path",
    )

    def __init__(
        self,
        file_id: int,
        key: FileKey,
        path: str,
        fd: int,
        offset: int,
        fp: bytes,
        recent: bytes,
        framer: LineFramer,
    ) -> None:
        self.file_id = file_id
        self.key = key
        self.path = path
        self.watch_path = path  # where a replacement appears after a rotation
        self.fd: int | None = fd
        self.read_offset = offset  # next byte to read
        self.framer = framer  # held line; framer.end: end of the last chunk handed out
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

    def size(self) -> int | None:
        """The open file's size now; None once closed or when it cannot be known."""
        if self.fd is None:
            return None
        try:
            return os.fstat(self.fd).st_size
        except OSError:
            return None

    def status(self) -> TailedFile:
        return TailedFile(
            file_id=self.file_id,
            path=self.path,
            size=self.size(),
            read_offset=self.read_offset,
            handed_out_offset=self.framer.end,
            committed_offset=self.frontier,
            rotated=self.rotated_at is not None,
            deleted=self.deleted,
            open=self.fd is not None,
        )

    def advance(self, end: int) -> None:
        """Everything before ``end`` is delivered: move the frontier past the chunks delivered."""
        self.frontier = end
        while self.frontier in self.pending:
            self.frontier = self.pending.pop(self.frontier)
        while self.fps:
            first = next(iter(self.fps))
            if first > self.frontier:
                break
            _, (_, fp) = self.fps.popitem(last=False)
            if first == self.frontier:
                self.frontier_fp = fp

    def fingerprint_at(self, end: int, data: bytes, data_start: int) -> bytes:
        """Fingerprint at ``end``, taking the bytes ``data`` (file bytes at ``data_start``) has."""
        span = min(FP_SPAN, end)
        lo = end - span
        assert self.fd is not None
        if lo >= data_start and end <= data_start + len(data):
            tail = data[lo - data_start : end - data_start]
        else:
            tail = os.pread(self.fd, span, lo)
        if end <= FP_SPAN:
            return fingerprint(end, tail, tail)
        if self.head is None:
            if data_start == 0 and len(data) >= FP_SPAN:
                head = data[:FP_SPAN]
            else:
                head = os.pread(self.fd, FP_SPAN, 0)
            if len(head) < FP_SPAN:
                return fingerprint(end, head, tail)  # file shrank; will not verify: re-read
            self.head = head
        return fingerprint(end, self.head, tail)
