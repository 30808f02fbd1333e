"""Credentials of an AWS profile (``rolesanywhere ship --aws-profile NAME``), as the SDKs find them.

:func:`credential_source_for_profile` reads the shared config file (``$AWS_CONFIG_FILE``, else
``~/.aws/config``: sections ``[default]`` and ``[profile NAME]``) and the shared credentials
file (``$AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``: sections ``[NAME]``) and
returns a :class:`CredentialProvider`: a callable returning
:class:`~rolesanywhere.credentials.Credentials`, ready for
:class:`~rolesanywhere.session.refresh.RefreshingCredentials`, with a
:attr:`~CredentialProvider.description` for status lines and the profile's ``region``.

Where the credentials come from, first match wins (the botocore order):

1. ``aws_access_key_id`` / ``aws_secret_access_key`` (and ``aws_session_token``) in the
   credentials file: static keys.
2. ``credential_process`` (config file, or credentials file):

   - ``aws_signing_helper credential-process …`` or ``rolesanywhere credential-process …`` (any
     path to the binary): its arguments are parsed with the very flags of our
     ``credential-process`` command (:func:`~rolesanywhere.profiles.settings.parse_helper_command`)
     and the credentials are obtained **in-process** with a
     :class:`~rolesanywhere.session.client.RolesAnywhereClient` over an
     :class:`~rolesanywhere.x509.loader.IdentityLoader` (certificate changes are picked up; no
     subprocess). Flags this version cannot honour in-process (``--pkcs11-lib``…) or arguments
     it cannot parse make it fall back to running the command.
   - any other command is run as the SDKs run it: split with :func:`shlex.split` (no shell),
     no stdin, a timeout (60 s), its stdout parsed as
     ``{"Version":1,"AccessKeyId":…,"SecretAccessKey":…,"SessionToken":…,"Expiration":…}``
     (``Version`` must be 1; no or empty ``Expiration`` means the keys do not expire), each
     stderr line logged (logger ``rolesanywhere.profiles.awsconfig``, level INFO). A failure is a
     one-line :class:`CredentialProcessError` with the exit status and the last stderr line;
     stdout is never shown (it may hold secrets), nor are the command's arguments (they may
     hold a password). Re-running before expiry is ``RefreshingCredentials``'s job.
3. Static keys in the config file.

Profiles that only use ``role_arn``/``source_profile``, SSO or web identity are refused with a
message: this module implements none of them. File syntax is read as tolerantly as the SDKs
read it: ``#`` and ``;`` comment lines, comments after a value when preceded by whitespace,
indented sub-properties (skipped), repeated sections merged (later keys win), unparsable lines
skipped. Secrets (keys, tokens, passwords, a process's stdout) never appear in a message,
a ``repr`` or a log line.

Imports stay light (stdlib and modules of this package that import neither ``httpx`` nor
``cryptography``): the client and the identity loader, which need
``cryptography`` and ``httpx``, are imported when a Roles Anywhere provider is built.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import (
    AwsConfigError,
    CredentialProcessError,
    InvalidParameterError,
    safe_text,
)
from rolesanywhere.profiles.credfile import credentials_file_path, expand_home
from rolesanywhere.profiles.settings import (
    IdentitySettings,
    flag_namer,
    parse_helper_command,
    program_name,
)

if TYPE_CHECKING:
    from rolesanywhere.session.client import RolesAnywhereClient

__all__ = [
    "DEFAULT_PROCESS_TIMEOUT",
    "AwsProfile",
    "CredentialProvider",
    "ProcessCredentialSource",
    "config_file_path",
    "credential_source_for_identity",
    "credential_source_for_profile",
    "load_profile",
    "parse_ini",
]

LOGGER_NAME = __name__

#: Seconds a ``credential_process`` command may run before it is killed.
DEFAULT_PROCESS_TIMEOUT = 60.0

_INLINE_COMMENT = re.compile(r"\s[#;].*$")
_LAST_LINE_LIMIT = 200

Kind = Literal["rolesanywhere", "process", "static"]


# --- the provider handed to RefreshingCredentials -------------------------------------------------


class CredentialProvider:
    """A callable returning :class:`Credentials`, plus what a status line needs.

    ``kind`` is ``"rolesanywhere"`` (CreateSession in-process), ``"process"`` (a
    ``credential_process`` subprocess) or ``"static"``; ``description`` says where the
    credentials come from (never a secret); ``region`` is the profile's ``region``, if any;
    ``client`` is the Roles Anywhere client for ``kind == "rolesanywhere"``.
    Pass it to :class:`~rolesanywhere.session.refresh.RefreshingCredentials`; :meth:`close`
    releases the
    client's connections.
    """

    def __init__(
        self,
        fetch: Callable[[], Credentials],
        *,
        kind: Kind,
        description: str,
        region: str | None = None,
        client: RolesAnywhereClient | None = None,
    ) -> None:
        self._fetch = fetch
        self.kind: Kind = kind
        self.description = description
        self.region = region
        self.client = client

    def __call__(self) -> Credentials:
        return self._fetch()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CredentialProvider(kind={self.kind!r}, description={self.description!r})"


def credential_source_for_identity(
    settings: IdentitySettings,
    *,
    environ: Mapping[str, str] | None = None,
    region: str | None = None,
    description: str | None = None,
) -> CredentialProvider:
    """A provider calling CreateSession in-process with ``settings`` (validated first), for
    long-running callers: a throttle is left to their refresher's backoff
    (:data:`~rolesanywhere.retry.LONG_RUNNING`)."""
    from rolesanywhere.retry import LONG_RUNNING

    settings.validate()
    client = settings.client(environ=environ, retry=LONG_RUNNING)
    return CredentialProvider(
        client.create_session,
        kind="rolesanywhere",
        description=description or settings.describe(),
        region=region,
        client=client,
    )


# --- credential_process as a subprocess -----------------------------------------------------------


def _parse_expiration(raw: object, prog: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise CredentialProcessError(
            f"credential_process {prog} printed an Expiration that is not a string: "
            'expected an RFC 3339 time such as "2026-11-27T05:00:00Z"'
        )
    text = raw.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CredentialProcessError(
            f"credential_process {prog} printed Expiration '{safe_text(raw, 40)}', which is "
            'not an RFC 3339 time: expected e.g. "2026-11-27T05:00:00Z"'
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def parse_process_output(stdout: bytes, prog: str) -> Credentials:
    """Credentials from a ``credential_process`` stdout; errors never quote the output."""
    try:
        data = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise CredentialProcessError(
            f"credential_process {prog} did not print a JSON object on stdout (not shown: it "
            'may hold secrets): expected {"Version": 1, "AccessKeyId": ..., '
            '"SecretAccessKey": ..., "SessionToken": ..., "Expiration": ...}'
        )
    version = data.get("Version")
    if version != 1 or isinstance(version, bool):
        shown = repr(version) if isinstance(version, int | float | type(None)) else "a string"
        raise CredentialProcessError(
            f"credential_process {prog} printed Version {shown}: only Version 1 is "
            "supported; fix the command's output"
        )
    values: dict[str, str] = {}
    for name in ("AccessKeyId", "SecretAccessKey"):
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise CredentialProcessError(
                f"credential_process {prog} printed no {name} (a non-empty string is required)"
            )
        values[name] = value
    token = data.get("SessionToken")
    if token is not None and not isinstance(token, str):
        raise CredentialProcessError(
            f"credential_process {prog} printed a SessionToken that is not a string"
        )
    expiration = _parse_expiration(data.get("Expiration"), prog)
    raw_expiration = data.get("Expiration")
    return Credentials(
        access_key_id=values["AccessKeyId"],
        secret_access_key=values["SecretAccessKey"],
        session_token=token or None,
        expiration=expiration,
        expiration_text=raw_expiration if expiration is not None else None,
    )


class ProcessCredentialSource:
    """Runs a ``credential_process`` command on every call, as the AWS SDKs run it.

    ``command`` is a string (split with :func:`shlex.split`, no shell) or an argv list.
    ``environ`` replaces the child's environment (default: this process's).
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        timeout: float = DEFAULT_PROCESS_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise AwsConfigError(
                    f"credential_process cannot be split into arguments ({exc}): check its quotes"
                ) from None
        else:
            argv = list(command)
        if not argv or not argv[0]:
            raise AwsConfigError("credential_process is empty: give the command to run")
        self.argv = argv
        self.timeout = timeout
        self._env = None if environ is None else dict(environ)
        #: The program as messages show it (never the arguments: they may hold a password).
        self.prog = argv[0]
        #: How many times the command was run.
        self.runs = 0

    def __repr__(self) -> str:
        return f"ProcessCredentialSource(prog={self.prog!r}, timeout={self.timeout:g})"

    def __call__(self) -> Credentials:
        status, stdout, stderr = self._run()
        lines = [
            safe_text(line, _LAST_LINE_LIMIT)
            for line in stderr.decode("utf-8", "replace").splitlines()
            if line.strip()
        ]
        if lines:
            import logging

            log = logging.getLogger(LOGGER_NAME)
            for line in lines:
                log.info("credential_process %s: %s", self.prog, line)
        if status != 0:
            how = (
                f"was killed by signal {-status}"
                if status < 0
                else f"failed with exit status {status}"
            )
            last = lines[-1] if lines else "(nothing on stderr)"
            raise CredentialProcessError(f"credential_process {self.prog} {how}: {last}")
        return parse_process_output(stdout, self.prog)

    def _run(self) -> tuple[int, bytes, bytes]:
        self.runs += 1
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                start_new_session=posix,
            )
        except FileNotFoundError:
            raise CredentialProcessError(
                f"credential_process {self.prog} not found: check the path in credential_process"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise CredentialProcessError(
                f"credential_process {self.prog} cannot be run ({reason}): check that it is "
                "an executable file"
            ) from None
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc, posix)
            raise CredentialProcessError(
                f"credential_process {self.prog} did not finish within {self.timeout:g} s and "
                "was killed: check that it does not wait for input (it gets no stdin)"
            ) from None
        except BaseException:
            self._kill(proc, posix)
            raise
        return proc.returncode, stdout, stderr

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], posix: bool) -> None:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            proc.kill()
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild that left the group holds the pipes
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()


# --- the shared files -----------------------------------------------------------------------------


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """Sections of an AWS shared config/credentials file: ``{section: {key: value}}``.

    Section names are stripped; keys are lower-cased; values stripped of comments that follow
    whitespace; repeated sections merge (later keys win); indented lines (sub-properties of
    ``s3 =`` and the like) and lines that parse as nothing are skipped, as the SDKs do.
    """
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            end = stripped.find("]")
            if end < 0:
                current = None
                continue
            current = sections.setdefault(stripped[1:end].strip(), {})
            continue
        if current is None or raw[:1] in (" ", "\t") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        key = key.strip().lower()
        if key:
            current[key] = _INLINE_COMMENT.sub("", value).strip()
    return sections


def config_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$AWS_CONFIG_FILE``, else ``~/.aws/config``."""
    env = os.environ if environ is None else environ
    return expand_home(env.get("AWS_CONFIG_FILE") or "~/.aws/config", env)


def _read_ini(path: Path) -> dict[str, dict[str, str]] | None:
    """The file's sections, ``None`` when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AwsConfigError(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}: fix its permissions"
        ) from None
    return parse_ini(data.decode("utf-8", "replace"))


def _config_profiles(sections: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    profiles: dict[str, dict[str, str]] = {}
    if "default" in sections:
        profiles["default"] = dict(sections["default"])
    for name, values in sections.items():
        words = name.split(None, 1)
        if len(words) == 2 and words[0] == "profile":
            profiles.setdefault(words[1].strip(), {}).update(values)
    return profiles


@dataclass(frozen=True, slots=True)
class AwsProfile:
    """One profile's settings from both files (``repr`` shows no value: they may be secret)."""

    name: str
    config_path: Path
    credentials_path: Path
    #: Keys of ``[profile NAME]`` (or ``[default]``) in the config file; ``None``: no section.
    config: dict[str, str] | None = field(repr=False)
    #: Keys of ``[NAME]`` in the credentials file; ``None``: no section.
    credentials: dict[str, str] | None = field(repr=False)

    @property
    def region(self) -> str | None:
        for values in (self.config, self.credentials):
            if values and values.get("region"):
                return values["region"]
        return None

    def get(self, key: str) -> tuple[str, Path] | None:
        """``(value, file)`` of ``key``: the credentials file first, then the config file."""
        for values, path in (
            (self.credentials, self.credentials_path),
            (self.config, self.config_path),
        ):
            if values and values.get(key):
                return values[key], path
        return None


def _names(profiles: Mapping[str, object] | None) -> str:
    if profiles is None:
        return "file not found"
    return "profiles: " + (", ".join(sorted(profiles)) or "none")


def load_profile(
    name: str | None = None, *, environ: Mapping[str, str] | None = None
) -> AwsProfile:
    """Find profile ``name`` (default ``$AWS_PROFILE``, else ``default``) in both files."""
    env = os.environ if environ is None else environ
    profile = name or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    config_path = config_file_path(env)
    credentials_path = credentials_file_path(env)
    config_sections = _read_ini(config_path)
    config_profiles = None if config_sections is None else _config_profiles(config_sections)
    credentials_profiles = _read_ini(credentials_path)
    config = (config_profiles or {}).get(profile)
    credentials = (credentials_profiles or {}).get(profile)
    if config is None and credentials is None:
        raise AwsConfigError(
            f"AWS profile {profile!r} not found in {config_path} ({_names(config_profiles)}) "
            f"nor in {credentials_path} ({_names(credentials_profiles)}): add "
            f"[profile {profile}] to {config_path} or pass an existing profile"
        )
    return AwsProfile(profile, config_path, credentials_path, config, credentials)


def _static(
    values: Mapping[str, str], profile: AwsProfile, path: Path
) -> CredentialProvider | None:
    key_id = values.get("aws_access_key_id")
    secret = values.get("aws_secret_access_key")
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        missing = "aws_access_key_id" if not key_id else "aws_secret_access_key"
        raise AwsConfigError(
            f"AWS profile {profile.name!r} in {path} has static keys without {missing}: "
            "add it, or remove the other key"
        )
    credentials = Credentials(key_id, secret, values.get("aws_session_token") or None)
    return CredentialProvider(
        lambda: credentials,
        kind="static",
        description=f"AWS profile {profile.name!r}: static access key from {path}",
        region=profile.region,
    )


_UNSUPPORTED_PROFILE_KEYS = {
    "role_arn": "role_arn/source_profile (AssumeRole)",
    "sso_session": "IAM Identity Center (SSO)",
    "sso_start_url": "IAM Identity Center (SSO)",
    "web_identity_token_file": "web identity",
    "credential_source": "credential_source",
}


def credential_source_for_profile(
    name: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_PROCESS_TIMEOUT,
) -> CredentialProvider:
    """The :class:`CredentialProvider` for AWS profile ``name`` (see the module docstring).

    Raises :class:`AwsConfigError` when the profile is missing or holds no usable credentials.
    """
    env = os.environ if environ is None else environ
    profile = load_profile(name, environ=env)
    if profile.credentials is not None:
        found = _static(profile.credentials, profile, profile.credentials_path)
        if found is not None:
            return found
    process = profile.get("credential_process")
    if process is not None:
        return _process_provider(process[0], process[1], profile, environ, timeout)
    if profile.config is not None:
        found = _static(profile.config, profile, profile.config_path)
        if found is not None:
            return found
    for key, what in _UNSUPPORTED_PROFILE_KEYS.items():
        if profile.get(key) is not None:
            raise AwsConfigError(
                f"AWS profile {profile.name!r} uses {what}, which rolesanywhere does not "
                "support: give it a credential_process (e.g. aws_signing_helper "
                "credential-process ...) or use the Roles Anywhere flags"
            )
    raise AwsConfigError(
        f"AWS profile {profile.name!r} has no credentials in {profile.config_path} or "
        f"{profile.credentials_path}: add credential_process = aws_signing_helper "
        "credential-process ... to it"
    )


def _process_provider(
    command: str,
    path: Path,
    profile: AwsProfile,
    environ: Mapping[str, str] | None,
    timeout: float,
) -> CredentialProvider:
    where = f"AWS profile {profile.name!r} ({path})"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise AwsConfigError(
            f"credential_process of {where} cannot be split into arguments ({exc}): "
            "check its quotes"
        ) from None
    if not argv:
        raise AwsConfigError(f"credential_process of {where} is empty: give the command to run")
    prog = program_name(argv[0])
    parsed = parse_helper_command(argv)
    if isinstance(parsed, IdentitySettings):
        try:
            return credential_source_for_identity(
                parsed,
                environ=environ,
                region=profile.region,
                description=(
                    f"{where}: {prog} credential-process run in-process, role {parsed.role_arn}"
                ),
            )
        except InvalidParameterError as exc:  # its flags are wrong: name them
            raise AwsConfigError(
                f"credential_process of {where}: {exc.naming(flag_namer())}"
            ) from None
    note = ""
    if isinstance(parsed, str):
        import logging

        logging.getLogger(LOGGER_NAME).warning(
            "%s: %s credential-process runs as a subprocess: %s", where, prog, parsed
        )
        note = f" (a subprocess: {parsed})"
    source = ProcessCredentialSource(argv, timeout=timeout, environ=environ)
    return CredentialProvider(
        source,
        kind="process",
        description=f"{where}: credential_process {prog}{note}",
        region=profile.region,
    )
