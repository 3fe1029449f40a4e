"""Client errors → translated Home Assistant errors."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
)

from .api import VoicePromptError, VoicePromptInputError
from .const import DOMAIN
from .models import VoicePromptConfigEntry


def translate_error(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, err: VoicePromptError
) -> HomeAssistantError:
    """The caller's mistakes are validation errors; refused credentials start reauth.

    Retrying refused credentials would lock the PBX, so reauth is the only way on.
    """
    if err.needs_new_credentials:
        entry.async_start_reauth(hass)
    cls = ServiceValidationError if isinstance(err, VoicePromptInputError) else HomeAssistantError
    return cls(
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders={**err.placeholders, "entry": entry.title},
    )


def setup_error(err: VoicePromptError) -> HomeAssistantError:
    """Refused credentials wait for reauth; anything else is retried by Home Assistant."""
    failure = ConfigEntryAuthFailed if err.needs_new_credentials else ConfigEntryNotReady
    return failure(
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders=err.placeholders,
    )
