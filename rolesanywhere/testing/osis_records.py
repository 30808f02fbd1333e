"""The records of the OSIS emulator (:mod:`rolesanywhere.testing.osis`): an accepted batch, a
snapshot of the counters, and the descriptor that reads one counter."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self, overload

__all__ = ["AcceptedBatch", "OsisStats", "SlotCounter"]


class _Counted(Protocol):
    _lock: threading.Lock
    _counts: list[int]


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    """One request answered 200 after normal handling, with the events as stored."""

    #: The events kept (``@timestamp`` added), in body order; dropped events are not here.
    events: tuple[dict[str, Any], ...]
    #: The index written for the receive time (``index_time="event"``: the first event's).
    index: str
    received_at: datetime
    #: Body size as received, and after decompression.
    body_bytes: int
    content_bytes: int
    gzip: bool
    #: Persistent buffering: the chunks the body was re-split into (1 when not re-split).
    chunks: int
    #: Persistent buffering: events over the chunk size, silently dropped.
    dropped: int
    #: The access key that signed the request (``None`` when signatures are not verified).
    access_key_id: str | None


@dataclass(frozen=True, slots=True)
class OsisStats:
    """A snapshot of the ingest counters."""

    requests: int
    accepted_requests: int
    events_accepted: int
    bytes_received: int
    bytes_accepted: int
    dropped_events: int
    resplit_requests: int
    status_counts: dict[int, int]


class SlotCounter:
    """A read-only ingest counter: one slot of ````_counts````, read under the lock."""

    def __init__(self, slot: int, doc: str) -> None:
        self._slot = slot
        self._name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, emulator: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, emulator: _Counted, owner: type[Any]) -> int: ...

    def __get__(self, emulator: _Counted | None, owner: type[Any]) -> Self | int:
        if emulator is None:
            return self
        with emulator._lock:
            return emulator._counts[self._slot]

    def __set__(self, emulator: _Counted, value: object) -> None:
        owner = type(emulator).__name__
        raise AttributeError(f"property {self._name!r} of {owner!r} object has no setter")
