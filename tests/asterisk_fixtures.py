"""Fixtures of an Asterisk entry, shared by the fake-ARI and the real-Asterisk tests.

``ha_url`` serves Home Assistant's own HTTP app on 127.0.0.1 (a real socket, as the test
plugin's clients do) and makes it the instance's internal URL, so that an Asterisk, the
fake or the real one, can fetch spoken messages (``/api/tts_proxy/...``) and ``/local/``
files from it, as it would on a local network.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final
import wave

import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.voice_prompt.backends.asterisk import CONF_APP, AsteriskBackend
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN
from homeassistant.components.http import StaticPathConfig
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from tests.conftest import serve_home_assistant
from tests.tts_fixtures import CountingTTS

# A file of the www folder (served as /local/<name>) and of the media folder (media-source).
LOCAL_WAV: Final = "chirp.wav"
# A file Asterisk cannot play (16 kHz), in the media folder.
WIDE_WAV: Final = "wide.wav"


def chirp_wav(seconds: float, rate: int = 8000) -> bytes:
    """A distinctive sweep (300 Hz → 3 kHz, then down), 16-bit mono WAV bytes."""
    t = np.arange(int(seconds * rate)) / rate
    half = seconds / 2
    up = 300 + (3000 - 300) * np.minimum(t, half) / half
    down = 3000 - (3000 - 300) * np.maximum(t - half, 0) / half
    phase = 2 * np.pi * np.cumsum(np.where(t < half, up, down)) / rate
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((0.5 * np.sin(phase) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def asterisk_data(url: str, username: str, password: str) -> dict[str, Any]:
    """Entry data of an Asterisk entry (its URL already in normal form)."""
    return {
        CONF_BACKEND: AsteriskBackend.kind,
        CONF_URL: url,
        CONF_USERNAME: username,
        CONF_PASSWORD: password,
        CONF_APP: "voice_prompt",
        CONF_VERIFY_SSL: False,
    }


def add_asterisk_entry(
    hass: HomeAssistant, data: dict[str, Any], unique_id: str, title: str = "Asterisk (127.0.0.1)"
) -> MockConfigEntry:
    """An Asterisk entry, added to hass but not set up."""
    entry = MockConfigEntry(domain=DOMAIN, title=title, unique_id=unique_id, data=data)
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def ha_url(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    hass_client_no_auth: ClientSessionGenerator,
) -> str:
    """Home Assistant's HTTP app on 127.0.0.1:<free port>, the instance's internal URL.

    It serves the TTS proxy, ``/local/`` from the www folder as the frontend does, and
    the media folder as media-source ``local`` (LOCAL_WAV, 1.2 s at 8 kHz, in both; and
    WIDE_WAV at 16 kHz in the media folder).
    """
    www, media = Path(hass.config.path("www")), Path(hass.config.path("media"))
    for folder in (www, media):
        folder.mkdir()
        (folder / LOCAL_WAV).write_bytes(chirp_wav(1.2))
    (media / WIDE_WAV).write_bytes(chirp_wav(1.2, 16000))
    hass.config.media_dirs = {"local": str(media)}
    client = await serve_home_assistant(hass, hass_client_no_auth)
    assert await async_setup_component(hass, "media_source", {})
    await hass.http.async_register_static_paths([StaticPathConfig("/local", str(www), False)])
    return str(client.make_url("")).rstrip("/")
