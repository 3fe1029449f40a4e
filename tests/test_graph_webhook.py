"""The internet-facing Teams webhook: each event acts once, only for our calls, bounded, quiet.

Everything goes through Home Assistant's real webhook on 127.0.0.1 with tokens the fake Graph
signs, as an attacker who learnt the URL (or captured one notification) would send them:
replays, forged bodies under a captured token, floods, huge bodies. The tracker's own rules
(hold, grace, memory bounds, the log's summaries) are also tested on the tracker itself.
Time is moved with ``freezer`` where a rule is about time; those tests request it first and
set the fake's delays to 0 (under a frozen clock a sleep never ends).
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import gc
import json
import logging
import time
import tracemalloc
from typing import Any
import uuid

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import api as freezegun_api
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.voice_prompt.api import (
    GraphEvent,
    GraphEventType,
    VoicePromptAuthenticationError,
)
from custom_components.voice_prompt.api.graph import (
    CALL_GRACE,
    DEFAULT_TIMEOUT,
    HOLD_MARGIN,
    MAX_CALL_LIFE,
    MAX_NOTIFICATION_BYTES,
    MAX_NOTIFICATION_ITEMS,
    SUMMARY_INTERVAL,
    GraphCallTracker,
    GraphNotificationError,
    NotificationDrop,
)
from custom_components.voice_prompt.backends import graph as graph_backend
from custom_components.voice_prompt.const import DOMAIN
from custom_components.voice_prompt.diagnostics import async_get_config_entry_diagnostics
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
from tests.conftest import play_prompt
from tests.fakes.graph import Delivery, FakeGraph
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    CLIENT_SECRET,
    MEDIA,
    TITLE,
    UNIQUE_ID,
    USER_ID,
    WEBHOOK_ID,
    graph,
    graph_endpoints,
    graph_entry,
    graph_http,
    graph_loaded,
    wait_for,
)

WEBHOOK_PATH = f"/api/webhook/{WEBHOOK_ID}"
HOLD = DEFAULT_TIMEOUT + HOLD_MARGIN  # how long the client's tracker holds an unknown call's news
# Loggers whose lines this integration writes.
OURS = "custom_components.voice_prompt"


# ------------------------------------------------------------------------------ helpers


def _fired(hass: HomeAssistant, changes: list[Event]) -> list[str]:
    """The event types the entry's event entity fired, in order."""
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{UNIQUE_ID}_calls")
    return [
        str(e.data["new_state"].attributes["event_type"])
        for e in changes
        if e.data["entity_id"] == entity_id
        and e.data["new_state"] is not None
        and e.data["new_state"].state != STATE_UNKNOWN
        and "event_type" in e.data["new_state"].attributes
    ]


def _body(*items: dict[str, Any]) -> bytes:
    """A commsNotifications body, compact like Graph's."""
    return json.dumps({"value": list(items)}, separators=(",", ":")).encode()


def _call_item(call_id: str, state: str) -> dict[str, Any]:
    return {
        "changeType": "deleted" if state == "terminated" else "updated",
        "resourceUrl": f"/communications/calls/{call_id}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state},
    }


def _op_item(call_id: str, operation_id: str, status: str = "completed") -> dict[str, Any]:
    return {
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id}/operations/{operation_id}",
        "resourceData": {"status": status},
    }


def _delivery(graph: FakeGraph, needle: str) -> Delivery:
    """The (first) notification the fake delivered whose body mentions ``needle``."""
    (found, *_) = [d for d in graph.deliveries if needle.encode() in d.body]
    return found


async def _settle(hass: HomeAssistant, predicate: Callable[[], bool]) -> None:
    """Let sockets and tasks run until ``predicate()`` (works under a frozen clock too)."""
    for _ in range(20000):
        if predicate():
            await hass.async_block_till_done()
            return
        await asyncio.sleep(0)
    raise AssertionError("never settled")


async def _diagnostics(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """What the entry's diagnostics say about notifications (nothing secret among them).

    Read through the integration's own diagnostics function: Home Assistant's endpoint
    imports its Supervisor client on first use, which fails under a frozen clock (one
    test below reads the endpoint too).
    """
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    dump = json.dumps(diagnostics)
    for secret in (CLIENT_SECRET, WEBHOOK_ID):
        assert secret not in dump
    notifications: dict[str, Any] = diagnostics["notifications"]
    return notifications


def _counts(**changes: int) -> dict[str, Any]:
    """The notifications part of the diagnostics: all zero but ``changes``."""
    refused = {"unauthorized": 0, "too_large": 0, "not_json": 0}
    ignored = {"too_many_items": 0, "unknown_call": 0, "duplicate": 0}
    calls, held = changes.pop("calls", 0), changes.pop("held", 0)
    for key, value in changes.items():
        (refused if key in refused else ignored)[key] = value
    return {"calls": calls, "held": held, "refused": refused, "ignored": ignored}


def _our_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(OURS)]


@pytest.fixture
def instant(graph: FakeGraph) -> FakeGraph:
    """The fake without delays: for tests under ``freezer`` (a sleep never ends there)."""
    graph.notify_delay = 0
    graph.prompt_seconds = 0
    return graph


# ------------------------------------------------------------------ 1. each acts once


async def test_a_replayed_notification_acts_once(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    instant: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """Captured notifications replayed 10 times each, after the call ended: nothing fires."""
    graph = instant
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    response = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA])
    call_id = response["calls"][0]["call_id"]
    await _settle(hass, lambda: len(graph.deliveries) == 3)
    assert _fired(hass, changes) == ["answered", "played", "ended"]
    established, completed, terminated = graph.deliveries
    assert b'"completed"' in completed.body
    assert b'"terminated"' in terminated.body

    # Within the call's grace period: copies, acknowledged and dropped.
    for captured in (established, completed, terminated):
        assert await graph.replay(captured, 10) == [202] * 10
    await hass.async_block_till_done()
    assert _fired(hass, changes) == ["answered", "played", "ended"]
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1, duplicate=30)

    # After the grace period the call is forgotten: its news is old, still nothing fires.
    freezer.tick(timedelta(seconds=CALL_GRACE + 1))
    assert await graph.replay(completed, 10) == [202] * 10
    await hass.async_block_till_done()
    assert _fired(hass, changes) == ["answered", "played", "ended"]
    assert await _diagnostics(hass, graph_loaded) == _counts(duplicate=30, unknown_call=10)
    assert graph.calls[call_id].state == "terminated"


async def test_graph_delivering_twice_runs_an_automation_once(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """Microsoft delivers at least once: a second copy of a live call's news does nothing."""
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    first = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = first["calls"][0]["call_id"]
    await wait_for(lambda: len(graph.deliveries) == 2)
    await hass.async_block_till_done()
    assert _fired(hass, changes) == ["answered", "played"]
    for captured in list(graph.deliveries):
        assert await graph.replay(captured) == [202]

    # The call is still there, and what is new about it still acts, once.
    second = await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[MEDIA])
    await wait_for(lambda: len(graph.deliveries) == 5)
    assert await graph.replay(graph.deliveries[-1], 3) == [202] * 3
    assert await graph.hang_up(call_id) == 202
    await hass.async_block_till_done()
    assert _fired(hass, changes) == ["answered", "played", "played", "ended"]
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1, duplicate=5)
    assert second["calls"][0]["status"] == "answered"


# -------------------------------------------------------------- 2. only our own calls


async def test_notifications_for_calls_not_placed_here_fire_nothing(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    instant: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """Valid tokens, made-up calls; a captured token with a forged body: 202, no event."""
    graph = instant
    placed = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = placed["calls"][0]["call_id"]
    await _settle(hass, lambda: len(graph.deliveries) == 2)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    url = graph.callback_url(call_id)
    stranger = str(uuid.uuid4())

    # Graph's own signature, for a call this entry never placed (3 → 3 events before).
    for data, resource in (
        ({"state": "established"}, f"/communications/calls/{stranger}"),
        ({"status": "completed"}, f"/communications/calls/{stranger}/operations/{uuid.uuid4()}"),
        ({"state": "terminated"}, f"/communications/calls/{stranger}"),
    ):
        assert await graph.notify(call_id, data, resource_url=resource) == 202
    # One captured token (it signs its claims, not the body), any body for a made-up call.
    captured = graph.deliveries[0].token
    forged = _body(
        _call_item(stranger, "established"),
        _op_item(stranger, str(uuid.uuid4())),
        _call_item(str(uuid.uuid4()), "terminated"),
    )
    assert await graph.deliver(url, forged, token=captured) == 202
    await hass.async_block_till_done()
    assert _fired(hass, changes) == []
    # Held a moment (a call's news can beat the reply that names it), then dropped.
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1, held=6)
    freezer.tick(timedelta(seconds=HOLD + 1))
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1, unknown_call=6)

    # Our own call's news still acts.
    await play_prompt(hass, graph_loaded, call_id=call_id, prompt=[MEDIA])
    await _settle(hass, lambda: len(graph.deliveries) == 7)
    assert _fired(hass, changes) == ["played"]


async def test_a_notification_may_beat_the_reply_that_creates_its_call(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Graph answers create and playPrompt late: their notifications come first, and count."""
    monkeypatch.setattr(graph_backend, "ESTABLISH_TIMEOUT", 2.0)
    graph.reply_delay = 0.3  # the notifications come after 0.02 s
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    play = hass.async_create_task(play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA]))
    await wait_for(lambda: graph.deliveries)
    # "established" came and was acknowledged; the reply naming its call has not come yet.
    assert graph.deliveries[0].status == 202
    assert await _diagnostics(hass, graph_loaded) == _counts(held=1)
    assert not play.done()
    response = await play

    (call,) = response["calls"]
    assert (call["status"], call["hung_up"], call["result_code"]) == ("played", True, 200)
    await wait_for(lambda: len(graph.deliveries) == 3)
    await hass.async_block_till_done()
    assert [d.status for d in graph.deliveries] == [202] * 3
    assert _fired(hass, changes) == ["answered", "played", "ended"]
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1)
    endpoint = await get_diagnostics_for_config_entry(hass, hass_client, graph_loaded)
    assert endpoint["notifications"] == _counts(calls=1)


# ------------------------------------------------------------------- 3. quiet refusals


async def test_a_flood_of_forged_notifications_writes_a_few_lines(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    instant: FakeGraph,
    graph_loaded: MockConfigEntry,
    graph_http: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """2,000 forged POSTs: two lines (one per kind), then one summary a minute, with counts."""
    graph = instant
    url = f"{graph.notification_base}{WEBHOOK_PATH}"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = [
        graph.make_jwt(key=other_key),  # a forged signature
        graph.make_jwt(expires_in=-3600),  # expired
        "not-a-jwt",
        graph.make_jwt(),  # captured: valid, with a made-up call in the body
    ]
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    caplog.clear()

    started = freezegun_api.real_perf_counter()  # the clock itself is frozen
    statuses = [
        await graph.deliver(
            url, _body(_call_item(str(uuid.uuid4()), "established")), token=tokens[n % 4]
        )
        for n in range(2000)
    ]
    seconds = freezegun_api.real_perf_counter() - started
    print(f"\n2,000 forged notifications: {seconds:.2f} s, {len(_our_lines(caplog))} log lines")

    assert statuses.count(401) == 1500
    assert statuses.count(202) == 500
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == _our_lines(caplog)  # nothing else complained either
    assert [r.getMessage() for r in lines] == [
        f"Refused a notification for {TITLE}: its token was refused (InvalidSignatureError); "
        "repeats are counted in the diagnostics and summarised at most every 60 s",
        f"Ignored a notification for {TITLE}: it is about a call not placed (or played into) "
        f"here, or one that ended more than {CALL_GRACE:g} s ago; repeats are counted in the "
        "diagnostics and summarised at most every 60 s",
    ]
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in lines)
    assert await _diagnostics(hass, graph_loaded) == _counts(
        unauthorized=1500, unknown_call=468, held=32
    )

    # A minute later the next one brings the summary of everything since the first lines.
    freezer.tick(timedelta(seconds=SUMMARY_INTERVAL))
    assert await graph.deliver(url, b"{}", token="forged") == 401
    (summary,) = _our_lines(caplog)[2:]
    assert summary.getMessage() == (  # the 32 held still wait for a reply that names them
        f"Refused or ignored 1,967 more notifications for {TITLE} in the last 60 s "
        "(unauthorized 1,500, unknown_call 467)"
    )
    assert await _diagnostics(hass, graph_loaded) == _counts(unauthorized=1501, unknown_call=500)
    # Each line says it once: no "Refused a notification for …: Refused a notification: …".
    assert all(r.getMessage().count("a notification") <= 1 for r in _our_lines(caplog))
    await hass.async_block_till_done()
    assert _fired(hass, changes) == []


# -------------------------------------------------------------------- 4. bounded work


async def test_a_hundred_thousand_items_take_bounded_time_and_memory(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """A validly signed body with 100,000 prompt_completed items of a real call: 413, at once.

    Before: ~82 s of a blocked event loop in this harness (4.2 s in a real Home Assistant),
    100,000 events, ~190 MB kept. The body is refused by its length, before it is read.
    """
    placed = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = placed["calls"][0]["call_id"]
    url = graph.callback_url(call_id)
    await wait_for(lambda: len(graph.deliveries) == 2)
    await hass.async_block_till_done()
    item = {
        "resourceUrl": f"/communications/calls/{call_id}/operations/{uuid.uuid4()}",
        "resourceData": {"status": "completed"},
    }
    big = _body(*[item] * 100_000)
    assert 14_000_000 < len(big) < 16 * 1024 * 1024  # under Home Assistant's own limit
    fired = 0

    def count(event: Event) -> None:
        nonlocal fired
        fired += 1

    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, count)
    for chunked in (False, True):  # with a Content-Length, and streamed without one
        lag = await _loop_lag()
        started = time.perf_counter()
        assert await graph.deliver(url, big, chunked=chunked, in_thread=True) == 413
        await hass.async_block_till_done()
        seconds = time.perf_counter() - started
        max_lag = lag()
        # Again, for what it allocates (tracing slows everything down: timed apart).
        gc.collect()
        tracemalloc.start()
        assert await graph.deliver(url, big, chunked=chunked, in_thread=True) == 413
        await hass.async_block_till_done()
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"\n100,000 items ({'streamed' if chunked else 'Content-Length'}): 413 in "
            f"{seconds * 1000:.0f} ms, event loop blocked at most {max_lag * 1000:.0f} ms, "
            f"{kept / 1e6:.2f} MB kept, {peak / 1e6:.2f} MB at peak (traced)"
        )
        assert seconds < 5  # guards only; the figures printed are what counts
        assert max_lag < 1.0
        assert kept < 2_000_000  # nothing of the 14 MB stays
    unsubscribe()
    assert fired == 0
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1, too_large=4)


async def test_items_beyond_the_cap_are_not_read(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body just under the size limit, packed with items of a real call: 20 are read."""
    placed = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = placed["calls"][0]["call_id"]
    url = graph.callback_url(call_id)
    await wait_for(lambda: len(graph.deliveries) == 2)
    await hass.async_block_till_done()
    item_size = len(_body(_op_item(call_id, str(uuid.uuid4()))))
    count = MAX_NOTIFICATION_BYTES // item_size
    packed = _body(*[_op_item(call_id, str(uuid.uuid4())) for _ in range(count)])
    assert len(packed) <= MAX_NOTIFICATION_BYTES
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    lag = await _loop_lag()

    started = time.perf_counter()
    assert await graph.deliver(url, packed) == 202
    await hass.async_block_till_done()
    seconds = time.perf_counter() - started

    max_lag = lag()
    print(
        f"\n{count:,} items in {len(packed):,} bytes: {MAX_NOTIFICATION_ITEMS} read in "
        f"{seconds * 1000:.0f} ms, event loop blocked at most {max_lag * 1000:.0f} ms"
    )
    assert _fired(hass, changes) == ["played"] * MAX_NOTIFICATION_ITEMS
    assert seconds < 5  # a guard only
    assert await _diagnostics(hass, graph_loaded) == _counts(calls=1, too_many_items=1)
    (line,) = _our_lines(caplog)
    assert line.getMessage().startswith(
        f"Read part of a notification for {TITLE}: it had {count:,} items and only the "
        f"first {MAX_NOTIFICATION_ITEMS} were read;"
    )


async def _loop_lag() -> Callable[[], float]:
    """Start watching the event loop; the returned function stops and gives the worst stall."""
    worst = 0.0
    running = True

    async def beat() -> None:
        nonlocal worst
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - before - 0.005)

    task = asyncio.get_running_loop().create_task(beat())
    await asyncio.sleep(0)

    def stop() -> float:
        nonlocal running
        running = False
        task.cancel()
        return worst

    return stop


# ------------------------------------------------------------------ 5. over-size body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
async def test_an_over_size_body_is_413_without_a_traceback(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    chunked: bool,
) -> None:
    """20 MB with a valid token (Home Assistant's own limit is 16 MB): 413, one quiet line."""
    url = f"{graph.notification_base}{WEBHOOK_PATH}"
    huge = b'{"value":[' + b" " * (20 * 1024 * 1024) + b"]}"
    at_limit = b'{"value":[' + b" " * (MAX_NOTIFICATION_BYTES - 12) + b"]}"
    assert len(at_limit) == MAX_NOTIFICATION_BYTES

    assert await graph.deliver(url, huge, chunked=chunked) == 413
    assert await graph.deliver(url, at_limit + b" ", chunked=chunked) == 413
    assert await graph.deliver(url, at_limit, chunked=chunked) == 202  # read, and empty

    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Error processing webhook" not in caplog.text
    (line,) = _our_lines(caplog)
    assert line.getMessage().startswith(
        f"Refused a notification for {TITLE}: its body is over {MAX_NOTIFICATION_BYTES} bytes;"
    )
    assert await _diagnostics(hass, graph_loaded) == _counts(too_large=2)


async def test_bodies_that_are_not_json_objects(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A verified sender with a broken body: 400, counted, one line for all of them."""
    url = f"{graph.notification_base}{WEBHOOK_PATH}"
    for body in (b"{not json", b"[]", b'"value"', b"\xff\xfe\x00", b"[" * 100_000, b""):
        assert await graph.deliver(url, body) == 400
    assert await graph.deliver(url, b'{"value": "x"}') == 202  # an object, with nothing in it

    assert not [r for r in caplog.records if r.exc_info]
    assert [r.getMessage().split(";")[0] for r in _our_lines(caplog)] == [
        f"Refused a notification for {TITLE}: its body is not a JSON object"
    ]
    assert await _diagnostics(hass, graph_loaded) == _counts(not_json=6)


# --------------------------------------------------------------------- diagnostics


async def test_diagnostics_count_every_kind(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    instant: FakeGraph,
    graph_loaded: MockConfigEntry,
) -> None:
    """One of each refusal and drop shows in the diagnostics; nothing in them is secret."""
    graph = instant
    url = f"{graph.notification_base}{WEBHOOK_PATH}"
    assert await _diagnostics(hass, graph_loaded) == _counts()
    placed = await play_prompt(hass, graph_loaded, target=USER_ID, prompt=[MEDIA], hang_up=False)
    call_id = placed["calls"][0]["call_id"]
    await _settle(hass, lambda: len(graph.deliveries) == 2)

    assert await graph.deliver(url, b"{}", token="forged") == 401
    assert await graph.deliver(url, b" " * (MAX_NOTIFICATION_BYTES + 1)) == 413
    assert await graph.deliver(url, b"[1]") == 400
    items = [_call_item(call_id, "established")] * (MAX_NOTIFICATION_ITEMS + 1)
    assert await graph.deliver(url, _body(*items)) == 202  # 20 copies read, the 21st not
    assert await graph.deliver(url, _body(_call_item(str(uuid.uuid4()), "terminated"))) == 202
    freezer.tick(timedelta(seconds=HOLD + 1))

    assert await _diagnostics(hass, graph_loaded) == _counts(
        calls=1,
        unauthorized=1,
        too_large=1,
        not_json=1,
        too_many_items=1,
        duplicate=MAX_NOTIFICATION_ITEMS,
        unknown_call=1,
    )
    # Unloading writes nothing more than a summary of what was not summarised yet.
    assert await hass.config_entries.async_unload(graph_loaded.entry_id)


# ------------------------------------------------------------- the tracker on its own


def _established(call_id: str) -> dict[str, Any]:
    return {"value": [_call_item(call_id, "established")]}


def _ended(call_id: str) -> dict[str, Any]:
    return {"value": [_call_item(call_id, "terminated")]}


def _completed(call_id: str, operation_id: str) -> dict[str, Any]:
    return {"value": [_op_item(call_id, operation_id)]}


def _types(events: list[GraphEvent]) -> list[GraphEventType]:
    return [event.type for event in events]


def test_held_news_acts_when_its_call_is_registered_in_time(
    freezer: FrozenDateTimeFactory,
) -> None:
    tracker = GraphCallTracker(known_calls_only=True, hold_seconds=HOLD)
    heard: list[GraphEvent] = []
    stop = tracker.add_listener(heard.append)
    early, late = str(uuid.uuid4()), str(uuid.uuid4())

    assert tracker.handle(_established(early)) == []
    assert tracker.handle(_established(late)) == []
    assert tracker.diagnostics()["held"] == 2
    freezer.tick(timedelta(seconds=HOLD - 1))
    # The reply names the call: what was held acts now, in order, once.
    released = tracker.register(early.replace("-", "").upper())
    assert _types(released) == [GraphEventType.CALL_ESTABLISHED]
    assert heard == released
    assert tracker.register(early) == []
    assert tracker.handle(_established(early)) == []  # a copy

    # Too late: the reply did not come within the hold.
    freezer.tick(timedelta(seconds=2))
    assert tracker.register(late) == []
    assert not tracker.ended(late)
    assert tracker.diagnostics() == _counts(calls=2, duplicate=1, unknown_call=1)
    stop()
    tracker.handle(_ended(early))
    assert len(heard) == 1  # the listener was removed
    assert tracker.ended(early)


def test_holding_is_bounded() -> None:
    """Held news of unknown calls never exceeds a few dozen; the oldest go first."""
    tracker = GraphCallTracker(known_calls_only=True)
    calls = [str(uuid.uuid4()) for _ in range(100)]
    for call_id in calls:
        tracker.handle(_established(call_id))

    assert tracker.diagnostics() == _counts(held=32, unknown_call=68)
    assert tracker.register(calls[0]) == []  # dropped long ago
    assert _types(tracker.register(calls[-1])) == [GraphEventType.CALL_ESTABLISHED]


def test_a_call_counts_for_its_life_and_a_grace_period(freezer: FrozenDateTimeFactory) -> None:
    tracker = GraphCallTracker(known_calls_only=True)
    call_id, operation_id = str(uuid.uuid4()), str(uuid.uuid4())
    tracker.register(call_id)

    assert _types(tracker.handle(_established(call_id))) == [GraphEventType.CALL_ESTABLISHED]
    assert _types(tracker.handle(_ended(call_id))) == [GraphEventType.CALL_TERMINATED]
    assert tracker.handle(_established(call_id)) == []  # an ended call does not come back
    # A prompt the hang-up cancelled is reported after the end: within the grace, it acts.
    freezer.tick(timedelta(seconds=CALL_GRACE - 1))
    cancelled = {"value": [_op_item(call_id, operation_id, "failed")]}
    assert _types(tracker.handle(cancelled)) == [GraphEventType.PROMPT_FAILED]
    freezer.tick(timedelta(seconds=2))
    assert tracker.handle(_completed(call_id, str(uuid.uuid4()))) == []
    assert tracker.diagnostics() == _counts(duplicate=1, unknown_call=1)

    # A call whose end never came counts for at most MAX_CALL_LIFE.
    quiet = str(uuid.uuid4())
    tracker.register(quiet)
    freezer.tick(timedelta(seconds=MAX_CALL_LIFE - 1))
    assert len(tracker.handle(_completed(quiet, str(uuid.uuid4())))) == 1
    freezer.tick(timedelta(seconds=2))
    assert tracker.handle(_completed(quiet, str(uuid.uuid4()))) == []


def test_what_a_call_told_is_remembered_within_bounds() -> None:
    """Each operation acts once; a call remembers its last 64 operations, 512 calls in all."""
    tracker = GraphCallTracker(known_calls_only=True)
    call_id = str(uuid.uuid4())
    tracker.register(call_id)
    operations = [str(uuid.uuid4()) for _ in range(65)]
    for operation in operations:
        assert len(tracker.handle(_completed(call_id, operation))) == 1
    assert tracker.handle(_completed(call_id, operations[-1].upper())) == []
    assert tracker.handle({"value": [_op_item(call_id, operations[-1], "failed")]}) == []
    # The oldest was forgotten (bounded memory): it would act again, the rest would not.
    assert len(tracker.handle(_completed(call_id, operations[0]))) == 1

    for _ in range(512):
        tracker.register(str(uuid.uuid4()))
    assert tracker.diagnostics()["calls"] == 512
    assert tracker.handle(_completed(call_id, str(uuid.uuid4()))) == []  # pushed out


def test_a_bare_tracker_takes_every_call_but_still_each_news_once() -> None:
    """Without known_calls_only (applications that place calls elsewhere)."""
    tracker = GraphCallTracker()
    call_id, operation_id = str(uuid.uuid4()), str(uuid.uuid4())

    assert len(tracker.handle(_established(call_id))) == 1
    assert tracker.handle(_established(call_id)) == []
    assert len(tracker.handle(_completed(call_id, operation_id))) == 1
    assert tracker.handle(_completed(call_id, operation_id)) == []
    assert tracker.diagnostics() == _counts(calls=1, duplicate=2)


def test_a_body_is_checked_before_it_is_parsed() -> None:
    tracker = GraphCallTracker()
    with pytest.raises(GraphNotificationError) as exc_info:
        tracker.handle_body(b" " * (MAX_NOTIFICATION_BYTES + 1))
    assert exc_info.value.kind is NotificationDrop.TOO_LARGE
    assert str(exc_info.value) == "Refused a notification: too_large"
    with pytest.raises(GraphNotificationError) as exc_info:
        tracker.handle_body(b"[]")
    assert exc_info.value.kind is NotificationDrop.NOT_JSON
    call_id = str(uuid.uuid4())
    assert len(tracker.handle_body(_body(_call_item(call_id, "established")))) == 1
    assert tracker.diagnostics() == _counts(calls=1, too_large=1, not_json=1)


def test_refusals_are_summarised_at_most_once_a_minute(
    freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = GraphCallTracker(known_calls_only=True, name="Reception")
    assert tracker.name == "Reception"
    refused = VoicePromptAuthenticationError("Refused a notification: no bearer token")

    for _ in range(1000):
        tracker.refuse(NotificationDrop.UNAUTHORIZED, refused)
    freezer.tick(timedelta(seconds=SUMMARY_INTERVAL - 1))
    tracker.refuse(NotificationDrop.TOO_LARGE)
    tracker.refuse(NotificationDrop.TOO_LARGE)
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "Refused a notification for Reception: its token was refused (no bearer token)",
        f"Refused a notification for Reception: its body is over {MAX_NOTIFICATION_BYTES} bytes",
    ]
    freezer.tick(timedelta(seconds=1))
    tracker.refuse(NotificationDrop.UNAUTHORIZED, refused)
    for _ in range(5):  # in the next minute: counted, not written
        tracker.refuse(NotificationDrop.UNAUTHORIZED, refused)
    assert [r.getMessage() for r in caplog.records[2:]] == [
        "Refused or ignored 1,001 more notifications for Reception in the last 60 s "
        "(unauthorized 1,000, too_large 1)"
    ]
    freezer.tick(timedelta(seconds=10))
    tracker.close()  # unloading writes what was left
    assert caplog.records[-1].getMessage() == (
        "Refused or ignored 5 more notifications for Reception in the last 10 s (unauthorized 5)"
    )
    tracker.close()
    assert len(caplog.records) == 4
    freezer.tick(timedelta(seconds=SUMMARY_INTERVAL + 1))
    tracker.refuse(NotificationDrop.TOO_LARGE)
    assert caplog.records[-1].getMessage() == (
        "Refused or ignored 1 more notification for Reception in the last 61 s (too_large 1)"
    )
    assert tracker.diagnostics()["refused"] == {
        "unauthorized": 1006,
        "too_large": 3,
        "not_json": 0,
    }


async def test_a_sender_that_stops_mid_body_leaves_no_traceback(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_loaded: MockConfigEntry,
    graph_http: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Promise 100 KB, send 10 bytes, hang up: nothing acts, nothing is logged as an error."""
    reader, writer = await asyncio.open_connection(graph_http.host, graph_http.port)
    writer.write(
        (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {graph_http.host}\r\n"
            f"Authorization: Bearer {graph.make_jwt()}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n"
        ).encode()
        + b'{"value":['
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.1)
    await hass.async_block_till_done()

    # (asyncio's debug mode notes the reset at DEBUG; nothing above that, no webhook error)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Error processing webhook" not in caplog.text
    assert await _diagnostics(hass, graph_loaded) == _counts()
