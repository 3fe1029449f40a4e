"""A Yeastar P-Series entry through Home Assistant: config flow, setup, the action, diagnostics.

Everything talks to the fake P-Series PBX (``tests/fakes/yeastar_p.py``), a real HTTPS
server on 127.0.0.1 with the session's self-signed certificate; nothing is mocked at the
HTTP level. The client's own behaviour (tokens, errcodes, uploads) is in
``test_api_yeastar_p.py``; here it is what a Home Assistant user sees.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from datetime import timedelta
from enum import Enum
import json
import logging
import socket
import ssl
from typing import Any, Final
from unittest.mock import patch

from aiohttp.abc import AbstractResolver, ResolveResult
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.voice_prompt import config_flow
from custom_components.voice_prompt.api.yeastar_p import LOCKOUT_SECONDS, USER_AGENT
from custom_components.voice_prompt.backends.certificate import (
    CONF_ACCEPT_ANY_CERTIFICATE,
    CONF_CERTIFICATE_SHA256,
)
from custom_components.voice_prompt.backends.yeastar_p import CONF_DIAL_PERMISSION, YeastarPBackend
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN
from homeassistant.components import hassio  # noqa: F401 - see test_diagnostics.py
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PORT,
    CONF_VERIFY_SSL,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
from tests.conftest import entry_device, play_prompt, reauth_flows
from tests.fakes.yeastar_p import FakeYeastarP
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
from tests.tts_fixtures import CountingTTS, tts_engine, wav_layout  # noqa: F401 - fixture
from tests.yeastar_p_fixtures import P_CALL_ID

CLIENT_ID: Final = "vp-ha-client"
CLIENT_SECRET: Final = "P-Series-Secret-HA-0123456789"
NEW_CLIENT_ID: Final = "vp-ha-client-2"
NEW_CLIENT_SECRET: Final = "P-Series-Secret-HA-rotated"
SERIAL: Final = "3631A2124123"
OTHER_SERIAL: Final = "3631A2124999"
MODEL: Final = "Yeastar P550"
TITLE: Final = "Yeastar P550 (127.0.0.1)"
STEP: Final = "yeastar_p"
BACKEND_NAME: Final = YeastarPBackend.name
PLAY: Final = "call/play_prompt"
EXTERNAL: Final = "+4930123456"
# A name only this module's resolver knows: it leads to the fakes on 127.0.0.1.
PBX_NAME: Final = "pbx-p.example.test"
# The fake's refusal of a number it does not know (60001 with invalid_param_list).
UNKNOWN_4242: Final = (
    "Playing doorbell to 4242 failed: 127.0.0.1 has no such data (field number): check the "
    "number, and that each prompt is uploaded as a Custom Prompt (names are case-sensitive) "
    "(errcode 60001)"
)
BAD_CREDENTIALS: Final = "127.0.0.1 refused the Client ID or Client Secret (errcode -1)"
# Stable on every Home Assistant release we test (see test_init.py).
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
    "via_device_id",
    "disabled_by",
)
ENTITY_FIELDS: Final = (
    "entity_id",
    "unique_id",
    "platform",
    "domain",
    "has_entity_name",
    "translation_key",
    "original_name",
    "name",
    "original_device_class",
    "entity_category",
    "original_icon",
    "capabilities",
    "supported_features",
    "unit_of_measurement",
    "disabled_by",
    "hidden_by",
)

type FakeFactory = Callable[..., Awaitable[FakeYeastarP]]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def fake_p(server_ssl: ssl.SSLContext, socket_enabled: None) -> AsyncGenerator[FakeYeastarP]:
    """A running fake P550 on https://127.0.0.1:<free port> (the session's self-signed cert)."""
    fake = FakeYeastarP(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, serial=SERIAL)
    await fake.start(ssl_context=server_ssl)
    yield fake
    await fake.close()


@pytest.fixture
async def make_fake(
    server_ssl: ssl.SSLContext, socket_enabled: None
) -> AsyncGenerator[FakeFactory]:
    """Start more fake P-Series PBXs (another serial, model or port); closed at teardown."""
    started: list[FakeYeastarP] = []

    async def _start(**kwargs: Any) -> FakeYeastarP:
        options: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        fake = FakeYeastarP(**(options | kwargs))
        await fake.start(ssl_context=server_ssl)
        started.append(fake)
        return fake

    yield _start
    for fake in started:
        await fake.close()


@pytest.fixture
def p_entry(hass: HomeAssistant, fake_p: FakeYeastarP) -> MockConfigEntry:
    """A P-Series entry for the fake, added to hass but not set up."""
    entry = MockConfigEntry(domain=DOMAIN, title=TITLE, unique_id=SERIAL, data=_data(fake_p))
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def p_loaded(hass: HomeAssistant, p_entry: MockConfigEntry) -> MockConfigEntry:
    """The entry, set up against the fake."""
    assert await hass.config_entries.async_setup(p_entry.entry_id)
    await hass.async_block_till_done()
    return p_entry


@pytest.fixture
def closed_port(socket_enabled: None) -> Generator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class _NamesResolver(AbstractResolver):
    """DNS for the tests: PBX_NAME is 127.0.0.1, every other name is unknown."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != PBX_NAME:
            raise OSError(socket.EAI_NONAME, f"{host} is not known to the test")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Home Assistant closes it with each session; it holds nothing."""

    async def real_close(self) -> None:
        """Home Assistant 2026 closes it once, when it stops."""


@pytest.fixture
def pbx_name() -> Generator[str]:
    """Let Home Assistant's sessions resolve PBX_NAME (request it before any setup)."""
    resolver = _NamesResolver()
    with (
        patch("homeassistant.helpers.aiohttp_client._async_make_resolver", return_value=resolver),
        # The certificate is read before the login, outside those sessions.
        patch("custom_components.voice_prompt.api.tls.ThreadedResolver", return_value=resolver),
    ):
        yield PBX_NAME


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every record down to DEBUG: secrets must stay out of all of them."""
    caplog.set_level(logging.DEBUG)


# ----------------------------------------------------------------------------- helpers


def _data(fake: FakeYeastarP, **changes: Any) -> dict[str, Any]:
    """Entry data for a fake P-Series PBX."""
    return {
        CONF_BACKEND: YeastarPBackend.kind,
        CONF_HOST: fake.host,
        CONF_PORT: fake.port,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: CLIENT_SECRET,
        CONF_VERIFY_SSL: False,
        CONF_CERTIFICATE_SHA256: fake.certificate_sha256,
    } | changes


def _user_input(fake: FakeYeastarP, **changes: Any) -> dict[str, Any]:
    """What a user types into the yeastar_p form for the fake."""
    return {
        CONF_HOST: fake.host,
        CONF_PORT: fake.port,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: CLIENT_SECRET,
        CONF_VERIFY_SSL: False,
    } | changes


def _address(fake: FakeYeastarP) -> dict[str, Any]:
    """The reconfigure form's input for the fake."""
    return {CONF_HOST: fake.host, CONF_PORT: fake.port, CONF_VERIFY_SSL: False}


def _tried(fake: FakeYeastarP) -> str:
    """What a form error names after a check against the fake."""
    return f"the PBX at 127.0.0.1:{fake.port}"


def _paths(fake: FakeYeastarP) -> list[str]:
    return [request.path for request in fake.requests]


def _issued(fake: FakeYeastarP) -> list[str]:
    """Access tokens the fake handed out, in order."""
    return [
        request.reply["access_token"]
        for request in fake.requests
        if request.path in ("get_token", "refresh_token")
        and request.reply is not None
        and request.reply.get("errcode") == 0
    ]


def _bodies(fake: FakeYeastarP) -> list[Any]:
    """The bodies of the play requests the fake received, in order of their arrival."""
    return [request.body for request in fake.calls(PLAY)]


def _play_body(number: str, *prompts: str, **extra: Any) -> dict[str, Any]:
    """A call/play_prompt body as the documentation writes it."""
    return {
        "number": number,
        "prompts": list(prompts or ("doorbell",)),
        "auto_answer": "no",
    } | extra


def _secrets(fake: FakeYeastarP, *extra: str) -> set[str]:
    """The client secret and every access and refresh token the fake issued or saw."""
    found = {CLIENT_SECRET, *extra}
    for grant in fake.grants:
        found |= {grant.access_token, grant.refresh_token}
    for request in fake.requests:
        found.add(request.token or "")
        for source in (request.reply, request.body):
            if isinstance(source, dict):
                found |= {
                    value
                    for key in ("access_token", "refresh_token", "password")
                    if isinstance(value := source.get(key), str)
                }
    found.discard("")
    return found


def _assert_no_secrets(fake: FakeYeastarP, text: str, *extra: str) -> None:
    secrets = _secrets(fake, *extra)
    assert len(secrets) > 1  # the secret and at least one token
    for secret in secrets:
        assert secret not in text, secret


def _plain(value: Any) -> Any:
    """Enums as their values (newer releases use StrEnum keys), containers as dict/list."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _event_entity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    (entity,) = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return entity.entity_id


def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"ip_blocked_{entry.entry_id}")


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def _add_entry(hass: HomeAssistant, data: dict[str, Any], title: str = TITLE) -> MockConfigEntry:
    entry = MockConfigEntry(domain=DOMAIN, title=title, unique_id=SERIAL, data=data)
    entry.add_to_hass(hass)
    return entry


def _state(entry: MockConfigEntry) -> ConfigEntryState:
    """Read the state through a call, so type checkers do not narrow it for good."""
    return entry.state


# ------------------------------------------------------------------------- config flow


async def test_form(hass: HomeAssistant, snapshot: SnapshotAssertion) -> None:
    """The menu leads to the P-Series form: its fields, defaults and selectors."""
    result = await start_flow(hass, STEP)

    assert_form(result, STEP)
    assert schema_keys(result) == [
        CONF_HOST,
        CONF_PORT,
        CONF_CLIENT_ID,
        CONF_CLIENT_SECRET,
        CONF_VERIFY_SSL,
    ]
    assert defaults(result) == {CONF_PORT: 443, CONF_VERIFY_SSL: False}
    assert suggested(result) == {}
    assert result["description_placeholders"] == {}  # nothing was tried yet
    assert form_shape(result) == snapshot
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_creates_entry_from_a_pasted_url(
    hass: HomeAssistant, fake_p: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """A pasted URL's port wins over the field; one token, revoked after the check."""
    result = await start_flow(hass, STEP)
    result = await submit(
        hass,
        result["flow_id"],
        _user_input(
            fake_p,
            **{CONF_HOST: f" https://127.0.0.1:{fake_p.port}/admin ", CONF_PORT: 443},
            **{CONF_CLIENT_ID: f" {CLIENT_ID}\t", CONF_CLIENT_SECRET: f"{CLIENT_SECRET} "},
        ),
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE
    assert result["data"] == {
        CONF_BACKEND: "yeastar_p",
        CONF_HOST: "127.0.0.1",
        CONF_PORT: fake_p.port,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: CLIENT_SECRET,
        CONF_VERIFY_SSL: False,
        CONF_CERTIFICATE_SHA256: fake_p.certificate_sha256,
    }
    entry = result["result"]
    assert entry.unique_id == SERIAL
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    # The check: one token (Client ID and Secret sent as they are), the PBX's
    # information, the token revoked again; then the new entry's own token, kept.
    assert _paths(fake_p) == [
        "get_token",
        "system/information",
        "del_token",
        "get_token",
        "system/information",
    ]
    login, info, revoke, setup_login, _ = fake_p.requests
    for token_request in (login, setup_login):
        assert token_request.body == {"username": CLIENT_ID, "password": CLIENT_SECRET}
    flow_token, entry_token = _issued(fake_p)
    assert info.token == revoke.token == flow_token
    assert fake_p.valid_tokens() == [entry_token]
    assert {request.user_agent for request in fake_p.requests} == {USER_AGENT}
    _assert_no_secrets(fake_p, caplog.text)


async def test_one_token_per_submit(
    hass: HomeAssistant, fake_p: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """Each submit asks for one token; a refused secret is not asked again."""
    result = await start_flow(hass, STEP)
    flow_id = result["flow_id"]

    for attempt, secret in enumerate(("wrong-secret-1", "wrong-secret-2"), start=1):
        result = await submit(hass, flow_id, _user_input(fake_p, client_secret=secret))
        assert_form(result, STEP, {"base": "invalid_auth"}, tried=_tried(fake_p))
        assert fake_p.token_requests == attempt
        assert _paths(fake_p) == ["get_token"] * attempt
        assert fake_p.failed_logins == {"127.0.0.1": attempt}
        # What was typed comes back, so the user can correct it.
        assert suggested(result)[CONF_CLIENT_ID] == CLIENT_ID
        assert suggested(result)[CONF_PORT] == fake_p.port

    result = await submit(hass, flow_id, _user_input(fake_p))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # Two refused, the good check (its token revoked), then the new entry's setup.
    assert _paths(fake_p) == [
        "get_token",
        "get_token",
        "get_token",
        "system/information",
        "del_token",
        "get_token",
        "system/information",
    ]
    assert fake_p.failed_logins == {}
    _assert_no_secrets(fake_p, caplog.text, "wrong-secret-1", "wrong-secret-2")


async def test_already_configured(hass: HomeAssistant, fake_p: FakeYeastarP) -> None:
    """The same PBX (serial) again, through another spelling of its address: aborted."""
    _add_entry(hass, _data(fake_p))

    result = await start_flow(hass, STEP)
    result = await submit(
        hass, result["flow_id"], _user_input(fake_p, host=f"https://127.0.0.1:{fake_p.port}")
    )

    assert_abort(result, "already_configured")
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    # Checked once (that is how the serial is known), and the token revoked.
    assert _paths(fake_p) == ["get_token", "system/information", "del_token"]
    assert fake_p.valid_tokens() == []


def _wrong_secret(fake: FakeYeastarP) -> dict[str, Any]:
    return {CONF_CLIENT_SECRET: "not-the-secret"}


def _wrong_client_id(fake: FakeYeastarP) -> dict[str, Any]:
    return {CONF_CLIENT_ID: "another-app"}


def _blocked(fake: FakeYeastarP) -> dict[str, Any]:
    fake.block_ip()
    return {}


def _api_unavailable(fake: FakeYeastarP) -> dict[str, Any]:
    fake.api_enabled = False  # 70123 API UNAVAILABLE
    return {}


def _access_denied(fake: FakeYeastarP) -> dict[str, Any]:
    fake.fail_next["system/information"] = [10005]  # ACCESS DENIED
    return {}


def _internal_error(fake: FakeYeastarP) -> dict[str, Any]:
    fake.fail_next["system/information"] = [-2]  # INTERNAL SERVER ERROR
    return {}


def _garbage(fake: FakeYeastarP) -> dict[str, Any]:
    fake.garbage = True
    return {}


def _no_serial(fake: FakeYeastarP) -> dict[str, Any]:
    fake.reply_override["system/information"] = {"errcode": 0, "errmsg": "SUCCESS", "data": {}}
    return {}


def _heal(fake: FakeYeastarP) -> None:
    fake.unblock_all()
    fake.api_enabled = True
    fake.garbage = False
    fake.fail_next.clear()
    fake.reply_override.clear()


@pytest.mark.parametrize(
    ("fault", "error", "paths", "log_text"),
    [
        pytest.param(_wrong_secret, "invalid_auth", ["get_token"], None, id="wrong-secret"),
        pytest.param(_wrong_client_id, "invalid_auth", ["get_token"], None, id="wrong-client-id"),
        pytest.param(_blocked, "ip_blocked", ["get_token"], None, id="ip-blocked"),
        pytest.param(_api_unavailable, "api_disabled", ["get_token"], None, id="errcode-70123"),
        pytest.param(
            _access_denied,
            "api_disabled",
            ["get_token", "system/information", "del_token"],
            None,
            id="errcode-10005",
        ),
        pytest.param(
            _internal_error,
            "unknown",
            ["get_token", "system/information", "del_token"],
            "Yeastar P-Series PBX refused the check",
            id="errcode-minus-2",
        ),
        pytest.param(_garbage, "cannot_connect", ["get_token"], None, id="not-the-api"),
        pytest.param(
            _no_serial,
            "cannot_connect",
            ["get_token", "system/information", "del_token"],
            None,
            id="no-serial",
        ),
    ],
)
async def test_form_errors_then_recover(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[FakeYeastarP], dict[str, Any]],
    error: str,
    paths: list[str],
    log_text: str | None,
) -> None:
    """Each PBX answer the form can get, named with the address it tried; then it works."""
    result = await start_flow(hass, STEP)
    flow_id = result["flow_id"]

    changes = fault(fake_p)
    result = await submit(hass, flow_id, _user_input(fake_p, **changes))

    assert_form(result, STEP, {"base": error}, tried=_tried(fake_p))
    assert _paths(fake_p) == paths
    assert fake_p.valid_tokens() == []  # a token the check got is revoked
    if log_text is not None:
        assert log_text in caplog.text

    _heal(fake_p)
    result = await submit(hass, flow_id, _user_input(fake_p))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == SERIAL
    _assert_no_secrets(fake_p, caplog.text)


async def test_cannot_connect_names_the_pasted_address(
    hass: HomeAssistant, fake_p: FakeYeastarP, closed_port: int
) -> None:
    result = await start_flow(hass, STEP)
    flow_id = result["flow_id"]

    result = await submit(
        hass, flow_id, _user_input(fake_p, host=f"https://127.0.0.1:{closed_port}/")
    )
    assert_form(
        result, STEP, {"base": "cannot_connect"}, tried=f"the PBX at 127.0.0.1:{closed_port}"
    )
    assert fake_p.requests == []

    result = await submit(hass, flow_id, _user_input(fake_p))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PORT] == fake_p.port


async def test_ssl_error_then_recover(
    hass: HomeAssistant, tolerate_tls_resets: None, fake_p: FakeYeastarP
) -> None:
    """Verification on against the self-signed certificate fails before any request."""
    result = await start_flow(hass, STEP)
    flow_id = result["flow_id"]

    result = await submit(hass, flow_id, _user_input(fake_p, verify_ssl=True))
    assert_form(result, STEP, {"base": "ssl_error"}, tried=_tried(fake_p))
    assert fake_p.requests == []
    assert suggested(result)[CONF_VERIFY_SSL] is True

    result = await submit(hass, flow_id, _user_input(fake_p))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_VERIFY_SSL] is False


@pytest.mark.parametrize("host", ["exa mple", "-bad-", "https://[::1", "127.0.0.1:99999", ""])
async def test_invalid_host(hass: HomeAssistant, fake_p: FakeYeastarP, host: str) -> None:
    result = await start_flow(hass, STEP)
    flow_id = result["flow_id"]

    result = await submit(hass, flow_id, _user_input(fake_p, host=host))

    assert_form(result, STEP, {CONF_HOST: "invalid_host"})
    assert fake_p.requests == []
    assert suggested(result)[CONF_HOST] == host  # kept, so the user can fix it
    result = await submit(hass, flow_id, _user_input(fake_p))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_blank_client_id_is_an_error_not_a_crash(
    hass: HomeAssistant, fake_p: FakeYeastarP
) -> None:
    result = await start_flow(hass, STEP)
    result = await submit(hass, result["flow_id"], _user_input(fake_p, client_id="  "))

    assert_form(result, STEP, {"base": "invalid_auth"}, tried=_tried(fake_p))
    assert fake_p.requests == []


# ------------------------------------------------------------------------------ reauth


async def test_reauth_with_a_new_client_id_and_secret(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The API application was replaced: the new Client ID and Secret are checked, then saved."""
    fake_p.client_id, fake_p.client_secret = NEW_CLIENT_ID, NEW_CLIENT_SECRET
    await _setup(hass, p_entry)
    assert _state(p_entry) is ConfigEntryState.SETUP_ERROR
    (flow,) = reauth_flows(hass, p_entry)
    flow_id = flow["flow_id"]

    result = await hass.config_entries.flow.async_configure(flow_id)
    assert_form(result, "reauth_confirm")
    assert schema_keys(result) == [CONF_CLIENT_ID, CONF_CLIENT_SECRET]
    assert result["description_placeholders"] == {"name": TITLE, "tried": _tried(fake_p)}
    assert suggested(result) == {CONF_CLIENT_ID: CLIENT_ID}  # never the stored secret
    assert form_shape(result, {fake_p.port: "<port>"}) == snapshot
    assert fake_p.token_requests == 1  # the setup's; showing the form sends nothing

    result = await submit(
        hass, flow_id, {CONF_CLIENT_ID: NEW_CLIENT_ID, CONF_CLIENT_SECRET: CLIENT_SECRET}
    )
    assert_form(result, "reauth_confirm", {"base": "invalid_auth"}, tried=_tried(fake_p))
    assert suggested(result) == {CONF_CLIENT_ID: NEW_CLIENT_ID}
    assert fake_p.token_requests == 2
    assert p_entry.data[CONF_CLIENT_ID] == CLIENT_ID

    result = await submit(
        hass, flow_id, {CONF_CLIENT_ID: f" {NEW_CLIENT_ID} ", CONF_CLIENT_SECRET: NEW_CLIENT_SECRET}
    )
    assert_abort(result, "reauth_successful")
    await hass.async_block_till_done()

    assert p_entry.data == _data(fake_p, client_id=NEW_CLIENT_ID, client_secret=NEW_CLIENT_SECRET)
    assert p_entry.state is ConfigEntryState.LOADED
    # The check (a token, revoked), then the reloaded entry's own token.
    assert _paths(fake_p)[2:] == [
        "get_token",
        "system/information",
        "del_token",
        "get_token",
        "system/information",
    ]
    assert fake_p.calls("get_token")[-1].body == {
        "username": NEW_CLIENT_ID,
        "password": NEW_CLIENT_SECRET,
    }
    assert reauth_flows(hass) == []
    _assert_no_secrets(fake_p, caplog.text, NEW_CLIENT_SECRET)


async def test_reauth_wrong_device(
    hass: HomeAssistant, fake_p: FakeYeastarP, make_fake: FakeFactory
) -> None:
    """Credentials that work, at another PBX than the entry's: nothing is saved."""
    other = await make_fake(serial=OTHER_SERIAL)
    entry = _add_entry(hass, _data(other, client_secret="old-secret"))

    result = await entry.start_reauth_flow(hass)
    result = await submit(
        hass, result["flow_id"], {CONF_CLIENT_ID: CLIENT_ID, CONF_CLIENT_SECRET: CLIENT_SECRET}
    )

    assert_abort(result, "wrong_device")
    assert entry.data[CONF_CLIENT_SECRET] == "old-secret"
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert _paths(other) == ["get_token", "system/information", "del_token"]
    assert fake_p.requests == []


async def test_reauth_of_a_damaged_entry_is_unknown(
    hass: HomeAssistant, fake_p: FakeYeastarP, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry without its host (damaged storage): "unknown", with the traceback logged."""
    data = _data(fake_p)
    del data[CONF_HOST]
    entry = _add_entry(hass, data)

    result = await entry.start_reauth_flow(hass)
    result = await submit(
        hass, result["flow_id"], {CONF_CLIENT_ID: CLIENT_ID, CONF_CLIENT_SECRET: CLIENT_SECRET}
    )

    assert_form(result, "reauth_confirm", {"base": "unknown"})
    assert f"Unexpected error while checking {BACKEND_NAME}" in caplog.text
    assert "KeyError" in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert fake_p.requests == []


# ------------------------------------------------------------------------- reconfigure


async def test_reconfigure_form(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_entry: MockConfigEntry
) -> None:
    result = await p_entry.start_reconfigure_flow(hass)

    assert_form(result, "reconfigure")
    assert schema_keys(result) == [CONF_HOST, CONF_PORT, CONF_VERIFY_SSL]
    assert defaults(result) == {CONF_PORT: 443, CONF_VERIFY_SSL: False}
    assert suggested(result) == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: fake_p.port,
        CONF_VERIFY_SSL: False,
    }
    assert result["description_placeholders"] == {"name": TITLE, "tried": _tried(fake_p)}
    assert fake_p.requests == []


@pytest.mark.parametrize(
    ("title", "new_title"),
    [
        pytest.param(TITLE, f"Yeastar P550 ({PBX_NAME})", id="generated-title-follows"),
        pytest.param("Office PBX", "Office PBX", id="given-title-stays"),
    ],
)
async def test_reconfigure_to_another_address(
    hass: HomeAssistant,
    pbx_name: str,
    fake_p: FakeYeastarP,
    p_entry: MockConfigEntry,
    make_fake: FakeFactory,
    title: str,
    new_title: str,
) -> None:
    """The PBX moved (same serial): checked at the new address, saved, reloaded."""
    hass.config_entries.async_update_entry(p_entry, title=title)
    await _setup(hass, p_entry)
    assert p_entry.state is ConfigEntryState.LOADED
    moved = await make_fake(serial=SERIAL)

    result = await p_entry.start_reconfigure_flow(hass)
    result = await submit(
        hass,
        result["flow_id"],
        {
            CONF_HOST: f" https://{pbx_name.upper()}:{moved.port}/ ",
            CONF_PORT: 443,
            CONF_VERIFY_SSL: False,
        },
    )
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()

    assert p_entry.data == _data(moved, host=pbx_name)
    assert p_entry.title == new_title
    assert p_entry.unique_id == SERIAL
    assert p_entry.state is ConfigEntryState.LOADED
    # The old PBX: its token revoked at the unload. The new one: checked, then used.
    assert _paths(fake_p) == ["get_token", "system/information", "del_token"]
    assert fake_p.valid_tokens() == []
    assert _paths(moved) == [
        "get_token",
        "system/information",
        "del_token",
        "get_token",
        "system/information",
    ]
    assert entry_device(hass, p_entry).configuration_url == f"https://{pbx_name}:{moved.port}"


async def test_reconfigure_generated_title_follows_the_model(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry, make_fake: FakeFactory
) -> None:
    """The same PBX (serial) answering as another model: the generated title follows.

    The title was generated from the model ("Yeastar P550 (127.0.0.1)"), so it is not a
    title the user gave; the S-Series entries behave so too (test_config_flow.py).
    """
    moved = await make_fake(serial=SERIAL, model="Yeastar P560")

    result = await p_loaded.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], _address(moved))
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()

    assert p_loaded.data[CONF_PORT] == moved.port
    assert p_loaded.title == "Yeastar P560 (127.0.0.1)"


async def test_reconfigure_wrong_device(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_entry: MockConfigEntry, make_fake: FakeFactory
) -> None:
    other = await make_fake(serial=OTHER_SERIAL)

    result = await p_entry.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], _address(other))

    assert_abort(result, "wrong_device")
    assert p_entry.data == _data(fake_p)
    assert p_entry.title == TITLE
    assert _paths(other) == ["get_token", "system/information", "del_token"]


async def test_reconfigure_errors_then_fix(
    hass: HomeAssistant,
    tolerate_tls_resets: None,
    fake_p: FakeYeastarP,
    p_entry: MockConfigEntry,
    closed_port: int,
) -> None:
    """Every failed check leaves the entry as it was; the form names what it tried."""
    result = await p_entry.start_reconfigure_flow(hass)
    flow_id = result["flow_id"]

    result = await submit(hass, flow_id, _address(fake_p) | {CONF_HOST: "exa mple"})
    assert_form(result, "reconfigure", {CONF_HOST: "invalid_host"})
    assert suggested(result)[CONF_HOST] == "exa mple"

    result = await submit(hass, flow_id, _address(fake_p) | {CONF_PORT: closed_port})
    assert_form(
        result,
        "reconfigure",
        {"base": "cannot_connect"},
        tried=f"the PBX at 127.0.0.1:{closed_port}",
    )
    assert suggested(result)[CONF_PORT] == closed_port

    result = await submit(hass, flow_id, _address(fake_p) | {CONF_VERIFY_SSL: True})
    assert_form(result, "reconfigure", {"base": "ssl_error"}, tried=_tried(fake_p))
    assert fake_p.requests == []
    assert p_entry.data == _data(fake_p)

    result = await submit(hass, flow_id, _address(fake_p))
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()
    assert p_entry.state is ConfigEntryState.LOADED
    assert p_entry.title == TITLE


# ----------------------------------------------------------------------------- options


async def test_options_dial_permission(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """The extension whose outbound permission external calls use; read on every action."""
    assert config_flow.VoicePromptConfigFlow.async_supports_options_flow(p_loaded)
    assert p_loaded.supports_options

    result = await hass.config_entries.options.async_init(p_loaded.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert schema_keys(result) == [CONF_DIAL_PERMISSION, CONF_ACCEPT_ANY_CERTIFICATE]
    assert result["description_placeholders"] == {"name": TITLE}
    strings = OPTIONS_STRINGS["step"]["init"]
    assert CONF_DIAL_PERMISSION in strings["data"]
    assert CONF_DIAL_PERMISSION in strings["data_description"]
    assert form_shape(result) == snapshot

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_DIAL_PERMISSION: " 1001 "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert p_loaded.options == {CONF_DIAL_PERMISSION: "1001"}
    assert p_loaded.state is ConfigEntryState.LOADED

    # No reload needed: the next action sends it.
    await play_prompt(hass, p_loaded, target=EXTERNAL, prompt="doorbell")
    assert _bodies(fake_p) == [_play_body(EXTERNAL, dial_permission="1001")]

    # Opening the options again shows what is stored; clearing it sends none.
    result = await hass.config_entries.options.async_init(p_loaded.entry_id)
    assert suggested(result) == {CONF_DIAL_PERMISSION: "1001"}
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert p_loaded.options == {}
    await play_prompt(hass, p_loaded, target=EXTERNAL, prompt="doorbell")
    assert _bodies(fake_p)[-1] == _play_body(EXTERNAL)


# ------------------------------------------------------------------------------- setup


def _device(hass: HomeAssistant, entry: MockConfigEntry, fake: FakeYeastarP) -> dict[str, Any]:
    """The entry's device, the fields every release has, without the fake's random port."""
    device = entry_device(hass, entry)
    assert device.configuration_url == f"https://127.0.0.1:{fake.port}"
    fields = {name: _plain(getattr(device, name)) for name in DEVICE_FIELDS}
    fields["configuration_url"] = "https://127.0.0.1:<port>"
    return fields


def _entities(hass: HomeAssistant, entry: MockConfigEntry) -> list[dict[str, Any]]:
    """The entry's registry entries (on its device) with their states."""
    device = entry_device(hass, entry)
    entities: list[dict[str, Any]] = []
    for item in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        assert item.device_id == device.id
        state = hass.states.get(item.entity_id)
        assert state is not None
        entities.append(
            {
                "entry": {name: _plain(getattr(item, name)) for name in ENTITY_FIELDS},
                "state": state.state,
                "attributes": _plain(dict(state.attributes)),
            }
        )
    return entities


async def test_setup_registers_the_pbx(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Setup: one token, the PBX's information, a device with the event entity."""
    backend = p_loaded.runtime_data
    assert isinstance(backend, YeastarPBackend)
    assert backend.system is not None
    assert backend.system.serial == SERIAL
    assert backend.system.model == MODEL
    assert _paths(fake_p) == ["get_token", "system/information"]

    device = entry_device(hass, p_loaded)
    assert device.identifiers == {(DOMAIN, SERIAL)}
    assert device.sw_version == fake_p.firmware_version
    assert device.hw_version == fake_p.hardware_version
    assert _device(hass, p_loaded, fake_p) == snapshot(name="device")
    assert _entities(hass, p_loaded) == snapshot(name="entities")

    # Unloading revokes the entry's token.
    token = fake_p.calls("system/information")[0].token
    assert await hass.config_entries.async_unload(p_loaded.entry_id)
    await hass.async_block_till_done()
    assert _paths(fake_p)[-1] == "del_token"
    assert fake_p.requests[-1].token == token
    assert fake_p.valid_tokens() == []


def _closed(fake: FakeYeastarP, port: int) -> dict[str, Any]:
    return {CONF_PORT: port}


def _disabled(fake: FakeYeastarP, port: int) -> dict[str, Any]:
    fake.api_enabled = False
    return {}


def _denied(fake: FakeYeastarP, port: int) -> dict[str, Any]:
    fake.fail_next["system/information"] = [10005]
    return {}


def _html(fake: FakeYeastarP, port: int) -> dict[str, Any]:
    fake.garbage = True
    return {}


def _verify(fake: FakeYeastarP, port: int) -> dict[str, Any]:
    return {CONF_VERIFY_SSL: True}


@pytest.mark.parametrize(
    ("fault", "key", "words", "paths"),
    [
        pytest.param(_closed, "cannot_connect", "cannot be reached", [], id="closed-port"),
        pytest.param(
            _verify, "ssl_error", "Turn off certificate verification", [], id="self-signed"
        ),
        pytest.param(
            _disabled, "api_disabled", "does not offer its API", ["get_token"], id="errcode-70123"
        ),
        pytest.param(
            _denied,
            "api_disabled",
            "does not offer its API",
            ["get_token", "system/information", "del_token"],
            id="errcode-10005",
        ),
        pytest.param(_html, "invalid_response", "unexpected reply", ["get_token"], id="html"),
    ],
)
async def test_setup_not_ready(
    hass: HomeAssistant,
    tolerate_tls_resets: None,
    fake_p: FakeYeastarP,
    closed_port: int,
    fault: Callable[[FakeYeastarP, int], dict[str, Any]],
    key: str,
    words: str,
    paths: list[str],
) -> None:
    """What a retry may cure: not ready, with its translated reason; no reauth, no token left."""
    entry = _add_entry(hass, _data(fake_p, **fault(fake_p, closed_port)))
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == key
    placeholders = entry.error_reason_translation_placeholders
    assert placeholders is not None
    assert placeholders["entry"] == TITLE
    assert entry.reason is not None
    assert entry.reason.startswith(TITLE)
    assert words in entry.reason
    assert "{" not in entry.reason
    assert reauth_flows(hass, entry) == []
    assert _paths(fake_p) == paths
    assert fake_p.valid_tokens() == []


async def test_setup_auth_failed_starts_reauth_without_retrying(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_p: FakeYeastarP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused secret: setup error, one reauth flow, one token request and no more."""
    entry = _add_entry(hass, _data(fake_p, client_secret="old-secret"))
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.error_reason_translation_key == "invalid_auth"
    assert entry.error_reason_translation_placeholders == {
        "entry": TITLE,
        "detail": BAD_CREDENTIALS,
    }
    assert entry.reason is not None
    assert "old-secret" not in entry.reason
    (flow,) = reauth_flows(hass, entry)
    assert flow["step_id"] == "reauth_confirm"

    for _ in range(3):  # nothing retries behind the user's back (5 failures block)
        freezer.tick(timedelta(minutes=10))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
    assert _paths(fake_p) == ["get_token"]
    assert fake_p.failed_logins == {"127.0.0.1": 1}
    assert "old-secret" not in caplog.text


async def test_setup_ip_blocked_repair_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_p: FakeYeastarP,
    p_entry: MockConfigEntry,
) -> None:
    """A blocked address: retried, a repair issue while it lasts, gone once setup works."""
    fake_p.block_ip()
    await _setup(hass, p_entry)

    assert p_entry.state is ConfigEntryState.SETUP_RETRY
    assert p_entry.error_reason_translation_key == "ip_blocked"
    assert p_entry.reason is not None
    assert "Blocked IPs" in p_entry.reason
    assert reauth_flows(hass, p_entry) == []
    issue = _issue(hass, p_entry)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert not issue.is_fixable
    assert issue.translation_key == "ip_blocked"
    assert issue.translation_placeholders == {"entry": TITLE, "host": "127.0.0.1"}

    # Still blocked at the next retry: the issue stays.
    freezer.tick(timedelta(minutes=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _state(p_entry) is ConfigEntryState.SETUP_RETRY
    assert _issue(hass, p_entry) is not None
    assert _paths(fake_p) == ["get_token", "get_token"]

    # The block is lifted (Security > Blocked IPs): the next retry loads, the issue goes.
    fake_p.unblock_all()
    freezer.tick(timedelta(minutes=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _state(p_entry) is ConfigEntryState.LOADED
    assert _issue(hass, p_entry) is None


# ------------------------------------------------------------------------------ action


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("1000", id="extension"),
        pytest.param("6300", id="paging-group"),
        pytest.param(EXTERNAL, id="external-number"),
        pytest.param("004930123456", id="external-digits"),
    ],
)
async def test_play_to_a_target(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry, target: str
) -> None:
    """Extensions, paging groups and external numbers are all a ``number`` to the API."""
    response = await play_prompt(hass, p_loaded, target=target, prompt="doorbell")

    assert response == {
        "calls": [{"target": target, "call_id": P_CALL_ID, "status": "placed"}],
        "failed": [],
    }
    assert _bodies(fake_p) == [_play_body(target)]
    (play,) = fake_p.calls(PLAY)
    assert play.reply == {"errcode": 0, "errmsg": "SUCCESS"}
    assert play.token == fake_p.calls("system/information")[0].token  # setup's token
    assert fake_p.token_requests == 1


async def test_dial_permission_option_is_sent(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """With the option, calls carry it as ``dial_permission``.

    Digits alone cannot tell an extension from an external number, so every call of the
    action carries it; the PBX uses it for the external ones.
    """
    hass.config_entries.async_update_entry(p_loaded, options={CONF_DIAL_PERMISSION: "1001"})

    response = await play_prompt(hass, p_loaded, target=[EXTERNAL, "1000"], prompt="wakeup")

    assert [call["target"] for call in response["calls"]] == [EXTERNAL, "1000"]
    assert sorted(_bodies(fake_p), key=lambda body: body["number"]) == [
        _play_body(EXTERNAL, "wakeup", dial_permission="1001"),
        _play_body("1000", "wakeup", dial_permission="1001"),
    ]


async def test_repeat_volume_autoanswer_in_the_request(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    """The action's repeat, volume and autoanswer become count, volume and auto_answer."""
    await play_prompt(
        hass,
        p_loaded,
        target="1000",
        prompt="doorbell+lunch_ready",
        repeat=3,
        volume=15,
        autoanswer=True,
    )
    await play_prompt(
        hass, p_loaded, target="1001", prompt=["alarm"], repeat=10, volume=0, autoanswer=False
    )
    await play_prompt(hass, p_loaded, target="1002", prompt="alarm", repeat=1, volume=20)

    assert _bodies(fake_p) == [
        {
            "number": "1000",
            "prompts": ["doorbell", "lunch_ready"],
            "auto_answer": "yes",
            "count": 3,
            "volume": 15,
        },
        {
            "number": "1001",
            "prompts": ["alarm"],
            "auto_answer": "no",
            "count": 10,
            "volume": 0,
        },
        {"number": "1002", "prompts": ["alarm"], "auto_answer": "no", "count": 1, "volume": 20},
    ]
    assert all(r.reply == {"errcode": 0, "errmsg": "SUCCESS"} for r in fake_p.calls(PLAY))


async def test_several_targets_one_failing(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    """One action, several numbers: the unknown one is returned in ``failed`` and fired."""
    entity_id = _event_entity(hass, p_loaded)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)

    response = await play_prompt(
        hass, p_loaded, target=["1000", "6300", "4242", EXTERNAL], prompt="doorbell"
    )
    await hass.async_block_till_done()

    assert response == {
        "calls": [
            {"target": "1000", "call_id": P_CALL_ID, "status": "placed"},
            {"target": "6300", "call_id": P_CALL_ID, "status": "placed"},
            {"target": EXTERNAL, "call_id": P_CALL_ID, "status": "placed"},
        ],
        "failed": [{"target": "4242", "code": "60001", "error": UNKNOWN_4242}],
    }
    assert response == snapshot(exclude=props("call_id"))  # random: checked above
    assert sorted(body["number"] for body in _bodies(fake_p)) == sorted(
        ["1000", "6300", "4242", EXTERNAL]
    )

    # A placed call is no outcome: only the failure reaches the event entity.
    states = [
        change.data["new_state"]
        for change in changes
        if change.data["entity_id"] == entity_id and change.data["new_state"] is not None
    ]
    (state,) = states
    assert dt_util.parse_datetime(state.state) is not None
    attributes = _plain(dict(state.attributes))
    assert {key: value for key, value in attributes.items() if key != "event_types"} == {
        "event_type": "failed",
        "target": "4242",
        "call_id": None,
        "reason": UNKNOWN_4242,
        "code": "60001",
        "friendly_name": "Yeastar P550 fake Calls",
    }
    assert "failed" in attributes["event_types"]

    warnings = [
        record
        for record in caplog.records
        if record.name.startswith("custom_components.voice_prompt")
        and record.levelno == logging.WARNING
    ]
    assert [record.getMessage() for record in warnings] == [
        f"Played on 3 of 4 targets of {TITLE}; failed: 4242: {UNKNOWN_4242}"
    ]
    assert reauth_flows(hass) == []


async def test_single_unknown_target_is_the_callers_mistake(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, p_loaded, target="4242", prompt="doorbell")

    assert exc_info.value.translation_key == "invalid_input"
    assert str(exc_info.value) == f"{TITLE} cannot play this: {UNKNOWN_4242}"
    assert len(fake_p.calls(PLAY)) == 1


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        pytest.param({"repeat": 0}, "invalid_input", "from 1 to 10", id="repeat-0"),
        pytest.param({"repeat": 11}, "invalid_input", "from 1 to 10", id="repeat-11"),
        pytest.param({"volume": 21}, "invalid_input", "from 0 to 20", id="volume-21"),
        pytest.param(
            {"prompt": "door.bell"},
            "invalid_input",
            "door.bell is not a valid Custom Prompt name",
            id="prompt-with-dot",
        ),
        pytest.param(
            {"prompt": ["doorbell", "alarm!"]},
            "invalid_input",
            "alarm! is not a valid Custom Prompt name",
            id="prompt-with-bang",
        ),
        pytest.param(
            {"prompt": [{"url": "https://example.test/a.wav"}]},
            "invalid_input",
            "not media objects",
            id="media-object",
        ),
        pytest.param(
            {"target": "10a0"}, "invalid_input", "10a0 is not a number to call", id="bad-number"
        ),
        pytest.param({"target": []}, "target_required", "needs a target", id="no-target"),
    ],
)
async def test_refused_before_anything_is_sent(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    data: dict[str, Any],
    key: str,
    words: str,
) -> None:
    """Input the integration can refuse itself never reaches the PBX."""
    before = len(fake_p.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, p_loaded, **({"target": "1000", "prompt": "doorbell"} | data))

    assert exc_info.value.translation_key == key
    assert words in str(exc_info.value)
    assert "{" not in str(exc_info.value)
    assert len(fake_p.requests) == before
    assert fake_p.calls(PLAY) == []


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"loop": True}, "loop"),
        ({"call_id": "abc"}, "call_id"),
        ({"client_context": "doorbell-1"}, "client_context"),
        ({"hang_up": False}, "hang_up"),
        (
            {"loop": False, "call_id": "abc", "hang_up": True, "client_context": "x"},
            "call_id, client_context, hang_up, loop",
        ),
    ],
)
async def test_fields_the_p_series_cannot_honour(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    data: dict[str, Any],
    fields: str,
) -> None:
    """Teams-only fields are refused by capability, naming them and the backend."""
    before = len(fake_p.requests)
    with pytest.raises(ServiceValidationError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell", **data)

    err = exc_info.value
    assert err.translation_key == "fields_not_supported"
    assert err.translation_placeholders == {
        "entry": TITLE,
        "backend": "Yeastar P-Series PBX",
        "fields": fields,
    }
    assert str(err) == f"{TITLE} (Yeastar P-Series PBX) cannot use these fields: {fields}"
    assert len(fake_p.requests) == before


async def test_token_expired_one_renewal_and_the_call_succeeds(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The PBX dropped the access token early (10004): one refresh, one retry, placed."""
    fake_p.expire_tokens()

    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")

    assert response["calls"] == [{"target": "1000", "call_id": P_CALL_ID, "status": "placed"}]
    assert response["failed"] == []
    first, retry = fake_p.calls(PLAY)
    assert first.reply == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    assert retry.reply == {"errcode": 0, "errmsg": "SUCCESS"}
    assert retry.body == first.body
    old, new = _issued(fake_p)
    assert (first.token, retry.token) == (old, new)
    assert (fake_p.token_requests, fake_p.refreshes) == (1, 1)
    assert reauth_flows(hass) == []
    _assert_no_secrets(fake_p, caplog.text)


async def test_token_renewed_ahead_of_expiry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """26 minutes into the 30-minute token: refreshed before the call, never refused."""
    freezer.tick(timedelta(minutes=26))

    await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")

    assert _paths(fake_p) == ["get_token", "system/information", "refresh_token", PLAY]
    assert fake_p.calls(PLAY)[0].token == _issued(fake_p)[1]
    assert fake_p.calls(PLAY)[0].reply == {"errcode": 0, "errmsg": "SUCCESS"}


async def test_bad_credentials_at_runtime_start_reauth(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The secret was changed and the PBX restarted: reauth, then silence until fixed."""
    fake_p.client_secret = NEW_CLIENT_SECRET
    fake_p.forget_tokens()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "invalid_auth"
    assert str(err) == (
        f"{TITLE}: {BAD_CREDENTIALS}. Enter the current credentials on the integration page"
    )
    await hass.async_block_till_done()
    (flow,) = reauth_flows(hass, p_loaded)
    # The refused token, the refused refresh, one refused get_token: no retry loop.
    assert _paths(fake_p)[2:] == [PLAY, "refresh_token", "get_token"]
    requests = len(fake_p.requests)

    for _ in range(5):
        with pytest.raises(HomeAssistantError) as again:
            await play_prompt(hass, p_loaded, target=["1000", "1001"], prompt="doorbell")
        assert again.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()
    assert len(fake_p.requests) == requests
    assert fake_p.failed_logins == {"127.0.0.1": 1}
    assert fake_p.blocked_ips == {}
    assert len(reauth_flows(hass, p_loaded)) == 1

    # The user enters the new secret: the entry reloads and plays again.
    result = await submit(
        hass, flow["flow_id"], {CONF_CLIENT_ID: CLIENT_ID, CONF_CLIENT_SECRET: NEW_CLIENT_SECRET}
    )
    assert_abort(result, "reauth_successful")
    await hass.async_block_till_done()
    assert p_loaded.state is ConfigEntryState.LOADED
    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert response["calls"] == [{"target": "1000", "call_id": P_CALL_ID, "status": "placed"}]
    _assert_no_secrets(fake_p, caplog.text, NEW_CLIENT_SECRET)


async def test_ip_blocked_at_runtime_repair_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """A block while loaded: reported, a repair issue, no knocking, gone once the PBX answers."""
    fake_p.block_ip()

    with pytest.raises(HomeAssistantError) as exc_info:
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    err = exc_info.value
    assert not isinstance(err, ServiceValidationError)
    assert err.translation_key == "ip_blocked"
    assert "Blocked IPs" in str(err)
    await hass.async_block_till_done()
    assert reauth_flows(hass) == []
    issue = _issue(hass, p_loaded)
    assert issue is not None
    assert issue.translation_placeholders == {"entry": TITLE, "host": "127.0.0.1"}
    requests = len(fake_p.requests)

    # While the block lasts the client does not knock again.
    with pytest.raises(HomeAssistantError) as again:
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert again.value.translation_key == "ip_blocked"
    assert len(fake_p.requests) == requests
    assert _issue(hass, p_loaded) is not None

    fake_p.unblock_all()
    freezer.tick(timedelta(seconds=LOCKOUT_SECONDS + 1))
    response = await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert response["calls"] == [{"target": "1000", "call_id": P_CALL_ID, "status": "placed"}]
    assert _issue(hass, p_loaded) is None


async def test_spoken_message_is_uploaded_once_then_played(
    hass: HomeAssistant,
    own_config_dir: None,
    tts_engine: CountingTTS,  # noqa: F811 - the fixture imported above
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
) -> None:
    """A message becomes a Custom Prompt named by its content, played before the prompts."""
    await play_prompt(hass, p_loaded, target="1000", message="Lunch is ready", prompt="doorbell")

    (name,) = fake_p.uploads
    assert name.startswith("vp_")
    assert len(name) == len("vp_") + 16
    (upload,) = fake_p.calls("custom_prompt/upload")
    assert upload.body["is_check"] == "ask"  # an existing prompt of that name is kept
    assert upload.body["file"]["filename"] == f"{name}.wav"
    assert upload.body["file"]["content_type"] == "audio/wav"
    assert wav_layout(fake_p.uploaded_data[name]) == (1, 2, 8000)
    assert _bodies(fake_p) == [_play_body("1000", name, "doorbell")]

    # The same message again, to more numbers: not uploaded again.
    response = await play_prompt(hass, p_loaded, target=["1001", "6300"], message="Lunch is ready")

    assert [call["target"] for call in response["calls"]] == ["1001", "6300"]
    assert len(fake_p.calls("custom_prompt/upload")) == 1
    assert [body["prompts"] for body in _bodies(fake_p)[1:]] == [[name], [name]]
    assert [text for text, _, _ in tts_engine.calls] == ["Lunch is ready"]


# ------------------------------------------------------------------------- diagnostics

# The fake's port is random and its clock reads the wall clock: checked separately.
# The session's certificate is made anew each run: its fingerprint is checked on its own.
VOLATILE = props("port", "system_time", "uptime_seconds", "certificate_sha256")


async def test_diagnostics(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """The entry after one action: useful state, no client secret and no token."""
    hass.config_entries.async_update_entry(p_loaded, options={CONF_DIAL_PERMISSION: "1001"})
    freezer.tick(timedelta(seconds=30))
    fake_p.events.outcome = "silent"  # the call waits for its first event
    await play_prompt(hass, p_loaded, target=EXTERNAL, prompt="doorbell")

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, p_loaded)

    assert diagnostics == snapshot(exclude=VOLATILE)
    assert diagnostics["entry"]["data"][CONF_CLIENT_SECRET] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["port"] == fake_p.port
    assert diagnostics["client"]["port"] == fake_p.port
    assert diagnostics["client"]["certificate_mode"] == "pinned"
    pin = fake_p.certificate_sha256
    assert diagnostics["entry"]["data"][CONF_CERTIFICATE_SHA256] == pin
    assert diagnostics["client"][CONF_CERTIFICATE_SHA256] == pin
    assert isinstance(diagnostics["device"]["system_time"], str)
    assert isinstance(diagnostics["device"]["uptime_seconds"], int)
    # The setup's token, 30 seconds old.
    assert diagnostics["client"]["token_valid_for_seconds"] == 1770.0
    dump = json.dumps(diagnostics)
    _assert_no_secrets(fake_p, dump)
    assert CLIENT_SECRET.upper() not in dump.upper()
