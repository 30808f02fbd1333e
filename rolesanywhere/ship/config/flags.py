"""The flags of ``rolesanywhere ship``, and the configuration they give (over a ``--config``
file)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import Any

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.profiles.settings import (
    SETTINGS,
    add_flags,
    add_unsupported_flags,
    unsupported_flag,
    values_from_args,
)
from rolesanywhere.session.endpoints import show
from rolesanywhere.ship.config.load import file_layer
from rolesanywhere.ship.config.merge import Layer, build
from rolesanywhere.ship.config.model import FieldValue, ShipConfig
from rolesanywhere.ship.config.units import parse_duration, parse_retry_limit, parse_size

__all__ = [
    "add_ship_arguments",
    "from_args",
]


def add_ship_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``ship`` flags: files, endpoint, batching, state, and credentials (the
    ``credential-process`` identity flags, all optional here, or ``--aws-profile``).

    Every flag defaults to ``None`` ("not given"), so :func:`from_args` can let a flag
    override the config file only when it is given.
    """
    add = parser.add_argument
    add(
        "paths",
        nargs="*",
        metavar="PATH",
        help="log files to follow (globs, quote them); Fluent Bit tail Path",
    )
    add(
        "-c",
        "--config",
        metavar="FILE",
        help="a Fluent Bit .conf (tail input, http output) or a TOML file; flags override it",
    )
    files = parser.add_argument_group("files (Fluent Bit tail input)")
    files.add_argument(
        "--exclude-path",
        action="append",
        metavar="GLOB",
        help="do not follow files matching GLOB (repeatable); Exclude_Path",
    )
    files.add_argument(
        "--read-from-head",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read files present at the first start from their beginning (default: end)",
    )
    files.add_argument(
        "--refresh-interval", metavar="TIME", help="re-scan the globs every TIME (default 60s)"
    )
    files.add_argument(
        "--rotate-wait", metavar="TIME", help="follow a rotated file for TIME (default 5s)"
    )
    files.add_argument(
        "--max-line-size",
        metavar="SIZE",
        help="longest line shipped as one record (default 32KiB); Buffer_Max_Size",
    )
    files.add_argument(
        "--long-lines",
        choices=("split", "truncate"),
        help="longer lines are split into several records (default) or truncated",
    )
    files.add_argument("--state-dir", metavar="DIR", help="positions database directory")
    files.add_argument(
        "--reset-positions",
        choices=("head", "end"),
        help="when the positions database of a state dir used before is missing, empty or "
        "damaged: read the files again from their beginning (head: duplicates) or start at "
        "their end (end: lines written meanwhile are skipped); default: refuse to start",
    )
    out = parser.add_argument_group("endpoint (Fluent Bit http output)")
    out.add_argument(
        "--url", help="ingestion URL, e.g. https://PIPELINE-ID.REGION.osis.amazonaws.com/PATH"
    )
    out.add_argument("--host", help="ingestion host (https, port 443); Host")
    out.add_argument("--port", type=int, help="ingestion port; Port")
    out.add_argument("--uri", help="ingestion path, e.g. /log/ingest; URI")
    out.add_argument("--region", help="signing region (default: from the OSIS host name)")
    out.add_argument("--service", help="signing service (default osis)")
    out.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="gzip request bodies (the pipeline must set compression: gzip)",
    )
    out.add_argument("--batch-size", metavar="SIZE", help="request body limit (max 1MiB)")
    out.add_argument("--batch-events", type=int, metavar="N", help="records per request limit")
    out.add_argument(
        "--flush-interval", metavar="TIME", help="send a partial batch after TIME (default 1s)"
    )
    out.add_argument(
        "--retry-limit", metavar="N", help="retries per request, or 'unlimited' (default)"
    )
    out.add_argument("--max-backoff", metavar="TIME", help="longest pause between retries")
    out.add_argument("--request-timeout", metavar="TIME", help="time limit of one request")
    out.add_argument(
        "--stop-timeout",
        metavar="TIME",
        help="time from SIGTERM/SIGINT to exit (default 5s); undelivered lines: next run",
    )
    out.add_argument("--ca-bundle", metavar="FILE", help="CA bundle for the ingestion endpoint")
    rec = parser.add_argument_group("records")
    rec.add_argument("--path-key", metavar="NAME", help="add the file path as field NAME")
    rec.add_argument("--host-key", metavar="NAME", help="add the host name as field NAME")
    rec.add_argument(
        "--field",
        action="append",
        metavar="KEY=VALUE",
        help="add a fixed field to every record (repeatable)",
    )
    _add_credential_arguments(parser)


def _add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "credentials: an AWS profile, or a Roles Anywhere identity (credential-process flags)",
        "--no-verify-ssl applies to the ingestion endpoint too",
    )
    group.add_argument(
        "--aws-profile", metavar="NAME", help="use the credentials of AWS profile NAME"
    )
    add_flags(group, ship=True)
    add_unsupported_flags(group)


def _flags_layer(ns: argparse.Namespace) -> Layer:
    layer = Layer()

    def get(name: str) -> Any:
        return getattr(ns, name, None)

    flag = unsupported_flag(ns)
    if flag is not None:
        raise ShipConfigError(
            f"{flag} is not supported by this version: use --certificate and --private-key "
            "files, or an --aws-profile whose credential_process runs the official helper"
        )

    def parsed(dest: str, flag: str, key: str, parse: Callable[[str, str], object]) -> None:
        value = get(dest)
        if value is not None:
            layer.set(key, parse(str(value), flag), flag)

    def plain(dest: str, flag: str, key: str) -> None:
        value = get(dest)
        if value is not None:
            layer.set(key, value, flag)

    if get("paths"):
        layer.set("paths", tuple(get("paths")), "PATH arguments")
    if get("exclude_path"):
        layer.set("exclude_paths", tuple(get("exclude_path")), "--exclude-path")
    plain("read_from_head", "--read-from-head", "read_from_head")
    parsed("refresh_interval", "--refresh-interval", "refresh_interval", parse_duration)
    parsed("rotate_wait", "--rotate-wait", "rotate_wait", parse_duration)
    parsed("max_line_size", "--max-line-size", "max_line_bytes", parse_size)
    plain("long_lines", "--long-lines", "long_lines")
    plain("state_dir", "--state-dir", "state_dir")
    plain("reset_positions", "--reset-positions", "reset_positions")
    if get("url") is not None:
        if any(get(name) is not None for name in ("host", "port", "uri")):
            raise ShipConfigError("--url and --host/--port/--uri are both given: keep one form")
        layer.url(str(get("url")), "--url")
    plain("host", "--host", "host")
    plain("port", "--port", "port")
    plain("uri", "--uri", "uri")
    plain("region", "--region", "region")
    plain("service", "--service", "service")
    plain("gzip", "--gzip", "compress")
    parsed("batch_size", "--batch-size", "batch_bytes", parse_size)
    plain("batch_events", "--batch-events", "batch_events")
    parsed("flush_interval", "--flush-interval", "flush_interval", parse_duration)
    parsed("retry_limit", "--retry-limit", "retry_limit", parse_retry_limit)
    parsed("max_backoff", "--max-backoff", "max_backoff", parse_duration)
    parsed("request_timeout", "--request-timeout", "request_timeout", parse_duration)
    parsed("stop_timeout", "--stop-timeout", "stop_timeout", parse_duration)
    plain("ca_bundle", "--ca-bundle", "ca_bundle")
    plain("path_key", "--path-key", "path_key")
    plain("host_key", "--host-key", "host_key")
    if get("field"):
        fields: dict[str, FieldValue] = {}
        for item in get("field"):
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise ShipConfigError(f"--field {show(item)}: write --field KEY=VALUE")
            fields[key.strip()] = value
        layer.set("fields", fields, "--field")
    plain("aws_profile", "--aws-profile", "aws_profile")
    identity = values_from_args(ns, ship=True)
    if identity.get("verify") is False:
        layer.set("tls_verify", False, "--no-verify-ssl")
    for setting in SETTINGS:
        if setting.name in identity:
            layer.set(f"id.{setting.key}", identity[setting.name], setting.flag_for(ship=True))
    return layer


def from_args(
    namespace: argparse.Namespace, *, environ: Mapping[str, str] | None = None
) -> ShipConfig:
    """The :class:`ShipConfig` of parsed ``ship`` flags: defaults < ``--config`` file < flags.

    The file's warnings are in :attr:`ShipConfig.warnings`.
    """
    env = os.environ if environ is None else environ
    layers: list[Layer] = []
    config = getattr(namespace, "config", None)
    if config:
        layers.append(file_layer(config, env))
    layers.append(_flags_layer(namespace))
    return build(layers, env)
