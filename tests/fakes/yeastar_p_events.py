"""The event WebSocket of the fake P-Series PBX, and the events a real one sends for a call.

``FakeYeastarP.events`` is a :class:`FakeEventHub`. Clients connect to
``/openapi/v1.0/subscribe?access_token=...``, send ``{"topic_list": [...]}`` (answered
``{"errcode": 0, "errmsg": "SUCCESS"}``) and ``heartbeat`` (answered ``heartbeat
response``); a socket silent for ``idle_timeout`` seconds (60, as the PBX) is closed.
Reports are ``{"type", "sn", "msg"}`` with ``msg`` a JSON string, as in Yeastar's examples.

After an accepted ``call/play_prompt`` the hub plays the call's events, chosen by
``outcome`` (or ``outcomes[number]``), one of :data:`OUTCOMES`:
- ``played``: 30011 RING, 30011 ANSWER, a 30018 per prompt (``count`` times), 30011 BYE;
- ``dtmf``: as ``played``, with a 30017 of ``dtmf_digit`` while the first prompt plays;
- ``hung_up``: RING, ANSWER, BYE (the callee hangs up before the prompts end);
- ``no_answer``, ``busy``, ``rejected``, ``failed``: RING (not for busy), then a 30015
  with the reason a real PBX gives (``480 Temporarily Unavailable``, ``486 Busy here``,
  ``User Busy``, ``Line Unreachable``);
- ``silent``: nothing at all.
Extensions also get 30008 Ringing / Idle. ``call/hangup`` with the channel id of a call
in progress ends it there (a 30011 BYE; the rest of its events are not sent); an unknown
channel is 70130. Each prompt plays ``prompt_seconds``. ``garbage`` sends frames that are no events
before each event; ``drop_mid_call`` closes every socket after the answer and goes on
once a client has subscribed again (events meanwhile are lost, as on a real PBX).

Choices where the documentation is silent: a socket with an unknown or expired token is
accepted, answered ``{"errcode": 10004}`` and closed; ``refuse_status`` (when set) refuses
the handshake with that HTTP status; only client messages count against the idle time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import itertools
import json
import time
from typing import Any, Final

from aiohttp import WSMsgType, web

OUTCOMES: Final = ("played", "dtmf", "hung_up", "no_answer", "busy", "rejected", "failed", "silent")
FAILURE_REASONS: Final = {
    "no_answer": "480 Temporarily Unavailable",
    "busy": "486 Busy here",
    "rejected": "User Busy",
    "failed": "Line Unreachable",
}
# Frames that are no events: not JSON, the wrong shape, an unknown type, a broken msg.
GARBAGE_FRAMES: Final[tuple[str | bytes, ...]] = (
    "<html>502 Bad Gateway</html>",
    "[30011]",
    '{"type": 30011}',
    '{"type": 30011, "msg": "{broken"}',
    '{"type": 30011, "msg": {"call_id": 5, "members": "1000"}}',
    '{"type": 30015, "msg": "[1, 2]"}',
    '{"type": 99999, "msg": {}}',
    '{"type": true, "msg": {}}',
    b"\x00\xff\x00",
)
EXTERNAL_TRUNK: Final = "SIP-Trunk-1"


@dataclass
class ActiveCall:
    """A call whose events are being sent: what ``call/hangup`` needs to end it."""

    call_id: str
    bye: dict[str, Any]  # its 30011 BYE member
    extension: str | None
    task: asyncio.Task[None]


@dataclass
class Subscriber:
    """One connected socket and the topics it subscribed to."""

    ws: web.WebSocketResponse
    topics: set[int] = field(default_factory=set)


class FakeEventHub:
    """The WebSocket endpoint and the per-call event scenarios of one fake PBX."""

    def __init__(
        self,
        *,
        serial: str,
        token_valid: Callable[[str | None], bool],
        log: Callable[[str], None],
        extensions: dict[str, str],
    ) -> None:
        """Use the PBX's serial, its token check, its log and its extensions."""
        self._serial = serial
        self._token_valid = token_valid
        self._log = log
        self._extensions = extensions
        self.subscribers: list[Subscriber] = []
        self.sent: list[dict[str, Any]] = []  # every event sent (msg as an object)
        self.subscriptions = 0
        self.heartbeats = 0
        self.idle_closes = 0
        self.tokens_seen: list[str | None] = []

        # Switches.
        self.idle_timeout: float = 60.0
        self.outcome: str = "played"
        self.outcomes: dict[str, str] = {}
        self.dtmf_digit: str = "1"
        self.event_delay: float = 0.02
        self.garbage: bool = False
        self.drop_mid_call: bool = False
        self.answer_heartbeats: bool = True
        self.refuse_status: int | None = None
        self.subscribe_errcode: int | None = None
        self.prompt_seconds: float = 0.0
        self.active: dict[str, ActiveCall] = {}  # channel id → call
        self.hung_up: list[str] = []  # channel ids ended by call/hangup

        self._ids = itertools.count(1)
        self._scenarios: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Condition()

    # ------------------------------------------------------------------ control

    @property
    def connected(self) -> int:
        """How many sockets are subscribed now."""
        return sum(1 for sub in self.subscribers if sub.topics)

    async def wait_subscribed(self, count: int = 1, seconds: float = 5.0) -> None:
        """Return once ``count`` subscriptions were made (in all, not at once)."""
        async with asyncio.timeout(seconds), self._subscribed:
            await self._subscribed.wait_for(lambda: self.subscriptions >= count)

    async def calls_done(self, seconds: float = 10.0) -> None:
        """Return once every call's events have been sent."""
        if self._scenarios:
            async with asyncio.timeout(seconds):
                await asyncio.gather(*self._scenarios, return_exceptions=True)

    async def drop_all(self) -> None:
        """Close every socket (a network outage, a PBX restart)."""
        for sub in list(self.subscribers):
            await sub.ws.close()

    async def inject(self, frame: str | bytes) -> None:
        """Send one frame, whatever it holds, to every subscribed socket."""
        for sub in list(self.subscribers):
            if sub.topics and not sub.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await _send_frame(sub.ws, frame)

    async def close(self) -> None:
        """Stop every scenario and close every socket."""
        for task in list(self._scenarios):
            task.cancel()
        await asyncio.gather(*self._scenarios, return_exceptions=True)
        await self.drop_all()

    def events_of(self, number: str) -> list[dict[str, Any]]:
        """The events sent about ``number``."""
        return [event for event in self.sent if number in json.dumps(event["msg"])]

    # ---------------------------------------------------------------- endpoint

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /openapi/v1.0/subscribe``: the event WebSocket."""
        token = request.query.get("access_token")
        self.tokens_seen.append(token)
        where = f"events socket from {request.remote}"
        if self.refuse_status is not None:
            self._log(f"{where}: refused with HTTP {self.refuse_status}")
            return web.Response(status=self.refuse_status, text="refused")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if not self._token_valid(token):
            self._log(f"{where}: access token unknown or expired → 10004")
            await ws.send_json({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
            await ws.close()
            return ws
        sub = Subscriber(ws)
        self.subscribers.append(sub)
        try:
            await self._serve(sub, where)
        finally:
            self.subscribers.remove(sub)
            await ws.close()
        return ws

    async def _serve(self, sub: Subscriber, where: str) -> None:
        ws = sub.ws
        while True:
            try:
                message = await ws.receive(timeout=self.idle_timeout)
            except TimeoutError:
                self.idle_closes += 1
                self._log(f"{where}: idle for {self.idle_timeout:g} seconds, closing")
                return
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if message.type is not WSMsgType.TEXT:
                continue
            if message.data == "heartbeat":
                self.heartbeats += 1
                if self.answer_heartbeats:
                    await ws.send_str("heartbeat response")
                continue
            await self._subscribe(sub, message.data, where)

    async def _subscribe(self, sub: Subscriber, text: str, where: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        topics = data.get("topic_list") if isinstance(data, dict) else None
        if not isinstance(topics, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in topics
        ):
            await sub.ws.send_json(
                {"errcode": 40002, "errmsg": "PARAMETER ERROR", "invalid_param_list": []}
            )
            return
        if self.subscribe_errcode is not None:
            await sub.ws.send_json({"errcode": self.subscribe_errcode, "errmsg": "FAILURE"})
            return
        sub.topics = set(topics)
        self._log(f"{where}: subscribed to {', '.join(map(str, topics))}")
        await sub.ws.send_json({"errcode": 0, "errmsg": "SUCCESS"})
        async with self._subscribed:
            self.subscriptions += 1
            self._subscribed.notify_all()

    # --------------------------------------------------------------- scenarios

    def hangup(self, channel_id: Any) -> dict[str, Any]:
        """``call/hangup``: end a call in progress (its BYE and Idle follow)."""
        call = self.active.pop(channel_id, None) if isinstance(channel_id, str) else None
        if call is None:
            return {
                "errcode": 70130,
                "errmsg": "CAHNNEL ID NOT FOUND",
                "invalid_param_list": [{"field": "channel_id", "value": str(channel_id)}],
            }
        call.task.cancel()
        self.hung_up.append(channel_id)

        async def ended() -> None:
            await self._send(30011, {"call_id": call.call_id, "members": [call.bye]})
            if call.extension is not None:
                await self._send(30008, {"extension": call.extension, "status": "Idle"})

        task = asyncio.get_running_loop().create_task(ended())
        self._scenarios.add(task)
        task.add_done_callback(self._scenarios.discard)
        return {"errcode": 0, "errmsg": "SUCCESS", "call_id": call.call_id}

    def play(self, number: str, prompts: list[str], count: int, group: bool) -> None:
        """A ``call/play_prompt`` was accepted: send the events of its call."""
        outcome = self.outcomes.get(number, self.outcome)
        task = asyncio.get_running_loop().create_task(
            self._scenario(number, prompts, count, group, outcome)
        )
        self._scenarios.add(task)
        task.add_done_callback(self._scenarios.discard)

    async def _scenario(
        self, number: str, prompts: list[str], count: int, group: bool, outcome: str
    ) -> None:
        if outcome == "silent":
            return
        call_id = f"{int(time.time())}.{next(self._ids)}"
        extension = number if number in self._extensions else ("1000" if group else None)
        channel = f"PJSIP/{extension or 'trunk'}-{next(self._ids):08x}"

        def member(status: str) -> dict[str, Any]:
            if extension is None:
                return {
                    "outbound": {
                        "from": "",
                        "to": number,
                        "trunk_name": EXTERNAL_TRUNK,
                        "channel_id": channel,
                        "member_status": status,
                    }
                }
            info = {"number": extension, "channel_id": channel, "member_status": status}
            return {"extension": info | ({"call_path": number} if group else {})}

        async def status(state: str) -> None:
            await self._send(30011, {"call_id": call_id, "members": [member(state)]})

        task = asyncio.current_task()
        assert task is not None
        self.active[channel] = ActiveCall(call_id, member("BYE"), extension, task)
        try:
            await self._call(call_id, extension, member, status, prompts, count, outcome)
        finally:
            self.active.pop(channel, None)

    async def _call(
        self,
        call_id: str,
        extension: str | None,
        member: Callable[[str], dict[str, Any]],
        status: Callable[[str], Awaitable[None]],
        prompts: list[str],
        count: int,
        outcome: str,
    ) -> None:
        if extension is not None:
            await self._send(30008, {"extension": extension, "status": "Ringing"})
        if outcome != "busy":
            await status("RING")
        if outcome in FAILURE_REASONS:
            await self._send(
                30015,
                {
                    "call_id": call_id,
                    "reason": FAILURE_REASONS[outcome],
                    "members": [member("BYE")],
                },
            )
        else:
            await status("ANSWER")
            if self.drop_mid_call:
                await self._drop_and_wait()
            if outcome in ("played", "dtmf"):
                await self._prompts(call_id, member("ANSWER"), prompts, count, outcome)
            await status("BYE")
        if extension is not None:
            await self._send(30008, {"extension": extension, "status": "Idle"})

    async def _prompts(
        self, call_id: str, member: dict[str, Any], prompts: list[str], count: int, outcome: str
    ) -> None:
        for index, prompt in enumerate(prompts * count):
            if outcome == "dtmf" and index == 0:
                await self._send(
                    30017,
                    {
                        "call_id": call_id,
                        "members": [member],
                        "info": self.dtmf_digit,
                        "flag": 0,
                        "infos": self.dtmf_digit,
                    },
                )
            await asyncio.sleep(self.prompt_seconds)
            await self._send(30018, {"call_id": call_id, "members": [member], "prompt": prompt})

    async def _drop_and_wait(self) -> None:
        """Close every socket mid-call; go on once a client is subscribed again."""
        before = self.subscriptions
        self._log("dropping every event socket mid-call")
        await self.drop_all()
        with contextlib.suppress(TimeoutError):
            await self.wait_subscribed(before + 1, seconds=10.0)

    async def _send(self, kind: int, msg: dict[str, Any]) -> None:
        await asyncio.sleep(self.event_delay)
        report = {"type": kind, "sn": self._serial, "msg": json.dumps(msg)}
        self.sent.append({"type": kind, "msg": msg})
        for sub in list(self.subscribers):
            if kind not in sub.topics or sub.ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                for frame in GARBAGE_FRAMES if self.garbage else ():
                    await _send_frame(sub.ws, frame)
                await sub.ws.send_str(json.dumps(report))


async def _send_frame(ws: web.WebSocketResponse, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)
