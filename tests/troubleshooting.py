"""The troubleshooting page's message templates, and the check that an error message is on it.

docs/troubleshooting.md quotes each message the command line prints in a ``text`` code block,
one message a line, starting ``rolesanywhere: ``, with ``…`` where the message varies (a path, an
ARN, a port). :func:`assert_on_page` is called by the bad-input corpus (tests/test_bad_input.py)
with every message a case made the command line print: a new message, or a reworded one, fails
its case until the page has an entry that matches it. No mkdocs needed: the page is read as text.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

PAGE = Path(__file__).parent.parent / "docs" / "troubleshooting.md"
_BLOCK = re.compile(r"^```text\n(.*?)^```", re.MULTILINE | re.DOTALL)


@cache
def templates() -> tuple[str, ...]:
    """Every message template on the page (the ``text`` blocks' ``rolesanywhere:`` lines)."""
    found = []
    for block in _BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        found += [line for line in block.splitlines() if line.startswith("rolesanywhere: ")]
    return tuple(found)


def pattern(template: str) -> re.Pattern[str]:
    """``…`` stands for any text (at least one character); the rest is literal."""
    return re.compile(".+?".join(re.escape(part) for part in template.split("…")), re.DOTALL)


@cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(pattern(template) for template in templates())


def covering(message: str) -> list[str]:
    """The templates on the page that match ``message`` (one line, trailing newline ignored)."""
    text = message.rstrip("\n")
    return [t for t, p in zip(templates(), _patterns(), strict=True) if p.fullmatch(text)]


def assert_on_page(message: str) -> None:
    assert covering(message), (
        f"add this message to docs/troubleshooting.md (what it means, what to do): {message!r}"
    )
