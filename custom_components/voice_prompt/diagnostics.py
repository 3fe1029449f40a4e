"""Diagnostics: the entry and the client's state, with every secret redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .models import VoicePromptConfigEntry

TO_REDACT = {CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: VoicePromptConfigEntry
) -> dict[str, Any]:
    """Return what helps troubleshooting, never a credential."""
    return {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(entry.data, TO_REDACT),
            "options": async_redact_data(entry.options, TO_REDACT),
        },
        "device": asdict(entry.runtime_data.device),
        "client": entry.runtime_data.client.diagnostics(),
    }
