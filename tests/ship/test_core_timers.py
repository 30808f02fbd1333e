"""The core's batch timer: ``wake_in`` and ``take`` agree on when the open batch is due."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolesanywhere.ship.batch import Ticket
from rolesanywhere.ship.core import Core
from rolesanywhere.ship.shipperconfig import ShipperConfig


@pytest.mark.parametrize(("opened", "interval"), [(0.4, 1.0), (0.1, 0.2), (5.0, 1.0)])
def test_a_batch_wake_in_calls_due_is_taken(tmp_path: Path, opened: float, interval: float) -> None:
    # 0.4 + 1.0 == 1.4 but 1.4 - 0.4 < 1.0: a worker told to wait 0 s found nothing to take and,
    # on a clock that stands still (a simulation, a fake clock), spun for ever
    config = ShipperConfig(url="http://127.0.0.1:9/log", flush_interval=interval,
                           state_dir=str(tmp_path))  # fmt: skip
    core = Core(config)
    core.add(core.encoder.encode(["a line"], None, 0.0), Ticket(None), opened)
    now = opened + interval
    assert core.wake_in(now) == 0.0
    assert core.has_work(now)
    assert core.take(now) is not None
    # and not a moment before
    core.add(core.encoder.encode(["a line"], None, 0.0), Ticket(None), now)
    before = now + interval - 1e-9
    wake = core.wake_in(before)
    assert wake is not None and wake > 0
    assert not core.has_work(before) and core.take(before) is None
