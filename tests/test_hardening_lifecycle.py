"""Hardening: lifecycle (setup/unload cycles, stopping mid-broadcast) and load.

Everything runs against the real fakes (the Yeastar PBX over HTTPS, Microsoft Graph over
HTTP, on 127.0.0.1). The ``hass`` fixture of the test plugin fails a test on lingering
tasks and timers; no test here relaxes that (``expected_lingering_tasks`` /
``expected_lingering_timers`` keep their default False). The plugin fails only on
lingering timers of Home Assistant jobs; the keepalive is a DataUpdateCoordinator whose
refresh is a plain loop timer, so the tests also count this integration's timers
themselves. The burst test runs on a frozen clock (``freezer``) that it moves itself.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
import contextlib
from datetime import timedelta
import logging
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.api.yeastar import DEFAULT_TIMEOUT, MAX_IN_FLIGHT
from custom_components.voice_prompt.backends.base import CallStatus
from custom_components.voice_prompt.const import DOMAIN, SIGNAL_CALL_EVENT
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE, STATE_UNAVAILABLE
from homeassistant.core import CoreState, HassJob, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util.async_ import get_scheduled_timer_handles
from tests.conftest import SERIAL, play_prompt, reauth_flows, webhook_registration
from tests.fakes.graph import FakeGraph
from tests.fakes.yeastar import FakeYeastarPBX
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    MEDIA,
    UNIQUE_ID,
    USER_ID,
    WEBHOOK_ID,
    graph,
    graph_endpoints,
    graph_entry,
    graph_http,
)

PLAYPROMPT = "extension/playprompt"
CYCLES = 20
LOAD = 1000
BROADCAST = [str(n) for n in range(1010, 1110)]  # the fake's 100 extra extensions


def _state(entry: MockConfigEntry) -> ConfigEntryState:
    """Read the state through a call, so type checkers do not narrow it for good."""
    state: ConfigEntryState = entry.state
    return state


def _code_chain(task: asyncio.Task[Any]) -> Iterator[Any]:
    """The code objects of a task's coroutine and everything it awaits, outermost first."""
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        code = getattr(awaitable, "cr_code", None) or getattr(awaitable, "gi_code", None)
        if code is not None:
            yield code
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def _runs_our_code(task: asyncio.Task[Any]) -> bool:
    return any("custom_components/voice_prompt" in code.co_filename for code in _code_chain(task))


def _new_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started since ``before``, but for the fakes' own and the servers' connections.

    A fake Graph delivers its last notification after the call ended, and each open HTTP
    connection has a server task (the fake's, and Home Assistant's for the notifications).
    """
    new = set()
    for task in asyncio.all_tasks() - before:
        outer = next(_code_chain(task), None)
        if outer is not None and (
            "/tests/fakes/" in outer.co_filename or outer.co_qualname == "RequestHandler.start"
        ):
            continue
        new.add(task)
    return new


def _ours(target: Any) -> bool:
    """A callback of this integration, or of a coordinator that belongs to one of its entries."""
    owner = getattr(target, "__self__", None)
    if isinstance(owner, DataUpdateCoordinator):
        return owner.config_entry is not None and owner.config_entry.domain == DOMAIN
    if isinstance(target, HassJob):
        return DOMAIN in str(target.name) or _ours(target.target)
    return str(getattr(target, "__module__", "")).startswith("custom_components.")


def _our_timers(hass: HomeAssistant) -> list[asyncio.TimerHandle]:
    """Live timers scheduled for this integration (the keepalive's refresh)."""
    return [
        handle
        for handle in get_scheduled_timer_handles(hass.loop)
        if not handle.cancelled()
        and any(_ours(part) for part in (getattr(handle, "_callback", None), *(handle._args or ())))
    ]


def _listeners(hass: HomeAssistant) -> dict[str, int]:
    """Event listeners, without the one a Store adds while a delayed write is pending.

    The device registry schedules a delayed write when the device is (re)created; that
    listener comes and goes with Home Assistant's own timing, not with this integration.
    """
    listeners = {str(event): count for event, count in hass.bus.async_listeners().items()}
    listeners.pop(str(EVENT_HOMEASSISTANT_FINAL_WRITE), None)
    return listeners


def _dispatchers(hass: HomeAssistant) -> dict[str, int]:
    """Dispatcher signals and how many callbacks listen to each."""
    return {
        str(signal): len(targets) for signal, targets in hass.data.get("dispatcher", {}).items()
    }


def _event_entity(hass: HomeAssistant, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{unique_id}_calls")
    assert entity_id is not None
    return entity_id


def _our_issues(hass: HomeAssistant) -> list[str]:
    return [issue_id for (domain, issue_id) in ir.async_get(hass).issues if domain == DOMAIN]


async def _cycle(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    while_loaded: Callable[[], Any],
) -> Any:
    """Set up the entry, run ``while_loaded`` (an action), unload; return what it returned."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _state(entry) is ConfigEntryState.LOADED
    result = await while_loaded()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert _state(entry) is ConfigEntryState.NOT_LOADED
    return result


# -- setup / unload cycles --------------------------------------------------------------------


async def test_setup_unload_cycles_leave_nothing_behind(
    hass: HomeAssistant, config_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """20 x (setup → action → unload): no task, timer, listener, PBX session or webhook left.

    While loaded there is exactly one keepalive timer, one PBX session and one event
    entity listening for the entry's calls (it hears of the extension that failed); after
    unload, none of them. The plugin's own
    checks (no lingering task or timer at teardown) run after this too.
    """
    signal = SIGNAL_CALL_EVENT.format(config_entry.entry_id)

    async def action() -> str:
        assert len(_our_timers(hass)) == 1  # exactly one keepalive while loaded
        assert len(pbx.tokens) == 1  # exactly one PBX session while loaded
        assert _dispatchers(hass).get(signal) == 1  # the event entity, once
        # 4242 does not exist: its failure reaches the event entity.
        response = await play_prompt(hass, config_entry, target=["1000", "4242"], prompt="doorbell")
        (call,) = response["calls"]
        assert call["target"] == "1000"
        assert [(f["target"], f["code"]) for f in response["failed"]] == [("4242", "10006")]
        state = hass.states.get(_event_entity(hass, SERIAL))
        assert state is not None
        assert state.attributes["event_type"] == CallStatus.FAILED
        assert state.attributes["target"] == "4242"
        return str(call["call_id"])

    # A first cycle warms up what Home Assistant keeps for good (shared session, registries).
    await _cycle(hass, config_entry, action)

    tasks_before = asyncio.all_tasks()
    listeners_before = _listeners(hass)
    dispatchers_before = _dispatchers(hass)
    services_before = hass.services.async_services_for_domain(DOMAIN).keys()
    assert _our_timers(hass) == []
    assert signal not in dispatchers_before
    call_ids: list[str] = []

    for cycle in range(CYCLES):
        call_ids.append(await _cycle(hass, config_entry, action))
        assert _our_timers(hass) == [], cycle
        assert pbx.tokens == {}, cycle  # logged out: no PBX session left open
        assert _dispatchers(hass) == dispatchers_before, cycle
        state = hass.states.get(_event_entity(hass, SERIAL))
        assert state is not None
        assert state.state == STATE_UNAVAILABLE, cycle

    assert asyncio.all_tasks() - tasks_before == set()
    assert not [task for task in asyncio.all_tasks() if _runs_our_code(task)]
    assert _listeners(hass) == listeners_before
    # The action belongs to the integration, not to an entry: it stays, registered once.
    assert hass.services.async_services_for_domain(DOMAIN).keys() == services_before
    # One login and one logout per cycle, no more (warm-up cycle included); no heartbeat.
    assert pbx.successful_logins == CYCLES + 1
    assert len(pbx.calls("logout")) == CYCLES + 1
    assert pbx.calls("heartbeat") == []
    assert len(set(call_ids)) == CYCLES
    # No webhook (a PBX entry has none), no repair issue and no reauth left over.
    assert not hass.data.get("webhook")
    assert _our_issues(hass) == []
    assert reauth_flows(hass) == []


@pytest.mark.usefixtures("graph_http")
async def test_teams_setup_unload_cycles_leave_nothing_behind(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    """20 x (setup → call, play, hang up → unload) of a Teams entry.

    While loaded its webhook is registered and its event entity listens; after unload the
    webhook is gone, so is the listener, every call at Graph has ended, and no task or timer
    is left. One token per setup serves its action.
    """
    signal = SIGNAL_CALL_EVENT.format(graph_entry.entry_id)

    async def action() -> str:
        assert webhook_registration(hass, WEBHOOK_ID)["domain"] == DOMAIN
        assert _dispatchers(hass).get(signal) == 1
        assert _our_timers(hass) == []  # nothing polls: Graph reports by webhook
        calls_before = len(graph.calls)
        playing = asyncio.ensure_future(
            play_prompt(hass, graph_entry, target=USER_ID, prompt=[MEDIA])
        )
        async with asyncio.timeout(5):
            while len(graph.calls) == calls_before:
                await asyncio.sleep(0.001)
        # While it waits for Graph, the action is seen running this integration's code.
        assert any(_runs_our_code(task) for task in asyncio.all_tasks())
        response = await playing
        (call,) = response["calls"]
        assert call["status"] == CallStatus.PLAYED
        assert call["hung_up"] is True
        return str(call["call_id"])

    await _cycle(hass, graph_entry, action)  # warm-up, as above

    tasks_before = asyncio.all_tasks()
    listeners_before = _listeners(hass)
    dispatchers_before = _dispatchers(hass)
    tokens_before = graph.token_requests
    call_ids: list[str] = []

    for cycle in range(CYCLES):
        call_ids.append(await _cycle(hass, graph_entry, action))
        assert WEBHOOK_ID not in hass.data.get("webhook", {}), cycle
        assert _dispatchers(hass) == dispatchers_before, cycle
        assert _our_timers(hass) == [], cycle
        state = hass.states.get(_event_entity(hass, UNIQUE_ID))
        assert state is not None
        assert state.state == STATE_UNAVAILABLE, cycle

    assert _new_tasks(tasks_before) == set()
    assert not [task for task in asyncio.all_tasks() if _runs_our_code(task)]
    assert _listeners(hass) == listeners_before
    assert graph.token_requests - tokens_before == CYCLES
    assert len(set(call_ids)) == CYCLES
    assert {graph.calls[call_id].state for call_id in call_ids} == {"terminated"}
    assert _our_issues(hass) == []
    assert reauth_flows(hass) == []


# -- Home Assistant stopping mid-broadcast ----------------------------------------------------


def _assert_clean_outcome(task: asyncio.Task[Any]) -> str:
    """The broadcast ended with a response, a Home Assistant error, or cancellation."""
    assert task.done()
    if task.cancelled():
        return "cancelled"
    err = task.exception()
    if err is None:
        response = task.result()
        assert set(response) == {"calls", "failed"}
        assert len(response["calls"]) + len(response["failed"]) == len(BROADCAST)
        return "response"
    assert isinstance(err, HomeAssistantError), repr(err)
    assert err.translation_domain == DOMAIN
    return "error"


@pytest.mark.parametrize(
    "tracked",
    [
        pytest.param(True, id="hass-task"),
        pytest.param(False, id="plain-task"),
    ],
)
@pytest.mark.usefixtures("tolerate_tls_resets")
async def test_stop_during_broadcast_ends_cleanly(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX, tracked: bool
) -> None:
    """Stop Home Assistant while 100 extensions are being rung.

    ``hass-task``: the action runs in a task Home Assistant tracks (an automation or a
    script); ``plain-task``: in one it does not (an API caller). Either way the call ends
    within a bound with a response, a translated error or a cancellation; nothing else
    escapes and nothing lingers.
    """
    pbx.latency = 0.5  # 100 extensions, 20 at a time: about 2.5 s in total
    coro = play_prompt(hass, loaded_entry, target=BROADCAST, prompt="alarm")
    # An automation's task is tracked by Home Assistant; an API caller's is not.
    task = hass.async_create_task(coro, "broadcast") if tracked else asyncio.create_task(coro)
    # Wait until the first round of requests is at the PBX.
    async with asyncio.timeout(5):
        while len(pbx.calls(PLAYPROMPT)) < MAX_IN_FLIGHT:
            await asyncio.sleep(0.01)

    started = time.monotonic()
    await hass.async_stop()
    async with asyncio.timeout(10):
        await asyncio.wait({task})
    elapsed = time.monotonic() - started

    assert hass.state in (CoreState.stopped, CoreState.not_running)
    assert elapsed < 10
    _assert_clean_outcome(task)
    # The PBX never got more requests than extensions (no retry storm while stopping).
    assert len(pbx.calls(PLAYPROMPT)) <= len(BROADCAST)


async def test_unload_after_stop_is_quiet(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry unloaded after Home Assistant closed its HTTP session unloads cleanly.

    The logout cannot be sent any more; that is worth a debug line, not an unload error
    (the test plugin unloads every entry this way after each test).
    """
    await hass.async_stop()

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert pbx.calls("logout") == []  # the session was closed: nothing could be sent
    assert _our_timers(hass) == []


# -- load -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _production_loop(hass: HomeAssistant) -> Iterator[None]:
    """Run without asyncio debug mode, as Home Assistant does in production.

    The test plugin turns debug mode on (it records a traceback for every task, future and
    callback); a load figure measured with it on would mostly measure that bookkeeping.
    """
    debug = hass.loop.get_debug()
    hass.loop.set_debug(False)
    try:
        yield
    finally:
        hass.loop.set_debug(debug)


async def test_load_1000_concurrent_actions(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """1,000 actions at once: 1,000 call ids back, each the PBX's, none lost or doubled."""
    extensions = [BROADCAST[i % len(BROADCAST)] for i in range(LOAD)]
    with _production_loop(hass):
        started = time.monotonic()
        responses = await asyncio.gather(
            *(play_prompt(hass, loaded_entry, target=ext, prompt="doorbell") for ext in extensions)
        )
        elapsed = time.monotonic() - started

    returned = [r["calls"][0]["call_id"] for r in responses]
    assert all(r["failed"] == [] for r in responses)
    # Each action got the call id of its own extension's request.
    assert [r["calls"][0]["target"] for r in responses] == extensions
    assert {r["calls"][0]["status"] for r in responses} == {CallStatus.PLACED}
    answered = [
        r.reply["callid"]
        for r in pbx.calls(PLAYPROMPT)
        if r.reply is not None and r.reply.get("status") == "Success"
    ]
    assert len(pbx.calls(PLAYPROMPT)) == LOAD  # one request per action, no retries
    assert Counter(returned) == Counter(answered)
    assert len(set(returned)) == LOAD  # none duplicated
    assert Counter(r.body["extid"] for r in pbx.calls(PLAYPROMPT)) == Counter(extensions)
    assert pbx.logins == 1  # the token from setup served all of them
    print(f"\nload: {LOAD} concurrent actions held in {elapsed:.2f} s")


async def _spin(rounds: int = 500) -> None:
    """Let the loop run a while without moving the (frozen) clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_burst_timeout_counts_only_the_pbx_time(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """A burst of 320 actions: each PBX answer is well inside the timeout, so all succeed.

    The PBX takes 2.5 s per request (a quarter of the 10 s timeout) and the client keeps
    at most 20 requests there at once, so the burst lasts 16 rounds, 40 s in all: a
    timeout that also counted the wait for a free slot would fail most of them. The clock
    is frozen and moved one round at a time, so the test takes no real 40 s.
    """
    latency = DEFAULT_TIMEOUT / 4
    rounds = 16
    pbx.latency = latency
    burst = asyncio.ensure_future(
        asyncio.gather(
            *(
                play_prompt(
                    hass, loaded_entry, target=BROADCAST[i % len(BROADCAST)], prompt="alarm"
                )
                for i in range(rounds * MAX_IN_FLIGHT)
            ),
            return_exceptions=True,
        )
    )
    for round_ in range(1, rounds + 1):
        for _ in range(40):
            if len(pbx.calls(PLAYPROMPT)) == round_ * MAX_IN_FLIGHT:
                break
            await _spin()
        await _spin()
        # Never more than MAX_IN_FLIGHT requests at the PBX at once.
        assert len(pbx.calls(PLAYPROMPT)) == round_ * MAX_IN_FLIGHT, round_
        # A hair past the PBX's time: at this clock's magnitude (~1.8e9 s) a timer due
        # exactly now is not run (asyncio compares against now + 1 ns, below a float's step).
        freezer.tick(timedelta(seconds=latency + 0.01))
    for _ in range(40):
        if burst.done():
            break
        await _spin()

    assert burst.done()
    outcomes = burst.result()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert failures == []
    assert len({o["calls"][0]["call_id"] for o in outcomes}) == rounds * MAX_IN_FLIGHT
    assert pbx.logins == 1
