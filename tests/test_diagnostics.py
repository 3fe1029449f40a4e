"""Diagnostics of a Yeastar entry: useful state, no secrets."""

from __future__ import annotations

from datetime import timedelta
import json
from typing import Any

import aiohttp
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.voice_prompt.api.yeastar import LOCKOUT_SECONDS
from custom_components.voice_prompt.const import DOMAIN
from homeassistant.components import hassio  # noqa: F401 - see below
from homeassistant.const import CONF_PASSWORD, CONF_TOKEN, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from tests.conftest import PASSWORD, play_prompt
from tests.fakes.yeastar import FakeYeastarPBX

# The fake listens on a random port: checked separately, kept out of the snapshot.
# Times are stable: the freezer fixture stops the clock the client measures with.
# (The diagnostics download imports hassio for its system info; imported under a frozen
# clock, its models fail on freezegun's datetime class, hence the import above.)
# The session's certificate is made anew each run: its fingerprint is checked on its own.
VOLATILE = props("port", "certificate_sha256")


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


async def test_diagnostics(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """The entry after one played prompt, with credentials redacted."""
    freezer.tick(timedelta(seconds=30))
    await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    freezer.tick(timedelta(seconds=12))

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    assert diagnostics == snapshot(exclude=VOLATILE)
    assert diagnostics["entry"]["data"]["port"] == pbx.port
    assert diagnostics["client"]["port"] == pbx.port
    # The mode and the pin are there; a fingerprint is no secret.
    assert diagnostics["client"]["certificate_mode"] == "pinned"
    assert diagnostics["client"]["certificate_sha256"] == pbx.certificate_sha256
    assert diagnostics["entry"]["data"]["certificate_sha256"] == pbx.certificate_sha256
    # Logged in at setup, last used by the action 12 seconds ago.
    assert diagnostics["client"]["token_age_seconds"] == 42.0
    assert diagnostics["client"]["idle_seconds"] == 12.0
    _assert_no_secrets(json.dumps(diagnostics), pbx)


async def test_diagnostics_token_mode(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    entry_data: dict[str, Any],
    pbx: FakeYeastarPBX,
    snapshot: SnapshotAssertion,
) -> None:
    """An entry working with a user-supplied token never shows the token; its age is unknown."""
    token = await _token_from_fake(pbx)
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = MockConfigEntry(
        domain=DOMAIN, title="Yeastar S100 (token)", data={**data, CONF_TOKEN: token}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=5))

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diagnostics == snapshot(exclude=VOLATILE)
    assert diagnostics["client"]["mode"] == "token"
    # Issued before Home Assistant saw it: no age; idle since setup's device query.
    assert diagnostics["client"]["token_age_seconds"] is None
    assert diagnostics["client"]["idle_seconds"] == 5.0
    assert pbx.logins == 1  # the other application's only
    _assert_no_secrets(json.dumps(diagnostics), pbx, token)


async def test_diagnostics_after_refused_password(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """After the PBX refused the password at runtime, diagnostics say so (and no secret)."""
    pbx.password = "changed"
    pbx.expire_tokens()
    with pytest.raises(HomeAssistantError, match="refused"):
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    client = diagnostics["client"]
    assert client["auth_failed"] is True
    assert client["logged_in"] is False
    assert client["token_age_seconds"] is None
    assert client["blocked_for_seconds"] == 0.0
    assert pbx.logins == 2
    assert pbx.successful_logins == 1
    _assert_no_secrets(json.dumps(diagnostics), pbx, FakeYeastarPBX.md5("changed"))


async def test_diagnostics_while_blocked(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    pbx: FakeYeastarPBX,
) -> None:
    """A lockout shows how long it still lasts; it is no credentials failure."""
    pbx.block_ip()
    pbx.expire_tokens()
    with pytest.raises(HomeAssistantError, match="locked out"):
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    assert diagnostics["client"]["blocked_for_seconds"] == LOCKOUT_SECONDS
    assert diagnostics["client"]["auth_failed"] is False
    assert diagnostics["client"]["logged_in"] is False

    freezer.tick(timedelta(seconds=100))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    assert diagnostics["client"]["blocked_for_seconds"] == LOCKOUT_SECONDS - 100
    _assert_no_secrets(json.dumps(diagnostics), pbx)
