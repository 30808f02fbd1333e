"""The OSIS emulator's document store: SQLite, and the part of the OpenSearch API that reads it.

:class:`DocumentStore` keeps accepted documents (one row each: index, ``@timestamp``, ``log``,
``_source``) and answers ``GET /_cat/indices``, ``GET|POST /{index}/_search`` and ``_count``
(``match_all`` only; ``size``, ``from``, ``sort`` on ``@timestamp``, ``_doc`` or ``_id``) like
OpenSearch, plus the Python helpers the emulator exposes (``count``, ``logs``, ``search``…).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from rolesanywhere.testing._server import Answer, json_answer, text_answer

__all__ = ["MAX_QUERY_BODY_BYTES", "MAX_RESULT_WINDOW", "DocumentStore", "Row"]

MAX_QUERY_BODY_BYTES = 1024 * 1024
MAX_RESULT_WINDOW = 10_000
_INSERT = "INSERT INTO docs (idx, ts, log, source) VALUES (?, ?, ?, ?)"
_JSON_HEADERS = (("Content-Type", "application/json; charset=UTF-8"),)

#: One document: (index, ``@timestamp``, ``log`` or None, ``_source`` JSON text).
Row = tuple[str, str, str | None, str]


def _json_answer(status: int, payload: object) -> Answer:
    return json_answer(status, payload, _JSON_HEADERS)


class DocumentStore:
    """Documents by index in SQLite (``":memory:"`` or a file); thread-safe."""

    def __init__(self, database: str | Path) -> None:
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(str(database), check_same_thread=False, isolation_level=None)
        self._db_closed = False
        self._index_docs: dict[str, list[int]] = {}  # index -> [documents, bytes of JSON]
        self._init_db(database)

    def _init_db(self, database: str | Path) -> None:
        db = self._db
        if str(database) != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE IF NOT EXISTS docs ("
            "id INTEGER PRIMARY KEY, idx TEXT NOT NULL, ts TEXT NOT NULL, log TEXT, "
            "source TEXT NOT NULL)"
        )
        rows = db.execute("SELECT idx, COUNT(*), SUM(LENGTH(source)) FROM docs GROUP BY idx")
        self._index_docs = {name: [int(n), int(size)] for name, n, size in rows.fetchall()}

    def clear(self) -> None:
        """Delete every document."""
        with self._db_lock:
            self._db.execute("DELETE FROM docs")
            self._index_docs.clear()

    @property
    def closed(self) -> bool:
        return self._db_closed

    def close(self) -> None:
        with self._db_lock:
            if not self._db_closed:
                self._db.close()
                self._db_closed = True

    def _where(self, index: str | None) -> tuple[str, list[str]]:
        if index is None:
            return "", []
        names = self._resolve(index)
        if not names:
            return " WHERE 0", []
        return f" WHERE idx IN ({','.join('?' * len(names))})", names

    def count(self, index: str | None = None) -> int:
        """Stored documents, in every index or those ``index`` names (list, wildcards)."""
        with self._db_lock:
            if index is None:
                return sum(n for n, _ in self._index_docs.values())
            return sum(self._index_docs[name][0] for name in self._resolve(index))

    def logs(self, index: str | None = None) -> list[str | None]:
        """The stored ``log`` values in insertion order (``None`` for events without one)."""
        where, params = self._where(index)
        with self._db_lock:
            rows = self._db.execute(f"SELECT log FROM docs{where} ORDER BY id", params).fetchall()  # noqa: S608
        return [row[0] for row in rows]

    def duplicates(self, index: str | None = None) -> dict[str, int]:
        """``log`` values stored more than once, with their counts (empty: no duplicate)."""
        where, params = self._where(index)
        sql = (
            f"SELECT log, COUNT(*) FROM docs{where}{' AND' if where else ' WHERE'} "  # noqa: S608
            "log IS NOT NULL GROUP BY log HAVING COUNT(*) > 1"
        )
        with self._db_lock:
            rows = self._db.execute(sql, params).fetchall()
        return {log: int(n) for log, n in rows}

    def documents(self, index: str | None = None, *, limit: int | None = None) -> list[Any]:
        """The stored documents (``_source``), in insertion order."""
        where, params = self._where(index)
        sql = f"SELECT source FROM docs{where} ORDER BY id"  # noqa: S608
        args: list[Any] = list(params)
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._db_lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(row[0]) for row in rows]

    def indices(self) -> dict[str, int]:
        """Index name → stored documents, sorted by name."""
        with self._db_lock:
            return {name: stats[0] for name, stats in sorted(self._index_docs.items())}

    def _resolve(self, expression: str) -> list[str]:
        """Index names matching ``a,b,logs-*`` (``_all``/``*``: all); call with the db lock."""
        known = self._index_docs
        names: list[str] = []
        for part in expression.split(","):
            part = part.strip()
            if not part:
                continue
            if part in ("_all", "*"):
                matched = list(known)
            elif "*" in part or "?" in part:
                matched = [name for name in known if fnmatch.fnmatchcase(name, part)]
            else:
                matched = [part] if part in known else []
            names.extend(name for name in matched if name not in names)
        return sorted(names)

    def search(self, index: str = "_all", body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What ``POST /{index}/_search`` answers (raises ``ValueError`` for a 400 or 404)."""
        status, payload = self._search(index, dict(body or {}), {})
        if status != 200:
            raise ValueError(json.dumps(payload))
        return payload

    def insert(self, rows: list[Row]) -> None:
        """Write one request's documents in one transaction."""
        with self._db_lock:
            if self._db_closed:
                return
            try:
                self._write(rows)
            except UnicodeEncodeError:  # a lone surrogate from a "\\udXXX" escape in `log`
                self._write([(i, t, _sanitize(log), s) for i, t, log, s in rows])
            stats_by_index = self._index_docs
            for name, _, _, source in rows:
                stats = stats_by_index.get(name)
                if stats is None:
                    stats = stats_by_index[name] = [0, 0]
                stats[0] += 1
                stats[1] += len(source)

    def _write(self, rows: list[Row]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(_INSERT, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- query API --------------------------------------------------------------------------------

    def query(self, method: str, target: str, body: bytes | None) -> Answer:
        """Answer a query request (``_cat/indices``, ``_search``, ``_count``); else 404."""
        raw_path, _, raw_query = target.partition("?")
        params = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in raw_path.split("/") if s]
        if method == "GET" and segments[:2] == ["_cat", "indices"] and len(segments) <= 3:
            pattern = segments[2] if len(segments) == 3 else "_all"
            return self._cat_indices(pattern, params)
        operation = segments[-1] if segments else ""
        if method in ("GET", "POST") and operation in ("_search", "_count") and len(segments) <= 2:
            index = segments[0] if len(segments) == 2 else "_all"
            if body is None:
                return _json_answer(413, _os_error(413, "too_long_http_request", "body too large"))
            try:
                request = json.loads(body.decode("utf-8")) if body.strip() else {}
            except (UnicodeDecodeError, ValueError, RecursionError):
                return _json_answer(
                    400, _os_error(400, "parse_exception", "request body is not valid JSON")
                )
            if not isinstance(request, dict):
                return _json_answer(
                    400, _os_error(400, "parse_exception", "request body must be an object")
                )
            if operation == "_count":
                status, payload = self._count_query(index, request)
            else:
                status, payload = self._search(index, request, params)
            return _json_answer(status, payload)
        return text_answer(404, "404 Not Found")

    def _cat_indices(self, pattern: str, params: Mapping[str, str]) -> Answer:
        with self._db_lock:
            names = self._resolve(pattern)
            stats = {name: list(self._index_docs[name]) for name in names}
        rows = [
            {
                "health": "green",
                "status": "open",
                "index": name,
                "uuid": _index_uuid(name),
                "pri": "1",
                "rep": "0",
                "docs.count": str(stats[name][0]),
                "docs.deleted": "0",
                "store.size": _format_size(stats[name][1]),
                "pri.store.size": _format_size(stats[name][1]),
            }
            for name in names
        ]
        if params.get("format") == "json":
            return _json_answer(200, rows)
        columns = list(rows[0]) if rows else [
            "health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
            "store.size", "pri.store.size",
        ]  # fmt: skip
        right = {"pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size"}
        table: list[list[str]] = [[row[c] for c in columns] for row in rows]
        if "v" in params:
            table.insert(0, columns)
        widths = [max((len(line[i]) for line in table), default=0) for i in range(len(columns))]
        lines = []
        for number, line in enumerate(table):
            header = number == 0 and "v" in params
            cells = [
                cell.rjust(width) if column in right and not header else cell.ljust(width)
                for cell, width, column in zip(line, widths, columns, strict=True)
            ]
            lines.append(" ".join(cells).rstrip() + "\n")
        return text_answer(200, "".join(lines))

    def _count_query(self, index: str, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        error = _check_query(request.get("query"))
        if error is not None:
            return 400, error
        with self._db_lock:
            missing = _missing_index(index, self._index_docs)
            if missing is not None:
                return 404, missing
            count = sum(self._index_docs[name][0] for name in self._resolve(index))
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        return 200, {"count": count, "_shards": shards}

    def _search(
        self, index: str, request: dict[str, Any], params: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        error = _check_query(request.get("query"))
        if error is not None:
            return 400, error
        try:
            size = int(params.get("size", request.get("size", 10)))
            offset = int(params.get("from", request.get("from", 0)))
            sort_value = params.get("sort") or request.get("sort")
            if isinstance(sort_value, str) and "," in sort_value:
                sort_value = sort_value.split(",")
            spec = _sort_spec(sort_value) if sort_value else []
        except (TypeError, ValueError) as exc:
            return 400, _os_error(400, "illegal_argument_exception", str(exc)[:200])
        if size < 0 or offset < 0:
            return 400, _os_error(400, "illegal_argument_exception", "[size] and [from] >= 0")
        if size + offset > MAX_RESULT_WINDOW:
            return 400, _os_error(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{size + offset}].",
            )
        order = []
        for name, direction in spec:
            column = "ts" if name == "@timestamp" else "id"
            order.append(f"{column} {direction.upper()}")
        # ties (one batch shares a read time) in the direction of the first key: newest last in
        order.append(f"id {spec[0][1].upper()}" if spec else "id ASC")
        with self._db_lock:
            missing = _missing_index(index, self._index_docs)
            if missing is not None:
                return 404, missing
            names = self._resolve(index)
            total = sum(self._index_docs[name][0] for name in names)
            rows: list[tuple[int, str, str, str]] = []
            if names and size:
                where = (
                    ""
                    if len(names) == len(self._index_docs)
                    else (f" WHERE idx IN ({','.join('?' * len(names))})")
                )
                sql = (
                    f"SELECT id, idx, ts, source FROM docs{where} "  # noqa: S608
                    f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
                )
                args: list[Any] = [*(names if where else []), size, offset]
                rows = self._db.execute(sql, args).fetchall()
        hits = []
        for row_id, name, ts, source in rows:
            hit: dict[str, Any] = {
                "_index": name,
                "_id": str(row_id),
                "_score": None if spec else 1.0,
                "_source": json.loads(source),
            }
            if spec:
                hit["sort"] = [
                    _epoch_millis(ts) if field_name == "@timestamp" else row_id
                    for field_name, _ in spec
                ]
            hits.append(hit)
        took = int((time.perf_counter() - started) * 1000)
        return 200, {
            "took": took,
            "timed_out": False,
            "_shards": {
                "total": max(1, len(names)),
                "successful": max(1, len(names)),
                "skipped": 0,
                "failed": 0,
            },
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": None if spec or not hits else 1.0,
                "hits": hits,
            },
        }


def _format_size(size: int) -> str:
    """OpenSearch ``_cat`` sizes: ``208b``, ``12.3kb``, ``1.2mb``."""
    value = float(size)
    for unit in ("b", "kb", "mb", "gb"):
        if value < 1024 or unit == "gb":
            return f"{size}b" if unit == "b" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _index_uuid(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def _sanitize(text: str | None) -> str | None:
    if text is None:
        return None
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _sort_spec(value: Any) -> list[tuple[str, str]]:
    """``[(field, "asc"|"desc")]`` from every ``sort`` form OpenSearch accepts for one field."""
    items = value if isinstance(value, list) else [value]
    spec: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            name, _, order = item.partition(":")
            order = order or ("desc" if name == "_score" else "asc")
        elif isinstance(item, dict) and len(item) == 1:
            ((name, options),) = item.items()
            if isinstance(options, str):
                order = options
            elif isinstance(options, dict):
                order = str(options.get("order", "asc"))
            else:
                raise ValueError(f"malformed sort option for [{name}]")
        else:
            raise ValueError("malformed [sort]")
        order = order.lower()
        if order not in ("asc", "desc"):
            raise ValueError(f"unknown sort order [{order}]")
        if name not in ("@timestamp", "_doc", "_id"):
            raise ValueError(f"sorting on [{name}] is not supported by this emulator")
        spec.append((name, order))
    return spec


def _epoch_millis(ts: str) -> int:
    return round(datetime.fromisoformat(ts).timestamp() * 1000)


def _os_error(status: int, error_type: str, reason: str, **extra: str) -> dict[str, Any]:
    cause = {"type": error_type, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _check_query(query: Any) -> dict[str, Any] | None:
    """``None`` when the query is absent or ``match_all``; else an OpenSearch 400 body."""
    if query is None or query == {"match_all": {}}:
        return None
    if isinstance(query, dict) and len(query) == 1 and isinstance(query.get("match_all"), dict):
        return None
    return _os_error(
        400, "parsing_exception", 'this emulator supports only {"match_all": {}} queries'
    )


def _missing_index(expression: str, known: Mapping[str, Any]) -> dict[str, Any] | None:
    """404 body for a concrete (non-wildcard) index name that does not exist."""
    for part in expression.split(","):
        part = part.strip()
        concrete = part and part not in ("_all", "*") and "*" not in part and "?" not in part
        if concrete and part not in known:
            return _os_error(
                404,
                "index_not_found_exception",
                f"no such index [{part}]",
                index=part,
                **{"resource.type": "index_or_alias", "resource.id": part},
            )
    return None
