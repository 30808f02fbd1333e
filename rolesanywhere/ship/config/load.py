"""A ``rolesanywhere ship`` configuration from Fluent Bit or TOML text, or from a file of
either format."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.ship.config.fluentbit import fluent_bit_layer
from rolesanywhere.ship.config.merge import Layer, build
from rolesanywhere.ship.config.model import ConfigWarning, ShipConfig
from rolesanywhere.ship.config.toml import toml_layer

__all__ = [
    "detect_format",
    "file_layer",
    "from_fluent_bit",
    "from_toml",
    "load_file",
]

_FB_COMMAND = re.compile(r"^@(?:INCLUDE|SET)\b", re.IGNORECASE | re.MULTILINE)
_FB_ENTRY = re.compile(r"^[ \t]+[^\s=#\[]+[ \t]+[^\s=]", re.MULTILINE)


def detect_format(path: str | os.PathLike[str], text: str) -> Literal["toml", "fluent-bit"]:
    """``.toml`` → TOML, ``.conf`` → Fluent Bit; otherwise TOML if it parses, else Fluent Bit
    when it has ``@INCLUDE``/``@SET`` or indented ``Key Value`` lines. YAML is refused."""
    import tomllib

    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix == ".conf":
        return "fluent-bit"
    if suffix in (".yaml", ".yml"):
        raise ShipConfigError(
            "Fluent Bit YAML configuration is not supported: use the classic .conf format or TOML",
            location=str(path),
        )
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        if _FB_COMMAND.search(text) or _FB_ENTRY.search(text):
            return "fluent-bit"
    return "toml"


def _read_config(path: str | os.PathLike[str]) -> str:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ShipConfigError(
            f"cannot read the configuration file {os.fspath(path)}: {reason}"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ShipConfigError(
            f"the configuration file {os.fspath(path)} is not UTF-8 text: save it as UTF-8"
        ) from None


def file_layer(path: str | os.PathLike[str], environ: Mapping[str, str]) -> Layer:
    text = _read_config(path)
    name = os.fspath(path)
    if detect_format(path, text) == "toml":
        return toml_layer(text, name)
    return fluent_bit_layer(text, name, Path(name).expanduser().resolve().parent, environ)


def from_fluent_bit(
    text: str,
    *,
    source_name: str = "<fluent-bit>",
    base_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ShipConfig, list[ConfigWarning]]:
    """A :class:`ShipConfig` from a classic Fluent Bit configuration, and its warnings.

    ``source_name`` names the text in messages; ``@INCLUDE`` is relative to ``base_dir``
    (default: the directory of ``source_name``, or the working directory); ``environ``
    resolves ``${VAR}`` (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if base_dir is None:
        base = Path(source_name).parent if not source_name.startswith("<") else Path.cwd()
    else:
        base = Path(base_dir)
    config = build([fluent_bit_layer(text, source_name, base, env)], env)
    return config, list(config.warnings)


def from_toml(
    source: str | os.PathLike[str],
    *,
    source_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ShipConfig:
    """A :class:`ShipConfig` from TOML: ``source`` is the text (``str``) or a path (``Path``)."""
    env = os.environ if environ is None else environ
    if isinstance(source, str):
        text, name = source, source_name or "<toml>"
    else:
        text, name = _read_config(source), source_name or os.fspath(source)
    return build([toml_layer(text, name)], env)


def load_file(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> ShipConfig:
    """A :class:`ShipConfig` from a Fluent Bit or TOML file (see :func:`detect_format`)."""
    env = os.environ if environ is None else environ
    return build([file_layer(path, env)], env)
