"""The ``voice_prompt.play_prompt`` action against the fake PBX (and its generic refusals)."""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from datetime import timedelta
from enum import Enum
import json
import logging
from pathlib import Path
import re
from typing import Any, Final

import aiohttp
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.voice_prompt import errors as errors_module
from custom_components.voice_prompt.api import (
    VoicePromptApiDisabledError,
    VoicePromptAriDisabledError,
    VoicePromptAuthenticationError,
    VoicePromptCertificateChangedError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSecretExpiredError,
    VoicePromptSSLError,
    VoicePromptTenantNotFoundError,
    VoicePromptTimeoutError,
    VoicePromptTokenError,
    YeastarClient,
    YeastarReportError,
)
from custom_components.voice_prompt.api.yeastar import DEFAULT_TIMEOUT, LOCKOUT_SECONDS
from custom_components.voice_prompt.backends.yeastar import YeastarBackend
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from custom_components.voice_prompt.errors import needs_reauth, setup_error, translate_error
from custom_components.voice_prompt.validation import vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME, EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
)
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
from tests.conftest import PASSWORD, TRANSLATIONS_USED, play_prompt, reauth_flows
from tests.fakes.graph import FakeGraph
from tests.fakes.yeastar import FakeYeastarPBX
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    MEDIA,
    USER_ID,
    graph,
    graph_endpoints,
    graph_entry,
    graph_http,
    graph_loaded,
    wait_for,
)

PLAYPROMPT: Final = "extension/playprompt"
EN_JSON: Final = (
    Path(__file__).parent.parent / "custom_components" / DOMAIN / "translations" / "en.json"
)
EXCEPTIONS: Final[dict[str, dict[str, str]]] = json.loads(EN_JSON.read_text(encoding="utf-8"))[
    "exceptions"
]
BACKEND_NAME: Final = YeastarBackend.name


def _hide_call_ids(*, data: Any, path: tuple[tuple[Any, Any], ...]) -> Any:
    """Syrupy matcher: the fake's call ids contain the wall-clock time.

    They are checked against what the fake answered; the snapshot shows a placeholder.
    """
    if path and path[-1][0] == "call_id" and isinstance(data, str):
        return "<call id>"
    return data


def _bodies(pbx: FakeYeastarPBX) -> list[Any]:
    return [r.body for r in pbx.calls(PLAYPROMPT)]


def _callids(pbx: FakeYeastarPBX) -> dict[str, str]:
    """Call id the fake answered, per extension (successful plays only)."""
    return {
        r.body["extid"]: r.reply["callid"]
        for r in pbx.calls(PLAYPROMPT)
        if r.reply is not None and r.reply.get("status") == "Success"
    }


def _placed(pbx: FakeYeastarPBX, *extensions: str) -> list[dict[str, Any]]:
    """The response's ``calls`` for these extensions, with the ids the fake gave."""
    ids = _callids(pbx)
    return [{"target": ext, "call_id": ids[ext], "status": "placed"} for ext in extensions]


def _event_entity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return entity.entity_id


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# -- success --------------------------------------------------------------------------------


async def test_issue_example(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """The example from the issue: one extension, two prompts, no auto answer."""
    response = await play_prompt(
        hass, loaded_entry, extension="1000", prompt=["hello111", "queue1"], autoanswer=False
    )

    assert _bodies(pbx) == [{"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"}]
    assert response == {"calls": _placed(pbx, "1000"), "failed": []}
    assert response == snapshot(matcher=_hide_call_ids)
    # The token from setup is reused: no second login.
    assert pbx.logins == 1


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (
            {"target": "1000", "prompt": "hello111+queue1"},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"extension": "1000", "prompt": "hello111+queue1"},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"target": ["1000"], "prompt": ["hello111", "queue1"]},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"extension": "1000", "prompt": " hello111 + queue1 "},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"target": "1000", "prompt": [" hello111 ", "queue1"]},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"extension": "1000", "prompt": "doorbell", "autoanswer": True},
            {"extid": "1000", "prompt": "doorbell", "autoanswer": "yes"},
        ),
        (
            {"target": "1000", "prompt": "doorbell", "autoanswer": "on"},
            {"extid": "1000", "prompt": "doorbell", "autoanswer": "yes"},
        ),
        (
            {"target": "1000", "prompt": "doorbell", "autoanswer": False},
            {"extid": "1000", "prompt": "doorbell", "autoanswer": "no"},
        ),
        (
            {"extension": 1000, "prompt": ["wakeup"]},
            {"extid": "1000", "prompt": "wakeup", "autoanswer": "no"},
        ),
        (
            {"extension": [1001], "prompt": "alarm"},
            {"extid": "1001", "prompt": "alarm", "autoanswer": "no"},
        ),
        (
            {"target": 1001, "prompt": "alarm"},
            {"extid": "1001", "prompt": "alarm", "autoanswer": "no"},
        ),
    ],
)
async def test_request_forms(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    data: dict[str, Any],
    body: dict[str, str],
) -> None:
    """Target or its alias, text or list prompts, bool autoanswer: the same request."""
    response = await play_prompt(hass, loaded_entry, **data)

    assert _bodies(pbx) == [body]
    assert response == {"calls": _placed(pbx, body["extid"]), "failed": []}


async def test_several_targets(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """A list of targets rings each one; every call id comes back, in order."""
    response = await play_prompt(
        hass, loaded_entry, target=["1000", "1001", "1010"], prompt="lunch_ready"
    )

    assert sorted(b["extid"] for b in _bodies(pbx)) == ["1000", "1001", "1010"]
    assert all(b["prompt"] == "lunch_ready" for b in _bodies(pbx))
    assert response == {"calls": _placed(pbx, "1000", "1001", "1010"), "failed": []}
    assert len(set(_callids(pbx).values())) == 3
    assert response == snapshot(matcher=_hide_call_ids)


@pytest.mark.parametrize("field", ["target", "extension"])
async def test_targets_in_one_text(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX, field: str
) -> None:
    """Commas or semicolons separate extensions in one text ("1000, 1001")."""
    response = await play_prompt(
        hass, loaded_entry, **{field: "1000, 1001;1010"}, prompt="doorbell"
    )

    assert sorted(b["extid"] for b in _bodies(pbx)) == ["1000", "1001", "1010"]
    assert response == {"calls": _placed(pbx, "1000", "1001", "1010"), "failed": []}


async def test_duplicate_targets_are_rung_once(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The same extension given twice (as text and number) is called once."""
    response = await play_prompt(
        hass, loaded_entry, target=["1000", 1000, " 1000 ", "1001"], prompt="doorbell"
    )

    assert sorted(b["extid"] for b in _bodies(pbx)) == ["1000", "1001"]
    assert response == {"calls": _placed(pbx, "1000", "1001"), "failed": []}


async def test_without_response(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A blocking call without return_response works and returns nothing."""
    result = await play_prompt(
        hass, loaded_entry, return_response=False, target="1000", prompt="doorbell"
    )

    assert result is None
    assert _bodies(pbx) == [{"extid": "1000", "prompt": "doorbell", "autoanswer": "no"}]


async def test_non_blocking_call(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Fire-and-forget, as automations do by default."""
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": loaded_entry.entry_id, "extension": "1000", "prompt": "doorbell"},
    )
    await hass.async_block_till_done()
    assert _bodies(pbx) == [{"extid": "1000", "prompt": "doorbell", "autoanswer": "no"}]


async def test_call_events(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """The entry's event entity fires ``failed`` per failed target; a placed call is no event.

    Without the PBX's event reports nothing happens to a placed call that Home Assistant
    learns of; the response says it was placed.
    """
    entity_id = _event_entity(hass, loaded_entry)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass, loaded_entry, target=["1000", "4242", "1001"], prompt="doorbell"
    )
    await hass.async_block_till_done()

    states = [
        change.data["new_state"]
        for change in changes
        if change.data["entity_id"] == entity_id and change.data["new_state"] is not None
    ]
    fired = [
        {
            key: value
            for key, value in _plain(dict(state.attributes)).items()
            if key != "event_types"
        }
        for state in states
    ]
    assert [(item["event_type"], item["target"]) for item in fired] == [("failed", "4242")]
    assert [item["call_id"] for item in fired] == [None]
    assert [call["status"] for call in response["calls"]] == ["placed", "placed"]
    for state in states:
        assert dt_util.parse_datetime(state.state) is not None
    assert fired == snapshot(matcher=_hide_call_ids)

    last = hass.states.get(entity_id)
    assert last is not None
    assert last.attributes["event_type"] == "failed"
    assert last.attributes["code"] == "10006"


# -- PBX failures ---------------------------------------------------------------------------


async def test_partial_failure(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    """Two of three targets ring; the third is returned in ``failed`` and logged."""
    with caplog.at_level(logging.WARNING):
        response = await play_prompt(
            hass, loaded_entry, target=["1000", "4242", "1001"], prompt="doorbell"
        )

    assert response == {
        "calls": _placed(pbx, "1000", "1001"),
        "failed": [
            {
                "target": "4242",
                "code": "10006",
                "error": "Extension 4242 does not exist on the PBX",
            }
        ],
    }
    assert response == snapshot(matcher=_hide_call_ids)

    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.voice_prompt") and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        f"Played on 2 of 3 targets of {loaded_entry.title}; "
        "failed: 4242: Extension 4242 does not exist on the PBX"
    )
    assert reauth_flows(hass) == []


async def test_all_targets_fail_on_input(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Every extension unknown: the caller's fault, one error naming them all."""
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target=["4242", "4343"], prompt="doorbell")

    err = exc_info.value
    assert err.translation_domain == DOMAIN
    assert err.translation_key == "all_targets_failed"
    assert err.translation_placeholders == {
        "entry": loaded_entry.title,
        "details": "4242: Extension 4242 does not exist on the PBX; "
        "4343: Extension 4343 does not exist on the PBX",
    }
    assert str(err).startswith(f"Nothing was played on {loaded_entry.title}: 4242: ")
    assert "4343" in str(err)
    assert "{" not in str(err)
    assert len(pbx.calls(PLAYPROMPT)) == 2


async def test_all_targets_fail_mixed(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """One unknown extension and one offline phone: not only the caller's fault."""
    pbx.set_extension_status("1002", "Unavailable")
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, target=["4242", "1002"], prompt="doorbell")

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "all_targets_failed"
    assert "4242" in str(err)
    assert "1002" in str(err)
    assert len(pbx.calls(PLAYPROMPT)) == 2


async def test_all_targets_fail_on_auth_raises_auth_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A broadcast whose failures include refused credentials reports those (and reauths)."""
    pbx.password = "changed"
    pbx.expire_tokens()
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, target=["1000", "1001"], prompt="doorbell")

    assert not isinstance(exc_info.value, ServiceValidationError)
    assert exc_info.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()
    assert len(reauth_flows(hass, loaded_entry)) == 1
    assert pbx.logins == 2  # one login for both extensions


@pytest.mark.parametrize(
    ("prepare", "data", "error_type", "key", "words"),
    [
        pytest.param(
            None,
            {"target": "4242", "prompt": "doorbell"},
            ServiceValidationError,
            "invalid_input",
            ["Extension 4242 does not exist"],
            id="10006",
        ),
        pytest.param(
            None,
            {"target": "1000", "prompt": "hello111+nosuchprompt"},
            ServiceValidationError,
            "invalid_input",
            ["hello111+nosuchprompt", "not uploaded"],
            id="10023",
        ),
        pytest.param(
            None,
            {"target": "1002", "prompt": "doorbell"},
            HomeAssistantError,
            "request_failed",
            ["extension 1002", "could not be connected"],
            id="10015",
        ),
        pytest.param(
            None,
            {"target": "1003", "prompt": "doorbell"},
            HomeAssistantError,
            "request_failed",
            ["Extension 1003 is not idle"],
            id="10008",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["30001"]}},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "request_failed",
            ["internal error (error 30001)"],
            id="30001",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["10004"]}},
            {"target": "1000", "prompt": "doorbell"},
            ServiceValidationError,
            "invalid_input",
            ["extension 1000", "prompt doorbell"],
            id="10004",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["10024"]}},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "request_failed",
            ["Extension 1000 has no outbound"],
            id="10024",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["99999"]}},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "request_failed",
            ["error 99999"],
            id="unknown-errno",
        ),
        pytest.param(
            {"http_status": 500},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["HTTP status 500"],
            id="http-500",
        ),
        pytest.param(
            {"garbage": True},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["not JSON"],
            id="garbage",
        ),
        pytest.param(
            {"drop_connection": True},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "cannot_connect",
            ["Cannot connect to 127.0.0.1"],
            id="dropped",
        ),
        pytest.param(
            {"reply_override": {PLAYPROMPT: "[1, 2]"}},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["not a JSON object"],
            id="json-array",
        ),
        pytest.param(
            {"reply_override": {PLAYPROMPT: {"result": "ok"}}},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["no status"],
            id="no-status",
        ),
        pytest.param(
            {"reply_override": {PLAYPROMPT: {"status": "Success"}}},
            {"target": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["without a call id"],
            id="no-callid",
        ),
    ],
)
async def test_single_target_errors(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    prepare: dict[str, Any] | None,
    data: dict[str, Any],
    error_type: type[HomeAssistantError],
    key: str,
    words: list[str],
) -> None:
    """One target failing raises its own translated error, with a readable message."""
    for name, value in (prepare or {}).items():
        setattr(pbx, name, value)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, **data)

    err = exc_info.value
    assert type(err) is error_type
    assert err.translation_domain == DOMAIN
    assert err.translation_key == key
    assert err.translation_placeholders is not None
    assert err.translation_placeholders["entry"] == loaded_entry.title
    message = str(err)
    assert message.startswith(loaded_entry.title)
    for word in words:
        assert word in message
        assert word in err.translation_placeholders["detail"]
    assert "{" not in message
    assert key not in message  # rendered from en.json, not the bare key
    tokens = {r.token for r in pbx.requests if r.token}
    assert tokens
    for token in tokens:
        assert token not in message
        assert token not in str(err.__cause__)
    assert len(pbx.calls(PLAYPROMPT)) == 1
    assert reauth_flows(hass) == []


async def test_timeout(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A PBX that never answers: once the request timeout passes, a translated error."""
    pbx.hang = True
    call = asyncio.ensure_future(play_prompt(hass, loaded_entry, target="1000", prompt="doorbell"))
    await wait_for(lambda: len(pbx.calls(PLAYPROMPT)) == 1)
    assert not call.done()

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=DEFAULT_TIMEOUT + 1))
    with pytest.raises(HomeAssistantError) as exc_info:
        await call

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "timeout"
    assert str(err) == (
        f"{loaded_entry.title} did not answer in time: "
        f"127.0.0.1 did not answer within {DEFAULT_TIMEOUT:g} seconds"
    )
    assert len(pbx.calls(PLAYPROMPT)) == 1
    assert reauth_flows(hass) == []


# -- local validation: nothing is sent ------------------------------------------------------


async def test_target_required(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A Yeastar entry needs a target."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, prompt="doorbell")

    assert exc_info.value.translation_key == "target_required"
    assert loaded_entry.title in str(exc_info.value)
    assert len(pbx.requests) == before


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"target": "1000", "prompt": ""}, "invalid_input", "No prompt was given"),
        ({"target": "1000", "prompt": "   "}, "invalid_input", "A prompt name is empty"),
        ({"target": "1000", "prompt": "123"}, "invalid_input", "123 is only digits"),
        ({"target": "1000", "prompt": 123}, "invalid_input", "123 is only digits"),
        ({"target": "1000", "prompt": "a+"}, "invalid_input", "A prompt name is empty"),
        ({"target": "1000", "prompt": "+"}, "invalid_input", "A prompt name is empty"),
        ({"target": "1000", "prompt": [""]}, "invalid_input", "No prompt was given"),
        ({"target": "1000", "prompt": []}, "nothing_to_play", "Give a prompt to play or a message"),
        (
            {"target": "1000", "prompt": None},
            "nothing_to_play",
            "Give a prompt to play or a message",
        ),
        ({"target": "1000"}, "nothing_to_play", "Give a prompt to play or a message"),
        ({"target": "1000", "prompt": ["x" * 256]}, "invalid_input", "not a valid Custom Prompt"),
        ({"target": "1000", "prompt": "bad\nname"}, "invalid_input", "not a valid Custom Prompt"),
        ({"target": "1000", "prompt": ["doorbell"] * 51}, "invalid_input", "At most 50"),
        ({"target": "abc", "prompt": "doorbell"}, "invalid_input", "abc is not an extension"),
        ({"extension": "abc", "prompt": "doorbell"}, "invalid_input", "abc is not an extension"),
        ({"target": "10 00", "prompt": "doorbell"}, "invalid_input", "is not an extension"),
        ({"target": "-1000", "prompt": "doorbell"}, "invalid_input", "is not an extension"),
        ({"target": True, "prompt": "doorbell"}, "invalid_input", "is not an extension"),
        ({"target": 10.5, "prompt": "doorbell"}, "invalid_input", "is not an extension"),
        ({"target": ["1000", "x"], "prompt": "doorbell"}, "invalid_input", "x is not an ext"),
        ({"target": [], "prompt": "doorbell"}, "target_required", "needs a target"),
        ({"extension": [], "prompt": "doorbell"}, "target_required", "needs a target"),
        ({"target": None, "prompt": "doorbell"}, "target_required", "needs a target"),
        ({"target": "", "prompt": "doorbell"}, "invalid_input", "No extension was given"),
        ({"target": ",", "prompt": "doorbell"}, "invalid_input", "No extension was given"),
        (
            {"target": [str(n) for n in range(2000, 2501)], "prompt": "doorbell"},
            "invalid_input",
            "At most 500 extensions",
        ),
        (
            {"target": "1000", "prompt": [{"url": "https://example.test/a.wav"}]},
            "invalid_input",
            "not media objects",
        ),
    ],
)
async def test_invalid_input_sends_nothing(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    data: dict[str, Any],
    key: str,
    words: str,
) -> None:
    """Input that can be refused locally never reaches the PBX."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, **data)

    assert exc_info.value.translation_key == key
    assert words in str(exc_info.value)
    assert "{" not in str(exc_info.value)
    assert pbx.calls(PLAYPROMPT) == []
    assert len(pbx.requests) == before


async def test_prompt_name_with_plus_in_a_list_is_refused(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A list item with + is no Custom Prompt name: refused locally, as 0.1.0 did.

    One text may join names with +; a list gives one name per item. The client's own
    message says so ("give the names as a list, or rename the prompt").
    """
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", prompt=["hello111", "a+b"])

    assert exc_info.value.translation_key == "invalid_input"
    assert "contains +" in str(exc_info.value)
    assert pbx.calls(PLAYPROMPT) == []


@pytest.mark.parametrize(
    "data",
    [
        {"target": "1000", "prompt": [["hello111"]]},
        {"target": "1000", "prompt": {"name": "hello111"}},
        {"target": "1000", "prompt": [None]},
        {"target": [["1000"]], "prompt": "doorbell"},
        {"extension": {"ext": "1000"}, "prompt": "doorbell"},
        {"target": "1000", "prompt": "doorbell", "autoanswer": "maybe"},
        {"target": "1000", "prompt": "doorbell", "loop": "sometimes"},
        {"target": "1000", "prompt": "doorbell", "unknown_field": "abc"},
    ],
)
async def test_schema_rejects(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX, data: dict[str, Any]
) -> None:
    """Wrong shapes and unknown fields fail the action schema."""
    before = len(pbx.requests)
    with pytest.raises(vol.Invalid):
        await play_prompt(hass, loaded_entry, **data)

    assert pbx.calls(PLAYPROMPT) == []
    assert len(pbx.requests) == before


async def test_target_and_extension_together_are_refused(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """``extension`` is the old name of ``target``: one of the two."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", extension="1001", prompt="doorbell")

    assert exc_info.value.translation_key == "target_and_extension"
    assert str(exc_info.value) == "Give target or its old name extension, not both"
    assert len(pbx.requests) == before


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"call_id": "abc"}, "call_id"),
        ({"loop": True}, "loop"),
        ({"loop": False}, "loop"),
        ({"hang_up": False}, "hang_up"),
        ({"client_context": "doorbell-1"}, "client_context"),
        ({"acknowledge": "1"}, "acknowledge"),  # no key presses reach Home Assistant
        (
            {"loop": True, "call_id": "abc", "hang_up": True, "client_context": "x"},
            "call_id, client_context, hang_up, loop",
        ),
    ],
)
async def test_fields_the_pbx_cannot_honour_are_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    data: dict[str, Any],
    fields: str,
) -> None:
    """Fields outside the PBX's capabilities are named with the backend; nothing is sent."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell", **data)

    err = exc_info.value
    assert err.translation_key == "fields_not_supported"
    assert err.translation_placeholders == {
        "entry": loaded_entry.title,
        "backend": BACKEND_NAME,
        "fields": fields,
    }
    assert str(err) == f"{loaded_entry.title} ({BACKEND_NAME}) cannot use these fields: {fields}"
    assert len(pbx.requests) == before


async def test_refusals_follow_the_backends_capabilities(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """The same fields on Teams: autoanswer and several targets are what it cannot do."""
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], autoanswer=True)
    assert exc_info.value.translation_key == "fields_not_supported"
    assert exc_info.value.translation_placeholders == {
        "entry": graph_loaded.title,
        "backend": "Microsoft Teams",
        "fields": "autoanswer",
    }

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=[USER_ID, USER_ID[::-1]], prompt=[MEDIA])
    assert exc_info.value.translation_key == "one_target_only"
    assert graph.calls_to("POST", "/communications/calls") == []


async def test_config_entry_id_required(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """The schema needs the entry."""
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(
            DOMAIN,
            SERVICE_PLAY_PROMPT,
            {"target": "1000", "prompt": "doorbell"},
            blocking=True,
            return_response=True,
        )


async def test_unknown_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """An id that is no config entry."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, "does-not-exist", target="1000", prompt="doorbell")

    assert exc_info.value.translation_key == "entry_not_found"
    assert str(exc_info.value) == "No Voice Prompt entry has the ID does-not-exist"
    assert len(pbx.requests) == before


async def test_entry_of_another_domain(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A config entry id of another integration is not ours."""
    other = MockConfigEntry(domain="other_domain", title="Other", data={})
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, other, target="1000", prompt="doorbell")

    assert exc_info.value.translation_key == "entry_not_found"
    assert other.entry_id in str(exc_info.value)
    assert pbx.calls(PLAYPROMPT) == []


async def test_unloaded_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """An entry that was unloaded refuses the action."""
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    before = len(pbx.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")

    assert exc_info.value.translation_key == "entry_not_loaded"
    assert loaded_entry.title in str(exc_info.value)
    assert len(pbx.requests) == before


async def test_entry_in_setup_retry(
    hass: HomeAssistant, config_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """An entry waiting for a retry refuses the action."""
    pbx.http_status = 500
    await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    before = len(pbx.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, config_entry, target="1000", prompt="doorbell")

    assert exc_info.value.translation_key == "entry_not_loaded"
    assert len(pbx.requests) == before


# -- credentials and lockout at runtime -----------------------------------------------------


async def test_password_changed_at_runtime(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """New password on the PBX: one failed login, reauth, then silence."""
    pbx.password = "changed"
    pbx.expire_tokens()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "invalid_auth"
    assert str(err) == (
        f"{loaded_entry.title}: 127.0.0.1 refused the API username or password. "
        "Enter the current credentials on the integration page"
    )
    await hass.async_block_till_done()

    flows = reauth_flows(hass)
    assert len(flows) == 1
    assert flows[0]["context"]["entry_id"] == loaded_entry.entry_id
    assert pbx.logins == 2
    requests = len(pbx.requests)

    for _ in range(20):
        with pytest.raises(HomeAssistantError) as again:
            await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
        assert again.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()

    assert pbx.logins == 2
    assert len(pbx.requests) == requests
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert pbx.blocked_ips == {}
    assert len(reauth_flows(hass)) == 1


async def test_ip_blocked_at_runtime(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """A lockout is reported (and kept in a repair issue); it is no reason for reauth."""
    pbx.block_ip()
    pbx.expire_tokens()
    issue_id = f"ip_blocked_{loaded_entry.entry_id}"

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "ip_blocked"
    assert "10 minutes" in str(err)
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "ip_blocked"
    assert issue.translation_placeholders == {"entry": loaded_entry.title, "host": "127.0.0.1"}
    logins = pbx.logins

    # While blocked, the client does not knock again.
    with pytest.raises(HomeAssistantError) as again:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert again.value.translation_key == "ip_blocked"
    assert pbx.logins == logins
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    # The block lifts after 10 minutes: the next action logs in and the issue goes.
    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS + 1))
    response = await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert response["calls"] == _placed(pbx, "1000")
    assert pbx.successful_logins == 2
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_ip_blocked_issue_goes_once_the_pbx_answers_with_a_refusal(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """The PBX answering at all (here: no such extension) means the block is over."""
    pbx.block_ip()
    pbx.expire_tokens()
    issue_id = f"ip_blocked_{loaded_entry.entry_id}"
    with pytest.raises(HomeAssistantError):
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS + 1))
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target="4242", prompt="doorbell")

    assert exc_info.value.translation_key == "invalid_input"
    assert pbx.successful_logins == 2
    assert pbx.calls(PLAYPROMPT)[-1].reply == {"status": "Failed", "errno": "10006"}
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_dead_token_in_token_mode(
    hass: HomeAssistant,
    session: aiohttp.ClientSession,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """A user-supplied token that dies: reauth, never a login, then silence."""
    # Another application logs in and hands its token over.
    other_app = YeastarClient(
        session, pbx.host, port=pbx.port, username="api", password=PASSWORD, verify_ssl=False
    )
    await other_app.device_info()
    (token_value,) = pbx.tokens
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = MockConfigEntry(domain=DOMAIN, title="token", data={**data, CONF_TOKEN: token_value})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert pbx.logins == 1  # the other application's
    pbx.expire_tokens()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, entry, target="1000", prompt="doorbell")
    assert not isinstance(exc_info.value, ServiceValidationError)
    assert exc_info.value.translation_key == "invalid_auth"
    assert "127.0.0.1 refused the API token" in str(exc_info.value)
    assert token_value not in str(exc_info.value)
    await hass.async_block_till_done()
    assert len(reauth_flows(hass, entry)) == 1
    assert pbx.logins == 1
    requests = len(pbx.requests)

    for _ in range(5):
        with pytest.raises(HomeAssistantError):
            await play_prompt(hass, entry, target="1000", prompt="doorbell")
    assert len(pbx.requests) == requests
    assert len(reauth_flows(hass, entry)) == 1


async def test_fresh_token_refused_again(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A token refused right after a successful re-login is the PBX's fault: no reauth."""
    pbx.fail_next[PLAYPROMPT] = ["20004", "20006"]

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "request_failed"
    assert "refused a token it had just issued (error 20006)" in str(err)
    assert pbx.logins == 2
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    # The next action works with the fresh token.
    response = await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert len(response["calls"]) == 1
    assert pbx.logins == 2


async def test_token_expiry_during_broadcast(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """50 extensions with a dead token: one re-login serves them all."""
    extensions = [str(n) for n in range(1010, 1060)]
    pbx.expire_tokens()

    response = await play_prompt(hass, loaded_entry, target=extensions, prompt="alarm")

    assert pbx.logins == 2
    assert pbx.successful_logins == 2
    assert response == {"calls": _placed(pbx, *extensions), "failed": []}
    assert len(set(_callids(pbx).values())) == 50


# -- translations ---------------------------------------------------------------------------

# errors.py's one mapping, as the brief states it: class → (translation key, flow error).
ERROR_KEYS: Final[dict[type[VoicePromptError], tuple[str, str]]] = {
    VoicePromptInputError: ("invalid_input", "unknown"),
    VoicePromptIPBlockedError: ("ip_blocked", "ip_blocked"),
    VoicePromptTenantNotFoundError: ("tenant_not_found", "tenant_not_found"),
    VoicePromptSecretExpiredError: ("secret_expired", "secret_expired"),
    VoicePromptAuthenticationError: ("invalid_auth", "invalid_auth"),
    VoicePromptTokenError: ("invalid_auth", "invalid_auth"),
    VoicePromptTimeoutError: ("timeout", "cannot_connect"),
    VoicePromptCertificateChangedError: ("certificate_changed", "certificate_changed"),
    VoicePromptSSLError: ("ssl_error", "ssl_error"),
    VoicePromptConnectionError: ("cannot_connect", "cannot_connect"),
    VoicePromptResponseError: ("invalid_response", "cannot_connect"),
    # Only the S-Series webhook sees it (and answers 400); never shown.
    YeastarReportError: ("invalid_response", "cannot_connect"),
    VoicePromptAriDisabledError: ("ari_disabled", "ari_disabled"),
    VoicePromptApiDisabledError: ("api_disabled", "api_disabled"),
    VoicePromptRequestError: ("request_failed", "unknown"),
    VoicePromptError: ("unknown_error", "unknown"),
}


def _error_classes() -> list[type[VoicePromptError]]:
    classes: list[type[VoicePromptError]] = []
    stack: list[type[VoicePromptError]] = [VoicePromptError]
    while stack:
        cls = stack.pop()
        classes.append(cls)
        stack.extend(cls.__subclasses__())
    return classes


def _fields(message: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", message))


async def test_every_client_error_becomes_a_translated_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Each client exception class has its key, its words and its placeholders."""
    assert set(_error_classes()) == set(ERROR_KEYS)  # a new class needs a decision here
    for cls, (key, flow_key) in ERROR_KEYS.items():
        err = cls("what the client said", code="1")
        raised = translate_error(hass, loaded_entry, err)
        assert raised.translation_key == key, cls
        assert type(raised) is (
            ServiceValidationError if issubclass(cls, VoicePromptInputError) else HomeAssistantError
        )
        assert raised.translation_placeholders == {
            "entry": loaded_entry.title,
            "detail": "what the client said",
        }
        assert _fields(EXCEPTIONS[key]["message"]) <= set(raised.translation_placeholders)
        assert "what the client said" in str(raised)
        assert "{" not in str(raised)
        TRANSLATIONS_USED.add(f"exceptions.{key}.message")  # shown above, outside an action
        assert needs_reauth(err) is issubclass(cls, VoicePromptAuthenticationError)
        assert errors_module.flow_error(err) == flow_key

        failure = setup_error(loaded_entry, err)
        assert failure.translation_key == key
        assert type(failure) is (
            ConfigEntryAuthFailed
            if issubclass(cls, VoicePromptAuthenticationError)
            else ConfigEntryNotReady
        )
    await hass.async_block_till_done()
    # Refused credentials started one reauth flow (the same entry: one flow, not four).
    assert len(reauth_flows(hass, loaded_entry)) == 1


async def test_messages_render_in_home_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Home Assistant renders a translated message with the placeholders filled."""
    pbx.fail_next[PLAYPROMPT] = ["10016"]
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1001", prompt="doorbell")
    assert str(exc_info.value) == (
        f"{loaded_entry.title} could not do it: The call to extension 1001 was not accepted in time"
    )
    assert PASSWORD not in str(exc_info.value)
