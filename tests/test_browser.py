"""A person's path through the real frontend, in Debian's Chromium (scripts/screenshots.py).

The walk starts the simulators and a real Home Assistant as scripts/demo does, onboards in the
browser, adds the PBX (a wrong password first) and Teams through the UI, and runs
voice_prompt.play_prompt in Developer tools' UI mode on both; it checks every text it expects
on screen and that no raw ``{placeholder}`` shows. It runs as its own program (Home Assistant,
the simulators and the browser are processes of their own); this test reads its report.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
STEPS = [
    "onboarding",
    "add integration: the menu of phone systems",
    "Yeastar form, wrong password: the error names the PBX",
    "Yeastar form, right password: the entry is created",
    "network settings: an external https:// URL",
    "Teams form: the entry is created",
    "action on the PBX: extension rang, response on screen",
    "action on the PBX: a prompt of digits is refused in words",
    "action on Teams: placed, played, hung up",
    "action on Teams: a prompt that is no URL is refused in words",
]
# Each one is in README.md.
SCREENSHOTS = [
    "add_integration_menu.png",
    "certificate_confirm.png",
    "yeastar_form_error.png",
    "action_developer_tools.png",
    "action_refused.png",
    "action_teams.png",
    "action_teams_refused.png",
]


def _missing() -> str | None:
    """Why the walk cannot run here (the newest lane's root has no browser), or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (scripts/setup installs Debian's chromium)"
    for module in ("playwright", "hass_frontend"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in this venv (scripts/setup installs it)"
    return None


@pytest.mark.timeout(600)
def test_a_person_walks_through_the_frontend(tmp_path: Path) -> None:
    """Every step of the walk passes its checks, and it saves the README's screenshots."""
    if (reason := _missing()) is not None:
        pytest.skip(reason)
    report = tmp_path / "report.json"
    log = tmp_path / "walk.log"
    with log.open("wb") as output:
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "screenshots.py"),
                "--out-dir",
                str(tmp_path / "images"),
                "--report",
                str(report),
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=540,
            check=False,
        )
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text[-6000:]

    result = json.loads(report.read_text(encoding="utf-8"))
    assert [step["name"] for step in result["steps"]] == STEPS
    assert result["screenshots"] == SCREENSHOTS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in SCREENSHOTS:
        png = (tmp_path / "images" / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert int.from_bytes(png[16:20], "big") == 1280, name  # the IHDR width
        assert f"docs/images/{name}" in readme, f"README.md does not show {name}"
    print(f"browser walk: {result['seconds']} s", *result["steps"], sep="\n")
