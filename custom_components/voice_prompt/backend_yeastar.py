"""Yeastar PBX entries: setup with keepalive, and the play_prompt fan-out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_time_interval

from .api import VoicePromptError, VoicePromptInputError
from .const import ATTR_AUTOANSWER, ATTR_EXTENSION, ATTR_PROMPT, DOMAIN, KEEPALIVE_INTERVAL, LOGGER
from .errors import setup_error, translate_error
from .models import VoicePromptConfigEntry, YeastarData, create_yeastar_client

# Action fields only this backend understands.
FIELDS: Final = frozenset({ATTR_EXTENSION, ATTR_AUTOANSWER})
PLATFORMS: Final[list[Platform]] = []


async def async_setup_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
    """Log in to the PBX, read what it is, and keep the token alive."""
    client = create_yeastar_client(hass, entry.data)
    try:
        device = await client.async_validate()
    except VoicePromptError as err:
        # The login may have worked before the failure: log out, or each setup retry
        # would leave another token alive at the PBX for 30 minutes.
        await client.async_close()
        raise setup_error(err) from err

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
    entry.runtime_data = YeastarData(client=client, device=device)

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


async def async_unload_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
    """Log out (the keepalive stops through async_on_unload)."""
    await _data(entry).client.async_close()


async def async_play(
    hass: HomeAssistant, entry: VoicePromptConfigEntry, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Ring each extension (concurrently, bounded) and report every call id."""
    if ATTR_EXTENSION not in data:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="extension_required",
            translation_placeholders={"entry": entry.title},
        )
    try:
        result = await _data(entry).client.async_play(
            data[ATTR_EXTENSION], data[ATTR_PROMPT], data.get(ATTR_AUTOANSWER, False)
        )
    except VoicePromptError as err:
        raise translate_error(hass, entry, err) from err

    failures = result.failures
    details = "; ".join(f"{ext}: {err}" for ext, err in failures)
    if failures and not result.calls:
        # A single extension raised above already; this is a broadcast that all failed.
        for _, failure in failures:
            if failure.needs_new_credentials:
                raise translate_error(hass, entry, failure) from failure
        all_input = all(isinstance(failure, VoicePromptInputError) for _, failure in failures)
        raise (ServiceValidationError if all_input else HomeAssistantError)(
            translation_domain=DOMAIN,
            translation_key="all_extensions_failed",
            translation_placeholders={"entry": entry.title, "details": details},
        )
    if failures:
        # Callers that ignore the response must still learn about the misses.
        LOGGER.warning(
            "Prompt played on %s of %s extensions on %s; failed: %s",
            len(result.calls),
            len(result.calls) + len(failures),
            entry.title,
            details,
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


def _data(entry: VoicePromptConfigEntry) -> YeastarData:
    data = entry.runtime_data
    assert isinstance(data, YeastarData)
    return data
