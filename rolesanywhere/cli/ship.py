"""``rolesanywhere ship``: follow log files and ship their lines to OpenSearch Ingestion.

Glue between the pieces, each documented in its own module:
:class:`~rolesanywhere.ship.tail.Tailer`
reads the files, :class:`~rolesanywhere.ship.shipper.Shipper` batches and sends through
:class:`~rolesanywhere.auth.sigv4auth.SigV4Auth` with
:class:`~rolesanywhere.session.refresh.RefreshingCredentials`,
and each chunk's file offsets are committed once every line of it was delivered (or quarantined
to the dead-letter file): at-least-once, with duplicates after a crash bounded by what was in
flight. While running, a status line goes to stderr every ``status_interval`` seconds; at exit,
a summary. ``once`` ships what is there and returns when it is all delivered, with a progress
bar on a terminal.

SIGTERM and SIGINT stop reading (even while waiting for room behind undelivered events), go on
delivering and committing until ``stop_timeout`` seconds (5 by default) after the signal, and
return 0: what is still undelivered is not committed, so the next run sends it again ("left for
the next run" in the summary). A second signal ends the process at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, TextIO

from rolesanywhere.cli.signals import stop_on_signals
from rolesanywhere.errors import ShipperInterruptedError

if TYPE_CHECKING:
    from rolesanywhere.ship.config.model import ShipConfig
    from rolesanywhere.ship.shipper import Shipper
    from rolesanywhere.ship.tail import Chunk, Tailer

__all__ = ["run_ship"]

_IDLE_WAIT = 0.2
#: Seconds of ``stop_timeout`` kept for the teardown after delivery stops (the shipper's
#: workers, the tailer, the credential refresher).
_TEARDOWN = 1.0


def _long_lines(tailer: Tailer) -> str:
    """What the tailer did to lines over the length limit, when it did anything."""
    stats = tailer.stats()
    parts = []
    if stats.long_lines_truncated:
        parts.append(
            f"{stats.long_lines_truncated:,} long lines cut ({stats.bytes_dropped:,} B dropped)"
        )
    if stats.long_lines_split:
        parts.append(f"{stats.long_lines_split:,} long lines split")
    return "".join(f", {part}" for part in parts)


def _bar(done: int, total: int, events: int, width: int = 30) -> str:
    fraction = (1.0 if done else 0.0) if total <= 0 else min(done / total, 1.0)
    filled = int(fraction * width)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:5.1%} {events:,} events"


class _Progress:
    """Status lines on a period, and a progress bar for ``--once`` on a terminal."""

    def __init__(self, err: TextIO, interval: float, once: bool, total: int) -> None:
        self.err = err
        self.interval = interval
        self.bar = once and err.isatty()
        self.total = total
        self.next_status = time.monotonic() + interval
        self.next_bar = 0.0

    def tick(self, shipper: Shipper, tailer: Tailer) -> None:
        if self.bar:
            now = time.monotonic()
            if now < self.next_bar:
                return
            self.next_bar = now + 0.1
            self.draw(shipper, tailer.lag_bytes())
            return
        now = time.monotonic()
        if self.interval > 0 and now >= self.next_status:
            self.next_status = now + self.interval
            print(
                f"ship: {shipper.status_line()}, lag {tailer.lag_bytes():,} B{_long_lines(tailer)}",
                file=self.err,
            )

    def draw(self, shipper: Shipper, lag: int) -> None:
        """Delivered events against an estimate of all of them (from the bytes per event read
        so far and the bytes still unread)."""
        stats = shipper.stats()
        read = self.total - lag
        submitted = stats.events_submitted
        estimate = submitted + (lag * submitted / read if read > 0 and submitted else 0)
        done = stats.events_delivered + stats.events_quarantined
        self.err.write(_bar(round(done), round(estimate), stats.events_delivered))
        self.err.flush()

    def end(self, shipper: Shipper, lag: int) -> None:
        if self.bar:
            self.draw(shipper, lag)
            self.err.write("\n")


def run_ship(
    config: ShipConfig,
    *,
    once: bool = False,
    status_interval: float = 10.0,
    err: TextIO,
    stop: threading.Event | None = None,
    install_signals: bool = True,
) -> int:
    """Ship until stopped (or, with ``once``, until everything there is delivered)."""
    from rolesanywhere.auth.sigv4auth import SigV4Auth
    from rolesanywhere.errors import PositionsLostError, TailError
    from rolesanywhere.session.refresh import RefreshingCredentials
    from rolesanywhere.ship.build import shipper_config
    from rolesanywhere.ship.shipper import Shipper
    from rolesanywhere.ship.tail import Tailer

    stop = stop or threading.Event()
    for warning in config.warnings:
        print(f"ship: warning: {warning}", file=err)
    print(f"ship: {config.describe()}", file=err)

    try:
        tailer = Tailer(
            config.paths,
            state_dir=config.state_dir,
            read_from_head=config.read_from_head,
            refresh_interval=config.refresh_interval,
            rotate_wait=config.rotate_wait,
            max_line_bytes=config.max_line_bytes,
            long_lines=config.long_lines,
            exclude=config.exclude_paths,
            reset_positions=config.reset_positions,
        )
    except PositionsLostError as exc:
        raise TailError(
            f"position database {exc.db_path} {exc.problem}, but {exc.state_dir} was used before"
            ": resuming would skip or repeat lines; run again with --reset-positions head (read"
            " the files again from their beginning: duplicates) or --reset-positions end (start"
            " at their end: lines written since the last run are skipped), or set [state]"
            " reset_positions"
        ) from None
    if tailer.reset_reason is not None:
        print(f"ship: warning: {tailer.reset_reason}", file=err)

    def commit(chunks: list[Chunk]) -> None:
        # a failed write (disk full) is reported once by the tailer, which keeps the
        # positions and writes them at the next commit: keep shipping, no traceback
        with contextlib.suppress(TailError):
            tailer.commit(chunks)

    try:
        refresher = RefreshingCredentials(config.credential_provider(), close_source=True)
    except BaseException:
        tailer.close()
        raise
    auth = SigV4Auth(refresher, service=config.service, region=config.region)
    # One request in flight, and each tail chunk (a quarter batch) sent whole in one request:
    # after a crash the duplicates are at most the batch that was in flight.
    shipper = Shipper(
        shipper_config(config, max_in_flight=1, whole_submissions=True),
        auth,
        on_settled=commit,
    )
    chunk_bytes = max(config.batch_bytes // 4, 4096)
    progress = _Progress(err, status_interval, once, tailer.lag_bytes())
    started = time.monotonic()
    # The handlers stay in place until the end: a second signal during the final flush ends
    # the process at once.
    with stop_on_signals(stop, install_signals):
        try:
            while not stop.is_set():
                chunks = tailer.poll(max_bytes=chunk_bytes)
                if chunks:
                    try:
                        shipper.submit_chunks(chunks, stop=stop)
                    except ShipperInterruptedError:
                        break  # stopped while waiting for room: those chunks stay uncommitted
                elif once:  # every file is read to its end: done once all of it is settled
                    if shipper.flush(timeout=_IDLE_WAIT) and tailer.lag_bytes() == 0:
                        break
                else:
                    stop.wait(_IDLE_WAIT)
                progress.tick(shipper, tailer)
        finally:
            # delivery goes on (and commits) until stop_timeout after the stop, then the rest
            # is left for the next run
            settled = shipper.close(timeout=max(0.0, config.stop_timeout - _TEARDOWN))
            progress.end(shipper, tailer.lag_bytes())
            long_lines = _long_lines(tailer)
            tailer.close()
            refresher.close()
    if tailer.db_error() is not None:
        long_lines += ", positions not saved (see above): the next run sends some lines again"
    stats = shipper.stats()
    elapsed = max(time.monotonic() - started, 1e-9)
    print(
        f"ship: done in {elapsed:.1f} s: {stats.events_delivered:,} events delivered "
        f"({stats.events_delivered / elapsed:,.0f}/s), {stats.events_quarantined:,} quarantined "
        f"to {shipper.dead_letter_path}, {stats.truncated_events:,} truncated, "
        f"{sum(stats.retries.values()):,} retries{long_lines}"
        + ("" if settled else f", {stats.abandoned_events:,} left for the next run"),
        file=err,
    )
    return 0
