"""The docs site: generated parts list every flag, key and subcommand; the site builds --strict.

The renderers (docs/hooks/generated.py) need no mkdocs; only the build test does (the ``docs``
extra: ``pip install -e '.[docs]'``), and it skips naming that extra when mkdocs is missing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from rolesanywhere.profiles.settings import SETTINGS, UNSUPPORTED_FLAGS
from rolesanywhere.ship.config import fluentbit

ROOT = Path(__file__).parent.parent


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generated", ROOT / "docs/hooks/generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_helper_flag_table_lists_every_flag() -> None:
    table = _hooks().helper_flags()
    for setting in SETTINGS:
        assert f"`{setting.flag}`" in table
        assert f"`{setting.flag_for(ship=True)}`" in table
    for flag, _switch in UNSUPPORTED_FLAGS.values():
        assert f"`{flag}`" in table


def test_fluent_bit_table_lists_every_mapped_key() -> None:
    # the mapping tables are the module's internals: read, not imported
    tables = vars(fluentbit)
    page = (ROOT / "docs/migrating.md").read_text().lower()
    keys = [*tables["_TAIL_HANDLERS"], *tables["_HTTP_HANDLERS"], *tables["_SERVICE_HANDLERS"]]
    for handlers in tables["_FILTER_HANDLERS"].values():
        keys += list(handlers)
    missing = [key for key in keys if f"`{key}" not in page and f" {key}`" not in page]
    assert missing == []


def test_cli_reference_has_every_subcommand() -> None:
    hooks = _hooks()
    commands = hooks.subcommands()
    assert {"credential-process", "ship", "serve", "update", "demo"} <= set(commands)
    reference = hooks.cli_reference()
    for command in commands:
        assert f"$ rolesanywhere {command} --help\nusage: rolesanywhere {command}" in reference


def test_api_page_lists_every_export() -> None:
    import rolesanywhere

    api = _hooks().api()
    for name in rolesanywhere.__all__:
        if not name.startswith("_"):
            assert re.search(rf"^::: rolesanywhere\.[a-z0-9_.]+\.{name}$", api, re.MULTILINE)


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert [page for page in pages if f": {page}" not in nav] == []


def test_the_site_builds_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' (the docs extra)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fonts.googleapis" not in (tmp_path / "index.html").read_text()
    assert "usage: rolesanywhere ship" in (tmp_path / "reference/cli/index.html").read_text()
