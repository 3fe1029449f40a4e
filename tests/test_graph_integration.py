"""A Microsoft Teams entry in Home Assistant, end to end against the fake Graph.

Home Assistant's HTTP app listens on a real 127.0.0.1 port and the fake delivers its signed
notifications to the entry's webhook there, as Microsoft would to the external URL.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import json
import logging
from typing import Any
import uuid

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.voice_prompt.backends import CallStatus, graph as graph_backend
from custom_components.voice_prompt.backends.graph import (
    CONF_APPLICATION_INSTANCE_ID,
    CONF_HANG_UP,
    GraphEndpoints,
    TeamsBackend,
)
from custom_components.voice_prompt.const import DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_CLIENT_SECRET,
    CONF_WEBHOOK_ID,
    EVENT_STATE_CHANGED,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from tests.conftest import entry_device, play_prompt, reauth_flows, webhook_registration
from tests.fakes.graph import FakeGraph
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    CLIENT_ID,
    CLIENT_SECRET,
    EXTERNAL_URL,
    INSTANCE_ID,
    MEDIA,
    TENANT_ID,
    TITLE,
    UNIQUE_ID,
    USER_ID,
    WEBHOOK_ID,
    graph,
    graph_closed_port,
    graph_endpoints,
    graph_entry,
    graph_http,
    graph_loaded,
    wait_for,
)

LOCAL_MEDIA = "/local/chime.wav"
CALLBACK = f"{EXTERNAL_URL}/api/webhook/{WEBHOOK_ID}"
WEBHOOK_PATH = f"/api/webhook/{WEBHOOK_ID}"
CALLS = "/graph/v1.0/communications/calls"
# The event types of the entity: the outcome statuses of the design, in its order.
EVENT_TYPES = [
    "placed",
    "ringing",
    "answered",
    "played",
    "acknowledged",
    "no_answer",
    "busy",
    "rejected",
    "failed",
    "ended",
]
# Attributes every state of the event entity has; the snapshots keep what a firing adds.
_STATIC_ATTRIBUTES = ("event_types", "friendly_name")


def _entity_id(hass: HomeAssistant) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{UNIQUE_ID}_calls")
    assert entity_id is not None
    return entity_id


def _state(hass: HomeAssistant) -> State:
    state = hass.states.get(_entity_id(hass))
    assert state is not None
    return state


def _fired(hass: HomeAssistant, events: list[Event]) -> list[dict[str, Any]]:
    """What the event entity carried each time it fired (without its static attributes).

    Keys are plain strings (Home Assistant 2026 writes ``event_type`` as an enum member).
    """
    entity_id = _entity_id(hass)
    return [
        {
            str(key): value
            for key, value in e.data["new_state"].attributes.items()
            if key not in _STATIC_ATTRIBUTES
        }
        for e in events
        if e.data["entity_id"] == entity_id
        and e.data["new_state"] is not None
        and e.data["new_state"].state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)
    ]


def _named(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` with the run's random ids replaced by names, for stable snapshots."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, Mapping):
        return {key: _named(item, names) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_named(item, names) for item in value]
    return value


def _resource_id(url: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, url))


def _deliveries(graph: FakeGraph) -> list[tuple[str, int, str]]:
    """(resourceUrl, webhook status, state or status) of every notification delivered."""
    rows = []
    for url, status, payload in graph.notifications:
        assert url.endswith(WEBHOOK_PATH)
        item = payload["value"][0]
        data = item["resourceData"]
        rows.append((item["resourceUrl"], status, data.get("state") or data.get("status")))
    return rows


def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    """The entry's "needs an external HTTPS URL" repair issue, if it is raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, f"external_url_{entry.entry_id}")


def _assert_external_url_issue(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    issue = _issue(hass, entry)
    assert issue is not None
    assert issue.translation_key == "external_url_required"
    assert issue.translation_placeholders == {"entry": TITLE}
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.is_fixable is False


# --------------------------------------------------------------------------- setup


async def test_setup_and_unload(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    entry = graph_loaded
    assert entry.state is ConfigEntryState.LOADED
    backend = entry.runtime_data
    assert isinstance(backend, TeamsBackend)
    assert graph.token_requests == 1  # the setup proved the app's credentials
    assert backend.client.diagnostics()["has_token"] is True
    hook = webhook_registration(hass, WEBHOOK_ID)
    assert hook["domain"] == DOMAIN
    assert hook["name"] == f"{TITLE} notifications"
    assert hook["local_only"] is False
    assert hook["allowed_methods"] == {"POST"}
    assert _issue(hass, entry) is None  # the external HTTPS URL is set

    state = _state(hass)
    assert state.state == STATE_UNKNOWN
    assert state.attributes["event_types"] == EVENT_TYPES == [str(s) for s in CallStatus]
    assert state.attributes["friendly_name"] == f"{TITLE} Calls"
    device = entry_device(hass, entry)
    assert device.identifiers == {(DOMAIN, UNIQUE_ID)}
    assert device.manufacturer == "Microsoft"
    assert device.model == "Teams calling bot (Graph cloud communications)"
    assert device.entry_type is dr.DeviceEntryType.SERVICE
    assert device.name == TITLE
    assert er.async_get(hass).async_get(_entity_id(hass)).device_id == device.id

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert WEBHOOK_ID not in hass.data["webhook"]
    assert _state(hass).state == STATE_UNAVAILABLE
    assert graph.token_requests == 1  # there is no logout at Microsoft


async def test_unload_keeps_the_client_when_the_platform_refuses(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A platform that cannot unload leaves the entry loaded, webhook and all."""

    async def refuse(*_: Any) -> bool:
        return False

    monkeypatch.setattr(hass.config_entries, "async_unload_platforms", refuse)
    assert not await hass.config_entries.async_unload(graph_loaded.entry_id)
    assert graph_loaded.state is ConfigEntryState.FAILED_UNLOAD
    assert WEBHOOK_ID in hass.data["webhook"]
    await graph_loaded.runtime_data.async_close()  # tidy up for teardown
    assert WEBHOOK_ID not in hass.data["webhook"]


async def test_setup_with_a_bad_secret_asks_for_reauth(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    graph.client_secret = "replaced-at-microsoft"

    assert not await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.SETUP_ERROR
    assert graph_entry.error_reason_translation_key == "invalid_auth"
    assert graph_entry.error_reason_translation_placeholders == {
        "entry": TITLE,
        "detail": "Microsoft Entra ID refused the client secret (use the secret's value, not "
        "its ID)",
    }
    assert len(reauth_flows(hass, graph_entry)) == 1
    assert WEBHOOK_ID not in hass.data.get("webhook", {})
    assert graph.token_requests == 1  # no retry loop


@pytest.mark.parametrize(
    ("code", "key", "detail"),
    [
        (
            "7000222",
            "secret_expired",
            f"The client secret of application {CLIENT_ID} has expired; create a new one",
        ),
        ("90002", "tenant_not_found", f"Microsoft Entra ID does not know tenant {TENANT_ID}"),
        (
            "700016",
            "invalid_auth",
            f"Microsoft Entra ID does not know application {CLIENT_ID} in tenant {TENANT_ID}",
        ),
    ],
)
async def test_setup_token_errors(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_entry: MockConfigEntry,
    code: str,
    key: str,
    detail: str,
) -> None:
    graph.token_error = code

    await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.SETUP_ERROR
    assert graph_entry.error_reason_translation_key == key
    assert graph_entry.error_reason_translation_placeholders == {"entry": TITLE, "detail": detail}
    assert len(reauth_flows(hass, graph_entry)) == 1
    assert graph.token_requests == 1


async def test_setup_unreachable_retries(
    hass: HomeAssistant,
    graph_entry: MockConfigEntry,
    graph_closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        graph_backend,
        "GRAPH_ENDPOINTS",
        GraphEndpoints(login_base=f"http://127.0.0.1:{graph_closed_port}/login"),
    )

    await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.SETUP_RETRY
    assert graph_entry.error_reason_translation_key == "cannot_connect"
    placeholders = graph_entry.error_reason_translation_placeholders
    assert placeholders["entry"] == TITLE
    assert placeholders["detail"].startswith("Cannot connect to 127.0.0.1")
    assert reauth_flows(hass, graph_entry) == []
    assert WEBHOOK_ID not in hass.data.get("webhook", {})


# -------------------------------------------------------------------- the action


async def test_place_play_hang_up(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    """The whole path: call, established (via HA's webhook), play, completion, hang up."""
    caplog.set_level(logging.DEBUG)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA, LOCAL_MEDIA])

    # The call: callback and media point at the external URL.
    (create,) = graph.calls_to("POST", CALLS)
    assert create.reply_status == 201
    body = create.body
    assert body["callbackUri"] == CALLBACK
    assert body["targets"][0]["identity"]["user"]["id"] == USER_ID
    assert "source" not in body
    assert body["tenantId"] == TENANT_ID
    local_url = f"{EXTERNAL_URL}{LOCAL_MEDIA}"
    assert body["mediaConfig"]["preFetchMedia"] == [
        {"@odata.type": "#microsoft.graph.mediaInfo", "uri": uri, "resourceId": _resource_id(uri)}
        for uri in (MEDIA, local_url)
    ]
    (call,) = response["calls"]
    call_id = call["call_id"]
    assert graph.calls[call_id].callback_uri == CALLBACK

    # playPrompt with the same media, after the call was established.
    (play,) = graph.calls_to("POST", f"/calls/{call_id}/playPrompt")
    assert play.path == f"{CALLS}/{call_id}/playPrompt"
    assert play.reply_status == 200
    client_context = play.body["clientContext"]
    assert uuid.UUID(client_context)
    assert [p["mediaInfo"]["uri"] for p in play.body["prompts"]] == [MEDIA, local_url]
    assert "loop" not in play.body

    # Hung up at the end.
    (delete,) = graph.calls_to("DELETE", f"/calls/{call_id}")
    assert delete.reply_status == 204
    assert graph.calls[call_id].state == "terminated"

    (operation_id,) = graph.calls[call_id].operations
    names = {call_id: "<call_id>", operation_id: "<operation_id>", client_context: "<context>"}
    assert _named(response, names) == snapshot(name="response")
    assert response == {
        "calls": [
            {
                "target": USER_ID,
                "call_id": call_id,
                "status": "played",
                "operation_id": operation_id,
                "client_context": client_context,
                "hung_up": True,
                "result_code": 200,
                "result_subcode": 0,
            }
        ],
        "failed": [],
    }

    # Every notification went through HA's webhook and was accepted.
    await wait_for(lambda: len(graph.notifications) == 3)
    assert _deliveries(graph) == [
        (f"/communications/calls/{call_id}", 202, "established"),
        (f"/communications/calls/{call_id}/operations/{operation_id}", 202, "completed"),
        (f"/communications/calls/{call_id}", 202, "terminated"),
    ]

    # The event entity told the same story, in the words every backend uses.
    await hass.async_block_till_done()
    fired = _fired(hass, changes)
    assert [f["event_type"] for f in fired] == ["answered", "played", "ended"]
    assert {f["call_id"] for f in fired} == {call_id}
    assert fired[1]["operation_id"] == operation_id
    assert fired[1]["client_context"] == client_context
    assert (fired[1]["result_code"], fired[1]["result_subcode"]) == (200, 0)
    assert fired[1]["reason"] == "Action completed successfully."
    assert fired[2]["result_subcode"] == 5001
    assert _named(fired, names) == snapshot(name="events")
    assert _state(hass).attributes["event_type"] == "ended"

    # Nothing secret was logged on the way, even at debug level.
    assert graph.issued_tokens
    for secret in (CLIENT_SECRET, *graph.issued_tokens):
        assert secret not in caplog.text


async def test_client_context_and_media_forms(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """One URL as a string, or media with their own resource ids; a caller's label."""
    response = await play_prompt(
        hass,
        graph_loaded,
        target=f" {USER_ID.upper()} ",
        prompt=[{"url": MEDIA, "resource_id": "doorbell-v2"}, {"url": LOCAL_MEDIA}],
        client_context="front door",
    )

    (call,) = response["calls"]
    assert call["client_context"] == "front door"
    (create,) = graph.calls_to("POST", CALLS)
    assert create.body["targets"][0]["identity"]["user"]["id"] == USER_ID
    assert [(m["uri"], m["resourceId"]) for m in create.body["mediaConfig"]["preFetchMedia"]] == [
        (MEDIA, "doorbell-v2"),
        (f"{EXTERNAL_URL}{LOCAL_MEDIA}", _resource_id(f"{EXTERNAL_URL}{LOCAL_MEDIA}")),
    ]
    (play,) = graph.calls_to("POST", f"/calls/{call['call_id']}/playPrompt")
    assert play.body["clientContext"] == "front door"

    # One URL as a plain string: the same URL always gets the same cache id.
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=MEDIA)
    second = graph.calls_to("POST", CALLS)[1]
    assert second.body["mediaConfig"]["preFetchMedia"][0]["resourceId"] == _resource_id(MEDIA)


async def test_extension_is_an_alias_of_target(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """Automations written for 0.1.0 name the target ``extension``; Teams takes that too."""
    response = await play_prompt(hass, graph_loaded, extension=USER_ID, prompt=[MEDIA])

    (call,) = response["calls"]
    assert (call["target"], call["status"]) == (USER_ID, "played")
    (create,) = graph.calls_to("POST", CALLS)
    assert create.body["targets"][0]["identity"]["user"]["id"] == USER_ID


async def test_hang_up_false_leaves_the_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)

    (call,) = response["calls"]
    assert call["status"] == "played"
    assert call["hung_up"] is False
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls[call["call_id"]].state == "established"


async def test_hang_up_option(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """The option is the default; the action's field wins over it."""
    hass.config_entries.async_update_entry(graph_loaded, options={CONF_HANG_UP: False})

    kept = (await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA]))["calls"][0]
    ended = (await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=True))[
        "calls"
    ][0]

    assert kept["hung_up"] is False
    assert ended["hung_up"] is True
    assert [r.path for r in graph.calls_to("DELETE", "")] == [f"{CALLS}/{ended['call_id']}"]
    assert graph.calls[kept["call_id"]].state == "established"


async def test_play_into_an_existing_call(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """``call_id`` plays into a call placed earlier and answers while the prompts still play."""
    first = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = first["calls"][0]["call_id"]

    response = await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[LOCAL_MEDIA])

    (call,) = response["calls"]
    assert call["call_id"] == call_id
    assert call["target"] == call_id  # no target was given: the call is what was played to
    assert call["status"] == "answered"
    assert call["hung_up"] is False
    assert "result_code" not in call
    assert len(graph.calls_to("POST", CALLS)) == 1  # no new call
    second = graph.calls_to("POST", f"/calls/{call_id}/playPrompt")[1]
    assert second.body["prompts"][0]["mediaInfo"]["uri"] == f"{EXTERNAL_URL}{LOCAL_MEDIA}"
    assert second.body["clientContext"] == call["client_context"]
    assert call["operation_id"] in graph.calls[call_id].operations
    assert graph.calls_to("DELETE", "") == []
    names = {
        call_id: "<call_id>",
        call["operation_id"]: "<operation_id>",
        call["client_context"]: "<context>",
    }
    assert _named(response, names) == snapshot


async def test_play_into_an_unknown_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    call_id = str(uuid.uuid4())

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[MEDIA])

    err = exc_info.value
    assert err.translation_key == "invalid_input"
    assert err.translation_placeholders["entry"] == TITLE
    assert err.translation_placeholders["detail"].startswith(
        f"Call {call_id} is not known to Microsoft Graph"
    )
    assert call_id in str(err)
    (play,) = graph.calls_to("POST", f"/calls/{call_id}/playPrompt")
    assert play.reply_status == 404


async def test_loop_uses_beta_and_does_not_wait(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], loop=True)

    (call,) = response["calls"]
    call_id = call["call_id"]
    (play,) = graph.calls_to("POST", f"/graph/beta/communications/calls/{call_id}/playPrompt")
    assert play.body["loop"] is True
    assert graph.calls_to("POST", f"/graph/v1.0/communications/calls/{call_id}/playPrompt") == []
    assert call["status"] == "answered"
    assert call["hung_up"] is False
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls[call_id].state == "established"
    names = {
        call_id: "<call_id>",
        call["operation_id"]: "<operation_id>",
        call["client_context"]: "<context>",
    }
    assert _named(response, names) == snapshot


async def test_phone_number_needs_the_instance_option(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target="+31 20 123 4567", prompt=[MEDIA])
    err = exc_info.value
    assert err.translation_key == "invalid_input"
    assert err.translation_placeholders == {
        "entry": TITLE,
        "detail": "Calling a phone number needs the application instance ID in the "
        "integration's options",
    }
    assert "application instance ID" in str(err)
    assert graph.calls_to("POST", CALLS) == []

    hass.config_entries.async_update_entry(
        graph_loaded, options={CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID, CONF_HANG_UP: True}
    )
    response = await play_prompt(hass, graph_loaded, target="+31 20 123 4567", prompt=[MEDIA])

    (create,) = graph.calls_to("POST", CALLS)
    assert create.body["targets"][0]["identity"]["phone"]["id"] == "+31201234567"
    assert create.body["source"]["identity"]["applicationInstance"]["id"] == INSTANCE_ID
    (call,) = response["calls"]
    assert (call["target"], call["status"], call["hung_up"]) == (
        "+31201234567",
        "played",
        True,
    )  # normalised


async def test_no_external_url(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """Without an external HTTPS URL nothing is sent, and a repair issue says why."""
    hass.config.external_url = None
    before = len(graph.requests)
    assert _issue(hass, graph_loaded) is None

    for prompt in ([MEDIA], [LOCAL_MEDIA]):
        with pytest.raises(ServiceValidationError) as exc_info:
            await play_prompt(hass, graph_loaded, target=USER_ID, prompt=prompt)
        assert exc_info.value.translation_key == "external_url_required"
        assert exc_info.value.translation_placeholders == {"entry": TITLE}
        assert "external HTTPS URL" in str(exc_info.value)
        _assert_external_url_issue(hass, graph_loaded)
    # Into an existing call, /local/ media need the URL too (Microsoft fetches them).
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, call_id=str(uuid.uuid4()), prompt=[LOCAL_MEDIA])
    assert exc_info.value.translation_key == "external_url_required"

    assert len(graph.requests) == before

    # Once the URL is set, the next action works and the issue goes away.
    hass.config.external_url = EXTERNAL_URL
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    assert response["calls"][0]["status"] == "played"
    assert _issue(hass, graph_loaded) is None


async def test_http_external_url_is_not_enough(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    hass.config.external_url = "http://ha.example.test:8123"

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert exc_info.value.translation_key == "external_url_required"
    assert graph.calls_to("POST", CALLS) == []
    _assert_external_url_issue(hass, graph_loaded)


async def test_external_url_issue_from_setup(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry, graph_http: TestClient
) -> None:
    """Setup raises the repair issue at once (not only at the first action) and still loads."""
    hass.config.external_url = None

    assert await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.LOADED
    _assert_external_url_issue(hass, graph_entry)

    # Set later: a reload (or the next action) clears it.
    hass.config.external_url = EXTERNAL_URL
    assert await hass.config_entries.async_reload(graph_entry.entry_id)
    await hass.async_block_till_done()
    assert graph_entry.state is ConfigEntryState.LOADED
    assert _issue(hass, graph_entry) is None


@pytest.mark.parametrize(
    ("data", "key", "detail"),
    [
        (
            {"target": USER_ID, "prompt": ["http://media.example.test/a.wav"]},
            "invalid_input",
            "Prompt http://media.example.test/a.wav uses http://; Microsoft Teams plays media "
            "only from https:// URLs",
        ),
        (
            {"target": USER_ID, "prompt": [MEDIA] * 21},
            "invalid_input",
            "Microsoft Teams plays at most 20 prompts at once",
        ),
        (
            {"target": USER_ID, "prompt": ["ftp://media.example.test/a.wav"]},
            "invalid_input",
            "Prompt ftp://media.example.test/a.wav is not an https:// URL",
        ),
        (
            {"target": USER_ID, "prompt": [{"url": MEDIA, "resource_id": " "}]},
            "invalid_input",
            f"The resource ID of prompt {MEDIA} is empty",
        ),
        ({"target": USER_ID, "prompt": []}, "nothing_to_play", None),
        ({"target": USER_ID}, "nothing_to_play", None),
        (
            {"target": "1000", "prompt": [MEDIA]},
            "invalid_input",
            "1000 is neither a Teams user's object ID nor a phone number like +31201234567",
        ),
        (
            {"target": USER_ID, "prompt": [MEDIA], "client_context": "x" * 257},
            "invalid_input",
            "client_context may have at most 256 characters",
        ),
        (
            {"call_id": "not a call id", "prompt": [MEDIA]},
            "invalid_input",
            "not a call id is not a call ID",
        ),
        (
            {"call_id": str(uuid.uuid4()), "target": USER_ID, "prompt": [MEDIA]},
            "call_or_target",
            None,
        ),
        ({"prompt": [MEDIA]}, "call_or_target", None),
        ({"target": [USER_ID, str(uuid.uuid4())], "prompt": [MEDIA]}, "one_target_only", None),
        ({"target": USER_ID, "prompt": [MEDIA], "extension": "1000"}, "target_and_extension", None),
        ({"target": USER_ID, "prompt": [MEDIA], "autoanswer": True}, "fields_not_supported", None),
        ({"target": USER_ID, "prompt": [MEDIA], "autoanswer": False}, "fields_not_supported", None),
    ],
)
async def test_input_is_refused_locally(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    data: dict[str, Any],
    key: str,
    detail: str | None,
) -> None:
    before = len(graph.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, **data)

    err = exc_info.value
    assert err.translation_key == key
    assert err.translation_domain == DOMAIN
    placeholders = err.translation_placeholders or {}
    assert placeholders.get("entry") == TITLE
    if detail is not None:
        assert placeholders["detail"] == detail
        assert detail in str(err)
    assert str(err)  # rendered from en.json
    assert "{" not in str(err)
    assert len(graph.requests) == before
    assert graph.calls == {}
    if key == "fields_not_supported":
        assert placeholders["fields"] == "autoanswer"
        assert placeholders["backend"] == "Microsoft Teams"
        assert "autoanswer" in str(err)


async def test_refused_fields_come_from_the_capabilities(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The action asks the backend's declared capabilities, never its name."""
    declared = graph_loaded.runtime_data.capabilities
    assert (declared.loop, declared.hang_up, declared.autoanswer) == (True, True, False)
    monkeypatch.setattr(
        TeamsBackend,
        "capabilities",
        property(lambda self: dataclasses.replace(declared, loop=False, hang_up=False)),
    )

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(
            hass, graph_loaded, target=USER_ID, prompt=[MEDIA], loop=True, hang_up=False
        )

    assert exc_info.value.translation_key == "fields_not_supported"
    assert exc_info.value.translation_placeholders["fields"] == "hang_up, loop"
    assert graph.calls_to("POST", CALLS) == []
    # What it still declares works as before.
    response = await play_prompt(
        hass, graph_loaded, target=USER_ID, prompt=[MEDIA], client_context="kept"
    )
    assert response["calls"][0]["client_context"] == "kept"


def _assert_download_failed(err: HomeAssistantError) -> None:
    """The action error for media Graph could not download (code 400/8536)."""
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "prompt_failed"
    assert err.translation_placeholders == {
        "entry": TITLE,
        "code": "400",
        "subcode": "8536",
        "detail": "Action failed, file could not be downloaded.",
    }
    assert "could not play the prompts (code 400/8536)" in str(err)


async def test_failed_media(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    graph.fail_media = True
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    _assert_download_failed(exc_info.value)
    # The call was still hung up; the entity saw the failure.
    assert len(graph.calls_to("DELETE", "")) == 1
    await hass.async_block_till_done()
    failed = [f for f in _fired(hass, changes) if f["event_type"] == "failed"]
    assert len(failed) == 1
    assert (failed[0]["result_code"], failed[0]["result_subcode"]) == (400, 8536)
    assert failed[0]["reason"] == "Action failed, file could not be downloaded."


@pytest.mark.parametrize("into_existing_call", [False, True], ids=["placed call", "call_id"])
async def test_media_refused_in_the_play_reply_itself(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry, into_existing_call: bool
) -> None:
    """playPrompt answering "failed" at once (no notification follows) fails the action too."""
    data: dict[str, Any] = {"target": USER_ID}
    if into_existing_call:
        placed = await play_prompt(hass, graph_loaded, hang_up=False, prompt=[MEDIA], **data)
        data = {"call_id": placed["calls"][0]["call_id"]}
    graph.fail_media_at_once = True

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, prompt=[MEDIA], **data)

    _assert_download_failed(exc_info.value)
    # A call the action placed is hung up all the same; one given by call_id is left alone.
    assert len(graph.calls_to("DELETE", "")) == (0 if into_existing_call else 1)


async def test_missing_permission(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    graph.permission_denied = True

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "request_failed"
    assert err.translation_placeholders["detail"].startswith(
        "The app lacks the Calls.Initiate.All application permission with admin consent"
    )
    assert "Calls.Initiate.All" in str(err)
    assert reauth_flows(hass, graph_loaded) == []
    assert [r.reply_status for r in graph.calls_to("POST", CALLS)] == [403]


async def test_unanswered_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    graph.answer = False
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "request_failed"
    assert err.translation_placeholders["detail"] == (
        "The call was not answered (Callee could not be reached.)"
    )
    assert "Callee could not be reached" in str(err)
    # Graph ended the call itself: nothing to hang up, nothing played.
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls_to("POST", "/playPrompt") == []
    await hass.async_block_till_done()
    (ended,) = _fired(hass, changes)
    assert ended["event_type"] == "ended"
    assert (ended["result_code"], ended["result_subcode"]) == (480, 10076)
    assert ended["reason"] == "Callee could not be reached."


async def test_timeouts(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graph_backend, "ESTABLISH_TIMEOUT", 0.1)
    monkeypatch.setattr(graph_backend, "COMPLETION_TIMEOUT", 0.1)

    graph.notify_delay = 1.0
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    assert exc_info.value.translation_key == "timeout"
    assert exc_info.value.translation_placeholders["detail"] == (
        "The call was not answered within 0.1 seconds"
    )
    assert "within 0.1 seconds" in str(exc_info.value)

    graph.notify_delay = 0.02
    graph.prompt_seconds = 5.0
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    assert exc_info.value.translation_key == "timeout"
    assert exc_info.value.translation_placeholders["detail"] == (
        "Microsoft Teams did not report the end of the prompts within 0.1 seconds"
    )

    # Both calls were ended.
    assert [r.reply_status for r in graph.calls_to("DELETE", "")] == [204, 204]
    assert reauth_flows(hass, graph_loaded) == []


async def test_runtime_401_starts_reauth(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """The token dies and the secret was replaced: one refresh, then reauth, no loop."""
    graph.expire_tokens()
    graph.client_secret = "replaced-at-microsoft"
    tokens_before = graph.token_requests

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "invalid_auth"
    assert err.translation_placeholders == {
        "entry": TITLE,
        "detail": "Microsoft Entra ID refused the client secret (use the secret's value, not "
        "its ID)",
    }
    assert CLIENT_SECRET not in str(err)
    await hass.async_block_till_done()
    assert len(reauth_flows(hass, graph_loaded)) == 1
    assert graph.token_requests == tokens_before + 1
    assert [r.reply_status for r in graph.calls_to("POST", CALLS)] == [401]
    assert graph.calls == {}


async def test_expired_token_is_refreshed_silently(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    graph.expire_tokens()
    tokens_before = graph.token_requests

    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert response["calls"][0]["status"] == "played"
    assert [r.reply_status for r in graph.calls_to("POST", CALLS)] == [401, 201]
    assert graph.token_requests == tokens_before + 1
    assert reauth_flows(hass, graph_loaded) == []


# ------------------------------------------------------------------ notifications


async def test_refused_notifications_change_nothing(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    graph_http: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Forged, expired, wrong-audience or missing tokens: 401, and nothing fires."""
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = response["calls"][0]["call_id"]
    await hass.async_block_till_done()
    before = _state(hass)
    assert before.attributes["event_type"] == "played"
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    tracker = graph_loaded.runtime_data.client.tracker
    op_id = str(uuid.uuid4())
    op_url = f"/communications/calls/{call_id}/operations/{op_id}"
    ended = {"@odata.type": "#microsoft.graph.call", "state": "terminated", "id": call_id}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for token in (
        graph.make_jwt(key=other_key),
        graph.make_jwt(audience="11111111-0000-0000-0000-000000000000"),
        graph.make_jwt(issuer="https://evil.example.test"),
        graph.make_jwt(expires_in=-3600),
        graph.make_jwt(kid="unknown-key"),
        "not-a-jwt",
        "",
    ):
        assert await graph.notify(call_id, ended, change_type="deleted", token=token) == 401
        assert (
            await graph.notify(
                call_id,
                {"status": "failed"},
                change_type="deleted",
                resource_url=op_url,
                token=token,
            )
            == 401
        )
    # No Authorization header at all.
    reply = await graph_http.post(WEBHOOK_PATH, json={"value": []})
    assert reply.status == 401

    await hass.async_block_till_done()
    after = _state(hass)
    assert after.state == before.state
    assert after.attributes == before.attributes
    assert _fired(hass, changes) == []
    # The client learnt nothing: the call is not ended, the operation unknown.
    assert tracker.ended(call_id) is False
    with pytest.raises(TimeoutError):
        await tracker.wait_operation(op_id, 0.05)
    assert "Refused a notification" in caplog.text
    # The call is still there to play into.
    again = await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[MEDIA])
    assert again["calls"][0]["status"] == "answered"


async def test_unknown_call_notification_is_harmless(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    first = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = first["calls"][0]["call_id"]
    stranger = str(uuid.uuid4())

    for data, url in (
        ({"state": "established"}, f"/communications/calls/{stranger}"),
        ({"status": "completed"}, f"/communications/calls/{stranger}/operations/{uuid.uuid4()}"),
        ({"state": "establishing"}, f"/communications/calls/{stranger}"),
        ({"state": "established"}, "/communications/somethingElse/1"),
    ):
        assert await graph.notify(call_id, data, resource_url=url) == 202

    response = await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[MEDIA])
    assert response["calls"][0]["status"] == "answered"
    assert graph_loaded.state is ConfigEntryState.LOADED


async def test_webhook_bad_bodies(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry, graph_http: TestClient
) -> None:
    """A verified sender with a broken body gets 400; only verified senders get that far."""
    headers = {"Authorization": f"Bearer {graph.make_jwt()}"}
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    reply = await graph_http.post(WEBHOOK_PATH, data="{not json", headers=headers)
    assert reply.status == 400
    reply = await graph_http.post(WEBHOOK_PATH, json=["value"], headers=headers)
    assert reply.status == 400
    reply = await graph_http.post(WEBHOOK_PATH, json={"value": "x"}, headers=headers)
    assert reply.status == 202
    reply = await graph_http.get(WEBHOOK_PATH, headers=headers)
    assert reply.status == 405

    await hass.async_block_till_done()
    assert _fired(hass, changes) == []
    assert _state(hass).state == STATE_UNKNOWN


async def test_webhook_without_a_loaded_entry(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry, graph_http: TestClient
) -> None:
    """The webhook lives and dies with its entry."""
    # Once unloaded, the entry's own webhook is gone (HA answers 200 to hide that).
    await hass.config_entries.async_unload(graph_loaded.entry_id)
    reply = await graph_http.post(
        WEBHOOK_PATH, json={"value": []}, headers={"Authorization": f"Bearer {graph.make_jwt()}"}
    )
    assert reply.status == 200


# -------------------------------------------------------------------- diagnostics


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    hass.config_entries.async_update_entry(
        graph_loaded, options={CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID, CONF_HANG_UP: True}
    )
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, graph_loaded)

    # The token's remaining life depends on how long the run took.
    assert diagnostics == snapshot(exclude=props("token_valid_for_seconds"))
    assert diagnostics["entry"]["title"] == TITLE
    data = diagnostics["entry"]["data"]
    assert data[CONF_CLIENT_SECRET] == "**REDACTED**"
    assert data[CONF_WEBHOOK_ID] == "**REDACTED**"
    assert (data["tenant_id"], data["client_id"], data["backend"]) == (
        TENANT_ID,
        CLIENT_ID,
        "graph",
    )
    assert diagnostics["backend"] == "Microsoft Teams"
    assert "device" not in diagnostics
    client = diagnostics["client"]
    assert client["has_token"] is True
    assert 3000 < client["token_valid_for_seconds"] <= 3599
    assert (client["token_requests"], client["requests"], client["retries"]) == (1, 3, 0)
    dump = json.dumps(diagnostics)
    assert graph.issued_tokens
    for secret in (CLIENT_SECRET, WEBHOOK_ID, *graph.issued_tokens):
        assert secret not in dump


def test_simulator_endpoints_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, graph: FakeGraph
) -> None:
    """VOICE_PROMPT_GRAPH_SIMULATOR points every endpoint at the bundled simulator."""
    monkeypatch.delenv("VOICE_PROMPT_GRAPH_SIMULATOR", raising=False)
    assert GraphEndpoints.from_environment() == GraphEndpoints()
    monkeypatch.setenv("VOICE_PROMPT_GRAPH_SIMULATOR", graph.base_url + "/")
    assert GraphEndpoints.from_environment() == GraphEndpoints(
        login_base=graph.login_base,
        graph_base=graph.graph_base,
        openid_config_url=graph.openid_config_url,
    )
