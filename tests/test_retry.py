"""RetryPolicy: full-jitter exponential backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere.retry import RetryPolicy


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=5.0)
    assert [policy.delay(n, lambda: 1.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert policy.delay(3, lambda: 0.25) == 0.5  # full jitter: uniform below the ceiling


@given(st.integers(min_value=1, max_value=10**6), st.floats(0, 1))
def test_any_attempt_number_gives_a_bounded_delay(attempt: int, jitter: float) -> None:
    # A batch retried for ever reaches attempt numbers where 2.0 ** n would overflow.
    delay = RetryPolicy(base_delay=0.5, max_delay=30.0).delay(attempt, lambda: jitter)
    assert 0 <= delay <= 30.0


@pytest.mark.parametrize("options", [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": -1}])
def test_nonsense_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), (None, None), ("", None), ("-1", None),
     ("nan", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)  # fmt: skip
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    from rolesanywhere.retry import parse_retry_after

    assert parse_retry_after(header) == seconds
