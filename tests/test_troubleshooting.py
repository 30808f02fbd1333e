"""The troubleshooting page's coverage check (tests/troubleshooting.py) itself: no mkdocs needed.

The coverage is checked where the messages are made: every bad-input case (tests/test_bad_input.py)
passes the message it provoked to :func:`assert_on_page`.
"""

from __future__ import annotations

import pytest

from tests.troubleshooting import assert_on_page, covering, pattern, templates


def test_the_page_has_templates() -> None:
    assert len(templates()) >= 40
    assert all("…" in t or t.count(":") >= 2 for t in templates())


def test_a_template_matches_its_variants() -> None:
    check = pattern("rolesanywhere: --port must be 0 to 65535, not …")
    assert check.fullmatch("rolesanywhere: --port must be 0 to 65535, not 70000")
    assert not check.fullmatch("rolesanywhere: --port must be 0 to 65535, not ")
    assert not check.fullmatch("rolesanywhere: --port must be 1 to 65535, not 70000")


def test_the_check_fails_for_a_message_the_page_lacks() -> None:
    with pytest.raises(AssertionError, match=r"add this message to docs/troubleshooting\.md"):
        assert_on_page("rolesanywhere: a message nobody wrote down: do something\n")


def test_a_known_message_is_covered() -> None:
    assert covering("rolesanywhere: no certificate on stdin: pipe the certificate in\n")
