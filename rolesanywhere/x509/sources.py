"""Where certificate and key bytes come from: a file, an environment variable, stdin or bytes.

A *spec* is ``bytes`` (used as is), ``"-"`` (standard input, read once per process),
``"env:NAME"`` (an environment variable; base64 is decoded when the value is not PEM) or a path
(``~`` expanded). No cryptography here: this module must stay cheap to import.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeGuard

from rolesanywhere.errors import RolesAnywhereError, SourceError
from rolesanywhere.values import Value

__all__ = [
    "MAX_SOURCE_BYTES",
    "SPEC_TYPES",
    "STDIN",
    "Source",
    "SourceSpec",
    "describe",
    "file_path",
    "guard",
    "is_pkcs11_uri",
    "read_source",
    "redact_uri",
]

SourceSpec = str | bytes | bytearray | memoryview | os.PathLike[str]
#: The types of a :data:`SourceSpec`, for ``isinstance``.
SPEC_TYPES = (str, bytes, bytearray, memoryview, os.PathLike)

#: The spec (and source name) for standard input.
STDIN = "-"
_ENV_PREFIX = "env:"
#: The most a certificate, key or chain source may hold (a whole CA bundle is well under 1 MiB):
#: ``/dev/zero`` or a runaway pipe is refused instead of read until memory runs out.
MAX_SOURCE_BYTES = 4 << 20
_PEM_MARK = b"-----BEGIN "
_B64 = re.compile(rb"[A-Za-z0-9+/_-]+={0,2}")
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
#: Longer than any path a system takes (Linux PATH_MAX is 4096).
_MAX_PATH = 4096
#: How messages name a string that is not a path (it may be a key: never echoed).
NOT_A_PATH = "<text>"

_stdin_lock = threading.Lock()
_stdin_data: bytes | None = None


class Source(Value):
    """Bytes plus a name for messages (a path, ``env:NAME``, ``-`` or ``<bytes>``)."""

    __slots__ = ("data", "name", "path")
    _hidden = frozenset({"data"})

    data: bytes
    name: str
    #: The file read, when the source is a file (lets callers watch it for changes).
    path: Path | None

    def __init__(self, data: bytes, name: str, path: Path | None = None) -> None:
        super().__init__(data, name, path)

    @property
    def label(self) -> str:
        """The name as messages print it."""
        return describe(self.name)


@contextmanager
def guard(message: str, source: str) -> Iterator[None]:
    """Turn anything that is not already one of ours into a :class:`SourceError`."""
    try:
        yield
    except RolesAnywhereError:
        raise
    except Exception as exc:
        raise SourceError(message, source=source) from exc
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if type(exc).__name__ == "PanicException":
            raise SourceError(message, source=source) from exc
        raise


#: The scheme of a PKCS#11 URI (RFC 7512), which names an object on a token, not a file.
PKCS11_SCHEME = "pkcs11:"
_QUERY_ITEM = re.compile(r"([?&])([^=&]*)(=?)([^&]*)")
#: Query attributes whose values messages may show (any other, ``pin-value`` first, is hidden).
_SHOWN_QUERY = frozenset({"pin-source", "module-path", "module-name"})


def is_pkcs11_uri(spec: object) -> TypeGuard[str]:
    """Whether ``spec`` is a ``pkcs11:`` URI (the scheme in any case)."""
    return isinstance(spec, str) and spec[: len(PKCS11_SCHEME)].lower() == PKCS11_SCHEME


def redact_uri(uri: str) -> str:
    """A ``pkcs11:`` URI as messages may show it: the value of ``pin-value`` (and of any query
    attribute but ``pin-source``, ``module-path`` and ``module-name``) replaced by ``***``."""
    path, mark, query = uri.partition("?")

    def hide(match: re.Match[str]) -> str:
        sep, name, eq, value = match.groups()
        shown = value if name.lower() in _SHOWN_QUERY else "***"
        return f"{sep}{name}{eq}{shown}" if eq else f"{sep}***"

    return path + _QUERY_ITEM.sub(hide, mark + query) if mark else path


def describe(name: str) -> str:
    """How a source name reads in a message (``-`` becomes ``stdin``; text that cannot be a
    path, such as PEM, becomes ``<text>``: it is never echoed; a ``pkcs11:`` URI loses its
    ``pin-value``)."""
    if name == STDIN:
        return "stdin"
    if is_pkcs11_uri(name):
        return redact_uri(name)
    return NOT_A_PATH if not_a_path(name) else name


def not_a_path(text: str) -> str | None:
    """Why ``text``, given where a path was expected, cannot be one, or ``None``.

    Such text (PEM pasted in place of a path, say) may be a secret: messages never echo it.
    """
    if "-----BEGIN" in text:
        return "looks like PEM text, not a path"
    if not text.isprintable():
        return "holds line breaks or control characters, so it is not a path"
    if len(text) > _MAX_PATH:
        return f"is {len(text)} characters long, too long for a path"
    return None


def _check_path_text(spec: SourceSpec, what: str) -> None:
    if isinstance(spec, bytes | bytearray | memoryview):
        return
    text = os.fspath(spec)
    problem = not_a_path(text) if isinstance(text, str) else None
    if problem is not None:
        raise SourceError(
            f"the {what} argument {problem}: pass the path to the {what} file, or env:NAME, "
            "or - for stdin (from Python, PEM content goes in as bytes)",
            source=NOT_A_PATH,
        )


def file_path(spec: SourceSpec) -> Path | None:
    """The file a spec names (``~`` expanded), or ``None`` for bytes, stdin and ``env:``, and
    for text that cannot be a path (see :func:`not_a_path`)."""
    if isinstance(spec, bytes | bytearray | memoryview):
        return None
    if isinstance(spec, str) and (
        spec == STDIN or spec.startswith(_ENV_PREFIX) or not spec or is_pkcs11_uri(spec)
    ):
        return None
    text = os.fspath(spec)
    if isinstance(text, str) and not_a_path(text):
        return None
    return Path(text).expanduser()


def read_source(spec: SourceSpec, *, what: str) -> Source:
    """Read the bytes a spec names; ``what`` ("certificate", "private key"…) is for messages.

    Raises :class:`SourceError` when the file, variable or stream is missing, unreadable or empty.
    """
    if isinstance(spec, bytes | bytearray | memoryview):
        data = bytes(spec)
        if not data:
            raise SourceError(f"{what} bytes are empty: pass the {what} content", source="<bytes>")
        return Source(data, "<bytes>")
    if isinstance(spec, str) and not spec.strip():
        raise SourceError(f"no {what} given: pass a path, env:NAME or - for stdin")
    _check_path_text(spec, what)
    if isinstance(spec, str):
        if spec == STDIN:
            return Source(_read_stdin(what), STDIN)
        if spec.startswith(_ENV_PREFIX):
            return _read_env(spec[len(_ENV_PREFIX) :], what)
    path = file_path(spec)
    assert path is not None
    return Source(_read_file(path, what), str(path), path)


def _read_file(path: Path, what: str) -> bytes:
    name = str(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise SourceError(
            f"{what} file {name} does not exist: check the path", source=name
        ) from None
    except IsADirectoryError:
        raise SourceError(
            f"{what} path {name} is a directory: pass the {what} file", source=name
        ) from None
    except PermissionError:
        raise SourceError(
            f"{what} file {name} is not readable: check its permissions", source=name
        ) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceError(
            f"cannot read {what} file {name} ({reason}): check the path", source=name
        ) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise _too_big(f"{what} file {name}", what, name)
    if not data.strip():
        raise SourceError(f"{what} file {name} is empty: pass the {what} file", source=name)
    return data


def _too_big(where: str, what: str, source: str) -> SourceError:
    return SourceError(
        f"{where} holds more than {MAX_SOURCE_BYTES >> 20} MiB, the most a {what} source may: "
        f"pass the {what} file itself",
        source=source,
    )


def _read_env(var: str, what: str) -> Source:
    name = _ENV_PREFIX + var
    if not var:
        raise SourceError(f"{what} source {name!r} names no variable: use env:NAME", source=name)
    value = os.environ.get(var)
    if value is None:
        raise SourceError(
            f"environment variable {var} is not set: set it to the {what} "
            "(PEM, or base64 of DER or PKCS#12)",
            source=name,
        )
    if not value.strip():
        raise SourceError(f"environment variable {var} is empty: set it to the {what}", source=name)
    if len(value) > MAX_SOURCE_BYTES:
        raise _too_big(f"environment variable {var}", what, name)
    return Source(_decode_env_value(value), name)


def _decode_env_value(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    if _PEM_MARK in raw:
        # CI systems often store PEM with literal "\n" escapes instead of newlines.
        if b"\n" not in raw.strip() and b"\\n" in raw:
            raw = raw.replace(b"\\n", b"\n")
        return raw
    compact = b"".join(raw.split())
    if not _B64.fullmatch(compact):
        return raw
    # Standard or URL-safe alphabet, padding optional.
    body = compact.rstrip(b"=").translate(_URLSAFE_TO_STD)
    body += b"=" * (-len(body) % 4)
    try:
        decoded = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return raw
    return decoded or raw


def _read_stdin(what: str) -> bytes:
    global _stdin_data
    with _stdin_lock:
        if _stdin_data is None:
            try:
                stream = sys.stdin
                if stream is None:
                    raise OSError("no stdin")
                buffer = getattr(stream, "buffer", None)
                cap = MAX_SOURCE_BYTES + 1
                data = buffer.read(cap) if buffer is not None else stream.read(cap).encode()
            except (OSError, ValueError, AttributeError, UnicodeError):
                raise SourceError(
                    f"cannot read the {what} from stdin: pipe it in or pass a file",
                    source=STDIN,
                ) from None
            _stdin_data = bytes(data)
        data = _stdin_data
    if len(data) > MAX_SOURCE_BYTES:
        raise _too_big("stdin", what, STDIN)
    if not data.strip():
        raise SourceError(f"no {what} on stdin: pipe the {what} in", source=STDIN)
    return data
