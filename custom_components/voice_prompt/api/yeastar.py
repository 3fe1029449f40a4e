"""Async client for the Yeastar S-Series PBX API v1.0.0.

No Home Assistant imports: the caller injects an ``aiohttp.ClientSession``.
Every request is ``POST https://<pbx>:<port>/api/v1.0.0/<path>?token=<token>`` with a
JSON body; the PBX answers HTTP 200 with ``{"status": "Success"|"Failed", ...}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import hashlib
import json
import logging
import re
import time
from typing import Any, Final

import aiohttp

from .exceptions import (
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptTokenError,
)
from .http import opt_str, transport_error, url_host
from .singleflight import SingleFlight

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8088
DEFAULT_TIMEOUT: Final = 10.0
LOGOUT_TIMEOUT: Final = 5.0
# The PBX wants a port for event reports at login; 8260 is the guide's own example.
DEFAULT_REPORT_PORT: Final = 8260
# Tokens die after 30 idle minutes; a heartbeat after 10 idle minutes keeps a wide margin.
KEEPALIVE_AFTER_IDLE: Final = 600.0
# The PBX blocks the caller's IP for 10 minutes after 5 failed logins.
LOCKOUT_SECONDS: Final = 600.0
# Requests this client has at the PBX at once: ~1 round trip per 20 extensions.
MAX_IN_FLIGHT: Final = 20
MAX_PROMPTS: Final = 50
MAX_PROMPT_LENGTH: Final = 255
MAX_EXTENSIONS: Final = 500

_API_PATH: Final = "/api/v1.0.0/"
_EXTENSION: Final = re.compile(r"[0-9]{1,16}")


class AuthMode(StrEnum):
    """How the client gets its token."""

    CREDENTIALS = "credentials"  # logs in with the API username and password
    TOKEN = "token"  # noqa: S105 - a mode's name: a token obtained elsewhere, no login


# errno → (exception class, English message). Messages may name the call's {extension}
# and {prompt}; errors outside a call leave them out. Input errors are the caller's.
_PROTOCOL: Final = (VoicePromptRequestError, "The PBX rejected the request format (error {code})")
_TOKEN: Final = (
    VoicePromptTokenError,
    "{host} refused the API token (unknown, blank or expired)",
)
ERRORS: Final[dict[str, tuple[type[VoicePromptError], str]]] = {
    "10002": _PROTOCOL,
    "10003": (
        VoicePromptRequestError,
        "The PBX does not support this API request; firmware 30.5.0.30 or newer is needed",
    ),
    "10004": (
        VoicePromptInputError,
        "The PBX says a required value is empty (extension {extension}, prompt {prompt})",
    ),
    "10006": (VoicePromptInputError, "Extension {extension} does not exist on the PBX"),
    "10007": (VoicePromptRequestError, "The call does not exist (any more)"),
    "10008": (
        VoicePromptRequestError,
        "Extension {extension} is not idle; try again when it is free",
    ),
    "10011": (VoicePromptInputError, "The called number {extension} does not exist"),
    "10015": (
        VoicePromptRequestError,
        "The call to extension {extension} could not be connected "
        "(phone offline, busy, declined or not answered)",
    ),
    "10016": (
        VoicePromptRequestError,
        "The call to extension {extension} was not accepted in time",
    ),
    "10023": (
        VoicePromptInputError,
        "A prompt in {prompt} is not uploaded to the PBX's Custom Prompts "
        "(Settings → PBX → Voice Prompts → Custom Prompts); names are case-sensitive",
    ),
    "10024": (
        VoicePromptRequestError,
        "Extension {extension} has no outbound call permission on the PBX",
    ),
    "10025": (
        VoicePromptRequestError,
        "The PBX is busy applying its configuration; try again in a moment",
    ),
    "20000": _PROTOCOL,
    "20001": _PROTOCOL,
    "20002": (
        VoicePromptIPBlockedError,
        "{host} has locked out this address after repeated failed logins; "
        "it lifts the block after 10 minutes",
    ),
    "20003": (
        VoicePromptAuthenticationError,
        "{host} refused the API username or password",
    ),
    "20004": _TOKEN,
    "20005": _TOKEN,
    "20006": _TOKEN,
    "20007": _PROTOCOL,
    "20008": _PROTOCOL,
    "20009": _PROTOCOL,
    "30001": (
        VoicePromptRequestError,
        "The PBX reported an internal error (error {code}); try again, or restart the PBX",
    ),
}
_UNKNOWN: Final = (VoicePromptRequestError, "The PBX refused the request with error {code}")
_TOKEN_ERRNOS: Final = frozenset(errno for errno, spec in ERRORS.items() if spec is _TOKEN)


def error_for(errno: str, host: str, extension: str = "", prompt: str = "") -> VoicePromptError:
    """The exception for a PBX ``errno``; unknown codes keep their number."""
    cls, message = ERRORS.get(errno, _UNKNOWN)
    text = message.format(code=errno, host=host, extension=extension or "-", prompt=prompt or "-")
    return cls(text, code=errno, target=extension or None)


def normalize_prompts(value: str | Sequence[str]) -> list[str]:
    """Turn ``"a+b"`` or ``["a", "b"]`` into validated Custom Prompt names."""
    if isinstance(value, str):
        names: list[Any] = value.split("+")
    elif isinstance(value, Sequence):
        names = list(value)
    else:
        raise VoicePromptInputError("The prompt must be a name or a list of names")
    if not names or names == [""]:
        raise VoicePromptInputError("No prompt was given")
    if len(names) > MAX_PROMPTS:
        raise VoicePromptInputError(f"At most {MAX_PROMPTS} prompts can be played in one call")
    cleaned: list[str] = []
    for raw in names:
        if not isinstance(raw, str):
            raise VoicePromptInputError("The prompt must be a name or a list of names")
        name = raw.strip()
        if not name:
            raise VoicePromptInputError("A prompt name is empty")
        if "+" in name:
            raise VoicePromptInputError(
                f"Prompt name {name} contains +, which the PBX uses to join names; "
                "give the names as a list, or rename the prompt"
            )
        if name.isdigit():
            raise VoicePromptInputError(
                f"Prompt name {name} is only digits, which the PBX does not accept"
            )
        if len(name) > MAX_PROMPT_LENGTH or not name.isprintable():
            raise VoicePromptInputError(f"{name[:40]} is not a valid Custom Prompt name")
        cleaned.append(name)
    return cleaned


def normalize_extensions(value: str | int | Sequence[str | int]) -> list[str]:
    """Turn ``"1000"``, ``"1000, 1001"`` or a list into unique extension numbers."""
    if isinstance(value, bool):
        raise _not_an_extension(value)
    if isinstance(value, (str, int)):
        items: list[Any] = str(value).replace(";", ",").split(",")
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise _not_an_extension(value)
    extensions: list[str] = []
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise _not_an_extension(item)
        text = str(item).strip()
        if text == "":
            continue
        if not _EXTENSION.fullmatch(text):
            raise _not_an_extension(item)
        if text not in extensions:
            extensions.append(text)
    if not extensions:
        raise VoicePromptInputError("No extension was given")
    if len(extensions) > MAX_EXTENSIONS:
        raise VoicePromptInputError(f"At most {MAX_EXTENSIONS} extensions can be called at once")
    return extensions


def _not_an_extension(value: object) -> VoicePromptInputError:
    return VoicePromptInputError(
        f"{str(value)[:40]} is not an extension number (digits only, like 1000)"
    )


@dataclass(frozen=True, slots=True)
class YeastarDeviceInfo:
    """What ``deviceinfo/query`` tells about the PBX."""

    name: str
    serial: str
    hardware_version: str | None
    firmware_version: str | None
    extension_status: str | None


@dataclass(frozen=True, slots=True)
class YeastarExtension:
    """One entry of ``extensionlist/query``."""

    number: str
    status: str
    kind: str
    name: str


@dataclass(slots=True)
class YeastarPlayResult:
    """Outcome of a (broadcast) play: call ids per extension, and failures."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, VoicePromptError]] = field(default_factory=list)


class YeastarClient:
    """Talks to one Yeastar S-Series PBX with API credentials or a ready token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        *,
        port: int = DEFAULT_PORT,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify_ssl: bool = True,
        request_timeout: float = DEFAULT_TIMEOUT,
        report_port: int = DEFAULT_REPORT_PORT,
    ) -> None:
        """Use ``username`` + ``password``, or ``token``: exactly one of the two."""
        if (password is None) == (token is None):
            raise ValueError("give either username and password, or a token")
        if password is not None and not username:
            raise ValueError("a username is needed with a password")
        if token is not None and not token:
            raise ValueError("the token is empty")
        self._session = session
        self.host = host
        self.port = port
        self.verify_ssl = verify_ssl
        self.mode = AuthMode.TOKEN if token is not None else AuthMode.CREDENTIALS
        self._username = username
        # The PBX login wants the MD5 of the password; the plain one is not kept.
        self._password_md5 = (
            hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
            if password is not None
            else None
        )
        self._token = token
        self._base_url = f"https://{url_host(host)}:{port}{_API_PATH}"
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._report_port = str(report_port)
        self._login_flight: SingleFlight[str] = SingleFlight()
        # Requests at the PBX at once, whatever the number of actions: a small PBX
        # should not see a burst of actions as 100 parallel connections.
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._auth_failed: VoicePromptError | None = None
        self._blocked_until = 0.0
        self._last_used = 0.0
        self._token_since = 0.0

    def __repr__(self) -> str:
        """Describe the client without credentials."""
        return (
            f"YeastarClient(host={self.host!r}, port={self.port}, mode={self.mode}, "
            f"logged_in={self._token is not None})"
        )

    @property
    def web_url(self) -> str:
        """The PBX's web interface (it shares the API's HTTPS port)."""
        return f"https://{url_host(self.host)}:{self.port}"

    # -- public surface -------------------------------------------------------------

    async def device_info(self) -> YeastarDeviceInfo:
        """Log in when needed and read ``deviceinfo/query``."""
        data = await self._request("deviceinfo/query")
        info = data.get("deviceinfo")
        if not isinstance(info, dict) or not info.get("sn"):
            raise self._bad_reply("deviceinfo without a serial number")
        return YeastarDeviceInfo(
            name=str(info.get("devicename") or "Yeastar PBX"),
            serial=str(info["sn"]),
            hardware_version=opt_str(info.get("hardwarever")),
            firmware_version=opt_str(info.get("firmwarever")),
            extension_status=opt_str(info.get("extensionstatus")),
        )

    async def extensions(self) -> list[YeastarExtension]:
        """Read ``extensionlist/query``."""
        data = await self._request("extensionlist/query")
        items = data.get("extlist")
        if not isinstance(items, list):
            raise self._bad_reply("extension list missing")
        return [
            YeastarExtension(
                number=str(item.get("extnumber", "")),
                status=str(item.get("status", "")),
                kind=str(item.get("type", "")),
                name=str(item.get("username", "")),
            )
            for item in items
            if isinstance(item, dict)
        ]

    async def play_prompt(
        self, extension: str, prompts: str | Sequence[str], autoanswer: bool = False
    ) -> str:
        """Ring one ``extension`` and play ``prompts`` once it answers; return the call id."""
        targets = normalize_extensions(extension)
        if len(targets) != 1:
            raise VoicePromptInputError(
                f"{str(extension)[:40]} is more than one extension; use async_play for several"
            )
        return await self._play_one(targets[0], normalize_prompts(prompts), autoanswer)

    async def async_play(
        self,
        extensions: str | Sequence[str],
        prompts: str | Sequence[str],
        autoanswer: bool = False,
    ) -> YeastarPlayResult:
        """Play ``prompts`` on every extension (the PBX takes one extension per request).

        Input is validated before anything is sent. One extension failing does not
        stop the others; failures are returned next to the call ids.
        """
        targets = normalize_extensions(extensions)
        names = normalize_prompts(prompts)
        outcomes: list[str | BaseException]
        if len(targets) == 1:
            # The common case: no task per extension (a measurable share of a call).
            try:
                outcomes = [await self._play_one(targets[0], names, autoanswer)]
            except VoicePromptError as err:
                outcomes = [err]
        else:
            outcomes = await asyncio.gather(
                *(self._play_one(extension, names, autoanswer) for extension in targets),
                return_exceptions=True,
            )
        result = YeastarPlayResult()
        for extension, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, VoicePromptError):
                result.failures.append((extension, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result.calls.append((extension, outcome))
        return result

    async def async_keepalive(self, ipaddr: str) -> bool:
        """Send a heartbeat naming ``ipaddr`` when the token has been idle long enough.

        Returns whether a heartbeat was sent. Nothing is sent before the first login:
        the next real request logs in anyway. ``ipaddr`` is where the PBX would send
        event reports (this machine's address on the PBX's network).
        """
        if self._token is None or self._auth_failed is not None:
            return False
        if time.monotonic() - self._last_used < KEEPALIVE_AFTER_IDLE:
            return False
        await self._request("heartbeat", {"ipaddr": ipaddr, "port": self._report_port})
        return True

    async def async_close(self) -> None:
        """Log out (credentials mode); a token given by the user is left alone."""
        if self.mode is AuthMode.TOKEN or self._token is None:
            return
        token, self._token = self._token, None
        try:
            await self._post("logout", None, token, seconds=LOGOUT_TIMEOUT)
        except VoicePromptError as err:
            _LOGGER.debug("Logout from %s failed: %s", self.host, err)

    def diagnostics(self) -> dict[str, Any]:
        """Client state for diagnostics: no credentials, no token."""
        now = time.monotonic()
        return {
            "host": self.host,
            "port": self.port,
            "verify_ssl": self.verify_ssl,
            "mode": str(self.mode),
            "logged_in": self._token is not None,
            # Unknown for a token given by the user: it was issued before we saw it.
            "token_age_seconds": (
                round(now - self._token_since, 1) if self._token and self._token_since else None
            ),
            "idle_seconds": round(now - self._last_used, 1) if self._last_used else None,
            "auth_failed": self._auth_failed is not None,
            "blocked_for_seconds": max(0.0, round(self._blocked_until - now, 1)),
        }

    # -- internals ------------------------------------------------------------------

    async def _play_one(self, extension: str, names: list[str], autoanswer: bool) -> str:
        prompt = "+".join(names)
        body = {"extid": extension, "prompt": prompt, "autoanswer": "yes" if autoanswer else "no"}
        try:
            data = await self._request("extension/playprompt", body)
        except VoicePromptError as err:
            if err.code is not None and type(err) is ERRORS.get(err.code, _UNKNOWN)[0]:
                # A PBX errno: say which call it was (the message names extension and prompt).
                raise error_for(err.code, self.host, extension, prompt) from None
            err.target = extension
            raise
        callid = data.get("callid")
        if not isinstance(callid, (str, int)) or isinstance(callid, bool) or callid == "":
            error = self._bad_reply("success without a call id")
            error.target = extension
            raise error
        return str(callid)

    async def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send an authenticated request; log in again once if the token died."""
        if self._auth_failed is not None:
            # Refused once: never knock again (5 failures lock the PBX for 10 minutes).
            raise self._auth_failed.copy()
        token = self._token or await self._fresh_token(stale=None)
        try:
            return await self._post(path, body, token)
        except VoicePromptTokenError as err:
            if self.mode is AuthMode.TOKEN:
                self._auth_failed = err
                raise
        token = await self._fresh_token(stale=token)
        try:
            return await self._post(path, body, token)
        except VoicePromptTokenError as err:
            # A brand-new token refused at once is the PBX's fault, not the password's.
            raise VoicePromptRequestError(
                f"{self.host} refused a token it had just issued (error {err.code})",
                code=err.code,
            ) from None

    async def _fresh_token(self, stale: str | None) -> str:
        """Log in once for all concurrent callers that saw the same stale token."""
        if self._token is not None and self._token != stale:
            return self._token

        async def login() -> str:
            self._token = None  # callers arriving now join this login
            return await self._login()

        return await self._login_flight.run(login)

    async def _login(self) -> str:
        if self._auth_failed is not None:
            raise self._auth_failed.copy()
        if self._blocked_until > time.monotonic():
            raise error_for("20002", self.host)
        body = {
            "username": self._username,
            "password": self._password_md5,
            "port": self._report_port,
            "version": "1.0.2",
        }
        try:
            data = await self._post("login", body, None)
        except VoicePromptIPBlockedError:
            self._blocked_until = time.monotonic() + LOCKOUT_SECONDS
            raise
        except VoicePromptAuthenticationError as err:
            self._auth_failed = err
            raise
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise self._bad_reply("login succeeded without a token")
        self._token = token
        self._token_since = time.monotonic()
        _LOGGER.debug("Logged in to %s", self.host)
        return token

    async def _post(
        self,
        path: str,
        body: dict[str, Any] | None,
        token: str | None,
        *,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """One HTTP exchange; every failure becomes a VoicePromptError without secrets."""
        client_timeout = aiohttp.ClientTimeout(total=seconds) if seconds else self._timeout
        # Queue outside the timeout: the timeout is for the PBX's answer.
        async with self._in_flight:
            if self._session.closed:  # Home Assistant is stopping
                raise VoicePromptConnectionError(
                    f"Cannot connect to {self.host}: the HTTP session is closed"
                )
            failure: VoicePromptError | None = None
            try:
                async with self._session.post(
                    self._base_url + path,
                    params={"token": token} if token else None,
                    json=body,
                    # True defers to the session's own context; False skips verification.
                    ssl=self.verify_ssl,
                    timeout=client_timeout,
                ) as response:
                    if response.status != 200:
                        raise self._bad_reply(f"HTTP status {response.status}")
                    raw = await response.read()
            except (TimeoutError, aiohttp.ClientError) as err:
                failure = transport_error(err, self.host, client_timeout.total or 0)
            if failure is not None:
                raise failure from None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise self._bad_reply("not JSON") from None
        if not isinstance(data, dict):
            raise self._bad_reply("not a JSON object")
        status = data.get("status")
        if status == "Success":
            if token is not None:
                self._last_used = time.monotonic()
            return data
        raw_errno = data.get("errno")
        errno = ("" if raw_errno is None else str(raw_errno).strip()) or "?"
        if token is not None and errno not in _TOKEN_ERRNOS:
            # Any answer but a token error means the PBX accepted (and refreshed) it.
            self._last_used = time.monotonic()
        if status == "Failed":
            _LOGGER.debug("%s %s failed with errno %s", self.host, path, errno)
            raise error_for(errno, self.host)
        raise self._bad_reply("no status")

    def _bad_reply(self, detail: str) -> VoicePromptResponseError:
        return VoicePromptResponseError(
            f"{self.host} sent a reply that is not a valid Yeastar API response ({detail})"
        )
