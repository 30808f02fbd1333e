"""``ShipperConfig``: where and how the shipping engine ships, validated on construction.

:data:`MAX_BATCH_BYTES` is the one definition of the 1 MiB body limit (``rolesanywhere ship``'s
configuration readers refuse larger batches with it too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.ship.statedir import default_state_dir

__all__ = ["MAX_BATCH_BYTES", "ShipperConfig"]

#: The largest request body (before compression) Data Prepper handles without silent drops.
MAX_BATCH_BYTES = 1 << 20
_MIN_BATCH_BYTES = 64


@dataclass(frozen=True, slots=True)
class ShipperConfig:
    """Where and how to ship; validated on construction (one-line ``InvalidParameterError``)."""

    #: ``https://{host}{uri}`` (or ``http://`` for a local emulator).
    url: str
    #: Largest request body before compression, at most :data:`MAX_BATCH_BYTES`.
    batch_bytes: int = MAX_BATCH_BYTES
    #: Most events per request (``None``: only ``batch_bytes`` limits).
    batch_events: int | None = None
    #: Seconds after its first event that a partial batch is sent.
    flush_interval: float = 1.0
    #: Compress bodies (the pipeline must set ``compression: gzip``).
    gzip: bool = False
    #: 1 by default: ~2x faster than 6 on log lines for ~7% larger bodies.
    gzip_level: int = 1
    #: An event longer than a batch: ``"truncate"`` its log or ``"quarantine"`` it.
    oversize: Literal["truncate", "quarantine"] = "truncate"
    #: ``submit`` blocks while more than this many encoded bytes are unsettled.
    max_pending_bytes: int = 8 << 20
    #: Concurrent requests (worker threads or tasks).
    max_in_flight: int = 2
    #: Start a new batch rather than split a submission that would fit whole in one: with one
    #: submission per tail chunk, a chunk is then settled by a single request, which bounds the
    #: duplicates after a crash to what was in flight (``ship`` turns this on).
    whole_submissions: bool = False
    #: Retries of one request after its first attempt; ``None``: until delivered.
    retry_limit: int | None = None
    #: After this many 400 answers in a row (no 2xx between), the pipeline is taken to refuse
    #: everything (a configuration problem such as gzip without ``compression: gzip``), not bad
    #: events: refused batches are held and retried for ``refusal_hold`` seconds instead of
    #: bisected into the dead letter. ``0`` turns the breaker off.
    refusal_breaker: int = 32
    refusal_hold: float = 300.0
    #: First backoff ceiling (seconds), doubled per retry up to ``backoff_max``; full jitter.
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Seconds one request may take, all of it (however slowly the server answers), and to
    #: connect.
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    #: TLS verification: ``True`` (system CAs, or ``AWS_CA_BUNDLE``), ``False``, or a PEM path.
    verify: bool | str = True
    #: Use proxies from the environment.
    trust_env: bool = True
    #: Extra request headers, in order.
    headers: tuple[tuple[str, str], ...] = ()
    # record shape
    log_key: str = "log"
    #: ``None``: records get no time field.
    date_key: str | None = "date"
    #: ``"double"`` (epoch seconds, fractional), ``"epoch"`` (whole seconds) or ``"iso8601"``.
    date_format: Literal["double", "epoch", "iso8601"] = "double"
    #: Field holding ``submit(source=...)`` (a file path); ``None``: not added.
    path_key: str | None = None
    #: Field holding ``hostname``; ``None``: not added.
    host_key: str | None = None
    #: Host name for ``host_key`` (default: ``socket.gethostname()``).
    hostname: str | None = None
    #: Fixed fields added to every event, in order.
    fields: tuple[tuple[str, Any], ...] = ()
    #: Marker added to truncated events.
    truncated_key: str = "truncated"
    # dead letters
    #: Directory for the default dead-letter file (default:
    #: :func:`~rolesanywhere.ship.statedir.default_state_dir`).
    state_dir: str | None = None
    #: Dead-letter file (default: ``<state_dir>/dead-letter.jsonl``).
    dead_letter_path: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterError(
                f"shipper url must be http(s)://host[:port]/path, not {self.url[:100]!r}"
            )
        if not _MIN_BATCH_BYTES <= self.batch_bytes <= MAX_BATCH_BYTES:
            raise InvalidParameterError(
                f"batch_bytes must be within {_MIN_BATCH_BYTES}..{MAX_BATCH_BYTES} (1 MiB: "
                f"OpenSearch Ingestion silently drops data over it), not {self.batch_bytes}"
            )
        if self.batch_events is not None and self.batch_events < 1:
            raise InvalidParameterError(f"batch_events must be at least 1, not {self.batch_events}")
        if not self.flush_interval > 0:
            raise InvalidParameterError(
                f"flush_interval must be positive, not {self.flush_interval}"
            )
        if not 0 <= self.gzip_level <= 9:
            raise InvalidParameterError(f"gzip_level must be within 0..9, not {self.gzip_level}")
        if self.oversize not in ("truncate", "quarantine"):
            raise InvalidParameterError(
                f"oversize must be 'truncate' or 'quarantine', not {self.oversize!r}"
            )
        if self.max_pending_bytes < self.batch_bytes:
            raise InvalidParameterError(
                f"max_pending_bytes ({self.max_pending_bytes}) must be at least batch_bytes "
                f"({self.batch_bytes})"
            )
        if self.max_in_flight < 1:
            raise InvalidParameterError(
                f"max_in_flight must be at least 1, not {self.max_in_flight}"
            )
        if self.retry_limit is not None and self.retry_limit < 0:
            raise InvalidParameterError(f"retry_limit must be >= 0 or None, not {self.retry_limit}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise InvalidParameterError("backoff_base and backoff_max must not be negative")
        if self.refusal_breaker < 0 or self.refusal_hold < 0:
            raise InvalidParameterError(
                "refusal_breaker and refusal_hold must not be negative (0 turns the breaker off)"
            )
        if not (self.request_timeout > 0 and self.connect_timeout > 0):
            raise InvalidParameterError("request_timeout and connect_timeout must be positive")
        if self.date_format not in ("double", "epoch", "iso8601"):
            raise InvalidParameterError(
                f"date_format must be 'double', 'epoch' or 'iso8601', not {self.date_format!r}"
            )
        if not self.log_key:
            raise InvalidParameterError("log_key must not be empty")

    def resolved_dead_letter_path(self) -> str:
        if self.dead_letter_path:
            return self.dead_letter_path
        return os.path.join(self.state_dir or default_state_dir(), "dead-letter.jsonl")
