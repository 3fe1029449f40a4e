"""A Microsoft Teams entry in Home Assistant, end to end against the fake Graph.

Home Assistant's HTTP app listens on a real 127.0.0.1 port and the fake delivers its signed
notifications to the entry's webhook there, as Microsoft would to the external URL.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

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

from custom_components.voice_prompt import backend_graph, models
from custom_components.voice_prompt.const import CONF_APPLICATION_INSTANCE_ID, CONF_HANG_UP, DOMAIN
from custom_components.voice_prompt.event import EVENT_TYPES
from custom_components.voice_prompt.models import GraphData, GraphEndpoints
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_CLIENT_SECRET,
    CONF_WEBHOOK_ID,
    EVENT_STATE_CHANGED,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
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


def _entity_id(hass: HomeAssistant) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{UNIQUE_ID}_calls")
    assert entity_id is not None
    return entity_id


def _state(hass: HomeAssistant) -> State:
    state = hass.states.get(_entity_id(hass))
    assert state is not None
    return state


def _fired(hass: HomeAssistant, events: list[Any]) -> list[dict[str, Any]]:
    """Attributes of the event entity each time it fired."""
    entity_id = _entity_id(hass)
    return [
        dict(e.data["new_state"].attributes)
        for e in events
        if e.data["entity_id"] == entity_id
        and e.data["new_state"] is not None
        and e.data["new_state"].state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)
    ]


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


# --------------------------------------------------------------------------- setup


async def test_setup_and_unload(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    entry = graph_loaded
    assert entry.state is ConfigEntryState.LOADED
    assert isinstance(entry.runtime_data, GraphData)
    assert graph.token_requests == 1
    hook = webhook_registration(hass, WEBHOOK_ID)
    assert hook["domain"] == DOMAIN
    assert hook["name"] == f"{TITLE} notifications"
    assert hook["local_only"] is False
    assert hook["allowed_methods"] == {"POST"}

    state = _state(hass)
    assert state.state == STATE_UNKNOWN
    assert state.attributes["event_types"] == EVENT_TYPES
    assert state.attributes["friendly_name"] == f"{TITLE} Calls"
    device = entry_device(hass, entry)
    assert device.identifiers == {(DOMAIN, UNIQUE_ID)}
    assert device.manufacturer == "Microsoft"
    assert device.entry_type is dr.DeviceEntryType.SERVICE
    assert device.name == TITLE

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert WEBHOOK_ID not in hass.data["webhook"]
    assert _state(hass).state == STATE_UNAVAILABLE


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
    await backend_graph.async_unload_entry(hass, graph_loaded)  # tidy up for teardown


async def test_setup_with_a_bad_secret_asks_for_reauth(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    graph.client_secret = "replaced-at-microsoft"

    assert not await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.SETUP_ERROR
    assert graph_entry.reason is not None
    assert len(reauth_flows(hass, graph_entry)) == 1
    assert WEBHOOK_ID not in hass.data.get("webhook", {})
    assert graph.token_requests == 1  # no retry loop


@pytest.mark.parametrize(
    ("code", "key"), [("7000222", "secret_expired"), ("90002", "tenant_not_found")]
)
async def test_setup_token_errors(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry, code: str, key: str
) -> None:
    graph.token_error = code

    await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.SETUP_ERROR
    assert graph_entry.error_reason_translation_key == key
    assert len(reauth_flows(hass, graph_entry)) == 1


async def test_setup_unreachable_retries(
    hass: HomeAssistant,
    graph_entry: MockConfigEntry,
    graph_closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        models,
        "GRAPH_ENDPOINTS",
        GraphEndpoints(login_base=f"http://127.0.0.1:{graph_closed_port}/login"),
    )

    await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()

    assert graph_entry.state is ConfigEntryState.SETUP_RETRY
    assert graph_entry.error_reason_translation_key == "cannot_connect"
    assert reauth_flows(hass, graph_entry) == []
    assert WEBHOOK_ID not in hass.data.get("webhook", {})


# -------------------------------------------------------------------- the action


async def test_place_play_hang_up(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
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
    call_id = response["call_id"]
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

    operation_id = next(iter(graph.calls[call_id].operations))
    assert response == {
        "call_id": call_id,
        "operation_id": operation_id,
        "status": "completed",
        "client_context": client_context,
        "hung_up": True,
        "result_code": 200,
        "result_subcode": 0,
    }

    # Every notification went through HA's webhook and was accepted.
    await wait_for(lambda: len(graph.notifications) == 3)
    assert _deliveries(graph) == [
        (f"/communications/calls/{call_id}", 202, "established"),
        (f"/communications/calls/{call_id}/operations/{operation_id}", 202, "completed"),
        (f"/communications/calls/{call_id}", 202, "terminated"),
    ]

    # The event entity told the same story.
    await hass.async_block_till_done()
    fired = _fired(hass, changes)
    assert [f["event_type"] for f in fired] == [
        "call_established",
        "prompt_completed",
        "call_terminated",
    ]
    assert {f["call_id"] for f in fired} == {call_id}
    assert fired[1]["operation_id"] == operation_id
    assert fired[1]["client_context"] == client_context
    assert (fired[1]["result_code"], fired[1]["result_subcode"]) == (200, 0)
    assert fired[1]["result_message"] == "Action completed successfully."
    assert fired[2]["result_subcode"] == 5001
    assert _state(hass).attributes["event_type"] == "call_terminated"

    # Nothing secret was logged on the way, even at debug level.
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

    assert response["client_context"] == "front door"
    (create,) = graph.calls_to("POST", CALLS)
    assert create.body["targets"][0]["identity"]["user"]["id"] == USER_ID
    assert [(m["uri"], m["resourceId"]) for m in create.body["mediaConfig"]["preFetchMedia"]] == [
        (MEDIA, "doorbell-v2"),
        (f"{EXTERNAL_URL}{LOCAL_MEDIA}", _resource_id(f"{EXTERNAL_URL}{LOCAL_MEDIA}")),
    ]

    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=MEDIA)
    second = graph.calls_to("POST", CALLS)[1]
    assert second.body["mediaConfig"]["preFetchMedia"][0]["resourceId"] == _resource_id(MEDIA)


async def test_hang_up_false_leaves_the_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)

    assert response["status"] == "completed"
    assert response["hung_up"] is False
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls[response["call_id"]].state == "established"


async def test_hang_up_option(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """The option is the default; the action's field wins over it."""
    hass.config_entries.async_update_entry(graph_loaded, options={CONF_HANG_UP: False})

    kept = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    ended = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=True)

    assert kept["hung_up"] is False
    assert ended["hung_up"] is True
    assert [r.path for r in graph.calls_to("DELETE", "")] == [f"{CALLS}/{ended['call_id']}"]


async def test_play_into_an_existing_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    first = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = first["call_id"]

    response = await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[LOCAL_MEDIA])

    assert response["call_id"] == call_id
    assert response["status"] == "running"
    assert response["hung_up"] is False
    assert "result_code" not in response
    assert len(graph.calls_to("POST", CALLS)) == 1  # no new call
    second = graph.calls_to("POST", f"/calls/{call_id}/playPrompt")[1]
    assert second.body["prompts"][0]["mediaInfo"]["uri"] == f"{EXTERNAL_URL}{LOCAL_MEDIA}"
    assert second.body["clientContext"] == response["client_context"]
    assert response["operation_id"] in graph.calls[call_id].operations


async def test_play_into_an_unknown_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    call_id = str(uuid.uuid4())

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[MEDIA])

    assert exc_info.value.translation_key == "graph_call_not_found"
    assert call_id in str(exc_info.value)


async def test_loop_uses_beta_and_does_not_wait(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], loop=True)

    call_id = response["call_id"]
    (play,) = graph.calls_to("POST", f"/graph/beta/communications/calls/{call_id}/playPrompt")
    assert play.body["loop"] is True
    assert graph.calls_to("POST", f"/graph/v1.0/communications/calls/{call_id}/playPrompt") == []
    assert response["status"] == "running"
    assert response["hung_up"] is False
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls[call_id].state == "established"


async def test_phone_number_needs_the_instance_option(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target="+31 20 123 4567", prompt=[MEDIA])
    assert exc_info.value.translation_key == "phone_needs_instance"
    assert "application instance ID" in str(exc_info.value)
    assert graph.calls_to("POST", CALLS) == []

    hass.config_entries.async_update_entry(
        graph_loaded, options={CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID, CONF_HANG_UP: True}
    )
    response = await play_prompt(hass, graph_loaded, target="+31 20 123 4567", prompt=[MEDIA])

    (create,) = graph.calls_to("POST", CALLS)
    assert create.body["targets"][0]["identity"]["phone"]["id"] == "+31201234567"
    assert create.body["source"]["identity"]["applicationInstance"]["id"] == INSTANCE_ID
    assert response["status"] == "completed"


async def test_no_external_url(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    hass.config.external_url = None
    before = len(graph.requests)

    for prompt in ([MEDIA], [LOCAL_MEDIA]):
        with pytest.raises(ServiceValidationError) as exc_info:
            await play_prompt(hass, graph_loaded, target=USER_ID, prompt=prompt)
        assert exc_info.value.translation_key == "external_url_required"
        assert "external HTTPS URL" in str(exc_info.value)

    assert len(graph.requests) == before


async def test_http_external_url_is_not_enough(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    hass.config.external_url = "http://ha.example.test:8123"

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert exc_info.value.translation_key == "external_url_required"
    assert graph.calls_to("POST", CALLS) == []


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"target": USER_ID, "prompt": ["http://media.example.test/a.wav"]}, "media_not_https"),
        ({"target": USER_ID, "prompt": [MEDIA] * 21}, "media_too_many"),
        ({"target": USER_ID, "prompt": ["ftp://media.example.test/a.wav"]}, "media_invalid"),
        ({"target": USER_ID, "prompt": []}, "media_empty"),
        ({"target": "1000", "prompt": [MEDIA]}, "target_invalid"),
        (
            {"target": USER_ID, "prompt": [MEDIA], "client_context": "x" * 257},
            "client_context_too_long",
        ),
        ({"call_id": "not a call id", "prompt": [MEDIA]}, "call_id_invalid"),
        ({"call_id": str(uuid.uuid4()), "target": USER_ID, "prompt": [MEDIA]}, "call_or_target"),
        ({"prompt": [MEDIA]}, "call_or_target"),
        ({"target": USER_ID, "prompt": [MEDIA], "extension": "1000"}, "fields_not_supported"),
        ({"target": USER_ID, "prompt": [MEDIA], "autoanswer": True}, "fields_not_supported"),
    ],
)
async def test_input_is_refused_locally(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    data: dict[str, Any],
    key: str,
) -> None:
    before = len(graph.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, **data)

    err = exc_info.value
    assert err.translation_key == key
    assert err.translation_domain == DOMAIN
    assert (err.translation_placeholders or {}).get("entry") == TITLE
    assert str(err)  # rendered from en.json
    assert "{" not in str(err)
    assert len(graph.requests) == before
    if key == "fields_not_supported":
        assert set(data) & {"extension", "autoanswer"} <= set(
            err.translation_placeholders["fields"].split(", ")
        )


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


async def test_failed_media(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    graph.fail_media = True
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    err = exc_info.value
    _assert_download_failed(err)
    assert "could not play the prompts (code 400/8536)" in str(err)
    # The call was still hung up; the entity saw the failure.
    assert len(graph.calls_to("DELETE", "")) == 1
    await hass.async_block_till_done()
    assert "prompt_failed" in [f["event_type"] for f in _fired(hass, changes)]


@pytest.mark.parametrize("into_existing_call", [False, True], ids=["placed call", "call_id"])
async def test_media_refused_in_the_play_reply_itself(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry, into_existing_call: bool
) -> None:
    """playPrompt answering "failed" at once (no notification follows) fails the action too."""
    data: dict[str, Any] = {"target": USER_ID}
    if into_existing_call:
        placed = await play_prompt(hass, graph_loaded, hang_up=False, prompt=[MEDIA], **data)
        data = {"call_id": placed["call_id"]}
    graph.fail_media_at_once = True

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, prompt=[MEDIA], **data)

    err = exc_info.value
    _assert_download_failed(err)
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
    assert err.translation_key == "graph_permission_missing"
    assert "Calls.Initiate.All" in str(err)
    assert reauth_flows(hass, graph_loaded) == []


async def test_unanswered_call(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    graph.answer = False

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert exc_info.value.translation_key == "call_not_answered"
    assert "Callee could not be reached" in str(exc_info.value)


async def test_timeouts(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backend_graph, "ESTABLISH_TIMEOUT", 0.1)
    monkeypatch.setattr(backend_graph, "COMPLETION_TIMEOUT", 0.1)

    graph.notify_delay = 1.0
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    assert exc_info.value.translation_key == "call_not_established"
    assert "within 0.1 seconds" in str(exc_info.value)

    graph.notify_delay = 0.02
    graph.prompt_seconds = 5.0
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    assert exc_info.value.translation_key == "prompt_timeout"

    # Both calls were ended.
    assert [r.reply_status for r in graph.calls_to("DELETE", "")] == [204, 204]


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

    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert response["status"] == "completed"
    assert [r.reply_status for r in graph.calls_to("POST", CALLS)] == [401, 201]
    assert reauth_flows(hass, graph_loaded) == []


# ------------------------------------------------------------------ notifications


async def test_refused_notifications_change_nothing(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    graph_http: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = response["call_id"]
    await hass.async_block_till_done()
    before = _state(hass)
    assert before.attributes["event_type"] == "prompt_completed"
    client = graph_loaded.runtime_data.client
    op_id = str(uuid.uuid4())
    op_url = f"/communications/calls/{call_id}/operations/{op_id}"
    ended = {"@odata.type": "#microsoft.graph.call", "state": "terminated", "id": call_id}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for token in (
        graph.make_jwt(key=other_key),
        graph.make_jwt(audience="11111111-0000-0000-0000-000000000000"),
        graph.make_jwt(issuer="https://evil.example.test"),
        graph.make_jwt(expires_in=-3600),
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
    assert client.tracker._operations.get(op_id.replace("-", "")) is None
    assert client.tracker._call_states[call_id.replace("-", "")].type == "call_established"
    assert "Refused a notification" in caplog.text


async def test_unknown_call_notification_is_harmless(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    first = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    stranger = str(uuid.uuid4())

    for data, url in (
        ({"state": "established"}, f"/communications/calls/{stranger}"),
        ({"status": "completed"}, f"/communications/calls/{stranger}/operations/{uuid.uuid4()}"),
        ({"state": "establishing"}, f"/communications/calls/{stranger}"),
        ({"state": "established"}, "/communications/somethingElse/1"),
    ):
        assert await graph.notify(first["call_id"], data, resource_url=url) == 202

    response = await play_prompt(hass, graph_loaded, call_id=first["call_id"], prompt=[MEDIA])
    assert response["status"] == "running"
    assert graph_loaded.state is ConfigEntryState.LOADED


async def test_webhook_bad_bodies(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry, graph_http: TestClient
) -> None:
    """A verified sender with a broken body gets 400; only verified senders get that far."""
    headers = {"Authorization": f"Bearer {graph.make_jwt()}"}

    reply = await graph_http.post(WEBHOOK_PATH, data="{not json", headers=headers)
    assert reply.status == 400
    reply = await graph_http.post(WEBHOOK_PATH, json=["value"], headers=headers)
    assert reply.status == 400
    reply = await graph_http.post(WEBHOOK_PATH, json={"value": "x"}, headers=headers)
    assert reply.status == 202
    reply = await graph_http.get(WEBHOOK_PATH, headers=headers)
    assert reply.status == 405


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
) -> None:
    hass.config_entries.async_update_entry(
        graph_loaded, options={CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID, CONF_HANG_UP: True}
    )
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, graph_loaded)

    assert diagnostics["entry"]["title"] == TITLE
    data = diagnostics["entry"]["data"]
    assert data[CONF_CLIENT_SECRET] == "**REDACTED**"
    assert data[CONF_WEBHOOK_ID] == "**REDACTED**"
    assert data["tenant_id"] == TENANT_ID
    assert data["client_id"] == CLIENT_ID
    assert data["backend"] == "graph"
    assert diagnostics["entry"]["options"] == {
        CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID,
        CONF_HANG_UP: True,
    }
    assert diagnostics["device"] is None
    client = diagnostics["client"]
    assert client["has_token"] is True
    assert 3000 < client["token_valid_for_seconds"] <= 3599
    assert client["token_requests"] == 1
    assert client["requests"] == 3
    assert client["retries"] == 0
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
