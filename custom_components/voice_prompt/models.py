"""Runtime data of a loaded entry and the factory that builds its client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import YeastarClient, YeastarDeviceInfo
from .const import DEFAULT_PORT, DEFAULT_VERIFY_SSL


@dataclass(slots=True)
class VoicePromptData:
    """What a loaded entry keeps: its client and what the PBX said about itself."""

    client: YeastarClient
    device: YeastarDeviceInfo


type VoicePromptConfigEntry = ConfigEntry[VoicePromptData]


def create_yeastar_client(hass: HomeAssistant, data: Mapping[str, Any]) -> YeastarClient:
    """Build a client on Home Assistant's shared session from entry or form data."""
    verify_ssl = bool(data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL))
    return YeastarClient(
        async_get_clientsession(hass, verify_ssl=verify_ssl),
        data[CONF_HOST],
        port=int(data.get(CONF_PORT, DEFAULT_PORT)),
        username=data.get(CONF_USERNAME),
        password=data.get(CONF_PASSWORD),
        token=data.get(CONF_TOKEN),
        verify_ssl=verify_ssl,
    )
