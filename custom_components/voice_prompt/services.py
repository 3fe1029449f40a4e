"""The ``voice_prompt.play_prompt`` action: schema, dispatch to the backend, response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

import voluptuous as vol

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
# The values each validator returns unchanged: that type, and whether a list of it.
_UNCHANGED: Final[dict[Callable[[Any], Any], tuple[type, bool]]] = {
    cv.string: (str, False),
    cv.boolean: (bool, False),
    _text_or_texts: (str, True),
    _prompts: (str, True),
}
_PASSES: Final = {str(key): _UNCHANGED[validator] for key, validator in _FIELDS.items()}
_REQUIRED: Final = frozenset(str(key) for key in _FIELDS if isinstance(key, vol.Required))


class _PlayPromptSchema(vol.Schema):
    """The declarative schema, with a shortcut for data that already has its types.

    Voluptuous walks every field through generic machinery: the largest item in the
    action's profile (issue 5). Data from YAML, the UI and scripts nearly always
    arrives typed; it is checked in one pass here. Anything else, and every error
    message, goes through the full schema, so results are the same either way.
    """

    def __call__(self, data: Any) -> Any:
        if type(data) is dict and (typed := _already_typed(data)) is not None:
            return typed
        return super().__call__(data)  # type: ignore[no-untyped-call]  # untyped in voluptuous


def _already_typed(data: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of ``data`` when every field has its validated type already, else None."""
    if not data.keys() >= _REQUIRED:
        return None
    typed: dict[str, Any] = {}
    for key, value in data.items():
        if (passes := _PASSES.get(key)) is None:
            return None
        kind, list_too = passes
        if isinstance(value, kind):
            typed[key] = value
        elif list_too and type(value) is list and all(isinstance(item, kind) for item in value):
            typed[key] = list(value)
        else:
            return None
    return typed


PLAY_PROMPT_SCHEMA: Final = _PlayPromptSchema(_FIELDS)


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
