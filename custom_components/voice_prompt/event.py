"""Event entity of an entry: what happened to the calls it placed."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .backends import CallEvent, CallStatus, VoicePromptConfigEntry
from .const import SIGNAL_CALL_EVENT

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VoicePromptConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One call-events entity per entry."""
    async_add_entities([VoicePromptCallEvents(entry)])


class VoicePromptCallEvents(EventEntity):
    """Fires for every call outcome the entry's backend learns of."""

    _attr_has_entity_name = True
    _attr_translation_key = "calls"
    _attr_should_poll = False

    def __init__(self, entry: VoicePromptConfigEntry) -> None:
        """Attach to the entry's device."""
        self._entry_id = entry.entry_id
        self._attr_event_types = [str(status) for status in CallStatus]
        self._attr_unique_id = f"{entry.unique_id}_calls"
        self._attr_device_info = DeviceInfo(identifiers={entry.runtime_data.device_identifier})

    async def async_added_to_hass(self) -> None:
        """Listen for the entry's call events."""
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_CALL_EVENT.format(self._entry_id), self._handle_event
            )
        )

    @callback
    def _handle_event(self, event: CallEvent) -> None:
        self._trigger_event(
            str(event.status),
            {
                "target": event.target,
                "call_id": event.call_id,
                "reason": event.reason,
                **event.extras,
            },
        )
        self.async_write_ha_state()
