"""Setup, unload, keepalive, repair issue and entities of a Yeastar entry (against the fake PBX)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import Enum
import logging
import socket
from typing import Any, Final

import aiohttp
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.voice_prompt import CONFIG_SCHEMA
from custom_components.voice_prompt.api import AuthMode
from custom_components.voice_prompt.api.yeastar import LOCKOUT_SECONDS
from custom_components.voice_prompt.backends.yeastar import KEEPALIVE_INTERVAL, YeastarBackend
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    CONF_WEBHOOK_ID,
    EVENT_SERVICE_REGISTERED,
    STATE_UNAVAILABLE,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
from tests.conftest import PASSWORD, SERIAL, entry_device, play_prompt, reauth_flows
from tests.fakes.yeastar import FakeYeastarPBX

TITLE: Final = "Yeastar S100"
# What the registry snapshots show: stable on every Home Assistant release we test.
DEVICE_FIELDS: Final = (
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "sw_version",
    "hw_version",
    "configuration_url",
    "entry_type",
    "via_device_id",
    "disabled_by",
)
ENTITY_FIELDS: Final = (
    "entity_id",
    "unique_id",
    "platform",
    "domain",
    "has_entity_name",
    "translation_key",
    "original_name",
    "name",
    "original_device_class",
    "entity_category",
    "original_icon",
    "capabilities",
    "supported_features",
    "unit_of_measurement",
    "disabled_by",
    "hidden_by",
)


def _add_entry(hass: HomeAssistant, data: dict[str, Any]) -> MockConfigEntry:
    entry = MockConfigEntry(domain=DOMAIN, title=TITLE, unique_id=SERIAL, data=data)
    entry.add_to_hass(hass)
    return entry


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def _token_data(entry_data: dict[str, Any], token: str) -> dict[str, Any]:
    """Entry data of a token entry: no username, no password."""
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    return {**data, CONF_TOKEN: token}


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


def _plain(value: Any) -> Any:
    """Enums as their values (newer releases use StrEnum keys), containers as dict/list."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _device(hass: HomeAssistant, entry: MockConfigEntry, pbx: FakeYeastarPBX) -> dict[str, Any]:
    """The entry's device, the fields every release has, without the fake's random port."""
    device = entry_device(hass, entry)
    assert device.configuration_url == f"https://127.0.0.1:{pbx.port}"
    fields = {name: getattr(device, name) for name in DEVICE_FIELDS}
    fields["configuration_url"] = "https://127.0.0.1:<port>"
    return fields


def _entities(hass: HomeAssistant, entry: MockConfigEntry) -> list[dict[str, Any]]:
    """The entry's registry entries (on its device) with their states."""
    device = entry_device(hass, entry)
    entities: list[dict[str, Any]] = []
    for item in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        assert item.device_id == device.id
        state = hass.states.get(item.entity_id)
        assert state is not None
        entities.append(
            {
                "entry": {name: _plain(getattr(item, name)) for name in ENTITY_FIELDS},
                "state": state.state,
                "attributes": _plain(dict(state.attributes)),
            }
        )
    return entities


def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"ip_blocked_{entry.entry_id}")


# -- setup / unload -------------------------------------------------------------------------


async def test_setup_entry_loads_and_registers_device(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """A reachable PBX with the right credentials loads: a device with one event entity."""
    assert loaded_entry.state is ConfigEntryState.LOADED
    backend = loaded_entry.runtime_data
    assert isinstance(backend, YeastarBackend)
    assert backend.client.host == "127.0.0.1"
    assert backend.client.port == pbx.port
    assert backend.client.mode is AuthMode.CREDENTIALS
    assert backend.device is not None
    assert backend.device.serial == SERIAL
    assert backend.device.name == "Yeastar S100"
    assert pbx.successful_logins == 1
    assert len(pbx.calls("deviceinfo/query")) == 1

    device = entry_device(hass, loaded_entry)
    assert device.identifiers == {(DOMAIN, SERIAL)}
    assert device.sw_version == pbx.firmware_version
    assert device.hw_version == pbx.hardware_version
    assert _device(hass, loaded_entry, pbx) == snapshot(name="device")
    assert _entities(hass, loaded_entry) == snapshot(name="entities")


async def test_unload_logs_out_and_stops_keepalive(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """Unloading logs out of the PBX and stops the keepalive."""
    token = pbx.calls("deviceinfo/query")[0].token
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()

    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    (logout,) = pbx.calls("logout")
    assert logout.token == token
    assert pbx.tokens == {}
    # The service stays: it is registered in async_setup, not per entry.
    assert hass.services.has_service(DOMAIN, SERVICE_PLAY_PROMPT)
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
    state = hass.states.get(entity.entity_id)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE

    # Idle far past the heartbeat threshold: nothing is sent once unloaded.
    for _ in range(4):
        await _tick(hass, freezer)
    assert pbx.calls("heartbeat") == []
    assert pbx.logins == 1
    assert [r.path for r in pbx.requests] == ["login", "deviceinfo/query", "logout"]


async def test_unreachable_pbx_retries_setup(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """Nothing listening on the port: Home Assistant retries later."""
    entry = _add_entry(hass, {**entry_data, CONF_PORT: _closed_port()})
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "cannot_connect"
    placeholders = entry.error_reason_translation_placeholders
    assert placeholders is not None
    assert placeholders["entry"] == TITLE
    assert placeholders["detail"].startswith("Cannot connect to 127.0.0.1")
    assert entry.reason is not None
    assert entry.reason.startswith(f"{TITLE} cannot be reached: Cannot connect to 127.0.0.1")
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
    """An HTML page or an HTTP error instead of the API: retry, no reauth, no token left."""
    setattr(pbx, switch, value)
    await _setup(hass, config_entry)

    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert config_entry.error_reason_translation_key == "invalid_response"
    assert config_entry.reason is not None
    assert config_entry.reason.startswith(f"{config_entry.title} sent an unexpected reply")
    assert "not a valid Yeastar API response" in config_entry.reason
    assert reauth_flows(hass, config_entry) == []
    assert pbx.logins == 1
    assert pbx.tokens == {}


async def test_failed_setup_after_login_logs_out(
    hass: HomeAssistant, config_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """Login works, the device query fails: retry later, and leave no token behind."""
    pbx.fail_next["deviceinfo/query"] = ["30001"]
    await _setup(hass, config_entry)

    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert config_entry.error_reason_translation_key == "request_failed"
    assert config_entry.reason is not None
    assert "internal error (error 30001)" in config_entry.reason
    assert pbx.logins == 1
    (logout,) = pbx.calls("logout")
    assert logout.token == pbx.calls("deviceinfo/query")[0].token
    assert pbx.tokens == {}


async def test_untrusted_certificate_retries_setup(
    hass: HomeAssistant,
    tolerate_tls_resets: None,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """Verification on against the self-signed certificate: an SSL error, retried."""
    entry = _add_entry(hass, {**entry_data, CONF_VERIFY_SSL: True})
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "ssl_error"
    assert entry.reason is not None
    assert "TLS certificate of 127.0.0.1 was not accepted" in entry.reason
    assert "Turn off certificate verification" in entry.reason
    assert reauth_flows(hass, entry) == []
    assert pbx.requests == []  # the handshake failed before any request


async def test_wrong_password_starts_reauth_without_retrying(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """Refused credentials: setup error, a reauth flow, and exactly one login attempt."""
    entry = _add_entry(hass, {**entry_data, CONF_PASSWORD: "wrong-password"})
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.error_reason_translation_key == "invalid_auth"
    assert entry.error_reason_translation_placeholders == {
        "entry": TITLE,
        "detail": "127.0.0.1 refused the API username or password",
    }
    assert entry.reason is not None
    assert "wrong-password" not in entry.reason
    flows = reauth_flows(hass, entry)
    assert len(flows) == 1
    assert flows[0]["step_id"] == "reauth_confirm"

    # Nothing retries behind the user's back (5 failures would lock the PBX).
    for _ in range(3):
        await _tick(hass, freezer)
    assert pbx.logins == 1
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert entry.state is ConfigEntryState.SETUP_ERROR


async def test_blocked_ip_retries_setup_with_a_repair_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """A locked-out address is no credentials problem: retry, a repair issue, no reauth."""
    pbx.block_ip()
    await _setup(hass, config_entry)

    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert config_entry.error_reason_translation_key == "ip_blocked"
    assert config_entry.reason is not None
    assert "10 minutes" in config_entry.reason
    assert reauth_flows(hass, config_entry) == []
    assert hass.config_entries.flow.async_progress() == []
    assert pbx.logins == 1
    issue = _issue(hass, config_entry)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert not issue.is_fixable
    assert issue.translation_key == "ip_blocked"
    assert issue.translation_placeholders == {"entry": config_entry.title, "host": "127.0.0.1"}

    # The PBX lifts the block after 10 minutes; the next retry loads and the issue goes.
    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS + 1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)

    assert config_entry.state is ConfigEntryState.LOADED
    assert pbx.logins == 2
    assert pbx.successful_logins == 1
    assert _issue(hass, config_entry) is None


async def test_token_mode_setup_uses_the_token(
    hass: HomeAssistant, entry_data: dict[str, Any], pbx: FakeYeastarPBX
) -> None:
    """An entry with a token does not log in; unloading leaves the foreign token alone."""
    token = await _token_from_fake(pbx)
    entry = _add_entry(hass, _token_data(entry_data, token))
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.client.mode is AuthMode.TOKEN
    assert pbx.logins == 1  # only the other application's
    assert pbx.calls("deviceinfo/query")[0].token == token

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert pbx.calls("logout") == []
    assert token in pbx.tokens


async def test_dead_token_at_setup_starts_reauth(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """A token the PBX does not know: reauth, and no login attempt (there is no password)."""
    entry = _add_entry(hass, _token_data(entry_data, "0" * 32))
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.error_reason_translation_key == "invalid_auth"
    assert entry.reason is not None
    assert "0" * 32 not in entry.reason
    assert len(reauth_flows(hass, entry)) == 1
    assert pbx.logins == 0

    await _tick(hass, freezer)
    assert len(pbx.requests) == 1  # the one refused deviceinfo/query


# -- keepalive ------------------------------------------------------------------------------


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let one keepalive interval pass and wait for the coordinator's refresh.

    The coordinator refreshes in a background task, hence ``wait_background_tasks``.
    """
    freezer.tick(KEEPALIVE_INTERVAL + timedelta(seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_keepalive_quiet_when_recently_used(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """A token used within the last 10 minutes needs no heartbeat."""
    await _setup(hass, config_entry)
    await _tick(hass, freezer)  # idle 5 minutes
    assert pbx.calls("heartbeat") == []

    # An action now: 10 minutes after setup, but only 5 after the last use.
    await play_prompt(hass, config_entry, target="1000", prompt="doorbell")
    before = len(pbx.requests)
    await _tick(hass, freezer)
    assert len(pbx.requests) == before
    assert pbx.calls("heartbeat") == []

    # Another interval: 10 idle minutes, and the heartbeat goes out.
    await _tick(hass, freezer)
    assert len(pbx.calls("heartbeat")) == 1
    assert pbx.logins == 1


def _reports_to(entry: MockConfigEntry) -> dict[str, str]:
    """The report address a heartbeat keeps: Home Assistant's URL on its own IP (no
    internal URL is set) and the entry's webhook."""
    address = f"10.10.10.10:8123/api/webhook/{entry.data[CONF_WEBHOOK_ID]}"
    return {"url": address, "urltag": "1", "urlflag": "1"}


async def test_keepalive_sends_heartbeat_when_idle(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """An idle token gets a heartbeat (token, Home Assistant's address, report port)."""
    await _setup(hass, config_entry)
    token = pbx.calls("deviceinfo/query")[0].token

    await _tick(hass, freezer)
    assert pbx.calls("heartbeat") == []
    await _tick(hass, freezer)

    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.token == token
    # The address Home Assistant's network helper gives (the test plugin's), not the PBX's,
    # and where the PBX keeps sending its reports.
    assert heartbeat.body == {"ipaddr": "10.10.10.10", "port": "8260", **_reports_to(config_entry)}
    assert heartbeat.reply == {"status": "Success"}
    assert pbx.logins == 1
    assert config_entry.runtime_data.diagnostics()["keepalive_ok"] is True

    # Just used by the heartbeat: the next tick stays quiet, the one after sends again.
    await _tick(hass, freezer)
    assert len(pbx.calls("heartbeat")) == 1
    await _tick(hass, freezer)
    assert len(pbx.calls("heartbeat")) == 2
    assert pbx.logins == 1


# c-ares (aiodns 4) answers "localhost" with ::1 as well, which the socket guard refuses
# before the client falls back to 127.0.0.1.
@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect:UserWarning")
async def test_keepalive_heartbeat_names_home_assistant_address(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """A PBX reached by name: the heartbeat still names Home Assistant's own address."""
    entry = _add_entry(hass, {**entry_data, CONF_HOST: "localhost"})
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED

    await _tick(hass, freezer)
    await _tick(hass, freezer)

    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.remote == "127.0.0.1"
    assert heartbeat.body == {"ipaddr": "10.10.10.10", "port": "8260", **_reports_to(entry)}


async def test_keepalive_recovers_from_token_error(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """The PBX forgot the token: the heartbeat logs in again, no reauth."""
    await _setup(hass, config_entry)
    await _tick(hass, freezer)
    pbx.expire_tokens()

    await _tick(hass, freezer)

    assert [r.path for r in pbx.requests[-3:]] == ["heartbeat", "login", "heartbeat"]
    assert pbx.calls("heartbeat")[0].reply == {"status": "Failed", "errno": "20004"}
    assert pbx.calls("heartbeat")[-1].reply == {"status": "Success"}
    assert pbx.successful_logins == 2
    assert reauth_flows(hass, config_entry) == []
    assert config_entry.state is ConfigEntryState.LOADED
    assert config_entry.runtime_data.diagnostics()["keepalive_ok"] is True


async def test_keepalive_injected_token_error_recovers(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """An injected 20006 (token timed out) on the heartbeat is cured by one re-login."""
    await _setup(hass, config_entry)
    pbx.fail_next["heartbeat"] = ["20006"]

    await _tick(hass, freezer)
    await _tick(hass, freezer)

    assert len(pbx.calls("heartbeat")) == 2
    assert pbx.calls("heartbeat")[-1].reply == {"status": "Success"}
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
    entry = _add_entry(hass, _token_data(entry_data, token))
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    logins = pbx.logins

    pbx.expire_tokens()
    await _tick(hass, freezer)
    await _tick(hass, freezer)

    (heartbeat,) = pbx.calls("heartbeat")
    assert heartbeat.reply == {"status": "Failed", "errno": "20004"}
    assert pbx.logins == logins
    assert len(reauth_flows(hass, entry)) == 1
    assert entry.runtime_data.diagnostics()["keepalive_ok"] is False

    # Refused once: later ticks never knock again.
    requests = len(pbx.requests)
    for _ in range(3):
        await _tick(hass, freezer)
    assert len(pbx.requests) == requests
    assert len(reauth_flows(hass, entry)) == 1


async def test_keepalive_refused_password_starts_reauth_once(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """The password changed while the token died: one login attempt, reauth, then silence."""
    await _setup(hass, config_entry)
    pbx.password = "changed"
    pbx.expire_tokens()

    await _tick(hass, freezer)
    await _tick(hass, freezer)

    assert [r.path for r in pbx.requests[2:]] == ["heartbeat", "login"]
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert len(reauth_flows(hass, config_entry)) == 1
    assert config_entry.state is ConfigEntryState.LOADED

    requests = len(pbx.requests)
    for _ in range(3):
        await _tick(hass, freezer)
    assert len(pbx.requests) == requests
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert pbx.blocked_ips == {}


@pytest.mark.parametrize(
    ("switch", "value", "default"),
    [("http_status", 500, None), ("drop_connection", True, False), ("garbage", True, False)],
)
async def test_keepalive_failure_is_logged_once_and_recovers(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    switch: str,
    value: object,
    default: object,
) -> None:
    """A failed heartbeat is logged once (not per tick); no re-login, no reauth, entry stays."""
    await _setup(hass, config_entry)
    token = pbx.calls("deviceinfo/query")[0].token
    await _tick(hass, freezer)
    setattr(pbx, switch, value)

    with caplog.at_level(logging.DEBUG, logger="custom_components.voice_prompt"):
        await _tick(hass, freezer)
        await _tick(hass, freezer)

    assert len(pbx.calls("heartbeat")) == 2
    assert pbx.logins == 1
    assert reauth_flows(hass, config_entry) == []
    assert config_entry.state is ConfigEntryState.LOADED
    assert config_entry.runtime_data.diagnostics()["keepalive_ok"] is False
    problems = [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.voice_prompt") and r.levelno >= logging.WARNING
    ]
    assert len(problems) == 1
    assert problems[0].levelno == logging.ERROR
    assert f"{config_entry.title} keepalive" in problems[0].getMessage()
    assert "127.0.0.1" in problems[0].getMessage()

    # The PBX answers again: the next heartbeat succeeds and the recovery is logged.
    setattr(pbx, switch, default)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="custom_components.voice_prompt"):
        await _tick(hass, freezer)

    assert pbx.calls("heartbeat")[-1].reply == {"status": "Success"}
    assert len(pbx.calls("heartbeat")) == 3
    assert config_entry.runtime_data.diagnostics()["keepalive_ok"] is True
    assert [r.levelno for r in caplog.records if "recovered" in r.getMessage()] == [logging.INFO]
    assert pbx.logins == 1
    assert token not in caplog.text


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
    """Setting up (and unloading) entries does not register the action again.

    Each entry has its own device and exactly one event entity on it.
    """
    events = async_capture_events(hass, EVENT_SERVICE_REGISTERED)
    second = MockConfigEntry(domain=DOMAIN, title="second", unique_id="other", data=entry_data)
    second.add_to_hass(hass)
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert config_entry.state is ConfigEntryState.LOADED
    assert second.state is ConfigEntryState.LOADED

    registry = er.async_get(hass)
    for entry in (config_entry, second):
        (entity,) = er.async_entries_for_config_entry(registry, entry.entry_id)
        assert entity.domain == "event"
        assert entity.unique_id == f"{entry.unique_id}_calls"
        assert entity.device_id == entry_device(hass, entry).id
    assert len(dr.async_get(hass).devices) == 2

    assert await hass.config_entries.async_unload(second.entry_id)
    await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()

    assert len([e for e in events if e.data["domain"] == DOMAIN]) == 1
    assert hass.services.has_service(DOMAIN, SERVICE_PLAY_PROMPT)
    assert len(er.async_entries_for_config_entry(registry, config_entry.entry_id)) == 1


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
