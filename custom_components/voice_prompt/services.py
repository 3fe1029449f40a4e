"""The ``voice_prompt.play_prompt`` action: schema, dispatch to the backend, response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import voluptuous as vol

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import homeassistant.helpers.config_validation as cv

from .api import VoicePromptError, VoicePromptInputError
from .const import (
    ATTR_AUTOANSWER,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_EXTENSION,
    ATTR_PROMPT,
    BACKEND_YEASTAR,
    CONF_BACKEND,
    DOMAIN,
    LOGGER,
    SERVICE_PLAY_PROMPT,
)
from .models import VoicePromptConfigEntry

_NAME_OR_NAMES = vol.Any(cv.string, [cv.string])

PLAY_PROMPT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_PROMPT): _NAME_OR_NAMES,
        vol.Optional(ATTR_EXTENSION): _NAME_OR_NAMES,
        vol.Optional(ATTR_AUTOANSWER, default=False): cv.boolean,
    }
)

type _Player = Callable[
    [HomeAssistant, VoicePromptConfigEntry, dict[str, Any]], Awaitable[dict[str, Any]]
]


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, from ``async_setup``)."""

    async def async_play_prompt(call: ServiceCall) -> ServiceResponse:
        entry = _loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        player = _PLAYERS[entry.data[CONF_BACKEND]]
        response = await player(hass, entry, dict(call.data))
        return response if call.return_response else None

    hass.services.async_register(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        async_play_prompt,
        schema=PLAY_PROMPT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
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


async def _play_yeastar(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, data: dict[str, Any]
) -> dict[str, Any]:
    """Ring each extension (concurrently, bounded) and report every call id."""
    if ATTR_EXTENSION not in data:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="extension_required",
            translation_placeholders={"entry": entry.title},
        )
    try:
        result = await entry.runtime_data.client.async_play(
            data[ATTR_EXTENSION], data[ATTR_PROMPT], data[ATTR_AUTOANSWER]
        )
    except VoicePromptError as err:
        raise translate_error(hass, entry, err) from err

    failures = result.failures
    if failures and not result.calls:
        # A single extension raised above already; this is a broadcast that all failed.
        for _, failure in failures:
            if failure.needs_new_credentials:
                raise translate_error(hass, entry, failure) from failure
        all_input = all(isinstance(failure, VoicePromptInputError) for _, failure in failures)
        raise (ServiceValidationError if all_input else HomeAssistantError)(
            translation_domain=DOMAIN,
            translation_key="all_extensions_failed",
            translation_placeholders={
                "entry": entry.title,
                "details": "; ".join(f"{ext}: {err}" for ext, err in failures),
            },
        )
    if failures:
        # Callers that ignore the response must still learn about the misses.
        LOGGER.warning(
            "Prompt played on %s of %s extensions on %s; failed: %s",
            len(result.calls),
            len(result.calls) + len(failures),
            entry.title,
            "; ".join(f"{ext}: {err}" for ext, err in failures),
        )
    return {
        "calls": [
            {"extension": extension, "call_id": call_id} for extension, call_id in result.calls
        ],
        "failed": [
            {"extension": extension, "code": err.code, "error": str(err)}
            for extension, err in failures
        ],
    }


def translate_error(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, err: VoicePromptError
) -> HomeAssistantError:
    """Turn a client error into a translated Home Assistant error.

    Refused credentials start the reauth flow: retrying would lock the PBX.
    """
    if err.needs_new_credentials:
        entry.async_start_reauth(hass)
    cls = ServiceValidationError if isinstance(err, VoicePromptInputError) else HomeAssistantError
    return cls(
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders={**err.placeholders, "entry": entry.title},
    )


_PLAYERS: dict[str, _Player] = {BACKEND_YEASTAR: _play_yeastar}
