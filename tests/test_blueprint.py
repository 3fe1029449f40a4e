"""The automation blueprint ``voice_prompt/announce.yaml``, run by Home Assistant's blueprint integration.

The blueprint file of the repository is copied into the test's config folder, an automation
is created from it with ``use_blueprint`` exactly as the UI would store it, the trigger is
fired, and the fake PBX must have received exactly the intended requests: a spoken message
to named targets (P-Series: uploaded and played), their default prompts (S-Series, through
their Announce buttons), or Custom Prompts by name on extensions (``extension/playprompt``).
"""

# ruff: noqa: F811 - the fixtures imported from tests.*_fixtures are test arguments

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
import shutil
from typing import Any
from urllib.parse import quote

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.voice_prompt.const import DOMAIN, SUBENTRY_TARGET
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.components.blueprint.models import Blueprint, BlueprintInputs
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import homeassistant.util.dt as dt_util
from homeassistant.util.yaml import load_yaml_dict
from tests.fakes.yeastar import FakeYeastarPBX
from tests.fakes.yeastar_p import FakeYeastarP
from tests.tts_fixtures import CountingTTS, tts_engine  # noqa: F401 - fixture
from tests.yeastar_p_fixtures import (  # noqa: F401 - fixtures
    P_PLAY,
    P_UPLOAD,
    add_p_entry,
    fake_p,
    p_play_bodies,
)

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT_PATH = "voice_prompt/announce.yaml"
BLUEPRINT_FILE = ROOT / "blueprints" / "automation" / BLUEPRINT_PATH
DOCS_FILE = ROOT / "README.md"
RAW_URL = (
    "https://raw.githubusercontent.com/voice-prompt/voice-prompt/main/"
    "blueprints/automation/voice_prompt/announce.yaml"
)
PLAYPROMPT = "extension/playprompt"
AUTOMATION = "automation.doorbell_announcement"
VISITORS = "Someone is at the front door"


pytestmark = pytest.mark.usefixtures("own_config_dir")


def _install_blueprint(hass: HomeAssistant) -> None:
    """Put the repository's blueprint where Home Assistant looks for it."""
    target = Path(hass.config.path("blueprints", "automation", BLUEPRINT_PATH))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BLUEPRINT_FILE, target)


def _bodies(pbx: FakeYeastarPBX) -> list[dict[str, Any]]:
    """The playprompt requests the PBX received, in a stable order (extensions ring concurrently)."""
    return sorted((r.body for r in pbx.calls(PLAYPROMPT)), key=lambda body: body["extid"])


def _expected(*extensions: str, prompt: str = "doorbell", autoanswer: str = "no") -> list[Any]:
    return [{"extid": ext, "prompt": prompt, "autoanswer": autoanswer} for ext in extensions]


async def _setup_automation(hass: HomeAssistant, entry: MockConfigEntry, **inputs: Any) -> None:
    """Create one automation from the blueprint (what the UI writes to automations.yaml)."""
    _install_blueprint(hass)
    use_blueprint = {
        "path": BLUEPRINT_PATH,
        "input": {
            "config_entry": entry.entry_id,
            "extensions": ["1000", "1001"],
            "prompts": ["doorbell"],
            "cooldown": 0,
            **inputs,
        },
    }
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "id": "doorbell_announcement",
                    "alias": "Doorbell announcement",
                    "use_blueprint": use_blueprint,
                }
            ]
        },
    )
    await hass.async_block_till_done()
    state = hass.states.get(AUTOMATION)
    assert state is not None, "the automation from the blueprint was not created"
    assert state.state == "on"


# ------------------------------------------------------------------ the blueprint file


def test_blueprint_file_is_valid() -> None:
    """The file parses as an automation blueprint; its inputs use the intended selectors."""
    blueprint = Blueprint(
        load_yaml_dict(BLUEPRINT_FILE),
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert blueprint.domain == "automation"
    inputs = blueprint.inputs
    assert set(inputs) == {
        "binary_sensors",
        "event_entities",
        "event_types",
        "buttons",
        "targets",
        "message",
        "cooldown",
        "config_entry",
        "extensions",
        "prompts",
        "autoanswer",
    }
    assert inputs["targets"]["selector"]["entity"]["multiple"] is True
    assert inputs["targets"]["selector"]["entity"]["filter"] == [
        {"integration": "voice_prompt", "domain": ["notify"]}
    ]
    assert inputs["message"]["selector"]["text"]["multiline"] is True
    assert inputs["config_entry"]["selector"] == {"config_entry": {"integration": "voice_prompt"}}
    assert inputs["extensions"]["selector"]["text"]["multiple"] is True
    assert inputs["prompts"]["selector"]["text"]["multiple"] is True
    assert inputs["binary_sensors"]["selector"]["entity"]["filter"] == [
        {"domain": ["binary_sensor"]}
    ]
    assert inputs["event_entities"]["selector"]["entity"]["filter"] == [{"domain": ["event"]}]
    assert inputs["buttons"]["selector"]["entity"]["filter"] == [
        {"domain": ["button", "input_button"]}
    ]
    # Every input is optional: named targets, or extensions and prompts (or both).
    required = {name for name, spec in inputs.items() if "default" not in (spec or {})}
    assert required == set()
    assert blueprint.metadata["homeassistant"]["min_version"] == "2025.4.0"


def test_docs_link_imports_this_file() -> None:
    """README.md has the My Home Assistant import link for this very file."""
    text = DOCS_FILE.read_text(encoding="utf-8")
    assert (
        "https://my.home-assistant.io/redirect/blueprint_import/?blueprint_url="
        + quote(RAW_URL, safe="")
    ) in text
    assert RAW_URL in text
    source_url = load_yaml_dict(BLUEPRINT_FILE)["blueprint"]["source_url"]
    assert source_url.endswith("/blueprints/automation/voice_prompt/announce.yaml")
    assert source_url.startswith("https://github.com/voice-prompt/voice-prompt/")


async def test_home_assistant_lists_the_installed_blueprint(hass: HomeAssistant) -> None:
    """The blueprint integration finds the file; named targets alone make an automation."""
    _install_blueprint(hass)
    assert await async_setup_component(hass, "automation", {})
    blueprints = async_get_blueprints(hass)
    blueprint = await blueprints.async_get_blueprint(BLUEPRINT_PATH)
    assert blueprint.name == "Announce on phones (Voice Prompt)"

    given = {"targets": ["notify.reception_phone"], "message": VISITORS}
    inputs = BlueprintInputs(blueprint, {"use_blueprint": {"path": BLUEPRINT_PATH, "input": given}})
    inputs.validate()
    assert inputs.inputs_with_default["extensions"] == []
    assert inputs.inputs_with_default["message"] == VISITORS


# ------------------------------------------------------------------ named targets


def _target(subentry_id: str, title: str, **data: Any) -> ConfigSubentryDataWithId:
    return ConfigSubentryDataWithId(
        subentry_id=subentry_id,
        subentry_type=SUBENTRY_TARGET,
        title=title,
        unique_id=None,
        data=data,
    )


async def _setup_named(hass: HomeAssistant, entry: MockConfigEntry, **inputs: Any) -> None:
    """An automation from the blueprint with named targets only (no extensions, no prompts)."""
    hass.states.async_set("binary_sensor.bell", "off")
    await _setup_automation(
        hass,
        entry,
        binary_sensors=["binary_sensor.bell"],
        extensions=[],
        prompts=[],
        **inputs,
    )


async def _ring(hass: HomeAssistant) -> None:
    hass.states.async_set("binary_sensor.bell", "on")
    await hass.async_block_till_done()


async def test_named_targets_hear_the_message(
    hass: HomeAssistant, tts_engine: CountingTTS, fake_p: FakeYeastarP
) -> None:
    """P-Series: the message is spoken on both targets, synthesised and uploaded once."""
    entry = add_p_entry(
        hass,
        fake_p,
        subentries=[
            _target("reception", "Reception phone", target="1000"),
            _target("office", "Office phone", target="1001", prompt=["doorbell"]),
        ],
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _setup_named(
        hass, entry, targets=["notify.reception_phone", "notify.office_phone"], message=VISITORS
    )
    assert fake_p.calls(P_PLAY) == []

    await _ring(hass)

    assert [text for text, _, _ in tts_engine.calls] == [VISITORS]
    # Stored once. (The two targets speak concurrently: the client may send the same
    # upload twice before the first answer, and the PBX keeps the first.)
    (name,) = fake_p.uploads
    assert {request.body["file"]["filename"] for request in fake_p.calls(P_UPLOAD)} == {
        f"{name}.wav"
    }
    bodies = sorted(p_play_bodies(fake_p), key=lambda body: body["number"])
    # The message only: a target's default prompt is for its button.
    assert bodies == [
        {"number": number, "prompts": [name], "auto_answer": "no"} for number in ("1000", "1001")
    ]


async def test_named_targets_without_a_message_play_their_default_prompt(
    hass: HomeAssistant, pbx: FakeYeastarPBX, entry_data: dict[str, Any]
) -> None:
    """S-Series: no message; each target's Announce button plays its own default prompt."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Yeastar S100",
        unique_id="369364835218",
        data=entry_data,
        subentries_data=[
            _target("reception", "Reception phone", target="1000", prompt=["doorbell"]),
            _target("office", "Office phone", target="1001", prompt=["hello111"]),
            _target("hall", "Hall phone", target="1002"),  # nothing of its own to play
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    targets = ["notify.reception_phone", "notify.office_phone", "notify.hall_phone"]
    await _setup_named(hass, entry, targets=targets)

    await _ring(hass)

    assert _bodies(pbx) == [
        {"extid": "1000", "prompt": "doorbell", "autoanswer": "no"},
        {"extid": "1001", "prompt": "hello111", "autoanswer": "no"},
    ]


async def test_a_message_on_a_pbx_that_cannot_speak_says_why(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    entry_data: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S-Series with a message: nothing is sent, and the log says what to do instead."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Yeastar S100",
        unique_id="369364835218",
        data=entry_data,
        subentries_data=[_target("reception", "Reception phone", target="1000")],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await _setup_named(hass, entry, targets=["notify.reception_phone"], message=VISITORS)
    before = len(pbx.requests)

    await _ring(hass)

    assert len(pbx.requests) == before
    assert "cannot speak a text" in caplog.text
    assert "play it by name with prompt" in caplog.text


# ------------------------------------------------------------------ the three trigger kinds


async def test_binary_sensor_turning_on_announces(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """A doorbell binary sensor going off → on rings both extensions with the prompt."""
    hass.states.async_set("binary_sensor.front_door_bell", "off")
    await _setup_automation(hass, loaded_entry, binary_sensors=["binary_sensor.front_door_bell"])
    assert pbx.calls(PLAYPROMPT) == []

    hass.states.async_set("binary_sensor.front_door_bell", "on")
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", "1001")

    # on → off, and unavailable → on (a restart), do not announce.
    hass.states.async_set("binary_sensor.front_door_bell", "off")
    hass.states.async_set("binary_sensor.front_door_bell", "unavailable")
    hass.states.async_set("binary_sensor.front_door_bell", "on")
    await hass.async_block_till_done()
    assert len(pbx.calls(PLAYPROMPT)) == 2

    # The next real ring announces again (no quiet time configured here).
    hass.states.async_set("binary_sensor.front_door_bell", "off")
    hass.states.async_set("binary_sensor.front_door_bell", "on")
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", "1000", "1001", "1001")
    state = hass.states.get(AUTOMATION)
    assert state is not None
    assert state.attributes["last_triggered"] is not None


async def test_event_entity_announces_on_chosen_event_types(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """An event entity's new event announces; other event types and restarts do not."""
    entity_id = "event.front_door_doorbell"
    attributes = {"event_types": ["ring", "motion"], "device_class": "doorbell"}
    hass.states.async_set(entity_id, "unknown", attributes)
    await _setup_automation(
        hass,
        loaded_entry,
        event_entities=[entity_id],
        event_types=["ring"],
        extensions=["1002"],
        prompts=["doorbell", "hello111"],
        autoanswer=True,
    )

    now = dt_util.utcnow()
    hass.states.async_set(entity_id, now.isoformat(), {**attributes, "event_type": "ring"})
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1002", prompt="doorbell+hello111", autoanswer="yes")

    # Another event type: filtered out by the blueprint's condition.
    later = now + timedelta(seconds=5)
    hass.states.async_set(entity_id, later.isoformat(), {**attributes, "event_type": "motion"})
    await hass.async_block_till_done()
    assert len(pbx.calls(PLAYPROMPT)) == 1

    # Unavailable and back (integration reload): not an event.
    hass.states.async_set(entity_id, "unavailable", attributes)
    hass.states.async_set(entity_id, later.isoformat(), {**attributes, "event_type": "ring"})
    # Removed and re-added with its restored state: not an event either.
    hass.states.async_remove(entity_id)
    hass.states.async_set(entity_id, later.isoformat(), {**attributes, "event_type": "ring"})
    await hass.async_block_till_done()
    assert len(pbx.calls(PLAYPROMPT)) == 1

    # A second ring announces again.
    hass.states.async_set(
        entity_id,
        (later + timedelta(seconds=5)).isoformat(),
        {**attributes, "event_type": "ring"},
    )
    await hass.async_block_till_done()
    assert len(pbx.calls(PLAYPROMPT)) == 2


async def test_event_entity_without_event_type_filter_announces_every_event(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """With no event types given, every event of the entity announces."""
    entity_id = "event.hallway_button"
    hass.states.async_set(entity_id, "unknown", {"event_types": ["single", "double"]})
    await _setup_automation(hass, loaded_entry, event_entities=[entity_id])

    now = dt_util.utcnow()
    hass.states.async_set(entity_id, now.isoformat(), {"event_type": "double"})
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", "1001")


async def test_input_button_press_announces(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """Pressing a real input_button (the helper) rings the extensions."""
    assert await async_setup_component(
        hass, "input_button", {"input_button": {"lunch": {"name": "Lunch"}}}
    )
    await _setup_automation(
        hass,
        loaded_entry,
        buttons=["input_button.lunch"],
        extensions=["1000", "1001", "1010"],
        prompts=["lunch_ready"],
    )
    assert pbx.calls(PLAYPROMPT) == []

    await hass.services.async_call(
        "input_button", "press", {"entity_id": "input_button.lunch"}, blocking=True
    )
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", "1001", "1010", prompt="lunch_ready")


async def test_button_entity_press_announces(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """A ``button`` entity's state is the time of its last press: a new time announces."""
    hass.states.async_set("button.gate_intercom", "unknown")
    hass.states.async_set("binary_sensor.unused", "off")
    await _setup_automation(
        hass,
        loaded_entry,
        binary_sensors=["binary_sensor.unused"],
        buttons=["button.gate_intercom"],
    )
    hass.states.async_set("button.gate_intercom", dt_util.utcnow().isoformat())
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", "1001")
    # Entities not chosen do nothing.
    hass.states.async_set("button.other", dt_util.utcnow().isoformat())
    hass.states.async_set("binary_sensor.other", "on")
    await hass.async_block_till_done()
    assert len(pbx.calls(PLAYPROMPT)) == 2


async def test_all_trigger_kinds_in_one_automation(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """A mix of a binary sensor, an event entity and a button: each one announces."""
    hass.states.async_set("binary_sensor.bell", "off")
    hass.states.async_set("event.bell", "unknown")
    hass.states.async_set("button.bell", "unknown")
    await _setup_automation(
        hass,
        loaded_entry,
        binary_sensors=["binary_sensor.bell"],
        event_entities=["event.bell"],
        buttons=["button.bell"],
        extensions=["1000"],
    )
    now = dt_util.utcnow().isoformat()
    for entity_id, state, attributes in (
        ("binary_sensor.bell", "on", {}),
        ("event.bell", now, {"event_type": "ring"}),
        ("button.bell", now, {}),
    ):
        hass.states.async_set(entity_id, state, attributes)
        await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", "1000", "1000")


# ------------------------------------------------------------------ quiet time and errors


async def test_quiet_time_swallows_repeated_presses(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """With the default quiet time (15 s) a doorbell pressed three times rings once."""
    hass.states.async_set("binary_sensor.bell", "off")
    _install_blueprint(hass)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "quiet",
                "alias": "Doorbell announcement",
                "use_blueprint": {
                    "path": BLUEPRINT_PATH,
                    # No cooldown input: the blueprint's default applies.
                    "input": {
                        "config_entry": loaded_entry.entry_id,
                        "extensions": ["1000"],
                        "prompts": ["doorbell"],
                        "binary_sensors": ["binary_sensor.bell"],
                    },
                },
            }
        },
    )
    await hass.async_block_till_done()

    def running() -> int:
        state = hass.states.get(AUTOMATION)
        assert state is not None
        return int(state.attributes["current"])

    async def ring() -> None:
        # Not async_block_till_done: it would wait for the quiet time to pass.
        hass.states.async_set("binary_sensor.bell", "on")
        hass.states.async_set("binary_sensor.bell", "off")
        for _ in range(20):
            await asyncio.sleep(0.01)

    async def wait_for(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                await asyncio.sleep(0.01)

    await ring()
    await wait_for(lambda: len(pbx.calls(PLAYPROMPT)) == 1 and running() == 1)
    await ring()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=10))
    await ring()
    assert len(pbx.calls(PLAYPROMPT)) == 1
    assert running() == 1  # still in its quiet time

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=16))
    await wait_for(lambda: running() == 0)
    await ring()
    await wait_for(lambda: len(pbx.calls(PLAYPROMPT)) == 2)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=16))
    await wait_for(lambda: running() == 0)
    assert _bodies(pbx) == _expected("1000", "1000")


async def test_pbx_refusal_is_logged_not_retried(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A prompt that is not uploaded: one request, the automation logs the translated error."""
    hass.states.async_set("binary_sensor.bell", "off")
    await _setup_automation(
        hass,
        loaded_entry,
        binary_sensors=["binary_sensor.bell"],
        extensions=["1000"],
        prompts=["not_uploaded"],
    )
    hass.states.async_set("binary_sensor.bell", "on")
    await hass.async_block_till_done()
    assert _bodies(pbx) == _expected("1000", prompt="not_uploaded")
    assert "is not uploaded to the PBX" in caplog.text
    assert "Doorbell announcement" in caplog.text
