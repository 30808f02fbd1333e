"""Retry timing: exponential backoff with full jitter, bounded by a deadline (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.values import Value

__all__ = ["RetryPolicy"]


class RetryPolicy(Value):
    """How many attempts to make and how long to wait between them.

    The wait before attempt ``n + 1`` is uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``
    ("full jitter"), so many clients retrying at once spread out instead of stampeding.
    """

    __slots__ = ("max_attempts", "base_delay", "max_delay")

    max_attempts: int
    base_delay: float
    max_delay: float

    def __init__(
        self, max_attempts: int = 3, base_delay: float = 0.2, max_delay: float = 5.0
    ) -> None:
        if max_attempts < 1:
            raise InvalidParameterError(
                f"RetryPolicy max_attempts must be at least 1, got {max_attempts!r}"
            )
        if base_delay < 0 or max_delay < 0:
            raise InvalidParameterError(
                "RetryPolicy base_delay and max_delay must not be negative, got "
                f"{base_delay!r} and {max_delay!r}"
            )
        super().__init__(max_attempts, base_delay, max_delay)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        # The exponent is capped: 2.0 ** 1024 overflows, and a retry-forever loop gets there.
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(max(attempt - 1, 0), 62))
        return rand() * ceiling
