"""The shipper's counters: a :class:`ShipperStats` snapshot and its one-line status report."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ShipperStats", "status_line"]


@dataclass(frozen=True, slots=True)
class ShipperStats:
    """A snapshot of the counters. Every submitted event is counted in exactly one of
    ``events_delivered``, ``events_quarantined`` or ``pending_events`` (of which
    ``abandoned_events`` were given up by a close that timed out)."""

    events_submitted: int
    events_delivered: int
    #: Uncompressed body bytes of delivered batches.
    bytes_delivered: int
    #: Body bytes put on the wire (compressed when gzip), retries included.
    bytes_sent: int
    requests: int
    #: Answers by status (``"conn"``, ``"timeout"``, ``"credentials"``, ``"error"`` for failures).
    answers: dict[str, int]
    #: Retries by cause (same keys).
    retries: dict[str, int]
    splits_413: int
    bisections_400: int
    #: Times the refusal breaker opened (``refusal_breaker`` 400 answers in a row).
    refusal_trips: int
    events_quarantined: int
    #: Quarantined events by cause: ``"400"``, ``"413"``, ``"retry_limit"``, ``"oversize"``,
    #: ``"unencodable"``, ``"error"`` (a bug in the shipper: reported in the log).
    quarantined: dict[str, int]
    truncated_events: int
    invalid_utf8_lines: int
    tokens_settled: int
    callback_errors: int
    dead_letter_errors: int
    in_flight: int
    pending_events: int
    pending_bytes: int
    abandoned_events: int
    last_error: str | None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def status_line(stats: ShipperStats) -> str:
    """One line: delivered, pending, in flight, retries, splits, quarantined, last error."""
    retries = " ".join(f"{k}x{v}" for k, v in sorted(stats.retries.items())) or "none"
    quarantined = ", ".join(f"{k}: {v}" for k, v in sorted(stats.quarantined.items()))
    line = (
        f"shipped {stats.events_delivered} events ({_size(stats.bytes_delivered)}) in "
        f"{stats.requests} requests; pending {stats.pending_events} "
        f"({_size(stats.pending_bytes)}), "
        f"in flight {stats.in_flight}; retries {retries}; 413 splits {stats.splits_413}; "
        f"400 bisections {stats.bisections_400}"
        + (f" (refusal breaker opened {stats.refusal_trips}x)" if stats.refusal_trips else "")
        + f"; quarantined {stats.events_quarantined}"
        + (f" ({quarantined})" if quarantined else "")
        + f"; truncated {stats.truncated_events}"
    )
    if stats.abandoned_events:
        line += f"; abandoned {stats.abandoned_events}"
    if stats.last_error:
        line += f"; last error: {stats.last_error}"
    return line
