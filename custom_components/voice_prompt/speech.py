"""Spoken messages: a text rendered by Home Assistant's TTS in the format a backend asks for.

The audio is made before any call is placed, so a TTS failure is an error of the action
and not silence in someone's ear. Home Assistant's TTS cache keeps it: the same text,
engine, language and options are synthesised once, whatever the number of targets and
for as long as the cache holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
import struct
from typing import Any, Final

from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN

# About a minute of speech: an announcement longer than that is rarely heard to its end,
# and the audio must stay within what the PBXs take (a Yeastar P-Series upload ≤ 8 MB).
MAX_MESSAGE_LENGTH: Final = 1000


@dataclass(frozen=True, slots=True)
class SpeechFormat:
    """The audio a backend can play: a file format and its PCM layout."""

    extension: str  # "wav" or "mp3"
    sample_rate: int
    channels: int = 1
    sample_bytes: int = 2

    def options(self) -> dict[str, Any]:
        """Home Assistant's TTS options asking for this format (ffmpeg converts)."""
        return {
            tts.ATTR_PREFERRED_FORMAT: self.extension,
            tts.ATTR_PREFERRED_SAMPLE_RATE: self.sample_rate,
            tts.ATTR_PREFERRED_SAMPLE_CHANNELS: self.channels,
            tts.ATTR_PREFERRED_SAMPLE_BYTES: self.sample_bytes,
        }


@dataclass(frozen=True, slots=True)
class Message:
    """What the caller asked to be spoken."""

    text: str
    engine: str | None = None
    language: str | None = None
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Speech:
    """A rendered message: where Home Assistant serves it, its bytes and its content key.

    ``key`` names the same text, engine, language, options and format everywhere: the
    uploaded prompt of a PBX, the resourceId Microsoft caches the audio under.
    """

    url: str  # a path on this Home Assistant: /api/tts_proxy/<token>.<extension>
    audio: bytes
    key: str
    format: SpeechFormat


def check_message(text: str) -> str:
    """The text to speak, stripped; refuse an empty or over-long one before anything else."""
    text = text.strip()
    if not text:
        raise _invalid("message_empty", {})
    if len(text) > MAX_MESSAGE_LENGTH:
        raise _invalid(
            "message_too_long", {"length": str(len(text)), "limit": str(MAX_MESSAGE_LENGTH)}
        )
    return text


async def async_render(hass: HomeAssistant, message: Message, fmt: SpeechFormat) -> Speech:
    """Synthesise ``message`` in ``fmt`` (or take it from the TTS cache) and return it."""
    if "tts" not in hass.config.components:
        raise _invalid("tts_not_set_up", {})
    engine = tts.async_resolve_engine(hass, message.engine)
    if engine is None:
        raise _invalid("tts_engine_not_found", {"engine": message.engine or "the default engine"})
    options = {**dict(message.options), **fmt.options()}
    try:
        stream = tts.async_create_stream(hass, engine, message.language, options)
        stream.async_set_message(message.text)
        audio = b"".join([chunk async for chunk in stream.async_stream_result()])
    except Exception as err:
        # The engine is third-party code: Home Assistant 2025.4 passes its own exceptions
        # (and ffmpeg's RuntimeError) through, newer releases wrap them.
        raise _failed(engine, str(err)) from err
    if not audio:
        raise _failed(engine, "no audio")
    return Speech(
        url=stream.url,
        audio=_sized_wav(audio) if fmt.extension == "wav" else audio,
        key=_key(engine, stream.language, stream.options, message.text),
        format=fmt,
    )


def _sized_wav(audio: bytes) -> bytes:
    """The WAV with true RIFF and data sizes in its header.

    ffmpeg writing to a pipe (newer Home Assistant converts that way) cannot seek back to
    fill them in and leaves 0xFFFFFFFF, a header claiming 4 GB that a PBX may refuse.
    """
    if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return audio
    fixed = bytearray(audio)
    struct.pack_into("<I", fixed, 4, len(audio) - 8)
    position = 12
    while position + 8 <= len(audio):
        chunk, size = struct.unpack_from("<4sI", audio, position)
        if chunk == b"data":
            struct.pack_into("<I", fixed, position + 4, len(audio) - position - 8)
            break
        position += 8 + size + (size & 1)
    return bytes(fixed)


def _failed(engine: str, detail: str) -> HomeAssistantError:
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="tts_failed",
        translation_placeholders={"engine": engine, "detail": detail},
    )


def _key(engine: str, language: str | None, options: dict[str, Any], text: str) -> str:
    """A content hash of what was spoken and how."""
    material = json.dumps([engine, language, sorted(options.items()), text], default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def _invalid(key: str, placeholders: dict[str, str]) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )
