"""Spoken messages through the action: Home Assistant's TTS, the P-Series upload, the refusals.

The engine is the tests' own TTS entity (``tests/tts_fixtures.py``): real WAV at 22,050 Hz
that Home Assistant converts with the real ffmpeg into what the backend asks for (the
P-Series: WAV, mono, 16-bit, 8 kHz). The PBXs are the fakes on 127.0.0.1; what they
received is what the assertions read.
"""

# ruff: noqa: F811 - the fixtures imported from tests.*_fixtures are test arguments

from __future__ import annotations

import re
import struct
from typing import Any, Final

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.backends.yeastar import YeastarBackend
from custom_components.voice_prompt.backends.yeastar_p import YeastarPBackend
from custom_components.voice_prompt.speech import MAX_MESSAGE_LENGTH, _sized_wav
from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
from tests.conftest import play_prompt
from tests.fakes.yeastar import FakeYeastarPBX
from tests.fakes.yeastar_p import FakeYeastarP
from tests.tts_fixtures import (  # noqa: F401 - tts_engine is a fixture
    ENGINE_RATE,
    TTS_ENTITY,
    CountingTTS,
    tts_engine,
    wav_bytes,
    wav_layout,
)
from tests.yeastar_p_fixtures import (  # noqa: F401 - fixtures
    P_CALL_ID,
    P_PLAY,
    P_UPLOAD,
    fake_p,
    p_entry,
    p_loaded,
    p_play_bodies,
)

MESSAGE: Final = "Lunch is ready"
# A Custom Prompt made from a message: vp_ and 16 hex digits of the content hash.
SPEECH_NAME: Final = re.compile(r"vp_[0-9a-f]{16}")
# What the P-Series is sent: WAV (PCM), mono, 16-bit, 8 kHz.
P_SERIES_FORMAT: Final = {
    "audio_format": 1,
    "channels": 1,
    "sample_rate": 8000,
    "byte_rate": 16000,
    "block_align": 2,
    "bits_per_sample": 16,
}
# The engine's tone lasts 0.25 s: 2,000 frames at 8 kHz after the conversion.
TONE_FRAMES_8K: Final = 2000
FIFTY: Final = [str(number) for number in range(2000, 2050)]
S_SERIES: Final = YeastarBackend.name
P_SERIES: Final = YeastarPBackend.name


def _wav_header(data: bytes) -> dict[str, Any]:
    """The RIFF header of a WAV file: its fmt chunk, the sizes it states and the real ones."""
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    chunks: dict[bytes, bytes] = {}
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        if chunk_id == b"data":
            break
        chunks[chunk_id] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size & 1)
    else:
        pytest.fail("the WAV file has no data chunk")
    fields = struct.unpack_from("<HHIIHH", chunks[b"fmt "])
    names = ("audio_format", "channels", "sample_rate", "byte_rate", "block_align")
    return {
        **dict(zip(names, fields, strict=False)),
        "bits_per_sample": fields[5],
        "riff_size": struct.unpack_from("<I", data, 4)[0],
        "data_size": size,
        "data_bytes": len(data) - offset - 8,
    }


def _fmt(header: dict[str, Any]) -> dict[str, Any]:
    return {key: header[key] for key in P_SERIES_FORMAT}


def _uploaded(fake: FakeYeastarP) -> list[str]:
    """The file names of the upload requests the fake received, in order."""
    return [request.body["file"]["filename"] for request in fake.calls(P_UPLOAD)]


def _texts(engine: CountingTTS) -> list[str]:
    return [text for text, _, _ in engine.calls]


def _assert_nothing_sent(fake: FakeYeastarP) -> None:
    assert fake.calls(P_UPLOAD) == []
    assert fake.calls(P_PLAY) == []
    assert fake.uploads == []


# ------------------------------------------------------------------------- speaking


async def test_message_is_rendered_uploaded_and_played_before_the_prompts(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """Once as 8 kHz WAV through ffmpeg, uploaded under its content name, played first."""
    response = await play_prompt(
        hass, p_loaded, target="1000", message=f"  {MESSAGE}\n", prompt="doorbell+alarm"
    )

    assert response == {
        "calls": [{"target": "1000", "call_id": P_CALL_ID, "status": "placed"}],
        "failed": [],
    }
    # The engine saw the stripped text once, in its default language, with no options:
    # the preferred-format options are Home Assistant's, for its ffmpeg conversion.
    assert tts_engine.calls == [(MESSAGE, "en", {})]
    (upload,) = fake_p.calls(P_UPLOAD)
    name = upload.body["file"]["filename"].removesuffix(".wav")
    assert SPEECH_NAME.fullmatch(name)
    assert upload.body["file"]["content_type"] == "audio/wav"
    assert upload.body["is_check"] == "ask"  # a prompt of that name on the PBX is kept
    assert fake_p.uploads == [name]
    # The real conversion ran: the engine makes 22,050 Hz, the PBX got 8 kHz mono 16-bit.
    assert wav_layout(wav_bytes()) == (1, 2, ENGINE_RATE)
    audio = fake_p.uploaded_data[name]
    assert upload.body["file"]["size"] == len(audio)
    header = _wav_header(audio)
    assert _fmt(header) == P_SERIES_FORMAT
    assert abs(header["data_bytes"] // 2 - TONE_FRAMES_8K) <= 20
    # Uploaded, then played: the spoken message first, then the prompts in order.
    paths = [request.path for request in fake_p.requests]
    assert paths.index(P_UPLOAD) < paths.index(P_PLAY)
    assert p_play_bodies(fake_p) == [
        {"number": "1000", "prompts": [name, "doorbell", "alarm"], "auto_answer": "no"}
    ]


async def test_uploaded_wav_header_states_its_real_sizes(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """The RIFF and data sizes in the uploaded file's header match its length.

    ffmpeg writing WAV to a pipe cannot go back to fill them in (newer Home Assistant
    converts through a pipe): it leaves 0xFFFFFFFF, a header that claims 4 GB.
    """
    await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)

    (audio,) = fake_p.uploaded_data.values()
    header = _wav_header(audio)
    assert header["riff_size"] == len(audio) - 8
    assert header["data_size"] == header["data_bytes"]


def test_sizes_are_fixed_past_other_chunks_and_other_formats_pass() -> None:
    """A LIST chunk of odd size (padded) before data is stepped over; MP3 stays as it is."""
    samples = b"\x01\x00" * 10
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    extra = struct.pack("<4sI", b"LIST", 3) + b"abc\x00"
    data = struct.pack("<4sI", b"data", 0xFFFFFFFF) + samples
    streamed = struct.pack("<4sI4s", b"RIFF", 0xFFFFFFFF, b"WAVE") + fmt + extra + data

    fixed = _sized_wav(streamed)

    assert struct.unpack_from("<I", fixed, 4) == (len(fixed) - 8,)
    assert fixed.endswith(struct.pack("<I", len(samples)) + samples)
    assert fixed[: len(streamed) - len(data)] != streamed[: len(streamed) - len(data)]
    assert _sized_wav(b"ID3\x04rest of an mp3") == b"ID3\x04rest of an mp3"


async def test_fifty_targets_one_synthesis_one_upload_and_a_repeat_costs_nothing(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """The same message to 50 targets: 1 engine call, 1 upload; again: 0 and 0."""
    fake_p.extensions |= {number: f"Phone {number}" for number in FIFTY}

    response = await play_prompt(hass, p_loaded, target=FIFTY, message=MESSAGE)

    assert response["calls"] == [
        {"target": number, "call_id": P_CALL_ID, "status": "placed"} for number in FIFTY
    ]
    assert response["failed"] == []
    assert len(tts_engine.calls) == 1
    (name,) = fake_p.uploads
    assert len(fake_p.calls(P_UPLOAD)) == 1
    bodies = p_play_bodies(fake_p)
    assert sorted(body["number"] for body in bodies) == FIFTY
    assert all(body["prompts"] == [name] for body in bodies)

    # The same message again, within the TTS cache's life: nothing synthesised or uploaded.
    response = await play_prompt(hass, p_loaded, target=FIFTY, message=MESSAGE)

    assert len(response["calls"]) == 50
    assert len(tts_engine.calls) == 1
    assert len(fake_p.calls(P_UPLOAD)) == 1
    assert fake_p.uploads == [name]
    assert len(fake_p.calls(P_PLAY)) == 100
    assert all(body["prompts"] == [name] for body in p_play_bodies(fake_p))


async def test_after_a_reload_the_pbx_keeps_the_prompt_and_tts_its_cache(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """A reloaded entry asks the PBX (is_check=ask), which keeps what it has."""
    await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)
    (name,) = fake_p.uploads

    assert await hass.config_entries.async_reload(p_loaded.entry_id)
    await hass.async_block_till_done()
    await play_prompt(hass, p_loaded, target="1001", message=MESSAGE)

    assert len(tts_engine.calls) == 1
    first, second = fake_p.calls(P_UPLOAD)
    assert second.body["file"]["filename"] == first.body["file"]["filename"] == f"{name}.wav"
    assert second.body["is_check"] == "ask"
    assert second.reply == {"errcode": 0, "errmsg": "SUCCESS", "exist_type": "record"}
    assert fake_p.uploads == [name]  # stored once
    assert p_play_bodies(fake_p)[-1] == {"number": "1001", "prompts": [name], "auto_answer": "no"}


@pytest.mark.parametrize(
    ("changes", "engine_call"),
    [
        pytest.param({"language": "de"}, (MESSAGE, "de", {}), id="language"),
        pytest.param(
            {"tts_options": {"voice": "anna"}}, (MESSAGE, "en", {"voice": "anna"}), id="option"
        ),
        pytest.param(
            {"tts_engine": TTS_ENTITY, "language": "de", "tts_options": {"voice": "anna"}},
            (MESSAGE, "de", {"voice": "anna"}),
            id="engine-language-option",
        ),
    ],
)
async def test_another_language_or_option_is_synthesised_and_uploaded_anew(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    changes: dict[str, Any],
    engine_call: tuple[str, str, dict[str, Any]],
) -> None:
    """The content name covers the language and the options: another one is another prompt."""
    await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)
    await play_prompt(hass, p_loaded, target="1000", message=MESSAGE, **changes)
    # Each again: both from the cache.
    await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)
    await play_prompt(hass, p_loaded, target="1000", message=MESSAGE, **changes)

    # The options reach the engine as given (ffmpeg's format options do not).
    assert tts_engine.calls == [(MESSAGE, "en", {}), engine_call]
    first, second = fake_p.uploads
    assert SPEECH_NAME.fullmatch(first)
    assert SPEECH_NAME.fullmatch(second)
    assert first != second
    assert len(fake_p.calls(P_UPLOAD)) == 2
    assert [body["prompts"] for body in p_play_bodies(fake_p)] == [
        [first],
        [second],
        [first],
        [second],
    ]


async def test_the_longest_message_is_spoken(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """MAX_MESSAGE_LENGTH characters (spaces around them do not count) are spoken."""
    text = "a" * MAX_MESSAGE_LENGTH

    await play_prompt(hass, p_loaded, target="1000", message=f"  {text}  ")

    assert _texts(tts_engine) == [text]
    assert len(fake_p.calls(P_PLAY)) == 1


# ------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"message": MESSAGE}, id="message"),
        pytest.param({"message": MESSAGE, "prompt": "doorbell"}, id="message-and-prompt"),
        pytest.param(
            {"message": MESSAGE, "prompt": "doorbell", "tts_engine": TTS_ENTITY}, id="with-engine"
        ),
    ],
)
async def test_s_series_refuses_a_message_and_says_what_to_do(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    data: dict[str, Any],
) -> None:
    """No upload API: refused before rendering or sending, with the way round it."""
    before = len(pbx.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded_entry, target="1000", **data)

    err = exc_info.value
    assert err.translation_key == "speech_not_supported"
    assert err.translation_placeholders == {"entry": loaded_entry.title, "backend": S_SERIES}
    assert str(err) == (
        f"{loaded_entry.title} ({S_SERIES}) cannot speak a text: its API can neither play "
        "audio from Home Assistant nor take an uploaded recording. Record the announcement "
        "as a Custom Prompt in the PBX's web interface and play it by name with prompt"
    )
    assert len(pbx.requests) == before
    assert tts_engine.calls == []


async def test_s_series_refuses_speech_options_without_a_message(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """tts_engine, language and tts_options need a backend that speaks."""
    before = len(pbx.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(
            hass, loaded_entry, target="1000", prompt="doorbell", language="en", tts_options={}
        )

    assert exc_info.value.translation_key == "fields_not_supported"
    assert exc_info.value.translation_placeholders["fields"] == "language, tts_options"
    assert len(pbx.requests) == before


@pytest.mark.parametrize(
    ("data", "key", "placeholders", "text"),
    [
        pytest.param(
            {"message": ""}, "message_empty", {}, "The message to speak is empty", id="empty"
        ),
        pytest.param(
            {"message": " \n\t "}, "message_empty", {}, "The message to speak is empty", id="blank"
        ),
        pytest.param(
            {"message": "a" * (MAX_MESSAGE_LENGTH + 1), "prompt": "doorbell"},
            "message_too_long",
            {"length": str(MAX_MESSAGE_LENGTH + 1), "limit": str(MAX_MESSAGE_LENGTH)},
            f"The message has {MAX_MESSAGE_LENGTH + 1} characters; at most "
            f"{MAX_MESSAGE_LENGTH} are spoken (about a minute: longer announcements are rarely "
            "heard to their end, and the recording must fit what the phone system takes)",
            id="too-long",
        ),
        pytest.param(
            {"message": MESSAGE, "tts_engine": "tts.nobody"},
            "tts_engine_not_found",
            {"engine": "tts.nobody"},
            "There is no text-to-speech engine tts.nobody; pick one of Settings → Voice "
            "assistants, or leave tts_engine out for the default",
            id="unknown-engine",
        ),
        pytest.param(
            {"prompt": []},
            "nothing_to_play",
            None,
            "Give a prompt to play or a message to speak",
            id="nothing",
        ),
    ],
)
async def test_refused_before_anything_is_sent(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    data: dict[str, Any],
    key: str,
    placeholders: dict[str, str] | None,
    text: str,
) -> None:
    """The caller's mistakes: translated, in words, before the engine or the PBX is asked."""
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", **data)

    err = exc_info.value
    assert err.translation_key == key
    if placeholders is not None:
        assert err.translation_placeholders == placeholders
    assert str(err) == text
    assert tts_engine.calls == []
    _assert_nothing_sent(fake_p)


async def test_tts_not_set_up(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """Without Home Assistant's TTS there is nothing to speak with; said before sending."""
    assert "tts" not in hass.config.components

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)

    assert exc_info.value.translation_key == "tts_not_set_up"
    assert "needs a text-to-speech engine" in str(exc_info.value)
    _assert_nothing_sent(fake_p)


async def test_tts_without_any_engine(
    hass: HomeAssistant, own_config_dir: None, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """TTS set up without an engine: no default engine to speak with."""
    assert await async_setup_component(hass, "tts", {})
    assert tts.async_default_engine(hass) is None

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)

    assert exc_info.value.translation_key == "tts_engine_not_found"
    assert exc_info.value.translation_placeholders == {"engine": "the default engine"}
    _assert_nothing_sent(fake_p)


async def test_engine_failure_places_no_call_and_is_not_cached(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """The engine's error, translated and named; nothing uploaded or played; a retry works."""
    tts_engine.fail_with = "quota exceeded"

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, p_loaded, target=["1000", "1001"], message=MESSAGE)

    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)  # not the caller's mistake
    assert err.translation_key == "tts_failed"
    assert err.translation_placeholders == {"engine": TTS_ENTITY, "detail": "quota exceeded"}
    assert str(err) == (
        f"The text-to-speech engine {TTS_ENTITY} could not speak the message "
        "(quota exceeded); no call was placed"
    )
    assert _texts(tts_engine) == [MESSAGE]
    _assert_nothing_sent(fake_p)

    # The failure is not kept in the TTS cache: the next call asks the engine again.
    tts_engine.fail_with = None
    response = await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)

    assert response["calls"] == [{"target": "1000", "call_id": P_CALL_ID, "status": "placed"}]
    assert _texts(tts_engine) == [MESSAGE, MESSAGE]
    assert len(fake_p.uploads) == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"language": "fr"}, id="unsupported-language"),
        pytest.param({"tts_options": {"speed": 2}}, id="unsupported-option"),
    ],
)
async def test_what_the_engine_cannot_do_places_no_call(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    data: dict[str, Any],
) -> None:
    """Home Assistant's TTS refuses a language or option the engine lacks: tts_failed."""
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", message=MESSAGE, **data)

    assert exc_info.value.translation_key == "tts_failed"
    assert exc_info.value.translation_placeholders["engine"] == TTS_ENTITY
    assert str(exc_info.value).endswith("; no call was placed")
    assert tts_engine.calls == []
    _assert_nothing_sent(fake_p)


async def test_a_stream_without_audio_places_no_call(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A result stream that ends without a byte is a failure, not a silent prompt.

    Home Assistant sends every result in another sample rate through ffmpeg, which never
    answers an empty success; the stream here stands in for an engine or release where
    the audio could still come back empty.
    """
    real_stream = tts.async_create_stream
    asked: list[dict[str, Any]] = []

    def empty_stream(
        hass: HomeAssistant, engine: str, language: str | None, options: dict[str, Any]
    ) -> Any:
        asked.append(options)
        stream = real_stream(hass, engine, language, options)

        async def no_bytes() -> Any:
            return
            yield

        monkeypatch.setattr(stream, "async_stream_result", no_bytes)
        return stream

    monkeypatch.setattr(tts, "async_create_stream", empty_stream)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)
    # The engine's audio still loads into the cache in the background.
    await hass.async_block_till_done(wait_background_tasks=True)

    assert exc_info.value.translation_key == "tts_failed"
    assert exc_info.value.translation_placeholders == {"engine": TTS_ENTITY, "detail": "no audio"}
    # The backend's format is what Home Assistant was asked for.
    assert asked == [
        {
            tts.ATTR_PREFERRED_FORMAT: "wav",
            tts.ATTR_PREFERRED_SAMPLE_RATE: 8000,
            tts.ATTR_PREFERRED_SAMPLE_CHANNELS: 1,
            tts.ATTR_PREFERRED_SAMPLE_BYTES: 2,
        }
    ]
    _assert_nothing_sent(fake_p)


class _EngineCrashError(Exception):
    """What a third-party engine's own library raises."""


@pytest.mark.parametrize(
    ("output", "detail"),
    [
        # ffmpeg cannot read it: Home Assistant 2025.4 raises RuntimeError, newer ones
        # HomeAssistantError.
        pytest.param(("wav", b"this is not audio"), "ffmpeg", id="unreadable-audio"),
        pytest.param(_EngineCrashError("connection reset"), "connection reset", id="crash"),
    ],
)
async def test_any_engine_failure_is_tts_failed(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    output: tuple[str, bytes] | Exception,
    detail: str,
) -> None:
    """Whatever goes wrong between the engine and the audio is a translated tts_failed."""

    async def broken(message: str, language: str, options: dict[str, Any]) -> tuple[str, bytes]:
        if isinstance(output, Exception):
            raise output
        return output

    monkeypatch.setattr(tts_engine, "async_get_tts_audio", broken)

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", message=MESSAGE)

    assert exc_info.value.translation_key == "tts_failed"
    assert detail in exc_info.value.translation_placeholders["detail"]
    _assert_nothing_sent(fake_p)
