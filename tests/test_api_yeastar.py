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
    MAX_COUNT,
    MAX_EXTENSIONS,
    MAX_IN_FLIGHT,
    MAX_NUMBER_DIGITS,
    MAX_PROMPT_LENGTH,
    MAX_PROMPTS,
    MAX_VOLUME,
    MIN_VOLUME,
    V2_FIRMWARE,
    ApiVersion,
    error_for,
    firmware_supports_v2,
    normalize_numbers,
)
from tests.conftest import PASSWORD, SERIAL, tls_resets_tolerated
from tests.fakes import yeastar as fake_yeastar
from tests.fakes.yeastar import (
    API_V1,
    API_V2,
    ERRORS as DOCUMENTED_ERRNOS,
    NOT_FOUND_BODY,
    V2_FIRMWARE_VERSION,
    FakeYeastarPBX,
)

PLAY = "extension/playprompt"
LOGGER_NAME = "custom_components.voice_prompt"
HOST = "127.0.0.1"
PASSWORD_MD5 = FakeYeastarPBX.md5(PASSWORD)
USER_TOKEN = "0123456789abcdef0123456789abcdef"
# The address the caller (the backend) tells the PBX in heartbeats.
REPORT_IP = "192.0.2.7"
TOKEN_ERRNOS = ("20004", "20005", "20006")
LOGIN_ERRNOS = ("20002", "20003")
INPUT_ERRNOS = ("10004", "10006", "10011", "10023", "10031")
DIAGNOSTICS_KEYS = {
    "host",
    "port",
    "verify_ssl",
    "certificate_mode",
    "certificate_sha256",
    "mode",
    "logged_in",
    "token_age_seconds",
    "idle_seconds",
    "auth_failed",
    "blocked_for_seconds",
    "api_version",
    "api_version_reason",
    "event_transport",
    "report_url_set",
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
        "certificate_mode": "none",
        "certificate_sha256": None,
        "mode": "credentials",
        "logged_in": False,
        "token_age_seconds": None,
        "idle_seconds": None,
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
        "api_version": None,
        "api_version_reason": None,
        "event_transport": None,
        "report_url_set": False,
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
        "certificate_mode": "none",
        "certificate_sha256": None,
        "mode": "credentials",
        "logged_in": True,
        "token_age_seconds": 7.0,
        "idle_seconds": 3.0,
        "auth_failed": False,
        "blocked_for_seconds": 0.0,
        # device_info() decided: the fake's default firmware has no API v2.
        "api_version": "1.0.0",
        "api_version_reason": "127.0.0.1 runs firmware 30.5.0.109",
        "event_transport": None,
        "report_url_set": False,
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
    # Undecided until device_info() read the firmware.
    assert client.api_version is None
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
    # A token from elsewhere stays on API v1: trying v2 needs a login.
    assert token_client.api_version is ApiVersion.V1
    assert token_client.diagnostics()["api_version"] == "1.0.0"
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
    assert issubclass(api.VoicePromptCertificateChangedError, VoicePromptSSLError)
    assert issubclass(VoicePromptTokenError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptTenantNotFoundError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptSecretExpiredError, VoicePromptAuthenticationError)
    assert issubclass(VoicePromptInputError, VoicePromptRequestError)
    assert issubclass(VoicePromptApiDisabledError, VoicePromptRequestError)
    # Blocked is not a credentials problem: it lifts by itself, no reauth.
    assert not issubclass(VoicePromptIPBlockedError, VoicePromptAuthenticationError)
    assert not issubclass(VoicePromptResponseError, VoicePromptConnectionError)
    names = [name for name in api.__all__ if name.startswith("VoicePrompt")]
    assert len(names) == 15
    for name in names:
        cls = getattr(api, name)
        assert name.endswith("Error")
        assert issubclass(cls, VoicePromptError)
        err = cls("message", code="1", target="1000")
        assert (str(err), err.code, err.target) == ("message", "1", "1000")
        assert not hasattr(err, "translation_key")
        assert not hasattr(err, "placeholders")


# ------------------------------------------------------------------------ API v2.0.0

V2_PLAY = "v2/call/playprompt"
V1_REASON = "127.0.0.1 runs firmware 30.5.0.109"
V2_REASON = f"firmware {V2_FIRMWARE_VERSION}; the API v2 login worked"
NEEDS_V2 = f"S-Series API v2 (firmware {V2_FIRMWARE} or newer)"
# What a client sends to detect v2 on a PBX that has it: the v1 token goes afterwards.
DETECTED_V2 = [
    (API_V1, "login"),
    (API_V1, "deviceinfo/query"),
    (API_V2, "login"),
    (API_V1, "logout"),
]


def sent(pbx: FakeYeastarPBX) -> list[tuple[str, str]]:
    """Every request the fake received, as (API version, path)."""
    return [(r.api, r.path) for r in pbx.requests]


@pytest.fixture
def v2_pbx(pbx: FakeYeastarPBX) -> FakeYeastarPBX:
    """The fake PBX on firmware 30.13.0.30: API v2.0.0 answers next to v1.0.0."""
    pbx.firmware_version = V2_FIRMWARE_VERSION
    assert pbx.has_v2
    return pbx


async def detected_v2_client(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, **kwargs: Any
) -> YeastarClient:
    """A client that has read the firmware and switched to v2 (four requests)."""
    client = make_client(session, pbx, **kwargs)
    await client.device_info()
    assert client.api_version is ApiVersion.V2
    assert sent(pbx) == DETECTED_V2
    return client


def v2_token(pbx: FakeYeastarPBX, index: int = -1) -> str:
    """A token the fake's v2 login issued (the last one by default)."""
    tokens = [
        str(r.reply["token"])
        for r in pbx.calls("v2/login")
        if r.reply is not None and r.reply.get("status") == "Success"
    ]
    return tokens[index]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("30.13.0.30", True),
        ("30.13.0.31", True),
        ("30.13.1.0", True),
        ("30.14.0.2", True),
        ("31.1.0.1", True),
        ("30.13.0.30-beta", True),
        (" 30.20.0.5", True),
        ("30.13.0.30.1", True),
        ("30.13.0.29", False),
        ("30.12.0.99", False),
        ("30.5.0.109", False),
        ("30.13", False),  # 30.13.0.0: older than 30.13.0.30
        ("29.99.99.99", False),
        ("", False),
        (None, False),
        ("V30.13.0.30", False),
        ("unknown", False),
        ("9" * 5000, True),  # no int() of a 5000-digit text: the first 9 digits decide
    ],
)
def test_firmware_supports_v2(version: str | None, expected: bool) -> None:
    assert firmware_supports_v2(version) is expected


@pytest.mark.parametrize(
    ("firmware", "v2_there", "reason"),
    [
        ("30.5.0.109", False, V1_REASON),
        ("30.13.0.29", False, "127.0.0.1 runs firmware 30.13.0.29"),
        # The firmware decides: an older one is not asked, even if v2 would answer.
        ("30.12.0.99", True, "127.0.0.1 runs firmware 30.12.0.99"),
        ("garbage", False, "127.0.0.1 runs firmware garbage"),
        ("", False, "127.0.0.1 reports no firmware version"),
    ],
)
async def test_detection_old_firmware_stays_on_v1(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    firmware: str,
    v2_there: bool,
    reason: str,
) -> None:
    """Older firmware: the v1 device query decides, and nothing is sent to v2."""
    pbx.firmware_version = firmware
    pbx.api_v2 = v2_there
    client = make_client(session, pbx)
    assert client.diagnostics()["api_version"] is None

    info = await client.device_info()

    assert info.firmware_version == (firmware or None)
    assert client.api_version is ApiVersion.V1
    assert sent(pbx) == [(API_V1, "login"), (API_V1, "deviceinfo/query")]
    diagnostics = client.diagnostics()
    assert diagnostics["api_version"] == "1.0.0"
    assert diagnostics["api_version_reason"] == reason
    assert diagnostics["event_transport"] is None
    assert f"127.0.0.1: using API 1.0.0 ({reason})" in caplog.text

    # Decided once: plays ring extensions the v1 way, a second query asks nothing new.
    await client.play_prompt("1000", "hello111")
    await client.device_info()
    assert sent(pbx)[2:] == [(API_V1, PLAY), (API_V1, "deviceinfo/query")]
    assert pbx.calls(PLAY)[0].body == {"extid": "1000", "prompt": "hello111", "autoanswer": "no"}
    assert pbx.calls("v2/login") == []
    assert_no_secrets(pbx, caplog, client)


@pytest.mark.parametrize("firmware", ["30.13.0.30", "30.14.0.2", "31.1.0.1"])
async def test_detection_new_firmware_switches_to_v2(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    firmware: str,
) -> None:
    """Firmware 30.13.0.30+: the v2 login is tried, works, and the v1 token is logged out."""
    pbx.firmware_version = firmware
    client = make_client(session, pbx)
    freezer.tick(timedelta(seconds=5))

    info = await client.device_info()

    assert info.firmware_version == firmware
    assert client.api_version is ApiVersion.V2
    assert sent(pbx) == DETECTED_V2
    v1_login, _, v2_login, logout = pbx.requests
    assert v1_login.body == {
        "username": "api",
        "password": PASSWORD_MD5,
        "port": "8260",
        "version": "1.0.2",
    }
    # The documented v2 login: username, the password's MD5, the v2 event format, the port.
    assert v2_login.body == {
        "username": "api",
        "password": PASSWORD_MD5,
        "port": "8260",
        "version": "2.0.0",
    }
    assert v2_login.token is None
    assert v2_login.reply is not None
    assert v2_login.reply["transport"] == "HTTP"
    assert logout.token == v1_login.reply["token"]  # type: ignore[index]
    assert pbx.tokens.keys() == pbx.v2_tokens == {v2_token(pbx)}
    diagnostics = client.diagnostics()
    assert diagnostics["api_version"] == "2.0.0"
    assert diagnostics["api_version_reason"] == f"firmware {firmware}; the API v2 login worked"
    assert diagnostics["event_transport"] == "HTTP"
    assert diagnostics["logged_in"] is True
    assert diagnostics["token_age_seconds"] == 0.0
    assert "Logged in to 127.0.0.1 (API 2.0.0)" in caplog.text

    # From now on everything goes to /api/v2.0.0/ with the v2 token.
    freezer.tick(timedelta(seconds=3))
    assert (await client.device_info()) == info
    assert client.diagnostics()["token_age_seconds"] == 3.0
    assert sent(pbx)[4:] == [(API_V2, "deviceinfo/query")]
    assert pbx.requests[-1].token == v2_token(pbx)
    assert pbx.logins == 2
    assert_plain_password_never_sent(pbx)
    assert_no_secrets(pbx, caplog, client)


async def test_detection_reports_the_event_transport(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX
) -> None:
    """The v2 login says how the PBX pushes events (its API settings: HTTP or TCP)."""
    v2_pbx.transport = "TCP"
    client = await detected_v2_client(session, v2_pbx)
    assert client.diagnostics()["event_transport"] == "TCP"


NOT_API = "127.0.0.1 sent a reply that is not a valid Yeastar API response"


@pytest.mark.parametrize(
    ("setup", "detail"),
    [
        pytest.param({}, f"{NOT_API} (HTTP status 404)", id="http-404"),
        pytest.param(
            {"absent_v2_errno": "10003"},
            "The PBX does not support this API request; firmware 30.5.0.30 or newer is needed",
            id="errno-10003",
        ),
        pytest.param(
            {"api_v2": True, "fail_next": {"v2/login": ["20003"]}},
            "127.0.0.1 refused the API username or password",
            id="credentials-refused",
        ),
        pytest.param(
            {"api_v2": True, "fail_next": {"v2/login": ["30001"]}},
            "The PBX reported an internal error (error 30001); try again, or restart the PBX",
            id="internal-error",
        ),
        pytest.param(
            {"api_v2": True, "reply_override": {"v2/login": "<html>login</html>"}},
            f"{NOT_API} (not JSON)",
            id="not-json",
        ),
        pytest.param(
            {"api_v2": True, "reply_override": {"v2/login": {"status": "Success"}}},
            f"{NOT_API} (login succeeded without a token)",
            id="no-token",
        ),
    ],
)
async def test_detection_new_firmware_without_a_working_v2(
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    setup: dict[str, Any],
    detail: str,
) -> None:
    """The firmware says v2, the PBX answers otherwise: v1 stays, with the v1 token.

    Nothing documents what a PBX without v2 answers there: the fake's HTTP 404 and
    errno 10003 both count as "no v2", as does any other answer but a token. A refusal
    of the credentials v1 just accepted is not latched like a wrong password.
    """
    v2_pbx.api_v2 = setup.get("api_v2", False)
    v2_pbx.absent_v2_errno = setup.get("absent_v2_errno")
    v2_pbx.fail_next.update(setup.get("fail_next", {}))
    v2_pbx.reply_override.update(setup.get("reply_override", {}))
    client = make_client(session, v2_pbx)

    info = await client.device_info()

    assert info.serial == SERIAL
    assert client.api_version is ApiVersion.V1
    assert sent(v2_pbx) == [(API_V1, "login"), (API_V1, "deviceinfo/query"), (API_V2, "login")]
    reason = f"127.0.0.1 has firmware {V2_FIRMWARE_VERSION}, but its API v2 login failed: {detail}"
    diagnostics = client.diagnostics()
    assert diagnostics["api_version_reason"] == reason
    assert diagnostics["auth_failed"] is False
    assert diagnostics["event_transport"] is None

    # Still on the v1 token it had, never asked again, and v2-only input is refused.
    v1_token = v2_pbx.calls("v1/login")[0].reply["token"]  # type: ignore[index]
    assert await client.play_prompt("1000", "hello111")
    await client.device_info()
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("6300", "hello111", count=2)
    assert exc_info.value.message == f"count needs {NEEDS_V2}; {reason}"
    assert sent(v2_pbx)[3:] == [(API_V1, PLAY), (API_V1, "deviceinfo/query")]
    assert {r.token for r in v2_pbx.requests[3:]} == {v1_token}
    assert v2_pbx.logins == 2
    assert_no_secrets(v2_pbx, caplog, client, exc_info.value)


async def test_detection_without_an_answer_is_tried_again(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The v2 login gets no answer (connection dropped): undecided, and v1 goes on.

    The device query still succeeds (a working v1 never fails because of the v2 try);
    input that needs v2 tries again and gets that failure; once v2 answers, it is used.
    """
    v2_pbx.drop_paths.add("v2/login")
    client = make_client(session, v2_pbx)

    info = await client.device_info()

    assert info.serial == SERIAL
    reason = (
        f"127.0.0.1 has firmware {V2_FIRMWARE_VERSION}; the API v2 login failed and is tried "
        "again: Cannot connect to 127.0.0.1 (the server closed the connection)"
    )
    assert client.diagnostics()["api_version"] is None
    assert client.diagnostics()["api_version_reason"] == reason
    assert f"127.0.0.1: API undecided ({reason})" in caplog.text
    # The v1 token was kept: a plain play rings the v1 way meanwhile.
    assert await client.play_prompt("1000", "hello111")
    assert sent(v2_pbx)[-1] == (API_V1, PLAY)
    assert len(v2_pbx.calls("v1/logout")) == 0

    # Input that needs v2 asks again; no answer again is that input's failure.
    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.play_prompt("6300", "hello111", count=2)
    assert exc_info.value.message == (
        "Cannot connect to 127.0.0.1 (the server closed the connection)"
    )
    assert exc_info.value.target == "6300"
    result = await client.async_play(["6300", "1000"], "hello111", volume=2)
    assert [(n, type(e), e.target) for n, e in result.failures] == [
        ("6300", VoicePromptConnectionError, "6300"),
        ("1000", VoicePromptConnectionError, "1000"),
    ]
    assert v2_pbx.calls(V2_PLAY) == []

    v2_pbx.drop_paths.clear()
    call_id = await client.play_prompt("6300", "hello111", count=2)
    assert client.api_version is ApiVersion.V2
    assert sent(v2_pbx)[-4:] == [
        (API_V1, "deviceinfo/query"),
        (API_V2, "login"),
        (API_V1, "logout"),
        (API_V2, "call/playprompt"),
    ]
    assert v2_pbx.calls(V2_PLAY)[0].reply == {"status": "Success", "callid": call_id}
    assert client.diagnostics()["api_version_reason"] == V2_REASON
    assert len(v2_pbx.calls("v1/login")) == 1
    assert_no_secrets(v2_pbx, caplog, client, exc_info.value)


async def test_detection_blocked_v2_login_is_not_a_verdict(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """20002 on the v2 login: the lockout guard holds; after it, v2 is tried again."""
    v2_pbx.fail_next["v2/login"] = ["20002"]
    client = make_client(session, v2_pbx)

    await client.device_info()
    assert client.diagnostics()["api_version"] is None
    assert client.diagnostics()["blocked_for_seconds"] == LOCKOUT_SECONDS
    assert (
        "the API v2 login failed and is tried again: 127.0.0.1 has locked out"
        in (client.diagnostics()["api_version_reason"])
    )
    count = len(v2_pbx.requests)
    # Blocked: the next tries send nothing to log in with.
    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS - 1))
    await client.device_info()
    with pytest.raises(VoicePromptIPBlockedError) as exc_info:
        await client.play_prompt("+4930123456", "alarm", dial_permission="1000")
    assert exc_info.value.code == "20002"
    assert exc_info.value.target == "+4930123456"
    assert sent(v2_pbx)[count:] == [(API_V1, "deviceinfo/query")] * 2

    freezer.tick(timedelta(seconds=2))
    await client.device_info()
    assert client.api_version is ApiVersion.V2
    assert sent(v2_pbx)[count + 2 :] == [
        (API_V1, "deviceinfo/query"),
        (API_V2, "login"),
        (API_V1, "logout"),
    ]
    assert_no_secrets(v2_pbx, caplog, client, exc_info.value)


async def test_detection_is_single_flight(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """Many device queries at once on a new PBX: one v2 login, one v1 logout."""
    v2_pbx.latency = 0.05
    client = make_client(session, v2_pbx)
    infos = await asyncio.gather(*(client.device_info() for _ in range(10)))

    assert {info.serial for info in infos} == {SERIAL}
    assert client.api_version is ApiVersion.V2
    assert len(v2_pbx.calls("v1/login")) == 1
    assert len(v2_pbx.calls("v2/login")) == 1
    assert len(v2_pbx.calls("v1/logout")) == 1
    assert len(v2_pbx.calls("v1/deviceinfo/query")) == 10
    assert_no_secrets(v2_pbx, caplog, client)


async def test_detection_with_a_v1_request_in_flight(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """A v1 play still on the wire when v2 takes over meets the logged-out v1 token.

    Its retry speaks v2 (path and body built for the new token's API), with the v2
    token the switch brought: no extra login.
    """
    client = make_client(session, v2_pbx)
    await client.extensions()  # logged in on v1, undecided
    gate = v2_pbx.hold["v1/" + PLAY] = asyncio.Event()
    play = asyncio.create_task(client.play_prompt("1000", "doorbell"))
    while not v2_pbx.calls(PLAY):  # the v1 play waits at the PBX
        await asyncio.sleep(0.01)
    await client.device_info()
    assert sent(v2_pbx)[-3:] == [
        (API_V1, "deviceinfo/query"),
        (API_V2, "login"),
        (API_V1, "logout"),
    ]
    gate.set()
    call_id = await play

    first, retry = v2_pbx.calls(PLAY) + v2_pbx.calls("v2/call/playprompt")
    assert first.api == API_V1
    assert first.reply == {"status": "Failed", "errno": "20004"}
    assert retry.api == API_V2
    assert retry.token == v2_token(v2_pbx)
    assert retry.body == {"number": "1000", "prompt": "doorbell", "autoanswer": "no"}
    assert retry.reply == {"status": "Success", "callid": call_id}
    assert v2_pbx.logins == 2
    assert_no_secrets(v2_pbx, caplog, client)


async def test_token_mode_stays_on_v1(
    token_client: YeastarClient, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """A token from elsewhere: no login to try v2 with; v2-only input is refused."""
    assert token_client.api_version is ApiVersion.V1
    info = await token_client.device_info()
    assert info.firmware_version == V2_FIRMWARE_VERSION
    assert sent(v2_pbx) == [(API_V1, "deviceinfo/query")]
    reason = "the client was given a token, and API v2 needs a login instead"
    assert token_client.diagnostics()["api_version_reason"] == reason

    with pytest.raises(VoicePromptInputError) as exc_info:
        await token_client.async_play("1000", "hello111", volume=10)
    assert exc_info.value.message == f"volume needs {NEEDS_V2}; {reason}"
    assert len(v2_pbx.requests) == 1
    assert v2_pbx.logins == 0
    assert_no_secrets(v2_pbx, caplog, token_client, exc_info.value)


# -- playing on v2


@pytest.mark.parametrize(
    ("target", "options", "expected"),
    [
        pytest.param(
            "1000",
            {},
            {"number": "1000", "prompt": "hello111+queue1", "autoanswer": "no"},
            id="extension",
        ),
        pytest.param(
            "1001",
            {"autoanswer": True, "count": 2, "volume": 10},
            {
                "number": "1001",
                "prompt": "hello111+queue1",
                "autoanswer": "yes",
                "count": "2",
                "volume": "10",
            },
            id="extension-count-volume",
        ),
        pytest.param(
            "6300",
            {"count": MAX_COUNT, "volume": MAX_VOLUME},
            {
                "number": "6300",
                "prompt": "hello111+queue1",
                "autoanswer": "no",
                "count": "10",
                "volume": "20",
            },
            id="paging-group",
        ),
        pytest.param(
            "+4930123456",
            {"count": 1, "volume": MIN_VOLUME, "dial_permission": "1001"},
            {
                "number": "+4930123456",
                "prompt": "hello111+queue1",
                "autoanswer": "no",
                "count": "1",
                "volume": "0",
                "dialpermission": "1001",
            },
            id="external-e164",
        ),
        pytest.param(
            " 004930123456 ",
            {"dial_permission": 1000},
            {
                "number": "004930123456",
                "prompt": "hello111+queue1",
                "autoanswer": "no",
                "dialpermission": "1000",
            },
            id="external-digits",
        ),
    ],
)
async def test_v2_playprompt_bodies(
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    target: str,
    options: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    """call/playprompt: number, prompt "a+b", autoanswer, and count/volume as given."""
    client = await detected_v2_client(session, v2_pbx)
    autoanswer = options.pop("autoanswer", False)

    call_id = await client.play_prompt(target, ["hello111", "queue1"], autoanswer, **options)

    (play,) = v2_pbx.calls(V2_PLAY)
    assert play.api == API_V2
    assert play.token == v2_token(v2_pbx)
    assert play.body == expected
    assert play.reply == {"status": "Success", "callid": call_id}
    assert v2_pbx.calls("v1/" + PLAY) == []
    assert v2_pbx.logins == 2
    assert_no_secrets(v2_pbx, caplog, client)


async def test_v2_broadcast_to_every_kind_of_number(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """One action: an extension, a paging group, external numbers and a failing one."""
    client = await detected_v2_client(session, v2_pbx)
    targets = ["1000", "6300", "+4930123456", "0049301234567", "4242"]

    result = await client.async_play(
        targets, "doorbell", count=3, volume=15, dial_permission="1001"
    )

    assert [number for number, _ in result.calls] == targets[:4]
    assert len({call_id for _, call_id in result.calls}) == 4
    ((number, err),) = result.failures
    assert number == "4242"
    assert type(err) is VoicePromptInputError
    assert err.code == "10011"
    assert err.target == "4242"
    assert err.message == "The called number 4242 does not exist"
    bodies = sorted((r.body for r in v2_pbx.calls(V2_PLAY)), key=lambda body: body["number"])
    assert bodies == [
        {
            "number": number,
            "prompt": "doorbell",
            "autoanswer": "no",
            "count": "3",
            "volume": "15",
            "dialpermission": "1001",
        }
        for number in sorted(targets)
    ]
    assert_no_secrets(v2_pbx, caplog, client, err)


@pytest.mark.parametrize(
    ("target", "options", "errno", "cls", "message"),
    [
        (
            "+4930123456",
            {},
            "10024",
            VoicePromptRequestError,
            "The PBX refused to call +4930123456 out: dial_permission must name an "
            "extension with outbound call permission",
        ),
        (
            "+4930123456",
            {"dial_permission": "1003"},
            "10024",
            VoicePromptRequestError,
            "The PBX refused to call +4930123456 out: dial_permission must name an "
            "extension with outbound call permission",
        ),
        ("4242", {}, "10011", VoicePromptInputError, "The called number 4242 does not exist"),
        (
            "1003",
            {"count": 2},
            "10008",
            VoicePromptRequestError,
            "Extension 1003 is not idle; try again when it is free",
        ),
        (
            "6300",
            {"volume": 5},
            "10023",
            VoicePromptInputError,
            "A prompt in not_uploaded is not uploaded",
        ),
    ],
)
async def test_v2_fake_refusals(
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    target: str,
    options: dict[str, Any],
    errno: str,
    cls: type[VoicePromptError],
    message: str,
) -> None:
    v2_pbx.no_outbound.add("1003")
    client = await detected_v2_client(session, v2_pbx)
    prompt = "not_uploaded" if errno == "10023" else "alarm"
    with pytest.raises(cls) as exc_info:
        await client.play_prompt(target, prompt, **options)
    err = exc_info.value
    assert type(err) is cls
    assert err.code == errno
    assert err.target == target
    assert err.message.startswith(message)
    (play,) = v2_pbx.calls(V2_PLAY)
    assert play.reply == {"status": "Failed", "errno": errno}
    assert_no_secrets(v2_pbx, caplog, client, err)


@pytest.mark.parametrize(
    "errno", [errno for errno in ERRORS if errno not in TOKEN_ERRNOS + LOGIN_ERRNOS]
)
async def test_errno_table_v2(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, errno: str
) -> None:
    """call/playprompt errnos map like v1's (10024 speaks of dial_permission there)."""
    client = await detected_v2_client(session, v2_pbx)
    v2_pbx.fail_next[V2_PLAY] = [errno]
    with pytest.raises(VoicePromptError) as exc_info:
        await client.play_prompt("6300", "hello111+queue1", volume=3)
    err = exc_info.value
    cls, message = ERRORS[errno]
    assert type(err) is cls
    assert err.code == errno
    assert err.target == "6300"
    if errno != "10024":
        assert err.message == message.format(
            code=errno, host=HOST, extension="6300", prompt="hello111+queue1"
        )
    assert "{" not in err.message
    assert isinstance(err, VoicePromptInputError) == (errno in INPUT_ERRNOS)
    assert len(v2_pbx.calls(V2_PLAY)) == 1
    assert v2_pbx.logins == 2


def test_v2_only_errnos() -> None:
    """10005 (no such call id) and 10031 (number not acceptable) come from the v2 table."""
    callid = error_for("10005", "pbx")
    assert type(callid) is VoicePromptRequestError
    assert callid.message == "The PBX knows no call with this call id (any more)"
    number = error_for("10031", "pbx", extension="+12", api=ApiVersion.V2)
    assert type(number) is VoicePromptInputError
    assert number.target == "+12"
    assert number.message == (
        "The PBX does not accept +12 as a number to call (check its outbound routes)"
    )
    # 10024 reads differently where it is about dial_permission; v1 keeps its words.
    assert error_for("10024", "pbx", extension="1000").message == (
        "Extension 1000 has no outbound call permission on the PBX"
    )
    assert error_for("10024", "pbx", extension="+49", api=ApiVersion.V2).message.startswith(
        "The PBX refused to call +49 out"
    )


async def test_v2_extensions_and_heartbeat_and_logout(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every other request goes to /api/v2.0.0/ too, with the v2 token."""
    client = await detected_v2_client(session, v2_pbx)
    token = v2_token(v2_pbx)

    extensions = await client.extensions()
    assert extensions[:2] == [
        YeastarExtension(number="1000", status="Registered", kind="SIP", name="Reception"),
        YeastarExtension(number="1001", status="Registered", kind="SIP", name="Office"),
    ]
    assert len(extensions) == len(v2_pbx.extensions)
    (query,) = v2_pbx.calls("v2/extension/query")
    assert query.body == {"number": "all"}

    freezer.tick(timedelta(seconds=KEEPALIVE_AFTER_IDLE))
    assert await client.async_keepalive(REPORT_IP) is True
    (heartbeat,) = v2_pbx.calls("v2/heartbeat")
    assert heartbeat.body == {"ipaddr": REPORT_IP, "port": "8260"}
    assert heartbeat.reply == {"status": "Success"}

    await client.async_close()
    (logout,) = v2_pbx.calls("v2/logout")
    assert logout.token == token
    assert v2_pbx.tokens == {}
    assert {r.token for r in v2_pbx.requests[4:]} == {token}
    assert sent(v2_pbx)[4:] == [
        (API_V2, "extension/query"),
        (API_V2, "heartbeat"),
        (API_V2, "logout"),
    ]
    assert client.diagnostics()["logged_in"] is False
    assert client.api_version is ApiVersion.V2
    # Use after close logs in again on v2 (the API stays decided).
    await client.device_info()
    assert sent(v2_pbx)[-2:] == [(API_V2, "login"), (API_V2, "deviceinfo/query")]
    assert_no_secrets(v2_pbx, caplog, client)


# -- the version decides before anything is played


V1_REFUSALS: list[tuple[Any, dict[str, Any], str]] = [
    ("1000", {"count": 2}, "count needs"),
    ("1000", {"volume": 0}, "volume needs"),
    ("1000", {"dial_permission": "1001"}, "dial_permission needs"),
    ("1000", {"count": 1, "volume": 20}, "count and volume need"),
    (
        "1000",
        {"count": 1, "volume": 20, "dial_permission": "1001"},
        "count, volume and dial_permission need",
    ),
    ("+4930123456", {}, "calling +4930123456 needs"),
    ("1" * 17, {}, f"calling {'1' * 17} needs"),
    (["1000", "+4930123456", "+4930999"], {}, "calling +4930123456 and 1 other number needs"),
    (
        "1000, +491, +492, +493",
        {"volume": 3},
        "volume and calling +491 and 2 other numbers need",
    ),
]


@pytest.mark.parametrize(("target", "options", "words"), V1_REFUSALS)
async def test_v2_only_input_refused_on_a_v1_pbx(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    target: Any,
    options: dict[str, Any],
    words: str,
) -> None:
    """Decided v1: count, volume, dial_permission and non-extensions are refused locally."""
    client = make_client(session, pbx)
    await client.device_info()
    count = len(pbx.requests)
    expected = f"{words} {NEEDS_V2}; {V1_REASON}"

    single = isinstance(target, str) and "," not in target
    for play in (client.play_prompt, client.async_play) if single else (client.async_play,):
        with pytest.raises(VoicePromptInputError) as exc_info:
            await play(target, "hello111", **options)
        err = exc_info.value
        assert type(err) is VoicePromptInputError
        assert err.message == expected
        assert err.code is None
        assert err.target is None
    assert len(pbx.requests) == count
    assert_no_secrets(pbx, caplog, client)


async def test_v2_only_input_decides_the_version_first(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """Undecided and asked for v2: one device query decides; a v1 PBX gets no play."""
    client = make_client(session, pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.async_play(["1000", "6300"], "hello111", count=2)
    assert exc_info.value.message == f"count needs {NEEDS_V2}; {V1_REASON}"
    assert sent(pbx) == [(API_V1, "login"), (API_V1, "deviceinfo/query")]
    assert client.api_version is ApiVersion.V1
    assert_no_secrets(pbx, caplog, client, exc_info.value)


async def test_v2_only_input_switches_an_undecided_client(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """Undecided and asked for v2 on a new PBX: detect, switch, then play on v2."""
    client = make_client(session, v2_pbx)
    call_id = await client.play_prompt("6300", "alarm", volume=12)

    assert sent(v2_pbx) == [*DETECTED_V2, (API_V2, "call/playprompt")]
    (play,) = v2_pbx.calls(V2_PLAY)
    assert play.body == {"number": "6300", "prompt": "alarm", "autoanswer": "no", "volume": "12"}
    assert play.reply == {"status": "Success", "callid": call_id}
    # A plain play before any device query still rings the v1 way (as before v2).
    other = make_client(session, v2_pbx)
    await other.play_prompt("1000", "alarm")
    assert sent(v2_pbx)[-2:] == [(API_V1, "login"), (API_V1, PLAY)]
    assert other.api_version is None
    await other.async_close()
    assert_no_secrets(v2_pbx, caplog, client)


async def test_v2_only_input_when_deciding_fails(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The device query that would decide fails: play_prompt raises, async_play lists it."""
    v2_pbx.password = "other"
    client = make_client(session, v2_pbx)

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.play_prompt("+4930123456", "alarm", dial_permission="1000")
    assert exc_info.value.code == "20003"
    assert exc_info.value.target == "+4930123456"

    result = await client.async_play(["6300", "+4930123456"], "alarm", count=2)
    assert result.calls == []
    assert [(number, type(e), e.code, e.target) for number, e in result.failures] == [
        ("6300", VoicePromptAuthenticationError, "20003", "6300"),
        ("+4930123456", VoicePromptAuthenticationError, "20003", "+4930123456"),
    ]
    assert len({id(e) for _, e in result.failures}) == 2
    assert client.api_version is None
    assert sent(v2_pbx) == [(API_V1, "login")]
    assert_no_secrets(v2_pbx, caplog, client, exc_info.value, *(e for _, e in result.failures))


# -- local validation


COUNT_WORDS = (
    f"The number of times to play the prompts must be a whole number from 1 to {MAX_COUNT}"
)
VOLUME_WORDS = f"The volume must be a whole number from {MIN_VOLUME} to {MAX_VOLUME}"
PERMISSION_WORDS = "dial_permission must be an extension number (digits only, like 1000)"
NOT_A_NUMBER = (
    "is not a number to call (an extension or group number like 1000, "
    "or an external number like +4930123456)"
)
BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"count": 0}, COUNT_WORDS),
    ({"count": MAX_COUNT + 1}, COUNT_WORDS),
    ({"count": -1}, COUNT_WORDS),
    ({"count": True}, COUNT_WORDS),
    ({"count": 2.0}, COUNT_WORDS),
    ({"count": "2"}, COUNT_WORDS),
    ({"volume": MIN_VOLUME - 1}, VOLUME_WORDS),
    ({"volume": MAX_VOLUME + 1}, VOLUME_WORDS),
    ({"volume": False}, VOLUME_WORDS),
    ({"volume": 1.5}, VOLUME_WORDS),
    ({"volume": "5"}, VOLUME_WORDS),
    ({"dial_permission": "abc"}, PERMISSION_WORDS),
    ({"dial_permission": "+491"}, PERMISSION_WORDS),
    ({"dial_permission": ""}, PERMISSION_WORDS),
    ({"dial_permission": True}, PERMISSION_WORDS),
    ({"dial_permission": 1000.0}, PERMISSION_WORDS),
    ({"dial_permission": "1" * 17}, PERMISSION_WORDS),
    ({"count": 2, "volume": 99}, VOLUME_WORDS),
]


@pytest.mark.parametrize(("options", "words"), BAD_OPTIONS)
@pytest.mark.parametrize("api_version", ["undecided", "v1", "v2"])
async def test_count_volume_and_dial_permission_bounds(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    options: dict[str, Any],
    words: str,
    api_version: str,
) -> None:
    """Refused before anything is sent, whatever API the PBX has (or it is unknown)."""
    if api_version == "v2":
        pbx.firmware_version = V2_FIRMWARE_VERSION
    client = make_client(session, pbx)
    if api_version != "undecided":
        await client.device_info()
    count = len(pbx.requests)
    for play in (client.play_prompt, client.async_play):
        with pytest.raises(VoicePromptInputError) as exc_info:
            await play("1000", "hello111", **options)
        assert exc_info.value.message == words
        assert exc_info.value.code is None
    assert len(pbx.requests) == count


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000", ["1000"]),
        (6300, ["6300"]),
        ("1000, 6300; +4930123456", ["1000", "6300", "+4930123456"]),
        (["+4930123456", "004930123456", "+4930123456"], ["+4930123456", "004930123456"]),
        ("1" * MAX_NUMBER_DIGITS, ["1" * MAX_NUMBER_DIGITS]),
        ("+" + "1" * MAX_NUMBER_DIGITS, ["+" + "1" * MAX_NUMBER_DIGITS]),
    ],
)
def test_normalize_numbers_ok(value: Any, expected: list[str]) -> None:
    assert normalize_numbers(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "No number was given"),
        ([], "No number was given"),
        ("+", NOT_A_NUMBER),
        ("++49", NOT_A_NUMBER),
        ("49+30", NOT_A_NUMBER),
        ("49 30", NOT_A_NUMBER),
        ("+49-30", NOT_A_NUMBER),
        ("1" * (MAX_NUMBER_DIGITS + 1), NOT_A_NUMBER),
        ("abc", NOT_A_NUMBER),
        ("*97", NOT_A_NUMBER),
        (True, NOT_A_NUMBER),
        (None, NOT_A_NUMBER),
        ([["1000"]], NOT_A_NUMBER),
        ([str(n) for n in range(MAX_EXTENSIONS + 1)], "At most 500 numbers can be called at once"),
    ],
)
def test_normalize_numbers_refused(value: Any, words: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalize_numbers(value)
    assert words in exc_info.value.message
    assert exc_info.value.code is None


async def test_v2_target_validation_speaks_of_numbers(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX
) -> None:
    """On v2 a bad target is "not a number to call"; undecided/v1 it is "not an extension"."""
    client = make_client(session, v2_pbx)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("+49 30", "alarm")
    assert exc_info.value.message == f"+49 30 {NOT_AN_EXTENSION}"
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("1000, 6300", "alarm")
    assert exc_info.value.message == (
        "1000, 6300 is more than one extension; use async_play for several"
    )
    assert v2_pbx.requests == []

    await client.device_info()
    count = len(v2_pbx.requests)
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("+49 30", "alarm")
    assert exc_info.value.message == f"+49 30 {NOT_A_NUMBER}"
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.async_play([], "alarm")
    assert exc_info.value.message == "No number was given"
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.play_prompt("1000, 6300", "alarm")
    assert (
        exc_info.value.message == "1000, 6300 is more than one number; use async_play for several"
    )
    with pytest.raises(VoicePromptInputError) as exc_info:
        await client.async_play("6300", "123", count=2)
    assert exc_info.value.message == "Prompt name 123 is only digits, which the PBX does not accept"
    assert len(v2_pbx.requests) == count


# -- tokens on v2


@pytest.mark.parametrize("errno", TOKEN_ERRNOS)
async def test_v2_token_error_relogins_once_on_v2(
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    errno: str,
) -> None:
    client = await detected_v2_client(session, v2_pbx)
    v2_pbx.fail_next[V2_PLAY] = [errno]

    call_id = await client.play_prompt("6300", "alarm", count=2)

    assert sent(v2_pbx)[4:] == [
        (API_V2, "call/playprompt"),
        (API_V2, "login"),
        (API_V2, "call/playprompt"),
    ]
    first, retry = v2_pbx.calls(V2_PLAY)
    old, new = v2_token(v2_pbx, 0), v2_token(v2_pbx, 1)
    assert old != new
    assert (first.token, retry.token) == (old, new)
    assert first.reply == {"status": "Failed", "errno": errno}
    assert retry.body == first.body
    assert retry.reply == {"status": "Success", "callid": call_id}
    assert v2_pbx.calls("v2/login")[-1].body["version"] == "2.0.0"
    assert_no_secrets(v2_pbx, caplog, client)


async def test_v2_token_refused_twice_is_a_request_error(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    client = await detected_v2_client(session, v2_pbx)
    v2_pbx.fail_next[V2_PLAY] = ["20006", "20004"]
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.play_prompt("1000", "alarm", volume=1)
    err = exc_info.value
    assert type(err) is VoicePromptRequestError
    assert err.code == "20004"
    assert err.target == "1000"
    assert err.message == "127.0.0.1 refused a token it had just issued (error 20004)"
    assert len(v2_pbx.calls("v2/login")) == 2
    assert client.diagnostics()["auth_failed"] is False
    assert_no_secrets(v2_pbx, caplog, client, err)


async def test_v2_single_flight_relogin_after_restart(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The PBX forgets its tokens: 30 concurrent v2 plays log in on v2 exactly once."""
    client = await detected_v2_client(session, v2_pbx)
    v2_pbx.expire_tokens()
    result = await client.async_play(
        [str(n) for n in range(1010, 1040)], "hello111", count=2, volume=8
    )

    assert len(result.calls) == 30
    assert result.failures == []
    assert len(v2_pbx.calls("v2/login")) == 2
    assert len(v2_pbx.calls("v1/login")) == 1
    accepted = [r for r in v2_pbx.calls(V2_PLAY) if r.reply and r.reply["status"] == "Success"]
    assert {r.token for r in accepted} == {v2_token(v2_pbx)}
    assert_no_secrets(v2_pbx, caplog, client)


async def test_v2_idle_token_timed_out(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await detected_v2_client(session, v2_pbx)
    freezer.tick(timedelta(seconds=v2_pbx.token_ttl + 1))
    assert await client.play_prompt("+4930123456", "alarm", dial_permission="1000")
    first, retry = v2_pbx.calls(V2_PLAY)
    assert first.reply == {"status": "Failed", "errno": "20006"}
    assert retry.reply is not None
    assert retry.reply["status"] == "Success"
    assert sent(v2_pbx)[-2] == (API_V2, "login")
    assert client.diagnostics()["token_age_seconds"] == 0.0
    assert_no_secrets(v2_pbx, caplog, client)


async def test_v2_password_changed_latches(
    session: aiohttp.ClientSession, v2_pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The v2 re-login is refused: latched like on v1, nothing more is sent."""
    client = await detected_v2_client(session, v2_pbx)
    v2_pbx.password = "changed"
    v2_pbx.expire_tokens()

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.play_prompt("6300", "alarm", count=2)
    assert type(exc_info.value) is VoicePromptAuthenticationError
    assert exc_info.value.code == "20003"
    assert exc_info.value.target == "6300"
    count = len(v2_pbx.requests)
    assert sent(v2_pbx)[-1] == (API_V2, "login")
    with pytest.raises(VoicePromptAuthenticationError):
        await client.device_info()
    result = await client.async_play(["1000", "6300"], "alarm", volume=4)
    assert {type(e) for _, e in result.failures} == {VoicePromptAuthenticationError}
    assert await client.async_keepalive(REPORT_IP) is False
    assert len(v2_pbx.requests) == count
    assert client.diagnostics()["auth_failed"] is True
    assert v2_pbx.failed_logins == {"127.0.0.1": 1}
    assert_no_secrets(v2_pbx, caplog, client, exc_info.value)


async def test_v2_relogin_blocked(
    freezer: FrozenDateTimeFactory,
    session: aiohttp.ClientSession,
    v2_pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """20002 on a v2 re-login: nothing is sent for 10 minutes, then v2 again."""
    client = await detected_v2_client(session, v2_pbx)
    v2_pbx.expire_tokens()
    v2_pbx.block_ip("127.0.0.1")

    with pytest.raises(VoicePromptIPBlockedError) as exc_info:
        await client.play_prompt("1000", "alarm", volume=6)
    assert exc_info.value.code == "20002"
    count = len(v2_pbx.requests)
    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS - 1))
    with pytest.raises(VoicePromptIPBlockedError):
        await client.play_prompt("1000", "alarm", volume=6)
    assert len(v2_pbx.requests) == count

    freezer.tick(timedelta(seconds=2))
    assert await client.play_prompt("1000", "alarm", volume=6)
    assert sent(v2_pbx)[count:] == [(API_V2, "login"), (API_V2, "call/playprompt")]
    assert_no_secrets(v2_pbx, caplog, client, exc_info.value)


# -- the fake's v2 (what the client relies on it to do)


async def test_fake_v2_paths_and_tokens(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake's documented choices: 404 without v2, tokens per API, lockout shared."""
    v1 = make_client(session, pbx)
    await v1.device_info()
    (v1_token,) = login_tokens(pbx)

    async def post(url: str, body: Any, token: str | None = None) -> tuple[int, str]:
        async with session.post(
            url, json=body, params={"token": token} if token else None, ssl=False
        ) as response:
            return response.status, await response.text()

    login = {"username": "api", "password": PASSWORD_MD5}
    assert await post(pbx.base_url_v2 + "login", login) == (404, NOT_FOUND_BODY)
    pbx.absent_v2_errno = "10003"
    status, text = await post(pbx.base_url_v2 + "login", login)
    assert (status, json.loads(text)) == (200, {"status": "Failed", "errno": "10003"})

    pbx.firmware_version = V2_FIRMWARE_VERSION
    status, text = await post(pbx.base_url_v2 + "login", {**login, "urltag": "2"})
    assert json.loads(text) == {"status": "Failed", "errno": "10004"}
    status, text = await post(pbx.base_url_v2 + "login", {**login, "port": "x"})
    assert json.loads(text) == {"status": "Failed", "errno": "20008"}
    status, text = await post(
        pbx.base_url_v2 + "login", {**login, "url": "report", "urltag": 0, "version": "2.0.0"}
    )
    reply = json.loads(text)
    assert reply["status"] == "Success"
    assert reply["transport"] == "HTTP"
    token = reply["token"]
    # A token works only on the API that issued it.
    for url, used in ((pbx.base_url_v2, v1_token), (pbx.base_url, token)):
        status, text = await post(url + "deviceinfo/query", None, used)
        assert json.loads(text) == {"status": "Failed", "errno": "20004"}
    # v2 has no extensionlist/query; v1 has no call/playprompt.
    for url in (pbx.base_url_v2 + "extensionlist/query", pbx.base_url + "call/playprompt"):
        status, text = await post(url, None, token if "v2" in url else v1_token)
        assert json.loads(text) == {"status": "Failed", "errno": "10003"}

    async def play(body: dict[str, Any]) -> dict[str, Any]:
        _, text = await post(pbx.base_url_v2 + "call/playprompt", body, token)
        reply: dict[str, Any] = json.loads(text)
        return reply

    ok = {"number": "6300", "prompt": "alarm"}
    assert (await play({**ok, "count": 2, "volume": 20}))["status"] == "Success"
    for bad in (
        {"count": 0},
        {"count": "x"},
        {"volume": 21},
        {"volume": -1},
        {"volume": "loud"},
        {"autoanswer": "maybe"},
        {"number": ""},
    ):
        assert await play({**ok, **bad}) == {"status": "Failed", "errno": "10004"}, bad
    assert await play({**ok, "number": "*97"}) == {"status": "Failed", "errno": "10031"}
    assert await play({**ok, "number": "1002"}) == {"status": "Failed", "errno": "10015"}
    assert await play({**ok, "number": "+4930123456", "dialpermission": "4242"}) == {
        "status": "Failed",
        "errno": "10024",
    }
    _, text = await post(pbx.base_url_v2 + "extension/query", {"number": "1000,4242"}, token)
    assert json.loads(text) == {"status": "Failed", "errno": "10006"}
    _, text = await post(pbx.base_url_v2 + "extension/query", {"number": "1002"}, token)
    assert json.loads(text)["extinfos"][0]["number"] == "1002"
    _, text = await post(pbx.base_url_v2 + "extension/query", {}, token)
    assert json.loads(text) == {"status": "Failed", "errno": "10004"}
    for body in ({}, {"ipaddr": REPORT_IP, "port": "0"}):
        _, text = await post(pbx.base_url_v2 + "heartbeat", body, token)
        assert json.loads(text)["status"] == "Failed"
    # One lockout counter for both APIs.
    for _ in range(3):
        await post(pbx.base_url + "login", {**login, "password": "x", "port": "8260"})
    for _ in range(2):
        await post(pbx.base_url_v2 + "login", {**login, "password": "x"})
    assert "127.0.0.1" in pbx.blocked_ips
    assert [r.api for r in pbx.calls("login")][-5:] == [API_V1] * 3 + [API_V2] * 2
    await v1.async_close()


def test_fake_program_options() -> None:
    """``--api v2`` makes a PBX with firmware 30.13.0.30; by default the firmware decides."""
    v1 = fake_yeastar._parse_args([])
    v2 = fake_yeastar._parse_args(["--api", "v2"])
    custom = fake_yeastar._parse_args(["--api", "v2", "--firmware", "30.20.0.1"])
    assert (v1.api, v1.firmware) == (None, None)
    assert (v2.api, v2.firmware) == ("v2", None)
    assert custom.firmware == "30.20.0.1"
    assert FakeYeastarPBX(firmware_version=V2_FIRMWARE_VERSION).has_v2 is True
    assert FakeYeastarPBX().has_v2 is False
    assert FakeYeastarPBX(api_v2=False, firmware_version=V2_FIRMWARE_VERSION).has_v2 is False
    fake = FakeYeastarPBX(api_v2=True)
    assert fake.has_v2 is True
    fake.api_v2 = None  # follows the firmware again
    assert fake.has_v2 is False
