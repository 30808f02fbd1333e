"""Issue 11: boto3 / botocore sessions with in-process Roles Anywhere credentials.

Credentials come from the local Roles Anywhere emulator; requests are signed by botocore itself
(its ``SigV4Auth`` or a real client) and checked by the OSIS emulator's SigV4 verifier.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.auth import SigV4Auth as BotoSigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

import rolesanywhere
from rolesanywhere.auth.boto import (
    CANONICAL_NAME,
    METHOD,
    attach,
    boto3_session,
    botocore_credentials,
    botocore_session,
    credential_provider,
)
from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.refresh import RefreshingCredentials
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import OsisEmulator
from rolesanywhere.testing.pki import PKI
from tests.session.test_refresh import FakeClock

CREATE_PIPELINE = "/2022-01-01/osis/createPipeline"


@pytest.fixture(autouse=True)
def no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore sees no configuration, credentials or region of the machine running the tests."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def options(emu: RolesAnywhereEmulator, **extra: Any) -> dict[str, Any]:
    """The keyword arguments that point a session at ``emu`` (as ``emu.client`` would)."""
    return {
        "trust_anchor_arn": emu.trust_anchor_arn,
        "profile_arn": emu.profile_arn,
        "role_arn": emu.role_arn,
        "endpoint": emu.url,
        "proxy_from_env": False,
        "retry": RetryPolicy(max_attempts=1),
        **extra,
    }


@pytest.fixture
def identity(rolesanywhere_pki: PKI) -> rolesanywhere.Identity:
    return rolesanywhere_pki.leaf("ec-p256").identity()


@pytest.fixture
def faked(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    identity: rolesanywhere.Identity,
    clock: FakeClock,
) -> Iterator[Any]:
    """A botocore session on a 900 s Roles Anywhere session, refreshed on the fake clock."""
    session = botocore_session(
        identity, clock=clock, **options(rolesanywhere_emulator, duration_seconds=900)
    )
    yield session
    session.get_credentials().refreshing.close()


def signed_post(session: Any, osis: OsisEmulator, client: httpx.Client) -> httpx.Response:
    """Sign with botocore's own SigV4Auth and the session's credentials, then send."""
    body = b'[{"log": "from botocore"}]'
    request = AWSRequest(
        method="POST", url=osis.ingest_url, data=body, headers={"Content-Type": "application/json"}
    )
    BotoSigV4Auth(session.get_credentials(), "osis", osis.region).add_auth(request)
    return client.post(osis.ingest_url, content=body, headers=dict(request.headers.items()))


# --- the import stays light ----------------------------------------------------------------------


def test_importing_rolesanywhere_imports_neither_boto3_nor_botocore() -> None:
    code = (
        "import rolesanywhere, sys\n"
        "assert 'botocore' not in sys.modules and 'boto3' not in sys.modules\n"
        "assert 'boto3_session' in rolesanywhere.__all__\n"
        "assert 'botocore' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_exported_lazily_from_the_package() -> None:
    assert rolesanywhere.boto3_session is boto3_session
    assert rolesanywhere.attach is attach
    assert rolesanywhere.credential_provider is credential_provider


# --- botocore signs what the OSIS emulator accepts -----------------------------------------------


def test_100_signed_requests_accepted_on_one_create_session(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    identity: rolesanywhere.Identity,
) -> None:
    session = botocore_session(identity, **options(rolesanywhere_emulator, duration_seconds=900))
    with httpx.Client(trust_env=False, timeout=30) as client:
        statuses = [
            signed_post(session, rolesanywhere_osis, client).status_code for _ in range(100)
        ]
    assert statuses == [200] * 100, rolesanywhere_osis.rejections
    assert rolesanywhere_emulator.calls == 1
    (akid,) = {batch.access_key_id for batch in rolesanywhere_osis.batches}
    assert rolesanywhere_emulator.lookup(akid) is not None
    credentials = session.get_credentials()
    assert credentials.method == METHOD
    assert credentials.refreshing.refreshes == 1


def test_a_real_botocore_client_signs_with_the_session_credentials(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: rolesanywhere.Identity
) -> None:
    """An ``osis`` client's CreatePipeline POST: the verifier accepts the signature (no
    rejection), then refuses the body, which is not an array of events (400)."""
    session = botocore_session(identity, **options(rolesanywhere_emulator))
    with OsisEmulator(
        credentials=rolesanywhere_emulator, path=CREATE_PIPELINE, record_requests=True
    ) as osis:
        client = session.create_client(
            "osis", endpoint_url=osis.url, config=Config(retries={"max_attempts": 1})
        )
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.create_pipeline(
                PipelineName="pipe", MinUnits=1, MaxUnits=1, PipelineConfigurationBody="x"
            )
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert osis.rejections == []
        ((request, status),) = osis.recorded_requests
        assert status == 400
    authorization = dict(request.headers)["Authorization"]
    akid = authorization.split("Credential=")[1].split("/")[0]
    assert rolesanywhere_emulator.lookup(akid) is not None
    assert "/us-east-1/osis/aws4_request" in authorization


def test_boto3_session(
    rolesanywhere_emulator: RolesAnywhereEmulator,
    rolesanywhere_osis: OsisEmulator,
    identity: rolesanywhere.Identity,
) -> None:
    boto3 = pytest.importorskip("boto3", reason="needs the boto3 extra")
    session = boto3_session(identity, region_name="eu-west-2", **options(rolesanywhere_emulator))
    assert isinstance(session, boto3.Session)
    assert session.region_name == "eu-west-2"
    with httpx.Client(trust_env=False, timeout=30) as client:
        assert signed_post(session, rolesanywhere_osis, client).status_code == 200
    assert session.get_credentials().method == METHOD
    # without region_name and nothing configured: the Roles Anywhere region
    assert boto3_session(identity, **options(rolesanywhere_emulator)).region_name == "us-east-1"


# --- refresh: our windows, single-flight, failures -----------------------------------------------


def test_credentials_near_expiry_are_refreshed_before_use(
    faked: Any, rolesanywhere_emulator: RolesAnywhereEmulator, clock: FakeClock
) -> None:
    first = faked.get_credentials().get_frozen_credentials()
    clock.advance(600)  # 300 s left: outside the 225 s advisory window, botocore's would refresh
    assert faked.get_credentials().get_frozen_credentials() == first
    assert rolesanywhere_emulator.calls == 1
    clock.advance(270)  # 30 s left: mandatory
    second = faked.get_credentials().get_frozen_credentials()
    assert second.access_key != first.access_key
    issued = rolesanywhere_emulator.lookup(second.access_key)
    assert issued is not None and (issued.expiration - clock()).total_seconds() > 800
    assert rolesanywhere_emulator.calls == 2


def test_failed_refresh_keeps_still_valid_credentials_and_says_so(
    faked: Any,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    credentials = faked.get_credentials()
    first = credentials.get_frozen_credentials()
    clock.advance(800)  # 100 s left: advisory, past every jittered refresh point (W/2 = 112 s)
    rolesanywhere_emulator.fail_next(1, status=500)
    with caplog.at_level(logging.WARNING, logger="rolesanywhere.session.refresh"):
        assert credentials.get_frozen_credentials() == first
    assert rolesanywhere_emulator.calls == 2
    assert credentials.refreshing.failures == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "keeping the current credentials" in record.getMessage()
    assert first.secret_key not in record.getMessage()


def test_one_create_session_for_many_threads_in_the_mandatory_window(
    faked: Any, rolesanywhere_emulator: RolesAnywhereEmulator, clock: FakeClock
) -> None:
    credentials = faked.get_credentials()
    first = credentials.get_frozen_credentials()
    clock.advance(880)
    rolesanywhere_emulator.delay = 0.2
    barrier = threading.Barrier(32, timeout=30)
    seen: list[str] = []

    def sign() -> None:
        barrier.wait()
        request = AWSRequest(method="GET", url="https://example.com/")
        BotoSigV4Auth(credentials, "osis", "us-east-1").add_auth(request)
        seen.append(request.headers["X-Amz-Security-Token"])

    threads = [threading.Thread(target=sign) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert rolesanywhere_emulator.calls == 2
    assert len(seen) == 32 and set(seen) == {credentials.token} != {first.token}


# --- attaching to sessions you have, the provider, the adapter -----------------------------------


def test_attach_replaces_the_credentials_of_an_existing_botocore_session(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: rolesanywhere.Identity
) -> None:
    session = botocore.session.get_session()
    session.set_credentials("AKIDSTATIC", "static-secret")
    session.set_config_variable("region", "ap-south-1")
    assert attach(session, identity, **options(rolesanywhere_emulator)) is session
    credentials = session.get_credentials()
    assert credentials.method == METHOD
    assert rolesanywhere_emulator.lookup(credentials.access_key) is not None
    assert session.get_config_variable("region") == "ap-south-1"  # kept
    provider = session.get_component("credential_provider").providers[0]
    assert (provider.METHOD, provider.CANONICAL_NAME) == (METHOD, CANONICAL_NAME)


def test_attach_to_an_existing_boto3_session(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: rolesanywhere.Identity
) -> None:
    boto3 = pytest.importorskip("boto3", reason="needs the boto3 extra")
    session = boto3.Session(aws_access_key_id="AKIDSTATIC", aws_secret_access_key="s")
    attach(session, identity, region_name="eu-central-1", **options(rolesanywhere_emulator))
    assert session.region_name == "eu-central-1"
    frozen = session.get_credentials().get_frozen_credentials()
    assert rolesanywhere_emulator.lookup(frozen.access_key) is not None


def test_attach_refuses_what_is_not_a_session(identity: rolesanywhere.Identity) -> None:
    with pytest.raises(InvalidParameterError, match=r"boto3\.Session or a botocore"):
        attach(object(), identity, trust_anchor_arn="x", profile_arn="y", role_arn="z")


def test_credential_provider_in_a_resolver_chain(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: rolesanywhere.Identity
) -> None:
    provider = credential_provider(identity, **options(rolesanywhere_emulator))
    session = botocore.session.get_session()
    session.get_component("credential_provider").providers.insert(0, provider)
    credentials = session.get_credentials()
    assert credentials is provider.load()
    assert rolesanywhere_emulator.lookup(credentials.access_key) is not None
    frozen = credentials.get_frozen_credentials()
    if "account_id" in frozen._fields:  # botocore >= 1.36: the role's account
        assert frozen.account_id == rolesanywhere_emulator.role_arn.split(":")[4]


def test_botocore_credentials_wraps_any_refreshing_credentials() -> None:
    source = rolesanywhere.Credentials(
        "AKIDX", "secret", "token", datetime.now(UTC) + timedelta(hours=1)
    )
    credentials = botocore_credentials(RefreshingCredentials(source))
    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "AKIDX",
        "secret",
        "token",
    )
    assert "secret" not in repr(credentials)
    with pytest.raises(InvalidParameterError, match="RefreshingCredentials"):
        botocore_credentials(source)  # type: ignore[arg-type]
