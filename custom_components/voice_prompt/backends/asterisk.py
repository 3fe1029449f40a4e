"""Asterisk through ARI (plain Asterisk, FreePBX and other Asterisk-based PBXs).

Calls are originated straight into the entry's Stasis application, so no dialplan is
needed. Sounds, URLs and spoken messages play as ARI media; the application's events tell
how each call went (ringing, answered, keys pressed, played, busy, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
import secrets
from typing import Any, ClassVar, Final
import uuid

from aiohttp import web
from yarl import URL

from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)
from homeassistant.util.hass_dict import HassKey

from ..api import VoicePromptError, VoicePromptInputError
from ..api.ari import (
    DEFAULT_APP,
    DEFAULT_RING_TIMEOUT,
    DEFAULT_TECHNOLOGY,
    MAX_REPEAT,
    MAX_RING_TIMEOUT,
    AriClient,
    AriEvent,
    AriEventType,
    AriInfo,
    check_app,
    normalize_endpoint,
    normalize_media,
    parse_url,
)
from ..const import DOMAIN, LOGGER
from ..speech import SpeechFormat
from ..validation import vol
from .base import (
    Backend,
    CallEvent,
    CallStatus,
    Capabilities,
    Identity,
    PlayRequest,
    PlayResult,
    VoicePromptConfigEntry,
)
from .certificate import ACCEPT_ANY_OPTION, CONF_CERTIFICATE_SHA256, CertificateGuard
from .media import async_media_url, is_media_source
from .pbx import DEFAULT_VERIFY_SSL, SECRET, VERIFY

CONF_APP: Final = "app"
CONF_TECHNOLOGY: Final = "technology"
CONF_RING_TIMEOUT: Final = "ring_timeout"
# Channel technologies offered in the options; another can be typed.
TECHNOLOGIES: Final = ["PJSIP", "SIP", "IAX2", "DAHDI"]
# Where Asterisk fetches spoken messages (see SpeechView).
SPEECH_PATH: Final = "/api/voice_prompt/speech"
_SPOKEN: Final[HassKey[dict[str, bytes]]] = HassKey(f"{DOMAIN}_spoken")

_CREDENTIALS: Final = vol.Schema(
    {
        vol.Required(CONF_USERNAME): TextSelector(TextSelectorConfig(autocomplete="username")),
        vol.Required(CONF_PASSWORD): SECRET,
    }
)
_URL: Final[dict[vol.Marker, Any]] = {vol.Required(CONF_URL): str}
_APP: Final[dict[vol.Marker, Any]] = {vol.Required(CONF_APP, default=DEFAULT_APP): str}
_CAPABILITIES: Final = Capabilities(
    named_prompts=True,
    media_urls=True,
    speech=True,
    several_targets=True,
    repeat=True,
    outcome_events=True,
    dtmf=True,
    external_numbers=True,
)


@dataclass(slots=True)
class _Call:
    """A call in progress: whom the action asked for, and the keys pressed so far."""

    target: str
    digits: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every call of one action plays, and how."""

    media: list[str]
    shown: dict[str, str]  # media as sent → how an error names it
    ring_timeout: int
    repeat: int
    acknowledge: str | None


class AsteriskBackend(Backend):
    """One Asterisk, as a Stasis application over its REST Interface."""

    kind = "asterisk"
    name = "Asterisk"
    flow_steps: ClassVar[Mapping[str, vol.Schema]] = {
        "asterisk": vol.Schema({**_URL, **_CREDENTIALS.schema, **_APP, **VERIFY})
    }
    options_schema = vol.Schema(
        {
            vol.Required(CONF_TECHNOLOGY, default=DEFAULT_TECHNOLOGY): SelectSelector(
                SelectSelectorConfig(
                    options=TECHNOLOGIES, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                )
            ),
            vol.Required(CONF_RING_TIMEOUT, default=DEFAULT_RING_TIMEOUT): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=MAX_RING_TIMEOUT)
            ),
            **ACCEPT_ANY_OPTION,
        }
    )
    # Asterisk plays WAV at the channel's rate: 8 kHz worked, 16 kHz and MP3 did not.
    speech_format = SpeechFormat("wav", 8000)

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Build the client on Home Assistant's shared session and listen to its events."""
        super().__init__(hass, entry)
        self._certificate = CertificateGuard(hass, entry, type(self))
        self.client = _client(
            hass, entry.data, entry.data.get(CONF_APP, DEFAULT_APP), self._certificate.sha256
        )
        self.info: AriInfo | None = None
        self._calls: dict[str, _Call] = {}  # channel id → call
        self._remove_listener = self.client.add_listener(self._on_event)

    # -- config flow ----------------------------------------------------------------------

    @classmethod
    def clean_input(cls, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The URL in its normal form (``pbx`` → ``http://pbx:8088``); a valid app name."""
        values, errors = dict(data), {}
        try:
            values[CONF_URL] = parse_url(str(values.get(CONF_URL, "")))
        except VoicePromptInputError:
            errors[CONF_URL] = "invalid_url"
        try:
            values[CONF_APP] = check_app(values.get(CONF_APP, DEFAULT_APP))
        except VoicePromptInputError:
            errors[CONF_APP] = "invalid_app"
        return values, errors

    @classmethod
    def certificate_address(cls, data: Mapping[str, Any]) -> tuple[str, int] | None:
        """An https ARI URL whose certificate is not verified with the CAs is pinned."""
        url = URL(str(data.get(CONF_URL, "")))
        if url.scheme != "https" or data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL) or not url.host:
            return None
        return url.host, url.port or 443

    @classmethod
    async def async_identify(cls, hass: HomeAssistant, data: Mapping[str, Any]) -> Identity:
        """``/ari/asterisk/info``, then the event websocket (a proxy may refuse that one).

        The websocket registers an application of its own: the entry's would take the
        events of a loaded entry of the same Asterisk over (ApplicationReplaced).
        """
        client = _client(
            hass, data, f"vp-check-{uuid.uuid4().hex[:12]}", data.get(CONF_CERTIFICATE_SHA256)
        )
        try:
            info = await client.asterisk_info()
            await client.async_start()
        finally:
            await client.async_close()
        # Asterisk derives its entity id from a network card; without one it is all zeros.
        unique_id = info.entity_id.lower() if info.entity_id.strip("0:") else client.url
        return Identity(unique_id, info.system_name or "Asterisk")

    @classmethod
    def describe(cls, data: Mapping[str, Any]) -> str:
        """The ARI base URL, as "Asterisk at http://pbx:8088"."""
        text = str(data.get(CONF_URL, ""))
        try:
            return f"Asterisk at {parse_url(text)}"
        except VoicePromptInputError:
            return f"Asterisk at {text}"

    @classmethod
    def title(cls, identity: Identity, data: Mapping[str, Any]) -> str:
        """The system's name and host: "Asterisk (pbx.local)"."""
        return f"{identity.name} ({URL(data[CONF_URL]).host})"

    @classmethod
    def reauth_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """The ARI user of ari.conf and its password."""
        return _CREDENTIALS

    @classmethod
    def reconfigure_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """Where ARI is, the application name and the certificate check; the user stays."""
        return vol.Schema({**_URL, **_APP, **VERIFY})

    # -- a loaded entry -------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Sounds, URLs and speech to endpoints, with outcomes and key presses."""
        return _CAPABILITIES

    @property
    def device_info(self) -> DeviceInfo:
        """The Asterisk server as the device registry shows it."""
        assert self.info is not None
        return DeviceInfo(
            identifiers={self.device_identifier},
            manufacturer="Sangoma",
            model="Asterisk",
            name=self.info.system_name or "Asterisk",
            sw_version=self.info.version,
        )

    async def async_setup(self) -> None:
        """Read what the server is and connect the event websocket (kept up from then on)."""
        try:
            if (first_use := await self._certificate.async_first_use()) is not None:
                self.client.certificate.pin(first_use)
            self.info = await self.client.asterisk_info()
            await self.client.async_start()
        except VoicePromptError as err:
            await self.client.async_close()
            self._certificate.update(err)
            raise
        self._certificate.update(None)

    async def async_play(self, request: PlayRequest) -> PlayResult:
        """Call every target at once; return once Asterisk accepted each call.

        The calls go on in the background (each plays everything, then hangs up) and
        report how they went as events; ``wait`` in the action waits for those.
        """
        targets = list(
            dict.fromkeys(
                part.strip() for item in request.targets for part in item.split(",") if part.strip()
            )
        )
        if not targets:
            raise self._invalid("target_required")
        repeat = 1 if request.repeat is None else request.repeat
        if not 1 <= repeat <= MAX_REPEAT:
            raise VoicePromptInputError(f"repeat must be between 1 and {MAX_REPEAT}")
        options = self.entry.options
        technology = str(options.get(CONF_TECHNOLOGY, DEFAULT_TECHNOLOGY))
        served: list[str] = []
        try:
            media, shown = await self._media(request, served)
        except BaseException:
            self._forget(served)
            raise
        loop = asyncio.get_running_loop()
        plan = _Plan(
            media,
            shown,
            ring_timeout=int(options.get(CONF_RING_TIMEOUT, DEFAULT_RING_TIMEOUT)),
            repeat=repeat,
            acknowledge=request.acknowledge,
        )
        placing = {
            (target, normalize_endpoint(target, technology), f"vp-{uuid.uuid4().hex}"): (
                loop.create_future()
            )
            for target in targets
        }
        self.entry.async_create_background_task(
            self.hass,
            self._async_calls(plan, placing, served),
            f"{DOMAIN} calls of {self.entry.title}",
        )
        placed = await asyncio.gather(*placing.values())
        calls: list[tuple[str, str | None]] = []
        failures: list[tuple[str, VoicePromptError]] = []
        for (target, _, channel_id), error in zip(placing, placed, strict=True):
            if error is None:
                calls.append((target, channel_id))
            else:
                failures.append((target, error))
        result = self.async_placed(calls, failures)
        endpoints = {channel_id: endpoint for _, endpoint, channel_id in placing}
        for call in result.calls:
            call.extras["endpoint"] = endpoints[str(call.call_id)]
        self._certificate.update(failures[0][1] if failures and not result.calls else None)
        return result

    async def async_hang_up(self, call_id: str) -> bool:
        """End a call in progress (it reports ended); False when it is not ours or over."""
        if (call := self._calls.get(call_id)) is None or call.task is None:
            return False
        call.task.cancel()
        await asyncio.wait([call.task])
        return True

    async def async_close(self) -> None:
        """Close the event websocket; calls still in progress end."""
        self._remove_listener()
        await self.client.async_close()

    async def async_stop(self) -> None:
        """The event websocket must not outlive Home Assistant."""
        await self.client.async_close()

    def diagnostics(self) -> dict[str, Any]:
        """What the server said about itself and the client's (websocket) state."""
        return {
            "asterisk": None if self.info is None else asdict(self.info),
            "client": self.client.diagnostics(),
        }

    # -- internals ------------------------------------------------------------------------

    async def _media(
        self, request: PlayRequest, served: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The ARI media to play in order, and how errors name the ones made here.

        The spoken message comes first, served by SpeechView under a new name (added to
        ``served``). ``/local/`` paths and media-source ids become URLs on the instance's
        internal URL (Asterisk is on the local network); one text of sound names may join
        several with ``+``.
        """
        items: list[str] = []
        shown: dict[str, str] = {}
        if request.speech is not None:
            base = self._internal_url()
            served.append(f"{secrets.token_urlsafe(16)}.{request.speech.format.extension}")
            _spoken(self.hass)[served[-1]] = request.speech.audio
            items.append(f"{base}{SPEECH_PATH}/{served[-1]}")
            shown[normalize_media(items[-1])] = _named("the spoken message", items[-1])
        for prompt in request.prompts:
            text = str(prompt.get("url", "")) if isinstance(prompt, Mapping) else prompt
            if ":" in text or text.startswith("/"):
                items.append(await async_media_url(self.hass, text, self._internal_url))
                if is_media_source(text):
                    shown[normalize_media(items[-1])] = _named(text, items[-1])
            else:
                items.extend(name for name in text.split("+") if name)
        return [normalize_media(item) for item in items], shown

    async def _async_calls(
        self,
        plan: _Plan,
        placing: dict[tuple[str, str, str], asyncio.Future[VoicePromptError | None]],
        served: list[str],
    ) -> None:
        """Every call of one action, side by side; the spoken message is served until the end."""
        try:
            await asyncio.gather(
                *(
                    self._async_call(target, endpoint, channel_id, plan, placed)
                    for (target, endpoint, channel_id), placed in placing.items()
                ),
                return_exceptions=True,
            )
        finally:
            self._forget(served)
            for placed in placing.values():  # cancelled before a call got that far
                if not placed.done():
                    placed.set_result(VoicePromptError("The call was stopped before it was placed"))

    async def _async_call(
        self,
        target: str,
        endpoint: str,
        channel_id: str,
        plan: _Plan,
        placed: asyncio.Future[VoicePromptError | None],
    ) -> None:
        """One target's call to its end; placement resolves ``placed``, the end is an event."""
        call = self._calls[channel_id] = _Call(target, task=asyncio.current_task())

        def originated() -> None:
            if not placed.done():
                placed.set_result(None)

        try:
            outcome = await self.client.async_play(
                endpoint,
                plan.media,
                ring_timeout=plan.ring_timeout,
                repeat=plan.repeat,
                acknowledge_digit=plan.acknowledge,
                channel_id=channel_id,
                on_originated=originated,
            )
        except VoicePromptError as err:
            for sent, name in plan.shown.items():  # no token or signature in a message
                err.message = err.message.replace(sent, name)
            if placed.done():
                # Nobody may read the outcome (no wait): a prompt that cannot play is logged.
                LOGGER.warning(
                    "%s: the call to %s failed: %s", self.entry.title, target, err.message
                )
                self._report_end(call, channel_id, CallStatus.FAILED, err.message, code=err.code)
            else:
                placed.set_result(err)
            return
        except asyncio.CancelledError:
            if placed.done():
                self._report_end(
                    call, channel_id, CallStatus.ENDED, "Ended by Home Assistant", hung_up=True
                )
            raise
        finally:
            del self._calls[channel_id]
        self._report_end(
            call,
            channel_id,
            CallStatus(outcome.status.value),  # the same words
            outcome.cause_text,
            endpoint=outcome.endpoint,
            cause=outcome.cause,
            played=outcome.played,
            digits="".join(call.digits),
            hung_up=outcome.hung_up,
        )

    def _report_end(
        self, call: _Call, channel_id: str, status: CallStatus, reason: str | None, **extras: Any
    ) -> None:
        self.async_report(
            CallEvent(
                status=status,
                target=call.target,
                call_id=channel_id,
                reason=reason,
                extras=extras,
                final=True,
            )
        )

    def _forget(self, served: list[str]) -> None:
        """Stop serving spoken messages: the calls that fetch them have ended."""
        for name in served:
            _spoken(self.hass).pop(name, None)

    @callback
    def _on_event(self, event: AriEvent) -> None:
        """Live progress of our calls: ringing, answered, and the keys pressed."""
        call = self._calls.get(event.channel_id or "")
        if call is None:
            return
        if event.type is AriEventType.CHANNEL_DTMF_RECEIVED and event.digit:
            call.digits.append(event.digit)
            return
        if event.type is AriEventType.STASIS_START:
            status = CallStatus.ANSWERED
        elif event.type is AriEventType.CHANNEL_STATE_CHANGE and event.channel_state == "Ringing":
            status = CallStatus.RINGING
        else:
            return
        self.async_report(CallEvent(status=status, target=call.target, call_id=event.channel_id))

    def _internal_url(self) -> str:
        """Where Asterisk fetches audio from Home Assistant."""
        try:
            return get_url(self.hass, allow_external=False)
        except NoURLAvailableError:
            raise self._invalid("internal_url_required") from None

    def _invalid(self, key: str) -> ServiceValidationError:
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"entry": self.entry.title},
        )


class SpeechView(HomeAssistantView):
    """The spoken messages of calls in progress, for Asterisk (which has no login).

    Not Home Assistant's TTS proxy: newer releases stream its WAV with a header that
    claims 4 GB, and Asterisk refuses such a file; the rendered audio has true sizes.
    Each name is random and served only while its action runs.
    """

    url = SPEECH_PATH + "/{name}"
    name = "api:voice_prompt:speech"
    requires_auth = False

    def __init__(self, audio: dict[str, bytes]) -> None:
        """Serve from ``audio`` (name → WAV bytes), which the backends fill."""
        self._audio = audio

    async def get(self, request: web.Request, name: str) -> web.Response:
        """The WAV of one spoken message."""
        if (audio := self._audio.get(name)) is None:
            return web.Response(status=HTTPStatus.NOT_FOUND)
        return web.Response(body=audio, content_type="audio/wav")


def _spoken(hass: HomeAssistant) -> dict[str, bytes]:
    """The audio SpeechView serves; the view is registered with the first one."""
    if (audio := hass.data.get(_SPOKEN)) is None:
        audio = hass.data[_SPOKEN] = {}
        hass.http.register_view(SpeechView(audio))
    return audio


def _named(name: str, url: str) -> str:
    """How an error names audio on Home Assistant: not its URL (a token, a signature)."""
    return f"{name} (from {URL(url).origin()})"


def _client(
    hass: HomeAssistant, data: Mapping[str, Any], app: str, certificate_sha256: str | None
) -> AriClient:
    """A client on Home Assistant's shared session, from entry or form data and a pin."""
    verify_ssl = bool(data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL))
    return AriClient(
        async_get_clientsession(hass, verify_ssl=verify_ssl),
        data[CONF_URL],
        data[CONF_USERNAME],
        data[CONF_PASSWORD],
        app,
        verify_ssl=verify_ssl,
        certificate_sha256=certificate_sha256,
    )
