"""Run a real Home Assistant with Voice Prompt, against the PBX simulator or a real PBX.

``develop``: start the PBX simulator (unless --pbx-host is given), the Microsoft Graph
simulator and Home Assistant on ./config (its configuration.yaml is written once and then
kept as the user changes it), print what to do next, and stop everything on Ctrl-C.
``demo``: the same, headless and one-shot: onboard a user over the HTTP API, add the PBX
through the config-flow REST API, call ``voice_prompt.play_prompt`` over the websocket,
print what happened, stop everything. Exit 0 on success, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass
import importlib.metadata
import json
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_pbx

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "voice_prompt"
CLIENT_ID = "http://127.0.0.1/"
DEMO_USER = ("demo", "demo-password-123")
SIM_USERNAME = "api"
SIM_PASSWORD = "VoicePrompt-Demo1"
# The Graph simulator's default app (tests/fakes/graph.py) and a Teams user to call.
GRAPH_APP = {
    "tenant_id": "11111111-2222-3333-4444-555555555555",
    "client_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "client_secret": "graph-secret-value",
}
TEAMS_USER = "6e5b5c1a-0d3e-4b8f-9a0c-2f4d6b8a1c3e"
# The P-Series simulator's API application (tests/fakes/yeastar_p.py).
P_APP = {"client_id": "vp-demo-client", "client_secret": "VoicePrompt-P-Secret1"}
DEMO_TTS = ROOT / "scripts" / "demo_tts" / "espeak_demo"
# Microsoft must reach Home Assistant over HTTPS; the simulator delivers to the real
# local port instead, so any https:// name works here.
DEMO_EXTERNAL_URL = "https://ha.example.test"

# Written once (develop keeps what you change): what a normal install has, and nothing of the
# core configuration (location, units, time zone, URLs). That lives in Home Assistant's storage,
# set by onboarding or Settings → System, so those pages are not locked by YAML (Teams needs an
# external URL set under Settings → System → Network).
CONFIGURATION_YAML = """\
# Written once by scripts/run_ha.py ({mode}); yours to change: develop keeps it at later starts.
# The http section is in http.yaml, which every start rewrites (develop --ha-port).
frontend:
config:
http: !include http.yaml
automation: !include automations.yaml
script: !include scripts.yaml
scene: !include scenes.yaml
# A spoken message needs a text-to-speech engine: Debian's espeak-ng, offline
# (scripts/demo_tts/espeak_demo, a demo-only platform, not part of Voice Prompt).
tts:
  - platform: espeak_demo
logger:
  default: warning
  logs:
    custom_components.voice_prompt: debug
    homeassistant.setup: info
"""
HTTP_YAML = """\
# Rewritten by scripts/run_ha.py at every start (the port is its --ha-port).
server_host: 127.0.0.1
server_port: {port}
"""
# The files configuration.yaml includes, as a new installation has them.
INCLUDED_FILES = {"automations.yaml": "[]\n", "scripts.yaml": "", "scenes.yaml": "[]\n"}
# What configuration.yaml started with before develop kept it (it was rewritten every start).
OLD_CONFIG_MARKER = "# Written by scripts/run_ha.py: a small Home Assistant"
# The core configuration the demo (and benchmark, screenshots) sets through the API after
# onboarding, as a user does in the browser.
CORE_CONFIG = {
    "latitude": 52.37,
    "longitude": 4.89,
    "elevation": 0,
    "unit_system": "metric",
    "time_zone": "UTC",
    "country": "NL",
    "currency": "EUR",
}


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


@dataclass
class Pbx:
    """Where the PBX is and how to log in."""

    host: str
    port: int
    username: str
    password: str
    verify_ssl: bool


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_config(config_dir: Path, port: int, mode: str, *, keep: bool = False) -> bool:
    """Link this repository's integration into ``config_dir`` and write its YAML.

    configuration.yaml (and the files it includes) is written when missing; with ``keep``
    an existing one stays as the user left it (one from before develop kept it is replaced).
    http.yaml follows ``port`` at every start. Returns whether configuration.yaml was written.
    """
    components = config_dir / "custom_components"
    components.mkdir(parents=True, exist_ok=True)
    for name, source in ((DOMAIN, ROOT / "custom_components" / DOMAIN), ("espeak_demo", DEMO_TTS)):
        link = components / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source, target_is_directory=True)
    config = config_dir / "configuration.yaml"
    write = (
        not keep
        or not config.exists()
        or config.read_text(encoding="utf-8").startswith(OLD_CONFIG_MARKER)
    )
    if write:
        config.write_text(CONFIGURATION_YAML.format(mode=mode), encoding="utf-8")
    for name, content in INCLUDED_FILES.items():
        if not (config_dir / name).exists():
            (config_dir / name).write_text(content, encoding="utf-8")
    (config_dir / "http.yaml").write_text(HTTP_YAML.format(port=port), encoding="utf-8")
    return write


def start_fake(module: str, port: int, log: Any, *options: str) -> subprocess.Popen[bytes]:
    """Start one of the fakes the tests use (``tests.fakes.<module>``) as a program."""
    return subprocess.Popen(
        [sys.executable, "-u", "-m", f"tests.fakes.{module}", "--port", str(port), *options],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def graph_options(ha_port: int) -> list[str]:
    """The Graph simulator delivers notifications to Home Assistant's own port."""
    return [
        "--notification-base",
        f"http://127.0.0.1:{ha_port}",
        "--notify-delay",
        "0.3",
        "--prompt-seconds",
        "0.5",
    ]


def home_assistant_command(config_dir: Path) -> list[str]:
    """Home Assistant on ``config_dir``, never installing packages by itself.

    Its installer would upgrade what the venv pins (pycares 4.11.0 above all: 5.x breaks
    every DNS lookup of Home Assistant 2025.4); scripts/setup installs what it loads.
    """
    return [sys.executable, "-m", "homeassistant", "-c", str(config_dir), "--skip-pip"]


def installed_packages() -> dict[str, str]:
    """Name → version of every distribution in this venv."""
    return {
        dist.metadata["Name"].lower(): dist.version for dist in importlib.metadata.distributions()
    }


def changed_packages(before: dict[str, str]) -> list[str]:
    """What differs from ``before`` (Home Assistant must not have installed anything)."""
    after = installed_packages()
    return sorted(
        f"{name} {before.get(name, '-')} → {after.get(name, '-')}"
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name)
    )


def check_venv_unchanged(before: dict[str, str]) -> None:
    """Fail the demo when Home Assistant installed or upgraded anything."""
    if changed := changed_packages(before):
        raise DemoError(f"Home Assistant changed the venv: {', '.join(changed)}")
    show("venv", f"unchanged ({len(before)} packages, pycares {before.get('pycares')})")


def start_home_assistant(
    config_dir: Path, log: Any, graph_simulator: str | None = None
) -> subprocess.Popen[bytes]:
    """Start Home Assistant on the prepared config folder (optionally against the Graph fake)."""
    env = dict(os.environ)
    if graph_simulator:
        env["VOICE_PROMPT_GRAPH_SIMULATOR"] = graph_simulator
    return subprocess.Popen(
        home_assistant_command(config_dir),
        # Not the repository: its custom_components/ would hide the config's (espeak_demo).
        cwd=config_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """Stop a child with SIGTERM, then SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, limit: float
) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{what} exited with code {process.returncode} before it was ready")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.3)
    raise DemoError(f"{what} did not open port {port} within {limit:.0f} s")


async def wait_for_home_assistant(
    session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]
) -> None:
    """Wait until the HTTP API answers (onboarding is available before login)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"Home Assistant exited with code {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/api/onboarding") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.5)
    raise DemoError("Home Assistant did not answer within 180 s")


async def onboard(session: aiohttp.ClientSession, base: str) -> str:
    """Create the demo owner through onboarding and return an access token."""
    username, password = DEMO_USER
    async with session.post(
        f"{base}/api/onboarding/users",
        json={
            "client_id": CLIENT_ID,
            "name": "Demo",
            "username": username,
            "password": password,
            "language": "en",
        },
    ) as response:
        if response.status != 200:
            raise DemoError(
                f"onboarding refused the user: HTTP {response.status} {await response.text()}"
            )
        auth_code = (await response.json())["auth_code"]
    async with session.post(
        f"{base}/auth/token",
        data={"grant_type": "authorization_code", "code": auth_code, "client_id": CLIENT_ID},
    ) as response:
        if response.status != 200:
            raise DemoError(f"token exchange failed: HTTP {response.status}")
        token = str((await response.json())["access_token"])
    headers = {"Authorization": f"Bearer {token}"}
    for step, body in (
        ("core_config", {}),
        ("analytics", {}),
        ("integration", {"client_id": CLIENT_ID, "redirect_uri": f"{CLIENT_ID}?auth_callback=1"}),
    ):
        async with session.post(
            f"{base}/api/onboarding/{step}", json=body, headers=headers
        ) as response:
            if response.status != 200:
                raise DemoError(f"onboarding step {step}: HTTP {response.status}")
    await update_core_config(session, base, token, CORE_CONFIG)
    return token


async def update_core_config(
    session: aiohttp.ClientSession, base: str, token: str, values: dict[str, Any]
) -> None:
    """Change the core configuration as Settings → System does (config/core/update)."""
    async with session.ws_connect(f"{base}/api/websocket") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": token})
        if (auth := await ws.receive_json()).get("type") != "auth_ok":
            raise DemoError(f"websocket auth failed: {auth}")
        await ws.send_json({"id": 1, "type": "config/core/update", **values})
        reply = await ws.receive_json()
    if not reply.get("success"):
        raise DemoError(f"config/core/update refused {sorted(values)}: {reply.get('error')}")


async def add_entry(
    session: aiohttp.ClientSession, base: str, token: str, step: str, form: dict[str, Any]
) -> dict[str, Any]:
    """Walk the config flow over REST as the UI does: menu → ``step``'s form → entry."""
    headers = {"Authorization": f"Bearer {token}"}
    flow_url = f"{base}/api/config/config_entries/flow"

    async def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
        async with session.post(url, json=body, headers=headers) as response:
            data: dict[str, Any] = await response.json()
            if response.status != 200:
                raise DemoError(f"config flow: HTTP {response.status} {data}")
            return data

    menu = await post(flow_url, {"handler": DOMAIN, "show_advanced_options": False})
    shown = await post(f"{flow_url}/{menu['flow_id']}", {"next_step_id": step})
    show(
        f"menu {menu.get('menu_options')} → {step}", {k: shown.get(k) for k in ("type", "step_id")}
    )
    result = await post(f"{flow_url}/{menu['flow_id']}", form)
    if result.get("type") == "form" and result.get("step_id") == "certificate":
        # A self-signed certificate: the form shows its fingerprint; accept it as a user does.
        show("certificate shown", result.get("description_placeholders"))
        result = await post(f"{flow_url}/{menu['flow_id']}", {})
    if result.get("type") != "create_entry":
        raise DemoError(
            f"the {step} flow did not create an entry: {result.get('errors') or result}"
        )
    entry = dict(result["result"])
    show(
        "form submitted",
        {"title": result["title"], "entry_id": entry["entry_id"], "state": entry.get("state")},
    )
    return entry


async def add_pbx(
    session: aiohttp.ClientSession, base: str, token: str, pbx: Pbx
) -> dict[str, Any]:
    """A Yeastar S-Series PBX with API username and password."""
    form = {
        "host": pbx.host,
        "port": pbx.port,
        "username": pbx.username,
        "password": pbx.password,
        "verify_ssl": pbx.verify_ssl,
    }
    return await add_entry(session, base, token, "yeastar", form)


async def add_graph(session: aiohttp.ClientSession, base: str, token: str) -> dict[str, Any]:
    """The Graph simulator's Teams app."""
    return await add_entry(session, base, token, "graph", GRAPH_APP)


async def play(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    entry_id: str,
    extension: Any,
    prompt: Any,
) -> dict[str, Any]:
    """Call voice_prompt.play_prompt on a PBX entry over the websocket."""
    data = {"config_entry_id": entry_id, "target": extension, "prompt": prompt}
    return await call_action(session, base, token, data)


async def call_action(
    session: aiohttp.ClientSession, base: str, token: str, service_data: dict[str, Any]
) -> dict[str, Any]:
    """Call voice_prompt.play_prompt over the websocket and return its response."""
    async with session.ws_connect(f"{base}/api/websocket") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": token})
        auth = await ws.receive_json()
        if auth.get("type") != "auth_ok":
            raise DemoError(f"websocket auth failed: {auth}")
        request = {
            "id": 1,
            "type": "call_service",
            "domain": DOMAIN,
            "service": "play_prompt",
            "service_data": service_data,
            "return_response": True,
        }
        show("websocket call_service", request)
        await ws.send_json(request)
        reply: dict[str, Any] = await ws.receive_json()
    if not reply.get("success"):
        raise DemoError(f"play_prompt failed: {reply.get('error')}")
    return dict(reply["result"]["response"])


def check_calls(response: dict[str, Any], expected: int, status: str | None = None) -> None:
    """Every target must have a call id (and, waited for, the outcome ``status``)."""
    calls = response.get("calls", [])
    if len(calls) != expected:
        raise DemoError(f"expected {expected} call ids, got {response}")
    if status is not None and any(call.get("status") != status for call in calls):
        raise DemoError(f"expected every call to end {status}, got {response}")


def show(title: str, data: Any) -> None:
    """Print one transcript step."""
    print(f"\n--- {title}")
    print(json.dumps(data, indent=2, ensure_ascii=False) if not isinstance(data, str) else data)
    sys.stdout.flush()


def tail(path: Path, needle: str) -> list[str]:
    """Lines of a log that contain ``needle``."""
    return [
        line.rstrip() for line in path.read_text(errors="replace").splitlines() if needle in line
    ]


async def pbx_demo(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    pbx: Pbx,
    extensions: list[str],
    *,
    wait: bool,
) -> None:
    """Add the PBX and ring one extension, then a list of them (waiting for the outcomes).

    ``wait``: the simulator reports how each call ended to Home Assistant's webhook.
    """
    entry = await add_pbx(session, base, token, pbx)
    one = await play(session, base, token, entry["entry_id"], extensions[0], "hello111+queue1")
    show("response (one extension: placed)", one)
    data = {"config_entry_id": entry["entry_id"], "target": extensions, "prompt": ["doorbell"]}
    many = await call_action(session, base, token, data | ({"wait": True} if wait else {}))
    show(f"response (a list of extensions{', waited for' if wait else ''})", many)
    check_calls(one, 1)
    check_calls(many, len(extensions), "played" if wait else None)


async def p_series_demo(session: aiohttp.ClientSession, base: str, token: str, port: int) -> None:
    """Add the P-Series simulator; a prompt with repeat and volume, then a spoken message."""
    form = {"host": "127.0.0.1", "port": port, **P_APP, "verify_ssl": False}
    entry = await add_entry(session, base, token, "yeastar_p", form)
    prompt = {"config_entry_id": entry["entry_id"], "target": "1000", "prompt": "doorbell"}
    played = await call_action(
        session, base, token, prompt | {"repeat": 2, "volume": 12, "wait": True}
    )
    show("P-Series: response (prompt, repeat 2, volume 12, waited for)", played)
    spoken = {
        "config_entry_id": entry["entry_id"],
        "target": ["1000", "6300"],  # an extension and a paging group
        "message": "Lunch is ready in the kitchen.",
        # Onboarding adds Google Translate's engine, which needs the internet.
        "tts_engine": "espeak_demo",
    }
    said = await call_action(session, base, token, spoken)
    show("P-Series: response (a spoken message to an extension and a paging group)", said)
    check_calls(played, 1, "played")
    check_calls(said, 2)


async def teams_demo(session: aiohttp.ClientSession, base: str, token: str) -> None:
    """Add the Graph simulator's app and call a Teams user: place, speak, hang up.

    The simulator downloads the spoken message from Home Assistant's TTS proxy (through
    the external URL) and checks it is a 16 kHz mono 16-bit WAV, as Teams does.
    """
    teams = await add_graph(session, base, token)
    request = {
        "config_entry_id": teams["entry_id"],
        "target": TEAMS_USER,
        "message": "Someone is at the front door.",
        "tts_engine": "espeak_demo",
        "client_context": "demo-doorbell",
    }
    show("Teams: websocket call_service", request)
    response = await call_action(session, base, token, request)
    show("Teams: response (placed, played, hung up)", response)
    calls = response.get("calls") or [{}]
    if calls[0].get("status") != "played" or not calls[0].get("hung_up"):
        raise DemoError(f"the Teams call did not complete: {response}")


async def asterisk_demo(session: aiohttp.ClientSession, base: str, token: str, work: Path) -> None:
    """A real Asterisk and a real SIP phone: add the PBX, ring 1000, keep what it heard.

    Where the pair cannot run here, one line says why and the demo goes on without it.
    """
    pbx = await asyncio.to_thread(real_pbx.start, ("1000",))
    if isinstance(pbx, str):
        show("Asterisk (real PBX)", f"left out: {pbx}")
        return
    try:
        show(
            "Asterisk (real PBX)",
            f"Asterisk 22 with ARI on {pbx.ari_url}, a baresip phone on 1000 (registered; "
            f"{pbx.started_in or 0:.1f} s to start)",
        )
        entry = await add_entry(session, base, token, "asterisk", real_pbx.entry_form(pbx))
        since = time.time()
        request = {
            "config_entry_id": entry["entry_id"],
            "target": "1000",
            "prompt": "hello-world",
            "message": "Someone is at the front door.",
            "tts_engine": "espeak_demo",
            "wait": True,
        }
        response = await call_action(session, base, token, request)
        show("Asterisk: response (waited for the outcome)", response)
        calls = response.get("calls") or [{}]
        if calls[0].get("status") != "played":
            raise DemoError(f"the Asterisk call did not play: {response}")
        try:
            recording = await pbx.phone("1000").recording(since=since)
        except real_pbx.PbxError as err:
            raise DemoError(str(err)) from err
        heard = real_pbx.keep(recording, work / "asterisk-phone-1000.wav")
        hello = real_pbx.find_sound(pbx, "hello-world", recording)
        show("what the phone heard", f"{heard}\nhello-world found in it: {hello}")
        # Below 0.9 the sound is not what the phone heard (it scores 0.99 and more here).
        if heard.level_dbfs < -50 or hello.score < 0.9:
            raise DemoError(f"the phone did not hear the call: {heard}; hello-world {hello}")
    finally:
        await asyncio.to_thread(pbx.stop)


class Processes:
    """The programs a demo started, each with its log file; stopped together, last first."""

    def __init__(self, work: Path) -> None:
        """Logs go to ``work``."""
        self.work = work
        self.logs: dict[str, Path] = {}
        self._running: list[subprocess.Popen[bytes]] = []

    def log(self, name: str) -> Any:
        """A new log file for ``name`` (the caller's process writes into it)."""
        self.logs[name] = self.work / f"{name}.log"
        return self.logs[name].open("wb")

    async def fake(self, module: str, what: str, *options: str) -> int:
        """Start a fake on a free port and wait until it listens; return the port."""
        port = free_port()
        process = start_fake(module, port, self.log(module), *options)
        self._running.append(process)
        await wait_for_port(port, process, what, 30)
        return port

    def add(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """Stop ``process`` with the others."""
        self._running.append(process)
        return process

    def tail(self, name: str, lines: int) -> str:
        """The last lines of a log."""
        return "\n".join(tail(self.logs[name], "")[-lines:])

    def stop(self) -> None:
        """Stop everything (Home Assistant first: it was started last)."""
        for process in reversed(self._running):
            stop(process)


async def run_demo(args: argparse.Namespace) -> int:
    """Start everything, drive it like a user would, stop everything."""
    started = time.monotonic()
    processes = Processes(Path(tempfile.mkdtemp(prefix="voice-prompt-demo-")))
    packages = installed_packages()
    try:
        ha_port = args.ha_port or free_port()
        if args.pbx_host:
            pbx = Pbx(
                args.pbx_host, args.pbx_port, args.pbx_username, args.pbx_password, args.verify_ssl
            )
        else:
            port = await processes.fake("yeastar", "the PBX simulator")
            pbx = Pbx("127.0.0.1", port, SIM_USERNAME, SIM_PASSWORD, False)
            show("PBX simulator", f"https://127.0.0.1:{port} (self-signed), user {SIM_USERNAME}")
        p_port = await processes.fake("yeastar_p", "the P-Series simulator")
        show("Yeastar P-Series simulator", f"https://127.0.0.1:{p_port} (self-signed)")
        graph_port = await processes.fake(
            "graph",
            "the Graph simulator",
            *graph_options(ha_port),
            "--check-media",
            "--media-host",
            f"{URL(DEMO_EXTERNAL_URL).host}=http://127.0.0.1:{ha_port}",
        )
        graph_base = f"http://127.0.0.1:{graph_port}"
        show("Microsoft Graph simulator", f"{graph_base} (notifications to Home Assistant)")
        config_dir = processes.work / "config"
        prepare_config(config_dir, ha_port, "demo")
        home_assistant = processes.add(
            start_home_assistant(config_dir, processes.log("home-assistant"), graph_base)
        )
        base = f"http://127.0.0.1:{ha_port}"
        async with aiohttp.ClientSession() as session:
            await wait_for_home_assistant(session, base, home_assistant)
            show("Home Assistant", f"{base} answered after {time.monotonic() - started:.1f} s")
            token = await onboard(session, base)
            show("onboarding", f"user '{DEMO_USER[0]}' created, access token obtained")
            # As Settings → System → Network does (not YAML, which would lock that page).
            # Asterisk fetches speech from the internal URL, Teams from the external one.
            urls = {"external_url": DEMO_EXTERNAL_URL, "internal_url": base}
            await update_core_config(session, base, token, urls)
            show("Home Assistant URLs", f"{urls} (config/core/update)")
            await pbx_demo(session, base, token, pbx, args.extension, wait=not args.pbx_host)
            await p_series_demo(session, base, token, p_port)
            await teams_demo(session, base, token)
            if args.asterisk:
                await asterisk_demo(session, base, token, processes.work)
        if not args.pbx_host:
            show("what the PBX simulator received", processes.tail("yeastar", 12))
        show("what the P-Series simulator received", processes.tail("yeastar_p", 8))
        show("what the Graph simulator saw", processes.tail("graph", 10))
        show(
            "integration log (excerpt)",
            "\n".join(tail(processes.logs["home-assistant"], "voice_prompt")[-8:]),
        )
        stop(home_assistant)
        check_venv_unchanged(packages)
        print(f"\nDemo finished in {time.monotonic() - started:.1f} s: OK")
        return 0
    except DemoError as err:
        print(f"\nDemo FAILED: {err}", file=sys.stderr)
        print(f"Logs: {' '.join(map(str, processes.logs.values()))}", file=sys.stderr)
        if "home-assistant" in processes.logs:
            for line in (
                processes.logs["home-assistant"].read_text(errors="replace").splitlines()[-30:]
            ):
                print(f"  ha| {line}", file=sys.stderr)
        return 1
    finally:
        processes.stop()


def develop_instructions(
    args: argparse.Namespace, config_dir: Path, written: bool, asterisk: real_pbx.RealPbx | str
) -> str:
    """What to do in the browser once develop started everything."""
    port = args.ha_port or 8123
    pbx = (
        f"     host 127.0.0.1, port {args.sim_port}, username {SIM_USERNAME}, password "
        f"{SIM_PASSWORD},\n"
        "     certificate check off. To try reauthentication, type 'password NEW-PASSWORD'\n"
        "     and Enter here: the simulator changes its API password and ends its sessions,\n"
        "     so the next action asks you to sign in again.\n"
        if not args.pbx_host
        else f"     host {args.pbx_host}, port {args.pbx_port}, your API user and password.\n"
    )
    kept = "written" if written else "kept as you left it"
    return (
        "\n"
        f"Home Assistant is starting on http://127.0.0.1:{port}\n"
        f"(config in {config_dir}; configuration.yaml {kept}).\n"
        "  1. Open it and create your account (onboarding).\n"
        "  2. Settings → Devices & services → Add integration → Voice Prompt →\n"
        "     Yeastar S-Series PBX (API username and password):\n"
        f"{pbx}"
        "  3. Developer tools → Actions → Voice Prompt: Play prompt.\n"
        f"  Microsoft Teams, through the Graph simulator on port {args.graph_port}:\n"
        "  a. Settings → System → Network → Home Assistant URL → Internet: any https://\n"
        f"     address, e.g. {DEMO_EXTERNAL_URL} (the simulator reports to port {port}).\n"
        "  b. Add integration → Voice Prompt → Microsoft Teams (Microsoft Graph): tenant\n"
        f"     {GRAPH_APP['tenant_id']}, client {GRAPH_APP['client_id']},\n"
        f"     secret {GRAPH_APP['client_secret']}; call the Teams user {TEAMS_USER}\n"
        "     with a prompt like https://media.example.test/doorbell.wav.\n"
        f"{asterisk_instructions(asterisk)}"
        "Press Ctrl-C to stop everything.\n"
    )


def asterisk_instructions(asterisk: real_pbx.RealPbx | str) -> str:
    """How to add the real Asterisk develop started, or why it is not there."""
    if isinstance(asterisk, str):
        return f"  Real Asterisk and SIP phones: left out ({asterisk}).\n"
    return (
        "  A real Asterisk with SIP phones (baresip, from the Debian sid root):\n"
        "  Add integration → Voice Prompt → Asterisk or FreePBX (Asterisk REST Interface):\n"
        f"{real_pbx.describe(asterisk)}"
        "     Play the prompt hello-world on 1000; the recording holds what the phone heard.\n"
    )


def run_develop(args: argparse.Namespace) -> int:
    """Run the simulators and Home Assistant in the foreground until Ctrl-C."""
    packages = installed_packages()
    config_dir = ROOT / "config"
    port = args.ha_port or 8123
    written = prepare_config(config_dir, port, "development", keep=True)
    simulators: list[subprocess.Popen[bytes]] = []
    asterisk = real_pbx.start() if args.asterisk else "--no-asterisk"
    if not args.pbx_host:
        # Its standard input is this terminal's: it takes 'password NEW' there.
        simulators.append(
            subprocess.Popen(
                [sys.executable, "-u", "-m", "tests.fakes.yeastar", "--port", str(args.sim_port)],
                cwd=ROOT,
            )
        )
    graph = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "tests.fakes.graph",
            "--port",
            str(args.graph_port),
            *graph_options(port),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    simulators.append(graph)
    env = dict(os.environ, VOICE_PROMPT_GRAPH_SIMULATOR=f"http://127.0.0.1:{args.graph_port}")
    home_assistant = subprocess.Popen(
        home_assistant_command(config_dir), cwd=config_dir, env=env, stdin=subprocess.DEVNULL
    )
    print(develop_instructions(args, config_dir, written, asterisk), flush=True)
    try:
        home_assistant.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(home_assistant)
        for simulator in simulators:
            stop(simulator)
        if not isinstance(asterisk, str):
            asterisk.stop()
        if changed := changed_packages(packages):
            print(f"WARNING: Home Assistant changed the venv: {', '.join(changed)}", flush=True)
    return 0


def main() -> int:
    """Parse the command line and run the chosen mode."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["develop", "demo"])
    parser.add_argument(
        "--ha-port",
        type=int,
        default=None,
        help="Home Assistant port (develop: 8123, demo: a free one)",
    )
    parser.add_argument(
        "--sim-port", type=int, default=8088, help="develop: the PBX simulator's port"
    )
    parser.add_argument(
        "--graph-port", type=int, default=8089, help="develop: the Graph simulator's port"
    )
    parser.add_argument("--pbx-host", help="a real PBX: no simulator is started")
    parser.add_argument("--pbx-port", type=int, default=8088)
    parser.add_argument("--pbx-username", default=os.environ.get("PBX_USERNAME", "api"))
    parser.add_argument("--pbx-password", default=os.environ.get("PBX_PASSWORD", ""))
    parser.add_argument("--verify-ssl", action="store_true")
    parser.add_argument(
        "--no-asterisk",
        dest="asterisk",
        action="store_false",
        help="leave out the real Asterisk and SIP phones (they run from the Debian sid root)",
    )
    parser.add_argument(
        "--extension", nargs="+", default=["1000", "1001", "1010"], help="demo: extensions to ring"
    )
    args = parser.parse_args()
    if args.mode == "demo":
        return asyncio.run(run_demo(args))
    return run_develop(args)


if __name__ == "__main__":
    sys.exit(main())
