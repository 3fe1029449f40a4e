"""S-Series event reports without Home Assistant: the login's report address, the parser.

The fake PBX posts its reports over TCP to a real receiver on 127.0.0.1 here, as it posts
them to Home Assistant's webhook in tests/test_yeastar_reports.py.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings, strategies as st
import pytest

from custom_components.voice_prompt.api import (
    VoicePromptResponseError,
    YeastarClient,
    YeastarReport,
    YeastarReportError,
    YeastarReportKind,
    parse_report,
)
from custom_components.voice_prompt.api.yeastar import KEEPALIVE_AFTER_IDLE
from custom_components.voice_prompt.api.yeastar_reports import MAX_REPORT_BYTES, report_address
from tests.fakes.yeastar import V2_FIRMWARE_VERSION, FakeYeastarPBX
from tests.fakes.yeastar_reports import FORGED_SOURCE, MALFORMED_BODY, PLAYED, REASONS
from tests.test_api_yeastar import PASSWORD_MD5, make_client

REPORT_IP = "192.0.2.7"


class Receiver:
    """An application server on 127.0.0.1 that records the reports it gets."""

    def __init__(self) -> None:
        """Answer 200 unless told to fail the next few."""
        self.bodies: list[bytes] = []
        self.sources: list[str | None] = []
        self.fail_next = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/report/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/report/hook"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.sources.append(request.remote)
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500)
        return web.Response(status=200)


@pytest.fixture
async def receiver(socket_enabled: None, pbx: FakeYeastarPBX) -> AsyncGenerator[Receiver]:
    """The receiver, and the fake PBX reporting (played, unless a test says otherwise)."""
    pbx.reports.outcome = PLAYED
    server = Receiver()
    await server.start()
    yield server
    await server.close()


def idle(client: YeastarClient) -> None:
    """As if the token had sat unused long enough for a heartbeat (no frozen clock:
    the fake's reports need real sleeps)."""
    client._last_used = time.monotonic() - KEEPALIVE_AFTER_IDLE


def reports(receiver: Receiver) -> list[YeastarReport | None]:
    return [parse_report(body) for body in receiver.bodies]


# ------------------------------------------------------------- the report address


def test_report_address_drops_only_the_http_scheme() -> None:
    """The guide writes absolute URLs without a scheme; anything else is sent whole."""
    assert report_address("http://192.0.2.1:8123/api/webhook/x") == "192.0.2.1:8123/api/webhook/x"
    assert report_address("https://ha.local:8123/api/webhook/x") == (
        "https://ha.local:8123/api/webhook/x"
    )


async def test_login_and_heartbeat_name_the_report_url(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    client = make_client(session, pbx, report_url=receiver.url)
    await client.device_info()
    (login,) = pbx.calls("login")
    address = receiver.url.removeprefix("http://")
    assert login.body == {
        "username": "api",
        "password": PASSWORD_MD5,
        "port": "8260",
        "version": "1.0.2",  # well-formed JSON reports
        "url": address,
        "urltag": "1",
    }
    idle(client)
    assert await client.async_keepalive(REPORT_IP)
    (heartbeat,) = pbx.calls("heartbeat")
    # The heartbeat keeps the address (without url, the PBX would post to its root).
    assert heartbeat.body == {
        "ipaddr": REPORT_IP,
        "port": "8260",
        "url": address,
        "urltag": "1",
        "urlflag": "1",
    }
    assert client.diagnostics()["report_url_set"] is True
    assert "hook" not in repr(client)
    assert "hook" not in repr(client.diagnostics())


async def test_no_report_url_no_reports(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    """Without a URL the login is as before, and the fake has nowhere to report to."""
    client = make_client(session, pbx)
    await client.play_prompt("1000", "hello111")
    await pbx.reports.wait()
    assert "url" not in pbx.calls("login")[0].body
    assert pbx.reports.deliveries == []
    assert client.diagnostics()["report_url_set"] is False


# ------------------------------------------------------- what the fake PBX reports


async def test_played_report_reaches_the_url(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    client = make_client(session, pbx, report_url=receiver.url)
    call_id = await client.play_prompt("1000", "hello111+queue1")
    await pbx.reports.wait()
    assert reports(receiver) == [
        YeastarReport(YeastarReportKind.PLAY_PROMPT_END, call_id, "1000", prompt="hello111+queue1")
    ]
    assert receiver.sources == ["127.0.0.1"]


@pytest.mark.parametrize("code", sorted(REASONS))
async def test_call_failed_reports(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver, code: str
) -> None:
    pbx.reports.outcome = code
    client = make_client(session, pbx, report_url=receiver.url)
    call_id = await client.play_prompt("1001", "doorbell")
    await pbx.reports.wait()
    assert reports(receiver) == [
        YeastarReport(YeastarReportKind.CALL_FAILED, call_id, "1001", REASONS[code], code)
    ]


async def test_v2_reports_name_the_extension_among_members(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    pbx.firmware_version = V2_FIRMWARE_VERSION
    pbx.reports.outcome = "486"
    client = make_client(session, pbx, report_url=receiver.url)
    await client.device_info()  # switches to API v2
    call_id = await client.play_prompt("1000", "doorbell")
    await pbx.reports.wait()
    assert json.loads(receiver.bodies[0])["event"] == "CallFailed"
    assert reports(receiver) == [
        YeastarReport(YeastarReportKind.CALL_FAILED, call_id, "1000", "486 Busy Here", "486")
    ]
    assert pbx.calls("v2/login")[-1].body["url"] == receiver.url.removeprefix("http://")


async def test_the_pbx_repeats_until_it_gets_200(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    receiver.fail_next = 2
    client = make_client(session, pbx, report_url=receiver.url)
    await client.play_prompt("1000", "hello111")
    await pbx.reports.wait()
    (delivery,) = pbx.reports.deliveries
    assert delivery.statuses == [500, 500, 200]
    assert len(receiver.bodies) == 3
    assert len(set(receiver.bodies)) == 1


async def test_fault_switches(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    """Replayed, forged and malformed reports, as the integration tests use them."""
    client = make_client(session, pbx, report_url=receiver.url)
    pbx.reports.replays = 2
    await client.play_prompt("1000", "hello111")
    await pbx.reports.wait()
    assert len(receiver.bodies) == 3
    assert len(set(receiver.bodies)) == 1

    pbx.reports.replays = 0
    pbx.reports.forged = True
    await client.play_prompt("1000", "hello111")
    await pbx.reports.wait()
    assert receiver.sources[-1] == FORGED_SOURCE

    pbx.reports.forged = False
    pbx.reports.malformed = True
    await client.play_prompt("1000", "hello111")
    await pbx.reports.wait()
    assert receiver.bodies[-1] == MALFORMED_BODY
    with pytest.raises(YeastarReportError):
        parse_report(receiver.bodies[-1])


async def test_heartbeat_moves_the_reports(
    session: aiohttp.ClientSession, pbx: FakeYeastarPBX, receiver: Receiver
) -> None:
    client = make_client(session, pbx, report_url="http://127.0.0.1:9/nowhere")
    await client.device_info()
    client.report_url = receiver.url
    idle(client)
    await client.async_keepalive(REPORT_IP)
    await client.play_prompt("1000", "hello111")
    await pbx.reports.wait()
    assert len(receiver.bodies) == 1


# ------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # The guide's own samples.
        (
            '{"action":"PlayPromptEnd","callid":"1495780325.384","ext":{"extid":"1002"},'
            '"prompt":"appletest"}',
            YeastarReport(
                YeastarReportKind.PLAY_PROMPT_END, "1495780325.384", "1002", None, None, "appletest"
            ),
        ),
        (
            '{"action":"PlayPromptEnd","callid":"1505352996.281",'
            '"outbound":{"trunkname":"Apple_test"},"prompt":"appletest"}',
            YeastarReport(YeastarReportKind.PLAY_PROMPT_END, "1505352996.281", prompt="appletest"),
        ),
        (
            '{"action":"CallFailed","reason":"DND","callid":"1495186077.229",'
            '"ext":{"extid":"1005"}}',
            YeastarReport(YeastarReportKind.CALL_FAILED, "1495186077.229", "1005", "DND"),
        ),
        (
            '{"action":"CallFailed","reason":"486 Busy Here","callid":"1536976927.37",'
            '"outbound":{"from":"1002","to":"70871520926","trunk":"Wanatel-1",'
            '"outboundid":"1536976927.38"},"ext":{"extid":"1002"},"sn":"369351034049"}',
            YeastarReport(
                YeastarReportKind.CALL_FAILED, "1536976927.37", "1002", "486 Busy Here", "486"
            ),
        ),
        # A number where text is usual; a reason whose digits are not a code.
        (
            '{"action":"CallFailed","reason":"4860 x","callid":17,"ext":{"extid":1000}}',
            YeastarReport(YeastarReportKind.CALL_FAILED, "17", "1000", "4860 x"),
        ),
        # Kinds that are answered, not acted on.
        ('{"action":"BootUp","sn":"369351034049"}', None),
        ('{"action":"ExtensionStatus","extension":"1000","status":"Ringing"}', None),
        ('{"event":"NewCdr"}', None),
    ],
)
def test_parse_documented_reports(body: str, expected: YeastarReport | None) -> None:
    assert parse_report(body.encode()) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        MALFORMED_BODY,
        b"[]",
        b'"PlayPromptEnd"',
        b"{}",
        b'{"action": 5}',
        b'{"action":"PlayPromptEnd"}',
        b'{"action":"PlayPromptEnd","callid":""}',
        b'{"action":"PlayPromptEnd","callid":true}',
        b'{"action":"PlayPromptEnd","callid":"1.2","prompt":["a"]}',
        b'{"action":"CallFailed","callid":"1.2"}',
        b'{"action":"CallFailed","callid":"1.2","reason":"\\u0000"}',
        b'{"action":"CallFailed","callid":"' + b"9" * 65 + b'","reason":"DND"}',
        b"[" * 100_000 + b"]" * 100_000,
        b" " * (MAX_REPORT_BYTES + 1),
        b"\xff\xfe\x00",
    ],
)
def test_parse_refuses_what_is_no_report(body: bytes) -> None:
    with pytest.raises(YeastarReportError) as raised:
        parse_report(body)
    assert isinstance(raised.value, VoicePromptResponseError)  # the client's own kind


_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["CallFailed", "PlayPromptEnd", "BootUp"]) | _json,
        "event": st.sampled_from(["CallFailed", "PlayPromptEnd"]) | _json,
        "callid": st.text(max_size=70) | st.integers() | _json,
        "reason": st.sampled_from(list(REASONS.values())) | st.text(max_size=210) | _json,
        "ext": st.fixed_dictionaries({}, optional={"extid": st.text(max_size=18) | _json}) | _json,
        "members": st.lists(st.fixed_dictionaries({"ext": _json}), max_size=3) | _json,
        "prompt": st.text(max_size=30) | _json,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_fields.map(lambda data: json.dumps(data).encode()), st.binary(max_size=64)))
@example(b'{"action":"CallFailed","callid":"1","reason":"486"}')
def test_parse_never_raises_anything_else(body: bytes) -> None:
    """Whatever arrives is a report, None or YeastarReportError; a report is well-formed."""
    try:
        report = parse_report(body)
    except YeastarReportError:
        return
    if report is None:
        return
    assert 0 < len(report.call_id) <= 64
    assert report.call_id.isprintable()
    assert report.extension is None or report.extension.isdigit()
    assert (report.kind is YeastarReportKind.CALL_FAILED) == (report.reason is not None)
    assert report.code is None or report.code in (report.reason or "")
