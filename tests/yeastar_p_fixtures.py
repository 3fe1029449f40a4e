"""Fixtures of a Yeastar P-Series entry: the fake PBX and an entry for it, for any test module.

Import the fixtures a module needs from here (``from tests.yeastar_p_fixtures import
fake_p, p_entry, p_loaded``). The fake is a real HTTPS server on 127.0.0.1 with the
session's self-signed certificate (``tests/fakes/yeastar_p.py``); the entry is set up
through Home Assistant as a user's would be.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import re
import ssl
from typing import Any, Final

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.backends.certificate import CONF_CERTIFICATE_SHA256
from custom_components.voice_prompt.backends.yeastar_p import YeastarPBackend
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PORT,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from tests.fakes.yeastar_p import FakeYeastarP

P_CLIENT_ID: Final = "vp-ha-client"
P_CLIENT_SECRET: Final = "P-Series-Secret-HA-0123456789"
P_SERIAL: Final = "3631A2124123"
P_MODEL: Final = "Yeastar P550"
P_TITLE: Final = "Yeastar P550 (127.0.0.1)"
# Paths of the fake's endpoints (relative to /openapi/v1.0/).
P_PLAY: Final = "call/play_prompt"
P_UPLOAD: Final = "custom_prompt/upload"


class _OurCallId:
    """Equal to every call id the P-Series backend gives a call (``vp-`` and 32 hex digits).

    The PBX answers ``call/play_prompt`` without one, so the backend makes its own.
    """

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"vp-[0-9a-f]{32}", other) is not None

    def __repr__(self) -> str:
        return "<a vp- call id>"


P_CALL_ID: Final[Any] = _OurCallId()


def p_entry_data(fake: FakeYeastarP, **changes: Any) -> dict[str, Any]:
    """Entry data for a fake P-Series PBX."""
    return {
        CONF_BACKEND: YeastarPBackend.kind,
        CONF_HOST: fake.host,
        CONF_PORT: fake.port,
        CONF_CLIENT_ID: P_CLIENT_ID,
        CONF_CLIENT_SECRET: P_CLIENT_SECRET,
        CONF_VERIFY_SSL: False,
        # Confirmed at setup: the fake's certificate is the one pinned.
        CONF_CERTIFICATE_SHA256: fake.certificate_sha256,
    } | changes


def add_p_entry(
    hass: HomeAssistant,
    fake: FakeYeastarP,
    *,
    subentries: list[ConfigSubentryDataWithId] | None = None,
    **kwargs: Any,
) -> MockConfigEntry:
    """A P-Series entry for ``fake`` (optionally with subentries), added but not set up."""
    options: dict[str, Any] = {
        "domain": DOMAIN,
        "title": P_TITLE,
        "unique_id": fake.serial,
        "data": p_entry_data(fake),
        "subentries_data": subentries,
    }
    entry = MockConfigEntry(**(options | kwargs))
    entry.add_to_hass(hass)
    return entry


def p_play_bodies(fake: FakeYeastarP) -> list[Any]:
    """The bodies of the ``call/play_prompt`` requests the fake received, in order."""
    return [request.body for request in fake.calls(P_PLAY)]


@pytest.fixture
async def fake_p(server_ssl: ssl.SSLContext, socket_enabled: None) -> AsyncGenerator[FakeYeastarP]:
    """A running fake P550 on https://127.0.0.1:<free port> (the session's self-signed cert).

    It knows extensions 1000-1003, groups 6300/6301 and a few prompts (``doorbell``,
    ``alarm``, ...); add more through its attributes (``fake_p.extensions[...] = ...``).
    """
    fake = FakeYeastarP(client_id=P_CLIENT_ID, client_secret=P_CLIENT_SECRET, serial=P_SERIAL)
    await fake.start(ssl_context=server_ssl)
    yield fake
    await fake.close()


@pytest.fixture
def p_entry(hass: HomeAssistant, fake_p: FakeYeastarP) -> MockConfigEntry:
    """A P-Series entry for the fake, added to hass but not set up."""
    return add_p_entry(hass, fake_p)


@pytest.fixture
async def p_loaded(hass: HomeAssistant, p_entry: MockConfigEntry) -> MockConfigEntry:
    """The P-Series entry, set up against the fake."""
    assert await hass.config_entries.async_setup(p_entry.entry_id)
    await hass.async_block_till_done()
    return p_entry
