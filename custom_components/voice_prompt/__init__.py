"""Voice Prompt: play prompts into phone calls from Home Assistant."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .backends import backend_of
from .const import DOMAIN
from .models import VoicePromptConfigEntry
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions: they exist even while no entry is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> bool:
    """Set the entry up through its backend, then its platforms (if any)."""
    backend = backend_of(entry)
    await backend.async_setup_entry(hass, entry)
    await hass.config_entries.async_forward_entry_setups(entry, backend.PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> bool:
    """Unload the platforms, then let the backend close its client."""
    backend = backend_of(entry)
    if not await hass.config_entries.async_unload_platforms(entry, backend.PLATFORMS):
        return False
    await backend.async_unload_entry(hass, entry)
    return True
