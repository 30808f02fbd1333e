"""Data Prepper ``http`` source semantics for the OSIS emulator: what a body must be, how events
are stamped and indexed.

Request bodies: gzip (decompressed as a stream, capped), the JSON value count bound, one JSON array
of JSON objects in UTF-8, persistent-buffer re-splitting; :class:`BadBody` carries the status and
plain-text message Data Prepper answers. :class:`Stamper` adds ``@timestamp`` and names the index
(``logs-%{yyyy.MM.dd}``). The order of the checks is in :mod:`rolesanywhere.testing.osis`.
"""

from __future__ import annotations

import http
import json
import re
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

__all__ = [
    "DEFAULT_INDEX",
    "DEFAULT_PATH",
    "FAULT_STATUSES",
    "MAX_BODY_BYTES",
    "MAX_JSON_VALUES",
    "PERSISTENT_CHUNK_BYTES",
    "Stamper",
    "check_status",
    "decode",
    "phrase",
    "read_events",
    "resplit",
]

DEFAULT_PATH = "/log/ingest"
DEFAULT_INDEX = "logs-%{yyyy.MM.dd}"
MAX_BODY_BYTES = 10 * 1024 * 1024
PERSISTENT_CHUNK_BYTES = 1024 * 1024
MAX_JSON_VALUES = 1_000_000
_GZIP_PIECE = 4096  # gzip input fed per call: bounds the copy of the rest after each member
FAULT_STATUSES: tuple[int, ...] = (408, 429, 500, 503)
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
# Always matches (possibly empty): typed so.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_WHITESPACE = cast(Callable[[str, int], re.Match[str]], re.compile(r"[ \t\n\r]*").match)
_PHRASES: Mapping[int, str] = {
    405: "Method Not Allowed",
    408: "Request Timeout: the pipeline buffer is full or the write timed out",
    413: "Request Entity Too Large",
    429: "Too Many Requests: the pipeline has too many pending requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_JAVA_DATE_TOKENS: Mapping[str, str] = {
    "yyyy": "%Y",
    "uuuu": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
}


class BadBody(Exception):
    """A Data Prepper error (plain text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def phrase(status: int) -> str:
    if status in _PHRASES:
        return _PHRASES[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _index_formatter(pattern: str) -> str:
    """``logs-%{yyyy.MM.dd}`` → ``logs-%Y.%m.%d`` for :func:`time.strftime`."""
    out: list[str] = []
    rest = pattern
    while rest:
        start = rest.find("%{")
        if start < 0:
            out.append(rest.replace("%", "%%"))
            break
        out.append(rest[:start].replace("%", "%%"))
        end = rest.find("}", start)
        if end < 0:
            raise ValueError(f"unterminated %{{…}} in index pattern {pattern!r}")
        inner = rest[start + 2 : end]
        for match in re.finditer(r"([A-Za-z])\1*|[^A-Za-z]+", inner):
            text = match.group()
            if text[0].isalpha():
                if text not in _JAVA_DATE_TOKENS:
                    raise ValueError(
                        f"unsupported date token {text!r} in index pattern {pattern!r} "
                        f"(supported: {', '.join(_JAVA_DATE_TOKENS)})"
                    )
                out.append(_JAVA_DATE_TOKENS[text])
            else:
                out.append(text.replace("%", "%%"))
        rest = rest[end + 1 :]
    return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# The C scanner behind json.loads, called once per array element (each call holds the GIL).
_DECODER: Any = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once


def _gunzip(data: bytes, cap: int) -> bytes:
    """Decompress one or more gzip members; 413 past ``cap`` bytes, 400 when corrupt.

    Streams: the input is fed in small pieces and the output is never allowed past ``cap + 1``
    bytes, so a gzip bomb costs at most ``cap`` bytes of memory and stops at the first byte over
    it; members are found without copying the rest of the body after each one.
    """
    out = bytearray()
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not decoder.eof:
            if pos >= end:
                raise BadBody(400, "Bad request: the gzip data ends early")
            piece = view[pos : pos + _GZIP_PIECE]
            pos += len(piece)
            try:
                out += decoder.decompress(piece, cap - len(out) + 1)
            except zlib.error:
                raise BadBody(400, "Bad request: the body is not valid gzip data") from None
            if len(out) > cap:
                raise BadBody(413, f"Request Entity Too Large: over {cap} bytes once decompressed")
        pos -= len(decoder.unused_data)
    return bytes(out)


def _json_values(content: bytes, limit: int) -> int:
    """An upper bound on the values and keys parsing ``content`` would build, exact up to ``limit``.

    Every one but the outermost value comes right after a ``{``, ``[``, ``,`` or ``:`` outside a
    string. The plain byte counts are tried first (no copy); only when they exceed ``limit`` are
    strings cut out and the count made again, so brackets in log text never cause a 413.
    """

    def count(text: bytes) -> int:
        return sum(text.count(mark) for mark in (b"{", b"[", b",", b":")) + 1

    total = count(content)
    if total > limit:
        total = count(_JSON_STRING.sub(b"", content))
    return total


def _not_an_array(text: str) -> BadBody:
    """The 400 for a body that does not start with ``[``: say what it is instead."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
        return BadBody(400, f"Bad request: the body is not valid JSON: {detail}")
    kind = "null" if value is None else type(value).__name__
    return BadBody(
        400, f"Bad request: the body must be a JSON array of JSON objects, not a JSON {kind}"
    )


def _parse_events(content: bytes, keep_raw: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """One JSON array of JSON objects, UTF-8, nothing after it (else 400).

    With ``keep_raw`` also the text of each element as it was sent (so storing it needs no
    re-encoding); otherwise the second list is empty.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody(400, "Bad request: the body is not valid UTF-8") from None
    ws = _WHITESPACE
    pos = ws(text, 0).end()
    if not text.startswith("[", pos):
        raise _not_an_array(text)
    events: list[dict[str, Any]] = []
    raws: list[str] = []
    if not keep_raw:
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
            raise BadBody(400, f"Bad request: the body is not valid JSON: {detail}") from None
        events = value
    else:
        scan = _SCAN_ONCE
        try:
            pos = ws(text, pos + 1).end()
            if text.startswith("]", pos):
                pos += 1
            else:
                while True:
                    event, end = scan(text, pos)
                    events.append(event)
                    raws.append(text[pos:end])
                    pos = ws(text, end).end()
                    if text.startswith(",", pos):
                        pos = ws(text, pos + 1).end()
                    elif text.startswith("]", pos):
                        pos += 1
                        break
                    else:
                        raise ValueError(f"Expecting ',' delimiter: char {pos}")
            if ws(text, pos).end() != len(text):
                raise ValueError(f"Extra data: char {pos}")
        except StopIteration as stop:
            raise BadBody(
                400, f"Bad request: the body is not valid JSON: Expecting value: char {stop.value}"
            ) from None
        except (ValueError, RecursionError) as exc:
            detail = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
            raise BadBody(400, f"Bad request: the body is not valid JSON: {detail}") from None
    for position, event in enumerate(events):
        if type(event) is not dict:
            raise BadBody(400, f"Bad request: element {position} of the array is not a JSON object")
    return events, raws


def _event_size(event: Mapping[str, Any]) -> int:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def check_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"a scripted or fault status must be an int in 200..599, not {status!r}")
    return status


def _iso_ms(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def decode(body: bytes, encoding: str | None, compression: str, cap: int) -> tuple[bytes, bool]:
    """The body as sent (``Content-Encoding``), and whether it was gzip; 400 or 413."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return body, False
    if name in ("gzip", "x-gzip"):
        if compression != "gzip":
            raise BadBody(
                400,
                "Bad request: the body is not valid JSON (Content-Encoding: gzip, but this "
                "pipeline's source has compression: none)",
            )
        return _gunzip(body, cap), True
    raise BadBody(400, f"Bad request: unsupported Content-Encoding {name[:40]!r}")


def read_events(
    content: bytes,
    *,
    keep_raw: bool,
    split_threshold: int | None,
    max_json_values: int | None,
    max_batch_events: int | None,
    reject_if: Callable[[Mapping[str, Any]], bool] | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The events of an uncompressed body (with ``keep_raw`` also their text), else BadBody.

    Checked in order: the size over ``split_threshold``, more than ``max_json_values`` values,
    the JSON itself, more than ``max_batch_events`` events, an event ``reject_if`` refuses.
    """
    if split_threshold is not None and len(content) > split_threshold:
        raise BadBody(
            413,
            f"Request Entity Too Large: over the {split_threshold}-byte limit (uncompressed)",
        )
    max_values = max_json_values
    if max_values is not None and _json_values(content, max_values) > max_values:
        raise BadBody(
            413,
            f"Request Entity Too Large: over {max_values} JSON values in one request "
            "(the emulator's max_json_values)",
        )
    events, raws = _parse_events(content, keep_raw)
    if max_batch_events is not None and len(events) > max_batch_events:
        raise BadBody(
            413,
            f"Request Entity Too Large: {len(events)} records, the buffer holds {max_batch_events}",
        )
    if reject_if is not None:
        for position, event in enumerate(events):
            if reject_if(event):
                raise BadBody(400, f"Bad request: element {position} of the array was refused")
    return events, raws


def resplit(
    events: list[dict[str, Any]], raws: list[str], limit: int
) -> tuple[list[dict[str, Any]], list[str], int, int]:
    """Persistent buffering: chunks of at most the chunk size; larger events dropped."""
    kept: list[dict[str, Any]] = []
    kept_raws: list[str] = []
    chunks = dropped = 0
    used = 0  # bytes in the current chunk, 0 = no chunk open
    for position, event in enumerate(events):
        size = len(raws[position].encode()) if raws else _event_size(event)
        if size > limit:
            dropped += 1
            continue
        if used and used + 1 + size > limit:
            used = 0
        if not used:
            chunks += 1
            used = 2 + size  # "[" + event + "]"
        else:
            used += 1 + size  # "," + event
        kept.append(event)
        if raws:
            kept_raws.append(raws[position])
    return kept, kept_raws, chunks, dropped


class Stamper:
    """Adds ``@timestamp`` to events and names their index, as Data Prepper's OpenSearch sink.

    ``index``: the pattern (``logs-%{yyyy.MM.dd}``). :meth:`stamp` with ``per_event`` indexes
    by each event's ``@timestamp`` (``index_time="event"``) rather than by the receive time.
    """

    def __init__(self, index: str) -> None:
        self.index_format = _index_formatter(index)
        self._ts_prefix: dict[int, str] = {}
        self._index_names: dict[str, str] = {}

    def index_name(self, when: datetime) -> str:
        """The index the pattern names for ``when`` (timezone-aware; UTC is used)."""
        return time.strftime(self.index_format, when.astimezone(UTC).timetuple())

    def _prefix(self, second: int) -> str | None:
        """``YYYY-MM-DDTHH:MM:SS`` for an epoch second (cached); ``None`` out of range."""
        if not 0 <= second <= _MAX_EPOCH:
            return None
        prefix = self._ts_prefix.get(second)
        if prefix is None:
            if len(self._ts_prefix) > 4096:
                self._ts_prefix.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._ts_prefix[second] = prefix
        return prefix

    @staticmethod
    def _timestamp(value: Any, received: str) -> str:
        """``@timestamp`` from a ``date`` that is not a number (:meth:`stamp` does epoch
        seconds): an ISO 8601 string, else ``received``."""
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                return received
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return _iso_ms(parsed)
        return received

    def stamp(
        self,
        events: list[dict[str, Any]],
        raws: list[str],
        now: datetime,
        *,
        per_event: bool,
        documents: bool,
    ) -> tuple[str, list[tuple[str, str, str | None, str]]]:
        """Add ``@timestamp`` to the events; returns the index (for the receive time, or the
        first event's) and, with ``documents``, one ``(index, @timestamp, log, _source)`` row
        per event (``raws``: the events' text as sent)."""
        received = _iso_ms(now)
        index = self._index_for(received)
        if per_event and events:
            index = ""  # set from the first event below
        prefixes = self._ts_prefix
        slow = self._timestamp
        index_for = self._index_for
        rows: list[tuple[str, str, str | None, str]] = []
        append = rows.append
        for position, event in enumerate(events):
            value: Any = event.get("date")
            kind = type(value)
            if kind is float or kind is int:
                try:
                    second, ms = divmod(round(value * 1000), 1000)
                except (OverflowError, ValueError):
                    ts = received
                else:
                    prefix = prefixes.get(second) or self._prefix(second)
                    ts = received if prefix is None else f"{prefix}.{ms:03d}Z"
            elif value is None:
                ts = received
            else:
                ts = slow(value, received)
            event["@timestamp"] = ts
            name = index
            if per_event:
                name = index_for(ts)
                index = index or name
            if documents:
                raw = raws[position]
                if len(event) == 1 and not raw[1:-1].strip():
                    source = f'{{"@timestamp":"{ts}"}}'
                else:
                    source = f'{raw[:-1]},"@timestamp":"{ts}"}}'
                log = event.get("log")
                append((name, ts, log if type(log) is str else None, source))
        return index, rows

    def _index_for(self, ts: str) -> str:
        """The index for an ``@timestamp`` string (cached by hour)."""
        key = ts[:13]
        name = self._index_names.get(key)
        if name is None:
            when = datetime.fromisoformat(ts)
            name = time.strftime(self.index_format, when.astimezone(UTC).timetuple())
            if len(self._index_names) > 4096:
                self._index_names.clear()
            self._index_names[key] = name
        return name
