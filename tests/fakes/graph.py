"""A real aiohttp server that behaves like Microsoft Graph cloud communications.

It serves the Microsoft identity platform token endpoint (client credentials), the calls API
(create, get, delete, playPrompt, keepAlive, cancelMediaProcessing, subscribeToTone; v1.0 and
beta), and the
Bot Framework OpenID configuration + signing keys; it POSTs signed ``commsNotifications`` to
each call's ``callbackUri`` like Graph does. Like Teams, it downloads every prompt it is asked
to play and checks that it is a WAV file, mono, 16-bit, 16 kHz; a prompt it cannot download or
that has another format fails the playPrompt operation (``check_media``, ``media_hosts``).
Use it from tests (``await FakeGraph().start()`` in the running loop) or as a program:
``python -m tests.fakes.graph --help``.
"""

import argparse
import asyncio
from collections.abc import Coroutine
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import functools
import hashlib
import http.client
import json
import pathlib
import re
import secrets
import ssl
import struct
import sys
import tempfile
import time
from typing import Any
import urllib.parse
import uuid

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
import jwt
from jwt.algorithms import RSAAlgorithm

from . import emit as _emit, run_program, serve_until_stopped
from .tls import make_self_signed_cert, server_ssl_context

GRAPH_SCOPES: frozenset[str] = frozenset(
    {"https://graph.microsoft.com/.default", "00000003-0000-0000-c000-000000000000/.default"}
)
API_VERSIONS: tuple[str, ...] = ("v1.0", "beta")
MAX_PROMPTS = 20
MAX_CLIENT_CONTEXT = 256
GARBAGE_BODY = "<html><head><title>Service Unavailable</title></head><body>Oops</body></html>"
JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)

_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")

# AADSTS code → (HTTP status, OAuth "error", description template).
TOKEN_ERRORS: dict[str, tuple[int, str, str]] = {
    "90002": (
        400,
        "invalid_request",
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    ),
    "700016": (
        400,
        "unauthorized_client",
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant.",
    ),
    "7000215": (
        401,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    ),
    "7000222": (
        401,
        "invalid_client",
        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure "
        "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "
        "using certificate credentials for added security: https://aka.ms/certCreds.",
    ),
    "7000218": (
        401,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    ),
    "900144": (
        400,
        "invalid_request",
        "The request body must contain the following parameter: '{param}'.",
    ),
    "70003": (
        400,
        "unsupported_grant_type",
        "The app requested an unsupported grant type '{grant_type}'.",
    ),
    "70011": (
        400,
        "invalid_scope",
        "The provided value for the input parameter 'scope' is not valid. The scope {scope} is "
        "not valid.",
    ),
    "900561": (
        400,
        "invalid_request",
        "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
    ),
}

# What service-hosted media plays (mediaInfo): PCM WAV, 1 channel, 16 kHz, 16 bits a sample.
MEDIA_FORMAT = {"format": "pcm", "channels": 1, "sample_rate": 16000, "bits_per_sample": 16}
# Hosts the fake can fetch media from without a mapping (it never leaves the machine).
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# Graph error codes used for the http_status switch.
HTTP_ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Forbidden", "Forbidden."),
    404: ("ResourceNotFound", "Resource not found."),
    409: ("Conflict", "Conflict."),
    429: ("TooManyRequests", "Too many requests."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "Service is unavailable, please retry."),
    504: ("GatewayTimeout", "Gateway timeout."),
}

# resultInfo values (code, subcode, message); from the Graph / ACS docs.
RESULT_PROMPT_COMPLETED = (200, 0, "Action completed successfully.")
RESULT_PROMPT_DOWNLOAD_FAILED = (400, 8536, "Action failed, file could not be downloaded.")
RESULT_PROMPT_BAD_FORMAT = (400, 8535, "Action failed, file format is invalid.")
RESULT_PROMPT_CANCELED = (400, 8508, "Action failed, the operation was cancelled.")
RESULT_CALL_ENDED = (200, 5001, "The conversation has ended.")
RESULT_CALL_NOT_REACHED = (480, 10076, "Callee could not be reached.")
RESULT_REMOTE_HANG_UP = (200, 4521, "Call ended by the other participant in peer-to-peer call.")


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str  # full path, e.g. "/graph/v1.0/communications/calls"
    headers: dict[str, str]
    body: Any  # parsed JSON / form dict, raw text if neither, None if empty
    reply_status: int | None = None


@dataclass
class Delivery:
    """One notification POST the fake made: what a listener on the wire could capture."""

    url: str
    token: str  # the bearer token it carried
    body: bytes
    status: int  # the receiver's HTTP status, 0 when it could not be reached


@dataclass
class MediaFetch:
    """One prompt the fake downloaded (or could not) before playing it."""

    uri: str  # as playPrompt named it
    url: str | None  # where the fake fetched it; None when it cannot reach the host
    status: int  # HTTP status, 0 when nothing answered
    layout: dict[str, Any] | None = None  # the WAV header's format (see MEDIA_FORMAT)
    seconds: float | None = None  # the audio's length
    problem: str | None = None  # why the prompt cannot be played; None when it can

    @property
    def ok(self) -> bool:
        """Whether Teams would play it."""
        return self.problem is None


def wav_layout(data: bytes) -> tuple[dict[str, Any], float] | None:
    """The format of a WAV file's fmt chunk and its length in seconds; None if not WAV.

    Sizes are read leniently: ffmpeg writing to a pipe leaves 0xFFFFFFFF in them.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, layout = 12, None
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk == b"fmt " and size >= 16 and body + 16 <= len(data):
            tag, channels, rate, byte_rate, _align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
                tag = struct.unpack_from("<H", data, body + 24)[0]  # the sub-format GUID
            kind = "pcm" if tag == _WAVE_FORMAT_PCM else f"0x{tag:04x}"
            layout = (
                {
                    "format": kind,
                    "channels": channels,
                    "sample_rate": rate,
                    "bits_per_sample": bits,
                },
                byte_rate,
            )
        elif chunk == b"data" and layout is not None:
            fmt, byte_rate = layout
            return fmt, (len(data) - body) / byte_rate if byte_rate else 0.0
        offset = body + size + (size & 1)
    return None


@dataclass
class FakeCall:
    """A call the fake placed (kept after it ends, for inspection)."""

    id: str
    state: str  # establishing | established | terminated
    callback_uri: str
    targets: list[dict[str, Any]]
    source: dict[str, Any] | None
    media: list[dict[str, Any]]  # mediaConfig.preFetchMedia
    tenant_id: str
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)  # opId -> operation
    requested_modalities: list[str] = field(default_factory=lambda: ["audio"])
    call_chain_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    my_participant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    result_info: dict[str, Any] | None = None
    keep_alives: int = 0
    # subscribeToTone: key presses are notified (toneInfo) once subscribed.
    tones_subscribed: bool = False
    tone_sequence: int = 0
    tone_info: dict[str, Any] | None = None


def _post_blocking(url: str, body: bytes, bearer: str, chunked: bool) -> int:
    """POST body to an http:// URL with http.client; return the status (0: unreachable)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    pieces = (body[start : start + 65536] for start in range(0, len(body), 65536))
    try:
        connection.request(
            "POST",
            parts.path,
            body=pieces if chunked else body,
            headers=headers,
            encode_chunked=chunked,
        )
        response = connection.getresponse()
        response.read()
    except OSError:
        return 0
    finally:
        connection.close()
    return response.status


def _result(values: tuple[int, int, str]) -> dict[str, Any]:
    code, subcode, message = values
    return {
        "@odata.type": "#microsoft.graph.resultInfo",
        "code": code,
        "subcode": subcode,
        "message": message,
    }


def _short(value: str | None) -> str:
    """Return the first 4 characters of an id and an ellipsis (never a whole secret)."""
    if not value:
        return "-"
    return f"{value[:4]}…"


def _short_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    path = parts.path if len(parts.path) <= 24 else parts.path[:24] + "…"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _graph_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _compact(guid: str) -> str:
    """Return the upper-case id without dashes, as Graph writes ids in operation URLs."""
    return guid.replace("-", "").upper()


@functools.cache
def _first_key() -> rsa.RSAPrivateKey:
    """Return one signing key per process (RSA generation is slow; tests create many fakes)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _kid_for(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha1(der, usedforsecurity=False).digest()
    return jwt.utils.base64url_encode(digest).decode()


class _GraphError(Exception):
    """Raised inside handlers to answer a Graph error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class FakeGraph:
    """In-process fake of Entra ID (token) + Microsoft Graph calls + Bot Framework keys."""

    ISSUER = "https://api.botframework.com"

    def __init__(
        self,
        *,
        tenant_id: str = "11111111-2222-3333-4444-555555555555",
        client_id: str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        client_secret: str = "graph-secret-value",
        token_lifetime: int = 3599,
        notify_delay: float = 0.05,
        prompt_seconds: float = 0.05,
        log_requests: bool = False,
    ) -> None:
        """Configure the fake; nothing listens until start()."""
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.notify_delay = notify_delay
        self.prompt_seconds = prompt_seconds
        self.log_requests = log_requests

        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"
        self.requests: list[RecordedRequest] = []
        self.token_requests = 0
        self.issued_tokens: list[str] = []
        self.calls: dict[str, FakeCall] = {}
        self.notifications: list[tuple[str, int, dict[str, Any]]] = []
        # Every POST to a receiver, raw (notify, deliver and replay alike).
        self.deliveries: list[Delivery] = []
        self.notification_base: str | None = None

        # Switches / faults.
        self.token_error: str | None = None
        self.throttle: list[tuple[int, float]] = []
        self.permission_denied = False
        # subscribeToTone answers 403 (the app lacks Calls.AccessMedia.All).
        self.tone_permission_denied = False
        self.answer = True
        # Teams users (object ids) who never answer, whatever ``answer`` says.
        self.unanswered_users: set[str] = set()
        self.fail_media = False
        # Download every prompt and check it is a WAV Teams plays; media_hosts maps a
        # URL's host (as written in the prompt) to a local base URL the fake fetches from
        # instead, path and query kept. Other hosts than 127.0.0.1 are unreachable.
        self.check_media = True
        self.media_hosts: dict[str, str] = {}
        self.media_fetches: list[MediaFetch] = []
        # Refuse the media in playPrompt's own reply ("failed" at once, no notification).
        self.fail_media_at_once = False
        self.http_status: int | None = None
        self.garbage = False
        self.latency = 0.0
        # Seconds the calls API waits after acting before it answers: the notifications
        # it sends meanwhile overtake its reply (Graph does that, a call's "established"
        # can come before the reply to create it).
        self.reply_delay = 0.0
        # Extras: "establishing"/"terminating" notifications as in the docs; Graph's upper-case,
        # dash-less ids in operation resourceUrls; TLS checks of https callbacks; delivery timeout.
        self.interim_notifications = False
        self.compact_operation_ids = False
        self.verify_notification_tls = True
        self.notify_timeout = 10.0

        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self._signing_key: rsa.RSAPrivateKey = _first_key()
        self._kid = _kid_for(self._signing_key)
        self._tasks: set[asyncio.Task[None]] = set()
        self._call_tasks: dict[str, set[asyncio.Task[None]]] = {}
        self._prompt_tasks: dict[str, dict[str, asyncio.Task[None]]] = {}
        self._media_tail: dict[str, asyncio.Task[None]] = {}
        # resourceIds of media downloaded and found playable: Teams keys its cache on them.
        self._media_cache: set[str] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._note: str | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Start listening; port 0 picks a free port (see self.port afterwards)."""
        if self._runner is not None:
            msg = "fake Graph already started"
            raise RuntimeError(msg)
        self._closing.clear()
        app = web.Application()
        app.router.add_route("*", "/login/{tenant}/oauth2/v2.0/token", self._handle_token)
        app.router.add_route(
            "*", "/botframework/.well-known/OpenIdConfiguration", self._handle_openid
        )
        app.router.add_route("*", "/botframework/keys", self._handle_keys)
        app.router.add_route("*", "/graph/{path:.*}", self._handle_graph)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._session = aiohttp.ClientSession()
        self.host = host
        self.port = int(runner.addresses[0][1])
        self.scheme = "https" if ssl_context is not None else "http"

    async def close(self) -> None:
        """Cancel every background task, then stop the client session and the server."""
        self._closing.set()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        self._call_tasks.clear()
        self._prompt_tasks.clear()
        self._media_tail.clear()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """Return scheme://host:port of the fake."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def login_base(self) -> str:
        """Return the stand-in for https://login.microsoftonline.com."""
        return f"{self.base_url}/login"

    @property
    def graph_base(self) -> str:
        """Return the stand-in for https://graph.microsoft.com."""
        return f"{self.base_url}/graph"

    @property
    def openid_config_url(self) -> str:
        """Return the stand-in for the Bot Framework OpenID configuration URL."""
        return f"{self.base_url}/botframework/.well-known/OpenIdConfiguration"

    @property
    def jwks_url(self) -> str:
        """Return the URL of the signing keys (JWKS)."""
        return f"{self.base_url}/botframework/keys"

    @property
    def token_url(self) -> str:
        """Return the token endpoint of the configured tenant."""
        return f"{self.login_base}/{self.tenant_id}/oauth2/v2.0/token"

    # ------------------------------------------------------------ introspection

    def calls_to(self, method: str, suffix: str) -> list[RecordedRequest]:
        """Return the recorded requests with this method whose path ends with suffix."""
        method = method.upper()
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # ------------------------------------------------------------------ control

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid (expired)."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def rotate_signing_key(self) -> None:
        """Sign with a new RSA key and serve only its kid from the JWKS."""
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = _kid_for(self._signing_key)

    @property
    def kid(self) -> str:
        """Return the key id of the served signing key."""
        return self._kid

    def jwks(self) -> dict[str, Any]:
        """Return the JSON Web Key Set the fake serves."""
        jwk = RSAAlgorithm.to_jwk(self._signing_key.public_key(), as_dict=True)
        jwk.update({"use": "sig", "kid": self._kid, "x5t": self._kid, "endorsements": ["msteams"]})
        return {"keys": [jwk]}

    def make_jwt(
        self,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: float = 3600,
        key: Any = None,
        kid: str | None = None,
        not_before: float | None = None,
    ) -> str:
        """Return an RS256 JWT like the ones Graph sends with notifications.

        ``key`` signs with another private key (forged signature, served kid unless ``kid``).
        ``not_before`` is a Unix time, or seconds from now when below 10**9. A negative
        ``expires_in`` gives an expired token.
        """
        now = int(time.time())
        if not_before is None:
            nbf = now
        elif not_before < 1e9:
            nbf = int(now + not_before)
        else:
            nbf = int(not_before)
        claims = {
            "iss": self.ISSUER if issuer is None else issuer,
            "aud": self.client_id if audience is None else audience,
            "iat": now,
            "nbf": nbf,
            "exp": int(now + expires_in),
            "tid": self.tenant_id,
        }
        headers = {"kid": self._kid if kid is None else kid, "typ": "JWT"}
        signing_key = self._signing_key if key is None else key
        return jwt.encode(claims, signing_key, algorithm="RS256", headers=headers)

    async def notify(
        self,
        call_id: str,
        resource_data: dict[str, Any],
        *,
        change_type: str = "updated",
        resource_url: str | None = None,
        token: str | None = None,
    ) -> int:
        """POST one commsNotification for call_id to its callback; return the HTTP status.

        The status is 0 when the receiver could not be reached. Raises KeyError for an
        unknown call and RuntimeError when the fake is not started.
        """
        call = self.calls[call_id]
        url_path = resource_url or f"/communications/calls/{call_id}"
        legacy = url_path
        if url_path.startswith("/communications/calls/"):
            legacy = "/app/calls/" + url_path.removeprefix("/communications/calls/")
        payload: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.commsNotifications",
            "value": [
                {
                    "@odata.type": "#microsoft.graph.commsNotification",
                    "changeType": change_type,
                    "resource": legacy,
                    "resourceUrl": url_path,
                    "callbackUri": call.callback_uri,
                    "resourceData": resource_data,
                }
            ],
        }
        url = self._delivery_url(call.callback_uri)
        status, detail = await self._post(url, json.dumps(payload).encode(), token)
        self.notifications.append((url, status, payload))
        self._log(
            f"notified {_short_url(url)} → {status or 'unreachable'}{detail} "
            f"[{change_type}: {self._describe(call_id, resource_data)}]"
        )
        return status

    def callback_url(self, call_id: str) -> str:
        """Return where the fake delivers call_id's notifications."""
        return self._delivery_url(self.calls[call_id].callback_uri)

    async def deliver(
        self,
        url: str,
        body: bytes,
        *,
        token: str | None = None,
        chunked: bool = False,
        in_thread: bool = False,
    ) -> int:
        """POST any body to a receiver with a valid token (or ``token``); return the status.

        Forged bodies under a real token, over-size bodies, bodies without a
        Content-Length (``chunked``, sent in 64 KiB pieces): what someone who captured a
        token, or Graph at its worst, could send. ``in_thread`` sends from another thread
        (plain http, http.client) like another machine would: the receiver's event loop
        then does none of the sending, so what it spends is the receiver's own work.
        """
        if not in_thread:
            status, _ = await self._post(url, body, token, chunked=chunked)
            return status
        bearer = self.make_jwt() if token is None else token
        status = await asyncio.to_thread(_post_blocking, url, body, bearer, chunked)
        self.deliveries.append(Delivery(url, bearer, body, status))
        return status

    async def replay(self, delivery: Delivery, times: int = 1) -> list[int]:
        """Send a captured delivery again, byte for byte with its own token; the statuses."""
        statuses = []
        for _ in range(times):
            status, _ = await self._post(delivery.url, delivery.body, delivery.token)
            statuses.append(status)
        return statuses

    async def _post(
        self, url: str, body: bytes, token: str | None, *, chunked: bool = False
    ) -> tuple[int, str]:
        """One signed POST: (status or 0, a note on why it failed); recorded in deliveries."""
        session = self._session
        if session is None:
            msg = "fake Graph not started"
            raise RuntimeError(msg)
        bearer = self.make_jwt() if token is None else token
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/json",
            "Client-Request-Id": str(uuid.uuid4()),
        }

        async def pieces() -> Any:
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        status = 0
        detail = ""
        try:
            async with session.post(
                url,
                data=pieces() if chunked else body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.notify_timeout),
                allow_redirects=False,
                ssl=self.verify_notification_tls,
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            detail = f" ({type(err).__name__})"
        self.deliveries.append(Delivery(url, bearer, body, status))
        return status, detail

    async def hang_up(
        self,
        call_id: str,
        result: tuple[int, int, str] = RESULT_REMOTE_HANG_UP,
    ) -> int:
        """End a call as if the callee hung up; deliver the 'deleted' notification now."""
        call = self.calls[call_id]
        self._cancel_call_tasks(call_id)
        call.state = "terminated"
        call.result_info = _result(result)
        self._log(f"call {_short(call_id)} hung up by the callee")
        return await self.notify(
            call_id, self._call_data(call), change_type="deleted", resource_url=None
        )

    # ------------------------------------------------------------------ helpers

    def _log(self, line: str) -> None:
        if self.log_requests:
            _emit(line)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but return at once when close() is called."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _spawn(
        self, coro: Coroutine[Any, Any, None], call_id: str | None = None
    ) -> asyncio.Task[None] | None:
        """Run coro as a tracked background task (cancelled by close())."""
        if self._closing.is_set():
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=f"fake-graph-{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if call_id is not None:
            bucket = self._call_tasks.setdefault(call_id, set())
            bucket.add(task)
            task.add_done_callback(bucket.discard)
        return task

    def _cancel_call_tasks(self, call_id: str) -> None:
        for task in list(self._call_tasks.pop(call_id, set())):
            task.cancel()
        self._prompt_tasks.pop(call_id, None)
        self._media_tail.pop(call_id, None)

    def _delivery_url(self, callback_uri: str) -> str:
        if self.notification_base is None:
            return callback_uri
        parts = urllib.parse.urlsplit(callback_uri)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return self.notification_base.rstrip("/") + path

    @staticmethod
    def _describe(call_id: str, data: dict[str, Any]) -> str:
        kind = str(data.get("@odata.type", "")).rsplit(".", 1)[-1]
        if kind == "call":
            tone = data.get("toneInfo")
            pressed = f" pressed {tone.get('tone')}" if isinstance(tone, dict) else ""
            return f"call {_short(call_id)} {data.get('state')}{pressed}"
        if kind:
            return f"{kind} {_short(str(data.get('id', '')))} {data.get('status')}"
        return f"call {_short(call_id)}"

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        record = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(record)
        return record

    @staticmethod
    def _parse_json(raw: bytes) -> tuple[Any, bool]:
        """Return (body, ok): parsed JSON, raw text when not JSON, None when empty."""
        text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            return None, True
        try:
            return json.loads(text), True
        except ValueError:
            return text, False

    # -------------------------------------------------------------- token (AAD)

    def _token_error(self, code: str, **values: str) -> web.Response:
        status, error, template = TOKEN_ERRORS[code]
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        fields = {
            "tenant": self.tenant_id,
            "client_id": self.client_id,
            "param": "",
            "scope": "",
            "grant_type": "",
            **values,
        }
        description = (
            f"AADSTS{code}: {template.format(**fields)}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {now.strftime('%Y-%m-%d %H:%M:%S')}Z"
        )
        body = {
            "error": error,
            "error_description": description,
            "error_codes": [int(code)],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        }
        self._note = f"token refused: AADSTS{code} ({error}) → {status}"
        return web.json_response(
            body, status=status, headers={"Cache-Control": "no-store, no-cache"}
        )

    async def _handle_token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        form: dict[str, str] = {}
        body: Any
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(
                urllib.parse.parse_qsl(raw.decode(errors="replace"), keep_blank_values=True)
            )
            body = form
        else:
            body, _ok = self._parse_json(raw)
        record = self._record(request, body)
        self.token_requests += 1
        await self._sleep(self.latency)
        self._note = None
        response = self._token_reply(request, form)
        record.reply_status = response.status
        self._log(self._note or f"{request.method} {request.path} → {response.status}")
        return response

    def _token_reply(self, request: web.Request, form: dict[str, str]) -> web.Response:
        tenant = request.match_info["tenant"]
        if request.method != "POST":
            return self._token_error("900561")
        if self.token_error is not None:
            return self._token_error(self.token_error, tenant=tenant)
        if tenant.lower() != self.tenant_id.lower():
            return self._token_error("90002", tenant=tenant)
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return self._token_error("900144", param="grant_type")
        if grant_type != "client_credentials":
            return self._token_error("70003", grant_type=grant_type)
        client_id = form.get("client_id", "")
        if not client_id:
            return self._token_error("900144", param="client_id")
        if client_id != self.client_id:
            return self._token_error("700016", client_id=client_id)
        scope = form.get("scope", "")
        if not scope:
            return self._token_error("900144", param="scope")
        if not set(scope.split()) & GRAPH_SCOPES:
            return self._token_error("70011", scope=scope)
        secret = form.get("client_secret")
        if not secret:
            return self._token_error("7000218")
        if secret != self.client_secret:
            return self._token_error("7000215")
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(48)
        self._tokens[token] = time.monotonic() + self.token_lifetime
        self.issued_tokens.append(token)
        self._note = (
            f"token issued to app {_short(client_id)} (tenant {_short(tenant)}), "
            f"expires in {self.token_lifetime} s"
        )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    # ------------------------------------------------------- Bot Framework keys

    async def _handle_openid(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request, None)
        await self._sleep(self.latency)
        config = {
            "issuer": self.ISSUER,
            "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        }
        record.reply_status = 200
        self._log("OpenID configuration served")
        return web.json_response(config)

    async def _handle_keys(self, request: web.Request) -> web.StreamResponse:
        record = self._record(request, None)
        await self._sleep(self.latency)
        record.reply_status = 200
        self._log(f"signing keys served (kid {_short(self._kid)})")
        return web.json_response(self.jwks())

    # -------------------------------------------------------------------- Graph

    def _graph_json(
        self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> web.Response:
        request_id = str(uuid.uuid4())
        all_headers = {"request-id": request_id, "client-request-id": request_id}
        all_headers.update(headers or {})
        if body is None:
            return web.Response(status=status, headers=all_headers)
        all_headers["Content-Type"] = JSON_TYPE
        return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)

    def _graph_error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        request_id = str(uuid.uuid4())
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": _graph_now(),
                    "request-id": request_id,
                    "client-request-id": request_id,
                },
            }
        }
        all_headers = {"request-id": request_id, "client-request-id": request_id}
        all_headers.update(headers or {})
        all_headers["Content-Type"] = JSON_TYPE
        return web.Response(status=status, body=json.dumps(body).encode(), headers=all_headers)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        www = {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline'
            '.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
        }
        if scheme.lower() != "bearer" or not token:
            message = "Access token is empty."
        elif token not in self._tokens:
            message = "CompactToken parsing failed with error code: 80049217"
        elif self._tokens[token] <= time.monotonic():
            message = "Access token has expired or is not yet valid."
        else:
            return None
        self._note = f"{request.method} {request.path} → 401 ({message})"
        return self._graph_error(401, "InvalidAuthenticationToken", message, www)

    async def _handle_graph(self, request: web.Request) -> web.StreamResponse:
        body, json_ok = self._parse_json(await request.read())
        record = self._record(request, body)
        await self._sleep(self.latency)
        self._note = None
        response = self._graph_faults(request)
        if response is None:
            response = self._check_auth(request)
        if response is None:
            try:
                response = self._route(request, body, json_ok=json_ok)
            except _GraphError as err:
                self._note = f"{request.method} {request.path} → {err.status} ({err.message})"
                response = self._graph_error(err.status, err.code, err.message)
        record.reply_status = response.status
        self._log(self._note or f"{request.method} {request.path} → {response.status}")
        if 200 <= response.status < 300:
            await self._sleep(self.reply_delay)
        return response

    def _graph_faults(self, request: web.Request) -> web.Response | None:
        where = f"{request.method} {request.path}"
        if self.http_status is not None:
            code, message = HTTP_ERROR_CODES.get(self.http_status, ("UnknownError", "Error."))
            self._note = f"{where} → {self.http_status} (http_status switch)"
            return self._graph_error(self.http_status, code, message)
        if self.garbage:
            self._note = f"{where} → 200 garbage"
            return web.Response(text=GARBAGE_BODY, content_type="text/html")
        if self.throttle:
            status, retry_after = self.throttle.pop(0)
            code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            message = (
                "Too many requests." if status == 429 else "Service is unavailable, please retry."
            )
            self._note = f"{where} → {status} (throttled, Retry-After {retry_after:g})"
            return self._graph_error(status, code, message, {"Retry-After": f"{retry_after:g}"})
        return None

    def _route(self, request: web.Request, body: Any, *, json_ok: bool) -> web.Response:
        parts = [p for p in request.match_info["path"].split("/") if p]
        version = parts[0] if parts else ""
        if version not in API_VERSIONS:
            raise _GraphError(400, "BadRequest", f"Invalid version: {version}")
        rest = parts[1:]
        if [p.lower() for p in rest[:2]] != ["communications", "calls"]:
            segment = rest[0] if rest else version
            raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        method = request.method
        if method == "POST" and not json_ok:
            raise _GraphError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set "
                "and payload is of valid JSON format.",
            )
        if len(rest) == 2 and method == "POST":
            return self._create_call(version, body)
        if len(rest) == 3 and method == "GET":
            return self._get_call(version, rest[2])
        if len(rest) == 3 and method == "DELETE":
            return self._delete_call(rest[2])
        if len(rest) == 4 and method == "POST":
            action = rest[3].lower()
            if action == "playprompt":
                return self._play_prompt(version, rest[2], body)
            if action == "keepalive":
                return self._keep_alive(rest[2])
            if action == "cancelmediaprocessing":
                return self._cancel_media(version, rest[2], body)
            if action == "subscribetotone":
                return self._subscribe_to_tone(version, rest[2], body)
            raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[3]}'.")
        if len(rest) in (2, 3, 4):
            raise _GraphError(
                405, "MethodNotAllowed", f"The HTTP method '{method}' is not supported."
            )
        raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.")

    def _live_call(self, call_id: str) -> FakeCall:
        call = self.calls.get(call_id)
        if call is None or call.state == "terminated":
            raise _GraphError(404, "ResourceNotFound", f"Call '{call_id}' was not found.")
        return call

    @staticmethod
    def _bad(message: str) -> _GraphError:
        return _GraphError(400, "BadRequest", message)

    def _call_resource(self, call: FakeCall, version: str) -> dict[str, Any]:
        source = call.source or {
            "@odata.type": "#microsoft.graph.participantInfo",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                "application": {
                    "@odata.type": "#microsoft.graph.identity",
                    "displayName": "Calling Bot",
                    "id": self.client_id,
                },
            },
            "countryCode": None,
            "endpointType": None,
            "region": None,
            "languageId": None,
        }
        media_config: dict[str, Any] = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}
        if call.media:
            media_config["preFetchMedia"] = call.media
        return {
            "@odata.type": "#microsoft.graph.call",
            "@odata.context": (
                f"https://graph.microsoft.com/{version}/$metadata#communications/calls/$entity"
            ),
            "id": call.id,
            "state": call.state,
            "direction": "outgoing",
            "callbackUri": call.callback_uri,
            "callChainId": call.call_chain_id,
            "callRoutes": [],
            "source": source,
            "targets": call.targets,
            "requestedModalities": call.requested_modalities,
            "activeModalities": ["audio"] if call.state == "established" else [],
            "mediaConfig": media_config,
            "routingPolicies": [],
            "tenantId": call.tenant_id,
            "myParticipantId": call.my_participant_id,
            "subject": None,
            "terminationReason": None,
            "ringingTimeoutInSeconds": None,
            "mediaState": None,
            "resultInfo": call.result_info,
            "answeredBy": None,
            "chatInfo": None,
            "meetingInfo": None,
            "transcription": None,
            "toneInfo": call.tone_info,
        }

    @staticmethod
    def _call_data(call: FakeCall) -> dict[str, Any]:
        data: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.call",
            "state": call.state,
            "direction": "outgoing",
            "callChainId": call.call_chain_id,
            "id": call.id,
        }
        if call.result_info is not None:
            data["resultInfo"] = call.result_info
        return data

    def _validate_call(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise self._bad("The request body must be a call object.")
        if body.get("@odata.type") != "#microsoft.graph.call":
            raise self._bad(
                "The '@odata.type' of the request body must be '#microsoft.graph.call'."
            )
        callback = body.get("callbackUri")
        if not isinstance(callback, str) or not callback.strip():
            raise self._bad("The callbackUri is required.")
        parts = urllib.parse.urlsplit(callback)
        if parts.scheme.lower() != "https" or not parts.netloc:
            raise self._bad(f"The callbackUri '{callback}' is not valid: it must be an https URI.")
        targets = body.get("targets")
        if not isinstance(targets, list) or not targets:
            raise self._bad("At least one target is required for a peer-to-peer call.")
        needs_instance = False
        for target in targets:
            identity = target.get("identity") if isinstance(target, dict) else None
            if not isinstance(identity, dict):
                raise self._bad("Each target must be an invitationParticipantInfo with identity.")
            user, phone = identity.get("user"), identity.get("phone")
            if isinstance(user, dict):
                user_id = user.get("id")
                if not isinstance(user_id, str) or not _GUID_RE.fullmatch(user_id):
                    raise self._bad(f"The target user id '{user_id}' is not a valid GUID.")
            elif isinstance(phone, dict):
                number = phone.get("id")
                if not isinstance(number, str) or not _E164_RE.fullmatch(number):
                    raise self._bad(f"The target phone id '{number}' is not in E.164 format.")
                needs_instance = True
            else:
                raise self._bad("A target identity must have a user or a phone.")
        if needs_instance:
            source = body.get("source")
            identity = source.get("identity") if isinstance(source, dict) else None
            instance = identity.get("applicationInstance") if isinstance(identity, dict) else None
            instance_id = instance.get("id") if isinstance(instance, dict) else None
            if not isinstance(instance_id, str) or not _GUID_RE.fullmatch(instance_id):
                raise self._bad(
                    "A call to a phone number needs source.identity.applicationInstance with "
                    "the id of an application instance that has a phone number."
                )
        modalities = body.get("requestedModalities")
        if not isinstance(modalities, list) or "audio" not in modalities:
            raise self._bad("requestedModalities must contain 'audio'.")
        media_config = body.get("mediaConfig")
        if (
            not isinstance(media_config, dict)
            or media_config.get("@odata.type") != "#microsoft.graph.serviceHostedMediaConfig"
        ):
            raise self._bad("mediaConfig must be a '#microsoft.graph.serviceHostedMediaConfig'.")
        prefetch = media_config.get("preFetchMedia")
        if prefetch is not None:
            if not isinstance(prefetch, list):
                raise self._bad("preFetchMedia must be a collection of mediaInfo.")
            for item in prefetch:
                if not isinstance(item, dict) or not isinstance(item.get("uri"), str):
                    raise self._bad("Each preFetchMedia item must be a mediaInfo with a uri.")
        tenant = body.get("tenantId")
        if tenant is not None and (not isinstance(tenant, str) or not _GUID_RE.fullmatch(tenant)):
            raise self._bad(f"The tenantId '{tenant}' is not a valid GUID.")

    def _create_call(self, version: str, body: Any) -> web.Response:
        if self.permission_denied:
            self._note = "POST calls → 403 (7504 insufficient tenant permissions)"
            return self._graph_error(
                403,
                "7504",
                "Insufficient enterprise tenant permissions, you cannot access this API.",
            )
        self._validate_call(body)
        call_id = str(uuid.uuid4())
        media_config = body["mediaConfig"]
        call = FakeCall(
            id=call_id,
            state="establishing",
            callback_uri=body["callbackUri"],
            targets=body["targets"],
            source=body.get("source"),
            media=list(media_config.get("preFetchMedia") or []),
            tenant_id=body.get("tenantId") or self.tenant_id,
            requested_modalities=list(body["requestedModalities"]),
        )
        self.calls[call_id] = call
        identity = call.targets[0]["identity"]
        user = identity.get("user")
        answers = self.answer and not (
            isinstance(user, dict) and user.get("id") in self.unanswered_users
        )
        self._spawn(self._establish(call, answer=answers), call_id)
        who = (
            f"user {_short(identity['user']['id'])}"
            if isinstance(identity.get("user"), dict)
            else f"phone {identity['phone']['id'][:4]}…"
        )
        self._note = f"call {_short(call_id)} to {who} → establishing"
        location = f"{self.graph_base}/{version}/communications/calls/{call_id}"
        return self._graph_json(201, self._call_resource(call, version), {"Location": location})

    async def _establish(self, call: FakeCall, *, answer: bool) -> None:
        if self.interim_notifications:
            await self.notify(call.id, self._call_data(call))
        await self._sleep(self.notify_delay)
        if call.state != "establishing" or self._closing.is_set():
            return
        if answer:
            call.state = "established"
            self._log(f"call {_short(call.id)} established")
            await self.notify(call.id, self._call_data(call))
        else:
            call.state = "terminated"
            call.result_info = _result(RESULT_CALL_NOT_REACHED)
            self._log(f"call {_short(call.id)} not answered → terminated")
            await self.notify(call.id, self._call_data(call), change_type="deleted")

    def _get_call(self, version: str, call_id: str) -> web.Response:
        call = self._live_call(call_id)
        self._note = f"call {_short(call_id)} read ({call.state})"
        return self._graph_json(200, self._call_resource(call, version))

    def _delete_call(self, call_id: str) -> web.Response:
        call = self._live_call(call_id)
        self._cancel_call_tasks(call_id)
        call.state = "terminated"
        call.result_info = _result(RESULT_CALL_ENDED)
        self._spawn(self._terminated(call))
        self._note = f"call {_short(call_id)} hung up by the app → terminated"
        return self._graph_json(204, None)

    async def _terminated(self, call: FakeCall) -> None:
        if self.interim_notifications:
            data = {"@odata.type": "#microsoft.graph.call", "state": "terminating", "id": call.id}
            await self.notify(call.id, data)
        await self._sleep(self.notify_delay)
        if not self._closing.is_set():
            await self.notify(call.id, self._call_data(call), change_type="deleted")

    def _subscribe_to_tone(self, version: str, call_id: str, body: Any) -> web.Response:
        call = self._live_call(call_id)
        if not isinstance(body, dict) or set(body) - {"clientContext"}:
            raise self._bad("The request body must be an object with only clientContext.")
        context = body.get("clientContext")
        if context is not None and (
            not isinstance(context, str) or len(context) > MAX_CLIENT_CONTEXT
        ):
            raise self._bad(f"clientContext must be a string of at most {MAX_CLIENT_CONTEXT}.")
        if self.tone_permission_denied:
            self._note = f"subscribeToTone on call {_short(call_id)} → 403"
            return self._graph_error(
                403, "Forbidden", "Application does not have permission Calls.AccessMedia.All."
            )
        if call.state != "established":
            raise self._bad(f"Call '{call_id}' is not established (state: {call.state}).")
        call.tones_subscribed = True
        op_id = str(uuid.uuid4())
        operation = {
            "@odata.type": "#microsoft.graph.subscribeToToneOperation",
            "id": op_id,
            "status": "completed",
            "clientContext": context,
            "resultInfo": None,
        }
        call.operations[op_id] = operation
        self._note = f"subscribeToTone on call {_short(call_id)} → completed"
        location = self._operation_location(version, call_id, op_id)
        return self._graph_json(200, operation, {"Location": location})

    async def press(self, call_id: str, key: str) -> int:
        """The callee presses ``key`` (0-9, *, #, A-D): a toneInfo notification if subscribed.

        Returns the receiver's status, or -1 when nothing was sent (not subscribed, not
        established: Graph tells nothing then).
        """
        call = self.calls[call_id]
        if not call.tones_subscribed or call.state != "established":
            return -1
        names = {"*": "star", "#": "pound"}
        tone = names.get(key) or (f"tone{key}" if key.isdigit() else key.lower())
        call.tone_sequence += 1
        call.tone_info = {
            "@odata.type": "#microsoft.graph.toneInfo",
            "sequenceId": call.tone_sequence,
            "tone": tone,
        }
        data = self._call_data(call) | {"toneInfo": call.tone_info}
        return await self.notify(call_id, data)

    def _keep_alive(self, call_id: str) -> web.Response:
        call = self._live_call(call_id)
        call.keep_alives += 1
        self._note = f"keepAlive on call {_short(call_id)}"
        return self._graph_json(200, None)

    def _validate_prompts(self, version: str, body: Any) -> tuple[list[dict[str, Any]], bool]:
        if not isinstance(body, dict):
            raise self._bad("The request body must be a JSON object.")
        allowed = {"clientContext", "prompts"} | ({"loop"} if version == "beta" else set())
        for name in body:
            if name not in allowed:
                raise self._bad(
                    f"The parameter '{name}' in the request payload is not a valid parameter "
                    "for the operation 'playPrompt'."
                )
        loop = body.get("loop", False)
        if not isinstance(loop, bool):
            raise self._bad("The parameter 'loop' must be a boolean.")
        context = body.get("clientContext")
        if context is not None and not isinstance(context, str):
            raise self._bad("clientContext must be a string.")
        if isinstance(context, str) and len(context) > MAX_CLIENT_CONTEXT:
            raise self._bad(f"clientContext is longer than {MAX_CLIENT_CONTEXT} characters.")
        prompts = body.get("prompts")
        if not isinstance(prompts, list) or not prompts:
            raise self._bad("At least one prompt is required.")
        if len(prompts) > MAX_PROMPTS:
            raise self._bad(f"The maximum supported prompts collection size is {MAX_PROMPTS}.")
        for prompt in prompts:
            if not isinstance(prompt, dict) or prompt.get("@odata.type") != (
                "#microsoft.graph.mediaPrompt"
            ):
                raise self._bad("Each prompt must be a '#microsoft.graph.mediaPrompt'.")
            info = prompt.get("mediaInfo")
            if not isinstance(info, dict) or not isinstance(info.get("uri"), str):
                raise self._bad("Each mediaPrompt needs a mediaInfo with a uri.")
            resource_id = info.get("resourceId")
            if resource_id is not None and not isinstance(resource_id, str):
                raise self._bad("mediaInfo.resourceId must be a string.")
        return prompts, loop

    def _play_prompt(self, version: str, call_id: str, body: Any) -> web.Response:
        call = self._live_call(call_id)
        prompts, loop = self._validate_prompts(version, body)
        if call.state != "established":
            raise self._bad(f"Call '{call_id}' is not established (state: {call.state}).")
        op_id = str(uuid.uuid4())
        operation: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.playPromptOperation",
            "id": op_id,
            "status": "running",
            "clientContext": body.get("clientContext"),
            "resultInfo": None,
        }
        call.operations[op_id] = operation
        location = self._operation_location(version, call_id, op_id)
        if self.fail_media_at_once:
            operation["status"] = "failed"
            operation["resultInfo"] = _result(RESULT_PROMPT_DOWNLOAD_FAILED)
            self._note = (
                f"playPrompt on call {_short(call_id)} → failed at once (op {_short(op_id)})"
            )
            return self._graph_json(200, operation, {"Location": location})
        uris = [str(p["mediaInfo"]["uri"]) for p in prompts]
        bad = [u for u in uris if urllib.parse.urlsplit(u).scheme.lower() != "https"]
        fail = self.fail_media or bool(bad)
        previous = self._media_tail.get(call_id)
        infos = [p["mediaInfo"] for p in prompts]
        task = self._spawn(self._run_prompt(call, operation, infos, loop, fail, previous), call_id)
        if task is not None:
            self._media_tail[call_id] = task
            self._prompt_tasks.setdefault(call_id, {})[op_id] = task
        loop_note = " (loop)" if loop else ""
        self._note = (
            f"playPrompt {len(prompts)} prompt{'s' if len(prompts) != 1 else ''}{loop_note} "
            f"on call {_short(call_id)} → running (op {_short(op_id)})"
        )
        return self._graph_json(200, operation, {"Location": location})

    def _operation_location(self, version: str, call_id: str, op_id: str) -> str:
        return f"{self.graph_base}/{version}/communications/calls/{call_id}/operations/{op_id}"

    def _operation_url(self, call_id: str, op_id: str) -> str:
        if self.compact_operation_ids:
            call_id, op_id = _compact(call_id), _compact(op_id)
        return f"/communications/calls/{call_id}/operations/{op_id}"

    async def _finish_operation(
        self, call: FakeCall, operation: dict[str, Any], status: str, result: tuple[int, int, str]
    ) -> None:
        operation["status"] = status
        operation["resultInfo"] = _result(result)
        url = self._operation_url(call.id, operation["id"])
        data = {
            "@odata.type": operation["@odata.type"],
            "@odata.id": url,
            "@odata.etag": f'W/"{secrets.randbelow(90000) + 10000}"',
            "id": operation["id"],
            "status": status,
            "clientContext": operation["clientContext"],
            "resultInfo": operation["resultInfo"],
        }
        self._log(f"prompt op {_short(operation['id'])} on call {_short(call.id)} {status}")
        await self.notify(call.id, data, change_type="deleted", resource_url=url)

    async def _run_prompt(
        self,
        call: FakeCall,
        operation: dict[str, Any],
        media: list[dict[str, Any]],
        loop: bool,
        fail: bool,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        failure = RESULT_PROMPT_DOWNLOAD_FAILED if fail else None
        if failure is None and self.check_media:
            failure = await self._check_media(media)
        if failure is not None:
            await self._sleep(self.prompt_seconds)
            if not self._closing.is_set():
                await self._finish_operation(call, operation, "failed", failure)
            return
        if loop:
            await self._closing.wait()  # plays until cancelled / the call ends
            return
        await self._sleep(self.prompt_seconds * len(media))
        if not self._closing.is_set():
            await self._finish_operation(call, operation, "completed", RESULT_PROMPT_COMPLETED)

    async def _check_media(self, media: list[dict[str, Any]]) -> tuple[int, int, str] | None:
        """Download each prompt as Teams does; the result of the first one it cannot play."""
        for info in media:
            uri, resource_id = str(info["uri"]), info.get("resourceId")
            if resource_id is not None and resource_id in self._media_cache:
                self._log(f"media {_short_url(uri)}: cached (resourceId {_short(resource_id)})")
                continue
            fetch = await self._fetch_media(uri)
            self.media_fetches.append(fetch)
            if fetch.problem is not None:
                self._log(f"media {_short_url(uri)}: {fetch.problem}")
                # Downloaded but not playable is a format error, as Teams reports it.
                bad_format = fetch.status == 200
                return RESULT_PROMPT_BAD_FORMAT if bad_format else RESULT_PROMPT_DOWNLOAD_FAILED
            assert fetch.layout is not None
            self._log(
                f"media {_short_url(uri)}: WAV {fetch.layout['format'].upper()}, "
                f"{fetch.layout['channels']} channel, {fetch.layout['bits_per_sample']}-bit, "
                f"{fetch.layout['sample_rate']} Hz, {fetch.seconds:.2f} s"
            )
            if resource_id is not None:
                self._media_cache.add(resource_id)
        return None

    def _media_url(self, uri: str) -> str | None:
        """Where to fetch ``uri`` from: its mapped host, or itself when it is local."""
        parts = urllib.parse.urlsplit(uri)
        host = (parts.hostname or "").lower()
        base = self.media_hosts.get(parts.netloc.lower()) or self.media_hosts.get(host)
        if base is not None:
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            return base.rstrip("/") + tail
        return uri if host in _LOCAL_HOSTS else None

    async def _fetch_media(self, uri: str) -> MediaFetch:
        url = self._media_url(uri)
        session = self._session
        if url is None or session is None:
            return MediaFetch(uri, url, 0, problem="host not reachable")
        try:
            async with session.get(
                url,
                timeout=aiohttp.ClientTimeout(total=self.notify_timeout),
                ssl=self.verify_notification_tls,
            ) as response:
                status, data = response.status, await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            return MediaFetch(uri, url, 0, problem=f"download failed ({type(err).__name__})")
        if status != 200:
            return MediaFetch(uri, url, status, problem=f"download failed (HTTP {status})")
        found = wav_layout(data)
        if found is None:
            return MediaFetch(uri, url, status, problem="not a WAV file")
        layout, seconds = found
        fetch = MediaFetch(uri, url, status, layout, seconds)
        if layout != MEDIA_FORMAT:
            fetch.problem = (
                f"{layout['format']}, {layout['channels']} channel(s), "
                f"{layout['bits_per_sample']}-bit, {layout['sample_rate']} Hz: Teams plays "
                "PCM WAV, mono, 16-bit, 16 kHz"
            )
        return fetch

    def _cancel_media(self, version: str, call_id: str, body: Any) -> web.Response:
        call = self._live_call(call_id)
        context = body.get("clientContext") if isinstance(body, dict) else None
        canceled: list[dict[str, Any]] = []
        for op_id, task in self._prompt_tasks.pop(call_id, {}).items():
            if not task.done():
                task.cancel()
                canceled.append(call.operations[op_id])
        self._media_tail.pop(call_id, None)
        if canceled:
            self._spawn(self._canceled(call, canceled), call_id)
        op_id = str(uuid.uuid4())
        operation = {
            "@odata.type": "#microsoft.graph.cancelMediaProcessingOperation",
            "id": op_id,
            "status": "completed",
            "clientContext": context,
            "resultInfo": None,
        }
        call.operations[op_id] = operation
        self._note = f"cancelMediaProcessing on call {_short(call_id)}: {len(canceled)} canceled"
        location = self._operation_location(version, call_id, op_id)
        return self._graph_json(200, operation, {"Location": location})

    async def _canceled(self, call: FakeCall, operations: list[dict[str, Any]]) -> None:
        await self._sleep(self.notify_delay)
        for operation in operations:
            if self._closing.is_set():
                return
            await self._finish_operation(call, operation, "failed", RESULT_PROMPT_CANCELED)


# ---------------------------------------------------------------------- program


def _media_host(text: str) -> tuple[str, str]:
    host, sep, base = text.partition("=")
    if not sep or not host or not base.startswith(("http://", "https://")):
        msg = f"{text!r} is not HOST=scheme://host:port"
        raise argparse.ArgumentTypeError(msg)
    return host.lower(), base


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.graph",
        description="Run a fake Microsoft Graph (token endpoint, calls API, notifications).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--tenant", default="11111111-2222-3333-4444-555555555555")
    parser.add_argument("--client-id", default="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    parser.add_argument("--client-secret", default="graph-secret-value")
    parser.add_argument("--https", action="store_true", help="serve HTTPS (self-signed)")
    parser.add_argument("--cert-dir", type=pathlib.Path, default=None)
    parser.add_argument(
        "--notification-base",
        default=None,
        help="deliver notifications here (scheme://host:port) instead of the callbackUri host",
    )
    parser.add_argument(
        "--insecure-notifications",
        action="store_true",
        help="do not verify TLS certificates of https callbacks",
    )
    parser.add_argument(
        "--check-media",
        action="store_true",
        help="download every prompt and fail the operation unless it is a WAV file, mono, "
        "16-bit, 16 kHz (as Teams does)",
    )
    parser.add_argument(
        "--media-host",
        action="append",
        default=[],
        type=_media_host,
        metavar="HOST=BASE",
        help="fetch prompts whose URL names HOST from BASE (scheme://host:port) instead, "
        "path kept; repeatable. Without one only 127.0.0.1 is reachable",
    )
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--notify-delay", type=float, default=1.0)
    parser.add_argument("--prompt-seconds", type=float, default=3.0)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fake-graph-") as tmp:
        ssl_context = None
        if args.https:
            cert_dir = args.cert_dir if args.cert_dir is not None else pathlib.Path(tmp)
            cert, key = make_self_signed_cert(cert_dir, common_name=args.host)
            ssl_context = server_ssl_context(cert, key)
        fake = FakeGraph(
            tenant_id=args.tenant,
            client_id=args.client_id,
            client_secret=args.client_secret,
            notify_delay=args.notify_delay,
            prompt_seconds=args.prompt_seconds,
            log_requests=True,
        )
        fake.latency = args.latency
        fake.notification_base = args.notification_base
        fake.verify_notification_tls = not args.insecure_notifications
        fake.check_media = args.check_media
        fake.media_hosts = dict(args.media_host)
        await fake.start(host=args.host, port=args.port, ssl_context=ssl_context)

        _emit(f"Fake Microsoft Graph listening on {fake.base_url}")
        _emit(f"  login base:   {fake.login_base}   (token: {fake.token_url})")
        _emit(f"  graph base:   {fake.graph_base}")
        _emit(f"  OpenID config {fake.openid_config_url}")
        _emit(f"  tenant {args.tenant}  client id {args.client_id}  client secret: (not shown)")
        if args.notification_base:
            _emit(f"  notifications go to {args.notification_base} (callback paths kept)")
        if args.check_media:
            hosts = "".join(f"; {host} → {base}" for host, base in fake.media_hosts.items())
            _emit(f"  prompts are downloaded and checked (WAV, mono, 16-bit, 16 kHz){hosts}")
        await serve_until_stopped(fake.close, "Fake Microsoft Graph")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the fake Graph until Ctrl-C / SIGTERM."""
    return run_program(_serve(_parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
