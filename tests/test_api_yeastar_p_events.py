"""The P-Series event WebSocket client, against the fake PBX over TLS on 127.0.0.1.

Nothing is patched: the socket connects, subscribes, sends heartbeats and reconnects to
the fake's real ``/openapi/v1.0/subscribe`` endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
import contextlib
import json
import logging
from pathlib import Path
import signal
import ssl
import sys
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.voice_prompt.api.exceptions import VoicePromptInputError
from custom_components.voice_prompt.api.yeastar_p import YeastarPClient
from custom_components.voice_prompt.api.yeastar_p_events import (
    TOPICS,
    YeastarPEvent,
    YeastarPEventSocket,
    YeastarPEventType,
    YeastarPMember,
    YeastarPMemberKind,
    YeastarPSocketState,
    parse_event,
)
from tests.fakes.yeastar_p import FakeYeastarP
from tests.fakes.yeastar_p_events import GARBAGE_FRAMES
from tests.test_api_yeastar_p import CLIENT_ID, CLIENT_SECRET, assert_no_secrets, make_client

FAST: dict[str, Any] = {"reconnect_delays": (0.05,), "heartbeat": 5.0}


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture
async def fake(server_ssl: ssl.SSLContext, socket_enabled: None) -> AsyncGenerator[FakeYeastarP]:
    """A fake PBX whose calls send their events quickly."""
    pbx = FakeYeastarP(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    pbx.events.event_delay = 0.0
    await pbx.start(ssl_context=server_ssl)
    yield pbx
    await pbx.close()


@pytest.fixture
async def client(
    session: aiohttp.ClientSession, fake: FakeYeastarP
) -> AsyncGenerator[YeastarPClient]:
    """A client for the fake; its token is revoked at the end."""
    pbx_client = make_client(session, fake)
    yield pbx_client
    await pbx_client.async_close()


class Listener:
    """Collects what a socket hands out."""

    def __init__(self) -> None:
        self.events: list[YeastarPEvent] = []
        self.states: list[YeastarPSocketState] = []

    def event(self, event: YeastarPEvent) -> None:
        self.events.append(event)

    def state(self, state: YeastarPSocketState) -> None:
        self.states.append(state)

    def of(self, kind: YeastarPEventType) -> list[YeastarPEvent]:
        return [event for event in self.events if event.type is kind]


@pytest.fixture
async def listener() -> Listener:
    return Listener()


@pytest.fixture
async def socket(client: YeastarPClient, listener: Listener) -> AsyncGenerator[YeastarPEventSocket]:
    """A started socket, subscribed to every topic."""
    async with running(client, listener.event, on_state=listener.state) as events:
        yield events


@contextlib.asynccontextmanager
async def running(
    client: YeastarPClient,
    on_event: Callable[[YeastarPEvent], None],
    *,
    subscribed: bool = True,
    **options: Any,
) -> AsyncIterator[YeastarPEventSocket]:
    """A started socket (subscribed, or not yet when ``subscribed`` is False); closed after."""
    events = YeastarPEventSocket(client, on_event, **(FAST | options))
    assert await events.async_start(wait=5.0 if subscribed else 0.3) is subscribed
    try:
        yield events
    finally:
        await events.async_close()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for ``condition`` (the socket works in the background)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_subscribes_to_every_topic(
    socket: YeastarPEventSocket, fake: FakeYeastarP, listener: Listener
) -> None:
    """One socket, the documented topic list, a token of the client's."""
    assert socket.state is YeastarPSocketState.SUBSCRIBED
    assert fake.events.connected == 1
    (sub,) = fake.events.subscribers
    assert sub.topics == {30008, 30011, 30015, 30017, 30018} == set(TOPICS)
    assert fake.events.tokens_seen == fake.valid_tokens()
    assert listener.states == [YeastarPSocketState.CONNECTING, YeastarPSocketState.SUBSCRIBED]
    assert "token" not in repr(socket)
    diagnostics = socket.diagnostics()
    assert diagnostics["state"] == "subscribed"
    assert diagnostics["connected"] is True
    assert diagnostics["reconnects"] == 0


async def test_a_call_is_reported_in_order(
    socket: YeastarPEventSocket, client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """Ringing, answered, each prompt's end, hung up: typed events with the member's number."""
    await client.play_prompt("1001", ["doorbell", "alarm"])
    await fake.events.calls_done()
    await until(lambda: len(listener.events) == 7)
    kinds = [event.type for event in listener.events]
    assert kinds == [30008, 30011, 30011, 30018, 30018, 30011, 30008]
    ring, answer, first, second, bye = listener.events[1:6]
    assert [ring.members[0].status, answer.members[0].status, bye.members[0].status] == [
        "RING",
        "ANSWER",
        "BYE",
    ]
    assert ring.member("1001") == YeastarPMember(
        YeastarPMemberKind.EXTENSION, "1001", ring.members[0].channel_id, "RING"
    )
    assert {ring.call_id, first.call_id, bye.call_id} == {ring.call_id}
    assert [first.prompt, second.prompt] == ["doorbell", "alarm"]
    assert listener.events[0].extension == "1001"
    assert listener.events[0].extension_status == "Ringing"
    assert socket.received == 7
    assert socket.bad_frames == 0


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("no_answer", "480 Temporarily Unavailable"),
        ("busy", "486 Busy here"),
        ("rejected", "User Busy"),
        ("failed", "Line Unreachable"),
    ],
)
async def test_failed_calls_carry_the_reason(
    socket: YeastarPEventSocket,
    client: YeastarPClient,
    fake: FakeYeastarP,
    listener: Listener,
    outcome: str,
    reason: str,
) -> None:
    """30015 names why; an external number is an outbound member reached by its ``to``."""
    fake.events.outcome = outcome
    await client.play_prompt("+4930123456", "doorbell")
    await fake.events.calls_done()
    await until(lambda: bool(listener.of(YeastarPEventType.CALL_FAILED)))
    (failed,) = listener.of(YeastarPEventType.CALL_FAILED)
    assert failed.reason == reason
    member = failed.member("+4930123456")
    assert member is not None
    assert member.kind is YeastarPMemberKind.OUTBOUND


async def test_dtmf_and_groups(
    socket: YeastarPEventSocket, client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """A key press is its digit; a group's member is reached through the group (call_path)."""
    fake.events.outcome = "dtmf"
    fake.events.dtmf_digit = "#"
    await client.play_prompt("6300", "doorbell")
    await fake.events.calls_done()
    await until(lambda: bool(listener.of(YeastarPEventType.DTMF)))
    (dtmf,) = listener.of(YeastarPEventType.DTMF)
    assert (dtmf.digit, dtmf.digits) == ("#", "#")
    assert dtmf.member("6300") is not None
    assert dtmf.numbers() == ["1000", "6300"]


async def test_hangup_ends_a_call_in_progress(
    socket: YeastarPEventSocket, client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """``call/hangup`` with the channel of a 30011: the PBX ends the call (a BYE follows)."""
    fake.events.prompt_seconds = 5.0
    await client.play_prompt("1001", "doorbell")
    await until(lambda: len(listener.of(YeastarPEventType.CALL_STATUS)) == 2)
    channel = listener.of(YeastarPEventType.CALL_STATUS)[-1].members[0].channel_id
    assert channel is not None
    assert await client.hangup(channel)
    await until(lambda: len(listener.of(YeastarPEventType.CALL_STATUS)) == 3)
    assert listener.of(YeastarPEventType.CALL_STATUS)[-1].members[0].status == "BYE"
    assert listener.of(YeastarPEventType.PLAY_PROMPT_END) == []
    assert not await client.hangup(channel)  # gone now
    with pytest.raises(VoicePromptInputError, match="channel id"):
        await client.hangup(" ")


async def test_garbage_frames_are_counted_not_raised(
    socket: YeastarPEventSocket, client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """Frames that are no events change nothing but a counter; the socket stays up."""
    fake.events.garbage = True
    await client.play_prompt("1001", "doorbell")
    await fake.events.calls_done()
    await until(lambda: len(listener.events) == 6)
    assert socket.bad_frames == 6 * len(GARBAGE_FRAMES)
    assert socket.subscribed
    assert socket.reconnects == 0


async def test_a_failing_listener_does_not_stop_the_socket(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception of the callback is logged; the next events still arrive."""
    seen: list[YeastarPEvent] = []

    def broken(event: YeastarPEvent) -> None:
        seen.append(event)
        raise RuntimeError("listener bug")

    async with running(client, broken) as events:
        await client.play_prompt("1001", "doorbell")
        await until(lambda: len(seen) == 6)
        assert events.subscribed
        assert "A Yeastar P-Series event listener failed" in caplog.text


async def test_heartbeat_keeps_an_idle_socket(
    client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """The PBX closes a silent socket; heartbeats well before its idle time keep it."""
    fake.events.idle_timeout = 0.4
    async with running(client, listener.event, heartbeat=0.1, reconnect_delays=(0.05,)) as events:
        await asyncio.sleep(1.2)
        assert fake.events.heartbeats >= 5
        assert fake.events.idle_closes == 0
        assert events.reconnects == 0


async def test_without_heartbeats_the_pbx_closes_and_the_socket_comes_back(
    client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """Heartbeats too rare for the idle time: the PBX closes, the socket reconnects."""
    fake.events.idle_timeout = 0.2
    async with running(client, listener.event, heartbeat=30.0, reconnect_delays=(0.05,)) as events:
        await fake.events.wait_subscribed(2)
        await until(lambda: events.reconnects >= 1)
        assert fake.events.idle_closes >= 1


async def test_unanswered_heartbeats_mean_a_dead_link(
    client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """No heartbeat response: the socket gives the link up and connects again."""
    fake.events.answer_heartbeats = False
    async with running(client, listener.event, heartbeat=0.1, reconnect_delays=(0.05,)) as events:
        await fake.events.wait_subscribed(2)
        await until(lambda: events.reconnects >= 1)
    assert events.state is YeastarPSocketState.STOPPED


async def test_drop_mid_call_reconnects_and_later_events_arrive(
    socket: YeastarPEventSocket, client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """The PBX drops every socket after the answer; the rest of the call still arrives."""
    fake.events.drop_mid_call = True
    await client.play_prompt("1001", "doorbell")
    await fake.events.calls_done()
    await until(lambda: bool(listener.of(YeastarPEventType.PLAY_PROMPT_END)))
    await until(lambda: len(listener.of(YeastarPEventType.CALL_STATUS)) == 3)
    assert socket.reconnects == 1
    assert YeastarPSocketState.RECONNECTING in listener.states
    assert listener.states[-1] is YeastarPSocketState.SUBSCRIBED
    assert socket.diagnostics()["reconnects"] == 1


async def test_expired_token_is_renewed_on_reconnect(
    socket: YeastarPEventSocket,
    client: YeastarPClient,
    fake: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A socket refused for its token comes back with a refreshed one."""
    fake.expire_tokens()
    await fake.events.drop_all()
    await fake.events.wait_subscribed(2)
    await until(lambda: socket.subscribed)
    assert fake.refreshes == 1
    assert fake.events.tokens_seen[-1] == fake.valid_tokens()[-1]
    assert_no_secrets(fake, caplog, socket, client)


async def test_refused_handshake_backs_off_and_recovers(
    client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """A refused handshake is retried (with a renewed token); then it subscribes."""
    fake.events.refuse_status = 403
    async with running(client, listener.event, subscribed=False) as events:
        assert events.state is YeastarPSocketState.RECONNECTING
        assert "HTTP 403" in str(events.last_error)
        fake.events.refuse_status = None
        await fake.events.wait_subscribed(1)
        await until(lambda: events.subscribed)
        assert events.last_error is None


async def test_refused_subscription_is_retried(
    client: YeastarPClient, fake: FakeYeastarP, listener: Listener
) -> None:
    """An errcode in answer to the topic list: not subscribed, tried again."""
    fake.events.subscribe_errcode = 10005
    async with running(client, listener.event, subscribed=False) as events:
        assert "errcode 10005" in str(events.last_error)
        fake.events.subscribe_errcode = None
        await until(lambda: events.subscribed)


async def test_refused_credentials_stop_the_socket(
    session: aiohttp.ClientSession, fake: FakeYeastarP, listener: Listener
) -> None:
    """A wrong Client Secret: no endless retries (the PBX blocks the address after 5)."""
    wrong = make_client(session, fake, client_secret="wrong-secret-000")
    events = YeastarPEventSocket(wrong, listener.event, on_state=listener.state, **FAST)
    assert not await events.async_start(wait=0.5)
    await until(lambda: events.state is YeastarPSocketState.AUTH_FAILED)
    assert fake.token_requests == 1
    await events.async_close()


async def test_unreachable_pbx_keeps_trying(
    session: aiohttp.ClientSession,
    fake: FakeYeastarP,
    listener: Listener,
    server_ssl: ssl.SSLContext,
) -> None:
    """The PBX away at start: no exception, reconnecting, subscribed once it is back."""
    client = make_client(session, fake)
    await client.get_token()
    port = fake.port
    await fake.close()
    events = YeastarPEventSocket(client, listener.event, **FAST)
    assert not await events.async_start(wait=0.3)
    assert "Cannot connect" in str(events.last_error)
    pbx = FakeYeastarP(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    await pbx.start(ssl_context=server_ssl, port=port)
    try:
        await until(lambda: events.subscribed, seconds=10.0)
    finally:
        await events.async_close()
        await pbx.close()


def test_bad_arguments() -> None:
    """The heartbeat must be positive, the delays given."""
    client = YeastarPClient.__new__(YeastarPClient)
    with pytest.raises(ValueError, match="heartbeat"):
        YeastarPEventSocket(client, print, heartbeat=0)
    with pytest.raises(ValueError, match="reconnect_delays"):
        YeastarPEventSocket(client, print, reconnect_delays=())


def test_parse_documented_examples() -> None:
    """Yeastar's examples: ``msg`` as a JSON string, or as an object."""
    ringing = {
        "type": 30008,
        "sn": "3631A2124XXX",
        "msg": '{"extension":"2002","status":"Ringing"}',
    }
    assert parse_event(ringing) == YeastarPEvent(
        YeastarPEventType.EXTENSION_CALL_STATUS, extension="2002", extension_status="Ringing"
    )
    failed = {
        "type": 30015,
        "msg": {
            "call_id": "1536976927.37",
            "reason": "486 Busy here",
            "members": [
                {"outbound": {"from": "1002", "to": 70871520926, "trunk_name": "W-1"}},
                {"extension": {"number": "1002", "channel_id": "PJSIP/1002-1"}},
                {"unknown": {}},
                "garbage",
            ],
        },
    }
    event = parse_event(failed)
    assert event is not None
    assert event.reason == "486 Busy here"
    assert [member.number for member in event.members] == ["70871520926", "1002"]
    assert event.member("70871520926") is event.members[0]
    assert event.member("9999") is None


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "text",
        {"type": 30011},
        {"type": "30011", "msg": {}},
        {"type": 30011, "msg": {"members": []}},
        {"type": 30011, "msg": {"call_id": "1.1", "members": {}}},
        {"type": 30008, "msg": {"status": "Idle"}},
        {"type": 30011, "msg": "{not json"},
    ],
)
def test_parse_refuses_wrong_shapes(data: Any) -> None:
    """Anything off the documented shape is no event."""
    assert parse_event(data) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_MEMBER = st.dictionaries(
    st.sampled_from(["extension", "inbound", "outbound", "other"]),
    st.dictionaries(
        st.sampled_from(["number", "to", "from", "channel_id", "member_status", "call_path"]),
        _JSON,
        max_size=6,
    )
    | _JSON,
    max_size=2,
)
_MSG = st.dictionaries(
    st.sampled_from(
        ["call_id", "members", "reason", "info", "infos", "prompt", "extension", "status"]
    ),
    _JSON | st.lists(_MEMBER | _JSON, max_size=4),
    max_size=8,
)
_REPORT = (
    st.fixed_dictionaries(
        {"type": st.sampled_from([*TOPICS, 30012, True, "30011", None]), "msg": _MSG | _JSON}
    )
    | _JSON
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(report=_REPORT, as_text=st.booleans())
def test_parse_never_raises(report: Any, as_text: bool) -> None:
    """Whatever a frame holds, parsing gives an event or None (never an exception)."""
    if as_text and isinstance(report, dict) and isinstance(report.get("msg"), dict):
        report = {**report, "msg": json.dumps(report["msg"])}
    event = parse_event(report)
    assert event is None or isinstance(event, YeastarPEvent)
    if event is not None:
        event.numbers()
        for number in ("1000", "+4930123456"):
            event.member(number)


async def test_fake_program_sends_the_chosen_outcome(
    session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """``python -m tests.fakes.yeastar_p --outcome busy``: its socket reports a busy call."""
    program = await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",
        "-m",
        "tests.fakes.yeastar_p",
        "--port",
        "0",
        "--outcome",
        "busy",
        cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert program.stdout is not None
    listener = Listener()
    try:
        async with asyncio.timeout(30):
            first = (await program.stdout.readline()).decode()
            port = int(first.split(":")[2].split("/")[0])
            client = YeastarPClient(
                session,
                "127.0.0.1",
                port=port,
                client_id="vp-demo-client",
                client_secret="VoicePrompt-P-Secret1",
                verify_ssl=False,
            )
            async with running(client, listener.event):
                await client.play_prompt("1001", "doorbell")
                await until(lambda: bool(listener.of(YeastarPEventType.CALL_FAILED)))
            await client.async_close()
            program.send_signal(signal.SIGINT)
            log = (await program.stdout.read()).decode()
            assert await program.wait() == 0
    finally:
        if program.returncode is None:
            program.kill()
            await program.wait()
    (failed,) = listener.of(YeastarPEventType.CALL_FAILED)
    assert failed.reason == "486 Busy here"
    assert "subscribed to 30008, 30011, 30015, 30017, 30018" in log
