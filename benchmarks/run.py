"""Benchmarks of Voice Prompt against the fake Yeastar PBX on 127.0.0.1.

Run ``scripts/benchmark`` (or ``.venv/bin/python benchmarks/run.py``); ``--help`` lists the
options and benchmarks/README.md says what is measured. It prints a Markdown table; a full
run also writes benchmarks/RESULTS.md and benchmarks/per_call.png. Home Assistant runs
in-process (pytest-homeassistant-custom-component's ``async_test_home_assistant``, no
pytest) with the fake PBXs (tests/fakes/yeastar.py, HTTPS) in the same event loop.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
import contextlib
from dataclasses import dataclass, field, replace
import datetime as dt
import gc
import importlib.metadata
import importlib.util
import itertools
import math
import os
from pathlib import Path
import platform
import random
import shutil
import ssl
from statistics import median, quantiles
import subprocess
import sys
import tempfile
import time
from typing import Any
from unittest.mock import patch

import aiohttp
from aiohttp.test_utils import unused_port
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ha_loop  # noqa: E402
from pytest_homeassistant_custom_component.common import (  # noqa: E402
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.voice_prompt.api.yeastar import MAX_IN_FLIGHT  # noqa: E402
from custom_components.voice_prompt.backends.yeastar import YeastarBackend  # noqa: E402
from custom_components.voice_prompt.backends.yeastar_p import YeastarPBackend  # noqa: E402
from custom_components.voice_prompt.const import DOMAIN  # noqa: E402
from homeassistant import loader  # noqa: E402
from homeassistant.core import HomeAssistant  # noqa: E402
from homeassistant.helpers import frame  # noqa: E402
from homeassistant.setup import async_setup_component  # noqa: E402
from tests.fakes.tls import make_self_signed_cert, server_ssl_context  # noqa: E402
from tests.fakes.yeastar import FakeYeastarPBX, RecordedRequest  # noqa: E402
from tests.fakes.yeastar_p import FakeYeastarP  # noqa: E402
from tests.tts_fixtures import counting_tts  # noqa: E402

PASSWORD = "VoicePrompt-Demo1"
EXTENSION, PROMPT = "1000", "hello111"
# The exact body play_prompt sends (compact JSON, as Home Assistant's session writes it).
PAYLOAD = f'{{"extid":"{EXTENSION}","prompt":"{PROMPT}","autoanswer":"no"}}'
BROADCAST = [str(number) for number in range(1010, 1110)]
LATENCY = 0.02  # seconds the fake sleeps in every request of the broadcast section
TOKEN_ERRNOS = frozenset({"20004", "20005", "20006"})  # the fake's token refusals
EXPIRE_EVERY, CALLERS = 100, 50
# Event-loop turns given to the previous call's leftovers (connection release, the fake's
# own bookkeeping) so that they are not timed as part of the next contender's call.
SETTLE_ITERATIONS = 5
CONTENDERS = ("play_prompt", "rest_command", "raw aiohttp")
X = "\N{MULTIPLICATION SIGN}"
MB = 1024 * 1024
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
CHART_PNG = ROOT / "benchmarks" / "per_call.png"

# Modules a running Home Assistant has imported before it loads any custom integration.
HA_PRELOADED = (
    "homeassistant.core, homeassistant.config_entries, homeassistant.data_entry_flow, "
    "homeassistant.helpers.config_validation, homeassistant.helpers.device_registry, "
    "homeassistant.helpers.entity_registry, homeassistant.helpers.event, "
    "homeassistant.helpers.aiohttp_client, homeassistant.helpers.selector, "
    "homeassistant.components.http"
)
# What Home Assistant imports when it loads the integration (package + preloaded platforms).
PACKAGE = "custom_components.voice_prompt"
OWN_MODULES = f"{PACKAGE}, {PACKAGE}.config_flow, {PACKAGE}.diagnostics"


@dataclass(frozen=True)
class Settings:
    """How much to run."""

    quick: bool
    calls: int  # per contender, timed
    warmup: int  # per contender, untimed
    broadcast_rounds: int
    login_calls: int
    setups: int
    imports: int
    first_imports: int
    memory_calls: int
    speech_rounds: int


FULL = Settings(False, 500, 50, 3, 1000, 20, 20, 5, 10_000, 30)
QUICK = Settings(True, 100, 20, 1, 1000, 5, 3, 2, 2_000, 10)


@dataclass(frozen=True)
class Row:
    """One line of the results table; ``ok`` is None for a figure without a target."""

    what: str
    value: str
    ratio: str = ""
    target: str = ""
    ok: bool | None = None

    def cells(self) -> list[str]:
        verdict = {True: "pass", False: "FAIL", None: ""}[self.ok]
        return [self.what, self.value, self.ratio, self.target, verdict]


@dataclass
class Rig:
    """Home Assistant, the main fake PBX with its loaded entry, and what the run found."""

    hass: HomeAssistant
    ssl: ssl.SSLContext
    session: aiohttp.ClientSession  # the raw aiohttp contender's: no Home Assistant
    pbx: FakeYeastarPBX
    entry: MockConfigEntry
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, list[int]] = field(default_factory=dict)  # per-call ns, for the chart


def within(what: str, value: str, ratio: float, of: str, limit: float) -> Row:
    """A figure whose target is at most ``limit`` times another one's."""
    digits = 3 if limit < 1 else 2
    return Row(what, value, f"{ratio:.{digits}f} {X} {of}", f"≤ {limit:.2f} {X}", ratio <= limit)


def say(text: str) -> None:
    """Progress on stderr, so stdout carries only the results."""
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ measuring


def p95(values: Sequence[float]) -> float:
    """Inclusive linear-interpolation 95th percentile."""
    return quantiles(values, n=20, method="inclusive")[-1]


def paired_ratio(numerator: list[int], denominator: list[int]) -> float:
    """Median of per-round ratios: the contenders ran back to back in each round."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def fmt_ms(ns: float) -> str:
    return f"{ns / 1e6:,.1f} ms" if ns < 100e6 else f"{ns / 1e6:,.0f} ms"


def spread(values: list[int]) -> str:
    """Median and p95 in µs."""
    return f"{median(values) / 1000:,.0f} µs, {p95(values) / 1000:,.0f} µs"


async def timed(awaitable: Awaitable[object]) -> int:
    """Nanoseconds the awaitable took, after a garbage collection."""
    gc.collect()
    start = time.perf_counter_ns()
    await awaitable
    return time.perf_counter_ns() - start


# ------------------------------------------------------------------------- the rig


@contextlib.asynccontextmanager
async def fake_pbx(ssl_context: ssl.SSLContext, serial: str) -> AsyncIterator[FakeYeastarPBX]:
    pbx = FakeYeastarPBX(password=PASSWORD, serial=serial)
    await pbx.start(host="127.0.0.1", ssl_context=ssl_context)
    try:
        yield pbx
    finally:
        await pbx.close()


def add_entry(hass: HomeAssistant, pbx: FakeYeastarPBX) -> MockConfigEntry:
    data = {"backend": YeastarBackend.kind, "host": pbx.host, "port": pbx.port}
    data |= {"username": pbx.username, "password": PASSWORD, "verify_ssl": False}
    entry = MockConfigEntry(domain=DOMAIN, title=pbx.serial, unique_id=pbx.serial, data=data)
    entry.add_to_hass(hass)
    return entry


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_setup(entry.entry_id), f"{entry.state} {entry.reason}"


async def remove_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()


@contextlib.asynccontextmanager
async def loaded_entry(hass: HomeAssistant, pbx: FakeYeastarPBX) -> AsyncIterator[MockConfigEntry]:
    entry = add_entry(hass, pbx)
    await setup_entry(hass, entry)
    try:
        yield entry
    finally:
        await remove_entry(hass, entry)


async def play(hass: HomeAssistant, entry: MockConfigEntry, *targets: str) -> None:
    """voice_prompt.play_prompt as an automation calls it; every target must be placed."""
    targets = targets or (EXTENSION,)
    data = {"config_entry_id": entry.entry_id, "target": list(targets), "prompt": PROMPT}
    response = await hass.services.async_call(
        DOMAIN, "play_prompt", data, blocking=True, return_response=True
    )
    if response is None or len(response["calls"]) != len(targets) or response["failed"]:
        msg = f"play_prompt failed: {response}"
        raise RuntimeError(msg)


def expect_success(reply: Any, who: str) -> None:
    if not isinstance(reply, dict) or reply.get("status") != "Success":
        msg = f"{who} failed: {reply}"
        raise RuntimeError(msg)


# ------------------------------------------------------------------------ sections


async def pasted_token(rig: Rig) -> str:
    """What a user writes without the integration: log in once, paste the token."""
    login = {"username": rig.pbx.username, "password": FakeYeastarPBX.md5(PASSWORD)}
    async with rig.session.post(
        f"{rig.pbx.base_url}login", json=login | {"port": "8260"}, ssl=False
    ) as reply:
        token = await reply.json(content_type=None)
    expect_success(token, "login")
    return str(token["token"])


async def contenders(rig: Rig) -> dict[str, Callable[[], Awaitable[None]]]:
    """Three ways to make the PBX ring extension 1000 and play hello111."""
    hass, session, base = rig.hass, rig.session, rig.pbx.base_url
    url = f"{base}extension/playprompt?token={await pasted_token(rig)}"
    headers = {"Content-Type": "application/json"}
    command = {
        "url": url,
        "method": "post",
        "payload": PAYLOAD,
        "content_type": "application/json",
        "verify_ssl": False,
    }
    assert await async_setup_component(hass, "rest_command", {"rest_command": {"pbx": command}})

    async def rest() -> None:
        response = await hass.services.async_call(
            "rest_command", "pbx", {}, blocking=True, return_response=True
        )
        expect_success((response or {}).get("content"), "rest_command")

    async def raw() -> None:
        async with session.post(url, data=PAYLOAD, headers=headers, ssl=False) as response:
            expect_success(await response.json(), "raw POST")

    return {"play_prompt": lambda: play(hass, rig.entry), "rest_command": rest, "raw aiohttp": raw}


async def bench_per_call(rig: Rig, settings: Settings) -> None:
    """Sequential calls of each contender, interleaved in a shuffled order every round."""
    lineup = await contenders(rig)
    rounds = settings.warmup + settings.calls
    samples: dict[str, list[int]] = {name: [] for name in lineup}
    order = list(lineup)
    shuffle = random.Random(5).shuffle  # seeded: the same orders every run
    gc.collect()
    for index in range(rounds):
        shuffle(order)
        for name in order:
            for _ in range(SETTLE_ITERATIONS):
                await asyncio.sleep(0)  # the previous call's leftovers run before the clock
            start = time.perf_counter_ns()
            await lineup[name]()
            if index >= settings.warmup:
                samples[name].append(time.perf_counter_ns() - start)
        if index % 100 == 0:
            rig.pbx.requests.clear()
    rig.samples = samples
    play_ns, rest_ns, raw_ns = (samples[name] for name in CONTENDERS)
    vs_rest, vs_raw = paired_ratio(play_ns, rest_ns), paired_ratio(play_ns, raw_ns)
    rest_vs_raw = f"{paired_ratio(rest_ns, raw_ns):.2f} {X} raw aiohttp"
    rig.rows += [
        # In-process the whole call is Python on one loop: the strictest view of our own
        # code. What a user waits for is the call over the websocket (its own target below).
        Row(
            "per call in-process: play_prompt (median, p95)",
            spread(play_ns),
            f"{vs_rest:.2f} {X} rest_command",
        ),
        within("per call in-process: play_prompt vs raw aiohttp", "", vs_raw, "raw aiohttp", 1.5),
        Row("per call in-process: rest_command (median, p95)", spread(rest_ns), rest_vs_raw),
        Row("per call in-process: raw aiohttp POST (median, p95)", spread(raw_ns), "1.00"),
    ]


async def one_by_one(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """One play_prompt call per extension of BROADCAST, one after another."""
    for extension in BROADCAST:
        await play(hass, entry, extension)


async def bench_broadcast(rig: Rig, settings: Settings) -> None:
    """One action call with 100 extensions vs 100 single-extension calls, 20 ms each."""
    hass, entry = rig.hass, rig.entry
    rig.pbx.latency = LATENCY
    try:
        await play(hass, entry, *BROADCAST)  # warm-up: opens every connection the fan-out uses
        wide, narrow = [], []
        for _ in range(settings.broadcast_rounds):
            wide.append(await timed(play(hass, entry, *BROADCAST)))
            narrow.append(await timed(one_by_one(hass, entry)))
    finally:
        rig.pbx.latency = 0.0
        rig.pbx.requests.clear()
    broadcast, sequential = median(wide), median(narrow)
    count = len(BROADCAST)
    round_trip, ideal = sequential / count, math.ceil(count / MAX_IN_FLIGHT)
    trips = broadcast / round_trip
    one_call = f"broadcast to {count} extensions, one call (20 ms PBX latency)"
    sequential_what = f"{count} sequential single-extension calls (20 ms PBX latency)"
    rig.rows += [
        within(one_call, fmt_ms(broadcast), broadcast / sequential, "sequential", 0.1),
        Row(sequential_what, f"{fmt_ms(sequential)} ({fmt_ms(round_trip)} per round trip)"),
        Row(
            f"broadcast in round trips, vs ⌈{count}/{MAX_IN_FLIGHT}⌉ = {ideal}",
            f"{trips:.1f} round trips",
            f"{trips / ideal:.2f} {X} ideal",
            f"near {ideal}, not {count} (≤ {2 * ideal})",
            trips <= 2 * ideal,
        ),
    ]


def expiries_followed(log: list[RecordedRequest]) -> tuple[int, int]:
    """Replay the fake's count: (token expiries, expiries that more traffic followed).

    The fake counts every request that got past its token check and expires all tokens
    after every ``EXPIRE_EVERY``-th; a login is needed only if a request comes after one.
    """
    counted = expiries = followed = 0
    pending = False
    for record in log:
        followed, pending = followed + pending, False
        reply = record.reply or {}
        if record.path == "login" or not reply or str(reply.get("errno")) in TOKEN_ERRNOS:
            continue
        counted += 1
        if counted % EXPIRE_EVERY == 0:
            expiries, pending = expiries + 1, True
    return expiries, followed


async def concurrent_calls(hass: HomeAssistant, entry: MockConfigEntry, calls: int) -> int:
    """``calls`` play_prompt calls shared by CALLERS concurrent callers; the failures."""

    async def caller(count: int) -> int:
        failed = 0
        for _ in range(count):
            try:
                await play(hass, entry)
            except Exception:  # noqa: BLE001 - counted and reported
                failed += 1
        return failed

    share, extra = divmod(calls, CALLERS)
    return sum(await asyncio.gather(*(caller(share + (i < extra)) for i in range(CALLERS))))


async def bench_logins(rig: Rig, settings: Settings) -> None:
    """Token reuse: logins over N calls, alone, then by 50 callers with forced expiries."""
    hass, calls = rig.hass, settings.login_calls
    async with fake_pbx(rig.ssl, "BENCH-LOGINS-1") as pbx, loaded_entry(hass, pbx) as entry:
        for _ in range(calls):
            await play(hass, entry)
        alone = pbx.logins
    async with fake_pbx(rig.ssl, "BENCH-LOGINS-2") as pbx, loaded_entry(hass, pbx) as entry:
        first, mark = pbx.logins, len(pbx.requests)  # the setup's login
        pbx.expire_every = EXPIRE_EVERY
        failed = await concurrent_calls(hass, entry, calls)
        log = pbx.requests[mark:]
    relogins = sum(record.path == "login" for record in log)
    expiries, followed = expiries_followed(log)
    alone_what = f"logins over {calls:,} sequential calls (fresh entry, setup included)"
    crowd_what = (
        f"logins over {calls:,} calls by {CALLERS} concurrent callers, "
        f"tokens expired by the fake every {EXPIRE_EVERY} requests"
    )
    crowd = f"{first + relogins} = {first} first + {relogins} after expiries; {failed} failed"
    expected = (
        f"exactly {1 + followed} (1 + one per expiry: {expiries} expiries, "
        f"{followed} followed by traffic); 0 failed"
    )
    rig.rows += [
        Row(alone_what, str(alone), target="1", ok=alone == 1),
        Row(crowd_what, crowd, "", expected, first == 1 and relogins == followed and not failed),
    ]


async def bench_setup(rig: Rig, settings: Settings) -> None:
    """Config-entry setup: the median of N set-up / remove cycles after an untimed one."""
    times = []
    async with fake_pbx(rig.ssl, "BENCH-SETUP") as pbx:
        for _ in range(settings.setups + 1):
            entry = add_entry(rig.hass, pbx)
            times.append(await timed(setup_entry(rig.hass, entry)))
            await remove_entry(rig.hass, entry)
    del times[0]  # the first setup in the process may also set its dependencies up
    setup = median(times)
    what = f"config-entry setup against the fake, median of {settings.setups}"
    value = f"{fmt_ms(setup)} (p95 {fmt_ms(p95(times))})"
    rig.rows.append(Row(what, value, target="≤ 50 ms", ok=setup <= 50e6))


def own_import_ns(env: dict[str, str]) -> int:
    """Self import time of the integration's modules in a fresh interpreter."""
    code = f"import {HA_PRELOADED}\nimport {OWN_MODULES}"
    command = [sys.executable, "-X", "importtime", "-c", code]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    lines = (line.removeprefix("import time:").split("|") for line in done.stderr.splitlines())
    return 1000 * sum(int(f[0]) for f in lines if len(f) == 3 and f[2].strip().startswith(PACKAGE))


async def bench_import(rig: Rig, settings: Settings) -> None:
    """Import time in fresh interpreters that first import what Home Assistant already has.

    Bytecode goes to a private PYTHONPYCACHEPREFIX: a priming run compiles everything,
    "cached" runs import as on every start after the first, "first" runs drop only the
    integration's bytecode (as after an install or update).
    """
    with tempfile.TemporaryDirectory(prefix="voice-prompt-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": cache}
        own_bytecode = Path(cache, *ROOT.parts[1:], "custom_components")
        cached = [await asyncio.to_thread(own_import_ns, env) for _ in range(settings.imports + 1)]
        first = []
        for _ in range(settings.first_imports):
            shutil.rmtree(own_bytecode, ignore_errors=True)
            first.append(await asyncio.to_thread(own_import_ns, env))
    cached_ns = median(cached[1:])  # the first run compiled the bytecode
    cached_what = (
        f"import of {PACKAGE} (its own modules, bytecode cached), median of {settings.imports}"
    )
    first_what = f"first import after an install or update, median of {settings.first_imports}"
    rig.rows += [
        Row(cached_what, fmt_ms(cached_ns), target="< 100 ms", ok=cached_ns < 100e6),
        Row(first_what, fmt_ms(median(first))),
    ]


async def bench_memory(rig: Rig, settings: Settings) -> None:
    """Resident memory after a warm-up and after N more calls."""
    calls = settings.memory_calls

    async def rss_after(count: int) -> int:
        for index in range(count):
            await play(rig.hass, rig.entry)
            if index % 1000 == 999:
                rig.pbx.requests.clear()  # the fake's own request log is not ours
        rig.pbx.requests.clear()
        gc.collect()
        return int(psutil.Process().memory_info().rss)

    before = await rss_after(500)
    after = await rss_after(calls)
    value = f"{before / MB:.1f} MB → {after / MB:.1f} MB ({(after - before) / MB:+.2f} MB)"
    ok = after - before < 5 * MB
    rig.rows.append(Row(f"RSS before → after {calls:,} calls", value, target="grows < 5 MB", ok=ok))


class StampedFakeP(FakeYeastarP):
    """The P-Series fake, noting when each play request reaches it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.play_stamps: list[int] = []

    async def _handle(self, request: Any) -> Any:
        if request.match_info["path"].strip("/") == "call/play_prompt":
            self.play_stamps.append(time.perf_counter_ns())
        return await super()._handle(request)


SPOKEN = "Lunch is ready in the kitchen"
SPEECH_TARGETS = [str(number) for number in range(2000, 2050)]
P_APP = {"client_id": "bench-p-client", "client_secret": "Bench-P-Secret-0123456789"}


async def to_play_request(
    hass: HomeAssistant, pbx: StampedFakeP, entry: MockConfigEntry, **what: Any
) -> tuple[int, int]:
    """One action call: (ns to the PBX's play request, ns to the action's response)."""
    data = {"config_entry_id": entry.entry_id, "target": "1000", **what}
    gc.collect()
    start = time.perf_counter_ns()
    response = await hass.services.async_call(
        DOMAIN, "play_prompt", data, blocking=True, return_response=True
    )
    end = time.perf_counter_ns()
    if response is None or response["failed"] or not response["calls"]:
        msg = f"play_prompt failed: {response}"
        raise RuntimeError(msg)
    return pbx.play_stamps[-1] - start, end - start


async def bench_speech(rig: Rig, settings: Settings) -> None:
    """Spoken messages on a P-Series PBX (fake): time to its play request, TTS engine calls.

    The engine is the tests' CountingTTS (a tone at 22,050 Hz, made at once): "uncached"
    is Home Assistant's TTS pipeline, ffmpeg's conversion to 8 kHz and the upload, not a
    real engine's synthesis time, which comes on top.
    """
    hass = rig.hass
    pbx = StampedFakeP(**P_APP, serial="BENCH-P-SPEECH")
    pbx.extensions |= {number: f"Phone {number}" for number in SPEECH_TARGETS}
    await pbx.start(host="127.0.0.1", ssl_context=rig.ssl)
    data = {
        "backend": YeastarPBackend.kind,
        "host": pbx.host,
        "port": pbx.port,
        "verify_ssl": False,
    }
    entry = MockConfigEntry(domain=DOMAIN, title="P550", unique_id=pbx.serial, data=data | P_APP)
    entry.add_to_hass(hass)
    try:
        async with counting_tts(hass) as engine:
            await setup_entry(hass, entry)
            await speech_rows(rig, settings, pbx, entry, engine.calls)
    finally:
        await remove_entry(hass, entry)
        await pbx.close()


async def speech_rows(
    rig: Rig, settings: Settings, pbx: StampedFakeP, entry: MockConfigEntry, engine_calls: list[Any]
) -> None:
    hass = rig.hass
    fresh = itertools.count()
    lineup: dict[str, Callable[[], Awaitable[tuple[int, int]]]] = {
        "uncached": lambda: to_play_request(hass, pbx, entry, message=f"{SPOKEN}, {next(fresh)}"),
        "cached": lambda: to_play_request(hass, pbx, entry, message=SPOKEN),
        "prompt": lambda: to_play_request(hass, pbx, entry, prompt="doorbell"),
    }
    for contender in lineup.values():  # warm-up: the cached message is in the cache after it
        await contender()
    to_request: dict[str, list[int]] = {name: [] for name in lineup}
    to_response: dict[str, list[int]] = {name: [] for name in lineup}
    order = list(lineup)
    shuffle = random.Random(11).shuffle
    for _ in range(settings.speech_rounds):
        shuffle(order)
        for name in order:
            for _ in range(SETTLE_ITERATIONS):
                await asyncio.sleep(0)
            request_ns, response_ns = await lineup[name]()
            to_request[name].append(request_ns)
            to_response[name].append(response_ns)
    prompt_ns = to_request["prompt"]

    def vs_prompt(name: str) -> str:
        return f"{paired_ratio(to_request[name], prompt_ns):.2f} {X} prompt"

    def ms(values: list[int]) -> str:
        return f"{fmt_ms(median(values))}, {fmt_ms(p95(values))}"

    rounds = settings.speech_rounds
    rig.rows += [
        Row(
            f"P-Series, action call → play request, message not cached (median, p95 of {rounds})",
            ms(to_request["uncached"]),
            vs_prompt("uncached"),
        ),
        Row(
            "P-Series, action call → play request, message cached (median, p95)",
            ms(to_request["cached"]),
            vs_prompt("cached"),
        ),
        Row(
            "P-Series, action call → play request, named prompt (median, p95)",
            ms(prompt_ns),
            "1.00",
        ),
        Row(
            "P-Series, action call → response, message not cached / cached / prompt (medians)",
            " / ".join(fmt_ms(median(to_response[name])) for name in lineup),
        ),
    ]
    await speech_broadcast(rig, pbx, entry, engine_calls)


async def speech_broadcast(
    rig: Rig, pbx: StampedFakeP, entry: MockConfigEntry, engine_calls: list[Any]
) -> None:
    """One new message to 50 targets, the same again, and a named prompt to the same 50."""
    hass, count = rig.hass, len(SPEECH_TARGETS)

    async def broadcast(**what: Any) -> tuple[int, int, int, int]:
        calls, uploads, plays = (
            len(engine_calls),
            len(pbx.uploads),
            len(pbx.calls("call/play_prompt")),
        )
        data = {"config_entry_id": entry.entry_id, "target": SPEECH_TARGETS, **what}
        gc.collect()
        start = time.perf_counter_ns()
        response = await hass.services.async_call(
            DOMAIN, "play_prompt", data, blocking=True, return_response=True
        )
        elapsed = time.perf_counter_ns() - start
        if response is None or len(response["calls"]) != count or response["failed"]:
            msg = f"broadcast failed: {response}"
            raise RuntimeError(msg)
        played = len(pbx.calls("call/play_prompt")) - plays
        return len(engine_calls) - calls, len(pbx.uploads) - uploads, played, elapsed

    message = f"{SPOKEN} for everyone"
    new_calls, new_uploads, new_plays, new_ns = await broadcast(message=message)
    again_calls, again_uploads, _, again_ns = await broadcast(message=message)
    prompt_calls, prompt_uploads, _, prompt_ns = await broadcast(prompt="doorbell")
    rig.rows += [
        Row(
            f"TTS engine calls, one new message to {count} targets (one action)",
            f"{new_calls} ({new_uploads} upload, {new_plays} play requests)",
            target="1 engine call, 1 upload",
            ok=(new_calls, new_uploads, new_plays) == (1, 1, count),
        ),
        Row(
            f"TTS engine calls, the same message to {count} targets again",
            f"{again_calls} ({again_uploads} uploads)",
            target="0, 0 uploads",
            ok=(again_calls, again_uploads) == (0, 0),
        ),
        Row(
            f"TTS engine calls, a named prompt to {count} targets",
            f"{prompt_calls} ({prompt_uploads} uploads)",
            target="0",
            ok=(prompt_calls, prompt_uploads) == (0, 0),
        ),
        Row(
            f"{count}-target action: new message / same message / named prompt",
            " / ".join(fmt_ms(ns) for ns in (new_ns, again_ns, prompt_ns)),
            f"{new_ns / prompt_ns:.2f} / {again_ns / prompt_ns:.2f} / 1.00 {X} prompt",
        ),
    ]


# In the order the table shows them.
def run_ha_module() -> Any:
    """scripts/run_ha.py, which starts and drives a real Home Assistant for the demo."""
    spec = importlib.util.spec_from_file_location("run_ha", ROOT / "scripts" / "run_ha.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_ha"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


async def ws_call(
    ws: aiohttp.ClientWebSocketResponse,
    ids: Iterator[int],
    domain: str,
    service: str,
    data: dict[str, Any],
) -> None:
    """One call_service over the websocket API; it must succeed."""
    request_id = next(ids)
    await ws.send_json(
        {
            "id": request_id,
            "type": "call_service",
            "domain": domain,
            "service": service,
            "service_data": data,
            "return_response": True,
        }
    )
    reply = await ws.receive_json()
    if reply.get("id") != request_id or not reply.get("success"):
        msg = f"{domain}.{service} over the websocket failed: {reply}"
        raise RuntimeError(msg)


async def bench_websocket(rig: Rig, settings: Settings) -> None:
    """Per call in a real Home Assistant (its own process), called over its websocket API."""
    run_ha = run_ha_module()
    token = await pasted_token(rig)
    port = unused_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="voice-prompt-bench-ha-") as tmp:
        config_dir = Path(tmp) / "config"
        run_ha.prepare_config(config_dir, port, "benchmark")
        # As users run it: the demo's debug logging of the integration left out.
        config_file = config_dir / "configuration.yaml"
        config_file.write_text(
            config_file.read_text(encoding="utf-8").replace(
                "    custom_components.voice_prompt: debug\n", ""
            ),
            encoding="utf-8",
        )
        rest = f"{rig.pbx.base_url}extension/playprompt?token={token}"
        with (config_dir / "configuration.yaml").open("a", encoding="utf-8") as config:
            config.write(
                "rest_command:\n  pbx:\n"
                f"    url: {rest}\n    method: post\n    payload: '{PAYLOAD}'\n"
                "    content_type: application/json\n    verify_ssl: false\n"
            )
        with (Path(tmp) / "home-assistant.log").open("wb") as log:
            process = run_ha.start_home_assistant(config_dir, log)
            try:
                await ws_rounds(rig, settings, run_ha, base, process)
            finally:
                run_ha.stop(process)


async def ws_rounds(rig: Rig, settings: Settings, run_ha: Any, base: str, process: Any) -> None:
    pbx = run_ha.Pbx(rig.pbx.host, rig.pbx.port, rig.pbx.username, PASSWORD, False)
    async with aiohttp.ClientSession() as session:
        with contextlib.redirect_stdout(sys.stderr):  # the demo's transcript is progress here
            await run_ha.wait_for_home_assistant(session, base, process)
            access = await run_ha.onboard(session, base)
            entry = await run_ha.add_pbx(session, base, access, pbx)
        async with session.ws_connect(f"{base}/api/websocket") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": access})
            await ws.receive_json()
            ids = itertools.count(1)
            calls = {
                "play_prompt": (
                    "voice_prompt",
                    "play_prompt",
                    {"config_entry_id": entry["entry_id"], "target": EXTENSION, "prompt": PROMPT},
                ),
                "rest_command": ("rest_command", "pbx", {}),
            }
            samples: dict[str, list[int]] = {name: [] for name in calls}
            order = list(calls)
            shuffle = random.Random(7).shuffle
            for index in range(settings.warmup + settings.calls):
                shuffle(order)
                for name in order:
                    start = time.perf_counter_ns()
                    await ws_call(ws, ids, *calls[name])
                    if index >= settings.warmup:
                        samples[name].append(time.perf_counter_ns() - start)
                if index % 100 == 0:
                    rig.pbx.requests.clear()
    play_ns, rest_ns = samples["play_prompt"], samples["rest_command"]
    rig.rows += [
        within(
            "per call in a real Home Assistant over websocket: play_prompt (median, p95)",
            spread(play_ns),
            paired_ratio(play_ns, rest_ns),
            "rest_command",
            1.1,
        ),
        Row(
            "per call in a real Home Assistant over websocket: rest_command (median, p95)",
            spread(rest_ns),
        ),
    ]


SECTIONS: dict[str, Callable[[Rig, Settings], Awaitable[None]]] = {
    "per_call": bench_per_call,
    "websocket": bench_websocket,
    "broadcast": bench_broadcast,
    "logins": bench_logins,
    "setup": bench_setup,
    "import": bench_import,
    "memory": bench_memory,
    "speech": bench_speech,
}


# ------------------------------------------------------------------------- output


def summary(rows: list[Row]) -> str:
    missed = [row.what for row in rows if row.ok is False]
    return f"{len(missed)} target(s) missed: {'; '.join(missed)}" if missed else "All targets met."


def markdown(rows: list[Row], settings: Settings, seconds: float) -> str:
    mode = "quick (`--quick`)" if settings.quick else "full"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ha, aiohttp_version = (importlib.metadata.version(n) for n in ("homeassistant", "aiohttp"))
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    versions = f"Python {platform.python_version()}, Home Assistant {ha}, aiohttp {aiohttp_version}"
    table = ["| what | value | ratio | target | verdict |", "|---|---|---|---|---|"]
    table += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    head = f"{stamp}, {mode} run of `benchmarks/run.py` ({seconds:.0f} s). {machine}, {versions}."
    how = "How these were measured: [README.md](README.md#what-is-measured)."
    image = "![per-call distributions](per_call.png)\n"
    parts = ["# Voice Prompt benchmark results", head, "\n".join(table), summary(rows), how, image]
    return "\n\n".join(parts)


def appended_sections(path: Path) -> str:
    """The ``## `` sections other scripts' figures were appended under: a rewrite keeps them."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    heading = text.find("\n## ")
    return "" if heading < 0 else "\n" + text[heading + 1 :]


def chart(samples: dict[str, list[int]], path: Path) -> bool:
    """Violins and p5-p95 boxes of the per-call times; False without matplotlib."""
    try:
        import matplotlib as mpl  # benchmark-only requirement

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no chart (scripts/benchmark installs it)")
        return False
    data = [[ns / 1000 for ns in samples[name]] for name in CONTENDERS]
    # Slow outliers (machine noise) would squash the plot: it stops at 1.5 x the largest p95.
    top = 1.5 * max(p95(values) for values in samples.values()) / 1000
    fig, ax = plt.subplots(figsize=(7, 4.6))
    violins = ax.violinplot([[v for v in vs if v <= top] for vs in data], showextrema=False)
    for body, color in zip(violins["bodies"], ("#1f77b4", "#ff7f0e", "#2ca02c"), strict=True):
        body.set_facecolor(color)
        body.set_alpha(0.35)
    medians = {"color": "black", "linewidth": 1.5}
    ax.boxplot(data, whis=(5, 95), showfliers=False, widths=0.25, medianprops=medians)
    for position, values in enumerate(data, start=1):
        mid = median(values)
        ax.text(position + 0.3, mid, f"{mid:,.0f} µs", va="center", fontsize=9)
    ax.set_xticks([1, 2, 3], CONTENDERS)
    ax.set_ylim(bottom=0, top=top * 1.08)
    ax.set_ylabel("µs per call (box: quartiles, whiskers: p5\N{EN DASH}p95)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"HTTPS, {len(data[0])} calls each, cut at 1.5 {X} the largest p95", fontsize=9)
    fig.suptitle("voice_prompt.play_prompt vs rest_command vs raw aiohttp (fake PBX)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- main


@contextlib.asynccontextmanager
async def rig_running(tmp: Path) -> AsyncIterator[Rig]:
    ssl_context = server_ssl_context(*make_self_signed_cert(tmp / "tls"))
    (tmp / "config").mkdir()
    async with (
        fake_pbx(ssl_context, "369364835218") as pbx,
        async_test_home_assistant(config_dir=str(tmp / "config")) as hass,
        aiohttp.ClientSession() as session,
    ):
        # The test harness hides custom integrations; a real config dir would not.
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
        frame.async_setup(hass)
        # The integration depends on webhook -> http: keep http on 127.0.0.1.
        http = {"server_host": "127.0.0.1", "server_port": unused_port()}
        assert await async_setup_component(hass, "http", {"http": http})
        try:
            async with loaded_entry(hass, pbx) as entry:
                yield Rig(hass, ssl_context, session, pbx, entry)
        finally:
            await hass.async_stop(force=True)


async def run_sections(only: list[str], settings: Settings) -> Rig:
    # Home Assistant's resolver would start a zeroconf (mDNS) instance on the LAN.
    resolver = "homeassistant.helpers.aiohttp_client._async_make_resolver"
    with (
        tempfile.TemporaryDirectory(prefix="voice-prompt-bench-") as tmp,
        patch(resolver, lambda _hass: aiohttp.ThreadedResolver()),
    ):
        async with rig_running(Path(tmp)) as rig:
            for name, bench in SECTIONS.items():
                if name in only:
                    say(f"{name}: {(bench.__doc__ or '').splitlines()[0]}")
                    await bench(rig, settings)
    return rig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark voice_prompt.play_prompt against rest_command and raw aiohttp. "
        "A full run writes benchmarks/RESULTS.md and benchmarks/per_call.png.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls; prints only")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(SECTIONS),
        metavar="SECTIONS",
        help=f"comma-separated subset of: {', '.join(SECTIONS)}; prints only",
    )
    parser.add_argument("--calls", type=int, help="timed calls per contender (default 500)")
    parser.add_argument("--no-write", action="store_true", help="print only, even in a full run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if unknown := set(args.only) - set(SECTIONS):
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.calls:
        settings = replace(settings, calls=args.calls)
    started = time.perf_counter()
    loop_factory = ha_loop.new_event_loop
    rig = asyncio.run(run_sections(args.only, settings), loop_factory=loop_factory)
    seconds = time.perf_counter() - started
    text = markdown(rig.rows, settings, seconds)
    print(text)
    if not settings.quick and set(args.only) == set(SECTIONS) and not args.no_write:
        RESULTS_MD.write_text(text + appended_sections(RESULTS_MD), encoding="utf-8")
        drawn = chart(rig.samples, CHART_PNG)
        say(f"wrote {RESULTS_MD.relative_to(ROOT)}" + (" and per_call.png" if drawn else ""))
    say(f"done in {seconds:.0f} s; {summary(rig.rows)}")
    return 1 if args.strict and any(row.ok is False for row in rig.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
