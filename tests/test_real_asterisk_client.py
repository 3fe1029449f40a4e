"""The ARI client against a real Asterisk 22 and real SIP phones (baresip) on 127.0.0.1.

One PBX for the module (tests/asterisk: Asterisk plus phones 1000 and 1001, endpoint 1002
without a phone). What the phone heard is checked in its recording: not silence, and the
source found in it by normalised cross-correlation (tests/asterisk/audio.py). Skipped with
the reason when this machine cannot run the sid root's programs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
import contextlib
import io
import math
from pathlib import Path
import time
import wave

import aiohttp
from aiohttp import web
import numpy as np
import pytest
import pytest_socket

from custom_components.voice_prompt.api import (
    VoicePromptApiDisabledError,
    VoicePromptAuthenticationError,
    VoicePromptInputError,
    VoicePromptRequestError,
)
from custom_components.voice_prompt.api.ari import (
    AriCallStatus,
    AriClient,
    AriEvent,
    AriEventType,
    AriSocketState,
)
from tests.asterisk import NOT_REGISTERED, RealPbx, processes_running, read_wav, unavailable
from tests.asterisk.audio import as_float, best_match, coverage, rms_dbfs

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no real Asterisk: {REASON}")

# A true copy through G.711 scores > 0.99 (worst 0.1 s piece of the chirp: 0.985); another
# sound stays below ~0.3 (the control in test_hello_world_heard_by_the_phone). 0.9 leaves
# margin both ways. A sound counts as heard when 90 % of its pieces are found in order
# (one piece may straddle a 20 ms clock slip of the phone; see tests/asterisk/audio.py).
MATCH = 0.9
HEARD = 0.9
# What a phone hears during a played sound is far above the silence it hears otherwise.
LOUD_DBFS = -35.0


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
async def client(pbx: RealPbx, socket_enabled: None) -> AsyncGenerator[AriClient]:
    """A connected client; afterwards no channel is left and the phones are reset."""
    for phone in pbx.phones.values():
        await phone.reset()  # a phone that died in an earlier test runs again
    async with aiohttp.ClientSession() as session:
        ari = AriClient(session, pbx.ari_url, pbx.ari_user, pbx.ari_password, pbx.app)
        await ari.async_start()
        try:
            yield ari
        finally:
            await ari.async_close()
            for phone in pbx.phones.values():
                await phone.reset()
            left = await channels(session, pbx)
            if left:
                pbx.hang_up_all()
            assert left == [], "a test left channels up"


async def channels(session: aiohttp.ClientSession, pbx: RealPbx) -> list[str]:
    """Ids of the channels Asterisk has."""
    async with session.get(f"{pbx.ari_url}/ari/channels", headers=pbx.auth_header()) as response:
        return [c["id"] for c in await response.json()]


def assert_heard(reference: np.ndarray, recording: np.ndarray, name: str) -> str:
    """The reference is in the recording; returns the figures for the log."""
    whole = best_match(reference, recording)
    pieces = coverage(reference, recording, threshold=MATCH)
    figures = f"{name}: whole {whole}, {pieces}"
    assert pieces.share >= HEARD, figures
    return figures


def recorded(events: list[AriEvent]) -> list[AriEventType]:
    """Types of the events a listener saw."""
    return [e.type for e in events]


def sound(pbx: RealPbx, name: str) -> np.ndarray:
    """A sound of asterisk-core-sounds-en-wav as float samples."""
    return as_float(read_wav(pbx.sounds / f"{name}.wav").samples)


def chirp_wav(seconds: float, rate: int = 8000) -> bytes:
    """A distinctive sweep (300 Hz → 3 kHz, then down), 16-bit mono WAV bytes."""
    t = np.arange(int(seconds * rate)) / rate
    half = seconds / 2
    up = 300 + (3000 - 300) * np.minimum(t, half) / half
    down = 3000 - (3000 - 300) * np.maximum(t - half, 0) / half
    freq = np.where(t < half, up, down)
    phase = 2 * np.pi * np.cumsum(freq) / rate
    data = (0.5 * np.sin(phase) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return out.getvalue()


@contextlib.asynccontextmanager
async def media_server(files: dict[str, bytes]) -> AsyncGenerator[str]:
    """A tiny HTTP server on 127.0.0.1 serving ``files``; yields its base URL."""
    app = web.Application()

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            return web.Response(status=404)
        return web.Response(body=files[name], content_type="audio/wav")

    app.router.add_get("/media/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/media/"
    finally:
        await runner.cleanup()


async def test_info_and_endpoints(client: AriClient, pbx: RealPbx) -> None:
    """asterisk/info names version 22 and the system; endpoints tell who is registered."""
    info = await client.asterisk_info()
    assert info.version.startswith("22.")
    assert info.system_name == "voice-prompt-test"
    assert info.entity_id
    assert (await client.endpoint("PJSIP", "1000")).online
    offline = await client.endpoint("PJSIP", NOT_REGISTERED)
    assert offline.state == "offline"
    assert not offline.online
    with pytest.raises(VoicePromptInputError) as caught:
        await client.endpoint("PJSIP", "1009")
    assert caught.value.code == "404"
    assert client.diagnostics()["events"]["state"] == "connected"


async def test_hello_world_heard_by_the_phone(client: AriClient, pbx: RealPbx) -> None:
    """sound:hello-world plays to the end, we hang up (16), the phone heard exactly it."""
    events: list[AriEvent] = []
    client.add_listener(events.append)
    since = time.time()
    started = time.monotonic()
    result = await client.async_play("1000", ["sound:hello-world"], ring_timeout=5)
    took = time.monotonic() - started
    assert result.status is AriCallStatus.PLAYED
    assert (result.played, result.hung_up, result.cause) == (1, True, 16)
    assert result.cause_text == "Normal Clearing"
    kinds = recorded(events)
    for kind in (
        AriEventType.STASIS_START,
        AriEventType.PLAYBACK_STARTED,
        AriEventType.PLAYBACK_FINISHED,
        AriEventType.CHANNEL_DESTROYED,
    ):
        assert kind in kinds
    assert kinds.index(AriEventType.STASIS_START) < kinds.index(AriEventType.PLAYBACK_STARTED)
    reference = sound(pbx, "hello-world")
    assert 1.3 < took < 1.4 + 1.5  # the sound's 1.40 s, plus call set-up and hang-up

    heard = await pbx.phone("1000").recording(since=since)
    samples = as_float(heard.samples)
    figures = assert_heard(reference, samples, "hello-world")
    control = sound(pbx, "goodbye")
    control_whole = best_match(control, samples)
    control_pieces = coverage(control, samples, threshold=MATCH)
    print(  # the figures of the recording check (pytest -s shows them)
        f"\nrecording {heard.seconds:.2f} s, level {rms_dbfs(samples):.1f} dBFS; {figures}; "
        f"control goodbye: whole {control_whole}, {control_pieces}"
    )
    assert rms_dbfs(samples) > LOUD_DBFS
    assert control_whole.score < MATCH - 0.3
    assert control_pieces.found == 0
    start = max(0, int(best_match(reference, samples).offset * 8000))
    assert rms_dbfs(samples[start : start + reference.size]) > LOUD_DBFS


async def test_wav_over_http_played_to_its_length(client: AriClient, pbx: RealPbx) -> None:
    """An 8 kHz WAV from an HTTP server plays for its own length and is heard; 16 kHz fails."""
    wav = chirp_wav(1.2)
    events: list[AriEvent] = []
    client.add_listener(events.append)
    async with media_server({"chirp.wav": wav, "wide.wav": chirp_wav(1.2, 16000)}) as base:
        since = time.time()
        result = await client.async_play("1000", [base + "chirp.wav"], ring_timeout=5)
        assert result.status is AriCallStatus.PLAYED
        heard = await pbx.phone("1000").recording(since=since)  # the next call overwrites it
        with pytest.raises(VoicePromptInputError) as caught:
            await client.async_play("1000", [f"sound:{base}wide.wav"], ring_timeout=5)
    assert "wide.wav" in caught.value.message
    assert caught.value.code == "failed"
    started, finished = (
        next(e for e in events if e.type is kind and e.media and "chirp" in e.media)
        for kind in (AriEventType.PLAYBACK_STARTED, AriEventType.PLAYBACK_FINISHED)
    )
    assert finished.playback_state == "done"
    assert started.timestamp is not None
    assert finished.timestamp is not None
    length = _seconds(finished.timestamp) - _seconds(started.timestamp)
    print(f"\nchirp 1.200 s played in {length:.3f} s (Asterisk's event timestamps)")
    assert abs(length - 1.2) < 0.1

    with wave.open(io.BytesIO(wav)) as source:
        reference = as_float(np.frombuffer(source.readframes(source.getnframes()), "<i2"))
    print(assert_heard(reference, as_float(heard.samples), "chirp"))


def _seconds(timestamp: str) -> float:
    """Seconds of an ARI timestamp (2026-12-01T23:52:01.890+0000) within its day."""
    clock = timestamp.split("T")[1][:12]
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def test_missing_sound_is_an_error_naming_it(client: AriClient, pbx: RealPbx) -> None:
    """Asterisk answers 201 for a sound it does not have; PlaybackFinished failed tells."""
    events: list[AriEvent] = []
    client.add_listener(events.append)
    with pytest.raises(VoicePromptInputError) as caught:
        await client.async_play("1000", ["hello-world", "no-such-sound"], ring_timeout=5)
    assert "sound:no-such-sound" in caught.value.message
    assert caught.value.target == "PJSIP/1000"
    finished = [e for e in events if e.type is AriEventType.PLAYBACK_FINISHED]
    assert [e.playback_state for e in finished] == ["done", "failed"]
    destroyed = [e for e in events if e.type is AriEventType.CHANNEL_DESTROYED]
    assert [e.cause for e in destroyed] == [16]  # the client hung up


async def test_key_press_acknowledges(client: AriClient, pbx: RealPbx) -> None:
    """The phone sends 5 (RFC 4733) during a long sound: acknowledged, the call ends early."""
    phone = pbx.phone("1000")
    events: list[AriEvent] = []

    def press_when_playing(event: AriEvent) -> None:
        events.append(event)
        if event.type is AriEventType.PLAYBACK_STARTED:
            asyncio.get_running_loop().create_task(press_later())

    async def press_later() -> None:
        await asyncio.sleep(0.3)
        await phone.press("5")

    client.add_listener(press_when_playing)
    started = time.monotonic()
    result = await client.async_play(
        "1000", ["tt-monkeys"], ring_timeout=5, acknowledge_digit="5", digit_timeout=5
    )
    took = time.monotonic() - started
    assert result.status is AriCallStatus.ACKNOWLEDGED
    assert (result.digit, result.cause, result.hung_up) == ("5", 16, True)
    assert took < 3  # tt-monkeys lasts 16 s
    dtmf = [e for e in events if e.type is AriEventType.CHANNEL_DTMF_RECEIVED]
    assert [e.digit for e in dtmf] == ["5"]


async def test_key_after_the_sound(client: AriClient, pbx: RealPbx) -> None:
    """A key pressed after the sound ended, within digit_timeout, still acknowledges."""
    phone = pbx.phone("1000")

    def press_after_playing(event: AriEvent) -> None:
        if event.type is AriEventType.PLAYBACK_FINISHED:
            asyncio.get_running_loop().create_task(phone.press("#"))

    client.add_listener(press_after_playing)
    result = await client.async_play(
        "1000", ["beep"], ring_timeout=5, acknowledge_digit="#", digit_timeout=5
    )
    assert (result.status, result.digit, result.played) == (AriCallStatus.ACKNOWLEDGED, "#", 1)


async def test_not_registered_and_unknown_endpoints(client: AriClient, pbx: RealPbx) -> None:
    """500 Allocation failed is told apart: no phone on 1002, no endpoint 1009."""
    with pytest.raises(VoicePromptRequestError) as caught:
        await client.async_play(NOT_REGISTERED, ["hello-world"], ring_timeout=5)
    assert "not registered" in caught.value.message
    assert caught.value.code == "500"
    with pytest.raises(VoicePromptInputError) as unknown:
        await client.async_play("1009", ["hello-world"], ring_timeout=5)
    assert unknown.value.code == "404"
    assert "no endpoint PJSIP/1009" in unknown.value.message

    await pbx.phone("1001").unregister()
    with pytest.raises(VoicePromptRequestError) as gone:
        await client.originate("PJSIP/1001", timeout=5)
    assert "not registered" in gone.value.message


async def test_busy_and_no_answer(client: AriClient, pbx: RealPbx) -> None:
    """A declined call is busy (486 → 17); DND (480) and ringing out are no answer (19)."""
    phone = pbx.phone("1000")
    async with phone.rejecting():
        busy = await client.async_play("1000", ["hello-world"], ring_timeout=5)
    assert (busy.status, busy.cause, busy.hung_up) == (AriCallStatus.BUSY, 17, False)

    await phone.set_dnd(True)
    dnd = await client.async_play("1000", ["hello-world"], ring_timeout=5)
    assert (dnd.status, dnd.cause) == (AriCallStatus.NO_ANSWER, 19)
    await phone.set_dnd(False)

    await phone.set_answer("manual")
    started = time.monotonic()
    ringing = await client.async_play("1000", ["hello-world"], ring_timeout=1)
    took = time.monotonic() - started
    assert (ringing.status, ringing.cause) == (AriCallStatus.NO_ANSWER, 19)
    assert ringing.cause_text == "User alerting, no answer"
    assert 0.9 < took < 2.5


async def test_callee_hangs_up_during_the_sound(client: AriClient, pbx: RealPbx) -> None:
    """The phone hangs up mid-sound: answered (not played), and that is no media error."""
    phone = pbx.phone("1000")

    def hang_up_when_playing(event: AriEvent) -> None:
        if event.type is AriEventType.PLAYBACK_STARTED:
            asyncio.get_running_loop().create_task(phone.command("hangup"))

    client.add_listener(hang_up_when_playing)
    result = await client.async_play("1000", ["tt-monkeys"], ring_timeout=5)
    assert result.status is AriCallStatus.ANSWERED
    assert result.played == 0
    assert result.hung_up is False
    # Asterisk 22 reports a callee's BYE with cause 0 ("Unknown") here; 16 on others.
    assert result.cause in (0, 16)


async def test_cancelled_play_hangs_up(client: AriClient, pbx: RealPbx) -> None:
    """Cancelling async_play mid-sound hangs up the channel it originated."""
    playing = asyncio.Event()
    destroyed: list[AriEvent] = []

    def watch(event: AriEvent) -> None:
        if event.type is AriEventType.PLAYBACK_STARTED:
            playing.set()
        if event.type is AriEventType.CHANNEL_DESTROYED:
            destroyed.append(event)

    client.add_listener(watch)
    task = asyncio.create_task(client.async_play("1000", ["tt-monkeys"], ring_timeout=5))
    await asyncio.wait_for(playing.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5):
        while not destroyed:
            await asyncio.sleep(0.02)
    assert destroyed[0].cause == 16


async def test_two_phones_at_once(client: AriClient, pbx: RealPbx) -> None:
    """Several targets: both phones play at the same time, each call its own result."""
    since = time.time()
    first, second = await asyncio.gather(
        client.async_play("1000", ["hello-world"], ring_timeout=5),
        client.async_play("PJSIP/1001", ["hello-world"], ring_timeout=5),
    )
    assert first.status is second.status is AriCallStatus.PLAYED
    assert first.channel_id != second.channel_id
    reference = sound(pbx, "hello-world")
    for number in ("1000", "1001"):
        heard = await pbx.phone(number).recording(since=since)
        print(assert_heard(reference, as_float(heard.samples), f"hello-world on {number}"))


async def test_refusals_of_a_real_asterisk(pbx: RealPbx, socket_enabled: None) -> None:
    """Wrong password (REST and websocket), read-only user, a URL without ARI."""
    async with aiohttp.ClientSession() as session:
        wrong = AriClient(session, pbx.ari_url, pbx.ari_user, "wrong", pbx.app)
        with pytest.raises(VoicePromptAuthenticationError) as caught:
            await wrong.asterisk_info()
        assert caught.value.code == "401"
        with pytest.raises(VoicePromptAuthenticationError):
            await wrong.async_start()
        assert "wrong" not in repr(wrong) + str(wrong.diagnostics())

        reader = AriClient(session, pbx.ari_url, pbx.ari_reader, pbx.ari_password, pbx.app)
        assert (await reader.asterisk_info()).version.startswith("22.")
        with pytest.raises(VoicePromptRequestError) as denied:
            await reader.originate("PJSIP/1000", timeout=5)
        assert denied.value.code == "403"
        assert "Write access denied" in denied.value.message

        elsewhere = AriClient(
            session, pbx.ari_url + "/asterisk", pbx.ari_user, pbx.ari_password, pbx.app
        )
        with pytest.raises(VoicePromptApiDisabledError):
            await elsewhere.asterisk_info()
        with pytest.raises(VoicePromptApiDisabledError):
            await elsewhere.async_start()


async def test_second_client_takes_the_application_over(client: AriClient, pbx: RealPbx) -> None:
    """Asterisk gives an application's events to its newest websocket (ApplicationReplaced)."""
    states: list[AriSocketState] = []
    client.add_state_listener(states.append)
    async with aiohttp.ClientSession() as session:
        other = AriClient(session, pbx.ari_url, pbx.ari_user, pbx.ari_password, pbx.app)
        await other.async_start()
        try:
            async with asyncio.timeout(5):
                while client.state is not AriSocketState.REPLACED:
                    await asyncio.sleep(0.02)
            assert client.diagnostics()["events"]["replaced"] == 1
            result = await other.async_play("1000", ["beep"], ring_timeout=5)
            assert result.status is AriCallStatus.PLAYED
        finally:
            await other.async_close()
    assert states[0] is AriSocketState.REPLACED


def test_harness_leaves_nothing_behind(pbx: RealPbx) -> None:
    """The run directory is where both sides see it; nothing of ours is mounted."""
    assert pbx.dir.is_dir()
    assert (pbx.dir / "etc" / "asterisk.conf").is_file()
    mounts = Path("/proc/mounts").read_text()
    assert str(pbx.dir) not in mounts
    assert math.isfinite(pbx.started_in or math.inf)
