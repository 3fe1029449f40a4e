"""Hardening: the fault matrix, end to end through ``voice_prompt.play_prompt``.

Each fault is a switch on a real fake (the Yeastar PBX over HTTPS, Microsoft Graph over
HTTP, both on 127.0.0.1). For every fault the test asserts what the user sees (error class,
the translated key of ``errors.py`` with its ``entry`` and ``detail`` placeholders, words
of the rendered message, how long it took), that nothing was retried behind the user's
back (one request per attempt, no extra login, no reauth unless only new credentials
help), and that the entry *survives*: once the fault is lifted the next action plays,
without a reload.

Tests that need time to pass run with ``freezer``: the clock (and with it the event loop's
timers, the client's idle and lockout clocks and the fake's) stands still until the test
moves it. An action that completes under a frozen clock waited on no timer at all: its
error came at once. The one slow test is named ``test_slow_...`` (about 10 s: it uses the
real 10 s timeout on a running clock); ``-k "not slow"`` leaves it out.

``test_services.py`` / ``test_api_*.py`` prove the single error mappings; this file adds the
survival and the runtime-level scenarios (restart, bursts, lockout, heartbeat, Graph).
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import Callable
import copy
from dataclasses import dataclass
from datetime import timedelta
import logging
import ssl
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.voice_prompt.api.yeastar import (
    DEFAULT_TIMEOUT,
    KEEPALIVE_AFTER_IDLE,
    LOCKOUT_SECONDS,
)
from custom_components.voice_prompt.backends.yeastar import KEEPALIVE_INTERVAL
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from tests.conftest import PASSWORD, SERIAL, play_prompt, reauth_flows
from tests.fakes.graph import FakeGraph
from tests.fakes.yeastar import FakeYeastarPBX
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    MEDIA,
    USER_ID,
    graph,
    graph_endpoints,
    graph_entry,
    graph_http,
    graph_loaded,
)

PLAYPROMPT = "extension/playprompt"
NEW_PASSWORD = "VoicePrompt-Changed2"
OTHER_SERIAL = "369364835299"
# Longer than the keepalive's interval and the client's idle limit: moving the clock this
# far runs the keepalive once (its one timer), and that run sends a heartbeat.
IDLE = timedelta(seconds=KEEPALIVE_AFTER_IDLE + 60)
# Past the client's request timeout (aiohttp rounds a deadline of 5 s or more up to a second).
PAST_TIMEOUT = timedelta(seconds=DEFAULT_TIMEOUT + 1)
CORE = "custom_components.voice_prompt"


# -- helpers ----------------------------------------------------------------------------------


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Let the loop run (without moving the clock) until ``predicate()`` holds."""
    for _ in range(20_000):
        if predicate():
            return
        await asyncio.sleep(0)
    pytest.fail(f"still waiting for {what}")


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


def _placed(target: str, call_id: str) -> dict[str, Any]:
    return {"target": target, "call_id": call_id, "status": "placed"}


async def _assert_survives(
    hass: HomeAssistant, entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The entry is still loaded and the next action rings the phone."""
    assert entry.state is ConfigEntryState.LOADED
    response = await play_prompt(hass, entry, target="1000", prompt="doorbell")
    assert response == {"calls": [_placed("1000", _answered(pbx)[-1])], "failed": []}


def _assert_translated(
    err: HomeAssistantError, entry: MockConfigEntry, key: str, *words: str
) -> None:
    """One of errors.py's keys, naming the entry, with the client's words as ``detail``."""
    assert err.translation_domain == DOMAIN
    assert err.translation_key == key
    placeholders = err.translation_placeholders or {}
    assert set(placeholders) == {"entry", "detail"}
    assert placeholders["entry"] == entry.title
    for word in words:
        assert word in placeholders["detail"], placeholders
    message = str(err)
    assert key not in message  # rendered from en.json, not a bare key
    assert "{" not in message
    assert entry.title in message
    assert placeholders["detail"] in message


def _our_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(CORE) and r.levelno >= logging.ERROR]


async def _keepalive_tick(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, pbx: FakeYeastarPBX, *, hangs: bool
) -> None:
    """Let the token sit idle past the limit, so the keepalive's next run is due, and run it.

    ``hangs``: the PBX does not answer the heartbeat; the clock then moves on past the
    request timeout too.
    """
    heartbeats = len(pbx.calls("heartbeat"))
    freezer.tick(IDLE)
    async_fire_time_changed(hass)
    if hangs:
        await _until(lambda: len(pbx.calls("heartbeat")) > heartbeats, "the heartbeat")
        freezer.tick(PAST_TIMEOUT)
        async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


# -- the matrix: one action against a PBX in trouble ------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A switch setting on the fake and what the user must see."""

    switches: dict[str, Any]
    key: str
    words: tuple[str, ...]
    hangs: bool = False  # no reply: the error comes when the clock passes the timeout


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
        {"fail_next": {PLAYPROMPT: ["99999", "99999"]}},
        "request_failed",
        ("refused the request with error 99999",),
    ),
    "no-reply": Fault(
        {"hang": True}, "timeout", ("127.0.0.1 did not answer within 10 seconds",), hangs=True
    ),
    "connection-dropped": Fault(
        {"drop_connection": True}, "cannot_connect", ("Cannot connect to 127.0.0.1",)
    ),
}


async def _past_timeout_if_hanging(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, pbx: FakeYeastarPBX, fault: Fault
) -> None:
    """For a PBX that does not answer: once the second request is there, pass the timeout."""
    if fault.hangs:
        await _until(lambda: len(pbx.calls(PLAYPROMPT)) > 1, "the request")
        freezer.tick(PAST_TIMEOUT)
        async_fire_time_changed(hass)


async def _fault_outcome(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    pbx: FakeYeastarPBX,
    fault: Fault,
    action: asyncio.Future[Any],
) -> Any:
    """Wait for the action under the frozen clock; move it past the timeout for a hang."""
    if fault.hangs:
        await _until(lambda: len(pbx.calls(PLAYPROMPT)) > 0, "the request")
        freezer.tick(PAST_TIMEOUT - timedelta(seconds=2))
        async_fire_time_changed(hass)
        for _ in range(500):
            await asyncio.sleep(0)
        assert not action.done()  # no error before the timeout: the PBX may still answer
        freezer.tick(timedelta(seconds=2))
        async_fire_time_changed(hass)
    await _until(action.done, "the action")
    return action.exception() or action.result()


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_matrix(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    """A PBX fault: a clear, translated error, at once, one attempt; then the entry survives.

    The clock stands still, so every error but the timeout comes without waiting on any
    timer; the timeout comes when the clock passes 10 s, not before.
    """
    fault = FAULTS[name]
    for switch, value in fault.switches.items():
        setattr(pbx, switch, copy.deepcopy(value))

    started = time.monotonic()
    action = asyncio.ensure_future(
        play_prompt(hass, loaded_entry, extension="1000", prompt="doorbell")
    )
    outcome = await _fault_outcome(hass, freezer, pbx, fault, action)
    elapsed = time.monotonic() - started

    assert isinstance(outcome, HomeAssistantError), outcome
    assert not isinstance(outcome, ServiceValidationError)  # the PBX's fault, not the caller's
    _assert_translated(outcome, loaded_entry, fault.key, *fault.words)
    assert elapsed == (PAST_TIMEOUT.total_seconds() if fault.hangs else 0)
    assert len(pbx.calls(PLAYPROMPT)) == 1  # no silent retry that could ring twice
    assert pbx.logins == 1  # a PBX fault is not a reason to log in again
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    # Fire-and-forget (an automation's default): the failure is logged, not swallowed.
    caplog.clear()
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": loaded_entry.entry_id, "target": "1000", "prompt": "doorbell"},
    )
    await _past_timeout_if_hanging(hass, freezer, pbx, fault)
    await hass.async_block_till_done()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], HomeAssistantError)
    assert errors[0].exc_info[1].translation_key == fault.key
    assert len(pbx.calls(PLAYPROMPT)) == 2

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

    outcome, elapsed = await _timed_play(hass, loaded_entry, target="1000", prompt="doorbell")

    assert isinstance(outcome, HomeAssistantError)
    assert not isinstance(outcome, ServiceValidationError)
    _assert_translated(outcome, loaded_entry, "cannot_connect", "Cannot connect to 127.0.0.1")
    assert outcome.__cause__ is not None
    assert outcome.__cause__.code is None  # type: ignore[attr-defined]  # no PBX errno: never reached
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
    so both cases cost one 10 s wait. The clock runs: this is the real timeout.
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
            _timed_play(hass, loaded_entry, target="1000", prompt="doorbell"),
            _timed_play(hass, entry, target="1000", prompt="doorbell"),
        )

        assert not isinstance(ok, BaseException), ok
        assert ok == {"calls": [_placed("1000", _answered(pbx)[-1])], "failed": []}
        assert 9.0 <= ok_elapsed < 10.0

        assert isinstance(late, HomeAssistantError)
        assert not isinstance(late, ServiceValidationError)
        _assert_translated(late, entry, "timeout", "did not answer within 10 seconds")
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
    assert result["description_placeholders"] == {"tried": f"the PBX at 127.0.0.1:{pbx.port}"}
    assert pbx.requests == []
    assert pbx.failed_logins == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**user_input, CONF_VERIFY_SSL: False}
    )
    # Off, its certificate is shown first (still nothing sent), then pinned on confirmation.
    assert result["step_id"] == "certificate"
    assert pbx.requests == []
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == SERIAL
    # The check costs one login, logged out again (the new entry then logs in itself).
    assert [r.path for r in pbx.requests[:3]] == ["login", "deviceinfo/query", "logout"]


# -- tokens and credentials under way ---------------------------------------------------------


def _token_refusals(pbx: FakeYeastarPBX) -> int:
    """Requests the fake refused because their token was gone (errno 20004)."""
    return sum(1 for r in pbx.requests if r.reply is not None and r.reply.get("errno") == "20004")


async def test_pbx_restart_erases_tokens_mid_run(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    server_ssl: ssl.SSLContext,
) -> None:
    """The PBX restarts between two actions of a run: one re-login, every call succeeds."""
    port = pbx.port
    responses = [await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")]
    responses.append(await play_prompt(hass, loaded_entry, extension="1001", prompt="doorbell"))

    await pbx.close()  # the PBX goes down (connections closed) ...
    pbx.expire_tokens()  # ... and forgets every token
    await pbx.start(port=port, ssl_context=server_ssl)

    responses.extend(
        [
            await play_prompt(hass, loaded_entry, target=ext, prompt="wakeup")
            for ext in ("1000", "1001", "1010", "1011")
        ]
    )

    assert all(r["failed"] == [] for r in responses)
    assert [r["calls"][0]["call_id"] for r in responses] == _answered(pbx)
    assert pbx.successful_logins == 2  # setup + exactly one re-login
    assert pbx.logins == 2
    assert _token_refusals(pbx) == 1  # only the first request after the restart
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []


async def test_token_expires_mid_burst_of_50_concurrent_actions(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """The token dies after 25 of 50 concurrent actions: one re-login, all 50 ring."""
    extensions = [str(n) for n in range(1010, 1060)]
    pbx.expire_every = 25  # all tokens die right after the 25th authenticated request

    responses = await asyncio.gather(
        *(play_prompt(hass, loaded_entry, target=ext, prompt="alarm") for ext in extensions)
    )

    assert _token_refusals(pbx) > 0  # the expiry really hit requests in flight
    assert pbx.successful_logins == 2  # setup + exactly one re-login
    assert pbx.logins == 2
    assert [r["calls"][0]["target"] for r in responses] == extensions
    assert all(r["failed"] == [] for r in responses)
    call_ids = [r["calls"][0]["call_id"] for r in responses]
    assert len(set(call_ids)) == 50
    assert sorted(call_ids) == sorted(_answered(pbx))
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []


async def test_password_changed_on_pbx_never_locks_the_address(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """New password on the PBX, found by a burst of 20 actions.

    Exactly one failed login, one reauth flow; then 20 more concurrent actions and
    keepalive runs (the token idle for longer than the limit) send nothing at all (5
    failed logins would lock the address for 10 minutes). Finishing the reauth with the
    new password brings the entry back.
    """
    pbx.password = NEW_PASSWORD
    pbx.expire_tokens()

    first = await asyncio.gather(
        *(play_prompt(hass, loaded_entry, target="1000", prompt="doorbell") for _ in range(20)),
        return_exceptions=True,
    )
    assert all(isinstance(o, HomeAssistantError) for o in first), first
    assert all(not isinstance(o, ServiceValidationError) for o in first)
    for outcome in first:
        _assert_translated(outcome, loaded_entry, "invalid_auth", "refused the API username")  # type: ignore[arg-type]
    await hass.async_block_till_done()
    assert pbx.logins == 2  # setup + the one refused login
    assert pbx.failed_logins == {"127.0.0.1": 1}
    flows = reauth_flows(hass)
    assert len(flows) == 1
    assert flows[0]["context"]["entry_id"] == loaded_entry.entry_id
    requests = len(pbx.requests)

    again = await asyncio.gather(
        *(play_prompt(hass, loaded_entry, target="1001", prompt="doorbell") for _ in range(20)),
        return_exceptions=True,
    )
    await _keepalive_tick(hass, freezer, pbx, hangs=False)
    await _keepalive_tick(hass, freezer, pbx, hangs=False)

    assert all(isinstance(o, HomeAssistantError) for o in again)
    assert {o.translation_key for o in again} == {"invalid_auth"}  # type: ignore[union-attr]
    assert len(pbx.requests) == requests  # not one more request, login or heartbeat
    assert pbx.failed_logins == {"127.0.0.1": 1}
    assert pbx.blocked_ips == {}
    assert len(reauth_flows(hass)) == 1
    assert loaded_entry.state is ConfigEntryState.LOADED

    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_USERNAME: "api", CONF_PASSWORD: NEW_PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.blocked_ips == {}
    assert reauth_flows(hass) == []


async def test_locked_out_address_waits_for_the_lockout_then_recovers(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """The PBX locked this address out (another system guessed wrong 5 times).

    The action says ip_blocked (not a password problem: no reauth), a repair issue says
    so too, and until the lockout's 10 minutes have passed no login is tried (each would
    extend it). Afterwards the next action logs in again and the issue goes away.
    """
    issue_id = f"ip_blocked_{loaded_entry.entry_id}"
    pbx.expire_tokens()  # a fresh login is needed ...
    pbx.block_ip()  # ... and the PBX refuses it for 10 minutes

    outcome, _ = await _timed_play(hass, loaded_entry, target="1000", prompt="doorbell")

    assert isinstance(outcome, HomeAssistantError)
    assert not isinstance(outcome, ServiceValidationError)
    _assert_translated(outcome, loaded_entry, "ip_blocked", "has locked out this address")
    assert pbx.logins == 2  # setup + the one refused login
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "ip_blocked"
    assert issue.translation_placeholders == {"entry": loaded_entry.title, "host": "127.0.0.1"}
    requests = len(pbx.requests)

    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS - 60))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    outcome, _ = await _timed_play(hass, loaded_entry, target="1000", prompt="doorbell")

    assert isinstance(outcome, HomeAssistantError)
    assert outcome.translation_key == "ip_blocked"
    assert len(pbx.requests) == requests  # no login (nor heartbeat) while locked out
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    freezer.tick(timedelta(seconds=61))  # the lockout is over, at the PBX and at the client
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.successful_logins == 2
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert reauth_flows(hass) == []


@pytest.mark.parametrize(
    ("switches", "hangs", "detail"),
    [
        pytest.param({"drop_connection": True}, False, "Cannot connect to 127.0.0.1", id="dropped"),
        pytest.param({"http_status": 500}, False, "HTTP status 500", id="http-500"),
        pytest.param({"hang": True}, True, "did not answer within 10 seconds", id="no-reply"),
        pytest.param(
            {"fail_next": {"heartbeat": ["30001", "30001"]}},
            False,
            "internal error (error 30001)",
            id="pbx-internal-error",
        ),
    ],
)
async def test_heartbeat_failing_recovers_at_next_use(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
    switches: dict[str, Any],
    hangs: bool,
    detail: str,
) -> None:
    """A failing heartbeat is logged once (by the keepalive coordinator), never retried.

    No reauth, no extra login; if the token died meanwhile, the next action logs in again,
    and the next heartbeat that works says the keepalive recovered.
    """
    assert IDLE > KEEPALIVE_INTERVAL
    backend = loaded_entry.runtime_data
    for switch, value in switches.items():
        setattr(pbx, switch, copy.deepcopy(value))

    await _keepalive_tick(hass, freezer, pbx, hangs=hangs)

    heartbeats = pbx.calls("heartbeat")
    assert len(heartbeats) == 1
    # The address comes from Home Assistant's network helper (the test plugin's 10.10.10.10).
    assert (heartbeats[0].body["ipaddr"], heartbeats[0].body["port"]) == ("10.10.10.10", "8260")
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert reauth_flows(hass) == []
    assert backend.diagnostics()["keepalive_ok"] is False
    errors = _our_errors(caplog)
    assert len(errors) == 1
    assert errors[0].exc_info is None  # a line, not a traceback
    assert loaded_entry.title in errors[0].getMessage()
    assert detail in errors[0].getMessage()

    # Still failing: heartbeats go on at the interval, the log does not fill up.
    await _keepalive_tick(hass, freezer, pbx, hangs=hangs)
    assert len(pbx.calls("heartbeat")) == 2
    assert len(_our_errors(caplog)) == 1
    assert pbx.logins == 1

    # Worst case: the heartbeat did not extend the token and the PBX dropped it.
    _lift_faults(pbx)
    pbx.expire_tokens()
    await _assert_survives(hass, loaded_entry, pbx)
    assert pbx.successful_logins == 2
    assert reauth_flows(hass) == []

    caplog.clear()
    await _keepalive_tick(hass, freezer, pbx, hangs=False)
    assert len(pbx.calls("heartbeat")) == 3
    assert pbx.calls("heartbeat")[-1].reply == {"status": "Success"}
    assert backend.diagnostics()["keepalive_ok"] is True
    shown = [r for r in caplog.records if r.name.startswith(CORE) and r.levelno >= logging.INFO]
    assert [r.levelname for r in shown] == ["INFO"]
    assert "recovered" in shown[0].getMessage()


# -- Microsoft Teams: one action against Graph in trouble -------------------------------------


@dataclass(frozen=True)
class GraphFault:
    """A switch setting on the fake Graph and what the user must see."""

    switches: dict[str, Any]
    key: str
    words: tuple[str, ...]
    reauth: bool = False  # only new credentials help
    calls_requests: int = 1  # POST .../communications/calls the fake received


GRAPH_FAULTS = {
    # Graph refuses the token; the one fresh token Entra ID is asked for is refused too.
    "secret-expired": GraphFault(
        {"http_status": 401, "token_error": "7000222"},
        "secret_expired",
        ("client secret of application", "has expired"),
        reauth=True,
    ),
    "secret-refused": GraphFault(
        {"http_status": 401, "token_error": "7000215"},
        "invalid_auth",
        ("refused the client secret",),
        reauth=True,
    ),
    "tenant-gone": GraphFault(
        {"http_status": 401, "token_error": "90002"},
        "tenant_not_found",
        ("does not know tenant",),
        reauth=True,
    ),
    "token-revoked": GraphFault(
        {"http_status": 401},
        "invalid_auth",
        ("refused the app's token",),
        reauth=True,
        calls_requests=2,  # once more with the fresh token
    ),
    "http-500": GraphFault({"http_status": 500}, "request_failed", ("HTTP 500",)),
    "non-json-body": GraphFault({"garbage": True}, "invalid_response", ("not JSON",)),
    "permission-missing": GraphFault(
        {"permission_denied": True}, "request_failed", ("Calls.Initiate.All",)
    ),
    "throttled-past-the-retries": GraphFault(
        {"throttle": [(503, 0.01), (429, 0.01), (503, 0.01)]},
        "request_failed",
        ("Microsoft Graph is busy",),
        calls_requests=3,
    ),
}


def _lift_graph_faults(fake: FakeGraph) -> None:
    fake.http_status = None
    fake.token_error = None
    fake.garbage = False
    fake.permission_denied = False
    fake.throttle = []


async def _assert_graph_survives(
    hass: HomeAssistant, entry: MockConfigEntry, fake: FakeGraph
) -> None:
    """The entry is still loaded and the next action calls, plays and hangs up."""
    assert entry.state is ConfigEntryState.LOADED
    response = await play_prompt(hass, entry, target=USER_ID, prompt=[MEDIA])
    assert response["failed"] == []
    (call,) = response["calls"]
    assert call["target"] == USER_ID
    assert call["status"] == "played"
    assert call["hung_up"] is True
    assert call["call_id"] in fake.calls


@pytest.mark.parametrize("name", list(GRAPH_FAULTS))
async def test_graph_fault_matrix(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    """A Graph fault: a translated error, no call left behind; then the entry survives.

    Refused credentials start one reauth flow (nothing else can help); every other fault
    leaves the credentials alone. No retry beyond Graph's own rules (one token refresh
    on 401, at most 3 tries when Graph asks to wait).
    """
    fault = GRAPH_FAULTS[name]
    for switch, value in fault.switches.items():
        setattr(graph, switch, copy.deepcopy(value))
    tokens = graph.token_requests

    outcome, elapsed = await _timed_play(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert isinstance(outcome, HomeAssistantError), outcome
    assert not isinstance(outcome, ServiceValidationError)
    _assert_translated(outcome, graph_loaded, fault.key, *fault.words)
    assert elapsed < 3
    # 401: exactly one fresh token asked for; otherwise the token from setup serves.
    assert graph.token_requests - tokens == (1 if fault.switches.get("http_status") == 401 else 0)
    calls_made = [r for r in graph.requests if r.path.endswith("/communications/calls")]
    assert len(calls_made) == fault.calls_requests
    assert all(c.state == "terminated" for c in graph.calls.values())  # no call left open
    await hass.async_block_till_done()
    flows = reauth_flows(hass, graph_loaded)
    assert len(flows) == (1 if fault.reauth else 0)

    # Fire-and-forget: logged once, not swallowed.
    caplog.clear()
    _lift_graph_faults(graph)
    for switch, value in fault.switches.items():
        setattr(graph, switch, copy.deepcopy(value))
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": graph_loaded.entry_id, "target": USER_ID, "prompt": MEDIA},
    )
    await hass.async_block_till_done()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert getattr(errors[0].exc_info[1], "translation_key", None) == fault.key
    assert len(reauth_flows(hass, graph_loaded)) == len(flows)  # still one at most

    _lift_graph_faults(graph)
    await _assert_graph_survives(hass, graph_loaded, graph)


async def test_graph_down_then_back(
    hass: HomeAssistant, graph: FakeGraph, graph_loaded: MockConfigEntry
) -> None:
    """Graph unreachable (connection refused): cannot_connect at once; back up, it works."""
    port = graph.port
    await graph.close()

    outcome, elapsed = await _timed_play(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])

    assert isinstance(outcome, HomeAssistantError)
    assert not isinstance(outcome, ServiceValidationError)
    _assert_translated(outcome, graph_loaded, "cannot_connect", "Cannot connect to 127.0.0.1")
    assert elapsed < 3
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []

    await graph.start(port=port)
    await _assert_graph_survives(hass, graph_loaded, graph)
