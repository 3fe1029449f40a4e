"""Helpers shared by the config-flow tests: start, submit, and read or check a form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custom_components.voice_prompt import config_flow
from custom_components.voice_prompt.const import DOMAIN
from homeassistant.config_entries import SOURCE_USER, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

TRANSLATIONS = json.loads(
    (Path(config_flow.__file__).parent / "translations" / "en.json").read_text(encoding="utf-8")
)
CONFIG_STRINGS: dict[str, Any] = TRANSLATIONS["config"]
OPTIONS_STRINGS: dict[str, Any] = TRANSLATIONS["options"]


async def start_flow(hass: HomeAssistant, step: str) -> ConfigFlowResult:
    """Open the user menu and pick ``step``."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": step})


async def submit(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> ConfigFlowResult:
    """Submit a form."""
    return await hass.config_entries.flow.async_configure(flow_id, data)


def schema(result: ConfigFlowResult) -> dict[Any, Any]:
    """The form's fields (voluptuous markers) and their validators."""
    data_schema = result["data_schema"]
    assert data_schema is not None
    return dict(data_schema.schema)


def schema_keys(result: ConfigFlowResult) -> list[str]:
    """The form's field names, in order."""
    return [str(key) for key in schema(result)]


def suggested(result: ConfigFlowResult) -> dict[str, Any]:
    """The values the form suggests (what was typed, or the entry's)."""
    return {
        str(key): key.description["suggested_value"]
        for key in schema(result)
        if key.description and "suggested_value" in key.description
    }


def assert_form(
    result: ConfigFlowResult, step_id: str, errors: dict[str, str] | None = None
) -> None:
    """A form for step_id with exactly these errors, every string of it translated."""
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step_id
    assert result["errors"] == (errors or {})
    strings = CONFIG_STRINGS["step"][step_id]
    for key in schema_keys(result):
        assert key in strings["data"]
        assert key in strings["data_description"]
    for error in (errors or {}).values():
        assert error in CONFIG_STRINGS["error"]


def assert_abort(result: ConfigFlowResult, reason: str) -> None:
    """An abort with a translated reason."""
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason
    assert reason in CONFIG_STRINGS["abort"]
