"""Spoken messages and media-source prompts on Microsoft Teams, end to end.

The engine is the tests' own TTS entity (``tests/tts_fixtures.py``): WAV at 22,050 Hz that
Home Assistant converts with the real ffmpeg into what Teams plays (WAV, mono, 16-bit,
16 kHz). The Graph simulator downloads every prompt from Home Assistant's HTTP server on
127.0.0.1, as Microsoft would from the external URL, and checks the WAV header: what it
fetched and found is what the assertions read.
"""

# ruff: noqa: F811 - the fixtures imported from tests.*_fixtures are test arguments

from __future__ import annotations

import json
from pathlib import Path
import re
import struct
from typing import Any, Final
import urllib.parse
import uuid

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.voice_prompt.api import VoicePromptInputError
from custom_components.voice_prompt.backends import PlayRequest
from custom_components.voice_prompt.backends.graph import TeamsBackend
from custom_components.voice_prompt.const import DOMAIN
from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from tests.conftest import play_prompt
from tests.fakes.graph import MEDIA_FORMAT, FakeGraph, MediaFetch, wav_layout as teams_layout
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    EXTERNAL_URL,
    MEDIA,
    TEAMS_RATE,
    USER_ID,
    MediaServer,
    graph,
    graph_closed_port,
    graph_endpoints,
    graph_entry,
    graph_http,
    graph_loaded,
    graph_media,
)
from tests.tts_fixtures import (  # noqa: F401 - tts_engine is a fixture
    ENGINE_RATE,
    TTS_ENTITY,
    CountingTTS,
    tts_engine,
    wav_bytes,
    wav_layout,
)

MESSAGE: Final = "Lunch is ready"
OTHER: Final = "The parcel has arrived"
CALLS: Final = "/graph/v1.0/communications/calls"
LOCAL_MEDIA: Final = "/local/chime.wav"
# Where Home Assistant's TTS proxy serves a rendered message (a new token each time).
SPOKEN: Final = re.compile(
    rf"{re.escape(EXTERNAL_URL)}/api/tts_proxy/(?P<token>[A-Za-z0-9_-]+)\.wav"
)
# The engine's tone lasts 0.25 s; converted, it is still 0.25 s long.
TONE_SECONDS: Final = 0.25
LOCAL_SOURCE: Final = "media-source://media_source/local/door.wav"


# ------------------------------------------------------------------------- helpers


@pytest.fixture
async def local_media(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Home Assistant's media source with a ``local`` folder holding a 16 kHz door.wav.

    Ask for it before ``graph_loaded``: its view joins the HTTP server before it starts.
    """
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "door.wav").write_bytes(wav_bytes(seconds=0.1, rate=TEAMS_RATE, frequency=880.0))
    hass.config.media_dirs = {"local": str(folder)}
    assert await async_setup_component(hass, "media_source", {})
    return folder


def _plays(fake: FakeGraph) -> list[dict[str, Any]]:
    """The playPrompt bodies the simulator received, in order."""
    return [request.body for request in fake.calls_to("POST", "/playPrompt")]


def _media(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(uri, resourceId) of each prompt of a playPrompt body."""
    return [(p["mediaInfo"]["uri"], p["mediaInfo"]["resourceId"]) for p in body["prompts"]]


def _fetched(fake: FakeGraph) -> list[MediaFetch]:
    return list(fake.media_fetches)


def _named(body: dict[str, Any]) -> dict[str, Any]:
    """A playPrompt body with what changes every run named: the proxy token, the context."""
    text = json.dumps(body)
    text = re.sub(r"/api/tts_proxy/[A-Za-z0-9_-]+\.wav", "/api/tts_proxy/<token>.wav", text)
    text = re.sub(r"authSig=[A-Za-z0-9_.-]+", "authSig=<signature>", text)
    named: dict[str, Any] = json.loads(text)
    named["clientContext"] = "<context>"
    return named


def _assert_nothing_sent(fake: FakeGraph) -> None:
    """The setup's token request is all the simulator ever saw: no call, no prompt."""
    assert fake.calls_to("POST", CALLS) == []
    assert fake.calls_to("POST", "/playPrompt") == []
    assert fake.media_fetches == []


# ------------------------------------------------------------------------- speaking


async def test_spoken_message_reaches_teams_as_a_16_khz_wav(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Rendered once, converted by ffmpeg, fetched by Teams from the external URL, played."""
    response = await play_prompt(hass, graph_loaded, target=USER_ID, message=f" {MESSAGE}\n")

    (call,) = response["calls"]
    assert (call["target"], call["status"], call["hung_up"]) == (USER_ID, "played", True)
    assert response["failed"] == []
    # The engine saw the stripped text once; the format options are Home Assistant's own.
    assert tts_engine.calls == [(MESSAGE, "en", {})]
    (body,) = _plays(graph)
    ((uri, resource_id),) = _media(body)
    assert SPOKEN.fullmatch(uri)
    assert uuid.UUID(resource_id)
    # Prefetched at the call's creation under the same id.
    (create,) = graph.calls_to("POST", CALLS)
    assert [(m["uri"], m["resourceId"]) for m in create.body["mediaConfig"]["preFetchMedia"]] == [
        (uri, resource_id)
    ]
    # Teams downloaded it from Home Assistant (no login: the TTS proxy) and found what it
    # plays: the engine's 22,050 Hz became 16 kHz through the real ffmpeg.
    assert wav_layout(wav_bytes()) == (1, 2, ENGINE_RATE)
    (fetch,) = _fetched(graph)
    assert fetch.uri == uri
    assert fetch.url == graph.notification_base + urllib.parse.urlsplit(uri).path
    assert fetch.status == 200
    assert fetch.layout == MEDIA_FORMAT
    assert fetch.seconds == pytest.approx(TONE_SECONDS, abs=0.02)
    assert fetch.ok
    assert _named(body) == snapshot(name="playPrompt")


async def test_the_same_message_is_one_resource_synthesised_once(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """Teams calls one target an action: the same text again costs no synthesis, and
    Microsoft keeps it under one resourceId (the proxy's URL is new every time).
    Another text, or another language, is another resource.
    """
    for _ in range(3):
        await play_prompt(hass, graph_loaded, target=USER_ID, message=MESSAGE)
    await play_prompt(hass, graph_loaded, target=USER_ID, message=OTHER)
    await play_prompt(hass, graph_loaded, target=USER_ID, message=MESSAGE, language="de")

    assert tts_engine.calls == [(MESSAGE, "en", {}), (OTHER, "en", {}), (MESSAGE, "de", {})]
    media = [_media(body)[0] for body in _plays(graph)]
    uris, ids = [uri for uri, _ in media], [resource_id for _, resource_id in media]
    assert all(SPOKEN.fullmatch(uri) for uri in uris)
    assert len(set(uris)) == 5  # every rendering has its own proxy URL
    assert ids[0] == ids[1] == ids[2]
    assert len({ids[0], ids[3], ids[4]}) == 3
    # Teams downloads a resource once and plays it from its cache afterwards.
    assert [fetch.uri for fetch in _fetched(graph)] == [uris[0], uris[3], uris[4]]
    assert all(fetch.layout == MEDIA_FORMAT for fetch in _fetched(graph))


async def test_many_targets_are_refused_before_speaking(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """Teams takes one target per action (its capabilities): refused before the engine."""
    assert not graph_loaded.runtime_data.capabilities.several_targets
    targets = [str(uuid.UUID(int=number)) for number in range(50)]

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=targets, message=MESSAGE)

    assert exc_info.value.translation_key == "one_target_only"
    assert tts_engine.calls == []
    _assert_nothing_sent(graph)


async def test_message_plays_before_the_prompts(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    local_media: Path,
    graph: FakeGraph,
    graph_media: MediaServer,
    graph_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """One playPrompt: the spoken text, then an https URL, a /local/ file, a media source."""
    response = await play_prompt(
        hass,
        graph_loaded,
        target=USER_ID,
        message=MESSAGE,
        prompt=[MEDIA, LOCAL_MEDIA, LOCAL_SOURCE],
    )

    assert response["calls"][0]["status"] == "played"
    (body,) = _plays(graph)
    uris = [uri for uri, _ in _media(body)]
    assert SPOKEN.fullmatch(uris[0])
    assert uris[1:3] == [MEDIA, f"{EXTERNAL_URL}{LOCAL_MEDIA}"]
    assert uris[3].startswith(f"{EXTERNAL_URL}/media/local/door.wav?authSig=")
    # All four downloaded, in order, from where each lives, and each a WAV Teams plays.
    fetched = _fetched(graph)
    assert [fetch.uri for fetch in fetched] == uris
    assert all(fetch.layout == MEDIA_FORMAT for fetch in fetched)
    assert graph_media.requests == ["/doorbell.wav"]
    assert _named(body) == snapshot(name="playPrompt")


async def test_message_into_an_existing_call(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """``call_id`` with a message: spoken into the call placed earlier."""
    first = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = first["calls"][0]["call_id"]

    response = await play_prompt(hass, graph_loaded, call_id=call_id, message=MESSAGE)

    assert response["calls"][0]["call_id"] == call_id
    second = _plays(graph)[1]
    ((uri, _),) = _media(second)
    assert SPOKEN.fullmatch(uri)
    assert len(tts_engine.calls) == 1


# ------------------------------------------------------------------- media sources


async def test_local_media_source_is_signed_and_kept_under_its_id(
    hass: HomeAssistant,
    local_media: Path,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """A media-source id becomes a signed URL on the external URL that Teams can fetch.

    Its cache id comes from the id (the signature in the URL is not part of what it is).
    """
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=LOCAL_SOURCE)
    await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[{"url": LOCAL_SOURCE}])
    await play_prompt(
        hass, graph_loaded, target=USER_ID, prompt=[{"url": LOCAL_SOURCE, "resource_id": "door"}]
    )

    (first,), (second,), (third,) = (_media(body) for body in _plays(graph))
    for uri, _ in (first, second, third):
        parts = urllib.parse.urlsplit(uri)
        assert (
            f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{EXTERNAL_URL}/media/local/door.wav"
        )
        assert parts.query.startswith("authSig=")
    assert first[1] == second[1] == str(uuid.uuid5(uuid.NAMESPACE_URL, LOCAL_SOURCE))
    assert third[1] == "door"  # a resource id given wins
    # Home Assistant checked the signature and served the file; Teams keeps it by its id.
    fetched = _fetched(graph)
    assert [fetch.status for fetch in fetched] == [200, 200]
    assert all(fetch.layout == MEDIA_FORMAT for fetch in fetched)


async def test_tts_media_source_prompt(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    local_media: Path,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """A ``media-source://tts/...`` id asking for Teams' format is spoken by the proxy."""
    options = {
        tts.ATTR_PREFERRED_FORMAT: "wav",
        tts.ATTR_PREFERRED_SAMPLE_RATE: TEAMS_RATE,
        tts.ATTR_PREFERRED_SAMPLE_CHANNELS: 1,
        tts.ATTR_PREFERRED_SAMPLE_BYTES: 2,
    }
    query = urllib.parse.urlencode({"message": OTHER, "tts_options": json.dumps(options)})
    source = f"media-source://tts/{TTS_ENTITY}?{query}"

    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=source)

    assert response["calls"][0]["status"] == "played"
    ((uri, resource_id),) = _media(_plays(graph)[0])
    assert SPOKEN.fullmatch(uri)
    assert resource_id == str(uuid.uuid5(uuid.NAMESPACE_URL, source))
    (fetch,) = _fetched(graph)
    assert fetch.layout == MEDIA_FORMAT
    assert [text for text, _, _ in tts_engine.calls] == [OTHER]


@pytest.mark.parametrize(
    ("prompt", "detail"),
    [
        pytest.param(
            "media-source://media_source/nowhere/door.wav",
            "Unknown source directory.",
            id="unknown-folder",
        ),
        pytest.param("media-source://no_such_source/door", "Unknown media source", id="domain"),
        pytest.param(
            "media-source://media_source/local/../secret.wav", "Invalid path.", id="outside"
        ),
    ],
)
async def test_unresolvable_media_source_is_refused_before_sending(
    hass: HomeAssistant,
    local_media: Path,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    prompt: str,
    detail: str,
) -> None:
    """Translated, naming the id; no call is placed."""
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA, prompt])

    err = exc_info.value
    assert err.translation_key == "media_source_unresolvable"
    placeholders = err.translation_placeholders
    assert placeholders.keys() == {"prompt", "detail"}
    assert placeholders["prompt"] == prompt
    # Home Assistant's own words; newer releases wrap them with the id.
    assert detail in placeholders["detail"]
    assert str(err) == (
        f"Home Assistant could not resolve the media-source ID {prompt} "
        f"({placeholders['detail']}); nothing "
        "was played. Pick the media again in the media browser, or check that the file still "
        "exists"
    )
    _assert_nothing_sent(graph)


async def test_media_source_not_set_up(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """Without Home Assistant's media source an id resolves to nothing: said, not sent."""
    assert "media_source" not in hass.config.components
    long_id = "media-source://media_source/local/" + "a" * 200 + ".wav"

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=long_id)

    placeholders = exc_info.value.translation_placeholders
    assert placeholders == {"prompt": f"{long_id[:120]}…", "detail": "Media Source not loaded"}
    _assert_nothing_sent(graph)


async def test_media_without_a_url_is_left_to_the_client_to_refuse(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """The action's schema always gives a url; a backend caller may not: refused unsent."""
    request = PlayRequest(targets=(USER_ID,), prompts=({"resource_id": "door"},))

    with pytest.raises(VoicePromptInputError, match="is not a URL"):
        await graph_loaded.runtime_data.async_play(request)

    _assert_nothing_sent(graph)


# --------------------------------------------------------- what Teams refuses to play


def _prompt_failed(err: HomeAssistantError, subcode: int, detail: str) -> None:
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "prompt_failed"
    assert err.translation_placeholders is not None
    assert (err.translation_placeholders["code"], err.translation_placeholders["subcode"]) == (
        "400",
        str(subcode),
    )
    assert err.translation_placeholders["detail"] == detail


@pytest.mark.parametrize(
    ("data", "subcode", "detail", "problem"),
    [
        pytest.param(
            wav_bytes(seconds=0.1, rate=8000),
            8535,
            "Action failed, file format is invalid.",
            "pcm, 1 channel(s), 16-bit, 8000 Hz: Teams plays PCM WAV, mono, 16-bit, 16 kHz",
            id="8-khz",
        ),
        pytest.param(
            b"ID3\x04\x00 not a wave file",
            8535,
            "Action failed, file format is invalid.",
            "not a WAV file",
            id="not-wav",
        ),
        pytest.param(
            None,
            8536,
            "Action failed, file could not be downloaded.",
            "download failed (HTTP 404)",
            id="missing",
        ),
    ],
)
async def test_media_teams_cannot_play_fails_the_call(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_media: MediaServer,
    graph_loaded: MockConfigEntry,
    data: bytes | None,
    subcode: int,
    detail: str,
    problem: str,
) -> None:
    """The simulator downloads and checks like Teams; the failed operation is the error."""
    graph_media.files["/doorbell.wav"] = data

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    _prompt_failed(exc_info.value, subcode, detail)
    (fetch,) = _fetched(graph)
    assert (fetch.uri, fetch.problem) == (MEDIA, problem)
    assert not fetch.ok
    # The call was placed and hung up: the media failed, not the call.
    (call,) = graph.calls.values()
    assert call.state == "terminated"


async def test_a_resolved_media_source_that_is_gone_fails_like_a_download(
    hass: HomeAssistant,
    local_media: Path,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """The local source resolves a file that is not there; Home Assistant answers 404."""
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(
            hass, graph_loaded, target=USER_ID, prompt="media-source://media_source/local/gone.wav"
        )

    _prompt_failed(exc_info.value, 8536, "Action failed, file could not be downloaded.")
    (fetch,) = _fetched(graph)
    assert fetch.status == 404


async def test_a_host_teams_cannot_reach(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """A host the simulator has no way to (nothing leaves the machine): not downloaded."""
    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(
            hass, graph_loaded, target=USER_ID, prompt="https://elsewhere.example.test/a.wav"
        )

    _prompt_failed(exc_info.value, 8536, "Action failed, file could not be downloaded.")
    (fetch,) = _fetched(graph)
    assert (fetch.url, fetch.status, fetch.problem) == (None, 0, "host not reachable")


async def test_a_media_host_that_refuses_the_connection(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry, graph_closed_port: int
) -> None:
    """Nothing listens where the prompt's host is: a download failure, like Teams says."""
    graph.media_hosts["media.example.test"] = f"http://127.0.0.1:{graph_closed_port}"

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    _prompt_failed(exc_info.value, 8536, "Action failed, file could not be downloaded.")
    (fetch,) = _fetched(graph)
    assert fetch.status == 0
    assert fetch.problem is not None
    assert fetch.problem.startswith("download failed (Client")


def _extensible(rate: int) -> bytes:
    """A mono 16-bit WAV with a WAVE_FORMAT_EXTENSIBLE fmt chunk (PCM sub-format)."""
    plain = wav_bytes(seconds=0.01, rate=rate)
    fmt = (
        plain[20:36]
        + struct.pack("<HHI", 22, 16, 0x4)
        + (b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
    )
    fmt = struct.pack("<H", 0xFFFE) + fmt[2:]
    data = plain[36:]
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_the_simulator_reads_wav_headers_like_teams() -> None:
    """PCM in a plain or an extensible fmt chunk; anything else is not what Teams plays."""
    layout, seconds = teams_layout(wav_bytes(seconds=0.5, rate=TEAMS_RATE)) or ({}, 0.0)
    assert layout == MEDIA_FORMAT
    assert seconds == pytest.approx(0.5)
    extensible = teams_layout(_extensible(TEAMS_RATE))
    assert extensible is not None
    assert extensible[0] == MEDIA_FORMAT
    # The sizes ffmpeg leaves when it writes to a pipe do not matter.
    piped = bytearray(wav_bytes(seconds=0.1, rate=TEAMS_RATE))
    piped[4:8] = piped[40:44] = b"\xff\xff\xff\xff"
    assert teams_layout(bytes(piped)) == (MEDIA_FORMAT, pytest.approx(0.1))
    # Another codec (IEEE float), no data chunk, not RIFF at all.
    floating = bytearray(wav_bytes(seconds=0.1, rate=TEAMS_RATE))
    floating[20:22] = struct.pack("<H", 3)
    assert teams_layout(bytes(floating)) == (
        {**MEDIA_FORMAT, "format": "0x0003"},
        pytest.approx(0.1),
    )
    assert teams_layout(wav_bytes()[:36]) is None
    assert teams_layout(b"OggS\x00\x02") is None


# ------------------------------------------------------------- the external URL


@pytest.mark.parametrize("where", ["target", "call_id"])
async def test_a_message_needs_the_external_url(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    where: str,
) -> None:
    """Microsoft fetches the audio from the external URL: without one, the repair and the
    error say so, and nothing reaches Graph (also into an existing call)."""
    hass.config.external_url = None
    data = {"target": USER_ID} if where == "target" else {"call_id": str(uuid.uuid4())}

    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, graph_loaded, message=MESSAGE, **data)

    assert exc_info.value.translation_key == "external_url_required"
    assert "Microsoft can fetch spoken messages" in str(exc_info.value)
    issue_id = f"external_url_{graph_loaded.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    _assert_nothing_sent(graph)


# ------------------------------------------------------------------- the format


def test_teams_asks_for_what_it_plays() -> None:
    """WAV, mono, 16-bit, 16 kHz: the format the simulator checks is the one rendered."""
    speech_format = TeamsBackend.speech_format
    assert speech_format is not None
    assert speech_format.options() == {
        tts.ATTR_PREFERRED_FORMAT: "wav",
        tts.ATTR_PREFERRED_SAMPLE_RATE: MEDIA_FORMAT["sample_rate"],
        tts.ATTR_PREFERRED_SAMPLE_CHANNELS: MEDIA_FORMAT["channels"],
        tts.ATTR_PREFERRED_SAMPLE_BYTES: MEDIA_FORMAT["bits_per_sample"] // 8,
    }
