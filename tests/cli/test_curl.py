"""``rolesanywhere curl``: the blog's awscurl queries, signed with our signer, against the OSIS
emulator's query endpoints checking SigV4 for service ``es``."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolesanywhere.cli.main import main
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import CredentialRegistry, OsisEmulator, StaticCredentials
from rolesanywhere.testing.pki import PKI

KEY_ID, SECRET = "AKIDEXAMPLECURL00001", "curl-test-secret-do-not-print"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def identity(rolesanywhere_pki: PKI, rolesanywhere_emulator: RolesAnywhereEmulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    cert, key = rolesanywhere_pki.leaf("ec-p256").write(tmp_path, "client")
    chain = tmp_path / "intermediates.pem"
    chain.write_bytes(rolesanywhere_pki.intermediate.cert_pem())
    ra = rolesanywhere_emulator
    return [
        "--certificate", str(cert), "--private-key", str(key), "--intermediates", str(chain),
        "--trust-anchor-arn", ra.trust_anchor_arn, "--profile-arn", ra.profile_arn,
        "--role-arn", ra.role_arn, "--endpoint", ra.url,
    ]  # fmt: skip


@pytest.fixture
def osis(rolesanywhere_emulator: RolesAnywhereEmulator) -> Iterator[OsisEmulator]:
    ra = rolesanywhere_emulator
    with OsisEmulator(credentials=ra, region=ra.region, query_service="es") as emulator:
        yield emulator


def curl(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["curl", *argv], stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_the_blogs_two_queries_run_signed_and_verify(
    osis: OsisEmulator, identity: list[str], rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    region = ["--region", rolesanywhere_emulator.region]
    events = json.dumps([{"log": f"line {n}", "date": 1_700_000_000 + n} for n in range(5)])
    # ingest too goes through curl (POST by default with -d), signed for osis
    status, _, err = curl(osis.ingest_url, "--service", "osis", *region, "-d", events, *identity)
    assert status == 0, err
    assert osis.count() == 5

    # awscurl --service es "$ENDPOINT/_cat/indices?v"
    status, out, err = curl("--service", "es", f"{osis.url}/_cat/indices?v", *region, *identity)
    assert status == 0, err
    assert out.splitlines()[0].split()[:3] == ["health", "status", "index"]
    assert "logs-" in out and " 5 " in out

    # awscurl --service es $ENDPOINT/$INDEX/_search -X GET -H "Content-Type: application/json" -d
    query = '{"size": 2, "sort": [{"@timestamp": {"order": "desc"}}]}'
    status, out, err = curl(
        "--service", "es", f"{osis.url}/logs-*/_search", "-X", "GET",
        "-H", "Content-Type: application/json", "-d", query, *region, *identity,
    )  # fmt: skip
    assert status == 0, err
    found = json.loads(out)
    assert found["hits"]["total"]["value"] == 5
    assert len(found["hits"]["hits"]) == 2
    assert osis.signed_queries == 2
    assert osis.rejections == []


def test_a_query_signed_for_another_service_is_refused(
    osis: OsisEmulator, identity: list[str], rolesanywhere_emulator: RolesAnywhereEmulator
) -> None:
    region = ["--region", rolesanywhere_emulator.region]
    status, out, err = curl(f"{osis.url}/_cat/indices", "--service", "osis", *region, *identity)
    assert status == 0 and "InvalidSignatureException" not in err  # no --fail: body shown, 0
    assert "correct service: 'es'" in out
    status, out, err = curl(
        f"{osis.url}/_cat/indices", "--service", "osis", "--fail", *region, *identity
    )
    assert status == 1 and out == ""
    assert err.count("\n") == 1
    assert "InvalidSignatureException (HTTP 403)" in err and "correct service" in err
    assert osis.signed_queries == 0
    assert len(osis.rejections) == 2


def aws_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text(
        f"[profile static]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def test_aws_profile_credentials_sign_and_the_body_comes_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_profile(tmp_path, monkeypatch)
    registry = CredentialRegistry()
    registry.add(StaticCredentials(KEY_ID, SECRET))
    with OsisEmulator(credentials=registry, region="eu-west-1", query_service="es") as osis:
        body = tmp_path / "query.json"
        body.write_text('{"query": {"match_all": {}}}')
        status, out, err = curl(
            f"{osis.url}/_all/_search", "-X", "POST", "--data", f"@{body}", "--service", "es",
            "--region", "eu-west-1", "--aws-profile", "static", "-i",
        )  # fmt: skip
        assert status == 0, err
        assert out.startswith("HTTP/1.1 200 OK\r\n")
        head, _, rest = out.partition("\r\n\r\n")
        assert "content-type: application/json" in head.lower()
        assert json.loads(rest)["hits"]["total"]["value"] == 0
        assert osis.signed_queries == 1
        # and from standard input
        status, out, err = curl(
            f"{osis.url}/_all/_count", "-d", "@-", "--service", "es", "--region", "eu-west-1",
            "--aws-profile", "static", stdin='{"query": {"match_all": {}}}',
        )  # fmt: skip
        assert status == 0, err
        assert json.loads(out)["count"] == 0
        assert osis.signed_queries == 2
    assert SECRET not in out + err


class _Answer(http.server.BaseHTTPRequestHandler):
    """403 with terminal controls in the body."""

    def do_GET(self) -> None:
        body = b'{"message": "denied \x1b[31mred\x1b[0m\nsecond line"}'
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-ErrorType", "AccessDeniedException:http://x")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_server_text_is_one_escaped_line_with_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_profile(tmp_path, monkeypatch)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        common = ["--region", "us-east-1", "--aws-profile", "static"]
        status, out, err = curl(url, "--fail", *common)
        assert status == 1 and out == ""
        assert err.count("\n") == 1 and "\x1b" not in err
        assert "AccessDeniedException (HTTP 403)" in err and "\\x1b[31mred" in err
        status, out, _ = curl(url, *common)  # without --fail: the body as it came, exit 0
        assert status == 0 and "\x1b[31mred" in out
    finally:
        server.shutdown()
        server.server_close()


def test_every_request_ends_by_max_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_profile(tmp_path, monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        started = time.monotonic()
        status, _, err = curl(url, "--region", "us-east-1", "--aws-profile", "static",
                              "--max-time", "0.5")  # fmt: skip
        assert time.monotonic() - started < 5
    assert status == 1
    assert "no complete answer within 0.5 s" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://127.0.0.1:9/"], "cannot tell the signing region from host '127.0.0.1'"),
        (["ftp://x.us-east-1.amazonaws.com/"], "give http(s)://HOST/PATH"),
        (["https://es.us-east-1.amazonaws.com/", "-H", "NoColon"], "write -H 'NAME: VALUE'"),
        (["https://es.us-east-1.amazonaws.com/", "-d", "@/no/such/file"], "cannot read"),
        (["https://es.us-east-1.amazonaws.com/", "--max-time", "0"], "--max-time must be"),
        (
            ["https://es.us-east-1.amazonaws.com/", "--aws-profile", "p", "--certificate", "c"],
            "both --aws-profile and --certificate are given",
        ),
        (
            ["https://es.us-east-1.amazonaws.com/", "--certificate", "c.pem"],
            "incomplete: pass --trust-anchor-arn, --profile-arn, --role-arn",
        ),
    ],
)
def test_usage_errors_are_one_line(argv: list[str], message: str) -> None:
    status, out, err = curl(*argv)
    assert status == 1 and out == ""
    assert message in err and err.count("\n") == 1
