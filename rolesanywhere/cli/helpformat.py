"""The command line's help formatter (imported only when an argument parser is built)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["Formatter"]


class Formatter(argparse.HelpFormatter):
    """Asks the terminal its width itself: argparse would import ``shutil`` (and with it bz2
    and lzma) for that on every ``add_argument``, a large share of a cold start."""

    def __init__(self, prog: str) -> None:
        import os

        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 80
        super().__init__(prog, width=max(width - 2, 40))
