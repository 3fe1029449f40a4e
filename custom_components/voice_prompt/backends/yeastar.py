"""Yeastar S-Series PBX: rings extensions and plays Custom Prompts.

API v1.0.0 on every firmware; API v2.0.0 (firmware 30.13.0.30 or newer) adds repeat,
volume, paging groups and external numbers, which the capabilities then offer. Where Home
Assistant has an internal URL, the login asks the PBX to report how each call ended
(``yeastar_reports``), and the action can wait for that outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import timedelta
import socket
from typing import Any, ClassVar, Final

from homeassistant.components import network, webhook
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    CONF_WEBHOOK_ID,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util.network import is_ip_address

from ..api import VoicePromptError, YeastarClient, YeastarDeviceInfo
from ..api.yeastar import DEFAULT_PORT, ApiVersion, AuthMode
from ..const import LOGGER
from ..errors import needs_reauth
from ..validation import vol
from .base import Backend, Capabilities, Identity, PlayRequest, PlayResult, VoicePromptConfigEntry
from .certificate import ACCEPT_ANY_OPTION, CONF_CERTIFICATE_SHA256, CertificateGuard
from .pbx import (
    CONF_DIAL_PERMISSION,
    DEFAULT_VERIFY_SSL,
    SECRET,
    VERIFY,
    BlockedRepair,
    address_fields,
    clean_address,
    describe_address,
    named_play,
    pinned_address,
)
from .yeastar_reports import YeastarReports

# Well inside the PBX's 30-minute idle limit; the client only sends a heartbeat when idle.
KEEPALIVE_INTERVAL: Final = timedelta(minutes=5)

_CONNECTION = address_fields(DEFAULT_PORT)
CREDENTIALS_SCHEMA: Final = vol.Schema(
    {
        vol.Required(CONF_USERNAME): TextSelector(TextSelectorConfig(autocomplete="username")),
        vol.Required(CONF_PASSWORD): SECRET,
    }
)
TOKEN_SCHEMA: Final = vol.Schema({vol.Required(CONF_TOKEN): SECRET})
_V1_CAPABILITIES: Final = Capabilities(named_prompts=True, several_targets=True, autoanswer=True)
_V2_CAPABILITIES: Final = replace(
    _V1_CAPABILITIES, repeat=True, volume=True, external_numbers=True, paging=True
)


class YeastarBackend(Backend):
    """One Yeastar S-Series PBX, reached with API credentials or a ready token."""

    kind = "yeastar"
    name = "Yeastar S-Series PBX"
    options_schema = vol.Schema({vol.Optional(CONF_DIAL_PERMISSION): str, **ACCEPT_ANY_OPTION})
    flow_steps: ClassVar[Mapping[str, vol.Schema]] = {
        "yeastar": vol.Schema({**_CONNECTION, **CREDENTIALS_SCHEMA.schema, **VERIFY}),
        "yeastar_token": vol.Schema({**_CONNECTION, **TOKEN_SCHEMA.schema, **VERIFY}),
    }

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Build the client on Home Assistant's shared session."""
        super().__init__(hass, entry)
        self._certificate = CertificateGuard(hass, entry, type(self))
        self.client = _client(hass, entry.data, self._certificate.sha256)
        self.device: YeastarDeviceInfo | None = None
        self._local_ip: str | None = None
        self._blocked = BlockedRepair(hass, entry, self.client.host)
        self.reports = YeastarReports(hass, entry, self.async_report)
        self._keepalive = DataUpdateCoordinator[None](
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{entry.title} keepalive",
            update_interval=KEEPALIVE_INTERVAL,
            update_method=self._async_keepalive,
        )

    # -- config flow ----------------------------------------------------------------------

    @classmethod
    def clean_input(cls, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """A pasted URL becomes its host; a port in it wins over the port field."""
        return clean_address(data)

    @classmethod
    async def async_identify(cls, hass: HomeAssistant, data: Mapping[str, Any]) -> Identity:
        """Log in once and read the device; one submit costs one login at most."""
        client = _client(hass, data, data.get(CONF_CERTIFICATE_SHA256))
        try:
            info = await client.device_info()
        finally:
            await client.async_close()
        return Identity(info.serial, info.name)

    @classmethod
    def describe(cls, data: Mapping[str, Any]) -> str:
        """The PBX's address and port."""
        return describe_address(data)

    @classmethod
    def certificate_address(cls, data: Mapping[str, Any]) -> tuple[str, int] | None:
        """The PBX's own address, unless its certificate is verified with the CAs."""
        return pinned_address(data)

    @classmethod
    def title(cls, identity: Identity, data: Mapping[str, Any]) -> str:
        """The model and the address: "Yeastar S100 (192.168.5.150)"."""
        return f"{identity.name} ({data[CONF_HOST]})"

    @classmethod
    def reauth_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """A new token for a token entry, else username and password."""
        return TOKEN_SCHEMA if CONF_TOKEN in data else CREDENTIALS_SCHEMA

    @classmethod
    def reconfigure_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """The address and certificate check; the credentials stay."""
        return vol.Schema({**_CONNECTION, **VERIFY})

    @classmethod
    def new_entry_data(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A fresh webhook id: where the PBX posts this entry's event reports."""
        return {**data, CONF_WEBHOOK_ID: webhook.async_generate_id()}

    # -- a loaded entry -------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """What the PBX's API offers (setup found which API), outcomes where reports come."""
        base = _V2_CAPABILITIES if self.client.api_version is ApiVersion.V2 else _V1_CAPABILITIES
        return replace(base, outcome_events=True) if self._reports_come else base

    @property
    def device_info(self) -> DeviceInfo:
        """The PBX as the device registry shows it."""
        assert self.device is not None
        return DeviceInfo(
            identifiers={self.device_identifier},
            manufacturer="Yeastar",
            model=self.device.name,
            name=self.device.name,
            serial_number=self.device.serial,
            sw_version=self.device.firmware_version,
            hw_version=self.device.hardware_version,
            configuration_url=self.client.web_url,
        )

    async def async_setup(self) -> None:
        """Name the report URL, log in, read what the PBX is, keep the token alive, listen."""
        self.client.report_url = self.reports.async_prepare(self.client.mode is AuthMode.TOKEN)
        try:
            if (first_use := await self._certificate.async_first_use()) is not None:
                self.client.certificate.pin(first_use)
            self.device = await self.client.device_info()
        except VoicePromptError as err:
            # The login may have worked before the failure: log out, or each setup retry
            # would leave another token alive at the PBX for 30 minutes.
            await self.client.async_close()
            self._blocked.update(err)
            self._certificate.update(err)
            raise
        self._blocked.update(None)
        self._certificate.update(None)
        # The coordinator refreshes only while someone listens; the keepalive is that someone.
        self.entry.async_on_unload(self._keepalive.async_add_listener(lambda: None))
        await self.reports.async_start(self.client.host)

    async def async_play(self, request: PlayRequest) -> PlayResult:
        """Ring each extension (concurrently, bounded) and report every call id."""
        targets, prompts = named_play(self.entry, request)
        played = await self.client.async_play(
            targets,
            prompts,
            bool(request.autoanswer),
            count=request.repeat,
            volume=request.volume,
            dial_permission=self.entry.options.get(CONF_DIAL_PERMISSION) or None,
        )
        outcome = played.failures[0][1] if played.failures and not played.calls else None
        self._blocked.update(outcome)
        self._certificate.update(outcome)
        self.reports.async_placed(played.calls)
        return self.async_placed(played.calls, played.failures)

    async def async_close(self) -> None:
        """Stop listening and log out (the keepalive stops with the entry's unload)."""
        self.reports.async_stop()
        await self.client.async_close()

    def diagnostics(self) -> dict[str, Any]:
        """What the PBX said about itself and the client's state."""
        return {
            "device": None if self.device is None else asdict(self.device),
            "client": self.client.diagnostics(),
            "keepalive_ok": self._keepalive.last_update_success,
            "event_reports": self.reports.diagnostics(),
        }

    @property
    def events_unavailable(self) -> str | None:
        """Why the PBX's reports do not reach this entry."""
        if self._reports_come:
            return None
        if self.reports.disabled_reason is not None:
            return self.reports.disabled_reason
        return "the PBX pushes its events over TCP, which this integration does not read"

    # -- internals ------------------------------------------------------------------------

    @property
    def _reports_come(self) -> bool:
        """Reports reach the webhook: it listens, and the PBX posts them over HTTP.

        API v2 may instead push events over a TCP connection (its login says which).
        """
        return self.reports.listening and self.client.event_transport in (None, "HTTP")

    async def _async_keepalive(self) -> None:
        """Heartbeat when the token sits idle; refused credentials ask for reauth.

        The heartbeat names the report URL as it is now (the internal URL may change).
        """
        self.client.report_url = await self.reports.async_refresh(self.client.host)
        try:
            await self.client.async_keepalive(await self._async_local_ip())
        except VoicePromptError as err:
            self._blocked.update(err)
            self._certificate.update(err)
            if needs_reauth(err):
                raise ConfigEntryAuthFailed(err.message) from err
            # The next action logs in again if the token is gone; nothing is lost.
            raise UpdateFailed(err.message) from err

    async def _async_local_ip(self) -> str:
        """This machine's address towards the PBX, as Home Assistant's network sees it."""
        if self._local_ip is None:
            target = self.client.host
            if not is_ip_address(target):
                infos = await self.hass.loop.getaddrinfo(
                    target, self.client.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
                )
                target = str(infos[0][4][0])
            self._local_ip = await network.async_get_source_ip(self.hass, target_ip=target)
        return self._local_ip


def _client(
    hass: HomeAssistant, data: Mapping[str, Any], certificate_sha256: str | None
) -> YeastarClient:
    """A client on Home Assistant's shared session, from entry or form data and a pin."""
    verify_ssl = bool(data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL))
    return YeastarClient(
        async_get_clientsession(hass, verify_ssl=verify_ssl),
        data[CONF_HOST],
        port=int(data.get(CONF_PORT, DEFAULT_PORT)),
        username=data.get(CONF_USERNAME),
        password=data.get(CONF_PASSWORD),
        token=data.get(CONF_TOKEN),
        verify_ssl=verify_ssl,
        certificate_sha256=certificate_sha256,
    )
