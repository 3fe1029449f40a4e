"""The ``voice_prompt.play_prompt`` action against the fake PBX."""

from __future__ import annotations

import ast
from collections.abc import Iterator
import json
import logging
from pathlib import Path
from string import Formatter
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.voice_prompt import backend_graph, backend_yeastar
from custom_components.voice_prompt.api import (
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    YeastarClient,
    normalize_extensions,
    normalize_prompts,
)
from custom_components.voice_prompt.api.yeastar import ERRORS, error_for
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
import custom_components.voice_prompt.services as services_module
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from tests.conftest import play_prompt, reauth_flows
from tests.fakes.yeastar import FakeYeastarPBX

PLAYPROMPT = "extension/playprompt"
EN_JSON = Path(__file__).parent.parent / "custom_components" / DOMAIN / "translations" / "en.json"


def _bodies(pbx: FakeYeastarPBX) -> list[Any]:
    return [r.body for r in pbx.calls(PLAYPROMPT)]


def _callids(pbx: FakeYeastarPBX) -> dict[str, str]:
    """Call id the fake answered, per extension (successful plays only)."""
    return {
        r.body["extid"]: r.reply["callid"]
        for r in pbx.calls(PLAYPROMPT)
        if r.reply is not None and r.reply.get("status") == "Success"
    }


# -- success --------------------------------------------------------------------------------


async def test_issue_example(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The example from the issue: one extension, two prompts, no auto answer."""
    response = await play_prompt(
        hass, loaded_entry, extension="1000", prompt=["hello111", "queue1"], autoanswer=False
    )

    assert _bodies(pbx) == [{"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"}]
    call_id = pbx.calls(PLAYPROMPT)[0].reply["callid"]  # type: ignore[index]
    assert response == {"calls": [{"extension": "1000", "call_id": call_id}], "failed": []}
    # The token from setup is reused: no second login.
    assert pbx.logins == 1


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (
            {"extension": "1000", "prompt": "hello111+queue1"},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"extension": "1000", "prompt": " hello111 + queue1 "},
            {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        ),
        (
            {"extension": "1000", "prompt": "doorbell", "autoanswer": True},
            {"extid": "1000", "prompt": "doorbell", "autoanswer": "yes"},
        ),
        (
            {"extension": "1000", "prompt": "doorbell", "autoanswer": "on"},
            {"extid": "1000", "prompt": "doorbell", "autoanswer": "yes"},
        ),
        (
            {"extension": 1000, "prompt": ["wakeup"]},
            {"extid": "1000", "prompt": "wakeup", "autoanswer": "no"},
        ),
        (
            {"extension": [1001], "prompt": "alarm"},
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
    """String or list prompts, bool autoanswer, int extensions: all send the same request."""
    response = await play_prompt(hass, loaded_entry, **data)

    assert _bodies(pbx) == [body]
    assert response == {
        "calls": [{"extension": body["extid"], "call_id": _callids(pbx)[body["extid"]]}],
        "failed": [],
    }


async def test_several_extensions(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A list of extensions rings each one; every call id comes back, in order."""
    response = await play_prompt(
        hass, loaded_entry, extension=["1000", "1001", "1010"], prompt="lunch_ready"
    )

    assert sorted(b["extid"] for b in _bodies(pbx)) == ["1000", "1001", "1010"]
    assert all(b["prompt"] == "lunch_ready" for b in _bodies(pbx))
    ids = _callids(pbx)
    assert response == {
        "calls": [{"extension": ext, "call_id": ids[ext]} for ext in ("1000", "1001", "1010")],
        "failed": [],
    }
    assert len(set(ids.values())) == 3


async def test_extensions_in_one_text(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Commas or semicolons separate extensions in one text."""
    response = await play_prompt(hass, loaded_entry, extension="1000, 1001;1010", prompt="doorbell")

    assert sorted(b["extid"] for b in _bodies(pbx)) == ["1000", "1001", "1010"]
    assert [c["extension"] for c in response["calls"]] == ["1000", "1001", "1010"]


async def test_duplicate_extensions_are_rung_once(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The same extension given twice (as text and number) is called once."""
    response = await play_prompt(
        hass, loaded_entry, extension=["1000", 1000, " 1000 ", "1001"], prompt="doorbell"
    )

    assert sorted(b["extid"] for b in _bodies(pbx)) == ["1000", "1001"]
    assert [c["extension"] for c in response["calls"]] == ["1000", "1001"]


async def test_without_response(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A blocking call without return_response works and returns nothing."""
    result = await play_prompt(
        hass, loaded_entry, return_response=False, extension="1000", prompt="doorbell"
    )

    assert result is None
    assert len(pbx.calls(PLAYPROMPT)) == 1


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
    assert len(pbx.calls(PLAYPROMPT)) == 1


# -- PBX failures ---------------------------------------------------------------------------


async def test_partial_failure(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two of three extensions ring; the third is reported and logged."""
    with caplog.at_level(logging.WARNING):
        response = await play_prompt(
            hass, loaded_entry, extension=["1000", "4242", "1001"], prompt="doorbell"
        )

    ids = _callids(pbx)
    assert response["calls"] == [
        {"extension": "1000", "call_id": ids["1000"]},
        {"extension": "1001", "call_id": ids["1001"]},
    ]
    assert len(response["failed"]) == 1
    failed = response["failed"][0]
    assert failed["extension"] == "4242"
    assert failed["code"] == "10006"
    assert "4242" in failed["error"]
    assert "does not exist" in failed["error"]

    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.voice_prompt") and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "4242" in warnings[0].getMessage()
    assert "2 of 3" in warnings[0].getMessage()


async def test_all_extensions_fail_on_input(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Every extension unknown: the caller's fault, one error naming them all."""
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, extension=["4242", "4343"], prompt="doorbell")

    err = exc_info.value
    assert err.translation_domain == DOMAIN
    assert err.translation_key == "all_extensions_failed"
    assert "4242" in str(err)
    assert "4343" in str(err)
    assert "{" not in str(err)
    assert len(pbx.calls(PLAYPROMPT)) == 2


async def test_all_extensions_fail_mixed(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """One unknown extension and one offline phone: not only the caller's fault."""
    pbx.set_extension_status("1002", "Unavailable")
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension=["4242", "1002"], prompt="doorbell")

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "all_extensions_failed"
    assert "4242" in str(err)
    assert "1002" in str(err)


async def test_all_extensions_fail_on_auth_raises_auth_error(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A broadcast whose failures include refused credentials reports those (and reauths)."""
    pbx.password = "changed"
    pbx.expire_tokens()
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension=["1000", "1001"], prompt="doorbell")

    assert exc_info.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()
    assert len(reauth_flows(hass)) == 1
    assert pbx.logins == 2


@pytest.mark.parametrize(
    ("prepare", "data", "error_type", "key", "words"),
    [
        pytest.param(
            None,
            {"extension": "4242", "prompt": "doorbell"},
            ServiceValidationError,
            "extension_not_found",
            ["Extension 4242 does not exist"],
            id="10006",
        ),
        pytest.param(
            None,
            {"extension": "1000", "prompt": "hello111+nosuchprompt"},
            ServiceValidationError,
            "prompt_not_found",
            ["hello111+nosuchprompt", "not uploaded"],
            id="10023",
        ),
        pytest.param(
            None,
            {"extension": "1002", "prompt": "doorbell"},
            HomeAssistantError,
            "call_not_connected",
            ["extension 1002", "could not be connected"],
            id="10015",
        ),
        pytest.param(
            None,
            {"extension": "1003", "prompt": "doorbell"},
            HomeAssistantError,
            "extension_busy",
            ["Extension 1003 is not idle"],
            id="10008",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["30001"]}},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "pbx_internal_error",
            ["internal error (error 30001)"],
            id="30001",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["10004"]}},
            {"extension": "1000", "prompt": "doorbell"},
            ServiceValidationError,
            "parameter_blank",
            ["extension 1000", "prompt doorbell"],
            id="10004",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["10024"]}},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "no_outbound_permission",
            ["Extension 1000 has no outbound"],
            id="10024",
        ),
        pytest.param(
            {"fail_next": {PLAYPROMPT: ["99999"]}},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "pbx_error",
            ["error 99999"],
            id="unknown-errno",
        ),
        pytest.param(
            {"http_status": 500},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["HTTP status 500"],
            id="http-500",
        ),
        pytest.param(
            {"garbage": True},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["not JSON"],
            id="garbage",
        ),
        pytest.param(
            {"drop_connection": True},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "cannot_connect",
            ["127.0.0.1"],
            id="dropped",
        ),
        pytest.param(
            {"reply_override": {PLAYPROMPT: "[1, 2]"}},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["not a JSON object"],
            id="json-array",
        ),
        pytest.param(
            {"reply_override": {PLAYPROMPT: {"result": "ok"}}},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["no status"],
            id="no-status",
        ),
        pytest.param(
            {"reply_override": {PLAYPROMPT: {"status": "Success"}}},
            {"extension": "1000", "prompt": "doorbell"},
            HomeAssistantError,
            "invalid_response",
            ["without a call id"],
            id="no-callid",
        ),
    ],
)
async def test_single_extension_errors(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    prepare: dict[str, Any] | None,
    data: dict[str, Any],
    error_type: type[HomeAssistantError],
    key: str,
    words: list[str],
) -> None:
    """One extension failing raises its own translated error, with a readable message."""
    for name, value in (prepare or {}).items():
        setattr(pbx, name, value)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, **data)

    err = exc_info.value
    assert type(err) is error_type
    assert err.translation_domain == DOMAIN
    assert err.translation_key == key
    message = str(err)
    for word in words:
        assert word in message
    assert "{" not in message
    assert key not in message  # rendered from en.json, not the bare key
    tokens = {r.token for r in pbx.requests if r.token}
    assert tokens
    for token in tokens:
        assert token not in message
        assert token not in str(err.__cause__)
    assert reauth_flows(hass) == []


async def test_timeout(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A PBX that never answers: a translated timeout error, no reauth."""
    loaded_entry.runtime_data.client._timeout = aiohttp.ClientTimeout(total=0.3)
    pbx.hang = True

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "timeout"
    assert "did not answer within" in str(err)
    assert len(pbx.calls(PLAYPROMPT)) == 1
    assert reauth_flows(hass) == []


# -- local validation: nothing is sent ------------------------------------------------------


async def test_extension_required(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A Yeastar entry needs an extension."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, prompt="doorbell")

    assert exc_info.value.translation_key == "extension_required"
    assert loaded_entry.title in str(exc_info.value)
    assert len(pbx.requests) == before


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"extension": "1000", "prompt": ""}, "prompt_empty"),
        ({"extension": "1000", "prompt": "   "}, "prompt_empty"),
        ({"extension": "1000", "prompt": "123"}, "prompt_digits"),
        ({"extension": "1000", "prompt": 123}, "prompt_digits"),
        ({"extension": "1000", "prompt": "a+"}, "prompt_empty"),
        ({"extension": "1000", "prompt": "+"}, "prompt_empty"),
        ({"extension": "1000", "prompt": [""]}, "prompt_empty"),
        ({"extension": "1000", "prompt": []}, "prompt_empty"),
        ({"extension": "1000", "prompt": ["hello111", "a+b"]}, "prompt_plus"),
        ({"extension": "1000", "prompt": ["x" * 256]}, "prompt_invalid"),
        ({"extension": "1000", "prompt": "bad\nname"}, "prompt_invalid"),
        ({"extension": "1000", "prompt": ["doorbell"] * 51}, "prompt_too_many"),
        ({"extension": "abc", "prompt": "doorbell"}, "extension_invalid"),
        ({"extension": "10 00", "prompt": "doorbell"}, "extension_invalid"),
        ({"extension": "-1000", "prompt": "doorbell"}, "extension_invalid"),
        ({"extension": True, "prompt": "doorbell"}, "extension_invalid"),
        ({"extension": 10.5, "prompt": "doorbell"}, "extension_invalid"),
        ({"extension": ["1000", "x"], "prompt": "doorbell"}, "extension_invalid"),
        ({"extension": [], "prompt": "doorbell"}, "extension_empty"),
        ({"extension": "", "prompt": "doorbell"}, "extension_empty"),
        ({"extension": ",", "prompt": "doorbell"}, "extension_empty"),
        (
            {"extension": [str(n) for n in range(2000, 2501)], "prompt": "doorbell"},
            "extension_too_many",
        ),
    ],
)
async def test_invalid_input_sends_nothing(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    data: dict[str, Any],
    key: str,
) -> None:
    """Input that can be refused locally never reaches the PBX."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, **data)

    assert exc_info.value.translation_key == key
    assert "{" not in str(exc_info.value)
    assert pbx.calls(PLAYPROMPT) == []
    assert len(pbx.requests) == before


@pytest.mark.parametrize(
    "data",
    [
        {"extension": "1000", "prompt": [["hello111"]]},
        {"extension": "1000", "prompt": {"name": "hello111"}},
        {"extension": "1000", "prompt": None},
        {"extension": "1000", "prompt": [None]},
        {"extension": [["1000"]], "prompt": "doorbell"},
        {"extension": {"ext": "1000"}, "prompt": "doorbell"},
        {"extension": None, "prompt": "doorbell"},
        {"extension": "1000"},
        {"extension": "1000", "prompt": "doorbell", "autoanswer": "maybe"},
        {"extension": "1000", "prompt": "doorbell", "unknown_field": "abc"},
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


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"extension": "1000", "prompt": "doorbell", "call_id": "abc"}, "call_id"),
        ({"extension": "1000", "prompt": "doorbell", "loop": True}, "loop"),
        (
            {"extension": "1000", "prompt": "doorbell", "target": "+3120", "hang_up": False},
            "hang_up, target",
        ),
    ],
)
async def test_other_backends_fields_are_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    data: dict[str, Any],
    fields: str,
) -> None:
    """Teams-only fields on a PBX entry are named in a validation error, nothing is sent."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, **data)

    assert exc_info.value.translation_key == "fields_not_supported"
    assert exc_info.value.translation_placeholders["fields"] == fields
    assert pbx.calls(PLAYPROMPT) == []
    assert len(pbx.requests) == before


async def test_config_entry_id_required(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """The schema needs the entry."""
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(
            DOMAIN,
            SERVICE_PLAY_PROMPT,
            {"extension": "1000", "prompt": "doorbell"},
            blocking=True,
            return_response=True,
        )


async def test_unknown_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """An id that is no config entry."""
    before = len(pbx.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, "does-not-exist", extension="1000", prompt="doorbell")

    assert exc_info.value.translation_key == "entry_not_found"
    assert "does-not-exist" in str(exc_info.value)
    assert len(pbx.requests) == before


async def test_entry_of_another_domain(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A config entry id of another integration is not ours."""
    other = MockConfigEntry(domain="other_domain", title="Other", data={})
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, other, extension="1000", prompt="doorbell")

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
        await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")

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
        await play_prompt(hass, config_entry, extension="1000", prompt="doorbell")

    assert exc_info.value.translation_key == "entry_not_loaded"
    assert len(pbx.requests) == before


# -- credentials at runtime -----------------------------------------------------------------


async def test_password_changed_at_runtime(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """New password on the PBX: one failed login, reauth, then silence."""
    pbx.password = "changed"
    pbx.expire_tokens()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")
    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "invalid_auth"
    assert "127.0.0.1" in str(err)
    await hass.async_block_till_done()

    flows = reauth_flows(hass)
    assert len(flows) == 1
    assert flows[0]["context"]["entry_id"] == loaded_entry.entry_id
    assert pbx.logins == 2
    requests = len(pbx.requests)

    for _ in range(20):
        with pytest.raises(HomeAssistantError) as again:
            await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")
        assert again.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()

    assert pbx.logins == 2
    assert len(pbx.requests) == requests
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert pbx.blocked_ips == {}
    assert len(reauth_flows(hass)) == 1


async def test_ip_blocked_at_runtime(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A lockout is reported as such; it is not a reason to ask for a new password."""
    pbx.block_ip()
    pbx.expire_tokens()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")
    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "ip_blocked"
    assert "10 minutes" in str(err)
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []
    logins = pbx.logins

    # While blocked, the client does not knock again.
    with pytest.raises(HomeAssistantError) as again:
        await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")
    assert again.value.translation_key == "ip_blocked"
    assert pbx.logins == logins


async def test_dead_token_in_token_mode(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """A user-supplied token that dies: reauth, never a login, then silence."""
    async with aiohttp.ClientSession() as session:
        # Another application logs in and hands its token over.
        other_app = YeastarClient(
            session,
            pbx.host,
            port=pbx.port,
            username="api",
            password=pbx.password,
            verify_ssl=False,
        )
        await other_app.async_validate()
    (token_value,) = pbx.tokens
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = MockConfigEntry(domain=DOMAIN, title="token", data={**data, CONF_TOKEN: token_value})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    pbx.expire_tokens()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, entry, extension="1000", prompt="doorbell")
    assert not isinstance(exc_info.value, ServiceValidationError)
    assert exc_info.value.translation_key == "token_rejected"
    assert token_value not in str(exc_info.value)
    await hass.async_block_till_done()
    assert len(reauth_flows(hass)) == 1
    assert pbx.logins == 1  # ours, to get the token
    requests = len(pbx.requests)

    for _ in range(5):
        with pytest.raises(HomeAssistantError):
            await play_prompt(hass, entry, extension="1000", prompt="doorbell")
    assert len(pbx.requests) == requests


async def test_fresh_token_refused_again(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A token refused right after a successful re-login is the PBX's fault: no reauth."""
    pbx.fail_next[PLAYPROMPT] = ["20004", "20006"]

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "token_rejected_again"
    assert "20006" in str(err)
    assert pbx.logins == 2
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    # The next action works with the fresh token.
    response = await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")
    assert len(response["calls"]) == 1
    assert pbx.logins == 2


async def test_token_expiry_during_broadcast(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """50 extensions with a dead token: one re-login serves them all."""
    extensions = [str(n) for n in range(1010, 1060)]
    pbx.expire_tokens()

    response = await play_prompt(hass, loaded_entry, extension=extensions, prompt="alarm")

    assert pbx.logins == 2
    assert loaded_entry.runtime_data.client.stats.relogins == 1
    assert response["failed"] == []
    assert [c["extension"] for c in response["calls"]] == extensions
    call_ids = [c["call_id"] for c in response["calls"]]
    assert len(set(call_ids)) == 50
    assert set(call_ids) == set(_callids(pbx).values())


# -- translations ---------------------------------------------------------------------------


def _client_errors() -> Iterator[VoicePromptError]:
    """Every client error the integration can turn into a Home Assistant error.

    Built the way ``api/yeastar.py`` builds them, with the same placeholders.
    """
    for errno in [*ERRORS, "99999"]:
        yield error_for(errno, "127.0.0.1")
        # What _play_one adds before the error reaches services.py.
        yield error_for(errno, "127.0.0.1").with_context(extension="1000", prompt="a+b")
    yield VoicePromptRequestError(  # YeastarClient._request, fresh token refused
        code="20004",
        translation_key="token_rejected_again",
        message="The PBX refused a token it had just issued (error {code})",
        host="127.0.0.1",
        extension="",
        prompt="",
    )
    yield VoicePromptTimeoutError(host="127.0.0.1", timeout="10")
    yield VoicePromptSSLError("ClientSSLError: bad cert", host="127.0.0.1")
    yield VoicePromptConnectionError("ClientConnectorError: refused", host="127.0.0.1")
    yield VoicePromptResponseError("not JSON", host="127.0.0.1", extension="", prompt="")
    for bad_prompt in ("", "a+", ["a+b"], "123", ["x" * 300], ["a"] * 51, 5, [5], "a\x00"):
        try:
            normalize_prompts(bad_prompt)  # type: ignore[arg-type]
        except VoicePromptError as err:
            yield err
        else:
            pytest.fail(f"{bad_prompt!r} was accepted")
    for bad_ext in ("abc", [], True, {"a"}, [None], [str(n) for n in range(600)]):
        try:
            normalize_extensions(bad_ext)  # type: ignore[arg-type]
        except VoicePromptError as err:
            yield err
        else:
            pytest.fail(f"{bad_ext!r} was accepted")


def _error_classes() -> Iterator[type[VoicePromptError]]:
    stack: list[type[VoicePromptError]] = [VoicePromptError]
    while stack:
        cls = stack.pop()
        yield cls
        stack.extend(cls.__subclasses__())


def _fields(message: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(message) if name}


def _literal_keys(module: ModuleType) -> dict[str, set[str]]:
    """Translation keys written as literals in a module, with the placeholders passed.

    Found in the source (ast), so a key added later is checked without editing this test.
    """
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    keys: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kwargs = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "_validation"
            and isinstance(node.args[0], ast.Constant)
        ):
            # backend_graph._validation(key, entry) passes {"entry": ...}.
            keys[node.args[0].value] = {"entry"}
            continue
        key = kwargs.get("translation_key")
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            continue
        names: set[str] = set()
        placeholders = kwargs.get("translation_placeholders")
        if isinstance(placeholders, ast.Dict):
            names = {k.value for k in placeholders.keys if isinstance(k, ast.Constant)}
        keys[key.value] = names
    return keys


def _service_keys() -> dict[str, set[str]]:
    """Keys raised by services.py itself, with the placeholders it passes."""
    keys: dict[str, set[str]] = {}
    for module in (services_module, backend_yeastar, backend_graph):
        keys.update(_literal_keys(module))
    assert set(keys) >= {
        "entry_not_found",
        "entry_not_loaded",
        "extension_required",
        "all_extensions_failed",
        "fields_not_supported",
        "call_or_target",
        "external_url_required",
        "prompt_failed",
    }
    return keys


def test_every_error_key_has_a_message() -> None:
    """Every translation key the integration can raise exists in en.json."""
    exceptions = json.loads(EN_JSON.read_text(encoding="utf-8"))["exceptions"]
    keys = (
        {key for _, key, _ in ERRORS.values()}
        | {cls.translation_key for cls in _error_classes()}
        | {err.translation_key for err in _client_errors()}
        | set(_service_keys())
        | {"pbx_error", "token_rejected_again"}
    )
    missing = sorted(key for key in keys if key not in exceptions)
    assert missing == []
    assert all(exceptions[key]["message"].strip() for key in keys)


def test_every_placeholder_is_provided() -> None:
    """Each message only uses placeholders its error provides (no KeyError in HA)."""
    exceptions = json.loads(EN_JSON.read_text(encoding="utf-8"))["exceptions"]
    problems: list[str] = []
    for err in _client_errors():
        message = exceptions[err.translation_key]["message"]
        # Setup raises with the client's placeholders only; the action adds "entry".
        try:
            message.format(**err.placeholders)
            message.format(**err.placeholders, entry="x")
        except (KeyError, IndexError) as exc:
            problems.append(f"{err.translation_key}: {exc!r} not in {sorted(err.placeholders)}")
    for key, placeholders in _service_keys().items():
        message = exceptions[key]["message"]
        if not _fields(message) <= placeholders:
            problems.append(f"{key}: {_fields(message)} vs {sorted(placeholders)}")
    assert problems == []


async def test_messages_render_in_home_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Home Assistant renders a translated message with the placeholders filled."""
    pbx.fail_next[PLAYPROMPT] = ["10016"]
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, loaded_entry, extension="1001", prompt="doorbell")
    assert str(exc_info.value) == "The call to extension 1001 was not accepted in time"
