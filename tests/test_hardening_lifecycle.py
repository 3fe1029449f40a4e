"""Hardening: lifecycle (setup/unload cycles, stopping mid-broadcast) and load.

Everything runs against the real fake PBX (HTTPS on 127.0.0.1). The ``hass`` fixture of
the test plugin fails a test on lingering tasks and timers; no test here relaxes that
(``expected_lingering_tasks`` / ``expected_lingering_timers`` keep their default False).
Because the plugin skips timers of jobs marked ``cancel_on_shutdown`` (the keepalive is
one), the tests also count this integration's timers themselves.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
import contextlib
import logging
import time
from typing import Any

import aiohttp
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.const import DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CoreState, HassJob, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util.async_ import get_scheduled_timer_handles
from tests.conftest import play_prompt, reauth_flows
from tests.fakes.yeastar import FakeYeastarPBX

PLAYPROMPT = "extension/playprompt"
CYCLES = 20
LOAD = 1000
BROADCAST = [str(n) for n in range(1010, 1110)]  # the fake's 100 extra extensions


def _state(entry: MockConfigEntry) -> ConfigEntryState:
    """Read the state through a call, so type checkers do not narrow it for good."""
    state: ConfigEntryState = entry.state
    return state


def _our_timers(hass: HomeAssistant) -> list[asyncio.TimerHandle]:
    """Live timers scheduled for this integration's jobs (the keepalive)."""
    found = []
    for handle in get_scheduled_timer_handles(hass.loop):
        if handle.cancelled():
            continue
        job = handle._args[-1] if handle._args else None
        if isinstance(job, HassJob) and DOMAIN in str(job.name):
            found.append(handle)
    return found


def _listeners(hass: HomeAssistant) -> dict[str, int]:
    """Event listeners, without the one a Store adds while a delayed write is pending.

    The device registry schedules a delayed write when the device is (re)created; that
    listener comes and goes with Home Assistant's own timing, not with this integration.
    """
    listeners = {str(event): count for event, count in hass.bus.async_listeners().items()}
    listeners.pop(str(EVENT_HOMEASSISTANT_FINAL_WRITE), None)
    return listeners


# -- setup / unload cycles --------------------------------------------------------------------


async def test_setup_unload_cycles_leave_nothing_behind(
    hass: HomeAssistant, config_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """20 x (setup → action → unload): no task, timer, PBX session or listener is left.

    The plugin's own checks (no lingering task or timer at teardown) run after this too.
    """
    # A first cycle warms up what Home Assistant keeps for good (shared session, registries).
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()

    tasks_before = asyncio.all_tasks()
    listeners_before = _listeners(hass)
    services_before = hass.services.async_services_for_domain(DOMAIN).keys()
    assert _our_timers(hass) == []
    call_ids: list[str] = []

    for cycle in range(CYCLES):
        assert await hass.config_entries.async_setup(config_entry.entry_id), cycle
        await hass.async_block_till_done()
        assert config_entry.state is ConfigEntryState.LOADED
        assert len(_our_timers(hass)) == 1  # exactly one keepalive while loaded
        assert len(pbx.tokens) == 1  # exactly one PBX session while loaded

        response = await play_prompt(hass, config_entry, extension="1000", prompt="doorbell")
        call_ids.append(response["calls"][0]["call_id"])

        assert await hass.config_entries.async_unload(config_entry.entry_id), cycle
        await hass.async_block_till_done()
        assert _state(config_entry) is ConfigEntryState.NOT_LOADED
        assert _our_timers(hass) == [], cycle
        assert pbx.tokens == {}, cycle  # logged out: no PBX session left open

    assert asyncio.all_tasks() - tasks_before == set()
    assert _listeners(hass) == listeners_before
    # The action belongs to the integration, not to an entry: it stays, registered once.
    assert hass.services.async_services_for_domain(DOMAIN).keys() == services_before
    # One login and one logout per cycle, no more (warm-up cycle included).
    assert pbx.successful_logins == CYCLES + 1
    assert len(pbx.calls("logout")) == CYCLES + 1
    assert len(set(call_ids)) == CYCLES
    # No webhook (only the Graph backend will need one) and no reauth left over.
    assert not hass.data.get("webhook")
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
    coro = play_prompt(hass, loaded_entry, extension=BROADCAST, prompt="alarm")
    # An automation's task is tracked by Home Assistant; an API caller's is not.
    task = hass.async_create_task(coro, "broadcast") if tracked else asyncio.create_task(coro)
    # Wait until the first round of requests is at the PBX.
    async with asyncio.timeout(5):
        while len(pbx.calls(PLAYPROMPT)) < 20:
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
            *(
                play_prompt(hass, loaded_entry, extension=ext, prompt="doorbell")
                for ext in extensions
            )
        )
        elapsed = time.monotonic() - started

    returned = [r["calls"][0]["call_id"] for r in responses]
    assert all(r["failed"] == [] for r in responses)
    # Each action got the call id of its own extension's request.
    assert [r["calls"][0]["extension"] for r in responses] == extensions
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


@pytest.mark.usefixtures("tolerate_tls_resets")
async def test_burst_timeout_counts_only_the_pbx_time(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A burst of actions: each PBX answer is well inside the timeout, so all succeed.

    Timeout scaled down 12.5x (0.8 s instead of 10 s) so the burst stays short: the PBX
    answers every request in 0.25 s; 320 actions at once.
    """
    client = loaded_entry.runtime_data.client
    client._timeout = aiohttp.ClientTimeout(total=0.8)
    pbx.latency = 0.25
    with _production_loop(hass):
        outcomes = await asyncio.gather(
            *(
                play_prompt(
                    hass, loaded_entry, extension=BROADCAST[i % len(BROADCAST)], prompt="alarm"
                )
                for i in range(320)
            ),
            return_exceptions=True,
        )

    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, HomeAssistantError) for o in failures), failures
    assert failures == []
