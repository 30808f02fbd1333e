"""Canonicalisation against the AWS SigV4 test suite and spec-level properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere.sigv4 import canonical as sigv4
from tests.conformance import SIGV4, load_sigv4, require, sigv4_cases


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
    require(SIGV4)
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


# --- properties of the canonicalisation functions ---------------------------------------------

path_text = st.lists(
    st.sampled_from(["a", "b", ".", "..", "/", "%", "2", "E", " ", "~", ":", "é"]), max_size=16
).map("".join)


@given(path_text)
def test_normalize_path_is_idempotent(path: str) -> None:
    once = sigv4.normalize_path("/" + path)
    assert sigv4.normalize_path(once) == once


@given(path_text)
def test_canonical_path_shortcut_equals_full_normalisation(path: str) -> None:
    # canonical_path skips normalize_path when there is no "//" or "/.": same result either way.
    path = "/" + path
    full = sigv4.uri_encode(sigv4.normalize_path(path), keep_slash=True)
    assert sigv4.canonical_path(path) == full


@given(path_text)
def test_encode_path_once_is_stable_under_encoding(path: str) -> None:
    once = sigv4.encode_path_once("/" + path.replace("%", "%25"))
    assert sigv4.encode_path_once(once) == once
    assert once == sigv4.uri_encode(("/" + path).encode(), keep_slash=True)


def _escape(char: str, lower: bool) -> str:
    text = "".join(f"%{b:02X}" for b in char.encode())
    return text.lower() if lower else text


@st.composite
def wire_forms(draw: st.DrawFn, text: str) -> str:
    """``text`` with each character left raw or escaped (either hex case), at random; the
    characters that structure a query (``%``, ``&``, ``=``) always escaped."""
    out = []
    for char in text:
        if char in "%&=" or draw(st.booleans()):
            out.append(_escape(char, draw(st.booleans())))
        else:
            out.append(char)
    return "".join(out)


@given(st.data(), st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=6))
def test_canonical_query_is_independent_of_pre_encoding(
    data: st.DataObject, pairs: list[tuple[str, str]]
) -> None:
    wire = "&".join(f"{data.draw(wire_forms(k))}={data.draw(wire_forms(v))}" for k, v in pairs)
    assert sigv4.canonical_query(wire) == sigv4.canonical_query_from_pairs(pairs)


@given(st.text(st.sampled_from(list("ab=&%2F~+ é-_.*")), max_size=24))
def test_canonical_query_shortcut_equals_decode_and_encode(query: str) -> None:
    from urllib.parse import unquote_to_bytes

    parts = [p.partition("=") for p in query.split("&") if p]
    slow = sorted(
        (sigv4.uri_encode(unquote_to_bytes(k)), sigv4.uri_encode(unquote_to_bytes(v)))
        for k, _, v in parts
    )
    assert sigv4.canonical_query(query) == "&".join(f"{k}={v}" for k, v in slow)


header_name = st.text("abcXYZ-", min_size=1, max_size=4)
header_value = st.text(st.sampled_from(list("ab \t\n,:é\u00a0")), max_size=8)


@given(st.data(), st.lists(st.tuples(header_name, header_value), max_size=8))
def test_canonical_headers_independent_of_order_between_names(
    data: st.DataObject, headers: list[tuple[str, str]]
) -> None:
    # Any order that keeps the values of one name in their relative order gives the same block.
    names = list(dict.fromkeys(n.lower() for n, _ in headers))
    order = data.draw(st.permutations(names))
    shuffled = [h for name in order for h in headers if h[0].lower() == name]
    assert sigv4.canonical_headers(shuffled) == sigv4.canonical_headers(headers)
    block, signed = sigv4.canonical_headers(headers)
    assert signed == ";".join(sorted(names))
    assert block.count("\n") == len(names)


@given(header_value)
def test_canonical_header_value_trims_and_collapses_whitespace(value: str) -> None:
    assert sigv4.canonical_header_value(value) == " ".join(value.split())
