"""Shared fixtures: a fake Yeastar PBX over HTTPS on 127.0.0.1 and config entries for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
import contextlib
import dataclasses
import os
from pathlib import Path
import ssl
from typing import Any
from unittest.mock import patch

import aiohttp
from aiohttp.resolver import AsyncResolver
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.const import (
    BACKEND_YEASTAR,
    CONF_BACKEND,
    DOMAIN,
    SERVICE_PLAY_PROMPT,
)
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from tests.fakes.tls import make_self_signed_cert, server_ssl_context
from tests.fakes.yeastar import FakeYeastarPBX

PASSWORD = "VoicePrompt-Demo1"
SERIAL = "369364835218"


@pytest.fixture(autouse=True, scope="session")
def no_coverage_in_subprocesses() -> None:
    """Keep pytest-cov out of the programs tests start (pip, scripts/release).

    They run elsewhere with another configuration (no branch data), and coverage then
    refuses to combine their data with ours. The integration never runs in them.
    """
    for name in [name for name in os.environ if name.startswith("COV_CORE_")]:
        del os.environ[name]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/voice_prompt."""


@pytest.fixture(autouse=True)
async def own_dns_resolver() -> AsyncGenerator[None]:
    """Give each test a DNS resolver made on its own event loop.

    The test plugin makes one for the whole session on the session's loop; aiodns 4
    (Home Assistant 2026.10+) then never answers lookups from a test's loop.
    """
    resolver = AsyncResolver()
    resolver.real_close = resolver.close  # type: ignore[attr-defined]  # Home Assistant closes it so
    with patch("homeassistant.helpers.aiohttp_client._async_make_resolver", return_value=resolver):
        yield
    await resolver.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate for the whole run."""
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server_ssl(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """Server-side TLS context of the fake PBX."""
    return server_ssl_context(*tls_files)


@pytest.fixture
async def pbx(server_ssl: ssl.SSLContext, socket_enabled: None) -> AsyncGenerator[FakeYeastarPBX]:
    """A running fake Yeastar PBX on https://127.0.0.1:<free port>.

    ``socket_enabled`` lifts the test plugin's socket ban; its 127.0.0.1-only rule stays.
    """
    fake = FakeYeastarPBX(password=PASSWORD, serial=SERIAL)
    await fake.start(ssl_context=server_ssl)
    yield fake
    await fake.close()


@pytest.fixture
async def session() -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session for testing the API client on its own."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def entry_data(pbx: FakeYeastarPBX) -> dict[str, Any]:
    """Entry data for the fake PBX with API credentials."""
    return {
        CONF_BACKEND: BACKEND_YEASTAR,
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: False,
    }


@pytest.fixture
def config_entry(hass: HomeAssistant, entry_data: dict[str, Any]) -> MockConfigEntry:
    """A Yeastar entry for the fake PBX, added to hass but not set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Yeastar S100 ({entry_data[CONF_HOST]})",
        unique_id=SERIAL,
        data=entry_data,
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def loaded_entry(hass: HomeAssistant, config_entry: MockConfigEntry) -> MockConfigEntry:
    """The entry, set up against the fake PBX."""
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry


@pytest.fixture
def own_config_dir(hass: HomeAssistant, tmp_path: Path) -> None:
    """Give hass a config folder of its own.

    The test plugin's default is a folder inside the installed package, shared by every run;
    blueprints, custom sentences and default blueprints must not land there.
    """
    hass.config.config_dir = str(tmp_path / "config")
    Path(hass.config.config_dir).mkdir()


async def play_prompt(
    hass: HomeAssistant,
    entry: MockConfigEntry | str,
    *,
    return_response: bool = True,
    **data: Any,
) -> Any:
    """Call ``voice_prompt.play_prompt`` for an entry (or a bare entry id) and wait."""
    entry_id = entry if isinstance(entry, str) else entry.entry_id
    return await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": entry_id, **data},
        blocking=True,
        return_response=return_response,
    )


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry | None = None) -> list[Any]:
    """Reauth flows in progress for this integration (for one entry, when given)."""
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["handler"] == DOMAIN
        and flow["context"].get("source") == SOURCE_REAUTH
        and (entry is None or flow["context"].get("entry_id") == entry.entry_id)
    ]


@contextlib.contextmanager
def tls_resets_tolerated() -> Iterator[None]:
    """Let the fake's server side of a refused TLS handshake pass.

    When a client refuses the self-signed certificate it drops the connection in the
    handshake; asyncio reports that on the fake's (server) side through the loop's
    exception handler, which the ``hass`` fixture turns into a test failure. Only that
    report is dropped.
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def _handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(
            "Error on transport creation for incoming connection"
        ) and isinstance(context.get("exception"), (ConnectionError, ssl.SSLError)):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(_handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


@pytest.fixture
async def tolerate_tls_resets(hass: HomeAssistant) -> AsyncGenerator[None]:
    """``tls_resets_tolerated`` for a test, installed after ``hass`` set its own handler.

    Request it before ``pbx`` so that it is removed only after the fake has closed.
    """
    with tls_resets_tolerated():
        yield


def entry_device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    """The one device of an entry (by entry, not identifiers: those are per entry since 2026)."""
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return device


def webhook_registration(hass: HomeAssistant, webhook_id: str) -> dict[str, Any]:
    """A webhook's registration as a dict (a frozen dataclass since 2026, a dict before)."""
    hook = hass.data["webhook"][webhook_id]
    if isinstance(hook, dict):
        return dict(hook)
    return {field.name: getattr(hook, field.name) for field in dataclasses.fields(hook)}
