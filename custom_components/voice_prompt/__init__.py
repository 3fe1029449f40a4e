"""Voice Prompt: play prompts into phone calls from Home Assistant."""

from __future__ import annotations

from datetime import datetime

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import ConfigType

from .api import VoicePromptError
from .const import DOMAIN, KEEPALIVE_INTERVAL, LOGGER
from .models import VoicePromptConfigEntry, VoicePromptData, create_yeastar_client
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions: they exist even while no entry is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> bool:
    """Log in to the PBX, read what it is, and keep the token alive."""
    client = create_yeastar_client(hass, entry.data)
    try:
        device = await client.async_validate()
    except VoicePromptError as err:
        # Refused credentials wait for reauth; anything else is retried by Home Assistant.
        failure = ConfigEntryAuthFailed if err.needs_new_credentials else ConfigEntryNotReady
        raise failure(
            translation_domain=DOMAIN,
            translation_key=err.translation_key,
            translation_placeholders=err.placeholders,
        ) from err

    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, device.serial)},
        manufacturer="Yeastar",
        model=device.name,
        name=device.name,
        serial_number=device.serial,
        sw_version=device.firmware_version,
        hw_version=device.hardware_version,
        configuration_url=client.web_url,
    )
    entry.runtime_data = VoicePromptData(client=client, device=device)

    async def _async_keepalive(_: datetime) -> None:
        try:
            await client.async_keepalive()
        except VoicePromptError as err:
            if err.needs_new_credentials:
                entry.async_start_reauth(hass)
                return
            # The next action logs in again if the token is gone; nothing is lost.
            LOGGER.debug("Heartbeat to %s failed: %s", entry.title, err)

    entry.async_on_unload(
        async_track_time_interval(
            hass,
            _async_keepalive,
            KEEPALIVE_INTERVAL,
            name=f"{DOMAIN} keepalive",
            cancel_on_shutdown=True,
        )
    )
    return True


async def async_unload_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> bool:
    """Stop the keepalive (via async_on_unload) and log out."""
    await entry.runtime_data.client.async_close()
    return True
