"""Async client for the Yeastar S-Series PBX API: v1.0.0, and v2.0.0 where the PBX has it.

No Home Assistant imports: the caller injects an ``aiohttp.ClientSession``.
Every request is ``POST https://<pbx>:<port>/api/v<version>/<path>?token=<token>`` with a
JSON body; the PBX answers HTTP 200 with ``{"status": "Success"|"Failed", ...}``.

API v1.0.0 (firmware 30.5.0.30+) rings extensions only. API v2.0.0 (documented for
firmware 30.13.0.30+) also calls paging groups and external numbers, repeats the prompts
(``count``) and sets their ``volume``. It has no version probe: ``device_info()`` reads
the firmware (over v1, which every firmware has) and, only when the firmware should have
v2, tries the v2 login. A PBX that answers it keeps the client on v2 from then on; any
other answer leaves it on v1 (``api_version``, ``diagnostics()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import functools
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
from .http import bounded, number_text, opt_str, shown, transport_error, url_host
from .singleflight import SingleFlight
from .tls import CertificateCheck
from .yeastar_reports import report_address

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
# The first firmware the API v2.0.0 guide names ("30.13.0.30 or later").
V2_FIRMWARE: Final = "30.13.0.30"
# v2 ``call/playprompt``: "volume ... Valid value: 0~20". ``count`` has no documented
# range; 10 is the P-Series client's bound too: each play holds the callee's line, and
# more than ten of the same announcement is a mistake (a count meant as seconds).
MAX_COUNT: Final = 10
MIN_VOLUME: Final = 0
MAX_VOLUME: Final = 20
# E.164 numbers have at most 15 digits; an outbound route's prefix and an international
# access code come in front. 32 leaves room and is the P-Series client's bound too.
MAX_NUMBER_DIGITS: Final = 32

_EXTENSION: Final = re.compile(r"[0-9]{1,16}")
# A number to call on v2: an extension or paging group (digits), or an external number
# (digits, optionally after a leading +).
_NUMBER: Final = re.compile(rf"\+?[0-9]{{1,{MAX_NUMBER_DIGITS}}}")
# The leading dotted numbers of a firmware version ("30.13.0.30", "30.13.0.30-beta").
_FIRMWARE: Final = re.compile(r"\s*([0-9]{1,9}(?:\.[0-9]{1,9})*)")
_V2_FIRMWARE_PARTS: Final = (30, 13, 0, 30)


class AuthMode(StrEnum):
    """How the client gets its token."""

    CREDENTIALS = "credentials"  # logs in with the API username and password
    TOKEN = "token"  # noqa: S105 - a mode's name: a token obtained elsewhere, no login


class ApiVersion(StrEnum):
    """The S-Series API generation the client speaks with the PBX."""

    V1 = "1.0.0"  # every firmware with the API: extensions, one play per call
    V2 = "2.0.0"  # firmware 30.13.0.30+: paging groups, external numbers, count, volume

    @property
    def path(self) -> str:
        """Where its endpoints live: ``/api/v2.0.0/``."""
        return f"/api/v{self.value}/"


# One request for the API the token belongs to: (path, body). Built per attempt, so a
# retry after a re-login speaks the API of the new token.
_Exchange = Callable[[ApiVersion], tuple[str, dict[str, Any] | None]]


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
    # v2 only: "The callid does not exist."
    "10005": (VoicePromptRequestError, "The PBX knows no call with this call id (any more)"),
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
    # v2 only: "The callee number doesn't meet the requirement."
    "10031": (
        VoicePromptInputError,
        "The PBX does not accept {extension} as a number to call (check its outbound routes)",
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
# What an errno means where v2's call/playprompt says it differently: there 10024 is
# about the extension whose outbound permission an external call uses.
_V2_MESSAGES: Final[dict[str, str]] = {
    "10024": (
        "The PBX refused to call {extension} out: dial_permission must name an extension "
        "with outbound call permission"
    ),
}
_UNKNOWN: Final = (VoicePromptRequestError, "The PBX refused the request with error {code}")
_TOKEN_ERRNOS: Final = frozenset(errno for errno, spec in ERRORS.items() if spec is _TOKEN)


def error_for(
    errno: str,
    host: str,
    extension: str = "",
    prompt: str = "",
    *,
    api: ApiVersion = ApiVersion.V1,
) -> VoicePromptError:
    """The exception for a PBX ``errno`` (on ``api``); unknown codes keep their number."""
    cls, message = ERRORS.get(errno, _UNKNOWN)
    if api is ApiVersion.V2:
        message = _V2_MESSAGES.get(errno, message)
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
    return _targets(value, _EXTENSION, _not_an_extension, "extension")


def normalize_numbers(value: str | int | Sequence[str | int]) -> list[str]:
    """Unique numbers to call on API v2: ``"1000, 6300, +4930123456"`` or a list.

    Extensions and paging groups are digits; external numbers are digits, optionally
    after a leading +. Which is which only the PBX knows.
    """
    return _targets(value, _NUMBER, not_a_number, "number")


def firmware_supports_v2(firmware: str | None) -> bool:
    """Whether ``firmware`` is one the API v2.0.0 guide covers (30.13.0.30 or later)."""
    match = _FIRMWARE.match(firmware or "")
    if match is None:
        return False
    return tuple(int(part) for part in match.group(1).split(".")) >= _V2_FIRMWARE_PARTS


def _targets(
    value: object,
    pattern: re.Pattern[str],
    refuse: Callable[[object], VoicePromptInputError],
    noun: str,
) -> list[str]:
    if (whole := number_text(value)) is not None:
        items: list[Any] = whole.replace(";", ",").split(",")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = list(value)
    else:
        raise refuse(value)
    targets: list[str] = []
    for item in items:
        if (text := number_text(item)) is None:
            raise refuse(item)
        text = text.strip()
        if text == "":
            continue
        if not pattern.fullmatch(text):
            raise refuse(item)
        if text not in targets:
            targets.append(text)
    if not targets:
        raise VoicePromptInputError(f"No {noun} was given")
    if len(targets) > MAX_EXTENSIONS:
        raise VoicePromptInputError(f"At most {MAX_EXTENSIONS} {noun}s can be called at once")
    return targets


def _not_an_extension(value: object) -> VoicePromptInputError:
    return VoicePromptInputError(
        f"{shown(value)} is not an extension number (digits only, like 1000)"
    )


def not_a_number(value: object) -> VoicePromptInputError:
    """The refusal of a target that is no number to call (shared with the P-Series)."""
    return VoicePromptInputError(
        f"{shown(value)} is not a number to call (an extension or group number like 1000, "
        "or an external number like +4930123456)"
    )


def _extension(value: object) -> str:
    """``dial_permission``: the extension whose outbound permission a call uses."""
    text = number_text(value) or ""
    if not _EXTENSION.fullmatch(text.strip()):
        raise VoicePromptInputError(
            "dial_permission must be an extension number (digits only, like 1000)"
        )
    return text.strip()


def _joined(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass(frozen=True, slots=True)
class _Play:
    """What one play sends to each target, validated."""

    prompt: str  # the Custom Prompt names joined with +
    autoanswer: bool
    count: int | None = None
    volume: int | None = None
    dial_permission: str | None = None

    def exchange(self, number: str) -> _Exchange:
        """The request for ``number``, in the words of the token's API."""

        def build(api: ApiVersion) -> tuple[str, dict[str, Any]]:
            answer = "yes" if self.autoanswer else "no"
            if api is ApiVersion.V1:
                # Only reached without count/volume/dial_permission (refused before).
                return "extension/playprompt", {
                    "extid": number,
                    "prompt": self.prompt,
                    "autoanswer": answer,
                }
            body: dict[str, Any] = {"number": number, "prompt": self.prompt, "autoanswer": answer}
            # The guide's table says Integer, its example sends text ("count": "2"), as
            # this API sends every other number; the example is a captured exchange (its
            # reply shows the PBX's own web server), so text is what a PBX took.
            if self.count is not None:
                body["count"] = str(self.count)
            if self.volume is not None:
                body["volume"] = str(self.volume)
            if self.dial_permission is not None:
                body["dialpermission"] = self.dial_permission
            return "call/playprompt", body

        return build


def _fixed(path: str, body: dict[str, Any] | None = None) -> _Exchange:
    """A request that is the same on both APIs."""
    return lambda _api: (path, body)


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
    """Outcome of a (broadcast) play: call ids per target, and failures."""

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
        certificate_sha256: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        report_port: int = DEFAULT_REPORT_PORT,
        report_url: str | None = None,
    ) -> None:
        """Use ``username`` + ``password``, or ``token``: exactly one of the two.

        ``certificate_sha256`` pins the PBX's certificate (see :mod:`.tls`). ``report_url``
        (API v1.1.0+) is where the PBX should POST its event reports (see
        :mod:`.yeastar_reports`); without it the PBX reports to ``report_port``.
        """
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
        # A pinned certificate (its SHA-256) wins over verify_ssl: exactly that one is accepted.
        self.certificate = CertificateCheck(verify=verify_ssl, sha256=certificate_sha256)
        self.mode = AuthMode.TOKEN if token is not None else AuthMode.CREDENTIALS
        self._username = username
        # The PBX login wants the MD5 of the password; the plain one is not kept.
        self._password_md5 = (
            hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
            if password is not None
            else None
        )
        self._token = token
        self._origin = f"https://{url_host(host)}:{port}"
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._report_port = str(report_port)
        self.report_url = report_url
        self._login_flight: SingleFlight[str] = SingleFlight()
        # Requests at the PBX at once, whatever the number of actions: a small PBX
        # should not see a burst of actions as 100 parallel connections.
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._auth_failed: VoicePromptError | None = None
        self._blocked_until = 0.0
        self._last_used = 0.0
        self._token_since = 0.0
        # The API the token belongs to; None until device_info() has decided.
        self._api: ApiVersion | None = None
        self._api_reason: str | None = None
        self._transport: str | None = None  # how the PBX pushes v2 events (login reply)
        self._retired: str | None = None  # the v1 token, once v2 took over
        # Why the last try of the v2 login had no verdict (no answer, blocked).
        self._undecided: VoicePromptError | None = None
        if token is not None:
            # A token from elsewhere: nothing tells which API issued it, and trying v2
            # needs a login. It is used on v1, as before v2 support.
            self._settle(
                ApiVersion.V1, "the client was given a token, and API v2 needs a login instead"
            )

    def __repr__(self) -> str:
        """Describe the client without credentials."""
        return (
            f"YeastarClient(host={self.host!r}, port={self.port}, mode={self.mode}, "
            f"logged_in={self._token is not None})"
        )

    @property
    def web_url(self) -> str:
        """The PBX's web interface (it shares the API's HTTPS port)."""
        return self._origin

    @property
    def event_transport(self) -> str | None:
        """How the PBX pushes API v2 events, as its login said ("HTTP", "TCP"); v1: None."""
        return self._transport

    @property
    def api_version(self) -> ApiVersion | None:
        """The API in use: None until ``device_info()`` decided (token mode: always v1)."""
        return self._api

    # -- public surface -------------------------------------------------------------

    async def device_info(self) -> YeastarDeviceInfo:
        """Log in when needed and read ``deviceinfo/query``; decide the API the first time."""
        data = await self._request(_fixed("deviceinfo/query"))
        info = data.get("deviceinfo")
        if not isinstance(info, dict) or not info.get("sn"):
            raise self._bad_reply("deviceinfo without a serial number")
        device = YeastarDeviceInfo(
            name=str(info.get("devicename") or "Yeastar PBX"),
            serial=str(info["sn"]),
            hardware_version=opt_str(info.get("hardwarever")),
            firmware_version=opt_str(info.get("firmwarever")),
            extension_status=opt_str(info.get("extensionstatus")),
        )
        if self._api is None:
            await self._detect(device.firmware_version)
        return device

    async def extensions(self) -> list[YeastarExtension]:
        """Read the extensions: v1 ``extensionlist/query``, v2 ``extension/query`` (all)."""

        def build(api: ApiVersion) -> tuple[str, dict[str, Any] | None]:
            if api is ApiVersion.V1:
                return "extensionlist/query", None
            return "extension/query", {"number": "all"}

        data = await self._request(build)
        # v1 answers extlist [{extnumber, ...}], v2 extinfos [{number, ...}].
        items = data.get("extlist", data.get("extinfos"))
        if not isinstance(items, list):
            raise self._bad_reply("extension list missing")
        return [
            YeastarExtension(
                number=str(item.get("extnumber", item.get("number", ""))),
                status=str(item.get("status", "")),
                kind=str(item.get("type", "")),
                name=str(item.get("username", "")),
            )
            for item in items
            if isinstance(item, dict)
        ]

    async def play_prompt(
        self,
        target: str,
        prompts: str | Sequence[str],
        autoanswer: bool = False,
        *,
        count: int | None = None,
        volume: int | None = None,
        dial_permission: str | None = None,
    ) -> str:
        """Call one ``target`` and play ``prompts`` once it answers; return the call id.

        See ``async_play`` for the targets and options.
        """
        numbers, play, needs = self._prepare(
            target, prompts, autoanswer, count, volume, dial_permission
        )
        if len(numbers) != 1:
            noun = "number" if self._api is ApiVersion.V2 else "extension"
            raise VoicePromptInputError(
                f"{str(target)[:40]} is more than one {noun}; use async_play for several"
            )
        if needs and self._api is None:
            try:
                await self._decide()
            except VoicePromptError as err:
                err.target = numbers[0]
                raise
        self._refuse_without_v2(needs)
        return await self._play_one(numbers[0], play)

    async def async_play(
        self,
        targets: str | Sequence[str],
        prompts: str | Sequence[str],
        autoanswer: bool = False,
        *,
        count: int | None = None,
        volume: int | None = None,
        dial_permission: str | None = None,
    ) -> YeastarPlayResult:
        """Play ``prompts`` to every target (the PBX takes one target per request).

        Targets are extension numbers; with API v2 also paging groups and external
        numbers (digits, optionally after a +). ``count`` (1-10: how often the prompts are
        played), ``volume`` (0-20) and ``dial_permission`` (the extension whose outbound
        permission an external call uses) need API v2 as well. Input is validated before
        anything is sent; what needs v2 makes the client decide its API first (one
        ``device_info()``) and is refused on a PBX without it (or raises, per target
        here, what kept the PBX from telling). One target failing does
        not stop the others; failures are returned next to the call ids.
        """
        numbers, play, needs = self._prepare(
            targets, prompts, autoanswer, count, volume, dial_permission
        )
        if needs and self._api is None:
            try:
                await self._decide()
            except VoicePromptError as err:
                return YeastarPlayResult(
                    failures=[(number, _aimed(err, number)) for number in numbers]
                )
        self._refuse_without_v2(needs)
        outcomes: list[str | BaseException]
        if len(numbers) == 1:
            # The common case: no task per target (a measurable share of a call).
            try:
                outcomes = [await self._play_one(numbers[0], play)]
            except VoicePromptError as err:
                outcomes = [err]
        else:
            outcomes = await asyncio.gather(
                *(self._play_one(number, play) for number in numbers),
                return_exceptions=True,
            )
        result = YeastarPlayResult()
        for number, outcome in zip(numbers, outcomes, strict=True):
            if isinstance(outcome, VoicePromptError):
                result.failures.append((number, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result.calls.append((number, outcome))
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
        body = {"ipaddr": ipaddr, "port": self._report_port, **self._report_fields()}
        if self.report_url is not None:
            # The v1.1.0 heartbeat's table names the URL type urlflag, its login urltag.
            body["urlflag"] = body["urltag"]
        await self._request(_fixed("heartbeat", body))
        return True

    async def async_close(self) -> None:
        """Log out (credentials mode); a token given by the user is left alone."""
        if self.mode is AuthMode.TOKEN or self._token is None:
            return
        token, self._token = self._token, None
        await self._logout(self._token_api, token)

    def diagnostics(self) -> dict[str, Any]:
        """Client state for diagnostics: no credentials, no token."""
        now = time.monotonic()
        return {
            "host": self.host,
            "port": self.port,
            "verify_ssl": self.verify_ssl,
            **self.certificate.diagnostics(),
            "mode": str(self.mode),
            "logged_in": self._token is not None,
            # Unknown for a token given by the user: it was issued before we saw it.
            "token_age_seconds": (
                round(now - self._token_since, 1) if self._token and self._token_since else None
            ),
            "idle_seconds": round(now - self._last_used, 1) if self._last_used else None,
            "auth_failed": self._auth_failed is not None,
            "blocked_for_seconds": max(0.0, round(self._blocked_until - now, 1)),
            "api_version": None if self._api is None else str(self._api),
            "api_version_reason": self._api_reason,
            "event_transport": self._transport,
            # Whether reports are asked for, not where: the URL holds a webhook id.
            "report_url_set": self.report_url is not None,
        }

    # -- internals: playing -----------------------------------------------------------

    def _prepare(
        self,
        targets: object,
        prompts: str | Sequence[str],
        autoanswer: bool,
        count: int | None,
        volume: int | None,
        dial_permission: str | None,
    ) -> tuple[list[str], _Play, list[str]]:
        """Validate a play: its targets, what it sends, and what of it needs API v2."""
        if self._api is ApiVersion.V2:
            numbers = _targets(targets, _NUMBER, not_a_number, "number")
        else:
            # The same numbers, in words for a PBX that may only ring extensions.
            numbers = _targets(targets, _NUMBER, _not_an_extension, "extension")
        play = _Play(
            prompt="+".join(normalize_prompts(prompts)),
            autoanswer=bool(autoanswer),
            count=None
            if count is None
            else bounded("The number of times to play the prompts", count, 1, MAX_COUNT),
            volume=None
            if volume is None
            else bounded("The volume", volume, MIN_VOLUME, MAX_VOLUME),
            dial_permission=None if dial_permission is None else _extension(dial_permission),
        )
        needs = [
            name
            for name, value in (
                ("count", play.count),
                ("volume", play.volume),
                ("dial_permission", play.dial_permission),
            )
            if value is not None
        ]
        others = [number for number in numbers if not _EXTENSION.fullmatch(number)]
        if others:
            rest = len(others) - 1
            more = f" and {rest} other number{'s' if rest > 1 else ''}" if rest else ""
            needs.append(f"calling {others[0]}{more}")
        return numbers, play, needs

    def _refuse_without_v2(self, needs: list[str]) -> None:
        """Refuse what only API v2 can do on a PBX (or a client) that speaks v1."""
        if not needs or self._api is ApiVersion.V2:
            return
        verb = "needs" if len(needs) == 1 else "need"
        raise VoicePromptInputError(
            f"{_joined(needs)} {verb} S-Series API v2 (firmware {V2_FIRMWARE} or newer); "
            f"{self._api_reason}"
        )

    async def _play_one(self, number: str, play: _Play) -> str:
        try:
            data = await self._request(play.exchange(number))
        except VoicePromptError as err:
            if err.code is not None and type(err) is ERRORS.get(err.code, _UNKNOWN)[0]:
                # A PBX errno: say which call it was (the message names target and prompt).
                raise error_for(
                    err.code, self.host, number, play.prompt, api=self._token_api
                ) from None
            err.target = number
            raise
        callid = data.get("callid")
        if not isinstance(callid, (str, int)) or isinstance(callid, bool) or callid == "":
            error = self._bad_reply("success without a call id")
            error.target = number
            raise error
        return str(callid)

    # -- internals: the API version ---------------------------------------------------

    @property
    def _token_api(self) -> ApiVersion:
        """The API of the token (and of every request): v1 until v2 is confirmed."""
        return self._api or ApiVersion.V1

    def _settle(self, api: ApiVersion, reason: str) -> None:
        self._api = api
        self._api_reason = reason
        _LOGGER.debug("%s: using API %s (%s)", self.host, api, reason)

    async def _decide(self) -> None:
        """Decide the API for input that needs v2; raise what kept the PBX from saying."""
        await self.device_info()
        if self._api is None:
            assert self._undecided is not None
            raise self._undecided.copy()

    async def _detect(self, firmware: str | None) -> None:
        """Decide the API once, from the firmware and, if it should have v2, its login.

        A v2 login without a verdict (no answer, the address blocked) never fails the
        device query: v1 goes on working, undecided, and the next query tries again.
        """
        if not firmware_supports_v2(firmware):
            shown = f"runs firmware {firmware[:40]}" if firmware else "reports no firmware version"
            self._settle(ApiVersion.V1, f"{self.host} {shown}")
            return
        try:
            # Inside the login flight: no other login (a v1 re-login) runs meanwhile,
            # and callers whose token dies meanwhile get the outcome of this one.
            while self._api is None:
                await self._login_flight.run(functools.partial(self._try_v2, str(firmware)))
        except (VoicePromptConnectionError, VoicePromptIPBlockedError) as err:
            self._undecided = err
            self._api_reason = (
                f"{self.host} has firmware {str(firmware)[:40]}; the API v2 login failed "
                f"and is tried again: {err.message}"
            )
            _LOGGER.debug("%s: API undecided (%s)", self.host, self._api_reason)
            return
        self._undecided = None
        retired, self._retired = self._retired, None
        if retired is not None:
            # The v1 token would otherwise stay alive at the PBX for 30 minutes.
            await self._logout(ApiVersion.V1, retired)

    async def _try_v2(self, firmware: str) -> str:
        """Try the v2 login: v2 on success, v1 on any answer but success, else undecided."""
        try:
            token, data = await self._login(ApiVersion.V2)
        except (VoicePromptConnectionError, VoicePromptIPBlockedError):
            raise  # no verdict (see _detect)
        except VoicePromptError as err:
            # The PBX answered, and not with a token: it has no usable v2. A refusal of
            # the credentials v1 just took is not latched, and not tried again.
            self._settle(
                ApiVersion.V1,
                f"{self.host} has firmware {firmware[:40]}, but its API v2 login failed: "
                f"{err.message}",
            )
            return self._token or ""
        self._retired = self._token
        self._install(ApiVersion.V2, token, data)
        self._settle(ApiVersion.V2, f"firmware {firmware[:40]}; the API v2 login worked")
        return token

    # -- internals: requests and tokens -----------------------------------------------

    async def _request(self, exchange: _Exchange) -> dict[str, Any]:
        """Send an authenticated request; log in again once if the token died."""
        if self._auth_failed is not None:
            # Refused once: never knock again (5 failures lock the PBX for 10 minutes).
            raise self._auth_failed.copy()
        token = self._token or await self._fresh_token(stale=None)
        api = self._token_api
        try:
            return await self._post(api, *exchange(api), token)
        except VoicePromptTokenError as err:
            if self.mode is AuthMode.TOKEN:
                self._auth_failed = err
                raise
        token = await self._fresh_token(stale=token)
        api = self._token_api
        try:
            return await self._post(api, *exchange(api), token)
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
            api = self._token_api
            try:
                token, data = await self._login(api)
            except VoicePromptAuthenticationError as err:
                self._auth_failed = err
                raise
            self._install(api, token, data)
            return token

        return await self._login_flight.run(login)

    async def _login(self, api: ApiVersion) -> tuple[str, dict[str, Any]]:
        """One login on ``api`` behind the lockout guard: the token and the whole reply."""
        if self._auth_failed is not None:
            raise self._auth_failed.copy()
        if self._blocked_until > time.monotonic():
            raise error_for("20002", self.host)
        body = {
            "username": self._username,
            "password": self._password_md5,
            "port": self._report_port,
            # v1: "1.0.2" makes the event reports well-formed JSON; v2: the v2 event format.
            "version": "1.0.2" if api is ApiVersion.V1 else "2.0.0",
            **self._report_fields(),
        }
        try:
            data = await self._post(api, "login", body, None)
        except VoicePromptIPBlockedError:
            self._blocked_until = time.monotonic() + LOCKOUT_SECONDS
            raise
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise self._bad_reply("login succeeded without a token")
        return token, data

    def _report_fields(self) -> dict[str, str]:
        """Where event reports go: an absolute URL (urltag 1), if there is one."""
        if self.report_url is None:
            return {}
        return {"url": report_address(self.report_url), "urltag": "1"}

    def _install(self, api: ApiVersion, token: str, data: dict[str, Any]) -> None:
        self._token = token
        self._token_since = time.monotonic()
        if api is ApiVersion.V2:
            self._transport = opt_str(data.get("transport"))
        _LOGGER.debug("Logged in to %s (API %s)", self.host, api)

    async def _logout(self, api: ApiVersion, token: str) -> None:
        try:
            await self._post(api, "logout", None, token, seconds=LOGOUT_TIMEOUT)
        except VoicePromptError as err:
            _LOGGER.debug("Logout from %s failed: %s", self.host, err)

    async def _post(
        self,
        api: ApiVersion,
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
                    self._origin + api.path + path,
                    params={"token": token} if token else None,
                    json=body,
                    ssl=self.certificate.ssl,
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
            _LOGGER.debug("%s %s%s failed with errno %s", self.host, api.path, path, errno)
            raise error_for(errno, self.host)
        raise self._bad_reply("no status")

    def _bad_reply(self, detail: str) -> VoicePromptResponseError:
        return VoicePromptResponseError(
            f"{self.host} sent a reply that is not a valid Yeastar API response ({detail})"
        )


def _aimed(err: VoicePromptError, target: str) -> VoicePromptError:
    """The error as one target's own instance, naming it."""
    copy = err.copy()
    copy.target = target
    return copy
