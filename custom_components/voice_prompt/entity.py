"""What the entities of a named target share: its device, under the entry's device."""

from __future__ import annotations

from collections.abc import Iterator
import inspect
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentry
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity

from .backends import VoicePromptConfigEntry
from .const import ATTR_TARGET, DOMAIN, SUBENTRY_TARGET
from .services import async_play

# Home Assistant links a device to its parent by the parent's registry id since 2026.8,
# by the parent's identifiers before (deprecated since, removed in 2027.8).
_LINK_BY_ID: Final = any(
    "via_device_id" in inspect.get_annotations(cls) for cls in DeviceInfo.__mro__
)


def targets(entry: VoicePromptConfigEntry) -> Iterator[ConfigSubentry]:
    """The entry's named targets."""
    return (sub for sub in entry.subentries.values() if sub.subentry_type == SUBENTRY_TARGET)


def unique_id(subentry: ConfigSubentry, key: str) -> str:
    """A target's entity ``key`` (notify, announce) keeps this id for the subentry's life."""
    return f"{subentry.subentry_id}_{key}"


class TargetEntity(Entity):
    """An entity of a named target (a config subentry of type ``target``)."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: VoicePromptConfigEntry, subentry: ConfigSubentry, key: str) -> None:
        """Name the device after the target; it hangs under the phone system's device."""
        self._entry = entry
        self._subentry_id = subentry.subentry_id
        self._attr_translation_key = key
        self._attr_unique_id = unique_id(subentry, key)
        backend = entry.runtime_data
        info = DeviceInfo(
            identifiers={(DOMAIN, subentry.subentry_id)},
            name=subentry.title,
            manufacturer=backend.device_info.get("manufacturer"),
            model=f"Target {subentry.data[ATTR_TARGET]}",
        )
        # Typed for one release line each: the ignores cover the other.
        if _LINK_BY_ID:
            parent = dr.async_get(backend.hass).async_get_device({backend.device_identifier})
            if parent is not None:
                info["via_device_id"] = parent.id  # type: ignore[typeddict-unknown-key,unused-ignore]
        else:
            info["via_device"] = backend.device_identifier  # type: ignore[typeddict-unknown-key,unused-ignore]
        self._attr_device_info = info

    async def _async_play(self, **fields: Any) -> None:
        """Play on this target with its defaults, overridden by ``fields``."""
        data = self._entry.subentries[self._subentry_id].data
        await async_play(
            self.hass, self._entry, {**data, ATTR_TARGET: [data[ATTR_TARGET]], **fields}
        )
