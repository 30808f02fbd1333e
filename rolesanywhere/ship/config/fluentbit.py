"""Classic Fluent Bit sections (see :mod:`~rolesanywhere.ship.config.fluentbit_reader`) mapped
to ``rolesanywhere ship`` settings:

=======================================  =====================================================
Fluent Bit                               ShipConfig
=======================================  =====================================================
``[SERVICE] Flush``                      ``flush_interval``
``[SERVICE] storage.path``               ``state_dir`` (when no tail ``DB``)
``[SERVICE] scheduler.cap``              ``max_backoff``
``[SERVICE] Grace``                      ``stop_timeout``
``[INPUT] Name tail``: ``Path``          ``paths`` (comma-separated globs; several tail inputs
                                         are merged, their other settings must agree)
``Exclude_Path``                         ``exclude_paths``
``Read_from_Head``                       ``read_from_head``
``Refresh_Interval`` / ``Rotate_Wait``   ``refresh_interval`` / ``rotate_wait``
``Buffer_Max_Size``                      ``max_line_bytes``
``Skip_Long_Lines On``                   ``long_lines = "truncate"`` + a warning (Fluent Bit
                                         drops such lines; we cut them and count them)
``DB``                                   ``state_dir`` = its directory (+ a warning: the Fluent
                                         Bit database itself is not read)
``Path_Key`` / ``Key`` / ``Tag``         ``path_key`` / ``log_key`` / ``tag``
``[FILTER] record_modifier Record K V``  ``fields[K] = V`` (also ``modify`` ``Add``/``Set``)
``[OUTPUT] Name http``: ``Host``,        ``url`` (``https`` unless ``tls Off``; default port
``Port``, ``URI``, ``tls``               of the scheme)
``tls.verify`` / ``tls.ca_file``         ``tls_verify`` / ``ca_bundle``
``Format json``                          (required: ``json_lines``/``json_stream`` are sent
                                         as one JSON array with a warning; others refused)
``json_date_key`` / ``json_date_format`` ``date_key`` (``false``: none) / ``date_format``
``compress gzip``                        ``compress``
``aws_auth``                             must not be ``Off``: requests are always signed
``aws_region`` / ``aws_service``         ``region`` / ``service``
``aws_profile``                          ``aws_profile``
``Retry_Limit``                          ``retry_limit`` (``False``/``no_limits``: unlimited,
                                         ``no_retries``: 0)
``Header Name Value`` (repeatable)       ``headers``
``Match``                                checked against the tail ``Tag``
=======================================  =====================================================
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rolesanywhere.errors import ShipConfigError
from rolesanywhere.session.endpoints import show
from rolesanywhere.ship.config.fluentbit_reader import Entry, FluentBitReader, Section
from rolesanywhere.ship.config.merge import Layer
from rolesanywhere.ship.config.model import ConfigWarning
from rolesanywhere.ship.config.units import (
    parse_bool,
    parse_duration,
    parse_retry_limit,
    parse_size,
)

__all__ = [
    "fluent_bit_layer",
]


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


_REASON_BUFFER = "is not needed: lines are read from disk as they are shipped"
_REASON_PARSER = "is not applied: each line is shipped as is, in the log field"
_REASON_NONE = "has no equivalent in rolesanywhere ship"
_REASON_NET = "is not used: see the ship flags for timeouts and TLS"

_COMMON_IGNORED = {
    "alias": _REASON_NONE,
    "log_level": _REASON_NONE,
    "log_suppress_interval": _REASON_NONE,
    "routable": _REASON_NONE,
    "threaded": _REASON_NONE,
    "workers": _REASON_NONE,
    "mem_buf_limit": _REASON_BUFFER,
    "storage.type": _REASON_BUFFER,
    "storage.pause_on_chunks_overlimit": _REASON_BUFFER,
    "storage.total_limit_size": _REASON_BUFFER,
}

_TAIL_IGNORED = {
    "buffer_chunk_size": _REASON_BUFFER,
    "db.sync": _REASON_NONE,
    "db.locking": _REASON_NONE,
    "db.journal_mode": _REASON_NONE,
    "db.compare_filename": _REASON_NONE,
    "inotify_watcher": _REASON_NONE,
    "ignore_older": _REASON_NONE,
    "ignore_active_older_files": _REASON_NONE,
    "skip_empty_lines": "is not supported: empty lines are shipped",
    "offset_key": _REASON_NONE,
    "parser": _REASON_PARSER,
    "multiline": _REASON_PARSER,
    "multiline.parser": _REASON_PARSER,
    "multiline_flush": _REASON_PARSER,
    "parser_firstline": _REASON_PARSER,
    "docker_mode": _REASON_PARSER,
    "docker_mode_flush": _REASON_PARSER,
    "docker_mode_parser": _REASON_PARSER,
    "unicode.encoding": "is not supported: files must be UTF-8 (invalid bytes are replaced)",
    "generic.encoding": "is not supported: files must be UTF-8 (invalid bytes are replaced)",
    "file_cache_advise": _REASON_NONE,
    "exit_on_eof": _REASON_NONE,
}

_HTTP_IGNORED = {
    "http_user": "is not sent: requests are signed with SigV4 instead",
    "http_passwd": "is not sent: requests are signed with SigV4 instead",
    "proxy": "is not used: set HTTPS_PROXY in the environment instead",
    "header_tag": _REASON_NONE,
    "allow_duplicated_headers": _REASON_NONE,
    "log_response_payload": _REASON_NONE,
    "http_method": "is not used: records are always sent with POST",
    "body_key": _REASON_NONE,
    "headers_key": _REASON_NONE,
    "tls.debug": _REASON_NONE,
    "tls.vhost": _REASON_NONE,
    "tls.ca_path": "is not supported: use tls.ca_file (a PEM bundle)",
    "tls.crt_file": "is not supported: client certificates are not sent to the endpoint",
    "tls.key_file": "is not supported: client certificates are not sent to the endpoint",
    "tls.key_passwd": "is not supported: client certificates are not sent to the endpoint",
    "match_regex": "is not checked: every tailed line is shipped",
    "gelf_timestamp_key": _REASON_NONE,
    "gelf_host_key": _REASON_NONE,
    "gelf_short_message_key": _REASON_NONE,
    "gelf_full_message_key": _REASON_NONE,
    "gelf_level_key": _REASON_NONE,
}

_SERVICE_IGNORED = {
    "daemon": _REASON_NONE,
    "log_level": _REASON_NONE,
    "log_file": _REASON_NONE,
    "parsers_file": _REASON_PARSER,
    "plugins_file": _REASON_NONE,
    "streams_file": _REASON_NONE,
    "http_server": _REASON_NONE,
    "http_listen": _REASON_NONE,
    "http_port": _REASON_NONE,
    "health_check": _REASON_NONE,
    "hc_errors_count": _REASON_NONE,
    "hc_retry_failure_count": _REASON_NONE,
    "hc_period": _REASON_NONE,
    "hot_reload": _REASON_NONE,
    "coro_stack_size": _REASON_NONE,
    "scheduler.base": _REASON_NONE,
    "storage.sync": _REASON_NONE,
    "storage.checksum": _REASON_NONE,
    "storage.metrics": _REASON_NONE,
    "storage.backlog.mem_limit": _REASON_BUFFER,
    "storage.max_chunks_up": _REASON_BUFFER,
    "storage.delete_irrecoverable_chunks": _REASON_NONE,
}

_MULTI_KEYS = frozenset({"header", "record", "add", "set"})
_IGNORED_SECTIONS = frozenset(
    {"PARSER", "MULTILINE_PARSER", "PLUGINS", "UPSTREAM", "NODE", "CUSTOM", "STREAM_TASK"}
)
_FORMAT_ARRAY = frozenset({"json"})
_FORMAT_NDJSON = frozenset({"json_lines", "json_stream"})


class _Collect:
    """Values mapped from one section: internal key → (value, location)."""

    def __init__(self, label: str, warnings: list[ConfigWarning]) -> None:
        self.label = label
        self.values: dict[str, tuple[Any, str]] = {}
        self.warnings = warnings

    def put(self, key: str, value: object, entry: Entry) -> None:
        self.values[key] = (value, entry.location)

    def warn(self, entry: Entry, message: str) -> None:
        self.warnings.append(
            ConfigWarning(
                f"{self.label} key {entry.key!r} {message}",
                entry.location,
                self.label,
                entry.key,
            )
        )

    def what(self, entry: Entry) -> str:
        return f"{self.label} {entry.key}"


_Handler = Callable[[Entry, _Collect], None]


def _walk(
    section: Section,
    collect: _Collect,
    handlers: Mapping[str, _Handler],
    ignored: Mapping[str, str],
) -> None:
    seen: dict[str, str] = {}
    for entry in section.entries:
        key = entry.key.lower()
        if key == "name":
            continue
        if key in seen and key not in _MULTI_KEYS:
            collect.warn(entry, f"is set again (first at {seen[key]}): this later value wins")
        seen.setdefault(key, entry.location)
        if key in handlers:
            handlers[key](entry, collect)
        elif key in ignored:
            collect.warn(entry, f"ignored: it {ignored[key]}")
        elif key in _COMMON_IGNORED:
            collect.warn(entry, f"ignored: it {_COMMON_IGNORED[key]}")
        elif key.startswith("net."):
            collect.warn(entry, f"ignored: it {_REASON_NET}")
        else:
            collect.warn(entry, "is unknown: ignored")


def _bool(entry: Entry, collect: _Collect) -> bool:
    return parse_bool(entry.value, collect.what(entry))


def _wrap(fn: Callable[[Entry, _Collect], None]) -> _Handler:
    """Run a handler; a value error gets the entry's ``file:line``."""

    def run(entry: Entry, collect: _Collect) -> None:
        try:
            fn(entry, collect)
        except ShipConfigError as exc:
            if exc.location is not None:
                raise
            raise ShipConfigError(exc.problem, location=entry.location) from None

    return run


def _simple(key: str, convert: Callable[[Entry, _Collect], object]) -> _Handler:
    return _wrap(lambda entry, collect: collect.put(key, convert(entry, collect), entry))


def _text(entry: Entry, collect: _Collect) -> str:
    return entry.value.strip()


def _skip_long_lines(entry: Entry, collect: _Collect) -> None:
    if _bool(entry, collect):
        collect.put("long_lines", "truncate", entry)
        collect.warn(
            entry,
            "On: Fluent Bit drops such lines; rolesanywhere ship never drops one silently: "
            "lines longer than Buffer_Max_Size are cut to that size and counted",
        )


def _db(entry: Entry, collect: _Collect) -> None:
    directory = os.path.dirname(entry.value.strip()) or "."
    collect.put("state_dir", directory, entry)
    collect.warn(
        entry,
        f"maps to the state directory {directory}: rolesanywhere ship keeps its own positions "
        "there; the Fluent Bit database is not read, so files are read per Read_from_Head",
    )


_TAIL_HANDLERS: dict[str, _Handler] = {
    "path": _simple("paths", lambda e, c: _split_list(e.value)),
    "exclude_path": _simple("exclude_paths", lambda e, c: _split_list(e.value)),
    "read_from_head": _simple("read_from_head", _bool),
    "refresh_interval": _simple(
        "refresh_interval", lambda e, c: parse_duration(e.value, c.what(e))
    ),
    "rotate_wait": _simple("rotate_wait", lambda e, c: parse_duration(e.value, c.what(e))),
    "buffer_max_size": _simple("max_line_bytes", lambda e, c: parse_size(e.value, c.what(e))),
    "skip_long_lines": _wrap(_skip_long_lines),
    "db": _wrap(_db),
    "path_key": _simple("path_key", _text),
    "key": _simple("log_key", _text),
    "tag": _simple("tag", _text),
}


def _port(entry: Entry, collect: _Collect) -> int:
    text = entry.value.strip()
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise ShipConfigError(f"{collect.what(entry)} must be a port number, not {show(text)}")
    return int(text)


def _tls(entry: Entry, collect: _Collect) -> None:
    collect.put("scheme", "https" if _bool(entry, collect) else "http", entry)


def _format(entry: Entry, collect: _Collect) -> None:
    value = entry.value.strip().lower()
    if value in _FORMAT_NDJSON:
        collect.warn(
            entry,
            f"{value}: OpenSearch Ingestion answers 400 to one JSON object per line; "
            "records are sent as one JSON array (Format json)",
        )
    elif value not in _FORMAT_ARRAY:
        raise ShipConfigError(
            f"{collect.what(entry)} {show(entry.value.strip())} is not supported: OpenSearch "
            "Ingestion takes one JSON array of records; write Format json"
        )


def _date_key(entry: Entry, collect: _Collect) -> None:
    value = entry.value.strip()
    collect.put("date_key", None if value.lower() in ("false", "off") else value, entry)


def _date_format(entry: Entry, collect: _Collect) -> None:
    value = entry.value.strip().lower()
    if value not in ("double", "epoch", "iso8601"):
        raise ShipConfigError(
            f"{collect.what(entry)} {show(entry.value.strip())} is not supported: use double, "
            "epoch or iso8601"
        )
    collect.put("date_format", value, entry)


def _compress(entry: Entry, collect: _Collect) -> None:
    value = entry.value.strip().lower()
    if value not in ("gzip", "none", "off", "false"):
        raise ShipConfigError(
            f"{collect.what(entry)} {show(entry.value.strip())} is not supported: "
            "OpenSearch Ingestion decompresses gzip only; write compress gzip or remove it"
        )
    collect.put("compress", value == "gzip", entry)


def _aws_auth(entry: Entry, collect: _Collect) -> None:
    if not _bool(entry, collect):
        raise ShipConfigError(
            f"{collect.what(entry)} is Off, but OpenSearch Ingestion needs SigV4 and "
            "rolesanywhere ship always signs: set aws_auth On (or remove it)"
        )
    collect.put("aws_auth", True, entry)


def _refuse_sts(entry: Entry, collect: _Collect) -> None:
    raise ShipConfigError(
        f"{collect.what(entry)} (assuming another role through STS) is not supported: "
        "give the role to Roles Anywhere (--role-arn) or use an AWS profile (--aws-profile)"
    )


def _header(entry: Entry, collect: _Collect) -> None:
    parts = entry.value.strip().split(None, 1)
    if len(parts) < 2:
        raise ShipConfigError(
            f"{collect.what(entry)} needs a name and a value: 'Header Name Value'"
        )
    previous = collect.values.get("headers", ([], ""))[0]
    collect.put("headers", [*previous, (parts[0], parts[1])], entry)


_HTTP_HANDLERS: dict[str, _Handler] = {
    "host": _simple("host", _text),
    "port": _simple("port", _port),
    "uri": _simple("uri", _text),
    "tls": _wrap(_tls),
    "tls.verify": _simple("tls_verify", _bool),
    "tls.ca_file": _simple("ca_bundle", _text),
    "format": _wrap(_format),
    "json_date_key": _wrap(_date_key),
    "json_date_format": _wrap(_date_format),
    "compress": _wrap(_compress),
    "aws_auth": _wrap(_aws_auth),
    "aws_region": _simple("region", _text),
    "aws_service": _simple("service", _text),
    "aws_profile": _simple("aws_profile", _text),
    "aws_role_arn": _wrap(_refuse_sts),
    "aws_external_id": _wrap(_refuse_sts),
    "aws_sts_endpoint": _wrap(_refuse_sts),
    "retry_limit": _simple("retry_limit", lambda e, c: parse_retry_limit(e.value, c.what(e))),
    "header": _wrap(_header),
    "match": _simple("match", _text),
}

_SERVICE_HANDLERS: dict[str, _Handler] = {
    "flush": _simple("flush_interval", lambda e, c: parse_duration(e.value, c.what(e))),
    "storage.path": _simple("storage_path", _text),
    "scheduler.cap": _simple("max_backoff", lambda e, c: parse_duration(e.value, c.what(e))),
    "grace": _simple("stop_timeout", lambda e, c: parse_duration(e.value, c.what(e))),
}


def _record_field(entry: Entry, collect: _Collect) -> None:
    parts = entry.value.strip().split(None, 1)
    if len(parts) < 2:
        raise ShipConfigError(f"{collect.what(entry)} needs a key and a value: 'Record key value'")
    previous = collect.values.get("fields", ({}, ""))[0]
    collect.put("fields", {**previous, parts[0]: parts[1]}, entry)


_FILTER_HANDLERS: dict[str, dict[str, _Handler]] = {
    "record_modifier": {"record": _wrap(_record_field), "match": lambda e, c: None},
    "modify": {
        "add": _wrap(_record_field),
        "set": _wrap(_record_field),
        "match": lambda e, c: None,
    },
}


def _map_fluent_bit(sections: Sequence[Section], layer: Layer) -> None:
    warnings = layer.warnings
    tails: list[_Collect] = []
    outputs: list[tuple[Section, _Collect]] = []
    service = _Collect("[SERVICE]", warnings)
    filters: list[_Collect] = []
    for section in sections:
        kind = section.kind.upper()
        plugin = section.plugin()
        if kind == "SERVICE":
            _walk(section, service, _SERVICE_HANDLERS, _SERVICE_IGNORED)
        elif kind in ("INPUT", "OUTPUT", "FILTER") and plugin is None:
            raise ShipConfigError(
                f"[{kind}] section has no Name: add 'Name tail', 'Name http'...",
                location=section.location,
            )
        elif kind == "INPUT" and plugin == "tail":
            collect = _Collect("[INPUT] tail", warnings)
            _walk(section, collect, _TAIL_HANDLERS, _TAIL_IGNORED)
            tails.append(collect)
        elif kind == "OUTPUT" and plugin == "http":
            collect = _Collect("[OUTPUT] http", warnings)
            _walk(section, collect, _HTTP_HANDLERS, _HTTP_IGNORED)
            outputs.append((section, collect))
        elif kind == "FILTER" and plugin in _FILTER_HANDLERS:
            collect = _Collect(f"[FILTER] {plugin}", warnings)
            _walk(section, collect, _FILTER_HANDLERS[plugin], {})
            filters.append(collect)
        elif kind in ("INPUT", "OUTPUT", "FILTER"):
            what = {
                "INPUT": "only tail inputs are read",
                "OUTPUT": "rolesanywhere ship sends to one http (OpenSearch Ingestion) output",
                "FILTER": "records are shipped without it",
            }[kind]
            warnings.append(
                ConfigWarning(
                    f"[{kind}] {plugin} is not supported and is ignored: {what}",
                    section.location,
                    f"[{kind}] {plugin}",
                )
            )
        elif kind in _IGNORED_SECTIONS:
            reason = _REASON_PARSER if "PARSER" in kind else _REASON_NONE
            warnings.append(
                ConfigWarning(
                    f"[{kind}] section ignored: it {reason}",
                    section.location,
                    f"[{kind}]",
                )
            )
        else:
            warnings.append(
                ConfigWarning(
                    f"unknown section [{section.kind}] ignored", section.location, section.kind
                )
            )
    if len(outputs) > 1:
        places = ", ".join(section.location for section, _ in outputs)
        raise ShipConfigError(
            f"{len(outputs)} [OUTPUT] http sections ({places}): rolesanywhere ship sends to one "
            "endpoint; keep one",
            location=outputs[1][0].location,
        )
    _apply_tails(tails, layer)
    for key, (value, location) in service.values.items():
        if key == "storage_path":
            if "state_dir" not in layer.values:
                layer.set("state_dir", value, location)
        else:
            layer.set(key, value, location)
    fields: dict[str, str] = {}
    for collect in filters:
        if "fields" in collect.values:
            value, location = collect.values["fields"]
            fields.update(value)
            layer.set("fields", dict(fields), location)
    if outputs:
        section, collect = outputs[0]
        _apply_output(section, collect, layer)


def _apply_tails(tails: Sequence[_Collect], layer: Layer) -> None:
    merged: dict[str, tuple[Any, str]] = {}
    for collect in tails:
        for key, (value, location) in collect.values.items():
            if key in ("paths", "exclude_paths"):
                before = merged.get(key, ((), location))[0]
                combined = tuple(dict.fromkeys((*before, *value)))
                merged[key] = (combined, merged.get(key, (None, location))[1])
            elif key in merged and merged[key][0] != value:
                raise ShipConfigError(
                    f"[INPUT] tail sections disagree on {key} ({show(merged[key][0])} at "
                    f"{merged[key][1]}, {show(value)} here): rolesanywhere ship follows all "
                    "paths with one setting; make them equal",
                    location=location,
                )
            else:
                merged[key] = (value, location)
    for key, (value, location) in merged.items():
        layer.set(key, value, location)


def _apply_output(section: Section, collect: _Collect, layer: Layer) -> None:
    values = dict(collect.values)
    match = values.pop("match", None)
    values.pop("aws_auth", None)
    if "aws_auth" not in collect.values:
        layer.warnings.append(
            ConfigWarning(
                "[OUTPUT] http has no aws_auth On: requests are signed with SigV4 anyway",
                section.location,
                "[OUTPUT] http",
                "aws_auth",
            )
        )
    tag = layer.values.get("tag")
    if match is None:
        layer.warnings.append(
            ConfigWarning(
                "[OUTPUT] http has no Match (Fluent Bit would route nothing to it): "
                "rolesanywhere ship sends every tailed line",
                section.location,
                "[OUTPUT] http",
                "Match",
            )
        )
    elif isinstance(tag, str) and "*" not in tag and not fnmatch.fnmatchcase(tag, match[0]):
        raise ShipConfigError(
            f"[OUTPUT] http Match {show(match[0])} does not match the tail input's Tag "
            f"{show(tag)}: Fluent Bit would ship nothing; fix Match (e.g. Match *)",
            location=match[1],
        )
    for key, (value, location) in values.items():
        layer.set(key, value, location)


def fluent_bit_layer(
    text: str, source_name: str, base_dir: Path, environ: Mapping[str, str]
) -> Layer:
    layer = Layer()
    reader = FluentBitReader(environ, layer.warnings)
    reader.read_text(text, source_name, base_dir)
    _map_fluent_bit(reader.sections, layer)
    layer.sources = [source_name, *reader.files]
    return layer
