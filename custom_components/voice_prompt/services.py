"""The ``voice_prompt.play_prompt`` action: schema, dispatch to the backend, response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
import homeassistant.helpers.config_validation as cv

from .backends import BACKEND_FIELDS, backend_of
from .const import (
    ATTR_AUTOANSWER,
    ATTR_CALL_ID,
    ATTR_CLIENT_CONTEXT,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_EXTENSION,
    ATTR_HANG_UP,
    ATTR_LOOP,
    ATTR_PROMPT,
    ATTR_TARGET,
    DOMAIN,
    SERVICE_PLAY_PROMPT,
)
from .models import VoicePromptConfigEntry
from .validation import vol

# A Teams prompt may carry the id Microsoft caches it under.
_MEDIA = vol.Schema({vol.Required("url"): cv.string, vol.Optional("resource_id"): cv.string})


# The validators dispatch on the value's type rather than trying alternatives with
# vol.Any: that raised and caught an exception per miss on every call (issue 5).
def _text_or_texts(value: Any) -> str | list[str]:
    """One text, or a list of texts."""
    if isinstance(value, list):
        return [cv.string(item) for item in value]
    return cv.string(value)


def _prompt_item(value: Any) -> str | dict[str, Any]:
    return _MEDIA(value) if isinstance(value, dict) else cv.string(value)


def _prompts(value: Any) -> Any:
    """A name or URL, a media object, or a list of them."""
    if isinstance(value, list):
        return [_prompt_item(item) for item in value]
    return _prompt_item(value)


# Types only: what each backend accepts is checked by the backend (see backends.py).
_FIELDS: Final[dict[vol.Marker, Callable[[Any], Any]]] = {
    vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
    vol.Required(ATTR_PROMPT): _prompts,
    vol.Optional(ATTR_EXTENSION): _text_or_texts,
    vol.Optional(ATTR_AUTOANSWER): cv.boolean,
    vol.Optional(ATTR_CALL_ID): cv.string,
    vol.Optional(ATTR_TARGET): cv.string,
    vol.Optional(ATTR_CLIENT_CONTEXT): cv.string,
    vol.Optional(ATTR_LOOP): cv.boolean,
    vol.Optional(ATTR_HANG_UP): cv.boolean,
}
PLAY_PROMPT_SCHEMA: Final = vol.Schema(_FIELDS)


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, from ``async_setup``)."""

    async def async_play_prompt(call: ServiceCall) -> ServiceResponse:
        entry = _loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        backend = backend_of(entry)
        foreign = BACKEND_FIELDS - backend.FIELDS
        if not foreign.isdisjoint(call.data):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="fields_not_supported",
                translation_placeholders={
                    "entry": entry.title,
                    "fields": ", ".join(sorted(foreign & call.data.keys())),
                },
            )
        response = await backend.async_play(hass, entry, call.data)
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
