"""Rate limits as pure objects: a token bucket, and an adaptive client-side limiter built on it.

:class:`TokenBucket` is the one rate primitive of the package. The emulators use it as a
service's quota (CreateSession's 10 requests per second per account and region) and as an
ingestion pipeline's buffer (free space refilled at the drain rate); clients use it, through
:class:`AdaptiveRateLimiter`, to slow down when the service says they are too many.

Time comes from an injected ``clock`` (monotonic seconds), so simulations and tests run on a
fake one. Both classes take a lock around each decision and may be shared by threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from rolesanywhere.errors import InvalidParameterError

__all__ = ["AdaptiveRateLimiter", "TokenBucket"]


def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name} must be a positive, finite number, got {value!r}")


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` tokens per second.

    :meth:`try_take` takes tokens if there are enough (a request within the quota) and says
    whether it did; :meth:`reserve` takes them even when there are not, returning how long the
    caller must wait before acting (the tokens go negative: later callers queue behind it).
    ``full`` decides whether the bucket starts full (a quota that has not been used) or empty.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        full: bool = True,
    ) -> None:
        _check_rate("rate", rate)
        _check_rate("burst", burst)
        self._rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst if full else 0.0
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        _check_rate("rate", value)
        with self._lock:
            self._refill(self.clock())
            self._rate = float(value)

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while reservations are outstanding)."""
        with self._lock:
            self._refill(self.clock())
            return self._tokens

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def try_take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many now; say whether they were taken."""
        with self._lock:
            self._refill(self.clock())
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    def wait_time(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens will be there (0: now), without taking any."""
        with self._lock:
            self._refill(self.clock())
            return max(0.0, (n - self._tokens) / self._rate)

    def reserve(self, n: float = 1.0, max_wait: float = math.inf) -> float | None:
        """Take ``n`` tokens now, even on credit; return the seconds to wait before using them.

        When that wait would be longer than ``max_wait``, take nothing and return ``None``: a
        caller that gives up must not leave a debt that makes every later caller give up too.
        """
        with self._lock:
            self._refill(self.clock())
            wait = max(0.0, (n - self._tokens) / self._rate) if self._tokens < n else 0.0
            if wait > max_wait:
                return None
            self._tokens -= n
            return wait

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self._rate:g}, burst={self.burst:g})"


#: Share of the measured sending rate kept after a throttle (botocore's adaptive mode: 0.7).
BACKOFF_FACTOR = 0.7
#: Rate regained per second after a throttle, as a share of the rate the throttle set.
RECOVERY = 0.05
#: The limiter never goes below this many requests per second.
MIN_RATE = 0.05


class AdaptiveRateLimiter:
    """A client-side limiter that learns the rate the service accepts (like botocore's adaptive
    retry mode), for processes whose threads or clients share one identity and one quota.

    It lets everything through until the first throttle. Then it caps the sending rate at
    :data:`BACKOFF_FACTOR` times the rate measured over the last ``window`` seconds, and raises
    the cap again by :data:`RECOVERY` of it per second without throttles, up to twice the measured
    rate; another throttle cuts it again. ``max_rate`` caps it from the start (a known quota
    share, e.g. ``10 / hosts``). Before each request call :meth:`acquire` and wait as long as it
    says; after the answer call :meth:`record`.
    """

    def __init__(
        self,
        *,
        max_rate: float | None = None,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rate is not None:
            _check_rate("max_rate", max_rate)
        _check_rate("window", window)
        self.clock = clock
        self.max_rate = max_rate
        self.window = window
        self._lock = threading.Lock()
        self._sent: list[float] = []  # send times within the window
        self._bucket: TokenBucket | None = None
        if max_rate is not None:
            self._bucket = TokenBucket(max_rate, 1.0, clock=clock)
        self._floor_rate = max_rate  # the cap the last throttle set (None: not throttled yet)
        self._throttled_at: float | None = None
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current cap in requests per second (``None``: not limiting)."""
        with self._lock:
            return None if self._bucket is None else self._current_rate(self.clock())

    def _measured(self, now: float) -> float:
        horizon = now - self.window
        self._sent = [t for t in self._sent if t > horizon]
        return len(self._sent) / self.window

    def _current_rate(self, now: float) -> float:
        assert self._floor_rate is not None
        if self._throttled_at is None:
            return self._floor_rate
        grown = self._floor_rate * (1.0 + RECOVERY * (now - self._throttled_at))
        ceiling = max(2.0 * self._floor_rate / BACKOFF_FACTOR, self._floor_rate)
        rate = min(grown, ceiling)
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def acquire(self, max_wait: float = math.inf) -> float | None:
        """Reserve a send; return the seconds to wait before sending (0: at once), or ``None``
        (nothing reserved) when that would be longer than ``max_wait``."""
        now = self.clock()
        with self._lock:
            self._measured(now)  # forget sends older than the window
            if self._bucket is not None:
                self._bucket.rate = self._current_rate(now)
                wait = self._bucket.reserve(max_wait=max_wait)
                if wait is None:
                    return None
            else:
                wait = 0.0
            self._sent.append(now)
            return wait

    def record(self, throttled: bool) -> None:
        """Report an answer: ``throttled`` for 429 / ThrottlingException."""
        if not throttled:
            return
        now = self.clock()
        with self._lock:
            self.throttles += 1
            measured = self._measured(now)
            current = self._current_rate(now) if self._bucket is not None else measured
            new = max(MIN_RATE, BACKOFF_FACTOR * min(current, measured or current))
            if self.max_rate is not None:
                new = min(new, self.max_rate)
            self._floor_rate = new
            self._throttled_at = now
            if self._bucket is None:
                self._bucket = TokenBucket(new, 1.0, clock=self.clock, full=False)

    def __repr__(self) -> str:
        rate = self.rate
        shown = "unlimited" if rate is None else f"{rate:.3g}/s"
        return f"AdaptiveRateLimiter({shown}, throttles={self.throttles})"
