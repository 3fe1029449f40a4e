"""Voice Prompt: announcements into phone calls from Home Assistant."""

from __future__ import annotations

from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .api import VoicePromptError
from .backends import BACKENDS, VoicePromptConfigEntry
from .const import CONF_BACKEND, DOMAIN
from .errors import setup_error
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
# Every entry has its call-events entity and its named targets' notify entities,
# buttons and last-call sensors; a backend may add platforms of its own.
PLATFORMS = (Platform.BUTTON, Platform.EVENT, Platform.NOTIFY, Platform.SENSOR)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the action: it exists even while no entry is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> bool:
    """Connect the entry's backend, register its device, set up the platforms."""
    backend = BACKENDS[entry.data[CONF_BACKEND]](hass, entry)
    try:
        await backend.async_setup()
    except VoicePromptError as err:
        raise setup_error(entry, err) from err
    entry.runtime_data = backend
    # Whoever still waits for a call's outcome stops waiting, rather than outlive the entry.
    entry.async_on_unload(backend.outcomes.close)

    async def _async_stop(event: Event) -> None:
        # Home Assistant stops without unloading entries: nothing of the backend may linger.
        backend.outcomes.close()
        await backend.async_stop()

    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_stop))
    dr.async_get(hass).async_get_or_create(config_entry_id=entry.entry_id, **backend.device_info)
    await hass.config_entries.async_forward_entry_setups(entry, _platforms(entry))
    targets = _targets(entry)

    async def _async_targets_changed(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        # A named target added, changed or removed brings its entities and device along;
        # options need no reload (the action reads them on every call).
        if _targets(entry) != targets:
            await hass.config_entries.async_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_targets_changed))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: VoicePromptConfigEntry) -> bool:
    """Unload the platforms, then let the backend close its connection."""
    if not await hass.config_entries.async_unload_platforms(entry, _platforms(entry)):
        return False
    await entry.runtime_data.async_close()
    return True


def _targets(entry: VoicePromptConfigEntry) -> dict[str, tuple[str, dict[str, Any]]]:
    """What the named targets are now (Home Assistant changes a subentry in place)."""
    return {key: (sub.title, dict(sub.data)) for key, sub in entry.subentries.items()}


def _platforms(entry: VoicePromptConfigEntry) -> list[Platform]:
    extra = BACKENDS[entry.data[CONF_BACKEND]].platforms
    return [*PLATFORMS, *(platform for platform in extra if platform not in PLATFORMS)]
