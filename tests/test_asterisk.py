"""An Asterisk entry through Home Assistant: config flow, setup, the action, events, diagnostics.

Everything talks to the fake ARI (``tests/fakes/ari.py``), a real HTTP and websocket server
on 127.0.0.1; nothing is mocked at the HTTP level. Home Assistant's own HTTP app serves
spoken messages and ``/local/`` files on 127.0.0.1 too (``ha_url``), and the fake fetches
them as Asterisk would. The client's own behaviour is in ``test_api_ari.py``; the same
entry against a real Asterisk and phone is in ``test_real_asterisk.py``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Iterator
import functools
import json
import logging
import socket
import ssl
from typing import Any, Final
from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.voice_prompt.api.ari import AriClient, AriSocketState
from custom_components.voice_prompt.backends.asterisk import (
    CONF_APP,
    CONF_RING_TIMEOUT,
    CONF_TECHNOLOGY,
    SPEECH_PATH,
    AsteriskBackend,
)
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN
from homeassistant.components import hassio  # noqa: F401 - see test_diagnostics.py
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
    EVENT_HOMEASSISTANT_STOP,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from tests.asterisk_fixtures import (  # noqa: F401 - ha_url is a fixture
    LOCAL_WAV,
    WIDE_WAV,
    add_asterisk_entry,
    asterisk_data,
    ha_url,
)
from tests.conftest import entry_device, play_prompt, reauth_flows
from tests.fakes.ari import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    ENTITY_ID,
    VERSION,
    FakeAsterisk,
    FakePhone,
)
from tests.flow_helpers import (
    OPTIONS_STRINGS,
    assert_abort,
    assert_form,
    defaults,
    form_shape,
    schema_keys,
    start_flow,
    submit,
    suggested,
)
from tests.tts_fixtures import CountingTTS, tts_engine  # noqa: F401 - fixtures

STEP: Final = "asterisk"
TITLE: Final = "Asterisk (127.0.0.1)"
APP: Final = "voice_prompt"
OTHER_ENTITY_ID: Final = "02:fc:00:00:00:99"
SCALE: Final = 0.01  # the fake's sounds and rings at 1/100
TRUNK: Final = "PJSIP/trunk/+31201234567"
PHONES: Final = {
    "PJSIP/1000": FakePhone(),
    "PJSIP/1001": FakePhone(keys=[(0.0, "5"), (0.0, "#")]),
    "PJSIP/1002": FakePhone(online=False),
    "PJSIP/1003": FakePhone(answer="busy"),
    "PJSIP/1004": FakePhone(answer="no_answer"),
    "PJSIP/1005": FakePhone(answer="reject"),
    "PJSIP/trunk": FakePhone(),
    "SIP/2000": FakePhone(),
}
NOT_REGISTERED: Final = (
    "PJSIP/1002 is not registered: no phone is online on it (Asterisk answered Allocation "
    "failed; state offline)"
)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def fast_client() -> Iterator[None]:
    """Clients without the pause before hanging up, reconnecting at once (the fake is quick)."""
    fast = functools.partial(AriClient, hangup_delay=0.0, reconnect_delays=(0.01, 0.05))
    with patch("custom_components.voice_prompt.backends.asterisk.AriClient", fast):
        yield


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every record down to DEBUG: the password must stay out of all of them."""
    caplog.set_level(logging.DEBUG)


def _fake(**kwargs: Any) -> FakeAsterisk:
    phones = {name: FakePhone(**vars(phone)) for name, phone in PHONES.items()}
    return FakeAsterisk(phones=phones, time_scale=SCALE, **kwargs)


@pytest.fixture
async def fake(socket_enabled: None) -> AsyncGenerator[FakeAsterisk]:
    """A fake Asterisk on http://127.0.0.1:<free port>."""
    server = _fake()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def other(socket_enabled: None) -> AsyncGenerator[FakeAsterisk]:
    """A second fake Asterisk (tests give it the entity id they need)."""
    server = _fake()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def entry(hass: HomeAssistant, fake: FakeAsterisk) -> MockConfigEntry:
    """An entry for the fake, added but not set up."""
    return add_asterisk_entry(hass, _data(fake), ENTITY_ID)


@pytest.fixture
async def loaded(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """The entry, set up against the fake."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
def closed_port(socket_enabled: None) -> Generator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- helpers


def _data(fake: FakeAsterisk, **changes: Any) -> dict[str, Any]:
    return asterisk_data(fake.url, DEFAULT_USERNAME, DEFAULT_PASSWORD) | changes


def _user_input(fake: FakeAsterisk, **changes: Any) -> dict[str, Any]:
    """What a user types into the asterisk form for the fake."""
    data = _data(fake, **changes)
    del data[CONF_BACKEND]
    return data


def _ops(fake: FakeAsterisk) -> list[str]:
    return [fake._operation(r.method, r.path) for r in fake.requests]


def _apps(fake: FakeAsterisk) -> list[str]:
    """The applications of the websockets asked for, in order."""
    return [r.params["app"] for r in fake.calls("events")]


def _originated(fake: FakeAsterisk) -> list[str]:
    return [r.params["endpoint"] for r in fake.calls("originate")]


def _played(fake: FakeAsterisk) -> list[str]:
    return [r.params["media"] for r in fake.calls("play")]


def _event_entity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return entity.entity_id


def _fired(changes: list[Event], entity_id: str) -> list[dict[str, Any]]:
    """The events the entity fired, as their attributes (without the list of types)."""
    fired = []
    for change in changes:
        state = change.data["new_state"]
        if change.data["entity_id"] == entity_id and state is not None:
            # str(): the keys are StrEnum members on newer releases.
            fired.append({str(k): v for k, v in state.attributes.items() if k != "event_types"})
    return fired


def _call(target: str, channel_id: str, **changes: Any) -> dict[str, Any]:
    """One call of the response, played to its end and hung up by us."""
    endpoint = changes.pop("endpoint", target if "/" in target else f"PJSIP/{target}")
    return {
        "target": target,
        "call_id": channel_id,
        "status": "played",
        "endpoint": endpoint,
        "cause": 16,
        "reason": "Normal Clearing",
        "played": 1,
        "digits": "",
        "hung_up": True,
    } | changes


def _by_target(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {call["target"]: call for call in response["calls"]}


# ------------------------------------------------------------------------- config flow


async def test_form(hass: HomeAssistant, snapshot: SnapshotAssertion) -> None:
    """The menu's last entry leads to the Asterisk form: its fields, defaults, selectors."""
    result = await start_flow(hass, STEP)

    assert_form(result, STEP)
    assert schema_keys(result) == [CONF_URL, CONF_USERNAME, CONF_PASSWORD, CONF_APP, "verify_ssl"]
    assert defaults(result) == {CONF_APP: APP, CONF_VERIFY_SSL: False}
    assert form_shape(result) == snapshot


async def test_creates_entry(hass: HomeAssistant, fake: FakeAsterisk) -> None:
    """A URL without scheme and with /ari is normalised; the check uses an app of its own."""
    result = await start_flow(hass, STEP)
    result = await submit(
        hass,
        result["flow_id"],
        _user_input(fake, url=f" 127.0.0.1:{fake.port}/ari/ ", username=f" {DEFAULT_USERNAME} "),
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE
    assert result["data"] == _data(fake)
    assert result["result"].unique_id == ENTITY_ID
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED
    # The check: info and a websocket of a one-off application (closed again), then setup.
    assert _ops(fake) == ["info", "events", "info", "events"]
    probe, app = _apps(fake)
    assert probe.startswith("vp-check-")
    assert app == APP
    assert not fake.connected(probe)
    assert fake.connected(APP)


async def test_already_configured_leaves_the_loaded_entry_alone(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """The same Asterisk (system id) again: aborted, and the entry keeps its events."""
    result = await start_flow(hass, STEP)
    result = await submit(
        hass, result["flow_id"], _user_input(fake, url=f"127.0.0.1:{fake.port}/ari")
    )

    assert_abort(result, "already_configured")
    assert fake.events("ApplicationReplaced") == []
    assert loaded.runtime_data.client.state is AriSocketState.CONNECTED
    response = await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True)
    assert response["calls"][0]["status"] == "played"


async def test_entity_id_of_zeros_falls_back_to_the_url(
    hass: HomeAssistant, fake: FakeAsterisk
) -> None:
    """Asterisk without a network card to take its id from: the URL names the entry."""
    fake.entity_id = "00:00:00:00:00:00"
    fake.system_name = "pbx-office"

    result = await start_flow(hass, STEP)
    result = await submit(hass, result["flow_id"], _user_input(fake))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == fake.url
    assert result["title"] == "pbx-office (127.0.0.1)"


def _wrong_password(fake: FakeAsterisk) -> dict[str, Any]:
    return {CONF_PASSWORD: "not-the-password"}


def _blank_username(fake: FakeAsterisk) -> dict[str, Any]:
    return {CONF_USERNAME: "  "}


def _no_ari(fake: FakeAsterisk) -> dict[str, Any]:
    fake.ari_enabled = False
    return {}


def _websocket_refused(fake: FakeAsterisk) -> dict[str, Any]:
    fake.refuse_websocket = 403
    return {}


def _server_error(fake: FakeAsterisk) -> dict[str, Any]:
    fake.fail_next["info"] = [500]
    return {}


def _garbage(fake: FakeAsterisk) -> dict[str, Any]:
    fake.garbage_replies = True
    return {}


@pytest.mark.parametrize(
    ("fault", "error", "ops"),
    [
        pytest.param(_wrong_password, "invalid_auth", ["info"], id="wrong-password"),
        pytest.param(_blank_username, "invalid_auth", [], id="blank-username"),
        pytest.param(_no_ari, "ari_disabled", [], id="http-without-ari"),
        pytest.param(_websocket_refused, "unknown", ["info", "events"], id="websocket-refused"),
        pytest.param(_server_error, "unknown", ["info"], id="http-500"),
        pytest.param(_garbage, "cannot_connect", ["info"], id="not-ari"),
    ],
)
async def test_form_errors_then_recover(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[FakeAsterisk], dict[str, Any]],
    error: str,
    ops: list[str],
) -> None:
    """Each answer the form can get, naming the URL it tried; then it works."""
    result = await start_flow(hass, STEP)
    flow_id = result["flow_id"]

    result = await submit(hass, flow_id, _user_input(fake, **fault(fake)))

    assert_form(result, STEP, {"base": error}, tried=f"Asterisk at {fake.url}")
    assert _ops(fake) == ops
    fake.ari_enabled, fake.refuse_websocket, fake.garbage_replies = True, None, False
    result = await submit(hass, flow_id, _user_input(fake))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert DEFAULT_PASSWORD not in caplog.text


async def test_cannot_connect_and_ssl_error(
    hass: HomeAssistant,
    tolerate_tls_resets: None,
    server_ssl: ssl.SSLContext,
    closed_port: int,
    socket_enabled: None,
) -> None:
    """Nothing listening; a self-signed certificate checked; then https:// without the check."""
    secure = _fake()
    await secure.start(ssl_context=server_ssl)
    try:
        result = await start_flow(hass, STEP)
        flow_id = result["flow_id"]
        result = await submit(
            hass, flow_id, _user_input(secure, url=f"http://127.0.0.1:{closed_port}")
        )
        assert_form(
            result,
            STEP,
            {"base": "cannot_connect"},
            tried=f"Asterisk at http://127.0.0.1:{closed_port}",
        )

        result = await submit(hass, flow_id, _user_input(secure, verify_ssl=True))
        assert_form(result, STEP, {"base": "ssl_error"}, tried=f"Asterisk at {secure.url}")
        assert secure.requests == []

        result = await submit(hass, flow_id, _user_input(secure))
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"][CONF_URL] == f"https://127.0.0.1:{secure.port}"
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(result["result"].entry_id)
    finally:
        await secure.close()


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        pytest.param({CONF_URL: "ftp://pbx"}, {CONF_URL: "invalid_url"}, id="scheme"),
        pytest.param({CONF_URL: "http://user:pw@pbx"}, {CONF_URL: "invalid_url"}, id="user-info"),
        pytest.param({CONF_APP: "voice prompt"}, {CONF_APP: "invalid_app"}, id="app-space"),
        pytest.param(
            {CONF_URL: "http://", CONF_APP: "-x"},
            {CONF_URL: "invalid_url", CONF_APP: "invalid_app"},
            id="both",
        ),
    ],
)
async def test_invalid_fields(
    hass: HomeAssistant, fake: FakeAsterisk, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    """A URL or application name Asterisk could not take: named at its field, nothing sent."""
    result = await start_flow(hass, STEP)
    result = await submit(hass, result["flow_id"], _user_input(fake, **changes))

    assert_form(result, STEP, errors)
    assert fake.requests == []
    assert {key: suggested(result)[key] for key in changes} == changes  # kept, to be fixed


async def test_reauth(
    hass: HomeAssistant, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """The ARI password changed: setup asks for it; a wrong one is refused, the right saved."""
    entry = add_asterisk_entry(hass, _data(fake, password="old-password"), ENTITY_ID)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    (flow,) = reauth_flows(hass, entry)

    result = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert_form(result, "reauth_confirm")
    assert schema_keys(result) == [CONF_USERNAME, CONF_PASSWORD]
    assert suggested(result) == {CONF_USERNAME: DEFAULT_USERNAME}  # never the password
    assert result["description_placeholders"] == {"name": TITLE, "tried": f"Asterisk at {fake.url}"}

    result = await submit(
        hass, flow["flow_id"], {CONF_USERNAME: DEFAULT_USERNAME, CONF_PASSWORD: "still-wrong"}
    )
    assert_form(result, "reauth_confirm", {"base": "invalid_auth"}, tried=f"Asterisk at {fake.url}")

    result = await submit(
        hass, flow["flow_id"], {CONF_USERNAME: DEFAULT_USERNAME, CONF_PASSWORD: DEFAULT_PASSWORD}
    )
    assert_abort(result, "reauth_successful")
    await hass.async_block_till_done()
    assert entry.data == _data(fake)
    assert entry.state is ConfigEntryState.LOADED
    for secret in ("old-password", "still-wrong", DEFAULT_PASSWORD):
        assert secret not in caplog.text


async def test_reauth_wrong_device(
    hass: HomeAssistant, fake: FakeAsterisk, other: FakeAsterisk
) -> None:
    other.entity_id = OTHER_ENTITY_ID
    entry = add_asterisk_entry(hass, _data(other, password="old"), ENTITY_ID)

    result = await entry.start_reauth_flow(hass)
    result = await submit(
        hass, result["flow_id"], {CONF_USERNAME: DEFAULT_USERNAME, CONF_PASSWORD: DEFAULT_PASSWORD}
    )

    assert_abort(result, "wrong_device")
    assert entry.data[CONF_PASSWORD] == "old"


@pytest.mark.parametrize(
    ("title", "new_title"),
    [
        pytest.param(TITLE, "pbx-office (127.0.0.1)", id="generated-title-follows"),
        pytest.param("Office PBX", "Office PBX", id="given-title-stays"),
    ],
)
async def test_reconfigure_to_another_address(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    loaded: MockConfigEntry,
    other: FakeAsterisk,
    closed_port: int,
    title: str,
    new_title: str,
) -> None:
    """Asterisk moved (same system id, now with a name): errors, then saved and reloaded."""
    other.system_name = "pbx-office"
    hass.config_entries.async_update_entry(loaded, title=title)
    result = await loaded.start_reconfigure_flow(hass)
    flow_id = result["flow_id"]
    assert_form(result, "reconfigure")
    assert schema_keys(result) == [CONF_URL, CONF_APP, CONF_VERIFY_SSL]
    assert suggested(result) == {CONF_URL: fake.url, CONF_APP: APP, CONF_VERIFY_SSL: False}

    result = await submit(hass, flow_id, {CONF_URL: "pbx:port", CONF_APP: APP})
    assert_form(result, "reconfigure", {CONF_URL: "invalid_url"})
    closed = f"http://127.0.0.1:{closed_port}"
    result = await submit(hass, flow_id, {CONF_URL: closed, CONF_APP: APP})
    assert_form(result, "reconfigure", {"base": "cannot_connect"}, tried=f"Asterisk at {closed}")

    result = await submit(
        hass, flow_id, {CONF_URL: f"127.0.0.1:{other.port}", CONF_APP: "ha_calls"}
    )
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()
    assert loaded.data == _data(other, app="ha_calls")
    assert loaded.title == new_title
    assert loaded.state is ConfigEntryState.LOADED
    assert other.connected("ha_calls")
    assert not fake.connected(APP)


async def test_reconfigure_wrong_device(
    hass: HomeAssistant, fake: FakeAsterisk, entry: MockConfigEntry, other: FakeAsterisk
) -> None:
    other.entity_id = OTHER_ENTITY_ID
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], {CONF_URL: other.url, CONF_APP: APP})

    assert_abort(result, "wrong_device")
    assert entry.data == _data(fake)


async def test_options(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Technology of bare extensions and ring timeout; the next action uses them."""
    result = await hass.config_entries.options.async_init(loaded.entry_id)
    assert result["type"] is FlowResultType.FORM
    # Not checking an https certificate is a choice there (off unless chosen).
    assert schema_keys(result) == [CONF_TECHNOLOGY, CONF_RING_TIMEOUT, "accept_any_certificate"]
    assert defaults(result) == {CONF_TECHNOLOGY: "PJSIP", CONF_RING_TIMEOUT: 30}
    strings = OPTIONS_STRINGS["step"]["init"]
    assert {CONF_TECHNOLOGY, CONF_RING_TIMEOUT} <= set(strings["data_description"])
    assert form_shape(result) == snapshot

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_TECHNOLOGY: " SIP ", CONF_RING_TIMEOUT: "12"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded.options == {CONF_TECHNOLOGY: "SIP", CONF_RING_TIMEOUT: 12}

    response = await play_prompt(
        hass, loaded, target=["2000", "PJSIP/1000"], prompt="beep", wait=True
    )
    assert [call["status"] for call in response["calls"]] == ["played", "played"]
    assert sorted(_originated(fake)) == ["PJSIP/1000", "SIP/2000"]
    assert {r.params["timeout"] for r in fake.calls("originate")} == {"12"}


# ------------------------------------------------------------------------------- setup


async def test_setup_and_unload(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """Setup reads the server and keeps the websocket; the device; unload closes it."""
    backend = loaded.runtime_data
    assert isinstance(backend, AsteriskBackend)
    assert _ops(fake) == ["info", "events"]
    assert fake.connected(APP)
    device = entry_device(hass, loaded)
    assert device.identifiers == {(DOMAIN, ENTITY_ID)}
    assert (device.manufacturer, device.model, device.name) == ("Sangoma", "Asterisk", "Asterisk")
    assert device.sw_version == VERSION
    assert backend.diagnostics()["asterisk"]["version"] == VERSION

    assert await hass.config_entries.async_unload(loaded.entry_id)
    await fake.wait_for(lambda: not fake.connected(APP))
    assert backend.client.state is AriSocketState.STOPPED


async def test_home_assistant_stop_closes_the_websocket(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """Home Assistant stops without unloading entries: the websocket still closes."""
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()

    await fake.wait_for(lambda: not fake.connected(APP))
    assert loaded.runtime_data.client.state is AriSocketState.STOPPED


def _closed(fake: FakeAsterisk, port: int) -> dict[str, Any]:
    return {CONF_URL: f"http://127.0.0.1:{port}"}


def _disabled(fake: FakeAsterisk, port: int) -> dict[str, Any]:
    fake.ari_enabled = False
    return {}


def _refused(fake: FakeAsterisk, port: int) -> dict[str, Any]:
    fake.refuse_websocket = 503
    return {}


@pytest.mark.parametrize(
    ("fault", "key", "words"),
    [
        pytest.param(_closed, "cannot_connect", "cannot be reached", id="closed-port"),
        pytest.param(_disabled, "ari_disabled", "answers HTTP but has no ARI", id="no-ari"),
        pytest.param(_refused, "request_failed", "event websocket (HTTP 503)", id="websocket"),
    ],
)
async def test_setup_not_ready(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    closed_port: int,
    fault: Callable[[FakeAsterisk, int], dict[str, Any]],
    key: str,
    words: str,
) -> None:
    """What a retry may cure: not ready, with a translated reason; no websocket left."""
    entry = add_asterisk_entry(hass, _data(fake, **fault(fake, closed_port)), ENTITY_ID)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == key
    assert entry.reason is not None
    assert words in entry.reason
    assert reauth_flows(hass, entry) == []
    assert not fake.connected(APP)


async def test_refused_credentials_at_runtime_start_reauth(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """The password changed and Asterisk dropped the websocket: no calls, one reauth."""
    fake.users = {DEFAULT_USERNAME: "changed"}
    client = loaded.runtime_data.client
    await fake.drop_websockets()
    await fake.wait_for(lambda: client.state is AriSocketState.AUTH_FAILED)

    with pytest.raises(HomeAssistantError) as caught:
        await play_prompt(hass, loaded, target=["1000", "1001"], prompt="beep")
    assert caught.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()
    assert len(reauth_flows(hass, loaded)) == 1
    assert fake.calls("originate") == []


# ------------------------------------------------------------------------------ action


async def test_play_a_sound(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """A prompt name is an Asterisk sound; the call is originated into the application."""
    response = await play_prompt(hass, loaded, target="1000", prompt="hello-world", wait=True)

    (call,) = response["calls"]
    assert call["call_id"].startswith("vp-")
    assert response == {"calls": [_call("1000", call["call_id"])], "failed": []}
    (originate,) = fake.calls("originate")
    assert originate.params == {
        "endpoint": "PJSIP/1000",
        "app": APP,
        "timeout": "30",
        "channelId": call["call_id"],
    }
    assert _played(fake) == ["sound:hello-world"]
    assert fake.channels[call["call_id"]].hung_up_by == "client"


async def test_what_plays(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    ha_url: str,  # noqa: F811 - the fixture imported above
    loaded: MockConfigEntry,
) -> None:
    """Names joined with +, sound: URIs, URLs and /local/ files (fetched from the internal URL)."""
    response = await play_prompt(
        hass,
        loaded,
        target="1000",
        prompt=["hello-world+beep", "digits/5", "sound:goodbye", f"/local/{LOCAL_WAV}"],
        repeat=2,
        wait=True,
    )

    assert response["calls"][0]["status"] == "played"
    assert response["calls"][0]["played"] == 10
    local = f"sound:{ha_url}/local/{LOCAL_WAV}"
    media = ["sound:hello-world", "sound:beep", "sound:digits/5", "sound:goodbye", local]
    assert _played(fake) == media * 2
    assert fake.media_fetches == [f"{ha_url}/local/{LOCAL_WAV}"] * 2


async def test_spoken_message(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    fake: FakeAsterisk,
    ha_url: str,  # noqa: F811 - the fixture imported above
    tts_engine: CountingTTS,  # noqa: F811 - the fixture imported above
    loaded: MockConfigEntry,
) -> None:
    """Rendered once (8 kHz WAV), served under a random name while the calls last."""
    response = await play_prompt(
        hass,
        loaded,
        target=["1000", "PJSIP/trunk"],
        message="Lunch is ready",
        prompt="beep",
        wait=True,
    )

    assert [call["played"] for call in response["calls"]] == [2, 2]
    assert [text for text, _, _ in tts_engine.calls] == ["Lunch is ready"]
    (speech,) = set(fake.media_fetches)
    assert speech.startswith(f"{ha_url}{SPEECH_PATH}/")
    assert speech.endswith(".wav")
    client = await hass_client_no_auth()
    gone = await client.get(speech.removeprefix(ha_url))
    assert gone.status == 404  # only while its action runs
    assert sorted(_played(fake)) == sorted([f"sound:{speech}", "sound:beep"] * 2)


async def test_speech_that_asterisk_cannot_fetch_hides_its_url(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    ha_url: str,  # noqa: F811 - the fixture imported above
    closed_port: int,
    loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The internal URL is one Asterisk cannot reach: the error says where, no token."""
    await hass.config.async_update(internal_url=f"http://127.0.0.1:{closed_port}")

    response = await play_prompt(hass, loaded, target="1000", message="Lunch is ready", wait=True)

    (call,) = response["calls"]
    assert call["status"] == "failed"
    message = call["reason"]
    assert f"could not play the spoken message (from http://127.0.0.1:{closed_port})" in message
    (sent,) = _played(fake)
    name = sent.split("/")[-1]
    assert name.endswith(".wav")
    assert name not in message + caplog.text
    assert f"{TITLE}: the call to 1000 failed: Asterisk could not play" in caplog.text


async def test_media_source(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    ha_url: str,  # noqa: F811 - the fixture imported above
    loaded: MockConfigEntry,
) -> None:
    """A media-source id is resolved to a signed URL on the internal URL, which errors hide."""
    good, wide = (f"media-source://media_source/local/{name}" for name in (LOCAL_WAV, WIDE_WAV))

    response = await play_prompt(hass, loaded, target="1000", prompt=good, wait=True)
    assert response["calls"][0]["status"] == "played"
    (fetched,) = fake.media_fetches
    assert fetched.startswith(f"{ha_url}/media/local/{LOCAL_WAV}?authSig=")

    response = await play_prompt(hass, loaded, target="1000", prompt=wide, wait=True)
    reason = response["calls"][0]["reason"]
    assert f"could not play {wide} (from {ha_url}): no such sound" in reason
    assert "authSig" not in reason


async def test_internal_url_required(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """A /local/ file without an internal URL: refused before anything is sent.

    Home Assistant serving HTTPS itself offers no address of its own (the certificate
    names a host name), until a local network URL is set.
    """
    assert hass.config.api is not None
    hass.config.api.use_ssl = True
    with pytest.raises(ServiceValidationError) as caught:
        await play_prompt(hass, loaded, target="1000", prompt="/local/doorbell.wav")

    assert caught.value.translation_key == "internal_url_required"
    assert "local network URL" in str(caught.value)
    assert fake.calls("originate") == []


async def test_several_targets_outcomes_and_events(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    """All at once: played, keys, busy, no answer, rejected, an external number; one failing."""
    hass.config_entries.async_update_entry(loaded, options={CONF_RING_TIMEOUT: 1})
    entity_id = _event_entity(hass, loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass,
        loaded,
        target=["1000, 1001", "1002", "1003", "1004", "1005", TRUNK, "1000"],
        prompt="hello-world",
        wait=True,
    )
    await hass.async_block_till_done()

    calls = _by_target(response)
    assert list(calls) == ["1000", "1001", "1003", "1004", "1005", TRUNK]  # in order, once each
    unanswered = {"played": 0, "hung_up": False}
    assert calls == {
        "1000": _call("1000", calls["1000"]["call_id"]),
        "1001": _call("1001", calls["1001"]["call_id"], digits="5#"),
        "1003": _call("1003", calls["1003"]["call_id"], status="busy", cause=17, reason="User busy")
        | unanswered,
        "1004": _call(
            "1004",
            calls["1004"]["call_id"],
            status="no_answer",
            cause=19,
            reason="User alerting, no answer",
        )
        | unanswered,
        "1005": _call(
            "1005",
            calls["1005"]["call_id"],
            status="rejected",
            cause=21,
            reason="Call Rejected",
        )
        | unanswered,
        TRUNK: _call(TRUNK, calls[TRUNK]["call_id"]),
    }
    assert response["failed"] == [{"target": "1002", "code": "500", "error": NOT_REGISTERED}]
    assert sorted(_originated(fake)) == sorted(
        ["PJSIP/1000", "PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/1004", "PJSIP/1005", TRUNK]
    )

    fired = _fired(changes, entity_id)
    per_call: dict[str | None, list[str]] = {}
    for event in fired:
        per_call.setdefault(event["target"], []).append(event["event_type"])
    assert per_call == {
        "1000": ["ringing", "answered", "played"],
        "1001": ["ringing", "answered", "played"],
        "1002": ["failed"],
        "1003": ["busy"],
        "1004": ["ringing", "no_answer"],
        "1005": ["ringing", "rejected"],
        TRUNK: ["ringing", "answered", "played"],
    }
    played_1001 = next(e for e in fired if e["target"] == "1001" and e["event_type"] == "played")
    assert played_1001 == snapshot(exclude=props("call_id"))
    failed = next(e for e in fired if e["event_type"] == "failed")
    assert (failed["code"], failed["reason"]) == ("500", NOT_REGISTERED)
    assert f"Played on 6 of 7 targets of {TITLE}; failed: 1002: {NOT_REGISTERED}" in caplog.text


async def test_a_key_acknowledges_and_ends_the_call(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """acknowledge: the callee pressing that key confirms it and the call ends.

    (One who presses nothing hears the prompts and gets the client's key timeout: in the
    client's tests, on the fake's clock.)
    """
    entity_id = _event_entity(hass, loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass, loaded, target="1001", prompt="hello-world", acknowledge="5", wait=True
    )
    await hass.async_block_till_done()

    (call,) = response["calls"]
    assert (call["target"], call["status"], call["hung_up"]) == ("1001", "acknowledged", True)
    assert call["digits"].startswith("5")
    fired = [(e["target"], e["event_type"]) for e in _fired(changes, entity_id)]
    assert fired[-1] == ("1001", "acknowledged")


async def test_an_acknowledge_key_must_be_a_key(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """A key that no phone has is refused in words before anything is sent."""
    fake.requests.clear()
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, loaded, target="1000", prompt="beep", acknowledge="ok")
    assert exc_info.value.translation_key == "invalid_input"
    assert "ok is not a key (0-9, *, #, A-D)" in str(exc_info.value)
    assert _originated(fake) == []


async def test_missing_sound_is_a_failed_call_naming_it(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """Asterisk accepts /play for any name; the failed playback is the call's outcome."""
    entity_id = _event_entity(hass, loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass, loaded, target="1000", prompt=["hello-world", "doorbel"], wait=True
    )

    (call,) = response["calls"]
    assert (call["status"], call["code"]) == ("failed", "failed")
    assert call["reason"].startswith("Asterisk could not play sound:doorbel:")
    assert _played(fake) == ["sound:hello-world", "sound:doorbel"]
    assert [c.hung_up_by for c in fake.channels.values()] == ["client"]
    await hass.async_block_till_done()
    assert [e["event_type"] for e in _fired(changes, entity_id)] == [
        "ringing",
        "answered",
        "failed",
    ]


async def test_every_target_failing(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """Nothing played anywhere: one error listing each target."""
    with pytest.raises(HomeAssistantError) as caught:
        await play_prompt(hass, loaded, target=["1002", "1009"], prompt="beep")

    assert caught.value.translation_key == "all_targets_failed"
    assert "1002: PJSIP/1002 is not registered" in str(caught.value)
    assert "1009: Asterisk has no endpoint PJSIP/1009" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        pytest.param(
            {"repeat": 11}, "invalid_input", "repeat must be between 1 and 10", id="repeat"
        ),
        pytest.param({"target": "10 00"}, "invalid_input", "not an extension", id="target"),
        pytest.param({"target": " , "}, "target_required", "needs a target", id="no-target"),
        pytest.param({"prompt": "hello world"}, "invalid_input", "contains spaces", id="prompt"),
        pytest.param(
            {"prompt": [{"url": "ftp://example.test/a.wav"}]},
            "invalid_input",
            "not something Asterisk can play",
            id="media-object",
        ),
        pytest.param({"volume": 5}, "fields_not_supported", "volume", id="volume"),
        pytest.param({"call_id": "vp-1"}, "fields_not_supported", "call_id", id="call-id"),
    ],
)
async def test_refused_before_anything_is_sent(
    hass: HomeAssistant,
    fake: FakeAsterisk,
    loaded: MockConfigEntry,
    data: dict[str, Any],
    key: str,
    words: str,
) -> None:
    before = len(fake.requests)
    with pytest.raises(ServiceValidationError) as caught:
        await play_prompt(hass, loaded, **({"target": "1000", "prompt": "beep"} | data))

    assert caught.value.translation_key == key
    assert words in str(caught.value)
    assert len(fake.requests) == before


async def test_events_of_other_channels_are_ignored(
    hass: HomeAssistant, fake: FakeAsterisk, loaded: MockConfigEntry
) -> None:
    """A key pressed on a channel that is no call of ours (any more) reports nothing."""
    response = await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True)
    entity_id = _event_entity(hass, loaded)
    before = hass.states.get(entity_id)

    client = loaded.runtime_data.client
    received = client.diagnostics()["events"]["received"]
    fake.press(response["calls"][0]["call_id"], "7")
    await fake.wait_for(lambda: client.diagnostics()["events"]["received"] == received + 1)
    await hass.async_block_till_done()

    assert hass.states.get(entity_id) == before


# ------------------------------------------------------------------------- diagnostics


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    fake: FakeAsterisk,
    loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """The server's facts and the websocket's state; no password, no username."""
    await play_prompt(hass, loaded, target="1000", prompt="beep", wait=True)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded)

    assert diagnostics == snapshot(exclude=props("url", "connected_seconds"))
    assert diagnostics["entry"]["data"][CONF_URL] == fake.url
    assert diagnostics["client"]["url"] == fake.url
    assert diagnostics["client"]["events"]["state"] == "connected"
    assert diagnostics["entry"]["data"][CONF_USERNAME] == "**REDACTED**"
    assert DEFAULT_PASSWORD not in json.dumps(diagnostics)
