"""Hardening: no secret leaks, on any path, for every backend.

One test per backend drives every flow, action, error, event, repair and diagnostics path
of an entry with logging at DEBUG (everything: the integration, Home Assistant, aiohttp,
asyncio), and collects every text a user or a bug report could show: log records (with
tracebacks), exceptions (message, repr, args, placeholders, the whole cause and context
chain formatted), flow results, entry state reasons, action responses, event entity
states, repair issues, diagnostics, and the repr of the runtime objects. Then it checks
that none holds a secret, in any letter case:

- Yeastar: a password, the MD5 of one, or any PBX token the fake ever issued, saw or was
  given (also not the first 12 characters of a token or hash). The token travels in the
  URL query and aiohttp prints URLs in its exceptions, so the transport failures (timeout,
  dropped connection, refused connection, TLS) matter most.
- Microsoft Teams: the client secret (old, wrong and new), every Graph access token the
  fake issued (also its first 12 random characters), the notification tokens sent to the
  webhook, the entry's webhook id (a bearer secret: whoever knows it can post to the
  webhook) and the signature of a signed media URL (Graph error texts quote URLs).

Home Assistant's own webhook handler and HTTP access log name the webhook path of every
request they serve (DEBUG/INFO, outside the integration); only those records may hold the
webhook id. Home Assistant's core logs a failed action with the data it was called with;
only its records may hold the signed URL the caller passed in.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
import itertools
import json
import logging
import socket
import traceback
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.voice_prompt.api.yeastar import DEFAULT_TIMEOUT, ERRORS
from custom_components.voice_prompt.backends import graph as graph_backend
from custom_components.voice_prompt.backends.graph import CONF_TENANT_ID, GraphEndpoints
from custom_components.voice_prompt.backends.yeastar import KEEPALIVE_INTERVAL, YeastarBackend
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN, SERVICE_PLAY_PROMPT
from homeassistant.components import hassio, webhook
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    CONF_WEBHOOK_ID,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from tests.conftest import PASSWORD, reauth_flows
from tests.fakes.graph import FakeGraph
from tests.fakes.yeastar import FakeYeastarPBX
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    CLIENT_ID,
    CLIENT_SECRET,
    EXTERNAL_URL,
    TENANT_ID,
    USER_ID,
    OddReply,
    OddServer,
    graph,
    graph_closed_port,
    graph_endpoints,
    graph_entry_data,
    graph_http,
    odd_server,
)

# A diagnostics download imports hassio for the system information; imported under the
# frozen clock its dataclasses break (mashumaro meets freezegun's datetime): it is
# imported with this module, before any test freezes the clock.
PRELOADED = (hassio,)
PLAYPROMPT = "extension/playprompt"
NEW_PASSWORD = "VoicePrompt-Changed2"
WRONG_PASSWORD = "Not-The-Password-42"
NEW_SECRET = "graph-secret-rotated~Xy7.Pq"
WRONG_SECRET = "graph-secret-mistyped~Ab3.Cd"
SIGNATURE = "5f3c9a1e7b2d4c6f8a0e1b3d5c7f9a2e"
SIGNED_MEDIA = f"https://media.example.test/doorbell.wav?sv=2024&sig={SIGNATURE}"
PREFIX = 12  # a leaked prefix of a token or hash is a leak too
# Home Assistant's webhook handler and the HTTP server log every webhook path they serve.
WEBHOOK_LOGGERS = frozenset(
    {"homeassistant.components.webhook", "homeassistant.helpers.http", "aiohttp.access"}
)
# Home Assistant logs the data an action was called with (the signed URL is the caller's).
ACTION_LOGGERS = frozenset({"homeassistant.core"})


@dataclass
class Evidence:
    """Everything observable, and the names of the paths that produced it."""

    paths: list[str] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    errors: list[tuple[str, BaseException]] = field(default_factory=list)

    def path(self, name: str) -> None:
        assert name not in self.paths, name
        self.paths.append(name)

    def text(self, where: str, value: Any) -> None:
        self.texts.append((where, value if isinstance(value, str) else repr(value)))

    def error(self, where: str, err: BaseException) -> None:
        self.errors.append((where, err))

    def registries(self, hass: HomeAssistant, where: str) -> None:
        """The integration's repair issues as they stand now."""
        for issue in ir.async_get(hass).issues.values():
            if issue.domain == DOMAIN:
                self.text(f"issue {where}", (issue.issue_id, issue.translation_placeholders))


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])


def _error_texts(err: BaseException) -> Iterable[str]:
    yield "".join(traceback.format_exception(err))
    for link in _chain(err):
        yield str(link)
        yield repr(link)
        yield repr(link.args)
        for attribute in ("placeholders", "translation_placeholders", "message", "target"):
            if (value := getattr(link, attribute, None)) is not None:
                yield repr(value)


def _texts(
    ev: Evidence, caplog: pytest.LogCaptureFixture, changes: list[Event]
) -> list[tuple[str, str, str | None]]:
    """(where, text, logger name of a log record or None) of everything observable."""
    texts: list[tuple[str, str, str | None]] = [(where, text, None) for where, text in ev.texts]
    for where, err in ev.errors:
        texts.extend((f"error {where}", text, None) for text in _error_texts(err))
    for change in changes:
        if change.data["entity_id"].startswith("event.") and change.data["new_state"]:
            state = change.data["new_state"]
            texts.append((f"state {state.entity_id}", repr(dict(state.attributes)), None))
    for record in caplog.records:
        name = record.name
        texts.append((f"log record {name}", caplog.handler.format(record), name))
        texts.append((f"log args {name}", repr(record.args), name))
        if record.exc_info and record.exc_info[1] is not None:
            texts.extend(
                (f"logged error {name}", text, name) for text in _error_texts(record.exc_info[1])
            )
    return texts


def _assert_no_leak(
    texts: list[tuple[str, str, str | None]],
    secrets: Mapping[str, bool],
    *,
    loggers_that_may_show: Mapping[str, frozenset[str]] | None = None,
) -> None:
    """No secret (or, where it counts, its first characters) in any text, in any case."""
    allowed = loggers_that_may_show or {}
    lowered = [(where, text.lower(), logger) for where, text, logger in texts]
    for secret, prefix_too in secrets.items():
        needles = {secret.lower()}
        if prefix_too:
            needles.add(secret[:PREFIX].lower())
        for where, text, logger in lowered:
            if logger is not None and logger in allowed.get(secret, frozenset()):
                continue
            for needle in needles:
                assert needle not in text, f"secret {secret[:4]}… leaked in {where}"


def _debug_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("custom_components.voice_prompt", "homeassistant", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)


async def _until(predicate: Callable[[], bool]) -> None:
    """Let the loop run (without moving the frozen clock) until ``predicate()`` holds."""
    for _ in range(200_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never came true")


# ----------------------------------------------------------------------------- Yeastar


def _secrets(pbx: FakeYeastarPBX, seen_tokens: set[str]) -> dict[str, bool]:
    """Secret → whether a prefix of it counts too (random tokens and hashes)."""
    found = dict.fromkeys((PASSWORD, NEW_PASSWORD, WRONG_PASSWORD), False)
    for password in (PASSWORD, NEW_PASSWORD, WRONG_PASSWORD):
        found[FakeYeastarPBX.md5(password)] = True
    tokens = set(seen_tokens) | set(pbx.tokens)
    for request in pbx.requests:
        if request.token:
            tokens.add(request.token)
        if isinstance(request.reply, dict) and isinstance(request.reply.get("token"), str):
            tokens.add(request.reply["token"])
    found.update(dict.fromkeys(tokens, True))
    found.pop("", None)
    return found


async def _token_from_fake(pbx: FakeYeastarPBX) -> str:
    """Log in like another application would (its token is then given to us)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{pbx.base_url}login",
            json={"username": "api", "password": FakeYeastarPBX.md5(pbx.password), "port": "8260"},
            ssl=False,
        ) as response,
    ):
        token = (await response.json(content_type=None))["token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
def closed_port(socket_enabled: None) -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def _client_with_fresh_token(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, user: MockUser
) -> ClientSessionGenerator:
    """``hass_client`` with an access token issued when it is called.

    The fixture's token is issued when the test starts; it has expired once the frozen
    clock has moved half an hour.
    """

    async def client() -> TestClient:
        refresh_token = next(iter(user.refresh_tokens.values()))
        return await hass_client(hass.auth.async_create_access_token(refresh_token))

    return client


def _lift_faults(pbx: FakeYeastarPBX) -> None:
    pbx.http_status = None
    pbx.garbage = False
    pbx.reply_override = {}
    pbx.fail_next = {}
    pbx.hang = False
    pbx.drop_connection = False


@pytest.mark.usefixtures("tolerate_tls_resets")
async def test_no_secret_on_any_path(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    hass_admin_user: MockUser,
    pbx: FakeYeastarPBX,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every flow, action, error and diagnostics path of a PBX: no secret in anything visible.

    The clock is frozen: the keepalive's idle time and the client's timeout are reached by
    moving it (``freezer``), never by editing the client.
    """
    _debug_everything(caplog)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    ev = Evidence()
    tokens: set[str] = set()

    def note_tokens() -> None:
        tokens.update(pbx.tokens)

    # -- config flow ---------------------------------------------------------------------

    async def submit(step_input: dict[str, Any]) -> Any:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "yeastar"}
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], step_input)
        if result["type"] is FlowResultType.FORM and result["step_id"] == "certificate":
            ev.text("flow result", result)  # the certificate step: no secret in it either
            result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        # A created entry's "data" is what gets stored (the password must be); Home
        # Assistant does not send it to the frontend. Everything else is checked.
        ev.text("flow result", {k: v for k, v in result.items() if k != "data"})
        note_tokens()
        return result

    form = {
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: False,
    }
    for path, changes_to_form, error in (
        ("flow: wrong password", {CONF_PASSWORD: WRONG_PASSWORD}, "invalid_auth"),
        ("flow: self-signed certificate, verification on", {CONF_VERIFY_SSL: True}, "ssl_error"),
        ("flow: connection refused", {CONF_PORT: closed_port}, "cannot_connect"),
    ):
        result = await submit({**form, **changes_to_form})
        assert result["errors"] == {"base": error}, path
        hass.config_entries.flow.async_abort(result["flow_id"])
        ev.path(path)

    pbx.block_ip()
    result = await submit(form)
    assert result["errors"] == {"base": "ip_blocked"}
    hass.config_entries.flow.async_abort(result["flow_id"])
    pbx.unblock_all()
    ev.path("flow: IP blocked")

    pbx.fail_next["deviceinfo/query"] = ["30001"]
    result = await submit(form)
    assert result["errors"] == {"base": "unknown"}  # logged with a traceback
    hass.config_entries.flow.async_abort(result["flow_id"])
    ev.path("flow: PBX error (logged with traceback)")

    pbx.unblock_all()
    result = await submit(form)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    note_tokens()
    ev.path("flow: success, then setup")

    # -- the action ----------------------------------------------------------------------

    async def play(where: str, **data: Any) -> Any:
        try:
            response = await hass.services.async_call(
                DOMAIN,
                SERVICE_PLAY_PROMPT,
                {"config_entry_id": entry.entry_id, "prompt": "doorbell", **data},
                blocking=True,
                return_response=True,
            )
        except HomeAssistantError as err:
            ev.error(where, err)
            response = None
        else:
            ev.text(where, response)
        note_tokens()
        await hass.async_block_till_done()
        ev.registries(hass, where)
        return response

    assert await play("action", target="1000")
    ev.path("action: success")
    assert await play("action partial", extension=["1000", "4242", "1002"])
    ev.path("action: partial failure (warning log)")

    for errno in [*ERRORS, "99999"]:
        pbx.fail_next[PLAYPROMPT] = [errno]
        await play(f"action errno {errno}", target="1000")
        ev.path(f"action: PBX error {errno}")
    _lift_faults(pbx)
    assert any(where.startswith("issue action errno 20002") for where, _ in ev.texts)

    for path, switches in (
        ("action: HTTP 500", {"http_status": 500}),
        ("action: non-JSON body", {"garbage": True}),
        ("action: dropped connection", {"drop_connection": True}),
        ("action: reply without status", {"reply_override": {PLAYPROMPT: {"x": 1}}}),
        (
            "action: success without call id",
            {"reply_override": {PLAYPROMPT: {"status": "Success"}}},
        ),
    ):
        for switch, value in switches.items():
            setattr(pbx, switch, value)
        assert await play(path, target="1000") is None, path
        _lift_faults(pbx)
        ev.path(path)

    pbx.hang = True
    sent = len(pbx.calls(PLAYPROMPT))
    waiting = asyncio.create_task(play("action: no reply (timeout)", target="1000"))
    await _until(lambda: len(pbx.calls(PLAYPROMPT)) > sent)
    freezer.tick(timedelta(seconds=DEFAULT_TIMEOUT + 1))
    assert await waiting is None
    _lift_faults(pbx)
    assert ev.errors[-1][1].translation_key == "timeout"  # type: ignore[attr-defined]
    ev.path("action: no reply (timeout)")

    pbx.http_status = 503
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": entry.entry_id, "prompt": "doorbell", "target": "1000"},
    )
    await hass.async_block_till_done()
    _lift_faults(pbx)
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    ev.path("action: fire-and-forget failure (logged by Home Assistant)")

    # -- keepalive -----------------------------------------------------------------------

    async def idle_tick() -> None:
        """Ten idle minutes and more: the next keepalive round sends a heartbeat."""
        freezer.tick(timedelta(seconds=700))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
        note_tokens()

    assert timedelta(seconds=700) > KEEPALIVE_INTERVAL
    heartbeats = len(pbx.calls("heartbeat"))
    await idle_tick()
    assert len(pbx.calls("heartbeat")) == heartbeats + 1
    ev.path("heartbeat: success")
    pbx.drop_connection = True
    await idle_tick()
    _lift_faults(pbx)
    assert len(pbx.calls("heartbeat")) == heartbeats + 2
    ev.path("heartbeat: failure (logged once by the coordinator)")
    pbx.expire_tokens()
    logins = pbx.logins
    await idle_tick()  # refused token → one re-login from the heartbeat
    assert pbx.logins == logins + 1
    ev.path("heartbeat: token expired, re-login")

    # -- credentials at runtime, reauth, reconfigure --------------------------------------

    pbx.password = NEW_PASSWORD
    pbx.expire_tokens()
    assert await play("runtime auth failure", target="1000") is None
    assert await play("after auth failure", target="1000") is None
    ev.path("action: password changed on the PBX (reauth started)")

    (flow,) = reauth_flows(hass, entry)
    ev.text("reauth progress", flow)
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_USERNAME: "api", CONF_PASSWORD: WRONG_PASSWORD}
    )
    ev.text("reauth result", result)
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_USERNAME: "api", CONF_PASSWORD: NEW_PASSWORD}
    )
    ev.text("reauth result", result)
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    note_tokens()
    assert entry.state is ConfigEntryState.LOADED
    ev.path("reauth: wrong then right password")

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    ev.text("reconfigure form", result)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: f"https://{pbx.host}:{pbx.port}/", CONF_PORT: 8088, CONF_VERIFY_SSL: False},
    )
    ev.text("reconfigure result", result)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    note_tokens()
    ev.path("reconfigure")

    # -- setup failures ------------------------------------------------------------------

    base = {
        CONF_BACKEND: YeastarBackend.kind,
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: NEW_PASSWORD,
        CONF_VERIFY_SSL: False,
    }
    for path, changes_to_data, state, blocked in (
        (
            "setup: wrong password",
            {CONF_PASSWORD: WRONG_PASSWORD},
            ConfigEntryState.SETUP_ERROR,
            False,
        ),
        (
            "setup: connection refused",
            {CONF_PORT: closed_port},
            ConfigEntryState.SETUP_RETRY,
            False,
        ),
        ("setup: TLS refused", {CONF_VERIFY_SSL: True}, ConfigEntryState.SETUP_RETRY, False),
        ("setup: IP blocked (repair issue)", {}, ConfigEntryState.SETUP_RETRY, True),
    ):
        if blocked:
            pbx.block_ip()
        failing = MockConfigEntry(domain=DOMAIN, title=path, data={**base, **changes_to_data})
        failing.add_to_hass(hass)
        await hass.config_entries.async_setup(failing.entry_id)
        await hass.async_block_till_done()
        assert failing.state is state, path
        ev.text(path, failing.reason)
        ev.text(path, failing.error_reason_translation_placeholders)
        ev.text(path, hass.config_entries.flow.async_progress())
        ev.registries(hass, path)
        await hass.config_entries.async_remove(failing.entry_id)
        await hass.async_block_till_done()
        pbx.unblock_all()
        ev.path(path)
    assert any(where.startswith("issue setup: IP blocked") for where, _ in ev.texts)

    # -- an entry with a token given by the user -----------------------------------------

    user_token = await _token_from_fake(pbx)
    tokens.add(user_token)
    token_entry = MockConfigEntry(
        domain=DOMAIN,
        title="token",
        unique_id="token entry",
        data={**{k: v for k, v in base.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}}
        | {CONF_TOKEN: user_token},
    )
    token_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(token_entry.entry_id)
    await hass.async_block_till_done()
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": token_entry.entry_id, "prompt": "doorbell", "target": "1001"},
        blocking=True,
        return_response=True,
    )
    ev.text("token entry action", response)
    ev.path("token entry: setup and action")

    # -- diagnostics and the runtime objects ---------------------------------------------

    http_client = _client_with_fresh_token(hass, hass_client, hass_admin_user)
    for where, diag_entry in (("credentials", entry), ("token", token_entry)):
        diagnostics = await get_diagnostics_for_config_entry(hass, http_client, diag_entry)
        ev.text(f"diagnostics {where}", json.dumps(diagnostics))
        backend = diag_entry.runtime_data
        for thing in (backend, backend.client, diag_entry):
            ev.text(f"repr {where}", repr(thing))
            ev.text(f"str {where}", str(thing))
        ev.text(f"client diagnostics {where}", backend.client.diagnostics())
        ev.path(f"diagnostics and reprs: {where} entry")

    pbx.expire_tokens()
    with pytest.raises(HomeAssistantError) as dead:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_PLAY_PROMPT,
            {"config_entry_id": token_entry.entry_id, "prompt": "doorbell", "target": "1001"},
            blocking=True,
        )
    ev.error("token entry, dead token", dead.value)
    await hass.async_block_till_done()
    assert len(reauth_flows(hass, token_entry)) == 1
    diagnostics = await get_diagnostics_for_config_entry(hass, http_client, token_entry)
    ev.text("diagnostics dead token", json.dumps(diagnostics))
    ev.path("token entry: dead token (reauth), diagnostics")

    # -- unload (logout), also when the logout fails --------------------------------------

    await play("action before unload", target="1000")
    pbx.drop_connection = True
    assert await hass.config_entries.async_unload(entry.entry_id)
    _lift_faults(pbx)
    ev.path("unload: logout fails (debug log)")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    note_tokens()
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert pbx.calls("logout")[-1].reply == {"status": "Success"}
    ev.path("unload: logout")

    # -- the verdict ----------------------------------------------------------------------

    secrets = _secrets(pbx, tokens)
    assert len(secrets) >= 20  # passwords, their hashes and a good number of tokens
    texts = _texts(ev, caplog, changes)
    assert len(ev.errors) >= 30
    assert any(r.exc_info for r in caplog.records)  # tracebacks were logged and checked
    assert any(where.startswith("state event.") for where, _, _ in texts)
    _assert_no_leak(texts, secrets)

    print(
        f"\nsecret paths: {len(ev.paths)}; secrets: {len(secrets)}; texts checked: "
        f"{len(texts)}; log records: {len(caplog.records)}; errors: {len(ev.errors)}"
    )
    assert len(ev.paths) == len(set(ev.paths))


@pytest.mark.usefixtures("tolerate_tls_resets")
async def test_timeouts_before_sending_hold_no_token(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """Requests that time out before they are sent: no token anywhere in the chain.

    aiohttp puts the full URL (token included) into some of its errors. 120 actions at
    once, of which the client keeps ``MAX_IN_FLIGHT`` at the PBX; the PBX answers only
    after a minute, and the frozen clock jumps past the client's timeout at different
    moments of the exchange: requests time out while connecting (TCP, TLS handshake) or
    sending, before the PBX has them, and waiting for the answer. Every link of every
    exception chain is checked, also the contexts that tracebacks hide.
    """
    pbx.latency = 60.0
    calls = [
        asyncio.create_task(
            hass.services.async_call(
                DOMAIN,
                SERVICE_PLAY_PROMPT,
                {"config_entry_id": loaded_entry.entry_id, "prompt": "a", "target": "1000"},
                blocking=True,
            )
        )
        for _ in range(120)
    ]
    # How long the loop runs before each jump: from "still connecting" to "sent, waiting".
    for _, spins in zip(range(500), itertools.cycle([0, 1, 2, 4, 8, 200]), strict=False):
        if all(call.done() for call in calls):
            break
        for _ in range(spins):
            await asyncio.sleep(0)
        freezer.tick(timedelta(seconds=DEFAULT_TIMEOUT + 1))
        await asyncio.sleep(0)
    assert all(call.done() for call in calls)
    errors = [call.exception() for call in calls]
    assert all(isinstance(e, HomeAssistantError) for e in errors)
    assert {e.translation_key for e in errors} == {"timeout"}  # type: ignore[union-attr]
    # Some timed out before the PBX had the request (connecting, TLS handshake, sending),
    # the others waiting for its answer.
    assert 0 < len(pbx.calls(PLAYPROMPT)) < 120
    secrets = _secrets(pbx, set(pbx.tokens))
    tokens = [s for s, is_token in secrets.items() if is_token and len(s) == 32]
    assert tokens

    for err in errors:
        for text in _error_texts(err):  # type: ignore[arg-type]
            assert not any(token in text for token in tokens), text


# ------------------------------------------------------------------- Microsoft Teams


def _graph_secrets(graph: FakeGraph, webhook_ids: set[str], jwts: set[str]) -> dict[str, bool]:
    """Secret → whether a prefix of it counts too."""
    found = dict.fromkeys((CLIENT_SECRET, NEW_SECRET, WRONG_SECRET, SIGNATURE), False)
    for token in graph.issued_tokens:
        # Every token starts with the same JWT header; its random part must not show.
        found[token] = False
        found[token.partition(".")[2]] = True
    found.update(dict.fromkeys(webhook_ids, True))
    found.update(dict.fromkeys(jwts, False))
    found.pop("", None)
    return found


async def test_no_teams_secret_on_any_path(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    graph: FakeGraph,
    graph_endpoints: GraphEndpoints,
    graph_http: TestClient,
    graph_closed_port: int,
    odd_server: OddServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every flow, action, notification, error and diagnostics path of a Teams entry."""
    _debug_everything(caplog)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    ev = Evidence()
    jwts: set[str] = set()
    closed = f"http://127.0.0.1:{graph_closed_port}"

    def endpoints(**changes_to_endpoints: str) -> None:
        """Where the next client built (flow check or setup) sends its requests."""
        monkeypatch.setattr(
            graph_backend,
            "GRAPH_ENDPOINTS",
            GraphEndpoints(
                **{
                    "login_base": graph.login_base,
                    "graph_base": graph.graph_base,
                    "openid_config_url": graph.openid_config_url,
                    **changes_to_endpoints,
                }
            ),
        )

    # -- config flow ---------------------------------------------------------------------

    async def submit(step_input: dict[str, Any]) -> Any:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "graph"}
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], step_input)
        ev.text("flow result", {k: v for k, v in result.items() if k != "data"})
        return result

    form = {CONF_TENANT_ID: TENANT_ID, CONF_CLIENT_ID: CLIENT_ID, CONF_CLIENT_SECRET: CLIENT_SECRET}
    for path, changes_to_form, token_error, error in (
        ("flow: wrong secret", {CONF_CLIENT_SECRET: WRONG_SECRET}, None, "invalid_auth"),
        ("flow: expired secret", {}, "7000222", "secret_expired"),
        ("flow: unknown tenant", {}, "90002", "tenant_not_found"),
        ("flow: unknown application", {}, "700016", "invalid_auth"),
    ):
        graph.token_error = token_error
        result = await submit({**form, **changes_to_form})
        assert result["errors"] == {"base": error}, path
        hass.config_entries.flow.async_abort(result["flow_id"])
        ev.path(path)
    graph.token_error = None

    endpoints(login_base=f"{closed}/login")
    result = await submit(form)
    assert result["errors"] == {"base": "cannot_connect"}
    hass.config_entries.flow.async_abort(result["flow_id"])
    endpoints()
    ev.path("flow: token endpoint unreachable")

    result = await submit(form)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    webhook_ids = {entry.data[CONF_WEBHOOK_ID]}
    ev.path("flow: success, then setup")

    # -- the action ----------------------------------------------------------------------

    async def play(where: str, **data: Any) -> Any:
        try:
            response = await hass.services.async_call(
                DOMAIN,
                SERVICE_PLAY_PROMPT,
                {"config_entry_id": entry.entry_id, **data},
                blocking=True,
                return_response=True,
            )
        except HomeAssistantError as err:
            ev.error(where, err)
            response = None
        else:
            ev.text(where, response)
        await hass.async_block_till_done()
        ev.registries(hass, where)
        return response

    response = await play("action", target=USER_ID, prompt=[SIGNED_MEDIA])
    assert response["calls"][0]["status"] == "played"
    (create,) = graph.calls_to("POST", "/communications/calls")
    assert create.body["mediaConfig"]["preFetchMedia"][0]["uri"] == SIGNED_MEDIA
    ev.path("action: success with a signed URL")

    placed = await play("action kept", target=USER_ID, prompt=[SIGNED_MEDIA], hang_up=False)
    call_id = placed["calls"][0]["call_id"]
    assert await play("action into call", call_id=call_id, prompt=[SIGNED_MEDIA], loop=True)
    ev.path("action: into an existing call, looping")

    for path, prompt in (
        ("action: http:// signed URL refused", SIGNED_MEDIA.replace("https:", "http:")),
        ("action: signed URL with a space refused", SIGNED_MEDIA.replace("door", "door ")),
        ("action: signed URL with an empty resource id", {"url": SIGNED_MEDIA, "resource_id": ""}),
    ):
        assert await play(path, target=USER_ID, prompt=[prompt]) is None
        ev.path(path)

    for path, switch, value in (
        ("action: media failed", "fail_media", True),
        ("action: media refused at once", "fail_media_at_once", True),
        ("action: not answered", "answer", False),
        ("action: permission missing", "permission_denied", True),
        ("action: Graph answers garbage", "garbage", True),
        ("action: Graph busy (429, retried)", "throttle", [(429, 0.0)] * 3),
        ("action: Graph error 500", "http_status", 500),
    ):
        default = getattr(graph, switch)
        setattr(graph, switch, value)
        assert await play(path, target=USER_ID, prompt=[SIGNED_MEDIA]) is None, path
        setattr(graph, switch, default)
        ev.path(path)

    establish_timeout = graph_backend.ESTABLISH_TIMEOUT
    monkeypatch.setattr(graph_backend, "ESTABLISH_TIMEOUT", 0.1)
    graph.notify_delay = 1.0
    path = "action: not established in time"
    assert await play(path, target=USER_ID, prompt=[SIGNED_MEDIA]) is None
    assert ev.errors[-1][1].translation_key == "timeout"  # type: ignore[attr-defined]
    graph.notify_delay = 0.02
    monkeypatch.setattr(graph_backend, "ESTABLISH_TIMEOUT", establish_timeout)
    ev.path(path)

    # Graph's error text quotes what it was sent: the callback (webhook id) and the media.
    callback = f"{EXTERNAL_URL}/api/webhook/{entry.data[CONF_WEBHOOK_ID]}"
    odd_server.routes["/graph/v1.0/communications/calls"] = OddReply(
        status=400,
        body=json.dumps(
            {
                "error": {
                    "code": "BadRequest",
                    "message": f"Cannot reach callbackUri '{callback}' for media {SIGNED_MEDIA}",
                    "innerError": {"request-id": "0000-1111"},
                }
            }
        ),
    )
    for path, graph_base in (
        ("action: Graph error quoting the callback and media URLs", f"{odd_server.base_url}/graph"),
        ("action: Graph unreachable", f"{closed}/graph"),
    ):
        endpoints(graph_base=graph_base)
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert await play(path, target=USER_ID, prompt=[SIGNED_MEDIA]) is None, path
        ev.path(path)
    assert "/…" in ev.errors[-2][1].translation_placeholders["detail"]  # type: ignore[attr-defined]
    endpoints()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    graph.permission_denied = True
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": entry.entry_id, "prompt": [SIGNED_MEDIA], "target": USER_ID},
    )
    await hass.async_block_till_done()
    graph.permission_denied = False
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    ev.path("action: fire-and-forget failure (logged by Home Assistant)")

    graph.expire_tokens()
    assert await play("action, token expired", target=USER_ID, prompt=[SIGNED_MEDIA])
    ev.path("action: Graph token expired, refreshed")

    # -- notifications -------------------------------------------------------------------

    placed = await play("action for notifications", target=USER_ID, prompt=[SIGNED_MEDIA])
    call_id = placed["calls"][0]["call_id"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (
        graph.make_jwt(key=other_key),
        graph.make_jwt(audience="11111111-0000-0000-0000-000000000000"),
        graph.make_jwt(expires_in=-3600),
        graph.make_jwt(kid="unknown-key"),
    ):
        jwts.add(token)
        data = {"state": "terminated", "id": call_id}
        assert await graph.notify(call_id, data, change_type="deleted", token=token) == 401
    good = graph.make_jwt()
    jwts.add(good)
    reply = await graph_http.post(
        f"/api/webhook/{entry.data[CONF_WEBHOOK_ID]}",
        data="{not json",
        headers={"Authorization": f"Bearer {good}"},
    )
    assert reply.status == 400
    assert "Refused a notification" in caplog.text
    ev.path("notifications: refused tokens (warning log), a broken body")

    # -- credentials at runtime, reauth, reconfigure --------------------------------------

    graph.expire_tokens()
    graph.client_secret = NEW_SECRET
    assert await play("runtime auth failure", target=USER_ID, prompt=[SIGNED_MEDIA]) is None
    ev.path("action: secret replaced at Microsoft (reauth started)")

    (flow,) = reauth_flows(hass, entry)
    ev.text("reauth progress", flow)
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_CLIENT_SECRET: WRONG_SECRET}
    )
    ev.text("reauth result", result)
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_CLIENT_SECRET: NEW_SECRET}
    )
    ev.text("reauth result", result)
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    ev.path("reauth: wrong then right secret")

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    ev.text("reconfigure form", result)
    app = {CONF_TENANT_ID: TENANT_ID, CONF_CLIENT_ID: CLIENT_ID}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**app, CONF_CLIENT_SECRET: WRONG_SECRET}
    )
    ev.text("reconfigure result", result)
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**app, CONF_CLIENT_SECRET: NEW_SECRET}
    )
    ev.text("reconfigure result", result)
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    ev.path("reconfigure: wrong then right secret")

    # -- setup failures, and an entry without an external URL ----------------------------

    for path, data, state in (
        (
            "setup: wrong secret",
            {CONF_CLIENT_SECRET: WRONG_SECRET},
            ConfigEntryState.SETUP_ERROR,
        ),
        ("setup: expired secret", {}, ConfigEntryState.SETUP_ERROR),
        ("setup: token endpoint unreachable", {}, ConfigEntryState.SETUP_RETRY),
        ("setup: no external URL (repair issue)", {}, ConfigEntryState.LOADED),
    ):
        webhook_id = webhook.async_generate_id()
        webhook_ids.add(webhook_id)
        graph.token_error = "7000222" if "expired" in path else None
        if "unreachable" in path:
            endpoints(login_base=f"{closed}/login")
        if "external" in path:
            hass.config.external_url = None
        failing = MockConfigEntry(
            domain=DOMAIN,
            title=path,
            unique_id=path,
            data=graph_entry_data(
                **{CONF_CLIENT_SECRET: NEW_SECRET, CONF_WEBHOOK_ID: webhook_id, **data}
            ),
        )
        failing.add_to_hass(hass)
        await hass.config_entries.async_setup(failing.entry_id)
        await hass.async_block_till_done()
        assert failing.state is state, path
        ev.text(path, failing.reason)
        ev.text(path, failing.error_reason_translation_placeholders)
        ev.text(path, hass.config_entries.flow.async_progress())
        if state is ConfigEntryState.LOADED:
            with pytest.raises(HomeAssistantError) as no_url:
                await hass.services.async_call(
                    DOMAIN,
                    SERVICE_PLAY_PROMPT,
                    {
                        "config_entry_id": failing.entry_id,
                        "target": USER_ID,
                        "prompt": SIGNED_MEDIA,
                    },
                    blocking=True,
                )
            ev.error(path, no_url.value)
        ev.registries(hass, path)
        await hass.config_entries.async_remove(failing.entry_id)
        await hass.async_block_till_done()
        graph.token_error = None
        hass.config.external_url = EXTERNAL_URL
        endpoints()
        ev.path(path)
    assert any(where.startswith("issue setup: no external URL") for where, _ in ev.texts)

    # -- diagnostics and the runtime objects ---------------------------------------------

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    ev.text("diagnostics", json.dumps(diagnostics))
    backend = entry.runtime_data
    for thing in (backend, backend.client, backend.verifier, backend.client.tracker, entry):
        ev.text("repr", repr(thing))
        ev.text("str", str(thing))
    ev.text("client diagnostics", backend.client.diagnostics())
    ev.path("diagnostics and reprs")

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    ev.path("unload")

    # -- the verdict ----------------------------------------------------------------------

    secrets = _graph_secrets(graph, webhook_ids, jwts)
    assert len(graph.issued_tokens) >= 5
    texts = _texts(ev, caplog, changes)
    assert len(ev.errors) >= 15
    assert any(r.exc_info for r in caplog.records)  # tracebacks were logged and checked
    assert any(where.startswith("state event.") for where, _, _ in texts)
    # The webhook id does reach Home Assistant's own records of the requests it served.
    assert any(
        logger in WEBHOOK_LOGGERS and entry.data[CONF_WEBHOOK_ID] in text
        for _, text, logger in texts
    )
    _assert_no_leak(
        texts,
        secrets,
        loggers_that_may_show={
            **dict.fromkeys(webhook_ids, WEBHOOK_LOGGERS),
            SIGNATURE: ACTION_LOGGERS,
        },
    )

    print(
        f"\nsecret paths: {len(ev.paths)}; secrets: {len(secrets)}; texts checked: "
        f"{len(texts)}; log records: {len(caplog.records)}; errors: {len(ev.errors)}"
    )
    assert len(ev.paths) == len(set(ev.paths))


async def test_unparsable_graph_reply_holds_no_token(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_endpoints: GraphEndpoints,
    graph_http: TestClient,
    odd_server: OddServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reply aiohttp cannot parse: the error it raises carries the request's headers.

    aiohttp's ClientResponseError holds the request info, Authorization header (the Graph
    access token) included. The client's own error names only the host, and hides that
    error from tracebacks (``from None``); it must not keep it as its context either.
    """
    monkeypatch.setattr(
        graph_backend,
        "GRAPH_ENDPOINTS",
        GraphEndpoints(
            login_base=graph.login_base,
            graph_base=f"{odd_server.base_url}/graph",
            openid_config_url=graph.openid_config_url,
        ),
    )
    odd_server.routes["/graph/v1.0/communications/calls"] = OddReply(
        body="{}", headers={"Broken Header": "x"}
    )
    entry = MockConfigEntry(domain=DOMAIN, title="Teams", data=graph_entry_data())
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    with pytest.raises(HomeAssistantError) as exc_info:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_PLAY_PROMPT,
            {"config_entry_id": entry.entry_id, "target": USER_ID, "prompt": SIGNED_MEDIA},
            blocking=True,
        )

    err = exc_info.value
    assert err.translation_key == "cannot_connect"
    assert odd_server.requests == [("POST", "/graph/v1.0/communications/calls")]
    (token,) = graph.issued_tokens
    texts = list(_error_texts(err))
    assert err.translation_placeholders["detail"] == (
        "Cannot connect to 127.0.0.1 (the reply was not valid HTTP)"  # the parser refused it
    )
    for text in texts:
        assert token not in text, text
        assert token.partition(".")[2][:PREFIX] not in text, text
