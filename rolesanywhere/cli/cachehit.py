"""``credential-process --cache``'s fast path: a cache hit served without ``argparse``.

A hit is what every ``aws`` command pays for once the cache holds the answer, so it skips
building the argument parser (and importing ``argparse`` and ``typing``):
:func:`~rolesanywhere.profiles.settings.simple_credential_process_values` reads the plain forms
of the flags :data:`~rolesanywhere.profiles.settings.SETTINGS` defines, and the cache is asked
as :func:`rolesanywhere.cli.main._credential_process` asks it. Anything else (another flag or
form, the cache off, a miss, an entry to warn about) returns ``None``: the normal path then
parses, warns and answers exactly as it does without this module.
"""

from __future__ import annotations

from rolesanywhere.profiles.cache import CredentialCache, cache_enabled
from rolesanywhere.profiles.settings import simple_credential_process_values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["cached_answer"]


def cached_answer(words: Sequence[str]) -> str | None:
    """The cached output of ``credential-process words…`` (the arguments after the subcommand),
    or ``None`` when the normal path must run."""
    parsed = simple_credential_process_values(words)
    if parsed is None:
        return None
    values, flag = parsed
    if not cache_enabled(flag):
        return None
    warnings: list[str] = []
    output = CredentialCache(values, warn=warnings.append).get()
    # A warning comes with a miss; the normal path repeats the work and prints it once.
    return None if warnings else output
