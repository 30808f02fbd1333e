"""``rolesanywhere completion bash|zsh|fish`` (generated from the parser) and ``help``."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from rolesanywhere.cli.completion import SHELLS, commands
from rolesanywhere.cli.main import _SUBCOMMANDS, _build_parser, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def script(shell: str) -> str:
    status, out, err = run("completion", shell)
    assert status == 0, err
    return out


def test_the_model_is_every_subcommand_with_its_visible_flags() -> None:
    found = {c.name: c for c in commands(_build_parser("rolesanywhere", [], every=True))}
    assert list(found) == list(_SUBCOMMANDS)
    flags = {n for f in found["credential-process"].flags for n in f.names}
    assert {"--certificate", "--trust-anchor-arn", "--debug", "--no-verify-ssl"} <= flags
    assert "--cert-selector" not in flags  # hidden from --help: not offered
    digest = next(f for f in found["sign-string"].flags if "--digest" in f.names)
    assert digest.choices == ("SHA256", "SHA384", "SHA512")
    assert found["completion"].arguments == SHELLS
    assert found["version"].arguments is None


@pytest.mark.parametrize("shell", SHELLS)
def test_every_subcommand_and_flag_is_in_every_script(shell: str) -> None:
    text = script(shell)
    for command in commands(_build_parser("rolesanywhere", [], every=True)):
        assert command.name in text
        for flag in command.flags:
            for name in flag.names:
                word = name.lstrip("-") if shell == "fish" else name
                assert word in text, f"{shell}: {command.name} {name}"
    assert "rolesanywhere" in text and "aws_signing_helper" in text


def test_bash_script_parses(tmp_path: Path) -> None:
    path = tmp_path / "rolesanywhere.bash"
    path.write_text(script("bash"))
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def complete(tmp_path: Path, *words: str) -> list[str]:
    """What the bash script offers after ``words`` (the last one being completed)."""
    path = tmp_path / "rolesanywhere.bash"
    path.write_text(script("bash"))
    line = " ".join(["rolesanywhere", *words])
    driver = (
        f"source {path}\n"
        f"COMP_WORDS=(rolesanywhere {' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words)}\nCOMP_LINE={line!r}\n"
        "_rolesanywhere\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, check=True)
    return [w for w in result.stdout.splitlines() if w]


def test_bash_script_completes_commands_flags_and_choices(tmp_path: Path) -> None:
    assert complete(tmp_path, "cre") == ["credential-process"]
    assert "--trust-anchor-arn" in complete(tmp_path, "credential-process", "--tr")
    assert complete(tmp_path, "sign-string", "--digest", "SHA3") == ["SHA384"]
    assert complete(tmp_path, "completion", "") == ["bash", "zsh", "fish"]
    assert complete(tmp_path, "curl", "--ser") == ["--service"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_scripts_parse_when_the_shell_is_installed(shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"rolesanywhere.{shell}"
    path.write_text(script(shell))
    result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_an_unknown_shell_is_one_line() -> None:
    status, out, err = run("completion", "tcsh")
    assert status == 1 and out == ""
    assert "invalid choice: 'tcsh'" in err and err.count("\n") == 1


def test_help_prints_the_commands_and_help_command_prints_its_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run("help")
    assert status == 0
    for name in _SUBCOMMANDS:
        assert name in out
    status, out, _ = run("help", "credential-process")
    assert status == 0
    assert "--trust-anchor-arn" in out and "usage:" in out and "credential-process" in out
    assert main(["credential-process", "--help"]) == 0  # argparse prints on sys.stdout
    assert capsys.readouterr().out == out
    status, _, err = run("help", "nope")
    assert status == 1 and "invalid choice" in err
