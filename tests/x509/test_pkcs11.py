"""PKCS#11 tokens (pkcs11: URIs) against SoftHSM2 and the Roles Anywhere rolesanywhere_emulator.

The token tests need the Debian packages ``softhsm2`` (and the ``python-pkcs11`` extra); they
skip, naming what is missing, without them. The fixture keeps its tokens in a temporary
directory (``SOFTHSM2_CONF`` points at its own configuration), so nothing global is touched.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rolesanywhere.cli.main import main
from rolesanywhere.errors import TokenError
from rolesanywhere.profiles.settings import IdentitySettings
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI, IssuedCert
from rolesanywhere.x509.pkcs11 import Pkcs11Uri
from rolesanywhere.x509.sources import describe

PIN = "4711-hsm-pin"
SO_PIN = "5678-so-pin"
SOFTHSM_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)
SOFTHSM = next((p for p in SOFTHSM_PATHS if os.path.exists(p)), None)


# --- URIs (no token needed) ---------------------------------------------------------------------


def test_uri_attributes_are_read_and_decoded() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:token=My%20Token;object=client;id=%01%a0;type=cert;manufacturer=SoftHSM%20project;"
        "model=SoftHSM%20v2;serial=abc;slot-id=7?pin-value=1234&module-path=/lib/p11.so"
    )
    assert uri.token == "My Token"
    assert uri.object == "client"
    assert uri.id == b"\x01\xa0"
    assert uri.type == "cert"
    assert (uri.manufacturer, uri.model, uri.serial, uri.slot_id) == (
        "SoftHSM project",
        "SoftHSM v2",
        "abc",
        7,
    )
    assert uri.pin_value == "1234"
    assert uri.module_path == "/lib/p11.so"
    assert "1234" not in str(uri) and "1234" not in repr(uri)


@pytest.mark.parametrize(
    "text",
    [
        "pkcs11:colour=blue?pin-value=1234",
        "pkcs11:token=a;token=b?pin-value=1234",
        "pkcs11:type=data?pin-value=1234",
        "pkcs11:slot-id=x?pin-value=1234",
        "pkcs11:token=a?pin=1234",
    ],
)
def test_bad_uris_are_refused_without_the_pin(text: str) -> None:
    with pytest.raises(TokenError) as info:
        Pkcs11Uri.parse(text)
    assert "1234" not in str(info.value)


def test_a_helper_command_with_a_token_runs_in_process() -> None:
    from rolesanywhere.profiles.settings import parse_helper_command

    settings = parse_helper_command(
        ["aws_signing_helper", "credential-process", "--certificate",
         "pkcs11:token=t?pin-value=1234", "--pkcs11-lib", "/x.so", "--reuse-pin",
         "--trust-anchor-arn", "a", "--profile-arn", "b", "--role-arn", "c"]
    )  # fmt: skip
    assert isinstance(settings, IdentitySettings)
    assert (settings.pkcs11_lib, settings.reuse_pin) == ("/x.so", True)
    assert "1234" not in repr(settings) + settings.describe()


def test_messages_and_settings_never_show_the_pin() -> None:
    uri = "pkcs11:token=t;object=o?pin-source=/x&pin-value=1234"
    assert describe(uri) == "pkcs11:token=t;object=o?pin-source=/x&pin-value=***"
    settings = IdentitySettings(certificate=uri, private_key=uri, pkcs11_lib="/x.so")
    assert "1234" not in repr(settings)
    assert "1234" not in settings.describe()


# --- the SoftHSM2 token -------------------------------------------------------------------------


def _create_key(
    session: Any, pkcs11: Any, key: Any, ident: bytes, label: str, extra: dict[Any, Any]
) -> None:
    A = pkcs11.Attribute
    attrs: dict[Any, Any] = {
        A.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
        A.TOKEN: True,
        A.PRIVATE: True,
        A.SENSITIVE: True,
        A.SIGN: True,
        A.ID: ident,
        A.LABEL: label,
    }
    attrs.update(extra)
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        pub = n.public_numbers

        def b(x: int) -> bytes:
            return x.to_bytes((x.bit_length() + 7) // 8, "big")

        attrs.update(
            {
                A.KEY_TYPE: pkcs11.KeyType.RSA,
                A.MODULUS: b(pub.n),
                A.PUBLIC_EXPONENT: b(pub.e),
                A.PRIVATE_EXPONENT: b(n.d),
                A.PRIME_1: b(n.p),
                A.PRIME_2: b(n.q),
                A.EXPONENT_1: b(n.dmp1),
                A.EXPONENT_2: b(n.dmq1),
                A.COEFFICIENT: b(n.iqmp),
            }
        )
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        from pkcs11.util.ec import encode_named_curve_parameters

        size = (key.curve.key_size + 7) // 8
        attrs.update(
            {
                A.KEY_TYPE: pkcs11.KeyType.EC,
                A.EC_PARAMS: encode_named_curve_parameters(key.curve.name),
                A.VALUE: key.private_numbers().private_value.to_bytes(size, "big"),
            }
        )
    session.create_object(attrs)


def _create_cert(session: Any, pkcs11: Any, leaf: IssuedCert, ident: bytes, label: str) -> None:
    A = pkcs11.Attribute
    session.create_object(
        {
            A.CLASS: pkcs11.ObjectClass.CERTIFICATE,
            A.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
            A.TOKEN: True,
            A.PRIVATE: False,
            A.ID: ident,
            A.LABEL: label,
            A.VALUE: leaf.cert_der(),
            A.SUBJECT: leaf.certificate.subject.public_bytes(),
        }
    )


class Token:
    """The SoftHSM2 tokens and what is on them."""

    def __init__(self, pki: PKI, root: Path) -> None:
        self.pki = pki
        self.root = root
        self.rsa = pki.leaf("rsa-2048", common_name="token rsa")
        self.ec = pki.leaf("ec-p256", common_name="token ec")
        self.spare = pki.leaf("ec-p256", common_name="token spare")
        self.always = pki.leaf("rsa-2048", common_name="token always")
        self.chain = root / "chain.pem"
        self.chain.write_bytes(pki.intermediate.cert_pem())

    def cert_file(self, leaf: IssuedCert) -> str:
        path = self.root / f"{leaf.serial_number}.pem"
        path.write_bytes(leaf.cert_pem())
        return str(path)


@pytest.fixture(scope="module")
def token(rolesanywhere_pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    if SOFTHSM is None or shutil.which("softhsm2-util") is None:
        pytest.skip("needs SoftHSM2 (Debian package softhsm2; .ci/run installs it)")
    pkcs11 = pytest.importorskip(
        "pkcs11", reason="needs python-pkcs11 (pip install -e '.[pkcs11]')"
    )
    from rolesanywhere.x509.pkcs11 import load_module

    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        for label in ("ra-rsa", "ra-ec", "ra-always", "ra-pin"):
            subprocess.run(
                [
                    "softhsm2-util",
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--pin",
                    PIN,
                    "--so-pin",
                    SO_PIN,
                ],
                check=True,
                capture_output=True,
                env=os.environ,
            )
        made = Token(rolesanywhere_pki, root)
        lib = load_module(SOFTHSM)
        A = pkcs11.Attribute
        for label, items in (
            ("ra-rsa", [(made.rsa, b"\x01", "client", {})]),
            ("ra-ec", [(made.ec, b"\x02", "client", {}), (made.spare, b"\x04", "spare", {})]),
            ("ra-always", [(made.always, b"\x03", "client", {A.ALWAYS_AUTHENTICATE: True})]),
            ("ra-pin", [(made.rsa, b"\x01", "client", {})]),
        ):
            with lib.get_token(token_label=label).open(rw=True, user_pin=PIN) as session:
                for leaf, ident, name, extra in items:
                    _create_key(session, pkcs11, leaf.private_key, ident, name, extra)
                    _create_cert(session, pkcs11, leaf, ident, name)
        yield made
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, stdin=io.StringIO(""), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def arns(emu: RolesAnywhereEmulator) -> list[str]:
    return [
        "--trust-anchor-arn",
        emu.trust_anchor_arn,
        "--profile-arn",
        emu.profile_arn,
        "--role-arn",
        emu.role_arn,
        "--endpoint",
        emu.url,
    ]


def credentials(status: int, out: str, err: str, emu: RolesAnywhereEmulator) -> dict[str, Any]:
    assert status == 0, err
    assert PIN not in out + err
    data: dict[str, Any] = json.loads(out)
    assert emu.lookup(data["AccessKeyId"]) is not None
    return data


def one_line(status: int, out: str, err: str) -> str:
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert PIN not in err
    return err


def refused(emu: RolesAnywhereEmulator, *argv: str, lib: str | None = SOFTHSM) -> str:
    """The one-line error of ``credential-process ARGV`` with the module and the ARNs."""
    return one_line(*run(["credential-process", *argv, "--pkcs11-lib", str(lib), *arns(emu)]))


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("where", ["one-uri", "certificate-file"])
def test_credential_process_with_a_token_key(
    kind: str, where: str, token: Token, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    leaf = token.rsa if kind == "rsa" else token.ec
    uri = f"pkcs11:token=ra-{kind};object=client"
    if where == "one-uri":
        argv = ["--certificate", f"{uri};type=cert?pin-value={PIN}"]
    else:
        argv = ["--certificate", token.cert_file(leaf), "--private-key", f"{uri}?pin-value={PIN}"]
    argv += ["--intermediates", str(token.chain), "--pkcs11-lib", str(SOFTHSM)]
    credentials(
        *run(["credential-process", *argv, *arns(rolesanywhere_emulator)]), rolesanywhere_emulator
    )
    assert rolesanywhere_emulator.issued[-1].certificate_serial == leaf.serial_number


def test_pin_source_file_and_id(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator, tmp_path: Path
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    argv = [
        "--certificate",
        f"pkcs11:token=ra-ec;id=%02?pin-source={pin_file}",
        "--pkcs11-lib",
        str(SOFTHSM),
        "--intermediates",
        str(token.chain),
    ]
    credentials(
        *run(["credential-process", *argv, *arns(rolesanywhere_emulator)]), rolesanywhere_emulator
    )
    assert rolesanywhere_emulator.issued[-1].certificate_serial == token.ec.serial_number


def test_always_authenticate_key_needs_reuse_pin(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    argv = [
        "credential-process",
        "--certificate",
        f"pkcs11:token=ra-always?pin-value={PIN}",
        "--pkcs11-lib",
        str(SOFTHSM),
        "--intermediates",
        str(token.chain),
        *arns(rolesanywhere_emulator),
    ]
    err = one_line(*run(argv))
    assert "--reuse-pin" in err
    credentials(*run([*argv, "--reuse-pin"]), rolesanywhere_emulator)
    assert rolesanywhere_emulator.issued[-1].certificate_serial == token.always.serial_number


def test_wrong_pin_is_one_line_without_the_pin(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    # ra-pin is logged into by no other test (PKCS#11 login lasts as long as the process has a
    # session open on the token)
    wrong = "9999-not-it"
    uri = f"pkcs11:token=ra-pin?pin-value={wrong}"
    err = refused(rolesanywhere_emulator, "--certificate", uri)
    assert "wrong PIN" in err
    assert wrong not in err


def test_ambiguous_uri_lists_the_matches(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    err = refused(rolesanywhere_emulator, "--certificate", f"pkcs11:token=ra-ec?pin-value={PIN}")
    assert "2 objects match" in err
    assert "object=client;type=cert" in err and "object=spare;type=cert" in err


def test_token_key_of_another_certificate_is_refused(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    spare = f"pkcs11:token=ra-ec;object=spare?pin-value={PIN}"
    certificate = token.cert_file(token.ec)
    err = refused(rolesanywhere_emulator, "--certificate", certificate, "--private-key", spare)
    assert "not the certificate's" in err


def test_missing_module_is_one_line(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    uri = f"pkcs11:token=ra-ec?pin-value={PIN}"
    err = refused(rolesanywhere_emulator, "--certificate", uri, lib="/nonexistent/p11.so")
    assert "/nonexistent/p11.so does not exist" in err


def test_without_python_pkcs11_the_error_says_what_to_install(
    rolesanywhere_emulator: RolesAnywhereEmulator,
) -> None:
    code = (
        "import sys; sys.modules['pkcs11'] = None\n"
        "from rolesanywhere.cli.main import main\n"
        "sys.exit(main(['credential-process', '--certificate', "
        f"'pkcs11:token=x?pin-value={PIN}', *{arns(rolesanywhere_emulator)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    err = one_line(done.returncode, done.stdout, done.stderr)
    assert "pip install 'rolesanywhere[pkcs11]'" in err


def test_read_certificate_data_lists_the_matches(token: Token) -> None:
    status, out, err = run(
        [
            "read-certificate-data",
            "--certificate",
            f"pkcs11:token=ra-ec?pin-value={PIN}",
            "--pkcs11-lib",
            str(SOFTHSM),
        ]
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "Matching identities"
    assert lines[1].startswith("1) ") and lines[3].startswith("2) ")
    assert lines[2].startswith("\tURI: pkcs11:token=ra-ec;") and lines[2].endswith(";type=cert")
    assert lines[4].startswith("\tURI: pkcs11:token=ra-ec;") and lines[4].endswith(";type=cert")
    assert "CN=token ec" in out and "CN=token spare" in out
    assert PIN not in out + err
    status, out, _ = run(
        [
            "read-certificate-data",
            "--certificate",
            "pkcs11:token=nothing-here",
            "--pkcs11-lib",
            str(SOFTHSM),
        ]
    )
    assert (status, out) == (0, "No matching identities\n")


def test_sign_string_with_a_token_key(token: Token) -> None:
    status, out, err = run(
        [
            "sign-string",
            "--certificate",
            token.cert_file(token.rsa),
            "--private-key",
            f"pkcs11:token=ra-rsa?pin-value={PIN}",
            "--pkcs11-lib",
            str(SOFTHSM),
            "--format",
            "text",
        ]
    )
    assert status == 0, err
    int(out, 16)


def test_no_output_shows_the_pin_even_with_debug(
    token: Token, rolesanywhere_emulator: RolesAnywhereEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for argv in (
        ["credential-process", "--debug", "--certificate", f"pkcs11:token=ra-rsa?pin-value={PIN}"],
        [
            "credential-process",
            "--debug",
            "--certificate",
            f"pkcs11:token=ra-always?pin-value={PIN}",
            "--reuse-pin",
        ],
        ["credential-process", "--debug", "--certificate", "pkcs11:token=ra-rsa?pin-value=0000"],
    ):
        status, out, err = run(
            [
                *argv,
                "--pkcs11-lib",
                str(SOFTHSM),
                "--intermediates",
                str(token.chain),
                *arns(rolesanywhere_emulator),
            ]
        )
        assert status == 0 or argv[-1].endswith("0000"), err
        assert PIN not in out + err + caplog.text
        assert "0000" not in err
