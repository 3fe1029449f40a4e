"""Which module serves which kind of entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant

from . import backend_graph, backend_yeastar
from .const import BACKEND_GRAPH, BACKEND_YEASTAR, CONF_BACKEND
from .models import VoicePromptConfigEntry


class Backend(Protocol):
    """What a backend module offers (modules satisfy this protocol)."""

    FIELDS: frozenset[str]
    PLATFORMS: list[Platform]

    async def async_setup_entry(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Connect and fill ``entry.runtime_data``; raise ConfigEntry* errors."""

    async def async_unload_entry(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Close the client."""

    async def async_play(
        self, hass: HomeAssistant, entry: VoicePromptConfigEntry, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run play_prompt for this entry and return the response."""


BACKENDS: dict[str, Backend] = {
    BACKEND_YEASTAR: backend_yeastar,
    BACKEND_GRAPH: backend_graph,
}
# Every backend-specific action field; a field of another backend is refused.
BACKEND_FIELDS: frozenset[str] = frozenset().union(
    *(backend.FIELDS for backend in BACKENDS.values())
)


def backend_of(entry: VoicePromptConfigEntry) -> Backend:
    """The module for the entry's backend."""
    return BACKENDS[entry.data[CONF_BACKEND]]
