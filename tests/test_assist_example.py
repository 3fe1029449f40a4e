"""The voice-assistant example of README.md, run as documented against the fake PBXs.

The YAML blocks are read from the page itself, so the documented example is the tested one:
the ``announce`` script (fields ``phone`` and ``message``: a spoken message on a named
target, here a P-Series PBX with the tests' own text-to-speech engine), its exposure to
Assist and its use as a tool by an AI conversation agent (Home Assistant's LLM API), the
custom sentence plus ``intent_script`` for the built-in (local) conversation agent, and the
``announce_recording`` variant for the S-Series, which plays Custom Prompts by name.
"""

# ruff: noqa: F811 - the fixtures imported from tests.*_fixtures are test arguments

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
import re
from typing import Any, Final

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.voice_prompt.const import SUBENTRY_TARGET
from homeassistant.components.conversation import async_converse
from homeassistant.components.homeassistant.exposed_entities import (
    async_expose_entity,
    async_should_expose,
)
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import intent, llm
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
from tests.fakes.yeastar import FakeYeastarPBX
from tests.fakes.yeastar_p import FakeYeastarP
from tests.tts_fixtures import CountingTTS, tts_engine  # noqa: F401 - fixture
from tests.yeastar_p_fixtures import add_p_entry, fake_p, p_play_bodies  # noqa: F401 - fixtures

DOCS_FILE = Path(__file__).resolve().parent.parent / "README.md"
PLACEHOLDER_ENTRY_ID = "01JABCDEF0123456789ABCDEFG"
PLAYPROMPT = "extension/playprompt"
SCRIPT = "script.announce"
RECORDING_SCRIPT = "script.announce_recording"
ASSISTANT = "conversation"  # the id Settings → Voice assistants → Expose uses for Assist
# The named targets of the page: phone → extension.
PHONES: Final = {"reception": "1000", "office": "1001", "kitchen": "1010"}
# A Custom Prompt made from a message: vp_ and 16 hex digits of the content hash.
SPOKEN: Final = re.compile(r"vp_[0-9a-f]{16}")


pytestmark = pytest.mark.usefixtures("own_config_dir")


def _doc_blocks() -> list[str]:
    """The ```yaml blocks of README.md's voice-assistant section, in order."""
    readme = DOCS_FILE.read_text(encoding="utf-8")
    section = readme.split("\n## Voice assistants", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S)


def _doc_block(top_level_key: str, second_key: str | None = None) -> str:
    """The one block with ``top_level_key:`` (and ``second_key:`` indented under it)."""
    matches = [
        block
        for block in _doc_blocks()
        if re.search(rf"^{top_level_key}:", block, re.M)
        and (second_key is None or re.search(rf"^  {second_key}:", block, re.M))
    ]
    assert len(matches) == 1, f"README.md must have one YAML block with {top_level_key}:"
    return matches[0]


def _doc_config(
    top_level_key: str, second_key: str | None = None, entry: MockConfigEntry | None = None
) -> dict[str, Any]:
    """A documented configuration.yaml block; the placeholder entry id becomes the real one."""
    block = _doc_block(top_level_key, second_key)
    if entry is not None:
        assert PLACEHOLDER_ENTRY_ID in block
        block = block.replace(PLACEHOLDER_ENTRY_ID, entry.entry_id)
    config = parse_yaml(block)
    assert isinstance(config, dict)
    return config


def _target(phone: str, extension: str) -> ConfigSubentryDataWithId:
    return ConfigSubentryDataWithId(
        subentry_id=phone,
        subentry_type=SUBENTRY_TARGET,
        title=f"{phone.capitalize()} phone",
        unique_id=None,
        data={"target": extension},
    )


@pytest.fixture
async def named_targets(
    hass: HomeAssistant, tts_engine: CountingTTS, fake_p: FakeYeastarP
) -> MockConfigEntry:
    """A P-Series entry with the page's named targets, set up against the fake."""
    fake_p.extensions["1010"] = "Kitchen"
    entry = add_p_entry(
        hass, fake_p, subentries=[_target(phone, ext) for phone, ext in PHONES.items()]
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    for phone in PHONES:
        assert hass.states.get(f"notify.{phone}_phone") is not None
    return entry


async def _setup_script(hass: HomeAssistant, entry: MockConfigEntry | None = None) -> None:
    """The spoken-message script, or (with an S-Series entry) the recording variant."""
    name = "announce" if entry is None else "announce_recording"
    assert await async_setup_component(hass, "script", _doc_config("script", name, entry))
    await hass.async_block_till_done()
    assert hass.states.get(f"script.{name}") is not None


def _install_custom_sentences(hass: HomeAssistant) -> None:
    """Write the documented custom sentences where the built-in agent reads them."""
    path = Path(hass.config.path("custom_sentences", "en", "voice_prompt.yaml"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_doc_block("intents"), encoding="utf-8")


def _spoken(fake: FakeYeastarP) -> list[tuple[str, str]]:
    """(number, prompt) of every play request: the message's uploaded prompt each time."""
    plays = []
    for body in p_play_bodies(fake):
        (prompt,) = body["prompts"]
        assert SPOKEN.fullmatch(prompt)
        assert prompt in fake.uploads
        plays.append((body["number"], prompt))
    return plays


def _bodies(pbx: FakeYeastarPBX) -> list[Any]:
    return [r.body for r in pbx.calls(PLAYPROMPT)]


def _play(extension: str, prompt: str) -> dict[str, str]:
    return {"extid": extension, "prompt": prompt, "autoanswer": "no"}


def test_docs_have_the_four_blocks() -> None:
    """The page shows the two scripts, the custom sentences and the intent_script."""
    blocks = _doc_blocks()
    assert len(blocks) == 4
    script = _doc_config("script", "announce")["script"]["announce"]
    assert set(script["fields"]) == {"phone", "message"}
    assert all(field["required"] for field in script["fields"].values())
    assert script["fields"]["phone"]["selector"]["select"]["options"] == list(PHONES)
    assert script["sequence"][0]["action"] == "notify.send_message"
    recording = _doc_config("script", "announce_recording")["script"]["announce_recording"]
    assert set(recording["fields"]) == {"extension", "prompt"}
    assert recording["sequence"][0]["action"] == "voice_prompt.play_prompt"
    sentences = _doc_config("intents")
    assert sentences["language"] == "en"
    assert sentences["lists"]["phone"]["values"] == list(PHONES)
    assert set(_doc_config("intent_script")["intent_script"]) == set(sentences["intents"])


async def test_script_from_docs_speaks_the_message(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    named_targets: MockConfigEntry,
) -> None:
    """The documented script calls the named target and speaks what it was given."""
    await _setup_script(hass)
    state = hass.states.get(SCRIPT)
    assert state is not None
    assert state.attributes["friendly_name"] == "Announce on a phone"

    await hass.services.async_call(
        "script", "announce", {"phone": "office", "message": "Lunch is ready."}, blocking=True
    )

    assert tts_engine.calls == [("Lunch is ready.", "en", {})]
    assert [number for number, _ in _spoken(fake_p)] == ["1001"]


def _llm_context(user_prompt: str) -> llm.LLMContext:
    """An Assist request's context; newer releases dropped ``user_prompt``."""
    fields = {field.name for field in dataclasses.fields(llm.LLMContext)}
    values: dict[str, Any] = {
        "platform": "test",
        "context": Context(),
        "user_prompt": user_prompt,
        "language": "en",
        "assistant": ASSISTANT,
        "device_id": None,
    }
    return llm.LLMContext(**{key: value for key, value in values.items() if key in fields})


async def _assist_api(hass: HomeAssistant, user_prompt: str) -> llm.APIInstance:
    """The Assist LLM API; since 2025.x the ``llm`` integration registers it."""
    if importlib.util.find_spec("homeassistant.components.llm") is not None:
        assert await async_setup_component(hass, "llm", {})
    return await llm.async_get_api(hass, llm.LLM_API_ASSIST, _llm_context(user_prompt))


def _script_tool(api: llm.APIInstance, name: str = "announce") -> llm.Tool | None:
    """The script's tool; newer releases prefix tool names with their API's namespace."""
    return next((tool for tool in api.tools if tool.name.split("__")[-1] == name), None)


def _tool_succeeded(result: Any) -> None:
    """A plain dict with "success" before 2026.x; a ToolResult (error flag) since."""
    if isinstance(result, dict):
        assert result["success"] is True
    else:
        assert result.error is False


async def test_script_is_exposed_to_assist_and_called_as_a_tool(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    named_targets: MockConfigEntry,
) -> None:
    """Exposed, the script is a tool of the Assist LLM API with the documented fields."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    await _setup_script(hass)

    # Scripts are not exposed by default.
    assert not async_should_expose(hass, ASSISTANT, SCRIPT)
    api = await _assist_api(hass, "Tell the office that lunch is ready")
    assert _script_tool(api) is None

    # What Settings → Voice assistants → Expose does.
    async_expose_entity(hass, ASSISTANT, SCRIPT, True)
    assert async_should_expose(hass, ASSISTANT, SCRIPT)

    api = await _assist_api(hass, "Tell the office that lunch is ready")
    tool = _script_tool(api)
    assert tool is not None
    assert tool.description is not None
    assert "speaks a message" in tool.description
    parameters = {str(key): key for key in tool.parameters.schema}
    assert set(parameters) == {"phone", "message"}
    assert "reception, office or kitchen" in parameters["phone"].description
    assert "Lunch is ready" in parameters["message"].description
    # The model sees the phones as the only allowed values.
    assert tool.parameters({"phone": "office", "message": "Lunch is ready."})
    with pytest.raises(vol.Invalid):
        tool.parameters({"phone": "garage", "message": "Lunch is ready."})

    # What a conversation agent does with "Tell the office that lunch is ready".
    result = await api.async_call_tool(
        llm.ToolInput(
            tool_name=tool.name, tool_args={"phone": "office", "message": "Lunch is ready."}
        )
    )
    _tool_succeeded(result)
    assert [text for text, _, _ in tts_engine.calls] == ["Lunch is ready."]
    assert [number for number, _ in _spoken(fake_p)] == ["1001"]


async def test_script_tool_reports_a_failure_in_words(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    named_targets: MockConfigEntry,
) -> None:
    """The engine fails: the agent gets the error in words, and no call is placed."""
    assert await async_setup_component(hass, "homeassistant", {})
    await _setup_script(hass)
    async_expose_entity(hass, ASSISTANT, SCRIPT, True)
    api = await _assist_api(hass, "Tell the kitchen lunch is ready")
    tool = _script_tool(api)
    assert tool is not None
    tts_engine.fail_with = "quota exceeded"

    with pytest.raises(HomeAssistantError, match=r"could not speak the message \(quota exceeded"):
        await api.async_call_tool(
            llm.ToolInput(
                tool_name=tool.name, tool_args={"phone": "kitchen", "message": "Lunch is ready."}
            )
        )
    assert p_play_bodies(fake_p) == []


@pytest.mark.parametrize(
    ("sentence", "phone", "message"),
    [
        ("Tell the office that lunch is ready", "office", "lunch is ready"),
        ("tell kitchen lunch is ready", "kitchen", "lunch is ready"),
        (
            "Announce that someone is at the door in the reception",
            "reception",
            "someone is at the door",
        ),
    ],
)
async def test_builtin_agent_runs_the_script_from_a_sentence(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    named_targets: MockConfigEntry,
    sentence: str,
    phone: str,
    message: str,
) -> None:
    """The documented custom sentences + intent_script: the local agent speaks on the phone."""
    _install_custom_sentences(hass)

    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    assert await async_setup_component(hass, "intent", {})
    await _setup_script(hass)
    assert await async_setup_component(hass, "intent_script", _doc_config("intent_script"))
    await hass.async_block_till_done()

    result = await async_converse(hass, sentence, None, Context(), language="en")
    response = result.response
    assert response.response_type is intent.IntentResponseType.ACTION_DONE, response.as_dict()
    assert response.speech["plain"]["speech"] == f"OK, calling the {phone}."
    assert [text for text, _, _ in tts_engine.calls] == [message]
    assert [number for number, _ in _spoken(fake_p)] == [PHONES[phone]]


async def test_builtin_agent_ignores_unknown_rooms(
    hass: HomeAssistant,
    tts_engine: CountingTTS,
    fake_p: FakeYeastarP,
    named_targets: MockConfigEntry,
) -> None:
    """A phone that is not in the documented list: no match, nothing is spoken or sent."""
    _install_custom_sentences(hass)
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    await _setup_script(hass)
    assert await async_setup_component(hass, "intent_script", _doc_config("intent_script"))
    await hass.async_block_till_done()

    result = await async_converse(
        hass, "Tell the garage that lunch is ready", None, Context(), language="en"
    )
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert tts_engine.calls == []
    assert p_play_bodies(fake_p) == []


# ------------------------------------------------------------- the S-Series variant


async def test_recording_script_plays_the_prompt(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """S-Series: the documented variant rings the extension; it returns the calls."""
    await _setup_script(hass, loaded_entry)
    state = hass.states.get(RECORDING_SCRIPT)
    assert state is not None
    assert state.attributes["friendly_name"] == "Announce a recording on a phone"

    response = await hass.services.async_call(
        "script",
        "announce_recording",
        {"extension": "1000", "prompt": "lunch_ready"},
        blocking=True,
        return_response=True,
    )
    assert _bodies(pbx) == [_play("1000", "lunch_ready")]
    assert response is not None
    assert response["failed"] == []
    assert [call["target"] for call in response["calls"]] == ["1000"]
    assert response["calls"][0]["call_id"] == pbx.calls(PLAYPROMPT)[0].reply["callid"]  # type: ignore[index]


async def test_recording_script_as_a_tool(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """The variant as a tool: the recordings are its only values; a refusal is in words."""
    assert await async_setup_component(hass, "homeassistant", {})
    await _setup_script(hass, loaded_entry)
    async_expose_entity(hass, ASSISTANT, RECORDING_SCRIPT, True)
    api = await _assist_api(hass, "Tell the office lunch is ready")
    tool = _script_tool(api, "announce_recording")
    assert tool is not None
    parameters = {str(key): key for key in tool.parameters.schema}
    assert set(parameters) == {"extension", "prompt"}
    assert "1001 the office" in parameters["extension"].description
    with pytest.raises(vol.Invalid):
        tool.parameters({"extension": "1000", "prompt": "pizza"})

    result = await api.async_call_tool(
        llm.ToolInput(tool_name=tool.name, tool_args={"extension": "1001", "prompt": "lunch_ready"})
    )
    _tool_succeeded(result)
    with pytest.raises(ServiceValidationError, match="Extension 4242 does not exist on the PBX"):
        await api.async_call_tool(
            llm.ToolInput(
                tool_name=tool.name, tool_args={"extension": "4242", "prompt": "lunch_ready"}
            )
        )
    assert _bodies(pbx) == [_play("1001", "lunch_ready"), _play("4242", "lunch_ready")]
