"""A real aiohttp server that behaves like Asterisk's REST Interface (ARI, Asterisk 22).

REST under ``/ari/`` with HTTP Basic auth and the event websocket ``/ari/events?app=…``, in
the shapes a real Asterisk 22 answers (measured against Debian sid's, see
``custom_components/voice_prompt/api/ari.py``): originate into a Stasis application, play,
stop a playback, hang up, read channels, playbacks, endpoints and ``asterisk/info``. Each
endpoint is a :class:`FakePhone` that answers, is busy, rejects, does not answer, is not
registered, presses keys or hangs up. Switches show what a real Asterisk cannot easily:
ARI disabled, 5xx, slow or hanging replies, garbage events, a websocket dropped mid-call,
refused reconnections, events lost while the websocket is down.

Use it from tests (``await FakeAsterisk().start()`` in the running loop) or as a program:
``python -m tests.fakes.ari --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
from collections.abc import Coroutine
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import io
import itertools
import json
import ssl
import sys
import time
from typing import Any
import wave

import aiohttp
from aiohttp import web

from . import emit as _emit, run_program, serve_until_stopped
from .tls import restart_with_certificate

VERSION = "22.10.1+dfsg+~cs6.17.60671434-1"
ENTITY_ID = "02:fc:00:00:00:01"
DEFAULT_USERNAME = "voice_prompt"
DEFAULT_PASSWORD = "VoicePrompt-Demo1"
# Sounds of asterisk-core-sounds-en-wav the fake knows, with their length in seconds.
DEFAULT_SOUNDS: dict[str, float] = {
    "hello-world": 1.4,
    "beep": 0.4,
    "goodbye": 0.8,
    "tt-monkeys": 9.0,
    "vm-goodbye": 0.9,
    "digits/5": 0.5,
}
NOT_FOUND_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>404 Not Found'
    "</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this "
    f"server.</p>\n<hr />\n<address>Asterisk/{VERSION}</address>\n</body></html>\n"
)
GARBAGE_EVENTS: tuple[str, ...] = (
    "this is not json",
    "[1, 2, 3]",
    '{"no": "type"}',
    '{"type": "SomethingNew", "application": "x"}',
    '{"type": "PlaybackFinished", "playback": "oops"}',
    '{"type": "ChannelDestroyed", "channel": {"name": "no id"}}',
    '{"type": "ChannelDtmfReceived"}',
)
# Q.850 causes (and their text in Asterisk) of the phone behaviours.
CAUSES: dict[int, str] = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    32: "Circuit/channel congestion",
    38: "Network out of order",
}


@dataclass
class FakePhone:
    """What the device behind an endpoint does when it is called.

    ``answer``: ``auto`` (after ``answer_delay``), ``busy`` (17), ``reject`` (21),
    ``dnd`` (19 at once), ``no_answer`` (rings until the originate timeout: 19),
    ``ring_forever`` (Asterisk never ends it: the client's own bound must),
    ``fail`` (38: network out of order).
    ``keys``: (seconds after answer, key) presses. ``hang_up_after``: the callee hangs
    up this long after answering (with ``bye_cause``).
    """

    answer: str = "auto"
    online: bool = True
    answer_delay: float = 0.05
    keys: list[tuple[float, str]] = field(default_factory=list)
    hang_up_after: float | None = None
    bye_cause: int = 16


@dataclass
class FakeChannel:
    """A channel the fake made (kept after it ended, for inspection)."""

    id: str
    name: str
    endpoint: str
    app: str
    state: str = "Down"
    caller: dict[str, str] = field(default_factory=lambda: {"name": "", "number": ""})
    in_stasis: bool = False
    destroyed: bool = False
    cause: int | None = None
    created: str = ""
    playbacks: list[str] = field(default_factory=list)  # ids, in order
    hung_up_by: str | None = None  # "client" (DELETE), "phone", "asterisk"

    def ended(self) -> bool:
        """Whether the channel is gone (a method: the state changes across awaits)."""
        return self.destroyed


@dataclass
class FakePlayback:
    """A playback the fake ran."""

    id: str
    channel_id: str
    media: list[str]
    state: str = "queued"  # playing, done, failed
    task: asyncio.Task[None] | None = None


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str  # after /ari/, e.g. "channels" or "channels/<id>/play"
    params: dict[str, str]
    user: str | None
    status: int | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _wav_seconds(data: bytes) -> float | None:
    """Length of a WAV Asterisk can play (8 kHz mono 16-bit), None for anything else."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (8000, 1, 2):
                return None
            # Not getnframes(): a WAV streamed through a pipe claims 4 GB in its header.
            return len(wav.readframes(wav.getnframes())) / 2 / 8000
    except (wave.Error, EOFError):
        return None


class FakeAsterisk:
    """In-process fake Asterisk speaking ARI over HTTP(S) and a websocket."""

    def __init__(
        self,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        phones: dict[str, FakePhone] | None = None,
        sounds: dict[str, float] | None = None,
        time_scale: float = 1.0,
        log_requests: bool = False,
    ) -> None:
        """Configure the fake; nothing listens until start().

        ``phones`` maps endpoints (``PJSIP/1000``) to their behaviour; ``time_scale``
        multiplies every duration (sounds, delays, ring timeouts) to keep tests fast.
        """
        self.users: dict[str, str] = {username: password}
        self.entity_id = ENTITY_ID  # the system id (another one: another Asterisk)
        self.system_name = ""
        self.read_only_users: set[str] = set()
        self.phones: dict[str, FakePhone] = (
            dict(phones) if phones is not None else {"PJSIP/1000": FakePhone()}
        )
        self.sounds: dict[str, float] = dict(DEFAULT_SOUNDS if sounds is None else sounds)
        self.time_scale = time_scale
        self.log_requests = log_requests
        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"

        # Switches / faults.
        self.ari_enabled = True
        self.http_status: int | None = None  # every REST request answers this
        # operation -> replies to give once each: a status, or (status, JSON body or text)
        self.fail_next: dict[str, list[int | tuple[int, Any]]] = {}
        self.latency: float = 0.0
        self.latency_for: dict[str, float] = {}  # per operation, on top of latency
        self.hang = False  # REST requests never answer
        self.garbage_replies = False  # 200 with an HTML body
        self.garbage_events = False  # junk before every event
        self.refuse_websocket: int | None = None  # HTTP status for new websocket requests
        self.drop_before: set[str] = set()  # drop the websockets instead of sending these
        self.lose: set[str] = set()  # event types never sent (lost), the websocket stays
        self.answer_pings = True  # False: a websocket that went silent (dead link, frozen PBX)
        self.media_fetch_timeout = 5.0

        self.requests: list[RecordedRequest] = []
        self.channels: dict[str, FakeChannel] = {}
        self.playbacks: dict[str, FakePlayback] = {}
        self.events_sent: list[dict[str, Any]] = []
        self.media_fetches: list[str] = []
        self.websocket_connects = 0
        self.websockets: dict[str, list[web.WebSocketResponse]] = {}
        self._queues: dict[web.WebSocketResponse, asyncio.Queue[str | None]] = {}
        self._requests: dict[web.WebSocketResponse, web.Request] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._counter = itertools.count(1)
        self._epoch = int(time.time())
        self._fetch_session: aiohttp.ClientSession | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(
        self, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Start listening; port 0 picks a free port (see self.port afterwards)."""
        if self._runner is not None:
            raise RuntimeError("fake Asterisk already started")
        self._closing.clear()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        self.host = host
        self.port = int(runner.addresses[0][1])
        self.scheme = "https" if ssl_context is not None else "http"

    async def use_certificate(self, ssl_context: ssl.SSLContext) -> None:
        """Present another certificate from now on (a renewed one, or a machine in the middle)."""
        assert self._runner is not None
        assert self._site is not None
        assert self.scheme == "https"
        self._site = await restart_with_certificate(
            self._runner, self._site, self.host, self.port, ssl_context
        )

    async def close(self) -> None:
        """Stop everything: calls, websockets, the server."""
        self._closing.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        for sockets in self.websockets.values():
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await ws.close()
        if self._fetch_session is not None:
            await self._fetch_session.close()
            self._fetch_session = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The ARI base URL a client is given (without /ari)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    # ------------------------------------------------------------ introspection

    def calls(self, operation: str) -> list[RecordedRequest]:
        """Requests of one operation: originate, play, hangup, stop, info, endpoint, ..."""
        return [r for r in self.requests if self._operation(r.method, r.path) == operation]

    def events(self, kind: str, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Events the fake sent (or lost) of one type, optionally of one channel."""
        found = []
        for event in self.events_sent:
            if event["type"] != kind:
                continue
            if channel_id is not None and _event_channel(event) != channel_id:
                continue
            found.append(event)
        return found

    def live_channels(self) -> list[FakeChannel]:
        """Channels not destroyed yet."""
        return [c for c in self.channels.values() if not c.destroyed]

    def connected(self, app: str) -> bool:
        """Whether an event websocket is open for ``app``."""
        return any(not ws.closed for ws in self.websockets.get(app, []))

    async def wait_for(self, predicate: Any, seconds: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (polling), or fail."""
        async with asyncio.timeout(seconds):
            while not predicate():
                await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ control

    async def drop_websockets(self, *, clean: bool = False) -> None:
        """Close every event websocket now (abruptly, or with a close frame)."""
        for sockets in self.websockets.values():
            for ws in list(sockets):
                if clean:
                    await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
                else:
                    self._abort(ws)

    def press(self, channel_id: str, key: str) -> None:
        """The callee presses ``key`` now."""
        channel = self.channels[channel_id]
        self._emit(
            channel.app,
            {"type": "ChannelDtmfReceived", "digit": key, "duration_ms": 100},
            channel,
        )

    def callee_hangs_up(self, channel_id: str, cause: int = 16) -> None:
        """The callee hangs up now."""
        self._destroy(self.channels[channel_id], cause, by="phone", request_cause=None)

    # ------------------------------------------------------------------ serving

    def _log(self, line: str) -> None:
        if self.log_requests:
            _emit(line)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sleep(self, seconds: float, *, scaled: bool = True) -> None:
        """Sleep (``seconds`` times time_scale), returning at once when close() is called."""
        factor = self.time_scale if scaled else 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), max(0.0, seconds * factor))

    @staticmethod
    def _operation(method: str, path: str) -> str:
        parts = path.strip("/").split("/")
        table = {
            ("GET", "asterisk"): "info",
            ("POST", "channels", 1): "originate",
            ("GET", "channels", 2): "channel",
            ("DELETE", "channels", 2): "hangup",
            ("POST", "channels", 3): "play",
            ("GET", "playbacks", 2): "playback",
            ("DELETE", "playbacks", 2): "stop",
            ("GET", "endpoints", 3): "endpoint",
            ("GET", "events", 1): "events",
        }
        return table.get((method, parts[0], len(parts))) or table.get(
            (method, parts[0]), f"{method} {parts[0]}"
        )

    def _user(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("latin-1").partition(":")
        except (binascii.Error, ValueError):
            return None
        return user if self.users.get(user) == password else None

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body, separators=(",", ":")),
            content_type="application/json",
            headers=headers,
        )

    def _error(self, status: int, message: str, key: str = "message") -> web.Response:
        return self._json(status, {key: message})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if not path.startswith("ari/") or not self.ari_enabled:
            return web.Response(status=404, text=NOT_FOUND_HTML, content_type="text/html")
        path = path[len("ari/") :].strip("/")
        user = self._user(request)
        record = RecordedRequest(request.method, path, dict(request.query), user)
        self.requests.append(record)
        operation = self._operation(request.method, path)
        response = await self._answer(request, record, operation, user)
        record.status = response.status
        self._log(f"{request.method} /ari/{path} → {response.status}")
        return response

    async def _answer(
        self, request: web.Request, record: RecordedRequest, operation: str, user: str | None
    ) -> web.StreamResponse:
        if user is None:
            return self._json(
                401,
                {"message": "Authentication required"},
                {"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        if operation == "events":
            return await self._events(request)
        delay = self.latency + self.latency_for.get(operation, 0.0)
        if delay > 0:
            await self._sleep(delay, scaled=False)
        if self.hang:
            await self._closing.wait()
            return web.Response(status=503)
        queue = self.fail_next.get(operation)
        failure = queue.pop(0) if queue else self.http_status
        if isinstance(failure, tuple):
            status, body = failure
            if isinstance(body, str):
                return web.Response(status=status, text=body, content_type="text/plain")
            return self._json(status, body)
        if failure is not None:
            return self._error(failure, f"Fake failure {failure}")
        if self.garbage_replies:
            return web.Response(text="<html>Asterisk is busy</html>", content_type="text/html")
        if request.method != "GET" and user in self.read_only_users:
            return self._error(403, "Write access denied")
        parts = record.path.split("/")
        query = record.params
        handlers: dict[str, Any] = {
            "info": lambda: self._info(),
            "originate": lambda: self._originate(query),
            "channel": lambda: self._get_channel(parts[1]),
            "hangup": lambda: self._hangup(parts[1], query),
            "play": lambda: self._play(parts[1], query),
            "playback": lambda: self._get_playback(parts[1]),
            "stop": lambda: self._stop(parts[1]),
            "endpoint": lambda: self._endpoint(parts[1], parts[2]),
        }
        handler = handlers.get(operation)
        if handler is None:
            return web.Response(status=404, text=NOT_FOUND_HTML, content_type="text/html")
        result = handler()
        response: web.StreamResponse = await result if asyncio.iscoroutine(result) else result
        return response

    # ------------------------------------------------------------------ websocket

    async def _events(self, request: web.Request) -> web.StreamResponse:
        app = request.query.get("app")
        if not app:
            return self._error(400, "Missing params: app")
        if self.refuse_websocket is not None:
            return self._error(self.refuse_websocket, "Refused by the fake")
        ws = web.WebSocketResponse(autoping=self.answer_pings)
        await ws.prepare(request)
        self.websocket_connects += 1
        for old in self.websockets.get(app, []):
            if not old.closed:  # Asterisk: the newest connection takes the application over
                self._send(old, {"type": "ApplicationReplaced", "application": app})
        self.websockets.setdefault(app, []).append(ws)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queues[ws] = queue
        self._requests[ws] = request
        sender = self._spawn(self._sender(ws, queue))
        self._log(f"websocket for {app} connected")
        try:
            async for _message in ws:
                pass  # Asterisk ignores what clients send
        finally:
            queue.put_nowait(None)
            await asyncio.wait({sender}, timeout=1)
            self._queues.pop(ws, None)
            self._requests.pop(ws, None)
            self.websockets[app] = [w for w in self.websockets.get(app, []) if w is not ws]
            self._log(f"websocket for {app} closed")
        return ws

    async def _sender(self, ws: web.WebSocketResponse, queue: asyncio.Queue[str | None]) -> None:
        while (text := await queue.get()) is not None:
            if ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(text)

    def _send(self, ws: web.WebSocketResponse, event: dict[str, Any]) -> None:
        queue = self._queues.get(ws)
        if queue is None:
            return
        if self.garbage_events:
            for junk in GARBAGE_EVENTS:
                queue.put_nowait(junk)
        queue.put_nowait(json.dumps(event))

    def _abort(self, ws: web.WebSocketResponse) -> None:
        """Cut the TCP connection under a websocket (no close frame: a crash, a network cut)."""
        request = self._requests.get(ws)
        transport = request.transport if request is not None else None
        if transport is not None:
            transport.abort()

    def _emit(self, app: str, event: dict[str, Any], channel: FakeChannel | None = None) -> None:
        """Send one event to the application's newest websocket (as Asterisk does)."""
        event = {**event, "timestamp": _now(), "application": app, "asterisk_id": self.entity_id}
        if channel is not None:
            event["channel"] = self._channel_json(channel)
        self.events_sent.append(event)
        if event["type"] in self.lose:
            return
        if event["type"] in self.drop_before:
            self.drop_before.discard(event["type"])
            for ws in self.websockets.get(app, []):
                self._abort(ws)
            return
        sockets = [ws for ws in self.websockets.get(app, []) if not ws.closed]
        if sockets:
            self._send(sockets[-1], event)

    async def _flush(self) -> None:
        """Let queued events go out before the REST reply (Asterisk is that quick)."""
        for _ in range(50):
            if all(q.empty() for q in self._queues.values()):
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ resources

    def _channel_json(self, channel: FakeChannel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "name": channel.name,
            "state": channel.state,
            "protocol_id": "",
            "caller": dict(channel.caller),
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "dialplan": {
                "context": "default",
                "exten": "s",
                "priority": 1,
                "app_name": "Stasis" if channel.in_stasis else "AppDial2",
                "app_data": channel.app if channel.in_stasis else "(Outgoing Line)",
            },
            "creationtime": channel.created,
            "language": "en",
        }

    def _playback_json(self, playback: FakePlayback) -> dict[str, Any]:
        body = {
            "id": playback.id,
            "media_uri": playback.media[0],
            "target_uri": f"channel:{playback.channel_id}",
            "language": "en",
            "state": playback.state,
        }
        if len(playback.media) > 1:
            body["next_media_uri"] = playback.media[1]
        return body

    def _info(self) -> web.Response:
        return self._json(
            200,
            {
                "build": {
                    "os": "Linux",
                    "kernel": "unknown",
                    "machine": "unknown",
                    "options": "OPTIONAL_API, TEST_FRAMEWORK",
                    "date": "2026-07-20 21:35:32 UTC",
                    "user": "nobody",
                },
                "system": {"version": VERSION, "entity_id": self.entity_id},
                "config": {
                    "name": self.system_name,
                    "default_language": "en",
                    "setid": {"user": "", "group": ""},
                },
                "status": {"startup_time": _now(), "last_reload_time": _now()},
            },
        )

    def _endpoint(self, tech: str, resource: str) -> web.Response:
        phone = self.phones.get(f"{tech}/{resource}")
        if phone is None:
            return self._error(404, "Endpoint not found")
        ids = [
            c.id
            for c in self.live_channels()
            if c.endpoint.partition("/")[2].rpartition("@")[2] == resource
        ]
        return self._json(
            200,
            {
                "technology": tech,
                "resource": resource,
                "state": "online" if phone.online else "offline",
                "channel_ids": ids,
            },
        )

    def _get_channel(self, channel_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None or channel.destroyed:
            return self._error(404, "Channel not found")
        return self._json(200, self._channel_json(channel))

    def _get_playback(self, playback_id: str) -> web.Response:
        playback = self.playbacks.get(playback_id)
        if playback is None or playback.state in ("done", "failed"):
            return self._error(404, "Playback not found")
        return self._json(200, self._playback_json(playback))

    def _phone_for(self, endpoint: str) -> FakePhone | None:
        tech, _, rest = endpoint.partition("/")
        resource = rest.split("/", 1)[0].rpartition("@")[2]
        return self.phones.get(f"{tech}/{resource}")

    async def _originate(self, query: dict[str, str]) -> web.Response:
        endpoint = query.get("endpoint", "")
        tech, slash, rest = endpoint.partition("/")
        if not slash or not tech or not rest:
            return self._error(400, "Invalid endpoint specified")
        app = query.get("app")
        if not app and not query.get("extension"):
            return self._error(400, "Application or extension must be specified")
        channel_id = query.get("channelId") or f"{self._epoch}.{next(self._counter)}"
        existing = self.channels.get(channel_id)
        if existing is not None and not existing.destroyed:
            return self._error(409, "Channel with given unique ID already exists")
        phone = self._phone_for(endpoint)
        if phone is None or not phone.online:
            return self._error(500, "Allocation failed", key="error")
        try:
            timeout = int(query.get("timeout", "30"))
        except ValueError:
            timeout = 30
        number = next(self._counter)
        channel = FakeChannel(
            id=channel_id,
            name=f"{tech}/{rest.rpartition('@')[2]}-{number:08x}",
            endpoint=endpoint,
            app=app or "",
            created=_now(),
        )
        caller = query.get("callerId")
        if caller:
            name, _, number_part = caller.rpartition("<")
            channel.caller = {"name": name.strip().strip('"'), "number": number_part.rstrip(">")}
        self.channels[channel_id] = channel
        self._spawn(self._ring(channel, phone, timeout))
        return self._json(200, self._channel_json(channel))

    async def _ring(self, channel: FakeChannel, phone: FakePhone, ring_seconds: int) -> None:
        await self._sleep(0.005)
        if channel.ended():
            return
        if phone.answer == "busy":
            self._destroy(channel, 17, by="phone", request_cause=17)
            return
        if phone.answer == "dnd":
            self._destroy(channel, 19, by="phone", request_cause=19)
            return
        if phone.answer == "fail":
            self._destroy(channel, 38, by="phone", request_cause=38)
            return
        self._set_state(channel, "Ringing")
        if phone.answer == "reject":
            await self._sleep(0.05)
            if not channel.ended():
                self._destroy(channel, 21, by="phone", request_cause=21)
            return
        if phone.answer == "no_answer":
            await self._sleep(ring_seconds)
            if not channel.ended():
                self._destroy(channel, 19, by="asterisk", request_cause=None)
            return
        if phone.answer == "ring_forever":
            return
        await self._sleep(phone.answer_delay)
        if channel.ended():
            return
        self._set_state(channel, "Up")
        channel.in_stasis = True
        self._emit(channel.app, {"type": "StasisStart", "args": []}, channel)
        for delay, key in phone.keys:
            self._spawn(self._press_later(channel, delay, key))
        if phone.hang_up_after is not None:
            self._spawn(self._bye_later(channel, phone.hang_up_after, phone.bye_cause))

    async def _press_later(self, channel: FakeChannel, delay: float, key: str) -> None:
        await self._sleep(delay)
        if not channel.ended():
            self.press(channel.id, key)

    async def _bye_later(self, channel: FakeChannel, delay: float, cause: int) -> None:
        await self._sleep(delay)
        if not channel.ended():
            self._destroy(channel, cause, by="phone", request_cause=None)

    def _set_state(self, channel: FakeChannel, state: str) -> None:
        channel.state = state
        self._emit(channel.app, {"type": "ChannelStateChange"}, channel)

    def _destroy(
        self, channel: FakeChannel, cause: int, *, by: str, request_cause: int | None
    ) -> None:
        """End a channel with Asterisk's events: hang-up request, playback end, destroyed."""
        if channel.destroyed:
            return
        request: dict[str, Any] = {"type": "ChannelHangupRequest"}
        if request_cause is not None:
            request["cause"] = request_cause
        if by == "client":
            request["soft"] = True
        self._emit(channel.app, request, channel)
        for playback_id in channel.playbacks:
            playback = self.playbacks[playback_id]
            if playback.state in ("queued", "playing"):
                self._finish(playback, "failed", cancel=True)
        if channel.in_stasis:
            channel.in_stasis = False
            self._emit(channel.app, {"type": "StasisEnd"}, channel)
        channel.destroyed = True
        channel.cause = cause
        channel.hung_up_by = by
        self._emit(
            channel.app,
            {"type": "ChannelDestroyed", "cause": cause, "cause_txt": CAUSES.get(cause, "Unknown")},
            channel,
        )

    async def _hangup(self, channel_id: str, query: dict[str, str]) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None or channel.destroyed:
            return self._error(404, "Channel not found")
        reason = query.get("reason")
        if reason is not None and reason not in ("normal", "busy", "no_answer", "rejected"):
            return self._error(400, "Invalid reason for hangup provided")
        self._destroy(channel, 16, by="client", request_cause=32)
        await self._flush()
        return web.Response(status=204)

    async def _play(self, channel_id: str, query: dict[str, str]) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None or channel.destroyed:
            return self._error(404, "Channel not found")
        if not channel.in_stasis:
            return self._error(409, "Channel not in Stasis application")
        media = [m for m in query.get("media", "").split(",") if m]
        if not media:
            return self._error(400, "Missing params: media")
        playback_id = query.get("playbackId") or f"pb-{next(self._counter)}"
        if playback_id in self.playbacks and self.playbacks[playback_id].state in (
            "queued",
            "playing",
        ):
            return self._error(409, "Playback with given unique ID already exists")
        playback = FakePlayback(playback_id, channel_id, media)
        self.playbacks[playback_id] = playback
        channel.playbacks.append(playback_id)
        reply = self._playback_json(playback)  # "queued", as Asterisk's reply says
        # Asterisk sends PlaybackStarted (then fetches a URL) before its 201 reaches the client.
        playback.state = "playing"
        self._emit(
            channel.app, {"type": "PlaybackStarted", "playback": self._playback_json(playback)}
        )
        playback.task = self._spawn(self._run_playback(playback))
        await self._flush()
        return self._json(201, reply)

    async def _run_playback(self, playback: FakePlayback) -> None:
        for uri in playback.media:
            length = await self._media_seconds(uri)
            if playback.state != "playing":
                return
            if length is None:
                self._finish(playback, "failed")
                return
            await self._sleep(length)
            if playback.state != "playing":
                return
        self._finish(playback, "done")

    def _finish(self, playback: FakePlayback, state: str, *, cancel: bool = False) -> None:
        playback.state = state
        if cancel and playback.task is not None and playback.task is not asyncio.current_task():
            playback.task.cancel()
        channel = self.channels[playback.channel_id]
        self._emit(
            channel.app, {"type": "PlaybackFinished", "playback": self._playback_json(playback)}
        )

    async def _media_seconds(self, uri: str) -> float | None:
        """How long a media URI plays; None when Asterisk would fail it."""
        if not uri.startswith("sound:"):
            return 0.5 if uri.startswith(("digits:", "number:", "tone:")) else None
        name = uri[len("sound:") :]
        if not name.startswith(("http://", "https://")):
            return self.sounds.get(name)
        self.media_fetches.append(name)
        if self._fetch_session is None:
            self._fetch_session = aiohttp.ClientSession()
        try:
            async with self._fetch_session.get(
                name, timeout=aiohttp.ClientTimeout(total=self.media_fetch_timeout), ssl=False
            ) as response:
                if response.status != 200:
                    return None
                data = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            return None
        return _wav_seconds(data)

    async def _stop(self, playback_id: str) -> web.Response:
        playback = self.playbacks.get(playback_id)
        if playback is None or playback.state not in ("queued", "playing"):
            return self._error(404, "Playback not found")
        self._finish(playback, "done", cancel=True)
        await self._flush()
        return web.Response(status=204)


def _event_channel(event: dict[str, Any]) -> str | None:
    channel = event.get("channel")
    if isinstance(channel, dict):
        return channel.get("id")
    playback = event.get("playback")
    if isinstance(playback, dict):
        target = str(playback.get("target_uri", ""))
        return target.partition(":")[2] or None
    return None


# ---------------------------------------------------------------------- program

DEMO_PHONES: dict[str, FakePhone] = {
    "PJSIP/1000": FakePhone(),
    "PJSIP/1001": FakePhone(keys=[(1.0, "5")]),
    "PJSIP/1002": FakePhone(online=False),
    "PJSIP/1003": FakePhone(answer="busy"),
    "PJSIP/1004": FakePhone(answer="no_answer"),
    "PJSIP/1005": FakePhone(answer="reject"),
    "PJSIP/trunk": FakePhone(),
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ari",
        description="Run a fake Asterisk REST Interface (ARI) with phones that behave.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--time-scale", type=float, default=1.0)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    fake = FakeAsterisk(
        username=args.username,
        password=args.password,
        phones=DEMO_PHONES,
        time_scale=args.time_scale,
        log_requests=True,
    )
    await fake.start(host=args.host, port=args.port)
    _emit(f"Fake Asterisk ARI listening on {fake.url}/ari/ (events: /ari/events?app=<app>)")
    _emit(f"  username: {args.username}  password: {args.password}")
    for endpoint, phone in DEMO_PHONES.items():
        what = phone.answer if phone.online else "not registered"
        keys = f", presses {' '.join(k for _, k in phone.keys)}" if phone.keys else ""
        _emit(f"  {endpoint}: {what}{keys}")
    _emit(f"  sounds: {', '.join(sorted(fake.sounds))}")
    await serve_until_stopped(fake.close, "Fake Asterisk")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the fake Asterisk until Ctrl-C / SIGTERM."""
    return run_program(_serve(_parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
