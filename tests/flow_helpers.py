"""Helpers shared by the config-flow tests: start, submit, and read or check a form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from custom_components.voice_prompt.const import DOMAIN
from custom_components.voice_prompt.validation import vol
from homeassistant.config_entries import SOURCE_USER, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.selector import Selector
from tests.conftest import STRINGS

TRANSLATIONS: dict[str, Any] = STRINGS
CONFIG_STRINGS: dict[str, Any] = TRANSLATIONS["config"]
OPTIONS_STRINGS: dict[str, Any] = TRANSLATIONS["options"]


async def start_flow(hass: HomeAssistant, step: str) -> ConfigFlowResult:
    """Open the user menu and pick ``step``."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": step})


# The step that shows a PBX's certificate before any credential is sent to it.
CERTIFICATE_STEP = "certificate"


async def submit(
    hass: HomeAssistant, flow_id: str, data: dict[str, Any], *, confirm_certificate: bool = True
) -> ConfigFlowResult:
    """Submit a form; the certificate it then shows is confirmed as a user would.

    ``confirm_certificate=False`` returns the certificate step itself.
    """
    result = await hass.config_entries.flow.async_configure(flow_id, data)
    if (
        confirm_certificate
        and result["type"] is FlowResultType.FORM
        and result["step_id"] == CERTIFICATE_STEP
    ):
        result = await hass.config_entries.flow.async_configure(flow_id, {})
    return result


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


def defaults(result: ConfigFlowResult) -> dict[str, Any]:
    """The defaults of the form's fields that have one."""
    return {str(key): key.default() for key in schema(result) if callable(key.default)}


def error_text(result: ConfigFlowResult, field: str = "base") -> str:
    """The English text the frontend shows for a form error, placeholders filled in."""
    key = (result["errors"] or {})[field]
    text: str = CONFIG_STRINGS["error"][key]
    return text.format(**(result["description_placeholders"] or {}))


def assert_form(
    result: ConfigFlowResult,
    step_id: str,
    errors: dict[str, str] | None = None,
    *,
    tried: str | None = None,
) -> None:
    """A form for step_id with exactly these errors, every string of it translated.

    ``tried`` is what the failed check contacted: the form's ``tried`` placeholder, and
    part of the error message the user reads.
    """
    # This module is not rewritten by pytest: the messages say what differed.
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == step_id, result["step_id"]
    assert result["errors"] == (errors or {}), result["errors"]
    strings = CONFIG_STRINGS["step"][step_id]
    for key in schema_keys(result):
        assert key in strings["data"], key
        assert key in strings["data_description"], key
    for error in (errors or {}).values():
        assert error in CONFIG_STRINGS["error"], error
    if tried is not None:
        placeholders = result["description_placeholders"] or {}
        assert placeholders.get("tried") == tried, f"tried {placeholders.get('tried')!r}"
        assert tried in error_text(result), error_text(result)


def assert_abort(result: ConfigFlowResult, reason: str) -> None:
    """An abort with a translated reason."""
    assert result["type"] is FlowResultType.ABORT, result
    assert result["reason"] == reason, result["reason"]
    assert reason in CONFIG_STRINGS["abort"], reason


def _validator(validator: Any) -> Any:
    """What a field's validator asks for, as the frontend sees it (for snapshots)."""
    if isinstance(validator, Selector):
        return validator.serialize()["selector"]
    if validator is cv.port:
        return "port"
    if isinstance(validator, type):
        return validator.__name__
    return repr(validator)  # a new kind of field: the snapshot shows it


def form_shape(result: ConfigFlowResult, volatile: Mapping[Any, str] | None = None) -> Any:
    """A form as plain data for a syrupy snapshot: fields, errors, placeholders.

    ``volatile`` maps values that change per run (the fake's port) to fixed stand-ins;
    they are replaced wherever they occur, also inside strings.
    """
    assert result["type"] is FlowResultType.FORM
    fields = []
    for key, validator in schema(result).items():
        field: dict[str, Any] = {
            "name": str(key),
            "required": isinstance(key, vol.Required),
            "type": _validator(validator),
        }
        if callable(key.default):
            field["default"] = key.default()
        if key.description and "suggested_value" in key.description:
            field["suggested"] = key.description["suggested_value"]
        fields.append(field)
    shape = {
        "step_id": result["step_id"],
        "fields": fields,
        "errors": result["errors"] or {},
        "description_placeholders": result["description_placeholders"] or {},
    }
    return _normalised(shape, volatile or {})


def _normalised(value: Any, volatile: Mapping[Any, str]) -> Any:
    if isinstance(value, Mapping):
        return {key: _normalised(item, volatile) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalised(item, volatile) for item in value]
    if isinstance(value, str):
        for old, new in volatile.items():
            value = value.replace(str(old), new)
        return value
    if not isinstance(value, bool) and value in volatile:
        return volatile[value]
    return value
