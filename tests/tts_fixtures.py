"""A text-to-speech engine of the tests' own: real WAV audio, and a count of its calls.

Import the fixtures a test module needs from here. The engine is a TTS entity of a small
test integration set up through a config entry, as a real engine is; Home Assistant's
own TTS component, cache and ffmpeg conversion do the rest.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
import contextlib
import io
import math
import struct
from typing import Any
import wave

import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from homeassistant.components.tts import TextToSpeechEntity, TtsAudioType
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.setup import async_setup_component

TTS_DOMAIN = "voice_prompt_test_tts"
TTS_ENTITY = "tts.test_voice"
# What the engine makes on its own; backends ask for other rates (ffmpeg converts).
ENGINE_RATE = 22050


def wav_bytes(seconds: float = 0.25, rate: int = ENGINE_RATE, frequency: float = 440.0) -> bytes:
    """A real mono 16-bit WAV file: a sine tone."""
    frames = int(seconds * rate)
    samples = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate)))
        for i in range(frames)
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buffer.getvalue()


def wav_layout(data: bytes) -> tuple[int, int, int]:
    """(channels, bytes per sample, sample rate) of a WAV file."""
    with wave.open(io.BytesIO(data), "rb") as audio:
        return audio.getnchannels(), audio.getsampwidth(), audio.getframerate()


class CountingTTS(TextToSpeechEntity):
    """Speaks any text as a tone; counts the texts it was asked for."""

    _attr_name = "Test voice"
    _attr_supported_languages = ["en", "de"]  # noqa: RUF012 - Home Assistant's attribute
    _attr_default_language = "en"
    _attr_supported_options = ["voice"]  # noqa: RUF012 - Home Assistant's attribute

    def __init__(self) -> None:
        """No calls yet."""
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_with: str | None = None

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> TtsAudioType:
        """A tone as WAV at the engine's own rate, or the failure asked for."""
        self.calls.append((message, language, dict(options)))
        if self.fail_with is not None:
            raise HomeAssistantError(self.fail_with)
        return "wav", wav_bytes()


@pytest.fixture
async def tts_engine(hass: HomeAssistant, own_config_dir: None) -> AsyncGenerator[CountingTTS]:
    """Home Assistant's TTS with the counting engine as its (default) engine.

    ``own_config_dir``: the TTS file cache lives in the config folder; a shared one would
    answer a later run from the cache instead of the engine.
    """
    async with counting_tts(hass) as engine:
        yield engine


@contextlib.asynccontextmanager
async def counting_tts(hass: HomeAssistant) -> AsyncIterator[CountingTTS]:
    """Set up Home Assistant's TTS with a :class:`CountingTTS` (the benchmarks use it too)."""
    engine = CountingTTS()

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, ["tts"])
        return True

    async def setup_platform(
        hass: HomeAssistant,
        entry: ConfigEntry,
        async_add_entities: AddConfigEntryEntitiesCallback,
    ) -> None:
        async_add_entities([engine])

    mock_integration(hass, MockModule(TTS_DOMAIN, async_setup_entry=setup_entry))
    mock_platform(hass, f"{TTS_DOMAIN}.tts", MockPlatform(async_setup_entry=setup_platform))
    mock_platform(hass, f"{TTS_DOMAIN}.config_flow")
    assert await async_setup_component(hass, "tts", {})
    entry = MockConfigEntry(domain=TTS_DOMAIN)
    entry.add_to_hass(hass)
    with mock_config_flow(TTS_DOMAIN, _TTSFlow):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert hass.states.get(TTS_ENTITY) is not None
        yield engine


class _TTSFlow(ConfigFlow):
    """The test engine's integration has a config flow, as every config-entry one does."""
