"""The Microsoft Graph API client on its own, against the fake Graph on 127.0.0.1.

No Home Assistant code runs here: the client gets a plain aiohttp session and a small local
receiver verifies the fake's notifications and feeds them to the client, as an application
would. Time the client reads with ``time.monotonic`` is moved with ``freezer``.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta
import hashlib
import hmac
import json
import logging
import re
import ssl
import time
from typing import Any
import uuid

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun.api import FrozenDateTimeFactory
import jwt
from jwt.algorithms import RSAAlgorithm
import pytest

from custom_components.voice_prompt.api import (
    GraphClient,
    GraphEventType,
    GraphMedia,
    GraphNotificationVerifier,
    GraphTarget,
    TargetKind,
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSecretExpiredError,
    VoicePromptSSLError,
    VoicePromptTenantNotFoundError,
    VoicePromptTimeoutError,
    check_client_context,
    graph as graph_module,
    parse_media,
    parse_target,
)
from custom_components.voice_prompt.api.graph import (
    KEYS_REFRESH_INTERVAL,
    TOKEN_REFRESH_MARGIN,
    GraphCallTracker,
    GraphOperation,
)
from tests.conftest import tls_resets_tolerated
from tests.fakes.graph import FakeGraph
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    CLIENT_ID,
    CLIENT_SECRET,
    INSTANCE_ID,
    MEDIA,
    MEDIA_2,
    RECEIVER_CALLBACK,
    TENANT_ID,
    USER_ID,
    NotificationReceiver,
    OddReply,
    OddServer,
    graph,
    graph_client,
    graph_closed_port,
    graph_receiver,
    graph_session,
    odd_server,
    wait_for,
)

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CALLS = "/graph/v1.0/communications/calls"
PROMPTS = [GraphMedia(MEDIA, "doorbell"), GraphMedia(MEDIA_2, "chime")]
TEAMS_USER = GraphTarget(TargetKind.USER, USER_ID)


def _client(
    session: aiohttp.ClientSession,
    login_base: str,
    graph_base: str = "http://127.0.0.1:9/graph",
    **kwargs: Any,
) -> GraphClient:
    return GraphClient(
        session,
        kwargs.pop("tenant_id", TENANT_ID),
        kwargs.pop("client_id", CLIENT_ID),
        kwargs.pop("client_secret", CLIENT_SECRET),
        login_base=login_base,
        graph_base=graph_base,
        **kwargs,
    )


async def _established_call(client: GraphClient) -> str:
    """Place a call, play once, and keep it up; return its id."""
    result = await client.async_play(
        PROMPTS,
        client_context="setup",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
        hang_up=False,
    )
    return result.call_id


def _request_id(err: VoicePromptError) -> str:
    """The request ID a Graph error names at the end of its message."""
    match = re.search(r"request ID ([^\s)]+)\)$", err.message)
    assert match is not None, err.message
    return match.group(1)


def _secrets(graph: FakeGraph) -> set[str]:
    return {CLIENT_SECRET, *graph.issued_tokens}


def _assert_no_secret(text: str, graph: FakeGraph) -> None:
    for secret in _secrets(graph):
        assert secret not in text


# ---------------------------------------------------------------------------- tokens


async def test_token_is_cached_and_fetched_once_for_concurrent_callers(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    graph.latency = 0.05  # keep the first request in flight while the others queue

    await asyncio.gather(*(graph_client.async_validate() for _ in range(50)))

    assert graph.token_requests == 1
    assert graph_client.token_requests == 1
    form = graph.requests[0].body
    assert form == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "https://graph.microsoft.com/.default",
        "grant_type": "client_credentials",
    }
    assert graph.requests[0].path == f"/login/{TENANT_ID}/oauth2/v2.0/token"
    # Later calls reuse it as well.
    await graph_client.get_call(await _established_call(graph_client))
    assert graph.token_requests == 1


async def test_refused_token_request_is_shared_by_concurrent_callers(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    """A secret Entra ID refuses: one token request for 50 callers, each its own error."""
    graph.latency = 0.05
    graph.token_error = "7000215"

    outcomes = await asyncio.gather(
        *(graph_client.async_validate() for _ in range(50)), return_exceptions=True
    )

    assert graph.token_requests == 1
    assert all(type(err) is VoicePromptAuthenticationError for err in outcomes)
    assert {(err.code, err.message) for err in outcomes} == {
        (
            "7000215",
            "Microsoft Entra ID refused the client secret (use the secret's value, not its ID)",
        )
    }
    assert len({id(err) for err in outcomes}) == 50


async def test_token_is_refreshed_ahead_of_expiry(
    graph: FakeGraph, graph_client: GraphClient, freezer: FrozenDateTimeFactory
) -> None:
    """A token is replaced 300 s before it expires, and not earlier."""
    assert TOKEN_REFRESH_MARGIN == 300
    await graph_client.async_validate()
    assert graph.token_requests == 1
    assert graph_client.diagnostics()["token_valid_for_seconds"] == 3599

    freezer.tick(timedelta(seconds=3599 - 300 - 1))  # one second before the margin
    await graph_client.async_validate()
    assert graph.token_requests == 1
    assert graph_client.diagnostics()["token_valid_for_seconds"] == 301

    freezer.tick(timedelta(seconds=2))  # 299 s left: inside the margin
    await graph_client.async_validate()
    assert graph.token_requests == 2
    assert graph_client.diagnostics()["token_valid_for_seconds"] == 3599
    # Graph gets the new token from now on (and accepts it: 404, not 401).
    call_id = str(uuid.uuid4())
    with pytest.raises(VoicePromptInputError):
        await graph_client.get_call(call_id)
    (get,) = graph.calls_to("GET", call_id)
    assert get.headers["Authorization"] == f"Bearer {graph.issued_tokens[1]}"
    assert get.reply_status == 404
    assert graph.token_requests == 2

    # A token that arrives already inside the margin is never reused.
    graph.token_lifetime = 300
    freezer.tick(timedelta(seconds=3600))
    await graph_client.async_validate()
    assert graph.token_requests == 3
    await graph_client.async_validate()
    await graph_client.async_validate()
    assert graph.token_requests == 5


async def test_401_refreshes_the_token_once_and_retries(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    call_id = await _established_call(graph_client)
    first_tokens = graph.token_requests
    graph.expire_tokens()

    call = await graph_client.get_call(call_id)

    assert call["id"] == call_id
    assert call["state"] == "established"
    assert graph.token_requests == first_tokens + 1
    gets = graph.calls_to("GET", f"/calls/{call_id}")
    assert [r.reply_status for r in gets] == [401, 200]
    assert gets[0].headers["Authorization"] != gets[1].headers["Authorization"]
    assert gets[1].headers["Authorization"] == f"Bearer {graph.issued_tokens[-1]}"


async def test_401_twice_is_an_authentication_error(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    await graph_client.async_validate()
    graph.http_status = 401

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))

    err = exc_info.value
    assert type(err) is VoicePromptAuthenticationError
    assert err.code == "InvalidAuthenticationToken"
    request_id = _request_id(err)
    assert GUID.fullmatch(request_id)
    assert err.message == f"Microsoft Graph refused the app's token (request ID {request_id})"
    # One refresh, one retry, then no more.
    assert graph.token_requests == 2
    assert len(graph.calls_to("GET", "")) == 2


# --------------------------------------------------------------------- throttling


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_honours_retry_after(
    graph: FakeGraph, graph_client: GraphClient, status: int
) -> None:
    call_id = await _established_call(graph_client)
    graph.throttle = [(status, 0.05), (status, 0.1)]
    started = time.monotonic()

    call = await graph_client.get_call(call_id)

    assert call["id"] == call_id
    assert time.monotonic() - started >= 0.14  # 0.05 + 0.1, minus clock granularity
    assert [r.reply_status for r in graph.calls_to("GET", call_id)] == [status, status, 200]
    assert graph_client.retries == 2


async def test_throttling_gives_up_after_three_tries(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    await graph_client.async_validate()
    graph.throttle = [(429, 0.01), (503, 0.01), (429, 0.01), (429, 0.01)]

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))

    err = exc_info.value
    assert type(err) is VoicePromptRequestError
    assert err.code == "TooManyRequests"
    request_id = _request_id(err)
    assert GUID.fullmatch(request_id)
    assert err.message == f"Microsoft Graph is busy; try again later (request ID {request_id})"
    assert len(graph.calls_to("GET", "")) == 3
    assert graph_client.retries == 2
    assert graph.throttle == [(429, 0.01)]  # the fourth was never asked for


async def test_retry_after_beyond_the_budget_fails_at_once(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    await graph_client.async_validate()
    graph.throttle = [(429, 40)]
    started = time.monotonic()

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))

    assert time.monotonic() - started < 2
    assert type(exc_info.value) is VoicePromptRequestError
    assert exc_info.value.code == "TooManyRequests"
    assert exc_info.value.message.startswith("Microsoft Graph is busy; try again later")
    assert graph_client.retries == 0
    assert len(graph.calls_to("GET", "")) == 1


async def test_waiting_is_bounded_in_total(
    graph: FakeGraph, graph_client: GraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each wait fits on its own, but not both: the second is not waited for."""
    monkeypatch.setattr(graph_module, "MAX_RETRY_WAIT", 0.1)
    await graph_client.async_validate()
    graph.throttle = [(503, 0.06), (503, 0.06)]

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))

    assert exc_info.value.code == "ServiceUnavailable"
    assert exc_info.value.message.startswith("Microsoft Graph is busy; try again later")
    assert graph_client.retries == 1
    assert len(graph.calls_to("GET", "")) == 2


def test_retry_after_parsing() -> None:
    assert graph_module.MAX_TRIES == 3
    assert graph_module.MAX_RETRY_WAIT == 30.0
    assert graph_module._retry_after("0.05") == 0.05
    assert graph_module._retry_after("7") == 7.0
    assert graph_module._retry_after("-3") == 0.0
    assert graph_module._retry_after(None) == 1.0
    assert graph_module._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0


# -------------------------------------------------------------------- error bodies


@pytest.mark.parametrize(
    ("status", "code", "detail"),
    [
        (400, "BadRequest", "Bad request."),
        (403, "Forbidden", "Forbidden."),
        (409, "Conflict", "Conflict."),
        (500, "InternalServerError", "An internal server error occurred."),
    ],
)
async def test_error_bodies_keep_the_request_id(
    graph: FakeGraph, graph_client: GraphClient, status: int, code: str, detail: str
) -> None:
    await graph_client.async_validate()
    graph.http_status = status

    with pytest.raises(VoicePromptError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))

    err = exc_info.value
    assert type(err) is VoicePromptRequestError  # neither input nor credentials
    assert err.code == code
    request_id = _request_id(err)
    assert GUID.fullmatch(request_id)
    assert err.message == (
        f"Microsoft Graph refused the request: {detail} (HTTP {status}, request ID {request_id})"
    )
    assert str(err) == err.message


async def test_unknown_call_is_an_input_error(graph: FakeGraph, graph_client: GraphClient) -> None:
    call_id = str(uuid.uuid4())

    with pytest.raises(VoicePromptInputError) as exc_info:
        await graph_client.get_call(call_id)

    err = exc_info.value
    assert err.code == "ResourceNotFound"
    request_id = _request_id(err)
    assert GUID.fullmatch(request_id)
    assert err.message == (
        f"Call {call_id} is not known to Microsoft Graph: it ended, or another app placed it "
        f"(request ID {request_id})"
    )
    (get,) = graph.calls_to("GET", call_id)
    assert get.reply_status == 404


async def test_graph_error_text_keeps_only_the_host_of_urls_it_quotes(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    """Graph quotes the callback URL back; its path holds the webhook id, a secret."""
    callback = "http://ha.example.test/api/webhook/SECRET-WEBHOOK-ID"

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.create_call(TEAMS_USER, PROMPTS, callback)

    err = exc_info.value
    assert err.code == "BadRequest"
    assert "The callbackUri 'http://ha.example.test/…' is not valid" in err.message
    (create,) = graph.calls_to("POST", CALLS)
    assert create.body["callbackUri"] == callback  # sent as given, only the error is cut
    for text in (str(err), repr(err), repr(vars(err)), repr(err.args)):
        assert "SECRET-WEBHOOK-ID" not in text


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        (
            "http://media.example.test/door.wav?sv=2024&sig=SECRET-SIGNATURE",
            "Prompt http://media.example.test/door.wav?… uses http://; Microsoft Teams plays "
            "media only from https:// URLs",
        ),
        (
            "ftp://media.example.test/door.wav?sig=SECRET-SIGNATURE#x",
            "Prompt ftp://media.example.test/door.wav?… is not an https:// URL",
        ),
        (
            "https://media.example.test/door bell.wav?sig=SECRET-SIGNATURE",
            "Prompt https://media.example.test/door bell.wav?… is not an https:// URL",
        ),
        (
            {"url": f"{MEDIA}?sig=SECRET-SIGNATURE", "resource_id": " "},
            f"The resource ID of prompt {MEDIA}?… is empty",
        ),
    ],
)
def test_media_errors_leave_the_query_out(prompt: str | dict[str, str], message: str) -> None:
    """A signed prompt URL is named in the error without its signature."""
    with pytest.raises(VoicePromptInputError) as exc_info:
        parse_media([prompt])

    err = exc_info.value
    assert err.message == message
    for text in (str(err), repr(err), repr(vars(err))):
        assert "SECRET-SIGNATURE" not in text


async def test_urls_in_errors_leave_their_password_out(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    """A password in a URL's user info is a secret too: errors name scheme and host only.

    Fails with the package as it is (reported): ``_shown`` and ``_URL_IN_TEXT`` keep
    ``user:password@`` in front of the host.
    """
    with pytest.raises(VoicePromptInputError) as exc_info:
        parse_media(["http://door:SECRET-PASSWORD@media.example.test/door.wav?sig=1"])
    assert exc_info.value.message.startswith(
        "Prompt http://media.example.test/door.wav?… uses http://"
    )
    assert "SECRET-PASSWORD" not in repr(exc_info.value)

    callback = "http://ha:SECRET-PASSWORD@ha.example.test/api/webhook/SECRET-WEBHOOK-ID"
    with pytest.raises(VoicePromptRequestError) as exc_info2:
        await graph_client.create_call(TEAMS_USER, PROMPTS, callback)
    assert "The callbackUri 'http://ha.example.test/…' is not valid" in exc_info2.value.message
    assert "SECRET" not in repr(exc_info2.value)


async def test_missing_permission(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.permission_denied = True

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.create_call(TEAMS_USER, PROMPTS, RECEIVER_CALLBACK)

    err = exc_info.value
    assert type(err) is VoicePromptRequestError
    assert err.code == "7504"
    request_id = _request_id(err)
    assert GUID.fullmatch(request_id)
    assert err.message == (
        "The app lacks the Calls.Initiate.All application permission with admin consent "
        f"(request ID {request_id})"
    )
    assert [r.reply_status for r in graph.calls_to("POST", CALLS)] == [403]
    assert graph.calls == {}


async def test_odd_error_bodies(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    """Error replies without Graph's JSON, or with the lower-case innererror spelling."""
    odd_server.routes[odd_server.token_path()] = OddReply(
        body=json.dumps({"access_token": "odd-token", "expires_in": 3599})
    )
    client = _client(graph_session, odd_server.base_url + "/login", odd_server.base_url)
    call_id = str(uuid.uuid4())
    path = f"/v1.0/communications/calls/{call_id}"

    odd_server.routes[path] = OddReply(502, "<html>Bad gateway</html>", "text/html")
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.get_call(call_id)
    assert type(exc_info.value) is VoicePromptRequestError
    assert exc_info.value.code == "502"
    # No Graph error message in the body: the text says so without an empty reason.
    assert exc_info.value.message == "Microsoft Graph refused the request (HTTP 502, request ID -)"

    odd_server.routes[path] = OddReply(
        400,
        json.dumps(
            {
                "error": {
                    "code": "BadRequest",
                    "message": "x" * 400,
                    "innererror": {"request-id": "r-1"},
                }
            }
        ),
    )
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.get_call(call_id)
    assert _request_id(exc_info.value) == "r-1"
    assert exc_info.value.code == "BadRequest"
    # Graph's own text is cut at 300 characters.
    assert exc_info.value.message == (
        f"Microsoft Graph refused the request: {'x' * 300} (HTTP 400, request ID r-1)"
    )

    odd_server.routes[path] = OddReply(400, json.dumps({"error": "invalid_request"}))
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.get_call(call_id)
    assert exc_info.value.code == "400"
    assert _request_id(exc_info.value) == "-"

    odd_server.routes[path] = OddReply(200, json.dumps(["not", "a", "call"]))
    assert await client.get_call(call_id) == {}
    assert odd_server.requests.count(("GET", path)) == 4


async def test_odd_success_bodies(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    odd_server.routes[odd_server.token_path()] = OddReply(
        body=json.dumps({"access_token": "odd-token", "expires_in": "soon"})
    )
    client = _client(graph_session, odd_server.base_url + "/login", odd_server.base_url)
    call_id = str(uuid.uuid4())

    odd_server.routes["/v1.0/communications/calls"] = OddReply(201, json.dumps({"state": "x"}))
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.create_call(TEAMS_USER, PROMPTS, RECEIVER_CALLBACK)
    assert exc_info.value.message == "127.0.0.1 created a call without an ID"
    # An unreadable lifetime counts as the usual hour.
    assert 3500 < client.diagnostics()["token_valid_for_seconds"] <= 3599

    odd_server.routes[f"/v1.0/communications/calls/{call_id}/playPrompt"] = OddReply(
        200, json.dumps({"status": "running"})
    )
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.play_prompt(call_id, PROMPTS, "ctx")
    assert exc_info.value.message == "127.0.0.1 answered playPrompt without an operation ID"

    odd_server.routes[f"/v1.0/communications/calls/{call_id}"] = OddReply(200, "{not json")
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.get_call(call_id)
    assert exc_info.value.message == "127.0.0.1 answered with something not JSON"


async def test_play_prompt_reply_that_is_already_finished(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    """completed/failed in the reply means no notification follows: nothing to wait for."""
    odd_server.routes[odd_server.token_path()] = OddReply(
        body=json.dumps({"access_token": "odd-token", "expires_in": "120"})
    )
    client = _client(graph_session, odd_server.base_url + "/login", odd_server.base_url)
    call_id = str(uuid.uuid4())
    odd_server.routes[f"/v1.0/communications/calls/{call_id}/playPrompt"] = OddReply(
        200,
        json.dumps(
            {
                "id": "op-1",
                "status": "failed",
                "clientContext": "ctx",
                "resultInfo": {"code": 400, "subcode": 8536, "message": "download failed"},
            }
        ),
    )

    result = await client.async_play(PROMPTS, client_context="ctx", call_id=call_id)

    operation = result.operation
    assert operation == GraphOperation("op-1", "failed", "ctx", 400, 8536, "download failed")
    assert operation.finished
    assert result.final is None
    assert result.finished
    assert result.status == "failed"
    assert result.outcome is operation
    assert not result.placed_call
    assert not result.hung_up
    assert 0 < client.diagnostics()["token_valid_for_seconds"] <= 120


async def test_placed_call_whose_play_finished_at_once(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    """playPrompt on a placed call answers "completed": no wait, straight to hang-up."""
    odd_server.routes[odd_server.token_path()] = OddReply(
        body=json.dumps({"access_token": "odd-token", "expires_in": 3599})
    )
    odd_server.routes["/v1.0/communications/calls"] = OddReply(
        201, json.dumps({"id": "call-1", "state": "establishing"})
    )
    odd_server.routes["/v1.0/communications/calls/call-1/playPrompt"] = OddReply(
        200, json.dumps({"id": "op-1", "status": "completed", "clientContext": "ctx"})
    )
    odd_server.routes["/v1.0/communications/calls/call-1"] = OddReply(204)
    client = _client(graph_session, odd_server.base_url + "/login", odd_server.base_url)
    # Graph can be faster than its own HTTP reply: the call is known to be up already.
    client.handle_notification(_call_note("call-1", "established"))

    result = await client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
        completion_timeout=0.01,
    )

    assert result.operation.finished
    assert result.final is None
    assert result.status == "completed"
    assert result.hung_up
    assert ("DELETE", "/v1.0/communications/calls/call-1") in odd_server.requests


# ------------------------------------------------------------------- token errors


@pytest.mark.parametrize(
    ("code", "cls", "message"),
    [
        (
            "90002",
            VoicePromptTenantNotFoundError,
            f"Microsoft Entra ID does not know tenant {TENANT_ID}",
        ),
        (
            "700016",
            VoicePromptAuthenticationError,
            f"Microsoft Entra ID does not know application {CLIENT_ID} in tenant {TENANT_ID}",
        ),
        (
            "7000215",
            VoicePromptAuthenticationError,
            "Microsoft Entra ID refused the client secret (use the secret's value, not its ID)",
        ),
        (
            "7000222",
            VoicePromptSecretExpiredError,
            f"The client secret of application {CLIENT_ID} has expired; create a new one",
        ),
    ],
)
async def test_token_errors(
    graph: FakeGraph,
    graph_client: GraphClient,
    code: str,
    cls: type[VoicePromptAuthenticationError],
    message: str,
) -> None:
    graph.token_error = code

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await graph_client.async_validate()

    err = exc_info.value
    assert type(err) is cls
    assert err.code == code
    assert err.message == message
    assert "AADSTS" not in str(err)
    assert graph_client.diagnostics()["has_token"] is False
    assert graph.issued_tokens == []


@pytest.mark.parametrize(
    ("kwargs", "cls", "code"),
    [
        (
            {"tenant_id": "99999999-2222-3333-4444-555555555555"},
            VoicePromptTenantNotFoundError,
            "90002",
        ),
        (
            {"client_id": "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"},
            VoicePromptAuthenticationError,
            "700016",
        ),
        ({"client_secret": "wrong"}, VoicePromptAuthenticationError, "7000215"),
    ],
)
async def test_real_credential_mismatches(
    graph: FakeGraph,
    graph_session: aiohttp.ClientSession,
    kwargs: dict[str, str],
    cls: type[VoicePromptAuthenticationError],
    code: str,
) -> None:
    client = _client(graph_session, graph.login_base, graph.graph_base, **kwargs)

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.async_validate()

    assert type(exc_info.value) is cls
    assert exc_info.value.code == code
    for value in kwargs.values():
        if value != "wrong":
            assert value in exc_info.value.message  # names the tenant / app it tried
    assert graph.issued_tokens == []


async def test_token_error_without_a_known_code(
    graph: FakeGraph, graph_session: aiohttp.ClientSession
) -> None:
    # A blank secret: AADSTS7000218, "invalid_client" → still a credentials problem.
    client = _client(graph_session, graph.login_base, graph.graph_base, client_secret="")
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.async_validate()
    assert type(exc_info.value) is VoicePromptAuthenticationError
    assert exc_info.value.code == "401"
    assert exc_info.value.message == (
        f"Microsoft Entra ID refused application {CLIENT_ID} in tenant {TENANT_ID} (invalid_client)"
    )

    # A code that says nothing about the credentials: a broken reply, not reauth.
    graph.token_error = "900561"
    client = _client(graph_session, graph.login_base, graph.graph_base)
    with pytest.raises(VoicePromptResponseError) as exc_info2:
        await client.async_validate()
    assert not isinstance(exc_info2.value, VoicePromptAuthenticationError)
    assert exc_info2.value.message == "The token endpoint 127.0.0.1 answered HTTP 400"


async def test_token_reply_without_a_token(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    client = _client(graph_session, odd_server.base_url + "/login")

    odd_server.routes[odd_server.token_path()] = OddReply(body=json.dumps({"expires_in": 10}))
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.async_validate()
    assert exc_info.value.message == "127.0.0.1 answered without an access token"

    odd_server.routes[odd_server.token_path()] = OddReply(body="<html>sign in</html>")
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.async_validate()
    assert exc_info.value.message == "127.0.0.1 answered with something not JSON"

    odd_server.routes[odd_server.token_path()] = OddReply(500, "<html>oops</html>", "text/html")
    with pytest.raises(VoicePromptResponseError) as exc_info:
        await client.async_validate()
    assert exc_info.value.message == "The token endpoint 127.0.0.1 answered HTTP 500"
    assert client.diagnostics()["has_token"] is False
    assert odd_server.requests.count(("POST", odd_server.token_path())) == 3


# ------------------------------------------------------------------ transport errors


async def test_closed_port_is_a_connection_error(
    graph_session: aiohttp.ClientSession, graph_closed_port: int
) -> None:
    client = _client(graph_session, f"http://127.0.0.1:{graph_closed_port}/login")

    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.async_validate()

    err = exc_info.value
    assert type(err) is VoicePromptConnectionError
    assert err.message == "Cannot connect to 127.0.0.1 (connection refused)"
    assert str(graph_closed_port) not in err.message  # the host, never the URL
    assert client.diagnostics()["has_token"] is False


async def test_garbage_is_a_response_error(graph: FakeGraph, graph_client: GraphClient) -> None:
    await graph_client.async_validate()
    graph.garbage = True

    with pytest.raises(VoicePromptResponseError) as exc_info:
        await graph_client.create_call(TEAMS_USER, PROMPTS, RECEIVER_CALLBACK)

    assert type(exc_info.value) is VoicePromptResponseError
    assert exc_info.value.message == "127.0.0.1 answered with something not JSON"
    assert "Service Unavailable" not in str(exc_info.value)
    assert [r.reply_status for r in graph.calls_to("POST", CALLS)] == [200]


async def test_latency_beyond_the_timeout(
    graph: FakeGraph, graph_session: aiohttp.ClientSession
) -> None:
    client = _client(graph_session, graph.login_base, graph.graph_base, request_timeout=0.1)
    graph.latency = 0.5

    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await client.async_validate()

    assert type(exc_info.value) is VoicePromptTimeoutError
    assert exc_info.value.message == "127.0.0.1 did not answer within 0.1 seconds"
    assert graph.token_requests == 1


@pytest.fixture
async def tolerate_tls_resets() -> AsyncGenerator[None]:
    """No ``hass`` here: the shared helper is enough."""
    with tls_resets_tolerated():
        yield


async def test_untrusted_certificate_is_an_ssl_error(
    tolerate_tls_resets: None,
    server_ssl: ssl.SSLContext,
    graph_session: aiohttp.ClientSession,
    socket_enabled: None,
) -> None:
    fake = FakeGraph(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    await fake.start(ssl_context=server_ssl)
    try:
        client = _client(graph_session, fake.login_base, fake.graph_base)
        with pytest.raises(VoicePromptSSLError) as exc_info:
            await client.async_validate()
    finally:
        await fake.close()
    assert type(exc_info.value) is VoicePromptSSLError
    assert exc_info.value.message.startswith("The TLS certificate of 127.0.0.1 was not accepted")
    assert fake.token_requests == 0


# --------------------------------------------------------------------- call bodies


async def test_create_call_body_for_a_teams_user(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    call_id = await graph_client.create_call(TEAMS_USER, PROMPTS, RECEIVER_CALLBACK)

    (request,) = graph.calls_to("POST", CALLS)
    assert request.reply_status == 201
    assert request.headers["Authorization"] == f"Bearer {graph.issued_tokens[0]}"
    assert request.body == {
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": RECEIVER_CALLBACK,
        "targets": [
            {
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "user": {"@odata.type": "#microsoft.graph.identity", "id": USER_ID},
                },
            }
        ],
        "requestedModalities": ["audio"],
        "mediaConfig": {
            "@odata.type": "#microsoft.graph.serviceHostedMediaConfig",
            "preFetchMedia": [
                {
                    "@odata.type": "#microsoft.graph.mediaInfo",
                    "uri": MEDIA,
                    "resourceId": "doorbell",
                },
                {
                    "@odata.type": "#microsoft.graph.mediaInfo",
                    "uri": MEDIA_2,
                    "resourceId": "chime",
                },
            ],
        },
        "tenantId": TENANT_ID,
    }
    assert graph.calls[call_id].state in ("establishing", "established")
    assert graph.calls[call_id].source is None


async def test_create_call_body_for_a_phone_number(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    target = parse_target("+31 20 123 4567")
    assert target == GraphTarget(TargetKind.PHONE, "+31201234567")
    call_id = await graph_client.create_call(
        target, PROMPTS[:1], RECEIVER_CALLBACK, source_instance_id=INSTANCE_ID
    )

    (request,) = graph.calls_to("POST", CALLS)
    assert request.reply_status == 201
    assert request.body["targets"][0]["identity"] == {
        "@odata.type": "#microsoft.graph.identitySet",
        "phone": {"@odata.type": "#microsoft.graph.identity", "id": "+31201234567"},
    }
    assert request.body["source"] == {
        "@odata.type": "#microsoft.graph.participantInfo",
        "identity": {
            "@odata.type": "#microsoft.graph.identitySet",
            "applicationInstance": {
                "@odata.type": "#microsoft.graph.identity",
                "id": INSTANCE_ID,
            },
        },
    }
    assert graph.calls[call_id].source == request.body["source"]


async def test_phone_number_without_an_instance_is_refused_locally(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        await graph_client.create_call(
            GraphTarget(TargetKind.PHONE, "+31201234567"), PROMPTS, RECEIVER_CALLBACK
        )

    err = exc_info.value
    assert err.message == (
        "Calling a phone number needs the application instance ID in the integration's options"
    )
    assert err.target == "+31201234567"
    assert graph.requests == []  # not even a token request


async def test_play_prompt_v1_and_beta_loop(
    graph: FakeGraph, graph_client: GraphClient, graph_receiver: NotificationReceiver
) -> None:
    call_id = await _established_call(graph_client)

    once = await graph_client.play_prompt(call_id, PROMPTS[:1], "once")
    looped = await graph_client.play_prompt(call_id, PROMPTS, "forever", loop=True)

    v1 = graph.calls_to("POST", f"/graph/v1.0/communications/calls/{call_id}/playPrompt")
    beta = graph.calls_to("POST", f"/graph/beta/communications/calls/{call_id}/playPrompt")
    assert len(v1) == 2  # the set-up play and "once"
    assert v1[1].body == {
        "clientContext": "once",
        "prompts": [
            {
                "@odata.type": "#microsoft.graph.mediaPrompt",
                "mediaInfo": {
                    "@odata.type": "#microsoft.graph.mediaInfo",
                    "uri": MEDIA,
                    "resourceId": "doorbell",
                },
            }
        ],
    }
    assert len(beta) == 1
    assert beta[0].body["loop"] is True
    assert beta[0].body["clientContext"] == "forever"
    assert len(beta[0].body["prompts"]) == 2
    for operation, context in ((once, "once"), (looped, "forever")):
        assert operation.status == "running"
        assert not operation.finished
        assert operation.client_context == context
        assert GUID.fullmatch(operation.id)
        assert operation.result_code is None
    # The single play completes; the loop never reports.
    event = await graph_client.tracker.wait_operation(once.id, 5)
    assert event.type is GraphEventType.PROMPT_COMPLETED
    assert event.client_context == "once"
    with pytest.raises(TimeoutError):
        await graph_client.tracker.wait_operation(looped.id, 0.2)


async def test_hang_up_and_get_call(
    graph: FakeGraph, graph_client: GraphClient, graph_receiver: NotificationReceiver
) -> None:
    call_id = await _established_call(graph_client)
    call = await graph_client.get_call(call_id)
    assert call["state"] == "established"
    assert call["callbackUri"] == RECEIVER_CALLBACK

    await graph_client.hang_up(call_id)

    (delete,) = graph.calls_to("DELETE", f"/communications/calls/{call_id}")
    assert delete.reply_status == 204
    assert graph.calls[call_id].state == "terminated"
    with pytest.raises(VoicePromptInputError) as exc_info:
        await graph_client.hang_up(call_id)
    assert exc_info.value.code == "ResourceNotFound"
    assert exc_info.value.message.startswith(f"Call {call_id} is not known to Microsoft Graph")
    await wait_for(lambda: graph_receiver.events[-1].type is GraphEventType.CALL_TERMINATED)
    assert graph_receiver.events[-1].call_id == call_id
    assert graph_receiver.events[-1].result_subcode == 5001
    assert graph_client.tracker.ended(call_id)


@pytest.mark.parametrize("bad", ["", "../../users", "a b", "x" * 65])
async def test_bad_call_ids_are_refused_locally(
    graph: FakeGraph, graph_client: GraphClient, bad: str
) -> None:
    for action in (
        graph_client.get_call(bad),
        graph_client.hang_up(bad),
        graph_client.play_prompt(bad, PROMPTS, "ctx"),
    ):
        with pytest.raises(VoicePromptInputError) as exc_info:
            await action
        assert exc_info.value.message == f"{bad[:60]} is not a call ID"
    assert graph.requests == []  # not even a token request


# -------------------------------------------------------------------- async_play


async def test_async_play_full_path(
    graph: FakeGraph, graph_client: GraphClient, graph_receiver: NotificationReceiver
) -> None:
    result = await graph_client.async_play(
        PROMPTS,
        client_context="doorbell-1",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
    )

    assert result.placed_call
    assert result.hung_up
    call_id = result.call_id
    assert call_id in graph.calls
    assert result.operation.status == "running"
    assert result.operation.client_context == "doorbell-1"
    final = result.final
    assert final is not None
    assert final.type is GraphEventType.PROMPT_COMPLETED
    assert final.operation_id == result.operation.id
    assert final.client_context == "doorbell-1"
    assert (final.result_code, final.result_subcode) == (200, 0)
    assert final.result_message == "Action completed successfully."
    assert result.finished
    assert result.status == "completed"
    assert result.outcome is final
    # Order at the fake: token, create, play, hang up.
    methods = [
        (r.method, r.path.removeprefix("/graph"))
        for r in graph.requests
        if not r.path.startswith("/botframework")  # the receiver reading the signing keys
    ]
    assert methods[0][1].endswith("/oauth2/v2.0/token")
    assert methods[1:] == [
        ("POST", "/v1.0/communications/calls"),
        ("POST", f"/v1.0/communications/calls/{call_id}/playPrompt"),
        ("DELETE", f"/v1.0/communications/calls/{call_id}"),
    ]
    await wait_for(lambda: len(graph_receiver.events) == 3)
    assert [e.type for e in graph_receiver.events] == [
        GraphEventType.CALL_ESTABLISHED,
        GraphEventType.PROMPT_COMPLETED,
        GraphEventType.CALL_TERMINATED,
    ]
    assert set(graph_receiver.statuses) == {202}
    assert graph_client.diagnostics()["requests"] == 3


async def test_async_play_with_compact_operation_ids(
    graph: FakeGraph, graph_client: GraphClient, graph_receiver: NotificationReceiver
) -> None:
    """Graph writes dash-less upper-case ids in operation URLs; they still match."""
    graph.compact_operation_ids = True
    graph.interim_notifications = True

    result = await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
    )

    assert result.final is not None
    assert result.final.type is GraphEventType.PROMPT_COMPLETED
    # Events carry the usual dashed lower-case form, whatever the URL spelled.
    assert result.final.operation_id == result.operation.id
    # The op notification really used the compact form.
    urls = [p["value"][0]["resourceUrl"] for p in graph_receiver.payloads]
    assert any(result.operation.id.replace("-", "").upper() in url for url in urls)


async def test_async_play_keeps_the_call_when_asked(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    result = await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
        hang_up=False,
    )

    assert result.placed_call
    assert not result.hung_up
    assert result.final is not None
    assert graph.calls_to("DELETE", "") == []
    assert graph.calls[result.call_id].state == "established"


async def test_async_play_loop_does_not_wait_or_hang_up(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    result = await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
        loop=True,
        completion_timeout=0.01,
    )

    assert result.final is None
    assert not result.finished
    assert result.status == "running"
    assert not result.hung_up
    assert graph.calls_to("DELETE", "") == []
    assert (
        len(graph.calls_to("POST", f"/beta/communications/calls/{result.call_id}/playPrompt")) == 1
    )


async def test_async_play_into_an_existing_call(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    call_id = await _established_call(graph_client)
    posts = len(graph.calls_to("POST", CALLS))

    result = await graph_client.async_play(PROMPTS, client_context="again", call_id=call_id)

    assert result.call_id == call_id
    assert not result.placed_call
    assert result.operation.status == "running"
    assert result.final is None
    assert len(graph.calls_to("POST", CALLS)) == posts
    (play,) = [
        r for r in graph.calls_to("POST", "/playPrompt") if r.body["clientContext"] == "again"
    ]
    assert play.reply_status == 200


async def test_async_play_needs_a_call_or_a_target(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    with pytest.raises(ValueError, match="call_id"):
        await graph_client.async_play(PROMPTS, client_context="ctx")
    with pytest.raises(ValueError, match="call_id"):
        await graph_client.async_play(PROMPTS, client_context="ctx", target=TEAMS_USER)
    assert graph.requests == []


async def test_call_not_established_in_time_is_hung_up(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    graph.notify_delay = 2.0

    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=TEAMS_USER,
            callback_uri=RECEIVER_CALLBACK,
            establish_timeout=0.1,
        )

    assert exc_info.value.message == "The call was not answered within 0.1 seconds"
    (call_id,) = graph.calls
    (delete,) = graph.calls_to("DELETE", f"/calls/{call_id}")
    assert delete.reply_status == 204
    assert graph.calls[call_id].state == "terminated"
    assert graph.calls_to("POST", "/playPrompt") == []
    assert graph_client.tracker._waiters == {}


async def test_prompt_not_reported_in_time_is_hung_up(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    graph.prompt_seconds = 5.0

    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=TEAMS_USER,
            callback_uri=RECEIVER_CALLBACK,
            completion_timeout=0.1,
        )

    assert exc_info.value.message == (
        "Microsoft Teams did not report the end of the prompts within 0.1 seconds"
    )
    (call_id,) = graph.calls
    assert [r.reply_status for r in graph.calls_to("DELETE", f"/calls/{call_id}")] == [204]
    assert graph_client.tracker._waiters == {}


async def test_unanswered_call(
    graph: FakeGraph, graph_client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Not answered: an error with Graph's code; the call Graph ended is not hung up again."""
    graph.answer = False

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=TEAMS_USER,
            callback_uri=RECEIVER_CALLBACK,
        )

    err = exc_info.value
    assert type(err) is VoicePromptRequestError  # not the caller's input
    assert err.code == "480"
    assert err.message == "The call was not answered (Callee could not be reached.)"
    assert err.target == USER_ID
    assert graph.calls_to("POST", "/playPrompt") == []
    assert graph.calls_to("DELETE", "") == []
    assert "Could not hang up" not in caplog.text


async def test_failed_media(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.fail_media = True

    result = await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
    )

    final = result.final
    assert final is not None
    assert final.type is GraphEventType.PROMPT_FAILED
    assert (final.result_code, final.result_subcode) == (400, 8536)
    assert final.result_message == "Action failed, file could not be downloaded."
    assert result.status == "failed"
    assert result.hung_up
    assert [r.reply_status for r in graph.calls_to("DELETE", result.call_id)] == [204]


async def test_hang_up_failure_is_only_logged_and_not_reported_as_hung_up(
    graph: FakeGraph, graph_client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed DELETE after a good play does not turn the play into an error, nor a hang-up."""
    graph.prompt_seconds = 0.3

    async def break_graph() -> None:
        await wait_for(lambda: graph.calls_to("POST", "/playPrompt"))
        graph.http_status = 500

    breaker = asyncio.create_task(break_graph())
    result = await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
    )
    await breaker

    assert result.final is not None
    assert result.final.type is GraphEventType.PROMPT_COMPLETED
    assert f"Could not hang up call {result.call_id}" in caplog.text
    assert [r.reply_status for r in graph.calls_to("DELETE", "")] == [500]
    assert graph.calls[result.call_id].state == "established"
    assert not result.hung_up


async def test_close_cancels_waiters(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.notify_delay = 2.0
    play = asyncio.create_task(
        graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=TEAMS_USER,
            callback_uri=RECEIVER_CALLBACK,
        )
    )
    await wait_for(lambda: graph_client.tracker._waiters)

    await graph_client.async_close()
    assert graph_client.diagnostics()["has_token"] is False
    assert graph_client.diagnostics()["token_valid_for_seconds"] is None

    with pytest.raises(asyncio.CancelledError):
        await play
    # The placed call is not left ringing.
    (call_id,) = graph.calls
    assert [r.reply_status for r in graph.calls_to("DELETE", call_id)] == [204]


# ----------------------------------------------------------------------- tracker


def _call_note(call_id: str, state: str, change: str = "updated") -> dict[str, Any]:
    return {
        "value": [
            {
                "changeType": change,
                "resourceUrl": f"/communications/calls/{call_id}",
                "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state},
            }
        ]
    }


def _op_note(call_id: str, op_id: str, status: str, **data: Any) -> dict[str, Any]:
    return {
        "value": [
            {
                "changeType": "deleted",
                "resourceUrl": f"/communications/calls/{call_id}/operations/{op_id}",
                "resourceData": {"status": status, **data},
            }
        ]
    }


async def _remembered_call(tracker: GraphCallTracker, call_id: str) -> bool:
    """Whether the tracker has a state for the call (a waiter gets it at once)."""
    try:
        await tracker.wait_call(call_id, 0)
    except TimeoutError:
        return False
    return True


async def test_tracker_notification_before_the_waiter() -> None:
    """Graph can be faster than its HTTP reply; ids match in any case and dash form."""
    tracker = GraphCallTracker()
    call_id, op_id = str(uuid.uuid4()), str(uuid.uuid4())

    events = tracker.handle(_call_note(call_id, "established"))
    assert [e.type for e in events] == [GraphEventType.CALL_ESTABLISHED]
    tracker.handle(
        _op_note(
            call_id.replace("-", "").upper(),
            op_id.replace("-", "").upper(),
            "completed",
            clientContext="c",
            resultInfo={"code": 200, "subcode": 0, "message": "ok"},
        )
    )

    established = await tracker.wait_call(call_id.upper(), 0)
    done = await tracker.wait_operation(op_id, 0)
    assert established.type is GraphEventType.CALL_ESTABLISHED
    assert established.call_id == call_id
    assert done.type is GraphEventType.PROMPT_COMPLETED
    assert (done.call_id, done.operation_id) == (call_id, op_id)  # dashed lower case
    assert (done.result_code, done.result_subcode, done.result_message) == (200, 0, "ok")
    assert done.client_context == "c"
    assert not tracker.ended(call_id)


async def test_tracker_wakes_every_waiter() -> None:
    tracker = GraphCallTracker()
    op_id = str(uuid.uuid4())
    waiters = [asyncio.create_task(tracker.wait_operation(op_id, 5)) for _ in range(3)]
    await asyncio.sleep(0)

    tracker.handle(_op_note("c1", op_id.replace("-", ""), "failed", resultInfo={"code": True}))

    events = await asyncio.gather(*waiters)
    assert {e.type for e in events} == {GraphEventType.PROMPT_FAILED}
    assert events[0].result_code is None  # a bool is not a code
    assert tracker._waiters == {}


async def test_tracker_skips_a_waiter_that_gave_up() -> None:
    tracker = GraphCallTracker()
    waiter = asyncio.create_task(tracker.wait_call("c1", 5))
    await asyncio.sleep(0)  # registered
    waiter.cancel()  # its future is cancelled now, its clean-up runs later

    events = tracker.handle(_call_note("c1", "established"))

    assert [e.type for e in events] == [GraphEventType.CALL_ESTABLISHED]
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert tracker._waiters == {}


async def test_tracker_timeout_forgets_the_waiter() -> None:
    tracker = GraphCallTracker()
    with pytest.raises(TimeoutError):
        await tracker.wait_call("c1", 0.01)
    assert tracker._waiters == {}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"value": "x"},
        {"value": ["x", None]},
        {"value": [{"resourceUrl": "/communications/calls/c1"}]},
        {"value": [{"resourceUrl": "/users/u1", "resourceData": {"state": "established"}}]},
        _call_note("c1", "establishing"),
        _call_note("c1", "terminating"),
        _op_note("c1", "o1", "running"),
    ],
)
async def test_tracker_ignores_what_it_does_not_know(payload: dict[str, Any]) -> None:
    tracker = GraphCallTracker()
    assert tracker.handle(payload) == []
    assert not await _remembered_call(tracker, "c1")
    assert not await _remembered_call(tracker, "u1")
    with pytest.raises(TimeoutError):
        await tracker.wait_operation("o1", 0)
    assert not tracker.ended("c1")


def test_tracker_reads_legacy_and_deleted_notifications() -> None:
    tracker = GraphCallTracker()
    events = tracker.handle(
        {
            "value": [
                {
                    "changeType": "deleted",
                    "resource": "/communications/calls/c1",
                    "resourceData": {"resultInfo": {"code": 200, "subcode": 5001}},
                },
                {
                    "changeType": "updated",
                    "resourceUrl": "/communications/calls/c2/",
                    "resourceData": {"state": "Terminated", "resultInfo": "odd"},
                },
            ]
        }
    )
    assert [(e.type, e.call_id, e.result_subcode) for e in events] == [
        (GraphEventType.CALL_TERMINATED, "c1", 5001),
        (GraphEventType.CALL_TERMINATED, "c2", None),
    ]
    assert tracker.ended("c1")
    assert tracker.ended("C2")


async def test_tracker_memory_is_bounded() -> None:
    tracker = GraphCallTracker()
    memory = graph_module._MEMORY
    for number in range(memory + 5):
        tracker.handle(_call_note(f"c{number}", "established"))
    # The five oldest are forgotten, the rest remembered.
    assert not await _remembered_call(tracker, "c0")
    assert not await _remembered_call(tracker, "c4")
    assert await _remembered_call(tracker, "c5")
    assert await _remembered_call(tracker, f"c{memory + 4}")
    assert len(tracker._call_states) == memory


# ---------------------------------------------------------------------- verifier


@pytest.fixture
def verifier(graph: FakeGraph, graph_session: aiohttp.ClientSession) -> GraphNotificationVerifier:
    return GraphNotificationVerifier(
        graph_session, CLIENT_ID, openid_config_url=graph.openid_config_url
    )


def _key_reads(graph: FakeGraph) -> int:
    return len(graph.calls_to("GET", "/botframework/keys"))


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def _forged(graph: FakeGraph, alg: str) -> str:
    """A token with good claims and the served kid, unsigned or HMAC'd with the public key."""
    claims = jwt.decode(graph.make_jwt(), options={"verify_signature": False})
    header = {"alg": alg, "typ": "JWT", "kid": graph.kid}
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = b""
    if alg == "HS256":
        (jwk,) = graph.jwks()["keys"]
        public_pem = RSAAlgorithm.from_jwk(jwk).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"Bearer {signing_input}.{_b64(signature)}"


async def test_verifier_accepts_a_valid_token(
    graph: FakeGraph, verifier: GraphNotificationVerifier
) -> None:
    claims = await verifier.verify(f"Bearer {graph.make_jwt()}")

    assert claims["aud"] == CLIENT_ID
    assert claims["iss"] == "https://api.botframework.com"
    assert claims["tid"] == TENANT_ID
    assert _key_reads(graph) == 1
    # Keys are cached; a lower-case scheme works too.
    await verifier.verify(f"bearer {graph.make_jwt(expires_in=30)}")
    assert _key_reads(graph) == 1


async def test_verifier_leeway_is_one_minute(
    graph: FakeGraph, verifier: GraphNotificationVerifier, freezer: FrozenDateTimeFactory
) -> None:
    """Clocks differ a little: exp and nbf get 60 s of leeway, not more."""
    early = await verifier.verify(f"Bearer {graph.make_jwt(not_before=30)}")
    assert early["nbf"] > early["iat"]

    token = f"Bearer {graph.make_jwt(expires_in=10)}"
    freezer.tick(timedelta(seconds=10 + 59))
    assert (await verifier.verify(token))["aud"] == CLIENT_ID
    freezer.tick(timedelta(seconds=2))
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await verifier.verify(token)
    assert exc_info.value.message == "Refused a notification: ExpiredSignatureError"
    assert _key_reads(graph) == 1


def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda g: f"Bearer {g.make_jwt(key=_other_key())}", "InvalidSignatureError"),
        (lambda g: f"Bearer {g.make_jwt(audience='someone-else')}", "InvalidAudienceError"),
        (
            lambda g: f"Bearer {g.make_jwt(issuer='https://sts.windows.net/x/')}",
            "InvalidIssuerError",
        ),
        (lambda g: f"Bearer {g.make_jwt(expires_in=-120)}", "ExpiredSignatureError"),
        (lambda g: f"Bearer {g.make_jwt(not_before=600)}", "ImmatureSignatureError"),
        (lambda g: None, "no bearer token"),
        (lambda g: "", "no bearer token"),
        (lambda g: f"Basic {g.make_jwt()}", "no bearer token"),
        (lambda g: "Bearer not-a-jwt", "malformed token"),
        (lambda g: "Bearer ", "malformed token"),
        (
            lambda g: "Bearer " + jwt.encode({"aud": CLIENT_ID}, "k" * 32, algorithm="HS256"),
            "unexpected algorithm",
        ),
        (lambda g: _forged(g, "none"), "unexpected algorithm"),
        (lambda g: _forged(g, "HS256"), "unexpected algorithm"),
        (lambda g: f"Bearer {g.make_jwt(kid='unknown-kid')}", "unknown signing key"),
    ],
    ids=[
        "signature",
        "audience",
        "issuer",
        "expired",
        "not-yet-valid",
        "no-header",
        "empty",
        "basic",
        "not-a-jwt",
        "blank",
        "hs256",
        "alg-none",
        "hs256-public-key",
        "unknown-kid",
    ],
)
async def test_verifier_refuses(
    graph: FakeGraph,
    verifier: GraphNotificationVerifier,
    make: Callable[[FakeGraph], str | None],
    reason: str,
) -> None:
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await verifier.verify(make(graph))

    err = exc_info.value
    assert type(err) is VoicePromptAuthenticationError
    assert err.code is None
    assert err.message == f"Refused a notification: {reason}"
    assert str(err) == err.message


async def test_verifier_reads_keys_on_a_freshly_booted_host(
    graph: FakeGraph, verifier: GraphNotificationVerifier, freezer: FrozenDateTimeFactory
) -> None:
    """The monotonic clock starts near 0 at boot: the first read must not wait a minute."""
    freezer.move_to("1970-01-01 00:00:05")
    assert time.monotonic() == 5.0

    claims = await verifier.verify(f"Bearer {graph.make_jwt()}")

    assert claims["aud"] == CLIENT_ID
    assert _key_reads(graph) == 1


async def test_verifier_rereads_keys_at_most_once_per_interval(
    graph: FakeGraph, verifier: GraphNotificationVerifier, freezer: FrozenDateTimeFactory
) -> None:
    assert KEYS_REFRESH_INTERVAL == 60
    await verifier.verify(f"Bearer {graph.make_jwt()}")
    assert _key_reads(graph) == 1

    # Unknown key ids right after a read do not hit the keys endpoint again.
    for _ in range(5):
        with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
            await verifier.verify(f"Bearer {graph.make_jwt(kid='nope')}")
    assert _key_reads(graph) == 1

    # Microsoft rolls its key: refused until the interval has passed...
    graph.rotate_signing_key()
    rotated = f"Bearer {graph.make_jwt()}"
    freezer.tick(timedelta(seconds=KEYS_REFRESH_INTERVAL - 1))
    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(rotated)
    assert _key_reads(graph) == 1

    # ...then one re-read, shared by concurrent callers, picks up the new key.
    freezer.tick(timedelta(seconds=2))
    claims = await asyncio.gather(verifier.verify(rotated), verifier.verify(rotated))
    assert [c["aud"] for c in claims] == [CLIENT_ID, CLIENT_ID]
    assert _key_reads(graph) == 2
    # The old key is gone with the re-read, and the next unknown kid waits again.
    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(f"Bearer {graph.make_jwt(kid='nope')}")
    assert _key_reads(graph) == 2
    freezer.tick(timedelta(seconds=KEYS_REFRESH_INTERVAL + 1))
    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(f"Bearer {graph.make_jwt(kid='nope')}")
    assert _key_reads(graph) == 3


@pytest.mark.parametrize(
    ("config", "keys"),
    [
        (OddReply(500, "{}"), None),
        (OddReply(200, "<html>", "text/html"), None),
        (OddReply(200, json.dumps({"issuer": "x"})), None),
        (
            OddReply(200, json.dumps({"jwks_uri": "{base}/keys"})),
            OddReply(200, json.dumps({"keys": "x"})),
        ),
    ],
)
async def test_verifier_survives_unreadable_keys(
    graph: FakeGraph,
    graph_session: aiohttp.ClientSession,
    odd_server: OddServer,
    caplog: pytest.LogCaptureFixture,
    config: OddReply,
    keys: OddReply | None,
) -> None:
    config.body = config.body.replace("{base}", odd_server.base_url)
    odd_server.routes["/config"] = config
    if keys is not None:
        odd_server.routes["/keys"] = keys
    verifier = GraphNotificationVerifier(
        graph_session, CLIENT_ID, openid_config_url=odd_server.base_url + "/config"
    )

    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(f"Bearer {graph.make_jwt()}")

    assert "Cannot read the Bot Framework signing keys" in caplog.text
    assert ("GET", "/config") in odd_server.requests
    assert (("GET", "/keys") in odd_server.requests) is (keys is not None)


async def test_verifier_with_keys_unreachable(
    graph: FakeGraph,
    graph_session: aiohttp.ClientSession,
    graph_closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = GraphNotificationVerifier(
        graph_session, CLIENT_ID, openid_config_url=f"http://127.0.0.1:{graph_closed_port}/cfg"
    )
    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(f"Bearer {graph.make_jwt()}")
    assert "Cannot read the Bot Framework signing keys: Cannot connect to 127.0.0.1" in (
        caplog.text
    )


async def test_receiver_refuses_forged_notifications(
    graph: FakeGraph, graph_client: GraphClient, graph_receiver: NotificationReceiver
) -> None:
    """End to end: a forged notification reaches the receiver but not the tracker."""
    call_id = await _established_call(graph_client)
    op_id = str(uuid.uuid4())
    waiter = asyncio.create_task(graph_client.tracker.wait_operation(op_id, 5))
    data = {"id": op_id, "status": "completed"}
    url = f"/communications/calls/{call_id}/operations/{op_id}"

    for token in (
        graph.make_jwt(key=_other_key()),
        graph.make_jwt(audience="other-app"),
        graph.make_jwt(expires_in=-3600),
    ):
        status = await graph.notify(
            call_id, data, change_type="deleted", resource_url=url, token=token
        )
        assert status == 401
    await asyncio.sleep(0.05)
    assert not waiter.done()

    assert await graph.notify(call_id, data, change_type="deleted", resource_url=url) == 202
    assert (await waiter).type is GraphEventType.PROMPT_COMPLETED


# ------------------------------------------------------------- parsing and limits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (USER_ID.upper(), GraphTarget(TargetKind.USER, USER_ID)),
        (f"  {USER_ID}\n", GraphTarget(TargetKind.USER, USER_ID)),
        ("+31 20 123 4567", GraphTarget(TargetKind.PHONE, "+31201234567")),
        ("+1 (555) 010-4567", GraphTarget(TargetKind.PHONE, "+15550104567")),
        ("+44.20.7946.0000", GraphTarget(TargetKind.PHONE, "+442079460000")),
    ],
)
def test_parse_target(text: str, expected: GraphTarget) -> None:
    target = parse_target(text)
    assert target == expected
    assert type(target.kind) is TargetKind


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1000",
        "0031201234567",
        "+0123456789",
        "+12345",
        "+1234567890123456",
        USER_ID[:-1],
        "x" * 200,
    ],
)
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        parse_target(text)
    err = exc_info.value
    assert err.target == text[:60]
    assert err.message == (
        f"{text[:60]} is neither a Teams user's object ID nor a phone number like +31201234567"
    )


def test_parse_media() -> None:
    media = parse_media(
        [
            f"  {MEDIA}  ",
            {"url": MEDIA_2, "resource_id": " chime-1 "},
            {"uri": "HTTPS://media.example.test/x.wav"},
        ]
    )

    assert media[0] == GraphMedia(MEDIA, str(uuid.uuid5(uuid.NAMESPACE_URL, MEDIA)))
    assert media[1] == GraphMedia(MEDIA_2, "chime-1")
    assert media[2].uri == "HTTPS://media.example.test/x.wav"
    # Same URL, same generated resource id (Graph caches by it); other URL, other id.
    assert parse_media(MEDIA) == [media[0]]
    assert parse_media({"url": MEDIA}) == [media[0]]
    assert parse_media([MEDIA, MEDIA])[1].resource_id == media[0].resource_id
    assert parse_media([MEDIA_2])[0].resource_id != media[0].resource_id
    assert media[1].as_media_info() == {
        "@odata.type": "#microsoft.graph.mediaInfo",
        "uri": MEDIA_2,
        "resourceId": "chime-1",
    }
    assert len(parse_media([MEDIA] * 20)) == 20


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "No prompt was given"),
        ([MEDIA] * 21, "Microsoft Teams plays at most 20 prompts at once"),
        (
            ["http://media.example.test/a.wav"],
            "Prompt http://media.example.test/a.wav uses http://; Microsoft Teams plays media "
            "only from https:// URLs",
        ),
        (
            ["HTTP://media.example.test/a.wav"],
            "Prompt HTTP://media.example.test/a.wav uses http://; Microsoft Teams plays media "
            "only from https:// URLs",
        ),
        (
            ["ftp://media.example.test/a.wav"],
            "Prompt ftp://media.example.test/a.wav is not an https:// URL",
        ),
        (["/local/a.wav"], "Prompt /local/a.wav is not an https:// URL"),
        (
            ["https://media.example.test/a b.wav"],
            "Prompt https://media.example.test/a b.wav is not an https:// URL",
        ),
        (["  "], "Prompt    is not a URL"),
        ([5], "Prompt 5 is not a URL"),
        ([{"resource_id": "x"}], "Prompt None is not a URL"),
        ([{"url": MEDIA, "resource_id": " "}], f"The resource ID of prompt {MEDIA} is empty"),
        ([{"url": MEDIA, "resource_id": 7}], f"The resource ID of prompt {MEDIA} is empty"),
    ],
)
def test_parse_media_refuses(items: list[Any], message: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        parse_media(items)
    assert exc_info.value.message == message


def test_check_client_context() -> None:
    generated = check_client_context(None)
    assert uuid.UUID(generated)
    assert check_client_context("") != generated
    assert check_client_context("doorbell") == "doorbell"
    assert check_client_context("x" * 256) == "x" * 256
    with pytest.raises(VoicePromptInputError) as exc_info:
        check_client_context("x" * 257)
    assert exc_info.value.message == "client_context may have at most 256 characters"


# ----------------------------------------------------------------------- secrets


async def test_secrets_never_leak(
    graph: FakeGraph,
    graph_client: GraphClient,
    graph_session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[VoicePromptError] = []

    await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=TEAMS_USER,
        callback_uri=RECEIVER_CALLBACK,
    )
    texts = [repr(graph_client), json.dumps(graph_client.diagnostics())]
    assert "has_token=True" in texts[0]

    graph.expire_tokens()
    graph.http_status = 401
    with pytest.raises(VoicePromptError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))
    errors.append(exc_info.value)
    graph.http_status = None
    for code in ("7000215", "7000222", "90002"):
        graph.token_error = code
        fresh = _client(graph_session, graph.login_base, graph.graph_base)
        with pytest.raises(VoicePromptError) as exc_info:
            await fresh.async_validate()
        errors.append(exc_info.value)
    graph.token_error = None
    graph.garbage = True
    with pytest.raises(VoicePromptError) as exc_info:
        await graph_client.create_call(TEAMS_USER, PROMPTS, RECEIVER_CALLBACK)
    errors.append(exc_info.value)

    assert [type(err) for err in errors] == [
        VoicePromptAuthenticationError,
        VoicePromptAuthenticationError,
        VoicePromptSecretExpiredError,
        VoicePromptTenantNotFoundError,
        VoicePromptResponseError,
    ]
    assert len(graph.issued_tokens) >= 2
    texts += [repr(graph_client), json.dumps(graph_client.diagnostics()), caplog.text]
    for err in errors:
        texts += [str(err), repr(err), repr(vars(err)), repr(err.args), repr(err.copy())]
    for text in texts:
        _assert_no_secret(text, graph)
    assert set(graph_client.diagnostics()) == {
        "tenant_id",
        "client_id",
        "has_token",
        "token_valid_for_seconds",
        "token_requests",
        "requests",
        "retries",
    }
