"""The classic Fluent Bit configuration syntax: a file read into sections of ``Key Value``
entries.

Fluent Bit classic format
-------------------------
Sections ``[SERVICE]``, ``[INPUT]``, ``[FILTER]``, ``[OUTPUT]`` (names and keys case-insensitive);
entries indented, ``Key Value`` (the value is the rest of the line); ``#`` comment lines;
``@SET KEY=VALUE`` and ``@INCLUDE FILE`` at the start of a line (``@INCLUDE`` is relative to the
including file and may be a glob); ``${VAR}`` replaced by an ``@SET`` variable, else the
environment variable (unset: empty, with a warning). Booleans ``On/Off/true/false/yes/no``;
sizes ``32000``, ``32k``/``32KB`` (×1000, as Fluent Bit), ``32KiB`` (×1024), ``M``, ``G``;
times ``5``, ``5s``, ``500ms``, ``1m``, ``1h``, ``1d``.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.session.endpoints import show
from rolesanywhere.ship.config.model import ConfigWarning

__all__ = [
    "Entry",
    "FluentBitReader",
    "Section",
]

_MAX_INCLUDE_DEPTH = 16
_SECTION_RE = re.compile(r"\[\s*([A-Za-z][A-Za-z0-9_.-]*)\s*\]")
_COMMAND_RE = re.compile(r"@([A-Za-z_]+)(?:\s+(.*))?", re.S)
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


@dataclass(slots=True)
class Entry:
    key: str
    value: str
    location: str


@dataclass(slots=True)
class Section:
    kind: str
    location: str
    entries: list[Entry] = field(default_factory=list)

    def plugin(self) -> str | None:
        names = [e.value.strip().lower() for e in self.entries if e.key.lower() == "name"]
        return names[-1] if names else None


class FluentBitReader:
    def __init__(self, environ: Mapping[str, str], warnings: list[ConfigWarning]) -> None:
        self.environ = environ
        self.warnings = warnings
        self.variables: dict[str, str] = {}
        self.sections: list[Section] = []
        self.files: list[str] = []
        self._stack: list[Path] = []

    def read_text(self, text: str, source: str, base_dir: Path) -> None:
        current: Section | None = None
        for number, raw in enumerate(text.split("\n"), 1):
            location = f"{source}:{number}"
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indented = raw[0].isspace()
            if stripped.startswith("@"):
                if indented:
                    raise ShipConfigError(
                        "@SET and @INCLUDE must start at the beginning of a line, "
                        "outside sections: remove the indentation",
                        location=location,
                    )
                self._command(stripped, location, base_dir)
                current = None
                continue
            if stripped.startswith("["):
                match = _SECTION_RE.fullmatch(stripped)
                if match is None:
                    raise ShipConfigError(
                        f"malformed section header {show(stripped)}: write [SERVICE], [INPUT], "
                        "[FILTER] or [OUTPUT] alone on its line",
                        location=location,
                    )
                current = Section(match.group(1), location)
                self.sections.append(current)
                continue
            if not indented:
                raise ShipConfigError(
                    f"{show(stripped)} is not indented: entries go under a section header "
                    "such as [INPUT], indented, as 'Key Value'",
                    location=location,
                )
            if current is None:
                raise ShipConfigError(
                    f"entry {show(stripped)} is outside any section: put it under a section "
                    "header such as [INPUT]",
                    location=location,
                )
            parts = stripped.split(None, 1)
            if len(parts) < 2:
                raise ShipConfigError(
                    f"key {show(parts[0])} has no value: write 'Key Value'", location=location
                )
            current.entries.append(
                Entry(parts[0], self._expand(parts[1].strip(), location), location)
            )

    def _expand(self, value: str, location: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in self.variables:
                return self.variables[name]
            if name in self.environ:
                return self.environ[name]
            self.warnings.append(
                ConfigWarning(
                    f"variable ${{{name}}} is not set (no @SET, no environment variable): "
                    "replaced by an empty string",
                    location,
                )
            )
            return ""

        return _VARIABLE_RE.sub(replace, value)

    def _command(self, text: str, location: str, base_dir: Path) -> None:
        match = _COMMAND_RE.fullmatch(text)
        command = match.group(1).upper() if match else ""
        argument = (match.group(2) or "").strip() if match else ""
        if command == "SET":
            name, sep, value = argument.partition("=")
            if not sep or not _VARIABLE_NAME.fullmatch(name.strip()):
                raise ShipConfigError(
                    f"{show(text)}: write @SET NAME=VALUE (NAME: letters, digits, '_')",
                    location=location,
                )
            self.variables[name.strip()] = self._expand(value.strip(), location)
        elif command == "INCLUDE":
            if not argument:
                raise ShipConfigError("@INCLUDE needs a file name", location=location)
            self._include(self._expand(argument, location), location, base_dir)
        else:
            raise ShipConfigError(
                f"unknown command {show(text.split()[0])}: Fluent Bit knows @INCLUDE FILE "
                "and @SET NAME=VALUE",
                location=location,
            )

    def _include(self, name: str, location: str, base_dir: Path) -> None:
        path = Path(os.path.expanduser(name))
        if not path.is_absolute():
            path = base_dir / path
        if any(char in name for char in "*?["):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                self.warnings.append(
                    ConfigWarning(f"@INCLUDE {name}: the pattern matches no file", location)
                )
            for found in matches:
                self.read_file(Path(found), location)
        else:
            self.read_file(path, location)

    def read_file(self, path: Path, location: str | None) -> None:
        try:
            resolved = path.resolve()
            if resolved in self._stack:
                raise ShipConfigError(
                    f"@INCLUDE loop: {path} includes itself; remove the loop", location=location
                )
            if len(self._stack) >= _MAX_INCLUDE_DEPTH:
                raise ShipConfigError(
                    f"@INCLUDE nested more than {_MAX_INCLUDE_DEPTH} levels deep at {path}",
                    location=location,
                )
            if not stat.S_ISREG(resolved.stat().st_mode):
                raise ShipConfigError(
                    f"cannot include {path}: not a regular file", location=location
                )
            data = resolved.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ShipConfigError(
                f"cannot read {path}: {reason}: check the path", location=location
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ShipConfigError(
                f"{path} is not UTF-8 text: save it as UTF-8", location=location
            ) from None
        self.files.append(str(path))
        self._stack.append(resolved)
        try:
            self.read_text(text, str(path), resolved.parent)
        finally:
            self._stack.pop()
