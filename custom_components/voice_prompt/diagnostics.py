"""Diagnostics: the entry and its backend's state, with every secret redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import (
    CONF_CLIENT_SECRET,
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_WEBHOOK_ID,
)
from homeassistant.core import HomeAssistant

from .backends import VoicePromptConfigEntry

# The webhook id is a bearer secret too: whoever knows it can post to the webhook.
TO_REDACT = {CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME, CONF_CLIENT_SECRET, CONF_WEBHOOK_ID}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: VoicePromptConfigEntry
) -> dict[str, Any]:
    """Return what helps troubleshooting, never a credential."""
    backend = entry.runtime_data
    return {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(entry.data, TO_REDACT),
            "options": async_redact_data(entry.options, TO_REDACT),
        },
        "backend": backend.name,
        "capabilities": backend.capabilities.names(),
        **async_redact_data(backend.diagnostics(), TO_REDACT),
    }
