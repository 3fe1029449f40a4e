"""``wait``, ``timeout`` and ``escalate`` of the action, on the fake Asterisk.

Asterisk is the backend with every outcome and key presses; what is tested here is
backend-neutral (the action, the outcome model, escalation), driven through real ARI
events from the fake over its websocket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.voice_prompt.backends.asterisk import CONF_RING_TIMEOUT
from custom_components.voice_prompt.const import DOMAIN, SUBENTRY_TARGET
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryDataWithId
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, EVENT_STATE_CHANGED, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from tests.asterisk_fixtures import asterisk_data
from tests.conftest import play_prompt
from tests.fakes.ari import FakeAsterisk
from tests.test_asterisk import (  # noqa: F401 - fixtures
    ENTITY_ID,
    _event_entity,
    _fired,
    entry,
    fake,
    fast_client,
    loaded,
)


@pytest.fixture
async def quick(hass: HomeAssistant, loaded: MockConfigEntry) -> MockConfigEntry:  # noqa: F811
    """The entry with a ring timeout of one second: unanswered calls end fast."""
    hass.config_entries.async_update_entry(loaded, options={CONF_RING_TIMEOUT: 1})
    return loaded


def _steps(response: dict[str, Any]) -> list[tuple[str, str]]:
    return [(call["target"], call["status"]) for call in response["calls"]]


async def test_without_wait_the_action_returns_placed_and_the_call_goes_on(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    loaded: MockConfigEntry,  # noqa: F811
) -> None:
    """Today's automations: the action ends once Asterisk accepted the call."""
    entity_id = _event_entity(hass, loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(hass, loaded, target="1000", prompt="hello-world")

    (call,) = response["calls"]
    assert (call["status"], call["endpoint"]) == ("placed", "PJSIP/1000")
    # The call goes on in the background: its end arrives as an event.
    await fake.wait_for(lambda: hass.states.get(entity_id).attributes.get("event_type") == "played")
    fired = [event["event_type"] for event in _fired(changes, entity_id)]
    assert fired[-1] == "played"
    assert fired.count("played") == 1


async def test_wait_reports_each_outcome(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    quick: MockConfigEntry,
) -> None:
    response = await play_prompt(
        hass, quick, target=["1000", "1003", "1004", "1005"], prompt="beep", wait=True
    )

    assert _steps(response) == [
        ("1000", "played"),
        ("1003", "busy"),
        ("1004", "no_answer"),
        ("1005", "rejected"),
    ]
    assert response["calls"][1]["reason"] == "User busy"


async def test_escalation_until_someone_acknowledges(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    quick: MockConfigEntry,
) -> None:
    """No answer, then answered without the key, then the key: the third acknowledged."""
    entity_id = _event_entity(hass, quick)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass,
        quick,
        target=["1004", "1000", "1001"],
        prompt="hello-world",
        acknowledge="5",
        escalate=True,
    )

    assert _steps(response) == [
        ("1004", "no_answer"),
        ("1000", "played"),
        ("1001", "acknowledged"),
    ]
    assert response["acknowledged_by"] == "1001"
    assert response["failed"] == []
    # One after another: each call began after the one before had ended.
    channels = list(fake.channels.values())
    assert [c.endpoint for c in channels] == ["PJSIP/1004", "PJSIP/1000", "PJSIP/1001"]
    await hass.async_block_till_done()
    finals = [
        (event["target"], event["event_type"])
        for event in _fired(changes, entity_id)
        if event["event_type"] not in ("ringing", "answered")
    ]
    assert finals == [("1004", "no_answer"), ("1000", "played"), ("1001", "acknowledged")]


async def test_escalation_without_a_key_stops_at_the_first_answer(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    quick: MockConfigEntry,
) -> None:
    response = await play_prompt(
        hass, quick, target=["1003", "1000", "1001"], prompt="beep", escalate=True
    )

    assert _steps(response) == [("1003", "busy"), ("1000", "played")]
    assert response["acknowledged_by"] == "1000"
    assert [c.endpoint for c in fake.channels.values()] == ["PJSIP/1003", "PJSIP/1000"]


async def test_escalation_nobody_confirms(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    quick: MockConfigEntry,
) -> None:
    """Every step is in the response; a target that cannot be called is a failure."""
    response = await play_prompt(
        hass,
        quick,
        target=["1002", "1003", "1000"],
        prompt="beep",
        acknowledge="5",
        escalate=True,
    )

    assert _steps(response) == [("1003", "busy"), ("1000", "played")]
    assert [failure["target"] for failure in response["failed"]] == ["1002"]
    assert response["acknowledged_by"] is None


async def test_escalation_goes_down_the_list_on_one_target_backends_too(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    quick: MockConfigEntry,
) -> None:
    """A list is refused only for backends with one target per call, and not when escalating."""
    response = await play_prompt(hass, quick, target=["1000"], prompt="beep", escalate=True)
    assert response["acknowledged_by"] == "1000"


async def test_cancelled_escalation_ends_its_call(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    loaded: MockConfigEntry,  # noqa: F811
) -> None:
    """The automation stopped mid-call: the call is hung up and reported as ended."""
    fake.sounds["long"] = 600.0
    entity_id = _event_entity(hass, loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    task = asyncio.create_task(
        play_prompt(
            hass, loaded, target=["1000", "1001"], prompt="long", acknowledge="9", escalate=True
        )
    )
    await fake.wait_for(lambda: any(c.state == "Up" for c in fake.channels.values()))

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (channel,) = fake.channels.values()  # the second target was never called
    await fake.wait_for(channel.ended)
    assert channel.hung_up_by == "client"
    await hass.async_block_till_done()
    last = _fired(changes, entity_id)[-1]
    assert (last["event_type"], last["reason"], last["hung_up"]) == (
        "ended",
        "Ended by Home Assistant",
        True,
    )


@pytest.mark.parametrize("how", ["unload", "stop"])
async def test_waiting_stops_when_the_entry_unloads_or_home_assistant_stops(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    loaded: MockConfigEntry,  # noqa: F811
    how: str,
) -> None:
    fake.sounds["long"] = 600.0
    task = asyncio.create_task(play_prompt(hass, loaded, target="1000", prompt="long", wait=True))
    await fake.wait_for(lambda: any(c.state == "Up" for c in fake.channels.values()))

    if how == "unload":
        assert await hass.config_entries.async_unload(loaded.entry_id)
        assert loaded.state is ConfigEntryState.NOT_LOADED
    else:
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    with pytest.raises(HomeAssistantError) as caught:
        await task

    assert caught.value.translation_key == "wait_stopped"
    assert "stopped waiting for its calls" in str(caught.value)
    await fake.wait_for(lambda: all(c.ended() for c in fake.channels.values()))


async def test_a_call_that_reports_nothing_times_out_with_a_repair(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    loaded: MockConfigEntry,  # noqa: F811
) -> None:
    """No event reaches Home Assistant: the status stays placed, a repair says why."""
    fake.phones["PJSIP/1000"].answer = "ring_forever"
    sent = fake._emit
    fake._emit = lambda *args, **kwargs: None  # type: ignore[method-assign]

    response = await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True, timeout=1)

    (call,) = response["calls"]
    assert (call["status"], call["timed_out"]) == ("placed", True)
    issue_id = f"no_call_events_{loaded.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {
        "entry": loaded.title,
        "backend": "Asterisk",
        "seconds": "1",
    }

    fake._emit = sent  # type: ignore[method-assign]
    fake.phones["PJSIP/1000"].answer = "auto"
    response = await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True)
    assert response["calls"][0]["status"] == "played"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_timeout_only_with_wait(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
    loaded: MockConfigEntry,  # noqa: F811
) -> None:
    with pytest.raises(ServiceValidationError) as caught:
        await play_prompt(hass, loaded, target="1000", prompt="beep", timeout=5)

    assert caught.value.translation_key == "timeout_without_wait"
    assert "add wait: true or escalate: true" in str(caught.value)
    assert fake.calls("originate") == []


async def test_last_call_sensor_of_a_named_target(
    hass: HomeAssistant,
    fake: FakeAsterisk,  # noqa: F811
) -> None:
    """A diagnostic sensor per named target shows how its latest call went, kept over events."""
    named = MockConfigEntry(
        domain=DOMAIN,
        title="Asterisk (127.0.0.1)",
        unique_id=ENTITY_ID,
        data=asterisk_data(fake.url, *next(iter(fake.users.items()))),
        options={CONF_RING_TIMEOUT: 1},
        subentries_data=[
            ConfigSubentryDataWithId(
                subentry_id="reception",
                subentry_type=SUBENTRY_TARGET,
                title="Reception phone",
                unique_id=None,
                data={"target": "1000"},
            )
        ],
    )
    named.add_to_hass(hass)
    assert await hass.config_entries.async_setup(named.entry_id)
    await hass.async_block_till_done()
    sensor = "sensor.reception_phone_last_call"
    assert hass.states.get(sensor).state == "unknown"

    await play_prompt(hass, named, target=["1000", "1003"], prompt="beep", wait=True)
    await hass.async_block_till_done()

    state = hass.states.get(sensor)
    assert state.state == "played"  # 1003 is no named target: it changes nothing here
    assert state.attributes["reason"] == "Normal Clearing"
    assert state.attributes["call_id"].startswith("vp-")
    assert state.attributes["options"][-1] == "ended"
    entity = er.async_get(hass).async_get(sensor)
    assert entity is not None
    assert entity.entity_category is EntityCategory.DIAGNOSTIC
