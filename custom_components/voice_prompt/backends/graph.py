"""Microsoft Teams through Graph cloud communications: place a call, play media, hang up.

A key the callee presses (``acknowledge``) reaches Home Assistant through subscribeToTone,
and calls held up (a loop, a call kept) are kept alive with keepAlive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
import os
from typing import Any, ClassVar, Final
import uuid

from aiohttp import web

from homeassistant.components import webhook
from homeassistant.const import CONF_CLIENT_ID, CONF_CLIENT_SECRET, CONF_WEBHOOK_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from ..api import (
    GraphClient,
    GraphEvent,
    GraphEventType,
    GraphNotificationVerifier,
    VoicePromptAuthenticationError,
    check_client_context,
    parse_media,
    parse_target,
)
from ..api.graph import (
    GRAPH_BASE,
    KEEP_ALIVE_INTERVAL,
    LOGIN_BASE,
    MAX_NOTIFICATION_BYTES,
    OPENID_CONFIG_URL,
    GraphNotificationError,
    NotificationDrop,
    parse_key,
)
from ..const import DOMAIN
from ..speech import Speech, SpeechFormat
from ..validation import vol
from .base import (
    Backend,
    CallEvent,
    CallResult,
    CallStatus,
    Capabilities,
    Identity,
    PlayRequest,
    PlayResult,
    VoicePromptConfigEntry,
)
from .inbound import read_body
from .media import async_media_url, is_media_source
from .outcomes import REMEMBERED_CALLS

CONF_TENANT_ID: Final = "tenant_id"
CONF_APPLICATION_INSTANCE_ID: Final = "application_instance_id"
CONF_HANG_UP: Final = "hang_up"
DEFAULT_HANG_UP: Final = True
ESTABLISH_TIMEOUT: Final = 60.0
COMPLETION_TIMEOUT: Final = 600.0

_SECRET = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
SECRET_SCHEMA: Final = vol.Schema({vol.Required(CONF_CLIENT_SECRET): _SECRET})
APP_SCHEMA: Final = vol.Schema(
    {vol.Required(CONF_TENANT_ID): str, vol.Required(CONF_CLIENT_ID): str, **SECRET_SCHEMA.schema}
)

# The ids Microsoft caches spoken messages under: one per content key, the same every time.
_SPEECH_IDS: Final = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://github.com/voice-prompt/voice-prompt#speech"
)

_CAPABILITIES: Final = Capabilities(
    media_urls=True,
    speech=True,
    outcome_events=True,
    dtmf=True,
    external_numbers=True,
    existing_call=True,
    client_context=True,
    loop=True,
    hang_up=True,
)
# What a notification tells, in the words every backend uses.
_STATUS: Final = {
    GraphEventType.CALL_ESTABLISHED: CallStatus.ANSWERED,
    GraphEventType.PROMPT_COMPLETED: CallStatus.PLAYED,
    GraphEventType.PROMPT_FAILED: CallStatus.FAILED,
    GraphEventType.CALL_TERMINATED: CallStatus.ENDED,
}
# How the webhook answers a body the tracker refused.
_REFUSED_STATUS: Final = {NotificationDrop.TOO_LARGE: 413, NotificationDrop.NOT_JSON: 400}


@dataclass(frozen=True, slots=True)
class GraphEndpoints:
    """Where Microsoft's services are; development points these at the simulator."""

    login_base: str = LOGIN_BASE
    graph_base: str = GRAPH_BASE
    openid_config_url: str = OPENID_CONFIG_URL

    @classmethod
    def from_environment(cls) -> GraphEndpoints:
        """Microsoft's, unless VOICE_PROMPT_GRAPH_SIMULATOR names the bundled simulator.

        Only for development (scripts/demo, scripts/develop): the simulator's base URL,
        e.g. http://127.0.0.1:8089, serves all three endpoints.
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


class TeamsBackend(Backend):
    """An Entra ID app registered as a Teams calling bot."""

    kind = "graph"
    name = "Microsoft Teams"
    flow_steps: ClassVar[Mapping[str, vol.Schema]] = {"graph": APP_SCHEMA}
    options_schema = vol.Schema(
        {
            vol.Optional(CONF_APPLICATION_INSTANCE_ID): str,
            vol.Required(CONF_HANG_UP, default=DEFAULT_HANG_UP): bool,
        }
    )
    # What service-hosted media plays: WAV, mono, 16-bit, 16 kHz (Microsoft's mediaInfo).
    speech_format = SpeechFormat("wav", 16000)

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Build the client and the notification checker on the shared session."""
        super().__init__(hass, entry)
        self.client = _client(hass, entry.data)
        # The tracker decides which notifications act; the entity hears what acted.
        self.client.tracker.name = entry.title
        self.client.tracker.add_listener(self._report)
        # Each placed call's target as the action named it: its events name it too.
        self._targets: OrderedDict[str, str] = OrderedDict()
        self.verifier = GraphNotificationVerifier(
            async_get_clientsession(hass),
            entry.data[CONF_CLIENT_ID],
            openid_config_url=GRAPH_ENDPOINTS.openid_config_url,
        )

    # -- config flow ----------------------------------------------------------------------

    @classmethod
    async def async_identify(cls, hass: HomeAssistant, data: Mapping[str, Any]) -> Identity:
        """One client-credentials token request proves tenant, app and secret."""
        await _client(hass, data).async_validate()
        # Entra ID treats GUIDs case-insensitively: so does the unique id.
        return Identity(
            f"{data[CONF_TENANT_ID].lower()}_{data[CONF_CLIENT_ID].lower()}", "Microsoft Teams"
        )

    @classmethod
    def describe(cls, data: Mapping[str, Any]) -> str:
        """The tenant the token was asked of."""
        return f"Microsoft Entra ID (tenant {data.get(CONF_TENANT_ID)})"

    @classmethod
    def title(cls, identity: Identity, data: Mapping[str, Any]) -> str:
        """Teams and the start of the application id."""
        return f"Microsoft Teams ({data[CONF_CLIENT_ID][:8]})"

    @classmethod
    def reauth_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """A new client secret."""
        return SECRET_SCHEMA

    @classmethod
    def reconfigure_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """The app registration's details."""
        return APP_SCHEMA

    @classmethod
    def new_entry_data(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """A fresh webhook id: where Microsoft posts this entry's notifications."""
        return {**data, CONF_WEBHOOK_ID: webhook.async_generate_id()}

    # -- a loaded entry -------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Media URLs and spoken messages into a placed or existing call, with outcomes."""
        return _CAPABILITIES

    @property
    def device_info(self) -> DeviceInfo:
        """The app, as a service device."""
        return DeviceInfo(
            identifiers={self.device_identifier},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="Microsoft",
            model="Teams calling bot (Graph cloud communications)",
            name=self.entry.title,
        )

    async def async_setup(self) -> None:
        """Prove the app credentials, then listen for Graph's notifications."""
        await self.client.async_validate()
        webhook.async_register(
            self.hass,
            DOMAIN,
            f"{self.entry.title} notifications",
            self.entry.data[CONF_WEBHOOK_ID],
            self._async_handle_webhook,
            local_only=False,  # Microsoft's servers post from the internet
            allowed_methods=["POST"],
        )
        self._external_url()  # a repair issue now, rather than at the first action

    async def async_close(self) -> None:
        """Stop listening and cancel anyone still waiting for a notification."""
        webhook.async_unregister(self.hass, self.entry.data[CONF_WEBHOOK_ID])
        await self.client.async_close()

    async def async_stop(self) -> None:
        """Calls still held stop being kept alive."""
        await self.client.async_close()

    async def async_play(self, request: PlayRequest) -> PlayResult:
        """Play into ``call_id``, or call the target, play, wait for the end, hang up."""
        target_text = request.targets[0] if request.targets else None
        if (request.call_id is None) == (target_text is None):
            raise self._invalid("call_or_target")
        if target_text is not None:
            target = parse_target(target_text)
            callback: str | None = self._require_external_url() + webhook.async_generate_path(
                self.entry.data[CONF_WEBHOOK_ID]
            )
        else:
            target, callback = None, None
        client_context = check_client_context(request.client_context)
        key = None if request.acknowledge is None else parse_key(request.acknowledge)
        media = parse_media(await self._media(request))
        options = self.entry.options
        result = await self.client.async_play(
            media,
            client_context=client_context,
            call_id=request.call_id,
            target=target,
            callback_uri=callback,
            source_instance_id=options.get(CONF_APPLICATION_INSTANCE_ID),
            loop=bool(request.loop),
            hang_up=(
                request.hang_up
                if request.hang_up is not None
                else options.get(CONF_HANG_UP, DEFAULT_HANG_UP)
            ),
            acknowledge=key,
            establish_timeout=ESTABLISH_TIMEOUT,
            completion_timeout=COMPLETION_TIMEOUT,
            on_placed=None if target_text is None else partial(self._placed, target_text),
        )
        outcome = result.outcome
        if result.status == "failed":
            raise self._failed(outcome.result_code, outcome.result_subcode, outcome.result_message)
        extras: dict[str, Any] = {
            "operation_id": result.operation.id,
            "client_context": result.operation.client_context or client_context,
            "hung_up": result.hung_up,
        }
        if result.finished:
            extras["result_code"] = outcome.result_code
            extras["result_subcode"] = outcome.result_subcode
        if result.acknowledged is not None:
            status = CallStatus.ACKNOWLEDGED
            extras["digit"] = result.acknowledged.tone
        else:
            status = CallStatus.PLAYED if result.finished else CallStatus.ANSWERED
        call = CallResult(
            target=target.id if target else result.call_id,
            call_id=result.call_id,
            status=status,
            extras=extras,
        )
        return PlayResult(calls=[call])

    def diagnostics(self) -> dict[str, Any]:
        """The client's token state and counters; what notifications were refused or ignored."""
        return {
            "client": self.client.diagnostics(),
            "notifications": self.client.tracker.diagnostics(),
        }

    # -- internals ------------------------------------------------------------------------

    async def _async_handle_webhook(
        self, hass: HomeAssistant, webhook_id: str, request: web.Request
    ) -> web.Response:
        """Check the Bot Framework token, read a bounded body, and let the tracker act.

        Only verified senders get their body read, at most MAX_NOTIFICATION_BYTES of it.
        The tracker counts every refusal and logs it quietly; whatever it does not act on
        (a copy, a call not placed here) is still acknowledged with 202, as Graph expects.
        """
        tracker = self.client.tracker
        try:
            await self.verifier.verify(request.headers.get("Authorization"))
        except VoicePromptAuthenticationError as err:
            tracker.refuse(NotificationDrop.UNAUTHORIZED, err)
            return web.Response(status=401)
        body = await read_body(request, MAX_NOTIFICATION_BYTES)
        if body is None:
            tracker.refuse(NotificationDrop.TOO_LARGE)
            return web.Response(status=413)
        try:
            tracker.handle_body(body)  # the listener reports what acted
        except GraphNotificationError as err:
            return web.Response(status=_REFUSED_STATUS[err.kind])
        return web.Response(status=202)

    def _placed(self, target: str, call_id: str) -> None:
        self._targets[call_id.lower()] = target  # Graph's ids are GUIDs: any case
        while len(self._targets) > REMEMBERED_CALLS:
            self._targets.popitem(last=False)

    def _report(self, event: GraphEvent) -> None:
        """Tell what a notification that acted means, in the words every backend uses.

        Only the key that acknowledges a call is news among key presses; the prompts
        that key stopped are not reported as failed.
        """
        if event.type is GraphEventType.TONE:
            if (acknowledgement := self.client.acknowledgement(event)) is not None:
                self.async_report(
                    CallEvent(
                        status=CallStatus.ACKNOWLEDGED,
                        target=self._targets.get(event.call_id.lower()),
                        call_id=event.call_id,
                        extras={"digit": acknowledgement.key},
                        final=acknowledgement.hangs_up,
                    )
                )
            return
        if self.client.stopped(event.operation_id):
            return
        self.async_report(_call_event(event, self._targets.get(event.call_id.lower())))

    def _external_url(self) -> str | None:
        """The instance's external HTTPS URL (Microsoft must reach it), kept in a repair."""
        issue_id = f"external_url_{self.entry.entry_id}"
        try:
            url = get_url(self.hass, allow_internal=False, require_ssl=True, prefer_external=True)
        except NoURLAvailableError:
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key="external_url_required",
                translation_placeholders={"entry": self.entry.title},
            )
            return None
        ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        return url

    def _require_external_url(self) -> str:
        if (url := self._external_url()) is None:
            raise self._invalid("external_url_required")
        return url

    async def _media(self, request: PlayRequest) -> list[str | Mapping[str, Any]]:
        """What Microsoft fetches: the spoken message first, then the prompts, as URLs.

        Everything is resolved before anything is sent: a media-source id that does not
        resolve, or a missing external URL, places no call.
        """
        spoken = [] if request.speech is None else [self._speech(request.speech)]
        return [*spoken, *[await self._prompt(item) for item in request.prompts]]

    def _speech(self, speech: Speech) -> Mapping[str, Any]:
        """Home Assistant's TTS proxy serves the audio; its id follows the content.

        The proxy's URL is new for every rendering, the content key is not: the same
        text, engine, language and options are the same resource to Microsoft.
        """
        return {
            "url": self._require_external_url() + speech.url,
            "resource_id": str(uuid.uuid5(_SPEECH_IDS, speech.key)),
        }

    async def _prompt(self, item: str | Mapping[str, Any]) -> str | Mapping[str, Any]:
        """``/local/x.wav`` and ``media-source://`` ids become URLs on the external URL.

        A media-source id keeps its own cache id: its resolved URL may carry a signature
        that changes every time.
        """
        if isinstance(item, Mapping):
            url = item.get("url", item.get("uri"))
            if not isinstance(url, str):
                return item  # parse_media says what is wrong with it
            resolved = await self._prompt(url)
            media: Mapping[str, Any] = (
                resolved if isinstance(resolved, Mapping) else {"url": resolved}
            )
            return {**media, **item, "url": media["url"]}  # a resource_id given wins
        fetched = await async_media_url(self.hass, item, self._require_external_url)
        if is_media_source(item):
            return {"url": fetched, "resource_id": str(uuid.uuid5(uuid.NAMESPACE_URL, item))}
        return fetched

    def _invalid(self, key: str) -> ServiceValidationError:
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"entry": self.entry.title},
        )

    def _failed(
        self, code: int | None, subcode: int | None, detail: str | None
    ) -> HomeAssistantError:
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="prompt_failed",
            translation_placeholders={
                "entry": self.entry.title,
                "code": str(code),
                "subcode": str(subcode),
                "detail": detail or "",
            },
        )


def _client(hass: HomeAssistant, data: Mapping[str, Any]) -> GraphClient:
    """A Graph client on Home Assistant's shared session."""
    return GraphClient(
        async_get_clientsession(hass),
        data[CONF_TENANT_ID],
        data[CONF_CLIENT_ID],
        data[CONF_CLIENT_SECRET],
        login_base=GRAPH_ENDPOINTS.login_base,
        graph_base=GRAPH_ENDPOINTS.graph_base,
        keep_alive_interval=KEEP_ALIVE_INTERVAL,  # calls held beyond 45 minutes stay up
    )


def _call_event(event: GraphEvent, target: str | None) -> CallEvent:
    return CallEvent(
        status=_STATUS[event.type],
        target=target,
        call_id=event.call_id,
        reason=event.result_message,
        extras={
            "operation_id": event.operation_id,
            "client_context": event.client_context,
            "result_code": event.result_code,
            "result_subcode": event.result_subcode,
        },
    )
