"""A diagnostic sensor per named target: how its latest call went."""

from __future__ import annotations

from typing import Final

from homeassistant.components.sensor import RestoreSensor, SensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .backends import CallEvent, CallStatus, VoicePromptConfigEntry
from .const import ATTR_TARGET, SIGNAL_CALL_EVENT
from .entity import TargetEntity, targets

PARALLEL_UPDATES = 0
_STATUSES: Final = [str(status) for status in CallStatus]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VoicePromptConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One last-outcome sensor per named target."""
    for subentry in targets(entry):
        async_add_entities(
            [VoicePromptLastOutcome(entry, subentry, "last_outcome")],
            config_subentry_id=subentry.subentry_id,
        )


class VoicePromptLastOutcome(TargetEntity, RestoreSensor):
    """The status of the latest call to this target, as it goes (ringing, answered, played)."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_options = _STATUSES

    async def async_added_to_hass(self) -> None:
        """Show what was last known before a restart; listen for the entry's call events."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = last.native_value
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_CALL_EVENT.format(self._entry.entry_id), self._handle_event
            )
        )

    @callback
    def _handle_event(self, event: CallEvent) -> None:
        target = self._entry.subentries[self._subentry_id].data[ATTR_TARGET]
        if event.target != target:
            return
        # The call's outcome so far: an "ended" after "played" still shows played.
        known = (
            self._entry.runtime_data.outcomes.last(event.call_id) if event.call_id else None
        ) or event
        self._attr_native_value = str(known.status)
        self._attr_extra_state_attributes = {
            "call_id": known.call_id,
            "reason": known.reason,
        }
        self.async_write_ha_state()
