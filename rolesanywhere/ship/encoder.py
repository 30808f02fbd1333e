"""Events → compact ASCII JSON objects, the shipper's wire format (one byte per character).

A raw line becomes Fluent Bit's record shape ``{"date": <epoch seconds>, "log": <line>}``
followed by ``path_key``, ``host_key`` and the fixed ``fields``; a record is sent as given with
those keys added where it lacks them. An event whose encoding is over a batch's room has its
``log`` cut to fit and ``truncated_key: true`` added (``oversize="truncate"``), or is rejected to
the dead letter (``oversize="quarantine"``, or a record that cannot be cut or encoded).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _esc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolesanywhere.ship.shipperconfig import ShipperConfig

__all__ = ["Encoded", "Encoder", "Event", "dumps", "fallback_json"]

Event = bytes | bytearray | memoryview | str | Mapping[str, Any]
"""One event: a raw line or a record."""


def dumps(value: object) -> str:
    """Compact ASCII JSON; ``str()`` of what JSON cannot hold, no NaN."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str)


def fallback_json(value: object) -> str:
    """Something JSON for the dead letter, whatever ``value`` is."""
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        return dumps({"repr": repr(value)[: 1 << 20]})


@dataclass(slots=True)
class Encoded:
    items: list[str] = field(default_factory=list)
    #: ``(item, reason, counter key)`` for events that go straight to the dead letter.
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    truncated: int = 0
    invalid_utf8: int = 0
    nbytes: int = 0


class Encoder:
    """Events → compact ASCII JSON objects (``str``; one byte per character)."""

    def __init__(self, config: ShipperConfig) -> None:
        self.config = config
        self.limit = config.batch_bytes - 2  # one event alone in "[...]"
        self.log_key = config.log_key
        self.date_key = config.date_key
        self.date_format = config.date_format
        self.path_key = config.path_key
        self.truncated_key = config.truncated_key
        fixed: list[tuple[str, Any]] = []
        if config.host_key:
            fixed.append((config.host_key, config.hostname or socket.gethostname()))
        fixed.extend(config.fields)
        self.fixed = tuple(fixed)
        self.fixed_keys = frozenset(k for k, _ in fixed)
        self.fixed_json = "".join(f",{_esc(k)}:{dumps(v)}" for k, v in fixed)
        self.log_key_json = _esc(config.log_key)
        self.marker = f",{_esc(config.truncated_key)}:true"

    def date_value(self, when: float) -> float | int | str:
        if self.date_format == "double":
            return when
        if self.date_format == "epoch":
            return int(when)
        stamp = datetime.fromtimestamp(when, UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}Z"

    def encode(self, events: Iterable[Event], source: str | None, when: float) -> Encoded:
        out = Encoded()
        date = self.date_value(when)
        head = "{"
        if self.date_key is not None:
            head += f"{_esc(self.date_key)}:{dumps(date)},"
        head += self.log_key_json + ":"
        tail = self.fixed_json + "}"
        if self.path_key is not None and source is not None:
            tail = f",{_esc(self.path_key)}:{_esc(source)}" + tail
        items = out.items
        append = items.append
        limit = self.limit
        nbytes = 0
        for event in events:
            kind = type(event)
            if kind is bytes:
                try:
                    text = event.decode()  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    text = event.decode("utf-8", "replace")  # type: ignore[union-attr]
                    out.invalid_utf8 += 1
            elif kind is str:
                text = event
            elif isinstance(event, bytes | bytearray | memoryview):
                raw = bytes(event)
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    text = raw.decode("utf-8", "replace")
                    out.invalid_utf8 += 1
            elif isinstance(event, str):
                text = str(event)
            elif isinstance(event, Mapping):
                self._record(event, source, date, out)
                continue
            else:
                raise TypeError(
                    f"events must be bytes, str or mappings, not {type(event).__name__}"
                )
            item = head + _esc(text) + tail
            if len(item) > limit:
                self._oversize_line(text, head, tail, item, out)
                continue
            nbytes += len(item)
            append(item)
        out.nbytes += nbytes
        return out

    def _oversize_line(self, text: str, head: str, tail: str, item: str, out: Encoded) -> None:
        cut = None
        if self.config.oversize == "truncate":
            marked = tail[:-1] + self.marker + "}"
            cut = self._truncate(text, lambda s: head + _esc(s) + marked)
        self._cut_or_reject(cut, item, out)

    def _cut_or_reject(self, cut: str | None, item: str, out: Encoded) -> None:
        """Keep ``cut`` (the oversize ``item`` truncated), or reject ``item`` when it could not
        be cut."""
        if cut is not None:
            out.items.append(cut)
            out.nbytes += len(cut)
            out.truncated += 1
        else:
            out.rejects.append((item, self._too_big(len(item)), "oversize"))

    def _too_big(self, size: int) -> str:
        return (
            f"event of {size} bytes encoded exceeds the {self.limit}-byte limit (batch_bytes - 2)"
        )

    def _truncate(self, text: str, build: Callable[[str], str]) -> str | None:
        """The longest ``build(text[:k])`` within the limit (``None`` if even ``k = 0`` is over)."""
        limit = self.limit
        if len(build("")) > limit:
            return None
        lo, hi = 0, len(text)  # build(text[:lo]) fits; the answer is in [lo, hi]
        # JSON escaping at most sextuples a character: start from a close guess.
        guess = min(hi, max(lo, (limit - len(build(""))) // 6))
        if len(build(text[:guess])) <= limit:
            lo = guess
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(build(text[:mid])) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return build(text[:lo])

    def _record(
        self, record: Mapping[str, Any], source: str | None, date: object, out: Encoded
    ) -> None:
        doc: dict[str, Any] = {}
        if self.date_key is not None and self.date_key not in record:
            doc[self.date_key] = date
        doc.update(record)
        if self.path_key is not None and source is not None and self.path_key not in doc:
            doc[self.path_key] = source
        for key, value in self.fixed:
            if key not in doc:
                doc[key] = value
        try:
            item = dumps(doc)
        except (TypeError, ValueError, RecursionError) as exc:
            reason = f"cannot encode the record as JSON: {type(exc).__name__}: {exc}"[:300]
            out.rejects.append((fallback_json(doc), reason, "unencodable"))
            return
        if len(item) <= self.limit:
            out.items.append(item)
            out.nbytes += len(item)
            return
        log = doc.get(self.log_key)
        cut = None
        if self.config.oversize == "truncate" and isinstance(log, str):
            marked = dict(doc)
            marked[self.truncated_key] = True

            def build(text: str) -> str:
                marked[self.log_key] = text
                return dumps(marked)

            cut = self._truncate(log, build)
        self._cut_or_reject(cut, item, out)
