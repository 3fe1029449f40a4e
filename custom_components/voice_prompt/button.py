"""An announce button per named target: plays the target's default prompt or message."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .backends import VoicePromptConfigEntry
from .const import ATTR_MESSAGE, ATTR_PROMPT, DOMAIN
from .entity import TargetEntity, targets, unique_id

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VoicePromptConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """An announce button for each named target that has something to play."""
    registry = er.async_get(hass)
    for subentry in targets(entry):
        if subentry.data.get(ATTR_PROMPT) or subentry.data.get(ATTR_MESSAGE):
            async_add_entities(
                [VoicePromptAnnounce(entry, subentry, "announce")],
                config_subentry_id=subentry.subentry_id,
            )
        elif entity_id := registry.async_get_entity_id(
            Platform.BUTTON, DOMAIN, unique_id(subentry, "announce")
        ):
            # The target's defaults were cleared: nothing left for its button to play.
            registry.async_remove(entity_id)


class VoicePromptAnnounce(TargetEntity, ButtonEntity):
    """Plays what the target was set up with."""

    async def async_press(self) -> None:
        """Call the target with its default prompt and message."""
        await self._async_play()
