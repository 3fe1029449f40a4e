"""Key presses and keepAlive in the Graph API client, against the fake Graph on 127.0.0.1.

The fake sends signed ``toneInfo`` notifications (as Graph does once a call is subscribed to
tones) to a local receiver that verifies them and feeds the client, like an application.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Coroutine
import json
import logging
from typing import Any
import uuid

import aiohttp
import pytest

from custom_components.voice_prompt.api import (
    GraphClient,
    GraphEvent,
    GraphEventType,
    GraphMedia,
    GraphPlayResult,
    GraphTarget,
    TargetKind,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    graph as graph_module,
)
from custom_components.voice_prompt.api.graph import (
    GraphAcknowledgement,
    GraphCallTracker,
    parse_key,
)
from tests.fakes.graph import FakeGraph
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    CLIENT_ID,
    CLIENT_SECRET,
    MEDIA,
    RECEIVER_CALLBACK,
    TENANT_ID,
    USER_ID,
    NotificationReceiver,
    OddReply,
    OddServer,
    graph,
    graph_receiver,
    graph_session,
    odd_server,
    wait_for,
)

PROMPTS = [GraphMedia(MEDIA, "doorbell")]
TEAMS_USER = GraphTarget(TargetKind.USER, USER_ID)
KEEP_ALIVE = 0.05  # seconds: the client's interval in these tests (Microsoft: 15 minutes)


def _place(
    client: GraphClient, client_context: str, **options: Any
) -> Coroutine[Any, Any, GraphPlayResult]:
    """Call the Teams user and play the doorbell prompt (``options`` as async_play's)."""
    return client.async_play(
        PROMPTS,
        client_context=client_context,
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
        **options,
    )


@pytest.fixture
async def client(
    graph: FakeGraph, graph_session: aiohttp.ClientSession, graph_receiver: NotificationReceiver
) -> AsyncGenerator[GraphClient]:
    """A client that keeps its calls alive every KEEP_ALIVE seconds, fed by the receiver."""
    client = GraphClient(
        graph_session,
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        login_base=graph.login_base,
        graph_base=graph.graph_base,
        keep_alive_interval=KEEP_ALIVE,
    )
    graph_receiver.client = client
    yield client
    await client.async_close()


@pytest.fixture
def heard(client: GraphClient) -> list[tuple[GraphEvent, GraphAcknowledgement | None]]:
    """Every event that acted, with what the client says it acknowledged (asked at once)."""
    seen: list[tuple[GraphEvent, GraphAcknowledgement | None]] = []
    client.tracker.add_listener(lambda event: seen.append((event, client.acknowledgement(event))))
    return seen


def _play(client: GraphClient, **options: Any) -> asyncio.Task[Any]:
    """async_play to the Teams user, in a task."""
    return asyncio.create_task(
        _place(
            client,
            "doorbell",
            **options,
        )
    )


async def _subscribed(graph: FakeGraph) -> str:
    await wait_for(lambda: any(call.tones_subscribed for call in graph.calls.values()))
    (call_id,) = graph.calls
    return call_id


def _tones(heard: list[tuple[GraphEvent, GraphAcknowledgement | None]]) -> list[Any]:
    return [
        (event.tone, event.sequence_id, ack)
        for event, ack in heard
        if event.type is GraphEventType.TONE
    ]


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("text", "key"),
    [("1", "1"), (" 0 ", "0"), ("*", "*"), ("#", "#"), ("a", "A"), ("D", "D")],
)
def test_parse_key(text: str, key: str) -> None:
    assert parse_key(text) == key


@pytest.mark.parametrize("text", ["", "11", "x", "E", "flash", "**"])
def test_parse_key_refuses(text: str) -> None:
    with pytest.raises(VoicePromptInputError, match=r"is not a key \(0-9, \*, #, A-D\)"):
        parse_key(text)


async def test_subscribe_to_tone_request(graph: FakeGraph, client: GraphClient) -> None:
    """subscribeToTone: POST with the clientContext; Graph answers a completed operation."""
    result = await _place(
        client,
        "ctx",
        hang_up=False,
    )

    operation = await client.subscribe_to_tone(result.call_id, "tones-1")

    assert operation.status == "completed"
    assert operation.client_context == "tones-1"
    (request,) = graph.calls_to(
        "POST", f"/v1.0/communications/calls/{result.call_id}/subscribeToTone"
    )
    assert request.body == {"clientContext": "tones-1"}
    assert graph.calls[result.call_id].tones_subscribed


async def test_the_key_stops_the_prompts_and_hangs_up(
    graph: FakeGraph,
    client: GraphClient,
    graph_receiver: NotificationReceiver,
    heard: list[Any],
) -> None:
    """Another key does nothing; the key ends the wait at once and the call is hung up."""
    graph.prompt_seconds = 30.0  # still playing when the keys are pressed
    task = _play(client, acknowledge="1")
    call_id = await _subscribed(graph)
    await wait_for(lambda: graph.calls_to("POST", "/playPrompt"))

    assert await graph.press(call_id, "2") == 202
    await wait_for(lambda: len(_tones(heard)) == 1)
    assert not task.done()
    assert await graph.press(call_id, "1") == 202
    result = await asyncio.wait_for(task, 5)

    assert result.status == "acknowledged"
    assert result.acknowledged is not None
    assert (result.acknowledged.tone, result.acknowledged.sequence_id) == ("1", 2)
    assert result.final is None
    assert not result.finished
    assert result.hung_up
    assert _tones(heard) == [("2", 1, None), ("1", 2, GraphAcknowledgement("1", True))]
    # Order at the fake: create, subscribe, play, hang up (no cancel: the call ends).
    paths = [
        (r.method, r.path.removeprefix(f"/graph/v1.0/communications/calls/{call_id}"))
        for r in graph.requests
        if r.path.startswith("/graph/") and not r.path.endswith("/keepAlive")
    ]
    assert paths == [
        ("POST", "/graph/v1.0/communications/calls"),
        ("POST", "/subscribeToTone"),
        ("POST", "/playPrompt"),
        ("DELETE", ""),
    ]
    await wait_for(lambda: graph_receiver.events[-1].type is GraphEventType.CALL_TERMINATED)


async def test_the_key_without_hang_up_cancels_the_media(
    graph: FakeGraph, client: GraphClient, heard: list[Any]
) -> None:
    """hang_up false: the prompts stop (cancelMediaProcessing), the call stays up."""
    graph.prompt_seconds = 30.0
    task = _play(client, acknowledge="#", hang_up=False)
    call_id = await _subscribed(graph)
    await wait_for(lambda: graph.calls_to("POST", "/playPrompt"))

    await graph.press(call_id, "#")
    result = await asyncio.wait_for(task, 5)

    assert result.status == "acknowledged"
    assert not result.hung_up
    assert graph.calls[call_id].state == "established"
    assert graph.calls_to("DELETE", "") == []
    (cancel,) = graph.calls_to("POST", f"/{call_id}/cancelMediaProcessing")
    assert cancel.reply_status == 200
    # The cancelled prompt is reported failed: the client knows it stopped it.
    await wait_for(lambda: any(e.type is GraphEventType.PROMPT_FAILED for e, _ in heard))
    assert client.stopped(result.operation.id)
    assert not client.stopped("00000000-0000-0000-0000-000000000000")
    assert not client.stopped(None)
    assert _tones(heard) == [("#", 1, GraphAcknowledgement("#", False))]


async def test_without_the_key_the_prompts_play_to_their_end(
    graph: FakeGraph, client: GraphClient
) -> None:
    result = await _place(
        client,
        "ctx",
        acknowledge="5",
    )

    assert result.status == "completed"
    assert result.acknowledged is None
    assert result.hung_up
    assert len(graph.calls_to("POST", "/subscribeToTone")) == 1


async def test_a_press_during_a_loop_is_handled_in_the_background(
    graph: FakeGraph, client: GraphClient, heard: list[Any]
) -> None:
    """A loop returns at once; the key pressed later still ends the call."""
    result = await _place(
        client,
        "ctx",
        acknowledge="*",
        loop=True,
    )
    assert result.status == "running"
    assert graph.calls_to("DELETE", "") == []

    await graph.press(result.call_id, "*")

    await wait_for(lambda: graph.calls_to("DELETE", result.call_id))
    await wait_for(lambda: graph.calls[result.call_id].state == "terminated")
    assert _tones(heard) == [("*", 1, GraphAcknowledgement("*", True))]


async def test_a_key_into_an_existing_call(graph: FakeGraph, client: GraphClient) -> None:
    """Playing into a call placed earlier subscribes it; its key stops the prompts there."""
    placed = await _place(
        client,
        "first",
        hang_up=False,
    )
    graph.prompt_seconds = 30.0

    again = await client.async_play(
        PROMPTS, client_context="again", call_id=placed.call_id, acknowledge="9", hang_up=False
    )
    assert again.status == "running"
    await graph.press(placed.call_id, "9")

    await wait_for(lambda: graph.calls_to("POST", "/cancelMediaProcessing"))
    assert graph.calls[placed.call_id].state == "established"


async def test_playing_into_a_call_not_ours_keeps_nothing(
    graph: FakeGraph, client: GraphClient
) -> None:
    with pytest.raises(VoicePromptInputError, match="is not known to Microsoft Graph"):
        await client.async_play(
            PROMPTS,
            client_context="ctx",
            call_id="0b1a2c3d-0000-4000-8000-000000000001",
            acknowledge="1",
        )
    await asyncio.sleep(KEEP_ALIVE * 3)
    assert graph.calls_to("POST", "/keepAlive") == []


async def test_a_replayed_press_acts_once(
    graph: FakeGraph, client: GraphClient, graph_receiver: NotificationReceiver, heard: list[Any]
) -> None:
    """The same sequence id again is a copy: one acknowledgement, one cancel."""
    result = await _place(
        client,
        "ctx",
        acknowledge="3",
        loop=True,
        hang_up=False,
    )
    await graph.press(result.call_id, "3")
    await wait_for(lambda: graph.calls_to("POST", "/cancelMediaProcessing"))
    (pressed,) = [d for d in graph.deliveries if b"toneInfo" in d.body]

    assert await graph.replay(pressed, 5) == [202] * 5
    await asyncio.sleep(0.1)

    assert _tones(heard) == [("3", 1, GraphAcknowledgement("3", False))]
    assert len(graph.calls_to("POST", "/cancelMediaProcessing")) == 1
    assert client.tracker.diagnostics()["ignored"]["duplicate"] == 5
    # A second press of the key is news, but the call was acknowledged already.
    await graph.press(result.call_id, "3")
    await wait_for(lambda: len(_tones(heard)) == 2)
    assert _tones(heard)[1] == ("3", 2, None)
    assert len(graph.calls_to("POST", "/cancelMediaProcessing")) == 1


async def test_missing_media_permission_ends_the_call(
    graph: FakeGraph, client: GraphClient
) -> None:
    """subscribeToTone needs Calls.AccessMedia.All: refused, nothing plays, the call ends."""
    graph.tone_permission_denied = True

    with pytest.raises(VoicePromptRequestError, match="HTTP 403"):
        await _place(
            client,
            "ctx",
            acknowledge="1",
        )

    assert graph.calls_to("POST", "/playPrompt") == []
    (call_id,) = graph.calls
    assert [r.reply_status for r in graph.calls_to("DELETE", call_id)] == [204]


async def test_acknowledge_key_is_checked_before_anything_is_sent(
    graph: FakeGraph, client: GraphClient
) -> None:
    with pytest.raises(VoicePromptInputError):
        await _place(
            client,
            "ctx",
            acknowledge="x",
        )
    assert graph.requests == []


# ---------------------------------------------------------------------- keepAlive


async def test_held_calls_are_kept_alive_until_they_end(
    graph: FakeGraph, client: GraphClient
) -> None:
    result = await _place(
        client,
        "ctx",
        hang_up=False,
    )
    call = graph.calls[result.call_id]

    # The fake counts a keepAlive when it answers, the client once it read the answer.
    await wait_for(lambda: call.keep_alives >= 2 and client.keep_alives >= 2)
    assert {r.reply_status for r in graph.calls_to("POST", f"/{call.id}/keepAlive")} == {200}

    assert await graph.hang_up(call.id) == 202  # the callee hangs up: Graph tells
    await asyncio.sleep(KEEP_ALIVE * 2)
    count = call.keep_alives
    await asyncio.sleep(KEEP_ALIVE * 3)
    assert call.keep_alives == count


async def test_a_call_hung_up_here_is_no_longer_kept_alive(
    graph: FakeGraph, client: GraphClient
) -> None:
    result = await _place(
        client,
        "ctx",
    )
    assert result.hung_up
    before = len(graph.calls_to("POST", "/keepAlive"))  # while it played, maybe
    await asyncio.sleep(KEEP_ALIVE * 3)
    assert len(graph.calls_to("POST", "/keepAlive")) == before


async def test_a_call_gone_unheard_of_is_let_go(
    graph: FakeGraph, client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The end was never told (a lost notification): keepAlive's 404 lets the call go."""
    result = await _place(
        client,
        "ctx",
        hang_up=False,
    )
    graph.calls[result.call_id].state = "terminated"  # ended without a notification

    with caplog.at_level(logging.DEBUG):
        await wait_for(lambda: graph.calls_to("POST", "/keepAlive"))
        await asyncio.sleep(KEEP_ALIVE * 3)

    statuses = [r.reply_status for r in graph.calls_to("POST", "/keepAlive")]
    assert statuses[-1] == 404
    assert set(statuses[:-1]) <= {200}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_failing_keep_alive_is_retried(
    graph: FakeGraph, client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    result = await _place(
        client,
        "ctx",
        hang_up=False,
    )
    """A refused keepAlive is logged, and the next one keeps the call up."""
    call = graph.calls[result.call_id]
    graph.http_status = 500
    kept = call.keep_alives

    # Refused until the client gave that keepAlive up (a 5xx is retried inside one).
    await wait_for(lambda: "Could not keep call" in caplog.text)
    assert call.keep_alives == kept
    graph.http_status = None
    await wait_for(lambda: call.keep_alives > kept)


async def test_close_stops_keeping_calls_alive(graph: FakeGraph, client: GraphClient) -> None:
    await _place(
        client,
        "ctx",
        hang_up=False,
        loop=True,
    )
    await client.async_close()
    before = len(graph.calls_to("POST", "/keepAlive"))
    await asyncio.sleep(KEEP_ALIVE * 3)
    assert len(graph.calls_to("POST", "/keepAlive")) == before


# ------------------------------------------------------------------------ tracker


def _tone_note(call_id: str, tone: Any, state: str = "established") -> dict[str, Any]:
    return {
        "value": [
            {
                "changeType": "updated",
                "resourceUrl": f"/communications/calls/{call_id}",
                "resourceData": {
                    "@odata.type": "#microsoft.graph.call",
                    "state": state,
                    "toneInfo": tone,
                },
            }
        ]
    }


CALL = "57dab8b1-894c-409a-b240-bd8beae78896"


def test_tracker_reads_tones() -> None:
    """Graph's documented notification; every key; what names no key is nothing."""
    tracker = GraphCallTracker()
    names = {f"tone{d}": str(d) for d in range(10)} | {
        "star": "*",
        "pound": "#",
        "a": "A",
        "b": "B",
        "c": "C",
        "d": "D",
    }
    for number, (name, key) in enumerate(names.items(), start=1):
        (event,) = tracker.handle(_tone_note(CALL, {"sequenceId": number, "tone": name}))
        assert (event.type, event.tone, event.sequence_id) == (GraphEventType.TONE, key, number)
    for odd in (
        {"sequenceId": 90, "tone": "flash"},
        {"sequenceId": 91, "tone": "tone12"},
        {"tone": "tone1"},
        {"sequenceId": "92", "tone": "tone1"},
        {"sequenceId": True, "tone": "tone1"},
        {"sequenceId": -1, "tone": "tone1"},
        "tone1",
    ):
        assert tracker.handle(_tone_note(CALL, odd)) == []
    # A tone is not a state: whoever waits for the call's state still waits for it.
    assert not tracker.ended(CALL)
    # The call's end wins over the last key it carries.
    (end,) = tracker.handle(
        _tone_note(CALL, {"sequenceId": 93, "tone": "tone1"}, state="terminated")
    )
    assert end.type is GraphEventType.CALL_TERMINATED
    # After the end, a press is old news.
    assert tracker.handle(_tone_note(CALL, {"sequenceId": 94, "tone": "tone1"})) == []


def test_tracker_remembers_a_bounded_number_of_presses() -> None:
    tracker = GraphCallTracker()
    for number in range(1, 201):
        assert len(tracker.handle(_tone_note(CALL, {"sequenceId": number, "tone": "tone1"}))) == 1
    for number in (1, 100, 136, 200):  # forgotten as old, or remembered: no repeat
        assert tracker.handle(_tone_note(CALL, {"sequenceId": number, "tone": "tone1"})) == []
    assert len(tracker.handle(_tone_note(CALL, {"sequenceId": 201, "tone": "tone1"}))) == 1
    (call,) = tracker._calls.values()
    assert len(call.tones) <= 64


def test_tracker_holds_a_press_for_a_call_not_known() -> None:
    tracker = GraphCallTracker(known_calls_only=True)
    assert tracker.handle(_tone_note(CALL, {"sequenceId": 1, "tone": "tone1"})) == []
    assert tracker.diagnostics()["held"] == 1


# ------------------------------------------------------------------- edge cases


async def test_a_press_while_play_prompt_is_answered(
    graph: FakeGraph, client: GraphClient, heard: list[Any]
) -> None:
    """The key comes before Graph's reply to playPrompt: the loop's call still ends."""
    graph.reply_delay = 0.3  # Graph acts, then answers late
    task = _play(client, acknowledge="7", loop=True)
    call_id = await _subscribed(graph)
    await wait_for(lambda: graph.calls_to("POST", "/playPrompt"))

    await graph.press(call_id, "7")
    result = await asyncio.wait_for(task, 5)

    assert result.acknowledged is None  # async_play did not see it: the background did
    await wait_for(lambda: graph.calls_to("DELETE", call_id))
    assert _tones(heard) == [("7", 1, GraphAcknowledgement("7", True))]


async def test_a_new_key_replaces_the_old_one(graph: FakeGraph, client: GraphClient) -> None:
    """Playing into the call again with another key: only the new key acknowledges."""
    placed = await _place(
        client,
        "first",
        acknowledge="1",
        loop=True,
        hang_up=False,
    )
    await client.async_play(
        PROMPTS, client_context="again", call_id=placed.call_id, acknowledge="2", hang_up=False
    )

    await graph.press(placed.call_id, "1")
    await asyncio.sleep(0.1)
    assert graph.calls_to("POST", "/cancelMediaProcessing") == []
    await graph.press(placed.call_id, "2")
    await wait_for(lambda: graph.calls_to("POST", "/cancelMediaProcessing"))


async def test_a_failed_stop_is_only_logged(
    graph: FakeGraph, client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    result = await _place(
        client,
        "ctx",
        acknowledge="0",
        loop=True,
        hang_up=False,
    )
    graph.http_status = 500  # Graph refuses cancelMediaProcessing (its notifications still come)
    assert await graph.press(result.call_id, "0") == 202

    await wait_for(lambda: "Could not stop the prompts in call" in caplog.text)
    graph.http_status = None


async def test_held_calls_are_bounded(
    graph: FakeGraph,
    client: GraphClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Beyond the bound the oldest call is let go: no keepAlive for it any more."""
    monkeypatch.setattr(graph_module, "_MAX_HOLDS", 1)
    options: dict[str, Any] = {"target": TEAMS_USER, "callback_uri": RECEIVER_CALLBACK}
    with caplog.at_level(logging.DEBUG):
        first = await client.async_play(PROMPTS, client_context="1", hang_up=False, **options)
        second = await client.async_play(PROMPTS, client_context="2", hang_up=False, **options)
        await wait_for(lambda: graph.calls[second.call_id].keep_alives >= 2)

    assert "No longer keeping call" in caplog.text
    assert graph.calls[first.call_id].keep_alives <= 1  # at most one before the second came


async def test_operation_reply_without_an_id(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    odd_server.routes[odd_server.token_path()] = OddReply(
        body=json.dumps({"access_token": "odd-token", "expires_in": 3599})
    )
    client = GraphClient(
        graph_session,
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        login_base=odd_server.base_url + "/login",
        graph_base=odd_server.base_url,
    )
    call_id = str(uuid.uuid4())
    odd_server.routes[f"/v1.0/communications/calls/{call_id}/subscribeToTone"] = OddReply(
        200, json.dumps({"status": "completed"})
    )

    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.subscribe_to_tone(call_id, "ctx")
    assert exc_info.value.message == "127.0.0.1 answered subscribeToTone without an operation ID"
