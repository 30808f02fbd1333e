"""The package index metadata in pyproject.toml, checked without building (.ci/run builds the
wheel and the sdist, installs the wheel in a fresh virtualenv and runs twine check)."""

from __future__ import annotations

import ast
import pathlib
import tomllib
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_license_is_apache_2_with_its_text(project: dict[str, Any]) -> None:
    meta = project["project"]
    assert meta["license"] == "Apache-2.0"
    assert meta["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # an SPDX license expression replaces the License :: classifiers (PEP 639)
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")]
    # PEP 639 metadata needs setuptools 77
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_classifiers_match_the_project(project: dict[str, Any]) -> None:
    meta = project["project"]
    classifiers = set(meta["classifiers"])
    assert meta["requires-python"] == ">=3.11"
    assert {
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Typing :: Typed",
    } <= classifiers
    # no Python version below requires-python
    prefix = "Programming Language :: Python :: 3."
    minors = [int(c.removeprefix(prefix)) for c in classifiers if c.startswith(prefix)]
    assert minors and min(minors) == 11
    assert len(classifiers) == len(meta["classifiers"])


def test_project_urls_and_long_description(project: dict[str, Any]) -> None:
    meta = project["project"]
    urls = meta["urls"]
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert meta["readme"] == "README.md"
    assert (ROOT / "README.md").read_text().startswith("# rolesanywhere\n")


def _literal_version() -> str:
    tree = ast.parse((ROOT / "rolesanywhere" / "__init__.py").read_text())
    found = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert len(found) == 1, "rolesanywhere.__version__ must be one string literal"
    return str(found[0])


def test_the_version_has_one_source(project: dict[str, Any]) -> None:
    import rolesanywhere

    meta = project["project"]
    assert "version" not in meta
    assert "version" in meta["dynamic"]
    # setuptools reads the literal from the source without importing the package
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "rolesanywhere.__version__"
    }
    assert _literal_version() == rolesanywhere.__version__
    assert rolesanywhere.__version__.count(".") == 2


def test_wheel_and_sdist_contents(project: dict[str, Any]) -> None:
    setuptools = project["tool"]["setuptools"]
    assert "py.typed" in setuptools["package-data"]["rolesanywhere"]
    assert (ROOT / "rolesanywhere" / "py.typed").is_file()
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert {"graft tests", "graft docs"} <= set(manifest)
    assert {"build>=1.2", "twine>=6.1"} <= set(project["project"]["optional-dependencies"]["dev"])
