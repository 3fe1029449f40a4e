"""Tests for the Asterisk ARI client, against the fake ARI server (tests/fakes/ari.py).

Nothing is patched: REST and the event websocket go over TCP to the fake on 127.0.0.1,
which answers in the shapes a real Asterisk 22 does (tests/test_real_asterisk_client.py
checks the same client against the real one). The fake's switches show what a real
Asterisk cannot easily: a websocket dropped mid-call, 5xx, slow replies, garbage events,
refused reconnections, a dead link that answers no ping. Bounds of minutes are passed
with the ``freezer`` fixture, which moves the event loop's clock too.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Callable, Iterable
import io
import json
import logging
import ssl
import time
from typing import Any
import wave

import aiohttp
from aiohttp import web
from freezegun.api import FrozenDateTimeFactory
import pytest

from custom_components.voice_prompt.api import (
    VoicePromptApiDisabledError,
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    ari,
)
from custom_components.voice_prompt.api.ari import (
    ANSWER_GRACE,
    DEFAULT_PORT,
    MAX_MEDIA,
    MAX_MEDIA_SECONDS,
    MAX_REPEAT,
    PLAYBACK_START_TIMEOUT,
    RESYNC_TIMEOUT,
    AriCallResult,
    AriCallStatus,
    AriClient,
    AriEndpoint,
    AriEvent,
    AriEventType,
    AriInfo,
    AriSocketState,
    check_app,
    normalize_endpoint,
    normalize_media,
    parse_event,
    parse_url,
    status_for_cause,
)
from tests.conftest import tls_resets_tolerated
from tests.fakes.ari import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    ENTITY_ID,
    VERSION,
    FakeAsterisk,
    FakePhone,
)

LOGGER_NAME = "custom_components.voice_prompt"
APP = "voice_prompt"
SCALE = 0.01  # the fake's durations (sounds, rings) at 1/100
FAST = (0.01, 0.02, 0.05)
PHONES: dict[str, FakePhone] = {
    "PJSIP/1000": FakePhone(),
    "PJSIP/1002": FakePhone(online=False),
    "PJSIP/1003": FakePhone(answer="busy"),
    "PJSIP/1004": FakePhone(answer="no_answer"),
    "PJSIP/1005": FakePhone(answer="reject"),
    "PJSIP/1006": FakePhone(answer="dnd"),
    "PJSIP/1007": FakePhone(answer="fail"),
    "PJSIP/1008": FakePhone(answer="ring_forever"),
    "PJSIP/trunk": FakePhone(online=False),
}
DIAGNOSTICS_EVENTS = {
    "state",
    "connected",
    "connected_seconds",
    "reconnects",
    "last_error",
    "received",
    "bad_events",
    "replaced",
}


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every log record of the integration, down to DEBUG."""
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)


@pytest.fixture
async def fake(socket_enabled: None) -> AsyncGenerator[FakeAsterisk]:
    """A fake Asterisk on http://127.0.0.1:<free port> with phones that behave."""
    server = FakeAsterisk(
        phones={name: FakePhone(**vars(phone)) for name, phone in PHONES.items()},
        time_scale=SCALE,
    )
    await server.start()
    yield server
    await server.close()


def make_client(session: aiohttp.ClientSession, fake: FakeAsterisk, **kwargs: Any) -> AriClient:
    """A client of the fake: fast reconnects, no pause before the hang-up."""
    options: dict[str, Any] = {"reconnect_delays": FAST, "hangup_delay": 0.0}
    options.update(kwargs)
    url = options.pop("url", fake.url)
    password = options.pop("password", DEFAULT_PASSWORD)
    return AriClient(session, url, DEFAULT_USERNAME, password, APP, **options)


@pytest.fixture
async def client(session: aiohttp.ClientSession, fake: FakeAsterisk) -> AsyncGenerator[AriClient]:
    """A started client of the fake."""
    ari_client = make_client(session, fake)
    await ari_client.async_start()
    yield ari_client
    await ari_client.async_close()


def ops(fake: FakeAsterisk) -> list[str]:
    """The operations the fake received, in order (originate, play, hangup, ...)."""
    return [fake._operation(r.method, r.path) for r in fake.requests]


async def settle(
    condition: Callable[[], bool],
    freezer: FrozenDateTimeFactory | None = None,
    rounds: int = 20000,
) -> None:
    """Run the loop until ``condition()``, without timers (for tests under ``freezer``).

    With ``freezer``, the clock creeps on (1 ms every 50 rounds) so that the fake's short
    delays pass; that is far below every bound the tests tick past.
    """
    for count in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
        if freezer is not None and count % 50 == 49:
            freezer.tick(0.001)
    raise AssertionError("condition not reached")


async def idle(rounds: int = 500) -> None:
    """Let every task run to its next wait (before the clock is ticked past a bound)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def secrets_of(fake: FakeAsterisk) -> list[str]:
    """The password and the Authorization header value it makes."""
    token = base64.b64encode(f"{DEFAULT_USERNAME}:{DEFAULT_PASSWORD}".encode()).decode()
    return [DEFAULT_PASSWORD, f"Basic {token}", token]


def _texts(thing: object) -> Iterable[str]:
    if isinstance(thing, BaseException):
        yield str(thing)
        yield repr(thing)
        yield repr(thing.args)
        if isinstance(thing, VoicePromptError):
            yield thing.message
            yield repr(thing.code)
            yield repr(thing.target)
    if isinstance(thing, AriClient):
        yield repr(thing)
        yield json.dumps(thing.diagnostics())
    yield repr(thing)


def assert_no_secrets(
    fake: FakeAsterisk, caplog: pytest.LogCaptureFixture, *things: object
) -> None:
    """Neither the password nor its Basic header shows in errors, client or logs."""
    texts = [text for thing in things for text in _texts(thing)]
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_text:
            texts.append(record.exc_text)
    for secret in secrets_of(fake):
        for text in texts:
            assert secret not in text, f"secret leaked into {text!r}"


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    """Silence as a mono 16-bit WAV."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


# ----------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pbx.local", "http://pbx.local:8088"),
        ("http://pbx.local:8088/", "http://pbx.local:8088"),
        ("https://pbx.local", "https://pbx.local:443"),
        ("http://pbx:8080/ari", "http://pbx:8080"),
        ("http://pbx:8080/asterisk/ari/", "http://pbx:8080/asterisk"),
        ("  HTTP://10.0.0.2:8088  ", "http://10.0.0.2:8088"),
        ("http://[fd00::2]:8088", "http://[fd00::2]:8088"),
    ],
)
def test_parse_url(text: str, expected: str) -> None:
    """A missing scheme is http, a missing port ARI's 8088 (443 for https); /ari is dropped."""
    assert parse_url(text) == expected
    assert DEFAULT_PORT == 8088


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        (None, "empty"),
        ("ftp://pbx", "not an ARI URL"),
        ("http://", "not an ARI URL"),
        ("http://admin:secret@pbx:8088", "own fields"),
        ("http://pbx:8088/?x=1", "query"),
        ("http://pbx:99999", "not a valid URL"),
    ],
)
def test_parse_url_refuses(text: Any, words: str) -> None:
    """Unusable URLs are the caller's mistake, said in words (no password echoed)."""
    with pytest.raises(VoicePromptInputError) as caught:
        parse_url(text)
    assert words in caught.value.message
    assert "secret" not in caught.value.message


def test_check_app() -> None:
    """Stasis application names: letters, digits, _ . - (at most 64)."""
    assert check_app(" voice_prompt ") == "voice_prompt"
    assert check_app("ha.voice-prompt_2") == "ha.voice-prompt_2"
    for bad in ("", "a b", "x" * 65, "-lead", "a/b", 5):
        with pytest.raises(VoicePromptInputError):
            check_app(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("1000", "PJSIP/1000"),
        (1000, "PJSIP/1000"),
        (" 1000 ", "PJSIP/1000"),
        ("*97", "PJSIP/*97"),
        ("PJSIP/1000", "PJSIP/1000"),
        ("PJSIP/+31201234567@trunk", "PJSIP/+31201234567@trunk"),
        (
            "PJSIP/trunk/sip:+31201234567@provider.example",
            "PJSIP/trunk/sip:+31201234567@provider.example",
        ),
        ("IAX2/office", "IAX2/office"),
    ],
)
def test_normalize_endpoint(target: Any, expected: str) -> None:
    """A bare extension gets the technology; full dial strings pass unchanged."""
    assert normalize_endpoint(target) == expected


def test_normalize_endpoint_technology_and_refusals() -> None:
    """The entry's technology applies to bare extensions; nonsense is refused."""
    assert normalize_endpoint("1000", "SIP") == "SIP/1000"
    with pytest.raises(VoicePromptInputError, match="channel technology"):
        normalize_endpoint("1000", "no such/tech")
    for bad in (
        "",
        "abc",
        "PJSIP/",
        "/1000",
        "PJSIP/a b",
        "PJSIP/a,b",
        "PJSIP/a\x07",
        "9PJSIP/1",
        True,
        None,
    ):
        with pytest.raises(VoicePromptInputError, match="not an extension"):
            normalize_endpoint(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("hello-world", "sound:hello-world"),
        ("custom/doorbell", "sound:custom/doorbell"),
        ("sound:hello-world", "sound:hello-world"),
        ("https://ha.local/local/door.wav", "sound:https://ha.local/local/door.wav"),
        ("sound:http://ha.local/a,b.wav", "sound:http://ha.local/a%2Cb.wav"),
        (
            "http://ha.local/api/tts_proxy/x.wav?a=1&b=2",
            "sound:http://ha.local/api/tts_proxy/x.wav?a=1&b=2",
        ),
        ("digits:1234", "digits:1234"),
        ("tone:ring;tonezone=nl", "tone:ring;tonezone=nl"),
        ("recording:door", "recording:door"),
    ],
)
def test_normalize_media(item: str, expected: str) -> None:
    """Names become sound:<name>, URLs sound:<url>; a comma in a URL is escaped."""
    assert normalize_media(item) == expected


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("", "empty"),
        ("hello world", "spaces"),
        ("bell\x07", "control"),
        ("foo:bar", "not something Asterisk can play"),
        ("../etc/passwd", "not a valid Asterisk sound name"),
        ("sound:a/../b", "not a valid Asterisk sound name"),
        ("digits:1,2", "comma"),
        ("http://", "not a URL Asterisk can download"),
        ("sound:http://user:pw@ha.local/a.wav", "not a URL Asterisk can download"),
        ("http://[zz/a.wav", "not a valid URL"),
    ],
)
def test_normalize_media_refuses(item: str, words: str) -> None:
    """What Asterisk could not play (or would split at a comma) is refused before sending."""
    with pytest.raises(VoicePromptInputError) as caught:
        normalize_media(item)
    assert words in caught.value.message


def test_status_for_cause() -> None:
    """Q.850 causes before an answer: 17 busy, 18/19 no answer, 21 rejected, others failed."""
    assert status_for_cause(17) is AriCallStatus.BUSY
    assert status_for_cause(18) is AriCallStatus.NO_ANSWER
    assert status_for_cause(19) is AriCallStatus.NO_ANSWER
    assert status_for_cause(21) is AriCallStatus.REJECTED
    assert status_for_cause(16) is AriCallStatus.FAILED
    assert status_for_cause(None) is AriCallStatus.FAILED
    # The outcome words are the integration's (CallStatus values).
    assert {s.value for s in AriCallStatus} == {
        "answered",
        "played",
        "acknowledged",
        "no_answer",
        "busy",
        "rejected",
        "failed",
    }


def test_parse_event_shapes() -> None:
    """Every event the client uses, from Asterisk's JSON; garbage is a ValueError."""
    channel = {"id": "c1", "name": "PJSIP/1000-00000001", "state": "Up"}
    dtmf = parse_event({"type": "ChannelDtmfReceived", "digit": "5", "channel": channel})
    assert dtmf == AriEvent(
        AriEventType.CHANNEL_DTMF_RECEIVED,
        channel_id="c1",
        channel_name="PJSIP/1000-00000001",
        channel_state="Up",
        digit="5",
    )
    destroyed = parse_event(
        {
            "type": "ChannelDestroyed",
            "cause": 17,
            "cause_txt": "User busy",
            "timestamp": "2026-12-01T23:52:29.895+0000",
            "channel": channel,
        }
    )
    assert destroyed is not None
    assert (destroyed.cause, destroyed.cause_text) == (17, "User busy")
    assert destroyed.timestamp == "2026-12-01T23:52:29.895+0000"
    finished = parse_event(
        {
            "type": "PlaybackFinished",
            "playback": {
                "id": "p1",
                "media_uri": "sound:x",
                "target_uri": "channel:c1",
                "state": "failed",
            },
        }
    )
    assert finished == AriEvent(
        AriEventType.PLAYBACK_FINISHED,
        channel_id="c1",
        playback_id="p1",
        playback_state="failed",
        media="sound:x",
    )
    bridged = parse_event(
        {"type": "PlaybackStarted", "playback": {"id": "p2", "target_uri": "bridge:b1"}}
    )
    assert bridged is not None
    assert bridged.channel_id is None
    replaced = parse_event({"type": "ApplicationReplaced", "application": "x"})
    assert replaced == AriEvent(AriEventType.APPLICATION_REPLACED)
    request = parse_event({"type": "ChannelHangupRequest", "cause": True, "channel": channel})
    assert request is not None
    assert request.cause is None  # a bool is no cause
    assert parse_event({"type": "Dial", "peer": channel}) is None  # not used: ignored
    for garbage in (
        [],
        {"no": "type"},
        {"type": 5},
        {"type": "PlaybackFinished", "playback": "x"},
        {"type": "ChannelDestroyed", "channel": {"name": "no id"}},
        {"type": "StasisStart"},
    ):
        with pytest.raises(ValueError, match="ARI event|without"):
            parse_event(garbage)


def test_constructor_checks(session: aiohttp.ClientSession) -> None:
    """Programming errors are ValueErrors; the user's URL and app name are input errors."""
    with pytest.raises(ValueError, match="username"):
        AriClient(session, "http://pbx", "", "pw")
    with pytest.raises(ValueError, match="reconnect_delays"):
        AriClient(session, "http://pbx", "u", "pw", reconnect_delays=())
    with pytest.raises(ValueError, match="heartbeat"):
        AriClient(session, "http://pbx", "u", "pw", heartbeat=0)
    with pytest.raises(ValueError, match="hangup_delay"):
        AriClient(session, "http://pbx", "u", "pw", hangup_delay=-1)
    with pytest.raises(VoicePromptInputError):
        AriClient(session, "ftp://pbx", "u", "pw")
    with pytest.raises(VoicePromptInputError):
        AriClient(session, "http://pbx", "u", "pw", "bad app")
    plain = AriClient(session, "pbx.local", "u", "pw")
    assert (plain.url, plain.app, plain.host) == (
        "http://pbx.local:8088",
        "voice_prompt",
        "pbx.local:8088",
    )
    assert plain.state is AriSocketState.STOPPED
    assert not plain.connected


# ----------------------------------------------------------------------------- REST


async def test_asterisk_info(client: AriClient, fake: FakeAsterisk) -> None:
    """asterisk/info: version and system id, with Basic auth."""
    info = await client.asterisk_info()
    assert info == AriInfo(
        version=VERSION, entity_id=ENTITY_ID, system_name=None, default_language="en"
    )
    (request,) = fake.calls("info")
    assert request.user == DEFAULT_USERNAME


async def test_endpoints(client: AriClient) -> None:
    """Endpoint state: online, offline; an unknown endpoint is the caller's mistake."""
    online = await client.endpoint("PJSIP", "1000")
    assert online == AriEndpoint("PJSIP", "1000", "online", ())
    assert online.online
    offline = await client.endpoint("PJSIP", "1002")
    assert (offline.state, offline.online) == ("offline", False)
    with pytest.raises(VoicePromptInputError) as caught:
        await client.endpoint("PJSIP", "4711")
    assert (caught.value.code, caught.value.target) == ("404", "PJSIP/4711")


async def test_refused_credentials(
    session: aiohttp.ClientSession, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """401 on REST and on the websocket: an authentication error, no secret anywhere."""
    wrong = make_client(session, fake, password="not-it")
    with pytest.raises(VoicePromptAuthenticationError) as rest:
        await wrong.asterisk_info()
    assert rest.value.code == "401"
    assert "refused the ARI username or password" in rest.value.message
    with pytest.raises(VoicePromptAuthenticationError) as socket:
        await wrong.async_start()
    assert wrong.state is AriSocketState.STOPPED
    assert_no_secrets(fake, caplog, rest.value, socket.value, wrong)
    assert "not-it" not in repr(wrong) + json.dumps(wrong.diagnostics())


async def test_ari_disabled(session: aiohttp.ClientSession, fake: FakeAsterisk) -> None:
    """HTTP answering 404 with HTML on /ari: ARI is not enabled (REST and websocket)."""
    fake.ari_enabled = False
    ari_client = make_client(session, fake)
    with pytest.raises(VoicePromptApiDisabledError) as rest:
        await ari_client.asterisk_info()
    assert "enabled = yes" in rest.value.message
    assert rest.value.code == "404"
    with pytest.raises(VoicePromptApiDisabledError):
        await ari_client.async_start()
    wrong_path = make_client(session, fake, url=fake.url + "/asterisk")
    fake.ari_enabled = True
    with pytest.raises(VoicePromptApiDisabledError):
        await wrong_path.asterisk_info()


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (500, VoicePromptRequestError, "reported an error (HTTP 500): Fake failure 500"),
        (503, VoicePromptRequestError, "HTTP 503"),
        (400, VoicePromptInputError, "refused the request: Fake failure 400"),
        (403, VoicePromptRequestError, "read_only"),
        (409, VoicePromptRequestError, "channel's state"),
        (412, VoicePromptRequestError, "channel's state"),
        (302, VoicePromptRequestError, "redirects"),
        (418, VoicePromptResponseError, "unexpected ARI reply (HTTP 418)"),
    ],
)
async def test_http_errors(
    client: AriClient, fake: FakeAsterisk, status: int, kind: type[Exception], words: str
) -> None:
    """Asterisk's statuses become the client's errors, with its code and words."""
    fake.http_status = status
    with pytest.raises(kind) as caught:
        await client.asterisk_info()
    assert type(caught.value) is kind
    assert words in str(caught.value)
    assert caught.value.code == str(status)  # type: ignore[attr-defined]


async def test_error_bodies(client: AriClient, fake: FakeAsterisk) -> None:
    """Asterisk's words when it gives some; an unexpected 404 on a known resource."""
    fake.fail_next["info"] = [
        (500, "<html>Internal Server Error</html>"),
        (500, ["not", "an", "object"]),
        (500, {"message": "  "}),
        (500, {"message": "bad\x00thing"}),
        (404, {"message": "Resource not found"}),
    ]
    messages = []
    for _ in range(5):
        with pytest.raises(VoicePromptRequestError) as caught:
            await client.asterisk_info()
        messages.append(caught.value.message)
    assert messages[:3] == [f"{client.host} reported an error (HTTP 500)"] * 3
    assert messages[3] == f"{client.host} reported an error (HTTP 500): bad thing"
    assert messages[4] == f"{client.host} does not know it: Resource not found"


async def test_replies_that_are_not_ari(client: AriClient, fake: FakeAsterisk) -> None:
    """A 200 that is not JSON, JSON without what we need: response errors."""
    fake.garbage_replies = True
    with pytest.raises(VoicePromptResponseError, match="without JSON"):
        await client.asterisk_info()
    fake.garbage_replies = False
    fake.fail_next["info"] = [(200, {"system": {}})]
    with pytest.raises(VoicePromptResponseError, match="system version"):
        await client.asterisk_info()
    fake.fail_next["endpoint"] = [(200, ["not", "an", "object"])]  # type: ignore[list-item]
    with pytest.raises(VoicePromptResponseError, match="endpoint is not an object"):
        await client.endpoint("PJSIP", "1000")
    fake.fail_next["originate"] = [(200, {"name": "no id"})]
    with pytest.raises(VoicePromptResponseError, match="without a channel id") as caught:
        await client.originate("1000")
    assert caught.value.target == "PJSIP/1000"
    fake.fail_next["play"] = [(201, {"state": "queued"})]
    with pytest.raises(VoicePromptResponseError, match="without a playback id"):
        await client.play("any", "beep")


async def test_slow_and_unreachable(session: aiohttp.ClientSession, fake: FakeAsterisk) -> None:
    """A reply later than request_timeout is a timeout; a closed port a connection error."""
    slow = make_client(session, fake, request_timeout=0.2)
    fake.latency = 1.0
    with pytest.raises(VoicePromptTimeoutError, match="did not answer within 0.2 seconds"):
        await slow.asterisk_info()
    fake.latency = 0.0
    fake.hang = True
    with pytest.raises(VoicePromptTimeoutError):
        await slow.endpoint("PJSIP", "1000")
    fake.hang = False
    port = fake.port
    await fake.close()
    gone = make_client(session, fake, url=f"http://127.0.0.1:{port}")
    with pytest.raises(VoicePromptConnectionError, match="Cannot connect to 127.0.0.1"):
        await gone.asterisk_info()
    with pytest.raises(VoicePromptConnectionError):
        await gone.async_start()


async def test_closed_session(fake: FakeAsterisk) -> None:
    """A closed HTTP session (Home Assistant stopping) is a connection error."""
    async with aiohttp.ClientSession() as closed:
        ari_client = make_client(closed, fake)
    with pytest.raises(VoicePromptConnectionError, match="session is closed"):
        await ari_client.asterisk_info()


async def test_tls(
    session: aiohttp.ClientSession, server_ssl: ssl.SSLContext, socket_enabled: None
) -> None:
    """https with a self-signed certificate: refused when verifying, accepted without."""
    server = FakeAsterisk(time_scale=SCALE)
    await server.start(ssl_context=server_ssl)
    with tls_resets_tolerated():
        try:
            assert server.url.startswith("https://")
            strict = make_client(session, server, verify_ssl=True)
            with pytest.raises(VoicePromptSSLError, match="certificate"):
                await strict.asterisk_info()
            with pytest.raises(VoicePromptSSLError):
                await strict.async_start()
            relaxed = make_client(session, server, verify_ssl=False)
            assert (await relaxed.asterisk_info()).version == VERSION
            await relaxed.async_start()
            result = await relaxed.async_play("1000", ["beep"])
            assert result.status is AriCallStatus.PLAYED
            await relaxed.async_close()
        finally:
            await server.close()


async def test_originate_play_hangup(client: AriClient, fake: FakeAsterisk) -> None:
    """The building blocks: originate into the app, play, stop, hang up (twice)."""
    channel_id = await client.originate(
        "1000", timeout=5, caller_id='"Home Assistant" <900>', channel_id="chosen-1"
    )
    assert channel_id == "chosen-1"
    (request,) = fake.calls("originate")
    assert request.params == {
        "endpoint": "PJSIP/1000",
        "app": APP,
        "timeout": "5",
        "callerId": '"Home Assistant" <900>',
        "channelId": "chosen-1",
    }
    await fake.wait_for(lambda: fake.channels["chosen-1"].in_stasis)
    assert fake.channels["chosen-1"].caller == {"name": "Home Assistant", "number": "900"}
    playback = await client.play(channel_id, "tt-monkeys", playback_id="pb-1")
    assert playback == "pb-1"
    assert fake.calls("play")[0].params == {"media": "sound:tt-monkeys", "playbackId": "pb-1"}
    assert await client.stop_playback("pb-1") is True
    assert await client.stop_playback("pb-1") is False
    assert await client.hangup(channel_id) is True
    assert await client.hangup(channel_id) is False
    assert fake.channels["chosen-1"].cause == 16
    with pytest.raises(VoicePromptRequestError, match="does not exist") as caught:
        await client.play(channel_id, "beep")
    assert caught.value.code == "404"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"timeout": 0}, "between 1 and 300"),
        ({"timeout": 301}, "between 1 and 300"),
        ({"timeout": True}, "whole number"),
        ({"timeout": 2.5}, "whole number"),
        ({"caller_id": ""}, "caller id"),
        ({"caller_id": "x" * 81}, "caller id"),
        ({"caller_id": "a\nb"}, "control characters"),
    ],
)
async def test_originate_refuses_input(
    client: AriClient, fake: FakeAsterisk, kwargs: dict[str, Any], words: str
) -> None:
    """Bad ring timeouts and caller ids are refused before anything is sent."""
    with pytest.raises(VoicePromptInputError, match=words):
        await client.originate("1000", **kwargs)
    assert fake.calls("originate") == []


async def test_allocation_failed_told_apart(client: AriClient, fake: FakeAsterisk) -> None:
    """500 Allocation failed: not registered (offline) or no such endpoint (404)."""
    with pytest.raises(VoicePromptRequestError) as offline:
        await client.originate("1002")
    assert type(offline.value) is VoicePromptRequestError
    assert offline.value.code == "500"
    assert offline.value.target == "PJSIP/1002"
    assert "PJSIP/1002 is not registered" in offline.value.message
    with pytest.raises(VoicePromptInputError) as unknown:
        await client.originate("4711")
    assert (unknown.value.code, unknown.value.target) == ("404", "PJSIP/4711")
    assert "no endpoint PJSIP/4711" in unknown.value.message
    # A trunk dial string is looked up by its endpoint (after @ or before the next /).
    with pytest.raises(VoicePromptRequestError, match="not registered"):
        await client.originate("PJSIP/+31201234567@trunk")
    assert fake.calls("endpoint")[-1].path == "endpoints/PJSIP/trunk"
    with pytest.raises(VoicePromptRequestError, match="not registered"):
        await client.originate("PJSIP/trunk/sip:+31201234567@provider")
    # Online, yet Allocation failed (or the lookup failing): the generic words.
    fake.fail_next["originate"] = [(500, {"error": "Allocation failed"})]
    with pytest.raises(VoicePromptRequestError, match="could not place a call to PJSIP/1000"):
        await client.originate("1000")
    fake.fail_next["originate"] = [(500, {"error": "Allocation failed"})]
    fake.fail_next["endpoint"] = [503]
    with pytest.raises(VoicePromptRequestError, match="could not place a call"):
        await client.originate("1000")


# ----------------------------------------------------------------------------- calls


async def test_play_to_the_end(client: AriClient, fake: FakeAsterisk) -> None:
    """Originate, answer, every item in order, repeat, hang up: played, cause 16."""
    events: list[AriEvent] = []
    remove = client.add_listener(events.append)
    result = await client.async_play(
        "1000", ["hello-world", "sound:beep"], repeat=2, ring_timeout=7, caller_id="HA <1>"
    )
    assert result == AriCallResult(
        endpoint="PJSIP/1000",
        channel_id=result.channel_id,
        status=AriCallStatus.PLAYED,
        cause=16,
        cause_text="Normal Clearing",
        digit=None,
        played=4,
        hung_up=True,
    )
    assert result.channel_id.startswith("vp-")
    assert ops(fake)[-6:] == ["originate", "play", "play", "play", "play", "hangup"]
    assert [r.params["media"] for r in fake.calls("play")] == [
        "sound:hello-world",
        "sound:beep",
    ] * 2
    originate = fake.calls("originate")[0].params
    assert (originate["timeout"], originate["callerId"]) == ("7", "HA <1>")
    assert originate["channelId"] == result.channel_id
    assert fake.channels[result.channel_id].hung_up_by == "client"
    kinds = [e.type for e in events if e.channel_id == result.channel_id]
    assert kinds[0] is AriEventType.CHANNEL_STATE_CHANGE
    assert kinds.count(AriEventType.PLAYBACK_FINISHED) == 4
    assert kinds[-1] is AriEventType.CHANNEL_DESTROYED
    assert client.diagnostics()["active_calls"] == 0
    remove()
    remove()  # twice is harmless
    await client.async_play("1000", ["beep"])
    assert len([e for e in events if e.type is AriEventType.CHANNEL_DESTROYED]) == 1


async def test_media_as_one_text(client: AriClient, fake: FakeAsterisk) -> None:
    """A single text is one item (not a list of characters)."""
    result = await client.async_play("1000", "hello-world")
    assert result.played == 1
    assert fake.calls("play")[0].params["media"] == "sound:hello-world"


async def test_hang_up_waits_for_the_last_words(
    session: aiohttp.ClientSession, fake: FakeAsterisk
) -> None:
    """hangup_delay: the DELETE comes that long after the last PlaybackFinished."""
    ari_client = make_client(session, fake, hangup_delay=0.3)
    await ari_client.async_start()
    started = time.monotonic()
    result = await ari_client.async_play("1000", ["beep"])
    assert result.status is AriCallStatus.PLAYED
    assert time.monotonic() - started >= 0.3
    await ari_client.async_close()


async def test_key_during_the_sound(client: AriClient, fake: FakeAsterisk) -> None:
    """The acknowledging key during a sound stops it and ends the call; others are ignored."""
    fake.phones["PJSIP/1000"].keys = [(1.0, "1"), (2.0, "5")]  # 10 and 20 ms after answer
    result = await client.async_play("1000", ["tt-monkeys", "hello-world"], acknowledge_digit="5")
    assert (result.status, result.digit, result.played) == (AriCallStatus.ACKNOWLEDGED, "5", 0)
    assert result.hung_up
    assert ops(fake)[-3:] == ["play", "stop", "hangup"]
    assert len(fake.calls("play")) == 1


async def test_key_after_the_sound(client: AriClient, fake: FakeAsterisk) -> None:
    """A key after the last sound, within digit_timeout, acknowledges."""
    fake.phones["PJSIP/1000"].keys = [(20.0, "#")]  # 0.2 s after answer; beep lasts 4 ms
    result = await client.async_play("1000", ["beep"], acknowledge_digit="#", digit_timeout=5)
    assert (result.status, result.digit, result.played) == (AriCallStatus.ACKNOWLEDGED, "#", 1)


async def test_no_key_in_time(client: AriClient, fake: FakeAsterisk) -> None:
    """No acknowledging key within digit_timeout: played, not acknowledged."""
    fake.phones["PJSIP/1000"].keys = [(1.0, "9")]
    started = time.monotonic()
    result = await client.async_play("1000", ["beep"], acknowledge_digit="5", digit_timeout=0.2)
    assert (result.status, result.digit) == (AriCallStatus.PLAYED, None)
    assert time.monotonic() - started >= 0.2
    assert result.hung_up


@pytest.mark.parametrize(
    ("endpoint", "status", "cause", "text"),
    [
        ("1003", AriCallStatus.BUSY, 17, "User busy"),
        ("1004", AriCallStatus.NO_ANSWER, 19, "User alerting, no answer"),
        ("1005", AriCallStatus.REJECTED, 21, "Call Rejected"),
        ("1006", AriCallStatus.NO_ANSWER, 19, "User alerting, no answer"),
        ("1007", AriCallStatus.FAILED, 38, "Network out of order"),
    ],
)
async def test_unanswered_outcomes(
    client: AriClient,
    fake: FakeAsterisk,
    endpoint: str,
    status: AriCallStatus,
    cause: int,
    text: str,
) -> None:
    """ChannelDestroyed before an answer: its cause is the outcome; nothing to hang up."""
    result = await client.async_play(endpoint, ["hello-world"], ring_timeout=1)
    assert (result.status, result.cause, result.cause_text) == (status, cause, text)
    assert (result.played, result.hung_up) == (0, False)
    assert fake.calls("play") == []
    assert fake.calls("hangup") == []


async def test_ringing_forever_is_bounded(
    client: AriClient, fake: FakeAsterisk, freezer: FrozenDateTimeFactory
) -> None:
    """Asterisk never ending the ringing: the client gives up after the grace and hangs up."""
    task = asyncio.create_task(client.async_play("1008", ["beep"], ring_timeout=1, hang_up=False))
    await settle(lambda: any(c.state == "Ringing" for c in fake.channels.values()), freezer)
    freezer.tick(1 + ANSWER_GRACE + 0.1)
    await settle(task.done)
    result = task.result()
    # Even with hang_up=False an unanswered call is not left ringing.
    assert (result.status, result.hung_up, result.cause) == (AriCallStatus.NO_ANSWER, True, 16)
    assert ops(fake)[-1] == "hangup"


async def test_callee_hangs_up_during_the_sound(client: AriClient, fake: FakeAsterisk) -> None:
    """A hang-up mid-sound ends its playback 'failed': answered, no media error."""
    fake.phones["PJSIP/1000"].hang_up_after = 2.0  # during tt-monkeys (90 ms)
    result = await client.async_play("1000", ["tt-monkeys", "beep"])
    assert (result.status, result.played, result.cause) == (AriCallStatus.ANSWERED, 0, 16)
    assert result.hung_up is False
    assert fake.calls("hangup") == []
    assert len(fake.calls("play")) == 1


@pytest.mark.parametrize(
    "lost",
    [
        {"PlaybackFinished"},  # the playback's end never arrives: the channel's does
        {"ChannelHangupRequest"},  # failed first, the hang-up right after it
    ],
)
async def test_callee_hangs_up_events_missing(
    client: AriClient, fake: FakeAsterisk, lost: set[str]
) -> None:
    """Without one of the usual events a hang-up is still told from a missing sound."""
    fake.phones["PJSIP/1000"].hang_up_after = 2.0
    fake.lose = lost
    result = await client.async_play("1000", ["tt-monkeys"])
    assert (result.status, result.cause) == (AriCallStatus.ANSWERED, 16)


async def test_callee_hangs_up_at_once(client: AriClient, fake: FakeAsterisk) -> None:
    """Gone before the first play (404 or 409 to it): answered, ended by the callee."""
    fake.phones["PJSIP/1000"].hang_up_after = 0.0
    result = await client.async_play("1000", ["beep"])
    assert (result.status, result.played, result.hung_up) == (AriCallStatus.ANSWERED, 0, False)
    assert result.cause == 16


async def test_callee_hangs_up_while_we_wait_for_the_key(
    client: AriClient, fake: FakeAsterisk
) -> None:
    """Played, then the callee hangs up without the key: played (not acknowledged)."""
    fake.phones["PJSIP/1000"].hang_up_after = 10.0  # 0.1 s after answer
    result = await client.async_play("1000", ["beep"], acknowledge_digit="5", digit_timeout=5)
    assert (result.status, result.digit, result.hung_up) == (AriCallStatus.PLAYED, None, False)


async def test_missing_sound(
    client: AriClient, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """201 then PlaybackFinished failed: an input error naming the media; hung up."""
    with pytest.raises(VoicePromptInputError) as caught:
        await client.async_play("1000", ["hello-world", "no-such-sound"])
    error = caught.value
    assert "Asterisk could not play sound:no-such-sound" in error.message
    assert (error.code, error.target) == ("failed", "PJSIP/1000")
    assert ops(fake)[-3:] == ["play", "play", "hangup"]
    assert fake.live_channels() == []
    assert client.diagnostics()["active_calls"] == 0
    assert_no_secrets(fake, caplog, error, client)


async def test_media_over_http(client: AriClient, fake: FakeAsterisk) -> None:
    """An 8 kHz WAV URL plays; 16 kHz and a 404 fail like a missing sound."""
    app = web.Application()
    files = {"ok.wav": wav_bytes(1.0), "wide.wav": wav_bytes(1.0, 16000)}

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            return web.Response(status=404)
        return web.Response(body=files[name], content_type="audio/wav")

    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        result = await client.async_play("1000", [base + "ok.wav"])
        assert result.status is AriCallStatus.PLAYED
        for name in ("wide.wav", "gone.wav"):
            with pytest.raises(VoicePromptInputError, match=name):
                await client.async_play("1000", [base + name])
    finally:
        await runner.cleanup()
    assert fake.media_fetches == [base + "ok.wav", base + "wide.wav", base + "gone.wav"]


async def test_leave_the_call_up(client: AriClient, fake: FakeAsterisk) -> None:
    """hang_up=False: the answered channel stays for the caller to end."""
    result = await client.async_play("1000", ["beep"], hang_up=False)
    assert (result.status, result.hung_up, result.cause) == (AriCallStatus.PLAYED, False, None)
    assert [c.id for c in fake.live_channels()] == [result.channel_id]
    assert await client.hangup(result.channel_id)


@pytest.mark.parametrize(
    ("media", "kwargs", "words"),
    [
        ([], {}, "Nothing to play"),
        (["beep"] * (MAX_MEDIA + 1), {}, f"At most {MAX_MEDIA}"),
        (["beep"], {"repeat": 0}, "repeat"),
        (["beep"], {"repeat": MAX_REPEAT + 1}, "repeat"),
        (["beep"], {"repeat": True}, "repeat"),
        (["beep"], {"acknowledge_digit": "55"}, "not a key"),
        (["beep"], {"acknowledge_digit": 5}, "not a key"),
        (["beep"], {"digit_timeout": 0}, "key timeout"),
        (["bad media!"], {}, "spaces"),
    ],
)
async def test_play_refuses_input(
    client: AriClient, fake: FakeAsterisk, media: list[str], kwargs: dict[str, Any], words: str
) -> None:
    """Input is checked before anything is sent."""
    with pytest.raises(VoicePromptInputError, match=words):
        await client.async_play("1000", media, **kwargs)
    with pytest.raises(VoicePromptInputError, match="not an extension"):
        await client.async_play("no way", ["beep"])
    assert fake.calls("originate") == []


async def test_originate_refusals_in_a_play(client: AriClient, fake: FakeAsterisk) -> None:
    """Not registered / unknown: raised with the target; nothing to hang up."""
    with pytest.raises(VoicePromptRequestError, match="not registered") as offline:
        await client.async_play("1002", ["beep"])
    assert offline.value.target == "PJSIP/1002"
    with pytest.raises(VoicePromptInputError, match="no endpoint"):
        await client.async_play("4711", ["beep"])
    fake.fail_next["originate"] = [503]
    with pytest.raises(VoicePromptRequestError, match="HTTP 503") as failed:
        await client.async_play("1000", ["beep"])
    assert failed.value.target == "PJSIP/1000"
    assert fake.calls("hangup") == []


async def test_originate_timeout_hangs_up_the_chosen_channel(
    session: aiohttp.ClientSession, fake: FakeAsterisk
) -> None:
    """An originate without a reply in time may still have made the channel: hung up."""
    ari_client = make_client(session, fake, request_timeout=0.3)
    await ari_client.async_start()
    fake.latency_for["originate"] = 0.6
    with pytest.raises(VoicePromptTimeoutError) as caught:
        await ari_client.async_play("1000", ["beep"])
    assert caught.value.target == "PJSIP/1000"
    (originate,) = fake.calls("originate")
    channel_id = originate.params["channelId"]
    # Hung up at once (not there yet: 404), then again when it shows up after all.
    # The fake records a request's status once it has answered it (after its events).
    await fake.wait_for(lambda: [r.status for r in fake.calls("hangup")] == [404, 204])
    assert [r.path for r in fake.calls("hangup")] == [f"channels/{channel_id}"] * 2
    assert fake.channels[channel_id].hung_up_by == "client"
    await ari_client.async_close()


async def test_play_request_fails(client: AriClient, fake: FakeAsterisk) -> None:
    """A 5xx to /play: raised, and the call is hung up."""
    fake.fail_next["play"] = [500]
    with pytest.raises(VoicePromptRequestError, match="HTTP 500") as caught:
        await client.async_play("1000", ["beep"])
    assert caught.value.target == "PJSIP/1000"
    assert ops(fake)[-1] == "hangup"
    assert fake.live_channels() == []


async def test_hangup_failure_is_logged_not_raised(
    client: AriClient, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """The call played; the final DELETE failing is a warning, the result says so."""
    fake.fail_next["hangup"] = [500]
    result = await client.async_play("1000", ["beep"])
    assert (result.status, result.hung_up, result.cause) == (AriCallStatus.PLAYED, False, None)
    assert "Could not hang up the call to PJSIP/1000" in caplog.text
    await client.hangup(result.channel_id)


async def test_cancelled_play_hangs_up(client: AriClient, fake: FakeAsterisk) -> None:
    """Cancelling async_play mid-sound hangs up the channel it originated."""
    fake.sounds["long"] = 100.0  # 1 s at the test scale
    task = asyncio.create_task(client.async_play("1000", ["long"]))
    await fake.wait_for(lambda: bool(fake.calls("play")))
    fake.latency_for["hangup"] = 0.1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.live_channels()  # the hang-up runs in the background...
    await client.async_close()  # ...and closing waits for it
    assert fake.live_channels() == []
    assert ops(fake)[-1] == "hangup"
    channel = next(iter(fake.channels.values()))
    assert channel.hung_up_by == "client"


async def test_cancelled_before_the_answer(client: AriClient, fake: FakeAsterisk) -> None:
    """Cancelled while ringing: the ringing channel is hung up too."""
    task = asyncio.create_task(client.async_play("1008", ["beep"], ring_timeout=30))
    await fake.wait_for(lambda: any(c.state == "Ringing" for c in fake.channels.values()))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_for(lambda: not fake.live_channels())


async def test_closing_ends_waiting_calls(client: AriClient, fake: FakeAsterisk) -> None:
    """async_close while a call waits: it ends with a connection error and is hung up."""
    fake.sounds["long"] = 100.0
    task = asyncio.create_task(client.async_play("1000", ["long"]))
    await fake.wait_for(lambda: bool(fake.calls("play")))
    await client.async_close()
    with pytest.raises(VoicePromptConnectionError, match="was closed during the call"):
        await task
    assert fake.live_channels() == []
    assert client.state is AriSocketState.STOPPED


async def test_play_bounds(
    client: AriClient, fake: FakeAsterisk, freezer: FrozenDateTimeFactory
) -> None:
    """A sound that never finishes: a timeout after MAX_MEDIA_SECONDS, hung up."""
    fake.sounds["endless"] = 10_000_000.0
    task = asyncio.create_task(client.async_play("1000", ["endless"]))
    await settle(
        lambda: bool(fake.calls("play")) and fake.calls("play")[0].status is not None, freezer
    )
    await idle()  # the client has seen PlaybackStarted: the media's own bound runs
    freezer.tick(PLAYBACK_START_TIMEOUT + 0.1)
    await idle()
    assert not task.done()
    freezer.tick(MAX_MEDIA_SECONDS - PLAYBACK_START_TIMEOUT)
    await settle(task.done)
    with pytest.raises(VoicePromptTimeoutError, match="did not finish playing sound:endless"):
        task.result()
    await settle(lambda: bool(fake.calls("hangup")))
    assert PLAYBACK_START_TIMEOUT < MAX_MEDIA_SECONDS


async def test_playback_that_never_starts(
    client: AriClient, fake: FakeAsterisk, freezer: FrozenDateTimeFactory
) -> None:
    """201 and then no PlaybackStarted (the event lost): bounded by the start timeout."""
    fake.lose = {"PlaybackStarted", "PlaybackFinished"}
    task = asyncio.create_task(client.async_play("1000", ["beep"]))
    await settle(
        lambda: bool(fake.calls("play")) and fake.calls("play")[0].status is not None, freezer
    )
    await idle()
    freezer.tick(PLAYBACK_START_TIMEOUT + 0.1)
    await settle(task.done)
    with pytest.raises(VoicePromptTimeoutError, match="within 30 seconds"):
        task.result()


# ----------------------------------------------------------------------------- websocket


async def test_events_reach_listeners(
    client: AriClient, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """Typed events for the integration; a failing listener is logged, others still run."""
    seen: list[AriEvent] = []
    states: list[AriSocketState] = []

    def broken(event: AriEvent) -> None:
        raise RuntimeError("listener bug")

    def broken_state(state: AriSocketState) -> None:
        raise RuntimeError("state listener bug")

    client.add_listener(broken)
    client.add_listener(seen.append)
    client.add_state_listener(broken_state)
    remove_state = client.add_state_listener(states.append)
    result = await client.async_play("1000", ["beep"])
    kinds = [e.type for e in seen if e.channel_id == result.channel_id]
    assert AriEventType.STASIS_START in kinds
    assert AriEventType.PLAYBACK_STARTED in kinds
    assert AriEventType.CHANNEL_HANGUP_REQUEST in kinds
    assert AriEventType.STASIS_END in kinds
    started = next(e for e in seen if e.type is AriEventType.STASIS_START)
    assert started.channel_state == "Up"
    assert started.channel_name is not None
    assert started.channel_name.startswith("PJSIP/1000-")
    remove_state()
    remove_state()
    await client.async_close()
    assert states == []  # removed before the state changed
    assert "An ARI event listener failed" in caplog.text
    assert "An ARI state listener failed" in caplog.text


async def test_diagnostics(client: AriClient, fake: FakeAsterisk) -> None:
    """Websocket state, counters, no credentials."""
    await client.async_play("1000", ["beep"])
    diagnostics = client.diagnostics()
    assert set(diagnostics) == {
        "url",
        "app",
        "verify_ssl",
        "certificate_mode",
        "certificate_sha256",
        "events",
        "active_calls",
    }
    assert (diagnostics["certificate_mode"], diagnostics["certificate_sha256"]) == (
        "system_ca",
        None,
    )
    assert set(diagnostics["events"]) == DIAGNOSTICS_EVENTS
    assert diagnostics["url"] == fake.url
    assert diagnostics["events"]["state"] == "connected"
    assert diagnostics["events"]["received"] > 5
    assert diagnostics["events"]["connected_seconds"] >= 0
    assert repr(client) == f"AriClient(url='{fake.url}', app='voice_prompt', state=connected)"
    for secret in secrets_of(fake):
        assert secret not in json.dumps(diagnostics) + repr(client)


async def test_start_is_idempotent_and_auto(
    session: aiohttp.ClientSession, fake: FakeAsterisk
) -> None:
    """async_play starts the websocket itself; a second async_start is a no-op."""
    ari_client = make_client(session, fake)
    result = await ari_client.async_play("1000", ["beep"])
    assert result.status is AriCallStatus.PLAYED
    await ari_client.async_start()
    assert fake.websocket_connects == 1
    assert fake.connected(APP)
    await ari_client.async_close()
    await ari_client.async_close()  # twice is harmless
    assert not ari_client.connected


async def test_garbage_events_are_counted_and_ignored(
    client: AriClient, fake: FakeAsterisk
) -> None:
    """Non-JSON, JSON without a type, broken events, binary frames: counted, ignored."""
    fake.garbage_events = True
    result = await client.async_play("1000", ["hello-world"])
    assert result.status is AriCallStatus.PLAYED
    sent = len(fake.events_sent)  # six of the seven junk messages are no event at all
    await settle(lambda: client.diagnostics()["events"]["bad_events"] == 6 * sent)
    for ws in fake.websockets[APP]:
        await ws.send_bytes(b"\x00binary")
    await settle(lambda: client.diagnostics()["events"]["bad_events"] == 6 * sent + 1)
    assert client.connected


async def test_drop_during_the_sound(client: AriClient, fake: FakeAsterisk) -> None:
    """The websocket drops and PlaybackFinished is lost: reconnect, resync, played."""
    fake.drop_before = {"PlaybackFinished"}
    states: list[AriSocketState] = []
    client.add_state_listener(states.append)
    result = await client.async_play("1000", ["hello-world", "beep"])
    assert (result.status, result.played, result.cause) == (AriCallStatus.PLAYED, 2, 16)
    assert states[:2] == [AriSocketState.RECONNECTING, AriSocketState.CONNECTED]
    diagnostics = client.diagnostics()["events"]
    assert diagnostics["reconnects"] == 1
    assert "connection" in diagnostics["last_error"]
    assert fake.websocket_connects == 2
    # The resync asked Asterisk about the channel and the playback.
    assert {"channel", "playback"} <= set(ops(fake))


async def test_drop_while_a_sound_plays_on(client: AriClient, fake: FakeAsterisk) -> None:
    """A drop mid-sound, the playback still going on resync: its end arrives later."""
    fake.sounds["long"] = 30.0  # 0.3 s
    task = asyncio.create_task(client.async_play("1000", ["long"]))
    await fake.wait_for(lambda: bool(fake.events("PlaybackStarted")))
    await fake.drop_websockets()
    result = await task
    assert (result.status, result.played) == (AriCallStatus.PLAYED, 1)
    assert "playback" in ops(fake)


async def test_drop_while_still_ringing(client: AriClient, fake: FakeAsterisk) -> None:
    """A drop while it rings: Ringing on resync, so the client waits on for the answer."""
    fake.phones["PJSIP/1000"].answer_delay = 30.0  # answers 0.3 s later
    fake.drop_before = {"ChannelStateChange"}
    result = await client.async_play("1000", ["beep"])
    assert (result.status, result.played) == (AriCallStatus.PLAYED, 1)
    assert "channel" in ops(fake)


async def test_drop_while_ringing(client: AriClient, fake: FakeAsterisk) -> None:
    """StasisStart lost with the websocket: the channel is Up on resync, so it plays."""
    fake.drop_before = {"StasisStart"}
    result = await client.async_play("1000", ["beep"])
    assert (result.status, result.played) == (AriCallStatus.PLAYED, 1)


async def test_drop_and_the_call_ended_meanwhile(client: AriClient, fake: FakeAsterisk) -> None:
    """ChannelDestroyed lost: gone on resync; the cause is unknown, so it failed."""
    fake.drop_before = {"ChannelHangupRequest"}
    result = await client.async_play("1003", ["beep"])
    assert (result.status, result.cause) == (AriCallStatus.FAILED, None)


async def test_drop_and_the_callee_left_during_the_sound(
    client: AriClient, fake: FakeAsterisk
) -> None:
    """Lost events while playing, and the channel gone on resync: answered."""
    fake.phones["PJSIP/1000"].hang_up_after = 2.0
    fake.drop_before = {"ChannelHangupRequest"}
    result = await client.async_play("1000", ["tt-monkeys"])
    assert (result.status, result.hung_up) == (AriCallStatus.ANSWERED, False)


async def test_drop_while_waiting_for_the_key(client: AriClient, fake: FakeAsterisk) -> None:
    """A drop during the key wait: resync, then the key still acknowledges."""
    fake.phones["PJSIP/1000"].keys = [(30.0, "5")]
    fake.drop_before = {"PlaybackFinished"}
    result = await client.async_play("1000", ["beep"], acknowledge_digit="5", digit_timeout=5)
    assert (result.status, result.digit) == (AriCallStatus.ACKNOWLEDGED, "5")
    fake.phones["PJSIP/1000"].keys = []
    fake.phones["PJSIP/1000"].hang_up_after = 30.0
    finished: list[AriEvent] = []
    client.add_listener(
        lambda e: finished.append(e) if e.type is AriEventType.PLAYBACK_FINISHED else None
    )
    task = asyncio.create_task(
        client.async_play("1000", ["beep"], acknowledge_digit="5", digit_timeout=5)
    )
    await fake.wait_for(lambda: bool(finished))
    await idle()  # the call waits for the key now
    await fake.drop_websockets()
    result = await task
    assert (result.status, result.digit) == (AriCallStatus.PLAYED, None)


async def test_socket_not_back_during_a_call(
    client: AriClient, fake: FakeAsterisk, freezer: FrozenDateTimeFactory
) -> None:
    """The websocket stays down mid-call: a connection error after RESYNC_TIMEOUT, hung up."""
    fake.sounds["long"] = 100.0
    task = asyncio.create_task(client.async_play("1000", ["long"]))
    await settle(
        lambda: bool(fake.calls("play")) and fake.calls("play")[0].status is not None, freezer
    )
    fake.refuse_websocket = 503
    await fake.drop_websockets()
    await settle(lambda: client.state is AriSocketState.RECONNECTING)
    await idle()
    freezer.tick(RESYNC_TIMEOUT + 0.1)
    await settle(task.done)
    with pytest.raises(VoicePromptConnectionError, match="did not come back") as caught:
        task.result()
    assert caught.value.target == "PJSIP/1000"
    await settle(lambda: bool(fake.calls("hangup")))
    await settle(lambda: "503" in (client.diagnostics()["events"]["last_error"] or ""), freezer)


async def test_reconnect_backoff_and_recovery(
    session: aiohttp.ClientSession, fake: FakeAsterisk
) -> None:
    """Refused reconnections are retried with the delays (the last repeats), then recover."""
    ari_client = make_client(session, fake, reconnect_delays=(0.01, 0.05))
    await ari_client.async_start()
    fake.refuse_websocket = 503
    await fake.drop_websockets(clean=True)
    await fake.wait_for(lambda: len(fake.calls("events")) >= 5)
    assert ari_client.state is AriSocketState.RECONNECTING
    assert not ari_client.connected
    fake.refuse_websocket = None
    await fake.wait_for(lambda: ari_client.connected)
    assert ari_client.diagnostics()["events"]["reconnects"] == 1
    result = await ari_client.async_play("1000", ["beep"])
    assert result.status is AriCallStatus.PLAYED
    await ari_client.async_close()


async def test_play_while_disconnected(session: aiohttp.ClientSession, fake: FakeAsterisk) -> None:
    """No websocket (reconnecting): waits request_timeout, then no call is placed."""
    ari_client = make_client(session, fake, request_timeout=0.2, reconnect_delays=(0.05,))
    await ari_client.async_start()
    fake.refuse_websocket = 503
    await fake.drop_websockets()
    await fake.wait_for(lambda: not ari_client.connected)
    with pytest.raises(VoicePromptConnectionError, match="no call was placed"):
        await ari_client.async_play("1000", ["beep"])
    assert fake.calls("originate") == []
    fake.refuse_websocket = None
    result = await ari_client.async_play("1000", ["beep"])  # waits for the reconnection
    assert result.status is AriCallStatus.PLAYED
    await ari_client.async_close()


async def test_credentials_refused_on_reconnect(
    session: aiohttp.ClientSession, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """401 when reconnecting: no more attempts; waiting calls end; the next play raises it."""
    ari_client = make_client(session, fake)
    await ari_client.async_start()
    fake.sounds["long"] = 100.0
    task = asyncio.create_task(ari_client.async_play("1000", ["long"]))
    await fake.wait_for(lambda: bool(fake.calls("play")))
    fake.users[DEFAULT_USERNAME] = "changed"
    await fake.drop_websockets()
    with pytest.raises(VoicePromptConnectionError):
        await task
    assert ari_client.state is AriSocketState.AUTH_FAILED
    attempts = len(fake.calls("events"))
    await asyncio.sleep(0.2)
    assert len(fake.calls("events")) == attempts  # no retry loop
    with pytest.raises(VoicePromptAuthenticationError):
        await ari_client.async_play("1000", ["beep"])
    assert "not reconnecting until new credentials" in caplog.text
    assert_no_secrets(fake, caplog, ari_client)
    await ari_client.async_close()


async def test_application_taken_over(
    session: aiohttp.ClientSession, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """A second websocket for the app: the first is told (ApplicationReplaced) and waits."""
    first = make_client(session, fake, reconnect_delays=(0.01, 30.0))
    await first.async_start()
    second = make_client(session, fake)
    await second.async_start()
    await fake.wait_for(lambda: first.state is AriSocketState.REPLACED)
    assert first.diagnostics()["events"]["replaced"] == 1
    assert "must not share an application name" in caplog.text
    result = await second.async_play("1000", ["beep"])
    assert result.status is AriCallStatus.PLAYED
    await asyncio.sleep(0.1)
    assert fake.websocket_connects == 2  # the first waits its longest delay before trying
    await second.async_close()
    await first.async_close()


async def test_silent_websocket_is_reconnected(
    session: aiohttp.ClientSession, fake: FakeAsterisk
) -> None:
    """No answer to a ping: the link counts as dead, the client reconnects."""
    fake.answer_pings = False
    ari_client = make_client(session, fake, heartbeat=0.05)
    await ari_client.async_start()
    await fake.wait_for(lambda: fake.websocket_connects >= 2)
    assert "no answer to a ping within 0.05 seconds" in (
        ari_client.diagnostics()["events"]["last_error"] or ""
    )
    fake.answer_pings = True
    await fake.wait_for(lambda: ari_client.connected)
    await asyncio.sleep(0.2)  # pinged and answered: stays connected
    assert ari_client.connected
    await ari_client.async_close()


async def test_server_pings_are_answered(client: AriClient, fake: FakeAsterisk) -> None:
    """A ping from the server gets a pong (the client answers them itself)."""
    (ws,) = fake.websockets[APP]
    await ws.ping(b"hello")
    await asyncio.sleep(0.05)
    assert client.connected


def test_module_constants() -> None:
    """The bounds the docs promise."""
    assert ari.MAX_RING_TIMEOUT == 300
    assert ari.RECONNECT_DELAYS[-1] == 30.0
    assert ari.HANGUP_DELAY == 0.5
