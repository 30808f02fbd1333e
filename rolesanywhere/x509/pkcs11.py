"""PKCS#11 tokens: ``pkcs11:`` URIs (RFC 7512) for the certificate, the key, or both.

A URI's path attributes ``token``, ``manufacturer``, ``model``, ``serial`` and ``slot-id``
choose the token; ``object`` (the label), ``id`` and ``type`` (``cert`` or ``private``) choose
the object. Its query may carry the PIN: ``pin-value`` or ``pin-source`` (a file holding it).
With no PIN there, the user is asked on a terminal. With only a certificate URI, the key is the
private key with the certificate's ``id`` (else its label) on the same token.

Signing: RSA is PKCS#1 v1.5 over SHA-256 (``CKM_RSA_PKCS`` over the DigestInfo, which every
token has), EC is ``CKM_ECDSA`` over the SHA-256 digest, the token's raw ``r‖s`` turned into
DER. Each signature is checked against the certificate's public key before it is used.

Needs the optional ``python-pkcs11`` package (``pip install 'rolesanywhere[pkcs11]'``), imported
only when a ``pkcs11:`` URI is used. The PIN is never shown, logged or kept after login, except
with ``reuse_pin`` for a key marked always-authenticate, which needs it for every signature.
"""

from __future__ import annotations

import getpass
import glob
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_to_bytes

from rolesanywhere.errors import KeyMismatchError, TokenError, WrongPasswordError
from rolesanywhere.x509.keys import ALGORITHM_RSA, algorithm_for_public_key, verify_signature
from rolesanywhere.x509.sources import is_pkcs11_uri, redact_uri

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "DEFAULT_MODULES",
    "Pkcs11SigningKey",
    "Pkcs11Uri",
    "default_module",
    "list_certificates",
    "load_module",
    "load_token_identity",
]

#: Where p11-kit's proxy module (which loads every module the system registers) usually is.
DEFAULT_MODULES = (
    "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
    "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
    "/usr/lib64/p11-kit-proxy.so",
    "/usr/lib/p11-kit-proxy.so",
    "/usr/local/lib/p11-kit-proxy.so",
    "/opt/homebrew/lib/p11-kit-proxy.dylib",
    "/usr/local/lib/p11-kit-proxy.dylib",
)
_PATH_ATTRIBUTES = {"token", "object", "id", "type", "manufacturer", "model", "serial", "slot-id"}
_IGNORED_PATH = {"library-manufacturer", "library-description", "library-version"}
_IGNORED_PATH |= {"slot-description", "slot-manufacturer"}
_QUERY_ATTRIBUTES = {"pin-value", "pin-source", "module-path", "module-name"}
_TYPES = {"cert": "certificate", "private": "private key"}
#: DER prefix of a SHA-256 DigestInfo (RFC 8017 section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_INSTALL = "install the pkcs11 extra: pip install 'rolesanywhere[pkcs11]' (python-pkcs11)"


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI. ``str()`` and ``repr()`` never show the PIN."""

    text: str = field(repr=False)
    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    slot_id: int | None = None
    pin_value: str | None = field(default=None, repr=False)
    pin_source: str | None = None
    module_path: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Read a URI; :class:`TokenError` names what is wrong (never the PIN)."""
        shown = redact_uri(text)
        if not is_pkcs11_uri(text):
            raise TokenError(f"{shown} is not a pkcs11: URI", source=shown)
        path, _, query = text[len("pkcs11:") :].partition("?")
        values: dict[str, Any] = {}
        for part, allowed, sep in ((path, _PATH_ATTRIBUTES, ";"), (query, _QUERY_ATTRIBUTES, "&")):
            for item in filter(None, part.split(sep)):
                name, eq, raw = item.partition("=")
                name = name.lower()
                if name in _IGNORED_PATH and sep == ";":
                    continue
                if not eq or name not in allowed:
                    raise TokenError(
                        f"unknown or malformed attribute {name!r} in {shown}: use "
                        + ", ".join(sorted(allowed)),
                        source=shown,
                    )
                key = name.replace("-", "_")
                if key in values:
                    raise TokenError(f"attribute {name!r} given twice in {shown}", source=shown)
                values[key] = unquote_to_bytes(raw) if key == "id" else unquote(raw)
        if "type" in values and values["type"] not in _TYPES:
            raise TokenError(
                f"type={values['type']} in {shown} cannot sign: use type=cert or type=private",
                source=shown,
            )
        if "slot_id" in values:
            try:
                values["slot_id"] = int(values["slot_id"])
            except ValueError:
                raise TokenError(f"slot-id in {shown} is not a number", source=shown) from None
        values.pop("module_name", None)
        return cls(text, **values)

    def __str__(self) -> str:
        return redact_uri(self.text)


def default_module() -> str | None:
    """p11-kit's proxy module, where the system has one."""
    for path in DEFAULT_MODULES:
        if os.path.exists(path):
            return path
    found = sorted(glob.glob("/usr/lib/*/p11-kit-proxy.so"))
    return found[0] if found else None


# --- the module and tokens --------------------------------------------------------------------

_libs: dict[str, Any] = {}
_libs_lock = threading.Lock()


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise TokenError(f"pkcs11: URIs need the python-pkcs11 package: {_INSTALL}") from None
    return pkcs11


def load_module(path: str | None) -> Any:
    """The loaded PKCS#11 module (once per process: C_Initialize may be called only once)."""
    pkcs11 = _pkcs11()
    chosen = path or default_module()
    if chosen is None:
        raise TokenError(
            "no PKCS#11 module found: pass --pkcs11-lib PATH (for example the token vendor's "
            "module, or p11-kit-proxy.so from p11-kit)"
        )
    with _libs_lock:
        lib = _libs.get(chosen)
        if lib is None:
            if not os.path.exists(chosen):
                raise TokenError(
                    f"PKCS#11 module {chosen} does not exist: check --pkcs11-lib", source=chosen
                )
            try:
                lib = _libs[chosen] = pkcs11.lib(chosen)
            except pkcs11.PKCS11Error as exc:
                raise TokenError(
                    f"cannot load PKCS#11 module {chosen} ({type(exc).__name__}): check "
                    "--pkcs11-lib",
                    source=chosen,
                ) from None
    return lib


def _tokens(lib: Any, uri: Pkcs11Uri) -> list[Any]:
    tokens = []
    for slot in lib.get_slots(token_present=True):
        if uri.slot_id is not None and slot.slot_id != uri.slot_id:
            continue
        try:
            token = slot.get_token()
        except _pkcs11().PKCS11Error:
            continue
        if (
            (uri.token is None or token.label == uri.token)
            and (uri.manufacturer is None or token.manufacturer_id == uri.manufacturer)
            and (uri.model is None or token.model == uri.model)
            and (uri.serial is None or _serial(token) == uri.serial)
        ):
            tokens.append(token)
    return tokens


def _serial(token: Any) -> str:
    serial = token.serial
    text = serial.decode("ascii", "replace") if isinstance(serial, bytes) else str(serial)
    return text.strip()


def token_uri(token: Any) -> str:
    """The path attributes naming ``token``."""
    parts = [
        ("token", token.label), ("manufacturer", token.manufacturer_id),
        ("serial", _serial(token)), ("model", token.model),
    ]  # fmt: skip
    return "pkcs11:" + ";".join(f"{k}={quote(v.strip(), safe='')}" for k, v in parts)


def object_uri(token: Any, obj: Any, kind: str) -> str:
    """The URI naming one object of ``token`` (never a PIN)."""
    pkcs11 = _pkcs11()
    uri = token_uri(token)
    ident = _attribute(obj, pkcs11.Attribute.ID)
    if ident:
        uri += ";id=" + "".join(f"%{b:02x}" for b in ident)
    label = _attribute(obj, pkcs11.Attribute.LABEL)
    if label:
        uri += ";object=" + quote(label, safe="")
    return uri + ";type=" + kind


def _attribute(obj: Any, attribute: Any) -> Any:
    try:
        return obj[attribute]
    except (_pkcs11().PKCS11Error, KeyError, NotImplementedError):
        return None


PinPrompt = Callable[[str], str | None]


def tty_prompt(question: str) -> str | None:
    """Ask on the terminal (``None`` when standard input is not one)."""
    if not sys.stdin.isatty():
        return None
    return getpass.getpass(question, stream=sys.stderr)


def _pin(uri: Pkcs11Uri, token_label: str, prompt: PinPrompt) -> str | None:
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is not None:
        source = uri.pin_source.removeprefix("file://").removeprefix("file:")
        try:
            return Path(source).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise TokenError(
                f"cannot read the PIN file {source} ({exc.strerror or type(exc).__name__}): "
                "check pin-source",
                source=str(uri),
            ) from None
    return prompt(f"PIN for PKCS#11 token {token_label}: ")


class _Opened:
    """A token with a (logged-in, when needed) session, shared by the certificate and key."""

    def __init__(self, token: Any, session: Any, pin: str | None) -> None:
        self.token, self.session, self.pin = token, session, pin


def _open(lib: Any, uri: Pkcs11Uri, prompt: PinPrompt, keep_pin: bool) -> _Opened:
    pkcs11 = _pkcs11()
    tokens = _tokens(lib, uri)
    if not tokens:
        raise TokenError(f"no token matches {uri}: check the token attributes", source=str(uri))
    if len(tokens) > 1:
        names = ", ".join(token_uri(t) for t in tokens)
        raise TokenError(f"several tokens match {uri}: {names}", source=str(uri))
    token = tokens[0]
    label = token.label.strip()
    pin = None
    if token.flags & pkcs11.TokenFlag.LOGIN_REQUIRED:
        pin = _pin(uri, label, prompt)
        if pin is None:
            raise TokenError(
                f"token {label} needs a PIN: add pin-value=... or pin-source=FILE to the "
                "pkcs11: URI, or run on a terminal to be asked",
                source=str(uri),
            )
    session = _login(token, pin, uri)
    return _Opened(token, session, pin if keep_pin else None)


def _login(token: Any, pin: str | None, uri: Pkcs11Uri) -> Any:
    """A session of ``token``, logged in with ``pin`` (when given). Login is per process in
    PKCS#11: a token another session of this process logged into is used as it is."""
    pkcs11 = _pkcs11()
    label = token.label.strip()
    try:
        return token.open(user_pin=pin)
    except pkcs11.UserAlreadyLoggedIn:
        return token.open()
    except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
        raise WrongPasswordError(
            f"wrong PIN for token {label} ({uri}): check pin-value or pin-source",
            source=str(uri),
        ) from None
    except pkcs11.PinLocked:
        raise TokenError(
            f"the PIN of token {label} is locked: unlock it", source=str(uri)
        ) from None
    except pkcs11.PKCS11Error as exc:
        raise TokenError(
            f"cannot open token {label} ({type(exc).__name__})", source=str(uri)
        ) from None


def _find(opened: _Opened, uri: Pkcs11Uri, kind: str, **extra: Any) -> list[Any]:
    pkcs11 = _pkcs11()
    Attribute, ObjectClass = pkcs11.Attribute, pkcs11.ObjectClass
    classes = {"cert": ObjectClass.CERTIFICATE, "private": ObjectClass.PRIVATE_KEY}
    template: dict[Any, Any] = {Attribute.CLASS: classes[kind]}
    label = extra.get("label", uri.object)
    ident = extra.get("id", uri.id)
    if label is not None:
        template[Attribute.LABEL] = label
    if ident is not None:
        template[Attribute.ID] = ident
    return list(opened.session.get_objects(template))


def _one(found: Sequence[Any], opened: _Opened, uri: Pkcs11Uri, kind: str) -> Any:
    what = _TYPES[kind]
    if not found:
        raise TokenError(
            f"no {what} on token {opened.token.label.strip()} matches {uri}: check id= and "
            "object= (pkcs11-tool --list-objects shows them)",
            source=str(uri),
        )
    if len(found) > 1:
        names = " ".join(object_uri(opened.token, o, kind) for o in found)
        raise TokenError(
            f"{len(found)} objects match {uri}, add id= or object= to choose one: {names}",
            source=str(uri),
        )
    return found[0]


# --- the signing key ----------------------------------------------------------------------------


class Pkcs11SigningKey:
    """A private key on a token, signing through its open session.

    ``public_key()`` is the certificate's: every signature is verified with it before it is
    returned, so a token that signs with another key fails with :class:`KeyMismatchError`.
    """

    def __init__(
        self,
        key: Any,
        public_key: PublicKeyTypes,
        label: str,
        *,
        always_authenticate: bool = False,
        pin: str | None = None,
        prompt: PinPrompt = tty_prompt,
    ) -> None:
        self._key = key
        self._public = public_key
        self._algorithm = algorithm_for_public_key(public_key, source=label)
        self._label = label
        self._always = always_authenticate
        self._pin = pin
        self._prompt = prompt
        self._lock = threading.Lock()

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def _context_pin(self) -> str | None:
        if not self._always:
            return None
        if self._pin is not None:
            return self._pin
        typed = self._prompt(f"PIN to sign with {self._label}: ")
        if typed is None:
            raise TokenError(
                f"key {self._label} asks for the PIN at every signature "
                "(always-authenticate): pass --reuse-pin, or run on a terminal",
                source=self._label,
            )
        return typed

    def sign(self, data: bytes) -> bytes:
        pkcs11 = _pkcs11()
        digest = hashlib.sha256(data).digest()
        rsa = self._algorithm == ALGORITHM_RSA
        mechanism = pkcs11.Mechanism.RSA_PKCS if rsa else pkcs11.Mechanism.ECDSA
        payload = _SHA256_DIGEST_INFO + digest if rsa else digest
        with self._lock:
            try:
                raw = self._key.sign(payload, mechanism=mechanism, pin=self._context_pin())
            except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
                raise WrongPasswordError(
                    f"wrong PIN to sign with {self._label}", source=self._label
                ) from None
            except pkcs11.UserNotLoggedIn:
                raise TokenError(
                    f"key {self._label} asks for the PIN at every signature "
                    "(always-authenticate): pass --reuse-pin",
                    source=self._label,
                ) from None
            except pkcs11.PKCS11Error as exc:
                raise TokenError(
                    f"the token could not sign with {self._label} ({type(exc).__name__})",
                    source=self._label,
                ) from None
        signature = raw if rsa else _der_ecdsa(raw)
        if not verify_signature(self._public, self._algorithm, data, signature):
            raise KeyMismatchError(
                f"the token signed with a key that is not the certificate's ({self._label}): "
                "choose the key with the certificate's id= or object=",
                source=self._label,
            )
        return signature

    def __repr__(self) -> str:
        return f"Pkcs11SigningKey(algorithm={self._algorithm!r}, key={self._label!r})"


def _der_ecdsa(raw: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    half = len(raw) // 2
    return encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


# --- loading ------------------------------------------------------------------------------------


def _certificate(obj: Any) -> x509.Certificate:
    from cryptography import x509

    return x509.load_der_x509_certificate(obj[_pkcs11().Attribute.VALUE])


def load_token_identity(
    certificate: object,
    private_key: object,
    *,
    pkcs11_lib: str | None = None,
    reuse_pin: bool = False,
    file_certificates: Callable[[], list[x509.Certificate]] | None = None,
    prompt: PinPrompt = tty_prompt,
) -> tuple[x509.Certificate, Pkcs11SigningKey, list[x509.Certificate], str]:
    """(leaf, key, other certificates, source name) when the certificate, the key or both are
    ``pkcs11:`` URIs. ``file_certificates`` reads the certificate file when only the key is on
    a token. The caller picks the chain (the intermediates given, or the other certificates)."""
    cert_uri = Pkcs11Uri.parse(certificate) if is_pkcs11_uri(certificate) else None
    key_uri = Pkcs11Uri.parse(private_key) if is_pkcs11_uri(private_key) else None
    first = cert_uri or key_uri
    assert first is not None
    if key_uri is None and private_key is not None:
        raise TokenError(
            f"the certificate is on a token ({cert_uri}), so the key must be too: pass a pkcs11: "
            "URI as the private key, or none to use the key with the certificate's id",
            source=str(cert_uri),
        )
    lib = load_module(pkcs11_lib or first.module_path)
    others: list[x509.Certificate] = []
    cert_opened: _Opened | None = None
    cert_obj = None
    if cert_uri is not None:
        cert_opened = _open(lib, cert_uri, prompt, reuse_pin)
        if cert_uri.type not in (None, "cert"):
            raise TokenError(f"{cert_uri} names a {cert_uri.type} object, not a certificate")
        cert_obj = _one(_find(cert_opened, cert_uri, "cert"), cert_opened, cert_uri, "cert")
        leaf = _certificate(cert_obj)
        source = str(cert_uri)
    else:
        assert file_certificates is not None
        certs = file_certificates()
        leaf, others = certs[0], certs[1:]
        source = ""
    if key_uri is not None:
        if key_uri.type not in (None, "private"):
            raise TokenError(f"{key_uri} names a {key_uri.type} object, not a private key")
        opened = _open(lib, key_uri, prompt, reuse_pin)
        key_obj = _one(_find(opened, key_uri, "private"), opened, key_uri, "private")
        key_label = str(key_uri)
    else:
        assert cert_opened is not None
        assert cert_uri is not None
        opened = cert_opened
        pk = _pkcs11().Attribute
        ident, label = _attribute(cert_obj, pk.ID), _attribute(cert_obj, pk.LABEL)
        found = (
            _find(opened, cert_uri, "private", id=ident, label=None)
            if ident
            else _find(opened, cert_uri, "private", id=None, label=label)
        )
        key_obj = _one(found, opened, cert_uri, "private")
        key_label = object_uri(opened.token, key_obj, "private")
    if not source:
        source = key_label
    always = bool(_attribute(key_obj, _pkcs11().Attribute.ALWAYS_AUTHENTICATE))
    key = Pkcs11SigningKey(
        key_obj,
        leaf.public_key(),
        key_label,
        always_authenticate=always,
        pin=opened.pin if reuse_pin and always else None,
        prompt=prompt,
    )
    _check_modulus(key_obj, leaf, key_label)
    return leaf, key, others, source


def _check_modulus(key_obj: Any, leaf: x509.Certificate, label: str) -> None:
    """An RSA key whose modulus the token shows must be the certificate's (EC keys are checked
    at the first signature)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = leaf.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return
    modulus = _attribute(key_obj, _pkcs11().Attribute.MODULUS)
    if modulus and int.from_bytes(modulus, "big") != public.public_numbers().n:
        raise KeyMismatchError(
            f"private key {label} does not match the certificate: choose the key with the "
            "certificate's id= or object=",
            source=label,
        )


def list_certificates(
    uri_text: str, *, pkcs11_lib: str | None = None, prompt: PinPrompt = tty_prompt
) -> list[tuple[x509.Certificate, str]]:
    """Every certificate the URI matches, with the URI naming each (``read-certificate-data``).
    Logs in only when the URI carries a PIN."""
    uri = Pkcs11Uri.parse(uri_text)
    lib = load_module(pkcs11_lib or uri.module_path)
    no_prompt: PinPrompt = lambda _question: None  # noqa: E731
    found: list[tuple[x509.Certificate, str]] = []
    for token in _tokens(lib, uri):
        opened = _open_listing(uri, token, no_prompt)
        for obj in _find(opened, uri, "cert"):
            found.append((_certificate(obj), object_uri(token, obj, "cert")))
        opened.session.close()
    found.sort(key=lambda pair: pair[0].not_valid_after_utc)
    return found


def _open_listing(uri: Pkcs11Uri, token: Any, prompt: PinPrompt) -> _Opened:
    return _Opened(token, _login(token, _pin(uri, token.label.strip(), prompt), uri), None)


def describe_certificates(found: Iterable[tuple[x509.Certificate, str]]) -> str:
    """``read-certificate-data``'s listing, as the Go helper prints it."""
    from cryptography.hazmat.primitives import serialization

    lines = []
    for index, (cert, uri) in enumerate(found, 1):
        der = cert.public_bytes(serialization.Encoding.DER)
        fingerprint = hashlib.sha1(der, usedforsecurity=False).hexdigest()
        lines.append(f'{index}) {fingerprint} "{cert.subject.rfc4514_string()}"\n\tURI: {uri}\n')
    return "Matching identities\n" + "".join(lines) if lines else "No matching identities\n"
