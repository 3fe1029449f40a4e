"""Async client for Microsoft Graph cloud communications (Teams calls, playPrompt).

No Home Assistant imports: the caller injects an ``aiohttp.ClientSession`` and feeds
the notifications Graph posts to its callback URL into :meth:`GraphClient.handle_notification`
after checking them with :class:`GraphNotificationVerifier`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
import json
import logging
import re
import time
from typing import Any, Final
import uuid

import aiohttp
import jwt
from yarl import URL

from .exceptions import (
    VoicePromptAuthenticationError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSecretExpiredError,
    VoicePromptTenantNotFoundError,
    VoicePromptTimeoutError,
)
from .http import opt_str, transport_error
from .singleflight import SingleFlight

_LOGGER = logging.getLogger(__name__)

LOGIN_BASE: Final = "https://login.microsoftonline.com"
GRAPH_BASE: Final = "https://graph.microsoft.com"
OPENID_CONFIG_URL: Final = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
NOTIFICATION_ISSUER: Final = "https://api.botframework.com"
SCOPE: Final = "https://graph.microsoft.com/.default"

DEFAULT_TIMEOUT: Final = 10.0
MAX_PROMPTS: Final = 20
MAX_CLIENT_CONTEXT: Final = 256
# Fetch a new token this long before the old one expires.
TOKEN_REFRESH_MARGIN: Final = 300.0
# 429/503: at most this many tries and this much waiting in all.
MAX_TRIES: Final = 3
MAX_RETRY_WAIT: Final = 30.0
# Re-read the signing keys for an unknown key id at most this often.
KEYS_REFRESH_INTERVAL: Final = 60.0
# Notifications remembered for waiters that start after the notification arrived.
_MEMORY: Final = 512

_GUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
# A URL in Graph's own error text: it may quote what we sent (the callback path holds
# the webhook id; a prompt URL may hold a signature or a password). Errors keep scheme
# and host only.
_URL_IN_TEXT: Final = re.compile(
    r"(https?://)(?:[^/\s'\"?#]*@)?([^/\s'\"?#]+)[^\s'\"]*", re.IGNORECASE
)
_CALL_URL: Final = re.compile(r"/communications/calls/([^/]+)(?:/operations/([^/]+))?/?$", re.I)

# AADSTS codes of the token endpoint → (exception class, English message).
_TOKEN_ERRORS: Final[dict[int, tuple[type[VoicePromptAuthenticationError], str]]] = {
    90002: (VoicePromptTenantNotFoundError, "Microsoft Entra ID does not know tenant {tenant}"),
    700016: (
        VoicePromptAuthenticationError,
        "Microsoft Entra ID does not know application {client} in tenant {tenant}",
    ),
    7000215: (
        VoicePromptAuthenticationError,
        "Microsoft Entra ID refused the client secret (use the secret's value, not its ID)",
    ),
    7000222: (
        VoicePromptSecretExpiredError,
        "The client secret of application {client} has expired; create a new one",
    ),
}


class TargetKind(StrEnum):
    """Whom a call goes to (the identity's key in Graph's participant info)."""

    USER = "user"
    PHONE = "phone"


class GraphEventType(StrEnum):
    """What a notification can tell; the integration maps these to call outcomes."""

    CALL_ESTABLISHED = "call_established"
    CALL_TERMINATED = "call_terminated"
    PROMPT_COMPLETED = "prompt_completed"
    PROMPT_FAILED = "prompt_failed"


@dataclass(frozen=True, slots=True)
class GraphMedia:
    """One prompt: an HTTPS URL of a WAV file and its cache key at Microsoft."""

    uri: str
    resource_id: str

    def as_media_info(self) -> dict[str, str]:
        """The ``mediaInfo`` object Graph expects."""
        return {
            "@odata.type": "#microsoft.graph.mediaInfo",
            "uri": self.uri,
            "resourceId": self.resource_id,
        }


@dataclass(frozen=True, slots=True)
class GraphTarget:
    """Whom to call: a Teams user (Entra object id) or a phone number (E.164)."""

    kind: TargetKind
    id: str


@dataclass(frozen=True, slots=True)
class GraphOperation:
    """A playPrompt operation as Graph reported it."""

    id: str
    status: str
    client_context: str | None
    result_code: int | None = None
    result_subcode: int | None = None
    result_message: str | None = None

    @property
    def finished(self) -> bool:
        """``completed``/``failed`` in a reply mean no notification will follow."""
        return self.status in ("completed", "failed")


@dataclass(frozen=True, slots=True)
class GraphEvent:
    """Something a notification told: call state changes and operation results."""

    type: GraphEventType
    call_id: str
    operation_id: str | None = None
    client_context: str | None = None
    result_code: int | None = None
    result_subcode: int | None = None
    result_message: str | None = None


@dataclass(slots=True)
class GraphPlayResult:
    """What ``async_play`` did."""

    call_id: str
    operation: GraphOperation
    placed_call: bool = False
    hung_up: bool = False
    final: GraphEvent | None = None

    @property
    def outcome(self) -> GraphEvent | GraphOperation:
        """Where the result comes from: the final notification, else Graph's own reply.

        Graph may answer playPrompt with ``completed``/``failed`` at once and then sends
        no notification; both carry the same result code, subcode and message.
        """
        return self.final or self.operation

    @property
    def status(self) -> str:
        """``completed``, ``failed``, or the reply's status while still playing."""
        return self.final.type.removeprefix("prompt_") if self.final else self.operation.status

    @property
    def finished(self) -> bool:
        """Whether the prompts' outcome is known (and ``outcome`` carries its codes)."""
        return self.final is not None or self.operation.finished


def parse_target(value: str) -> GraphTarget:
    """A Teams user object id (GUID) or an E.164 phone number."""
    text = value.strip()
    if _GUID.fullmatch(text):
        return GraphTarget(TargetKind.USER, text.lower())
    phone = re.sub(r"[\s().-]", "", text)
    if _E164.fullmatch(phone):
        return GraphTarget(TargetKind.PHONE, phone)
    raise VoicePromptInputError(
        f"{text[:60]} is neither a Teams user's object ID nor a phone number like +31201234567",
        target=text[:60],
    )


def parse_media(items: Sequence[str | Mapping[str, Any]]) -> list[GraphMedia]:
    """Validate prompts: 1..20 HTTPS URLs, each optionally with a ``resource_id``."""
    if isinstance(items, str) or not isinstance(items, Sequence):
        items = [items]
    if not items:
        raise VoicePromptInputError("No prompt was given")
    if len(items) > MAX_PROMPTS:
        raise VoicePromptInputError(f"Microsoft Teams plays at most {MAX_PROMPTS} prompts at once")
    media: list[GraphMedia] = []
    for item in items:
        if isinstance(item, Mapping):
            uri, resource_id = item.get("url", item.get("uri")), item.get("resource_id")
        else:
            uri, resource_id = item, None
        if not isinstance(uri, str) or not uri.strip():
            raise VoicePromptInputError(f"Prompt {str(uri)[:80]} is not a URL")
        uri = uri.strip()
        if uri.lower().startswith("http://"):
            raise VoicePromptInputError(
                f"Prompt {_shown(uri)} uses http://; Microsoft Teams plays media only from "
                "https:// URLs"
            )
        if not uri.lower().startswith("https://") or any(c.isspace() for c in uri):
            raise VoicePromptInputError(f"Prompt {_shown(uri)} is not an https:// URL")
        if resource_id is not None and (
            not isinstance(resource_id, str) or not resource_id.strip()
        ):
            raise VoicePromptInputError(f"The resource ID of prompt {_shown(uri)} is empty")
        # Graph caches media by resourceId: the same URL keeps the same id.
        media.append(
            GraphMedia(
                uri,
                resource_id.strip() if resource_id else str(uuid.uuid5(uuid.NAMESPACE_URL, uri)),
            )
        )
    return media


def _shown(uri: str) -> str:
    """A prompt URL for an error message: user info (passwords) and query left out."""
    base, query, _ = uri.partition("?")
    base = base.partition("#")[0]
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        base = f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"
    return base[:120] + ("?…" if query else "")


def check_client_context(value: str | None) -> str:
    """Graph allows at most 256 characters; a missing one is generated."""
    if value is None or value == "":
        return str(uuid.uuid4())
    if len(value) > MAX_CLIENT_CONTEXT:
        raise VoicePromptInputError(
            f"client_context may have at most {MAX_CLIENT_CONTEXT} characters"
        )
    return value


def _canonical_id(value: str) -> str:
    """Graph's usual id form: a dashed lower-case GUID when the id is one."""
    compact = value.replace("-", "").lower()
    if re.fullmatch(r"[0-9a-f]{32}", compact):
        return str(uuid.UUID(compact))
    return value


def _norm_id(value: str) -> str:
    """Graph writes ids with or without dashes and in either case in notifications."""
    return value.replace("-", "").lower()


class GraphCallTracker:
    """Turns notifications into events and wakes whoever waits for them.

    It remembers recent states so a waiter that starts after its notification arrived
    (Graph can be faster than our own HTTP reply) still sees it.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._call_states: OrderedDict[str, GraphEvent] = OrderedDict()
        self._operations: OrderedDict[str, GraphEvent] = OrderedDict()
        self._waiters: dict[tuple[str, str], list[asyncio.Future[GraphEvent]]] = {}

    def handle(self, payload: Mapping[str, Any]) -> list[GraphEvent]:
        """Read a ``commsNotifications`` body; return the events it carries."""
        values = payload.get("value")
        if not isinstance(values, list):
            return []
        events: list[GraphEvent] = []
        for item in values:
            if isinstance(item, Mapping) and (event := _event_from(item)) is not None:
                events.append(event)
                self._record(event)
        return events

    def _record(self, event: GraphEvent) -> None:
        if event.operation_id is not None:
            key, memory = ("op", _norm_id(event.operation_id)), self._operations
        else:
            key, memory = ("call", _norm_id(event.call_id)), self._call_states
        memory[key[1]] = event
        memory.move_to_end(key[1])
        while len(memory) > _MEMORY:
            memory.popitem(last=False)
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(event)

    def ended(self, call_id: str) -> bool:
        """Whether Graph reported the call terminated."""
        last = self._call_states.get(_norm_id(call_id))
        return last is not None and last.type is GraphEventType.CALL_TERMINATED

    async def wait_call(self, call_id: str, within: float) -> GraphEvent:
        """Wait for the call's next state (established or terminated)."""
        return await self._wait(("call", _norm_id(call_id)), self._call_states, within)

    async def wait_operation(self, operation_id: str, within: float) -> GraphEvent:
        """Wait for an operation's completion or failure."""
        return await self._wait(("op", _norm_id(operation_id)), self._operations, within)

    async def _wait(
        self, key: tuple[str, str], memory: OrderedDict[str, GraphEvent], within: float
    ) -> GraphEvent:
        if (known := memory.get(key[1])) is not None:
            return known
        future: asyncio.Future[GraphEvent] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            async with asyncio.timeout(within):
                return await future
        finally:
            waiters = self._waiters.get(key, [])
            if future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[key]

    def close(self) -> None:
        """Cancel every waiter (the entry is unloading)."""
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()


def _event_from(item: Mapping[str, Any]) -> GraphEvent | None:
    url = item.get("resourceUrl") or item.get("resource") or ""
    data = item.get("resourceData")
    match = _CALL_URL.search(str(url))
    if match is None or not isinstance(data, Mapping):
        return None
    call_id = _canonical_id(match.group(1))
    operation_id = _canonical_id(match.group(2)) if match.group(2) else None
    code, subcode, message = _result_info(data)
    if operation_id is not None:
        status = str(data.get("status", "")).lower()
        if status not in ("completed", "failed"):
            return None
        return GraphEvent(
            GraphEventType.PROMPT_COMPLETED
            if status == "completed"
            else GraphEventType.PROMPT_FAILED,
            call_id,
            operation_id,
            opt_str(data.get("clientContext")),
            code,
            subcode,
            message,
        )
    state = str(data.get("state", "")).lower()
    if state == "established":
        return GraphEvent(
            GraphEventType.CALL_ESTABLISHED, call_id, None, None, code, subcode, message
        )
    if state == "terminated" or item.get("changeType") == "deleted":
        return GraphEvent(
            GraphEventType.CALL_TERMINATED, call_id, None, None, code, subcode, message
        )
    return None


def _result_info(data: Mapping[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(code, subcode, message) of a resource's ``resultInfo``, if any."""
    info = data.get("resultInfo")
    if not isinstance(info, Mapping):
        return None, None, None
    return _opt_int(info.get("code")), _opt_int(info.get("subcode")), opt_str(info.get("message"))


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class GraphNotificationVerifier:
    """Checks the Bot Framework JWT on every notification before anyone acts on it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        *,
        openid_config_url: str = OPENID_CONFIG_URL,
        issuer: str = NOTIFICATION_ISSUER,
    ) -> None:
        """Verify tokens whose audience is ``client_id``."""
        self._session = session
        self._client_id = client_id
        self._openid_config_url = openid_config_url
        self._issuer = issuer
        self._keys: dict[str, Any] = {}
        self._keys_read: float | None = None  # monotonic time of the last read
        self._timeout = aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT)
        self._lock = asyncio.Lock()

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """Return the token's claims, or raise VoicePromptAuthenticationError."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _unauthorized("no bearer token")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("malformed token") from None
        if header.get("alg") != "RS256":
            raise _unauthorized("unexpected algorithm")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self._client_id,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=60,
            )
        except jwt.PyJWTError as err:
            raise _unauthorized(type(err).__name__) from None
        return claims

    async def _key(self, kid: str) -> Any:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and (
                self._keys_read is None
                or time.monotonic() - self._keys_read > KEYS_REFRESH_INTERVAL
            ):
                await self._read_keys()
        if kid not in self._keys:
            raise _unauthorized("unknown signing key")
        return self._keys[kid]

    async def _read_keys(self) -> None:
        self._keys_read = time.monotonic()
        try:
            config = await self._get_json(self._openid_config_url)
            jwks = await self._get_json(str(config["jwks_uri"]))
            keys = jwt.PyJWKSet.from_dict(jwks).keys
        except (VoicePromptError, KeyError, TypeError, jwt.PyJWTError) as err:
            _LOGGER.warning("Cannot read the Bot Framework signing keys: %s", err)
            return
        self._keys = {key.key_id: key.key for key in keys if key.key_id}

    async def _get_json(self, url: str) -> Any:
        host = _host_of(url)
        status, data, _ = await _exchange(self._session, "GET", url, host, self._timeout)
        if status != 200 or data is None:
            raise VoicePromptResponseError(f"{host} answered HTTP {status}")
        return data


def _unauthorized(reason: str) -> VoicePromptAuthenticationError:
    return VoicePromptAuthenticationError(f"Refused a notification: {reason}")


def _host_of(url: str) -> str:
    return URL(url).host or url


class GraphClient:
    """Places Teams calls and plays prompts into them with app credentials."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        *,
        login_base: str = LOGIN_BASE,
        graph_base: str = GRAPH_BASE,
        request_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Use the client-credentials grant of an app registered as a calling bot."""
        self._session = session
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self._token_url = f"{login_base.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._graph_base = graph_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._token_host = _host_of(self._token_url)
        self._graph_host = _host_of(self._graph_base)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_flight: SingleFlight[str] = SingleFlight()
        self.tracker = GraphCallTracker()
        self.token_requests = 0
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        """Describe the client without the secret or the token."""
        return f"GraphClient(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, has_token={self._token is not None})"

    # -- public surface -------------------------------------------------------------

    async def async_validate(self) -> None:
        """Get a token: proves tenant, app and secret."""
        await self._access_token()

    async def create_call(
        self,
        target: GraphTarget,
        prompts: Sequence[GraphMedia],
        callback_uri: str,
        *,
        source_instance_id: str | None = None,
    ) -> str:
        """Place an audio call with service-hosted media; return its id."""
        body: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.call",
            "callbackUri": callback_uri,
            "targets": [
                {
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "identity": {
                        "@odata.type": "#microsoft.graph.identitySet",
                        target.kind.value: {
                            "@odata.type": "#microsoft.graph.identity",
                            "id": target.id,
                        },
                    },
                }
            ],
            "requestedModalities": ["audio"],
            "mediaConfig": {
                "@odata.type": "#microsoft.graph.serviceHostedMediaConfig",
                "preFetchMedia": [media.as_media_info() for media in prompts],
            },
            "tenantId": self.tenant_id,
        }
        if target.kind is TargetKind.PHONE:
            if not source_instance_id:
                raise VoicePromptInputError(
                    "Calling a phone number needs the application instance ID in the "
                    "integration's options",
                    target=target.id,
                )
            body["source"] = {
                "@odata.type": "#microsoft.graph.participantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "applicationInstance": {
                        "@odata.type": "#microsoft.graph.identity",
                        "id": source_instance_id,
                    },
                },
            }
        data = await self._api("POST", "/v1.0/communications/calls", body)
        call_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(call_id, str) or not call_id:
            raise VoicePromptResponseError(f"{self._graph_host} created a call without an ID")
        return call_id

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """Read a call resource."""
        data = await self._api(
            "GET", f"/v1.0/communications/calls/{_path_id(call_id)}", None, call_id=call_id
        )
        return data if isinstance(data, dict) else {}

    async def play_prompt(
        self,
        call_id: str,
        prompts: Sequence[GraphMedia],
        client_context: str,
        loop: bool = False,
    ) -> GraphOperation:
        """Play media into a call this app placed; ``loop`` exists only in beta."""
        body: dict[str, Any] = {
            "clientContext": client_context,
            "prompts": [
                {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": media.as_media_info()}
                for media in prompts
            ],
        }
        version = "beta" if loop else "v1.0"
        if loop:
            body["loop"] = True
        data = await self._api(
            "POST",
            f"/{version}/communications/calls/{_path_id(call_id)}/playPrompt",
            body,
            call_id=call_id,
        )
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise VoicePromptResponseError(
                f"{self._graph_host} answered playPrompt without an operation ID"
            )
        code, subcode, message = _result_info(data)
        return GraphOperation(
            id=data["id"],
            status=str(data.get("status", "")),
            client_context=opt_str(data.get("clientContext")),
            result_code=code,
            result_subcode=subcode,
            result_message=message,
        )

    async def hang_up(self, call_id: str) -> None:
        """End a call (204)."""
        await self._api(
            "DELETE", f"/v1.0/communications/calls/{_path_id(call_id)}", None, call_id=call_id
        )

    async def async_play(
        self,
        prompts: Sequence[GraphMedia],
        *,
        client_context: str,
        call_id: str | None = None,
        target: GraphTarget | None = None,
        callback_uri: str | None = None,
        source_instance_id: str | None = None,
        loop: bool = False,
        hang_up: bool = True,
        establish_timeout: float = 60.0,
        completion_timeout: float = 600.0,
    ) -> GraphPlayResult:
        """Play into ``call_id``, or place a call to ``target``, play, wait, and hang up."""
        if call_id is not None:
            operation = await self.play_prompt(call_id, prompts, client_context, loop)
            return GraphPlayResult(call_id, operation)
        if target is None or callback_uri is None:
            raise ValueError("give call_id, or target and callback_uri")
        new_call = await self.create_call(
            target, prompts, callback_uri, source_instance_id=source_instance_id
        )
        result: GraphPlayResult | None = None
        try:
            state = await self._wait(
                self.tracker.wait_call(new_call, establish_timeout),
                f"The call was not answered within {establish_timeout:g} seconds",
            )
            if state.type is not GraphEventType.CALL_ESTABLISHED:
                raise VoicePromptRequestError(
                    f"The call was not answered ({state.result_message or 'terminated'})",
                    code=str(state.result_code or "") or None,
                    target=target.id,
                )
            operation = await self.play_prompt(new_call, prompts, client_context, loop)
            result = GraphPlayResult(new_call, operation, placed_call=True)
            if loop:
                return result  # plays until hung up: no completion notification comes
            if not operation.finished:
                result.final = await self._wait(
                    self.tracker.wait_operation(operation.id, completion_timeout),
                    "Microsoft Teams did not report the end of the prompts within "
                    f"{completion_timeout:g} seconds",
                )
        finally:
            # A call Graph already ended (not answered, callee hung up) needs no DELETE.
            if ((hang_up and not loop) or result is None) and not self.tracker.ended(new_call):
                hung_up = await self._hang_up_quietly(new_call)
                if result is not None:
                    result.hung_up = hung_up
        return result

    def handle_notification(self, payload: Mapping[str, Any]) -> list[GraphEvent]:
        """Feed a verified ``commsNotifications`` body; return its events."""
        return self.tracker.handle(payload)

    async def async_close(self) -> None:
        """Forget the token and cancel waiters (there is no logout)."""
        self.tracker.close()
        self._token = None

    def diagnostics(self) -> dict[str, Any]:
        """Client state without the secret or the token."""
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "has_token": self._token is not None,
            "token_valid_for_seconds": max(0, round(self._token_expires - time.monotonic()))
            if self._token
            else None,
            "token_requests": self.token_requests,
            "requests": self.requests,
            "retries": self.retries,
        }

    # -- internals ------------------------------------------------------------------

    async def _wait(self, waiter: Any, timeout_message: str) -> GraphEvent:
        try:
            event: GraphEvent = await waiter
        except TimeoutError:
            raise VoicePromptTimeoutError(timeout_message) from None
        return event

    async def _hang_up_quietly(self, call_id: str) -> bool:
        """Hang up; a failure is logged, not raised (the prompts' outcome matters more)."""
        try:
            await self.hang_up(call_id)
        except VoicePromptError as err:
            _LOGGER.warning("Could not hang up call %s: %s", call_id, err)
            return False
        return True

    async def _access_token(self, stale: str | None = None) -> str:
        token = self._token
        if (
            token is not None
            and token != stale
            and time.monotonic() < self._token_expires - TOKEN_REFRESH_MARGIN
        ):
            return token
        return await self._token_flight.run(self._new_token)

    async def _new_token(self) -> str:
        self._token = None
        self.token_requests += 1
        data = await self._token_request()
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token:
            raise VoicePromptResponseError(f"{self._token_host} answered without an access token")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, (int, float, str)) and str(expires_in).isdigit()
            else 3599.0
        )
        self._token = token
        self._token_expires = time.monotonic() + lifetime
        return token

    async def _token_request(self) -> dict[str, Any]:
        host = self._token_host
        form = {
            "client_id": self.client_id,
            "client_secret": self._secret,
            "scope": SCOPE,
            "grant_type": "client_credentials",
        }
        status, data, _ = await _exchange(
            self._session, "POST", self._token_url, host, self._timeout, data=form
        )
        if status == 200 and isinstance(data, dict):
            return data
        codes = data.get("error_codes") if isinstance(data, dict) else None
        for code in codes if isinstance(codes, list) else []:
            if code in _TOKEN_ERRORS:
                cls, message = _TOKEN_ERRORS[code]
                raise cls(
                    message.format(tenant=self.tenant_id, client=self.client_id), code=str(code)
                )
        if (
            status in (400, 401)
            and isinstance(data, dict)
            and data.get("error") in ("invalid_client", "unauthorized_client")
        ):
            raise VoicePromptAuthenticationError(
                f"Microsoft Entra ID refused application {self.client_id} in tenant "
                f"{self.tenant_id} ({data.get('error')})",
                code=str(status),
            )
        raise VoicePromptResponseError(f"The token endpoint {host} answered HTTP {status}")

    async def _api(
        self, method: str, path: str, body: dict[str, Any] | None, *, call_id: str = ""
    ) -> Any:
        """A Graph request with one token refresh on 401 and bounded 429/503 retries."""
        url = self._graph_base + path
        host = self._graph_host
        waited = 0.0
        stale: str | None = None  # the token Graph refused once with 401
        tries = 0
        while True:
            tries += 1
            token = await self._access_token(stale)
            self.requests += 1
            status, data, retry_after = await _exchange(
                self._session,
                method,
                url,
                host,
                self._timeout,
                json_body=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            if 200 <= status < 300:
                return data
            if status == 401 and stale is None:
                stale = token
                continue
            if (
                status in (429, 503)
                and tries < MAX_TRIES
                and waited + retry_after <= MAX_RETRY_WAIT
            ):
                self.retries += 1
                waited += retry_after
                await asyncio.sleep(retry_after)
                continue
            raise _graph_error(status, data, host, call_id)


async def _exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    host: str,
    client_timeout: aiohttp.ClientTimeout,
    *,
    data: dict[str, str] | None = None,
    json_body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, float]:
    """One exchange: (status, parsed JSON body or None, Retry-After seconds).

    Every failure becomes a VoicePromptError naming the host, never the URL.
    """
    failure: VoicePromptError | None = None
    try:
        async with session.request(
            method, url, data=data, json=json_body, headers=headers, timeout=client_timeout
        ) as response:
            raw = await response.read()
            status = response.status
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except (TimeoutError, aiohttp.ClientError) as err:
        failure = transport_error(err, host, client_timeout.total or 0)
    if failure is not None:
        raise failure from None
    parsed: Any = None
    if raw:
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            if 200 <= status < 300:
                raise VoicePromptResponseError(f"{host} answered with something not JSON") from None
    return status, parsed, retry_after


def _path_id(call_id: str) -> str:
    if not call_id or not re.fullmatch(r"[0-9A-Za-z-]{1,64}", call_id):
        raise VoicePromptInputError(f"{call_id[:60]} is not a call ID")
    return call_id


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def _graph_error(status: int, data: Any, host: str, call_id: str) -> VoicePromptError:
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = (str(inner.get("request-id", "")) if isinstance(inner, dict) else "") or "-"
    code = str(error.get("code", status))
    detail = _URL_IN_TEXT.sub(r"\1\2/…", str(error.get("message", "")))[:300]
    if status == 401:
        return VoicePromptAuthenticationError(
            f"Microsoft Graph refused the app's token (request ID {request_id})", code=code
        )
    if status == 403 and code == "7504":
        return VoicePromptRequestError(
            "The app lacks the Calls.Initiate.All application permission with admin consent "
            f"(request ID {request_id})",
            code=code,
        )
    if status == 404:
        return VoicePromptInputError(
            f"Call {call_id} is not known to Microsoft Graph: it ended, or another app placed "
            f"it (request ID {request_id})",
            code=code,
        )
    if status in (429, 503):
        return VoicePromptRequestError(
            f"Microsoft Graph is busy; try again later (request ID {request_id})", code=code
        )
    reason = f": {detail}" if detail else ""
    return VoicePromptRequestError(
        f"Microsoft Graph refused the request{reason} (HTTP {status}, request ID {request_id})",
        code=code,
    )
