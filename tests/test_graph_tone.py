"""Teams: the acknowledge key, through Home Assistant's real webhook, and keepAlive.

The fake Graph sends signed ``toneInfo`` notifications to the entry's webhook on 127.0.0.1 as
Microsoft would once a call is subscribed to tones. keepAlive's 15 minutes pass with
``async_fire_time_changed``, which runs the timers due by then.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.voice_prompt.api.graph import KEEP_ALIVE_INTERVAL
from custom_components.voice_prompt.backends import CallEvent, CallStatus
from custom_components.voice_prompt.const import DOMAIN, SIGNAL_CALL_EVENT
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.util import dt as dt_util
from tests.conftest import play_prompt
from tests.fakes.graph import FakeGraph
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    MEDIA,
    UNIQUE_ID,
    USER_ID,
    WEBHOOK_ID,
    graph,
    graph_endpoints,
    graph_entry,
    graph_http,
    graph_loaded,
    wait_for,
)

WEBHOOK_PATH = f"/api/webhook/{WEBHOOK_ID}"


def _fired(hass: HomeAssistant, changes: list[Event]) -> list[dict[str, Any]]:
    """What the entry's event entity fired: its event type and what came with it."""
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{UNIQUE_ID}_calls")
    return [
        {
            str(key): value
            for key, value in e.data["new_state"].attributes.items()
            if key not in ("event_types", "friendly_name")
        }
        for e in changes
        if e.data["entity_id"] == entity_id
        and e.data["new_state"] is not None
        and e.data["new_state"].state != STATE_UNKNOWN
        and "event_type" in e.data["new_state"].attributes
    ]


def _types(hass: HomeAssistant, changes: list[Event]) -> list[str]:
    return [str(fired["event_type"]) for fired in _fired(hass, changes)]


@pytest.fixture
def reported(hass: HomeAssistant, graph_loaded: MockConfigEntry) -> list[CallEvent]:
    """Every CallEvent the backend reported (what the waiting action hears)."""
    events: list[CallEvent] = []
    async_dispatcher_connect(hass, SIGNAL_CALL_EVENT.format(graph_loaded.entry_id), events.append)
    return events


async def _subscribed(graph: FakeGraph) -> str:
    await wait_for(lambda: any(call.tones_subscribed for call in graph.calls.values()))
    await wait_for(lambda: graph.calls_to("POST", "/playPrompt"))
    (call_id,) = graph.calls
    return call_id


async def test_the_key_acknowledges_and_another_key_does_not(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    reported: list[CallEvent],
) -> None:
    """Key 2 does nothing; key 1 stops the prompts, hangs up, and says acknowledged."""
    graph.prompt_seconds = 30.0  # still playing when the keys are pressed
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    action = asyncio.create_task(  # not a task of hass: blocking would wait for it
        play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], acknowledge="1")
    )
    call_id = await _subscribed(graph)

    assert await graph.press(call_id, "2") == 202  # the webhook acted before answering
    await asyncio.sleep(0.1)
    assert not action.done()
    assert await graph.press(call_id, "1") == 202
    response = await asyncio.wait_for(action, 5)

    (call,) = response["calls"]
    assert call["status"] == "acknowledged"
    assert call["digit"] == "1"
    assert call["call_id"] == call_id
    assert call["hung_up"] is True
    assert response["failed"] == []
    await wait_for(lambda: graph.calls[call_id].state == "terminated")
    await wait_for(lambda: _types(hass, changes)[-1:] == ["ended"])
    assert _types(hass, changes) == ["answered", "acknowledged", "ended"]
    acknowledged = _fired(hass, changes)[1]
    assert acknowledged["call_id"] == call_id
    assert acknowledged["digit"] == "1"
    ack = next(e for e in reported if e.status is CallStatus.ACKNOWLEDGED)
    assert (ack.call_id, dict(ack.extras), ack.final) == (call_id, {"digit": "1"}, True)
    assert ack.ends_call


async def test_without_the_key_the_call_plays_to_its_end(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass, graph_loaded, target=USER_ID, prompt=[MEDIA], acknowledge="#"
    )

    assert response["calls"][0]["status"] == "played"
    assert "digit" not in response["calls"][0]
    await wait_for(lambda: _types(hass, changes)[-1:] == ["ended"])
    assert _types(hass, changes) == ["answered", "played", "ended"]


async def test_a_replayed_key_acts_once(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    reported: list[CallEvent],
) -> None:
    """A loop kept up: the key stops the media once; copies of its notification do nothing."""
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    response = await play_prompt(
        hass,
        graph_loaded,
        target=USER_ID,
        prompt=[MEDIA],
        acknowledge="*",
        loop=True,
        hang_up=False,
    )
    call_id = response["calls"][0]["call_id"]
    assert response["calls"][0]["status"] == "answered"  # the loop plays on

    assert await graph.press(call_id, "*") == 202
    await wait_for(lambda: graph.calls_to("POST", "/cancelMediaProcessing"))
    (pressed,) = [d for d in graph.deliveries if b"toneInfo" in d.body]
    assert await graph.replay(pressed, 10) == [202] * 10
    await hass.async_block_till_done()

    assert _types(hass, changes) == ["answered", "acknowledged"]  # no "failed" for the stop
    ack = next(e for e in reported if e.status is CallStatus.ACKNOWLEDGED)
    assert (ack.final, ack.ends_call) == (False, False)  # the call stays up
    assert len(graph.calls_to("POST", "/cancelMediaProcessing")) == 1
    assert graph.calls[call_id].state == "established"
    notifications = graph_loaded.runtime_data.diagnostics()["notifications"]
    assert notifications["ignored"]["duplicate"] == 10


async def test_a_forged_key_press_changes_nothing(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """A toneInfo under a token not signed by Microsoft, or for a call not ours: nothing."""
    graph.prompt_seconds = 30.0
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    action = asyncio.create_task(  # not a task of hass: blocking would wait for it
        play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], acknowledge="1")
    )
    call_id = await _subscribed(graph)
    url = graph.callback_url(call_id)

    def body(call: str) -> bytes:
        item = {
            "changeType": "updated",
            "resourceUrl": f"/communications/calls/{call}",
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "established",
                "toneInfo": {"sequenceId": 1, "tone": "tone1"},
            },
        }
        return json.dumps({"value": [item]}).encode()

    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await graph.deliver(url, body(call_id), token=graph.make_jwt(key=forger)) == 401
    assert await graph.deliver(url, body(call_id), token="") == 401
    other = "0b1a2c3d-0000-4000-8000-000000000001"
    assert await graph.deliver(url, body(other)) == 202  # signed, but not our call
    await asyncio.sleep(0.1)

    assert not action.done()
    assert _types(hass, changes) == ["answered"]
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls_to("POST", "/cancelMediaProcessing") == []
    notifications = graph_loaded.runtime_data.diagnostics()["notifications"]
    assert notifications["refused"]["unauthorized"] == 2
    assert notifications["held"] == 1  # the other call's news, until it is known or old

    assert await graph.press(call_id, "1") == 202  # the real press still counts
    response = await asyncio.wait_for(action, 5)
    assert response["calls"][0]["status"] == "acknowledged"


async def test_a_key_that_is_none_is_refused_before_calling(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    before = len(graph.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], acknowledge="x")

    assert exc_info.value.translation_key == "invalid_input"
    assert "x is not a key (0-9, *, #, A-D)" in str(exc_info.value)
    assert len(graph.requests) == before


def _later(seconds: float) -> datetime:
    return dt_util.utcnow() + timedelta(seconds=seconds)


async def _quiet(hass: HomeAssistant) -> None:
    """Let whatever a fired timer started run (no request is left on its way)."""
    await hass.async_block_till_done(wait_background_tasks=False)
    for _ in range(200):
        await asyncio.sleep(0)


async def test_a_held_call_is_kept_alive_every_15_minutes(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """A loop held up: keepAlive every 15 minutes until the callee hangs up, then none.

    Time is moved with async_fire_time_changed: it runs the timers due by then.
    """
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], loop=True)
    call = graph.calls[response["calls"][0]["call_id"]]
    assert KEEP_ALIVE_INTERVAL == 15 * 60

    async_fire_time_changed(hass, _later(KEEP_ALIVE_INTERVAL - 60))
    await _quiet(hass)
    assert call.keep_alives == 0
    for count in (1, 2, 3):  # 15, 30, 45 minutes: past Graph's 45-minute limit
        async_fire_time_changed(hass, _later(KEEP_ALIVE_INTERVAL))
        await wait_for(lambda count=count: call.keep_alives == count)
    assert [r.reply_status for r in graph.calls_to("POST", f"/{call.id}/keepAlive")] == [200] * 3

    assert await graph.hang_up(call.id) == 202
    await _quiet(hass)
    async_fire_time_changed(hass, _later(KEEP_ALIVE_INTERVAL * 2))
    await _quiet(hass)
    assert call.keep_alives == 3
    assert len(graph.calls_to("POST", "/keepAlive")) == 3


async def test_unloading_stops_keeping_calls_alive(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)

    assert await hass.config_entries.async_unload(graph_loaded.entry_id)
    async_fire_time_changed(hass, _later(KEEP_ALIVE_INTERVAL * 2))
    await _quiet(hass)
    assert graph.calls_to("POST", "/keepAlive") == []


async def test_stopping_home_assistant_stops_keeping_calls_alive(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, _later(KEEP_ALIVE_INTERVAL * 2))
    await _quiet(hass)
    assert graph.calls_to("POST", "/keepAlive") == []


SECOND_USER = "0b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"
THIRD_USER = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def _user_of(graph: FakeGraph, call_id: str) -> str:
    return str(graph.calls[call_id].targets[0]["identity"]["user"]["id"])


async def test_escalation_down_three_teams_users(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    reported: list[CallEvent],
) -> None:
    """The first does not answer, the second hears it all without the key, the third confirms.

    Teams calls one user per action, yet an escalation goes down a list of them.
    """
    graph.unanswered_users = {USER_ID}
    graph.prompt_seconds = 1.0
    action = asyncio.create_task(
        play_prompt(
            hass,
            graph_loaded,
            target=[USER_ID, SECOND_USER, THIRD_USER],
            prompt=[MEDIA],
            acknowledge="1",
            escalate=True,
            timeout=10,
        )
    )
    await wait_for(lambda: THIRD_USER in [_user_of(graph, c) for c in graph.calls])
    third = next(c for c in graph.calls if _user_of(graph, c) == THIRD_USER)
    await wait_for(lambda: graph.calls[third].tones_subscribed)
    assert await graph.press(third, "1") == 202
    response = await asyncio.wait_for(action, 10)

    assert response["acknowledged_by"] == THIRD_USER
    assert [(call["target"], call["status"]) for call in response["calls"]] == [
        (SECOND_USER, "played"),
        (THIRD_USER, "acknowledged"),
    ]
    (failure,) = response["failed"]
    assert failure["target"] == USER_ID
    assert "not answered" in failure["error"]
    # One call after the other: each began once the one before it had ended.
    assert [_user_of(graph, call_id) for call_id in graph.calls] == [
        USER_ID,
        SECOND_USER,
        THIRD_USER,
    ]
    acknowledged = [e for e in reported if e.status is CallStatus.ACKNOWLEDGED]
    assert [(e.target, e.call_id) for e in acknowledged] == [(THIRD_USER, third)]
    assert {e.target for e in reported} == {USER_ID, SECOND_USER, THIRD_USER}


async def test_escalation_stops_at_a_target_that_is_no_teams_user(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """The caller's mistake is not a target that failed: the action says so, nothing rings."""
    with pytest.raises(ServiceValidationError) as caught:
        await play_prompt(
            hass,
            graph_loaded,
            target=["reception", USER_ID],
            prompt=[MEDIA],
            acknowledge="1",
            escalate=True,
        )

    assert "reception is neither a Teams user" in str(caught.value)
    assert graph.calls == {}
