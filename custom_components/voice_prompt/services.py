"""The ``voice_prompt.play_prompt`` action: one schema and one response for every backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, Final, cast

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
import homeassistant.helpers.config_validation as cv

from .api import VoicePromptError, VoicePromptInputError
from .backends import PlayRequest, PlayResult, VoicePromptConfigEntry
from .backends.outcomes import OutcomesClosedError
from .const import (
    ATTR_ACKNOWLEDGE,
    ATTR_AUTOANSWER,
    ATTR_CALL_ID,
    ATTR_CLIENT_CONTEXT,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_ESCALATE,
    ATTR_EXTENSION,
    ATTR_HANG_UP,
    ATTR_LANGUAGE,
    ATTR_LOOP,
    ATTR_MESSAGE,
    ATTR_PROMPT,
    ATTR_REPEAT,
    ATTR_TARGET,
    ATTR_TIMEOUT,
    ATTR_TTS_ENGINE,
    ATTR_TTS_OPTIONS,
    ATTR_VOLUME,
    ATTR_WAIT,
    DOMAIN,
    LOGGER,
    SERVICE_PLAY_PROMPT,
)
from .errors import needs_reauth, translate_error
from .escalation import DEFAULT_WAIT_TIMEOUT, MAX_WAIT_TIMEOUT, async_escalate, async_wait_calls
from .speech import Message, async_render, check_message
from .validation import vol

# A Teams prompt may carry the id Microsoft caches it under.
_MEDIA = vol.Schema({vol.Required("url"): cv.string, vol.Optional("resource_id"): cv.string})


def _texts(value: Any) -> list[str]:
    """One text or a list of texts, as a list."""
    return [cv.string(item) for item in cv.ensure_list(value)]


def _prompts(value: Any) -> list[str | dict[str, Any]]:
    """Names or URLs, or media objects, as a list."""
    return [
        _MEDIA(item) if isinstance(item, dict) else cv.string(item)
        for item in cv.ensure_list(value)
    ]


def _whole(value: Any) -> int:
    """cv.positive_int, also for YAML's .inf (voluptuous lets int()'s OverflowError out)."""
    try:
        return int(cv.positive_int(value))
    except OverflowError as err:
        raise vol.Invalid("expected a whole number") from err


# Types only: what the entry's backend can honour is checked against its capabilities.
PLAY_PROMPT_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_TARGET): _texts,
        vol.Optional(ATTR_EXTENSION): _texts,
        vol.Optional(ATTR_PROMPT): _prompts,
        vol.Optional(ATTR_MESSAGE): cv.string,
        vol.Optional(ATTR_TTS_ENGINE): cv.string,
        vol.Optional(ATTR_LANGUAGE): cv.string,
        vol.Optional(ATTR_TTS_OPTIONS): dict,
        vol.Optional(ATTR_REPEAT): _whole,
        vol.Optional(ATTR_VOLUME): _whole,
        vol.Optional(ATTR_AUTOANSWER): cv.boolean,
        vol.Optional(ATTR_CALL_ID): cv.string,
        vol.Optional(ATTR_CLIENT_CONTEXT): cv.string,
        vol.Optional(ATTR_LOOP): cv.boolean,
        vol.Optional(ATTR_HANG_UP): cv.boolean,
        vol.Optional(ATTR_ACKNOWLEDGE): cv.string,
        vol.Optional(ATTR_WAIT): cv.boolean,
        vol.Optional(ATTR_TIMEOUT): vol.All(_whole, vol.Range(min=1, max=MAX_WAIT_TIMEOUT)),
        vol.Optional(ATTR_ESCALATE): cv.boolean,
    }
)
# The capability (a Capabilities field) each optional field needs.
FIELD_CAPABILITIES: Final = {
    ATTR_MESSAGE: "speech",
    ATTR_TTS_ENGINE: "speech",
    ATTR_LANGUAGE: "speech",
    ATTR_TTS_OPTIONS: "speech",
    ATTR_REPEAT: "repeat",
    ATTR_VOLUME: "volume",
    ATTR_AUTOANSWER: "autoanswer",
    ATTR_CALL_ID: "existing_call",
    ATTR_CLIENT_CONTEXT: "client_context",
    ATTR_LOOP: "loop",
    ATTR_HANG_UP: "hang_up",
    ATTR_ACKNOWLEDGE: "dtmf",
    ATTR_WAIT: "outcome_events",
    ATTR_TIMEOUT: "outcome_events",
    ATTR_ESCALATE: "outcome_events",
}
_REQUEST_FIELDS: Final = frozenset(item.name for item in fields(PlayRequest))
# Capabilities that come with the system's call events (which may be off for a while).
_EVENTS: Final = frozenset({"outcome_events", "dtmf"})


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's action (once, from ``async_setup``)."""

    async def async_play_prompt(call: ServiceCall) -> ServiceResponse:
        entry = _loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        result = await async_play(hass, entry, call.data)
        response = _response(result)
        if call.data.get(ATTR_ESCALATE):
            response["acknowledged_by"] = result.acknowledged_by
        return response if call.return_response else None

    hass.services.async_register(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        async_play_prompt,
        schema=PLAY_PROMPT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


async def async_play(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, data: Mapping[str, Any]
) -> PlayResult:
    """Play validated action data on a loaded entry (the action, notify entities, buttons).

    Raises when nothing could be played; a partial broadcast is logged and returned.
    """
    request = _play_request(entry, data)
    backend = entry.runtime_data
    if (text := data.get(ATTR_MESSAGE)) is not None:
        assert backend.speech_format is not None  # _play_request refused it otherwise
        message = Message(
            check_message(text),
            data.get(ATTR_TTS_ENGINE),
            data.get(ATTR_LANGUAGE),
            tuple(sorted(data.get(ATTR_TTS_OPTIONS, {}).items())),
        )
        request = replace(request, speech=await async_render(hass, message, backend.speech_format))
    seconds = data.get(ATTR_TIMEOUT, DEFAULT_WAIT_TIMEOUT)
    try:
        if data.get(ATTR_ESCALATE):
            result, acknowledged_by = await async_escalate(backend, request, seconds)
            result.acknowledged_by = acknowledged_by
            _check_something_played(hass, entry, result)
        else:
            result = await backend.async_play(request)
            _check_something_played(hass, entry, result)
            if data.get(ATTR_WAIT):
                await _async_wait(hass, entry, result, seconds)
    except VoicePromptError as err:
        raise translate_error(hass, entry, err) from err
    except OutcomesClosedError:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="wait_stopped",
            translation_placeholders={"entry": entry.title},
        ) from None
    return result


async def _async_wait(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, result: PlayResult, seconds: float
) -> None:
    """Wait for the calls' outcomes; a system that reports nothing gets a repair issue."""
    backend = entry.runtime_data
    timed_out = await async_wait_calls(backend, result, seconds)
    silent = [
        call for call in timed_out if call.call_id and not backend.outcomes.last(call.call_id)
    ]
    issue_id = f"no_call_events_{entry.entry_id}"
    if not silent:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="no_call_events",
        translation_placeholders={
            "entry": entry.title,
            "backend": backend.name,
            "seconds": str(seconds),
        },
    )


def _loaded_entry(hass: HomeAssistant, entry_id: str) -> VoicePromptConfigEntry:
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"entry": entry.title},
        )
    return cast(VoicePromptConfigEntry, entry)


def _play_request(entry: VoicePromptConfigEntry, data: Mapping[str, Any]) -> PlayRequest:
    """Refuse what the entry's backend cannot do before anything is sent."""
    capabilities = entry.runtime_data.capabilities
    placeholders = {"entry": entry.title, "backend": entry.runtime_data.name}
    if ATTR_TARGET in data and ATTR_EXTENSION in data:
        raise _invalid("target_and_extension", placeholders)
    if ATTR_MESSAGE in data and not capabilities.speech:
        raise _invalid("speech_not_supported", placeholders)
    unsupported = sorted(
        name
        for name, capability in FIELD_CAPABILITIES.items()
        if name in data and not getattr(capabilities, capability)
    )
    if unsupported:
        fields_text = ", ".join(unsupported)
        reason = entry.runtime_data.events_unavailable
        if reason is not None and all(FIELD_CAPABILITIES[name] in _EVENTS for name in unsupported):
            raise _invalid(
                "events_unavailable", {**placeholders, "fields": fields_text, "reason": reason}
            )
        raise _invalid("fields_not_supported", {**placeholders, "fields": fields_text})
    targets = tuple(data.get(ATTR_TARGET, data.get(ATTR_EXTENSION, ())))
    # An escalation calls one target at a time: any backend can go down a list.
    if len(targets) > 1 and not capabilities.several_targets and not data.get(ATTR_ESCALATE):
        raise _invalid("one_target_only", placeholders)
    if ATTR_TIMEOUT in data and not (data.get(ATTR_WAIT) or data.get(ATTR_ESCALATE)):
        raise _invalid("timeout_without_wait", placeholders)
    if not data.get(ATTR_PROMPT) and ATTR_MESSAGE not in data:
        raise _invalid("nothing_to_play", placeholders)
    options = {key: value for key, value in data.items() if key in _REQUEST_FIELDS - {"speech"}}
    return PlayRequest(**options, targets=targets, prompts=tuple(data.get(ATTR_PROMPT, ())))


def _check_something_played(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, result: PlayResult
) -> None:
    """Raise when every target failed; log a partial broadcast (callers may ignore responses)."""
    if not result.failed:
        return
    details = "; ".join(f"{failure.target}: {failure.error.message}" for failure in result.failed)
    if result.calls:
        LOGGER.warning(
            "Played on %s of %s targets of %s; failed: %s",
            len(result.calls),
            len(result.calls) + len(result.failed),
            entry.title,
            details,
        )
        return
    errors = [failure.error for failure in result.failed]
    decisive = next((err for err in errors if needs_reauth(err)), None)
    if decisive is not None or len(errors) == 1:
        raise translate_error(hass, entry, decisive or errors[0]) from (decisive or errors[0])
    all_input = all(isinstance(err, VoicePromptInputError) for err in errors)
    raise (ServiceValidationError if all_input else HomeAssistantError)(
        translation_domain=DOMAIN,
        translation_key="all_targets_failed",
        translation_placeholders={"entry": entry.title, "details": details},
    )


def _response(result: PlayResult) -> dict[str, Any]:
    return {
        "calls": [
            {
                "target": call.target,
                "call_id": call.call_id,
                "status": str(call.status),
                **call.extras,
            }
            for call in result.calls
        ],
        "failed": [
            {"target": failure.target, "code": failure.error.code, "error": failure.error.message}
            for failure in result.failed
        ],
    }


def _invalid(key: str, placeholders: dict[str, str]) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )
