"""espeak-ng as a (legacy) text-to-speech platform: WAV at espeak's own rate."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.tts import Provider, TtsAudioType
from homeassistant.core import HomeAssistant
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType

LANGUAGES = ["de", "en", "es", "fr", "it", "nl"]


async def async_get_engine(
    hass: HomeAssistant, config: ConfigType, discovery_info: DiscoveryInfoType | None = None
) -> Provider:
    """The espeak-ng engine."""
    return EspeakProvider()


class EspeakProvider(Provider):
    """Speaks through the espeak-ng program."""

    def __init__(self) -> None:
        """Name the engine as Home Assistant lists it."""
        self.name = "espeak-ng"

    @property
    def default_language(self) -> str:
        """English."""
        return "en"

    @property
    def supported_languages(self) -> list[str]:
        """What espeak-ng speaks here."""
        return LANGUAGES

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> TtsAudioType:
        """Run espeak-ng; the text goes in on stdin, the WAV comes out on stdout."""
        process = await asyncio.create_subprocess_exec(
            "espeak-ng",
            "-v",
            language,
            "--stdout",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        audio, _ = await process.communicate(message.encode())
        if process.returncode != 0 or not audio:
            return None, None
        return "wav", audio
