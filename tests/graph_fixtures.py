"""Fixtures for the Microsoft Graph backend: the fake Graph, entries, and notification receivers.

Import the fixtures a test module needs from here (``tests/conftest.py`` stays Yeastar-only).
Everything listens on 127.0.0.1; nothing is mocked at the HTTP level.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from pathlib import Path
import socket
from typing import Any
import urllib.parse
import weakref

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.voice_prompt.api import (
    GraphClient,
    GraphEvent,
    GraphNotificationVerifier,
    VoicePromptAuthenticationError,
)
from custom_components.voice_prompt.backends import graph as graph_backend
from custom_components.voice_prompt.backends.graph import (
    CONF_TENANT_ID,
    GraphEndpoints,
    TeamsBackend,
)
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN
from homeassistant.components.http import StaticPathConfig
from homeassistant.const import CONF_CLIENT_ID, CONF_CLIENT_SECRET, CONF_WEBHOOK_ID
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from tests.fakes.graph import FakeGraph
from tests.tts_fixtures import wav_bytes

TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "graph-secret-value~Q8x.Zk"
UNIQUE_ID = f"{TENANT_ID}_{CLIENT_ID}"
TITLE = "Microsoft Teams (aaaaaaaa)"
WEBHOOK_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
EXTERNAL_URL = "https://ha.example.test"
USER_ID = "6e5b5c1a-0d3e-4b8f-9a0c-2f4d6b8a1c3e"
INSTANCE_ID = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
MEDIA = "https://media.example.test/doorbell.wav"
MEDIA_2 = "https://media.example.test/chime.wav"
# What the receivers below pretend to be: Graph delivers to ``notification_base`` + path.
RECEIVER_CALLBACK = "https://receiver.example.test/notify"
# What Teams plays: WAV, mono, 16-bit, 16 kHz. The media server and /local/ serve this.
TEAMS_RATE = 16000
LOCAL_FILE = "chime.wav"  # in the www folder: /local/chime.wav


def graph_entry_data(**changes: Any) -> dict[str, Any]:
    """Entry data of a Microsoft Teams entry for the fake's app."""
    return {
        CONF_BACKEND: TeamsBackend.kind,
        CONF_TENANT_ID: TENANT_ID,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: CLIENT_SECRET,
        CONF_WEBHOOK_ID: WEBHOOK_ID,
    } | changes


# ------------------------------------------------------------------------- servers


@pytest.fixture
async def graph(socket_enabled: None) -> AsyncGenerator[FakeGraph]:
    """A running fake Microsoft Graph (token endpoint, calls API, keys) on 127.0.0.1.

    Notifications are quick (20 ms) so a whole place-play-hang-up run takes ~0.1 s. It
    downloads and checks every prompt it plays, like Teams: ``media.example.test`` is
    a :class:`MediaServer` (``graph_media``); ``graph_http`` adds Home Assistant's URL.
    """
    fake = FakeGraph(
        tenant_id=TENANT_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        notify_delay=0.02,
        prompt_seconds=0.02,
    )
    media = MediaServer()
    await media.start()
    fake.media_hosts[_host(MEDIA)] = media.base_url
    _MEDIA_SERVERS[fake] = media
    await fake.start()
    yield fake
    await fake.close()
    await media.close()


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


@pytest.fixture
def graph_endpoints(monkeypatch: pytest.MonkeyPatch, graph: FakeGraph) -> GraphEndpoints:
    """Point the integration's factories at the fake instead of Microsoft."""
    endpoints = GraphEndpoints(
        login_base=graph.login_base,
        graph_base=graph.graph_base,
        openid_config_url=graph.openid_config_url,
    )
    monkeypatch.setattr(graph_backend, "GRAPH_ENDPOINTS", endpoints)
    return endpoints


class _LocalServer:
    """A small real HTTP server on a free 127.0.0.1 port; subclasses add the routes."""

    def __init__(self) -> None:
        """Nothing listens until start()."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Listen on a free 127.0.0.1 port."""
        app = web.Application()
        self._add_routes(app.router)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """Return http://127.0.0.1:<port>."""
        return f"http://127.0.0.1:{self.port}"


class MediaServer(_LocalServer):
    """Where ``https://media.example.test/...`` prompts come from: real WAV files.

    Every path serves a short 16 kHz tone (what Teams plays) unless ``files`` names
    other bytes for it, or None for a 404. ``requests`` lists the paths asked for.
    """

    def __init__(self) -> None:
        """Nothing listens until start()."""
        super().__init__()
        self.files: dict[str, bytes | None] = {}
        self.requests: list[str] = []
        self._tone = wav_bytes(seconds=0.1, rate=TEAMS_RATE)

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/{path:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        data = self.files.get(request.path, self._tone)
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="audio/wav")


# Each fake's media server: a fixture of its own would have to be imported by every
# module that uses ``graph``.
_MEDIA_SERVERS: weakref.WeakKeyDictionary[FakeGraph, MediaServer] = weakref.WeakKeyDictionary()


@pytest.fixture
def graph_media(graph: FakeGraph) -> MediaServer:
    """The media server of ``graph`` (``https://media.example.test/...``)."""
    return _MEDIA_SERVERS[graph]


@dataclass
class OddReply:
    """One canned reply of :class:`OddServer`."""

    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class OddServer(_LocalServer):
    """A tiny real server for replies the fake never gives (odd token or call replies).

    ``routes`` maps a request path to its reply; other paths get an empty 404.
    """

    def __init__(self) -> None:
        """Nothing listens until start()."""
        super().__init__()
        self.routes: dict[str, OddReply] = {}
        self.requests: list[tuple[str, str]] = []

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{path:.*}", self._handle)

    def token_path(self, tenant_id: str = TENANT_ID) -> str:
        """Path of the token endpoint when ``login_base`` is ``base_url + '/login'``."""
        return f"/login/{tenant_id}/oauth2/v2.0/token"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests.append((request.method, request.path))
        reply = self.routes.get(request.path)
        if reply is None:
            return web.Response(status=404)
        return web.Response(
            status=reply.status,
            body=reply.body.encode(),
            content_type=reply.content_type,
            headers=reply.headers,
        )


@pytest.fixture
async def odd_server(socket_enabled: None) -> AsyncGenerator[OddServer]:
    """A running :class:`OddServer`."""
    server = OddServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def graph_closed_port(socket_enabled: None) -> Generator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# ----------------------------------------------------------- API-only receivers


class NotificationReceiver(_LocalServer):
    """What an application does with Graph's notifications: verify, then feed the client.

    Answers 401 to anything the verifier refuses and 202 otherwise, like the integration.
    """

    def __init__(self, verifier: GraphNotificationVerifier) -> None:
        """Nothing listens until start()."""
        super().__init__()
        self.verifier = verifier
        self.client: GraphClient | None = None
        self.statuses: list[int] = []
        self.payloads: list[dict[str, Any]] = []
        self.events: list[GraphEvent] = []

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/{path:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            await self.verifier.verify(request.headers.get("Authorization"))
        except VoicePromptAuthenticationError:
            self.statuses.append(401)
            return web.Response(status=401)
        payload = await request.json()
        self.payloads.append(payload)
        if self.client is not None:
            self.events.extend(self.client.handle_notification(payload))
        self.statuses.append(202)
        return web.Response(status=202)


@pytest.fixture
async def graph_session() -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session for the API client on its own."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def graph_receiver(
    graph: FakeGraph, graph_session: aiohttp.ClientSession
) -> AsyncGenerator[NotificationReceiver]:
    """A local receiver the fake delivers every notification to."""
    verifier = GraphNotificationVerifier(
        graph_session, CLIENT_ID, openid_config_url=graph.openid_config_url
    )
    receiver = NotificationReceiver(verifier)
    await receiver.start()
    graph.notification_base = receiver.base_url
    yield receiver
    graph.notification_base = None
    await receiver.close()


@pytest.fixture
def graph_client(
    graph: FakeGraph, graph_session: aiohttp.ClientSession, graph_receiver: NotificationReceiver
) -> GraphClient:
    """An API client for the fake's app, fed by ``graph_receiver``."""
    client = GraphClient(
        graph_session,
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        login_base=graph.login_base,
        graph_base=graph.graph_base,
    )
    graph_receiver.client = client
    return client


# ------------------------------------------------------------- Home Assistant


@pytest.fixture
def graph_entry(
    hass: HomeAssistant, graph: FakeGraph, graph_endpoints: GraphEndpoints
) -> MockConfigEntry:
    """A Microsoft Teams entry for the fake's app, added to hass but not set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=TITLE,
        unique_id=UNIQUE_ID,
        data=graph_entry_data(),
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def graph_http(
    hass: HomeAssistant,
    graph: FakeGraph,
    hass_client_no_auth: ClientSessionGenerator,
    tmp_path: Path,
) -> TestClient:
    """Home Assistant's HTTP app on a real 127.0.0.1 port; the fake delivers there.

    The external URL is what callbacks and ``/local/`` media resolve to; the fake keeps
    the callback's path and swaps scheme/host for this server, and fetches media on the
    external URL from it too (spoken messages, ``/local/``, ``/media/``). ``webhook``
    (and with it ``http``), ``network``, ``diagnostics``, ``repairs``, ``notify`` and
    ``/local/`` are set up first: views cannot be added once the server runs (its router
    is frozen then). ``/local/`` is the frontend's in Home Assistant (a www folder, here
    with a 16 kHz ``chime.wav``); the frontend itself is more than these tests need.
    """
    for component in ("webhook", "network", "diagnostics", "repairs", "notify"):
        assert await async_setup_component(hass, component, {})
    www = tmp_path / "www"
    www.mkdir()
    (www / LOCAL_FILE).write_bytes(wav_bytes(seconds=0.1, rate=TEAMS_RATE, frequency=660.0))
    await hass.http.async_register_static_paths([StaticPathConfig("/local", str(www), False)])
    client = await hass_client_no_auth()
    graph.notification_base = str(client.make_url("")).rstrip("/")
    graph.media_hosts[_host(EXTERNAL_URL)] = graph.notification_base
    hass.config.external_url = EXTERNAL_URL
    return client


@pytest.fixture
async def graph_loaded(
    hass: HomeAssistant, graph_entry: MockConfigEntry, graph_http: TestClient
) -> MockConfigEntry:
    """The Teams entry, set up against the fake, with notifications flowing through HA."""
    assert await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()
    return graph_entry


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    """Poll until ``predicate()`` is true (notifications arrive asynchronously)."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)
