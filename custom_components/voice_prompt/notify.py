"""A notify entity per named target: ``notify.send_message`` speaks the message in a call."""

from __future__ import annotations

from homeassistant.components.notify import NotifyEntity, NotifyEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .backends import VoicePromptConfigEntry
from .const import ATTR_MESSAGE, ATTR_PROMPT
from .entity import TargetEntity, targets

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: VoicePromptConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One notify entity per named target."""
    for subentry in targets(entry):
        async_add_entities(
            [VoicePromptNotify(entry, subentry, "notify")],
            config_subentry_id=subentry.subentry_id,
        )


class VoicePromptNotify(TargetEntity, NotifyEntity):
    """Calls the target and speaks the message (the title, when given, first)."""

    _attr_name = None  # the target's own name: notify.reception_phone
    _attr_supported_features = NotifyEntityFeature.TITLE

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        """Speak ``message``; only the message plays, not the target's default prompt."""
        text = f"{title}. {message}" if title else message
        await self._async_play(**{ATTR_MESSAGE: text, ATTR_PROMPT: []})
