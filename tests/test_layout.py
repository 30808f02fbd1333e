"""The package's shape: what the import-linter contracts (pyproject.toml) cannot say.

- No module imports a private (``_name``) name from a module of another package: a private name
  is shared inside its own package only.
- One concept a module: no source file is much over 600 lines.
- The subpackages' ``__init__`` files import nothing, so importing one module of a layer never
  pays for the rest of it (the credential-process cold path depends on this).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rolesanywhere"
MAX_LINES = 650
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    return module.rpartition(".")[0]


def private_imports(source: str, module: str, *, is_init: bool = False) -> list[str]:
    """The private names ``module`` (whose text is ``source``) imports from other packages."""
    here = module if is_init else package_of(module)
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if not node.module.startswith("rolesanywhere"):
            continue
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and package_of(node.module) != here:
                found.append(f"{module} imports {alias.name} from {node.module}")
    return found


def test_the_checks_see_the_whole_package() -> None:
    names = {module_name(p) for p in SOURCES}
    assert {"rolesanywhere.errors", "rolesanywhere.cli.main", "rolesanywhere.testing.pki"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_private_name_is_imported_from_another_package(path: Path) -> None:
    found = private_imports(path.read_text(), module_name(path), is_init=path.name == "__init__.py")
    assert found == []


def test_the_private_import_check_can_fail() -> None:
    source = (
        "from rolesanywhere.session.client import _drive_sync, RolesAnywhereClient\n"
        "from rolesanywhere.cli.signals import _handler\n"
    )
    assert private_imports(source, "rolesanywhere.cli.main") == [
        "rolesanywhere.cli.main imports _drive_sync from rolesanywhere.session.client"
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_source_file_is_much_over_600_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module_name(path)} has {lines} lines: split it by concept"


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if p.name == "__init__.py" and p.parent != PACKAGE],
    ids=lambda p: module_name(p),
)
def test_subpackage_inits_import_nothing(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
