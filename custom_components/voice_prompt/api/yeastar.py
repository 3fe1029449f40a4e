"""Async client for the Yeastar S-Series PBX API v1.0.0.

No Home Assistant imports: the caller injects an ``aiohttp.ClientSession``.
Every request is ``POST https://<pbx>:<port>/api/v1.0.0/<path>?token=<token>`` with a
JSON body; the PBX answers HTTP 200 with ``{"status": "Success"|"Failed", ...}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
import hashlib
import logging
import re
import time
from typing import Any, Final

import aiohttp
from yarl import URL

from .errors import (
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    VoicePromptTokenError,
)
from .jsonparse import loads, opt_str
from .singleflight import SingleFlight

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8088
DEFAULT_TIMEOUT: Final = 10.0
# The PBX wants a port for event reports at login; 8260 is the guide's own example.
DEFAULT_REPORT_PORT: Final = 8260
# Tokens die after 30 idle minutes; a heartbeat after 10 idle minutes keeps a wide margin.
KEEPALIVE_AFTER_IDLE: Final = 600.0
# The PBX blocks the caller's IP for 10 minutes after 5 failed logins.
LOCKOUT_SECONDS: Final = 600.0
# Extensions rung at once by one broadcast: ~1 round trip per 20 extensions.
DEFAULT_CONCURRENCY: Final = 20
MAX_PROMPTS: Final = 50
MAX_PROMPT_LENGTH: Final = 255
MAX_EXTENSIONS: Final = 500

_API_PATH: Final = "/api/v1.0.0/"
_TOKEN_ERRNOS: Final = frozenset({"20004", "20005", "20006"})
_TOKEN_IN_TEXT: Final = re.compile(r"token=[^&\s'\"]*", re.IGNORECASE)
_EXTENSION: Final = re.compile(r"[0-9]{1,16}")

type _ErrorSpec = tuple[type[VoicePromptError], str, str]

# Every PBX error message may name the call's extension and prompt; _play_one fills
# them in, other requests leave them blank.
_NO_CALL: Final = {"extension": "", "prompt": ""}

# Codes that mean this client sent something malformed: one message for all of them.
_PROTOCOL_ERROR: Final[_ErrorSpec] = (
    VoicePromptRequestError,
    "protocol_error",
    "The PBX rejected the request format (error {code})",
)
_TOKEN_ERROR: Final[_ErrorSpec] = (
    VoicePromptTokenError,
    "token_rejected",
    VoicePromptTokenError.message,
)

# errno -> (exception class, translation key, English message). Input errors are the
# caller's fault (a Home Assistant ServiceValidationError); the rest are the PBX's.
ERRORS: Final[dict[str, _ErrorSpec]] = {
    "10002": _PROTOCOL_ERROR,
    "10003": (
        VoicePromptRequestError,
        "unsupported_request",
        "The PBX does not support this API request; firmware 30.5.0.30 or newer is required",
    ),
    "10004": (
        VoicePromptInputError,
        "parameter_blank",
        "The PBX says a required value is blank (extension: {extension}, prompt: {prompt})",
    ),
    "10006": (
        VoicePromptInputError,
        "extension_not_found",
        "Extension {extension} does not exist on the PBX",
    ),
    "10007": (VoicePromptRequestError, "call_not_found", "The call does not exist (any more)"),
    "10008": (
        VoicePromptRequestError,
        "extension_busy",
        "Extension {extension} is not idle; try again when it is free",
    ),
    "10011": (
        VoicePromptInputError,
        "number_not_found",
        "The called number {extension} does not exist",
    ),
    "10015": (
        VoicePromptRequestError,
        "call_not_connected",
        "The call to extension {extension} could not be connected (phone offline, busy, declined or not answered)",
    ),
    "10016": (
        VoicePromptRequestError,
        "call_timeout",
        "The call to extension {extension} was not accepted in time",
    ),
    "10023": (
        VoicePromptInputError,
        "prompt_not_found",
        "A prompt in {prompt} is not uploaded to the PBX's Custom Prompts",
    ),
    "10024": (
        VoicePromptRequestError,
        "no_outbound_permission",
        "Extension {extension} has no outbound call permission on the PBX",
    ),
    "10025": (
        VoicePromptRequestError,
        "too_many_requests",
        "The PBX is applying its configuration too often; try again in a moment",
    ),
    "20000": _PROTOCOL_ERROR,
    "20001": _PROTOCOL_ERROR,
    "20002": (VoicePromptIPBlockedError, "ip_blocked", VoicePromptIPBlockedError.message),
    "20003": (
        VoicePromptAuthenticationError,
        "invalid_auth",
        VoicePromptAuthenticationError.message,
    ),
    "20004": _TOKEN_ERROR,
    "20005": _TOKEN_ERROR,
    "20006": _TOKEN_ERROR,
    "20007": _PROTOCOL_ERROR,
    "20008": _PROTOCOL_ERROR,
    "20009": _PROTOCOL_ERROR,
    "30001": (
        VoicePromptRequestError,
        "pbx_internal_error",
        "The PBX reported an internal error (error {code})",
    ),
}
_UNKNOWN_ERROR: Final[_ErrorSpec] = (
    VoicePromptRequestError,
    "pbx_error",
    "The PBX refused the request with error {code}",
)


def error_for(errno: str, host: str) -> VoicePromptError:
    """Build the exception for a PBX ``errno`` (unknown codes keep their number)."""
    cls, key, message = ERRORS.get(errno, _UNKNOWN_ERROR)
    return cls(
        code=errno,
        translation_key=key,
        message=message,
        host=host,
        **_NO_CALL,
    )


def normalize_prompts(value: str | Sequence[str]) -> list[str]:
    """Turn ``"a+b"`` or ``["a", "b"]`` into validated Custom Prompt names."""
    if isinstance(value, str):
        names = value.split("+")
    elif isinstance(value, Sequence):
        names = list(value)
    else:
        raise _input_error(
            "prompt_invalid", "The prompt must be a name or a list of names", prompt=str(value)[:40]
        )
    if not names or names == [""]:
        raise _input_error("prompt_empty", "No prompt was given")
    if len(names) > MAX_PROMPTS:
        raise _input_error(
            "prompt_too_many",
            "At most {limit} prompts can be played in one call",
            limit=str(MAX_PROMPTS),
        )
    cleaned: list[str] = []
    for raw in names:
        if not isinstance(raw, str):
            raise _input_error(
                "prompt_invalid",
                "The prompt must be a name or a list of names",
                prompt=str(raw)[:40],
            )
        name = raw.strip()
        if not name:
            raise _input_error("prompt_empty", "A prompt name is empty")
        if "+" in name:
            raise _input_error(
                "prompt_plus",
                "Prompt name '{prompt}' contains '+', which the PBX uses to join names",
                prompt=name,
            )
        if name.isdigit():
            raise _input_error(
                "prompt_digits",
                "Prompt name '{prompt}' is only digits, which the PBX does not allow",
                prompt=name,
            )
        if len(name) > MAX_PROMPT_LENGTH or not name.isprintable():
            raise _input_error(
                "prompt_invalid",
                "Prompt name '{prompt}' is not a valid Custom Prompt name",
                prompt=name[:40],
            )
        cleaned.append(name)
    return cleaned


def normalize_extensions(value: str | int | Sequence[str | int]) -> list[str]:
    """Turn ``"1000"``, ``"1000, 1001"`` or a list into unique extension numbers."""
    if type(value) is str and _EXTENSION.fullmatch(value):
        return [value]  # the common case, without the general path's list building
    if isinstance(value, bool):
        raise _input_error(
            "extension_invalid",
            "Extension '{extension}' is not an extension number",
            extension=str(value),
        )
    if isinstance(value, (str, int)):
        items: list[Any] = str(value).replace(";", ",").split(",")
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise _input_error(
            "extension_invalid",
            "Extension '{extension}' is not an extension number",
            extension=str(value)[:40],
        )
    extensions: list[str] = []
    for item in items:
        text = (
            str(item).strip()
            if isinstance(item, (str, int)) and not isinstance(item, bool)
            else None
        )
        if text == "":
            continue
        if text is None or not _EXTENSION.fullmatch(text):
            raise _input_error(
                "extension_invalid",
                "Extension '{extension}' is not an extension number (digits only)",
                extension=str(item)[:40],
            )
        if text not in extensions:
            extensions.append(text)
    if not extensions:
        raise _input_error("extension_empty", "No extension was given")
    if len(extensions) > MAX_EXTENSIONS:
        raise _input_error(
            "extension_too_many",
            "At most {limit} extensions can be called at once",
            limit=str(MAX_EXTENSIONS),
        )
    return extensions


def _input_error(key: str, message: str, **placeholders: str) -> VoicePromptInputError:
    return VoicePromptInputError(translation_key=key, message=message, **_NO_CALL | placeholders)


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


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    logins: int = 0
    relogins: int = 0
    heartbeats: int = 0


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
        scheme: str = "https",
    ) -> None:
        """Use ``username`` + ``password``, or ``token``: exactly one of the two."""
        if (password is None) == (token is None):
            raise ValueError("give either username and password, or a token")
        if password is not None and not username:
            raise ValueError("a username is needed with a password")
        self._session = session
        self.host = host
        self.port = port
        self.verify_ssl = verify_ssl
        self._username = username
        # The PBX login wants the MD5 of the password; the plain one is not kept.
        self._password_md5 = (
            hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
            if password is not None
            else None
        )
        self._token = token
        self._base_url = f"{scheme}://{_url_host(host)}:{port}{_API_PATH}"
        # Request URLs with the current token, parsed once: parsing a URL and encoding
        # its query cost more than the rest of the client's own work per request.
        self._urls: dict[str, URL] = {}
        self._urls_token: str | None = None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._report_port = str(report_port)
        self._login_flight: SingleFlight[str] = SingleFlight()
        # Requests this client has at the PBX at once, whatever the number of actions.
        self._in_flight = asyncio.Semaphore(DEFAULT_CONCURRENCY)
        self._auth_failed_code: str | None = None
        self._blocked_until = 0.0
        self._last_used = 0.0
        self._token_since = 0.0
        self._local_ip: str | None = None
        self.stats = _Stats()

    def __repr__(self) -> str:
        """Describe the client without credentials."""
        return (
            f"YeastarClient(host={self.host!r}, port={self.port}, "
            f"mode={'token' if self.uses_token else 'credentials'}, "
            f"logged_in={self._token is not None})"
        )

    @property
    def web_url(self) -> str:
        """The PBX's web interface (it shares the API's HTTPS port)."""
        return f"https://{_url_host(self.host)}:{self.port}"

    @property
    def uses_token(self) -> bool:
        """Whether the client works with a user-supplied token (no login)."""
        return self._password_md5 is None

    # -- public surface -------------------------------------------------------------

    async def async_validate(self) -> YeastarDeviceInfo:
        """Log in (when needed) and read the device information."""
        return await self.device_info()

    async def device_info(self) -> YeastarDeviceInfo:
        """Read ``deviceinfo/query``."""
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
        """Ring ``extension`` and play ``prompts`` once it answers; return the call id."""
        targets = normalize_extensions(extension)
        if len(targets) != 1:
            raise _input_error(
                "extension_invalid",
                "'{extension}' is more than one extension; use async_play for several",
                extension=str(extension)[:40],
            )
        return await self._play_one(targets[0], normalize_prompts(prompts), autoanswer)

    async def async_play(
        self,
        extensions: str | Sequence[str],
        prompts: str | Sequence[str],
        autoanswer: bool = False,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> YeastarPlayResult:
        """Play ``prompts`` on every extension, ``concurrency`` requests at a time.

        Input is validated before anything is sent. One extension failing does not
        stop the others; failures are returned next to the call ids.
        """
        targets = normalize_extensions(extensions)
        names = normalize_prompts(prompts)
        result = YeastarPlayResult()
        if len(targets) == 1:
            result.calls.append((targets[0], await self._play_one(targets[0], names, autoanswer)))
            return result
        semaphore = asyncio.Semaphore(max(1, concurrency))

        async def play(extension: str) -> str:
            async with semaphore:
                return await self._play_one(extension, names, autoanswer)

        outcomes = await asyncio.gather(
            *(play(extension) for extension in targets), return_exceptions=True
        )
        for extension, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, VoicePromptError):
                result.failures.append((extension, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result.calls.append((extension, outcome))
        return result

    async def async_keepalive(self) -> bool:
        """Send a heartbeat when the token has been idle long enough to matter.

        Returns whether a heartbeat was sent. Nothing is sent before the first login:
        the next real request logs in anyway.
        """
        if self._token is None or self._auth_failed_code is not None:
            return False
        if time.monotonic() - self._last_used < KEEPALIVE_AFTER_IDLE:
            return False
        if self._local_ip is None:
            self._local_ip = await _local_address(self.host, self.port)
        await self._request("heartbeat", {"ipaddr": self._local_ip, "port": self._report_port})
        self.stats.heartbeats += 1
        return True

    async def async_close(self) -> None:
        """Log out (credentials mode); a token given by the user is left alone."""
        if self.uses_token or self._token is None:
            return
        token, self._token = self._token, None
        try:
            await self._post("logout", None, token, client_timeout=aiohttp.ClientTimeout(total=5))
        except VoicePromptError as err:
            _LOGGER.debug("Logout from %s failed: %s", self.host, err)

    def diagnostics(self) -> dict[str, Any]:
        """Client state for diagnostics: no credentials, no token."""
        now = time.monotonic()
        return {
            "host": self.host,
            "port": self.port,
            "verify_ssl": self.verify_ssl,
            "mode": "token" if self.uses_token else "credentials",
            "logged_in": self._token is not None,
            # Unknown for a token given by the user: it was issued before we saw it.
            "token_age_seconds": (
                round(now - self._token_since, 1) if self._token and self._token_since else None
            ),
            "idle_seconds": round(now - self._last_used, 1) if self._last_used else None,
            "auth_failed": self._auth_failed_code is not None,
            "blocked_for_seconds": max(0.0, round(self._blocked_until - now, 1)),
            "requests": self.stats.requests,
            "logins": self.stats.logins,
            "relogins": self.stats.relogins,
            "heartbeats": self.stats.heartbeats,
        }

    # -- internals ------------------------------------------------------------------

    async def _play_one(self, extension: str, names: list[str], autoanswer: bool) -> str:
        try:
            data = await self._request(
                "extension/playprompt",
                {
                    "extid": extension,
                    "prompt": "+".join(names),
                    "autoanswer": "yes" if autoanswer else "no",
                },
            )
        except VoicePromptError as err:
            raise err.with_context(extension=extension, prompt="+".join(names)) from None
        callid = data.get("callid")
        if not isinstance(callid, (str, int)) or isinstance(callid, bool) or callid == "":
            raise self._bad_reply("success without a call id").with_context(extension=extension)
        return str(callid)

    async def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send an authenticated request; log in again once if the token died."""
        if self._auth_failed_code is not None:
            # Refused once: never knock again (5 failures lock the PBX for 10 minutes).
            raise error_for(self._auth_failed_code, self.host)
        token = self._token or await self._fresh_token(stale=None)
        try:
            return await self._post(path, body, token)
        except VoicePromptTokenError as err:
            if self.uses_token:
                self._auth_failed_code = err.code
                raise
        token = await self._fresh_token(stale=token)
        try:
            return await self._post(path, body, token)
        except VoicePromptTokenError as err:
            # A brand-new token refused at once is the PBX's fault, not the password's.
            raise VoicePromptRequestError(
                code=err.code,
                translation_key="token_rejected_again",
                message="The PBX refused a token it had just issued (error {code})",
                host=self.host,
                **_NO_CALL,
            ) from None

    async def _fresh_token(self, stale: str | None) -> str:
        """Log in once for all concurrent callers that saw the same stale token."""
        if self._token is not None and self._token != stale:
            return self._token

        async def login() -> str:
            if stale is not None:
                self.stats.relogins += 1
            self._token = None  # callers arriving now join this login
            return await self._login()

        return await self._login_flight.run(login)

    async def _login(self) -> str:
        if self._auth_failed_code is not None:
            raise error_for(self._auth_failed_code, self.host)
        if self._password_md5 is None:
            raise error_for("20004", self.host)
        if self._blocked_until > time.monotonic():
            raise error_for("20002", self.host)
        self.stats.logins += 1
        try:
            data = await self._post(
                "login",
                {
                    "username": self._username,
                    "password": self._password_md5,
                    "port": self._report_port,
                    "version": "1.0.2",
                },
                None,
            )
        except VoicePromptIPBlockedError:
            self._blocked_until = time.monotonic() + LOCKOUT_SECONDS
            raise
        except VoicePromptAuthenticationError as err:
            self._auth_failed_code = err.code or "20003"
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
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> dict[str, Any]:
        """One HTTP exchange; every failure becomes a VoicePromptError without secrets."""
        self.stats.requests += 1
        timeout = client_timeout or self._timeout
        # Queue here, outside the timeout: the timeout is for the PBX's answer, and a
        # small PBX should not see a burst of actions as 100 parallel connections.
        async with self._in_flight:
            if self._session.closed:  # Home Assistant is stopping
                raise VoicePromptConnectionError("the HTTP session is closed", host=self.host)
            try:
                async with self._session.post(
                    self._url(path, token),
                    json=body,
                    # True defers to the session's own context; False skips verification.
                    ssl=self.verify_ssl,
                    timeout=timeout,
                ) as response:
                    if response.status != 200:
                        raise self._bad_reply(f"HTTP status {response.status}")
                    raw = await response.read()
            except TimeoutError:
                raise VoicePromptTimeoutError(
                    host=self.host, timeout=f"{timeout.total:g}"
                ) from None
            except aiohttp.ClientSSLError as err:
                raise VoicePromptSSLError(_describe(err), host=self.host) from None
            except aiohttp.ClientError as err:
                raise VoicePromptConnectionError(_describe(err), host=self.host) from None
        try:
            data = loads(raw)
        except ValueError:
            raise self._bad_reply("not JSON") from None
        if not isinstance(data, dict):
            raise self._bad_reply("not a JSON object")
        status = data.get("status")
        if status == "Success":
            if token is not None:
                self._last_used = time.monotonic()
            return data
        errno = str(data.get("errno", "")).strip() or "?"
        if token is not None and errno not in _TOKEN_ERRNOS:
            # Any answer but a token error means the PBX accepted (and refreshed) it.
            self._last_used = time.monotonic()
        if status == "Failed":
            _LOGGER.debug("%s %s failed with errno %s", self.host, path, errno)
            raise error_for(errno, self.host)
        raise self._bad_reply("no status")

    def _url(self, path: str, token: str | None) -> URL:
        """``<base>/<path>?token=<token>``, the same URL aiohttp builds from ``params``."""
        if token != self._urls_token:
            self._urls = {}
            self._urls_token = token
        url = self._urls.get(path)
        if url is None:
            url = URL(self._base_url + path)
            if token:
                url = url.extend_query(token=token)
            self._urls[path] = url
        return url

    def _bad_reply(self, detail: str) -> VoicePromptResponseError:
        return VoicePromptResponseError(detail, host=self.host, **_NO_CALL)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def _local_address(host: str, port: int) -> str:
    """The address this machine uses to reach ``host``, without sending anything.

    Connecting a UDP socket only picks the route; the PBX is told this address in
    heartbeats (it is where it would send event reports).
    """
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(host, port)
        )
    except (OSError, OverflowError, ValueError):
        return "0.0.0.0"  # noqa: S104 - "unknown"; only names a report target
    try:
        return str(transport.get_extra_info("sockname")[0])
    finally:
        transport.close()


def _describe(err: aiohttp.ClientError) -> str:
    """Name an aiohttp error without the URL's token (aiohttp prints URLs)."""
    text = _TOKEN_IN_TEXT.sub("token=***", str(err))
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
