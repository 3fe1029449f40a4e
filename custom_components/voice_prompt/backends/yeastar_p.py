"""Yeastar P-Series PBX (OpenAPI): extensions, groups and external numbers, with repeat and volume.

Outcomes come from the PBX's event WebSocket (``api.yeastar_p_events``), kept up from
setup to unload; while it is subscribed the entry offers ``wait``, ``escalate`` and
``acknowledge``. Which call an event is about is ``yeastar_p_calls``' business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any, ClassVar, Final

from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PORT,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo

from ..api import VoicePromptError
from ..api.yeastar_p import (
    DEFAULT_PORT,
    PromptFormat,
    YeastarPClient,
    YeastarPSystemInfo,
    normalize_numbers,
)
from ..api.yeastar_p_events import YeastarPEvent, YeastarPEventSocket
from ..const import DOMAIN, LOGGER
from ..speech import Speech, SpeechFormat
from ..validation import vol
from .base import (
    Backend,
    CallStatus,
    Capabilities,
    Identity,
    PlayRequest,
    PlayResult,
    VoicePromptConfigEntry,
)
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
from .yeastar_p_calls import CallTracker

# Custom Prompts made from spoken messages: the prefix and 16 hex digits of the content hash.
SPEECH_PROMPT_PREFIX: Final = "vp_"
# Setup waits this long for the event subscription (then it goes on in the background).
EVENTS_WAIT: Final = 5.0

_CREDENTIALS: Final = vol.Schema(
    {vol.Required(CONF_CLIENT_ID): str, vol.Required(CONF_CLIENT_SECRET): SECRET}
)
_CAPABILITIES: Final = Capabilities(
    named_prompts=True,
    speech=True,
    several_targets=True,
    repeat=True,
    volume=True,
    autoanswer=True,
    external_numbers=True,
    paging=True,
)
# While the event socket is subscribed.
_WITH_EVENTS: Final = replace(_CAPABILITIES, outcome_events=True, dtmf=True)


class YeastarPBackend(Backend):
    """One Yeastar P-Series PBX (appliance, software or cloud edition) as an API application."""

    kind = "yeastar_p"
    name = "Yeastar P-Series PBX"
    flow_steps: ClassVar[Mapping[str, vol.Schema]] = {
        "yeastar_p": vol.Schema({**address_fields(DEFAULT_PORT), **_CREDENTIALS.schema, **VERIFY})
    }
    options_schema = vol.Schema({vol.Optional(CONF_DIAL_PERMISSION): str, **ACCEPT_ANY_OPTION})
    # A spoken message is uploaded as a Custom Prompt: telephone-quality WAV stays small.
    speech_format = SpeechFormat("wav", 8000)

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Build the client on Home Assistant's shared session."""
        super().__init__(hass, entry)
        self._certificate = CertificateGuard(hass, entry, type(self))
        self.client = _client(hass, entry.data, self._certificate.sha256)
        self.system: YeastarPSystemInfo | None = None
        self._blocked = BlockedRepair(hass, entry, self.client.host)
        self._calls = CallTracker()
        self.events = YeastarPEventSocket(self.client, self._on_event)

    # -- config flow ----------------------------------------------------------------------

    @classmethod
    def clean_input(cls, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """A pasted URL becomes its host; a port in it wins over the port field."""
        return clean_address(data)

    @classmethod
    async def async_identify(cls, hass: HomeAssistant, data: Mapping[str, Any]) -> Identity:
        """A token and the PBX's system information: one submit, one token."""
        client = _client(hass, data, data.get(CONF_CERTIFICATE_SHA256))
        try:
            info = await client.system_information()
        finally:
            await client.async_close()
        return Identity(info.serial, info.model or info.name)

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
        """The model and the address: "Yeastar P550 (192.168.5.150)"."""
        return f"{identity.name} ({data[CONF_HOST]})"

    @classmethod
    def reauth_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """A new Client ID and Client Secret (an API application can be replaced)."""
        return _CREDENTIALS

    @classmethod
    def reconfigure_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """The address and certificate check; the credentials stay."""
        return vol.Schema({**address_fields(DEFAULT_PORT), **VERIFY})

    # -- a loaded entry -------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Named prompts to every kind of number; outcomes and keys while events arrive."""
        return _WITH_EVENTS if self.events.subscribed else _CAPABILITIES

    @property
    def events_unavailable(self) -> str | None:
        """Why events do not arrive: the PBX's event socket is not subscribed."""
        if self.events.subscribed:
            return None
        error = self.events.last_error
        return f"the PBX's event socket is {self.events.state}" + (
            f", last error: {error}" if error else ""
        )

    @property
    def device_info(self) -> DeviceInfo:
        """The PBX as the device registry shows it."""
        assert self.system is not None
        return DeviceInfo(
            identifiers={self.device_identifier},
            manufacturer="Yeastar",
            model=self.system.model,
            name=self.system.name,
            serial_number=self.system.serial,
            sw_version=self.system.firmware_version,
            hw_version=self.system.hardware_version,
            configuration_url=self.client.web_url,
        )

    async def async_setup(self) -> None:
        """Get a token, read what the PBX is, and subscribe to its call events.

        A PBX whose event socket cannot be reached now still sets up: the socket keeps
        trying, and outcomes are offered once it is subscribed.
        """
        try:
            if (first_use := await self._certificate.async_first_use()) is not None:
                self.client.certificate.pin(first_use)
            self.system = await self.client.system_information()
        except VoicePromptError as err:
            await self.client.async_close()
            self._blocked.update(err)
            self._certificate.update(err)
            raise
        self._blocked.update(None)
        self._certificate.update(None)
        await self.events.async_start(wait=EVENTS_WAIT)

    async def async_play(self, request: PlayRequest) -> PlayResult:
        """Ring every number (concurrently, bounded); the PBX answers without a call id."""
        targets, prompts = named_play(self.entry, request)
        if request.speech is not None:
            prompts = [await self._async_upload(request.speech), *_names(prompts)]
        names = _names(prompts)
        # Known before the request: the PBX's first event may come before its reply.
        call_ids = {
            number: self._calls.add(
                number, last_prompt=names[-1] if names else None, acknowledge=request.acknowledge
            )
            for number in normalize_numbers(targets)
        }
        try:
            played = await self.client.async_play(
                targets,
                prompts,
                count=request.repeat,
                volume=request.volume,
                auto_answer=bool(request.autoanswer),
                dial_permission=self.entry.options.get(CONF_DIAL_PERMISSION) or None,
            )
        except BaseException:
            for call_id in call_ids.values():
                self._calls.discard(call_id)
            raise
        for number, _ in played.failures:
            self._calls.discard(call_ids[number])
        outcome = played.failures[0][1] if played.failures and not played.accepted else None
        self._blocked.update(outcome)
        self._certificate.update(outcome)
        return self.async_placed(
            ((playback.number, call_ids[playback.number]) for playback in played.accepted),
            played.failures,
        )

    @callback
    def _on_event(self, event: YeastarPEvent) -> None:
        """One event of the PBX: what it means for our calls goes to the outcomes.

        An acknowledged call is ended at once, as on the other backends: the person has
        confirmed, the rest of the prompts need not play.
        """
        for call_event in self._calls.events(event):
            self.async_report(call_event)
            if call_event.status is CallStatus.ACKNOWLEDGED and call_event.call_id:
                self.entry.async_create_background_task(
                    self.hass,
                    self.async_hang_up(call_event.call_id),
                    f"{DOMAIN} hang up an acknowledged call",
                )

    async def async_hang_up(self, call_id: str) -> bool:
        """End a call in progress (its channel is known from the events); False if not.

        A failure is logged, not raised: the call ends by itself once its prompts end.
        """
        if (channel := self._calls.channel(call_id)) is None:
            return False
        try:
            return await self.client.hangup(channel)
        except VoicePromptError as err:
            LOGGER.warning("%s: hanging up a call failed: %s", self.entry.title, err)
            return False

    async def _async_upload(self, speech: Speech) -> str:
        """The spoken message as a Custom Prompt, named by its content: uploaded once."""
        try:
            upload = await self.client.upload_prompt(
                f"{SPEECH_PROMPT_PREFIX}{speech.key[:16]}",
                speech.audio,
                content_type=PromptFormat(speech.format.extension),
            )
        except VoicePromptError as err:
            self._certificate.update(err)
            raise
        return upload.name

    async def async_close(self) -> None:
        """Close the event socket and revoke the token."""
        await self.events.async_close()
        await self.client.async_close()

    async def async_stop(self) -> None:
        """The event socket must not outlive Home Assistant."""
        await self.events.async_close()

    def diagnostics(self) -> dict[str, Any]:
        """What the PBX said about itself, the client's and the event socket's state."""
        return {
            "device": None if self.system is None else asdict(self.system),
            "client": self.client.diagnostics(),
            "events": self.events.diagnostics(),
            "calls": self._calls.diagnostics(),
        }


def _names(prompts: str | list[str]) -> list[str]:
    """Prompt names as a list ("a+b" is two)."""
    return [
        name
        for item in ([prompts] if isinstance(prompts, str) else prompts)
        for name in item.split("+")
        if name
    ]


def _client(
    hass: HomeAssistant, data: Mapping[str, Any], certificate_sha256: str | None
) -> YeastarPClient:
    """A client on Home Assistant's shared session, from entry or form data and a pin."""
    verify_ssl = bool(data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL))
    return YeastarPClient(
        async_get_clientsession(hass, verify_ssl=verify_ssl),
        data[CONF_HOST],
        port=int(data.get(CONF_PORT, DEFAULT_PORT)),
        client_id=data[CONF_CLIENT_ID],
        client_secret=data[CONF_CLIENT_SECRET],
        verify_ssl=verify_ssl,
        certificate_sha256=certificate_sha256,
    )
