"""Values as written in a ``rolesanywhere ship`` configuration: booleans, sizes, times and
retry limits."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.session.endpoints import show

__all__ = [
    "parse_bool",
    "parse_duration",
    "parse_retry_limit",
    "parse_size",
]

_TRUE = frozenset({"on", "true", "yes"})
_FALSE = frozenset({"off", "false", "no"})
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_AMOUNT_RE = re.compile(_NUMBER + r"\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_bool(text: str, what: str = "value") -> bool:
    """``On/Off/true/false/yes/no`` (any case)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ShipConfigError(f"{what} must be On/Off, true/false or yes/no, not {show(text)}")


def _amount(text: str, units: Mapping[str, float]) -> float | None:
    """A number with one of ``units`` (any case) times that unit's factor; else ``None``."""
    match = _AMOUNT_RE.fullmatch(text.strip())
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in units:
        return None
    return float(match.group(1)) * units[unit]


def parse_size(text: str, what: str = "size") -> int:
    """Bytes from ``32000``, ``32k``/``32KB`` (×1000, as Fluent Bit), ``32KiB`` (×1024)…"""
    amount = _amount(text, _SIZE_UNITS)
    if amount is None:
        raise ShipConfigError(
            f"{what} must be a size such as 32000, 32k, 5M or 1MiB, not {show(text)}"
        )
    return round(amount)


def parse_duration(text: str, what: str = "time") -> float:
    """Seconds from ``5``, ``5s``, ``500ms``, ``1m``, ``1h`` or ``1d``."""
    amount = _amount(text, _TIME_UNITS)
    if amount is None:
        raise ShipConfigError(
            f"{what} must be a time such as 5, 5s, 500ms, 1m or 1h, not {show(text)}"
        )
    return amount


def parse_retry_limit(text: str, what: str) -> int | None:
    word = text.strip().lower()
    if word in ("false", "no_limits", "unlimited", "off"):
        return None
    if word == "no_retries":
        return 0
    if re.fullmatch(r"[0-9]+", word):
        return int(word)
    raise ShipConfigError(
        f"{what} must be a number of retries, 'no_retries' or 'False'/'no_limits' "
        f"(unlimited), not {show(text)}"
    )
