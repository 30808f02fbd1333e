"""Stopping long-running commands (``ship``, ``update``, ``serve``) on SIGTERM and SIGINT.

The first SIGTERM or SIGINT asks for a clean stop (sets the ``stop`` event: the command
finishes what it can within its own bound). A second one, while that stop is under way, ends
the process at once, killed by that signal: whatever was not finished is left as a crash
would leave it (``ship`` commits file positions only after delivery, so the next run sends
the rest; ``update`` replaces its file atomically).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["stop_on_signals"]


def _exit_now(signum: int) -> None:
    """End the process at once, as killed by ``signum`` (no cleanup, no waiting on threads)."""
    name = signal.Signals(signum).name
    # os.write, not print: the interrupted main thread may be inside a write to stderr
    with contextlib.suppress(OSError):
        os.write(2, f"rolesanywhere: second {name}: stopping now\n".encode())
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # pragma: no cover - only if the signal did not end the process


@contextmanager
def stop_on_signals(stop: threading.Event, install: bool = True) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop``, a second one ends the process at once (main thread only);
    the previous handlers come back after."""
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if received:
            _exit_now(signum)
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
