"""Tests for the Yeastar S-Series API client, against the real HTTPS fake PBX.

Nothing is mocked at function level: every request goes over TCP/TLS to the fake on
127.0.0.1. The only aiohttp extension points used are a resolver (DNS failure) and
trace configs (counting requests in flight, a hook that raises). Time is moved with
the ``freezer`` fixture, which moves ``time.monotonic`` for the client and the fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Iterable
from datetime import timedelta
import json
import logging
from pathlib import Path
import re
import socket
import ssl
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from freezegun.api import FrozenDateTimeFactory
import pytest
from yarl import URL

from custom_components.voice_prompt import api
from custom_components.voice_prompt.api import (
    AuthMode,
    VoicePromptApiDisabledError,
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSecretExpiredError,
    VoicePromptSSLError,
    VoicePromptTenantNotFoundError,
    VoicePromptTimeoutError,
    VoicePromptTokenError,
    YeastarClient,
    YeastarDeviceInfo,
    YeastarExtension,
    http,
    normalize_extensions,
    normalize_prompts,
    yeastar,
)
from custom_components.voice_prompt.api.yeastar import (
    ERRORS,
    KEEPALIVE_AFTER_IDLE,
    LOCKOUT_SECONDS,
    MAX_EXTENSIONS,
    MAX_IN_FLIGHT,
    MAX_PROMPT_LENGTH,
    MAX_PROMPTS,
    error_for,
)
from tests.conftest import PASSWORD, SERIAL, tls_resets_tolerated
from tests.fakes.yeastar import ERRORS as DOCUMENTED_ERRNOS, FakeYeastarPBX

PLAY = "extension/playprompt"
LOGGER_NAME = "custom_components.voice_prompt"
HOST = "127.0.0.1"
PASSWORD_MD5 = FakeYeastarPBX.md5(PASSWORD)
USER_TOKEN = "0123456789abcdef0123456789abcdef"
# The address the caller (the backend) tells the PBX in heartbeats.
REPORT_IP = "192.0.2.7"
TOKEN_ERRNOS = ("20004", "20005", "20006")
LOGIN_ERRNOS = ("20002", "20003")
INPUT_ERRNOS = ("10004", "10006", "10011", "10023")
DIAGNOSTICS_KEYS = {
    "host",
    "port",
    "verify_ssl",
    "mode",
    "logged_in",
    "token_age_seconds",
    "idle_seconds",
    "auth_failed",
    "blocked_for_seconds",
}


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
            yield thing.message
            yield repr(thing.code)
            yield repr(thing.target)
    if isinstance(thing, YeastarClient):
        yield repr(thing)
        yield repr(thing.diagnostics())
        yield json.dumps(thing.diagnostics())
        yield thing.web_url
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


@pytest.fixture
async def tolerant_loop() -> AsyncGenerator[None]:
    """``tls_resets_tolerated`` for a whole test (request it before ``pbx``).

    The fake's server side reports the handshake the client broke off; requested
    before ``pbx``, the tolerance is removed only after the fake has closed.
    """
    with tls_resets_tolerated():
        yield


@pytest.fixture
async def token_client(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> AsyncGenerator[YeastarClient]:
    """A token-mode client whose token the fake knows (as if made on the PBX's web UI).

    Tests that also use ``freezer`` request it first: the fake stamps the token with
    the (then frozen) clock.
    """
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
    assert pbx.logins == pbx.successful_logins == 1
    (token,) = login_tokens(pbx)
    assert [r.token for r in pbx.calls(PLAY)] == [token] * 20
    # One login and the 20 plays: nothing else was sent.
    assert [r.path for r in pbx.requests] == ["login"] + [PLAY] * 20
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
    assert len(pbx.requests) == 51
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
    assert pbx.logins == pbx.successful_logins == 2
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
    assert pbx.logins == pbx.successful_logins == 2
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
    assert pbx.logins == pbx.successful_logins == 4
    assert len(set(login_tokens(pbx))) == 4
    refused = [r for r in pbx.calls(PLAY) if r.reply and r.reply["status"] == "Failed"]
    assert [r.reply["errno"] for r in refused if r.reply] == ["20004"] * 3
    assert_no_secrets(pbx, caplog, client)


async def test_idle_token_timed_out_by_the_pbx_relogins_once(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token idle for more than the PBX's 30 minutes: 20006, one re-login, success."""
    client = make_client(session, pbx)
    await client.device_info()
    freezer.tick(timedelta(seconds=pbx.token_ttl + 1))

    call_id = await client.play_prompt("1000", "hello111")

    assert call_id
    first, retry = pbx.calls(PLAY)
    old, new = login_tokens(pbx)
    assert first.token == old
    assert first.reply == {"status": "Failed", "errno": "20006"}
    assert retry.token == new
    assert retry.reply == {"status": "Success", "callid": call_id}
    assert pbx.logins == 2
    assert client.diagnostics()["token_age_seconds"] == 0.0
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
    assert pbx.logins == pbx.successful_logins == 2
    first, retry = pbx.calls(PLAY)
    old, new = login_tokens(pbx)
    assert old != new
    assert first.token == old
    assert first.reply == {"status": "Failed", "errno": errno}
    assert retry.token == new
    assert retry.body == first.body
    assert retry.reply == {"status": "Success", "callid": call_id}
    assert [r.path for r in pbx.requests] == ["login", "deviceinfo/query", PLAY, "login", PLAY]
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
    assert err.code == errno
    assert err.target == "1000"
    assert err.message == f"127.0.0.1 refused a token it had just issued (error {errno})"
    assert str(err) == err.message
    assert pbx.logins == 2
    assert len(pbx.calls(PLAY)) == 2
    # Not latched: the next call works with the token it already has.
    assert await client.play_prompt("1000", "alarm")
    assert pbx.logins == 2
    assert client.diagnostics()["auth_failed"] is False
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
    assert first.code == "20003"
    assert first.target == "1000"
    assert first.message == "127.0.0.1 refused the API username or password"
    assert pbx.logins == 1
    assert pbx.calls("login")[0].reply == {"status": "Failed", "errno": "20003"}

    later: list[VoicePromptError] = []
    for _ in range(20):
        with pytest.raises(VoicePromptAuthenticationError) as exc_info:
            await client.play_prompt("1001", "hello111")
        later.append(exc_info.value)
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.device_info()
    later.append(exc_info.value)
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.extensions()
    later.append(exc_info.value)

    assert all(type(e) is VoicePromptAuthenticationError and e.code == "20003" for e in later)
    assert {e.target for e in later[:20]} == {"1001"}
    assert later[-1].target is None
    # Each caller has its own instance: one caller's context stays its own.
    assert len({id(e) for e in [first, *later]}) == len(later) + 1
    # Never a second login attempt (5 failures lock the PBX for 10 minutes).
    assert len(pbx.requests) == 1
    assert pbx.logins == 1
    assert await client.async_keepalive(REPORT_IP) is False
    assert len(pbx.requests) == 1
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
    assert all(type(o) is VoicePromptAuthenticationError for o in outcomes)
    assert all(isinstance(o, VoicePromptError) and o.code == "20003" for o in outcomes)
    assert pbx.logins == 1
    assert len(pbx.requests) == 1


async def test_failed_relogin_is_shared_by_a_broadcast_not_retried_per_extension(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    """The token dies and the re-login fails (not a password error): one attempt.

    Every extension waiting for that login gets its error, each its own instance
    naming its own extension; they do not each log in again, one after another
    (40 timeouts). With 40 extensions and at most MAX_IN_FLIGHT requests at the PBX,
    the second 20 are still on the wire with the dead token when the re-login
    queues behind them: they join it and share its outcome too.
    """
    client = make_client(session, pbx)
    await client.device_info()
    pbx.expire_tokens()
    pbx.latency = 0.1  # keep the re-login in flight while the others queue
    pbx.fail_next["login"] = ["30001"]
    extensions = [str(n) for n in range(1010, 1050)]

    result = await client.async_play(extensions, "hello111")

    # The first login, then a single re-login for all 40.
    assert pbx.logins == 2
    assert pbx.calls("login")[1].reply == {"status": "Failed", "errno": "30001"}
    assert result.calls == []
    assert [extension for extension, _ in result.failures] == extensions
    for extension, err in result.failures:
        assert type(err) is VoicePromptRequestError
        assert err.code == "30001"
        assert err.target == extension
        assert "internal error (error 30001)" in err.message
    assert len({id(err) for _, err in result.failures}) == 40
    # Not latched like a refused password: the next action logs in again.
    pbx.latency = 0.0
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == 3
    assert client.diagnostics()["auth_failed"] is False


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
    assert type(exc_info.value) is VoicePromptAuthenticationError
    assert exc_info.value.code == "20003"
    assert exc_info.value.target == "1000"
    assert pbx.logins == 2
    sent = len(pbx.requests)
    with pytest.raises(VoicePromptAuthenticationError):
        await client.device_info()
    assert pbx.logins == 2
    assert len(pbx.requests) == sent
    assert client.diagnostics()["auth_failed"] is True
    assert_no_secrets(pbx, caplog, client, exc_info.value)


async def test_ip_blocked(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """20002 on login: nothing is sent for 10 minutes, then the client logs in again."""
    pbx.block_ip("127.0.0.1")
    client = make_client(session, pbx)

    with pytest.raises(VoicePromptIPBlockedError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert type(err) is VoicePromptIPBlockedError
    assert not isinstance(err, VoicePromptAuthenticationError)
    assert err.code == "20002"
    assert err.target == "1000"
    assert err.message.startswith("127.0.0.1 has locked out this address")
    assert "10 minutes" in err.message
    assert pbx.logins == 1
    assert pbx.calls("login")[0].reply == {"status": "Failed", "errno": "20002"}
    assert client.diagnostics()["blocked_for_seconds"] == LOCKOUT_SECONDS

    # Inside the lockout window nothing is sent, whatever is asked.
    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS - 1))
    with pytest.raises(VoicePromptIPBlockedError) as exc_info:
        await client.play_prompt("1001", "hello111")
    assert exc_info.value.target == "1001"
    assert exc_info.value.code == "20002"
    with pytest.raises(VoicePromptIPBlockedError):
        await client.device_info()
    result = await client.async_play(["1000", "1001"], "hello111")
    assert [(ext, type(e)) for ext, e in result.failures] == [
        ("1000", VoicePromptIPBlockedError),
        ("1001", VoicePromptIPBlockedError),
    ]
    assert len(pbx.requests) == 1
    assert client.diagnostics()["blocked_for_seconds"] == 1.0
    assert client.diagnostics()["auth_failed"] is False

    # Not latched like a wrong password: once the window is over it logs in again
    # (the fake lifts its block after the same 10 minutes).
    freezer.tick(timedelta(seconds=2))
    assert client.diagnostics()["blocked_for_seconds"] == 0.0
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == pbx.successful_logins + 1 == 2
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
    assert len(pbx.requests) == 1


# ------------------------------------------------------------------------ token mode


async def test_token_mode_never_logs_in(
    token_client: YeastarClient, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    assert token_client.mode is AuthMode.TOKEN
    assert "mode=token" in repr(token_client)
    info = await token_client.device_info()
    call_ids = [await token_client.play_prompt("1000", "hello111") for _ in range(5)]

    assert info.serial == SERIAL
    assert len(set(call_ids)) == 5
    assert pbx.logins == 0
    assert {r.token for r in pbx.requests} == {USER_TOKEN}
    assert len(pbx.requests) == 6
    diagnostics = token_client.diagnostics()
    assert set(diagnostics) == DIAGNOSTICS_KEYS
    assert diagnostics["mode"] == "token"
    assert diagnostics["logged_in"] is True
    # Issued before the client saw it: the age is unknown.
    assert diagnostics["token_age_seconds"] is None
    assert_no_secrets(pbx, caplog, token_client)


async def test_token_mode_dead_token(
    token_client: YeastarClient, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    await token_client.play_prompt("1000", "hello111")
    pbx.expire_tokens()

    with pytest.raises(VoicePromptTokenError) as exc_info:
        await token_client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert type(err) is VoicePromptTokenError
    assert isinstance(err, VoicePromptAuthenticationError)
    assert err.code == "20004"
    assert err.target == "1000"
    assert err.message == "127.0.0.1 refused the API token (unknown, blank or expired)"
    assert pbx.logins == 0
    sent = len(pbx.requests)
    assert sent == 2

    # Latched: no more requests of any kind.
    for _ in range(5):
        with pytest.raises(VoicePromptTokenError):
            await token_client.play_prompt("1000", "hello111")
    with pytest.raises(VoicePromptTokenError):
        await token_client.device_info()
    assert await token_client.async_keepalive(REPORT_IP) is False
    assert len(pbx.requests) == sent
    assert token_client.diagnostics()["auth_failed"] is True
    assert_no_secrets(pbx, caplog, token_client, err)


@pytest.mark.parametrize("errno", TOKEN_ERRNOS)
async def test_token_mode_token_errors(
    token_client: YeastarClient, pbx: FakeYeastarPBX, errno: str
) -> None:
    pbx.fail_next[PLAY] = [errno]
    with pytest.raises(VoicePromptTokenError) as exc_info:
        await token_client.play_prompt("1000", "hello111")
    assert exc_info.value.code == errno
    assert exc_info.value.target == "1000"
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
    assert token_client.diagnostics()["logged_in"] is True


async def test_token_mode_keepalive(
    freezer: FrozenDateTimeFactory, token_client: YeastarClient, pbx: FakeYeastarPBX
) -> None:
    await token_client.device_info()
    assert await token_client.async_keepalive(REPORT_IP) is False
    freezer.tick(timedelta(seconds=KEEPALIVE_AFTER_IDLE))
    assert await token_client.async_keepalive(REPORT_IP) is True
    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.token == USER_TOKEN
    assert heartbeat.body == {"ipaddr": REPORT_IP, "port": "8260"}
    assert heartbeat.reply == {"status": "Success"}
    assert pbx.logins == 0


# -------------------------------------------------------------------- errno mapping


async def _play_failure(client: YeastarClient, pbx: FakeYeastarPBX, errno: str) -> VoicePromptError:
    pbx.fail_next[PLAY] = [errno]
    with pytest.raises(VoicePromptError) as exc_info:
        await client.play_prompt("1000", "hello111+queue1")
    return exc_info.value


def test_every_documented_errno_is_mapped() -> None:
    """The table holds exactly the errnos of the API guide (the fake's list)."""
    assert set(ERRORS) == set(DOCUMENTED_ERRNOS)
    for errno, (cls, message) in ERRORS.items():
        assert issubclass(cls, VoicePromptError), errno
        assert message
        assert set(re.findall(r"{(\w+)}", message)) <= {"code", "host", "extension", "prompt"}


@pytest.mark.parametrize(
    "errno", [errno for errno in ERRORS if errno not in TOKEN_ERRNOS + LOGIN_ERRNOS]
)
async def test_errno_table(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    errno: str,
) -> None:
    cls, message = ERRORS[errno]
    client = make_client(session, pbx)

    err = await _play_failure(client, pbx, errno)

    assert type(err) is cls
    assert err.code == errno
    assert err.target == "1000"
    assert err.message == message.format(
        code=errno, host=HOST, extension="1000", prompt="hello111+queue1"
    )
    assert str(err) == err.message
    assert "{" not in err.message
    assert isinstance(err, VoicePromptInputError) == (errno in INPUT_ERRNOS)
    # One request, no retry, no re-login.
    (play,) = pbx.calls(PLAY)
    assert play.reply == {"status": "Failed", "errno": errno}
    assert pbx.logins == 1
    assert f"failed with errno {errno}" in caplog.text
    assert_no_secrets(pbx, caplog, client, err)


def test_errno_table_classes() -> None:
    input_codes = {
        errno for errno, (cls, _) in ERRORS.items() if issubclass(cls, VoicePromptInputError)
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
    assert (await _play_failure(client, pbx, "10006")).message == (
        "Extension 1000 does not exist on the PBX"
    )
    assert (await _play_failure(client, pbx, "10023")).message.startswith(
        "A prompt in hello111+queue1 is not uploaded to the PBX's Custom Prompts"
    )
    assert (await _play_failure(client, pbx, "10004")).message == (
        "The PBX says a required value is empty (extension 1000, prompt hello111+queue1)"
    )
    assert (await _play_failure(client, pbx, "10008")).message == (
        "Extension 1000 is not idle; try again when it is free"
    )
    assert (await _play_failure(client, pbx, "20009")).message == (
        "The PBX rejected the request format (error 20009)"
    )


async def test_unknown_errno(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(session, pbx)
    err = await _play_failure(client, pbx, "99999")
    assert type(err) is VoicePromptRequestError
    assert err.code == "99999"
    assert err.message == "The PBX refused the request with error 99999"
    assert err.target == "1000"
    assert pbx.logins == 1
    assert len(pbx.calls(PLAY)) == 1
    assert_no_secrets(pbx, caplog, client, err)


@pytest.mark.parametrize(
    "reply",
    [
        {"status": "Failed"},
        {"status": "Failed", "errno": ""},
        {"status": "Failed", "errno": "  "},
        {"status": "Failed", "errno": None},
    ],
    ids=["missing", "empty", "blank", "null"],
)
async def test_failed_without_errno(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, reply: dict[str, Any]
) -> None:
    """A refusal that names no errno is an unknown one, shown as "?"."""
    pbx.reply_override[PLAY] = reply
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert type(exc_info.value) is VoicePromptRequestError
    assert exc_info.value.code == "?"
    assert exc_info.value.target == "1000"
    assert "error ?" in exc_info.value.message


async def test_numeric_errno(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    """An errno sent as a JSON number maps like the string."""
    pbx.reply_override[PLAY] = {"status": "Failed", "errno": 10006}
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.code == "10006"
    assert exc_info.value.message == "Extension 1000 does not exist on the PBX"


@pytest.mark.parametrize(
    ("extension", "prompt", "errno", "cls", "words"),
    [
        ("4242", "hello111", "10006", VoicePromptInputError, "Extension 4242 does not exist"),
        ("1000", "not_uploaded", "10023", VoicePromptInputError, "A prompt in not_uploaded"),
        ("1000", "hello111+missing", "10023", VoicePromptInputError, "hello111+missing"),
        ("1002", "hello111", "10015", VoicePromptRequestError, "extension 1002 could not"),
        ("1003", "hello111", "10008", VoicePromptRequestError, "Extension 1003 is not idle"),
    ],
)
async def test_real_fake_refusals(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    extension: str,
    prompt: str,
    errno: str,
    cls: type[VoicePromptError],
    words: str,
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(cls) as exc_info:
        await client.play_prompt(extension, prompt)
    err = exc_info.value
    assert type(err) is cls
    assert err.code == errno
    assert err.target == extension
    assert words in err.message
    (play,) = pbx.calls(PLAY)
    assert play.reply == {"status": "Failed", "errno": errno}
    assert_no_secrets(pbx, caplog, client, err)


async def test_set_extension_status(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    pbx.set_extension_status("1000", "Busy")
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert exc_info.value.code == "10008"
    assert exc_info.value.message == "Extension 1000 is not idle; try again when it is free"
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
        session, HOST, port=port, username="api", password=PASSWORD, verify_ssl=False
    )
    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert type(err) is VoicePromptConnectionError
    assert err.code is None
    assert err.target == "1000"
    assert err.message == "Cannot connect to 127.0.0.1 (connection refused)"
    assert err.__suppress_context__
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
    assert err.message == "Cannot connect to pbx.invalid (host name not found)"
    assert err.target is None
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
    assert type(err) is VoicePromptTimeoutError
    assert isinstance(err, VoicePromptConnectionError)
    assert err.message == "127.0.0.1 did not answer within 0.5 seconds"
    assert err.target == "1000"
    assert len(pbx.calls(PLAY)) == 1
    assert_no_secrets(pbx, caplog, client, err)


async def test_hang_on_login_times_out(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    pbx.hang = True
    client = make_client(session, pbx, request_timeout=0.3)
    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await client.device_info()
    assert exc_info.value.message == "127.0.0.1 did not answer within 0.3 seconds"
    assert pbx.logins == 1
    # A timeout is not latched: the next request logs in again.
    pbx.hang = False
    assert (await client.device_info()).serial == SERIAL
    assert pbx.logins == 2


async def test_login_timeout_is_shared_by_a_broadcast(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The first login hangs: one attempt, and every extension gets its own timeout."""
    pbx.hang = True
    client = make_client(session, pbx, request_timeout=0.3)
    result = await client.async_play(["1000", "1001", "1010"], "hello111")

    assert result.calls == []
    assert [(ext, type(err), err.target) for ext, err in result.failures] == [
        ("1000", VoicePromptTimeoutError, "1000"),
        ("1001", VoicePromptTimeoutError, "1001"),
        ("1010", VoicePromptTimeoutError, "1010"),
    ]
    assert {err.message for _, err in result.failures} == {
        "127.0.0.1 did not answer within 0.3 seconds"
    }
    assert len({id(err) for _, err in result.failures}) == 3
    assert pbx.logins == 1
    assert len(pbx.requests) == 1
    assert_no_secrets(pbx, caplog, client, *(err for _, err in result.failures))


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
    assert type(err) is VoicePromptResponseError
    assert err.message == (
        f"127.0.0.1 sent a reply that is not a valid Yeastar API response (HTTP status {status})"
    )
    assert err.target == "1000"
    assert len(pbx.calls(PLAY)) == 1
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
    assert exc_info.value.message.endswith("(not JSON)")
    assert exc_info.value.target == "1000"
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
    assert err.code is None
    assert err.message == (
        f"127.0.0.1 sent a reply that is not a valid Yeastar API response ({detail})"
    )
    assert err.target == ("1000" if path in (PLAY, "login") else None)
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
    assert err.target == "1000"
    assert err.message == "Cannot connect to 127.0.0.1 (the server closed the connection)"
    assert err.__cause__ is None
    assert err.__suppress_context__
    assert len(pbx.calls(PLAY)) >= 1
    assert_no_secrets(pbx, caplog, client, err)

    pbx.drop_connection = False
    assert await client.play_prompt("1000", "hello111")
    assert pbx.logins == 1


async def test_tls_self_signed_refused(
    tolerant_loop: None,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Verification on (the default) refuses the fake's self-signed certificate."""
    client = make_client(session, pbx, verify_ssl=True)
    with pytest.raises(VoicePromptSSLError) as exc_info:
        await client.play_prompt("1000", "hello111")
    err = exc_info.value
    assert type(err) is VoicePromptSSLError
    assert isinstance(err, VoicePromptConnectionError)
    assert err.message.startswith("The TLS certificate of 127.0.0.1 was not accepted")
    assert (
        err.message == "The TLS certificate of 127.0.0.1 was not accepted (self-signed certificate)"
    )
    assert err.target == "1000"
    assert pbx.requests == []
    assert client.diagnostics()["logged_in"] is False
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


def test_describe_is_ours_and_holds_no_url() -> None:
    """Errors say why in a few words of ours; aiohttp's texts (with the token URL) stay out."""
    url = URL("https://pbx:8088/api/v1.0.0/extension/playprompt?token=secret123&x=1")
    info = aiohttp.RequestInfo(url, "POST", {}, url)  # type: ignore[arg-type]
    response_error = aiohttp.ClientResponseError(info, (), status=400, message="Bad Request")
    assert "secret123" in str(response_error)
    key = aiohttp.client_reqrep.ConnectionKey("pbx", 8088, True, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    cases = {
        response_error: "the reply was not valid HTTP",
        refused: "connection refused",
        aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known")): (
            "host name not found"
        ),
        aiohttp.ServerDisconnectedError(): "the server closed the connection",
        aiohttp.ClientPayloadError("Response payload is not completed"): "the reply broke off",
        aiohttp.InvalidURL("https://h/api/x?token=abc"): "InvalidURL",
        aiohttp.ClientError(): "ClientError",
    }
    for err, expected in cases.items():
        assert http.describe(err) == expected, err


async def test_repr_and_diagnostics_hold_no_secrets(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(session, pbx)
    assert repr(client) == (
        f"YeastarClient(host='127.0.0.1', port={pbx.port}, mode=credentials, logged_in=False)"
    )
    assert client.diagnostics() == {
        "host": HOST,
        "port": pbx.port,
        "verify_ssl": False,
        "mode": "credentials",
        "logged_in": False,
        "token_age_seconds": None,
        "idle_seconds": None,
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
    }

    await client.play_prompt("1000", "hello111")
    freezer.tick(timedelta(seconds=4))
    await client.device_info()
    freezer.tick(timedelta(seconds=3))
    assert "logged_in=True" in repr(client)
    assert client.diagnostics() == {
        "host": HOST,
        "port": pbx.port,
        "verify_ssl": False,
        "mode": "credentials",
        "logged_in": True,
        "token_age_seconds": 7.0,
        "idle_seconds": 3.0,
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
    }
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


NO_PROMPT = "No prompt was given"
EMPTY_NAME = "A prompt name is empty"
ONLY_DIGITS = "is only digits, which the PBX does not accept"
HAS_PLUS = "contains +, which the PBX uses to join names"
NOT_NAMES = "The prompt must be a name or a list of names"
BAD_NAME = "is not a valid Custom Prompt name"
TOO_MANY_PROMPTS = f"At most {MAX_PROMPTS} prompts can be played in one call"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", NO_PROMPT),
        ([], NO_PROMPT),
        ([""], NO_PROMPT),
        ("  ", EMPTY_NAME),
        (["a", " "], EMPTY_NAME),
        ("a+", EMPTY_NAME),
        ("a++b", EMPTY_NAME),
        ("123", ONLY_DIGITS),
        (["a", "007"], ONLY_DIGITS),
        (["a+b"], HAS_PLUS),
        ([1], NOT_NAMES),
        (["a", None], NOT_NAMES),
        ([["a"]], NOT_NAMES),
        (None, NOT_NAMES),
        (42, NOT_NAMES),
        ({"a"}, NOT_NAMES),
        (b"ab", NOT_NAMES),
        ("+".join(f"p{i}" for i in range(MAX_PROMPTS + 1)), TOO_MANY_PROMPTS),
        ([f"p{i}" for i in range(MAX_PROMPTS + 1)], TOO_MANY_PROMPTS),
        ("x" * (MAX_PROMPT_LENGTH + 1), BAD_NAME),
        ("bad\x00name", BAD_NAME),
        ("bad\nname", BAD_NAME),
        ("bad\u200bname", BAD_NAME),
    ],
)
def test_normalize_prompts_refused(value: Any, words: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts(value)
    err = exc_info.value
    assert type(err) is VoicePromptInputError
    assert words in err.message
    assert str(err) == err.message
    assert err.code is None
    assert err.target is None
    assert "{" not in err.message
    assert len(err.message) < 160


def test_normalize_prompts_messages_name_the_prompt() -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts("ok+12")
    assert exc_info.value.message == "Prompt name 12 is only digits, which the PBX does not accept"
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts(["ok", "a+b"])
    assert exc_info.value.message.startswith("Prompt name a+b contains +")
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts("y" * 300)
    # A long name is shown cut to 40 characters.
    assert exc_info.value.message == "y" * 40 + " is not a valid Custom Prompt name"
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_prompts(["p"] * (MAX_PROMPTS + 1))
    assert exc_info.value.message == TOO_MANY_PROMPTS


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


NO_EXTENSION = "No extension was given"
NOT_AN_EXTENSION = "is not an extension number (digits only, like 1000)"
TOO_MANY_EXTENSIONS = f"At most {MAX_EXTENSIONS} extensions can be called at once"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", NO_EXTENSION),
        ("  ", NO_EXTENSION),
        (",", NO_EXTENSION),
        ([], NO_EXTENSION),
        ([""], NO_EXTENSION),
        ("abc", NOT_AN_EXTENSION),
        ("10 00", NOT_AN_EXTENSION),
        ("1000,abc", NOT_AN_EXTENSION),
        ("+1000", NOT_AN_EXTENSION),
        ("1" * 17, NOT_AN_EXTENSION),
        ("\u0661\u0660\u0660\u0660", NOT_AN_EXTENSION),  # Arabic-Indic 1000
        (True, NOT_AN_EXTENSION),
        (False, NOT_AN_EXTENSION),
        ([True], NOT_AN_EXTENSION),
        (-1, NOT_AN_EXTENSION),
        (1000.0, NOT_AN_EXTENSION),
        (None, NOT_AN_EXTENSION),
        ({"1000"}, NOT_AN_EXTENSION),
        ([["1000"]], NOT_AN_EXTENSION),
        (["1000", None], NOT_AN_EXTENSION),
        (["1000", "9" * 60], NOT_AN_EXTENSION),
        ([str(1000 + i) for i in range(MAX_EXTENSIONS + 1)], TOO_MANY_EXTENSIONS),
        (",".join(str(1000 + i) for i in range(MAX_EXTENSIONS + 1)), TOO_MANY_EXTENSIONS),
    ],
)
def test_normalize_extensions_refused(value: Any, words: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions(value)
    err = exc_info.value
    assert type(err) is VoicePromptInputError
    assert words in err.message
    assert str(err) == err.message
    assert err.code is None
    assert err.target is None
    # What the caller gave is shown cut to 40 characters.
    assert len(err.message) <= 40 + len(NOT_AN_EXTENSION) + 1


def test_normalize_extensions_messages_name_the_value() -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions("1000,10 00")
    assert exc_info.value.message == "10 00 is not an extension number (digits only, like 1000)"
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions(True)
    assert exc_info.value.message == "True is not an extension number (digits only, like 1000)"
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_extensions(["1000", "9" * 60])
    assert exc_info.value.message == "9" * 40 + " " + NOT_AN_EXTENSION


REFUSED_CALLS: list[tuple[Any, Any, str]] = [
    ("1000", "", NO_PROMPT),
    ("1000", [], NO_PROMPT),
    ("1000", "123", ONLY_DIGITS),
    ("1000", "a+", EMPTY_NAME),
    ("1000", ["a+b"], HAS_PLUS),
    ("1000", [1], NOT_NAMES),
    ("1000", "bad\x07", BAD_NAME),
    ("1000", ["p"] * (MAX_PROMPTS + 1), TOO_MANY_PROMPTS),
    ("", "hello111", NO_EXTENSION),
    ("abc", "hello111", NOT_AN_EXTENSION),
    ("10 00", "hello111", NOT_AN_EXTENSION),
    (True, "hello111", NOT_AN_EXTENSION),
    (-1, "hello111", NOT_AN_EXTENSION),
    ([["1000"]], "hello111", NOT_AN_EXTENSION),
]


@pytest.mark.parametrize(("extension", "prompt", "words"), REFUSED_CALLS)
async def test_play_prompt_refuses_input_before_sending(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    extension: Any,
    prompt: Any,
    words: str,
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt(extension, prompt)
    assert words in exc_info.value.message
    assert pbx.requests == []


@pytest.mark.parametrize(
    ("extension", "prompt", "words"),
    [
        *REFUSED_CALLS,
        ([str(1000 + i) for i in range(MAX_EXTENSIONS + 1)], "hello111", TOO_MANY_EXTENSIONS),
        ("1000, 1001", "123", ONLY_DIGITS),
        ("1000, abc", "hello111", NOT_AN_EXTENSION),
    ],
)
async def test_async_play_refuses_input_before_sending(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    extension: Any,
    prompt: Any,
    words: str,
) -> None:
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.async_play(extension, prompt)
    assert words in exc_info.value.message
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
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt(extension, "hello111")
    assert exc_info.value.message == (
        f"{extension} is more than one extension; use async_play for several"
    )
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
    assert type(err) is VoicePromptInputError
    assert err.code == "10006"
    assert err.target == "4242"
    assert err.message == "Extension 4242 does not exist on the PBX"
    assert sorted(r.body["extid"] for r in pbx.calls(PLAY)) == ["1000", "1001", "4242"]
    assert pbx.logins == 1
    assert_no_secrets(pbx, caplog, client, err)


async def test_async_play_all_fail(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    result = await client.async_play("4242, 1002, 1003", "hello111")
    assert result.calls == []
    assert [(ext, type(err), err.code, err.target) for ext, err in result.failures] == [
        ("4242", VoicePromptInputError, "10006", "4242"),
        ("1002", VoicePromptRequestError, "10015", "1002"),
        ("1003", VoicePromptRequestError, "10008", "1003"),
    ]
    assert [ext in err.message for ext, err in result.failures] == [True, True, True]


async def test_async_play_auth_failure_reaches_every_extension(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    pbx.password = "other"
    client = make_client(session, pbx)
    result = await client.async_play(["1000", "1001", "1010"], "hello111")
    assert result.calls == []
    assert [(ext, type(err), err.code, err.target) for ext, err in result.failures] == [
        ("1000", VoicePromptAuthenticationError, "20003", "1000"),
        ("1001", VoicePromptAuthenticationError, "20003", "1001"),
        ("1010", VoicePromptAuthenticationError, "20003", "1010"),
    ]
    assert pbx.logins == 1
    assert len(pbx.requests) == 1


async def test_async_play_single_extension(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    """One target: the call id is returned, and a failure is returned too (not raised)."""
    client = make_client(session, pbx)
    result = await client.async_play("1000", "hello111", autoanswer=True)
    ((extension, call_id),) = result.calls
    assert extension == "1000"
    assert call_id
    assert result.failures == []
    assert pbx.calls(PLAY)[0].body["autoanswer"] == "yes"

    result = await client.async_play(["4242", "4242"], "hello111")
    assert result.calls == []
    ((extension, err),) = result.failures
    assert extension == "4242"
    assert type(err) is VoicePromptInputError
    assert err.code == "10006"
    assert err.target == "4242"
    assert err.message == "Extension 4242 does not exist on the PBX"
    assert [r.body["extid"] for r in pbx.calls(PLAY)] == ["1000", "4242"]

    # A failure of the PBX itself (not the input) is returned the same way.
    pbx.http_status = 503
    result = await client.async_play("1001", "hello111")
    ((extension, err),) = result.failures
    assert (extension, type(err), err.target) == ("1001", VoicePromptResponseError, "1001")
    assert result.calls == []


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
        with pytest.raises(RuntimeError, match="bug in a hook"):
            await client.async_play("1000", "hello111")
        # aiohttp leaves the aborted request's timeout timer behind: let it run out.
        await asyncio.sleep(0.1)
    assert pbx.requests == []


async def test_closed_session_is_a_connection_error(pbx: FakeYeastarPBX) -> None:
    """After Home Assistant closed its session, requests fail as connection errors."""
    closed = aiohttp.ClientSession()
    client = make_client(closed, pbx)
    await closed.close()
    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.play_prompt("1000", "hello111")
    assert type(exc_info.value) is VoicePromptConnectionError
    assert exc_info.value.message == "Cannot connect to 127.0.0.1: the HTTP session is closed"
    assert exc_info.value.target == "1000"
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


async def test_async_play_in_flight_bound(pbx: FakeYeastarPBX) -> None:
    """A broadcast keeps at most MAX_IN_FLIGHT requests at the PBX, and uses them all."""
    trace, state = _in_flight_tracer()
    async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
        client = make_client(traced, pbx)
        targets = [str(n) for n in range(1010, 1050)]
        # Warm-up without latency: logs in and pools the TLS connections, so the timed
        # run measures round trips, not handshakes on a busy machine.
        await client.async_play(targets, "hello111")
        assert state.peak <= MAX_IN_FLIGHT
        pbx.latency = 0.25
        state.peak = 0
        started = time.monotonic()
        result = await client.async_play(targets, "hello111")
        elapsed = time.monotonic() - started
        await client.async_close()

    assert [ext for ext, _ in result.calls] == targets
    assert result.failures == []
    assert state.now == 0
    assert state.total == 1 + 2 * len(targets) + 1  # login, two broadcasts, logout
    assert state.peak == MAX_IN_FLIGHT
    # Each slot runs its requests one after the other, each at least one latency.
    rounds = -(-len(targets) // MAX_IN_FLIGHT)
    assert elapsed >= rounds * pbx.latency * 0.9
    # Sequential would take len(targets) x latency (10 s for 40 targets); bounded
    # it takes a few round trips (0.5 s for 20 at a time, plus overhead).
    assert elapsed < 20 * pbx.latency


async def test_in_flight_bound_holds_across_actions(pbx: FakeYeastarPBX) -> None:
    """Several actions at once share the client's MAX_IN_FLIGHT slots."""
    trace, state = _in_flight_tracer()
    async with aiohttp.ClientSession(trace_configs=[trace]) as traced:
        client = make_client(traced, pbx)
        await client.device_info()
        pbx.latency = 0.1
        state.peak = 0
        broadcasts = asyncio.gather(
            *(
                client.async_play([str(n) for n in range(start, start + 15)], "hello111")
                for start in (1010, 1030, 1050)
            )
        )
        singles = asyncio.gather(*(client.play_prompt("1000", "doorbell") for _ in range(10)))
        results, call_ids = await asyncio.gather(broadcasts, singles)
        await client.async_close()

    assert [len(r.calls) for r in results] == [15, 15, 15]
    assert all(r.failures == [] for r in results)
    assert len(set(call_ids)) == 10
    assert len(pbx.calls(PLAY)) == 55
    assert state.now == 0
    assert state.peak == MAX_IN_FLIGHT


# ------------------------------------------------------------------------- keepalive


async def test_keepalive(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A heartbeat only after the token sat idle for at least 10 minutes."""
    client = make_client(session, pbx)
    assert await client.async_keepalive(REPORT_IP) is False
    assert pbx.requests == []

    await client.play_prompt("1000", "hello111")
    assert await client.async_keepalive(REPORT_IP) is False
    assert pbx.calls("heartbeat") == []

    freezer.tick(timedelta(seconds=KEEPALIVE_AFTER_IDLE - 1))
    assert await client.async_keepalive(REPORT_IP) is False
    assert pbx.calls("heartbeat") == []
    freezer.tick(timedelta(seconds=1))
    assert client.diagnostics()["idle_seconds"] == KEEPALIVE_AFTER_IDLE
    assert await client.async_keepalive(REPORT_IP) is True

    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.token == login_tokens(pbx)[0]
    assert heartbeat.body == {"ipaddr": REPORT_IP, "port": "8260"}
    assert heartbeat.reply == {"status": "Success"}
    # The heartbeat counts as use.
    assert client.diagnostics()["idle_seconds"] == 0.0
    assert await client.async_keepalive(REPORT_IP) is False
    assert len(pbx.calls("heartbeat")) == 1
    assert pbx.logins == 1
    assert_no_secrets(pbx, caplog, client)


async def test_keepalive_reports_the_address_it_is_given(
    freezer: FrozenDateTimeFactory, session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    """The caller names the address; the client sends nothing else to find one."""
    client = make_client(session, pbx, report_port=9000)
    await client.device_info()
    for address in (REPORT_IP, "10.10.10.10"):
        freezer.tick(timedelta(seconds=KEEPALIVE_AFTER_IDLE))
        assert await client.async_keepalive(address) is True
    assert [r.body for r in pbx.calls("heartbeat")] == [
        {"ipaddr": REPORT_IP, "port": "9000"},
        {"ipaddr": "10.10.10.10", "port": "9000"},
    ]
    assert [r.path for r in pbx.requests] == ["login", "deviceinfo/query", "heartbeat", "heartbeat"]


@pytest.mark.parametrize(
    ("lose_token", "errno"),
    [("restart", "20004"), ("idle past the PBX's 30 minutes", "20006")],
)
async def test_keepalive_after_token_lost(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    lose_token: str,
    errno: str,
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    if lose_token == "restart":
        pbx.expire_tokens()
        freezer.tick(timedelta(seconds=KEEPALIVE_AFTER_IDLE))
    else:
        freezer.tick(timedelta(seconds=pbx.token_ttl + 1))

    assert await client.async_keepalive(REPORT_IP) is True

    assert pbx.logins == 2
    refused, accepted = pbx.calls("heartbeat")
    assert refused.reply == {"status": "Failed", "errno": errno}
    assert refused.token == login_tokens(pbx)[0]
    assert accepted.reply == {"status": "Success"}
    assert accepted.token == login_tokens(pbx)[1]
    assert_no_secrets(pbx, caplog, client)


async def test_keepalive_failure_raises(
    freezer: FrozenDateTimeFactory, session: aiohttp.ClientSession, pbx: FakeYeastarPBX
) -> None:
    client = make_client(session, pbx)
    await client.device_info()
    freezer.tick(timedelta(seconds=KEEPALIVE_AFTER_IDLE + 1))
    pbx.fail_next["heartbeat"] = ["20008"]
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.async_keepalive(REPORT_IP)
    assert type(exc_info.value) is VoicePromptRequestError
    assert exc_info.value.code == "20008"
    assert exc_info.value.message == "The PBX rejected the request format (error 20008)"
    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.reply == {"status": "Failed", "errno": "20008"}
    # The PBX answered with the token (it was not a token error): that refreshed it.
    assert await client.async_keepalive(REPORT_IP) is False
    assert len(pbx.calls("heartbeat")) == 1
    assert pbx.logins == 1


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
    assert pbx.tokens == {}


# ---------------------------------------------------------------- device and lists


async def test_device_info(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> None:
    client = make_client(session, pbx)
    info = await client.device_info()
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
        YeastarClient(session, HOST, username="api", password=PASSWORD, token="t")
    with pytest.raises(ValueError, match="either"):
        YeastarClient(session, HOST, username="api")
    with pytest.raises(ValueError, match="username"):
        YeastarClient(session, HOST, password=PASSWORD)
    with pytest.raises(ValueError, match="username"):
        YeastarClient(session, HOST, username="", password=PASSWORD)
    # A blank token would reach the PBX as none at all (20005): refused up front.
    with pytest.raises(ValueError, match="empty"):
        YeastarClient(session, HOST, token="")


def test_constructor_defaults(session: aiohttp.ClientSession) -> None:
    client = YeastarClient(session, "pbx.local", username="api", password=PASSWORD)
    assert client.port == yeastar.DEFAULT_PORT == 8088
    assert client.verify_ssl is True
    assert client.mode is AuthMode.CREDENTIALS
    assert client.web_url == "https://pbx.local:8088"
    assert repr(client) == (
        "YeastarClient(host='pbx.local', port=8088, mode=credentials, logged_in=False)"
    )
    assert PASSWORD not in repr(client)
    assert PASSWORD_MD5 not in repr(client)
    assert PASSWORD not in json.dumps(client.diagnostics())
    assert PASSWORD_MD5 not in json.dumps(client.diagnostics())

    token_client = YeastarClient(session, "pbx.local", token=USER_TOKEN, port=80)
    assert token_client.mode is AuthMode.TOKEN
    assert token_client.diagnostics()["mode"] == "token"
    assert token_client.web_url == "https://pbx.local:80"
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
    assert http.url_host(host) == expected


def test_ipv6_web_url(session: aiohttp.ClientSession) -> None:
    client = YeastarClient(session, "::1", port=8443, username="api", password=PASSWORD)
    assert client.web_url == "https://[::1]:8443"
    assert client.host == "::1"
    assert client.diagnostics()["host"] == "::1"


def test_web_url(session: aiohttp.ClientSession) -> None:
    client = YeastarClient(session, "192.168.1.20", username="api", password=PASSWORD)
    assert client.web_url == "https://192.168.1.20:8088"
    token_client = YeastarClient(session, "pbx.local", port=443, token=USER_TOKEN)
    assert token_client.web_url == "https://pbx.local:443"
    assert USER_TOKEN not in token_client.web_url


def test_error_for_builds_table_errors() -> None:
    err = error_for("10008", "pbx")
    assert type(err) is VoicePromptRequestError
    assert err.code == "10008"
    assert err.target is None
    # Outside a call the extension is shown as "-".
    assert err.message == "Extension - is not idle; try again when it is free"
    named = error_for("10023", "pbx", extension="1000", prompt="a+b")
    assert type(named) is VoicePromptInputError
    assert named.target == "1000"
    assert named.message.startswith("A prompt in a+b is not uploaded")
    assert error_for("20003", "pbx.local").message == (
        "pbx.local refused the API username or password"
    )
    unknown = error_for("4711", "pbx")
    assert type(unknown) is VoicePromptRequestError
    assert unknown.code == "4711"
    assert unknown.message == "The PBX refused the request with error 4711"


# -------------------------------------------------------------------- exceptions.py


def test_error_attributes_and_copy() -> None:
    err = VoicePromptError("boom")
    assert str(err) == err.message == "boom"
    assert err.args == ("boom",)
    assert err.code is None
    assert err.target is None

    refused = VoicePromptRequestError("refused", code="10008", target="1000")
    assert (refused.message, refused.code, refused.target) == ("refused", "10008", "1000")
    copy = refused.copy()
    assert copy is not refused
    assert type(copy) is VoicePromptRequestError
    assert (copy.message, copy.code, copy.target, str(copy)) == (
        "refused",
        "10008",
        "1000",
        "refused",
    )
    # A copy is independent: context one caller adds stays its own.
    copy.target = "1001"
    assert refused.target == "1000"


def test_error_class_tree() -> None:
    assert issubclass(VoicePromptTimeoutError, VoicePromptConnectionError)
    assert issubclass(VoicePromptSSLError, VoicePromptConnectionError)
    assert issubclass(VoicePromptTokenError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptTenantNotFoundError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptSecretExpiredError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptInputError, VoicePromptRequestError)
    assert issubclass(VoicePromptApiDisabledError, VoicePromptRequestError)
    # Blocked is not a credentials problem: it lifts by itself, no reauth.
    assert not issubclass(VoicePromptIPBlockedError, VoicePromptAuthenticationError)
    assert not issubclass(VoicePromptResponseError, VoicePromptConnectionError)
    names = [name for name in api.__all__ if name.startswith("VoicePrompt")]
    assert len(names) == 13
    for name in names:
        cls = getattr(api, name)
        assert name.endswith("Error")
        assert issubclass(cls, VoicePromptError)
        err = cls("message", code="1", target="1000")
        assert (str(err), err.code, err.target) == ("message", "1", "1000")
        assert not hasattr(err, "translation_key")
        assert not hasattr(err, "placeholders")
