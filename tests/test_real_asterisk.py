"""The integration, set up in a test Home Assistant, against a real Asterisk 22 and real phones.

One PBX for the module (tests/asterisk: Asterisk plus baresip phones on 1000 and 1001,
endpoint 1002 without a phone). Home Assistant's HTTP app runs on 127.0.0.1 as the
instance's internal URL (``ha_url``), so Asterisk fetches spoken messages and ``/local/``
files from it as it would on a local network. What a phone heard is checked in its
recording: the source found in it by normalised cross-correlation, piece by piece
(tests/asterisk/audio.py). Skipped with the reason when this machine cannot run the sid
root's programs.
"""

# ruff: noqa: F811 - the fixtures imported from tests.*_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
import io
import time
from typing import Any, Final
from unittest.mock import patch
import wave

import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
import pytest_socket

from custom_components.voice_prompt.api.ari import AriEvent, AriEventType
from custom_components.voice_prompt.backends.asterisk import CONF_RING_TIMEOUT, AsteriskBackend
from custom_components.voice_prompt.speech import Message, async_render
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL, CONF_USERNAME, EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from tests.asterisk import NOT_REGISTERED, Phone, RealPbx, processes_running, unavailable
from tests.asterisk.audio import as_float
from tests.asterisk_fixtures import (  # noqa: F401 - ha_url is a fixture
    LOCAL_WAV,
    add_asterisk_entry,
    asterisk_data,
    chirp_wav,
    ha_url,
)
from tests.conftest import play_prompt
from tests.flow_helpers import assert_form, start_flow, submit
from tests.test_real_asterisk_client import assert_heard, sound
from tests.tts_fixtures import CountingTTS, tts_engine  # noqa: F401 - tts_engine is a fixture

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no real Asterisk: {REASON}")

TITLE: Final = "voice-prompt-test (127.0.0.1)"  # asterisk.conf's systemname, the host
MESSAGE: Final = "Lunch is ready"


@pytest.fixture(scope="module")
def pbx() -> Iterator[RealPbx]:
    """Asterisk with phones 1000 and 1001, for the whole module (≈ 1 s to start)."""
    saved = pytest_socket.socket.socket
    pytest_socket.enable_socket()  # the harness picks free ports; connections stay 127.0.0.1
    try:
        real = RealPbx(("1000", "1001"))
        real.start()
    finally:
        pytest_socket.socket.socket = saved
    pids = real.pids()
    try:
        yield real
    finally:
        real.stop()
        assert processes_running(pids) == []


@pytest.fixture
async def loaded(
    hass: HomeAssistant, pbx: RealPbx, ha_url: str, socket_enabled: None
) -> AsyncGenerator[MockConfigEntry]:
    """An entry for the real Asterisk, set up; afterwards no call is left, phones are reset."""
    for phone in pbx.phones.values():
        await phone.reset()  # a phone that died in an earlier test runs again
    data = asterisk_data(pbx.ari_url, pbx.ari_user, pbx.ari_password)
    entry = add_asterisk_entry(hass, data, "real-asterisk", TITLE)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    for phone in pbx.phones.values():
        await phone.reset()
    left = pbx.ari_get("channels")
    if left:
        pbx.hang_up_all()
    assert left == [], "a test left channels up"


def _fired(hass: HomeAssistant, entry: MockConfigEntry, changes: list[Any]) -> list[str]:
    """The event types the entry's event entity fired, in order."""
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return [
        change.data["new_state"].attributes["event_type"]
        for change in changes
        if change.data["entity_id"] == entity.entity_id and change.data["new_state"] is not None
    ]


def _samples(wav_data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav_data)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return as_float(np.frombuffer(wav.readframes(wav.getnframes()), "<i2"))


def _press_once_playing(entry: MockConfigEntry, phone: Phone, key: str) -> list[asyncio.Task[Any]]:
    """Have ``phone`` press ``key`` shortly after the first playback starts (its task, once)."""
    pressed: list[asyncio.Task[Any]] = []

    async def press_soon() -> None:
        await asyncio.sleep(0.3)
        await phone.press(key)

    def on_event(event: AriEvent) -> None:
        if event.type is AriEventType.PLAYBACK_STARTED and not pressed:
            pressed.append(asyncio.get_running_loop().create_task(press_soon()))

    entry.runtime_data.client.add_listener(on_event)
    return pressed


async def test_config_flow_against_the_real_asterisk(
    hass: HomeAssistant, pbx: RealPbx, socket_enabled: None
) -> None:
    """The form's checks against the real thing: a wrong password, a path without ARI, then in."""
    result = await start_flow(hass, "asterisk")
    flow_id = result["flow_id"]
    user_input = {
        CONF_URL: f"127.0.0.1:{pbx.http_port}",
        CONF_USERNAME: pbx.ari_user,
        CONF_PASSWORD: "wrong",
    }

    result = await submit(hass, flow_id, user_input)
    assert_form(result, "asterisk", {"base": "invalid_auth"}, tried=f"Asterisk at {pbx.ari_url}")
    result = await submit(
        hass,
        flow_id,
        user_input | {CONF_URL: f"{pbx.ari_url}/asterisk", CONF_PASSWORD: pbx.ari_password},
    )
    assert_form(
        result, "asterisk", {"base": "ari_disabled"}, tried=f"Asterisk at {pbx.ari_url}/asterisk"
    )

    result = await submit(hass, flow_id, user_input | {CONF_PASSWORD: pbx.ari_password})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE
    info = pbx.ari_get("asterisk/info")
    assert result["result"].unique_id == info["system"]["entity_id"]
    await hass.async_block_till_done()
    backend = result["result"].runtime_data
    assert isinstance(backend, AsteriskBackend)
    assert backend.device_info["sw_version"] == info["system"]["version"]
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_a_sound_and_a_local_file_heard_by_the_phone(
    hass: HomeAssistant, pbx: RealPbx, ha_url: str, loaded: MockConfigEntry
) -> None:
    """hello-world, then /local/chirp.wav fetched from Home Assistant: both heard, in order."""
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    since = time.time()

    response = await play_prompt(
        hass, loaded, target="1000", prompt=["hello-world", f"/local/{LOCAL_WAV}"], wait=True
    )

    (call,) = response["calls"]
    assert (call["status"], call["played"], call["cause"], call["hung_up"]) == (
        "played",
        2,
        16,
        True,
    )
    await hass.async_block_till_done()
    assert _fired(hass, loaded, changes) == ["ringing", "answered", "played"]
    heard = as_float((await pbx.phone("1000").recording(since=since)).samples)
    hello = assert_heard(sound(pbx, "hello-world"), heard, "hello-world")
    chirp = assert_heard(_samples(chirp_wav(1.2)), heard, "chirp")
    print(f"\n{hello}; {chirp}")  # the recording check's figures (pytest -s shows them)


async def test_spoken_message_heard_by_the_phone(
    hass: HomeAssistant, pbx: RealPbx, tts_engine: CountingTTS, loaded: MockConfigEntry
) -> None:
    """The test engine's speech (a sweep at 22.05 kHz), as 8 kHz WAV fetched by Asterisk.

    On Home Assistant 2026 the TTS proxy streams a WAV whose header claims 4 GB, which
    Asterisk 22 refuses: the backend serves the rendered audio itself (SpeechView).
    """
    spoken = chirp_wav(1.0, 22050)
    since = time.time()

    with patch.object(tts_engine, "async_get_tts_audio", return_value=("wav", spoken)):
        response = await play_prompt(hass, loaded, target="1000", message=MESSAGE, wait=True)
        # The same text again comes from the TTS cache: the audio Asterisk was given.
        rendered = await async_render(hass, Message(MESSAGE), AsteriskBackend.speech_format)

    assert response["calls"][0]["status"] == "played"
    heard = as_float((await pbx.phone("1000").recording(since=since)).samples)
    print(f"\n{assert_heard(_samples(rendered.audio), heard, 'spoken message')}")


async def test_missing_sound_reported(
    hass: HomeAssistant, pbx: RealPbx, loaded: MockConfigEntry
) -> None:
    """Asterisk answers 201 for a sound it lacks; the failed playback is the call's outcome."""
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(hass, loaded, target="1000", prompt="no-such-sound", wait=True)

    (call,) = response["calls"]
    assert call["status"] == "failed"
    assert "Asterisk could not play sound:no-such-sound" in call["reason"]
    await hass.async_block_till_done()
    assert _fired(hass, loaded, changes) == ["ringing", "answered", "failed"]


async def test_two_phones_and_one_not_registered(
    hass: HomeAssistant, pbx: RealPbx, loaded: MockConfigEntry
) -> None:
    """1000 and 1001 play at the same time; 1002 has no phone: failed, with Asterisk's 500."""
    since = time.time()

    response = await play_prompt(
        hass,
        loaded,
        target=["1000", "PJSIP/1001", NOT_REGISTERED],
        prompt="hello-world",
        wait=True,
    )

    assert [(c["target"], c["status"]) for c in response["calls"]] == [
        ("1000", "played"),
        ("PJSIP/1001", "played"),
    ]
    (failed,) = response["failed"]
    assert (failed["target"], failed["code"]) == (NOT_REGISTERED, "500")
    assert "is not registered" in failed["error"]
    reference = sound(pbx, "hello-world")
    for number in ("1000", "1001"):
        heard = as_float((await pbx.phone(number).recording(since=since)).samples)
        print(f"\n{assert_heard(reference, heard, f'hello-world on {number}')}")


async def test_keys_pressed_are_reported(
    hass: HomeAssistant, pbx: RealPbx, loaded: MockConfigEntry
) -> None:
    """The phone sends 5 (RFC 4733) while the sound plays: in the response and the event."""
    phone = pbx.phone("1000")
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    pressed = _press_once_playing(loaded, phone, "5")
    response = await play_prompt(hass, loaded, target="1000", prompt="hello-world", wait=True)
    await asyncio.gather(*pressed)

    (call,) = response["calls"]
    assert (call["status"], call["digits"]) == ("played", "5")
    await hass.async_block_till_done()
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), loaded.entry_id)
    played = [
        change.data["new_state"].attributes
        for change in changes
        if change.data["entity_id"] == entity.entity_id
        and change.data["new_state"].attributes.get("event_type") == "played"
    ]
    assert [attributes["digits"] for attributes in played] == ["5"]


async def test_a_real_key_press_acknowledges(
    hass: HomeAssistant, pbx: RealPbx, loaded: MockConfigEntry
) -> None:
    """acknowledge: the phone presses 1 during a long sound; the call ends acknowledged."""
    phone = pbx.phone("1000")
    pressed = _press_once_playing(loaded, phone, "1")
    started = time.monotonic()
    response = await play_prompt(
        hass, loaded, target="1000", prompt="tt-monkeys", acknowledge="1", wait=True
    )
    await asyncio.gather(*pressed)

    (call,) = response["calls"]
    assert (call["status"], call["digits"], call["hung_up"]) == ("acknowledged", "1", True)
    # tt-monkeys lasts about 14 s: the key ended it long before.
    assert time.monotonic() - started < 8


async def test_busy_and_no_answer(
    hass: HomeAssistant, pbx: RealPbx, loaded: MockConfigEntry
) -> None:
    """A declined call is busy (486 → 17); a phone left ringing is not answered (19)."""
    phone = pbx.phone("1000")
    async with phone.rejecting():
        busy = await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True)
    assert (busy["calls"][0]["status"], busy["calls"][0]["cause"]) == ("busy", 17)

    hass.config_entries.async_update_entry(loaded, options={CONF_RING_TIMEOUT: 1})
    await phone.set_answer("manual")
    started = time.monotonic()
    ringing = await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True)
    took = time.monotonic() - started
    assert (ringing["calls"][0]["status"], ringing["calls"][0]["cause"]) == ("no_answer", 19)
    assert 0.9 < took < 2.5


async def test_escalation_from_a_declining_phone_to_one_that_confirms(
    hass: HomeAssistant, pbx: RealPbx, loaded: MockConfigEntry
) -> None:
    """1000 declines (busy), 1001 answers and presses 1: it acknowledged, in that order."""
    confirming = pbx.phone("1001")
    pressed = _press_once_playing(loaded, confirming, "1")
    async with pbx.phone("1000").rejecting():
        response = await play_prompt(
            hass,
            loaded,
            target=["1000", "1001"],
            prompt="tt-monkeys",
            acknowledge="1",
            escalate=True,
        )
    await asyncio.gather(*pressed)

    assert [(c["target"], c["status"]) for c in response["calls"]] == [
        ("1000", "busy"),
        ("1001", "acknowledged"),
    ]
    assert response["acknowledged_by"] == "1001"
