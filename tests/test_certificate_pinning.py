"""Self-signed PBX certificates: pinned on first use, a changed one refused before any login.

Every test talks to the real fake PBXs over TLS on 127.0.0.1. A swapped certificate is
the fake restarting its listener with another one (``use_certificate``), as a PBX does
after renewing it, or as a machine in the middle would present its own; what the fake
received shows that no login, token or request reached it after the swap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from datetime import timedelta
import json
from pathlib import Path
import re
import socket
import ssl
from typing import Any
from unittest.mock import patch

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from freezegun.api import FrozenDateTimeFactory
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.voice_prompt.api import (
    VoicePromptCertificateChangedError,
    VoicePromptConnectionError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    YeastarClient,
    YeastarPClient,
)
from custom_components.voice_prompt.api.tls import (
    CertificateCheck,
    CertificateMode,
    PeerCertificate,
    format_fingerprint,
    normalize_fingerprint,
    read_certificate,
)
from custom_components.voice_prompt.backends import BACKENDS
from custom_components.voice_prompt.backends.certificate import (
    CONF_ACCEPT_ANY_CERTIFICATE,
    CONF_CERTIFICATE_SHA256,
)
from custom_components.voice_prompt.backends.yeastar import KEEPALIVE_INTERVAL
from custom_components.voice_prompt.const import DOMAIN
from homeassistant.components import hassio  # noqa: F401 - see test_diagnostics.py
from homeassistant.components.repairs import issue_handler, repairs_flow_manager
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_CLIENT_ID,
    CONF_CLIENT_SECRET,
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_TOKEN,
    CONF_URL,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from tests.asterisk_fixtures import asterisk_data
from tests.conftest import PASSWORD, SERIAL, play_prompt
from tests.fakes.ari import (
    DEFAULT_PASSWORD as ARI_PASSWORD,
    DEFAULT_USERNAME as ARI_USERNAME,
    FakeAsterisk,
    FakePhone,
)
from tests.fakes.tls import certificate_sha256, make_self_signed_cert, server_ssl_context
from tests.fakes.yeastar import FakeYeastarPBX
from tests.fakes.yeastar_p import FakeYeastarP
from tests.flow_helpers import (
    CERTIFICATE_STEP,
    CONFIG_STRINGS,
    TRANSLATIONS,
    assert_abort,
    assert_form,
    form_shape,
    start_flow,
    submit,
)
from tests.tts_fixtures import CountingTTS, tts_engine  # noqa: F401 - fixture
from tests.yeastar_p_fixtures import (  # noqa: F401 - fixtures
    P_CLIENT_ID,
    P_CLIENT_SECRET,
    add_p_entry,
    fake_p,
    p_entry,
    p_entry_data,
    p_loaded,
)

HOST = "127.0.0.1"
FINGERPRINT = re.compile(r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}")
RENEWED_NAME = "pbx-renewed.example"


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate a fake can present, and its SHA-256 worked out from the file."""

    context: ssl.SSLContext
    sha256: str
    path: Path


@pytest.fixture
def renewed(tmp_path: Path) -> Certificate:
    """Another self-signed certificate for 127.0.0.1, as after the PBX renewed its own."""
    cert, key = make_self_signed_cert(tmp_path / "renewed", common_name=RENEWED_NAME)
    return Certificate(server_ssl_context(cert, key), certificate_sha256(cert), cert)


@pytest.fixture
def session_sha256(tls_files: tuple[Path, Path]) -> str:
    """The SHA-256 of the session certificate the fakes present, from its file."""
    return certificate_sha256(tls_files[0])


@pytest.fixture
def closed_port(socket_enabled: None) -> Generator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
async def repairs(hass: HomeAssistant) -> None:
    """Home Assistant's repairs, with this integration's fix flows known to it."""
    assert await async_setup_component(hass, "repairs", {})
    # Up to 2025: the platforms are loaded beforehand (later they load when a flow needs them).
    process = getattr(issue_handler, "async_process_repairs_platforms", None)
    if process is not None:
        await process(hass)


class _Resolver(AbstractResolver):
    """DNS of the tests: each name resolves to the addresses given, in order."""

    def __init__(self, names: dict[str, list[tuple[str, int]]]) -> None:
        self._names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self._names:
            raise OSError(socket.EAI_NONAME, f"{host} is not known to the test")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=address_port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address, address_port in self._names[host]
        ]

    async def close(self) -> None:
        """Nothing to release."""


def _issue(hass: HomeAssistant, kind: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


def _s_input(pbx: FakeYeastarPBX, **changes: Any) -> dict[str, Any]:
    return {
        CONF_HOST: pbx.host,
        CONF_PORT: pbx.port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: False,
    } | changes


def _p_input(fake: FakeYeastarP, **changes: Any) -> dict[str, Any]:
    return {
        CONF_HOST: fake.host,
        CONF_PORT: fake.port,
        CONF_CLIENT_ID: P_CLIENT_ID,
        CONF_CLIENT_SECRET: P_CLIENT_SECRET,
        CONF_VERIFY_SSL: False,
    } | changes


def assert_repair_abort(result: FlowResult, reason: str) -> None:
    """The certificate repair ended without a change, for a translated reason."""
    assert result["type"] is FlowResultType.ABORT, result
    assert result["reason"] == reason
    assert reason in TRANSLATIONS["issues"]["certificate_changed"]["fix_flow"]["abort"]


def _rendered(text: str, placeholders: dict[str, str]) -> str:
    """A translated text as the frontend shows it, placeholders filled in."""
    return re.sub(r"{(\w+)}", lambda match: placeholders[match[1]], text)


def _assert_certificate_step(
    result: FlowResult, port: int, sha256: str, subject: str = f"CN={HOST}"
) -> None:
    """The confirmation step: the fingerprint, subject, issuer, expiry and address."""
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == CERTIFICATE_STEP
    assert dict(result["data_schema"].schema) == {}  # nothing to type: submit or close
    placeholders = result["description_placeholders"] or {}
    assert placeholders["fingerprint"] == format_fingerprint(sha256)
    assert FINGERPRINT.fullmatch(placeholders["fingerprint"])
    assert placeholders["subject"] == subject
    assert placeholders["issuer"] == "the certificate itself (self-signed)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", placeholders["expiry"])
    assert placeholders["host"] == f"{HOST}:{port}"
    text = _rendered(CONFIG_STRINGS["step"][CERTIFICATE_STEP]["description"], placeholders)
    assert format_fingerprint(sha256) in text
    assert "{" not in text


async def _fix(hass: HomeAssistant, issue_id: str) -> FlowResult:
    """Open an issue's fix flow, as the frontend's Repairs page does."""
    manager = repairs_flow_manager(hass)
    assert manager is not None
    return await manager.async_init(DOMAIN, data={"issue_id": issue_id})


async def _fix_submit(hass: HomeAssistant, flow_id: str) -> FlowResult:
    manager = repairs_flow_manager(hass)
    assert manager is not None
    return await manager.async_configure(flow_id, {})


async def _reload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


# ----------------------------------------------------------------------- the API


async def test_read_certificate_sends_nothing_but_the_handshake(
    pbx: FakeYeastarPBX, tls_files: tuple[Path, Path], session_sha256: str
) -> None:
    certificate = await read_certificate(HOST, pbx.port)

    assert certificate.sha256 == session_sha256 == pbx.certificate_sha256
    assert FINGERPRINT.fullmatch(certificate.fingerprint)
    assert certificate.fingerprint.replace(":", "").lower() == session_sha256
    assert (certificate.subject, certificate.issuer) == (f"CN={HOST}", f"CN={HOST}")
    assert certificate.self_signed
    parsed = x509.load_pem_x509_certificate(tls_files[0].read_bytes())
    assert certificate.not_valid_after == parsed.not_valid_after_utc
    assert pbx.requests == []


async def test_read_certificate_tries_each_address(pbx: FakeYeastarPBX, closed_port: int) -> None:
    """The first address refuses, the second is the PBX (like a name with two addresses)."""
    resolver = _Resolver({"pbx.test": [(HOST, closed_port), (HOST, pbx.port)]})

    certificate = await read_certificate("pbx.test", pbx.port, resolver=resolver)

    assert certificate.sha256 == pbx.certificate_sha256


@pytest.fixture
async def plain_http_port(socket_enabled: None) -> AsyncGenerator[int]:
    """A server that answers in plain HTTP whatever it is sent (no TLS)."""
    writers: list[asyncio.StreamWriter] = []

    def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writers.append(writer)  # kept open: the client sees the bytes, not a reset

    server = await asyncio.start_server(answer, HOST, 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def silent_port(socket_enabled: None) -> AsyncGenerator[int]:
    """A server that accepts connections and never answers."""
    writers: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _, writer: writers.append(writer), HOST, 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_read_certificate_failures(
    closed_port: int, plain_http_port: int, silent_port: int
) -> None:
    with pytest.raises(VoicePromptConnectionError) as refused:
        await read_certificate(HOST, closed_port)
    assert refused.value.message == f"Cannot connect to {HOST} (connection refused)"
    assert type(refused.value) is VoicePromptConnectionError

    with pytest.raises(VoicePromptSSLError) as not_tls:
        await read_certificate(HOST, plain_http_port)
    assert not_tls.value.message.startswith(f"{HOST} did not complete a TLS handshake (")

    with pytest.raises(VoicePromptTimeoutError) as silent:
        await read_certificate(HOST, silent_port, seconds=0.2)
    assert silent.value.message == f"{HOST} did not answer within 0.2 seconds"

    with pytest.raises(VoicePromptConnectionError) as unknown:
        await read_certificate("nowhere.test", 443, resolver=_Resolver({}))
    assert unknown.value.message == "Cannot connect to nowhere.test (host name not found)"

    with pytest.raises(VoicePromptConnectionError) as empty:
        await read_certificate("empty.test", 443, resolver=_Resolver({"empty.test": []}))
    assert empty.value.message == "Cannot connect to empty.test (no address for empty.test)"


def test_certificate_check_modes() -> None:
    pin = "ab" * 32
    assert CertificateCheck(verify=True).ssl is True
    assert CertificateCheck(verify=True).mode is CertificateMode.SYSTEM_CA
    assert CertificateCheck(verify=False).ssl is False
    assert CertificateCheck(verify=False).mode is CertificateMode.NONE
    pinned = CertificateCheck(verify=False, sha256=pin.upper())
    assert isinstance(pinned.ssl, aiohttp.Fingerprint)
    assert pinned.ssl.fingerprint == bytes.fromhex(pin)
    assert pinned.ssl is pinned.ssl  # one object: pooled connections stay usable
    assert pinned.mode is CertificateMode.PINNED
    assert pinned.diagnostics() == {"certificate_mode": "pinned", "certificate_sha256": pin}
    # A pin wins over verification with the CAs.
    assert CertificateCheck(verify=True, sha256=pin).mode is CertificateMode.PINNED
    with pytest.raises(ValueError, match="64 hex digits"):
        CertificateCheck(verify=False, sha256="ab" * 31)
    with pytest.raises(ValueError, match="64 hex digits"):
        normalize_fingerprint("zz" * 32)
    assert normalize_fingerprint(format_fingerprint(pin)) == pin
    assert format_fingerprint("0a1b") == "0A:1B"


def test_an_unreadable_certificate_keeps_its_fingerprint() -> None:
    certificate = PeerCertificate.from_der(b"not a certificate")
    assert len(certificate.sha256) == 64
    assert (certificate.subject, certificate.issuer, certificate.not_valid_after) == ("", "", None)


async def test_pinned_s_client_refuses_a_changed_certificate_before_the_login(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, renewed: Certificate
) -> None:
    """Username and password: the login never leaves once the certificate changed."""
    client = YeastarClient(
        session,
        HOST,
        port=pbx.port,
        username="api",
        password=PASSWORD,
        verify_ssl=False,
        certificate_sha256=pbx.certificate_sha256,
    )
    await client.device_info()
    assert pbx.logins == 1
    pinned = pbx.certificate_sha256
    await pbx.use_certificate(renewed.context)
    assert pbx.certificate_sha256 == renewed.sha256
    pbx.expire_tokens()  # the next request must log in again
    sent = len(pbx.requests)

    with pytest.raises(VoicePromptCertificateChangedError) as changed:
        await client.device_info()

    err = changed.value
    assert (err.expected, err.received) == (pinned, renewed.sha256)
    assert isinstance(err, VoicePromptSSLError)
    assert format_fingerprint(renewed.sha256) in err.message
    assert len(pbx.requests) == sent  # not even the login
    assert client.diagnostics()["certificate_mode"] == "pinned"
    copy = err.copy()
    assert (copy.expected, copy.received, copy.message) == (err.expected, err.received, err.message)
    await client.async_close()


async def test_pinned_token_and_p_clients_send_nothing_to_another_certificate(
    session: aiohttp.ClientSession,
    pbx: FakeYeastarPBX,
    fake_p: FakeYeastarP,  # noqa: F811 - the fixture imported above
    renewed: Certificate,
    session_sha256: str,
) -> None:
    """The S-Series token would travel in the URL; the P-Series secret in the body."""
    token_client = YeastarClient(
        session, HOST, port=pbx.port, token="f" * 32, certificate_sha256=session_sha256
    )
    p_client = YeastarPClient(
        session,
        HOST,
        port=fake_p.port,
        client_id=P_CLIENT_ID,
        client_secret=P_CLIENT_SECRET,
        verify_ssl=False,
        certificate_sha256=session_sha256,
    )
    await pbx.use_certificate(renewed.context)
    await fake_p.use_certificate(renewed.context)

    with pytest.raises(VoicePromptCertificateChangedError):
        await token_client.device_info()
    with pytest.raises(VoicePromptCertificateChangedError):
        await p_client.system_information()

    assert pbx.requests == []
    assert fake_p.requests == []
    assert p_client.diagnostics()["certificate_sha256"] == session_sha256


# ------------------------------------------------------------------ the config flow


async def test_yeastar_shows_the_certificate_before_the_login(
    hass: HomeAssistant, pbx: FakeYeastarPBX, session_sha256: str, snapshot: SnapshotAssertion
) -> None:
    result = await start_flow(hass, "yeastar")
    result = await submit(hass, result["flow_id"], _s_input(pbx), confirm_certificate=False)

    _assert_certificate_step(result, pbx.port, session_sha256)
    placeholders = result["description_placeholders"] or {}
    assert (
        form_shape(
            result,  # type: ignore[arg-type]
            {
                pbx.port: "<port>",
                placeholders["fingerprint"]: "<fingerprint>",
                placeholders["expiry"]: "<expiry>",
            },
        )
        == snapshot
    )
    assert pbx.requests == []  # nothing but the handshake: no login yet

    result = await submit(hass, result["flow_id"], {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CERTIFICATE_SHA256] == session_sha256
    assert result["data"][CONF_VERIFY_SSL] is False
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert pbx.logins == 2  # the check, then the entry's setup: both to the pinned certificate
    assert entry.runtime_data.client.certificate.sha256 == session_sha256
    assert _issue(hass, "certificate_pinned", entry) is None  # confirmed: no notice


async def test_yeastar_token_and_p_show_the_certificate_before_anything_is_sent(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    fake_p: FakeYeastarP,  # noqa: F811 - the fixture imported above
    session: aiohttp.ClientSession,
    session_sha256: str,
) -> None:
    async with session.post(
        pbx.base_url + "login",
        json={"username": "api", "password": FakeYeastarPBX.md5(PASSWORD), "port": "8260"},
        ssl=False,
    ) as response:
        token = (await response.json(content_type=None))["token"]
    sent = len(pbx.requests)

    result = await start_flow(hass, "yeastar_token")
    token_input = {CONF_HOST: HOST, CONF_PORT: pbx.port, CONF_TOKEN: token, CONF_VERIFY_SSL: False}
    result = await submit(hass, result["flow_id"], token_input, confirm_certificate=False)
    _assert_certificate_step(result, pbx.port, session_sha256)
    assert len(pbx.requests) == sent  # the token has not travelled
    result = await submit(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CERTIFICATE_SHA256] == session_sha256

    result = await start_flow(hass, "yeastar_p")
    result = await submit(hass, result["flow_id"], _p_input(fake_p), confirm_certificate=False)
    _assert_certificate_step(result, fake_p.port, session_sha256)
    assert fake_p.requests == []  # the Client Secret has not travelled
    result = await submit(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CERTIFICATE_SHA256] == session_sha256
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_certificate_changed_after_the_confirmation_sends_no_login(
    hass: HomeAssistant, pbx: FakeYeastarPBX, renewed: Certificate, session_sha256: str
) -> None:
    """Confirmed one certificate, another at the login: refused, back to the form."""
    result = await start_flow(hass, "yeastar")
    flow_id = result["flow_id"]
    result = await submit(hass, flow_id, _s_input(pbx), confirm_certificate=False)
    _assert_certificate_step(result, pbx.port, session_sha256)
    await pbx.use_certificate(renewed.context)

    result = await submit(hass, flow_id, {})

    assert_form(
        result, "yeastar", {"base": "certificate_changed"}, tried=f"the PBX at {HOST}:{pbx.port}"
    )
    assert pbx.requests == []
    # Submitted again, the form shows the certificate the PBX presents now.
    result = await submit(hass, flow_id, _s_input(pbx), confirm_certificate=False)
    _assert_certificate_step(result, pbx.port, renewed.sha256, f"CN={RENEWED_NAME}")
    result = await submit(hass, flow_id, {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CERTIFICATE_SHA256] == renewed.sha256


async def test_verified_certificates_are_not_pinned(
    hass: HomeAssistant, tolerate_tls_resets: None, pbx: FakeYeastarPBX
) -> None:
    """Verification on: no certificate step, the system's CAs decide (and refuse this one)."""
    result = await start_flow(hass, "yeastar")
    result = await submit(
        hass, result["flow_id"], _s_input(pbx, verify_ssl=True), confirm_certificate=False
    )
    assert_form(result, "yeastar", {"base": "ssl_error"}, tried=f"the PBX at {HOST}:{pbx.port}")
    assert pbx.requests == []


async def test_reconfigure_confirms_a_new_address_or_certificate_only(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    renewed: Certificate,
    socket_enabled: None,
) -> None:
    address = {CONF_HOST: HOST, CONF_PORT: pbx.port, CONF_VERIFY_SSL: False}
    # The same address and certificate: nothing new to confirm.
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await submit(hass, result["flow_id"], address, confirm_certificate=False)
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()
    assert loaded_entry.data[CONF_CERTIFICATE_SHA256] == pbx.certificate_sha256

    # Another PBX address (the same PBX moved, with its renewed certificate): shown first.
    moved = FakeYeastarPBX(password=PASSWORD, serial=SERIAL)
    await moved.start(ssl_context=renewed.context)
    try:
        result = await loaded_entry.start_reconfigure_flow(hass)
        result = await submit(
            hass, result["flow_id"], address | {CONF_PORT: moved.port}, confirm_certificate=False
        )
        _assert_certificate_step(result, moved.port, renewed.sha256, f"CN={RENEWED_NAME}")
        assert moved.requests == []
        result = await submit(hass, result["flow_id"], {})
        assert_abort(result, "reconfigure_successful")
        await hass.async_block_till_done()
        assert loaded_entry.data[CONF_CERTIFICATE_SHA256] == renewed.sha256
        assert loaded_entry.data[CONF_PORT] == moved.port
        assert loaded_entry.state is ConfigEntryState.LOADED
    finally:
        await moved.close()


async def test_reconfigure_confirms_a_changed_certificate_at_the_same_address(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry, renewed: Certificate
) -> None:
    await pbx.use_certificate(renewed.context)
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await submit(
        hass,
        result["flow_id"],
        {CONF_HOST: HOST, CONF_PORT: pbx.port, CONF_VERIFY_SSL: False},
        confirm_certificate=False,
    )
    _assert_certificate_step(result, pbx.port, renewed.sha256, f"CN={RENEWED_NAME}")
    result = await submit(hass, result["flow_id"], {})
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()
    assert loaded_entry.data[CONF_CERTIFICATE_SHA256] == renewed.sha256
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_reauth_keeps_the_pin_and_confirms_a_missing_one(
    hass: HomeAssistant, pbx: FakeYeastarPBX, config_entry: MockConfigEntry, session_sha256: str
) -> None:
    credentials = {CONF_USERNAME: "api", CONF_PASSWORD: PASSWORD}
    result = await config_entry.start_reauth_flow(hass)
    result = await submit(hass, result["flow_id"], credentials, confirm_certificate=False)
    assert_abort(result, "reauth_successful")  # its own pin: nothing to confirm
    await hass.async_block_till_done()
    assert config_entry.data[CONF_CERTIFICATE_SHA256] == session_sha256

    # An entry from before pinning, asked for new credentials: the certificate comes first.
    await hass.config_entries.async_unload(config_entry.entry_id)
    data = {k: v for k, v in config_entry.data.items() if k != CONF_CERTIFICATE_SHA256}
    hass.config_entries.async_update_entry(config_entry, data=data)
    logins = pbx.logins
    result = await config_entry.start_reauth_flow(hass)
    result = await submit(hass, result["flow_id"], credentials, confirm_certificate=False)
    _assert_certificate_step(result, pbx.port, session_sha256)
    assert pbx.logins == logins
    result = await submit(hass, result["flow_id"], {})
    assert_abort(result, "reauth_successful")
    assert config_entry.data[CONF_CERTIFICATE_SHA256] == session_sha256


# ------------------------------------------------------------------------- at run time


async def test_the_same_certificate_works_across_reloads(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    for _ in range(2):
        await _reload(hass, loaded_entry)
        assert loaded_entry.state is ConfigEntryState.LOADED
    await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert len(pbx.calls("extension/playprompt")) == 1
    assert pbx.successful_logins == 3  # the first setup and each reload
    assert ir.async_get(hass).issues == {}


async def test_changed_certificate_is_refused_then_accepted_in_the_repair(
    hass: HomeAssistant,
    repairs: None,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    renewed: Certificate,
) -> None:
    """S-Series with username and password: the action, the setup, the repair."""
    pinned = pbx.certificate_sha256
    assert pinned is not None
    await pbx.use_certificate(renewed.context)
    sent = len(pbx.requests)

    with pytest.raises(HomeAssistantError) as refused:
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")

    assert refused.value.translation_key == "certificate_changed"
    placeholders = refused.value.translation_placeholders or {}
    assert placeholders["entry"] == loaded_entry.title
    assert format_fingerprint(renewed.sha256) in placeholders["detail"]
    assert len(pbx.requests) == sent  # no request, no token, no login
    issue = _issue(hass, "certificate_changed", loaded_entry)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "entry": loaded_entry.title,
        "host": f"{HOST}:{pbx.port}",
        "pinned": format_fingerprint(pinned),
        "presented": format_fingerprint(renewed.sha256),
    }

    # A reload does not log in either: setup is retried, the repair stays.
    await _reload(hass, loaded_entry)
    assert loaded_entry.state is ConfigEntryState.SETUP_RETRY
    assert len(pbx.requests) == sent
    assert loaded_entry.data[CONF_CERTIFICATE_SHA256] == pinned  # never re-pinned by itself

    result = await _fix(hass, issue.issue_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    shown = result["description_placeholders"] or {}
    assert shown["pinned"] == format_fingerprint(pinned)
    assert shown["fingerprint"] == format_fingerprint(renewed.sha256)
    assert shown["subject"] == f"CN={RENEWED_NAME}"
    fix_strings = TRANSLATIONS["issues"]["certificate_changed"]["fix_flow"]["step"]["confirm"]
    text = _rendered(fix_strings["description"], shown)
    assert format_fingerprint(pinned) in text
    assert format_fingerprint(renewed.sha256) in text
    assert len(pbx.requests) == sent  # reading the certificate sends nothing

    result = await _fix_submit(hass, result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert loaded_entry.data[CONF_CERTIFICATE_SHA256] == renewed.sha256
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert _issue(hass, "certificate_changed", loaded_entry) is None
    await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")


async def test_token_entry_sends_no_token_to_another_certificate(
    hass: HomeAssistant,
    repairs: None,
    pbx: FakeYeastarPBX,
    entry_data: dict[str, Any],
    session: aiohttp.ClientSession,
    renewed: Certificate,
    server_ssl: ssl.SSLContext,
) -> None:
    async with session.post(
        pbx.base_url + "login",
        json={"username": "api", "password": FakeYeastarPBX.md5(PASSWORD), "port": "8260"},
        ssl=False,
    ) as response:
        token = (await response.json(content_type=None))["token"]
    data = {k: v for k, v in entry_data.items() if k not in (CONF_USERNAME, CONF_PASSWORD)}
    entry = MockConfigEntry(domain=DOMAIN, title="Token PBX", data={**data, CONF_TOKEN: token})
    entry.add_to_hass(hass)
    await pbx.use_certificate(renewed.context)
    sent = len(pbx.requests)

    assert not await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert entry.error_reason_translation_key == "certificate_changed"
    assert len(pbx.requests) == sent
    assert token not in json.dumps([r.token for r in pbx.requests[sent:]])
    issue = _issue(hass, "certificate_changed", entry)
    assert issue is not None

    # Back to the pinned certificate (the machine in the middle went): the repair has
    # nothing to accept, and the entry works again by itself.
    await pbx.use_certificate(server_ssl)
    result = await _fix(hass, issue.issue_id)
    assert_repair_abort(result, "nothing_to_fix")
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert _issue(hass, "certificate_changed", entry) is None


async def test_a_refusal_through_the_pin_ends_the_repair(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    renewed: Certificate,
    server_ssl: ssl.SSLContext,
) -> None:
    """The PBX answering at all (here: refusing the password) shows the pin holds again."""
    await pbx.use_certificate(renewed.context)
    with pytest.raises(HomeAssistantError):
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert _issue(hass, "certificate_changed", loaded_entry) is not None

    # The pinned certificate is back, but the API password was changed meanwhile.
    await pbx.use_certificate(server_ssl)
    pbx.password = "changed-meanwhile"
    await _reload(hass, loaded_entry)

    assert loaded_entry.state is ConfigEntryState.SETUP_ERROR  # reauth, as for any refusal
    assert _issue(hass, "certificate_changed", loaded_entry) is None


async def test_keepalive_meets_the_changed_certificate(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    renewed: Certificate,
) -> None:
    """No action needed: the idle token's heartbeat finds the change and nothing is sent."""
    await pbx.use_certificate(renewed.context)
    sent = len(pbx.requests)
    for _ in range(2):  # a heartbeat goes out after 10 idle minutes
        freezer.tick(KEEPALIVE_INTERVAL + timedelta(seconds=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)

    assert len(pbx.requests) == sent
    assert _issue(hass, "certificate_changed", loaded_entry) is not None
    assert loaded_entry.runtime_data.diagnostics()["keepalive_ok"] is False


async def test_p_series_refuses_a_changed_certificate_and_accepts_it_in_the_repair(
    hass: HomeAssistant,
    repairs: None,
    own_config_dir: None,
    tts_engine: CountingTTS,  # noqa: F811 - the fixture imported above
    fake_p: FakeYeastarP,  # noqa: F811 - the fixture imported above
    p_loaded: MockConfigEntry,  # noqa: F811 - the fixture imported above
    renewed: Certificate,
) -> None:
    """A prompt and a spoken message (its upload): neither leaves for another certificate."""
    await fake_p.use_certificate(renewed.context)
    fake_p.requests.clear()

    with pytest.raises(HomeAssistantError) as played:
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert played.value.translation_key == "certificate_changed"
    ir.async_delete_issue(hass, DOMAIN, f"certificate_changed_{p_loaded.entry_id}")
    with pytest.raises(HomeAssistantError) as spoken:
        await play_prompt(hass, p_loaded, target="1000", message="Lunch is ready")
    assert spoken.value.translation_key == "certificate_changed"
    assert fake_p.requests == []  # no token renewal, no upload, no play
    issue = _issue(hass, "certificate_changed", p_loaded)
    assert issue is not None

    result = await _fix(hass, issue.issue_id)
    assert (result["description_placeholders"] or {})["fingerprint"] == format_fingerprint(
        renewed.sha256
    )
    result = await _fix_submit(hass, result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert p_loaded.data[CONF_CERTIFICATE_SHA256] == renewed.sha256
    assert p_loaded.state is ConfigEntryState.LOADED
    await play_prompt(hass, p_loaded, target="1000", prompt="doorbell")
    assert [r.path for r in fake_p.requests][-1] == "call/play_prompt"


async def test_repair_aborts_when_there_is_nothing_to_accept(
    hass: HomeAssistant,
    repairs: None,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    renewed: Certificate,
) -> None:
    await pbx.use_certificate(renewed.context)
    with pytest.raises(HomeAssistantError):
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    issue_id = f"certificate_changed_{loaded_entry.entry_id}"

    # The PBX is switched off: its certificate cannot be read.
    port = pbx.port
    await pbx.close()
    result = await _fix(hass, issue_id)
    assert_repair_abort(result, "cannot_connect")
    placeholders = result["description_placeholders"] or {}
    assert placeholders == {
        "entry": loaded_entry.title,
        "detail": f"Cannot connect to {HOST} (connection refused)",
    }
    assert port == loaded_entry.data[CONF_PORT]

    # Reconfigured to verification meanwhile: no pin left to replace.
    hass.config_entries.async_update_entry(
        loaded_entry, data={**loaded_entry.data, CONF_VERIFY_SSL: True}
    )
    assert_repair_abort(await _fix(hass, issue_id), "nothing_to_fix")

    # The entry is gone.
    await hass.config_entries.async_remove(loaded_entry.entry_id)
    assert_repair_abort(await _fix(hass, issue_id), "nothing_to_fix")


# ------------------------------------------------------------------ the three modes


async def test_no_verification_is_an_explicit_option(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    renewed: Certificate,
) -> None:
    """Pinned by default; "accept any certificate" in the options; back to the pin."""
    await pbx.use_certificate(renewed.context)
    with pytest.raises(HomeAssistantError):
        await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")
    assert _issue(hass, "certificate_changed", loaded_entry) is not None

    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert CONF_ACCEPT_ANY_CERTIFICATE in [str(key) for key in result["data_schema"].schema]
    options = TRANSLATIONS["options"]["step"]["init"]
    assert options["data_description"][CONF_ACCEPT_ANY_CERTIFICATE].startswith("Warning")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_ACCEPT_ANY_CERTIFICATE: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the mode changed: the entry reloaded

    assert loaded_entry.state is ConfigEntryState.LOADED
    assert _issue(hass, "certificate_changed", loaded_entry) is None
    await play_prompt(hass, loaded_entry, target="1000", prompt="doorbell")  # any certificate
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    assert diagnostics["client"]["certificate_mode"] == "none"
    assert diagnostics["client"]["certificate_sha256"] is None
    assert diagnostics["entry"]["options"] == {CONF_ACCEPT_ANY_CERTIFICATE: True}

    # Another option changed: no reload needed for that.
    setups = pbx.successful_logins
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, "dial_permission": "1001"}
    )
    await hass.async_block_till_done()
    assert pbx.successful_logins == setups

    # Off again: the pin confirmed at setup holds, so the renewed certificate is refused.
    hass.config_entries.async_update_entry(loaded_entry, options={})
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.SETUP_RETRY
    assert _issue(hass, "certificate_changed", loaded_entry) is not None


async def test_diagnostics_show_the_mode_and_the_fingerprint(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    pbx: FakeYeastarPBX,
    loaded_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)

    pin = pbx.certificate_sha256
    assert diagnostics["entry"]["data"][CONF_CERTIFICATE_SHA256] == pin
    assert diagnostics["client"]["certificate_sha256"] == pin
    shown = {
        "entry_data": {
            key: diagnostics["entry"]["data"][key]
            for key in (CONF_VERIFY_SSL, CONF_CERTIFICATE_SHA256)
        },
        "client": {
            key: diagnostics["client"][key]
            for key in ("verify_ssl", "certificate_mode", "certificate_sha256")
        },
    }
    # The session's certificate is made anew each run: its fingerprint is a stand-in here.
    assert json.loads(json.dumps(shown).replace(str(pin), "<sha256>")) == snapshot


# --------------------------------------------------------- entries from before pinning


def _without_pin(data: dict[str, Any]) -> dict[str, Any]:
    """Entry data as version 0.1.0 stored it: verification off, no pin."""
    return {key: value for key, value in data.items() if key != CONF_CERTIFICATE_SHA256}


async def test_an_entry_from_before_pinning_pins_at_its_next_setup(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    entry_data: dict[str, Any],
    session_sha256: str,
    renewed: Certificate,
    snapshot: SnapshotAssertion,
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, title="Yeastar S100", unique_id=SERIAL, data=_without_pin(entry_data)
    )
    entry.add_to_hass(hass)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.data[CONF_CERTIFICATE_SHA256] == session_sha256
    assert entry.runtime_data.client.certificate.sha256 == session_sha256
    assert pbx.logins == 1  # the login already went to the pinned certificate only
    notice = _issue(hass, "certificate_pinned", entry)
    assert notice is not None
    assert not notice.is_fixable
    placeholders = dict(notice.translation_placeholders or {})
    assert placeholders["fingerprint"] == format_fingerprint(session_sha256)
    assert (
        json.loads(
            json.dumps(placeholders)
            .replace(placeholders["fingerprint"], "<fingerprint>")
            .replace(placeholders["expiry"], "<expiry>")
            .replace(str(pbx.port), "<port>")
        )
        == snapshot
    )
    description = TRANSLATIONS["issues"]["certificate_pinned"]["description"]
    assert format_fingerprint(session_sha256) in _rendered(description, placeholders)

    # A reload keeps the pin and the notice (until the user dismisses it).
    await _reload(hass, entry)
    assert _issue(hass, "certificate_pinned", entry) is not None

    # Reconfigured to the renewed certificate: the notice names an old pin and goes.
    await pbx.use_certificate(renewed.context)
    result = await entry.start_reconfigure_flow(hass)
    result = await submit(
        hass, result["flow_id"], {CONF_HOST: HOST, CONF_PORT: pbx.port, CONF_VERIFY_SSL: False}
    )
    assert_abort(result, "reconfigure_successful")
    await hass.async_block_till_done()
    assert entry.data[CONF_CERTIFICATE_SHA256] == renewed.sha256
    assert _issue(hass, "certificate_pinned", entry) is None


async def test_a_pin_is_kept_only_after_a_setup_that_worked(
    hass: HomeAssistant, pbx: FakeYeastarPBX, entry_data: dict[str, Any]
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, title="Yeastar S100", data=_without_pin(entry_data))
    entry.add_to_hass(hass)
    pbx.password = "changed-on-the-pbx"

    assert not await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert CONF_CERTIFICATE_SHA256 not in entry.data
    assert _issue(hass, "certificate_pinned", entry) is None


async def test_a_p_series_entry_from_before_pinning_pins_too(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,  # noqa: F811 - the fixture imported above
    session_sha256: str,
) -> None:
    entry = add_p_entry(hass, fake_p, data=_without_pin(p_entry_data(fake_p)))

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.data[CONF_CERTIFICATE_SHA256] == session_sha256
    assert _issue(hass, "certificate_pinned", entry) is not None


async def test_an_entry_from_before_pinning_retries_when_the_pbx_is_off(
    hass: HomeAssistant, entry_data: dict[str, Any], closed_port: int
) -> None:
    data = _without_pin(entry_data) | {CONF_PORT: closed_port}
    entry = MockConfigEntry(domain=DOMAIN, title="Yeastar S100", data=data)
    entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "cannot_connect"
    assert CONF_CERTIFICATE_SHA256 not in entry.data


async def test_a_certificate_changing_during_the_first_use_is_not_pinned(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    entry_data: dict[str, Any],
    renewed: Certificate,
    socket_enabled: None,
) -> None:
    """Read one certificate, then met another at the login: nothing pinned, nothing sent.

    The read is steered to a second server (another certificate) by its name lookup, as a
    machine in the middle that answers only some connections would.
    """
    other = FakeYeastarPBX(password=PASSWORD)
    await other.start(ssl_context=renewed.context)
    entry = MockConfigEntry(domain=DOMAIN, title="Yeastar S100", data=_without_pin(entry_data))
    entry.add_to_hass(hass)
    try:
        with patch(
            "custom_components.voice_prompt.api.tls.ThreadedResolver",
            return_value=_Resolver({HOST: [(HOST, other.port)]}),
        ):
            assert not await hass.config_entries.async_setup(entry.entry_id)
    finally:
        await other.close()

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.error_reason_translation_key == "certificate_changed"
    assert CONF_CERTIFICATE_SHA256 not in entry.data
    assert pbx.requests == []
    assert other.requests == []
    # Nothing was ever pinned, so there is no pin to replace either.
    assert _issue(hass, "certificate_changed", entry) is None


# ------------------------------------------------------------------- Asterisk over https


@pytest.fixture
async def ari_https(
    socket_enabled: None, server_ssl: ssl.SSLContext
) -> AsyncGenerator[FakeAsterisk]:
    """A fake Asterisk whose ARI is on https:// with the session's self-signed certificate."""
    fake = FakeAsterisk(phones={"PJSIP/1000": FakePhone()}, time_scale=0.01)
    await fake.start(ssl_context=server_ssl)
    yield fake
    await fake.close()


async def test_asterisk_over_https_pins_and_refuses_a_changed_certificate(
    hass: HomeAssistant,
    repairs: None,
    ari_https: FakeAsterisk,
    session_sha256: str,
    renewed: Certificate,
) -> None:
    """https ARI without CA verification: confirmed, pinned, a new certificate refused."""
    user_input = asterisk_data(ari_https.url, ARI_USERNAME, ARI_PASSWORD)
    del user_input["backend"]
    result = await start_flow(hass, "asterisk")
    result = await submit(hass, result["flow_id"], user_input, confirm_certificate=False)

    assert result["step_id"] == "certificate"
    assert (result["description_placeholders"] or {})["fingerprint"] == format_fingerprint(
        session_sha256
    )
    assert ari_https.requests == []  # only the handshake before the confirmation
    result = await submit(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CERTIFICATE_SHA256] == session_sha256
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.client.certificate.sha256 == session_sha256
    assert entry.runtime_data.diagnostics()["client"]["certificate_mode"] == "pinned"

    await ari_https.use_certificate(renewed.context)
    ari_https.requests.clear()
    with pytest.raises(HomeAssistantError) as played:
        await play_prompt(hass, entry, target="1000", prompt="hello-world")
    assert played.value.translation_key == "certificate_changed"
    assert ari_https.requests == []  # no originate, no credentials
    issue = _issue(hass, "certificate_changed", entry)
    assert issue is not None

    result = await _fix(hass, issue.issue_id)
    result = await _fix_submit(hass, result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.data[CONF_CERTIFICATE_SHA256] == renewed.sha256
    assert entry.state is ConfigEntryState.LOADED
    response = await play_prompt(hass, entry, target="1000", prompt="hello-world", wait=True)
    assert [call["status"] for call in response["calls"]] == ["played"]


async def test_asterisk_over_plain_http_pins_nothing(hass: HomeAssistant) -> None:
    """Only https without CA verification has a certificate to pin."""
    backend = BACKENDS["asterisk"]
    assert (
        backend.certificate_address({CONF_URL: "http://pbx:8088", CONF_VERIFY_SSL: False}) is None
    )
    assert (
        backend.certificate_address({CONF_URL: "https://pbx:8089", CONF_VERIFY_SSL: True}) is None
    )
    assert backend.certificate_address({CONF_URL: "https://pbx", CONF_VERIFY_SSL: False}) == (
        "pbx",
        443,
    )
    assert backend.certificate_address(
        {CONF_URL: "https://10.0.0.2:8089", CONF_VERIFY_SSL: False}
    ) == (
        "10.0.0.2",
        8089,
    )
