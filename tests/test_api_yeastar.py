"""Tests for the Yeastar S-Series API client, against the real HTTPS fake PBX.

Nothing is mocked at function level: every request goes over TCP/TLS to the fake on
127.0.0.1. The only aiohttp extension points used are a resolver (DNS failure, a name
for 127.0.0.1) and a trace config (counting requests in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
import contextlib
import json
import logging
import os
from pathlib import Path
import re
import resource
import socket
import ssl
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
import pytest
from yarl import URL

from custom_components.voice_prompt.api import errors, yeastar
from custom_components.voice_prompt.api.errors import (
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
from custom_components.voice_prompt.api.yeastar import (
    ERRORS,
    KEEPALIVE_AFTER_IDLE,
    MAX_EXTENSIONS,
    MAX_PROMPT_LENGTH,
    MAX_PROMPTS,
    YeastarClient,
    YeastarDeviceInfo,
    YeastarExtension,
    normalize_extensions,
    normalize_prompts,
)
from tests.conftest import PASSWORD, SERIAL
from tests.fakes.yeastar import FakeYeastarPBX

PLAY = "extension/playprompt"
LOGGER_NAME = "custom_components.voice_prompt"
PASSWORD_MD5 = FakeYeastarPBX.md5(PASSWORD)
USER_TOKEN = "0123456789abcdef0123456789abcdef"
TOKEN_ERRNOS = ("20004", "20005", "20006")
LOGIN_ERRNOS = ("20002", "20003")
INPUT_ERRNOS = ("10004", "10006", "10011", "10023")


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every log record of the integration, down to DEBUG."""
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)


def make_client(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, **kwargs: Any
) -> YeastarClient:
    """A credentials-mode client for the fake (self-signed: no verification)."""
    options: dict[str, Any] = {
        "port": pbx.port,
        "username": "api",
        "password": PASSWORD,
        "verify_ssl": False,
    }
    options.update(kwargs)
    if "token" in kwargs:
        options.pop("password")
        options.pop("username")
    return YeastarClient(session, pbx.host, **options)


def issued_secrets(pbx: FakeYeastarPBX) -> set[str]:
    """The password, its MD5 and every token the fake issued or saw."""
    found = {PASSWORD, PASSWORD_MD5, USER_TOKEN, *pbx.tokens}
    for request in pbx.requests:
        if request.token:
            found.add(request.token)
        if isinstance(request.reply, dict) and isinstance(request.reply.get("token"), str):
            found.add(request.reply["token"])
    found.discard("")
    return found


def _texts(thing: object) -> Iterable[str]:
    if isinstance(thing, BaseException):
        yield str(thing)
        yield repr(thing)
        yield repr(thing.args)
        if isinstance(thing, VoicePromptError):
            yield repr(thing.placeholders)
            yield thing.message
    if isinstance(thing, YeastarClient):
        yield repr(thing)
        yield repr(thing.diagnostics())
        yield json.dumps(thing.diagnostics())
    yield repr(thing)


def assert_no_secrets(
    pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture, *things: object
) -> None:
    """Neither the password, its MD5, nor a token shows in errors, client or logs."""
    secret_values = issued_secrets(pbx)
    texts = [text for thing in things for text in _texts(thing)]
    for record in caplog.records:
        if record.name.startswith(LOGGER_NAME):
            texts.append(record.getMessage())
            texts.append(repr(record.args))
            if record.exc_text:
                texts.append(record.exc_text)
    for secret in secret_values:
        for text in texts:
            assert secret not in text, f"secret leaked into {text!r}"


def assert_plain_password_never_sent(pbx: FakeYeastarPBX) -> None:
    """The plain password is in no recorded request (path, token or body)."""
    for request in pbx.requests:
        assert PASSWORD not in request.path
        assert PASSWORD not in (request.token or "")
        assert PASSWORD not in json.dumps(request.body)


def login_tokens(pbx: FakeYeastarPBX) -> list[str]:
    """Tokens the fake handed out, in order."""
    return [
        r.reply["token"]
        for r in pbx.calls("login")
        if r.reply is not None and r.reply.get("status") == "Success"
    ]


class FailingResolver(AbstractResolver):
    """A resolver whose every lookup fails, as a dead DNS server would."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Fail like getaddrinfo does."""
        raise OSError(f"Name or service not known: {host}")

    async def close(self) -> None:
        """Nothing to release."""


class LoopbackResolver(AbstractResolver):
    """Resolve every name to 127.0.0.1 (no DNS traffic at all)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Answer 127.0.0.1 for any name."""
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        """Nothing to release."""


@contextlib.asynccontextmanager
async def server_handshake_failure_expected() -> AsyncIterator[asyncio.Event]:
    """Swallow the fake's own report of the TLS handshake the client broke off.

    With the loop in debug mode asyncio reports the server side of a refused handshake
    to the loop's exception handler, which the Home Assistant test plugin turns into a
    test error. Only that one report is swallowed; the event tells it arrived.
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    seen = asyncio.Event()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if str(context.get("message", "")).startswith(
            "Error on transport creation for incoming connection"
        ) and isinstance(exc, ConnectionError | ssl.SSLError):
            seen.set()
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
    try:
        yield seen
        if loop.get_debug():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await seen.wait()
    finally:
        loop.set_exception_handler(previous)


@pytest.fixture
async def token_client(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> AsyncGenerator[YeastarClient]:
    """A token-mode client whose token the fake knows (as if made on the PBX's web UI)."""
    pbx.tokens[USER_TOKEN] = pbx.now()
    client = make_client(session, pbx, token=USER_TOKEN)
    yield client
    await client.async_close()


# ------------------------------------------------------------------ login and tokens


async def test_login_sends_md5_port_and_username(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The login body carries the lowercase MD5, the report port and the username."""
    client = make_client(session, pbx)
    call_id = await client.play_prompt("1000", "hello111+queue1")

    assert call_id
    (login,) = pbx.calls("login")
    assert login.method == "POST"
    assert login.token is None
    assert login.body == {
        "username": "api",
        "password": PASSWORD_MD5,
        "port": "8260",
        "version": "1.0.2",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", login.body["password"])
    assert login.reply is not None
    assert login.reply["status"] == "Success"
    (play,) = pbx.calls(PLAY)
    assert play.token == login.reply["token"]
    assert play.body == {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"}
    assert play.reply == {"status": "Success", "callid": call_id}
    assert_plain_password_never_sent(pbx)
    assert "Logged in to 127.0.0.1" in caplog.text
    assert_no_secrets(pbx, caplog, client)


async def test_report_port_is_configurable(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx, report_port=9000)
    await client.device_info()
    assert pbx.calls("login")[0].body["port"] == "9000"


async def test_token_reused_across_requests(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    call_ids = [await client.play_prompt("1000", ["hello111"]) for _ in range(20)]

    assert len(set(call_ids)) == 20
    assert pbx.logins == 1
    (token,) = login_tokens(pbx)
    assert [r.token for r in pbx.calls(PLAY)] == [token] * 20
    assert client.stats.logins == 1
    assert client.stats.relogins == 0
    assert client.stats.requests == 21
    assert_plain_password_never_sent(pbx)
    assert_no_secrets(pbx, caplog, client)


async def test_autoanswer_yes(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    await client.play_prompt(1001, "doorbell", autoanswer=True)  # type: ignore[arg-type]
    assert pbx.calls(PLAY)[0].body == {"extid": "1001", "prompt": "doorbell", "autoanswer": "yes"}


async def test_single_flight_first_login(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """50 concurrent calls without a token log in exactly once."""
    client = make_client(session, pbx)
    call_ids = await asyncio.gather(*(client.play_prompt("1000", "hello111") for _ in range(50)))

    assert len(set(call_ids)) == 50
    assert pbx.logins == 1
    (token,) = login_tokens(pbx)
    assert {r.token for r in pbx.calls(PLAY)} == {token}
    assert len(pbx.calls(PLAY)) == 50
    assert_no_secrets(pbx, caplog, client)


async def test_single_flight_relogin_after_expiry(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake forgets all tokens; 50 concurrent calls re-login exactly once."""
    client = make_client(session, pbx)
    await client.play_prompt("1000", "hello111")
    pbx.expire_tokens()

    call_ids = await asyncio.gather(*(client.play_prompt("1001", "queue1") for _ in range(50)))

    assert len(call_ids) == 50
    assert all(call_ids)
    assert pbx.logins == 2
    assert client.stats.relogins == 1
    old, new = login_tokens(pbx)
    plays = pbx.calls(PLAY)[1:]
    refused = [r for r in plays if r.token == old]
    accepted = [r for r in plays if r.token == new]
    assert len(refused) == 50
    assert all(r.reply == {"status": "Failed", "errno": "20004"} for r in refused)
    assert len(accepted) == 50
    assert all(r.reply is not None and r.reply["status"] == "Success" for r in accepted)
    assert_no_secrets(pbx, caplog, client)


async def test_single_flight_relogin_with_requests_in_flight(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens die while 50 requests are on the wire: still one re-login, 50 successes."""
    client = make_client(session, pbx)
    await client.device_info()
    pbx.latency = 0.2
    calls = asyncio.gather(*(client.play_prompt("1000", "wakeup") for _ in range(50)))
    await asyncio.sleep(0.05)
    pbx.expire_tokens()
    call_ids = await calls

    assert len(set(call_ids)) == 50
    assert pbx.logins == 2
    assert client.stats.relogins == 1
    successes = [r for r in pbx.calls(PLAY) if r.reply and r.reply["status"] == "Success"]
    assert len(successes) == 50
    assert {r.token for r in successes} == {login_tokens(pbx)[1]}
    assert_no_secrets(pbx, caplog, client)


async def test_expire_every(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake kills tokens after every 5th request: one re-login each time, no failure."""
    pbx.expire_every = 5
    client = make_client(session, pbx)
    call_ids = [await client.play_prompt("1000", "lunch_ready") for _ in range(20)]

    assert len(set(call_ids)) == 20
    # Requests 1-5 on token 1, then 6-10, 11-15, 16-20 each after one re-login.
    assert pbx.logins == 4
    assert client.stats.relogins == 3
    assert len(set(login_tokens(pbx))) == 4
    refused = [r for r in pbx.calls(PLAY) if r.reply and r.reply["status"] == "Failed"]
    assert [r.reply["errno"] for r in refused if r.reply] == ["20004"] * 3
    assert_no_secrets(pbx, caplog, client)


@pytest.mark.parametrize("errno", TOKEN_ERRNOS)
async def test_token_error_relogins_once_and_retries(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    errno: str,
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    pbx.fail_next[PLAY] = [errno]

    call_id = await client.play_prompt("1000", "alarm")

    assert call_id
    assert pbx.logins == 2
    assert client.stats.relogins == 1
    first, retry = pbx.calls(PLAY)
    old, new = login_tokens(pbx)
    assert old != new
    assert first.token == old
    assert first.reply == {"status": "Failed", "errno": errno}
    assert retry.token == new
    assert retry.body == first.body
    assert retry.reply == {"status": "Success", "callid": call_id}
    assert_no_secrets(pbx, caplog, client)


@pytest.mark.parametrize("errno", TOKEN_ERRNOS)
async def test_token_refused_twice_is_a_request_error(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    errno: str,
) -> None:
    client = make_client(session, pbx)
    pbx.fail_next[PLAY] = [errno, errno]

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.play_prompt("1000", "alarm")

    err = exc_info.value
    assert type(err) is VoicePromptRequestError
    assert not isinstance(err, VoicePromptAuthenticationError)
    assert err.translation_key == "token_rejected_again"
    assert err.code == errno
    assert err.needs_new_credentials is False
    assert errno in str(err)
    assert err.placeholders["extension"] == "1000"
    assert err.placeholders["prompt"] == "alarm"
    assert pbx.logins == 2
    assert len(pbx.calls(PLAY)) == 2
    # Not latched: the next call works with the token it already has.
    assert await client.play_prompt("1000", "alarm")
    assert pbx.logins == 2
    assert_no_secrets(pbx, caplog, client, err)


async def test_wrong_password_latches(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    pbx.password = "other"
    client = make_client(session, pbx)

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.play_prompt("1000", "hello111")
    first = exc_info.value
    assert type(first) is VoicePromptAuthenticationError
    assert first.translation_key == "invalid_auth"
    assert first.code == "20003"
    assert first.needs_new_credentials is True
    assert first.placeholders["extension"] == "1000"
    assert pbx.logins == 1
    assert pbx.calls("login")[0].reply == {"status": "Failed", "errno": "20003"}

    later: list[VoicePromptError] = []
    for _ in range(20):
        with pytest.raises(VoicePromptAuthenticationError) as exc_info:
            await client.play_prompt("1000", "hello111")
        later.append(exc_info.value)
    with pytest.raises(VoicePromptAuthenticationError):
        await client.device_info()
    with pytest.raises(VoicePromptAuthenticationError):
        await client.extensions()

    assert all(e.translation_key == "invalid_auth" and e.needs_new_credentials for e in later)
    assert len(pbx.requests) == 1
    assert pbx.logins == 1
    assert client.stats.logins == 1
    assert await client.async_keepalive() is False
    diagnostics = client.diagnostics()
    assert diagnostics["auth_failed"] is True
    assert diagnostics["logged_in"] is False
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert_no_secrets(pbx, caplog, client, first, *later)


async def test_wrong_password_concurrent_calls_log_in_once(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.password = "other"
    client = make_client(session, pbx)
    outcomes = await asyncio.gather(
        *(client.play_prompt("1000", "hello111") for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(o, VoicePromptAuthenticationError) for o in outcomes)
    assert all(
        isinstance(o, VoicePromptError) and o.translation_key == "invalid_auth" for o in outcomes
    )
    assert pbx.logins == 1
    assert len(pbx.requests) == 1


async def test_failed_relogin_is_shared_by_a_broadcast_not_retried_per_extension(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    """The token dies and the re-login fails (not a password error): one attempt per wave.

    Every extension waiting for that login gets its error, with its own extension in
    the message; they do not each log in again, one after another (40 timeouts).
    """
    client = make_client(session, pbx)
    await client.device_info()
    pbx.expire_tokens()
    pbx.latency = 0.05  # keep the re-login in flight while the others queue
    pbx.fail_next["login"] = ["30001", "30001"]
    extensions = [str(n) for n in range(1010, 1050)]

    result = await client.async_play(extensions, "hello111")

    # The first login, then one re-login per wave of 20 extensions (the client's
    # concurrency): the second wave starts after the first one's login failed.
    assert pbx.logins == 3
    assert result.calls == []
    assert [extension for extension, _ in result.failures] == extensions
    for extension, err in result.failures:
        assert err.translation_key == "pbx_internal_error"
        assert err.placeholders["extension"] == extension
    assert len({id(err) for _, err in result.failures}) == 40
    # Not latched like a refused password: the next action logs in again.
    pbx.latency = 0.0
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == 4


async def test_password_changed_while_logged_in(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The token dies and the re-login is refused: auth error, latched."""
    client = make_client(session, pbx)
    await client.device_info()
    pbx.password = "changed"
    pbx.expire_tokens()

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.translation_key == "invalid_auth"
    assert exc_info.value.needs_new_credentials is True
    assert pbx.logins == 2
    with pytest.raises(VoicePromptAuthenticationError):
        await client.device_info()
    assert pbx.logins == 2
    assert_no_secrets(pbx, caplog, client, exc_info.value)


async def test_ip_blocked(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    pbx.block_ip("127.0.0.1")
    client = make_client(session, pbx)

    with pytest.raises(VoicePromptIPBlockedError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert err.translation_key == "ip_blocked"
    assert err.code == "20002"
    assert err.needs_new_credentials is False
    assert isinstance(err, VoicePromptAuthenticationError)
    assert pbx.logins == 1
    assert pbx.calls("login")[0].reply == {"status": "Failed", "errno": "20002"}
    assert client.diagnostics()["blocked_for_seconds"] > 590

    # Inside the lockout window nothing is sent, whatever is asked.
    with pytest.raises(VoicePromptIPBlockedError) as exc_info:
        await client.play_prompt("1001", "hello111")
    assert exc_info.value.placeholders["extension"] == "1001"
    with pytest.raises(VoicePromptIPBlockedError):
        await client.device_info()
    assert len(pbx.requests) == 1
    assert client.stats.logins == 1

    # Not latched like a wrong password: once the window is over it logs in again.
    pbx.unblock_all()
    client._blocked_until = time.monotonic() - 1
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == 2
    assert client.diagnostics()["blocked_for_seconds"] == 0
    assert_no_secrets(pbx, caplog, client, err, exc_info.value)


async def test_ip_blocked_reply_injected_on_login(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.fail_next["login"] = ["20002"]
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptIPBlockedError):
        await client.device_info()
    with pytest.raises(VoicePromptIPBlockedError):
        await client.device_info()
    assert pbx.logins == 1


# ------------------------------------------------------------------------ token mode


async def test_token_mode_never_logs_in(
    token_client: YeastarClient, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    assert token_client.uses_token
    assert "mode=token" in repr(token_client)
    info = await token_client.device_info()
    call_ids = [await token_client.play_prompt("1000", "hello111") for _ in range(5)]

    assert info.serial == SERIAL
    assert len(set(call_ids)) == 5
    assert pbx.logins == 0
    assert {r.token for r in pbx.requests} == {USER_TOKEN}
    diagnostics = token_client.diagnostics()
    assert diagnostics["mode"] == "token"
    assert diagnostics["logged_in"] is True
    # Issued before the client saw it: the age is unknown.
    assert diagnostics["token_age_seconds"] is None
    assert diagnostics["logins"] == 0
    assert_no_secrets(pbx, caplog, token_client)


async def test_token_mode_dead_token(
    token_client: YeastarClient, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    await token_client.play_prompt("1000", "hello111")
    pbx.expire_tokens()

    with pytest.raises(VoicePromptTokenError) as exc_info:
        await token_client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert err.translation_key == "token_rejected"
    assert err.code == "20004"
    assert err.needs_new_credentials is True
    assert isinstance(err, VoicePromptAuthenticationError)
    assert err.placeholders["extension"] == "1000"
    assert pbx.logins == 0
    sent = len(pbx.requests)
    assert sent == 2

    # Latched: no more requests of any kind.
    for _ in range(5):
        with pytest.raises(VoicePromptTokenError):
            await token_client.play_prompt("1000", "hello111")
    with pytest.raises(VoicePromptTokenError):
        await token_client.device_info()
    assert await token_client.async_keepalive() is False
    assert len(pbx.requests) == sent
    assert token_client.diagnostics()["auth_failed"] is True
    assert_no_secrets(pbx, caplog, token_client, err)


async def test_token_mode_without_token_never_logs_in(
    token_client: YeastarClient, pbx: FakeYeastarPBX
) -> None:
    """Guard: a token-mode client that lost its token has nothing to log in with."""
    token_client._token = None
    with pytest.raises(VoicePromptTokenError) as exc_info:
        await token_client.play_prompt("1000", "hello111")
    assert exc_info.value.code == "20004"
    assert pbx.requests == []


@pytest.mark.parametrize("errno", TOKEN_ERRNOS)
async def test_token_mode_token_errors(
    token_client: YeastarClient, pbx: FakeYeastarPBX, errno: str
) -> None:
    pbx.fail_next[PLAY] = [errno]
    with pytest.raises(VoicePromptTokenError) as exc_info:
        await token_client.play_prompt("1000", "hello111")
    assert exc_info.value.code == errno
    assert pbx.logins == 0
    assert len(pbx.requests) == 1


async def test_token_mode_close_sends_no_logout(
    token_client: YeastarClient, pbx: FakeYeastarPBX
) -> None:
    await token_client.play_prompt("1000", "hello111")
    await token_client.async_close()
    assert pbx.calls("logout") == []
    assert USER_TOKEN in pbx.tokens
    assert len(pbx.requests) == 1


async def test_token_mode_keepalive(token_client: YeastarClient, pbx: FakeYeastarPBX) -> None:
    await token_client.device_info()
    assert await token_client.async_keepalive() is False
    token_client._last_used -= KEEPALIVE_AFTER_IDLE + 1
    assert await token_client.async_keepalive() is True
    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.token == USER_TOKEN
    assert pbx.logins == 0


# -------------------------------------------------------------------- errno mapping


async def _play_failure(client: YeastarClient, pbx: FakeYeastarPBX, errno: str) -> VoicePromptError:
    pbx.fail_next[PLAY] = [errno]
    with pytest.raises(VoicePromptError) as exc_info:
        await client.play_prompt("1000", "hello111+queue1")
    return exc_info.value


@pytest.mark.parametrize(
    "errno", [errno for errno in ERRORS if errno not in TOKEN_ERRNOS + LOGIN_ERRNOS]
)
async def test_errno_table(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    errno: str,
) -> None:
    cls, key, message = ERRORS[errno]
    client = make_client(session, pbx)

    err = await _play_failure(client, pbx, errno)

    assert type(err) is cls
    assert err.translation_key == key
    assert err.code == errno
    assert err.needs_new_credentials is False
    assert err.placeholders["extension"] == "1000"
    assert err.placeholders["prompt"] == "hello111+queue1"
    assert err.placeholders["host"] == "127.0.0.1"
    assert err.placeholders["code"] == errno
    assert str(err) == message.format(**err.placeholders)
    assert "{" not in str(err)
    assert isinstance(err, VoicePromptInputError) == (errno in INPUT_ERRNOS)
    # One request, no retry, no re-login.
    (play,) = pbx.calls(PLAY)
    assert play.reply == {"status": "Failed", "errno": errno}
    assert pbx.logins == 1
    assert f"failed with errno {errno}" in caplog.text
    assert_no_secrets(pbx, caplog, client, err)


def test_errno_table_input_codes() -> None:
    input_codes = {
        errno for errno, (cls, _, _) in ERRORS.items() if issubclass(cls, VoicePromptInputError)
    }
    assert input_codes == set(INPUT_ERRNOS)
    for errno in TOKEN_ERRNOS:
        assert ERRORS[errno][0] is VoicePromptTokenError
    assert ERRORS["20002"][0] is VoicePromptIPBlockedError
    assert ERRORS["20003"][0] is VoicePromptAuthenticationError


async def test_error_messages_name_the_extension_and_prompt(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx)
    assert str(await _play_failure(client, pbx, "10006")) == (
        "Extension 1000 does not exist on the PBX"
    )
    assert str(await _play_failure(client, pbx, "10023")) == (
        "A prompt in hello111+queue1 is not uploaded to the PBX's Custom Prompts"
    )
    assert str(await _play_failure(client, pbx, "10004")) == (
        "The PBX says a required value is blank (extension: 1000, prompt: hello111+queue1)"
    )
    assert str(await _play_failure(client, pbx, "20009")) == (
        "The PBX rejected the request format (error 20009)"
    )


async def test_unknown_errno(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    err = await _play_failure(client, pbx, "99999")
    assert type(err) is VoicePromptRequestError
    assert err.translation_key == "pbx_error"
    assert err.code == "99999"
    assert "99999" in str(err)
    assert err.placeholders["extension"] == "1000"
    assert_no_secrets(pbx, caplog, client, err)


async def test_failed_without_errno(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    pbx.reply_override[PLAY] = {"status": "Failed"}
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.translation_key == "pbx_error"
    assert exc_info.value.code == "?"


async def test_numeric_errno(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    """An errno sent as a JSON number maps like the string."""
    pbx.reply_override[PLAY] = {"status": "Failed", "errno": 10006}
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.translation_key == "extension_not_found"


@pytest.mark.parametrize(
    ("extension", "prompt", "errno", "key", "cls"),
    [
        ("4242", "hello111", "10006", "extension_not_found", VoicePromptInputError),
        ("1000", "not_uploaded", "10023", "prompt_not_found", VoicePromptInputError),
        ("1000", "hello111+missing", "10023", "prompt_not_found", VoicePromptInputError),
        ("1002", "hello111", "10015", "call_not_connected", VoicePromptRequestError),
        ("1003", "hello111", "10008", "extension_busy", VoicePromptRequestError),
    ],
)
async def test_real_fake_refusals(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    extension: str,
    prompt: str,
    errno: str,
    key: str,
    cls: type[VoicePromptError],
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(cls) as exc_info:
        await client.play_prompt(extension, prompt)
    err = exc_info.value
    assert err.translation_key == key
    assert err.code == errno
    assert err.placeholders["extension"] == extension
    assert err.placeholders["prompt"] == prompt
    (play,) = pbx.calls(PLAY)
    assert play.reply == {"status": "Failed", "errno": errno}
    assert_no_secrets(pbx, caplog, client, err)


async def test_set_extension_status(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    pbx.set_extension_status("1000", "Busy")
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.translation_key == "extension_busy"
    assert str(exc_info.value) == "Extension 1000 is not idle; try again when it is free"
    pbx.set_extension_status("1000", "Registered")
    assert await client.play_prompt("1000", "hello111")
    pbx.add_prompt("custom_one")
    assert await client.play_prompt("1000", "custom_one")


# ------------------------------------------------------------------------- transport


@pytest.mark.usefixtures("socket_enabled")
async def test_connection_refused(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeYeastarPBX(password=PASSWORD)
    await fake.start()
    port = fake.port
    await fake.close()
    client = YeastarClient(
        session, "127.0.0.1", port=port, username="api", password=PASSWORD, verify_ssl=False
    )
    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert type(err) is VoicePromptConnectionError
    assert err.translation_key == "cannot_connect"
    assert err.placeholders["host"] == "127.0.0.1"
    assert err.placeholders["extension"] == "1000"
    assert err.placeholders["detail"].startswith("ClientConnectorError")
    assert str(err).startswith("Cannot connect to 127.0.0.1: ")
    assert err.__suppress_context__
    assert err.needs_new_credentials is False
    assert_no_secrets(fake, caplog, client, err)


async def test_dns_failure(caplog: pytest.LogCaptureFixture) -> None:
    connector = aiohttp.TCPConnector(resolver=FailingResolver())
    async with aiohttp.ClientSession(connector=connector) as dns_session:
        client = YeastarClient(
            dns_session, "pbx.invalid", username="api", password=PASSWORD, verify_ssl=False
        )
        with pytest.raises(VoicePromptConnectionError) as exc_info:
            await client.device_info()
    err = exc_info.value
    assert type(err) is VoicePromptConnectionError
    assert err.translation_key == "cannot_connect"
    assert err.placeholders["host"] == "pbx.invalid"
    assert "ClientConnector" in err.placeholders["detail"]
    assert PASSWORD not in repr(err)
    assert PASSWORD_MD5 not in repr(err)
    assert PASSWORD_MD5 not in caplog.text


async def test_hang_times_out(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx, request_timeout=0.5)
    await client.device_info()
    pbx.hang = True
    started = time.monotonic()
    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await client.play_prompt("1000", "hello111")
    elapsed = time.monotonic() - started

    err = exc_info.value
    assert elapsed < 2
    assert isinstance(err, VoicePromptConnectionError)
    assert err.translation_key == "timeout"
    assert str(err) == "127.0.0.1 did not answer within 0.5 seconds"
    assert err.placeholders["extension"] == "1000"
    assert len(pbx.calls(PLAY)) == 1
    assert_no_secrets(pbx, caplog, client, err)


async def test_hang_on_login_times_out(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    pbx.hang = True
    client = make_client(session, pbx, request_timeout=0.3)
    with pytest.raises(VoicePromptTimeoutError):
        await client.device_info()
    assert pbx.logins == 1


async def test_latency_below_timeout(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    pbx.latency = 0.2
    client = make_client(session, pbx, request_timeout=2)
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == 1


@pytest.mark.parametrize("status", [500, 502, 503, 404, 302])
async def test_http_status(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    pbx.http_status = status
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert err.translation_key == "invalid_response"
    assert err.placeholders["detail"] == f"HTTP status {status}"
    assert err.placeholders["extension"] == "1000"
    assert f"HTTP status {status}" in str(err)
    assert_no_secrets(pbx, caplog, client, err)


async def test_http_status_on_login(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    pbx.http_status = 503
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptResponseError):
        await client.device_info()
    pbx.http_status = None
    assert (await client.device_info()).serial == SERIAL
    assert pbx.logins == 2


async def test_garbage_body(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    pbx.garbage = True
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.placeholders["detail"] == "not JSON"
    assert_no_secrets(pbx, caplog, client, exc_info.value)


@pytest.mark.parametrize(
    ("path", "override", "detail"),
    [
        (PLAY, {"callid": "1.2"}, "no status"),
        (PLAY, {"status": "OK", "callid": "1.2"}, "no status"),
        (PLAY, "[1, 2, 3]", "not a JSON object"),
        (PLAY, '"Success"', "not a JSON object"),
        (PLAY, "", "not JSON"),
        (PLAY, "[" * 100_000 + "]" * 100_000, "not JSON"),
        (PLAY, '{"status": "Success", "callid": ' + "[" * 100_000, "not JSON"),
        (PLAY, {"status": "Success"}, "success without a call id"),
        (PLAY, {"status": "Success", "callid": ""}, "success without a call id"),
        (PLAY, {"status": "Success", "callid": None}, "success without a call id"),
        (PLAY, {"status": "Success", "callid": True}, "success without a call id"),
        (PLAY, {"status": "Success", "callid": ["1"]}, "success without a call id"),
        ("login", {"status": "Success"}, "login succeeded without a token"),
        ("login", {"status": "Success", "token": ""}, "login succeeded without a token"),
        ("login", {"status": "Success", "token": 1234}, "login succeeded without a token"),
        (
            "deviceinfo/query",
            {"status": "Success", "deviceinfo": {"devicename": "S100"}},
            "deviceinfo without a serial number",
        ),
        (
            "deviceinfo/query",
            {"status": "Success", "deviceinfo": "S100"},
            "deviceinfo without a serial number",
        ),
        ("deviceinfo/query", {"status": "Success"}, "deviceinfo without a serial number"),
        ("extensionlist/query", {"status": "Success"}, "extension list missing"),
        ("extensionlist/query", {"status": "Success", "extlist": {}}, "extension list missing"),
    ],
)
async def test_invalid_replies(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    path: str,
    override: dict[str, Any] | str,
    detail: str,
) -> None:
    client = make_client(session, pbx)
    pbx.reply_override[path] = override
    if path in (PLAY, "login"):
        request: Awaitable[object] = client.play_prompt("1000", "hello111")
    elif path == "deviceinfo/query":
        request = client.device_info()
    else:
        request = client.extensions()
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await request
    err = exc_info.value
    assert type(err) is VoicePromptResponseError
    assert err.translation_key == "invalid_response"
    assert err.placeholders["detail"] == detail
    assert str(err) == f"127.0.0.1 sent a reply that is not a valid API response: {detail}"
    assert err.needs_new_credentials is False
    if path == PLAY:
        assert err.placeholders["extension"] == "1000"
    assert len(pbx.calls(path)) == 1
    assert_no_secrets(pbx, caplog, client, err)


async def test_numeric_callid_is_accepted(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.reply_override[PLAY] = {"status": "Success", "callid": 1495697869}
    client = make_client(session, pbx)
    assert await client.play_prompt("1000", "hello111") == "1495697869"


async def test_drop_connection(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    pbx.drop_connection = True
    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert type(err) is VoicePromptConnectionError
    assert err.translation_key == "cannot_connect"
    assert err.placeholders["extension"] == "1000"
    assert err.placeholders["detail"]
    assert err.__cause__ is None
    assert err.__suppress_context__
    assert len(pbx.calls(PLAY)) >= 1
    assert_no_secrets(pbx, caplog, client, err)

    pbx.drop_connection = False
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == 1


async def test_tls_self_signed_refused(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx, verify_ssl=True)
    async with server_handshake_failure_expected():
        with pytest.raises(VoicePromptSSLError) as exc_info:
            await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert isinstance(err, VoicePromptConnectionError)
    assert err.translation_key == "ssl_error"
    assert err.needs_new_credentials is False
    assert "certificate verification" in str(err)
    assert err.placeholders["extension"] == "1000"
    assert pbx.requests == []
    assert_no_secrets(pbx, caplog, client, err)


async def test_tls_trusted_certificate(
    pbx: FakeYeastarPBX, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as trusting:
        client = make_client(trusting, pbx, verify_ssl=True)
        info = await client.device_info()
        call_id = await client.play_prompt("1000", "hello111")
        await client.async_close()
    assert info.serial == SERIAL
    assert call_id
    assert client.diagnostics()["verify_ssl"] is True
    assert len(pbx.calls("logout")) == 1
    assert_no_secrets(pbx, caplog, client)


# ------------------------------------------------------------------------- secrets


def test_describe_hides_token_in_url() -> None:
    text = yeastar._describe(aiohttp.InvalidURL("https://h/api/x?token=abc"))
    assert text == "InvalidURL: https://h/api/x?token=***"
    assert "abc" not in text


def test_describe_hides_token_in_response_error() -> None:
    url = URL("https://pbx:8088/api/v1.0.0/extension/playprompt?token=secret123&x=1")
    info = aiohttp.RequestInfo(url, "POST", {}, url)  # type: ignore[arg-type]
    err = aiohttp.ClientResponseError(info, (), status=400, message="Bad Request")
    assert "secret123" in str(err)
    text = yeastar._describe(err)
    assert "secret123" not in text
    assert "token=***" in text
    assert text.startswith("ClientResponseError: 400")


def test_describe_empty_text() -> None:
    assert yeastar._describe(aiohttp.ClientError()) == "ClientError"
    assert yeastar._describe(aiohttp.ServerDisconnectedError()) == (
        "ServerDisconnectedError: Server disconnected"
    )


async def test_repr_and_diagnostics_hold_no_secrets(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    assert repr(client) == (
        f"YeastarClient(host='127.0.0.1', port={pbx.port}, mode=credentials, logged_in=False)"
    )
    before = client.diagnostics()
    assert before["logged_in"] is False
    assert before["token_age_seconds"] is None
    assert before["idle_seconds"] is None
    assert before["requests"] == 0

    await client.play_prompt("1000", "hello111")
    assert "logged_in=True" in repr(client)
    after = client.diagnostics()
    assert after == {
        "host": "127.0.0.1",
        "port": pbx.port,
        "verify_ssl": False,
        "mode": "credentials",
        "logged_in": True,
        "token_age_seconds": after["token_age_seconds"],
        "idle_seconds": after["idle_seconds"],
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
        "requests": 2,
        "logins": 1,
        "relogins": 0,
        "heartbeats": 0,
    }
    assert 0 <= after["token_age_seconds"] < 60
    assert 0 <= after["idle_seconds"] < 60
    assert not hasattr(client, "_password")
    assert PASSWORD not in repr(vars(client))
    assert_no_secrets(pbx, caplog, client)


# ------------------------------------------------------------------ input validation


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a+b", ["a", "b"]),
        (["a", "b"], ["a", "b"]),
        (("hello111",), ["hello111"]),
        (" a + b ", ["a", "b"]),
        ("with space", ["with space"]),
        ("+".join(f"p{i}" for i in range(MAX_PROMPTS)), [f"p{i}" for i in range(MAX_PROMPTS)]),
        ("x" * MAX_PROMPT_LENGTH, ["x" * MAX_PROMPT_LENGTH]),
        ("a1", ["a1"]),
    ],
)
def test_normalize_prompts_ok(value: Any, expected: list[str]) -> None:
    assert normalize_prompts(value) == expected


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("", "prompt_empty"),
        ([], "prompt_empty"),
        ([""], "prompt_empty"),
        ("  ", "prompt_empty"),
        (["a", " "], "prompt_empty"),
        ("a+", "prompt_empty"),
        ("a++b", "prompt_empty"),
        ("123", "prompt_digits"),
        (["a", "007"], "prompt_digits"),
        (["a+b"], "prompt_plus"),
        ([1], "prompt_invalid"),
        (["a", None], "prompt_invalid"),
        ([["a"]], "prompt_invalid"),
        (None, "prompt_invalid"),
        (42, "prompt_invalid"),
        ({"a"}, "prompt_invalid"),
        (b"ab", "prompt_invalid"),
        ("+".join(f"p{i}" for i in range(MAX_PROMPTS + 1)), "prompt_too_many"),
        ([f"p{i}" for i in range(MAX_PROMPTS + 1)], "prompt_too_many"),
        ("x" * (MAX_PROMPT_LENGTH + 1), "prompt_invalid"),
        ("bad\x00name", "prompt_invalid"),
        ("bad\nname", "prompt_invalid"),
        ("bad\u200bname", "prompt_invalid"),
    ],
)
def test_normalize_prompts_refused(value: Any, key: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts(value)
    err = exc_info.value
    assert err.translation_key == key
    assert err.code is None
    assert "{" not in str(err)
    assert set(err.placeholders) >= {"prompt", "extension"}
    assert isinstance(err.placeholders["prompt"], str)


def test_normalize_prompts_placeholders() -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts("ok+12")
    assert exc_info.value.placeholders["prompt"] == "12"
    assert str(exc_info.value) == "Prompt name '12' is only digits, which the PBX does not allow"
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts("y" * 300)
    assert exc_info.value.placeholders["prompt"] == "y" * 40
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts(["p"] * (MAX_PROMPTS + 1))
    assert exc_info.value.placeholders["limit"] == str(MAX_PROMPTS)
    assert str(MAX_PROMPTS) in str(exc_info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000", ["1000"]),
        (1000, ["1000"]),
        ("1000, 1001", ["1000", "1001"]),
        ("1000;1001", ["1000", "1001"]),
        ("1000,,1001,", ["1000", "1001"]),
        (["1000", 1001], ["1000", "1001"]),
        (("1001", "1000", "1001", 1000, " 1002 "), ["1001", "1000", "1002"]),
        ("1001,1000,1001", ["1001", "1000"]),
        (["", "1000"], ["1000"]),
        ("0123", ["0123"]),
        ([str(1000 + i) for i in range(MAX_EXTENSIONS)], [str(1000 + i) for i in range(500)]),
    ],
)
def test_normalize_extensions_ok(value: Any, expected: list[str]) -> None:
    assert normalize_extensions(value) == expected


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("", "extension_empty"),
        ("  ", "extension_empty"),
        (",", "extension_empty"),
        ([], "extension_empty"),
        ([""], "extension_empty"),
        ("abc", "extension_invalid"),
        ("10 00", "extension_invalid"),
        ("1000,abc", "extension_invalid"),
        ("+1000", "extension_invalid"),
        ("1" * 17, "extension_invalid"),
        ("\u0661\u0660\u0660\u0660", "extension_invalid"),  # Arabic-Indic 1000
        (True, "extension_invalid"),
        (False, "extension_invalid"),
        ([True], "extension_invalid"),
        (-1, "extension_invalid"),
        (1000.0, "extension_invalid"),
        (None, "extension_invalid"),
        ({"1000"}, "extension_invalid"),
        ([["1000"]], "extension_invalid"),
        (["1000", None], "extension_invalid"),
        ([str(1000 + i) for i in range(MAX_EXTENSIONS + 1)], "extension_too_many"),
        (",".join(str(1000 + i) for i in range(MAX_EXTENSIONS + 1)), "extension_too_many"),
    ],
)
def test_normalize_extensions_refused(value: Any, key: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions(value)
    err = exc_info.value
    assert err.translation_key == key
    assert str(err) == err.message.format(**err.placeholders)
    assert set(err.placeholders) >= {"prompt", "extension"}
    assert len(err.placeholders["extension"]) <= 40


def test_normalize_extensions_placeholders() -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions("1000,10 00")
    assert exc_info.value.placeholders["extension"] == "10 00"
    assert str(exc_info.value) == "Extension '10 00' is not an extension number (digits only)"
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions(True)
    assert exc_info.value.placeholders["extension"] == "True"


REFUSED_CALLS: list[tuple[Any, Any, str]] = [
    ("1000", "", "prompt_empty"),
    ("1000", [], "prompt_empty"),
    ("1000", "123", "prompt_digits"),
    ("1000", "a+", "prompt_empty"),
    ("1000", ["a+b"], "prompt_plus"),
    ("1000", [1], "prompt_invalid"),
    ("1000", "bad\x07", "prompt_invalid"),
    ("1000", ["p"] * (MAX_PROMPTS + 1), "prompt_too_many"),
    ("", "hello111", "extension_empty"),
    ("abc", "hello111", "extension_invalid"),
    ("10 00", "hello111", "extension_invalid"),
    (True, "hello111", "extension_invalid"),
    (-1, "hello111", "extension_invalid"),
    ([["1000"]], "hello111", "extension_invalid"),
]


@pytest.mark.parametrize(("extension", "prompt", "key"), REFUSED_CALLS)
async def test_play_prompt_refuses_input_before_sending(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    extension: Any,
    prompt: Any,
    key: str,
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt(extension, prompt)
    assert exc_info.value.translation_key == key
    assert pbx.requests == []


@pytest.mark.parametrize(
    ("extension", "prompt", "key"),
    [
        *REFUSED_CALLS,
        ([str(1000 + i) for i in range(MAX_EXTENSIONS + 1)], "hello111", "extension_too_many"),
        ("1000, 1001", "123", "prompt_digits"),
        ("1000, abc", "hello111", "extension_invalid"),
    ],
)
async def test_async_play_refuses_input_before_sending(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    extension: Any,
    prompt: Any,
    key: str,
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.async_play(extension, prompt)
    assert exc_info.value.translation_key == key
    assert pbx.requests == []


async def test_play_prompt_normalizes_input(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx)
    await client.play_prompt(" 1000 ", [" hello111 ", "queue1"])
    await client.play_prompt(1001, ("doorbell",))  # type: ignore[arg-type]
    await client.play_prompt("1000,1000", "alarm")
    assert [r.body for r in pbx.calls(PLAY)] == [
        {"extid": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
        {"extid": "1001", "prompt": "doorbell", "autoanswer": "no"},
        {"extid": "1000", "prompt": "alarm", "autoanswer": "no"},
    ]


@pytest.mark.parametrize("extension", ["1000, 1001", "1000;1001"])
async def test_play_prompt_with_several_extensions_is_an_input_error(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, extension: str
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError):
        await client.play_prompt(extension, "hello111")
    assert pbx.requests == []


# ------------------------------------------------------------------------ async_play


async def test_async_play_partial_failure(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    result = await client.async_play(["1000", "4242", "1001"], "hello111+queue1")

    assert [ext for ext, _ in result.calls] == ["1000", "1001"]
    assert all(call_id for _, call_id in result.calls)
    ((extension, err),) = result.failures
    assert extension == "4242"
    assert isinstance(err, VoicePromptInputError)
    assert err.translation_key == "extension_not_found"
    assert err.placeholders["extension"] == "4242"
    assert str(err) == "Extension 4242 does not exist on the PBX"
    assert sorted(r.body["extid"] for r in pbx.calls(PLAY)) == ["1000", "1001", "4242"]
    assert pbx.logins == 1
    assert_no_secrets(pbx, caplog, client, err)


async def test_async_play_all_fail(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    result = await client.async_play("4242, 1002, 1003", "hello111")
    assert result.calls == []
    assert [(ext, err.translation_key) for ext, err in result.failures] == [
        ("4242", "extension_not_found"),
        ("1002", "call_not_connected"),
        ("1003", "extension_busy"),
    ]
    assert [err.placeholders["extension"] for _, err in result.failures] == [
        "4242",
        "1002",
        "1003",
    ]


async def test_async_play_auth_failure_reaches_every_extension(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.password = "other"
    client = make_client(session, pbx)
    result = await client.async_play(["1000", "1001", "1010"], "hello111")
    assert result.calls == []
    assert len(result.failures) == 3
    assert all(err.needs_new_credentials for _, err in result.failures)
    assert pbx.logins == 1


async def test_async_play_single_extension(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    """One target: the call id is returned, a failure is raised (not collected)."""
    client = make_client(session, pbx)
    result = await client.async_play("1000", "hello111", autoanswer=True)
    ((extension, call_id),) = result.calls
    assert extension == "1000"
    assert call_id
    assert result.failures == []
    assert pbx.calls(PLAY)[0].body["autoanswer"] == "yes"

    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.async_play(["4242", "4242"], "hello111")
    assert exc_info.value.placeholders["extension"] == "4242"


async def test_async_play_reraises_non_api_errors(pbx: FakeYeastarPBX) -> None:
    """A failure outside the VoicePromptError tree (a bug) is raised, not listed as a failure.

    aiohttp's trace hooks are a real extension point; one that raises stands in for a bug.
    """

    async def broken_hook(*_: Any) -> None:
        raise RuntimeError("bug in a hook")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(broken_hook)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = make_client(session, pbx, token="0" * 32, request_timeout=0.05)
        with pytest.raises(RuntimeError, match="bug in a hook"):
            await client.async_play(["1000", "1001"], "hello111")
        # aiohttp leaves the aborted request's timeout timer behind: let it run out.
        await asyncio.sleep(0.1)
    assert pbx.requests == []


async def test_closed_session_is_a_connection_error(pbx: FakeYeastarPBX) -> None:
    """After Home Assistant closed its session, requests fail as connection errors."""
    closed = aiohttp.ClientSession()
    client = make_client(closed, pbx)
    await closed.close()
    with pytest.raises(VoicePromptConnectionError, match="session is closed"):
        await client.play_prompt("1000", "hello111")
    assert pbx.requests == []


def _in_flight_tracer() -> tuple[aiohttp.TraceConfig, SimpleNamespace]:
    state = SimpleNamespace(now=0, peak=0, total=0)

    async def on_start(*_: Any) -> None:
        state.now += 1
        state.total += 1
        state.peak = max(state.peak, state.now)

    async def on_end(*_: Any) -> None:
        state.now -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_end)
    return trace, state


@pytest.mark.parametrize(("concurrency", "max_peak"), [(20, 20), (7, 7), (1, 1), (0, 1)])
async def test_async_play_concurrency_bound(
    pbx: FakeYeastarPBX, concurrency: int, max_peak: int
) -> None:
    trace, state = _in_flight_tracer()
    async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
        client = make_client(traced, pbx)
        targets = [str(n) for n in range(1010, 1050 if concurrency >= 7 else 1013)]
        # Warm-up without latency: logs in and pools the TLS connections, so the timed
        # run measures round trips, not handshakes on a busy machine.
        await client.async_play(targets, "hello111", concurrency=concurrency)
        assert state.peak <= max_peak
        pbx.latency = 0.25
        state.peak = 0
        started = time.monotonic()
        result = await client.async_play(targets, "hello111", concurrency=concurrency)
        elapsed = time.monotonic() - started
        await client.async_close()

    assert [ext for ext, _ in result.calls] == targets
    assert result.failures == []
    assert state.now == 0
    assert state.peak <= max_peak
    rounds = -(-len(targets) // max_peak)
    # Each slot runs its requests one after the other, each at least one latency.
    assert elapsed >= rounds * pbx.latency * 0.9
    if concurrency >= 7:
        assert state.peak > 1
        # Sequential would take len(targets) x latency (10 s for 40 targets); bounded
        # it takes a few round trips (0.5 s for 20 at a time, plus overhead).
        assert elapsed < 20 * pbx.latency
    else:
        assert state.peak == 1


async def test_async_play_default_concurrency(pbx: FakeYeastarPBX) -> None:
    trace, state = _in_flight_tracer()
    async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
        client = make_client(traced, pbx)
        await client.device_info()
        pbx.latency = 0.05
        state.peak = 0
        result = await client.async_play([str(n) for n in range(1010, 1050)], "hello111")
        await client.async_close()
    assert len(result.calls) == 40
    assert 1 < state.peak <= yeastar.DEFAULT_CONCURRENCY


# ------------------------------------------------------------------------- keepalive


async def test_keepalive(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    assert await client.async_keepalive() is False
    assert pbx.requests == []

    await client.play_prompt("1000", "hello111")
    assert await client.async_keepalive() is False
    assert pbx.calls("heartbeat") == []

    client._last_used -= KEEPALIVE_AFTER_IDLE - 5
    assert await client.async_keepalive() is False
    client._last_used -= 10
    assert await client.async_keepalive() is True

    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.token == login_tokens(pbx)[0]
    assert heartbeat.body == {"ipaddr": "127.0.0.1", "port": "8260"}
    assert heartbeat.reply == {"status": "Success"}
    assert client.stats.heartbeats == 1
    assert client.diagnostics()["heartbeats"] == 1
    # The heartbeat counts as use.
    assert await client.async_keepalive() is False
    assert pbx.logins == 1
    assert_no_secrets(pbx, caplog, client)


async def test_keepalive_after_token_lost(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    pbx.expire_tokens()
    client._last_used -= KEEPALIVE_AFTER_IDLE + 1

    assert await client.async_keepalive() is True

    assert pbx.logins == 2
    refused, accepted = pbx.calls("heartbeat")
    assert refused.reply == {"status": "Failed", "errno": "20004"}
    assert accepted.reply == {"status": "Success"}
    assert accepted.token == login_tokens(pbx)[1]
    assert client.stats.relogins == 1
    assert_no_secrets(pbx, caplog, client)


async def test_keepalive_failure_raises(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    client._last_used -= KEEPALIVE_AFTER_IDLE + 1
    pbx.fail_next["heartbeat"] = ["20008"]
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.async_keepalive()
    assert exc_info.value.translation_key == "protocol_error"
    assert client.stats.heartbeats == 0


async def test_keepalive_local_address_is_learned_once(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    """The address told to the PBX is this machine's, found once, then reused."""
    client = make_client(session, pbx)
    await client.device_info()
    assert client._local_ip is None
    for _ in range(2):
        client._last_used -= KEEPALIVE_AFTER_IDLE + 1
        assert await client.async_keepalive() is True
    assert client._local_ip == "127.0.0.1"
    assert [r.body for r in pbx.calls("heartbeat")] == [
        {"ipaddr": "127.0.0.1", "port": "8260"},
        {"ipaddr": "127.0.0.1", "port": "8260"},
    ]
    # The route lookup sends nothing: only login, deviceinfo and two heartbeats.
    assert [r.path for r in pbx.requests] == ["login", "deviceinfo/query", "heartbeat", "heartbeat"]


@pytest.mark.usefixtures("socket_enabled")
async def test_local_address() -> None:
    assert await yeastar._local_address("127.0.0.1", 8088) == "127.0.0.1"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
@pytest.mark.usefixtures("socket_enabled")
async def test_local_address_unknown_when_no_socket() -> None:
    """No socket can be made (EMFILE, a real OSError): the address is "unknown"."""
    # The kernel hands out the lowest free descriptor: a limit at that number makes
    # the next socket() fail with EMFILE.
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        address = await yeastar._local_address("127.0.0.1", 8088)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert address == "0.0.0.0"


# ---------------------------------------------------------------------------- close


async def test_close_logs_out_once(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    await client.play_prompt("1000", "hello111")
    (token,) = login_tokens(pbx)
    assert token in pbx.tokens

    await client.async_close()
    (logout,) = pbx.calls("logout")
    assert logout.token == token
    assert logout.body is None
    assert logout.reply == {"status": "Success"}
    assert token not in pbx.tokens
    assert "logged_in=False" in repr(client)

    sent = len(pbx.requests)
    await client.async_close()
    assert len(pbx.requests) == sent
    assert_no_secrets(pbx, caplog, client)


async def test_close_before_login_sends_nothing(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx)
    await client.async_close()
    assert pbx.requests == []


async def test_close_failure_is_only_logged(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    pbx.http_status = 500
    await client.async_close()
    assert len(pbx.calls("logout")) == 1
    assert "Logout from 127.0.0.1 failed" in caplog.text
    assert client.diagnostics()["logged_in"] is False
    assert_no_secrets(pbx, caplog, client)


async def test_use_after_close_logs_in_again(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    await client.async_close()
    await client.device_info()
    assert pbx.logins == 2
    await client.async_close()
    assert len(pbx.calls("logout")) == 2


# ---------------------------------------------------------------- device and lists


async def test_device_info(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    info = await client.async_validate()
    assert info == YeastarDeviceInfo(
        name="Yeastar S100",
        serial=SERIAL,
        hardware_version="V1.30 0000-0000",
        firmware_version="30.5.0.109",
        extension_status="103/104",
    )
    (query,) = pbx.calls("deviceinfo/query")
    assert query.body is None
    assert query.token == login_tokens(pbx)[0]


async def test_device_info_optional_fields(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.reply_override["deviceinfo/query"] = {
        "status": "Success",
        "deviceinfo": {"sn": 12345, "devicename": "", "hardwarever": None, "firmwarever": ""},
    }
    client = make_client(session, pbx)
    assert await client.device_info() == YeastarDeviceInfo(
        name="Yeastar PBX",
        serial="12345",
        hardware_version=None,
        firmware_version=None,
        extension_status=None,
    )


async def test_extensions(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    extensions = await client.extensions()
    assert len(extensions) == len(pbx.extensions) == 104
    assert extensions[:4] == [
        YeastarExtension(number="1000", status="Registered", kind="SIP", name="Reception"),
        YeastarExtension(number="1001", status="Registered", kind="SIP", name="Office"),
        YeastarExtension(number="1002", status="Unavailable", kind="SIP", name="Garage"),
        YeastarExtension(number="1003", status="Busy", kind="SIP", name="Kitchen"),
    ]
    assert extensions[4] == YeastarExtension("1010", "Registered", "SIP", "Ext 1010")
    assert len(pbx.calls("extensionlist/query")) == 1


async def test_extensions_skips_junk_items(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.reply_override["extensionlist/query"] = {
        "status": "Success",
        "extlist": [{"extnumber": 2000}, "junk", None, {"status": "Busy"}],
    }
    client = make_client(session, pbx)
    assert await client.extensions() == [
        YeastarExtension("2000", "", "", ""),
        YeastarExtension("", "Busy", "", ""),
    ]


# ---------------------------------------------------------------------- construction


def test_constructor_requires_one_credential(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="either"):
        YeastarClient(session, "127.0.0.1", username="api", password=PASSWORD, token="t")
    with pytest.raises(ValueError, match="either"):
        YeastarClient(session, "127.0.0.1", username="api")
    with pytest.raises(ValueError, match="username"):
        YeastarClient(session, "127.0.0.1", password=PASSWORD)
    with pytest.raises(ValueError, match="username"):
        YeastarClient(session, "127.0.0.1", username="", password=PASSWORD)


def test_constructor_defaults(session: aiohttp.ClientSession) -> None:
    client = YeastarClient(session, "pbx.local", username="api", password=PASSWORD)
    assert client.port == yeastar.DEFAULT_PORT == 8088
    assert client.verify_ssl is True
    assert client.uses_token is False
    assert client._base_url == "https://pbx.local:8088/api/v1.0.0/"
    assert client._report_port == "8260"
    assert client._password_md5 == PASSWORD_MD5
    assert PASSWORD not in repr(client)
    assert PASSWORD not in json.dumps(client.diagnostics())

    token_client = YeastarClient(session, "pbx.local", token=USER_TOKEN, scheme="http", port=80)
    assert token_client.uses_token is True
    assert token_client._base_url == "http://pbx.local:80/api/v1.0.0/"
    assert USER_TOKEN not in repr(token_client)
    assert USER_TOKEN not in json.dumps(token_client.diagnostics())


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("::1", "[::1]"),
        ("fe80::1", "[fe80::1]"),
        ("[::1]", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("pbx.local", "pbx.local"),
    ],
)
def test_url_host(host: str, expected: str) -> None:
    assert yeastar._url_host(host) == expected


def test_ipv6_base_url(session: aiohttp.ClientSession) -> None:
    client = YeastarClient(session, "::1", port=8443, username="api", password=PASSWORD)
    assert client._base_url == "https://[::1]:8443/api/v1.0.0/"
    assert client.web_url == "https://[::1]:8443"
    assert client.host == "::1"


def test_web_url(session: aiohttp.ClientSession) -> None:
    client = YeastarClient(session, "192.168.1.20", username="api", password=PASSWORD)
    assert client.web_url == "https://192.168.1.20:8088"
    token_client = YeastarClient(session, "pbx.local", port=443, token=USER_TOKEN)
    assert token_client.web_url == "https://pbx.local:443"
    assert USER_TOKEN not in token_client.web_url


def test_error_for_builds_table_errors() -> None:
    err = yeastar.error_for("10008", "pbx")
    assert type(err) is VoicePromptRequestError
    assert err.code == "10008"
    assert str(err) == "Extension  is not idle; try again when it is free"
    unknown = yeastar.error_for("4711", "pbx")
    assert unknown.translation_key == "pbx_error"
    assert str(unknown) == "The PBX refused the request with error 4711"


# ------------------------------------------------------------------------ errors.py


def test_error_defaults_and_rendering() -> None:
    err = VoicePromptError("boom")
    assert str(err) == "Unexpected error: boom"
    assert err.translation_key == "unknown_error"
    assert err.code is None
    assert err.placeholders == {"detail": "boom", "code": ""}
    assert err.needs_new_credentials is False

    # Unknown placeholders or broken templates fall back to the raw message.
    assert str(VoicePromptError(message="needs {missing}")) == "needs {missing}"
    assert str(VoicePromptError(message="index {0}")) == "index {0}"
    assert str(VoicePromptError(message="broken {")) == "broken {"

    conn = VoicePromptConnectionError("refused", host="pbx")
    assert str(conn) == "Cannot connect to pbx: refused"
    assert conn.with_context(extension="1000") is conn
    assert conn.placeholders["extension"] == "1000"
    assert conn.args == ("Cannot connect to pbx: refused",)

    fixed = VoicePromptRequestError(code="1", message="{code} at {extension}", extension="")
    fixed.with_context(extension="1001")
    assert str(fixed) == "1 at 1001"
    assert fixed.args == ("1 at 1001",)


def test_error_class_tree() -> None:
    assert issubclass(VoicePromptTimeoutError, VoicePromptConnectionError)
    assert issubclass(VoicePromptSSLError, VoicePromptConnectionError)
    assert issubclass(VoicePromptIPBlockedError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptTokenError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptInputError, VoicePromptRequestError)
    assert VoicePromptAuthenticationError.needs_new_credentials is True
    assert VoicePromptTokenError.needs_new_credentials is True
    assert VoicePromptIPBlockedError.needs_new_credentials is False
    assert VoicePromptConnectionError.needs_new_credentials is False
    for cls in (
        errors.VoicePromptConnectionError,
        errors.VoicePromptTimeoutError,
        errors.VoicePromptSSLError,
        errors.VoicePromptResponseError,
        errors.VoicePromptAuthenticationError,
        errors.VoicePromptIPBlockedError,
        errors.VoicePromptTokenError,
        errors.VoicePromptRequestError,
        errors.VoicePromptInputError,
    ):
        assert issubclass(cls, VoicePromptError)
        err = cls(host="pbx", timeout="1", code="1")
        assert "{" not in str(err)
