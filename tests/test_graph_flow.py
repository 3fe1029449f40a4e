"""Config flow of Microsoft Teams entries: graph step, reauth, reconfigure and options.

Every check is a real client-credentials token request to the fake Graph on 127.0.0.1.
"""

# ruff: noqa: F811 - the fixtures imported from tests.graph_fixtures are test arguments

from __future__ import annotations

import re
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.voice_prompt import config_flow
from custom_components.voice_prompt.backends import graph as graph_backend
from custom_components.voice_prompt.backends.graph import (
    CONF_APPLICATION_INSTANCE_ID,
    CONF_HANG_UP,
    CONF_TENANT_ID,
    GraphEndpoints,
    TeamsBackend,
)
from custom_components.voice_prompt.backends.yeastar import YeastarBackend
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
    CONF_WEBHOOK_ID,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from tests.conftest import reauth_flows, webhook_registration
from tests.fakes.graph import FakeGraph
from tests.flow_helpers import (
    OPTIONS_STRINGS,
    assert_abort,
    assert_form,
    defaults,
    error_text,
    form_shape,
    schema_keys,
    start_flow,
    submit,
    suggested,
)
from tests.graph_fixtures import (  # noqa: F401 - fixtures
    CLIENT_ID,
    CLIENT_SECRET,
    INSTANCE_ID,
    TENANT_ID,
    TITLE,
    UNIQUE_ID,
    WEBHOOK_ID,
    OddReply,
    OddServer,
    graph,
    graph_closed_port,
    graph_endpoints,
    graph_entry,
    odd_server,
)

NEW_SECRET = "rotated-secret~7Hk.Pq"
OTHER_CLIENT_ID = "bbbbbbbb-1111-2222-3333-444444444444"
OTHER_TENANT_ID = "99999999-9999-9999-9999-999999999999"
GRAPH = TeamsBackend.kind


def _user_input(**changes: Any) -> dict[str, Any]:
    return {
        CONF_TENANT_ID: TENANT_ID,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: CLIENT_SECRET,
    } | changes


def _tried(tenant_id: str = TENANT_ID) -> str:
    """What a form error names after a token request: the tenant it was asked of."""
    return f"Microsoft Entra ID (tenant {tenant_id})"


def _state(entry: ConfigEntry[Any]) -> ConfigEntryState:
    """Read the state through a call, so type checkers do not narrow it for good."""
    return entry.state


def _token_requests(graph: FakeGraph) -> list[dict[str, str]]:
    return [r.body for r in graph.requests if r.path.endswith("/oauth2/v2.0/token")]


# ----------------------------------------------------------------------- graph step


async def test_graph_form(hass: HomeAssistant, snapshot: SnapshotAssertion) -> None:
    result = await start_flow(hass, "graph")

    assert_form(result, "graph")
    assert schema_keys(result) == [CONF_TENANT_ID, CONF_CLIENT_ID, CONF_CLIENT_SECRET]
    assert suggested(result) == {}
    assert result["description_placeholders"] == {}
    assert form_shape(result) == snapshot


async def test_graph_creates_entry(
    hass: HomeAssistant, graph: FakeGraph, graph_endpoints: GraphEndpoints
) -> None:
    result = await start_flow(hass, "graph")
    result = await submit(
        hass,
        result["flow_id"],
        {
            CONF_TENANT_ID: f"  {TENANT_ID}\t",
            CONF_CLIENT_ID: f"{CLIENT_ID}\n",
            CONF_CLIENT_SECRET: f" {CLIENT_SECRET} ",
        },
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == TITLE
    data = result["data"]
    # A webhook id of its own, generated for the new entry.
    webhook_id = data[CONF_WEBHOOK_ID]
    assert re.fullmatch(r"[0-9a-f]{64}", webhook_id)
    assert webhook_id != WEBHOOK_ID
    assert data == {
        CONF_BACKEND: GRAPH,
        CONF_TENANT_ID: TENANT_ID,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: CLIENT_SECRET,
        CONF_WEBHOOK_ID: webhook_id,
    }
    entry = result["result"]
    assert entry.unique_id == UNIQUE_ID
    assert entry.title == TITLE
    # The check was one token request with the stripped values.
    flow_request = _token_requests(graph)[0]
    assert flow_request["client_id"] == CLIENT_ID
    assert flow_request["client_secret"] == CLIENT_SECRET
    assert graph.requests[0].path == f"/login/{TENANT_ID}/oauth2/v2.0/token"
    # The new entry is set up and listens for Microsoft's notifications.
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert webhook_registration(hass, webhook_id)["local_only"] is False
    assert len(_token_requests(graph)) == 2  # the flow's check, the entry's setup


async def test_every_new_entry_gets_its_own_webhook_id(
    hass: HomeAssistant, graph: FakeGraph, graph_endpoints: GraphEndpoints
) -> None:
    webhook_ids = []
    for _ in range(2):
        result = await start_flow(hass, "graph")
        result = await submit(hass, result["flow_id"], _user_input())
        assert result["type"] is FlowResultType.CREATE_ENTRY
        webhook_ids.append(result["data"][CONF_WEBHOOK_ID])
        await hass.async_block_till_done()
        await hass.config_entries.async_remove(result["result"].entry_id)

    assert webhook_ids[0] != webhook_ids[1]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("90002", "tenant_not_found"),
        ("700016", "invalid_auth"),
        ("7000215", "invalid_auth"),
        ("7000222", "secret_expired"),
    ],
)
async def test_graph_token_errors_then_recover(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_endpoints: GraphEndpoints,
    code: str,
    error: str,
) -> None:
    graph.token_error = code
    result = await start_flow(hass, "graph")
    result = await submit(hass, result["flow_id"], _user_input())

    assert_form(result, "graph", {"base": error})
    assert result["description_placeholders"] == {"tried": _tried()}
    # What was typed is offered again.
    assert suggested(result)[CONF_TENANT_ID] == TENANT_ID
    assert suggested(result)[CONF_CLIENT_ID] == CLIENT_ID
    assert hass.config_entries.async_entries(DOMAIN) == []
    assert len(_token_requests(graph)) == 1  # one request per submit

    graph.token_error = None
    result = await submit(hass, result["flow_id"], _user_input())
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("changes", "error", "tried"),
    [
        ({CONF_TENANT_ID: OTHER_TENANT_ID}, "tenant_not_found", _tried(OTHER_TENANT_ID)),
        ({CONF_CLIENT_ID: OTHER_CLIENT_ID}, "invalid_auth", _tried()),
        ({CONF_CLIENT_SECRET: "the-secret-id-not-its-value"}, "invalid_auth", _tried()),
    ],
)
async def test_graph_wrong_values(
    hass: HomeAssistant,
    graph: FakeGraph,
    graph_endpoints: GraphEndpoints,
    changes: dict[str, str],
    error: str,
    tried: str,
) -> None:
    result = await start_flow(hass, "graph")
    result = await submit(hass, result["flow_id"], _user_input(**changes))

    assert_form(result, "graph", {"base": error})
    assert result["description_placeholders"] == {"tried": tried}
    assert graph.issued_tokens == []


async def test_tenant_not_found_message_reads_well(
    hass: HomeAssistant, graph: FakeGraph, graph_endpoints: GraphEndpoints
) -> None:
    """The message names the unknown tenant once, without doubling what ``tried`` says."""
    result = await start_flow(hass, "graph")
    result = await submit(hass, result["flow_id"], _user_input(**{CONF_TENANT_ID: OTHER_TENANT_ID}))

    assert_form(result, "graph", {"base": "tenant_not_found"}, tried=_tried(OTHER_TENANT_ID))
    text = error_text(result)
    assert text.count(OTHER_TENANT_ID) == 1
    assert "tenant Microsoft Entra ID" not in text, text


async def test_graph_cannot_connect(
    hass: HomeAssistant,
    graph_closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        graph_backend,
        "GRAPH_ENDPOINTS",
        GraphEndpoints(login_base=f"http://127.0.0.1:{graph_closed_port}/login"),
    )
    result = await start_flow(hass, "graph")
    result = await submit(hass, result["flow_id"], _user_input())

    assert_form(result, "graph", {"base": "cannot_connect"}, tried=_tried())


async def test_graph_garbage_is_cannot_connect(
    hass: HomeAssistant, odd_server: OddServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy's HTML page instead of the token reply (the fake's garbage switch only
    affects Graph calls, so a tiny server plays the token endpoint here)."""
    odd_server.routes[odd_server.token_path()] = OddReply(
        200, "<html><body>Sign in to the proxy</body></html>", "text/html"
    )
    monkeypatch.setattr(
        graph_backend, "GRAPH_ENDPOINTS", GraphEndpoints(login_base=odd_server.base_url + "/login")
    )
    result = await start_flow(hass, "graph")
    result = await submit(hass, result["flow_id"], _user_input())

    assert_form(result, "graph", {"base": "cannot_connect"}, tried=_tried())
    assert odd_server.requests == [("POST", odd_server.token_path())]


async def test_graph_unreadable_token_reply_is_cannot_connect(
    hass: HomeAssistant, graph: FakeGraph, graph_endpoints: GraphEndpoints
) -> None:
    graph.token_error = "900561"  # an AADSTS answer that says nothing about the credentials
    result = await start_flow(hass, "graph")
    result = await submit(hass, result["flow_id"], _user_input())

    assert_form(result, "graph", {"base": "cannot_connect"}, tried=_tried())


async def test_graph_already_configured(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    result = await start_flow(hass, "graph")
    result = await submit(
        hass, result["flow_id"], _user_input(**{CONF_CLIENT_SECRET: f"{CLIENT_SECRET} "})
    )

    assert_abort(result, "already_configured")
    assert hass.config_entries.async_entries(DOMAIN) == [graph_entry]
    assert graph_entry.data[CONF_WEBHOOK_ID] == WEBHOOK_ID  # untouched
    assert len(graph.issued_tokens) == 1  # checked once: that is how the app is known


async def test_graph_same_app_in_upper_case_is_already_configured(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    graph.client_id = CLIENT_ID.upper()  # like Entra ID, accept the upper-case spelling
    result = await start_flow(hass, "graph")
    result = await submit(
        hass,
        result["flow_id"],
        _user_input(**{CONF_TENANT_ID: TENANT_ID.upper(), CONF_CLIENT_ID: CLIENT_ID.upper()}),
    )
    await hass.async_block_till_done()

    assert_abort(result, "already_configured")
    assert hass.config_entries.async_entries(DOMAIN) == [graph_entry]


# --------------------------------------------------------------------------- reauth


async def test_reauth_form(
    hass: HomeAssistant, graph_entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    result = await graph_entry.start_reauth_flow(hass)

    assert_form(result, "reauth_confirm")
    assert schema_keys(result) == [CONF_CLIENT_SECRET]
    assert result["description_placeholders"] == {"name": TITLE, "tried": _tried()}
    assert suggested(result) == {}  # neither the old secret nor a username
    assert form_shape(result) == snapshot


async def test_reauth_after_failed_setup(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    graph.client_secret = NEW_SECRET  # the secret in the entry was replaced at Microsoft
    await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()
    assert _state(graph_entry) is ConfigEntryState.SETUP_ERROR
    (flow,) = reauth_flows(hass, graph_entry)

    # A wrong secret is refused and asked again; the form does not show it.
    result = await submit(hass, flow["flow_id"], {CONF_CLIENT_SECRET: "still-wrong"})
    assert_form(result, "reauth_confirm", {"base": "invalid_auth"}, tried=_tried())
    assert suggested(result) == {}
    assert graph_entry.data[CONF_CLIENT_SECRET] == CLIENT_SECRET

    result = await submit(hass, flow["flow_id"], {CONF_CLIENT_SECRET: f"  {NEW_SECRET}  "})
    assert_abort(result, "reauth_successful")
    await hass.async_block_till_done()
    assert graph_entry.data[CONF_CLIENT_SECRET] == NEW_SECRET
    assert graph_entry.data[CONF_WEBHOOK_ID] == WEBHOOK_ID
    assert graph_entry.state is ConfigEntryState.LOADED  # reloaded with the new secret
    assert _token_requests(graph)[-1]["client_secret"] == NEW_SECRET
    assert reauth_flows(hass) == []


async def test_reauth_expired_secret(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    result = await graph_entry.start_reauth_flow(hass)
    graph.token_error = "7000222"

    result = await submit(hass, result["flow_id"], {CONF_CLIENT_SECRET: NEW_SECRET})

    assert_form(result, "reauth_confirm", {"base": "secret_expired"})
    assert result["description_placeholders"] == {"name": TITLE, "tried": _tried()}
    assert graph_entry.data[CONF_CLIENT_SECRET] == CLIENT_SECRET


# ---------------------------------------------------------------------- reconfigure


async def test_reconfigure_form(
    hass: HomeAssistant, graph_entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    result = await graph_entry.start_reconfigure_flow(hass)

    # One step id for every backend (it was reconfigure_graph before issue 12).
    assert_form(result, "reconfigure")
    assert schema_keys(result) == [CONF_TENANT_ID, CONF_CLIENT_ID, CONF_CLIENT_SECRET]
    assert result["description_placeholders"] == {"name": TITLE, "tried": _tried()}
    # The ids are filled in, the secret never is.
    assert suggested(result) == {CONF_TENANT_ID: TENANT_ID, CONF_CLIENT_ID: CLIENT_ID}
    assert form_shape(result) == snapshot


@pytest.mark.parametrize(
    "title",
    [
        pytest.param(TITLE, id="generated-title"),
        # Replaced on every reconfigure before issue 12.
        pytest.param("Old name", id="given-title-stays"),
    ],
)
async def test_reconfigure_same_app(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry, title: str
) -> None:
    await hass.config_entries.async_setup(graph_entry.entry_id)
    await hass.async_block_till_done()
    hass.config_entries.async_update_entry(graph_entry, title=title)
    graph.client_secret = NEW_SECRET

    result = await graph_entry.start_reconfigure_flow(hass)
    result = await submit(
        hass, result["flow_id"], _user_input(**{CONF_CLIENT_SECRET: f"{NEW_SECRET}\n"})
    )

    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()
    assert graph_entry.title == title
    assert graph_entry.data == {
        CONF_BACKEND: GRAPH,
        CONF_TENANT_ID: TENANT_ID,
        CONF_CLIENT_ID: CLIENT_ID,
        CONF_CLIENT_SECRET: NEW_SECRET,
        CONF_WEBHOOK_ID: WEBHOOK_ID,
    }
    assert graph_entry.state is ConfigEntryState.LOADED
    assert _token_requests(graph)[-1]["client_secret"] == NEW_SECRET


async def test_reconfigure_other_app_is_wrong_device(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    graph.client_id = OTHER_CLIENT_ID  # a real, working app, but another one
    result = await graph_entry.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], _user_input(**{CONF_CLIENT_ID: OTHER_CLIENT_ID}))

    assert_abort(result, "wrong_device")
    assert graph_entry.data[CONF_CLIENT_ID] == CLIENT_ID
    assert graph_entry.title == TITLE
    assert graph.issued_tokens  # the check itself passed


async def test_reconfigure_error_keeps_the_form(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    result = await graph_entry.start_reconfigure_flow(hass)
    result = await submit(
        hass, result["flow_id"], _user_input(**{CONF_CLIENT_SECRET: "wrong-secret"})
    )

    assert_form(result, "reconfigure", {"base": "invalid_auth"}, tried=_tried())
    # The typed ids come back; the secret does not.
    assert suggested(result) == {CONF_TENANT_ID: TENANT_ID, CONF_CLIENT_ID: CLIENT_ID}
    assert graph_entry.data[CONF_CLIENT_SECRET] == CLIENT_SECRET


async def test_reconfigure_unknown_tenant_names_it(
    hass: HomeAssistant, graph: FakeGraph, graph_entry: MockConfigEntry
) -> None:
    result = await graph_entry.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], _user_input(**{CONF_TENANT_ID: OTHER_TENANT_ID}))

    assert_form(result, "reconfigure", {"base": "tenant_not_found"})
    assert result["description_placeholders"] == {
        "name": TITLE,
        "tried": _tried(OTHER_TENANT_ID),
    }
    assert suggested(result)[CONF_TENANT_ID] == OTHER_TENANT_ID
    assert graph_entry.data[CONF_TENANT_ID] == TENANT_ID


# -------------------------------------------------------------------------- options


async def test_options_flow(
    hass: HomeAssistant, graph_entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    assert config_flow.VoicePromptConfigFlow.async_supports_options_flow(graph_entry)
    assert graph_entry.supports_options

    result = await hass.config_entries.options.async_init(graph_entry.entry_id)

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert schema_keys(result) == [CONF_APPLICATION_INSTANCE_ID, CONF_HANG_UP]
    assert defaults(result) == {CONF_HANG_UP: True}
    assert form_shape(result) == snapshot
    strings = OPTIONS_STRINGS["step"]["init"]
    # The Teams form; the strings hold every backend's option fields.
    assert set(schema_keys(result)) == {CONF_APPLICATION_INSTANCE_ID, CONF_HANG_UP}
    assert set(schema_keys(result)) <= set(strings["data"]) & set(strings["data_description"])

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_APPLICATION_INSTANCE_ID: f" {INSTANCE_ID} ", CONF_HANG_UP: False}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert graph_entry.options == {CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID, CONF_HANG_UP: False}

    # Opening the options again shows what is stored.
    result = await hass.config_entries.options.async_init(graph_entry.entry_id)
    assert suggested(result) == {CONF_APPLICATION_INSTANCE_ID: INSTANCE_ID, CONF_HANG_UP: False}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_HANG_UP: True}
    )
    assert graph_entry.options == {CONF_HANG_UP: True}


async def test_yeastar_options_are_the_dial_permission(hass: HomeAssistant) -> None:
    """A PBX's options: the extension whose permission external calls use, and whether any
    certificate is accepted (see test_certificate_pinning.py)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Yeastar S100",
        unique_id="369364835218",
        data={
            CONF_BACKEND: YeastarBackend.kind,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: 8088,
            CONF_USERNAME: "api",
            CONF_PASSWORD: "x",
        },
    )
    entry.add_to_hass(hass)

    assert YeastarBackend.options_schema is not None
    assert [str(key) for key in YeastarBackend.options_schema.schema] == [
        "dial_permission",
        "accept_any_certificate",
    ]
    assert config_flow.VoicePromptConfigFlow.async_supports_options_flow(entry)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["description_placeholders"] == {"name": "Yeastar S100"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"dial_permission": " 1000 "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {"dial_permission": "1000"}
