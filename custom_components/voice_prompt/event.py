"""Event entity of a Microsoft Graph entry: what happened to the calls it placed."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import GraphEvent
from .api.graph import EVENT_TYPES as GRAPH_EVENT_TYPES
from .const import DOMAIN, SIGNAL_GRAPH_EVENT
from .models import VoicePromptConfigEntry

EVENT_TYPES = list(GRAPH_EVENT_TYPES)
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VoicePromptConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One call-events entity per Graph entry."""
    async_add_entities([VoicePromptCallEvents(entry)])


class VoicePromptCallEvents(EventEntity):
    """Fires on call state changes and prompt results reported by Microsoft Graph."""

    _attr_has_entity_name = True
    _attr_translation_key = "calls"
    _attr_event_types = EVENT_TYPES
    _attr_should_poll = False

    def __init__(self, entry: VoicePromptConfigEntry) -> None:
        """Attach to the entry's service device."""
        self._entry_id = entry.entry_id
        self._attr_unique_id = f"{entry.unique_id}_calls"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, str(entry.unique_id))},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="Microsoft",
            model="Teams calling bot (Graph cloud communications)",
            name=entry.title,
        )

    async def async_added_to_hass(self) -> None:
        """Listen for the entry's notifications."""
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_GRAPH_EVENT.format(self._entry_id), self._handle_event
            )
        )

    @callback
    def _handle_event(self, event: GraphEvent) -> None:
        self._trigger_event(
            event.type,
            {
                "call_id": event.call_id,
                "operation_id": event.operation_id,
                "client_context": event.client_context,
                "result_code": event.result_code,
                "result_subcode": event.result_subcode,
                "result_message": event.result_message,
            },
        )
        self.async_write_ha_state()
