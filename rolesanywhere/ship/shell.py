"""What the sync and async shells of the shipping engine share: everything but blocking.

:class:`Shell` holds the configuration, the sans-I/O :class:`~rolesanywhere.ship.core.Core`, the
dead-letter file and the request headers; it encodes submissions, turns HTTP answers and
failures into the core's :class:`~rolesanywhere.ship.core.Answer`, advances a delivery flow,
writes dead letters and keeps the callback bookkeeping. The shells in
:mod:`rolesanywhere.ship.shipper` add only the waiting: threads and locks, or tasks and awaits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Protocol, runtime_checkable

import httpx

from rolesanywhere.errors import RolesAnywhereError, ShipperClosedError, safe_text
from rolesanywhere.retry import parse_retry_after
from rolesanywhere.session.transport import USER_AGENT, resolve_verify
from rolesanywhere.ship.batch import Ticket
from rolesanywhere.ship.core import Action, Answer, Core, Flow, Quarantine, logger
from rolesanywhere.ship.deadletter import DeadLetterFile
from rolesanywhere.ship.encoder import Encoded, Event
from rolesanywhere.ship.shipperconfig import ShipperConfig
from rolesanywhere.ship.stats import ShipperStats, status_line

__all__ = ["ChecksEndpoint", "RefreshesStaleCredentials", "Shell", "slices"]

_SLICE_EVENTS = 2048  # events encoded per lock acquisition
_DETAIL_CHARS = 200


@runtime_checkable
class ChecksEndpoint(Protocol):
    """An auth that can tell at once whether it can sign for an endpoint (``SigV4Auth``: is
    there a signing region), instead of failing at the first request."""

    def check_endpoint(self, url: str) -> None: ...


@runtime_checkable
class RefreshesStaleCredentials(Protocol):
    """An auth that, after a 401/403 it did not fix, may refresh its credentials when the
    answer says they are stale (``SigV4Auth.refresh_if_stale``: at most once a minute)."""

    def refresh_if_stale(self, response: httpx.Response) -> bool: ...


def slices(events: Iterable[Event]) -> Iterator[list[Event]]:
    """``events`` in pieces of at most 2048, each encoded and queued at once."""
    if isinstance(events, list):
        for start in range(0, len(events), _SLICE_EVENTS):
            yield events[start : start + _SLICE_EVENTS]
        return
    iterator = iter(events)
    while piece := list(islice(iterator, _SLICE_EVENTS)):
        yield piece


class Shell:
    """The shells' common part. ``_guard`` is what makes the core safe to call: the sync
    shell's lock, or nothing for the async shell (one event loop)."""

    _guard: contextlib.AbstractContextManager[Any]

    def __init__(
        self,
        config: ShipperConfig,
        auth: httpx.Auth | None,
        on_settled: Callable[[list[Any]], object] | None,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        if isinstance(auth, ChecksEndpoint):
            auth.check_endpoint(config.url)
        self.config = config
        self.auth = auth
        self.on_settled = on_settled
        self._refresh_if_stale = (
            auth.refresh_if_stale if isinstance(auth, RefreshesStaleCredentials) else None
        )
        self._core = Core(config, clock=clock, rand=rand)
        #: Callbacks with tokens taken from the core but not yet called (``flush`` waits).
        self._calling = 0
        self._clock = clock
        self._dead_letter = DeadLetterFile(config.resolved_dead_letter_path())
        headers = {"Content-Type": "application/json", "User-Agent": f"{USER_AGENT} shipper"}
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        for name, value in config.headers:
            headers[name] = value
        self._headers = headers
        self._closed = False
        self._stopping = False
        self._timeout = httpx.Timeout(config.request_timeout, connect=config.connect_timeout)

    @property
    def dead_letter_path(self) -> str:
        return self._dead_letter.path

    def stats(self) -> ShipperStats:
        with self._guard:
            return self._core.stats()

    def status_line(self) -> str:
        """One line for a periodic status report."""
        return status_line(self.stats())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.config.url!r})"

    # --- submitting (the caller holds ``_guard`` where it says so) -----------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ShipperClosedError("the shipper is closed: cannot submit events")

    def _encoded(
        self, events: Iterable[Event], source: str | None, date: float | None
    ) -> Iterator[Encoded]:
        """A submission's events, encoded a slice at a time (as the caller goes through them)."""
        encoder = self._core.encoder
        for piece in slices(events):
            yield encoder.encode(piece, source, time.time() if date is None else date)

    def _no_room(self) -> bool:
        """(guard held) A submitter must wait: too much is pending and the shipper is open."""
        return self._core.full(self.config.max_pending_bytes) and not self._closed

    def _queue(self, encoded: Encoded, ticket: Ticket) -> bool:
        """(guard held) Queue ``encoded``; ``True`` when workers should look again."""
        self._check_open()
        return self._core.add(encoded, ticket, self._clock())

    def _seal(self, ticket: Ticket) -> list[Any]:
        """The submission is all queued: tokens settled meanwhile, to call back."""
        with self._guard:
            self._core.seal(ticket)
            return self._take_completed()

    def _take_completed(self) -> list[Any]:
        """(guard held) Settled tokens to call back; ``flush`` waits for their callback."""
        done = self._core.take_completed()
        if done and self.on_settled is not None:
            self._calling += 1
            return done
        return []

    def _idle(self) -> bool:
        """(guard held) Everything submitted is settled and called back."""
        return self._core.settled() and not self._calling

    def _closed_down(self, flushed: bool) -> bool:
        """The end of a close, workers and connections stopped: close the dead letter file,
        abandon what was never sent if the flush timed out; whether it was all settled."""
        self._dead_letter.close()
        if not flushed:
            self._abandon_unsent()
        return flushed

    def _abandon_unsent(self) -> None:
        """A close timed out: what was never sent is abandoned (counted, never settled)."""
        with self._guard:
            self._core.abandon_queued()
            stats = self._core.stats()
        logger.warning(
            "shipper closed with %d event(s) not delivered: %s",
            stats.pending_events,
            status_line(stats),
        )

    # --- workers ------------------------------------------------------------------------------

    def _next(self) -> tuple[Any, float | None]:
        """(guard held) A batch due now, else ``None`` and how long to wait for one."""
        now = self._clock()
        batch = self._core.take(now)
        return batch, None if batch is not None else self._core.wake_in(now)

    @staticmethod
    def _advance(flow: Flow, outcome: object) -> tuple[Action | None, Exception | None]:
        """(guard held) The flow's next action for ``outcome``; a bug ends the flow (what it
        settled still counts) and comes back second, to be raised after the callbacks."""
        try:
            return flow.send(outcome), None
        except StopIteration:
            return None, None
        except Exception as exc:
            return None, exc

    # --- HTTP ---------------------------------------------------------------------------------

    def _client_options(self, transport: object | None) -> dict[str, Any]:
        """The httpx client's keyword arguments; ``transport`` replaces the network when given."""
        options: dict[str, Any] = {
            "auth": self.auth,
            "timeout": self._timeout,
            "verify": resolve_verify(self.config.verify),
            "trust_env": self.config.trust_env,
            "follow_redirects": False,
        }
        if transport is not None:
            options["transport"] = transport
        return options

    def _request(self, client: httpx.Client | httpx.AsyncClient, body: bytes) -> httpx.Request:
        return client.build_request("POST", self.config.url, content=body, headers=self._headers)

    def _deadline(self) -> float:
        """When the post starting now must end (``request_timeout`` bounds the whole exchange:
        signing, sending and reading the answer)."""
        return time.monotonic() + self.config.request_timeout

    def _answer(self, outcome: tuple[httpx.Response, bytes, bool]) -> Answer:
        response, body, _ = outcome  # a cut body still has its status: that decides
        status = response.status_code
        if status in (401, 403) and self._refresh_if_stale is not None:
            # the auth did not fix it: refresh before the next attempt when the answer is
            # about the credentials, under the auth's floor (its one decision)
            self._refresh_if_stale(response)
        detail = ""
        if not 200 <= status < 300:
            try:
                detail = safe_text(
                    body.decode(response.encoding or "utf-8", "replace"), _DETAIL_CHARS
                )
            except Exception:
                detail = ""
        wait = parse_retry_after(response.headers.get("retry-after"))
        answer = Answer(status, "http", detail, wait)
        # httpx leaves the response and its stream referring to each other: only the cycle
        # collector would free them, and the ~1 MiB request body hanging off them, so sent
        # bodies would pile up between collections. Cut the cycle now.
        response.stream = httpx.ByteStream(b"")
        return answer

    @staticmethod
    def _failure(exc: BaseException) -> Answer:
        if isinstance(exc, httpx.TimeoutException):
            kind = "timeout"
        elif isinstance(exc, httpx.TransportError):
            kind = "conn"
        elif isinstance(exc, RolesAnywhereError):
            kind = "credentials"  # the credential source failed; its messages hold no secret
        else:
            kind = "error"
        text = safe_text(exc, _DETAIL_CHARS)
        return Answer(0, kind, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _dead_letter_write(self, action: Quarantine) -> bool:
        try:
            self._dead_letter.write(
                DeadLetterFile.lines(action.batch.items, action.reason, action.status)
            )
        except OSError as exc:
            logger.error(
                "cannot write the dead-letter file %s: %s",
                self._dead_letter.path,
                os.strerror(exc.errno or errno.EIO),
            )
            return False
        return True
