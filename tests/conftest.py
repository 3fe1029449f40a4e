"""Shared fixtures: a fake Yeastar PBX over HTTPS on 127.0.0.1 and config entries for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
import contextlib
import dataclasses
import json
import os
from pathlib import Path
import re
import ssl
from typing import Any
from unittest.mock import patch

import aiohttp
from aiohttp.resolver import AsyncResolver
from aiohttp.test_utils import TestClient
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.backends.certificate import CONF_CERTIFICATE_SHA256
from custom_components.voice_prompt.backends.yeastar import YeastarBackend
from custom_components.voice_prompt.const import CONF_BACKEND, DOMAIN, SERVICE_PLAY_PROMPT
from homeassistant.components.repairs import RepairsFlowManager
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntry, OptionsFlowManager
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant, ServiceRegistry
from homeassistant.data_entry_flow import FlowManager, FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.setup import async_setup_component
from tests.fakes.tls import make_self_signed_cert, server_ssl_context
from tests.fakes.yeastar import FakeYeastarPBX

STRINGS: dict[str, Any] = json.loads(
    (
        Path(__file__).parent.parent / "custom_components" / DOMAIN / "translations" / "en.json"
    ).read_text(encoding="utf-8")
)
# Translation keys the tests saw in use (checked against en.json at the end of a full run).
TRANSLATIONS_USED: set[str] = set()

PASSWORD = "VoicePrompt-Demo1"
SERIAL = "369364835218"


@pytest.fixture(autouse=True, scope="session")
def no_coverage_in_subprocesses() -> None:
    """Keep pytest-cov out of the programs tests start (pip, scripts/release).

    They run elsewhere with another configuration (no branch data), and coverage then
    refuses to combine their data with ours. The integration never runs in them.
    """
    for name in [name for name in os.environ if name.startswith("COV_CORE_")]:
        del os.environ[name]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/voice_prompt."""


@pytest.fixture(autouse=True)
async def own_dns_resolver() -> AsyncGenerator[None]:
    """Give each test a DNS resolver made on its own event loop.

    The test plugin makes one for the whole session on the session's loop; aiodns 4
    (Home Assistant 2026.10+) then never answers lookups from a test's loop.
    """
    resolver = AsyncResolver()
    resolver.real_close = resolver.close  # type: ignore[attr-defined]  # Home Assistant closes it so
    with patch("homeassistant.helpers.aiohttp_client._async_make_resolver", return_value=resolver):
        yield
    await resolver.close()


def _translation(key: str) -> str | None:
    """The text at a dotted key of en.json, or None."""
    node: Any = STRINGS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, str) else None


def _check_translation(
    problems: list[str], key: str, placeholders: Mapping[str, Any] | None, *, required: bool = True
) -> None:
    """The key exists (when required) and every placeholder in its text gets a value."""
    TRANSLATIONS_USED.add(key)
    text = _translation(key)
    if text is None:
        if required:
            problems.append(f"en.json has no {key}")
        return
    missing = set(re.findall(r"{(\w+)}", text)) - set(placeholders or {})
    if missing:
        problems.append(f"{key} uses {sorted(missing)}, which the code does not give")


def _check_flow_result(problems: list[str], category: str, result: Any) -> None:
    placeholders = result.get("description_placeholders")
    kind = result["type"]
    if kind in (FlowResultType.FORM, FlowResultType.MENU):
        for header in ("title", "description"):
            _check_translation(
                problems,
                f"{category}.step.{result['step_id']}.{header}",
                placeholders,
                required=False,
            )
    if kind is FlowResultType.FORM:
        for error in (result.get("errors") or {}).values():
            _check_translation(problems, f"{category}.error.{error}", placeholders)
    elif kind is FlowResultType.MENU:
        for option in result["menu_options"]:
            _check_translation(
                problems, f"{category}.step.{result['step_id']}.menu_options.{option}", None
            )
    elif kind is FlowResultType.ABORT:
        _check_translation(problems, f"{category}.abort.{result['reason']}", placeholders)


@pytest.fixture(autouse=True)
def check_translations() -> Iterator[None]:
    """Every text the integration shows exists in en.json and gets all its placeholders.

    Modelled on Home Assistant core's fixture of the same name: it watches flow results,
    repair issues, setup errors and errors raised by actions while each test runs.
    """
    problems: list[str] = []
    handle_step = FlowManager._async_handle_step
    create_issue = ir.IssueRegistry.async_get_or_create
    call_service = ServiceRegistry.async_call
    setup_entry = ConfigEntry.async_setup

    async def _handle_step(self: FlowManager, flow: Any, *args: Any) -> Any:
        result = await handle_step(self, flow, *args)
        if isinstance(self, RepairsFlowManager):
            if flow.handler == DOMAIN:
                issue = ir.async_get(flow.hass).async_get_issue(DOMAIN, flow.issue_id)
                key = issue.translation_key if issue is not None else flow.issue_id
                _check_flow_result(problems, f"issues.{key}.fix_flow", result)
        elif isinstance(self, OptionsFlowManager):
            entry = flow.hass.config_entries.async_get_entry(flow.handler)
            if entry is not None and entry.domain == DOMAIN:
                _check_flow_result(problems, "options", result)
        elif flow.handler == DOMAIN:
            _check_flow_result(problems, "config", result)
        elif isinstance(flow.handler, tuple):  # a subentry flow: (entry id, subentry type)
            entry = flow.hass.config_entries.async_get_entry(flow.handler[0])
            if entry is not None and entry.domain == DOMAIN:
                _check_flow_result(problems, f"config_subentries.{flow.handler[1]}", result)
        return result

    def _create_issue(self: ir.IssueRegistry, domain: str, issue_id: str, **kwargs: Any) -> Any:
        issue = create_issue(self, domain, issue_id, **kwargs)
        if domain == DOMAIN:
            # A fixable issue has no description: its fix flow's steps explain it.
            for part in ("title",) if kwargs.get("is_fixable") else ("title", "description"):
                _check_translation(
                    problems,
                    f"issues.{kwargs['translation_key']}.{part}",
                    kwargs.get("translation_placeholders"),
                )
        return issue

    async def _call_service(self: ServiceRegistry, domain: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await call_service(self, domain, *args, **kwargs)
        except HomeAssistantError as err:
            if err.translation_domain == DOMAIN and err.translation_key:
                _check_translation(
                    problems,
                    f"exceptions.{err.translation_key}.message",
                    err.translation_placeholders,
                )
            raise

    async def _setup_entry(self: ConfigEntry, hass: HomeAssistant, **kwargs: Any) -> None:
        await setup_entry(self, hass, **kwargs)
        if self.domain == DOMAIN and self.error_reason_translation_key:
            _check_translation(
                problems,
                f"exceptions.{self.error_reason_translation_key}.message",
                self.error_reason_translation_placeholders,
            )

    with (
        patch.object(FlowManager, "_async_handle_step", _handle_step),
        patch.object(ir.IssueRegistry, "async_get_or_create", _create_issue),
        patch.object(ServiceRegistry, "async_call", _call_service),
        patch.object(ConfigEntry, "async_setup", _setup_entry),
    ):
        yield
    if problems:
        pytest.fail("; ".join(dict.fromkeys(problems)))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate for the whole run."""
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server_ssl(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """Server-side TLS context of the fake PBX."""
    return server_ssl_context(*tls_files)


@pytest.fixture
async def pbx(server_ssl: ssl.SSLContext, socket_enabled: None) -> AsyncGenerator[FakeYeastarPBX]:
    """A running fake Yeastar PBX on https://127.0.0.1:<free port>.

    ``socket_enabled`` lifts the test plugin's socket ban; its 127.0.0.1-only rule stays.
    """
    fake = FakeYeastarPBX(password=PASSWORD, serial=SERIAL)
    await fake.start(ssl_context=server_ssl)
    yield fake
    await fake.close()


@pytest.fixture
async def session() -> AsyncGenerator[aiohttp.ClientSession]:
    """A plain aiohttp session for testing the API client on its own."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def entry_data(pbx: FakeYeastarPBX) -> dict[str, Any]:
    """Entry data for the fake PBX with API credentials."""
    return {
        CONF_BACKEND: YeastarBackend.kind,
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: False,
        # Confirmed at setup: the fake's certificate is the one pinned.
        CONF_CERTIFICATE_SHA256: pbx.certificate_sha256,
    }


@pytest.fixture
def config_entry(hass: HomeAssistant, entry_data: dict[str, Any]) -> MockConfigEntry:
    """A Yeastar entry for the fake PBX, added to hass but not set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Yeastar S100 ({entry_data[CONF_HOST]})",
        unique_id=SERIAL,
        data=entry_data,
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def loaded_entry(hass: HomeAssistant, config_entry: MockConfigEntry) -> MockConfigEntry:
    """The entry, set up against the fake PBX."""
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry


@pytest.fixture
def own_config_dir(hass: HomeAssistant, tmp_path: Path) -> None:
    """Give hass a config folder of its own.

    The test plugin's default is a folder inside the installed package, shared by every run;
    blueprints, custom sentences and default blueprints must not land there.
    """
    hass.config.config_dir = str(tmp_path / "config")
    Path(hass.config.config_dir).mkdir()


async def play_prompt(
    hass: HomeAssistant,
    entry: MockConfigEntry | str,
    *,
    return_response: bool = True,
    **data: Any,
) -> Any:
    """Call ``voice_prompt.play_prompt`` for an entry (or a bare entry id) and wait."""
    entry_id = entry if isinstance(entry, str) else entry.entry_id
    return await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": entry_id, **data},
        blocking=True,
        return_response=return_response,
    )


async def serve_home_assistant(
    hass: HomeAssistant, hass_client_no_auth: Callable[[], Awaitable[TestClient]]
) -> TestClient:
    """Home Assistant's HTTP app on 127.0.0.1:<free port>, the instance's internal URL.

    A fake on 127.0.0.1 reaches it there as a PBX on the local network would.
    """
    assert await async_setup_component(hass, "http", {})
    # As Home Assistant's own server does: views registered later must still be served.
    hass.http.app._router.freeze = lambda: None  # type: ignore[method-assign]
    client = await hass_client_no_auth()
    await hass.config.async_update(internal_url=str(client.make_url("")).rstrip("/"))
    return client


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry | None = None) -> list[Any]:
    """Reauth flows in progress for this integration (for one entry, when given)."""
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["handler"] == DOMAIN
        and flow["context"].get("source") == SOURCE_REAUTH
        and (entry is None or flow["context"].get("entry_id") == entry.entry_id)
    ]


@contextlib.contextmanager
def tls_resets_tolerated() -> Iterator[None]:
    """Let the fake's server side of a refused TLS handshake pass.

    When a client refuses the self-signed certificate it drops the connection in the
    handshake; asyncio reports that on the fake's (server) side through the loop's
    exception handler, which the ``hass`` fixture turns into a test failure. Only that
    report is dropped.
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def _handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(
            "Error on transport creation for incoming connection"
        ) and isinstance(context.get("exception"), (ConnectionError, ssl.SSLError)):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(_handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


@pytest.fixture
async def tolerate_tls_resets(hass: HomeAssistant) -> AsyncGenerator[None]:
    """``tls_resets_tolerated`` for a test, installed after ``hass`` set its own handler.

    Request it before ``pbx`` so that it is removed only after the fake has closed.
    """
    with tls_resets_tolerated():
        yield


def entry_device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    """The one device of an entry (by entry, not identifiers: those are per entry since 2026)."""
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return device


def webhook_registration(hass: HomeAssistant, webhook_id: str) -> dict[str, Any]:
    """A webhook's registration as a dict (a frozen dataclass since 2026, a dict before)."""
    hook = hass.data["webhook"][webhook_id]
    if isinstance(hook, dict):
        return dict(hook)
    return {field.name: getattr(hook, field.name) for field in dataclasses.fields(hook)}


def _section(dotted: str) -> dict[str, Any]:
    node: Any = STRINGS
    for part in dotted.split("."):
        node = node.get(part, {})
    return dict(node)


def _shown_keys() -> set[str]:
    """The keys of en.json the integration shows: messages, form errors, aborts, issues."""
    keys = {f"exceptions.{key}.message" for key in STRINGS["exceptions"]}
    categories = ["config", "options"] + [
        f"config_subentries.{kind}" for kind in STRINGS.get("config_subentries", {})
    ]
    for category in categories:
        for section in ("error", "abort"):
            keys |= {f"{category}.{section}.{key}" for key in _section(category).get(section, {})}
        for step, texts in _section(category).get("step", {}).items():
            keys |= {
                f"{category}.step.{step}.{key}" for key in ("title", "description") if key in texts
            }
    for issue, texts in STRINGS.get("issues", {}).items():
        keys |= {f"issues.{issue}.{key}" for key in ("title", "description") if key in texts}
        flow = f"issues.{issue}.fix_flow"
        keys |= {f"{flow}.abort.{key}" for key in _section(flow).get("abort", {})}
        for step, step_texts in _section(flow).get("step", {}).items():
            keys |= {
                f"{flow}.step.{step}.{key}" for key in ("title", "description") if key in step_texts
            }
    return keys


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a run of the whole suite, every shown string of en.json was used by a test."""
    config = session.config
    whole_suite = not config.args or config.args == list(config.getini("testpaths"))
    if (
        exitstatus != 0
        or not whole_suite
        or config.getoption("keyword")
        or config.getoption("markexpr")
    ):
        return
    unused = sorted(_shown_keys() - TRANSLATIONS_USED)
    if unused:
        session.config.get_terminal_writer().line(
            f"en.json has strings no test showed (remove them, or test them): {unused}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
