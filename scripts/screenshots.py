"""Capture the README screenshots from the real Home Assistant frontend in headless Chromium.

Starts the PBX simulator and Home Assistant exactly like ``scripts/demo`` (the functions of
``scripts/run_ha.py``), onboards a user, signs the browser in by putting the frontend's own
``hassTokens`` into localStorage, and drives Chromium over its DevTools protocol:

1. ``docs/images/add_integration_menu.png``: Settings → Devices & services → Add integration →
   Voice Prompt, the menu of phone systems.
2. ``docs/images/yeastar_form.png``: the *Yeastar S-Series PBX* form (menu item clicked).
3. ``docs/images/action_developer_tools.png``: Developer tools → Actions with
   ``voice_prompt.play_prompt`` in YAML mode, performed against the simulator.

The browser never leaves 127.0.0.1: requests to brands.home-assistant.io are answered with the
integration's own icon, every other outside request is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Callable, Coroutine
import contextlib
import json
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_ha

WIDTH, HEIGHT = 1280, 800
BRAND_ICON = run_ha.ROOT / "custom_components" / run_ha.DOMAIN / "brand" / "icon.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WIDTH},{HEIGHT}",
]
DEMO_ACTION_DATA = {"target": ["1000", "1001"], "prompt": ["doorbell"]}

# Helpers injected into the page: the frontend is web components all the way down, so every
# query walks the open shadow roots.
DEEP_JS = """
window.__vp = {
  roots() {
    const out = [document];
    for (let i = 0; i < out.length; i++) {
      for (const el of out[i].querySelectorAll('*')) {
        if (el.shadowRoot) out.push(el.shadowRoot);
      }
    }
    return out;
  },
  all(selector) {
    return this.roots().flatMap((root) => Array.from(root.querySelectorAll(selector)));
  },
  text() {
    return this.roots()
      .map((root) => (root === document ? document.body?.innerText : root.textContent) || '')
      .join('\\n');
  },
  visible(el) {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  },
  clickText(tags, label) {
    const hits = this.all(tags).filter(
      (el) => this.visible(el) && (el.textContent || '').includes(label)
    );
    if (!hits.length) return false;
    hits[hits.length - 1].click();
    return true;
  },
};
"""


class ScreenshotError(Exception):
    """A step failed; the message says which."""


class DevTools:
    """A minimal Chrome DevTools Protocol client on one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]] = {}
        self._reader = asyncio.create_task(self._read())
        self._tasks: set[asyncio.Task[None]] = set()

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif (handler := self._handlers.get(data.get("method", ""))) is not None:
                task = asyncio.create_task(handler(data.get("params", {})))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ScreenshotError("Chromium closed the DevTools connection"))

    def on(
        self, method: str, handler: Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
    ) -> None:
        """Call ``handler`` with the params of every ``method`` event."""
        self._handlers[method] = handler

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command and return its result (raise on a protocol error)."""
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._ws.send_json({"id": self._next_id, "method": method, "params": params or {}})
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise ScreenshotError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting promises) and return its value."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            raise ScreenshotError(f"JavaScript failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def close(self) -> None:
        """Stop reading."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def start_chromium(binary: str, port: int, profile: Path, log: Any) -> subprocess.Popen[bytes]:
    """Headless Chromium with a fresh profile and the DevTools protocol on 127.0.0.1:port."""
    return subprocess.Popen(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def page_websocket_url(
    session: aiohttp.ClientSession, port: int, chromium: subprocess.Popen[bytes]
) -> str:
    """Wait for Chromium's DevTools endpoint and return the page target's websocket URL."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if chromium.poll() is not None:
            raise ScreenshotError(f"Chromium exited with code {chromium.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
                for target in targets:
                    if target.get("type") == "page":
                        return str(target["webSocketDebuggerUrl"])
        await asyncio.sleep(0.3)
    raise ScreenshotError("Chromium's DevTools endpoint did not answer within 60 s")


async def browser_tokens(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Sign in the demo user as the frontend would and return its ``hassTokens`` value.

    The frontend's client id is the page origin; its refresh token must belong to it.
    """
    client_id = f"{base}/"
    username, password = run_ha.DEMO_USER
    async with session.post(
        f"{base}/auth/login_flow",
        json={
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{client_id}?auth_callback=1",
        },
    ) as response:
        flow = await response.json()
    async with session.post(
        f"{base}/auth/login_flow/{flow['flow_id']}",
        json={"client_id": client_id, "username": username, "password": password},
    ) as response:
        login = await response.json()
    if login.get("type") != "create_entry":
        raise ScreenshotError(f"login refused: {login}")
    async with session.post(
        f"{base}/auth/token",
        data={"grant_type": "authorization_code", "code": login["result"], "client_id": client_id},
    ) as response:
        tokens: dict[str, Any] = await response.json()
    if "refresh_token" not in tokens:
        raise ScreenshotError(f"token exchange failed: {tokens}")
    return {
        "access_token": tokens["access_token"],
        "token_type": "Bearer",
        "expires_in": tokens["expires_in"],
        "refresh_token": tokens["refresh_token"],
        "hassUrl": base,
        "clientId": client_id,
        "expires": int(time.time() * 1000) + int(tokens["expires_in"]) * 1000,
    }


async def remove_default_entries(session: aiohttp.ClientSession, base: str, token: str) -> None:
    """Delete the entries onboarding created (Met.no, …): offline they show "Failed setup"."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/config/config_entries/entry"
    async with session.get(url, headers=headers) as response:
        entries: list[dict[str, Any]] = await response.json()
    for entry in entries:
        if entry["domain"] != run_ha.DOMAIN:
            async with session.delete(f"{url}/{entry['entry_id']}", headers=headers) as response:
                if response.status != 200:
                    raise ScreenshotError(f"could not remove {entry['domain']}: {response.status}")
    run_ha.show("removed default entries", sorted(entry["domain"] for entry in entries))


async def serve_offline(page: DevTools) -> None:
    """Answer brand images with the integration's icon; refuse every other outside request."""
    icon = base64.b64encode(BRAND_ICON.read_bytes()).decode()

    async def paused(params: dict[str, Any]) -> None:
        url = str(params["request"]["url"])
        if url.startswith("https://brands.home-assistant.io/") and f"/{run_ha.DOMAIN}/" in url:
            await page.send(
                "Fetch.fulfillRequest",
                {
                    "requestId": params["requestId"],
                    "responseCode": 200,
                    "responseHeaders": [{"name": "Content-Type", "value": "image/png"}],
                    "body": icon,
                },
            )
        elif url.startswith("https://brands.home-assistant.io/"):
            await page.send(
                "Fetch.fulfillRequest",
                {"requestId": params["requestId"], "responseCode": 404, "body": ""},
            )
        else:
            await page.send(
                "Fetch.failRequest",
                {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
            )

    page.on("Fetch.requestPaused", paused)
    await page.send(
        "Fetch.enable",
        {"patterns": [{"urlPattern": "https://*"}, {"urlPattern": "wss://*"}]},
    )


async def wait_until(page: DevTools, expression: str, what: str, limit: float = 45) -> None:
    """Poll a JavaScript condition (with ``__vp`` helpers) until it is true."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(ScreenshotError):
            last = await page.evaluate(f"(() => {{ {DEEP_JS}; return ({expression}); }})()")
            if last:
                return
        await asyncio.sleep(0.5)
    text = await page.evaluate(f"(() => {{ {DEEP_JS}; return __vp.text().slice(0, 1500); }})()")
    raise ScreenshotError(f"timed out waiting for {what} (last {last!r}); page text: {text!r}")


async def run_js(page: DevTools, body: str) -> Any:
    """Run a JavaScript function body with the ``__vp`` helpers."""
    return await page.evaluate(f"(() => {{ {DEEP_JS}; {body} }})()")


async def navigate(page: DevTools, url: str) -> None:
    """Open a URL and wait for the frontend to be signed in and rendered."""
    await page.send("Page.navigate", {"url": url})
    await wait_until(
        page,
        "document.readyState === 'complete' && __vp.all('ha-sidebar').length > 0",
        f"the frontend at {url}",
        90,
    )
    if await run_js(page, "return location.pathname.startsWith('/auth/');"):
        raise ScreenshotError("the browser was sent to the login page: tokens not accepted")


async def capture(page: DevTools, path: Path, settle: float = 1.5) -> None:
    """Let animations settle, then save a 1280x800 PNG."""
    await asyncio.sleep(settle)
    shot = await page.send("Page.captureScreenshot", {"format": "png"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    shown = path.relative_to(run_ha.ROOT) if path.is_relative_to(run_ha.ROOT) else path
    run_ha.show("screenshot", str(shown))


async def shoot_flow(page: DevTools, base: str, out_dir: Path) -> None:
    """The add-integration menu and the Yeastar form."""
    # 1. The add-integration dialog: the menu of phone systems.
    await navigate(page, f"{base}/config/integrations/dashboard/add?domain={run_ha.DOMAIN}")
    # The dashboard first asks "Do you want to set up Voice Prompt?": OK.
    await wait_until(
        page,
        "__vp.all('step-flow-menu').length > 0 || __vp.all('dialog-box').length > 0",
        "the set-up question or the menu",
    )
    await run_js(
        page,
        """
        for (const box of __vp.all('dialog-box')) {
          const buttons = Array.from(box.shadowRoot.querySelectorAll('ha-button, mwc-button'));
          const ok = buttons.find((el) => (el.textContent || '').trim() === 'OK');
          if (ok) { ok.click(); return true; }
        }
        return false;
        """,
    )
    await wait_until(
        page,
        "__vp.all('step-flow-menu').length > 0 && "
        "__vp.text().includes('Yeastar S-Series PBX (API username and password)')",
        "the Voice Prompt menu",
    )
    await capture(page, out_dir / "add_integration_menu.png")

    # 2. Click "Yeastar S-Series PBX (API username and password)": the form.
    clicked = await run_js(
        page,
        "return __vp.clickText('ha-list-item, mwc-list-item, ha-md-list-item, ha-list-item-new',"
        " 'API username and password');",
    )
    if not clicked:
        raise ScreenshotError("the Yeastar menu item was not found")
    await wait_until(
        page,
        "__vp.all('step-flow-form').length > 0 && __vp.text().includes('API username')",
        "the Yeastar form",
    )
    # Example values, as a user would type them (the password stays empty).
    await run_js(
        page,
        """
        const haForm = __vp.all('step-flow-form')
          .map((el) => el.shadowRoot && el.shadowRoot.querySelector('ha-form'))
          .find((el) => el);
        if (!haForm) return false;
        const value = {...(haForm.data || {}), host: '192.168.5.150', port: 8088,
                       username: 'api', verify_ssl: false};
        haForm.dispatchEvent(new CustomEvent('value-changed',
          {detail: {value}, bubbles: true, composed: true}));
        return true;
        """,
    )
    await wait_until(
        page,
        "__vp.all('ha-textfield, ha-selector-text').length > 0 && "
        "__vp.all('input').some((el) => el.value === '192.168.5.150')",
        "the example host in the form",
        15,
    )
    await capture(page, out_dir / "yeastar_form.png")


async def shoot_action(page: DevTools, base: str, out_dir: Path, entry_id: str) -> None:
    """The action in Developer tools, performed."""
    # 3. Developer tools → Actions, YAML mode, voice_prompt.play_prompt performed.
    state = {
        "action": f"{run_ha.DOMAIN}.play_prompt",
        "target": {},
        "data": {"config_entry_id": entry_id, **DEMO_ACTION_DATA},
    }
    await run_js(
        page,
        f"""
        localStorage.setItem('panel-dev-action-state-service-data', {json.dumps(json.dumps(state))});
        localStorage.setItem('panel-dev-action-state-yaml-mode', 'true');
        return true;
        """,
    )
    await navigate(page, f"{base}/developer-tools/action")
    await wait_until(
        page,
        "__vp.all('ha-code-editor').length > 0 && __vp.text().includes('config_entry_id')",
        "the action in YAML mode",
    )
    clicked = await run_js(
        page,
        "return __vp.clickText('ha-button, mwc-button, ha-progress-button', 'Perform action');",
    )
    if not clicked:
        raise ScreenshotError("the 'Perform action' button was not found")
    await wait_until(page, "__vp.text().includes('call_id')", "the action's response")
    # After the button's success tick is gone again.
    await capture(page, out_dir / "action_developer_tools.png", settle=4)


async def prepare_page(page: DevTools, base: str, tokens: dict[str, Any]) -> None:
    """Offline, 1280x800, and signed in before the first script of every page runs."""
    await serve_offline(page)
    await page.send("Page.enable")
    await page.send("Runtime.enable")
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    await page.send(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": (
                f"if (location.origin === {json.dumps(base)}) "
                f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))});"
            )
        },
    )


async def drive(
    args: argparse.Namespace,
    work: Path,
    logs: dict[str, Any],
    children: list[subprocess.Popen[bytes]],
) -> None:
    """Everything between starting the simulator and saving the last screenshot."""
    sim_port, ha_port, cdp_port = (run_ha.free_port() for _ in range(3))
    children.append(run_ha.start_fake("yeastar", sim_port, logs["simulator"]))
    await run_ha.wait_for_port(sim_port, children[-1], "the PBX simulator", 30)
    run_ha.prepare_config(work / "config", ha_port, "screenshots")
    children.append(run_ha.start_home_assistant(work / "config", logs["home-assistant"]))
    base = f"http://127.0.0.1:{ha_port}"
    async with aiohttp.ClientSession() as session:
        await run_ha.wait_for_home_assistant(session, base, children[-1])
        token = await run_ha.onboard(session, base)
        tokens = await browser_tokens(session, base)
        await remove_default_entries(session, base, token)
        run_ha.show("Home Assistant", f"{base}, user '{run_ha.DEMO_USER[0]}' signed in")

        children.append(start_chromium(args.chromium, cdp_port, work / "profile", logs["chromium"]))
        ws_url = await page_websocket_url(session, cdp_port, children[-1])
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            page = DevTools(ws)
            try:
                await prepare_page(page, base, tokens)
                # Menu and form while no PBX is configured; then add the PBX for the action.
                await shoot_flow(page, base, args.out_dir)
                pbx = run_ha.Pbx(
                    "127.0.0.1", sim_port, run_ha.SIM_USERNAME, run_ha.SIM_PASSWORD, False
                )
                entry = await run_ha.add_pbx(session, base, token, pbx)
                await shoot_action(page, base, args.out_dir, str(entry["entry_id"]))
            finally:
                await page.close()


async def run(args: argparse.Namespace) -> int:
    """Start the simulator, Home Assistant and Chromium; take the screenshots; stop all."""
    started = time.monotonic()
    args.out_dir = args.out_dir.resolve()
    work = Path(tempfile.mkdtemp(prefix="voice-prompt-screenshots-"))
    paths = {name: work / f"{name}.log" for name in ("simulator", "home-assistant", "chromium")}
    logs = {name: path.open("wb") for name, path in paths.items()}
    children: list[subprocess.Popen[bytes]] = []
    try:
        await drive(args, work, logs, children)
        print(f"\nScreenshots done in {time.monotonic() - started:.1f} s: {args.out_dir}")
        return 0
    except (ScreenshotError, run_ha.DemoError) as err:
        args.keep = True
        print(f"\nScreenshots FAILED: {err}", file=sys.stderr)
        print(f"Logs: {' '.join(str(path) for path in paths.values())}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):  # Chromium, Home Assistant, simulator
            run_ha.stop(child, 15)
        for log in logs.values():
            log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    """Parse the command line and take the screenshots."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument(
        "--out-dir", type=Path, default=run_ha.ROOT / "docs" / "images", help="where the PNGs go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its logs")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
