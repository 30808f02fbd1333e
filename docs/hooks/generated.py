"""mkdocs hook: the pages' generated parts, rendered from the code at build time (no drift).

A page asks for a part with an HTML comment on a line of its own, ``<!-- generated: NAME -->``:

- ``cli-reference``: each subcommand's ``--help``, from the real argument parser;
- ``helper-flags``: the identity flags (``rolesanywhere.profiles.settings.SETTINGS``) with their
  Python parameter, ``ship`` flag and configuration key, and the Go flags not supported;
- ``api``: an mkdocstrings block for every top-level ``rolesanywhere`` name.

Only this module's :func:`on_page_markdown` is mkdocs-specific, and it needs no mkdocs import: the
tests import the renderers without mkdocs installed.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable
from typing import Any

_MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def _help(argv: list[str]) -> str:
    from rolesanywhere.cli.main import main

    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        with contextlib.redirect_stdout(out):
            main([*argv, "--help"], stdout=out, stderr=io.StringIO())
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return out.getvalue().rstrip()


def subcommands() -> list[str]:
    """The subcommands, in the order the top-level ``--help`` lists them."""
    # the block after the "  COMMAND" line of "positional arguments:", up to the blank line
    listing = _help([]).split("\n  COMMAND\n", 1)[-1].split("\n\n")[0]
    return re.findall(r"^    ([a-z][a-z-]*)", listing, re.MULTILINE)


def cli_reference() -> str:
    parts = ["```text\n$ rolesanywhere --help\n" + _help([]) + "\n```"]
    for command in subcommands():
        parts.append(f"## {command}\n\n```text\n$ rolesanywhere {command} --help\n")
        parts[-1] += _help([command]) + "\n```"
    return "\n\n".join(parts)


def helper_flags() -> str:
    from rolesanywhere.profiles.settings import SETTINGS, UNSUPPORTED_FLAGS

    rows = [
        "| `aws_signing_helper` flag | Python parameter | `ship` flag | `ship` TOML key "
        "| meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        env = f" (or `{s.env}`)" if s.env else ""
        rows.append(
            f"| `{s.flag}`{env} | `{s.name}` | `{s.flag_for(ship=True)}` | `{s.key}` "
            f"| {s.help.replace('|', '/')} |"
        )
    rows.append("| `--debug` | — | — | — | print the canonical request and headers on stderr |")
    for flag, _switch in UNSUPPORTED_FLAGS.values():
        rows.append(f"| `{flag}` | — | — | — | parsed, refused: not supported by this version |")
    return "\n".join(rows)


def api() -> str:
    import rolesanywhere

    blocks = []
    for name in sorted(n for n in rolesanywhere.__all__ if not n.startswith("_")):
        obj = getattr(rolesanywhere, name)
        blocks.append(f"::: {obj.__module__}.{name}")
    return "\n\n".join(blocks)


RENDERERS: dict[str, Callable[[], str]] = {
    "cli-reference": cli_reference,
    "helper-flags": helper_flags,
    "api": api,
}


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- generated: NAME -->`` line replaced by its part."""
    return _MARKER.sub(lambda m: RENDERERS[m.group(1)](), markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render(markdown)
