"""Benchmarks of Voice Prompt against the fake Yeastar PBX on 127.0.0.1.

Run ``scripts/benchmark`` (or ``.venv/bin/python benchmarks/run.py``); ``--help`` lists
the options. Not part of the test suite: it measures, prints a Markdown table, and (in a
full run) writes benchmarks/RESULTS.md and benchmarks/per_call.png.

What runs: an in-process Home Assistant (pytest-homeassistant-custom-component's
``async_test_home_assistant``, no pytest) with the integration loaded from this
repository, and two fake PBXs (tests/fakes/yeastar.py) in the same event loop: one on
HTTPS with a self-signed certificate, one on plain HTTP. Every contender talks to the
same fakes, so the fakes' own cost is in every number alike.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import gc
import hashlib
import importlib.metadata
import json
import math
import os
from pathlib import Path
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any
from unittest.mock import patch

import aiohttp
import aiohttp.abc
from aiohttp.test_utils import unused_port
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pytest_homeassistant_custom_component.common import (  # noqa: E402
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.voice_prompt.api.yeastar import (  # noqa: E402
    DEFAULT_CONCURRENCY,
    YeastarClient,
)
from custom_components.voice_prompt.const import BACKEND_YEASTAR, CONF_BACKEND, DOMAIN  # noqa: E402
from homeassistant import loader  # noqa: E402
from homeassistant.config_entries import ConfigEntryState  # noqa: E402
from homeassistant.const import (  # noqa: E402
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant  # noqa: E402
from homeassistant.helpers import frame  # noqa: E402
from homeassistant.helpers.aiohttp_client import async_get_clientsession  # noqa: E402
from homeassistant.runner import HassEventLoopPolicy  # noqa: E402
from homeassistant.setup import async_setup_component  # noqa: E402
from tests.fakes.tls import make_self_signed_cert, server_ssl_context  # noqa: E402
from tests.fakes.yeastar import FakeYeastarPBX, RecordedRequest  # noqa: E402

USERNAME = "api"
PASSWORD = "VoicePrompt-Demo1"
EXTENSION = "1000"
PROMPT = "hello111"
# The exact body play_prompt sends (compact JSON, as Home Assistant's session writes it).
PAYLOAD = json.dumps(
    {"extid": EXTENSION, "prompt": PROMPT, "autoanswer": "no"}, separators=(",", ":")
)
BROADCAST = [str(number) for number in range(1010, 1110)]
TOKEN_ERRNOS = frozenset({"20004", "20005", "20006"})
MB = 1024 * 1024
# Event-loop turns given to the previous call's leftovers (connection release, the fake's
# own bookkeeping) so that they are not timed as part of the next contender's call.
SETTLE_ITERATIONS = 5

# In the order the results table shows them.
SECTIONS = ("per_call", "broadcast", "logins", "setup", "import", "memory")
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
CHART_PNG = ROOT / "benchmarks" / "per_call.png"

# Modules a running Home Assistant has imported before it loads any custom integration.
HA_PRELOADED = (
    "homeassistant.core",
    "homeassistant.config_entries",
    "homeassistant.data_entry_flow",
    "homeassistant.helpers.config_validation",
    "homeassistant.helpers.device_registry",
    "homeassistant.helpers.entity_registry",
    "homeassistant.helpers.event",
    "homeassistant.helpers.aiohttp_client",
    "homeassistant.helpers.selector",
    "homeassistant.components.http",
)
# What Home Assistant imports when it loads the integration (package + preloaded platforms).
OWN_MODULES = (
    "custom_components.voice_prompt",
    "custom_components.voice_prompt.config_flow",
    "custom_components.voice_prompt.diagnostics",
)


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


FULL = Settings(
    quick=False,
    calls=500,
    warmup=50,
    broadcast_rounds=3,
    login_calls=1000,
    setups=20,
    imports=20,
    first_imports=5,
    memory_calls=10_000,
)
QUICK = Settings(
    quick=True,
    calls=100,
    warmup=20,
    broadcast_rounds=1,
    login_calls=1000,
    setups=5,
    imports=3,
    first_imports=2,
    memory_calls=2_000,
)


@dataclass
class Row:
    """One line of the results table."""

    what: str
    value: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""  # "pass", "FAIL" or "" (information)
    section: str = ""


@dataclass
class Report:
    """Everything a run found."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    samples: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    section: str = ""  # the section that is running: rows are shown in SECTIONS order

    def add(
        self, what: str, value: str, ratio: str = "", target: str = "", verdict: str = ""
    ) -> Row:
        row = Row(what, value, ratio, target, verdict, self.section)
        self.rows.append(row)
        return row

    def ordered(self) -> list[Row]:
        return sorted(self.rows, key=lambda row: SECTIONS.index(row.section))

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.verdict == "FAIL"]


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def say(text: str) -> None:
    """Progress on stderr, so stdout carries only the results."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# ------------------------------------------------------------------------ statistics


def median(values: list[float] | list[int]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float] | list[int], pct: float) -> float:
    """Inclusive linear-interpolation percentile (pct in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt_us(ns: float) -> str:
    return f"{ns / 1000:,.0f} µs"


def fmt_ms(ns: float) -> str:
    ms = ns / 1e6
    return f"{ms:,.1f} ms" if ms < 100 else f"{ms:,.0f} ms"


def paired_ratio(numerator: list[int], denominator: list[int]) -> float:
    """Median of per-iteration ratios: contenders ran back to back in each iteration."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


# ------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """Home Assistant, the fakes and the contenders' plumbing."""

    hass: HomeAssistant
    https_pbx: FakeYeastarPBX
    http_pbx: FakeYeastarPBX
    raw_session: aiohttp.ClientSession
    ssl_context: Any
    entry: MockConfigEntry | None = None
    https_client: YeastarClient | None = None
    http_client: YeastarClient | None = None


def entry_data(pbx: FakeYeastarPBX) -> dict[str, Any]:
    return {
        CONF_BACKEND: BACKEND_YEASTAR,
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: USERNAME,
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: False,
    }


def new_entry(hass: HomeAssistant, pbx: FakeYeastarPBX) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{pbx.device_name} ({pbx.host})",
        unique_id=pbx.serial,
        data=entry_data(pbx),
    )
    entry.add_to_hass(hass)
    return entry


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if not await hass.config_entries.async_setup(entry.entry_id):
        msg = f"config entry setup failed: {entry.state} {entry.reason}"
        raise RuntimeError(msg)
    if entry.state is not ConfigEntryState.LOADED:
        msg = f"config entry not loaded: {entry.state} {entry.reason}"
        raise RuntimeError(msg)


async def start_pbx(serial: str, ssl_ctx: Any | None) -> FakeYeastarPBX:
    pbx = FakeYeastarPBX(password=PASSWORD, serial=serial)
    await pbx.start(host="127.0.0.1", ssl_context=ssl_ctx)
    return pbx


async def raw_login(session: aiohttp.ClientSession, pbx: FakeYeastarPBX) -> str:
    """Log in the way a user would to paste a token into rest_command."""
    body = {
        "username": USERNAME,
        "password": hashlib.md5(PASSWORD.encode(), usedforsecurity=False).hexdigest(),
        "port": "8260",
        "version": "1.0.2",
    }
    async with session.post(pbx.base_url + "login", json=body, ssl=False) as response:
        data = await response.json(content_type=None)
    if data.get("status") != "Success":
        msg = f"login to the fake failed: {data}"
        raise RuntimeError(msg)
    return str(data["token"])


def play_call(rig: Rig, extension: str | list[str] = EXTENSION) -> Awaitable[Any]:
    assert rig.entry is not None
    return rig.hass.services.async_call(
        DOMAIN,
        "play_prompt",
        {"config_entry_id": rig.entry.entry_id, "extension": extension, "prompt": PROMPT},
        blocking=True,
        return_response=True,
    )


def use_client(rig: Rig, client: YeastarClient | None) -> None:
    """Point the loaded entry at one fake (the HTTP variant swaps the client)."""
    assert rig.entry is not None
    assert client is not None
    rig.entry.runtime_data.client = client


@dataclass
class Contender:
    """One way to make the PBX ring extension 1000 and play hello111."""

    name: str
    variant: str
    call: Callable[[], Awaitable[None]]
    before: Callable[[], None] = lambda: None


def contenders(rig: Rig, tokens: dict[str, str]) -> list[Contender]:
    hass = rig.hass
    out: list[Contender] = []
    for variant, pbx, client in (
        ("HTTPS", rig.https_pbx, rig.https_client),
        ("HTTP", rig.http_pbx, rig.http_client),
    ):
        url = f"{pbx.base_url}extension/playprompt?token={tokens[variant]}"
        service = f"pbx_play_{variant.lower()}"

        async def play(variant: str = variant) -> None:
            response = await play_call(rig)
            if not response["calls"]:
                msg = f"play_prompt ({variant}) failed: {response}"
                raise RuntimeError(msg)

        async def rest(service: str = service) -> None:
            response = await hass.services.async_call(
                "rest_command", service, {}, blocking=True, return_response=True
            )
            assert response is not None
            content = response["content"]
            if not isinstance(content, dict) or content.get("status") != "Success":
                msg = f"rest_command failed: {response}"
                raise RuntimeError(msg)

        async def raw(url: str = url) -> None:
            async with rig.raw_session.post(
                url, data=PAYLOAD, headers={"Content-Type": "application/json"}, ssl=False
            ) as response:
                data = await response.json()
            if data.get("status") != "Success":
                msg = f"raw POST failed: {data}"
                raise RuntimeError(msg)

        def before(client: YeastarClient | None = client) -> None:
            use_client(rig, client)

        out += [
            Contender("play_prompt", variant, play, before),
            Contender("rest_command", variant, rest),
            Contender("raw aiohttp", variant, raw),
        ]
    return out


# ------------------------------------------------------------------------ sections


async def bench_setup(rig: Rig, settings: Settings, report: Report) -> None:
    """Config-entry setup: cold once, then the median of N set up / remove cycles."""
    say(f"setup: {settings.setups + 1} config-entry setups")
    hass = rig.hass
    times: list[int] = []
    cold = 0
    for index in range(settings.setups + 1):
        entry = new_entry(hass, rig.https_pbx)
        gc.collect()
        start = time.perf_counter_ns()
        await setup_entry(hass, entry)
        elapsed = time.perf_counter_ns() - start
        await hass.async_block_till_done()
        if index == 0:
            cold = elapsed
        else:
            times.append(elapsed)
        await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    setup_median = median(times)
    report.add(
        f"config-entry setup against the fake, median of {settings.setups}",
        f"{fmt_ms(setup_median)} (p95 {fmt_ms(percentile(times, 95))})",
        f"{setup_median / 10e9:.4f} \N{MULTIPLICATION SIGN} HA's 10 s warning",
        "≤ 50 ms",
        verdict(setup_median <= 50e6),
    )
    report.add(
        "first setup (also sets the integration and its webhook dependency up; "
        "the import is measured below)",
        fmt_ms(cold),
    )


def _parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """Module -> (self µs, cumulative µs) from ``python -X importtime``."""
    found: dict[str, tuple[int, int]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        found[name.strip()] = (int(self_us), int(cumulative_us))
    return found


def _importtime(code: str, env: dict[str, str]) -> dict[str, tuple[int, int]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return _parse_importtime(done.stderr)


def bench_import(settings: Settings, report: Report) -> None:
    """Import time of the integration in fresh interpreters (after HA's core modules).

    Bytecode goes to a private PYTHONPYCACHEPREFIX: a priming run compiles everything,
    then "cached" runs import as Home Assistant does on every start after the first, and
    "first" runs drop only the integration's bytecode (as after an install or update).
    """
    runs, first_runs = settings.imports, settings.first_imports
    say(f"import: {runs + first_runs + 1} fresh interpreters")
    code = f"import {', '.join(HA_PRELOADED)}\nimport {', '.join(OWN_MODULES)}\n"
    own: list[int] = []
    cumulative: list[int] = []
    first: list[int] = []
    per_module: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="voice-prompt-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": cache}
        ours = Path(cache, *ROOT.parts[1:], "custom_components")
        _importtime(code, env)  # compiles and caches everything
        for index in range(max(runs, first_runs)):
            if index < runs:
                times = _importtime(code, env)
                mine = {name: t for name, t in times.items() if name.startswith(OWN_MODULES[0])}
                own.append(sum(self_us for self_us, _ in mine.values()))
                cumulative.append(sum(times[name][1] for name in OWN_MODULES if name in times))
                for name, (self_us, _) in mine.items():
                    per_module.setdefault(name, []).append(self_us)
            if index < first_runs:
                shutil.rmtree(ours, ignore_errors=True)
                times = _importtime(code, env)
                first.append(
                    sum(t[0] for name, t in times.items() if name.startswith(OWN_MODULES[0]))
                )
    own_median = median(own) * 1000
    report.add(
        f"import of custom_components.voice_prompt (its own modules, bytecode cached), "
        f"median of {runs}",
        fmt_ms(own_median),
        "",
        "tens of ms (< 100 ms)",
        verdict(own_median < 100e6),
    )
    report.add(
        "import, with the Home Assistant modules it pulls in that are not preloaded",
        fmt_ms(median(cumulative) * 1000),
    )
    report.add(
        f"first import after an install or update (compiles its bytecode), median of {first_runs}",
        fmt_ms(median(first) * 1000),
    )
    lines = [
        "### Import time per module (self, bytecode cached, median)",
        "",
        "Measured with `python -X importtime` in fresh interpreters that first import "
        f"what a running Home Assistant already has: `{'`, `'.join(HA_PRELOADED)}`.",
        "",
        "| module | self |",
        "|---|---|",
    ]
    for name, values in sorted(per_module.items(), key=lambda kv: -median(kv[1])):
        lines.append(f"| `{name}` | {fmt_ms(median(values) * 1000)} |")
    report.details += [*lines, ""]


async def setup_rest_commands(rig: Rig) -> dict[str, str]:
    """What a user writes today: a rest_command with a token pasted into the URL."""
    tokens = {
        "HTTPS": await raw_login(rig.raw_session, rig.https_pbx),
        "HTTP": await raw_login(rig.raw_session, rig.http_pbx),
    }
    commands = {
        f"pbx_play_{variant.lower()}": {
            "url": f"{pbx.base_url}extension/playprompt?token={tokens[variant]}",
            "method": "post",
            "payload": PAYLOAD,
            "content_type": "application/json",
            "verify_ssl": False,
        }
        for variant, pbx in (("HTTPS", rig.https_pbx), ("HTTP", rig.http_pbx))
    }
    if not rig.hass.services.has_service("rest_command", "pbx_play_https"):
        config = {"rest_command": commands}
        assert await async_setup_component(rig.hass, "rest_command", config)
        await rig.hass.async_block_till_done()
    return tokens


async def bench_per_call(rig: Rig, settings: Settings, report: Report) -> None:
    """N sequential calls of each contender, interleaved in a shuffled order per round."""
    tokens = await setup_rest_commands(rig)
    lineup = contenders(rig, tokens)
    total = settings.warmup + settings.calls
    say(f"per call: {total} rounds of {len(lineup)} contenders ({settings.warmup} warm-up)")
    samples: dict[tuple[str, str], list[int]] = {(c.name, c.variant): [] for c in lineup}
    shuffle = random.Random(5).shuffle  # seeded: the same orders every run
    gc.collect()
    for index in range(total):
        order = list(lineup)
        shuffle(order)
        for contender in order:
            contender.before()
            await settle()
            start = time.perf_counter_ns()
            await contender.call()
            elapsed = time.perf_counter_ns() - start
            if index >= settings.warmup:
                samples[(contender.name, contender.variant)].append(elapsed)
        if index % 100 == 0:
            rig.https_pbx.requests.clear()
            rig.http_pbx.requests.clear()
    use_client(rig, rig.https_client)
    report.samples = samples

    lines = [
        f"### Per call ({settings.calls} calls each, after {settings.warmup} warm-up calls)",
        "",
        "| variant | contender | median | p95 | mean | min |",
        "|---|---|---|---|---|---|",
    ]
    for variant in ("HTTPS", "HTTP"):
        play = samples[("play_prompt", variant)]
        rest = samples[("rest_command", variant)]
        raw = samples[("raw aiohttp", variant)]
        for name, values in (("play_prompt", play), ("rest_command", rest), ("raw aiohttp", raw)):
            lines.append(
                f"| {variant} | {name} | {fmt_us(median(values))} | "
                f"{fmt_us(percentile(values, 95))} | {fmt_us(statistics.fmean(values))} | "
                f"{fmt_us(min(values))} |"
            )
        vs_rest = paired_ratio(play, rest)
        vs_raw = paired_ratio(play, raw)
        report.add(
            f"per call, {variant}: play_prompt (median, p95)",
            f"{fmt_us(median(play))}, {fmt_us(percentile(play, 95))}",
            f"{vs_rest:.2f} \N{MULTIPLICATION SIGN} rest_command",
            "≤ 1.10 \N{MULTIPLICATION SIGN}",
            verdict(vs_rest <= 1.10),
        )
        report.add(
            f"per call, {variant}: play_prompt vs raw aiohttp",
            "",
            f"{vs_raw:.2f} \N{MULTIPLICATION SIGN} raw aiohttp",
            "≤ 1.5 \N{MULTIPLICATION SIGN}",
            verdict(vs_raw <= 1.5),
        )
        report.add(
            f"per call, {variant}: rest_command (median, p95)",
            f"{fmt_us(median(rest))}, {fmt_us(percentile(rest, 95))}",
            f"{paired_ratio(rest, raw):.2f} \N{MULTIPLICATION SIGN} raw aiohttp",
        )
        report.add(
            f"per call, {variant}: raw aiohttp POST (median, p95)",
            f"{fmt_us(median(raw))}, {fmt_us(percentile(raw, 95))}",
            "1.00",
        )
        lines.append(
            f"| {variant} | ratio of the medians | play_prompt / rest_command "
            f"{median(play) / median(rest):.2f}, play_prompt / raw {median(play) / median(raw):.2f} "
            "| | | |"
        )
    report.details += [*lines, ""]


async def bench_broadcast(rig: Rig, settings: Settings, report: Report) -> None:
    """One action call with 100 extensions vs 100 single-extension calls, 20 ms each."""
    say(f"broadcast: {settings.broadcast_rounds} rounds with 20 ms latency per request")
    pbx = rig.https_pbx
    try:
        # Warm-up with the latency on: opens every connection the fan-out keeps busy.
        pbx.latency = 0.02
        await play_call(rig, BROADCAST)
        pbx.latency = 0.0
        for _ in range(3):
            await play_call(rig, BROADCAST)
        floor: list[int] = []
        for _ in range(3):
            gc.collect()
            start = time.perf_counter_ns()
            await play_call(rig, BROADCAST)
            floor.append(time.perf_counter_ns() - start)
        pbx.latency = 0.02
        wide: list[int] = []
        narrow: list[int] = []
        for _ in range(settings.broadcast_rounds):
            gc.collect()
            start = time.perf_counter_ns()
            response = await play_call(rig, BROADCAST)
            wide.append(time.perf_counter_ns() - start)
            if len(response["calls"]) != len(BROADCAST) or response["failed"]:
                msg = f"broadcast failed: {len(response['calls'])} calls, {response['failed']}"
                raise RuntimeError(msg)
            gc.collect()
            start = time.perf_counter_ns()
            for extension in BROADCAST:
                await play_call(rig, extension)
            narrow.append(time.perf_counter_ns() - start)
    finally:
        pbx.latency = 0.0
        pbx.requests.clear()
    broadcast, sequential = median(wide), median(narrow)
    round_trip = sequential / len(BROADCAST)
    trips = math.ceil(len(BROADCAST) / DEFAULT_CONCURRENCY)
    ideal = trips * round_trip
    report.add(
        f"broadcast to {len(BROADCAST)} extensions, one call (20 ms PBX latency)",
        fmt_ms(broadcast),
        f"{broadcast / sequential:.3f} \N{MULTIPLICATION SIGN} sequential",
        "≤ 0.10 \N{MULTIPLICATION SIGN}",
        verdict(broadcast / sequential <= 0.10),
    )
    report.add(
        f"{len(BROADCAST)} sequential single-extension calls (20 ms PBX latency)",
        f"{fmt_ms(sequential)} ({fmt_ms(round_trip)} per round trip)",
    )
    report.add(
        f"broadcast in round trips, vs ⌈{len(BROADCAST)}/{DEFAULT_CONCURRENCY}⌉ = {trips} "
        f"({fmt_ms(ideal)})",
        f"{broadcast / round_trip:.1f} round trips",
        f"{broadcast / ideal:.2f} \N{MULTIPLICATION SIGN} ideal",
        f"near {trips}, not {len(BROADCAST)} (≤ {2 * trips})",
        verdict(broadcast / round_trip <= 2 * trips),
    )
    report.add(
        "broadcast floor: the same call with no PBX latency, i.e. the CPU of 100 requests "
        "(action, client and the in-process fake, one core)",
        fmt_ms(median(floor)),
    )


async def _fresh_entry(rig: Rig, serial: str) -> tuple[FakeYeastarPBX, MockConfigEntry]:
    pbx = await start_pbx(serial, rig.ssl_context)
    entry = new_entry(rig.hass, pbx)
    await setup_entry(rig.hass, entry)
    return pbx, entry


def _expiries(log: list[RecordedRequest], every: int) -> tuple[int, int, int]:
    """Replay the fake's counting: (expiries, expiries followed by traffic, token refusals).

    The fake counts every request that got past the token check and expires all tokens
    after every ``every``-th; a login is needed only if a request comes after an expiry.
    """
    counted = expiries = followed = refused = 0
    pending = False
    for record in log:
        if pending:
            followed += 1
            pending = False
        reply = record.reply or {}
        if record.path == "login" or record.reply is None:
            continue
        if reply.get("status") == "Failed" and str(reply.get("errno")) in TOKEN_ERRNOS:
            refused += 1
            continue
        counted += 1
        if counted % every == 0:
            expiries += 1
            pending = True
    return expiries, followed, refused


async def bench_logins(rig: Rig, settings: Settings, report: Report) -> None:
    """Token reuse: logins over N calls, alone and with 50 callers and forced expiries."""
    hass = rig.hass
    calls = settings.login_calls
    say(f"logins: {calls} sequential calls, then {calls} calls by 50 concurrent callers")
    saved = rig.entry

    pbx, entry = await _fresh_entry(rig, "BENCH-LOGINS-1")
    try:
        rig.entry = entry
        for _ in range(calls):
            await play_call(rig)
        logins = pbx.logins
    finally:
        rig.entry = saved
        await hass.config_entries.async_remove(entry.entry_id)
        await pbx.close()
    report.add(
        f"logins over {calls:,} sequential calls (fresh entry, setup included)",
        str(logins),
        "",
        "1",
        verdict(logins == 1),
    )

    every, callers = 100, 50
    pbx, entry = await _fresh_entry(rig, "BENCH-LOGINS-2")
    try:
        rig.entry = entry
        first = pbx.logins  # the setup's login
        mark = len(pbx.requests)
        pbx.expire_every = every

        async def caller(count: int) -> list[BaseException]:
            failures: list[BaseException] = []
            for _ in range(count):
                try:
                    await play_call(rig)
                except Exception as err:  # noqa: BLE001 - counted and reported
                    failures.append(err)
            return failures

        share, extra = divmod(calls, callers)
        results = await asyncio.gather(
            *(caller(share + (1 if i < extra else 0)) for i in range(callers))
        )
        failed = [err for failures in results for err in failures]
        log = pbx.requests[mark:]
        expiries, followed, refused = _expiries(log, every)
        relogins = sum(1 for record in log if record.path == "login")
        total = first + relogins
    finally:
        rig.entry = saved
        await hass.config_entries.async_remove(entry.entry_id)
        await pbx.close()
    expected = 1 + followed
    ok = relogins == followed and first == 1 and not failed
    report.add(
        f"logins over {calls:,} calls by {callers} concurrent callers, tokens expired by the "
        f"fake every {every} requests",
        f"{total} = 1 first + {relogins} after expiries; {len(failed)} failed calls",
        "",
        f"exactly {expected} (1 + one per expiry: {expiries} expiries, {followed} followed by "
        "traffic); 0 failed",
        verdict(ok and total == expected),
    )
    report.details += [
        "### Token expiry under concurrency",
        "",
        f"{callers} callers made {calls:,} play_prompt calls while the fake expired every "
        f"token after every {every} authenticated requests: {expiries} expiries, "
        f"{refused} requests answered 'token expired' (in flight at an expiry), "
        f"{relogins} logins after the first, {len(failed)} failed calls."
        + (f" First failure: {failed[0]!r}" if failed else ""),
        "",
    ]


async def settle() -> None:
    """Let callbacks left over from the previous call run before the clock starts."""
    for _ in range(SETTLE_ITERATIONS):
        await asyncio.sleep(0)


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


async def bench_memory(rig: Rig, settings: Settings, report: Report) -> None:
    """RSS before and after N calls; tracemalloc's top growth if it grew more than 5 MB."""
    calls = settings.memory_calls
    say(f"memory: {calls:,} calls")
    pbx = rig.https_pbx

    async def run(count: int) -> None:
        for index in range(count):
            await play_call(rig)
            if index % 1000 == 999:
                pbx.requests.clear()  # the fake's own request log is not ours

    await run(500)
    pbx.requests.clear()
    gc.collect()
    before = rss()
    await run(calls)
    pbx.requests.clear()
    gc.collect()
    after = rss()
    grown = after - before
    report.add(
        f"RSS before → after {calls:,} calls",
        f"{before / MB:.1f} MB → {after / MB:.1f} MB ({grown / MB:+.2f} MB)",
        "",
        "grows < 5 MB",
        verdict(grown < 5 * MB),
    )
    if grown >= 5 * MB:
        tracemalloc.start(10)
        first = tracemalloc.take_snapshot()
        await run(min(calls, 2000))
        pbx.requests.clear()
        gc.collect()
        second = tracemalloc.take_snapshot()
        tracemalloc.stop()
        lines = ["### tracemalloc: top growth over 2,000 more calls", "", "```"]
        lines += [str(stat) for stat in second.compare_to(first, "traceback")[:10]]
        report.details += [*lines, "```", ""]


async def profile_play(rig: Rig, calls: int) -> None:
    """Print pyinstrument's view of play_prompt and rest_command over N calls each."""
    from pyinstrument import Profiler  # benchmark-only requirement

    tokens = await setup_rest_commands(rig)
    by_name = {(c.name, c.variant): c for c in contenders(rig, tokens)}
    for key in (("play_prompt", "HTTPS"), ("rest_command", "HTTPS")):
        contender = by_name[key]
        contender.before()
        for _ in range(100):
            await contender.call()
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        for index in range(calls):
            await contender.call()
            if index % 500 == 0:
                rig.https_pbx.requests.clear()
        profiler.stop()
        print(f"\n===== {key[0]} ({key[1]}), {calls} calls =====")
        print(
            profiler.output_text(
                unicode=True, color=False, show_all=False, flat=True, time="percent_of_total"
            )
        )


# ------------------------------------------------------------------------- output


def table(rows: list[Row]) -> str:
    lines = ["| what | value | ratio | target | verdict |", "|---|---|---|---|---|"]
    lines += [
        f"| {row.what} | {row.value} | {row.ratio} | {row.target} | {row.verdict} |" for row in rows
    ]
    return "\n".join(lines)


def environment() -> str:
    versions = {name: importlib.metadata.version(name) for name in ("homeassistant", "aiohttp")}
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Home Assistant {versions['homeassistant']}, "
        f"aiohttp {versions['aiohttp']}"
    )


def markdown(report: Report, settings: Settings, seconds: float) -> str:
    mode = "quick (`--quick`)" if settings.quick else "full"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    missed = report.failed
    summary = (
        "All targets met."
        if not missed
        else f"{len(missed)} target(s) missed: " + "; ".join(row.what for row in missed)
    )
    parts = [
        "# Voice Prompt benchmark results",
        "",
        f"{stamp}, {mode} run of `benchmarks/run.py` ({seconds:.0f} s). {environment()}.",
        "",
        table(report.ordered()),
        "",
        summary,
        "",
        "## How these were measured",
        "",
        "- Home Assistant runs in-process (pytest-homeassistant-custom-component's "
        "`async_test_home_assistant`, without pytest) with this repository's integration; "
        "the fake Yeastar PBX (`tests/fakes/yeastar.py`) runs in the same event loop on "
        "127.0.0.1, so its own request handling is inside every number alike.",
        "- **play_prompt**: `hass.services.async_call('voice_prompt', 'play_prompt', "
        "..., blocking=True, return_response=True)` on a loaded config entry. "
        "**rest_command**: Home Assistant's own rest_command POSTing the same JSON to the "
        "same URL with a token obtained by logging in first (what a user pastes). "
        "**raw aiohttp**: `session.post(...)` + `response.json()` on one kept-alive "
        "`aiohttp.ClientSession`, no Home Assistant at all.",
        "- Interleaving: every round calls all six contenders (play_prompt, rest_command, raw "
        "aiohttp, each over HTTPS and HTTP) once, in a freshly shuffled order (seeded), after "
        "warm-up rounds. Before each timed call the event loop gets "
        f"{SETTLE_ITERATIONS} turns to finish the previous call's leftovers (connection "
        "release, the fake's bookkeeping), so no contender pays for another. Times from "
        "`time.perf_counter_ns()`; ratios are the median of the per-round ratios.",
        "- HTTP variant: the integration always speaks HTTPS, so the entry is set up "
        "against the HTTPS fake and, for the HTTP rounds only, its "
        "`entry.runtime_data.client` is swapped for a `YeastarClient(..., scheme='http')` "
        "on the same Home Assistant session, pointing at a second, plain-HTTP fake.",
        "- Broadcast: the fake sleeps 20 ms in every request; the action's fan-out runs "
        f"{DEFAULT_CONCURRENCY} requests at a time. The ideal counts round trips only; "
        "in this rig the fake's CPU work for the 100 requests shares the client's event "
        "loop and core, which a real PBX does not.",
        "- Logins: fresh entries against fresh fakes; the expected count is replayed from "
        "the fake's request log (one login per expiry that more traffic followed).",
        "- Start-up: setup = `hass.config_entries.async_setup()` of a new entry (login + "
        "device info + device registry), removed again between runs; import = "
        "`python -X importtime` in fresh interpreters.",
        "",
        "## Details",
        "",
        *report.details,
        "![per-call distributions](per_call.png)",
        "",
    ]
    return "\n".join(parts)


def chart(report: Report, settings: Settings, path: Path) -> bool:
    try:
        import matplotlib as mpl  # benchmark-only requirement

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is not installed: no chart (scripts/benchmark installs it)")
        return False
    names = ["play_prompt", "rest_command", "raw aiohttp"]
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    # A few slow outliers (machine noise) would squash the plot: the view stops at 1.5 x
    # the largest p95, and the violins with it.
    top = 1.5 * max(percentile(values, 95) for values in report.samples.values()) / 1000
    for ax, variant in zip(axes, ("HTTPS", "HTTP"), strict=True):
        data = [[ns / 1000 for ns in report.samples[(name, variant)]] for name in names]
        shown = [[v for v in values if v <= top] for values in data]
        parts = ax.violinplot(shown, showextrema=False, widths=0.8)
        for body, color in zip(parts["bodies"], colors, strict=True):
            body.set_facecolor(color)
            body.set_alpha(0.35)
        ax.boxplot(
            data,
            whis=(5, 95),
            showfliers=False,
            widths=0.25,
            medianprops={"color": "black", "linewidth": 1.5},
        )
        for position, values in enumerate(data, start=1):
            ax.annotate(
                f"{median(values):,.0f} µs",
                (position, median(values)),
                xytext=(18, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
            )
        ax.set_xticks([1, 2, 3], names)
        ax.set_title(f"{variant}: per-call time, {len(data[0])} calls each")
        ax.set_ylim(bottom=0, top=top * 1.08)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("µs per call (box: quartiles, whiskers: p5\N{EN DASH}p95)")
    fig.text(
        0.99,
        0.01,
        f"cut at {top:,.0f} µs (1.5 \N{MULTIPLICATION SIGN} the largest p95)",
        ha="right",
        fontsize=8,
        color="gray",
    )
    fig.suptitle(
        "voice_prompt.play_prompt vs rest_command vs raw aiohttp against the fake PBX "
        f"({'quick' if settings.quick else 'full'} run)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- main


@contextlib.asynccontextmanager
async def rig_running(tmp: Path) -> Any:
    cert, key = make_self_signed_cert(tmp / "tls")
    ssl_ctx = server_ssl_context(cert, key)
    https_pbx = await start_pbx("369364835218", ssl_ctx)
    http_pbx = await start_pbx("369364835219", None)
    config_dir = tmp / "config"
    config_dir.mkdir()
    async with (
        async_test_home_assistant(config_dir=str(config_dir)) as hass,
        aiohttp.ClientSession() as raw_session,
    ):
        # The test harness hides custom integrations; a real config dir would not.
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
        frame.async_setup(hass)
        # The integration depends on webhook -> http: keep http on 127.0.0.1 (it is not
        # started here, as the harness starts in the running state, but to be safe).
        http_port = unused_port()
        http_config = {"http": {"server_host": "127.0.0.1", "server_port": http_port}}
        assert await async_setup_component(hass, "http", http_config)
        rig = Rig(hass, https_pbx, http_pbx, raw_session, ssl_ctx)
        try:
            yield rig
        finally:
            if rig.entry is not None and rig.https_client is not None:
                use_client(rig, rig.https_client)
            for entry in hass.config_entries.async_entries(DOMAIN):
                if entry.state is ConfigEntryState.LOADED:
                    await hass.config_entries.async_unload(entry.entry_id)
            if rig.http_client is not None:
                await rig.http_client.async_close()
            await hass.async_stop(force=True)
            await https_pbx.close()
            await http_pbx.close()


def _plain_resolver(_hass: HomeAssistant) -> aiohttp.abc.AbstractResolver:
    """Home Assistant's resolver would start a zeroconf (mDNS) instance on the LAN."""
    return aiohttp.ThreadedResolver()


async def main_async(args: argparse.Namespace, settings: Settings) -> Report:
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="voice-prompt-bench-") as tmp,
        patch("homeassistant.helpers.aiohttp_client._async_make_resolver", _plain_resolver),
    ):
        async with rig_running(Path(tmp)) as rig:
            hass = rig.hass
            if "setup" in args.only:
                report.section = "setup"
                await bench_setup(rig, settings, report)

            rig.entry = new_entry(hass, rig.https_pbx)
            await setup_entry(hass, rig.entry)
            rig.https_client = rig.entry.runtime_data.client
            rig.http_client = YeastarClient(
                async_get_clientsession(hass, verify_ssl=False),
                rig.http_pbx.host,
                port=rig.http_pbx.port,
                username=USERNAME,
                password=PASSWORD,
                verify_ssl=False,
                scheme="http",
            )
            if args.profile:
                await profile_play(rig, args.profile)
                return report
            sections = {
                "per_call": bench_per_call,
                "broadcast": bench_broadcast,
                "logins": bench_logins,
                "memory": bench_memory,
            }
            for name, bench in sections.items():
                if name in args.only:
                    report.section = name
                    await bench(rig, settings, report)
    if "import" in args.only:
        report.section = "import"
        bench_import(settings, report)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark voice_prompt.play_prompt against rest_command and raw aiohttp.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer calls and repeats (< 1 minute); prints only, unless --write",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="write benchmarks/RESULTS.md and benchmarks/per_call.png also in --quick mode "
        "or with --only",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, even in a full run")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SECTIONS),
        metavar="SECTIONS",
        help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--calls", type=int, help="timed calls per contender (default 500)")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="instead of benchmarking, print pyinstrument profiles of N play_prompt and "
        "N rest_command calls",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if unknown := args.only - set(SECTIONS):
        say(f"unknown section(s): {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
        return 2
    settings = QUICK if args.quick else FULL
    if args.calls:
        settings = Settings(**{**settings.__dict__, "calls": args.calls})
    started = time.perf_counter()
    report = asyncio.run(
        main_async(args, settings), loop_factory=HassEventLoopPolicy(False).new_event_loop
    )
    if args.profile:
        return 0
    seconds = time.perf_counter() - started
    text = markdown(report, settings, seconds)
    print(text)
    complete = args.only == set(SECTIONS)
    write = (args.write or (complete and not settings.quick)) and not args.no_write
    if write:
        RESULTS_MD.write_text(text, encoding="utf-8")
        drawn = bool(report.samples) and chart(report, settings, CHART_PNG)
        say(
            f"wrote {RESULTS_MD.relative_to(ROOT)}"
            + (f" and {CHART_PNG.relative_to(ROOT)}" if drawn else "")
        )
    say(
        f"done in {seconds:.0f} s; "
        + ("all targets met" if not report.failed else f"{len(report.failed)} target(s) missed")
    )
    return 1 if args.strict and report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
