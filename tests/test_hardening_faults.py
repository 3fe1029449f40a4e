"""Hardening: the fault matrix, end to end through ``voice_prompt.play_prompt``.

Each fault is a switch on the real fake PBX (HTTPS on 127.0.0.1). For every fault the
test asserts what the user sees (error class, translation key, words of the message,
how long it took), that nothing was retried behind the user's back (one request per
attempt, no extra login, no reauth), and that the entry *survives*: once the fault is
lifted the next action rings the phone, without a reload.

``test_services.py`` / ``test_api_yeastar.py`` prove the single error mappings; this file
adds the survival and the runtime-level scenarios (restart, bursts, lockout, heartbeat).
The one slow test is named ``test_slow_...`` (about 10 s: it uses the real 10 s timeout);
``-k "not slow"`` leaves it out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
import logging
import ssl
import time
from typing import Any

import aiohttp
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.voice_prompt.api.yeastar import DEFAULT_TIMEOUT
from custom_components.voice_prompt.const import DOMAIN, KEEPALIVE_INTERVAL, SERVICE_PLAY_PROMPT
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.util import dt as dt_util
from tests.conftest import PASSWORD, SERIAL, play_prompt, reauth_flows
from tests.fakes.yeastar import FakeYeastarPBX

PLAYPROMPT = "extension/playprompt"
NEW_PASSWORD = "VoicePrompt-Changed2"
OTHER_SERIAL = "369364835299"


# -- helpers ----------------------------------------------------------------------------------


async def _timed_play(
    hass: HomeAssistant, entry: MockConfigEntry, **data: Any
) -> tuple[Any, float]:
    """Play; return (response or the exception raised, seconds taken)."""
    started = time.monotonic()
    try:
        outcome = await play_prompt(hass, entry, **data)
    except HomeAssistantError as err:
        outcome = err
    return outcome, time.monotonic() - started


def _lift_faults(pbx: FakeYeastarPBX) -> None:
    pbx.latency = 0.0
    pbx.http_status = None
    pbx.garbage = False
    pbx.reply_override = {}
    pbx.fail_next = {}
    pbx.hang = False
    pbx.drop_connection = False
    pbx.expire_every = None


def _answered(pbx: FakeYeastarPBX) -> list[str]:
    """Call ids the fake handed out, in order."""
    return [
        r.reply["callid"]
        for r in pbx.calls(PLAYPROMPT)
        if r.reply is not None and r.reply.get("status") == "Success" and r.reply.get("callid")
    ]


async def _assert_survives(
    hass: HomeAssistant, entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The entry is still loaded and the next action rings the phone."""
    assert entry.state is ConfigEntryState.LOADED
    response = await play_prompt(hass, entry, extension="1000", prompt="doorbell")
    assert response["failed"] == []
    assert response["calls"] == [{"extension": "1000", "call_id": _answered(pbx)[-1]}]


def _assert_translated(err: HomeAssistantError, key: str, *words: str) -> None:
    assert err.translation_domain == DOMAIN
    assert err.translation_key == key
    message = str(err)
    assert key not in message  # rendered from en.json, not a bare key
    assert "{" not in message
    for word in words:
        assert word in message, message


def _set_timeout(entry: MockConfigEntry, seconds: float) -> None:
    """Shorten the client's request timeout (the message names the value in use)."""
    client = entry.runtime_data.client
    client._timeout = aiohttp.ClientTimeout(total=seconds)


async def _tick(hass: HomeAssistant) -> None:
    """Let the keepalive interval fire once and wait for its background task.

    The clock is not frozen (freezegun would stop the loop's clock, and with it every
    request timeout); the timer is fired as if the interval had passed.
    """
    async_fire_time_changed(hass, dt_util.utcnow() + KEEPALIVE_INTERVAL + timedelta(seconds=1))
    await hass.async_block_till_done(wait_background_tasks=True)


# -- the matrix: one action against a PBX in trouble ------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A switch setting on the fake and what the user must see."""

    switches: dict[str, Any]
    key: str
    words: tuple[str, ...]
    timeout: float | None = None  # shortened client timeout for the no-reply case
    extra: dict[str, Any] = field(default_factory=dict)


FAULTS = {
    "http-500": Fault({"http_status": 500}, "invalid_response", ("HTTP status 500",)),
    "http-502": Fault({"http_status": 502}, "invalid_response", ("HTTP status 502",)),
    "http-503": Fault({"http_status": 503}, "invalid_response", ("HTTP status 503",)),
    "non-json-body": Fault({"garbage": True}, "invalid_response", ("not JSON",)),
    "json-without-status": Fault(
        {"reply_override": {PLAYPROMPT: {"callid": "1700000000.1"}}},
        "invalid_response",
        ("no status",),
    ),
    "json-without-callid": Fault(
        {"reply_override": {PLAYPROMPT: {"status": "Success"}}},
        "invalid_response",
        ("without a call id",),
    ),
    "json-blank-callid": Fault(
        {"reply_override": {PLAYPROMPT: {"status": "Success", "callid": ""}}},
        "invalid_response",
        ("without a call id",),
    ),
    "failed-unknown-errno": Fault(
        {"fail_next": {PLAYPROMPT: ["99999", "99999"]}}, "pbx_error", ("error 99999",)
    ),
    "no-reply": Fault({"hang": True}, "timeout", ("did not answer within 0.5 seconds",), 0.5),
    "connection-dropped": Fault({"drop_connection": True}, "cannot_connect", ("127.0.0.1",)),
}


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_matrix(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    """A PBX fault: a clear, translated error, fast, one attempt; then the entry survives."""
    fault = FAULTS[name]
    if fault.timeout is not None:
        _set_timeout(loaded_entry, fault.timeout)
    for switch, value in fault.switches.items():
        setattr(pbx, switch, value)

    outcome, elapsed = await _timed_play(hass, loaded_entry, extension="1000", prompt="doorbell")

    assert isinstance(outcome, HomeAssistantError), outcome
    assert not isinstance(outcome, ServiceValidationError)  # the PBX's fault, not the caller's
    _assert_translated(outcome, fault.key, *fault.words)
    assert elapsed < (fault.timeout or 0) + 3
    assert len(pbx.calls(PLAYPROMPT)) == 1  # no silent retry that could ring twice
    assert pbx.logins == 1  # a PBX fault is not a reason to log in again
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    # Fire-and-forget (an automation's default): the failure is logged, not swallowed.
    caplog.clear()
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": loaded_entry.entry_id, "extension": "1000", "prompt": "doorbell"},
    )
    await hass.async_block_till_done()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], HomeAssistantError)
    assert errors[0].exc_info[1].translation_key == fault.key

    _lift_faults(pbx)
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.logins == 1


async def test_connection_refused_then_pbx_back(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    server_ssl: ssl.SSLContext,
) -> None:
    """The PBX is down (connection refused): a quick cannot_connect; back up, it works."""
    port = pbx.port
    await pbx.close()

    outcome, elapsed = await _timed_play(hass, loaded_entry, extension="1000", prompt="doorbell")

    assert isinstance(outcome, HomeAssistantError)
    assert not isinstance(outcome, ServiceValidationError)
    _assert_translated(outcome, "cannot_connect", "127.0.0.1")
    assert elapsed < 3  # refused at once, not a timeout
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    await pbx.start(port=port, ssl_context=server_ssl)
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.logins == 1  # the PBX kept its tokens: no new login


async def test_slow_pbx_answer_after_9s_succeeds_after_30s_times_out(
    hass: HomeAssistant,
    entry_data: dict[str, Any],
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    server_ssl: ssl.SSLContext,
) -> None:
    """SLOW (~10 s, the real default timeout): 9 s is fine, 30 s is a timeout at 10 s.

    Two PBXs, one answering after 9 s and one after 30 s, are called at the same time,
    so both cases cost one 10 s wait.
    """
    assert DEFAULT_TIMEOUT == 10.0
    sluggish = FakeYeastarPBX(password=PASSWORD, serial=OTHER_SERIAL)
    await sluggish.start(ssl_context=server_ssl)
    try:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="Sluggish PBX",
            unique_id=OTHER_SERIAL,
            data={**entry_data, "port": sluggish.port},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        pbx.latency = 9.0
        sluggish.latency = 30.0

        (ok, ok_elapsed), (late, late_elapsed) = await asyncio.gather(
            _timed_play(hass, loaded_entry, extension="1000", prompt="doorbell"),
            _timed_play(hass, entry, extension="1000", prompt="doorbell"),
        )

        assert not isinstance(ok, BaseException), ok
        assert ok["calls"] == [{"extension": "1000", "call_id": _answered(pbx)[-1]}]
        assert 9.0 <= ok_elapsed < 10.0

        assert isinstance(late, HomeAssistantError)
        assert not isinstance(late, ServiceValidationError)
        _assert_translated(late, "timeout", "did not answer within 10 seconds")
        assert 9.5 <= late_elapsed < 12.0  # the timeout, not the PBX's 30 s: no hang
        await hass.async_block_till_done()
        assert reauth_flows(hass) == []

        sluggish.latency = 0.0
        await _assert_survives(hass, entry, sluggish)
    finally:
        await sluggish.close()


@pytest.mark.usefixtures("tolerate_tls_resets")
async def test_self_signed_certificate_with_verification_is_an_ssl_error(
    hass: HomeAssistant, pbx: FakeYeastarPBX
) -> None:
    """Verification on against the PBX's own certificate: ssl_error, not a vague failure.

    The handshake fails before any request, so no login is spent (none counts towards
    the 5 that lock the address); turning verification off in the same form works.
    """
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "yeastar"}
    )
    user_input = {
        "host": pbx.host,
        "port": pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: True,
    }

    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "ssl_error"}
    assert pbx.requests == []
    assert pbx.failed_logins == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**user_input, CONF_VERIFY_SSL: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == SERIAL


# -- tokens and credentials under way ---------------------------------------------------------


async def test_pbx_restart_erases_tokens_mid_run(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    server_ssl: ssl.SSLContext,
) -> None:
    """The PBX restarts between two actions of a run: one re-login, every call succeeds."""
    port = pbx.port
    responses = [await play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")]
    responses.append(await play_prompt(hass, loaded_entry, extension="1001", prompt="doorbell"))

    await pbx.close()  # the PBX goes down (connections closed) ...
    pbx.expire_tokens()  # ... and forgets every token
    await pbx.start(port=port, ssl_context=server_ssl)

    responses.extend(
        [
            await play_prompt(hass, loaded_entry, extension=ext, prompt="wakeup")
            for ext in ("1000", "1001", "1010", "1011")
        ]
    )

    assert all(r["failed"] == [] for r in responses)
    assert [r["calls"][0]["call_id"] for r in responses] == _answered(pbx)
    assert pbx.successful_logins == 2
    assert loaded_entry.runtime_data.client.stats.relogins == 1
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []


async def test_token_expires_mid_burst_of_50_concurrent_actions(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The token dies after 25 of 50 concurrent actions: one re-login, all 50 ring."""
    extensions = [str(n) for n in range(1010, 1060)]
    pbx.expire_every = 25  # all tokens die right after the 25th authenticated request

    responses = await asyncio.gather(
        *(play_prompt(hass, loaded_entry, extension=ext, prompt="alarm") for ext in extensions)
    )

    refused = [
        r for r in pbx.calls(PLAYPROMPT) if r.reply is not None and r.reply.get("errno") == "20004"
    ]
    assert refused  # the expiry really hit requests in flight
    assert pbx.successful_logins == 2  # setup + exactly one re-login
    assert pbx.logins == 2
    assert loaded_entry.runtime_data.client.stats.relogins == 1
    assert [r["calls"][0]["extension"] for r in responses] == extensions
    call_ids = [r["calls"][0]["call_id"] for r in responses]
    assert len(set(call_ids)) == 50
    assert sorted(call_ids) == sorted(_answered(pbx))
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []


async def test_password_changed_on_pbx_never_locks_the_address(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """New password on the PBX, found by a burst of 20 actions.

    Exactly one failed login, one reauth flow; then 20 more concurrent actions and
    keepalive ticks send nothing at all (5 failed logins would lock the address for
    10 minutes). Finishing the reauth with the new password brings the entry back.
    """
    pbx.password = NEW_PASSWORD
    pbx.expire_tokens()

    first = await asyncio.gather(
        *(play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell") for _ in range(20)),
        return_exceptions=True,
    )
    assert all(isinstance(o, HomeAssistantError) for o in first), first
    assert {o.translation_key for o in first} == {"invalid_auth"}  # type: ignore[union-attr]
    await hass.async_block_till_done()
    assert pbx.logins == 2  # setup + the one refused login
    assert pbx.failed_logins == {"127.0.0.1": 1}
    flows = reauth_flows(hass)
    assert len(flows) == 1
    assert flows[0]["context"]["entry_id"] == loaded_entry.entry_id
    requests = len(pbx.requests)

    again = await asyncio.gather(
        *(play_prompt(hass, loaded_entry, extension="1001", prompt="doorbell") for _ in range(20)),
        return_exceptions=True,
    )
    loaded_entry.runtime_data.client._last_used -= 3600  # the keepalive would be due
    await _tick(hass)
    await _tick(hass)

    assert all(isinstance(o, HomeAssistantError) for o in again)
    assert {o.translation_key for o in again} == {"invalid_auth"}  # type: ignore[union-attr]
    assert len(pbx.requests) == requests  # not one more request, login or heartbeat
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert pbx.blocked_ips == {}
    assert len(reauth_flows(hass)) == 1

    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_USERNAME: "api", CONF_PASSWORD: NEW_PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.blocked_ips == {}


@pytest.mark.parametrize(
    ("switches", "seconds"),
    [
        pytest.param({"drop_connection": True}, None, id="dropped"),
        pytest.param({"http_status": 500}, None, id="http-500"),
        pytest.param({"hang": True}, 0.5, id="no-reply"),
        pytest.param({"fail_next": {"heartbeat": ["30001"]}}, None, id="pbx-internal-error"),
    ],
)
async def test_heartbeat_failing_recovers_at_next_use(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    switches: dict[str, Any],
    seconds: float | None,
) -> None:
    """A failed heartbeat is quiet; if the token died meanwhile, the next action re-logs in."""
    if seconds is not None:
        _set_timeout(loaded_entry, seconds)
    for switch, value in switches.items():
        setattr(pbx, switch, value)
    loaded_entry.runtime_data.client._last_used -= 700  # idle: the keepalive is due

    await _tick(hass)

    assert len(pbx.calls("heartbeat")) == 1
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert reauth_flows(hass) == []
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.voice_prompt") and r.levelno >= logging.WARNING
    ]

    # Worst case: the heartbeat did not extend the token and the PBX dropped it.
    _lift_faults(pbx)
    pbx.expire_tokens()
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.successful_logins == 2
    assert loaded_entry.runtime_data.client.stats.relogins == 1
