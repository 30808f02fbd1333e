"""Batches and tickets: which submission owns which events of a batch, through every split.

A *ticket* is one ``submit`` call; it settles when it is sealed and every one of its events is
delivered or quarantined. A *batch* holds runs of ``[ticket, count]`` beside its encoded events,
so halving a batch (a 413 split, a 400 bisection) halves the runs with it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Batch", "Run", "Ticket", "split"]


class Ticket:
    """One ``submit`` call: settles when sealed and every one of its events is settled."""

    __slots__ = ("done", "outstanding", "sealed", "token")

    def __init__(self, token: Any) -> None:
        self.token = token
        self.outstanding = 0
        self.sealed = False
        self.done = False


Run = list[Any]  # [ticket, count]


class Batch:
    """Events to send together; ``runs`` says which ticket owns which consecutive events."""

    __slots__ = ("doomed", "items", "nbytes", "opened", "raw_len", "runs", "wire")

    def __init__(
        self,
        items: list[str],
        runs: list[Run],
        nbytes: int,
        opened: float = 0.0,
        doomed: tuple[str, str] | None = None,
    ) -> None:
        self.items = items
        self.runs = runs
        self.nbytes = nbytes  # sum of item lengths
        self.opened = opened
        #: ``(reason, counter key)``: straight to the dead letter.
        self.doomed = doomed
        self.wire: bytes | None = None
        self.raw_len = 0

    @property
    def body_size(self) -> int:
        return self.nbytes + len(self.items) + 1 if self.items else 2


def _split_runs(runs: list[Run], k: int) -> tuple[list[Run], list[Run]]:
    left: list[Run] = []
    right: list[Run] = []
    seen = 0
    for ticket, count in runs:
        if seen >= k:
            right.append([ticket, count])
        elif seen + count <= k:
            left.append([ticket, count])
        else:
            left.append([ticket, k - seen])
            right.append([ticket, seen + count - k])
        seen += count
    return left, right


def split(batch: Batch) -> tuple[Batch, Batch]:
    k = len(batch.items) // 2
    left_items, right_items = batch.items[:k], batch.items[k:]
    left_runs, right_runs = _split_runs(batch.runs, k)
    left_bytes = sum(map(len, left_items))
    return (
        Batch(left_items, left_runs, left_bytes),
        Batch(right_items, right_runs, batch.nbytes - left_bytes),
    )
