"""The voice-assistant example of README.md, run as documented against the fake PBX.

The YAML blocks are read from the page itself, so the documented example is the tested one:
the ``announce`` script (fields ``extension`` and ``prompt``), its exposure to Assist and its
use as a tool by an AI conversation agent (Home Assistant's LLM API), and the custom sentence
plus ``intent_script`` for the built-in (local) conversation agent.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
import re
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from homeassistant.components.conversation import async_converse
from homeassistant.components.homeassistant.exposed_entities import (
    async_expose_entity,
    async_should_expose,
)
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import intent, llm
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import parse_yaml
from tests.fakes.yeastar import FakeYeastarPBX

DOCS_FILE = Path(__file__).resolve().parent.parent / "README.md"
PLACEHOLDER_ENTRY_ID = "01JABCDEF0123456789ABCDEFG"
PLAYPROMPT = "extension/playprompt"
SCRIPT = "script.announce"
ASSISTANT = "conversation"  # the id Settings → Voice assistants → Expose uses for Assist


pytestmark = pytest.mark.usefixtures("own_config_dir")


def _doc_blocks() -> list[str]:
    """The ```yaml blocks of README.md's voice-assistant section, in order."""
    readme = DOCS_FILE.read_text(encoding="utf-8")
    section = readme.split("\n## Voice assistants", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S)


def _doc_block(top_level_key: str) -> str:
    matches = [block for block in _doc_blocks() if re.search(rf"^{top_level_key}:", block, re.M)]
    assert len(matches) == 1, f"README.md must have one YAML block with {top_level_key}:"
    return matches[0]


def _doc_config(top_level_key: str, entry: MockConfigEntry | None = None) -> dict[str, Any]:
    """A documented configuration.yaml block; the placeholder entry id becomes the real one."""
    block = _doc_block(top_level_key)
    if entry is not None:
        assert PLACEHOLDER_ENTRY_ID in block
        block = block.replace(PLACEHOLDER_ENTRY_ID, entry.entry_id)
    config = parse_yaml(block)
    assert isinstance(config, dict)
    return config


async def _setup_script(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await async_setup_component(hass, "script", _doc_config("script", entry))
    await hass.async_block_till_done()
    assert hass.states.get(SCRIPT) is not None


def _install_custom_sentences(hass: HomeAssistant) -> None:
    """Write the documented custom sentences where the built-in agent reads them."""
    path = Path(hass.config.path("custom_sentences", "en", "voice_prompt.yaml"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_doc_block("intents"), encoding="utf-8")


def _bodies(pbx: FakeYeastarPBX) -> list[Any]:
    return [r.body for r in pbx.calls(PLAYPROMPT)]


def _play(extension: str, prompt: str) -> dict[str, str]:
    return {"extid": extension, "prompt": prompt, "autoanswer": "no"}


def test_docs_have_the_three_blocks() -> None:
    """The page shows the script, the custom sentences and the intent_script, nothing else."""
    blocks = _doc_blocks()
    assert len(blocks) == 3
    script = _doc_config("script")["script"]["announce"]
    assert set(script["fields"]) == {"extension", "prompt"}
    assert all(field["required"] for field in script["fields"].values())
    assert script["sequence"][0]["action"] == "voice_prompt.play_prompt"
    sentences = _doc_config("intents")
    assert sentences["language"] == "en"
    assert set(_doc_config("intent_script")["intent_script"]) == set(sentences["intents"])


async def test_script_from_docs_plays_the_prompt(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """Running the documented script with its fields rings the extension; it returns the calls."""
    await _setup_script(hass, loaded_entry)
    state = hass.states.get(SCRIPT)
    assert state is not None
    assert state.attributes["friendly_name"] == "Announce on a phone"

    response = await hass.services.async_call(
        "script",
        "announce",
        {"extension": "1000", "prompt": "lunch_ready"},
        blocking=True,
        return_response=True,
    )
    assert _bodies(pbx) == [_play("1000", "lunch_ready")]
    assert response is not None
    assert response["failed"] == []
    assert [call["target"] for call in response["calls"]] == ["1000"]
    assert response["calls"][0]["call_id"] == pbx.calls(PLAYPROMPT)[0].reply["callid"]  # type: ignore[index]


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


def _script_tool(api: llm.APIInstance) -> llm.Tool | None:
    """The script's tool; newer releases prefix tool names with their API's namespace."""
    return next((tool for tool in api.tools if tool.name.split("__")[-1] == "announce"), None)


async def test_script_is_exposed_to_assist_and_called_as_a_tool(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """Exposed, the script is a tool of the Assist LLM API with the documented fields."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    await _setup_script(hass, loaded_entry)

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
    assert "plays a recorded announcement" in tool.description
    parameters = {str(key): key for key in tool.parameters.schema}
    assert set(parameters) == {"extension", "prompt"}
    assert "1001 the office" in parameters["extension"].description
    assert "lunch_ready" in parameters["prompt"].description
    # The model sees the announcement names as the only allowed values.
    assert tool.parameters({"extension": "1000", "prompt": "lunch_ready"})
    with pytest.raises(vol.Invalid):
        tool.parameters({"extension": "1000", "prompt": "pizza"})

    # What a conversation agent does with "Tell the office that lunch is ready".
    result: Any = await api.async_call_tool(
        llm.ToolInput(tool_name=tool.name, tool_args={"extension": "1001", "prompt": "lunch_ready"})
    )
    assert _bodies(pbx) == [_play("1001", "lunch_ready")]
    # A plain dict with "success" before 2026.x; a ToolResult (error flag) since.
    if isinstance(result, dict):
        assert result["success"] is True
        response: Any = result["result"]
    else:
        assert result.error is False
        response = result.data["result"]
    assert [call["target"] for call in response["calls"]] == ["1001"]
    assert response["failed"] == []


async def test_script_tool_reports_a_pbx_refusal(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """An extension the PBX does not know: the agent gets the error in words, one request."""
    assert await async_setup_component(hass, "homeassistant", {})
    await _setup_script(hass, loaded_entry)
    async_expose_entity(hass, ASSISTANT, SCRIPT, True)
    api = await _assist_api(hass, "Tell room 4242 lunch is ready")
    tool = _script_tool(api)
    assert tool is not None
    with pytest.raises(ServiceValidationError, match="Extension 4242 does not exist on the PBX"):
        await api.async_call_tool(
            llm.ToolInput(
                tool_name=tool.name, tool_args={"extension": "4242", "prompt": "lunch_ready"}
            )
        )
    assert _bodies(pbx) == [_play("4242", "lunch_ready")]


@pytest.mark.parametrize(
    ("sentence", "extension", "prompt"),
    [
        ("Tell the office that lunch is ready", "1001", "lunch_ready"),
        ("tell kitchen lunch is ready", "1010", "lunch_ready"),
        ("Announce that someone is at the door in the reception", "1000", "doorbell"),
    ],
)
async def test_builtin_agent_runs_the_script_from_a_sentence(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    sentence: str,
    extension: str,
    prompt: str,
) -> None:
    """The documented custom sentences + intent_script: the local agent rings the phone."""
    _install_custom_sentences(hass)

    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    assert await async_setup_component(hass, "intent", {})
    await _setup_script(hass, loaded_entry)
    assert await async_setup_component(hass, "intent_script", _doc_config("intent_script"))
    await hass.async_block_till_done()

    result = await async_converse(hass, sentence, None, Context(), language="en")
    response = result.response
    assert response.response_type is intent.IntentResponseType.ACTION_DONE, response.as_dict()
    assert response.speech["plain"]["speech"] == f"OK, calling extension {extension}."
    assert _bodies(pbx) == [_play(extension, prompt)]


async def test_builtin_agent_ignores_unknown_rooms(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """A phone that is not in the documented list: no match, nothing is sent to the PBX."""
    _install_custom_sentences(hass)
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    await _setup_script(hass, loaded_entry)
    assert await async_setup_component(hass, "intent_script", _doc_config("intent_script"))
    await hass.async_block_till_done()

    result = await async_converse(
        hass, "Tell the garage that lunch is ready", None, Context(), language="en"
    )
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert pbx.calls(PLAYPROMPT) == []
