"""The event WebSocket of a Yeastar P-Series PBX: call events, parsed and handed to a callback.

No Home Assistant imports. The socket connects to
``wss://<pbx>:<port>/openapi/v1.0/subscribe?access_token=<token>``, sends
``{"topic_list": [...]}`` (the PBX answers ``{"errcode": 0, ...}``), then receives reports
``{"type": 30011, "sn": ..., "msg": ...}`` whose ``msg`` is the event's JSON, as a string
in Yeastar's examples (an object is taken too). The PBX closes a socket that has been
silent for 60 seconds, so a ``heartbeat`` text goes out well before (it answers
``heartbeat response``). A socket that drops is connected again with backoff, with a
renewed token when the PBX refused the old one. Nothing a frame holds raises out of the
reader: what is not an event of the documented shape is counted and dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import dataclass
from enum import IntEnum, StrEnum
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from .exceptions import VoicePromptAuthenticationError, VoicePromptError
from .http import opt_str, transport_error

if TYPE_CHECKING:
    from .yeastar_p import YeastarPClient

_LOGGER = logging.getLogger(__name__)

# The PBX closes a socket after 60 silent seconds: a heartbeat every 20 leaves room for two
# to be lost. No message within HEARTBEAT_REPLY seconds after one: the link is dead.
HEARTBEAT: Final = 20.0
HEARTBEAT_REPLY: Final = 10.0
HEARTBEAT_TEXT: Final = "heartbeat"
# Seconds between reconnection attempts; the last one repeats.
RECONNECT_DELAYS: Final[tuple[float, ...]] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
CLOSE_TIMEOUT: Final = 2.0
_TOKEN_EXPIRED: Final = 10004
# A message this long is no event (the PBX's reports are a few hundred bytes).
MAX_FRAME: Final = 65536


class YeastarPEventType(IntEnum):
    """The events this client subscribes to (Yeastar's event ids)."""

    EXTENSION_CALL_STATUS = 30008
    CALL_STATUS = 30011
    CALL_FAILED = 30015
    DTMF = 30017
    PLAY_PROMPT_END = 30018


TOPICS: Final = tuple(YeastarPEventType)
_TYPES: Final = frozenset(int(kind) for kind in YeastarPEventType)


class YeastarPSocketState(StrEnum):
    """The state of the event socket."""

    STOPPED = "stopped"  # not started, or closed
    CONNECTING = "connecting"  # first connection, or connected and not yet subscribed
    SUBSCRIBED = "subscribed"  # events arrive
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"  # the Client ID or Secret was refused: no more attempts


class YeastarPMemberKind(StrEnum):
    """Which side of a call a member is."""

    EXTENSION = "extension"
    INBOUND = "inbound"
    OUTBOUND = "outbound"


_KINDS: Final = frozenset(str(kind) for kind in YeastarPMemberKind)


@dataclass(frozen=True, slots=True)
class YeastarPMember:
    """One member of a call, as the events list them.

    ``number``: an extension's number, or the other party of a trunk call (``to`` of an
    outbound call, ``from`` of an inbound one). ``call_path``: the group, IVR or queue the
    call went through, when it did.
    """

    kind: YeastarPMemberKind
    number: str | None
    channel_id: str | None = None
    status: str | None = None  # ALERT, RING, EARLYMEDIA, ANSWERED, ANSWER, HOLD, BYE
    call_path: str | None = None

    def reaches(self, number: str) -> bool:
        """Whether this member is ``number``, or was reached through it (a group)."""
        return number in (self.number, self.call_path)


@dataclass(frozen=True, slots=True)
class YeastarPEvent:
    """One event of the PBX; the fields its type does not have are None."""

    type: YeastarPEventType
    call_id: str | None = None
    members: tuple[YeastarPMember, ...] = ()
    reason: str | None = None  # 30015: why the call failed
    digit: str | None = None  # 30017: the key pressed
    digits: str | None = None  # 30017: every key pressed so far
    prompt: str | None = None  # 30018: the prompt that ended
    extension: str | None = None  # 30008
    extension_status: str | None = None  # 30008: Ringing, Busy, Idle

    def member(self, number: str) -> YeastarPMember | None:
        """The member that is ``number`` (or was reached through it), if any."""
        return next((member for member in self.members if member.reaches(number)), None)

    def numbers(self) -> list[str]:
        """Every number the event names, members first."""
        found = [
            value
            for member in self.members
            for value in (member.number, member.call_path)
            if value is not None
        ]
        if self.extension is not None:
            found.append(self.extension)
        return list(dict.fromkeys(found))


def _text(value: Any) -> str | None:
    """A field as text: strings and whole numbers (the PBX writes numbers either way)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return opt_str(value if isinstance(value, str) else str(value))


def _member(item: Any) -> YeastarPMember | None:
    if not isinstance(item, dict) or len(item) != 1:
        return None
    ((key, info),) = item.items()
    if key not in _KINDS or not isinstance(info, dict):
        return None
    kind = YeastarPMemberKind(key)
    field = {
        YeastarPMemberKind.EXTENSION: "number",
        YeastarPMemberKind.OUTBOUND: "to",
        YeastarPMemberKind.INBOUND: "from",
    }[kind]
    return YeastarPMember(
        kind,
        _text(info.get(field)),
        channel_id=_text(info.get("channel_id")),
        status=_text(info.get("member_status")),
        call_path=_text(info.get("call_path")),
    )


def parse_event(data: Any) -> YeastarPEvent | None:
    """A report ``{"type", "sn", "msg"}`` as an event; None when it is not one we know."""
    if not isinstance(data, dict):
        return None
    kind, msg = data.get("type"), data.get("msg")
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in _TYPES:
        return None
    if isinstance(msg, str):
        try:
            msg = json.loads(msg)
        except (ValueError, RecursionError):
            return None
    if not isinstance(msg, dict):
        return None
    event_type = YeastarPEventType(kind)
    if event_type is YeastarPEventType.EXTENSION_CALL_STATUS:
        extension = _text(msg.get("extension"))
        if extension is None:
            return None
        return YeastarPEvent(
            event_type, extension=extension, extension_status=_text(msg.get("status"))
        )
    call_id, members = _text(msg.get("call_id")), msg.get("members")
    if call_id is None or not isinstance(members, list):
        return None
    return YeastarPEvent(
        event_type,
        call_id=call_id,
        members=tuple(member for item in members if (member := _member(item)) is not None),
        reason=_text(msg.get("reason")),
        digit=_text(msg.get("info")),
        digits=_text(msg.get("infos")),
        prompt=_text(msg.get("prompt")),
    )


class _LostError(Exception):
    """The socket ended (internal): why, and whether the token should be renewed."""

    def __init__(self, reason: str, *, renew: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.renew = renew


class YeastarPEventSocket:
    """Keeps the PBX's event WebSocket subscribed and hands every event to a callback."""

    def __init__(
        self,
        client: YeastarPClient,
        on_event: Callable[[YeastarPEvent], None],
        *,
        on_state: Callable[[YeastarPSocketState], None] | None = None,
        topics: Sequence[YeastarPEventType] = TOPICS,
        heartbeat: float = HEARTBEAT,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
    ) -> None:
        """Listen through ``client`` (its session, certificate check and tokens).

        ``heartbeat``: seconds between heartbeats (below the PBX's 60 idle seconds);
        ``reconnect_delays``: seconds between reconnection attempts (the last repeats).
        """
        if heartbeat <= 0:
            raise ValueError("heartbeat must be positive")
        if not reconnect_delays or any(delay < 0 for delay in reconnect_delays):
            raise ValueError("reconnect_delays must be non-negative and not empty")
        self._client = client
        self._on_event = on_event
        self._on_state = on_state
        self._topics = [int(topic) for topic in topics]
        self._heartbeat = heartbeat
        self._delays = tuple(reconnect_delays)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._state = YeastarPSocketState.STOPPED
        self._last_message = 0.0
        self._answer_by = 0.0
        self._subscribed_since: float | None = None
        self._ever_subscribed = False
        self.reconnects = 0
        self.received = 0
        self.bad_frames = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        """Describe the socket without the token."""
        return f"YeastarPEventSocket(host={self._client.host!r}, state={self._state})"

    @property
    def state(self) -> YeastarPSocketState:
        """The socket's state."""
        return self._state

    @property
    def subscribed(self) -> bool:
        """Whether events arrive now."""
        return self._state is YeastarPSocketState.SUBSCRIBED

    async def async_start(self, wait: float = 0.0) -> bool:
        """Start keeping the socket up; wait up to ``wait`` seconds for the subscription.

        Returns whether it is subscribed. A PBX that cannot be reached now does not
        raise: the socket keeps trying in the background.
        """
        if self._task is None or self._task.done():
            self._set_state(YeastarPSocketState.CONNECTING)
            self._task = asyncio.create_task(
                self._run(), name=f"Yeastar P-Series events {self._client.host}"
            )
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._subscribed.wait()
        return self.subscribed

    async def async_close(self) -> None:
        """Stop the socket (and its reconnection attempts)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(YeastarPSocketState.STOPPED)

    def diagnostics(self) -> dict[str, Any]:
        """The socket's state for diagnostics: no token."""
        since = self._subscribed_since
        return {
            "state": str(self._state),
            "connected": self.subscribed,
            "subscribed_seconds": round(time.monotonic() - since, 1) if since else None,
            "topics": list(self._topics),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "received": self.received,
            "bad_frames": self.bad_frames,
        }

    # -- internals ---------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, subscribe and read; after a drop, again with backoff. Never raises."""
        attempt, stale = 0, None
        while True:
            if attempt:
                self._set_state(YeastarPSocketState.RECONNECTING)
                await asyncio.sleep(self._delays[min(attempt - 1, len(self._delays) - 1)])
            token: str | None = None
            try:
                token = await self._client.access_token(stale=stale)
                stale = None
                await self._session(token)
            except VoicePromptAuthenticationError as err:
                self._lost(err.message)
                self._set_state(YeastarPSocketState.AUTH_FAILED)
                _LOGGER.warning("%s; no more event connections until new credentials", err)
                return
            except VoicePromptError as err:
                self._lost(err.message)
            except _LostError as lost:
                stale = token if lost.renew else None
                self._lost(lost.reason)
            except Exception:  # a bug must not end the events for good
                _LOGGER.exception("The event socket of %s failed", self._client.host)
                self._lost("internal error")
            # A socket that was subscribed is retried after the shortest delay; failures back off.
            attempt = 1 if self._subscribed_since is not None else attempt + 1
            self._subscribed_since = None

    def _lost(self, reason: str) -> None:
        if self._state is YeastarPSocketState.SUBSCRIBED:
            _LOGGER.warning(
                "The event connection to %s was lost (%s); reconnecting", self._client.host, reason
            )
        self.last_error = reason
        self._subscribed.clear()

    async def _session(self, token: str) -> None:
        """One socket from connection to its end (which raises ``_LostError``)."""
        ws = await self._connect(token)
        self._subscribed_since = None
        heartbeat: asyncio.Task[None] | None = None
        try:
            await ws.send_str(json.dumps({"topic_list": self._topics}))
            self._last_message = time.monotonic()
            self._answer_by = self._last_message + self._client.request_timeout
            heartbeat = asyncio.create_task(self._heartbeats(ws), name="Yeastar P-Series heartbeat")
            while True:
                await self._handle(await self._receive(ws, heartbeat))
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await ws.close()

    async def _connect(self, token: str) -> aiohttp.ClientWebSocketResponse:
        client = self._client
        failure: VoicePromptError | _LostError | None = None
        try:
            async with asyncio.timeout(client.request_timeout):
                ws = await client.session.ws_connect(
                    client.events_url,
                    params={"access_token": token},
                    headers={"User-Agent": client.user_agent},
                    ssl=client.certificate.ssl,
                    autoping=True,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                )
        except aiohttp.WSServerHandshakeError as err:
            # The PBX refuses an expired token at the handshake or right after: renew it.
            failure = _LostError(
                f"the PBX refused the event socket (HTTP {err.status})", renew=True
            )
        except (TimeoutError, aiohttp.ClientError) as err:
            failure = transport_error(err, client.host, client.request_timeout)
        if failure is not None:
            raise failure from None
        return ws

    async def _receive(
        self, ws: aiohttp.ClientWebSocketResponse, heartbeat: asyncio.Task[None]
    ) -> str:
        """The next text frame; a closed socket or a dead link raises ``_LostError``."""
        while True:
            receiving = asyncio.ensure_future(ws.receive())
            # Until the PBX confirms the subscription, its answer is awaited for so long.
            deadline = (
                None if self._subscribed_since else max(0.0, self._answer_by - time.monotonic())
            )
            await asyncio.wait(
                {receiving, heartbeat}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
            )
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                    await receiving
                if not heartbeat.done():
                    raise _LostError("no answer to the subscription")
                raise _LostError(f"no heartbeat response within {HEARTBEAT_REPLY:g} seconds")
            try:
                message = receiving.result()
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                raise _LostError(f"read failed: {type(err).__name__}") from None
            self._last_message = time.monotonic()
            if message.type is aiohttp.WSMsgType.TEXT:
                return str(message.data)
            if message.type is aiohttp.WSMsgType.BINARY:
                self.bad_frames += 1
                continue
            if message.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            raise _LostError(f"connection closed ({ws.close_code})")

    async def _heartbeats(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send a heartbeat now and then; return when one stays unanswered."""
        while True:
            await asyncio.sleep(self._heartbeat)
            sent = time.monotonic()
            try:
                await ws.send_str(HEARTBEAT_TEXT)
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                return
            await asyncio.sleep(min(self._heartbeat, HEARTBEAT_REPLY))
            if self._last_message < sent:
                return

    async def _handle(self, text: str) -> None:
        """One text frame: a heartbeat response, the subscription's reply, or an event."""
        if text.strip().startswith(HEARTBEAT_TEXT):
            return
        try:
            data = json.loads(text) if len(text) <= MAX_FRAME else None
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and "type" not in data and "errcode" in data:
            self._reply(data.get("errcode"))
            return
        event = parse_event(data)
        if event is None:
            self.bad_frames += 1
            _LOGGER.debug("Ignoring a frame from %s that is no event we know", self._client.host)
            return
        self.received += 1
        try:
            self._on_event(event)
        except Exception:
            _LOGGER.exception("A Yeastar P-Series event listener failed")

    def _reply(self, errcode: Any) -> None:
        """The PBX's answer to the subscription (or a complaint about the token)."""
        if errcode == 0:
            if self._subscribed_since is None:
                self._subscribed_since = time.monotonic()
                if self._ever_subscribed:
                    self.reconnects += 1
                    _LOGGER.info("The event connection to %s is back", self._client.host)
                self._ever_subscribed = True
                self.last_error = None
                self._subscribed.set()
                self._set_state(YeastarPSocketState.SUBSCRIBED)
            return
        if errcode == _TOKEN_EXPIRED:
            raise _LostError("the PBX says the access token has expired", renew=True)
        raise _LostError(f"the PBX refused the subscription (errcode {str(errcode)[:12]})")

    def _set_state(self, state: YeastarPSocketState) -> None:
        if state is self._state:
            return
        self._state = state
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                _LOGGER.exception("A Yeastar P-Series socket state listener failed")
