"""Hardening: no secret leaks, on any path.

One test drives every flow, action, error and diagnostics path of a Yeastar entry with
logging at DEBUG (everything: the integration, Home Assistant, aiohttp, asyncio), and
collects every text a user or a bug report could show: log records (with tracebacks),
exceptions (message, repr, args, placeholders, the whole cause chain formatted), flow
results, entry state reasons, action responses, diagnostics, and the repr of the runtime
objects. Then it checks that none holds a password, the MD5 of one, or any PBX token
the fake ever issued, saw or was given (also not the first 12 characters of a token or
hash, and in any letter case).

The Yeastar token travels in the URL query and aiohttp prints URLs in its exceptions, so
the transport failures (timeout, dropped connection, refused connection, TLS) matter most.
The Microsoft Graph backend (client secret, Graph access token) is not driven here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
import json
import logging
import socket
import traceback
from typing import Any

import aiohttp
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.voice_prompt.api.yeastar import ERRORS
from custom_components.voice_prompt.const import (
    BACKEND_YEASTAR,
    CONF_BACKEND,
    DOMAIN,
    KEEPALIVE_INTERVAL,
    SERVICE_PLAY_PROMPT,
)
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
)
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
from tests.conftest import PASSWORD
from tests.fakes.yeastar import FakeYeastarPBX

PLAYPROMPT = "extension/playprompt"
NEW_PASSWORD = "VoicePrompt-Changed2"
WRONG_PASSWORD = "Not-The-Password-42"
PREFIX = 12  # a leaked prefix of a token or hash is a leak too


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
        for attribute in ("placeholders", "translation_placeholders", "message"):
            if (value := getattr(link, attribute, None)) is not None:
                yield repr(value)


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
    hass_client: ClientSessionGenerator,
    pbx: FakeYeastarPBX,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every flow, action, error and diagnostics path: no secret in anything visible."""
    caplog.set_level(logging.DEBUG)
    for name in ("custom_components.voice_prompt", "homeassistant", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
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
    for path, changes, error in (
        ("flow: wrong password", {CONF_PASSWORD: WRONG_PASSWORD}, "invalid_auth"),
        ("flow: self-signed certificate, verification on", {CONF_VERIFY_SSL: True}, "ssl_error"),
        ("flow: connection refused", {CONF_PORT: closed_port}, "cannot_connect"),
    ):
        result = await submit({**form, **changes})
        assert result["errors"] == {"base": error}, path
        hass.config_entries.flow.async_abort(result["flow_id"])
        ev.path(path)

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
        return response

    assert await play("action", extension="1000")
    ev.path("action: success")
    assert await play("action partial", extension=["1000", "4242", "1002"])
    ev.path("action: partial failure (warning log)")

    for errno in [*ERRORS, "99999"]:
        pbx.fail_next[PLAYPROMPT] = [errno]
        await play(f"action errno {errno}", extension="1000")
        ev.path(f"action: PBX error {errno}")
    _lift_faults(pbx)

    client = entry.runtime_data.client
    for path, switches in (
        ("action: HTTP 500", {"http_status": 500}),
        ("action: non-JSON body", {"garbage": True}),
        ("action: dropped connection", {"drop_connection": True}),
        ("action: reply without status", {"reply_override": {PLAYPROMPT: {"x": 1}}}),
        (
            "action: success without call id",
            {"reply_override": {PLAYPROMPT: {"status": "Success"}}},
        ),
        ("action: no reply (timeout)", {"hang": True}),
    ):
        client._timeout = aiohttp.ClientTimeout(total=0.3)
        for switch, value in switches.items():
            setattr(pbx, switch, value)
        assert await play(path, extension="1000") is None, path
        _lift_faults(pbx)
        ev.path(path)
    client._timeout = aiohttp.ClientTimeout(total=10)

    pbx.http_status = 503
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": entry.entry_id, "prompt": "doorbell", "extension": "1000"},
    )
    await hass.async_block_till_done()
    _lift_faults(pbx)
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
    ev.path("action: fire-and-forget failure (logged by Home Assistant)")

    # -- keepalive -----------------------------------------------------------------------

    async def tick() -> None:
        async_fire_time_changed(hass, dt_util.utcnow() + KEEPALIVE_INTERVAL + timedelta(seconds=1))
        await hass.async_block_till_done(wait_background_tasks=True)
        note_tokens()

    client._last_used -= 700
    await tick()
    ev.path("heartbeat: success")
    client._last_used -= 700
    pbx.drop_connection = True
    await tick()
    _lift_faults(pbx)
    ev.path("heartbeat: failure (debug log)")
    client._last_used -= 700
    pbx.expire_tokens()
    await tick()  # refused token → one re-login from the heartbeat
    ev.path("heartbeat: token expired, re-login")

    # -- credentials at runtime, reauth, reconfigure --------------------------------------

    pbx.password = NEW_PASSWORD
    pbx.expire_tokens()
    assert await play("runtime auth failure", extension="1000") is None
    assert await play("after auth failure", extension="1000") is None
    ev.path("action: password changed on the PBX (reauth started)")

    (flow,) = [
        f
        for f in hass.config_entries.flow.async_progress()
        if f["handler"] == DOMAIN and f["context"].get("source") == SOURCE_REAUTH
    ]
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
        CONF_BACKEND: BACKEND_YEASTAR,
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: NEW_PASSWORD,
        CONF_VERIFY_SSL: False,
    }
    for path, changes, state in (
        ("setup: wrong password", {CONF_PASSWORD: WRONG_PASSWORD}, ConfigEntryState.SETUP_ERROR),
        ("setup: connection refused", {CONF_PORT: closed_port}, ConfigEntryState.SETUP_RETRY),
        ("setup: TLS refused", {CONF_VERIFY_SSL: True}, ConfigEntryState.SETUP_RETRY),
    ):
        failing = MockConfigEntry(domain=DOMAIN, title=path, data={**base, **changes})
        failing.add_to_hass(hass)
        await hass.config_entries.async_setup(failing.entry_id)
        await hass.async_block_till_done()
        assert failing.state is state, path
        ev.text(path, failing.reason)
        ev.text(path, failing.error_reason_translation_placeholders)
        ev.text(path, hass.config_entries.flow.async_progress())
        await hass.config_entries.async_remove(failing.entry_id)
        await hass.async_block_till_done()
        ev.path(path)

    # -- an entry with a token given by the user -----------------------------------------

    user_token = await _token_from_fake(pbx)
    tokens.add(user_token)
    token_entry = MockConfigEntry(
        domain=DOMAIN,
        title="token",
        data={**{k: v for k, v in base.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}}
        | {CONF_TOKEN: user_token},
    )
    token_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(token_entry.entry_id)
    await hass.async_block_till_done()
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": token_entry.entry_id, "prompt": "doorbell", "extension": "1001"},
        blocking=True,
        return_response=True,
    )
    ev.text("token entry action", response)
    ev.path("token entry: setup and action")

    # -- diagnostics and the runtime objects ---------------------------------------------

    for where, diag_entry in (("credentials", entry), ("token", token_entry)):
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, diag_entry)
        ev.text(f"diagnostics {where}", json.dumps(diagnostics))
        data = diag_entry.runtime_data
        for thing in (data, data.client, diag_entry):
            ev.text(f"repr {where}", repr(thing))
            ev.text(f"str {where}", str(thing))
        ev.text(f"client diagnostics {where}", data.client.diagnostics())
        ev.path(f"diagnostics and reprs: {where} entry")

    pbx.expire_tokens()
    with pytest.raises(HomeAssistantError) as dead:
        await hass.services.async_call(
            DOMAIN,
            SERVICE_PLAY_PROMPT,
            {"config_entry_id": token_entry.entry_id, "prompt": "doorbell", "extension": "1001"},
            blocking=True,
        )
    ev.error("token entry, dead token", dead.value)
    await hass.async_block_till_done()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, token_entry)
    ev.text("diagnostics dead token", json.dumps(diagnostics))
    ev.path("token entry: dead token (reauth), diagnostics")

    # -- unload (logout), also when the logout fails --------------------------------------

    await play("action before unload", extension="1000")
    pbx.drop_connection = True
    assert await hass.config_entries.async_unload(entry.entry_id)
    _lift_faults(pbx)
    ev.path("unload: logout fails (debug log)")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    note_tokens()
    assert await hass.config_entries.async_unload(entry.entry_id)
    ev.path("unload: logout")

    # -- the verdict ----------------------------------------------------------------------

    secrets = _secrets(pbx, tokens)
    assert len(secrets) >= 20  # passwords, their hashes and a good number of tokens
    texts = list(ev.texts)
    for where, err in ev.errors:
        texts.extend((f"error {where}", text) for text in _error_texts(err))
    texts.append(("log", caplog.text))
    for record in caplog.records:
        texts.append((f"log record {record.name}", record.getMessage()))
        texts.append((f"log args {record.name}", repr(record.args)))
        if record.exc_info and record.exc_info[1] is not None:
            texts.extend(
                (f"logged error {record.name}", text) for text in _error_texts(record.exc_info[1])
            )
    assert len(ev.errors) >= 30
    assert any(r.exc_info for r in caplog.records)  # tracebacks were logged and checked

    for secret, prefix_too in secrets.items():
        needles = {secret.lower()}
        if prefix_too:
            needles.add(secret[:PREFIX].lower())
        for where, text in texts:
            lowered = text.lower()
            for needle in needles:
                assert needle not in lowered, f"secret {secret[:4]}… leaked in {where}"

    print(
        f"\nsecret paths: {len(ev.paths)}; secrets: {len(secrets)}; texts checked: "
        f"{len(texts)}; log records: {len(caplog.records)}; errors: {len(ev.errors)}"
    )
    assert len(ev.paths) == len(set(ev.paths))


@pytest.mark.usefixtures("tolerate_tls_resets")
async def test_timeouts_before_sending_hold_no_token(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Requests that time out before they are sent: no token anywhere in the chain.

    aiohttp names the full URL (token included) in some connect-phase errors. 120
    actions at once against Home Assistant's pool of 100 connections per host, with a
    0.3 s timeout and a PBX answering after 0.5 s: requests time out in the TLS
    handshake, queued for a connection, and waiting for the answer. Every link of every
    exception chain is checked, also the contexts that tracebacks hide.
    """
    client = loaded_entry.runtime_data.client
    client._timeout = aiohttp.ClientTimeout(total=0.3)
    pbx.latency = 0.5
    outcomes = await asyncio.gather(
        *(
            hass.services.async_call(
                DOMAIN,
                SERVICE_PLAY_PROMPT,
                {"config_entry_id": loaded_entry.entry_id, "prompt": "a", "extension": "1000"},
                blocking=True,
            )
            for _ in range(120)
        ),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 120
    assert all(isinstance(e, HomeAssistantError) for e in errors)
    assert {e.translation_key for e in errors} == {"timeout"}  # type: ignore[attr-defined]
    secrets = _secrets(pbx, set(pbx.tokens))
    tokens = [s for s, is_token in secrets.items() if is_token and len(s) == 32]
    assert tokens

    for err in errors:
        for text in _error_texts(err):
            assert not any(token in text for token in tokens), text
