"""S-Series call outcomes through Home Assistant's real webhook.

Home Assistant's HTTP app is served on 127.0.0.1 and is the instance's internal URL; the
fake PBX (also on 127.0.0.1) posts the reports a real PBX sends to the URL the login
named. Forged reports come from 127.0.0.2, another loopback address: the webhook is for
the PBX's address only.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.voice_prompt.api.yeastar import KEEPALIVE_AFTER_IDLE
from custom_components.voice_prompt.backends import yeastar_reports as reports_module
from custom_components.voice_prompt.diagnostics import async_get_config_entry_diagnostics
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_WEBHOOK_ID, EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
from tests.conftest import play_prompt, serve_home_assistant
from tests.fakes.yeastar import V2_FIRMWARE_VERSION, FakeYeastarPBX
from tests.fakes.yeastar_reports import FORGED_SOURCE, PLAYED, REASONS

DOMAIN = "voice_prompt"


@pytest.fixture
async def ha_client(hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator) -> TestClient:
    """Home Assistant's HTTP app on 127.0.0.1:<free port>, the instance's internal URL."""
    return await serve_home_assistant(hass, hass_client_no_auth)


@pytest.fixture
async def reporting(
    hass: HomeAssistant, ha_client: TestClient, pbx: FakeYeastarPBX, config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The Yeastar entry, set up with an internal URL: its login asks for reports.

    The fake reports each call as played to the end, unless a test says otherwise.
    """
    pbx.reports.outcome = PLAYED
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry


def event_entity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return entity.entity_id


def fired(changes: list[Event], entity_id: str) -> list[dict[str, Any]]:
    """The events the entity fired, as their attributes (without the list of types)."""
    return [
        {str(k): v for k, v in change.data["new_state"].attributes.items() if k != "event_types"}
        for change in changes
        if change.data["entity_id"] == entity_id and change.data["new_state"] is not None
    ]


async def play_and_settle(
    hass: HomeAssistant, pbx: FakeYeastarPBX, entry: MockConfigEntry, **data: Any
) -> Any:
    response = await play_prompt(hass, entry, target="1000", prompt="hello111", **data)
    await pbx.reports.wait()
    await hass.async_block_till_done()
    return response


async def test_login_names_the_webhook(
    hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    """An entry made before reports existed gets a webhook id; the login names its URL."""
    webhook_id = reporting.data[CONF_WEBHOOK_ID]
    (login,) = pbx.calls("login")
    assert login.body["urltag"] == "1"
    assert login.body["url"].endswith(f"/api/webhook/{webhook_id}")
    assert not login.body["url"].startswith("http")  # the guide's form: host:port/path
    assert "outcome_events" in reporting.runtime_data.capabilities.names()
    assert "dtmf" not in reporting.runtime_data.capabilities.names()


async def test_played(hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry) -> None:
    """PlayPromptEnd: the waiting action, the event entity and the PBX all see it once."""
    entity_id = event_entity(hass, reporting)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_and_settle(hass, pbx, reporting, wait=True, timeout=10)

    (call,) = response["calls"]
    assert call["status"] == "played"
    assert call["prompt"] == "hello111"
    assert [(e["event_type"], e["target"], e["call_id"]) for e in fired(changes, entity_id)] == [
        ("played", "1000", call["call_id"])
    ]
    (delivery,) = pbx.reports.deliveries
    assert delivery.statuses == [200]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("486", "busy"),
        ("480", "no_answer"),
        ("487", "no_answer"),
        ("603", "no_answer"),  # Yeastar: "the call is timed out"
        ("404", "failed"),
        ("484", "failed"),
    ],
)
async def test_call_failed(
    hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry, code: str, status: str
) -> None:
    pbx.reports.outcome = code
    entity_id = event_entity(hass, reporting)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_and_settle(hass, pbx, reporting, wait=True, timeout=10)

    (call,) = response["calls"]
    assert (call["status"], call["reason"], call["code"]) == (status, REASONS[code], code)
    (event,) = fired(changes, entity_id)
    assert (event["event_type"], event["target"], event["reason"]) == (
        status,
        "1000",
        REASONS[code],
    )


async def test_without_wait_the_event_follows(
    hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    pbx.reports.outcome = "486"
    response = await play_and_settle(hass, pbx, reporting)
    assert response["calls"][0]["status"] == "placed"
    state = hass.states.get(event_entity(hass, reporting))
    assert state is not None
    assert state.attributes["event_type"] == "busy"
    outcome = reporting.runtime_data.outcomes.last(response["calls"][0]["call_id"])
    assert outcome is not None
    assert outcome.status == "busy"


async def test_replayed_report_acts_once(
    hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    """Each copy is answered 200 (or the PBX would repeat it); only the first acts."""
    pbx.reports.replays = 3
    entity_id = event_entity(hass, reporting)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_and_settle(hass, pbx, reporting, wait=True, timeout=10)

    assert response["calls"][0]["status"] == "played"
    (delivery,) = pbx.reports.deliveries
    assert delivery.statuses == [200] * 4
    assert [e["event_type"] for e in fired(changes, entity_id)] == ["played"]
    counts = reporting.runtime_data.reports.diagnostics()["counts"]
    assert counts == {"accepted_PlayPromptEnd": 1, "ignored_repeat": 3}


@pytest.mark.parametrize(("switch", "status"), [("forged", 403), ("malformed", 400)])
async def test_refused_reports_change_nothing(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    reporting: MockConfigEntry,
    switch: str,
    status: int,
) -> None:
    setattr(pbx.reports, switch, True)
    pbx.reports.attempts = 3
    entity_id = event_entity(hass, reporting)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_and_settle(hass, pbx, reporting, wait=True, timeout=1)

    (call,) = response["calls"]
    assert call["status"] == "placed"
    assert call["timed_out"] is True
    assert fired(changes, entity_id) == []
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.state == STATE_UNKNOWN
    assert reporting.runtime_data.outcomes.last(call["call_id"]) is None
    (delivery,) = pbx.reports.deliveries
    assert delivery.statuses == [status] * 3
    # Nothing reported in time: the repair that says so.
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"no_call_events_{reporting.entry_id}")
    reports = reporting.runtime_data.reports.diagnostics()
    if switch == "forged":
        assert reports["counts"] == {"refused_source": 3}
        assert reports["last_refused_source"] == FORGED_SOURCE
    else:
        assert reports["counts"] == {"refused_malformed": 3}


async def test_reports_not_acted_on_are_still_answered(
    hass: HomeAssistant, ha_client: TestClient, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    """Other kinds, other calls (placed on a phone), huge bodies: nothing acts."""
    entity_id = event_entity(hass, reporting)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    path = f"/api/webhook/{reporting.data[CONF_WEBHOOK_ID]}"
    for body, expected in (
        (b'{"action":"BootUp","sn":"369364835218"}', 200),
        (b'{"action":"ExtensionStatus","extension":"1000","status":"Ringing"}', 200),
        (b'{"action":"CallFailed","reason":"486 Busy Here","callid":"1.1"}', 200),
        (b'{"action":"PlayPromptEnd","callid":"1.1","prompt":' + b"x" * 20_000 + b"}", 413),
    ):
        response = await ha_client.post(path, data=body)
        assert response.status == expected
    await hass.async_block_till_done()
    assert fired(changes, entity_id) == []
    assert reporting.runtime_data.reports.diagnostics()["counts"] == {
        "ignored_kind": 2,
        "ignored_other_call": 1,
        "refused_too_large": 1,
    }


# c-ares answers "localhost" with ::1 as well, which the socket guard refuses before the
# client falls back to 127.0.0.1.
@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect:UserWarning")
async def test_a_pbx_by_name_is_heard_at_its_address(
    hass: HomeAssistant, ha_client: TestClient, pbx: FakeYeastarPBX, config_entry: MockConfigEntry
) -> None:
    """The entry's host is a name: reports are heard from what it resolves to."""
    pbx.reports.outcome = PLAYED
    hass.config_entries.async_update_entry(
        config_entry, data={**config_entry.data, "host": "localhost"}
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    reports = config_entry.runtime_data.reports.diagnostics()
    assert "127.0.0.1" in reports["pbx_addresses"]
    response = await play_and_settle(hass, pbx, config_entry, wait=True, timeout=10)
    assert response["calls"][0]["status"] == "played"


async def test_no_internal_url_keeps_placing(
    hass: HomeAssistant, pbx: FakeYeastarPBX, config_entry: MockConfigEntry
) -> None:
    """Home Assistant serves HTTPS itself and has no internal URL: no address to name.

    Nothing is asked of the PBX, and waiting is refused, as before reports existed.
    """
    assert await async_setup_component(hass, "http", {})
    assert hass.config.api is not None
    hass.config.api.use_ssl = True  # its own certificate: no plain-IP URL either
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    assert "url" not in pbx.calls("login")[0].body
    assert "outcome_events" not in config_entry.runtime_data.capabilities.names()
    with pytest.raises(ServiceValidationError) as raised:
        await play_prompt(hass, config_entry, target="1000", prompt="hello111", wait=True)
    assert raised.value.translation_key == "events_unavailable"
    assert str(raised.value) == (
        f"{config_entry.title} (Yeastar S-Series PBX) cannot use wait now: it hears no call "
        "events (Home Assistant has no internal URL (Settings → System → Network))"
    )
    # A field the PBX can never honour is named as such, whatever events do.
    with pytest.raises(ServiceValidationError) as raised:
        await play_prompt(hass, config_entry, target="1000", prompt="x", wait=True, loop=True)
    assert raised.value.translation_key == "fields_not_supported"
    diagnostics = await async_get_config_entry_diagnostics(hass, config_entry)
    assert diagnostics["event_reports"]["listening"] is False
    assert "internal URL" in diagnostics["event_reports"]["disabled_reason"]
    assert config_entry.data[CONF_WEBHOOK_ID] not in hass.data.get("webhook", {})


async def test_unload_stops_listening(
    hass: HomeAssistant, ha_client: TestClient, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    webhook_id = reporting.data[CONF_WEBHOOK_ID]
    assert webhook_id in hass.data["webhook"]
    diagnostics = await async_get_config_entry_diagnostics(hass, reporting)
    assert diagnostics["event_reports"]["listening"] is True
    assert webhook_id not in str(diagnostics)  # the id is a secret

    assert await hass.config_entries.async_unload(reporting.entry_id)
    assert reporting.state is ConfigEntryState.NOT_LOADED
    assert webhook_id not in hass.data["webhook"]
    # Loaded again: the same id, listening again.
    assert await hass.config_entries.async_setup(reporting.entry_id)
    await hass.async_block_till_done()
    assert reporting.data[CONF_WEBHOOK_ID] == webhook_id
    assert webhook_id in hass.data["webhook"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.5", "192.0.2.5"),
        ("::ffff:192.0.2.5", "192.0.2.5"),  # a dual-stack socket's view of an IPv4 peer
        ("fe80::1%eth0", "fe80::1"),
        ("", None),
        ("pbx.local", None),
    ],
)
def test_source_addresses_compare_as_addresses(text: str, expected: str | None) -> None:
    address = reports_module._address(text)
    assert (None if address is None else str(address)) == expected


async def test_heartbeat_follows_a_changed_internal_url(
    hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    """The next heartbeat tells the PBX where Home Assistant is now."""
    backend = reporting.runtime_data
    await hass.config.async_update(internal_url="http://192.0.2.50:8123")
    backend.client._last_used = time.monotonic() - KEEPALIVE_AFTER_IDLE  # idle: heartbeat due
    await backend._keepalive.async_refresh()

    (heartbeat,) = pbx.calls("heartbeat")
    webhook_id = reporting.data[CONF_WEBHOOK_ID]
    assert heartbeat.body["url"] == f"192.0.2.50:8123/api/webhook/{webhook_id}"
    assert pbx.reports.target is not None
    assert pbx.reports.target.address == f"http://192.0.2.50:8123/api/webhook/{webhook_id}"


async def test_a_pbx_pushing_events_over_tcp_gets_no_outcomes(
    hass: HomeAssistant, ha_client: TestClient, pbx: FakeYeastarPBX, config_entry: MockConfigEntry
) -> None:
    """API v2 set to push its events over a TCP connection: the webhook hears nothing."""
    pbx.firmware_version, pbx.transport = V2_FIRMWARE_VERSION, "TCP"
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.runtime_data.client.event_transport == "TCP"

    with pytest.raises(ServiceValidationError) as raised:
        await play_prompt(hass, config_entry, target="1000", prompt="hello111", escalate=True)

    assert raised.value.translation_key == "events_unavailable"
    assert "the PBX pushes its events over TCP" in str(raised.value)
    assert pbx.calls("call/playprompt") == []


async def test_escalation_goes_on_until_someone_hears_it(
    hass: HomeAssistant, pbx: FakeYeastarPBX, reporting: MockConfigEntry
) -> None:
    """No key on the S-Series: 1000 does not answer, 1001 is busy, 1010 hears the prompt."""
    pbx.reports.outcomes = {"1000": "480", "1001": "486"}

    response = await play_prompt(
        hass, reporting, target=["1000", "1001", "1010"], prompt="hello111", escalate=True
    )

    assert response["acknowledged_by"] == "1010"
    assert [(call["target"], call["status"]) for call in response["calls"]] == [
        ("1000", "no_answer"),
        ("1001", "busy"),
        ("1010", "played"),
    ]
    # One after another: each extension rang once the one before it had its outcome.
    assert [request.body["extid"] for request in pbx.calls("extension/playprompt")] == [
        "1000",
        "1001",
        "1010",
    ]
