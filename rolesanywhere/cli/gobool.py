"""Go's boolean flag syntax: the Go helper's flag package takes ``--flag=true`` and
``--flag=false`` for switches, so existing command lines keep working here."""

from __future__ import annotations

import argparse

from rolesanywhere.errors import UsageError

__all__ = ["go_booleans"]


#: What Go's ``strconv.ParseBool`` accepts, as the Go helper's ``--flag=VALUE`` does.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _switches(parser: argparse.ArgumentParser, command: str | None) -> dict[str, str | None]:
    """The boolean flags of ``command``: flag -> the flag that turns it off (``None``: none)."""
    found: dict[str, str | None] = {}
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction) or command is None:
            continue
        sub = action.choices.get(command)
        for flag_action in sub._actions if sub is not None else ():
            flags = [f for f in flag_action.option_strings if f.startswith("--")]
            if isinstance(flag_action, argparse.BooleanOptionalAction):
                on = next((f for f in flags if not f.startswith("--no-")), None)
                off = next((f for f in flags if f.startswith("--no-")), None)
                if on and off:
                    found[on], found[off] = off, on
            elif isinstance(flag_action, argparse._StoreConstAction) and isinstance(
                flag_action.const, bool
            ):
                found.update(dict.fromkeys(flags))
    return found


def go_booleans(parser: argparse.ArgumentParser, command: str | None, argv: list[str]) -> list[str]:
    """Rewrite Go's ``--flag=true`` / ``--flag=false`` for boolean flags, as the Go helper's
    flag package takes them: ``--debug=true`` is ``--debug``, ``--debug=false`` is its absence."""
    switches = _switches(parser, command)
    out: list[str] = []
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + argv[index:]
        flag, eq, value = arg.partition("=")
        if not eq or flag not in switches:
            out.append(arg)
        elif value in _GO_TRUE:
            out.append(flag)
        elif value in _GO_FALSE:
            off = switches[flag]
            if off is not None:
                out.append(off)
        else:
            from rolesanywhere.session.endpoints import show

            raise UsageError(
                f"{flag} is a switch and takes no value but true or false, got {show(value)}: "
                f"write {flag}, {flag}=true or {flag}=false"
            )
    return out
