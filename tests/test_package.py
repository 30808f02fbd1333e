"""The public surface: every exported name resolves; importing stays lazy and cheap."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import rolesanywhere


def test_every_exported_name_resolves() -> None:
    assert rolesanywhere.__all__ == sorted(rolesanywhere.__all__)
    for name in rolesanywhere.__all__:
        assert getattr(rolesanywhere, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="DoesNotExist"):
        rolesanywhere.DoesNotExist  # type: ignore[attr-defined]  # noqa: B018


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_import_is_lazy() -> None:
    loaded = _modules_after("import rolesanywhere")
    assert not {"httpx", "cryptography", "asyncio", "ssl", "pkcs11"} & loaded


def test_version_and_help_import_only_what_they_need() -> None:
    for argv in (["version"], ["--help"]):
        loaded = _modules_after(
            "import contextlib, io\nfrom rolesanywhere.cli.main import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()): main({argv!r})"
        )
        assert not {"httpx", "cryptography", "asyncio", "ssl", "sqlite3"} & loaded, argv


def test_credential_process_does_not_import_httpx_or_asyncio() -> None:
    loaded = _modules_after(
        "import contextlib, io\nfrom rolesanywhere.cli.main import main\n"
        "with contextlib.redirect_stderr(io.StringIO()): main(['credential-process',"
        " '--trust-anchor-arn', 'x', '--profile-arn', 'y', '--role-arn', 'z'])\n"
        "import rolesanywhere.session.client, rolesanywhere.x509.identity,"
        " rolesanywhere.session.transport"
    )
    assert not {"httpx", "asyncio", "sqlite3"} & loaded


def _credential_process_modules(argv: list[str]) -> set[str]:
    """The modules loaded by a successful ``main(argv)`` in a new interpreter."""
    return _modules_after(
        "import contextlib, io, sys\nfrom rolesanywhere.cli.main import main\n"
        "out = io.StringIO()\n"
        f"with contextlib.redirect_stdout(out): status = main({argv!r})\n"
        "assert status == 0 and 'AccessKeyId' in out.getvalue(), out.getvalue()"
    )


@pytest.mark.parametrize(
    ("key_type", "key_format"),
    [("ec-p256", "PKCS8_DER"), ("ec-p384", "SEC1_PEM"), ("rsa-2048", "PKCS1_PEM"),
     ("rsa-2048", "PKCS8_PEM")],
)  # fmt: skip
def test_credential_process_from_files_skips_the_heavy_imports(
    tmp_path: pathlib.Path, key_type: str, key_format: str
) -> None:
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.pki import PKI, KeyFormat

    pki = PKI(name="lazy x509")
    leaf = pki.leaf(key_type)
    cert, key, chain = tmp_path / "cert.pem", tmp_path / "key", tmp_path / "chain.pem"
    cert.write_bytes(leaf.cert_pem())
    key.write_bytes(leaf.key_bytes(KeyFormat[key_format]))
    chain.write_bytes(pki.intermediate.cert_pem())
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        argv = [
            "credential-process",
            "--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain),
            "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
            "--role-arn", emu.role_arn, "--endpoint", emu.url,
        ]  # fmt: skip
        loaded = _credential_process_modules(argv)
    assert {"rolesanywhere.x509.identity", "rolesanywhere.session.transport", "ssl"} <= loaded
    # Each of these costs milliseconds of every cold start (see benchmarks/bench_cli.py).
    heavy = (
        "cryptography.x509", "cryptography.hazmat.primitives.serialization",
        "cryptography.hazmat.backends", "http.client", "email", "dataclasses", "inspect", "httpx",
        "encodings.idna", "pkcs11", "rolesanywhere.x509.pkcs11", "asn1crypto",
        "rolesanywhere.x509.mldsa",  # and rolesanywhere.x509.mldsa_expanded
        "rolesanywhere.ratelimit",  # only with a rate_limiter
    )  # fmt: skip
    assert not {m for m in loaded if m.startswith(heavy)}


def test_credential_process_cache_hit_imports_nothing_heavy(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.pki import PKI

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    pki = PKI(name="lazy cache")
    cert, key = pki.leaf("ec-p256").write(tmp_path, "client")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.intermediate.cert_pem())
    with RolesAnywhereEmulator.for_pki(pki) as emu:
        argv = [
            "credential-process", "--cache", "--certificate", str(cert), "--private-key", str(key),
            "--intermediates", str(chain),
            "--trust-anchor-arn", emu.trust_anchor_arn, "--profile-arn", emu.profile_arn,
            "--role-arn", emu.role_arn, "--endpoint", emu.url,
        ]  # fmt: skip
        _credential_process_modules(argv)  # a miss: fills the cache
        # What the hit adds to an empty interpreter (an editable install's finder loads pathlib).
        loaded = _credential_process_modules(argv) - _modules_after("pass")
        assert emu.calls == 1
    heavy = (
        "cryptography", "ssl", "_ssl", "_hashlib", "hashlib", "httpx", "http", "email", "socket",
        "dataclasses", "inspect", "asyncio", "rolesanywhere.x509", "rolesanywhere.session",
        "rolesanywhere.credentials", "rolesanywhere.profiles.credfile", "pathlib", "json",
        "argparse", "typing", "gettext", "rolesanywhere.profiles.argparser",
        "rolesanywhere.cli.gobool", "rolesanywhere.cli.helpformat",
    )  # fmt: skip
    assert not {m for m in loaded if m.startswith(heavy)}
