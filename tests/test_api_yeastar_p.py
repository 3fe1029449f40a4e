"""Tests for the Yeastar P-Series OpenAPI client, against the real HTTPS fake PBX.

Nothing is patched at the HTTP level: every request goes over TCP/TLS to the fake on
127.0.0.1. Time moves with the ``freezer`` fixture (client and fake both read
``time.monotonic()``); the only aiohttp extension point used is a trace config (counting
requests in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Iterable
from datetime import timedelta
import json
import logging
from pathlib import Path
import signal
import ssl
import sys
import time
from typing import Any

import aiohttp
from freezegun.api import FrozenDateTimeFactory
import pytest

from custom_components.voice_prompt.api.exceptions import (
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    VoicePromptTokenError,
)
from custom_components.voice_prompt.api.yeastar import MAX_IN_FLIGHT
from custom_components.voice_prompt.api.yeastar_p import (
    ERRORS,
    MAX_COUNT,
    MAX_NUMBERS,
    MAX_PROMPT_BYTES,
    MAX_PROMPT_NAME,
    MAX_PROMPTS,
    USER_AGENT,
    PromptFormat,
    PromptOrigin,
    VoicePromptApiDisabledError,
    YeastarPClient,
    YeastarPPlayback,
    YeastarPStatus,
    YeastarPSystemInfo,
    YeastarPUpload,
    error_for,
    normalize_numbers,
    normalize_prompts,
)
from tests.conftest import tls_resets_tolerated
from tests.fakes.yeastar import MAX_LOGIN_FAILURES
from tests.fakes.yeastar_p import ERRMSG, ERROR_CODES, FakeYeastarP

CLIENT_ID = "vp-test-client"
CLIENT_SECRET = "P-Series-Secret-0123456789abcdef"
PLAY = "call/play_prompt"
UPLOAD = "custom_prompt/upload"
LOCKOUT = timedelta(seconds=600)

WAV = b"RIFF" + (1036).to_bytes(4, "little") + b"WAVEfmt " + bytes(1024)
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(512)
MP3_FRAME = b"\xff\xfb\x90\x00" + bytes(413)
GSM = (b"\xd0" + bytes(32)) * 50

# The documented errcode table, class by class (the client's ERRORS must say the same).
REQUEST = VoicePromptRequestError
EXPECTED_CLASSES: dict[int, type[VoicePromptError]] = {
    -2: REQUEST,
    -1: REQUEST,
    10001: VoicePromptApiDisabledError,
    10002: REQUEST,
    10003: REQUEST,
    10004: VoicePromptTokenError,
    10005: VoicePromptApiDisabledError,
    10009: REQUEST,
    40001: VoicePromptInputError,
    40002: VoicePromptInputError,
    40003: VoicePromptInputError,
    40004: VoicePromptInputError,
    60001: VoicePromptInputError,
    60002: REQUEST,
    60101: REQUEST,
    70004: VoicePromptIPBlockedError,
    70082: REQUEST,
    70084: REQUEST,
    70087: REQUEST,
    70091: REQUEST,
    70093: REQUEST,
    70106: REQUEST,
    70120: REQUEST,
    70123: VoicePromptApiDisabledError,
    70128: REQUEST,
    70130: VoicePromptInputError,
    70132: REQUEST,
    70510: REQUEST,
    70514: REQUEST,
    70515: REQUEST,
}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every log record of every logger, down to DEBUG."""
    caplog.set_level(logging.DEBUG)


@pytest.fixture
async def tls_tolerance() -> AsyncGenerator[None]:
    """``tls_resets_tolerated`` for a whole test; request it before ``fake``.

    The fake's side of a refused handshake is reported after the client's error, as
    late as the fake's shutdown.
    """
    with tls_resets_tolerated():
        yield


@pytest.fixture
async def fake(server_ssl: ssl.SSLContext, socket_enabled: None) -> AsyncGenerator[FakeYeastarP]:
    """A running fake P-Series PBX on https://127.0.0.1:<free port> (self-signed)."""
    pbx = FakeYeastarP(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    await pbx.start(ssl_context=server_ssl)
    yield pbx
    await pbx.close()


@pytest.fixture
def client(session: aiohttp.ClientSession, fake: FakeYeastarP) -> YeastarPClient:
    """A client for the fake, as make_client makes it."""
    return make_client(session, fake)


def make_client(
    session: aiohttp.ClientSession, fake: FakeYeastarP, **kwargs: Any
) -> YeastarPClient:
    """A client for the fake (self-signed certificate: no verification unless asked)."""
    options: dict[str, Any] = {
        "port": fake.port,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "verify_ssl": False,
    }
    options.update(kwargs)
    return YeastarPClient(session, fake.host, **options)


def issued_secrets(fake: FakeYeastarP) -> set[str]:
    """The client secret and every access and refresh token the fake issued or saw."""
    found = {CLIENT_SECRET}
    for grant in fake.grants:
        found |= {grant.access_token, grant.refresh_token}
    for request in fake.requests:
        found.add(request.token or "")
        for source in (request.reply, request.body):
            if isinstance(source, dict):
                found |= {
                    value
                    for key in ("access_token", "refresh_token")
                    if isinstance(value := source.get(key), str)
                }
    found.discard("")
    return found


def _texts(thing: object) -> Iterable[str]:
    if isinstance(thing, BaseException):
        yield str(thing)
        yield repr(thing.args)
        if isinstance(thing, VoicePromptError):
            yield thing.message
    if isinstance(thing, YeastarPClient):
        yield json.dumps(thing.diagnostics())
    yield repr(thing)


def assert_no_secrets(
    fake: FakeYeastarP, caplog: pytest.LogCaptureFixture, *things: object
) -> None:
    """No secret or token shows in errors, the client's repr/diagnostics, or any log line."""
    secrets = issued_secrets(fake)
    texts = [text for thing in things for text in _texts(thing)]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret leaked into {text!r}"


def tokens_issued(fake: FakeYeastarP) -> list[str]:
    """Access tokens the fake handed out (get_token and refresh_token), in order."""
    return [
        r.reply["access_token"]
        for r in fake.requests
        if r.path in ("get_token", "refresh_token")
        and r.reply is not None
        and r.reply.get("errcode") == 0
    ]


async def _error(request: Awaitable[object]) -> VoicePromptError:
    with pytest.raises(VoicePromptError) as exc_info:
        await request
    return exc_info.value


# ------------------------------------------------------------------ tokens


async def test_get_token_sends_client_id_and_secret_as_they_are(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    playback = await client.play_prompt("1000", ["doorbell"])

    assert playback == YeastarPPlayback("1000", ("doorbell",), None, None, False, None)
    login, play = fake.requests
    assert (login.method, login.path, login.token) == ("POST", "get_token", None)
    assert login.body == {"username": CLIENT_ID, "password": CLIENT_SECRET}
    assert login.reply is not None
    assert login.reply["access_token_expire_time"] == 1800
    assert login.reply["refresh_token_expire_time"] == 86400
    # The token rides in the query string only.
    assert (play.method, play.path, play.token) == ("POST", PLAY, login.reply["access_token"])
    assert login.reply["access_token"] not in json.dumps(play.body)
    assert play.reply == {"errcode": 0, "errmsg": "SUCCESS"}
    assert "Got a new access token from 127.0.0.1" in caplog.text
    assert_no_secrets(fake, caplog, client)


async def test_token_reused_across_requests(client: YeastarPClient, fake: FakeYeastarP) -> None:
    for _ in range(20):
        await client.play_prompt("1000", "doorbell")
    (token,) = tokens_issued(fake)
    assert fake.token_requests == 1
    assert fake.refreshes == 0
    assert [r.token for r in fake.calls(PLAY)] == [token] * 20


async def test_token_refreshed_ahead_of_expiry(
    client: YeastarPClient,
    fake: FakeYeastarP,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At 25 of the token's 30 minutes the client refreshes it before using it."""
    await client.play_prompt("1000", "doorbell")
    first = fake.calls("get_token")[0].reply
    assert first is not None
    freezer.tick(timedelta(seconds=1499))
    await client.play_prompt("1000", "doorbell")
    assert fake.refreshes == 0

    freezer.tick(timedelta(seconds=2))
    await client.play_prompt("1000", "doorbell")

    (refresh,) = fake.calls("refresh_token")
    assert refresh.body == {"refresh_token": first["refresh_token"]}
    assert refresh.token is None
    assert fake.token_requests == 1
    old, new = tokens_issued(fake)
    assert [r.token for r in fake.calls(PLAY)] == [old, old, new]
    # Every play was accepted: none used a token the PBX had to refuse.
    assert all(r.reply == {"errcode": 0, "errmsg": "SUCCESS"} for r in fake.calls(PLAY))
    assert fake.valid_tokens() == [new]  # the refresh replaced the pair
    assert client.diagnostics()["token_valid_for_seconds"] == 1800.0
    assert "Refreshed the access token at 127.0.0.1" in caplog.text
    assert_no_secrets(fake, caplog, client)


async def test_new_token_when_the_refresh_token_runs_out(
    client: YeastarPClient,
    fake: FakeYeastarP,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Less than 5 minutes left on the 24-hour refresh token: a new get_token instead."""
    await client.system_information()
    freezer.tick(timedelta(hours=23, minutes=56))

    await client.play_prompt("1000", "doorbell")

    assert fake.refreshes == 0
    assert fake.token_requests == 2
    assert fake.calls(PLAY)[0].token == tokens_issued(fake)[1]
    freezer.tick(timedelta(hours=24))
    await client.play_prompt("1000", "doorbell")
    assert (fake.refreshes, fake.token_requests) == (0, 3)
    assert_no_secrets(fake, caplog, client)


async def test_refused_refresh_token_falls_back_to_a_new_token(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """The PBX forgot both tokens early: 10004, a refused refresh, get_token, one retry."""
    await client.play_prompt("1000", "doorbell")
    fake.expire_refresh_tokens()

    await client.play_prompt("1000", "wakeup")

    assert [r.path for r in fake.requests] == [
        "get_token",
        PLAY,
        PLAY,
        "refresh_token",
        "get_token",
        PLAY,
    ]
    assert [r.reply["errcode"] for r in fake.requests if r.reply] == [0, 0, 10004, 10004, 0, 0]
    assert "refused the refresh token (10004); asking for a new token" in caplog.text
    assert_no_secrets(fake, caplog, client)


@pytest.mark.parametrize(
    "reply",
    [
        {"errcode": 0, "access_token": "abc", "refresh_token": ""},
        {"errcode": 0, "access_token": "abc", "refresh_token": None},
        {"errcode": 0, "access_token": "abc"},
    ],
)
async def test_token_without_refresh_token_renews_with_get_token(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory, reply: Any
) -> None:
    fake.reply_override["get_token"] = reply
    assert await client.get_token() == "abc"
    assert client.diagnostics()["refresh_token_usable_for_seconds"] is None

    await client.refresh_token()

    assert (fake.token_requests, fake.refreshes) == (2, 0)


@pytest.mark.parametrize(
    ("lifetimes", "valid", "usable"),
    [
        ({"access_token_expire_time": 100, "refresh_token_expire_time": 1000}, 100.0, 800.0),
        ({"access_token_expire_time": 7200, "refresh_token_expire_time": 3600}, 7200.0, 3300.0),
        ({}, 1800.0, 86100.0),
        ({"access_token_expire_time": True, "refresh_token_expire_time": "60"}, 1800.0, 86100.0),
        ({"access_token_expire_time": -5, "refresh_token_expire_time": 0}, 1800.0, 86100.0),
        ({"access_token_expire_time": 1.5, "refresh_token_expire_time": None}, 1800.0, 86100.0),
    ],
)
async def test_token_lifetimes_from_the_reply(
    client: YeastarPClient,
    fake: FakeYeastarP,
    freezer: FrozenDateTimeFactory,
    lifetimes: dict[str, Any],
    valid: float,
    usable: float,
) -> None:
    """The reply's *_expire_time counts; missing or unusable values mean 30 min / 24 h."""
    fake.reply_override["get_token"] = {
        "errcode": 0,
        "access_token": "abc",
        "refresh_token": "def",
        **lifetimes,
    }
    await client.get_token()
    diagnostics = client.diagnostics()
    assert diagnostics["token_valid_for_seconds"] == valid
    assert diagnostics["refresh_token_usable_for_seconds"] == usable


async def test_short_lived_token_is_renewed_at_four_fifths(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory
) -> None:
    """A 60-second token (fake program --access-ttl 60) is renewed after 48 seconds."""
    fake.access_ttl = 60
    await client.play_prompt("1000", "doorbell")
    freezer.tick(timedelta(seconds=47))
    await client.play_prompt("1000", "doorbell")
    assert fake.refreshes == 0
    freezer.tick(timedelta(seconds=2))
    await client.play_prompt("1000", "doorbell")
    assert fake.refreshes == 1
    assert fake.token_requests == 1


async def test_public_get_token_and_refresh_token(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    first = await client.get_token()
    refreshed = await client.refresh_token()
    again = await client.get_token()

    assert [r.path for r in fake.requests] == ["get_token", "refresh_token", "get_token"]
    assert tokens_issued(fake) == [first, refreshed, again]
    assert len({first, refreshed, again}) == 3
    assert fake.valid_tokens() == [refreshed, again]
    assert {r.token for r in fake.requests} == {None}
    await client.play_prompt("1000", "doorbell")
    assert fake.calls(PLAY)[0].token == again
    assert_no_secrets(fake, caplog, client)


async def test_eight_tokens_per_application(
    session: aiohttp.ClientSession, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """A 9th valid token is refused (60002); closing a client revokes its token."""
    clients = [make_client(session, fake) for _ in range(9)]
    for client in clients[:8]:
        await client.get_token()

    err = await _error(clients[8].system_information())
    assert type(err) is VoicePromptRequestError
    assert err.code == "60002"
    assert "8 valid access tokens" in str(err)

    await clients[0].async_close()
    (revoke,) = fake.calls("del_token")
    assert (revoke.method, revoke.token) == ("GET", tokens_issued(fake)[0])
    assert len(fake.valid_tokens()) == 7
    assert (await clients[8].system_information()).serial == fake.serial
    assert_no_secrets(fake, caplog, *clients, err)


# ------------------------------------------------------------------ single flight


async def test_single_flight_first_token(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """50 concurrent requests without a token: one get_token."""
    result = await client.async_play([f"+49301234{n:03d}" for n in range(50)], "doorbell")

    assert len(result.accepted) == 50
    assert result.failures == []
    assert fake.token_requests == 1
    (token,) = tokens_issued(fake)
    assert {r.token for r in fake.calls(PLAY)} == {token}
    assert_no_secrets(fake, caplog, client)


async def test_single_flight_refresh_ahead_of_expiry(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory
) -> None:
    await client.get_token()
    freezer.tick(timedelta(minutes=26))

    result = await client.async_play([f"+49301234{n:03d}" for n in range(50)], "doorbell")

    assert len(result.accepted) == 50
    assert (fake.token_requests, fake.refreshes) == (1, 1)
    assert {r.token for r in fake.calls(PLAY)} == {tokens_issued(fake)[1]}


async def test_single_flight_after_the_pbx_expired_the_token(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """50 concurrent requests all see 10004: one refresh, 50 retries, all accepted."""
    await client.get_token()
    old = tokens_issued(fake)[0]
    fake.expire_tokens()

    result = await client.async_play([f"+49301234{n:03d}" for n in range(50)], "doorbell")

    assert len(result.accepted) == 50
    assert (fake.token_requests, fake.refreshes) == (1, 1)
    new = tokens_issued(fake)[1]
    refused = [r for r in fake.calls(PLAY) if r.token == old]
    accepted = [r for r in fake.calls(PLAY) if r.token == new]
    assert len(refused) == len(accepted) == 50
    assert all(r.reply == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"} for r in refused)
    assert all(r.reply == {"errcode": 0, "errmsg": "SUCCESS"} for r in accepted)
    assert_no_secrets(fake, caplog, client)


# ------------------------------------------------------------------ 10004


async def test_token_expired_renews_once_and_retries_once(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    await client.get_token()
    fake.fail_next[PLAY] = [10004]

    playback = await client.play_prompt("1000", "doorbell", volume=3)

    assert playback.volume == 3
    first, retry = fake.calls(PLAY)
    assert first.reply == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    assert retry.body == first.body
    old, new = tokens_issued(fake)
    assert (first.token, retry.token) == (old, new)
    assert (fake.token_requests, fake.refreshes) == (1, 1)
    assert "refused the access token for call/play_prompt; renewing it" in caplog.text
    assert_no_secrets(fake, caplog, client)


async def test_token_refused_twice_is_a_request_error_not_latched(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next[PLAY] = [10004, 10004]

    err = await _error(client.play_prompt("1000", "doorbell"))

    assert type(err) is VoicePromptRequestError
    assert not isinstance(err, VoicePromptAuthenticationError)
    assert err.code == "10004"
    assert err.target == "1000"
    assert str(err) == "127.0.0.1 refused an access token it had just issued (errcode 10004)"
    assert len(fake.calls(PLAY)) == 2
    assert (fake.token_requests, fake.refreshes) == (1, 1)
    # Not latched: the next call works with the token it has.
    await client.play_prompt("1000", "doorbell")
    assert (fake.token_requests, fake.refreshes) == (1, 1)
    assert_no_secrets(fake, caplog, client, err)


async def test_upload_retried_with_a_fresh_form(client: YeastarPClient, fake: FakeYeastarP) -> None:
    """A multipart body can be sent once: the retry after 10004 builds it again."""
    fake.fail_next[UPLOAD] = [10004]

    upload = await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")

    assert upload == YeastarPUpload("vp_hello", uploaded=True, existed=False)
    first, retry = fake.calls(UPLOAD)
    assert first.body == retry.body
    assert retry.body["file"] == {
        "filename": "vp_hello.wav",
        "content_type": "audio/wav",
        "size": len(WAV),
    }
    assert fake.uploaded_data == {"vp_hello": WAV}


# ------------------------------------------------------------------ credentials


async def test_bad_credentials_are_never_retried(
    session: aiohttp.ClientSession, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, fake, client_secret="wrong-secret")

    first = await _error(client.play_prompt("1000", "doorbell"))

    assert type(first) is VoicePromptAuthenticationError
    assert first.code == "-1"
    assert first.target == "1000"
    assert str(first) == "127.0.0.1 refused the Client ID or Client Secret (errcode -1)"
    (login,) = fake.requests
    assert login.reply == {
        "errcode": -1,
        "errmsg": "FAILURE",
        "invalid_param_list": [{"field": "username or password", "value": "error"}],
    }
    later = [
        await _error(client.play_prompt("1000", "doorbell")),
        await _error(client.system_information()),
        await _error(client.upload_prompt("vp_x", WAV, content_type="audio/wav")),
        await _error(client.get_token()),
        await _error(client.refresh_token()),
    ]
    result = await client.async_play(["1000", "1001"], "doorbell")
    assert all(type(err) is VoicePromptAuthenticationError for err in later)
    assert [err.target for err in later] == ["1000", None, None, None, None]
    assert [type(err) for _, err in result.failures] == [VoicePromptAuthenticationError] * 2
    assert len(fake.requests) == 1
    assert fake.failed_logins == {"127.0.0.1": 1}
    diagnostics = client.diagnostics()
    assert diagnostics["auth_failed"] is True
    assert diagnostics["has_token"] is False
    await client.async_close()
    assert len(fake.requests) == 1
    # A new client (new credentials) may try again.
    fixed = make_client(session, fake)
    await fixed.play_prompt("1000", "doorbell")
    assert fake.failed_logins == {}
    assert_no_secrets(fake, caplog, client, first, *later, fixed)
    assert "wrong-secret" not in caplog.text


async def test_bad_credentials_concurrent_requests_ask_once(
    session: aiohttp.ClientSession, fake: FakeYeastarP
) -> None:
    client = make_client(session, fake, client_secret="wrong-secret")
    result = await client.async_play([f"+49301234{n:03d}" for n in range(50)], "doorbell")
    assert result.accepted == []
    assert {type(err) for _, err in result.failures} == {VoicePromptAuthenticationError}
    assert len({id(err) for _, err in result.failures}) == 50
    assert [r.path for r in fake.requests] == ["get_token"]


async def test_secret_changed_while_connected(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens die and the secret was changed on the PBX: one refresh, one get_token, latched."""
    await client.play_prompt("1000", "doorbell")
    fake.client_secret = "rotated"
    fake.forget_tokens()

    err = await _error(client.play_prompt("1000", "doorbell"))

    assert type(err) is VoicePromptAuthenticationError
    assert [r.path for r in fake.requests] == [
        "get_token",
        PLAY,
        PLAY,
        "refresh_token",
        "get_token",
    ]
    await _error(client.system_information())
    assert len(fake.requests) == 5
    assert_no_secrets(fake, caplog, client, err)


@pytest.mark.parametrize(
    "reply",
    [
        {"errcode": -1, "errmsg": "FAILURE"},
        {"errcode": -1, "errmsg": "FAILURE", "invalid_param_list": "username"},
        {"errcode": -1, "invalid_param_list": [{"field": "number", "value": "1"}, "username"]},
    ],
)
async def test_failure_without_credential_fields_is_not_latched(
    client: YeastarPClient, fake: FakeYeastarP, reply: dict[str, Any]
) -> None:
    fake.fail_next["get_token"] = [reply]
    err = await _error(client.system_information())
    assert type(err) is VoicePromptRequestError
    assert err.code == "-1"
    assert await client.system_information()
    assert fake.token_requests == 2


# ------------------------------------------------------------------ IP block


async def test_ip_blocked_after_five_failed_logins(
    session: aiohttp.ClientSession,
    fake: FakeYeastarP,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """5 refused logins (5 clients) block the address; the client then waits 10 minutes."""
    for _ in range(MAX_LOGIN_FAILURES):
        err = await _error(make_client(session, fake, client_secret="wrong").get_token())
        assert type(err) is VoicePromptAuthenticationError
    assert fake.blocked_ips

    client = make_client(session, fake)
    blocked = await _error(client.play_prompt("1000", "doorbell"))

    assert type(blocked) is VoicePromptIPBlockedError
    assert blocked.code == "70004"
    assert blocked.target == "1000"
    assert "Blocked IPs" in str(blocked)
    assert fake.requests[-1].reply == {"errcode": 70004, "errmsg": "ACCOUNT IP BLOCKED"}
    sent = len(fake.requests)
    assert sent == MAX_LOGIN_FAILURES + 1
    assert client.diagnostics()["blocked_for_seconds"] == 600.0

    # Inside the 10 minutes nothing is sent, whatever is asked.
    freezer.tick(LOCKOUT - timedelta(seconds=1))
    for request in (
        client.play_prompt("1001", "doorbell"),
        client.system_information(),
        client.get_token(),
        client.refresh_token(),
        client.upload_prompt("vp_x", WAV, content_type="audio/wav"),
    ):
        assert type(await _error(request)) is VoicePromptIPBlockedError
    assert len(fake.requests) == sent

    # After them, one try; the PBX still blocks (until an admin lifts it): 10 more minutes.
    freezer.tick(timedelta(seconds=2))
    assert type(await _error(client.system_information())) is VoicePromptIPBlockedError
    assert len(fake.requests) == sent + 1
    assert type(await _error(client.system_information())) is VoicePromptIPBlockedError
    assert len(fake.requests) == sent + 1

    fake.unblock_all()
    freezer.tick(LOCKOUT + timedelta(seconds=1))
    assert (await client.system_information()).serial == fake.serial
    assert client.diagnostics()["blocked_for_seconds"] == 0.0
    assert_no_secrets(fake, caplog, client, blocked)


async def test_ip_block_reported_on_any_request(client: YeastarPClient, fake: FakeYeastarP) -> None:
    await client.get_token()
    fake.fail_next[PLAY] = [70004]

    err = await _error(client.play_prompt("1000", "doorbell"))

    assert type(err) is VoicePromptIPBlockedError
    sent = len(fake.requests)
    assert type(await _error(client.system_information())) is VoicePromptIPBlockedError
    await client.async_close()  # no del_token while blocked
    assert len(fake.requests) == sent
    assert client.diagnostics()["has_token"] is False


async def test_block_during_a_refresh_gets_no_new_token(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory
) -> None:
    await client.get_token()
    freezer.tick(timedelta(minutes=26))
    fake.block_ip()

    err = await _error(client.play_prompt("1000", "doorbell"))

    assert type(err) is VoicePromptIPBlockedError
    assert [r.path for r in fake.requests] == ["get_token", "refresh_token"]


async def test_fake_block_can_expire_by_itself(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory
) -> None:
    fake.block_ip(seconds=300)
    assert type(await _error(client.get_token())) is VoicePromptIPBlockedError
    freezer.tick(LOCKOUT)
    assert await client.get_token()
    assert fake.blocked_ips == {}


# ------------------------------------------------------------------ API disabled


async def test_api_disabled(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    fake.api_enabled = False

    err = await _error(client.system_information())

    assert type(err) is VoicePromptApiDisabledError
    assert isinstance(err, VoicePromptRequestError)
    assert err.code == "70123"
    assert "Integrations > API" in str(err)
    # Not latched: once enabled it works.
    fake.api_enabled = True
    assert (await client.system_information()).model == "Yeastar P550"
    assert_no_secrets(fake, caplog, client, err)


async def test_api_disabled_during_a_refresh_gets_no_new_token(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory
) -> None:
    await client.get_token()
    freezer.tick(timedelta(minutes=26))
    fake.api_enabled = False

    err = await _error(client.play_prompt("1000", "doorbell"))

    assert type(err) is VoicePromptApiDisabledError
    assert [r.path for r in fake.requests] == ["get_token", "refresh_token"]


@pytest.mark.parametrize("reply", [{"errcode": 0}, -2, 40001, 60101])
async def test_refresh_failing_for_other_reasons_asks_for_a_new_token(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory, reply: Any
) -> None:
    """A refresh answered without a token or with an errcode but 70004/70123: get_token."""
    await client.get_token()
    freezer.tick(timedelta(minutes=26))
    fake.fail_next["refresh_token"] = [reply]

    await client.play_prompt("1000", "doorbell")

    assert [r.path for r in fake.requests] == ["get_token", "refresh_token", "get_token", PLAY]


@pytest.mark.parametrize("fault", ["hang", "drop_connection"])
async def test_refresh_cut_off_is_not_followed_by_get_token(
    session: aiohttp.ClientSession, fake: FakeYeastarP, fault: str
) -> None:
    """A network failure would hit get_token too: it is raised, not retried."""
    client = make_client(session, fake, request_timeout=0.5)
    await client.get_token()
    setattr(fake, fault, True)

    err = await _error(client.refresh_token())

    assert isinstance(err, VoicePromptConnectionError)
    assert {r.path for r in fake.requests} == {"get_token", "refresh_token"}
    assert fake.token_requests == 1


# ------------------------------------------------------------------ errcodes


def test_errcode_table_is_the_documented_one() -> None:
    assert set(ERRORS) == set(EXPECTED_CLASSES) == set(ERROR_CODES)
    for code, (cls, _) in ERRORS.items():
        assert cls is EXPECTED_CLASSES[code], code
    assert issubclass(VoicePromptApiDisabledError, VoicePromptRequestError)


@pytest.mark.parametrize("code", sorted(set(EXPECTED_CLASSES) - {10004}))
async def test_every_errcode_mapped(
    client: YeastarPClient,
    fake: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
    code: int,
) -> None:
    await client.get_token()
    fake.fail_next[PLAY] = [code]

    err = await _error(client.play_prompt("1000", ["doorbell", "wakeup"]))

    assert type(err) is EXPECTED_CLASSES[code]
    assert err.code == str(code)
    assert err.target == "1000"
    text = str(err)
    assert text.startswith("Playing doorbell+wakeup to 1000 failed: ")
    assert "127.0.0.1" in text
    assert text.endswith(f"(errcode {code})")
    assert "{" not in text
    # One request, no retry, no new token.
    (play,) = fake.calls(PLAY)
    assert play.reply == {"errcode": code, "errmsg": ERRMSG[code]}
    assert fake.token_requests == 1
    assert f"127.0.0.1 call/play_prompt failed with errcode {code}" in caplog.text
    assert_no_secrets(fake, caplog, client, err)


async def test_unknown_errcode_keeps_its_number(client: YeastarPClient, fake: FakeYeastarP) -> None:
    fake.fail_next[PLAY] = [70516]
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert type(err) is VoicePromptRequestError
    assert err.code == "70516"
    assert str(err) == (
        "Playing doorbell to 1000 failed: 127.0.0.1 refused the request (errcode 70516)"
    )


async def test_invalid_param_list_names_fields_not_values(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next[PLAY] = [
        {
            "errcode": 40002,
            "errmsg": "PARAMETER ERROR",
            "invalid_param_list": [
                {"field": "volume", "value": "echoed-input-value"},
                {"field": "count", "validation_type": "range"},
                {"value": "no field"},
            ],
        }
    ]
    err = await _error(client.play_prompt("1000", "doorbell", volume=5, count=2))
    assert type(err) is VoicePromptInputError
    assert str(err) == (
        "Playing doorbell to 1000 failed: 127.0.0.1 refused a parameter of the request "
        "(fields volume, count) (errcode 40002)"
    )
    assert "echoed-input-value" not in caplog.text


@pytest.mark.parametrize(
    ("number", "prompts", "kwargs", "field"),
    [
        ("4242", "doorbell", {}, "number"),
        ("1000", "not_uploaded", {}, "prompts"),
        ("1000", "doorbell+Doorbell", {}, "prompts"),
        ("+4930123456", "doorbell", {"dial_permission": "1099"}, "dial_permission"),
    ],
)
async def test_fake_refuses_unknown_data(
    client: YeastarPClient,
    fake: FakeYeastarP,
    number: str,
    prompts: str,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    err = await _error(client.play_prompt(number, prompts, **kwargs))
    assert type(err) is VoicePromptInputError
    assert err.code == "60001"
    assert err.target == number
    assert f"(field {field})" in str(err)
    assert "Custom Prompt" in str(err)


@pytest.mark.parametrize(
    ("errcode", "status"),
    [(1, YeastarPStatus.PARTIAL_SUCCESS), (2, YeastarPStatus.PROCESSING)],
)
async def test_partial_success_and_processing_are_accepted(
    client: YeastarPClient, fake: FakeYeastarP, errcode: int, status: YeastarPStatus
) -> None:
    fake.reply_override[PLAY] = {"errcode": errcode, "errmsg": str(status)}
    playback = await client.play_prompt("1000", "doorbell")
    assert playback.status is status


def test_error_for() -> None:
    err = error_for(-1, "pbx", fields=["username or password"], action="playing x to 1")
    assert type(err) is VoicePromptAuthenticationError
    assert (
        str(err) == "Playing x to 1 failed: pbx refused the Client ID or Client Secret (errcode -1)"
    )
    assert str(error_for(40001, "pbx", fields=["body"])) == (
        "pbx found a syntax error in the request (field body) (errcode 40001)"
    )
    assert type(error_for(12345, "pbx")) is VoicePromptRequestError


# ------------------------------------------------------------------ User-Agent


async def test_user_agent_on_every_request(
    client: YeastarPClient, fake: FakeYeastarP, freezer: FrozenDateTimeFactory
) -> None:
    await client.system_information()
    await client.play_prompt("1000", "doorbell")
    await client.upload_prompt("vp_ua", WAV, content_type="audio/wav")
    freezer.tick(timedelta(minutes=26))
    await client.play_prompt("1000", "vp_ua")
    await client.async_close()

    paths = [r.path for r in fake.requests]
    assert paths == [
        "get_token",
        "system/information",
        PLAY,
        UPLOAD,
        "refresh_token",
        PLAY,
        "del_token",
    ]
    assert {r.user_agent for r in fake.requests} == {USER_AGENT}


async def test_fake_refuses_a_request_without_user_agent(
    fake: FakeYeastarP, session: aiohttp.ClientSession
) -> None:
    """What the fake answers without the header (the docs say the PBX needs it)."""
    async with session.post(
        fake.base_url + "get_token",
        json={"username": CLIENT_ID, "password": CLIENT_SECRET},
        skip_auto_headers=["User-Agent"],
        ssl=False,
    ) as response:
        assert response.status == 403
        assert await response.text() == "A User-Agent header is required"
    assert fake.requests[0].user_agent is None
    assert fake.grants == []


# ------------------------------------------------------------------ play_prompt


async def test_play_prompt_sends_the_documented_fields(
    client: YeastarPClient, fake: FakeYeastarP
) -> None:
    playback = await client.play_prompt(
        "1000",
        ["doorbell", "wakeup"],
        count=3,
        volume=20,
        auto_answer=True,
        dial_permission="1001",
    )
    await client.play_prompt(1001, "doorbell+lunch_ready")

    full, plain = fake.calls(PLAY)
    assert full.body == {
        "number": "1000",
        "prompts": ["doorbell", "wakeup"],
        "count": 3,
        "volume": 20,
        "auto_answer": "yes",
        "dial_permission": "1001",
    }
    assert plain.body == {
        "number": "1001",
        "prompts": ["doorbell", "lunch_ready"],
        "auto_answer": "no",
    }
    assert playback == YeastarPPlayback(
        number="1000",
        prompts=("doorbell", "wakeup"),
        count=3,
        volume=20,
        auto_answer=True,
        dial_permission="1001",
        status=YeastarPStatus.SUCCESS,
    )


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("1000", "1000"),
        (1000, "1000"),
        (" 1001 ", "1001"),
        ("6300", "6300"),  # paging group
        ("6301", "6301"),  # intercom group
        ("+4930123456", "+4930123456"),
        ("004930123456", "004930123456"),
        ("5503301", "5503301"),
        ("+" + "1" * 32, "+" + "1" * 32),
    ],
)
async def test_number_forms(
    client: YeastarPClient, fake: FakeYeastarP, number: str | int, expected: str
) -> None:
    assert (await client.play_prompt(number, "doorbell")).number == expected
    assert fake.calls(PLAY)[0].body["number"] == expected


@pytest.mark.parametrize(
    "name",
    ["Türklingel", "front door", "wake-up_call-2", "x" * MAX_PROMPT_NAME, "门铃", "12345"],
)
async def test_prompt_names_accepted(client: YeastarPClient, fake: FakeYeastarP, name: str) -> None:
    fake.add_prompt(name)
    assert (await client.play_prompt("1000", [f" {name} "])).prompts == (name,)
    assert fake.calls(PLAY)[0].body["prompts"] == [name]


@pytest.mark.parametrize(
    ("kwargs", "sent"),
    [
        ({"count": 1}, {"count": 1}),
        ({"count": MAX_COUNT}, {"count": MAX_COUNT}),
        ({"volume": 0}, {"volume": 0}),
        ({"volume": 20}, {"volume": 20}),
        ({"dial_permission": " 1002 "}, {"dial_permission": "1002"}),
        ({"dial_permission": 1003}, {"dial_permission": "1003"}),
    ],
)
async def test_option_bounds_accepted(
    client: YeastarPClient, fake: FakeYeastarP, kwargs: dict[str, Any], sent: Any
) -> None:
    await client.play_prompt("+4930123456", "doorbell", **kwargs)
    assert fake.calls(PLAY)[0].body == {
        "number": "+4930123456",
        "prompts": ["doorbell"],
        "auto_answer": "no",
        **sent,
    }


REFUSED: list[tuple[Any, Any, dict[str, Any], str]] = [
    ("", "doorbell", {}, "is not a number to call"),
    ("abc", "doorbell", {}, "is not a number to call"),
    ("10 00", "doorbell", {}, "is not a number to call"),
    ("1000,1001", "doorbell", {}, "is not a number to call"),
    ("++491", "doorbell", {}, "is not a number to call"),
    ("49+1", "doorbell", {}, "is not a number to call"),
    ("+", "doorbell", {}, "is not a number to call"),
    ("1" * 33, "doorbell", {}, "is not a number to call"),
    ("\u0661\u0660\u0660\u0660", "doorbell", {}, "is not a number to call"),
    (True, "doorbell", {}, "is not a number to call"),
    (1000.0, "doorbell", {}, "is not a number to call"),
    (None, "doorbell", {}, "is not a number to call"),
    ("1000", "", {}, "No prompt was given"),
    ("1000", [], {}, "No prompt was given"),
    ("1000", [""], {}, "No prompt was given"),
    ("1000", ("",), {}, "No prompt was given"),
    ("1000", "a+", {}, "A prompt name is empty"),
    ("1000", ["a", "  "], {}, "A prompt name is empty"),
    ("1000", "bad.name", {}, "is not a valid Custom Prompt name"),
    ("1000", ["bad/name"], {}, "is not a valid Custom Prompt name"),
    ("1000", ["semi;colon"], {}, "is not a valid Custom Prompt name"),
    ("1000", ["new\nline"], {}, "is not a valid Custom Prompt name"),
    ("1000", ["bell\U0001f514"], {}, "is not a valid Custom Prompt name"),
    ("1000", ["x" * (MAX_PROMPT_NAME + 1)], {}, "is not a valid Custom Prompt name"),
    ("1000", [1], {}, "A prompt name must be text"),
    ("1000", None, {}, "The prompts must be a name or a list of names"),
    ("1000", ["p"] * (MAX_PROMPTS + 1), {}, f"At most {MAX_PROMPTS} prompts"),
    (
        "1000",
        "doorbell",
        {"count": 0},
        "The number of times to play the prompts must be a whole number from 1 to 10",
    ),
    (
        "1000",
        "doorbell",
        {"count": -1},
        "The number of times to play the prompts must be a whole number from 1 to 10",
    ),
    (
        "1000",
        "doorbell",
        {"count": MAX_COUNT + 1},
        "The number of times to play the prompts must be a whole number",
    ),
    (
        "1000",
        "doorbell",
        {"count": True},
        "The number of times to play the prompts must be a whole number",
    ),
    (
        "1000",
        "doorbell",
        {"count": 1.5},
        "The number of times to play the prompts must be a whole number",
    ),
    (
        "1000",
        "doorbell",
        {"count": "2"},
        "The number of times to play the prompts must be a whole number",
    ),
    ("1000", "doorbell", {"volume": -1}, "The volume must be a whole number from 0 to 20"),
    ("1000", "doorbell", {"volume": 21}, "The volume must be a whole number from 0 to 20"),
    ("1000", "doorbell", {"volume": False}, "The volume must be a whole number"),
    ("1000", "doorbell", {"volume": 2.5}, "The volume must be a whole number"),
    ("1000", "doorbell", {"volume": "10"}, "The volume must be a whole number"),
    ("1000", "doorbell", {"auto_answer": "yes"}, "auto_answer must be true or false"),
    ("1000", "doorbell", {"auto_answer": 1}, "auto_answer must be true or false"),
    ("1000", "doorbell", {"dial_permission": ""}, "is not an extension number"),
    ("1000", "doorbell", {"dial_permission": "+491"}, "is not an extension number"),
    ("1000", "doorbell", {"dial_permission": "abc"}, "is not an extension number"),
    ("1000", "doorbell", {"dial_permission": True}, "is not an extension number"),
    ("1000", "doorbell", {"dial_permission": ["1000"]}, "is not an extension number"),
]


@pytest.mark.parametrize(("number", "prompts", "kwargs", "message"), REFUSED)
async def test_play_prompt_refused_before_sending(
    client: YeastarPClient,
    fake: FakeYeastarP,
    number: Any,
    prompts: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    err = await _error(client.play_prompt(number, prompts, **kwargs))
    assert type(err) is VoicePromptInputError
    assert err.code is None
    assert message in str(err)
    assert len(str(err)) < 200
    assert fake.requests == []


@pytest.mark.parametrize(("number", "prompts", "kwargs", "message"), REFUSED[12:])
async def test_async_play_refused_before_sending(
    client: YeastarPClient,
    fake: FakeYeastarP,
    number: Any,
    prompts: Any,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    err = await _error(client.async_play(["1000", "1001"], prompts, **kwargs))
    assert type(err) is VoicePromptInputError
    assert message in str(err)
    assert fake.requests == []


def test_normalize_prompts() -> None:
    assert normalize_prompts("a+b") == ["a", "b"]
    assert normalize_prompts(("a", " b ")) == ["a", "b"]
    assert normalize_prompts(["p"] * MAX_PROMPTS) == ["p"] * MAX_PROMPTS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000", ["1000"]),
        (1000, ["1000"]),
        ("1000, 1001;6300", ["1000", "1001", "6300"]),
        ("1000,,+4930123456,", ["1000", "+4930123456"]),
        (["1000", 1001, " 1000 ", "", "  "], ["1000", "1001"]),
        ((str(n) for n in range(3)), None),
    ],
)
def test_normalize_numbers(value: Any, expected: list[str] | None) -> None:
    if expected is None:
        with pytest.raises(VoicePromptInputError):
            normalize_numbers(value)
    else:
        assert normalize_numbers(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "No number was given"),
        (",", "No number was given"),
        ([], "No number was given"),
        ([""], "No number was given"),
        (["1000", "abc"], "abc is not a number to call"),
        (["1000", None], "None is not a number to call"),
        ([True], "True is not a number to call"),
        (True, "True is not a number to call"),
        ({"1000"}, "is not a number to call"),
        (b"1000", "is not a number to call"),
        ([str(n) for n in range(MAX_NUMBERS + 1)], f"At most {MAX_NUMBERS} numbers"),
    ],
)
async def test_async_play_numbers_refused_before_sending(
    client: YeastarPClient, fake: FakeYeastarP, value: Any, message: str
) -> None:
    err = await _error(client.async_play(value, "doorbell"))
    assert type(err) is VoicePromptInputError
    assert message in str(err)
    assert fake.requests == []


# ------------------------------------------------------------------ several numbers


async def test_async_play_partial_failure(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    result = await client.async_play(
        ["1000", "4242", "6300", "+4930123456", "1000"],
        ["doorbell", "wakeup"],
        count=2,
        volume=7,
        auto_answer=True,
        dial_permission="1001",
    )

    assert [p.number for p in result.accepted] == ["1000", "6300", "+4930123456"]
    assert all(
        (p.prompts, p.count, p.volume, p.auto_answer, p.dial_permission)
        == (("doorbell", "wakeup"), 2, 7, True, "1001")
        for p in result.accepted
    )
    ((number, err),) = result.failures
    assert number == "4242"
    assert type(err) is VoicePromptInputError
    assert err.code == "60001"
    assert err.target == "4242"
    assert str(err).startswith("Playing doorbell+wakeup to 4242 failed: ")
    plays = fake.calls(PLAY)
    assert sorted(r.body["number"] for r in plays) == ["+4930123456", "1000", "4242", "6300"]
    assert all(r.body["count"] == 2 and r.body["volume"] == 7 for r in plays)
    assert fake.token_requests == 1
    assert_no_secrets(fake, caplog, client, err)


async def test_async_play_failures_are_separate_errors(
    client: YeastarPClient, fake: FakeYeastarP
) -> None:
    await client.get_token()
    fake.fail_next[PLAY] = [70082, 70082]
    result = await client.async_play(["1000", "1001", "1002"], "doorbell")
    assert len(result.accepted) == 1
    assert [type(err) for _, err in result.failures] == [VoicePromptRequestError] * 2
    assert {err.target for _, err in result.failures} == {n for n, _ in result.failures}


async def test_async_play_keeps_at_most_twenty_requests_in_flight(
    fake: FakeYeastarP,
) -> None:
    in_flight = peak = 0

    async def started(*_: object) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    async def ended(*_: object) -> None:
        nonlocal in_flight
        in_flight -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
        client = make_client(traced, fake)
        await client.get_token()
        fake.latency = 0.1
        result = await client.async_play([f"+49301234{n:03d}" for n in range(60)], "doorbell")

    assert len(result.accepted) == 60
    assert peak == MAX_IN_FLIGHT


# ------------------------------------------------------------------ upload


async def test_upload_a_new_prompt(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    upload = await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")

    assert upload == YeastarPUpload("vp_hello", uploaded=True, existed=False, origin=None)
    (request,) = fake.calls(UPLOAD)
    assert request.method == "POST"
    assert request.token == tokens_issued(fake)[0]
    assert request.body == {
        "file": {"filename": "vp_hello.wav", "content_type": "audio/wav", "size": len(WAV)},
        "is_check": "ask",
    }
    assert fake.uploads == ["vp_hello"]
    assert fake.uploaded_data["vp_hello"] == WAV
    await client.play_prompt("1000", "vp_hello")
    assert client.diagnostics()["known_prompts"] == 1
    assert_no_secrets(fake, caplog, client)


async def test_upload_same_name_twice_uploads_once(
    session: aiohttp.ClientSession, fake: FakeYeastarP
) -> None:
    client = make_client(session, fake)
    first = await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    second = await client.upload_prompt("vp_hello", WAV, content_type="audio/x-wav")

    assert first.uploaded is True
    assert second == YeastarPUpload("vp_hello", False, True, PromptOrigin.RECORD)
    assert len(fake.calls(UPLOAD)) == 1
    assert fake.uploads == ["vp_hello"]

    # Another client (a restart) asks the PBX, which keeps the prompt it has.
    other = make_client(session, fake)
    third = await other.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    fourth = await other.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    assert third == YeastarPUpload("vp_hello", False, True, PromptOrigin.RECORD)
    assert fourth == third
    assert len(fake.calls(UPLOAD)) == 2
    assert fake.uploads == ["vp_hello"]


async def test_concurrent_uploads_of_one_name_send_one(
    client: YeastarPClient, fake: FakeYeastarP
) -> None:
    """Ten actions speaking the same new message at once: one upload, one outcome for all."""
    fake.latency = 0.05  # all ten are waiting while the first upload is on its way

    uploads = await asyncio.gather(
        *(client.upload_prompt("vp_hello", WAV, content_type="audio/wav") for _ in range(10))
    )

    assert len(fake.calls(UPLOAD)) == 1
    assert set(uploads) == {YeastarPUpload("vp_hello", uploaded=True, existed=False)}
    assert fake.uploads == ["vp_hello"]


@pytest.mark.parametrize(
    ("name", "origin"),
    [
        ("wakeup", PromptOrigin.TTS),
        ("alarm", PromptOrigin.SPECIFY),
        ("doorbell", PromptOrigin.RECORD),
    ],
)
async def test_upload_reuses_a_prompt_the_pbx_has(
    client: YeastarPClient, fake: FakeYeastarP, name: str, origin: PromptOrigin
) -> None:
    upload = await client.upload_prompt(name, MP3, content_type="audio/mpeg")
    assert upload == YeastarPUpload(name, uploaded=False, existed=True, origin=origin)
    (request,) = fake.calls(UPLOAD)
    assert request.reply == {"errcode": 0, "errmsg": "SUCCESS", "exist_type": str(origin)}
    assert fake.uploads == []


async def test_upload_overwrite_forces(client: YeastarPClient, fake: FakeYeastarP) -> None:
    await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    replaced = await client.upload_prompt(
        "vp_hello", MP3, content_type=PromptFormat.MP3, overwrite=True
    )
    assert replaced == YeastarPUpload("vp_hello", uploaded=True, existed=False)
    assert [r.body["is_check"] for r in fake.calls(UPLOAD)] == ["ask", "force"]
    assert fake.calls(UPLOAD)[1].body["file"]["filename"] == "vp_hello.mp3"
    assert fake.uploads == ["vp_hello", "vp_hello"]
    assert fake.uploaded_data["vp_hello"] == MP3


async def test_upload_unknown_exist_type_still_means_it_exists(
    client: YeastarPClient, fake: FakeYeastarP
) -> None:
    fake.reply_override[UPLOAD] = {"errcode": 0, "errmsg": "SUCCESS", "exist_type": "cloud"}
    upload = await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    assert upload == YeastarPUpload("vp_hello", uploaded=False, existed=True, origin=None)


@pytest.mark.parametrize(
    ("data", "content_type", "filename", "sent_type"),
    [
        (WAV, "audio/wav", "vp_a.wav", "audio/wav"),
        (WAV, "Audio/X-WAV; codecs=1", "vp_a.wav", "audio/wav"),
        (WAV, PromptFormat.WAV, "vp_a.wav", "audio/wav"),
        (MP3, "audio/mpeg", "vp_a.mp3", "audio/mpeg"),
        (MP3_FRAME, "audio/mp3", "vp_a.mp3", "audio/mpeg"),
        (GSM, "audio/gsm", "vp_a.gsm", "audio/gsm"),
        (bytearray(GSM), "audio/x-gsm", "vp_a.gsm", "audio/gsm"),
    ],
)
async def test_upload_formats(
    client: YeastarPClient,
    fake: FakeYeastarP,
    data: bytes,
    content_type: str,
    filename: str,
    sent_type: str,
) -> None:
    assert (await client.upload_prompt("vp_a", data, content_type=content_type)).uploaded
    (request,) = fake.calls(UPLOAD)
    assert request.body["file"] == {
        "filename": filename,
        "content_type": sent_type,
        "size": len(data),
    }
    assert fake.uploaded_data["vp_a"] == bytes(data)


async def test_upload_name_is_sent_as_it_is(client: YeastarPClient, fake: FakeYeastarP) -> None:
    """A name in any script reaches the PBX unquoted, as a browser would send it."""
    await client.upload_prompt("Türklingel vorne", WAV, content_type="audio/wav")
    assert fake.calls(UPLOAD)[0].body["file"]["filename"] == "Türklingel vorne.wav"
    assert fake.uploads == ["Türklingel vorne"]
    await client.play_prompt("1000", "Türklingel vorne")


async def test_upload_of_exactly_8_mb(client: YeastarPClient, fake: FakeYeastarP) -> None:
    data = WAV + bytes(MAX_PROMPT_BYTES - len(WAV))
    assert (await client.upload_prompt("vp_big", data, content_type="audio/wav")).uploaded
    assert fake.calls(UPLOAD)[0].body["file"]["size"] == MAX_PROMPT_BYTES


@pytest.mark.parametrize(
    ("name", "data", "content_type", "message"),
    [
        ("vp_big", WAV + bytes(MAX_PROMPT_BYTES - len(WAV) + 1), "audio/wav", "at most 8000000"),
        ("vp_a", b"", "audio/wav", "has no audio data"),
        ("vp_a", "RIFF", "audio/wav", "has no audio data"),
        ("vp_a", WAV, "audio/ogg", "audio/ogg is not an audio type the PBX takes"),
        ("vp_a", WAV, "video/mp4", "is not an audio type"),
        ("vp_a", WAV, "", "This is not an audio type"),
        ("vp_a", MP3, "audio/wav", "is not WAV"),
        ("vp_a", WAV, "audio/mpeg", "is not MP3"),
        ("vp_a", b"\xff", "audio/mpeg", "is not MP3"),
        ("vp_a", GSM[:-1], "audio/gsm", "is not GSM"),
        ("vp_a", bytes(33), "audio/gsm", "is not GSM"),
        ("vp.a", WAV, "audio/wav", "is not a valid Custom Prompt name"),
        ("", WAV, "audio/wav", "A prompt name is empty"),
        (None, WAV, "audio/wav", "A prompt name must be text"),
    ],
)
async def test_upload_refused_before_sending(
    client: YeastarPClient,
    fake: FakeYeastarP,
    name: Any,
    data: Any,
    content_type: str,
    message: str,
) -> None:
    err = await _error(client.upload_prompt(name, data, content_type=content_type))
    assert type(err) is VoicePromptInputError
    assert message in str(err)
    assert fake.requests == []


async def test_upload_when_the_pbx_is_full(client: YeastarPClient, fake: FakeYeastarP) -> None:
    fake.prompt_capacity = len(fake.prompts)
    err = await _error(client.upload_prompt("vp_new", WAV, content_type="audio/wav"))
    assert type(err) is VoicePromptRequestError
    assert err.code == "60002"
    assert str(err).startswith("Uploading prompt vp_new failed: ")
    assert "Custom Prompt capacity" in str(err)
    # A name it has is still reused.
    assert (await client.upload_prompt("doorbell", WAV, content_type="audio/wav")).existed
    assert fake.uploads == []


async def test_prompt_deleted_on_the_pbx_is_uploaded_again(
    client: YeastarPClient, fake: FakeYeastarP
) -> None:
    await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    fake.remove_prompt("vp_hello")

    err = await _error(client.play_prompt("1000", "vp_hello"))
    assert err.code == "60001"
    again = await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")

    assert again.uploaded is True
    assert fake.uploads == ["vp_hello", "vp_hello"]
    await client.play_prompt("1000", "vp_hello")


async def test_fake_upload_checks_what_the_client_checks_first(
    session: aiohttp.ClientSession, fake: FakeYeastarP
) -> None:
    """The fake refuses what the PBX would, for clients that do not check first."""
    client = make_client(session, fake)
    token = await client.get_token()

    async def upload(form: aiohttp.FormData | str) -> Any:
        async with session.post(
            fake.base_url + UPLOAD, params={"access_token": token}, data=form, ssl=False
        ) as response:
            return await response.json()

    def form(filename: str, data: bytes, is_check: str | None = "ask") -> aiohttp.FormData:
        body = aiohttp.FormData()
        body.add_field("file", data, filename=filename, content_type="audio/wav")
        if is_check is not None:
            body.add_field("is_check", is_check)
        return body

    too_big = await upload(form("big.wav", bytes(MAX_PROMPT_BYTES + 1)))
    assert too_big == {"errcode": 40004, "errmsg": "FILE SIZE EXCEEDED"}
    assert (await upload(form("/D:/prompt/demo.ogg", WAV)))["errcode"] == 40002
    assert (await upload(form("bad.name.wav", WAV)))["errcode"] == 40002
    assert (await upload(form("demo.wav", WAV, None)))["invalid_param_list"] == [
        {"field": "is_check", "validation_type": "format"}
    ]
    no_file = aiohttp.FormData(default_to_multipart=True)
    no_file.add_field("is_check", "force")
    no_file.add_field("dummy", "x")
    assert (await upload(no_file))["invalid_param_list"][0]["field"] == "file"
    assert (await upload("not multipart"))["errcode"] == 40001
    assert (await upload(form("/D:/prompt/demo.wav", WAV, "force")))["errcode"] == 0
    assert fake.uploads == ["demo"]


# ------------------------------------------------------------------ system information


async def test_system_information(client: YeastarPClient, fake: FakeYeastarP) -> None:
    info = await client.system_information()
    assert info == YeastarPSystemInfo(
        name="Yeastar P550 fake",
        model="Yeastar P550",
        serial="3631A2124123",
        hardware_version="P550 V1.0",
        firmware_version="37.20.0.21",
        system_time=info.system_time,
        uptime_seconds=info.uptime_seconds,
    )
    assert info.system_time is not None
    assert len(info.system_time) == len("2025/08/22 16:44:40")
    assert isinstance(info.uptime_seconds, int)
    (request,) = fake.calls("system/information")
    assert (request.method, request.body) == ("GET", None)


@pytest.mark.parametrize(
    ("data", "name", "model", "uptime"),
    [
        ({"sn": "X1", "model_name": "Yeastar P560"}, "Yeastar P560", "Yeastar P560", None),
        ({"sn": "X1", "up_time": "12"}, "Yeastar P-Series", None, None),
        ({"sn": "X1", "up_time": -1, "device_name": ""}, "Yeastar P-Series", None, None),
        ({"sn": 123, "up_time": 12, "device_name": "Office"}, "Office", None, 12),
    ],
)
async def test_system_information_sparse(
    client: YeastarPClient,
    fake: FakeYeastarP,
    data: dict[str, Any],
    name: str,
    model: str | None,
    uptime: int | None,
) -> None:
    fake.reply_override["system/information"] = {"errcode": 0, "data": data}
    info = await client.system_information()
    assert (info.name, info.model, info.serial, info.uptime_seconds) == (
        name,
        model,
        str(data["sn"]),
        uptime,
    )
    assert info.firmware_version is None


# ------------------------------------------------------------------ invalid replies


@pytest.mark.parametrize(
    ("path", "override", "detail"),
    [
        (PLAY, {"errmsg": "SUCCESS"}, "no errcode"),
        (PLAY, {"errcode": "0"}, "no errcode"),
        (PLAY, {"errcode": True}, "no errcode"),
        (PLAY, {"errcode": None}, "no errcode"),
        (PLAY, {"errcode": 0.0}, "no errcode"),
        (PLAY, "[0]", "not a JSON object"),
        (PLAY, '"SUCCESS"', "not a JSON object"),
        (PLAY, "", "not JSON"),
        (PLAY, "[" * 100_000 + "]" * 100_000, "not JSON"),
        ("get_token", {"errcode": 0}, "token reply without an access token"),
        ("get_token", {"errcode": 0, "access_token": ""}, "token reply without an access token"),
        ("get_token", {"errcode": 0, "access_token": 12}, "token reply without an access token"),
        ("system/information", {"errcode": 0}, "system information without a serial number"),
        (
            "system/information",
            {"errcode": 0, "data": {"sn": ""}},
            "system information without a serial number",
        ),
        (
            "system/information",
            {"errcode": 0, "data": "P550"},
            "system information without a serial number",
        ),
    ],
)
async def test_invalid_replies(
    client: YeastarPClient,
    fake: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
    path: str,
    override: dict[str, Any] | str,
    detail: str,
) -> None:
    fake.reply_override[path] = override
    if path == "system/information":
        request: Awaitable[object] = client.system_information()
    else:
        request = client.play_prompt("1000", "doorbell")
    err = await _error(request)
    assert type(err) is VoicePromptResponseError
    assert str(err) == (
        f"127.0.0.1 sent a reply that is not a valid Yeastar OpenAPI response ({detail})"
    )
    assert len(fake.calls(path)) == 1
    assert_no_secrets(fake, caplog, client, err)


@pytest.mark.parametrize("status", [500, 502, 403, 404, 302])
async def test_http_status(
    client: YeastarPClient,
    fake: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    await client.get_token()
    fake.http_status = status
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert type(err) is VoicePromptResponseError
    assert f"(HTTP status {status})" in str(err)
    assert err.target == "1000"
    # Not latched.
    fake.http_status = None
    await client.play_prompt("1000", "doorbell")
    assert fake.token_requests == 1
    assert_no_secrets(fake, caplog, client, err)


async def test_garbage_reply(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    fake.garbage = True
    err = await _error(client.system_information())
    assert type(err) is VoicePromptResponseError
    assert str(err).endswith("(not JSON)")
    assert_no_secrets(fake, caplog, client, err)


# ------------------------------------------------------------------ transport


async def test_connection_refused(
    session: aiohttp.ClientSession, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    closed = FakeYeastarP(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    await closed.start()
    port = closed.port
    await closed.close()
    client = YeastarPClient(
        session, "127.0.0.1", port=port, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert type(err) is VoicePromptConnectionError
    assert err.target == "1000"
    assert str(err) == "Cannot connect to 127.0.0.1 (connection refused)"
    assert err.__suppress_context__
    assert_no_secrets(closed, caplog, client, err)


async def test_timeout(
    session: aiohttp.ClientSession, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, fake, request_timeout=0.5)
    await client.get_token()
    fake.hang = True
    started = time.monotonic()
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert time.monotonic() - started < 2
    assert type(err) is VoicePromptTimeoutError
    assert isinstance(err, VoicePromptConnectionError)
    assert str(err) == "127.0.0.1 did not answer within 0.5 seconds"
    assert err.target == "1000"
    assert len(fake.calls(PLAY)) == 1
    assert_no_secrets(fake, caplog, client, err)


async def test_timeout_on_the_token_request(
    session: aiohttp.ClientSession, fake: FakeYeastarP
) -> None:
    fake.hang = True
    client = make_client(session, fake, request_timeout=0.3)
    assert type(await _error(client.system_information())) is VoicePromptTimeoutError
    assert fake.token_requests == 1
    fake.hang = False
    assert await client.system_information()
    assert fake.token_requests == 2


async def test_latency_below_the_timeout(
    session: aiohttp.ClientSession, fake: FakeYeastarP
) -> None:
    fake.latency = 0.2
    client = make_client(session, fake, request_timeout=2)
    assert await client.play_prompt("1000", "doorbell")


async def test_dropped_connection(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    await client.get_token()
    fake.drop_connection = True
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert type(err) is VoicePromptConnectionError
    assert err.__cause__ is None
    fake.drop_connection = False
    assert await client.play_prompt("1000", "doorbell")
    assert fake.token_requests == 1
    assert_no_secrets(fake, caplog, client, err)


async def test_redirect_loop_error_text_hides_the_token(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's TooManyRedirects text holds the URL, token and all: ours says why instead."""
    token = await client.get_token()
    fake.redirect_loop = True
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert type(err) is VoicePromptConnectionError
    assert str(err) == "Cannot connect to 127.0.0.1 (too many redirects)"
    assert token not in str(err)
    assert_no_secrets(fake, caplog, client, err)


async def test_closed_session(fake: FakeYeastarP) -> None:
    async with aiohttp.ClientSession() as closing:
        client = make_client(closing, fake)
    err = await _error(client.system_information())
    assert type(err) is VoicePromptConnectionError
    assert str(err) == "Cannot connect to 127.0.0.1: the HTTP session is closed"
    assert fake.requests == []


async def test_tls_self_signed_refused_when_verifying(
    tls_tolerance: None,
    session: aiohttp.ClientSession,
    fake: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(session, fake, verify_ssl=True)
    err = await _error(client.play_prompt("1000", "doorbell"))
    assert type(err) is VoicePromptSSLError
    assert isinstance(err, VoicePromptConnectionError)
    assert str(err) == "The TLS certificate of 127.0.0.1 was not accepted (self-signed certificate)"
    assert err.target == "1000"
    assert fake.requests == []
    assert_no_secrets(fake, caplog, client, err)


async def test_tls_trusted_certificate(
    fake: FakeYeastarP, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as trusting:
        client = make_client(trusting, fake, verify_ssl=True)
        info = await client.system_information()
        await client.play_prompt("1000", "doorbell")
        await client.async_close()
    assert info.serial == fake.serial
    assert client.diagnostics()["verify_ssl"] is True
    assert len(fake.calls("del_token")) == 1
    assert_no_secrets(fake, caplog, client)


# ------------------------------------------------------------------ close, repr, diagnostics


async def test_async_close_revokes_the_token(client: YeastarPClient, fake: FakeYeastarP) -> None:
    await client.async_close()  # no token yet: nothing to revoke
    assert fake.requests == []
    token = await client.get_token()

    await client.async_close()
    await client.async_close()

    (revoke,) = fake.calls("del_token")
    assert (revoke.method, revoke.token, revoke.body) == ("GET", token, None)
    assert fake.grants == []
    assert client.diagnostics()["has_token"] is False
    # The client can be used again afterwards.
    await client.system_information()
    assert fake.token_requests == 2


async def test_async_close_failure_is_only_logged(
    client: YeastarPClient, fake: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    await client.get_token()
    fake.fail_next["del_token"] = [-2]
    await client.async_close()
    assert "Revoking the token at 127.0.0.1 failed: " in caplog.text
    assert len(fake.calls("del_token")) == 1
    assert fake.token_requests == 1
    assert_no_secrets(fake, caplog, client)


async def test_repr_and_diagnostics_hold_no_secrets(
    client: YeastarPClient,
    fake: FakeYeastarP,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert repr(client) == f"YeastarPClient(host='127.0.0.1', port={fake.port}, has_token=False)"
    assert client.diagnostics() == {
        "host": "127.0.0.1",
        "port": fake.port,
        "verify_ssl": False,
        "certificate_mode": "none",
        "certificate_sha256": None,
        "has_token": False,
        "token_valid_for_seconds": None,
        "refresh_token_usable_for_seconds": None,
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
        "known_prompts": 0,
    }
    await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    freezer.tick(timedelta(minutes=10))

    assert repr(client) == f"YeastarPClient(host='127.0.0.1', port={fake.port}, has_token=True)"
    assert client.diagnostics() == {
        "host": "127.0.0.1",
        "port": fake.port,
        "verify_ssl": False,
        "certificate_mode": "none",
        "certificate_sha256": None,
        "has_token": True,
        "token_valid_for_seconds": 1200.0,
        "refresh_token_usable_for_seconds": 85500.0,
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
        "known_prompts": 1,
    }
    freezer.tick(timedelta(hours=25))
    assert client.diagnostics()["token_valid_for_seconds"] == 0.0
    assert client.diagnostics()["refresh_token_usable_for_seconds"] == 0.0
    for text in (repr(client), json.dumps(client.diagnostics())):
        assert CLIENT_ID not in text
    assert_no_secrets(fake, caplog, client)


async def test_secrets_never_logged_across_a_lifecycle(
    client: YeastarPClient,
    fake: FakeYeastarP,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Token, refresh, 10004, refused refresh, errors, revoke: all at DEBUG, none leaks."""
    errors: list[VoicePromptError] = []
    await client.play_prompt("1000", "doorbell")
    freezer.tick(timedelta(minutes=26))
    await client.play_prompt("1000", "doorbell")
    fake.fail_next[PLAY] = [10004, 10004]
    errors.append(await _error(client.play_prompt("1000", "doorbell")))
    fake.expire_refresh_tokens()
    await client.upload_prompt("vp_hello", WAV, content_type="audio/wav")
    errors.append(await _error(client.play_prompt("4242", "doorbell")))
    fake.redirect_loop = True
    errors.append(await _error(client.system_information()))
    fake.redirect_loop = False
    await client.async_close()

    assert (fake.token_requests, fake.refreshes) == (2, 3)
    assert len(issued_secrets(fake)) >= 7
    assert_no_secrets(fake, caplog, client, *errors)


async def test_fake_runs_as_a_program(session: aiohttp.ClientSession, socket_enabled: None) -> None:
    """``python -m tests.fakes.yeastar_p`` serves HTTPS and logs a line per request."""
    program = await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",
        "-m",
        "tests.fakes.yeastar_p",
        "--port",
        "0",
        cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert program.stdout is not None
    try:
        async with asyncio.timeout(30):
            banner = [(await program.stdout.readline()).decode()]
            while not banner[-1].startswith("Press Ctrl-C"):
                banner.append((await program.stdout.readline()).decode())
            port = int(banner[0].split(":")[2].split("/")[0])
            client = YeastarPClient(
                session,
                "127.0.0.1",
                port=port,
                client_id="vp-demo-client",
                client_secret="VoicePrompt-P-Secret1",
                verify_ssl=False,
            )
            await client.play_prompt("6300", "doorbell", volume=9)
            await client.async_close()
            program.send_signal(signal.SIGINT)
            rest = (await program.stdout.read()).decode().splitlines()
            assert await program.wait() == 0
    finally:
        if program.returncode is None:
            program.kill()
            await program.wait()
    assert banner[0].startswith("Fake Yeastar P-Series PBX listening on https://127.0.0.1:")
    assert "  Client ID: vp-demo-client  Client Secret: VoicePrompt-P-Secret1\n" in banner
    assert rest[0].startswith("POST get_token from 127.0.0.1 → 0 SUCCESS: access token ")
    assert rest[1:] == [
        "POST call/play_prompt from 127.0.0.1 → 0 SUCCESS: "
        "paging group 6300 rings, then hears doorbell (volume 9)",
        rest[2],
        "Fake Yeastar P-Series PBX stopped.",
    ]
    assert rest[2].startswith("GET del_token from 127.0.0.1 → 0 SUCCESS: access token ")


def test_client_needs_id_and_secret() -> None:
    session: Any = object()
    with pytest.raises(ValueError, match="Client ID and a Client Secret"):
        YeastarPClient(session, "pbx", client_id="", client_secret="x")
    with pytest.raises(ValueError, match="Client ID and a Client Secret"):
        YeastarPClient(session, "pbx", client_id="x", client_secret="")
    client = YeastarPClient(session, "::1", client_id="x", client_secret="y")
    assert client.web_url == "https://[::1]:443"
    assert YeastarPClient(
        session, "pbx.lan", port=8088, client_id="x", client_secret="y"
    ).web_url == ("https://pbx.lan:8088")
