"""Diagnostics of a Yeastar entry: useful state, no secrets."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME
from homeassistant.core import HomeAssistant
from tests.conftest import PASSWORD
from tests.fakes.yeastar import FakeYeastarPBX

# Random per run (port) or timing-dependent: checked separately, kept out of the snapshot.
VOLATILE = props("port", "token_age_seconds", "idle_seconds")


def _assert_no_secrets(dump: str, pbx: FakeYeastarPBX, *extra: str) -> None:
    secrets = {
        PASSWORD,
        FakeYeastarPBX.md5(PASSWORD),
        *pbx.tokens,
        *(r.token for r in pbx.requests if r.token),
        *extra,
    }
    assert len(secrets) > 2  # at least one token was issued
    for secret in secrets:
        assert secret not in dump
        assert secret.upper() not in dump.upper()


async def _token_from_fake(pbx: FakeYeastarPBX) -> str:
    """Log in like another application would and return the token it got."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{pbx.base_url}login",
            json={"username": "api", "password": FakeYeastarPBX.md5(PASSWORD), "port": "8260"},
            ssl=False,
        ) as response,
    ):
        token = (await response.json(content_type=None))["token"]
    assert isinstance(token, str)
    return token


def _assert_timing(client: dict[str, Any]) -> None:
    for key in ("token_age_seconds", "idle_seconds"):
        value = client[key]
        assert isinstance(value, float)
        assert 0.0 <= value < 60.0


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """The entry after one played prompt, with credentials redacted."""
    await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": loaded_entry.entry_id, "extension": "1000", "prompt": "doorbell"},
        blocking=True,
    )

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    assert diagnostics == snapshot(exclude=VOLATILE)
    assert isinstance(diagnostics["entry"], dict)
    assert isinstance(diagnostics["client"], dict)
    assert diagnostics["entry"]["data"]["port"] == pbx.port
    assert diagnostics["client"]["port"] == pbx.port
    _assert_timing(diagnostics["client"])
    _assert_no_secrets(json.dumps(diagnostics), pbx)


async def test_diagnostics_token_mode(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """An entry working with a user-supplied token never shows the token."""
    token = await _token_from_fake(pbx)
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = MockConfigEntry(
        domain=DOMAIN, title="Yeastar S100 (token)", data={**data, CONF_TOKEN: token}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diagnostics == snapshot(exclude=VOLATILE)
    assert isinstance(diagnostics["client"], dict)
    assert diagnostics["client"]["mode"] == "token"
    assert diagnostics["client"]["logins"] == 0
    assert isinstance(diagnostics["client"]["idle_seconds"], float)
    assert 0.0 <= diagnostics["client"]["idle_seconds"] < 60.0
    _assert_no_secrets(json.dumps(diagnostics), pbx, token)


async def test_diagnostics_token_mode_token_age(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
) -> None:
    """The age of a user-supplied token is unknown (None) or counted from setup."""
    token = await _token_from_fake(pbx)
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = MockConfigEntry(domain=DOMAIN, title="token", data={**data, CONF_TOKEN: token})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert isinstance(diagnostics["client"], dict)
    age = diagnostics["client"]["token_age_seconds"]
    assert age is None or (isinstance(age, float) and 0.0 <= age < 60.0)


async def test_diagnostics_after_refused_password(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """After the PBX refused the password at runtime, diagnostics say so (and no secret)."""
    pbx.password = "changed"
    pbx.expire_tokens()
    with pytest.raises(Exception, match="refused"):
        await hass.services.async_call(
            DOMAIN,
            SERVICE_PLAY_PROMPT,
            {"config_entry_id": loaded_entry.entry_id, "extension": "1000", "prompt": "doorbell"},
            blocking=True,
        )

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    client = diagnostics["client"]
    assert isinstance(client, dict)
    assert client["auth_failed"] is True
    assert client["logged_in"] is False
    assert client["token_age_seconds"] is None
    assert client["logins"] == 2
    assert client["relogins"] == 1
    _assert_no_secrets(json.dumps(diagnostics), pbx, FakeYeastarPBX.md5("changed"))
