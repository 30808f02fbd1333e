"""Where ``rolesanywhere ship`` keeps its state: the positions database, the lock and the
dead-letter file all live in one state directory."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["default_state_dir"]


def default_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$STATE_DIRECTORY`` (systemd ``StateDirectory=``), else
    ``$XDG_STATE_HOME/rolesanywhere/ship``, else ``~/.local/state/rolesanywhere/ship``."""
    env = os.environ if environ is None else environ
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return systemd
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "rolesanywhere", "ship")
