"""Exception hierarchy.

Every error the library raises derives from :class:`RolesAnywhereError`, and every exception
class of the package is defined here (private ones internal to a module aside). Messages are one
line, say what is wrong and how to fix it, and never contain secrets (private keys, passwords,
PINs, secret access keys or session tokens). The package exports the user-facing ones from
``rolesanywhere``; the rest (transport, tailer, shipper, configuration and command-line errors)
are imported from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "AccessDeniedError",
    "AwsConfigError",
    "CertificateValidityError",
    "CredentialProcessError",
    "CredentialsError",
    "CredentialsFileError",
    "IdentityError",
    "InvalidArgumentTypeError",
    "InvalidParameterError",
    "KeyMismatchError",
    "NetworkError",
    "PasswordRequiredError",
    "PositionsLostError",
    "ProtocolError",
    "RequestTimeoutError",
    "ResourceNotFoundError",
    "RolesAnywhereError",
    "ServiceError",
    "ServiceValidationError",
    "ShipConfigError",
    "ShipperClosedError",
    "ShipperInterruptedError",
    "SourceError",
    "TailError",
    "ThrottlingError",
    "TokenError",
    "TransportFailure",
    "UnsignableBodyError",
    "UnsupportedKeyError",
    "UsageError",
    "WrongPasswordError",
]


#: Brackets a parameter's name in a message (:func:`parameter`); never shown.
PARAMETER_MARK = "\x1f"


def parameter(name: str) -> str:
    """``name`` marked, in an error message, as the name of a parameter.

    ``str(error)`` shows the Python keyword argument (``duration_seconds must be between 900
    and 43200 seconds``); a front end shows its own name for it with
    :meth:`RolesAnywhereError.naming` (the command line: ``--session-duration must be…``).
    """
    return f"{PARAMETER_MARK}{name}{PARAMETER_MARK}"


class RolesAnywhereError(Exception):
    """Base class of every error raised by this library.

    Messages name the parameters to fix by their Python names (see :func:`parameter`).
    """

    def __str__(self) -> str:
        return self.naming(str)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def naming(self, name: Callable[[str], str]) -> str:
        """The message, each parameter it names shown as ``name(python_name)``."""
        parts = self._message().split(PARAMETER_MARK)
        return "".join(name(part) if odd else part for odd, part in _alternating(parts))

    def _message(self) -> str:
        """The message with its parameters marked (subclasses that format theirs override)."""
        return super().__str__()


def _alternating(parts: list[str]) -> list[tuple[bool, str]]:
    # An unpaired mark (a stray one in text from elsewhere) leaves its piece as it is.
    paired = len(parts) % 2 == 1
    return [
        (index % 2 == 1 and (paired or index < len(parts) - 1), part)
        for index, part in enumerate(parts)
    ]


class InvalidArgumentTypeError(RolesAnywhereError, TypeError):
    """An argument is of a type the function does not accept (the message names those it does)."""


# --- identity (certificates, keys, chains) ---------------------------------------------------


class IdentityError(RolesAnywhereError):
    """A certificate, private key or chain could not be used.

    ``source`` names where the material came from (a path, ``env:NAME``, ``-`` for stdin or
    ``<bytes>``), never its content.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class SourceError(IdentityError):
    """The file, environment variable or stream is missing, unreadable or holds nothing usable."""


class UnsupportedKeyError(IdentityError):
    """The key type or curve is not one Roles Anywhere accepts."""


class PasswordRequiredError(IdentityError):
    """The private key is encrypted and no password was given."""


class WrongPasswordError(IdentityError):
    """The password given does not decrypt the private key or PKCS#12 file."""


class KeyMismatchError(IdentityError):
    """The private key does not belong to the certificate."""


class TokenError(IdentityError):
    """A PKCS#11 token, its module or an object on it could not be used (no such token or
    object, several matching objects, a wrong or missing PIN, the module not installed)."""


class CertificateValidityError(IdentityError):
    """The certificate is expired or not yet valid."""


# --- parameters checked before any network call ----------------------------------------------


class InvalidParameterError(RolesAnywhereError, ValueError):
    """An ARN, region, duration, session name or endpoint is malformed or inconsistent."""


class AwsConfigError(InvalidParameterError):
    """The AWS config or credentials file does not give usable credentials for the profile."""


class ShipConfigError(InvalidParameterError):
    """A configuration problem, one line: ``location: what is wrong: how to fix it``."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.problem = message


class UsageError(RolesAnywhereError):
    """Bad command-line usage; reported as one line, exit status 1."""


# --- the service ------------------------------------------------------------------------------


class ServiceError(RolesAnywhereError):
    """The service answered with an error status.

    ``status`` is the HTTP status, ``error_type`` the AWS error code (``AccessDeniedException``…)
    and ``request_id`` the ``x-amzn-RequestId`` when the service sent one. ``hint`` says what to
    check, when the answer tells (an untrusted certificate, a missing resource, a server fault).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.hint = hint

    def _message(self) -> str:
        kind = self.error_type or "ServiceError"
        text = f"{kind} (HTTP {self.status}): {self.message}"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        if self.hint:
            text += f": {self.hint}"
        return text


class AccessDeniedError(ServiceError):
    """403: the signature, certificate, trust anchor or role was refused."""


class ServiceValidationError(ServiceError):
    """400: the service found the request malformed."""


class ResourceNotFoundError(ServiceError):
    """404: the trust anchor, profile or role does not exist."""


class ThrottlingError(ServiceError):
    """429: too many requests; retried automatically."""


class CredentialsError(RolesAnywhereError):
    """The service's answer held no usable credentials."""


class CredentialsFileError(RolesAnywhereError):
    """The AWS shared credentials file could not be written (``update``)."""


class CredentialProcessError(CredentialsError):
    """A ``credential_process`` command failed, timed out or printed unusable output."""


# --- transport --------------------------------------------------------------------------------


class NetworkError(RolesAnywhereError):
    """The endpoint could not be reached (DNS, refused connection, TLS failure…)."""


class RequestTimeoutError(NetworkError):
    """The endpoint did not answer within the configured timeout."""


class TransportFailure(RolesAnywhereError):
    """No usable answer: ``timed_out`` tells a timeout from any other failure.

    ``reached`` is true when the endpoint answered but its answer was unusable (too large, not
    HTTP); ``hint`` says what to check, when the failure tells (TLS, proxy, size).
    """

    def __init__(
        self, detail: str, *, timed_out: bool, reached: bool = False, hint: str | None = None
    ) -> None:
        super().__init__(detail)
        self.timed_out = timed_out
        self.reached = reached
        self.hint = hint


class ProtocolError(RolesAnywhereError):
    """The peer's bytes are not an acceptable HTTP/1.1 response (or it hung up too early).

    Raised by :mod:`rolesanywhere.session.http11`; the stdlib transport turns it into a
    :class:`TransportFailure`.
    """


# --- SigV4 signing with httpx -----------------------------------------------------------------


class UnsignableBodyError(RolesAnywhereError):
    """The body is a one-shot stream: it can neither be hashed and replayed nor sent unsigned."""


# --- log shipping -----------------------------------------------------------------------------


class TailError(RolesAnywhereError):
    """The tailer's state directory or position database cannot be used."""


class PositionsLostError(TailError):
    """The saved positions of a state directory used before are missing, empty or damaged.

    Resuming is impossible: reading the files from their end would skip what was written since
    the last run, from their head would send again what was delivered. The caller chooses with
    ``reset_positions="head"`` or ``"end"``. ``problem`` says what is wrong with the database.
    """

    def __init__(self, problem: str, db_path: str, state_dir: str) -> None:
        self.problem = problem
        self.db_path = db_path
        self.state_dir = state_dir
        super().__init__(
            f"position database {db_path!r} {problem}, but state directory {state_dir!r} was "
            "used before: the saved positions are lost; choose reset_positions='head' (read the "
            "files again from their beginning: duplicates) or reset_positions='end' (start at "
            "their end: lines written since the last run are skipped)"
        )


class ShipperClosedError(RolesAnywhereError):
    """The shipper is closed (or closing): nothing more can be submitted."""


class ShipperInterruptedError(RolesAnywhereError):
    """``submit(..., stop=event)`` gave up waiting for room because ``event`` was set.

    Not every event of that submission was queued: its token never settles (a tailer sends
    its lines again after a restart). What was queued is still sent.
    """


# --- text from elsewhere ----------------------------------------------------------------------

#: How long :func:`safe_text` lets a line get by default.
SAFE_TEXT_LIMIT = 400
_BLANKS = re.compile(r"[ \t\n\r\f\v]+")


def safe_text(text: object, limit: int = SAFE_TEXT_LIMIT) -> str:
    """Text from a server, a subprocess or a file as one line that is safe on a terminal.

    Runs of ordinary white space (newlines included) become one space; every other character
    that is not printable (C0 and C1 controls, DEL, bidi overrides, lone surrogates…) becomes a
    ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` escape, so no escape sequence reaches the
    terminal. The result is at most ``limit`` characters, ending in "…" when cut. ``bytes`` are
    read as UTF-8 (bad bytes replaced).
    """
    head = limit * 4 + 4  # only the head can be shown: bound the work on a large body
    if isinstance(text, bytes | bytearray | memoryview):
        cut = len(text) > head
        text = bytes(text[:head]).decode("utf-8", "replace")
    else:
        text = text if isinstance(text, str) else str(text)
        cut = len(text) > head
    line = _BLANKS.sub(" ", text[:head]).strip(" ") + ("…" if cut else "")
    if line.isprintable():
        return line if len(line) <= limit else line[: limit - 1] + "…"
    out: list[str] = []
    size = 0
    for ch in line:
        piece = ch if ch.isprintable() else _escape(ord(ch))
        if size + len(piece) > limit:
            while out and size > limit - 1:
                size -= len(out.pop())
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
