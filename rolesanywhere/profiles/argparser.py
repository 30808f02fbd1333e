"""The command line's argument parser (:class:`Parser`), apart from
:mod:`rolesanywhere.profiles.settings` so that reading the settings does not import ``argparse``.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from rolesanywhere.errors import UsageError

__all__ = ["Parser"]


class Parser(argparse.ArgumentParser):
    """An argument parser that takes no abbreviations and raises :class:`UsageError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: "--trust" must not quietly mean "--trust-anchor-arn" (the Go helper
        # accepts only whole flag names, and a prefix can change meaning when flags are added).
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    #: The subcommand's parser, when one is named: unknown flags are reported by the top parser.
    command: argparse.ArgumentParser | None = None

    def error(self, message: str) -> NoReturn:
        prog = self.prog
        if message.startswith("unrecognized arguments") and self.command is not None:
            prog = self.command.prog
            known = [f for a in self.command._actions for f in a.option_strings]
            for word in message.partition(":")[2].split():
                name = word.partition("=")[0]
                matches = [f for f in known if name.startswith("--") and f.startswith(name)]
                if matches:
                    message += (
                        f": flags are not abbreviated, did you mean {' or '.join(matches[:3])}?"
                    )
                    break
        raise UsageError(f"{message} (see '{prog} --help')")
