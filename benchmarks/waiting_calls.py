"""What ``wait: true`` costs: N concurrent waiting calls, their memory and CPU while idle.

Run ``.venv/bin/python benchmarks/waiting_calls.py [--waiters N] [--idle-seconds S]`` from
the repository root; benchmarks/README.md says what is measured. It prints a Markdown table
and exits 1 when a waiter did not get its call's outcome. No timed targets: the figures
stand side by side (0 vs N waiting, a plain task vs a waiting call) in one run, on a plain
asyncio loop and on Home Assistant's (pytest-homeassistant-custom-component's
``async_test_home_assistant``, no pytest), each in a fresh process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
import gc
import json
import os
from pathlib import Path
import platform
import selectors
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ha_loop  # noqa: E402
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]  # noqa: E402
    async_test_home_assistant,
)

from custom_components.voice_prompt.backends.base import Backend  # noqa: E402
from custom_components.voice_prompt.backends.calls import (  # noqa: E402
    CallEvent,
    CallResult,
    CallStatus,
    PlayResult,
)
from custom_components.voice_prompt.backends.outcomes import CallOutcomes  # noqa: E402
from custom_components.voice_prompt.escalation import (  # noqa: E402
    MAX_WAIT_TIMEOUT,
    async_wait_calls,
)
from homeassistant.core import HomeAssistant  # noqa: E402

TIMEOUT = float(MAX_WAIT_TIMEOUT)  # the longest wait the action allows: 900 s
OUTCOME = CallStatus.PLAYED
LOOPS = {"plain": "plain asyncio", "hass": "Home Assistant loop"}
# Loop turns a batch of new tasks needs to reach its waits (a task, then gather's tasks).
START_TURNS = 10
X = "\N{MULTIPLICATION SIGN}"
KB = 1024

type Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]
type Starter = Callable[[Spawn, str, int], Coroutine[Any, Any, Batch]]


def say(text: str) -> None:
    """Progress on stderr, so stdout carries only the results."""
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Idle:
    """One idle window: CPU used, loop wake-ups, timers."""

    cpu_s: float
    wall_s: float
    wakeups: int
    timers: int  # on the loop: the waits' timeouts, the loop owner's own, the window's sleep
    due: int  # of those, due within the window, the window's own sleep not counted
    next_due_s: float | None  # the earliest timer, from the window's start


@dataclass(frozen=True)
class Resolve:
    feed_ms: float  # feeding every final event (synchronous: futures are only marked done)
    returned_ms: float  # from the first feed to every waiter having returned
    wrong: int  # waiters that did not return their call's outcome


@dataclass(frozen=True)
class Figures:
    """Everything one loop measured."""

    loop: str
    idle_empty: Idle
    idle_waiting: Idle
    rss_bytes: int  # VmRSS growth with N waiting calls (the action's wait)
    traced_task_bytes: int  # a task awaiting a bare future: what any pending caller costs
    traced_outcome_bytes: int  # a task awaiting CallOutcomes.async_wait
    traced_action_bytes: int  # a task awaiting async_wait_calls, as the action does
    resolve: Resolve
    wrong: int  # of every batch, resolve's included

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Figures:
        idle_empty, idle_waiting = Idle(**data["idle_empty"]), Idle(**data["idle_waiting"])
        resolve = Resolve(**data["resolve"])
        rest = {k: v for k, v in data.items() if k not in ("idle_empty", "idle_waiting", "resolve")}
        return cls(idle_empty=idle_empty, idle_waiting=idle_waiting, resolve=resolve, **rest)


class _WaitingBackend:
    """What async_wait_calls uses of a backend: its outcomes (no phone system here)."""

    def __init__(self, outcomes: CallOutcomes) -> None:
        self.outcomes = outcomes


class WakeUps:
    """Counts the loop's selector calls: each one is the loop waking up after sleeping."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # The selector is private, but every wake-up passes through its select(), whatever
        # woke the loop (a timer, I/O, a call from another thread).
        selector: selectors.BaseSelector = loop._selector  # type: ignore[attr-defined]  # noqa: SLF001
        self.count = 0
        select = selector.select

        def counting(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            self.count += 1
            return select(timeout)

        selector.select = counting  # type: ignore[method-assign]


def rss_bytes() -> int:
    """VmRSS of this process from /proc/self/status."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KB
    msg = "no VmRSS in /proc/self/status"
    raise RuntimeError(msg)


def call_id(batch: str, index: int) -> str:
    return f"{batch}-{index:05d}"


def final_event(batch: str, index: int) -> CallEvent:
    """What a backend reports when the prompt has played and the call is over."""
    return CallEvent(
        status=OUTCOME, target=str(1000 + index), call_id=call_id(batch, index), final=True
    )


@dataclass(frozen=True)
class Batch:
    """N waiting tasks and how their calls' final events reach them."""

    tasks: list[asyncio.Task[Any]]
    feed: Callable[[CallEvent], None]
    pending: Callable[[], int]  # waits still held (0 once every call was fed)


async def until_waiting(pending: Callable[[], int], count: int) -> None:
    """Give new tasks the loop turns they need to reach their waits."""
    for _ in range(START_TURNS):
        if pending() >= count:
            return
        await asyncio.sleep(0)
    msg = f"{pending()} of {count} calls waited for after {START_TURNS} loop turns"
    raise RuntimeError(msg)


async def bare_waiters(spawn: Spawn, batch: str, count: int) -> Batch:
    """``count`` tasks each awaiting a future of its own: what any pending task costs."""
    loop = asyncio.get_running_loop()
    futures: dict[str, asyncio.Future[CallEvent]] = {
        call_id(batch, i): loop.create_future() for i in range(count)
    }

    async def wait(future: asyncio.Future[CallEvent]) -> CallEvent:
        return await future

    def feed(event: CallEvent) -> None:
        futures[str(event.call_id)].set_result(event)

    def pending() -> int:
        return sum(not future.done() for future in futures.values())

    tasks = [spawn(wait(future)) for future in futures.values()]
    # A bare future shows no waiter: the loop turns until_waiting would give, unchecked.
    for _ in range(START_TURNS):
        await asyncio.sleep(0)
    return Batch(tasks, feed, pending)


async def outcome_waiters(spawn: Spawn, batch: str, count: int) -> Batch:
    """``count`` tasks each awaiting CallOutcomes.async_wait for its own call."""
    outcomes = CallOutcomes()
    tasks = [spawn(outcomes.async_wait(call_id(batch, i), TIMEOUT)) for i in range(count)]
    await until_waiting(lambda: outcomes.waiting, count)
    return Batch(tasks, outcomes.feed, lambda: outcomes.waiting)


async def action_wait(backend: Backend, batch: str, index: int) -> CallResult | None:
    """The action's ``wait: true`` after it placed one call; the call once it ended."""
    call = CallResult(
        target=str(1000 + index), call_id=call_id(batch, index), status=CallStatus.PLACED
    )
    timed_out = await async_wait_calls(backend, PlayResult(calls=[call]), TIMEOUT)
    return None if timed_out else call


async def action_waiters(spawn: Spawn, batch: str, count: int) -> Batch:
    """``count`` tasks each awaiting async_wait_calls with one placed call."""
    outcomes = CallOutcomes()
    backend = cast(Backend, _WaitingBackend(outcomes))  # one per entry, shared by its actions
    tasks = [spawn(action_wait(backend, batch, i)) for i in range(count)]
    await until_waiting(lambda: outcomes.waiting, count)
    return Batch(tasks, outcomes.feed, lambda: outcomes.waiting)


def got_outcome(value: object) -> bool:
    """Whether a waiter returned its call's outcome (the event, or the updated call)."""
    if isinstance(value, CallEvent | CallResult):
        return value.status is OUTCOME
    return False


async def resolve(batch: str, waiting: Batch) -> Resolve:
    """Feed every call's final event; time until every waiter has returned."""
    events = [final_event(batch, i) for i in range(len(waiting.tasks))]  # before the clock
    start = time.perf_counter_ns()
    for event in events:
        waiting.feed(event)
    fed = time.perf_counter_ns()
    results = await asyncio.gather(*waiting.tasks, return_exceptions=True)
    returned = time.perf_counter_ns()
    wrong = sum(not got_outcome(value) for value in results) + waiting.pending()
    return Resolve((fed - start) / 1e6, (returned - start) / 1e6, wrong)


async def idle(seconds: float, wakeups: WakeUps) -> Idle:
    """CPU time and wake-ups of this process while the loop has nothing to do."""
    loop = asyncio.get_running_loop()
    gc.collect()  # a collection that falls due in the window would be counted as idle CPU
    handles = list(loop._scheduled)  # type: ignore[attr-defined]  # noqa: SLF001
    when = [handle.when() for handle in handles if not handle.cancelled()]
    now = loop.time()
    wakeups.count = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    due = sum(at <= now + seconds for at in when)
    next_due = min((at - now for at in when), default=None)
    return Idle(cpu, wall, wakeups.count, len(when) + 1, due, next_due)  # +1: the window's


async def settle() -> None:
    """Let the loop drop what it still holds, then collect.

    The handle that woke this task (and through it the last batch's gather and tasks)
    stays referenced until the task yields.
    """
    for _ in range(START_TURNS):
        await asyncio.sleep(0)
    gc.collect()


async def traced_bytes(spawn: Spawn, start: Starter, batch: str, count: int) -> tuple[int, int]:
    """Bytes tracemalloc sees held by ``count`` waiters; and how many missed their outcome."""
    await settle()
    before = tracemalloc.get_traced_memory()[0]
    waiting = await start(spawn, batch, count)
    await settle()
    after = tracemalloc.get_traced_memory()[0]
    return after - before, (await resolve(batch, waiting)).wrong


async def measure(loop_name: str, spawn: Spawn, count: int, seconds: float) -> Figures:
    """The whole run on the running loop: idle 0 vs N, RSS, resolve, then tracemalloc."""
    wakeups = WakeUps(asyncio.get_running_loop())
    say(f"{loop_name}: idle {seconds:g} s, nobody waiting")
    idle_empty = await idle(seconds, wakeups)

    # RSS first and without tracemalloc, whose own bookkeeping would be in the RSS.
    await settle()
    rss_before = rss_bytes()
    waiting = await action_waiters(spawn, "rss", count)
    await settle()
    rss = rss_bytes() - rss_before
    say(f"{loop_name}: idle {seconds:g} s, {count:,} waiting")
    idle_waiting = await idle(seconds, wakeups)
    resolved = await resolve("rss", waiting)

    say(f"{loop_name}: tracemalloc")
    shapes: tuple[tuple[str, Starter], ...] = (
        ("task", bare_waiters),
        ("outcome", outcome_waiters),
        ("action", action_waiters),
    )
    tracemalloc.start()
    try:
        # A first batch also pays for growing the loop's own containers (its timer heap,
        # the set of tasks) to N entries: a warm-up leaves the figures to the waiters.
        warm_up = [
            await traced_bytes(spawn, start, f"warm-{name}", count) for name, start in shapes
        ]
        traced = [
            await traced_bytes(spawn, start, f"traced-{name}", count) for name, start in shapes
        ]
    finally:
        tracemalloc.stop()
    (task_b, task_w), (outcome_b, outcome_w), (action_b, action_w) = traced
    wrong = resolved.wrong + task_w + outcome_w + action_w + sum(w for _, w in warm_up)
    return Figures(
        loop_name, idle_empty, idle_waiting, rss, task_b, outcome_b, action_b, resolved, wrong
    )


async def on_plain_loop(count: int, seconds: float) -> Figures:
    return await measure(LOOPS["plain"], asyncio.ensure_future, count, seconds)


async def on_hass_loop(count: int, seconds: float) -> Figures:
    """The same on Home Assistant's loop, the waiters created as its tasks."""
    with tempfile.TemporaryDirectory(prefix="voice-prompt-waiting-") as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as started:
            hass = cast(HomeAssistant, started)
            try:

                def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
                    return hass.async_create_task(coro)

                return await measure(LOOPS["hass"], spawn, count, seconds)
            finally:
                await hass.async_stop(force=True)


def run_loop(name: str, count: int, seconds: float) -> Figures:
    if name == "plain":
        return asyncio.run(on_plain_loop(count, seconds))
    loop_factory = ha_loop.new_event_loop
    return asyncio.run(on_hass_loop(count, seconds), loop_factory=loop_factory)


def run_in_child(name: str, count: int, seconds: float) -> Figures:
    """One loop in a fresh interpreter: RSS growth must not reuse another loop's freed memory."""
    argv = [sys.executable, __file__, "--loop", name, "--waiters", str(count)]
    argv += ["--idle-seconds", str(seconds)]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)
    return Figures.from_json(json.loads(done.stdout))


# ------------------------------------------------------------------------- output


def per_waiter(total: int, count: int) -> str:
    return f"{total / count:,.0f} B ({total / KB / KB:,.2f} MB)"


def beyond(total: int, task: int, count: int) -> str:
    return f"{per_waiter(total, count)}; {(total - task) / count:+,.0f} B beyond a pending task"


def cpu(window: Idle, baseline: Idle | None = None) -> str:
    text = f"{window.cpu_s * 1000:,.2f} ms in {window.wall_s:.1f} s"
    if baseline is not None and baseline.cpu_s > 0:
        text += f" ({window.cpu_s / baseline.cpu_s:.2f} {X} none waiting)"
    return text


def timers(window: Idle) -> str:
    nxt = "" if window.next_due_s is None else f"; the first due in {window.next_due_s:,.0f} s"
    return f"{window.timers:,}, {window.due} due in the window{nxt}"


def rows(figures: list[Figures], count: int) -> list[list[str]]:
    """The table's rows: what, then one cell per loop."""
    n = f"{count:,}"
    lines: list[tuple[str, Callable[[Figures], str]]] = [
        (
            "tracemalloc per pending task awaiting a bare future (what any waiting caller costs)",
            lambda f: per_waiter(f.traced_task_bytes, count),
        ),
        (
            "tracemalloc per task awaiting CallOutcomes.async_wait",
            lambda f: beyond(f.traced_outcome_bytes, f.traced_task_bytes, count),
        ),
        (
            "tracemalloc per task awaiting async_wait_calls (the action's wait, one call)",
            lambda f: beyond(f.traced_action_bytes, f.traced_task_bytes, count),
        ),
        (f"VmRSS growth per waiting call, {n} waiting", lambda f: per_waiter(f.rss_bytes, count)),
        ("process CPU while idle, 0 waiting", lambda f: cpu(f.idle_empty)),
        (f"process CPU while idle, {n} waiting", lambda f: cpu(f.idle_waiting, f.idle_empty)),
        (
            "loop wake-ups (selector calls) while idle, 0 waiting",
            lambda f: str(f.idle_empty.wakeups),
        ),
        (
            f"loop wake-ups (selector calls) while idle, {n} waiting",
            lambda f: str(f.idle_waiting.wakeups),
        ),
        ("timers on the loop, 0 waiting", lambda f: timers(f.idle_empty)),
        (f"timers on the loop, {n} waiting", lambda f: timers(f.idle_waiting)),
        (f"feed {n} final events (synchronous)", lambda f: f"{f.resolve.feed_ms:,.1f} ms"),
        (
            f"first feed → all {n} waiters returned",
            lambda f: f"{f.resolve.returned_ms:,.1f} ms "
            f"({f.resolve.returned_ms * 1000 / count:,.1f} µs per call)",
        ),
        (f"waiters without their outcome (of 7 {X} {n})", lambda f: str(f.wrong)),
    ]
    return [[what, *(value(f) for f in figures)] for what, value in lines]


def table(figures: list[Figures], count: int) -> str:
    head = ["what", *(f.loop for f in figures)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(figures, count)]
    return "\n".join(lines)


def conclusion(figures: list[Figures], count: int) -> str:
    wrong = sum(f.wrong for f in figures)
    extra_wakeups = max(f.idle_waiting.wakeups - f.idle_empty.wakeups for f in figures)
    polling = extra_wakeups > 0 or any(f.idle_waiting.due > f.idle_empty.due for f in figures)
    extra_cpu = max(f.idle_waiting.cpu_s - f.idle_empty.cpu_s for f in figures) * 1000
    heaviest = max(figures, key=lambda f: f.traced_action_bytes)
    each, beyond = (
        heaviest.traced_action_bytes,
        heaviest.traced_action_bytes - heaviest.traced_task_bytes,
    )
    verdict = "POLLING" if polling else "no polling"
    missing = f"; {wrong} waiter(s) WITHOUT their outcome" if wrong else ""
    return (
        f"{count:,} waiting calls: {verdict} ({extra_wakeups:+d} wake-ups while idle, no timer "
        f"due before the {TIMEOUT:.0f} s timeouts), {extra_cpu:+.2f} ms CPU over the idle "
        f"window vs none waiting, {each / count / KB:.1f} KB each ({each / KB / KB:.1f} MB in "
        f"all; {beyond / count / KB:.1f} KB beyond the caller's own task){missing}."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="What wait: true costs: N concurrent waiting calls, memory and idle CPU."
    )
    parser.add_argument("--waiters", type=int, default=1000, help="waiting calls (default 1000)")
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="each idle window (default 5 s)"
    )
    parser.add_argument(
        "--plain-only", action="store_true", help="skip Home Assistant's loop (plain asyncio only)"
    )
    # One loop in this process, figures as JSON: how the parent runs each loop.
    parser.add_argument("--loop", choices=sorted(LOOPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.waiters < 1 or args.idle_seconds <= 0:
        parser.error("--waiters must be ≥ 1 and --idle-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    count, seconds = args.waiters, args.idle_seconds
    if args.loop:
        print(json.dumps(asdict(run_loop(args.loop, count, seconds))))
        return 0
    started = time.perf_counter()
    names = ["plain"] if args.plain_only else ["plain", "hass"]
    figures = [run_in_child(name, count, seconds) for name in names]
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    print(
        f"`benchmarks/waiting_calls.py --waiters {count} --idle-seconds {seconds:g}` "
        f"({time.perf_counter() - started:.0f} s). {machine}, Python {platform.python_version()}. "
        "Waiters are tasks on the loop, fed by hand: no phone system, no action call."
    )
    print()
    print(table(figures, count))
    print()
    print(conclusion(figures, count))
    return 1 if any(f.wrong for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
