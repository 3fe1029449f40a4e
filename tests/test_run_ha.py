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
from tests.asterisk import (
    APP,
    ARI_PASSWORD,
    ARI_USER,
    Phone,
    RealPbx,
    Runner,
    processes_running,
    read_wav,
    sound_path,
    unavailable,
)
from tests.asterisk_fixtures import chirp_wav
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
    text: str = run_ha.develop_instructions(args, tmp_path, True, "--no-asterisk")

    assert MENU["yeastar"] in text
    assert MENU["graph"] in text
    assert "http://127.0.0.1:8200" in text
    assert "port 8400" in text
    assert "Settings → System → Network" in text
    assert "Real Asterisk and SIP phones: left out (--no-asterisk)." in text
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


def test_develop_says_how_to_add_the_real_asterisk(tmp_path: Path) -> None:
    """The ARI address, user, password and app, and where each phone's recording goes."""
    pbx = RealPbx(("1000", "1001"), runner=Runner(tmp_path))
    pbx.http_port, pbx.dir = 8500, tmp_path / "vp-run"
    pbx.phones = {number: Phone(pbx, number) for number in ("1000", "1001")}

    text = run_ha.asterisk_instructions(pbx)

    assert MENU["asterisk"] in text
    assert f"ARI URL http://127.0.0.1:8500, username {ARI_USER}, password {ARI_PASSWORD}" in text
    assert f"Stasis application {APP}" in text
    assert f"1001: what it hears goes to {tmp_path / 'vp-run' / 'phone-1001' / 'rx.wav'}\n" in text


def test_the_demo_keeps_what_the_phone_heard(tmp_path: Path) -> None:
    """The recording is copied out of the PBX's run directory, with its length and level."""
    heard_by_phone = tmp_path / "rx.wav"
    heard_by_phone.write_bytes(chirp_wav(1.5))

    heard = run_ha.real_pbx.keep(read_wav(heard_by_phone), tmp_path / "kept.wav")

    assert heard.path.read_bytes() == heard_by_phone.read_bytes()
    assert (heard.seconds, heard.rate) == (1.5, 8000)
    assert -12 < heard.level_dbfs < -8  # a sine at half scale: -9 dBFS
    assert (
        str(heard) == f"1.50 s at 8000 Hz, level {heard.level_dbfs:.1f} dBFS, saved as {heard.path}"
    )


def test_the_real_pbx_starts_for_the_demo_or_says_why_not(socket_enabled: None) -> None:
    """Where the sid root can run it: Asterisk up and the phone registered; else one line."""
    started = run_ha.real_pbx.start(("1000",))
    if isinstance(started, str):
        assert started == unavailable()
        assert "\n" not in started
        return
    try:
        assert started.endpoint_state("1000") == "online"
        itself = read_wav(sound_path(started, "hello-world"))
        found = run_ha.real_pbx.find_sound(started, "hello-world", itself)
        assert (round(found.score, 3), found.offset) == (1.0, 0.0)
        assert run_ha.real_pbx.entry_form(started) == {
            "url": started.ari_url,
            "username": ARI_USER,
            "password": ARI_PASSWORD,
            "app": APP,
            "verify_ssl": False,
        }
    finally:
        pids = started.pids()
        started.stop()
    assert processes_running(pids) == []
