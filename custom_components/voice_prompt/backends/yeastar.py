"""Yeastar S-Series PBX (API v1.0.0): rings extensions and plays Custom Prompts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import timedelta
import socket
from typing import Any, ClassVar, Final

from homeassistant.components import network
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ServiceValidationError
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util.network import is_ip_address

from ..api import (
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    YeastarClient,
    YeastarDeviceInfo,
)
from ..api.yeastar import DEFAULT_PORT
from ..const import DOMAIN, LOGGER
from ..errors import needs_reauth
from ..validation import vol
from .base import (
    Backend,
    CallEvent,
    CallFailure,
    CallResult,
    CallStatus,
    Capabilities,
    Identity,
    PlayRequest,
    PlayResult,
    VoicePromptConfigEntry,
)
from .host import parse_host

# Yeastar PBXs ship with a self-signed certificate.
DEFAULT_VERIFY_SSL: Final = False
# Well inside the PBX's 30-minute idle limit; the client only sends a heartbeat when idle.
KEEPALIVE_INTERVAL: Final = timedelta(minutes=5)

_PASSWORD = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
_CONNECTION = {
    vol.Required(CONF_HOST): str,
    vol.Required(CONF_PORT, default=DEFAULT_PORT): cv.port,
}
_VERIFY = {vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): bool}
CREDENTIALS_SCHEMA: Final = vol.Schema(
    {
        vol.Required(CONF_USERNAME): TextSelector(TextSelectorConfig(autocomplete="username")),
        vol.Required(CONF_PASSWORD): _PASSWORD,
    }
)
TOKEN_SCHEMA: Final = vol.Schema({vol.Required(CONF_TOKEN): _PASSWORD})
_V1_CAPABILITIES: Final = Capabilities(named_prompts=True, several_targets=True, autoanswer=True)


class YeastarBackend(Backend):
    """One Yeastar S-Series PBX, reached with API credentials or a ready token."""

    kind = "yeastar"
    name = "Yeastar S-Series PBX"
    flow_steps: ClassVar[Mapping[str, vol.Schema]] = {
        "yeastar": vol.Schema({**_CONNECTION, **CREDENTIALS_SCHEMA.schema, **_VERIFY}),
        "yeastar_token": vol.Schema({**_CONNECTION, **TOKEN_SCHEMA.schema, **_VERIFY}),
    }

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Build the client on Home Assistant's shared session."""
        super().__init__(hass, entry)
        self.client = _client(hass, entry.data)
        self.device: YeastarDeviceInfo | None = None
        self._local_ip: str | None = None
        # Whether the repair issue "the PBX blocks us" is shown (it outlives a setup retry).
        self._blocked = (
            ir.async_get(hass).async_get_issue(DOMAIN, self._blocked_issue_id) is not None
        )
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
        values = dict(data)
        address = parse_host(str(values.get(CONF_HOST, "")))
        if address is None:
            return values, {CONF_HOST: "invalid_host"}
        host, port = address
        return {**values, CONF_HOST: host, CONF_PORT: port or values[CONF_PORT]}, {}

    @classmethod
    async def async_identify(cls, hass: HomeAssistant, data: Mapping[str, Any]) -> Identity:
        """Log in once and read the device; one submit costs one login at most."""
        client = _client(hass, data)
        try:
            info = await client.device_info()
        finally:
            await client.async_close()
        return Identity(info.serial, info.name)

    @classmethod
    def describe(cls, data: Mapping[str, Any]) -> str:
        """The PBX's address and port."""
        host = str(data.get(CONF_HOST, ""))
        return f"[{host}]:{data.get(CONF_PORT)}" if ":" in host else f"{host}:{data.get(CONF_PORT)}"

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
        return vol.Schema({**_CONNECTION, **_VERIFY})

    # -- a loaded entry -------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """API v1.0.0: named prompts on extensions, several at once, auto-answer."""
        return _V1_CAPABILITIES

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
        """Log in, read what the PBX is, and keep the token alive."""
        try:
            self.device = await self.client.device_info()
        except VoicePromptError as err:
            # The login may have worked before the failure: log out, or each setup retry
            # would leave another token alive at the PBX for 30 minutes.
            await self.client.async_close()
            self._track(err)
            raise
        self._track(None)
        # The coordinator refreshes only while someone listens; the keepalive is that someone.
        self.entry.async_on_unload(self._keepalive.async_add_listener(lambda: None))

    async def async_play(self, request: PlayRequest) -> PlayResult:
        """Ring each extension (concurrently, bounded) and report every call id."""
        if not request.targets:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="target_required",
                translation_placeholders={"entry": self.entry.title},
            )
        if any(not isinstance(item, str) for item in request.prompts):
            raise VoicePromptInputError("A PBX plays Custom Prompts by name, not media objects")
        # One text holds several ("1000, 1001", "hello111+queue1"; a list of only that
        # text is the same: the action's form sends lists); in a longer list each item
        # is one extension or one prompt name (the client refuses a + or , inside one).
        targets = list(request.targets)
        names = [str(item) for item in request.prompts]
        played = await self.client.async_play(
            targets[0] if len(targets) == 1 else targets,
            names[0] if len(names) == 1 else names,
            bool(request.autoanswer),
        )
        result = PlayResult()
        for extension, call_id in played.calls:
            result.calls.append(
                CallResult(target=extension, call_id=call_id, status=CallStatus.PLACED)
            )
        # Without event reports a placed call has no outcome to tell yet; a failure has.
        for extension, error in played.failures:
            result.failed.append(CallFailure(target=extension, error=error))
            self.async_report(
                CallEvent(
                    status=CallStatus.FAILED,
                    target=extension,
                    reason=error.message,
                    extras={"code": error.code},
                )
            )
        self._track(played.failures[0][1] if played.failures and not played.calls else None)
        return result

    async def async_close(self) -> None:
        """Log out (the keepalive stops with the entry's unload callbacks)."""
        await self.client.async_close()

    def diagnostics(self) -> dict[str, Any]:
        """What the PBX said about itself and the client's state."""
        return {
            "device": None if self.device is None else asdict(self.device),
            "client": self.client.diagnostics(),
            "keepalive_ok": self._keepalive.last_update_success,
        }

    # -- internals ------------------------------------------------------------------------

    async def _async_keepalive(self) -> None:
        """Heartbeat when the token sits idle; refused credentials ask for reauth."""
        try:
            await self.client.async_keepalive(await self._async_local_ip())
        except VoicePromptError as err:
            self._track(err)
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

    @property
    def _blocked_issue_id(self) -> str:
        return f"ip_blocked_{self.entry.entry_id}"

    def _track(self, err: VoicePromptError | None) -> None:
        """A repair issue while the PBX locks Home Assistant out; gone once it answers."""
        issue_id = self._blocked_issue_id
        if isinstance(err, VoicePromptIPBlockedError):
            self._blocked = True
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="ip_blocked",
                translation_placeholders={"entry": self.entry.title, "host": self.client.host},
            )
        elif self._blocked and (err is None or err.code is not None):
            # The PBX answered (a refusal carries its errno too): it no longer blocks us.
            self._blocked = False
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)


def _client(hass: HomeAssistant, data: Mapping[str, Any]) -> YeastarClient:
    """A client on Home Assistant's shared session, from entry or form data."""
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
