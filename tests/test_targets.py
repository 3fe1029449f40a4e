"""Named targets: the ``target`` subentry flow, their devices, notify entities and buttons.

A target is a config subentry of an entry ("Reception phone": whom to call and what its
announce button plays). Each has a device under the phone system's device, a notify
entity (``notify.send_message`` speaks the message in a call) and, with a default prompt
or message, an "Announce" button. Everything runs against the fake PBXs on 127.0.0.1.
"""

# ruff: noqa: F811 - the fixtures imported from tests.*_fixtures are test arguments

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.voice_prompt.backends.pbx import CONF_DIAL_PERMISSION
from custom_components.voice_prompt.backends.yeastar import YeastarBackend
from custom_components.voice_prompt.const import DOMAIN, SUBENTRY_TARGET
from custom_components.voice_prompt.validation import vol
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.notify import (
    ATTR_MESSAGE,
    ATTR_TITLE,
    DOMAIN as NOTIFY_DOMAIN,
    SERVICE_SEND_MESSAGE,
    NotifyEntityFeature,
)
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
    ConfigSubentryDataWithId,
)
from homeassistant.const import ATTR_ENTITY_ID, ATTR_SUPPORTED_FEATURES, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from tests.conftest import SERIAL, STRINGS
from tests.fakes.yeastar import FakeYeastarPBX
from tests.fakes.yeastar_p import FakeYeastarP
from tests.flow_helpers import schema, schema_keys, suggested
from tests.tts_fixtures import CountingTTS, tts_engine  # noqa: F401 - fixture
from tests.yeastar_p_fixtures import (  # noqa: F401 - fixtures
    P_UPLOAD,
    add_p_entry,
    fake_p,
    p_entry,
    p_loaded,
    p_play_bodies,
)

SUBENTRY_STRINGS: Final[dict[str, Any]] = STRINGS["config_subentries"][SUBENTRY_TARGET]
PLAYPROMPT: Final = "extension/playprompt"
S_SERIES: Final = YeastarBackend.name
S_TITLE: Final = "Yeastar S100 (127.0.0.1)"
VISITORS: Final = "Visitors at the door"
LUNCH: Final = "Lunch is ready"


def _target(subentry_id: str, title: str, **data: Any) -> ConfigSubentryDataWithId:
    """A stored ``target`` subentry (a fixed id keeps the snapshots stable)."""
    return ConfigSubentryDataWithId(
        subentry_id=subentry_id,
        subentry_type=SUBENTRY_TARGET,
        title=title,
        unique_id=None,
        data=data,
    )


# The P-Series speaks: a prompt and a message, only a message, nothing.
P_TARGETS: Final = [
    _target(
        "reception", "Reception phone", target="1000", prompt=["doorbell"], message=VISITORS,
        autoanswer=True,
    ),
    _target("kitchen", "Kitchen", target="1003", message=LUNCH),
    _target("office", "Office", target="1001"),
]  # fmt: skip
# The S-Series plays Custom Prompts only.
S_TARGETS: Final = [
    _target("reception", "Reception phone", target="1000", prompt=["doorbell"], autoanswer=True),
    _target("office", "Office", target="1001"),
]
# Registry fields every release we test has (supported_features: see its own test).
DEVICE_FIELDS: Final = (
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "sw_version",
    "hw_version",
    "configuration_url",
    "entry_type",
    "disabled_by",
)
ENTITY_FIELDS: Final = (
    "entity_id",
    "unique_id",
    "platform",
    "domain",
    "config_subentry_id",
    "has_entity_name",
    "translation_key",
    "original_name",
    "name",
    "original_device_class",
    "entity_category",
    "original_icon",
    "capabilities",
    "unit_of_measurement",
    "disabled_by",
    "hidden_by",
)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def s_targets(
    hass: HomeAssistant, pbx: FakeYeastarPBX, entry_data: dict[str, Any]
) -> MockConfigEntry:
    """An S-Series entry with the named targets of S_TARGETS, set up against the fake."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=S_TITLE,
        unique_id=SERIAL,
        data=entry_data,
        subentries_data=S_TARGETS,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
async def p_targets(hass: HomeAssistant, fake_p: FakeYeastarP) -> MockConfigEntry:
    """A P-Series entry with the named targets of P_TARGETS, set up against the fake."""
    entry = add_p_entry(hass, fake_p, subentries=P_TARGETS)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


# ----------------------------------------------------------------------------- helpers


async def _start_add(hass: HomeAssistant, entry: MockConfigEntry) -> FlowResult:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TARGET), context={"source": SOURCE_USER}
    )


async def _start_reconfigure(
    hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str
) -> FlowResult:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TARGET),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )


async def _submit(hass: HomeAssistant, result: FlowResult, data: dict[str, Any]) -> FlowResult:
    outcome = await hass.config_entries.subentries.async_configure(result["flow_id"], data)
    await hass.async_block_till_done()
    return outcome


def _assert_form(result: FlowResult, step_id: str, fields: list[str]) -> None:
    """A form of the target flow with these fields, each with its label and help text."""
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step_id
    assert not result["errors"]
    assert schema_keys(result) == fields
    strings = SUBENTRY_STRINGS["step"][step_id]
    assert strings["title"]
    assert strings["description"]
    for field in fields:
        assert strings["data"][field]
        assert strings["data_description"][field]


def _required(result: FlowResult) -> list[str]:
    return [str(key) for key in schema(result) if isinstance(key, vol.Required)]


def _selector(result: FlowResult, field: str) -> Any:
    validator = next(value for key, value in schema(result).items() if str(key) == field)
    return validator.serialize()["selector"]


def _entity_id(hass: HomeAssistant, platform: str, subentry_id: str, key: str) -> str | None:
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{subentry_id}_{key}")


def _device(hass: HomeAssistant, entry: MockConfigEntry, identifier: str) -> dr.DeviceEntry | None:
    """The entry's device with this identifier (identifiers are per entry since 2026)."""
    found = [
        device
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        if (DOMAIN, identifier) in device.identifiers
    ]
    assert len(found) <= 1
    return found[0] if found else None


def _pbx_device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    device = _device(hass, entry, str(entry.unique_id))
    assert device is not None
    return device


def _subentries(device: dr.DeviceEntry, entry: MockConfigEntry) -> list[str | None]:
    """The subentries of ``entry`` the device belongs to (None: the entry itself).

    Since 2026 a device belongs to one config entry (``config_subentry_id``); before, it
    maps entries to subentries (``config_entries_subentries``).
    """
    if hasattr(device, "config_subentry_id"):
        assert device.config_entry_id == entry.entry_id
        return [device.config_subentry_id]
    assert set(device.config_entries_subentries) == {entry.entry_id}
    return sorted(device.config_entries_subentries[entry.entry_id], key=repr)


def _plain(value: Any) -> Any:
    """Enums as their values, sets sorted, containers as dict/list (stable in snapshots)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item) for item in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _registry(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """The entry's devices and entities, random ids replaced by what they stand for."""
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    names = {device.id: f"<device {device.name}>" for device in devices}
    shown_devices = []
    for device in sorted(devices, key=lambda item: str(item.name)):
        fields = {name: _plain(getattr(device, name)) for name in DEVICE_FIELDS}
        fields["via_device"] = names.get(device.via_device_id, device.via_device_id)
        fields["subentries"] = _subentries(device, entry)
        if fields["configuration_url"]:
            fields["configuration_url"] = "<the PBX's web interface>"
        shown_devices.append(fields)
    entities = []
    for item in sorted(
        er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id),
        key=lambda item: item.entity_id,
    ):
        state = hass.states.get(item.entity_id)
        assert state is not None
        attributes = dict(state.attributes)
        attributes.pop(ATTR_SUPPORTED_FEATURES, None)
        entities.append(
            {
                "entry": {name: _plain(getattr(item, name)) for name in ENTITY_FIELDS},
                "device": names[str(item.device_id)],
                "state": state.state if item.domain != "event" else "<not fired>",
                "attributes": _plain(attributes),
            }
        )
    return {"devices": shown_devices, "entities": entities}


async def _notify(hass: HomeAssistant, entity_id: str, message: str, **data: Any) -> None:
    await hass.services.async_call(
        NOTIFY_DOMAIN,
        SERVICE_SEND_MESSAGE,
        {ATTR_ENTITY_ID: entity_id, ATTR_MESSAGE: message, **data},
        blocking=True,
    )


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: entity_id}, blocking=True
    )


def _s_bodies(pbx: FakeYeastarPBX) -> list[Any]:
    return [request.body for request in pbx.calls(PLAYPROMPT)]


# ------------------------------------------------------------------------- the flow


async def test_add_form_of_an_s_series_entry_has_no_message(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The S-Series cannot speak: name, target, prompts and auto answer."""
    result = await _start_add(hass, loaded_entry)

    _assert_form(result, "user", ["name", "target", "prompt", "autoanswer"])
    assert _required(result) == ["name", "target"]
    assert _selector(result, "prompt")["text"]["multiple"] is True


async def test_add_form_of_a_p_series_entry_has_a_message(
    hass: HomeAssistant, p_loaded: MockConfigEntry
) -> None:
    """The P-Series speaks: the announce button may have a message."""
    result = await _start_add(hass, p_loaded)

    _assert_form(result, "user", ["name", "target", "prompt", "message", "autoanswer"])
    assert _required(result) == ["name", "target"]
    assert _selector(result, "prompt")["text"]["multiple"] is True
    assert _selector(result, "message")["text"]["multiline"] is True


async def test_add_form_of_an_entry_not_loaded_offers_what_every_system_can(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """Without a loaded entry nothing is known of the system: no message, no auto answer."""
    assert config_entry.state is ConfigEntryState.NOT_LOADED

    result = await _start_add(hass, config_entry)
    _assert_form(result, "user", ["name", "target", "prompt"])
    result = await _submit(hass, result, {"name": "Office", "target": "1001"})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = config_entry.subentries.values()
    assert (subentry.title, dict(subentry.data)) == ("Office", {"target": "1001"})


async def test_add_target_trims_and_creates_its_device_and_entities(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """A new target: its subentry, device under the PBX, notify entity and announce button."""
    backend = loaded_entry.runtime_data
    result = await _start_add(hass, loaded_entry)
    result = await _submit(
        hass,
        result,
        {
            "name": "  Reception phone ",
            "target": " 1000 ",
            "prompt": [" doorbell ", "  ", "alarm"],
            "autoanswer": True,
        },
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Reception phone"
    assert result["data"] == {"target": "1000", "prompt": ["doorbell", "alarm"], "autoanswer": True}
    (subentry,) = loaded_entry.subentries.values()
    assert subentry.subentry_type == SUBENTRY_TARGET
    assert subentry.title == "Reception phone"
    # The entry reloaded with the new target.
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.runtime_data is not backend
    device = _device(hass, loaded_entry, subentry.subentry_id)
    assert device is not None
    assert device.name == "Reception phone"
    assert device.via_device_id == _pbx_device(hass, loaded_entry).id
    assert _entity_id(hass, "notify", subentry.subentry_id, "notify") == "notify.reception_phone"
    assert (
        _entity_id(hass, "button", subentry.subentry_id, "announce")
        == "button.reception_phone_announce"
    )
    assert hass.states.get("notify.reception_phone") is not None
    assert hass.states.get("button.reception_phone_announce") is not None


@pytest.mark.parametrize(
    ("user_input", "data", "button"),
    [
        pytest.param(
            {"name": "Kitchen", "target": "1003", "message": f" {LUNCH} "},
            {"target": "1003", "message": LUNCH},
            True,
            id="message-only",
        ),
        pytest.param(
            {"name": "Kitchen", "target": "1003", "prompt": [" "], "message": "  "},
            {"target": "1003"},
            False,
            id="nothing-to-play",
        ),
        pytest.param(
            {"name": "Kitchen", "target": "1003", "autoanswer": False},
            {"target": "1003", "autoanswer": False},
            False,
            id="autoanswer-off",
        ),
    ],
)
async def test_add_target_on_a_p_series_entry(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    user_input: dict[str, Any],
    data: dict[str, Any],
    button: bool,
) -> None:
    """A message alone gives a button; empty defaults are left out and give none."""
    result = await _submit(hass, await _start_add(hass, p_loaded), user_input)

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == data
    (subentry,) = p_loaded.subentries.values()
    assert _entity_id(hass, "notify", subentry.subentry_id, "notify") == "notify.kitchen"
    announce = _entity_id(hass, "button", subentry.subentry_id, "announce")
    assert (announce == "button.kitchen_announce") if button else announce is None


@pytest.mark.parametrize(
    ("user_input", "field"),
    [
        pytest.param({"name": "   ", "target": "1000"}, "name", id="blank-name"),
        pytest.param({"name": "Reception phone", "target": "  "}, "target", id="blank-target"),
    ],
)
async def test_add_target_refuses_a_blank_name_or_target(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    user_input: dict[str, Any],
    field: str,
) -> None:
    """Spaces alone are no name and no target: the form asks again (no crash, no subentry)."""
    result = await _submit(hass, await _start_add(hass, loaded_entry), user_input)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: "required"}
    assert SUBENTRY_STRINGS["error"]["required"]
    assert loaded_entry.subentries == {}


async def test_reconfigure_form_shows_the_target_and_saves_it(
    hass: HomeAssistant, pbx: FakeYeastarPBX, s_targets: MockConfigEntry
) -> None:
    """The form suggests what the target has; saving replaces name and defaults."""
    result = await _start_reconfigure(hass, s_targets, "reception")

    _assert_form(result, "reconfigure", ["name", "target", "prompt", "autoanswer"])
    assert result["description_placeholders"] == {"name": "Reception phone"}
    assert suggested(result) == {
        "name": "Reception phone",
        "target": "1000",
        "prompt": ["doorbell"],
        "autoanswer": True,
    }

    # A blank target asks again, keeping what was typed; nothing is saved yet.
    result = await _submit(hass, result, {"name": "Front desk", "target": " "})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"target": "required"}
    assert suggested(result)["name"] == "Front desk"
    assert s_targets.subentries["reception"].title == "Reception phone"

    result = await _submit(
        hass,
        result,
        {"name": " Front desk ", "target": "1001", "prompt": ["alarm", ""], "autoanswer": False},
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    subentry = s_targets.subentries["reception"]
    assert subentry.title == "Front desk"
    assert dict(subentry.data) == {"target": "1001", "prompt": ["alarm"], "autoanswer": False}
    assert s_targets.subentries["office"].title == "Office"  # the other one is untouched


# ------------------------------------------------------------------ devices, entities


async def test_devices_and_entities_of_the_targets(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_targets: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Each target: its own device under the PBX's, a notify entity, a button if it plays."""
    pbx_device = _pbx_device(hass, p_targets)
    for subentry_id, title, model in (
        ("reception", "Reception phone", "Target 1000"),
        ("kitchen", "Kitchen", "Target 1003"),
        ("office", "Office", "Target 1001"),
    ):
        device = _device(hass, p_targets, subentry_id)
        assert device is not None
        assert (device.name, device.model, device.manufacturer) == (title, model, "Yeastar")
        assert device.via_device_id == pbx_device.id
        assert _subentries(device, p_targets) == [subentry_id]
        notify = _entity_id(hass, "notify", subentry_id, "notify")
        assert notify is not None
        entity = er.async_get(hass).async_get(notify)
        assert entity is not None
        assert entity.device_id == device.id
        assert entity.config_subentry_id == subentry_id
    assert _entity_id(hass, "button", "reception", "announce") == "button.reception_phone_announce"
    assert _entity_id(hass, "button", "kitchen", "announce") == "button.kitchen_announce"
    assert _entity_id(hass, "button", "office", "announce") is None
    assert hass.states.get("notify.office") is not None
    assert hass.states.get("notify.office").state == STATE_UNKNOWN  # type: ignore[union-attr]

    assert _registry(hass, p_targets) == snapshot


async def test_notify_entity_offers_a_title(
    hass: HomeAssistant, pbx: FakeYeastarPBX, s_targets: MockConfigEntry
) -> None:
    """The entity speaks a title before the message, so it declares that it takes one.

    The frontend offers notify.send_message's title field only for entities with
    NotifyEntityFeature.TITLE.
    """
    state = hass.states.get("notify.reception_phone")
    assert state is not None
    assert state.attributes.get(ATTR_SUPPORTED_FEATURES) == NotifyEntityFeature.TITLE


# ------------------------------------------------------------------ notify and button


async def test_notify_speaks_the_message_to_the_target(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_targets: MockConfigEntry,
) -> None:
    """The title, then the message, spoken to the target with its auto answer default.

    The target's default prompt and message are the button's: notify plays only its text.
    """
    await _notify(hass, "notify.reception_phone", LUNCH, **{ATTR_TITLE: "Kitchen"})

    assert [(text, language) for text, language, _ in tts_engine.calls] == [
        (f"Kitchen. {LUNCH}", "en")
    ]
    (upload,) = fake_p.calls(P_UPLOAD)
    (name,) = fake_p.uploads
    assert upload.body["file"]["filename"] == f"{name}.wav"
    assert p_play_bodies(fake_p) == [{"number": "1000", "prompts": [name], "auto_answer": "yes"}]
    state = hass.states.get("notify.reception_phone")
    assert state is not None
    assert state.state != STATE_UNKNOWN  # the time of the last message

    # Without a title, the message alone; a target without auto answer does not ask for it.
    await _notify(hass, "notify.office", LUNCH)

    assert [text for text, _, _ in tts_engine.calls] == [f"Kitchen. {LUNCH}", LUNCH]
    assert p_play_bodies(fake_p)[1]["number"] == "1001"
    assert p_play_bodies(fake_p)[1]["auto_answer"] == "no"


async def test_notify_on_the_s_series_says_in_words_that_it_cannot_speak(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    pbx: FakeYeastarPBX,
    s_targets: MockConfigEntry,
) -> None:
    """No upload API: a translated refusal with the way round it; nothing is sent."""
    before = len(pbx.requests)

    with pytest.raises(ServiceValidationError) as exc_info:
        await _notify(hass, "notify.reception_phone", LUNCH)

    err = exc_info.value
    assert err.translation_key == "speech_not_supported"
    assert err.translation_placeholders == {"entry": S_TITLE, "backend": S_SERIES}
    assert f"{S_TITLE} ({S_SERIES}) cannot speak a text" in str(err)
    assert "Record the announcement as a Custom Prompt" in str(err)
    assert len(pbx.requests) == before
    assert tts_engine.calls == []


async def test_button_plays_the_default_prompt_on_the_s_series(
    hass: HomeAssistant, pbx: FakeYeastarPBX, s_targets: MockConfigEntry
) -> None:
    """The target's prompt, with its auto answer default."""
    await _press(hass, "button.reception_phone_announce")

    assert _s_bodies(pbx) == [{"extid": "1000", "prompt": "doorbell", "autoanswer": "yes"}]
    state = hass.states.get("button.reception_phone_announce")
    assert state is not None
    assert state.state != STATE_UNKNOWN  # the time of the last press


async def test_button_speaks_the_default_message_then_the_prompt_on_the_p_series(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    p_targets: MockConfigEntry,
) -> None:
    """Message first, then the prompt; a target with only a message speaks it alone."""
    await _press(hass, "button.reception_phone_announce")
    await _press(hass, "button.kitchen_announce")

    assert [text for text, _, _ in tts_engine.calls] == [VISITORS, LUNCH]
    visitors, lunch = fake_p.uploads
    assert p_play_bodies(fake_p) == [
        {"number": "1000", "prompts": [visitors, "doorbell"], "auto_answer": "yes"},
        {"number": "1003", "prompts": [lunch], "auto_answer": "no"},
    ]


async def test_reconfigured_target_changes_what_the_button_plays(
    hass: HomeAssistant, pbx: FakeYeastarPBX, s_targets: MockConfigEntry
) -> None:
    """Whom it calls, what it plays and the auto answer default follow the target."""
    await _press(hass, "button.reception_phone_announce")
    result = await _start_reconfigure(hass, s_targets, "reception")
    await _submit(
        hass,
        result,
        {"name": "Reception phone", "target": "1001", "prompt": ["alarm"], "autoanswer": False},
    )

    await _press(hass, "button.reception_phone_announce")

    assert _s_bodies(pbx) == [
        {"extid": "1000", "prompt": "doorbell", "autoanswer": "yes"},
        {"extid": "1001", "prompt": "alarm", "autoanswer": "no"},
    ]


async def test_reconfigured_target_renames_its_device(
    hass: HomeAssistant, pbx: FakeYeastarPBX, s_targets: MockConfigEntry
) -> None:
    """A changed target reloads the entry: its device shows the new name and number."""
    backend = s_targets.runtime_data
    result = await _start_reconfigure(hass, s_targets, "reception")
    await _submit(hass, result, {"name": "Front desk", "target": "1001", "prompt": ["doorbell"]})

    assert s_targets.state is ConfigEntryState.LOADED
    assert s_targets.runtime_data is not backend
    device = _device(hass, s_targets, "reception")
    assert device is not None
    assert (device.name, device.model) == ("Front desk", "Target 1001")
    # The entity keeps its id; its name follows the device.
    state = hass.states.get("notify.reception_phone")
    assert state is not None
    assert state.attributes["friendly_name"] == "Front desk"


async def test_reconfigured_defaults_add_and_remove_the_announce_button(
    hass: HomeAssistant, pbx: FakeYeastarPBX, s_targets: MockConfigEntry
) -> None:
    """A prompt added gives a target its button; the last one removed takes it away."""
    result = await _start_reconfigure(hass, s_targets, "office")
    await _submit(hass, result, {"name": "Office", "target": "1001", "prompt": ["wakeup"]})

    assert _entity_id(hass, "button", "office", "announce") == "button.office_announce"
    await _press(hass, "button.office_announce")
    assert _s_bodies(pbx) == [{"extid": "1001", "prompt": "wakeup", "autoanswer": "no"}]

    result = await _start_reconfigure(hass, s_targets, "reception")
    await _submit(hass, result, {"name": "Reception phone", "target": "1000", "prompt": []})

    assert _entity_id(hass, "button", "reception", "announce") is None
    assert hass.states.get("button.reception_phone_announce") is None
    assert hass.states.get("notify.reception_phone") is not None


async def test_removing_a_target_removes_its_entities_and_device(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_targets: MockConfigEntry
) -> None:
    """Its notify entity, button and device go; the other targets and the PBX stay."""
    backend = p_targets.runtime_data
    reception = _device(hass, p_targets, "reception")
    assert reception is not None

    assert hass.config_entries.async_remove_subentry(p_targets, "reception")
    await hass.async_block_till_done()

    assert p_targets.state is ConfigEntryState.LOADED
    assert p_targets.runtime_data is not backend  # reloaded
    assert dr.async_get(hass).async_get(reception.id) is None
    assert _device(hass, p_targets, "reception") is None
    assert _entity_id(hass, "notify", "reception", "notify") is None
    assert _entity_id(hass, "button", "reception", "announce") is None
    assert hass.states.get("notify.reception_phone") is None
    assert hass.states.get("button.reception_phone_announce") is None
    assert _device(hass, p_targets, "kitchen") is not None
    assert hass.states.get("notify.kitchen") is not None
    assert hass.states.get("button.kitchen_announce") is not None
    assert _pbx_device(hass, p_targets).name == f"{fake_p.model} fake"


async def test_entry_reloads_on_target_changes_not_on_options(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_targets: MockConfigEntry
) -> None:
    """Options are read on every call: no reload (no new token); a target changes entities."""
    backend = p_targets.runtime_data
    tokens = fake_p.token_requests

    hass.config_entries.async_update_entry(p_targets, options={CONF_DIAL_PERMISSION: "1001"})
    await hass.async_block_till_done()

    assert p_targets.runtime_data is backend
    assert fake_p.token_requests == tokens

    result = await _submit(
        hass, await _start_add(hass, p_targets), {"name": "Garage", "target": "1002"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY

    assert p_targets.runtime_data is not backend
    assert fake_p.token_requests == tokens + 1  # the reloaded entry's own token
    assert hass.states.get("notify.garage") is not None
