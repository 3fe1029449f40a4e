"""Async client for the Asterisk REST Interface (ARI): calls, playback, DTMF, hang-up causes.

No Home Assistant imports: the caller injects an ``aiohttp.ClientSession``. REST requests go
to ``<url>/ari/...`` with HTTP Basic auth (a user of ``ari.conf``); events arrive over one
websocket per client, ``<url>/ari/events?app=<app>``, which registers the Stasis
application. Calls are originated straight into that application (no dialplan needed):
Asterisk answers ``StasisStart`` once the callee picks up, ``PlaybackFinished`` per sound,
``ChannelDtmfReceived`` per key and ``ChannelDestroyed`` with the Q.850 cause at the end.

Facts measured against Asterisk 22 (Debian sid), which the code below relies on:

* ``POST /channels`` answers 200 with the channel at once; ``500 {"error": "Allocation
  failed"}`` for an endpoint that is unknown or not registered alike (``GET /endpoints``
  tells them apart: 404, or ``state: offline``); ``400`` for a malformed endpoint.
* Events can arrive before the REST reply that caused them (``PlaybackStarted`` before
  ``201``): the client picks the channel and playback ids itself and listens first.
* ``/play`` answers ``201`` even for a sound that does not exist, a 16 kHz WAV or a URL
  that fails; only ``PlaybackFinished`` with ``state: failed`` tells. A hang-up during a
  playback also ends it ``failed``, after ``ChannelHangupRequest``.
* Several media in one ``media`` parameter are separated by commas, so a comma inside a
  URL is sent as ``%2C``.
* A second websocket for the same application takes its events over; the first gets
  ``ApplicationReplaced`` and nothing more. Channels stay in the application while the
  websocket is down; events resume when it is back (those in between are lost).
* Causes: 16 when we hang up, 17 busy (486), 19 no answer (ring timeout, 480), 21 rejected
  (603); a callee's BYE shows as cause 0 or 16. HTTP 404 with an HTML body on ``/ari``
  means the HTTP server runs without ARI; 401 refused credentials; 403 a read-only user.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine, Sequence
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import json
import logging
import re
import time
from typing import Any, Final, Protocol
import urllib.parse
import uuid

import aiohttp
from yarl import URL

from .exceptions import (
    VoicePromptAriDisabledError,
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptTimeoutError,
)
from .http import opt_str, transport_error, url_host
from .tls import CertificateCheck

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8088
DEFAULT_APP: Final = "voice_prompt"
DEFAULT_TECHNOLOGY: Final = "PJSIP"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_RING_TIMEOUT: Final = 30
DEFAULT_DIGIT_TIMEOUT: Final = 10.0
MAX_RING_TIMEOUT: Final = 300
MAX_DIGIT_TIMEOUT: Final = 300.0
MAX_MEDIA: Final = 20
MAX_REPEAT: Final = 10
# Asterisk gives up ringing after the originate timeout; we wait this much longer for its word.
ANSWER_GRACE: Final = 5.0
# A sound over HTTP is downloaded before it starts; one media item may play this long.
PLAYBACK_START_TIMEOUT: Final = 30.0
MAX_MEDIA_SECONDS: Final = 600.0
# A failed playback is a missing sound unless a hang-up shows up this soon after it.
HANGUP_GRACE: Final = 0.5
# Between the end of the last sound and our hang-up: the callee's jitter buffer still holds
# the sound's last ~0.1 s when Asterisk reports it finished (measured with baresip).
HANGUP_DELAY: Final = 0.5
# After our DELETE, how long to wait for ChannelDestroyed (its cause goes in the result).
DESTROY_TIMEOUT: Final = 3.0
HANGUP_TIMEOUT: Final = 5.0
# How long a call waits for the event websocket to come back before giving up.
RESYNC_TIMEOUT: Final = 10.0
# Seconds between reconnection attempts; the last one repeats.
RECONNECT_DELAYS: Final[tuple[float, ...]] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# A ping every HEARTBEAT seconds; no message within PONG_TIMEOUT after it: the link is dead.
HEARTBEAT: Final = 20.0
PONG_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 2.0

_TECHNOLOGY: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_EXTENSION: Final = re.compile(r"[0-9*#+]{1,32}")
_RESOURCE: Final = re.compile(r"[^\s,]{1,200}")
_SOUND: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}")
_APP: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DIGITS: Final = frozenset("0123456789*#ABCD")
_MEDIA_SCHEMES: Final = ("sound:", "recording:", "number:", "digits:", "characters:", "tone:")
_MESSAGE_LIMIT: Final = 200


class AriEventType(StrEnum):
    """The ARI events the client understands (Asterisk's own names)."""

    STASIS_START = "StasisStart"
    STASIS_END = "StasisEnd"
    CHANNEL_STATE_CHANGE = "ChannelStateChange"
    CHANNEL_DTMF_RECEIVED = "ChannelDtmfReceived"
    CHANNEL_HANGUP_REQUEST = "ChannelHangupRequest"
    CHANNEL_DESTROYED = "ChannelDestroyed"
    PLAYBACK_STARTED = "PlaybackStarted"
    PLAYBACK_FINISHED = "PlaybackFinished"
    APPLICATION_REPLACED = "ApplicationReplaced"


class AriCallStatus(StrEnum):
    """How a call ended up; the same words as the integration's outcomes."""

    ANSWERED = "answered"  # picked up, but the media did not play to the end
    PLAYED = "played"
    ACKNOWLEDGED = "acknowledged"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    FAILED = "failed"


class AriSocketState(StrEnum):
    """The state of the event websocket."""

    STOPPED = "stopped"  # not started, or closed
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    REPLACED = "replaced"  # another client took the application over; retrying slowly
    AUTH_FAILED = "auth_failed"  # credentials refused: no more attempts until new ones


# Q.850 causes of a call that was never answered → outcome (anything else: failed).
CAUSE_STATUS: Final[dict[int, AriCallStatus]] = {
    17: AriCallStatus.BUSY,
    18: AriCallStatus.NO_ANSWER,
    19: AriCallStatus.NO_ANSWER,
    21: AriCallStatus.REJECTED,
}


def status_for_cause(cause: int | None) -> AriCallStatus:
    """The outcome of a call that ended with ``cause`` before it was answered."""
    return (
        CAUSE_STATUS.get(cause, AriCallStatus.FAILED)
        if cause is not None
        else (AriCallStatus.FAILED)
    )


@dataclass(frozen=True, slots=True)
class AriInfo:
    """What ``GET /ari/asterisk/info`` tells about the server."""

    version: str
    entity_id: str  # the system id (a MAC-like value, stable per installation)
    system_name: str | None
    default_language: str | None


@dataclass(frozen=True, slots=True)
class AriEndpoint:
    """One endpoint (``PJSIP/1000``) and whether a device is registered on it."""

    technology: str
    resource: str
    state: str | None  # "online", "offline", "unknown" (or None when Asterisk omits it)
    channel_ids: tuple[str, ...]

    @property
    def online(self) -> bool:
        """Whether a device is registered (or the endpoint needs no registration)."""
        return self.state == "online"


@dataclass(frozen=True, slots=True)
class AriEvent:
    """One event of the application, as the integration needs it."""

    type: AriEventType
    channel_id: str | None = None
    channel_name: str | None = None
    channel_state: str | None = None  # "Down", "Ringing", "Up", ...
    digit: str | None = None
    playback_id: str | None = None
    playback_state: str | None = None  # "playing", "done", "failed", ...
    media: str | None = None
    cause: int | None = None
    cause_text: str | None = None
    timestamp: str | None = None


@dataclass(slots=True)
class AriCallResult:
    """What happened to one call of :meth:`AriClient.async_play`."""

    endpoint: str
    channel_id: str
    status: AriCallStatus
    cause: int | None = None  # Q.850 cause of ChannelDestroyed, when the channel ended
    cause_text: str | None = None
    digit: str | None = None  # the acknowledging key
    played: int = 0  # media items that played to the end (repeats counted)
    hung_up: bool = False  # True when this client hung up; False: the callee, or left up


# ------------------------------------------------------------------------ validation


def parse_url(text: str) -> str:
    """The ARI base URL (``http(s)://host:port[/prefix]``) of what a user typed.

    A trailing ``/ari`` is dropped (the client adds it); a missing port is 8088 for
    plain HTTP (Asterisk's default) and 443 for HTTPS.
    """
    if not isinstance(text, str) or not text.strip():
        raise VoicePromptInputError("The ARI URL is empty")
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        url = URL(raw)
        port = url.explicit_port
    except (ValueError, TypeError):
        raise VoicePromptInputError(f"{text[:80]} is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise VoicePromptInputError(f"{text[:80]} is not an ARI URL (like http://pbx.local:8088)")
    if url.user is not None or url.password is not None:
        raise VoicePromptInputError(
            "Give the ARI username and password in their own fields, not in the URL"
        )
    if url.query_string or url.fragment:
        raise VoicePromptInputError(f"{url.host} URL must not have a query or fragment")
    if port is None:
        port = DEFAULT_PORT if url.scheme == "http" else 443
    path = url.path.rstrip("/")
    if path.endswith("/ari"):
        path = path[: -len("/ari")]
    return f"{url.scheme}://{url_host(url.host)}:{port}{path}"


def check_app(name: str) -> str:
    """A Stasis application name: letters, digits, ``_ . -`` (at most 64)."""
    if not isinstance(name, str) or not _APP.fullmatch(name.strip()):
        raise VoicePromptInputError(
            f"{str(name)[:40]} is not a valid Stasis application name "
            "(letters, digits, _ . -; at most 64)"
        )
    return name.strip()


def normalize_endpoint(target: str | int, technology: str = DEFAULT_TECHNOLOGY) -> str:
    """``1000`` → ``PJSIP/1000``; ``PJSIP/1000`` or ``PJSIP/+3120…@trunk`` stay as they are."""
    if isinstance(target, bool) or not isinstance(target, (str, int)):
        raise _not_an_endpoint(target)
    text = str(target).strip()
    if _EXTENSION.fullmatch(text):
        if not _TECHNOLOGY.fullmatch(technology):
            raise VoicePromptInputError(f"{technology[:40]} is not a channel technology")
        return f"{technology}/{text}"
    tech, slash, resource = text.partition("/")
    if not slash or not _TECHNOLOGY.fullmatch(tech) or not _RESOURCE.fullmatch(resource):
        raise _not_an_endpoint(target)
    if not resource.isprintable():
        raise _not_an_endpoint(target)
    return f"{tech}/{resource}"


def _not_an_endpoint(value: object) -> VoicePromptInputError:
    return VoicePromptInputError(
        f"{str(value)[:40]} is not an extension or an Asterisk endpoint (like 1000 or PJSIP/1000)"
    )


def normalize_media(item: str) -> str:
    """One thing to play as an ARI media URI.

    ``hello-world`` → ``sound:hello-world``; an ``http(s)://`` URL → ``sound:<url>``
    (Asterisk downloads it; WAV must be 8 kHz mono 16-bit); ``sound:``, ``recording:``,
    ``digits:``, ``number:``, ``characters:`` and ``tone:`` URIs pass. Commas separate
    media in ARI, so one in a URL is escaped and one elsewhere refused.
    """
    if not isinstance(item, str) or not item.strip():
        raise VoicePromptInputError("A media item is empty")
    text = item.strip()
    if not text.isprintable() or any(c.isspace() for c in text):
        raise VoicePromptInputError(f"{text[:60]} contains spaces or control characters")
    lowered = text.lower()
    if lowered.startswith("sound:"):
        rest = text[len("sound:") :]
        if rest.lower().startswith(("http://", "https://")):
            return "sound:" + _media_url(rest)
        return "sound:" + _sound_name(rest)
    if lowered.startswith(("http://", "https://")):
        return "sound:" + _media_url(text)
    if lowered.startswith(_MEDIA_SCHEMES):
        if "," in text:
            raise VoicePromptInputError(f"{text[:60]}: a media item cannot contain a comma")
        return text
    if ":" in text:
        raise VoicePromptInputError(
            f"{text[:60]} is not something Asterisk can play (a sound name, sound:<name> "
            "or an http(s) URL)"
        )
    return "sound:" + _sound_name(text)


def _sound_name(name: str) -> str:
    if not _SOUND.fullmatch(name) or ".." in name.split("/"):
        raise VoicePromptInputError(
            f"{name[:60]} is not a valid Asterisk sound name (like hello-world or "
            "custom/doorbell, without the file extension)"
        )
    return name


def _media_url(text: str) -> str:
    try:
        url = URL(text)
    except ValueError:
        raise VoicePromptInputError(f"{text[:60]} is not a valid URL") from None
    if not url.host or url.user is not None:
        raise VoicePromptInputError(f"{text[:60]} is not a URL Asterisk can download")
    return text.replace(",", "%2C")


# ------------------------------------------------------------------------ events


def _channel_of(data: dict[str, Any]) -> dict[str, Any] | None:
    channel = data.get("channel")
    return channel if isinstance(channel, dict) else None


def parse_event(data: Any) -> AriEvent | None:
    """A typed event from one decoded websocket message; None for types we do not use.

    Raises ValueError for a message that is not an ARI event at all.
    """
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError("not an ARI event")  # noqa: TRY004 - a bad message, as json.loads says
    try:
        kind = AriEventType(data["type"])
    except ValueError:
        return None
    timestamp = opt_str(data.get("timestamp"))
    if kind is AriEventType.APPLICATION_REPLACED:
        return AriEvent(kind, timestamp=timestamp)
    if kind in (AriEventType.PLAYBACK_STARTED, AriEventType.PLAYBACK_FINISHED):
        playback = data.get("playback")
        if not isinstance(playback, dict) or not isinstance(playback.get("id"), str):
            raise ValueError(f"{kind} without a playback")
        target = str(playback.get("target_uri") or "")
        return AriEvent(
            kind,
            channel_id=target[len("channel:") :] if target.startswith("channel:") else None,
            playback_id=playback["id"],
            playback_state=opt_str(playback.get("state")),
            media=opt_str(playback.get("media_uri")),
            timestamp=timestamp,
        )
    channel = _channel_of(data)
    if channel is None or not isinstance(channel.get("id"), str):
        raise ValueError(f"{kind} without a channel")
    cause = data.get("cause")
    digit = data.get("digit")
    return AriEvent(
        kind,
        channel_id=channel["id"],
        channel_name=opt_str(channel.get("name")),
        channel_state=opt_str(channel.get("state")),
        digit=digit if isinstance(digit, str) and digit else None,
        cause=cause if isinstance(cause, int) and not isinstance(cause, bool) else None,
        cause_text=opt_str(data.get("cause_txt")),
        timestamp=timestamp,
    )


class _Signal(StrEnum):
    """What the event reader tells a call besides events."""

    LOST = "lost"  # the websocket dropped: events may be missing
    BACK = "back"  # connected again
    DEAD = "dead"  # no more events will come (client closed, credentials refused)


class _Socket(Protocol):
    """The part of aiohttp's client websocket the reader uses."""

    @property
    def closed(self) -> bool: ...

    @property
    def close_code(self) -> int | None: ...

    async def receive(self) -> aiohttp.WSMessage: ...

    async def close(self) -> bool: ...

    async def ping(self, message: bytes = b"") -> None: ...

    async def pong(self, message: bytes = b"") -> None: ...

    def exception(self) -> BaseException | None: ...


class _Call:
    """A channel this client originated and is waiting on."""

    def __init__(self, channel_id: str, endpoint: str) -> None:
        self.channel_id = channel_id
        self.endpoint = endpoint
        self.queue: asyncio.Queue[AriEvent | _Signal] = asyncio.Queue()
        self.may_exist = False  # originate sent and not refused: hang up on the way out
        self.answered = False
        self.hangup_seen = False
        self.destroyed: AriEvent | None = None

    def feed(self, item: AriEvent | _Signal) -> None:
        if isinstance(item, AriEvent):
            if item.type is AriEventType.CHANNEL_HANGUP_REQUEST:
                self.hangup_seen = True
            elif item.type is AriEventType.CHANNEL_DESTROYED:
                self.hangup_seen = True
                self.destroyed = item
        self.queue.put_nowait(item)


class _CallEndedError(Exception):
    """The channel is gone (internal: ends the media loop)."""


# ------------------------------------------------------------------------ client


class AriClient:
    """Talks to one Asterisk over ARI as one Stasis application."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        username: str,
        password: str,
        app: str = DEFAULT_APP,
        *,
        verify_ssl: bool = True,
        certificate_sha256: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        heartbeat: float = HEARTBEAT,
        hangup_delay: float = HANGUP_DELAY,
    ) -> None:
        """Prepare the client; nothing is sent before the first request or :meth:`async_start`.

        ``url`` is ARI's base (``http://pbx:8088``, see :func:`parse_url`); ``app`` the
        Stasis application this client registers (one websocket per client: two clients
        with the same name on one Asterisk take its events from each other).
        ``reconnect_delays``: seconds between reconnection attempts (the last repeats);
        ``heartbeat``: seconds between pings of the event websocket; ``hangup_delay``:
        seconds between the end of the last sound and the hang-up (phones' jitter
        buffers still hold the sound's last moment when Asterisk reports it finished).
        """
        if not username or password is None:
            raise ValueError("an ARI username and password are needed")
        if not reconnect_delays or any(delay < 0 for delay in reconnect_delays):
            raise ValueError("reconnect_delays must be non-negative and not empty")
        if heartbeat <= 0:
            raise ValueError("heartbeat must be positive")
        if hangup_delay < 0:
            raise ValueError("hangup_delay must not be negative")
        self._hangup_delay = hangup_delay
        self._session = session
        self.url = parse_url(url)
        self.app = check_app(app)
        self.verify_ssl = verify_ssl
        # A pinned certificate (its SHA-256) wins over verify_ssl: exactly that one is accepted.
        self.certificate = CertificateCheck(verify=verify_ssl, sha256=certificate_sha256)
        parsed = URL(self.url)
        self.host = f"{url_host(parsed.host or '')}:{parsed.port}"
        self._rest = self.url + "/ari/"
        # Sent as a header (aiohttp 3.14 deprecates BasicAuth); never shown anywhere.
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._heartbeat = heartbeat
        self._pinger: asyncio.Task[None] | None = None
        self._last_message = 0.0
        self._unanswered = False
        self._request_timeout = request_timeout
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._delays = tuple(reconnect_delays)
        self._calls: dict[str, _Call] = {}
        # Channels we gave up on whose existence is unknown → until when to watch for them.
        self._orphans: dict[str, float] = {}
        self._listeners: list[Callable[[AriEvent], None]] = []
        self._state_listeners: list[Callable[[AriSocketState], None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._ws: _Socket | None = None
        self._start_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._state = AriSocketState.STOPPED
        self._auth_error: VoicePromptError | None = None
        self._last_error: str | None = None
        self._connected_since: float | None = None
        self._reconnects = 0
        self._events = 0
        self._bad_events = 0
        self._replaced = 0

    def __repr__(self) -> str:
        """Describe the client without credentials."""
        return f"AriClient(url={self.url!r}, app={self.app!r}, state={self._state})"

    # -- REST ------------------------------------------------------------------------

    async def asterisk_info(self) -> AriInfo:
        """Read ``/ari/asterisk/info``: version and system id (checks URL and credentials)."""
        data = await self._json("GET", "asterisk/info")
        system = data.get("system") if isinstance(data, dict) else None
        if not isinstance(system, dict) or not system.get("version"):
            raise self._bad_reply("asterisk/info without a system version")
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        return AriInfo(
            version=str(system["version"]),
            entity_id=str(system.get("entity_id") or ""),
            system_name=opt_str(config.get("name")),
            default_language=opt_str(config.get("default_language")),
        )

    async def endpoint(self, technology: str, resource: str) -> AriEndpoint:
        """Read one endpoint; an unknown one is an input error."""
        status, data = await self._request(
            "GET", f"endpoints/{_quote(technology)}/{_quote(resource)}", ok=(200, 404)
        )
        if status == 404:
            raise VoicePromptInputError(
                f"Asterisk has no endpoint {technology}/{resource}",
                code="404",
                target=f"{technology}/{resource}",
            )
        if not isinstance(data, dict):
            raise self._bad_reply("endpoint is not an object")
        ids = data.get("channel_ids")
        return AriEndpoint(
            technology=str(data.get("technology") or technology),
            resource=str(data.get("resource") or resource),
            state=opt_str(data.get("state")),
            channel_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        )

    async def originate(
        self,
        endpoint: str,
        *,
        timeout: int = DEFAULT_RING_TIMEOUT,  # noqa: ASYNC109 - how long Asterisk rings
        caller_id: str | None = None,
        channel_id: str | None = None,
    ) -> str:
        """Call ``endpoint`` into the Stasis application; return the channel id.

        ``timeout`` is how long Asterisk lets it ring (seconds). Events of the call reach
        only a connected application: start the websocket first (:meth:`async_play`
        does). An endpoint that is unknown or not registered is reported as such.
        """
        endpoint = normalize_endpoint(endpoint)
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise VoicePromptInputError("The ring timeout must be a whole number of seconds")
        if not 1 <= timeout <= MAX_RING_TIMEOUT:
            raise VoicePromptInputError(
                f"The ring timeout must be between 1 and {MAX_RING_TIMEOUT} seconds"
            )
        params = {"endpoint": endpoint, "app": self.app, "timeout": str(timeout)}
        if caller_id is not None:
            params["callerId"] = _check_caller_id(caller_id)
        if channel_id is not None:
            params["channelId"] = channel_id
        try:
            data = await self._json("POST", "channels", params=params)
        except VoicePromptError as err:
            err.target = endpoint
            if err.code == "500" and "allocation failed" in err.message.lower():
                raise await self._why_not_allocated(endpoint) from None
            raise
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            error = self._bad_reply("originate without a channel id")
            error.target = endpoint
            raise error
        return str(data["id"])

    async def play(self, channel_id: str, media: str, *, playback_id: str | None = None) -> str:
        """Start playing ``media`` (see :func:`normalize_media`) on a channel; return its id.

        Asterisk accepts a sound that does not exist: only ``PlaybackFinished`` with state
        ``failed`` tells (:meth:`async_play` waits for it).
        """
        params = {"media": normalize_media(media)}
        if playback_id is not None:
            params["playbackId"] = playback_id
        status, data = await self._request(
            "POST", f"channels/{_quote(channel_id)}/play", params=params, ok=(201, 404)
        )
        if status == 404:
            raise VoicePromptRequestError(
                f"The call {channel_id} does not exist (any more)", code="404"
            )
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise self._bad_reply("play without a playback id")
        return str(data["id"])

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; False when it had already ended."""
        status, _ = await self._request("DELETE", f"playbacks/{_quote(playback_id)}", ok=(204, 404))
        return status == 204

    async def hangup(self, channel_id: str, *, seconds: float | None = None) -> bool:
        """Hang a channel up (cause 16); False when it was already gone."""
        status, _ = await self._request(
            "DELETE", f"channels/{_quote(channel_id)}", ok=(204, 404), seconds=seconds
        )
        return status == 204

    # -- events ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the event websocket is connected."""
        return self._state is AriSocketState.CONNECTED

    @property
    def state(self) -> AriSocketState:
        """The event websocket's state."""
        return self._state

    def add_listener(self, callback: Callable[[AriEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every event of the application; returns the remover."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def add_state_listener(self, callback: Callable[[AriSocketState], None]) -> Callable[[], None]:
        """Call ``callback`` whenever the websocket's state changes; returns the remover."""
        self._state_listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._state_listeners.remove(callback)

        return remove

    async def async_start(self) -> None:
        """Connect the event websocket (raising what stops it) and keep it connected.

        After the first connection the client reconnects by itself, with the delays of
        ``reconnect_delays``; refused credentials stop it (reauth).
        """
        async with self._start_lock:
            if self._reader is not None and not self._reader.done():
                return
            ws = await self._connect()
            self._auth_error = None
            self._on_connected(ws, first=True)
            self._reader = asyncio.create_task(self._run(ws), name=f"ARI events {self.host}")

    async def async_close(self) -> None:
        """Stop the websocket; calls still waiting end with a connection error."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._stop_pinger()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await ws.close()
        self._connected.clear()
        self._set_state(AriSocketState.STOPPED)
        for call in list(self._calls.values()):
            call.feed(_Signal.DEAD)
        if self._background:
            await asyncio.wait(set(self._background), timeout=HANGUP_TIMEOUT)

    def diagnostics(self) -> dict[str, Any]:
        """Client state for diagnostics: no credentials."""
        since = self._connected_since
        return {
            "url": self.url,
            "app": self.app,
            "verify_ssl": self.verify_ssl,
            **self.certificate.diagnostics(),
            "events": {
                "state": str(self._state),
                "connected": self.connected,
                "connected_seconds": (
                    round(time.monotonic() - since, 1) if since is not None else None
                ),
                "reconnects": self._reconnects,
                "last_error": self._last_error,
                "received": self._events,
                "bad_events": self._bad_events,
                "replaced": self._replaced,
            },
            "active_calls": len(self._calls),
        }

    # -- the whole call ----------------------------------------------------------------

    async def async_play(
        self,
        endpoint: str,
        media: Sequence[str],
        *,
        ring_timeout: int = DEFAULT_RING_TIMEOUT,
        repeat: int = 1,
        acknowledge_digit: str | None = None,
        digit_timeout: float = DEFAULT_DIGIT_TIMEOUT,
        hang_up: bool = True,
        caller_id: str | None = None,
        channel_id: str | None = None,
        on_originated: Callable[[], None] | None = None,
    ) -> AriCallResult:
        """Call ``endpoint``, play ``media`` in order ``repeat`` times, and report.

        ``channel_id`` names the channel (default: a new ``vp-`` id), so that a caller can
        tell the application's events of this call (see :meth:`add_listener`) from others.
        ``on_originated`` is called once Asterisk accepted the call (it is ringing).

        With ``acknowledge_digit``, a press of that key (during or up to ``digit_timeout``
        seconds after the media) acknowledges and ends the call. Outcomes of the callee
        (busy, no answer, rejected, hung up early) are results; a media item that Asterisk
        cannot play raises :class:`VoicePromptInputError` naming it, after hanging up.
        Every step is bounded in time; cancelled, the call is hung up.
        """
        target = normalize_endpoint(endpoint)
        if isinstance(media, str):
            media = [media]
        items = [normalize_media(item) for item in media]
        if not items:
            raise VoicePromptInputError("Nothing to play was given")
        if len(items) > MAX_MEDIA:
            raise VoicePromptInputError(f"At most {MAX_MEDIA} media items can be played")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
            raise VoicePromptInputError(f"repeat must be between 1 and {MAX_REPEAT}")
        if acknowledge_digit is not None and (
            not isinstance(acknowledge_digit, str) or acknowledge_digit not in _DIGITS
        ):
            raise VoicePromptInputError(
                f"{str(acknowledge_digit)[:8]} is not a key (0-9, *, #, A-D)"
            )
        if not 0 < digit_timeout <= MAX_DIGIT_TIMEOUT:
            raise VoicePromptInputError(
                f"The key timeout must be between 0 and {MAX_DIGIT_TIMEOUT:g} seconds"
            )
        await self._ensure_events()
        call = _Call(channel_id or f"vp-{uuid.uuid4().hex}", target)
        self._calls[call.channel_id] = call
        try:
            result = await self._call(
                call,
                items,
                ring_timeout,
                repeat,
                acknowledge_digit,
                digit_timeout,
                caller_id,
                linger=hang_up,
                on_originated=on_originated,
            )
            # An unanswered call is never left ringing, whatever hang_up says.
            if call.destroyed is None and (hang_up or not call.answered):
                result.hung_up = await self._hang_up(call)
            if call.destroyed is not None:
                result.cause = call.destroyed.cause
                result.cause_text = call.destroyed.cause_text
            return result
        except asyncio.CancelledError:
            if call.may_exist and call.destroyed is None:
                self._spawn(self._hang_up_quietly(call.channel_id))
            raise
        except BaseException as err:
            if (
                call.may_exist
                and call.destroyed is None
                and await self._hang_up_quietly(call.channel_id)
            ):
                await self._wait_destroyed(call)
            if isinstance(err, VoicePromptError) and err.target is None:
                err.target = target
            raise
        finally:
            self._calls.pop(call.channel_id, None)

    async def _call(
        self,
        call: _Call,
        items: list[str],
        ring_timeout: int,
        repeat: int,
        digit: str | None,
        digit_timeout: float,
        caller_id: str | None,
        *,
        linger: bool,
        on_originated: Callable[[], None] | None,
    ) -> AriCallResult:
        result = AriCallResult(call.endpoint, call.channel_id, AriCallStatus.ANSWERED)
        call.may_exist = True  # even a timed-out originate may have made the channel
        try:
            await self.originate(
                call.endpoint,
                timeout=ring_timeout,
                caller_id=caller_id,
                channel_id=call.channel_id,
            )
        except VoicePromptError as err:
            if not isinstance(err, VoicePromptConnectionError):
                call.may_exist = False  # Asterisk refused it: there is no channel
            raise
        if on_originated is not None:
            on_originated()
        unanswered = await self._wait_answer(call, ring_timeout + ANSWER_GRACE)
        if unanswered is not None:
            result.status = unanswered
            return result
        call.answered = True
        try:
            for _ in range(repeat):
                for item in items:
                    if await self._play_item(call, item, digit):
                        result.status, result.digit = AriCallStatus.ACKNOWLEDGED, digit
                        return result
                    result.played += 1
            result.status = AriCallStatus.PLAYED
            if digit is not None:
                if await self._wait_digit(call, digit, digit_timeout):
                    result.status, result.digit = AriCallStatus.ACKNOWLEDGED, digit
            elif linger:
                await self._wait_digit(call, None, self._hangup_delay)  # the last words arrive
        except _CallEndedError:
            # The callee hung up: ChannelDestroyed, with the cause, may still be on its way
            # (Asterisk sends StasisEnd and a failed PlaybackFinished first).
            await self._wait_destroyed(call)
        return result

    async def _wait_answer(self, call: _Call, seconds: float) -> AriCallStatus | None:
        """None once the call is in the application (answered), else how it ended."""
        deadline = _deadline(seconds)
        while True:
            item = await self._next(call, deadline)
            if item is None:
                # Asterisk should have ended it by now; we hang up on the way out.
                return AriCallStatus.NO_ANSWER
            if item is _Signal.LOST:
                await self._recover(call)
                channel = await self._channel_state(call)
                if channel is None:
                    return AriCallStatus.FAILED  # ended while we could not hear why
                if channel == "Up":
                    return None
            elif isinstance(item, AriEvent):
                if item.type is AriEventType.STASIS_START:
                    return None
                if item.type is AriEventType.CHANNEL_DESTROYED:
                    return status_for_cause(item.cause)

    async def _play_item(self, call: _Call, media: str, digit: str | None) -> bool:
        """Play one item to its end; True when the key was pressed. Raises _CallEndedError."""
        playback_id = f"vp-{uuid.uuid4().hex}"
        try:
            await self.play(call.channel_id, media, playback_id=playback_id)
        except VoicePromptRequestError as err:
            if err.code in ("404", "409", "412"):  # gone, or on its way out of the app
                await self._wait_destroyed(call)
                raise _CallEndedError from None
            raise
        deadline = _deadline(PLAYBACK_START_TIMEOUT)
        started = False
        while True:
            item = await self._next(call, deadline)
            if item is None:
                raise VoicePromptTimeoutError(
                    f"Asterisk did not finish playing {media} within "
                    f"{(MAX_MEDIA_SECONDS if started else PLAYBACK_START_TIMEOUT):g} seconds",
                    target=call.endpoint,
                )
            if item is _Signal.LOST:
                await self._recover(call)
                if await self._channel_state(call) is None:
                    raise _CallEndedError
                status, _ = await self._request(
                    "GET", f"playbacks/{_quote(playback_id)}", ok=(200, 404)
                )
                if status == 404:
                    return False  # it ended while we could not hear (a missing one fails at once)
                continue
            if not isinstance(item, AriEvent):
                continue
            if item.type is AriEventType.CHANNEL_DESTROYED:
                raise _CallEndedError
            if item.type is AriEventType.CHANNEL_DTMF_RECEIVED and item.digit == digit:
                with contextlib.suppress(VoicePromptError):
                    await self.stop_playback(playback_id)
                return True
            if item.playback_id != playback_id:
                continue
            if item.type is AriEventType.PLAYBACK_STARTED and not started:
                started = True
                deadline = _deadline(MAX_MEDIA_SECONDS)
            elif item.type is AriEventType.PLAYBACK_FINISHED:
                if item.playback_state == "done":
                    return False
                if call.hangup_seen or await self._hangup_follows(call):
                    raise _CallEndedError
                raise VoicePromptInputError(
                    f"Asterisk could not play {media}: no such sound, or a file it cannot "
                    "play (WAV must be 8 kHz mono 16-bit) or cannot download",
                    code=item.playback_state or "failed",
                    target=call.endpoint,
                )

    async def _hangup_follows(self, call: _Call) -> bool:
        """Whether a hang-up arrives right after a failed playback (then not the media's fault)."""
        deadline = _deadline(HANGUP_GRACE)
        while not call.hangup_seen:
            if await self._next(call, deadline) is None:
                return False
        return True

    async def _wait_digit(self, call: _Call, digit: str | None, seconds: float) -> bool:
        """Wait for ``digit`` (None: for nothing) for ``seconds``; raises when the call ends."""
        deadline = _deadline(seconds)
        while True:
            item = await self._next(call, deadline)
            if item is None:
                return False
            if item is _Signal.LOST:
                await self._recover(call)
                if await self._channel_state(call) is None:
                    raise _CallEndedError
            elif isinstance(item, AriEvent):
                if (
                    digit is not None
                    and item.type is AriEventType.CHANNEL_DTMF_RECEIVED
                    and item.digit == digit
                ):
                    return True
                if item.type is AriEventType.CHANNEL_DESTROYED:
                    raise _CallEndedError

    async def _wait_destroyed(self, call: _Call, seconds: float = DESTROY_TIMEOUT) -> None:
        """Wait a moment for ChannelDestroyed (its cause goes into the result)."""
        if not self.connected:
            return  # no event can tell
        deadline = _deadline(seconds)
        with contextlib.suppress(VoicePromptConnectionError):
            while call.destroyed is None:
                item = await self._next(call, deadline)
                if item is None or item is _Signal.LOST:
                    return

    async def _next(self, call: _Call, deadline: float) -> AriEvent | _Signal | None:
        """The call's next event or signal; None when the deadline passed."""
        if call.queue.empty():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    item = await call.queue.get()
            except TimeoutError:
                return None
        else:
            item = call.queue.get_nowait()
        if item is _Signal.DEAD:
            raise VoicePromptConnectionError(
                f"The event connection to {self.host} was closed during the call to "
                f"{call.endpoint} ({self._last_error or 'client closed'})",
                target=call.endpoint,
            )
        return item

    async def _recover(self, call: _Call) -> None:
        """Wait for the websocket to come back during a call (bounded)."""
        _LOGGER.debug("Call %s waits for the event connection to %s", call.channel_id, self.host)
        deadline = _deadline(RESYNC_TIMEOUT)
        while True:
            item = await self._next(call, deadline)
            if item is None:
                raise VoicePromptConnectionError(
                    f"The event connection to {self.host} broke off during the call to "
                    f"{call.endpoint} and did not come back within {RESYNC_TIMEOUT:g} seconds",
                    target=call.endpoint,
                )
            if item is _Signal.BACK:
                return

    async def _channel_state(self, call: _Call) -> str | None:
        """The channel's state read over REST (after lost events); None when it is gone."""
        status, data = await self._request(
            "GET", f"channels/{_quote(call.channel_id)}", ok=(200, 404)
        )
        if status == 404:
            return None
        return opt_str(data.get("state")) if isinstance(data, dict) else None

    async def _hang_up(self, call: _Call) -> bool:
        """Hang up at the end of a call and wait a moment for the cause."""
        try:
            hung_up = await self.hangup(call.channel_id, seconds=HANGUP_TIMEOUT)
        except VoicePromptError as err:
            _LOGGER.warning("Could not hang up the call to %s: %s", call.endpoint, err)
            return False
        if hung_up:
            await self._wait_destroyed(call)
        return hung_up

    async def _hang_up_quietly(self, channel_id: str) -> bool:
        """Hang up on the way out of a failed or cancelled call; whether it was there.

        A channel that was not there (yet) may still appear: an originate that timed out
        can have reached Asterisk. It is hung up when its first event shows it.
        """
        try:
            if await self.hangup(channel_id, seconds=HANGUP_TIMEOUT):
                return True
        except VoicePromptError as err:
            _LOGGER.debug("Hanging up %s failed: %s", channel_id, err)
        self._orphans[channel_id] = time.monotonic() + MAX_RING_TIMEOUT + ANSWER_GRACE
        return False

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ensure_events(self) -> None:
        """Be connected before a call: its events reach only a registered application."""
        if self._reader is None or self._reader.done():
            await self.async_start()
            return
        if self.connected:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._request_timeout):
                await self._connected.wait()
        if not self.connected:
            raise VoicePromptConnectionError(
                f"The event connection to {self.host} is down "
                f"({self._last_error or 'reconnecting'}); no call was placed"
            )

    # -- websocket internals -----------------------------------------------------------

    async def _connect(self) -> _Socket:
        failure: VoicePromptError | None = None
        try:
            async with asyncio.timeout(self._request_timeout):
                ws = await self._session.ws_connect(
                    self._rest + "events",
                    params={"app": self.app},
                    headers=self._headers,
                    ssl=self.certificate.ssl,
                    # Our own pings (_keepalive): aiohttp's heartbeat leaves a timer armed
                    # after close() on aiohttp 3.14.
                    autoping=False,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                )
        except aiohttp.WSServerHandshakeError as err:
            failure = self._handshake_error(err.status)
        except (TimeoutError, aiohttp.ClientError) as err:
            failure = transport_error(err, self.host, self._request_timeout)
        if failure is not None:
            raise failure from None
        return ws

    def _handshake_error(self, status: int) -> VoicePromptError:
        if status == 401:
            return self._auth_refused()
        if status == 404:
            return self._disabled()
        return VoicePromptRequestError(
            f"{self.host} did not accept the ARI event websocket (HTTP {status})",
            code=str(status),
        )

    def _on_connected(self, ws: _Socket, *, first: bool) -> None:
        self._ws = ws
        self._connected_since = time.monotonic()
        self._connected.set()
        self._set_state(AriSocketState.CONNECTED)
        if not first:
            self._reconnects += 1
            _LOGGER.info("The ARI event connection to %s is back", self.host)
            for call in list(self._calls.values()):
                call.feed(_Signal.BACK)

    def _on_lost(self, reason: str, state: AriSocketState) -> None:
        self._ws = None
        self._connected.clear()
        self._connected_since = None
        self._last_error = reason
        self._set_state(state)
        for call in list(self._calls.values()):
            call.feed(_Signal.LOST)

    async def _run(self, ws: _Socket | None) -> None:
        """Read events; reconnect with backoff when the websocket drops."""
        attempt = 0
        while True:
            if ws is None:
                delay = self._delays[min(attempt, len(self._delays) - 1)]
                if self._state is AriSocketState.REPLACED:
                    delay = max(delay, self._delays[-1])
                await asyncio.sleep(delay)
                try:
                    ws = await self._connect()
                except VoicePromptAuthenticationError as err:
                    self._auth_error = err
                    self._last_error = err.message
                    self._set_state(AriSocketState.AUTH_FAILED)
                    _LOGGER.warning("%s; not reconnecting until new credentials", err.message)
                    for call in list(self._calls.values()):
                        call.feed(_Signal.DEAD)
                    return
                except VoicePromptError as err:
                    attempt += 1
                    self._last_error = err.message
                    _LOGGER.debug("Reconnecting to %s failed: %s", self.host, err.message)
                    continue
                attempt = 0
                self._on_connected(ws, first=False)
            self._pinger = asyncio.create_task(self._keepalive(ws), name="ARI pings")
            try:
                reason, state = await self._read(ws)
            finally:
                await self._stop_pinger()
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await ws.close()
            ws = None
            if state is AriSocketState.RECONNECTING:
                _LOGGER.warning(
                    "The ARI event connection to %s was lost (%s); reconnecting",
                    self.host,
                    reason,
                )
            self._on_lost(reason, state)

    async def _keepalive(self, ws: _Socket) -> None:
        """Ping now and then; close a websocket that stays silent after a ping."""
        while True:
            await asyncio.sleep(self._heartbeat)
            sent = time.monotonic()
            try:
                await ws.ping()
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                return  # closing anyway; _read sees it
            await asyncio.sleep(min(self._heartbeat, PONG_TIMEOUT))
            if self._last_message < sent:
                self._unanswered = True
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    await ws.close()
                return

    async def _stop_pinger(self) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _read(self, ws: _Socket) -> tuple[str, AriSocketState]:
        """Dispatch messages until the websocket ends; why it ended and what state follows."""
        self._unanswered = False
        self._last_message = time.monotonic()
        while True:
            try:
                message = await ws.receive()
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                return f"read failed: {type(err).__name__}", AriSocketState.RECONNECTING
            self._last_message = time.monotonic()
            if message.type is aiohttp.WSMsgType.PING:
                with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
                    await ws.pong(message.data)
                continue
            if message.type is aiohttp.WSMsgType.PONG:
                continue
            if message.type is aiohttp.WSMsgType.TEXT:
                if self._dispatch_text(message.data):
                    self._replaced += 1
                    return (
                        f"another client took over the Stasis application {self.app}",
                        AriSocketState.REPLACED,
                    )
                continue
            if message.type is aiohttp.WSMsgType.BINARY:
                self._bad_events += 1
                continue
            if self._unanswered:
                return (
                    f"no answer to a ping within {min(self._heartbeat, PONG_TIMEOUT):g} seconds",
                    AriSocketState.RECONNECTING,
                )
            error = ws.exception()
            detail = f"{type(error).__name__}" if error is not None else f"closed ({ws.close_code})"
            return f"connection {detail}", AriSocketState.RECONNECTING

    def _dispatch_text(self, text: str) -> bool:
        """Dispatch one message; True when it says the application was taken over."""
        try:
            event = parse_event(json.loads(text))
        except (ValueError, RecursionError):
            self._bad_events += 1
            _LOGGER.debug("Ignoring a message from %s that is not an ARI event", self.host)
            return False
        if event is None:
            return False
        self._events += 1
        if event.channel_id is not None and (call := self._calls.get(event.channel_id)):
            call.feed(event)
        elif event.channel_id in self._orphans:
            self._orphan_event(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _LOGGER.exception("An ARI event listener failed")
        if event.type is AriEventType.APPLICATION_REPLACED:
            _LOGGER.warning(
                "Another client connected to the Stasis application %s on %s and receives "
                "its events now; two entries (or programs) must not share an application name",
                self.app,
                self.host,
            )
            return True
        return False

    def _orphan_event(self, event: AriEvent) -> None:
        """A channel we gave up on showed up after all: hang it up (once)."""
        channel_id = event.channel_id or ""
        now = time.monotonic()
        for stale in [k for k, until in self._orphans.items() if until < now]:
            del self._orphans[stale]
        if channel_id not in self._orphans:
            return
        del self._orphans[channel_id]
        if event.type is not AriEventType.CHANNEL_DESTROYED:
            _LOGGER.debug("Hanging up %s, which appeared after we gave up on it", channel_id)
            self._spawn(self._hang_up_quietly(channel_id))

    def _set_state(self, state: AriSocketState) -> None:
        if state is self._state:
            return
        self._state = state
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception:
                _LOGGER.exception("An ARI state listener failed")

    # -- HTTP internals ----------------------------------------------------------------

    async def _json(self, method: str, path: str, *, params: dict[str, str] | None = None) -> Any:
        _, data = await self._request(method, path, params=params, ok=(200,))
        return data

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...],
        seconds: float | None = None,
    ) -> tuple[int, Any]:
        """One exchange; statuses in ``ok`` return (status, JSON or None), others raise."""
        client_timeout = aiohttp.ClientTimeout(total=seconds) if seconds else self._timeout
        if self._session.closed:
            raise VoicePromptConnectionError(
                f"Cannot connect to {self.host}: the HTTP session is closed"
            )
        failure: VoicePromptError | None = None
        status = 0
        content_type = ""
        raw = b""
        try:
            async with self._session.request(
                method,
                self._rest + path,
                params=params,
                headers=self._headers,
                ssl=self.certificate.ssl,
                timeout=client_timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                content_type = response.content_type
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            failure = transport_error(err, self.host, client_timeout.total or 0)
        if failure is not None:
            raise failure from None
        if status == 404 and content_type != "application/json":
            raise self._disabled()
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                if status in ok:
                    raise self._bad_reply(f"HTTP {status} without JSON") from None
        if status in ok:
            return status, data
        raise self._http_error(status, data)

    def _http_error(self, status: int, data: Any) -> VoicePromptError:
        said = _asterisk_message(data)
        detail = f": {said}" if said else ""
        code = str(status)
        if status == 401:
            return self._auth_refused()
        if status == 403:
            return VoicePromptRequestError(
                f"The ARI user may not do this on {self.host} (a read_only user in "
                f"ari.conf?){detail}",
                code=code,
            )
        if status == 400:
            return VoicePromptInputError(f"{self.host} refused the request{detail}", code=code)
        if status == 404:
            return VoicePromptRequestError(f"{self.host} does not know it{detail}", code=code)
        if status in (409, 412, 422):
            return VoicePromptRequestError(
                f"{self.host} cannot do this in the channel's state{detail}", code=code
            )
        if 300 <= status < 400:
            return VoicePromptRequestError(
                f"{self.host} redirects ARI requests (HTTP {status}); use the address it "
                "redirects to, with http:// or https:// as it wants",
                code=code,
            )
        if status >= 500:
            return VoicePromptRequestError(
                f"{self.host} reported an error (HTTP {status}){detail}", code=code
            )
        return VoicePromptResponseError(
            f"{self.host} sent an unexpected ARI reply (HTTP {status})", code=code
        )

    async def _why_not_allocated(self, endpoint: str) -> VoicePromptError:
        """Tell an unknown endpoint from an unregistered one after "Allocation failed"."""
        tech, _, rest = endpoint.partition("/")
        name = rest.split("/", 1)[0]
        name = name.rpartition("@")[2] or name
        try:
            found = await self.endpoint(tech, name)
        except VoicePromptInputError:
            return VoicePromptInputError(
                f"Asterisk has no endpoint {tech}/{name} to call",
                code="404",
                target=endpoint,
            )
        except VoicePromptError:
            found = None
        if found is not None and not found.online:
            return VoicePromptRequestError(
                f"{endpoint} is not registered: no phone is online on it "
                f"(Asterisk answered Allocation failed; state {found.state or 'unknown'})",
                code="500",
                target=endpoint,
            )
        return VoicePromptRequestError(
            f"Asterisk could not place a call to {endpoint} (Allocation failed)",
            code="500",
            target=endpoint,
        )

    def _auth_refused(self) -> VoicePromptAuthenticationError:
        return VoicePromptAuthenticationError(
            f"{self.host} refused the ARI username or password", code="401"
        )

    def _disabled(self) -> VoicePromptAriDisabledError:
        return VoicePromptAriDisabledError(
            f"{self.host} answers HTTP but has no ARI: set enabled = yes in ari.conf and "
            "http.conf, and check the URL's path",
            code="404",
        )

    def _bad_reply(self, detail: str) -> VoicePromptResponseError:
        return VoicePromptResponseError(
            f"{self.host} sent a reply that is not a valid ARI response ({detail})"
        )


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _check_caller_id(value: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 80:
        raise VoicePromptInputError("The caller id must be a text of at most 80 characters")
    if not value.isprintable():
        raise VoicePromptInputError("The caller id contains control characters")
    return value.strip()


def _asterisk_message(data: Any) -> str | None:
    """Asterisk's own words in an error reply (``message`` or ``error``), trimmed."""
    if not isinstance(data, dict):
        return None
    said = data.get("message") or data.get("error")
    if not isinstance(said, str) or not said.strip():
        return None
    text = "".join(c if c.isprintable() else " " for c in said.strip())
    return text[:_MESSAGE_LIMIT]
