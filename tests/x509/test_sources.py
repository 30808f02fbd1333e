"""Reading certificate and key bytes from files, environment variables, stdin and bytes."""

from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import SourceError
from rolesanywhere.x509 import sources
from rolesanywhere.x509.sources import STDIN, Source, describe, file_path, read_source

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class FakeStdin:
    """Stands in for ``sys.stdin``; counts reads of its binary buffer."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)
        self.reads = 0
        original = self.buffer.read

        def read(size: int | None = -1) -> bytes:
            self.reads += 1
            return original(size)

        self.buffer.read = read  # type: ignore[method-assign]


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> object:
    """Reset the per-process stdin cache; return a setter for the fake stream."""
    monkeypatch.setattr(sources, "_stdin_data", None)

    def set_stdin(data: bytes) -> FakeStdin:
        fake = FakeStdin(data)
        monkeypatch.setattr(sys, "stdin", fake)
        return fake

    return set_stdin


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    assert text
    return text


# --- bytes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_are_used_as_is(kind: type) -> None:
    src = read_source(kind(b"\x30\x03abc"), what="certificate")
    assert src == Source(b"\x30\x03abc", "<bytes>")
    assert type(src.data) is bytes
    assert src.path is None
    assert src.label == "<bytes>"


def test_empty_bytes() -> None:
    with pytest.raises(SourceError) as info:
        read_source(b"", what="private key")
    assert one_line(info.value) == "private key bytes are empty: pass the private key content"
    assert info.value.source == "<bytes>"


def test_repr_hides_data() -> None:
    assert "secret" not in repr(Source(b"secret", "<bytes>"))


# --- files ------------------------------------------------------------------------------------


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(PEM)
    for spec in (str(path), path):
        src = read_source(spec, what="certificate")
        assert src.data == PEM
        assert src.name == str(path)
        assert src.path == path


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k.pem").write_bytes(PEM)
    src = read_source("~/k.pem", what="private key")
    assert src.data == PEM
    assert src.path == tmp_path / "k.pem"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pem"
    with pytest.raises(SourceError) as info:
        read_source(str(path), what="certificate")
    assert one_line(info.value) == f"certificate file {path} does not exist: check the path"
    assert info.value.source == str(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"private key path .* is a directory: pass the"):
        read_source(tmp_path, what="private key")


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.pem"
    path.write_bytes(PEM)

    def deny(self: Path, *args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied")

    # chmod 000 does not stop root, so refuse the read directly.
    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(SourceError) as info:
        read_source(path, what="certificate")
    assert one_line(info.value) == (
        f"certificate file {path} is not readable: check its permissions"
    )


def test_other_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Path, *args: object, **kwargs: object) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Path, "open", broken)
    with pytest.raises(SourceError, match=r"cannot read certificate file .*Input/output error"):
        read_source(tmp_path / "x.pem", what="certificate")


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.pem"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=r"certificate file .*empty\.pem is empty"):
        read_source(path, what="certificate")


@pytest.mark.parametrize("spec", ["", "   "])
def test_blank_spec(spec: str) -> None:
    with pytest.raises(SourceError, match="no certificate given"):
        read_source(spec, what="certificate")


# --- environment variables --------------------------------------------------------------------


def test_env_pem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RA_TEST_CERT", PEM.decode())
    src = read_source("env:RA_TEST_CERT", what="certificate")
    assert src == Source(PEM, "env:RA_TEST_CERT")
    assert file_path("env:RA_TEST_CERT") is None


def test_env_pem_with_escaped_newlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RA_TEST_CERT", PEM.decode().replace("\n", "\\n"))
    assert read_source("env:RA_TEST_CERT", what="certificate").data == PEM


def test_env_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    der = bytes(range(256)) * 3
    wrapped = base64.encodebytes(der).decode()  # with newlines every 76 characters
    monkeypatch.setenv("RA_TEST_P12", wrapped)
    assert read_source("env:RA_TEST_P12", what="certificate").data == der


def test_env_not_base64_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RA_TEST_CERT", "hello, world!")
    assert read_source("env:RA_TEST_CERT", what="certificate").data == b"hello, world!"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=300), urlsafe=st.booleans(), pad=st.booleans())
def test_env_base64_round_trip(data: bytes, urlsafe: bool, pad: bool) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    if not pad:
        text = text.rstrip("=")
    os.environ["RA_TEST_B64"] = text
    try:
        assert read_source("env:RA_TEST_B64", what="certificate").data == data
    finally:
        del os.environ["RA_TEST_B64"]


def test_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RA_TEST_MISSING", raising=False)
    with pytest.raises(SourceError) as info:
        read_source("env:RA_TEST_MISSING", what="private key")
    text = one_line(info.value)
    assert text.startswith("environment variable RA_TEST_MISSING is not set: set it to the private")
    assert info.value.source == "env:RA_TEST_MISSING"


@pytest.mark.parametrize("value", ["", "  \n"])
def test_env_empty(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RA_TEST_EMPTY", value)
    with pytest.raises(SourceError, match="environment variable RA_TEST_EMPTY is empty"):
        read_source("env:RA_TEST_EMPTY", what="certificate")


def test_env_without_name() -> None:
    with pytest.raises(SourceError, match="names no variable: use env:NAME"):
        read_source("env:", what="certificate")


# --- stdin ------------------------------------------------------------------------------------


def test_stdin_is_read_once(stdin: object) -> None:
    fake = stdin(PEM)  # type: ignore[operator]
    first = read_source("-", what="certificate")
    second = read_source(STDIN, what="private key")
    assert first == second == Source(PEM, "-")
    assert fake.reads == 1
    assert first.label == "stdin"
    assert file_path("-") is None


def test_stdin_empty(stdin: object) -> None:
    stdin(b"")  # type: ignore[operator]
    with pytest.raises(SourceError) as info:
        read_source("-", what="certificate")
    assert one_line(info.value) == "no certificate on stdin: pipe the certificate in"
    assert info.value.source == "-"


def test_stdin_unreadable(stdin: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(SourceError, match="cannot read the certificate from stdin"):
        read_source("-", what="certificate")


def test_text_only_stdin(stdin: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PEM.decode()))
    assert read_source("-", what="certificate").data == PEM


# --- helpers ----------------------------------------------------------------------------------


def test_describe_and_file_path(tmp_path: Path) -> None:
    assert describe("-") == "stdin"
    assert describe("/a/b") == "/a/b"
    assert file_path(b"x") is None
    assert file_path(tmp_path) == tmp_path
    assert file_path("rel/x.pem") == Path("rel/x.pem")
