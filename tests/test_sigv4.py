"""Canonicalisation against the AWS SigV4 test suite and spec-level properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere import sigv4
from tests.conformance import load_sigv4, sigv4_cases


@pytest.mark.parametrize("case", sigv4_cases())
def test_canonical_request_matches_suite(case: str) -> None:
    context, request, folder = load_sigv4(case)
    headers = list(request.headers)
    x_amz_date = context["timestamp"].replace("-", "").replace(":", "")
    headers.append(("X-Amz-Date", x_amz_date))
    token = context["credentials"].get("token")
    if token and not context.get("omit_session_token"):
        headers.append(("X-Amz-Security-Token", token))
    payload_hash = sigv4.sha256_hex(request.body)
    if context["sign_body"]:
        headers.append(("X-Amz-Content-Sha256", payload_hash))
    block, signed = sigv4.canonical_headers(headers)
    canonical = sigv4.canonical_request(
        request.method,
        sigv4.canonical_path(request.path, normalize=context["normalize"]),
        sigv4.canonical_query(request.query),
        block,
        signed,
        payload_hash,
    )
    assert canonical == (folder / "header-canonical-request.txt").read_text()


def test_suite_is_present_and_complete() -> None:
    assert len(sigv4_cases()) == 38


@given(st.text())
def test_uri_encode_leaves_only_unreserved_bare(value: str) -> None:
    encoded = sigv4.uri_encode(value)
    bare = set(encoded.replace("%", ""))
    assert bare <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


@given(st.lists(st.tuples(st.text(), st.text()), max_size=8))
def test_canonical_query_is_stable_under_encoding(pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import quote

    pre_encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    assert sigv4.canonical_query(pre_encoded) == sigv4.canonical_query_from_pairs(pairs)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", ""]), max_size=10))
def test_normalize_path_has_no_dot_segments_or_double_slashes(parts: list[str]) -> None:
    result = sigv4.normalize_path("/" + "/".join(parts))
    assert result.startswith("/")
    assert "//" not in result
    assert "/./" not in result + "/" and "/../" not in result + "/"
