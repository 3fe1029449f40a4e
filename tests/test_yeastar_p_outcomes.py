"""P-Series outcomes through Home Assistant: the PBX's events reach the action and the entity.

The fake PBX (``tests/fakes/yeastar_p.py``) sends a real PBX's events over its event
WebSocket after each ``call/play_prompt``; which ones is chosen per test
(``fake_p.events.outcome``). Nothing is patched at the HTTP or WebSocket level.
"""

# ruff: noqa: F811 - the fixtures imported from tests.yeastar_p_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.voice_prompt.api.yeastar_p_events import YeastarPSocketState
from custom_components.voice_prompt.backends.yeastar_p import YeastarPBackend
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from tests.conftest import play_prompt
from tests.fakes.yeastar_p import FakeYeastarP
from tests.fakes.yeastar_p_events import GARBAGE_FRAMES
from tests.test_yeastar_p_calls import REPORTS
from tests.yeastar_p_fixtures import (  # noqa: F401 - fixtures
    P_CALL_ID,
    add_p_entry,
    fake_p,
    p_entry,
    p_loaded,
)

EXTERNAL = "+4930123456"


def _backend(entry: MockConfigEntry) -> YeastarPBackend:
    backend = entry.runtime_data
    assert isinstance(backend, YeastarPBackend)
    return backend


def _event_entity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    (entity,) = [
        entity
        for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if entity.domain == "event"
    ]
    return entity.entity_id


def _fired(changes: list[Event[Any]], entity_id: str) -> list[dict[str, Any]]:
    """The attributes of each event the entity fired, in order."""
    return [
        dict(change.data["new_state"].attributes)
        for change in changes
        if change.data["entity_id"] == entity_id and change.data["new_state"] is not None
    ]


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("outcome", "target", "status", "reason", "fired"),
    [
        ("played", "1000", "played", None, ["ringing", "answered", "played", "ended"]),
        ("hung_up", "1000", "answered", None, ["ringing", "answered", "ended"]),
        ("no_answer", "1001", "no_answer", "480 Temporarily Unavailable", ["ringing", "no_answer"]),
        ("busy", EXTERNAL, "busy", "486 Busy here", ["busy"]),
        ("rejected", "6300", "rejected", "User Busy", ["ringing", "rejected"]),
        ("failed", EXTERNAL, "failed", "Line Unreachable", ["ringing", "failed"]),
    ],
)
async def test_outcome_reaches_the_action_and_the_entity(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    outcome: str,
    target: str,
    status: str,
    reason: str | None,
    fired: list[str],
) -> None:
    """``wait: true`` returns each call's outcome; the event entity fires every step."""
    fake_p.events.outcome = outcome
    entity_id = _event_entity(hass, p_loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(hass, p_loaded, target=target, prompt="doorbell", wait=True)
    await hass.async_block_till_done()

    (call,) = response["calls"]
    assert call["target"] == target
    assert call["call_id"] == P_CALL_ID
    assert call["status"] == status
    assert call.get("reason") == reason
    assert call["pbx_call_id"] in {event["msg"].get("call_id") for event in fake_p.events.sent}
    assert response["failed"] == []
    events = _fired(changes, entity_id)
    assert [event["event_type"] for event in events] == fired
    assert {event["call_id"] for event in events} == {call["call_id"]}
    assert {event["target"] for event in events} == {target}


async def test_acknowledged_by_the_key(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """``acknowledge: "1"`` and the callee presses 1: acknowledged, with the digit."""
    fake_p.events.outcome = "dtmf"
    fake_p.events.dtmf_digit = "1"
    fake_p.events.prompt_seconds = 2.0  # the key comes early in the prompt
    entity_id = _event_entity(hass, p_loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass, p_loaded, target="1000", prompt="doorbell", acknowledge="1", wait=True
    )
    await hass.async_block_till_done()

    (call,) = response["calls"]
    assert call["status"] == "acknowledged"
    assert call["digit"] == "1"
    assert call["digits"] == "1"
    # Confirmed: the call is ended there, the rest of the prompt does not play.
    assert [event["event_type"] for event in _fired(changes, entity_id)] == [
        "ringing",
        "answered",
        "acknowledged",
        "ended",
    ]
    (hangup,) = fake_p.calls("call/hangup")
    assert fake_p.events.hung_up == [hangup.body["channel_id"]]
    assert hangup.body["channel_id"].startswith("PJSIP/1000-")


async def test_hang_up_of_a_call_that_ended_meanwhile(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """A channel the PBX no longer has (70130) is no error; a call not seen, nothing sent."""
    backend = _backend(p_loaded)
    fake_p.events.outcome = "silent"
    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert not await backend.async_hang_up(response["calls"][0]["call_id"])
    assert fake_p.calls("call/hangup") == []
    assert not await backend.client.hangup("PJSIP/1000-00000099")
    (refused,) = fake_p.calls("call/hangup")
    assert refused.reply is not None
    assert refused.reply["errcode"] == 70130


async def test_another_key_does_not_acknowledge(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """A key other than the one asked for: the prompts played, the key is reported."""
    fake_p.events.outcome = "dtmf"
    fake_p.events.dtmf_digit = "2"
    response = await play_prompt(
        hass, p_loaded, target="1000", prompt="doorbell", acknowledge="1", wait=True
    )
    (call,) = response["calls"]
    assert call["status"] == "played"
    assert call["digits"] == "2"


async def test_several_targets_each_get_their_outcome(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """One action, three numbers, three different outcomes: each matched by its number."""
    fake_p.events.outcomes = {"1000": "played", "1001": "busy", EXTERNAL: "no_answer"}
    response = await play_prompt(
        hass, p_loaded, target=["1000", "1001", EXTERNAL], prompt="doorbell+alarm", wait=True
    )
    assert {call["target"]: call["status"] for call in response["calls"]} == {
        "1000": "played",
        "1001": "busy",
        EXTERNAL: "no_answer",
    }
    assert len({call["call_id"] for call in response["calls"]}) == 3


async def test_escalation_stops_at_the_one_who_acknowledges(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """``escalate``: 1000 does not answer, 1001 hears it without the key, 1002 presses it."""
    fake_p.events.outcomes = {"1000": "no_answer", "1001": "played", "1002": "dtmf"}
    response = await play_prompt(
        hass,
        p_loaded,
        target=["1000", "1001", "1002"],
        prompt="doorbell",
        acknowledge="1",
        escalate=True,
    )
    assert response["acknowledged_by"] == "1002"
    assert [call["status"] for call in response["calls"]] == [
        "no_answer",
        "played",
        "acknowledged",
    ]
    assert [request.body["number"] for request in fake_p.calls("call/play_prompt")] == [
        "1000",
        "1001",
        "1002",
    ]


async def test_garbage_frames_change_nothing(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """Frames that are no events before every event: the same outcome and entity events."""
    fake_p.events.garbage = True
    entity_id = _event_entity(hass, p_loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell", wait=True)
    await hass.async_block_till_done()

    assert response["calls"][0]["status"] == "played"
    assert [event["event_type"] for event in _fired(changes, entity_id)] == [
        "ringing",
        "answered",
        "played",
        "ended",
    ]
    events = _backend(p_loaded).events
    await fake_p.events.calls_done()
    await _until(lambda: events.received == 6)  # the last (30008 Idle) follows the outcome
    assert events.bad_frames == 6 * len(GARBAGE_FRAMES)
    assert events.subscribed
    assert events.reconnects == 0


async def test_drop_mid_call_and_reconnect(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """The PBX drops the socket after the answer; it reconnects, and the outcome arrives."""
    fake_p.events.drop_mid_call = True
    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell", wait=True)
    assert response["calls"][0]["status"] == "played"
    events = _backend(p_loaded).events
    assert events.reconnects == 1
    assert events.diagnostics()["reconnects"] == 1
    assert fake_p.events.subscriptions == 2


async def test_outcomes_are_offered_only_while_subscribed(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """Without the event socket, ``wait`` is refused before anything is sent; back, allowed."""
    backend = _backend(p_loaded)
    assert backend.capabilities.outcome_events
    assert backend.capabilities.dtmf
    fake_p.events.refuse_status = 503
    await fake_p.events.drop_all()
    await _until(lambda: backend.events.state is YeastarPSocketState.RECONNECTING)
    assert not backend.capabilities.outcome_events

    with pytest.raises(ServiceValidationError) as refused:
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell", wait=True)
    assert refused.value.translation_key == "events_unavailable"
    assert str(refused.value).startswith(
        f"{p_loaded.title} (Yeastar P-Series PBX) cannot use wait now: it hears no call "
        "events (the PBX's event socket is reconnecting, last error: "
    )
    assert fake_p.calls("call/play_prompt") == []
    # Without wait the call is placed (and still gets a call id).
    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert response["calls"][0]["status"] == "placed"

    fake_p.events.refuse_status = None
    await _until(lambda: backend.events.subscribed)
    assert backend.capabilities.outcome_events


async def test_setup_without_the_event_socket(hass: HomeAssistant, fake_p: FakeYeastarP) -> None:
    """A PBX that refuses the socket still sets up; outcomes come once it subscribes."""
    fake_p.events.refuse_status = 404
    entry = add_p_entry(hass, fake_p)
    with patch("custom_components.voice_prompt.backends.yeastar_p.EVENTS_WAIT", 0.2):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    backend = _backend(entry)
    assert not backend.capabilities.outcome_events
    assert "HTTP 404" in str(backend.diagnostics()["events"]["last_error"])

    fake_p.events.refuse_status = None
    await _until(lambda: backend.events.subscribed)
    assert backend.capabilities.outcome_events
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_closes_the_socket(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """Unloading ends the subscription (and the token is revoked)."""
    assert fake_p.events.connected == 1
    backend = _backend(p_loaded)
    assert await hass.config_entries.async_unload(p_loaded.entry_id)
    await _until(lambda: fake_p.events.connected == 0)
    assert backend.events.state is YeastarPSocketState.STOPPED
    assert fake_p.valid_tokens() == []


async def test_events_of_other_calls_are_ignored(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """A call Home Assistant did not place fires nothing on the entity."""
    entity_id = _event_entity(hass, p_loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    # The fake plays the events of a call to 1003 that no action of this entry placed.
    fake_p.events.play("1003", ["doorbell"], 1, group=False)
    await fake_p.events.calls_done()
    await _until(lambda: _backend(p_loaded).events.received >= 5)
    await hass.async_block_till_done()
    assert _fired(changes, entity_id) == []


async def test_hang_up_refused_after_the_key(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The PBX refuses the hang-up: logged; the call plays on and stays acknowledged."""
    fake_p.events.outcome = "dtmf"
    fake_p.fail_next["call/hangup"] = [-2]
    response = await play_prompt(
        hass, p_loaded, target="1000", prompt="doorbell", acknowledge="1", wait=True
    )
    assert response["calls"][0]["status"] == "acknowledged"
    assert "hanging up a call failed" in caplog.text
    assert fake_p.events.hung_up == []


async def test_any_event_payloads_change_nothing_but_our_calls(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """Hypothesis-drawn reports over the real socket: no exception, no reconnect, and only
    the entry's own calls reach the entity; a call afterwards still gets its outcome."""
    reports: list[dict[str, Any]] = []

    @settings(max_examples=150, database=None, deadline=None)
    @given(batch=REPORTS)
    def collect(batch: list[dict[str, Any]]) -> None:
        reports.extend(batch)

    collect()
    fake_p.events.outcome = "silent"
    waiting = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    ours = {waiting["calls"][0]["call_id"]}
    entity_id = _event_entity(hass, p_loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    events = _backend(p_loaded).events
    for report in reports:
        await fake_p.events.inject(json.dumps(report))
    await fake_p.events.inject(json.dumps({"type": 30011, "msg": {"call_id": "end"}}))
    await _until(lambda: events.received + events.bad_frames >= len(reports) + 1)
    await hass.async_block_till_done()

    assert events.subscribed
    assert events.reconnects == 0
    assert {event["call_id"] for event in _fired(changes, entity_id)} <= ours
    fake_p.events.outcome = "played"
    response = await play_prompt(hass, p_loaded, target="1001", prompt="doorbell", wait=True)
    assert response["calls"][0]["status"] == "played"
