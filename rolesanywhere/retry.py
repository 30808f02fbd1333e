"""Retry timing: exponential backoff with full jitter, bounded by a deadline (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.values import Value

__all__ = ["LONG_RUNNING", "RetryPolicy", "full_jitter", "parse_retry_after"]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (``None``: absent, a date, or nonsense)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds else None


def full_jitter(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """A wait uniform in ``[0, min(cap, base * 2**(attempt-1))]`` (``attempt`` 1-based).

    The exponent is capped: ``2.0 ** 1024`` overflows, and a retry-forever loop gets there.
    """
    return rand() * min(cap, base * 2.0 ** min(max(attempt - 1, 0), 62))


class RetryPolicy(Value):
    """How many attempts to make and how long to wait between them.

    The wait before attempt ``n + 1`` is uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``
    ("full jitter"), so many clients retrying at once spread out instead of stampeding.

    Throttling answers (429, ``ThrottlingException``) say the *account* is over its shared quota,
    so they are retried more gently: waits start from ``throttle_base_delay`` (at least
    ``base_delay``), a ``Retry-After`` header is honoured, and at most ``throttled_attempts``
    throttled attempts are made (``None``: ``max_attempts``). Long-running callers use
    :data:`LONG_RUNNING` (one throttled attempt per call): their credential refresher retries
    on its own, slower, jittered schedule while it still holds usable credentials.
    """

    __slots__ = (
        "max_attempts", "base_delay", "max_delay", "throttle_base_delay", "throttled_attempts",
    )  # fmt: skip

    max_attempts: int
    base_delay: float
    max_delay: float
    throttle_base_delay: float
    throttled_attempts: int | None

    def __init__(
        self,
        max_attempts: int = 3,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        throttle_base_delay: float = 1.0,
        throttled_attempts: int | None = None,
    ) -> None:
        if max_attempts < 1:
            raise InvalidParameterError(
                f"RetryPolicy max_attempts must be at least 1, got {max_attempts!r}"
            )
        if base_delay < 0 or max_delay < 0 or throttle_base_delay < 0:
            raise InvalidParameterError(
                "RetryPolicy base_delay, max_delay and throttle_base_delay must not be negative, "
                f"got {base_delay!r}, {max_delay!r} and {throttle_base_delay!r}"
            )
        if throttled_attempts is not None and throttled_attempts < 1:
            raise InvalidParameterError(
                f"RetryPolicy throttled_attempts must be at least 1, got {throttled_attempts!r}"
            )
        super().__init__(
            max_attempts, base_delay, max_delay, throttle_base_delay, throttled_attempts
        )

    def delay(
        self, attempt: int, rand: Callable[[], float] = random.random, *, throttled: bool = False
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = max(self.base_delay, self.throttle_base_delay) if throttled else self.base_delay
        return full_jitter(attempt, base, self.max_delay, rand)

    def attempts_for(self, throttled: bool) -> int:
        """How many attempts to make in all when the last one was ``throttled`` (or not)."""
        if throttled and self.throttled_attempts is not None:
            return min(self.max_attempts, self.throttled_attempts)
        return self.max_attempts


#: What long-running callers (``serve``, ``update``, ``ship``, ``SigV4Auth``, boto3 sessions)
#: give their client: network errors and 5xx are retried at once, a throttle is not: the
#: refresher backs off (jittered, growing) and keeps the credentials it holds meanwhile.
LONG_RUNNING = RetryPolicy(throttled_attempts=1)
