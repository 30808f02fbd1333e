"""The dead-letter file: events that will never be delivered, one JSON line each, written
durably before they count as settled."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _esc

from rolesanywhere.ship.encoder import dumps

__all__ = ["DeadLetterFile"]


class DeadLetterFile:
    """JSON lines ``{"time", "reason", "status", "event"}``, appended, flushed and fsynced.

    The file is created with mode 0600 (its directory 0700) on the first write.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def lines(batch_items: Sequence[str], reason: str, status: int | None) -> bytes:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        head = f'{{"time":"{stamp}","reason":{_esc(reason)},"status":{dumps(status)},"event":'
        return "".join(f"{head}{item}}}\n" for item in batch_items).encode()

    def write(self, data: bytes) -> None:
        """Append ``data`` durably (raises ``OSError``)."""
        with self._lock:
            if self._fd is None:
                directory = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(directory, mode=0o700, exist_ok=True)
                self._fd = os.open(
                    self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
