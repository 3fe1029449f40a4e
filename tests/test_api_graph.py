"""The Microsoft Graph API client on its own, against the fake Graph on 127.0.0.1.

No Home Assistant code runs here: the client gets a plain aiohttp session and a small local
receiver verifies the fake's notifications and feeds them to the client, as an application
would.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import json
import logging
import re
import ssl
import time
from typing import Any
import uuid

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa
import jwt
import pytest

from custom_components.voice_prompt.api import (
    GraphClient,
    GraphMedia,
    GraphNotificationVerifier,
    GraphTarget,
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    check_client_context,
    graph as graph_api,
    graph as graph_module,
    parse_media,
    parse_target,
)
from custom_components.voice_prompt.api.graph import (
    KEYS_REFRESH_INTERVAL,
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
        target=GraphTarget("user", USER_ID),
        callback_uri=RECEIVER_CALLBACK,
        hang_up=False,
    )
    return result.call_id


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
    assert all(isinstance(err, VoicePromptAuthenticationError) for err in outcomes)
    assert len({id(err) for err in outcomes}) == 50


async def test_token_is_refreshed_ahead_of_expiry(
    graph_session: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """A token is replaced 300 s before it expires: with 301 s it is good for 1 s."""
    fake = FakeGraph(
        tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_lifetime=301
    )
    await fake.start()
    try:
        client = _client(graph_session, fake.login_base, fake.graph_base)
        await client.async_validate()
        await client.async_validate()
        assert fake.token_requests == 1
        assert 0 < client.diagnostics()["token_valid_for_seconds"] <= 301

        fake.token_lifetime = 300  # from now on tokens arrive already inside the margin
        await asyncio.sleep(1.05)
        await client.async_validate()
        assert fake.token_requests == 2
        await client.async_validate()
        await client.async_validate()
        assert fake.token_requests == 4
    finally:
        await fake.close()


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
    assert err.translation_key == "graph_unauthorized"
    assert err.needs_new_credentials
    assert GUID.fullmatch(err.placeholders["request_id"])
    assert err.placeholders["request_id"] in str(err)
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

    assert exc_info.value.translation_key == "graph_throttled"
    assert exc_info.value.code == "TooManyRequests"
    assert GUID.fullmatch(exc_info.value.placeholders["request_id"])
    assert len(graph.calls_to("GET", "")) == 3
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
    assert exc_info.value.translation_key == "graph_throttled"
    assert "busy" in str(exc_info.value)
    assert graph_client.retries == 0


async def test_waiting_is_bounded_in_total(
    graph: FakeGraph, graph_client: GraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each wait fits on its own, but not both: the second is not waited for."""
    monkeypatch.setattr(graph_module, "MAX_RETRY_WAIT", 0.1)
    await graph_client.async_validate()
    graph.throttle = [(503, 0.06), (503, 0.06)]

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.get_call(str(uuid.uuid4()))

    assert exc_info.value.translation_key == "graph_throttled"
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
    ("status", "key", "cls"),
    [
        (400, "graph_error", VoicePromptRequestError),
        (409, "graph_error", VoicePromptRequestError),
        (500, "graph_error", VoicePromptRequestError),
        (404, "graph_call_not_found", VoicePromptInputError),
    ],
)
async def test_error_bodies_keep_the_request_id(
    graph: FakeGraph,
    graph_client: GraphClient,
    status: int,
    key: str,
    cls: type[VoicePromptError],
) -> None:
    await graph_client.async_validate()
    graph.http_status = status
    call_id = str(uuid.uuid4())

    with pytest.raises(VoicePromptError) as exc_info:
        await graph_client.get_call(call_id)

    err = exc_info.value
    assert type(err) is cls
    assert err.translation_key == key
    assert not err.needs_new_credentials
    request_id = err.placeholders["request_id"]
    assert GUID.fullmatch(request_id)
    assert request_id in str(err)
    assert err.placeholders["call_id"] == call_id
    assert err.placeholders["host"] == "127.0.0.1"
    if key == "graph_error":
        assert err.placeholders["status"] == str(status)
        assert err.placeholders["detail"]
        assert f"HTTP {status}" in str(err)


async def test_unknown_call_is_an_input_error(graph: FakeGraph, graph_client: GraphClient) -> None:
    call_id = str(uuid.uuid4())

    with pytest.raises(VoicePromptInputError) as exc_info:
        await graph_client.get_call(call_id)

    err = exc_info.value
    assert err.translation_key == "graph_call_not_found"
    assert err.code == "ResourceNotFound"
    assert call_id in str(err)
    assert GUID.fullmatch(err.placeholders["request_id"])


async def test_graph_error_text_keeps_only_the_host_of_urls_it_quotes(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    """Graph quotes the callback URL back; its path holds the webhook id, a secret."""
    callback = "http://ha.example.test/api/webhook/SECRET-WEBHOOK-ID"

    with pytest.raises(VoicePromptError) as exc_info:
        await graph_client.create_call(GraphTarget("user", USER_ID), PROMPTS, callback)

    err = exc_info.value
    assert "The callbackUri 'http://ha.example.test/…' is not valid" in str(err)
    assert "SECRET-WEBHOOK-ID" not in repr(err.placeholders)
    assert "SECRET-WEBHOOK-ID" not in str(err)


def test_media_errors_leave_the_query_out() -> None:
    """A signed prompt URL is named in the error without its signature."""
    with pytest.raises(VoicePromptInputError) as exc_info:
        parse_media(["http://media.example.test/door.wav?sv=2024&sig=SECRET-SIGNATURE"])

    err = exc_info.value
    assert err.translation_key == "media_not_https"
    assert err.placeholders["media"] == "http://media.example.test/door.wav?…"
    assert "SECRET-SIGNATURE" not in str(err)


async def test_missing_permission(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.permission_denied = True

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.create_call(GraphTarget("user", USER_ID), PROMPTS, RECEIVER_CALLBACK)

    err = exc_info.value
    assert not isinstance(err, VoicePromptInputError)
    assert err.translation_key == "graph_permission_missing"
    assert err.code == "7504"
    assert "Calls.Initiate.All" in str(err)
    assert GUID.fullmatch(err.placeholders["request_id"])
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
    assert exc_info.value.translation_key == "graph_error"
    assert exc_info.value.code == "502"
    assert exc_info.value.placeholders["request_id"] == "-"

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
    assert exc_info.value.placeholders["request_id"] == "r-1"
    assert len(exc_info.value.placeholders["detail"]) == 300

    odd_server.routes[path] = OddReply(400, json.dumps({"error": "invalid_request"}))
    with pytest.raises(VoicePromptRequestError) as exc_info:
        await client.get_call(call_id)
    assert exc_info.value.code == "400"

    odd_server.routes[path] = OddReply(200, json.dumps(["not", "a", "call"]))
    assert await client.get_call(call_id) == {}


async def test_odd_success_bodies(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    odd_server.routes[odd_server.token_path()] = OddReply(
        body=json.dumps({"access_token": "odd-token", "expires_in": "soon"})
    )
    client = _client(graph_session, odd_server.base_url + "/login", odd_server.base_url)
    call_id = str(uuid.uuid4())

    odd_server.routes["/v1.0/communications/calls"] = OddReply(201, json.dumps({"state": "x"}))
    with pytest.raises(VoicePromptResponseError, match="without an id"):
        await client.create_call(GraphTarget("user", USER_ID), PROMPTS, RECEIVER_CALLBACK)
    # An unreadable lifetime counts as the usual hour.
    assert 3500 < client.diagnostics()["token_valid_for_seconds"] <= 3599

    odd_server.routes[f"/v1.0/communications/calls/{call_id}/playPrompt"] = OddReply(
        200, json.dumps({"status": "running"})
    )
    with pytest.raises(VoicePromptResponseError, match="without an operation id"):
        await client.play_prompt(call_id, PROMPTS, "ctx")

    odd_server.routes[f"/v1.0/communications/calls/{call_id}"] = OddReply(200, "{not json")
    with pytest.raises(VoicePromptResponseError, match="not JSON"):
        await client.get_call(call_id)


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
    assert not result.placed_call
    assert not result.hung_up
    assert client.diagnostics()["token_valid_for_seconds"] <= 120


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
        target=GraphTarget("user", USER_ID),
        callback_uri=RECEIVER_CALLBACK,
        completion_timeout=0.01,
    )

    assert result.operation.finished
    assert result.final is None
    assert result.hung_up
    assert ("DELETE", "/v1.0/communications/calls/call-1") in odd_server.requests


# ------------------------------------------------------------------- token errors


@pytest.mark.parametrize(
    ("code", "key", "text"),
    [
        ("90002", "tenant_not_found", TENANT_ID),
        ("700016", "invalid_auth", CLIENT_ID),
        ("7000215", "invalid_auth", "secret"),
        ("7000222", "secret_expired", "expired"),
    ],
)
async def test_token_errors(
    graph: FakeGraph, graph_client: GraphClient, code: str, key: str, text: str
) -> None:
    graph.token_error = code

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await graph_client.async_validate()

    err = exc_info.value
    assert err.translation_key == key
    assert err.code == code
    assert err.needs_new_credentials
    assert text in str(err)
    assert err.placeholders["tenant"] == TENANT_ID
    assert err.placeholders["client"] == CLIENT_ID
    assert "AADSTS" not in str(err)
    assert graph_client.diagnostics()["has_token"] is False


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tenant_id": "99999999-2222-3333-4444-555555555555"}, "tenant_not_found"),
        ({"client_id": "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"}, "invalid_auth"),
        ({"client_secret": "wrong"}, "invalid_auth"),
    ],
)
async def test_real_credential_mismatches(
    graph: FakeGraph,
    graph_session: aiohttp.ClientSession,
    kwargs: dict[str, str],
    key: str,
) -> None:
    client = _client(graph_session, graph.login_base, graph.graph_base, **kwargs)

    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.async_validate()

    assert exc_info.value.translation_key == key
    assert graph.issued_tokens == []


async def test_token_error_without_a_known_code(
    graph: FakeGraph, graph_session: aiohttp.ClientSession
) -> None:
    # A blank secret: AADSTS7000218, "invalid_client" → still a credentials problem.
    client = _client(graph_session, graph.login_base, graph.graph_base, client_secret="")
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await client.async_validate()
    assert exc_info.value.translation_key == "invalid_auth"
    assert exc_info.value.needs_new_credentials

    # A code that says nothing about the credentials: a broken reply, not reauth.
    graph.token_error = "900561"
    client = _client(graph_session, graph.login_base, graph.graph_base)
    with pytest.raises(VoicePromptResponseError) as exc_info2:
        await client.async_validate()
    assert not exc_info2.value.needs_new_credentials
    assert "HTTP 400" in str(exc_info2.value)


async def test_token_reply_without_a_token(
    graph_session: aiohttp.ClientSession, odd_server: OddServer
) -> None:
    client = _client(graph_session, odd_server.base_url + "/login")

    odd_server.routes[odd_server.token_path()] = OddReply(body=json.dumps({"expires_in": 10}))
    with pytest.raises(VoicePromptResponseError, match="without access_token"):
        await client.async_validate()

    odd_server.routes[odd_server.token_path()] = OddReply(body="<html>sign in</html>")
    with pytest.raises(VoicePromptResponseError, match="not JSON"):
        await client.async_validate()

    odd_server.routes[odd_server.token_path()] = OddReply(500, "<html>oops</html>", "text/html")
    with pytest.raises(VoicePromptResponseError, match="HTTP 500"):
        await client.async_validate()
    assert client.diagnostics()["has_token"] is False


# ------------------------------------------------------------------ transport errors


async def test_closed_port_is_a_connection_error(
    graph_session: aiohttp.ClientSession, graph_closed_port: int
) -> None:
    client = _client(graph_session, f"http://127.0.0.1:{graph_closed_port}/login")

    with pytest.raises(VoicePromptConnectionError) as exc_info:
        await client.async_validate()

    err = exc_info.value
    assert type(err) is VoicePromptConnectionError
    assert err.translation_key == "cannot_connect"
    assert err.placeholders["host"] == "127.0.0.1"
    assert not err.needs_new_credentials


async def test_garbage_is_a_response_error(graph: FakeGraph, graph_client: GraphClient) -> None:
    await graph_client.async_validate()
    graph.garbage = True

    with pytest.raises(VoicePromptResponseError) as exc_info:
        await graph_client.create_call(GraphTarget("user", USER_ID), PROMPTS, RECEIVER_CALLBACK)

    assert exc_info.value.translation_key == "invalid_response"
    assert "Service Unavailable" not in str(exc_info.value)


async def test_latency_beyond_the_timeout(
    graph: FakeGraph, graph_session: aiohttp.ClientSession
) -> None:
    client = _client(graph_session, graph.login_base, graph.graph_base, request_timeout=0.1)
    graph.latency = 0.5

    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await client.async_validate()

    assert exc_info.value.translation_key == "timeout"
    assert exc_info.value.placeholders["timeout"] == "0.1"
    assert "0.1 seconds" in str(exc_info.value)


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
    assert exc_info.value.translation_key == "ssl_error"


# --------------------------------------------------------------------- call bodies


async def test_create_call_body_for_a_teams_user(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    call_id = await graph_client.create_call(
        GraphTarget("user", USER_ID), PROMPTS, RECEIVER_CALLBACK
    )

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
    call_id = await graph_client.create_call(
        target, PROMPTS[:1], RECEIVER_CALLBACK, source_instance_id=INSTANCE_ID
    )

    (request,) = graph.calls_to("POST", CALLS)
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
            GraphTarget("phone", "+31201234567"), PROMPTS, RECEIVER_CALLBACK
        )

    assert exc_info.value.translation_key == "phone_needs_instance"
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
    assert event.type == "prompt_completed"
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
    assert exc_info.value.translation_key == "graph_call_not_found"
    await wait_for(lambda: graph_receiver.events[-1].type == "call_terminated")
    assert graph_receiver.events[-1].call_id == call_id
    assert graph_receiver.events[-1].result_subcode == 5001


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
        assert exc_info.value.translation_key == "call_id_invalid"
    assert graph.calls_to("GET", "") == []
    assert graph.calls_to("DELETE", "") == []


# -------------------------------------------------------------------- async_play


async def test_async_play_full_path(
    graph: FakeGraph, graph_client: GraphClient, graph_receiver: NotificationReceiver
) -> None:
    result = await graph_client.async_play(
        PROMPTS,
        client_context="doorbell-1",
        target=GraphTarget("user", USER_ID),
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
    assert final.type == "prompt_completed"
    assert final.operation_id == result.operation.id
    assert final.client_context == "doorbell-1"
    assert (final.result_code, final.result_subcode) == (200, 0)
    assert final.result_message == "Action completed successfully."
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
        "call_established",
        "prompt_completed",
        "call_terminated",
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
        target=GraphTarget("user", USER_ID),
        callback_uri=RECEIVER_CALLBACK,
    )

    assert result.final is not None
    assert result.final.type == "prompt_completed"
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
        target=GraphTarget("user", USER_ID),
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
        target=GraphTarget("user", USER_ID),
        callback_uri=RECEIVER_CALLBACK,
        loop=True,
        completion_timeout=0.01,
    )

    assert result.final is None
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


async def test_async_play_needs_a_call_or_a_target(graph_client: GraphClient) -> None:
    with pytest.raises(ValueError, match="call_id"):
        await graph_client.async_play(PROMPTS, client_context="ctx")
    with pytest.raises(ValueError, match="call_id"):
        await graph_client.async_play(
            PROMPTS, client_context="ctx", target=GraphTarget("user", USER_ID)
        )


async def test_call_not_established_in_time_is_hung_up(
    graph: FakeGraph, graph_client: GraphClient
) -> None:
    graph.notify_delay = 2.0

    with pytest.raises(VoicePromptTimeoutError) as exc_info:
        await graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=GraphTarget("user", USER_ID),
            callback_uri=RECEIVER_CALLBACK,
            establish_timeout=0.1,
        )

    assert exc_info.value.translation_key == "call_not_established"
    assert exc_info.value.placeholders["timeout"] == "0.1"
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
            target=GraphTarget("user", USER_ID),
            callback_uri=RECEIVER_CALLBACK,
            completion_timeout=0.1,
        )

    assert exc_info.value.translation_key == "prompt_timeout"
    (call_id,) = graph.calls
    assert [r.reply_status for r in graph.calls_to("DELETE", f"/calls/{call_id}")] == [204]
    assert graph_client.tracker._waiters == {}


async def test_unanswered_call(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.answer = False

    with pytest.raises(VoicePromptRequestError) as exc_info:
        await graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=GraphTarget("user", USER_ID),
            callback_uri=RECEIVER_CALLBACK,
        )

    err = exc_info.value
    assert err.translation_key == "call_not_answered"
    assert not isinstance(err, VoicePromptInputError)
    assert err.code == "480"
    assert "Callee could not be reached" in str(err)
    assert graph.calls_to("POST", "/playPrompt") == []


async def test_unanswered_call_is_not_hung_up_again(
    graph: FakeGraph, graph_client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    graph.answer = False

    with pytest.raises(VoicePromptRequestError):
        await graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=GraphTarget("user", USER_ID),
            callback_uri=RECEIVER_CALLBACK,
        )

    assert "Could not hang up" not in caplog.text
    assert graph.calls_to("DELETE", "") == []


async def test_failed_media(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.fail_media = True

    result = await graph_client.async_play(
        PROMPTS,
        client_context="ctx",
        target=GraphTarget("user", USER_ID),
        callback_uri=RECEIVER_CALLBACK,
    )

    final = result.final
    assert final is not None
    assert final.type == "prompt_failed"
    assert (final.result_code, final.result_subcode) == (400, 8536)
    assert final.result_message == "Action failed, file could not be downloaded."
    assert result.hung_up


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
        target=GraphTarget("user", USER_ID),
        callback_uri=RECEIVER_CALLBACK,
    )
    await breaker

    assert result.final is not None
    assert result.final.type == "prompt_completed"
    assert "Could not hang up call" in caplog.text
    assert [r.reply_status for r in graph.calls_to("DELETE", "")] == [500]
    assert graph.calls[result.call_id].state == "established"
    assert not result.hung_up


async def test_close_cancels_waiters(graph: FakeGraph, graph_client: GraphClient) -> None:
    graph.notify_delay = 2.0
    play = asyncio.create_task(
        graph_client.async_play(
            PROMPTS,
            client_context="ctx",
            target=GraphTarget("user", USER_ID),
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


async def test_tracker_notification_before_the_waiter() -> None:
    tracker = GraphCallTracker()
    call_id, op_id = str(uuid.uuid4()), str(uuid.uuid4())

    events = tracker.handle(_call_note(call_id, "established"))
    assert [e.type for e in events] == ["call_established"]
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
    assert established.call_id == call_id
    assert done.type == "prompt_completed"
    assert (done.result_code, done.result_subcode, done.result_message) == (200, 0, "ok")
    assert done.client_context == "c"


async def test_tracker_wakes_every_waiter() -> None:
    tracker = GraphCallTracker()
    op_id = str(uuid.uuid4())
    waiters = [asyncio.create_task(tracker.wait_operation(op_id, 5)) for _ in range(3)]
    await asyncio.sleep(0)

    tracker.handle(_op_note("c1", op_id.replace("-", ""), "failed", resultInfo={"code": True}))

    events = await asyncio.gather(*waiters)
    assert {e.type for e in events} == {"prompt_failed"}
    assert events[0].result_code is None  # a bool is not a code
    assert tracker._waiters == {}


async def test_tracker_skips_a_waiter_that_gave_up() -> None:
    tracker = GraphCallTracker()
    waiter = asyncio.create_task(tracker.wait_call("c1", 5))
    await asyncio.sleep(0)  # registered
    waiter.cancel()  # its future is cancelled now, its clean-up runs later

    events = tracker.handle(_call_note("c1", "established"))

    assert [e.type for e in events] == ["call_established"]
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
def test_tracker_ignores_what_it_does_not_know(payload: dict[str, Any]) -> None:
    tracker = GraphCallTracker()
    assert tracker.handle(payload) == []
    assert tracker._call_states == {}
    assert tracker._operations == {}


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
        ("call_terminated", "c1", 5001),
        ("call_terminated", "c2", None),
    ]


def test_tracker_memory_is_bounded() -> None:
    tracker = GraphCallTracker()
    for number in range(graph_module._MEMORY + 5):
        tracker.handle(_call_note(f"c{number}", "established"))
    assert len(tracker._call_states) == graph_module._MEMORY
    assert "c0" not in tracker._call_states
    assert f"c{graph_module._MEMORY + 4}" in tracker._call_states


# ---------------------------------------------------------------------- verifier


@pytest.fixture
def verifier(graph: FakeGraph, graph_session: aiohttp.ClientSession) -> GraphNotificationVerifier:
    return GraphNotificationVerifier(
        graph_session, CLIENT_ID, openid_config_url=graph.openid_config_url
    )


def _key_reads(graph: FakeGraph) -> int:
    return len(graph.calls_to("GET", "/botframework/keys"))


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
        (lambda g: f"Bearer {g.make_jwt(kid='unknown-kid')}", "unknown signing key"),
    ],
)
async def test_verifier_refuses(
    graph: FakeGraph,
    verifier: GraphNotificationVerifier,
    make: Any,
    reason: str,
) -> None:
    with pytest.raises(VoicePromptAuthenticationError) as exc_info:
        await verifier.verify(make(graph))

    err = exc_info.value
    assert err.translation_key == "notification_unauthorized"
    assert err.placeholders["detail"] == reason
    assert str(err) == f"Refused a notification: {reason}"


async def test_verifier_reads_keys_on_a_freshly_booted_host(
    graph: FakeGraph, verifier: GraphNotificationVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monotonic clock starts near 0 at boot: the first read must not wait a minute."""
    monkeypatch.setattr(graph_api.time, "monotonic", lambda: 5.0)

    claims = await verifier.verify(f"Bearer {graph.make_jwt()}")

    assert claims["aud"] == CLIENT_ID
    assert _key_reads(graph) == 1


async def test_verifier_rereads_keys_at_most_once_per_interval(
    graph: FakeGraph, verifier: GraphNotificationVerifier
) -> None:
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
    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(rotated)
    assert _key_reads(graph) == 1

    # ...then one re-read picks up the new key.
    verifier._keys_read -= KEYS_REFRESH_INTERVAL + 1
    await asyncio.gather(verifier.verify(rotated), verifier.verify(rotated))
    assert _key_reads(graph) == 2
    assert list(verifier._keys) == [graph.kid]
    with pytest.raises(VoicePromptAuthenticationError, match="unknown signing key"):
        await verifier.verify(f"Bearer {graph.make_jwt(kid='nope')}")
    assert _key_reads(graph) == 2


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
    assert "127.0.0.1" in caplog.text


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
    assert (await waiter).type == "prompt_completed"


# ------------------------------------------------------------- parsing and limits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (USER_ID.upper(), GraphTarget("user", USER_ID)),
        (f"  {USER_ID}\n", GraphTarget("user", USER_ID)),
        ("+31 20 123 4567", GraphTarget("phone", "+31201234567")),
        ("+1 (555) 010-4567", GraphTarget("phone", "+15550104567")),
        ("+44.20.7946.0000", GraphTarget("phone", "+442079460000")),
    ],
)
def test_parse_target(text: str, expected: GraphTarget) -> None:
    assert parse_target(text) == expected


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
    assert exc_info.value.translation_key == "target_invalid"
    assert len(exc_info.value.placeholders["target"]) <= 60


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
    ("items", "key"),
    [
        ([], "media_empty"),
        ([MEDIA] * 21, "media_too_many"),
        (["http://media.example.test/a.wav"], "media_not_https"),
        (["HTTP://media.example.test/a.wav"], "media_not_https"),
        (["ftp://media.example.test/a.wav"], "media_invalid"),
        (["/local/a.wav"], "media_invalid"),
        (["https://media.example.test/a b.wav"], "media_invalid"),
        (["  "], "media_invalid"),
        ([5], "media_invalid"),
        ([{"resource_id": "x"}], "media_invalid"),
        ([{"url": MEDIA, "resource_id": " "}], "media_invalid"),
        ([{"url": MEDIA, "resource_id": 7}], "media_invalid"),
    ],
)
def test_parse_media_refuses(items: list[Any], key: str) -> None:
    with pytest.raises(VoicePromptInputError) as exc_info:
        parse_media(items)
    err = exc_info.value
    assert err.translation_key == key
    if key == "media_too_many":
        assert err.placeholders["limit"] == "20"
    if key == "media_not_https":
        assert err.placeholders["media"] == items[0]


def test_check_client_context() -> None:
    generated = check_client_context(None)
    assert uuid.UUID(generated)
    assert check_client_context("") != generated
    assert check_client_context("doorbell") == "doorbell"
    assert check_client_context("x" * 256) == "x" * 256
    with pytest.raises(VoicePromptInputError) as exc_info:
        check_client_context("x" * 257)
    assert exc_info.value.translation_key == "client_context_too_long"
    assert exc_info.value.placeholders["limit"] == "256"


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
        target=GraphTarget("user", USER_ID),
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
        await graph_client.create_call(GraphTarget("user", USER_ID), PROMPTS, RECEIVER_CALLBACK)
    errors.append(exc_info.value)

    assert len(graph.issued_tokens) >= 2
    texts += [repr(graph_client), json.dumps(graph_client.diagnostics()), caplog.text]
    for err in errors:
        texts += [str(err), repr(err), json.dumps(err.placeholders), repr(err.args)]
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
