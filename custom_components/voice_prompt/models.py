"""Runtime data of a loaded entry and the factories that build its client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import GraphClient, GraphNotificationVerifier, YeastarClient, YeastarDeviceInfo
from .api.graph import GRAPH_BASE, LOGIN_BASE, OPENID_CONFIG_URL
from .api.yeastar import DEFAULT_PORT
from .const import CONF_TENANT_ID, DEFAULT_VERIFY_SSL


@dataclass(slots=True)
class YeastarData:
    """A loaded PBX entry: its client and what the PBX said about itself."""

    client: YeastarClient
    device: YeastarDeviceInfo


@dataclass(slots=True)
class GraphData:
    """A loaded Microsoft Graph entry: its client and the notification checker."""

    client: GraphClient
    verifier: GraphNotificationVerifier


type VoicePromptData = YeastarData | GraphData
type VoicePromptConfigEntry = ConfigEntry[VoicePromptData]


@dataclass(frozen=True, slots=True)
class GraphEndpoints:
    """Where Microsoft's services are; tests point these at the fake."""

    login_base: str = LOGIN_BASE
    graph_base: str = GRAPH_BASE
    openid_config_url: str = OPENID_CONFIG_URL

    @classmethod
    def from_environment(cls) -> GraphEndpoints:
        """Microsoft's, unless VOICE_PROMPT_GRAPH_SIMULATOR names the bundled simulator.

        Only for development (scripts/demo --graph, scripts/develop): the simulator's
        base URL, e.g. http://127.0.0.1:8089, serves all three endpoints.
        """
        base = os.environ.get("VOICE_PROMPT_GRAPH_SIMULATOR", "").rstrip("/")
        if not base:
            return cls()
        return cls(
            login_base=f"{base}/login",
            graph_base=f"{base}/graph",
            openid_config_url=f"{base}/botframework/.well-known/OpenIdConfiguration",
        )


GRAPH_ENDPOINTS = GraphEndpoints.from_environment()


def create_yeastar_client(hass: HomeAssistant, data: Mapping[str, Any]) -> YeastarClient:
    """Build a PBX client on Home Assistant's shared session from entry or form data."""
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


def create_graph_client(hass: HomeAssistant, data: Mapping[str, Any]) -> GraphClient:
    """Build a Graph client on Home Assistant's shared session."""
    return GraphClient(
        async_get_clientsession(hass),
        data[CONF_TENANT_ID],
        data[CONF_CLIENT_ID],
        data[CONF_CLIENT_SECRET],
        login_base=GRAPH_ENDPOINTS.login_base,
        graph_base=GRAPH_ENDPOINTS.graph_base,
    )


def create_graph_verifier(hass: HomeAssistant, client_id: str) -> GraphNotificationVerifier:
    """Build the checker for notifications addressed to ``client_id``."""
    return GraphNotificationVerifier(
        async_get_clientsession(hass),
        client_id,
        openid_config_url=GRAPH_ENDPOINTS.openid_config_url,
    )
