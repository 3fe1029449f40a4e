"""Walk the real Home Assistant frontend as a person does, check what it shows, take screenshots.

Starts the PBX and Microsoft Graph simulators and Home Assistant as ``scripts/demo`` does (the
functions of ``scripts/run_ha.py``), then drives Debian's Chromium (never a downloaded browser)
through Playwright, in the browser only:

1. onboarding: the owner's account, home location, country, analytics, done;
2. Settings → Devices & services → Add integration → Voice Prompt: the menu of phone systems;
3. the Yeastar S-Series form with a wrong password: the error names the PBX tried; then the
   right password: the entry is created;
4. Settings → System → Network: an external https:// URL (what Teams needs), then Add
   integration → Voice Prompt → Microsoft Teams against the Graph simulator;
5. Developer tools → Actions in UI mode, ``voice_prompt.play_prompt`` on the PBX entry and on
   the Teams entry: one success (the response on screen) and one refused input (its
   translated error) each.

Every step checks the texts on screen, and that no raw ``{placeholder}`` shows anywhere on
the page. ``--report`` writes the steps, their times and the screenshots as JSON (the test
``tests/test_browser.py`` reads it). The browser never leaves 127.0.0.1: brand images are
answered with the integration's icon (others with an empty image), other requests are refused.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import json
from pathlib import Path
import re
import shutil
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import (
    Error as PlaywrightError,
    Locator,
    Page,
    Route,
    async_playwright,
    expect,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_ha

WIDTH, HEIGHT = 1280, 800
ACTION_HEIGHT = 1300
BRAND_ICON = run_ha.ROOT / "custom_components" / run_ha.DOMAIN / "brand" / "icon.png"
# A transparent 1x1 PNG for every other brand image.
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000005000157a3b7a70000000049454e44ae426082"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
OWNER = ("Demo", *run_ha.DEMO_USER)
PBX_MENU_ITEM = "Yeastar S-Series PBX (API username and password)"
TEAMS_MENU_ITEM = "Microsoft Teams (Microsoft Graph)"
# What a raw ICU placeholder looks like on screen.
RAW_PLACEHOLDER = re.compile(r"\{\w+\}")
# The page's visible words: text nodes of the document and every open shadow root.
PAGE_TEXT_JS = """() => {
  const out = [];
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) out.push(child.data);
      else if (child.nodeType === Node.ELEMENT_NODE &&
               !['STYLE', 'SCRIPT', 'TEMPLATE'].includes(child.tagName)) {
        if (child.shadowRoot) walk(child.shadowRoot);
        walk(child);
      }
    }
  };
  walk(document.body);
  return out.join(' ');
}"""


class WalkError(Exception):
    """A step failed; the message says which and what the page showed."""


@dataclass
class Walk:
    """One run: where screenshots go, and what was done and seen."""

    page: Page
    base: str
    out_dir: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    screenshots: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """Time a step; on failure say which one it was."""
        started = time.monotonic()
        try:
            yield
        except (PlaywrightError, AssertionError) as err:
            raise WalkError(f"step {name!r} failed: {err}") from err
        await self.no_raw_placeholders(name)
        seconds = round(time.monotonic() - started, 1)
        self.steps.append({"name": name, "seconds": seconds})
        run_ha.show(f"browser: {name}", f"{seconds} s")

    async def no_raw_placeholders(self, name: str) -> None:
        """Fail when any text on the page still shows ``{name}``."""
        text = await self.page.evaluate(PAGE_TEXT_JS)
        if raw := sorted(set(RAW_PLACEHOLDER.findall(text))):
            raise WalkError(f"step {name!r}: the page shows raw placeholders {raw}")

    async def shot(self, name: str) -> None:
        """Save ``name`` (a PNG) once animations settled."""
        await self.page.wait_for_timeout(600)
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), animations="disabled")
        self.screenshots.append(name)


async def serve_offline(route: Route) -> None:
    """Brand images from the integration's own icon; nothing leaves the machine."""
    url = route.request.url
    if url.startswith("https://brands.home-assistant.io/"):
        icon = f"/{run_ha.DOMAIN}/" in url
        await route.fulfill(
            status=200,
            content_type="image/png",
            body=BRAND_ICON.read_bytes() if icon else BLANK_PNG,
        )
    else:
        await route.abort("blockedbyclient")


async def create_owner(page: Page, attempts: int = 3) -> None:
    """Fill the owner's form until the frontend takes it, then create the account.

    On a busy machine the form can miss a field that was filled (seen once in CI: every
    box showed its text, yet "Create account" stayed disabled), so a form the button
    does not accept is filled again from the start.
    """
    name, username, password = OWNER
    button = page.get_by_role("button", name="Create account")
    for attempt in range(1, attempts + 1):
        for label in ("Confirm password", "Password", "Name"):
            await page.get_by_label(label, exact=True).fill("")
        await page.get_by_label("Name", exact=True).fill(name)
        # The form derives the username from the name as it is typed: wait for that.
        await expect(page.get_by_label("Username")).to_have_value(name.lower())
        if username != name.lower():
            await page.get_by_label("Username").fill(username)
        await page.get_by_label("Password", exact=True).fill(password)
        await page.get_by_label("Confirm password", exact=True).fill(password)
        try:
            await expect(button).to_be_enabled(timeout=5_000)
        except AssertionError:
            if attempt == attempts:
                raise
            print(f"  the owner's form did not take attempt {attempt}: filling it again")
            continue
        await button.click()
        return


async def onboard(walk: Walk) -> None:
    """Create the owner and click through the rest of onboarding."""
    page = walk.page
    async with walk.step("onboarding"):
        await page.goto(walk.base)
        await page.get_by_role("button", name="Create my smart home").click()
        await create_owner(page)
        await expect(page.get_by_text("Home location")).to_be_visible()
        await page.get_by_role("button", name="Next").click()
        await expect(page.get_by_text("the country your home is in")).to_be_visible()
        await page.get_by_role("button", name="Next").click()
        await expect(page.get_by_text("Help us help you")).to_be_visible()
        await page.get_by_role("button", name="Next").click()
        await page.get_by_role("button", name="Finish").click()
        await page.wait_for_url(re.compile(r"/lovelace"))
        # Signed in for good once the frontend stored its tokens (later pages load afresh).
        await page.wait_for_function("() => localStorage.getItem('hassTokens') !== null")


async def open_page(walk: Walk, url: str) -> None:
    """Open ``url``; on the login page instead, sign in as the owner, as a person would.

    Seen once in CI: the page after onboarding showed the login form although the
    frontend had stored its tokens. Signing in again is what a user does then.
    """
    page = walk.page
    await page.goto(url)
    await page.wait_for_function(
        "() => location.pathname.startsWith('/auth/authorize')"
        " || document.querySelector('home-assistant') !== null"
    )
    if not urlsplit(page.url).path.startswith("/auth/authorize"):
        return
    print("  the frontend asked to sign in again: signing in as the owner")
    _, username, password = OWNER
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(lambda now: urlsplit(now).path == urlsplit(url).path)


async def open_voice_prompt_menu(walk: Walk) -> None:
    """Settings → Devices & services → Add integration → search → Voice Prompt."""
    page = walk.page
    await open_page(walk, f"{walk.base}/config/integrations/dashboard")
    await page.get_by_role("button", name="Add integration").click()
    dialog = page.locator("dialog-add-integration")
    await dialog.get_by_label("Search for a brand name").fill("Voice Prompt")
    await dialog.get_by_text("Voice Prompt", exact=True).click()
    await expect(page.get_by_text("Choose your phone system")).to_be_visible()
    await expect(page.get_by_text(PBX_MENU_ITEM)).to_be_visible()


async def submit(page: Page, expected: Locator, walk: Walk | None = None) -> None:
    """Submit a form and wait for ``expected``; confirm a self-signed certificate on the way.

    With certificate verification off, the flow first shows the PBX's certificate for the
    user to compare and accept (saved as certificate_confirm.png when ``walk`` is given).
    """
    await page.get_by_role("button", name="Submit").click()
    certificate = page.get_by_text("SHA-256 fingerprint")
    await expect(expected.or_(certificate).first).to_be_visible()
    if await certificate.is_visible():
        await expect(page.get_by_text("Trust this certificate?")).to_be_visible()
        if walk is not None:
            await walk.no_raw_placeholders("certificate confirmation")
            await walk.shot("certificate_confirm.png")
        await page.get_by_role("button", name="Submit").click()
    await expect(expected).to_be_visible()


async def add_pbx(walk: Walk, port: int) -> None:
    """The Yeastar form: a wrong password first, then the right one."""
    page = walk.page
    async with walk.step("add integration: the menu of phone systems"):
        await open_voice_prompt_menu(walk)
        await expect(page.get_by_text(TEAMS_MENU_ITEM)).to_be_visible()
        await walk.shot("add_integration_menu.png")

    async with walk.step("Yeastar form, wrong password: the error names the PBX"):
        await page.get_by_text(PBX_MENU_ITEM).click()
        await page.get_by_label("Host").fill("127.0.0.1")
        await page.get_by_label("Port").fill(str(port))
        await page.get_by_label("API username").fill(run_ha.SIM_USERNAME)
        await page.get_by_label("API password").fill("not-the-password")
        await submit(
            page,
            page.get_by_text(f"These credentials were refused by the PBX at 127.0.0.1:{port}."),
            walk,
        )
        # The help text shows the example address as text, not as a link.
        await expect(page.get_by_role("link", name="https://192.168.5.150:8088")).to_have_count(0)
        await walk.shot("yeastar_form_error.png")

    async with walk.step("Yeastar form, right password: the entry is created"):
        await page.get_by_label("API password").fill(run_ha.SIM_PASSWORD)
        await submit(page, page.get_by_text("Created configuration for Yeastar S100"))
        await page.get_by_role("button", name="Finish").click()


async def add_teams(walk: Walk) -> None:
    """The external URL Teams needs (Settings → System → Network), then the Teams form."""
    page = walk.page
    async with walk.step("network settings: an external https:// URL"):
        await open_page(walk, f"{walk.base}/config/network")
        # The Internet field (it has no label of its own).
        internet = page.locator("input[name=external_url]")
        await expect(internet).to_be_editable()  # not locked by YAML
        await internet.fill(run_ha.DEMO_EXTERNAL_URL)
        card = page.locator("ha-card").filter(has=internet)
        await card.get_by_role("button", name="Save").click()
        # Saved in Home Assistant's storage (not YAML): the page shows it after a reload.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await page.reload()
            saved = page.locator("input[name=external_url]")
            await expect(saved).to_be_editable()
            if await saved.input_value() == run_ha.DEMO_EXTERNAL_URL:
                break
        else:
            raise WalkError(f"the external URL was not saved: {await saved.input_value()!r}")

    async with walk.step("Teams form: the entry is created"):
        await open_voice_prompt_menu(walk)
        await page.get_by_text(TEAMS_MENU_ITEM).click()
        await page.get_by_label("Directory (tenant) ID").fill(run_ha.GRAPH_APP["tenant_id"])
        await page.get_by_label("Application (client) ID").fill(run_ha.GRAPH_APP["client_id"])
        await page.get_by_label("Client secret value").fill(run_ha.GRAPH_APP["client_secret"])
        await page.get_by_role("button", name="Submit").click()
        await expect(page.get_by_text("Created configuration for Microsoft Teams")).to_be_visible()
        await page.get_by_role("button", name="Finish").click()


async def fill_action(walk: Walk, entry: str, target: str, prompt: str) -> None:
    """Developer tools → Actions in UI mode: play_prompt, the entry, one target, one prompt."""
    page = walk.page
    await open_page(walk, f"{walk.base}/developer-tools/action")
    picker = page.locator("ha-service-picker input").first
    await picker.fill(f"{run_ha.DOMAIN}.play_prompt")
    await page.get_by_role("option", name=re.compile("Play prompt")).first.click()
    await expect(page.get_by_text("Calls a phone")).to_be_visible()
    await page.get_by_role("combobox", name="Integration").click()
    await page.get_by_role("option", name=re.compile(re.escape(entry))).first.click()
    rows = page.locator("ha-settings-row")
    for help_text, value in (("Whom to call", target), ("What to play", prompt)):
        row = rows.filter(has_text=help_text)
        if not await row.get_by_role("checkbox").is_checked():
            await row.get_by_role("checkbox").click()
        texts = row.locator("input:not([type=checkbox])")
        if await texts.count() == 0:
            await row.get_by_role("button", name="Add").click()
        await texts.last.fill(value)


async def perform(walk: Walk) -> None:
    """Press Perform action."""
    await walk.page.get_by_role("button", name="Perform action").click()


async def actions(walk: Walk, extension: str) -> None:
    """The action on each entry: one success and one refused input."""
    page = walk.page
    # Tall enough for the form and the response or error below it, in one screenshot.
    await page.set_viewport_size({"width": WIDTH, "height": ACTION_HEIGHT})
    response = page.locator("ha-code-editor")
    error = page.locator("ha-alert[alert-type=error]")
    async with walk.step("action on the PBX: extension rang, response on screen"):
        await fill_action(walk, "Yeastar S100", extension, "doorbell")
        await perform(walk)
        await expect(response.filter(has_text="call_id")).to_be_visible()
        await expect(response.filter(has_text=f'target: "{extension}"')).to_be_visible()
        await walk.shot("action_developer_tools.png")

    async with walk.step("action on the PBX: a prompt of digits is refused in words"):
        await fill_action(walk, "Yeastar S100", extension, "123")
        await perform(walk)
        await expect(error).to_contain_text(
            "Prompt name 123 is only digits, which the PBX does not accept"
        )
        await expect(error).to_contain_text("Yeastar S100 (127.0.0.1) cannot play this")
        await walk.shot("action_refused.png")

    async with walk.step("action on Teams: placed, played, hung up"):
        await fill_action(
            walk, "Microsoft Teams", run_ha.TEAMS_USER, "https://media.example.test/doorbell.wav"
        )
        await perform(walk)
        await expect(response.filter(has_text="status: played")).to_be_visible()
        await expect(response.filter(has_text="hung_up: true")).to_be_visible()
        await walk.shot("action_teams.png")

    async with walk.step("action on Teams: a prompt that is no URL is refused in words"):
        await fill_action(walk, "Microsoft Teams", run_ha.TEAMS_USER, "doorbell")
        await perform(walk)
        await expect(error).to_contain_text("Prompt doorbell is not an https:// URL")
        await walk.shot("action_teams_refused.png")


async def drive(args: argparse.Namespace, processes: run_ha.Processes) -> Walk:
    """Everything between starting the simulators and the last screenshot."""
    ha_port = run_ha.free_port()
    sim_port = await processes.fake("yeastar", "the PBX simulator")
    graph_port = await processes.fake(
        "graph", "the Graph simulator", *run_ha.graph_options(ha_port)
    )
    config_dir = processes.work / "config"
    run_ha.prepare_config(config_dir, ha_port, "browser walk")
    home_assistant = processes.add(
        run_ha.start_home_assistant(
            config_dir, processes.log("home-assistant"), f"http://127.0.0.1:{graph_port}"
        )
    )
    base = f"http://127.0.0.1:{ha_port}"
    async with aiohttp.ClientSession() as session:
        await run_ha.wait_for_home_assistant(session, base, home_assistant)
    run_ha.show("Home Assistant", f"{base} (PBX simulator {sim_port}, Graph {graph_port})")

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(processes.work / "profile"),  # a fresh, empty profile
            executable_path=args.chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": WIDTH, "height": HEIGHT},
            device_scale_factor=1,
            locale="en-US",
            # The frontend's service worker would fetch brand images past the routes below.
            service_workers="block",
        )
        try:
            await context.route("https://**", serve_offline)
            await context.route("wss://**", lambda route: route.abort("blockedbyclient"))
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(args.timeout * 1000)
            expect.set_options(timeout=args.timeout * 1000)
            walk = Walk(page, base, args.out_dir)
            await onboard(walk)
            await add_pbx(walk, sim_port)
            await add_teams(walk)
            await actions(walk, "1000")
            return walk
        except WalkError:
            with contextlib.suppress(PlaywrightError):
                await context.pages[-1].screenshot(path=str(processes.work / "failed.png"))
            raise
        finally:
            await context.close()


async def run(args: argparse.Namespace) -> int:
    """Start everything, walk, stop everything; 0 when every check held."""
    started = time.monotonic()
    args.out_dir = args.out_dir.resolve()
    processes = run_ha.Processes(Path(tempfile.mkdtemp(prefix="voice-prompt-browser-")))
    try:
        walk = await drive(args, processes)
    except (WalkError, run_ha.DemoError) as err:
        print(f"\nBrowser walk FAILED: {err}", file=sys.stderr)
        print(f"Logs and failed.png in {processes.work}", file=sys.stderr)
        return 1
    finally:
        processes.stop()
    seconds = round(time.monotonic() - started, 1)
    if args.report:
        report = {"seconds": seconds, "steps": walk.steps, "screenshots": walk.screenshots}
        args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nBrowser walk done in {seconds} s; screenshots in {args.out_dir}")
    shutil.rmtree(processes.work, ignore_errors=True)
    return 0


def main() -> int:
    """Parse the command line and walk."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument(
        "--out-dir", type=Path, default=run_ha.ROOT / "docs" / "images", help="where the PNGs go"
    )
    parser.add_argument("--report", type=Path, help="write the steps and screenshots as JSON")
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds one browser step may wait"
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
