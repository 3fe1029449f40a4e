"""Setup, unload, keepalive and action registration of the integration (against the fake PBX)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
import logging
import socket
from typing import Any

import aiohttp
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.voice_prompt import CONFIG_SCHEMA
from custom_components.voice_prompt.const import DOMAIN, KEEPALIVE_INTERVAL, SERVICE_PLAY_PROMPT
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    EVENT_SERVICE_REGISTERED,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from tests.conftest import PASSWORD, SERIAL, entry_device, reauth_flows
from tests.fakes.yeastar import FakeYeastarPBX


def _add_entry(hass: HomeAssistant, data: dict[str, Any]) -> MockConfigEntry:
    entry = MockConfigEntry(domain=DOMAIN, title="Yeastar S100", unique_id=SERIAL, data=data)
    entry.add_to_hass(hass)
    return entry


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def _token_from_fake(pbx: FakeYeastarPBX) -> str:
    """Log in to the fake PBX like another application would, and return its token."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{pbx.base_url}login",
            json={
                "username": pbx.username,
                "password": FakeYeastarPBX.md5(PASSWORD),
                "port": "8260",
                "version": "1.0.2",
            },
            ssl=False,
        ) as response,
    ):
        reply = await response.json(content_type=None)
    assert reply["status"] == "Success"
    token = reply["token"]
    assert isinstance(token, str)
    return token


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- setup / unload -------------------------------------------------------------------------


async def test_setup_entry_loads_and_registers_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A reachable PBX with the right credentials loads and becomes a device."""
    assert loaded_entry.state is ConfigEntryState.LOADED
    data = loaded_entry.runtime_data
    assert data.client.host == "127.0.0.1"
    assert data.client.port == pbx.port
    assert data.device.serial == SERIAL
    assert data.device.name == "Yeastar S100"
    assert pbx.successful_logins == 1
    assert len(pbx.calls("deviceinfo/query")) == 1

    device = entry_device(hass, loaded_entry)
    assert device.identifiers == {(DOMAIN, SERIAL)}
    assert device.manufacturer == "Yeastar"
    assert device.model == "Yeastar S100"
    assert device.name == "Yeastar S100"
    assert device.serial_number == SERIAL
    assert device.sw_version == pbx.firmware_version
    assert device.hw_version == pbx.hardware_version
    assert device.configuration_url == f"https://127.0.0.1:{pbx.port}"


async def test_unload_logs_out_and_stops_keepalive(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Unloading logs out of the PBX and cancels the keepalive timer."""
    client = loaded_entry.runtime_data.client
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()

    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    assert len(pbx.calls("logout")) == 1
    assert pbx.tokens == {}
    # The service stays: it is registered in async_setup, not per entry.
    assert hass.services.has_service(DOMAIN, SERVICE_PLAY_PROMPT)

    # Even an idle client sends nothing once unloaded: the interval is gone.
    client._last_used -= 700
    async_fire_time_changed(hass, fire_all=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert pbx.calls("heartbeat") == []
    assert pbx.logins == 1


async def test_unreachable_pbx_retries_setup(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """Nothing listening on the port: Home Assistant retries later."""
    entry = _add_entry(hass, {**entry_data, CONF_PORT: _closed_port()})
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "cannot_connect"
    assert entry.reason is not None
    assert entry.reason.startswith("Cannot connect to the PBX at 127.0.0.1")
    assert reauth_flows(hass, entry) == []
    assert pbx.requests == []


@pytest.mark.parametrize(
    ("switch", "value"),
    [
        ("garbage", True),
        ("http_status", 500),
        ("http_status", 404),
        ("reply_override", {"login": {"status": "Success"}}),
        ("reply_override", {"login": "[1, 2]"}),
        ("reply_override", {"login": {"result": "ok"}}),
        ("reply_override", {"deviceinfo/query": {"status": "Success", "deviceinfo": {}}}),
    ],
)
async def test_bad_answers_retry_setup(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    switch: str,
    value: object,
) -> None:
    """An HTML page or an HTTP error instead of the API: retry, no reauth."""
    setattr(pbx, switch, value)
    await _setup(hass, config_entry)
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert config_entry.error_reason_translation_key == "invalid_response"
    assert config_entry.reason is not None
    assert "not a valid Yeastar API response" in config_entry.reason
    assert reauth_flows(hass, config_entry) == []
    assert pbx.logins == 1


async def test_failed_setup_after_login_logs_out(
    hass: HomeAssistant, config_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Login works, the device query fails: retry later, and leave no token behind."""
    pbx.fail_next["deviceinfo/query"] = ["30001"]
    await _setup(hass, config_entry)

    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert pbx.logins == 1
    (logout,) = pbx.calls("logout")
    assert logout.token == pbx.calls("deviceinfo/query")[0].token
    assert pbx.tokens == {}


async def test_untrusted_certificate_retries_setup(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """Verification on against the self-signed certificate: an SSL error, retried."""
    # The fake runs in the test's loop: its side of the aborted handshake reaches the loop's
    # exception handler (which the hass fixture turns into a test error). That is the
    # server's business, not the integration's, so only that report is let through.
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    server_saw_abort = asyncio.Event()

    def ignore_server_handshake(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("Error on transport creation"):
            server_saw_abort.set()
            return
        assert handler is not None
        handler(loop, context)

    loop.set_exception_handler(ignore_server_handshake)
    try:
        entry = _add_entry(hass, {**entry_data, CONF_VERIFY_SSL: True})
        await _setup(hass, entry)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server_saw_abort.wait(), 2)
    finally:
        loop.set_exception_handler(handler)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "ssl_error"
    assert entry.reason is not None
    assert "turn off certificate verification" in entry.reason
    assert reauth_flows(hass, entry) == []
    assert pbx.requests == []  # the handshake failed before any request


async def test_wrong_password_starts_reauth_without_retrying(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """Refused credentials: setup error, a reauth flow, and exactly one login attempt."""
    entry = _add_entry(hass, {**entry_data, CONF_PASSWORD: "wrong-password"})
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.error_reason_translation_key == "invalid_auth"
    assert entry.reason is not None
    assert "wrong-password" not in entry.reason
    flows = reauth_flows(hass, entry)
    assert len(flows) == 1
    assert flows[0]["step_id"] == "reauth_confirm"
    assert pbx.logins == 1
    assert pbx.failed_logins == {"127.0.0.1": 1}


async def test_blocked_ip_retries_setup_without_reauth(
    hass: HomeAssistant, config_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A locked-out address is not a credentials problem: retry, no reauth flow."""
    pbx.block_ip()
    await _setup(hass, config_entry)

    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert config_entry.error_reason_translation_key == "ip_blocked"
    assert reauth_flows(hass, config_entry) == []
    assert hass.config_entries.flow.async_progress() == []
    assert pbx.logins == 1


async def test_token_mode_setup_uses_the_token(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """An entry with a token does not log in; unloading leaves the foreign token alone."""
    token = await _token_from_fake(pbx)
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = _add_entry(hass, {**data, CONF_TOKEN: token})
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.client.uses_token
    assert pbx.logins == 1  # only ours
    assert pbx.calls("deviceinfo/query")[0].token == token

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert pbx.calls("logout") == []
    assert token in pbx.tokens


async def test_dead_token_at_setup_starts_reauth(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """A token the PBX does not know: reauth, and no login attempt (there is no password)."""
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = _add_entry(hass, {**data, CONF_TOKEN: "0" * 32})
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass, entry)) == 1
    assert pbx.logins == 0


# -- keepalive ------------------------------------------------------------------------------


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    freezer.tick(KEEPALIVE_INTERVAL + timedelta(seconds=1))
    async_fire_time_changed(hass)
    # The interval job runs as a background task.
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_keepalive_quiet_when_recently_used(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """A token used within the last 10 minutes needs no heartbeat."""
    await _setup(hass, config_entry)
    before = len(pbx.requests)

    await _tick(hass, freezer)

    assert len(pbx.requests) == before
    assert pbx.calls("heartbeat") == []
    assert config_entry.runtime_data.client.stats.heartbeats == 0


async def test_keepalive_sends_heartbeat_when_idle(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """An idle token gets a heartbeat (with the token, an address and a port)."""
    await _setup(hass, config_entry)
    client = config_entry.runtime_data.client
    token = pbx.calls("deviceinfo/query")[0].token
    client._last_used -= 700

    await _tick(hass, freezer)

    heartbeats = pbx.calls("heartbeat")
    assert len(heartbeats) == 1
    assert heartbeats[0].token == token
    assert heartbeats[0].body == {"ipaddr": "127.0.0.1", "port": "8260"}
    assert heartbeats[0].reply == {"status": "Success"}
    assert client.stats.heartbeats == 1
    assert pbx.logins == 1

    # Just used by the heartbeat: the next tick stays quiet.
    await _tick(hass, freezer)
    assert len(pbx.calls("heartbeat")) == 1


# c-ares (aiodns 4) answers "localhost" with ::1 as well, which the socket guard refuses
# before the client falls back to 127.0.0.1.
@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect:UserWarning")
async def test_keepalive_heartbeat_names_home_assistant_address(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """The heartbeat's ipaddr is where the PBX reaches Home Assistant, not the PBX itself."""
    entry = _add_entry(hass, {**entry_data, CONF_HOST: "localhost"})
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    entry.runtime_data.client._last_used -= 700

    await _tick(hass, freezer)

    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.remote == "127.0.0.1"
    assert heartbeat.body["ipaddr"] == heartbeat.remote


async def test_keepalive_recovers_from_token_error(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """The PBX forgot the token: the heartbeat logs in again, no reauth."""
    await _setup(hass, config_entry)
    client = config_entry.runtime_data.client
    pbx.expire_tokens()
    client._last_used -= 700

    await _tick(hass, freezer)

    assert [r.path for r in pbx.requests[-3:]] == ["heartbeat", "login", "heartbeat"]
    assert pbx.calls("heartbeat")[-1].reply == {"status": "Success"}
    assert pbx.successful_logins == 2
    assert client.stats.relogins == 1
    assert reauth_flows(hass, config_entry) == []
    assert config_entry.state is ConfigEntryState.LOADED


async def test_keepalive_injected_token_error_recovers(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """An injected 20006 (token timed out) on the heartbeat is cured by one re-login."""
    await _setup(hass, config_entry)
    pbx.fail_next["heartbeat"] = ["20006"]
    config_entry.runtime_data.client._last_used -= 700

    await _tick(hass, freezer)

    assert len(pbx.calls("heartbeat")) == 2
    assert pbx.logins == 2
    assert reauth_flows(hass, config_entry) == []


async def test_keepalive_dead_token_in_token_mode_starts_reauth(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """A user-supplied token cannot be renewed: a dead one starts reauth, no login."""
    token = await _token_from_fake(pbx)
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = _add_entry(hass, {**data, CONF_TOKEN: token})
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    logins = pbx.logins

    pbx.expire_tokens()
    entry.runtime_data.client._last_used -= 700
    await _tick(hass, freezer)

    assert len(pbx.calls("heartbeat")) == 1
    assert pbx.calls("heartbeat")[0].reply == {"status": "Failed", "errno": "20004"}
    assert pbx.logins == logins
    assert len(reauth_flows(hass, entry)) == 1

    # Refused once: later ticks never knock again.
    entry.runtime_data.client._last_used -= 700
    await _tick(hass, freezer)
    assert len(pbx.calls("heartbeat")) == 1


@pytest.mark.parametrize(
    ("switch", "value"), [("http_status", 500), ("drop_connection", True), ("garbage", True)]
)
async def test_keepalive_connection_failure_is_quiet(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    switch: str,
    value: object,
) -> None:
    """A failed heartbeat is logged at debug level; no re-login, no reauth, entry stays."""
    await _setup(hass, config_entry)
    setattr(pbx, switch, value)
    config_entry.runtime_data.client._last_used -= 700

    with caplog.at_level(logging.DEBUG, logger="custom_components.voice_prompt"):
        await _tick(hass, freezer)

    assert len(pbx.calls("heartbeat")) == 1
    assert pbx.logins == 1
    assert reauth_flows(hass, config_entry) == []
    assert config_entry.state is ConfigEntryState.LOADED
    assert "Heartbeat to" in caplog.text
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.voice_prompt") and r.levelno >= logging.WARNING
    ]


# -- async_setup / CONFIG_SCHEMA ------------------------------------------------------------


async def test_action_registered_without_entries(hass: HomeAssistant) -> None:
    """The action exists as soon as the integration is set up, with no entry at all."""
    events = async_capture_events(hass, EVENT_SERVICE_REGISTERED)
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()

    assert hass.services.has_service(DOMAIN, SERVICE_PLAY_PROMPT)
    assert [e.data for e in events if e.data["domain"] == DOMAIN] == [
        {"domain": DOMAIN, "service": SERVICE_PLAY_PROMPT}
    ]


async def test_action_registered_once_for_many_entries(
    hass: HomeAssistant, config_entry: MockConfigEntry, entry_data: dict[str, Any]
) -> None:
    """Setting up (and unloading) entries does not register the action again."""
    events = async_capture_events(hass, EVENT_SERVICE_REGISTERED)
    second = MockConfigEntry(domain=DOMAIN, title="second", unique_id="other", data=entry_data)
    second.add_to_hass(hass)
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED
    assert second.state is ConfigEntryState.LOADED

    assert await hass.config_entries.async_unload(second.entry_id)
    await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()

    assert len([e for e in events if e.data["domain"] == DOMAIN]) == 1
    assert hass.services.has_service(DOMAIN, SERVICE_PLAY_PROMPT)


def test_config_schema_passes_config_through() -> None:
    """The schema refuses nothing: it only complains about YAML (see the next test)."""
    config: dict[str, Any] = {"other": {}}
    assert CONFIG_SCHEMA(config) == config


async def test_yaml_config_is_refused_with_an_error(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """YAML for the domain logs an error and raises a repair issue; setup still succeeds."""
    assert await async_setup_component(hass, DOMAIN, {DOMAIN: {"host": "192.0.2.1"}})
    await hass.async_block_till_done()

    assert "The voice_prompt integration does not support YAML setup" in caplog.text
    assert [r.levelno for r in caplog.records if "does not support YAML" in r.message] == [
        logging.ERROR
    ]
    issue = ir.async_get(hass).async_get_issue("homeassistant", f"config_entry_only_{DOMAIN}")
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert hass.services.has_service(DOMAIN, SERVICE_PLAY_PROMPT)
    assert hass.config_entries.async_entries(DOMAIN) == []
