"""scripts/run_ha.py's Home Assistant configuration, and the PBX simulator's typed commands."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
import sys
from types import ModuleType

import aiohttp
import pytest

from custom_components.voice_prompt.api import VoicePromptAuthenticationError, YeastarClient
from homeassistant.util.yaml import load_yaml_dict
from tests.conftest import PASSWORD
from tests.fakes.yeastar import FakeYeastarPBX, run_command

ROOT = Path(__file__).resolve().parent.parent
MENU = json.loads(
    (ROOT / "custom_components" / "voice_prompt" / "translations" / "en.json").read_text(
        encoding="utf-8"
    )
)["config"]["step"]["user"]["menu_options"]


def _load_run_ha() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_ha", ROOT / "scripts" / "run_ha.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_ha", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


run_ha = _load_run_ha()


def _develop(config_dir: Path, port: int) -> bool:
    written: bool = run_ha.prepare_config(config_dir, port, "development", keep=True)
    return written


def test_first_start_writes_what_a_new_installation_has(tmp_path: Path) -> None:
    """Automations, scripts and scenes are included; nothing locks the core settings."""
    assert _develop(tmp_path, 8123)

    config = load_yaml_dict(tmp_path / "configuration.yaml")  # resolves the !include lines
    assert config["automation"] == []
    assert config["scene"] == []
    assert "script" in config
    assert config["http"] == {"server_host": "127.0.0.1", "server_port": 8123}
    # Location, units, time zone and URLs stay in storage: Settings → System is editable.
    assert "homeassistant" not in config
    assert (tmp_path / "custom_components" / "voice_prompt").resolve() == (
        ROOT / "custom_components" / "voice_prompt"
    )


def test_later_starts_keep_what_the_user_changed(tmp_path: Path) -> None:
    """An automation made in the UI and an edited configuration.yaml survive a restart."""
    _develop(tmp_path, 8123)
    configuration = tmp_path / "configuration.yaml"
    edited = configuration.read_text(encoding="utf-8") + "input_boolean:\n"
    configuration.write_text(edited, encoding="utf-8")
    automation = "- id: '1700000000000'\n  alias: Doorbell announcement\n"
    (tmp_path / "automations.yaml").write_text(automation, encoding="utf-8")

    assert not _develop(tmp_path, 8124)

    assert configuration.read_text(encoding="utf-8") == edited
    assert (tmp_path / "automations.yaml").read_text(encoding="utf-8") == automation
    # Only the port follows the command line.
    assert load_yaml_dict(tmp_path / "http.yaml")["server_port"] == 8124


def test_a_configuration_from_before_is_replaced_once(tmp_path: Path) -> None:
    """develop used to rewrite the file at every start: that old file is not the user's."""
    configuration = tmp_path / "configuration.yaml"
    configuration.write_text(
        f"{run_ha.OLD_CONFIG_MARKER} that loads Voice Prompt.\nhomeassistant:\n  name: x\n",
        encoding="utf-8",
    )

    assert _develop(tmp_path, 8123)
    assert "automation: !include automations.yaml" in configuration.read_text(encoding="utf-8")
    assert not _develop(tmp_path, 8123)


def test_the_demo_gets_a_fresh_configuration_every_time(tmp_path: Path) -> None:
    """Without keep (demo, benchmark, browser walk) the file is always written anew."""
    run_ha.prepare_config(tmp_path, 8123, "demo")
    (tmp_path / "configuration.yaml").write_text("changed: true\n", encoding="utf-8")

    assert run_ha.prepare_config(tmp_path, 8123, "demo")
    assert "frontend:" in (tmp_path / "configuration.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("pbx_host", [None, "192.168.5.150"])
def test_develop_names_the_menu_items_that_exist(tmp_path: Path, pbx_host: str | None) -> None:
    """The hint quotes the config flow's own menu and the ports it was started with."""
    args = argparse.Namespace(
        ha_port=8200, sim_port=8300, graph_port=8400, pbx_host=pbx_host, pbx_port=8088
    )
    text: str = run_ha.develop_instructions(args, tmp_path, True)

    assert MENU["yeastar"] in text
    assert MENU["graph"] in text
    assert "http://127.0.0.1:8200" in text
    assert "port 8400" in text
    assert "Settings → System → Network" in text
    if pbx_host is None:
        assert "port 8300" in text
        assert "password NEW-PASSWORD" in text
    else:
        assert f"host {pbx_host}, port 8088" in text
        assert "password NEW-PASSWORD" not in text


def _client(session: aiohttp.ClientSession, pbx: FakeYeastarPBX, password: str) -> YeastarClient:
    return YeastarClient(
        session, pbx.host, port=pbx.port, username="api", password=password, verify_ssl=False
    )


async def test_a_typed_password_ends_the_sessions(
    pbx: FakeYeastarPBX, session: aiohttp.ClientSession
) -> None:
    """'password NEW' while the simulator runs: the old password no longer logs in."""
    before = _client(session, pbx, PASSWORD)
    assert (await before.device_info()).serial == pbx.serial

    answer = run_command(pbx, "password New-Pass-2")

    assert answer is not None
    assert "changed" in answer
    assert "New-Pass-2" not in answer
    assert pbx.tokens == {}
    with pytest.raises(VoicePromptAuthenticationError):
        await before.device_info()  # its session ended; logging in again is refused
    after = _client(session, pbx, "New-Pass-2")
    assert (await after.device_info()).serial == pbx.serial


@pytest.mark.parametrize(
    ("line", "expected"), [("\n", None), ("hello", "Commands: password NEW-PASSWORD")]
)
def test_other_lines_get_the_list_of_commands(line: str, expected: str | None) -> None:
    """A blank line is ignored; anything else gets the one command there is."""
    fake = FakeYeastarPBX()

    assert run_command(fake, line) == expected
    assert fake.password == PASSWORD
