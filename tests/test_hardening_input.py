"""Hardening: hostile input, property-tested with Hypothesis.

The claim: every input to the action (and to the config-flow address fields) either
reaches the PBX as exactly the intended request, or is refused with ``vol.Invalid`` /
``ServiceValidationError`` (a form error for the flow) before anything is sent. Never an
unhandled exception, never a malformed request at the PBX.

"Intended" is written down independently below (``_intended``), from the action's
documentation: ``prompt`` is a list of names or one text joined by ``+``; a name is
trimmed and may not be empty, all digits, contain ``+``, be unprintable or longer than
255 characters, at most 50 names; ``extension`` is one, a list, or one text separated by
``,``/``;``, digits only (1-16), duplicates rung once, at most 500; ``autoanswer`` is a
Home Assistant boolean (default no). Scalars are read as text, as ``cv.string`` does.

Two layers:
- sync ``@given`` tests drive the pure validation (``PLAY_PROMPT_SCHEMA`` +
  ``normalize_prompts``/``normalize_extensions``; ``normalize_host`` and the port
  validator of the config flow) with thousands of examples;
- async tests take a few hundred Hypothesis-generated examples and send each through the
  real action (or the real config flow) to the fake PBX, checking what the PBX received.

Each test prints how many examples ran (``-s`` shows them); the figures are in
docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
import ipaddress
import json
import re
import socket
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.voice_prompt.api import (
    VoicePromptInputError,
    normalize_extensions,
    normalize_prompts,
)
from custom_components.voice_prompt.config_flow import CONNECTION_SCHEMA, normalize_host
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from custom_components.voice_prompt.services import PLAY_PROMPT_SCHEMA
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from tests.conftest import PASSWORD, SERIAL
from tests.fakes.yeastar import DEFAULT_PROMPTS, FakeYeastarPBX

PLAYPROMPT = "extension/playprompt"
ENTRY = "<the entry id>"  # replaced by the real entry id in the async test
GRAPH_FIELDS = ("call_id", "target", "client_context", "loop", "hang_up")

SYNC_EXAMPLES = 600
ACTION_EXAMPLES = 200
HOST_EXAMPLES = 600
PORT_EXAMPLES = 400
FLOW_EXAMPLES = 120

BASE_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)


def _settings(max_examples: int, **kwargs: Any) -> settings:
    """The shared settings (no example database, no deadline) with a number of examples."""
    return settings(BASE_SETTINGS, max_examples=max_examples, **kwargs)


# -- the intended request, written from the documentation -------------------------------------


def _text(value: Any) -> str | None:
    """A scalar read as text (as cv.string does); None, lists and dicts are not text."""
    if value is None or isinstance(value, (list, dict)):
        return None
    return str(value)


def _intended_prompt(value: Any) -> str | None:
    raw: list[str | None]
    if isinstance(value, list):
        raw = [_text(item) for item in value]
        if any(item is None for item in raw):
            return None
    else:
        text = _text(value)
        if text is None:
            return None
        raw = list(text.split("+"))
    names = [str(item).strip() for item in raw]
    if not names or len(names) > 50:
        return None
    for name in names:
        if not name or "+" in name or name.isdigit():
            return None
        if len(name) > 255 or not name.isprintable():
            return None
    return "+".join(names)


def _intended_extensions(value: Any) -> list[str] | None:
    items: list[str | None]
    if isinstance(value, list):
        items = [_text(item) for item in value]
        if any(item is None for item in items):
            return None
    else:
        text = _text(value)
        if text is None:
            return None
        items = list(text.replace(";", ",").split(","))
    extensions: list[str] = []
    for item in items:
        number = str(item).strip()
        if not number:
            continue
        if not re.fullmatch(r"[0-9]{1,16}", number, re.ASCII):
            return None
        if number not in extensions:
            extensions.append(number)
    if not extensions or len(extensions) > 500:
        return None
    return extensions


_YES = {"1", "true", "yes", "on", "enable"}
_NO = {"0", "false", "no", "off", "disable"}


def _intended_autoanswer(data: dict[str, Any]) -> bool | None:
    if "autoanswer" not in data:
        return False
    value = data["autoanswer"]
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.lower().strip()
        return True if word in _YES else False if word in _NO else None
    if isinstance(value, (int, float)):
        return value != 0
    return None


def _intended(data: dict[str, Any], entry_id: str) -> list[dict[str, str]] | None:
    """The playprompt bodies the PBX should get for ``data``; None: refuse it."""
    allowed = {"config_entry_id", "prompt", "extension", "autoanswer", *GRAPH_FIELDS}
    if not set(data) <= allowed or set(GRAPH_FIELDS) & data.keys():
        return None  # unknown key, or a Microsoft Teams field on a PBX entry
    if _text(data.get("config_entry_id")) != entry_id:
        return None
    if "prompt" not in data or "extension" not in data:
        return None
    prompt = _intended_prompt(data["prompt"])
    extensions = _intended_extensions(data["extension"])
    autoanswer = _intended_autoanswer(data)
    if prompt is None or extensions is None or autoanswer is None:
        return None
    answer = "yes" if autoanswer else "no"
    return [{"extid": ext, "prompt": prompt, "autoanswer": answer} for ext in extensions]


def _assert_well_formed(body: Any) -> None:
    """What the PBX accepts, whatever the caller meant: checked on every request it got."""
    assert isinstance(body, dict)
    assert set(body) == {"extid", "prompt", "autoanswer"}
    assert re.fullmatch(r"[0-9]{1,16}", body["extid"], re.ASCII), body
    assert body["autoanswer"] in ("yes", "no")
    names = body["prompt"].split("+")
    assert 1 <= len(names) <= 50
    for name in names:
        assert name, body
        assert name == name.strip()
        assert not re.fullmatch(r"[0-9]+", name, re.ASCII)
        assert name.isprintable()
        assert len(name) <= 255


# -- strategies -------------------------------------------------------------------------------

WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2003\u3000\u2028"
KNOWN_EXTENSIONS = ["1000", "1001", "1002", "1003", *(str(n) for n in range(1010, 1030))]
PROMPT_NAMES = sorted(DEFAULT_PROMPTS)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = ["doorbell"]
    for _ in range(depth):
        value = [value]
    return value


HUGE_PROMPTS: list[Any] = [
    "x" * 100_000,
    "doorbell+" * 5_000,
    ["doorbell"] * 10_000,
    ["x" * 256],
    "+".join(["doorbell"] * 50),
    "+".join(["doorbell"] * 51),
    " " * 10_000,
    "1" * 100_000,
    _nested(200),
]
HUGE_EXTENSIONS: list[Any] = [
    ["1010"] * 10_000,
    [str(1010 + i % 100) for i in range(10_000)],
    [str(n) for n in range(10_000)],
    ",".join(str(n) for n in range(10_000)),
    ",".join(["1000"] * 10_000),
    [1010] * 10_000,
    "1" * 100_000,
    _nested(200),
]

whitespace = st.text(alphabet=WHITESPACE, max_size=3)
any_text = st.text(max_size=30)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), any_text, st.just(""), whitespace
)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=2),
    max_leaves=8,
)
media = st.fixed_dictionaries({"url": any_text}, optional={"resource_id": any_text})


def _padded(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(whitespace, strategy, whitespace).map("".join)


prompt_name = st.one_of(
    st.sampled_from(PROMPT_NAMES),
    st.sampled_from(PROMPT_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_ .,&'()-]{0,20}", fullmatch=True),
    st.from_regex(r"[0-9]{1,8}", fullmatch=True),
    st.text(alphabet="²³¹٣۳०", min_size=1, max_size=3),  # digits, but not ASCII ones
    any_text,
    st.sampled_from(["", "+", "a+b", "é", "日本語", "\x00", "x" * 255, "x" * 256]),
)
prompt_text = st.one_of(
    _padded(prompt_name),
    st.lists(_padded(prompt_name), max_size=6).map("+".join),
)
prompt_value = st.one_of(
    prompt_text,
    prompt_text,
    st.lists(_padded(prompt_name), max_size=6),
    st.lists(st.one_of(_padded(prompt_name), scalars, nested, media), max_size=6),
    scalars,
    media,
    nested,
    st.sampled_from(HUGE_PROMPTS),
)
extension_item = st.one_of(
    st.sampled_from(KNOWN_EXTENSIONS),
    st.sampled_from(KNOWN_EXTENSIONS),
    st.sampled_from(["4242", "0", "0000", "9" * 16, "9" * 17, "-1000", "1000.0", "+1000"]),
    st.from_regex(r"[0-9]{1,18}", fullmatch=True),
    st.text(alphabet="0123456789٣۳१²,; ", max_size=6),
    any_text,
)
extension_text = st.one_of(
    _padded(extension_item),
    st.tuples(
        st.lists(_padded(extension_item), max_size=6), st.sampled_from([",", ";", ", ", ";;"])
    ).map(lambda parts: parts[1].join(parts[0])),
)
extension_value = st.one_of(
    extension_text,
    extension_text,
    st.sampled_from([1000, 1001, 1010, 0, -1, 10**20, 1000.0, 1e20]),
    st.lists(st.one_of(_padded(extension_item), st.integers(999, 1030)), max_size=6),
    st.lists(st.one_of(extension_item, scalars, nested), max_size=6),
    scalars,
    nested,
    st.sampled_from(HUGE_EXTENSIONS),
)
autoanswer_value = st.one_of(
    st.booleans(),
    st.sampled_from(
        ["yes", "no", "on", "off", "true", "false", "1", "0", "enable", "disable", " YES ", "No"]
    ),
    st.sampled_from(["maybe", "", "2", "y", "oui"]),
    st.integers(-2, 2),
    st.floats(),
    st.none(),
    any_text,
    st.lists(st.booleans(), max_size=2),
)
entry_id_value = st.one_of(
    st.just(ENTRY),
    st.just(ENTRY),
    st.just(ENTRY),
    st.sampled_from(["", "nope", 123, None, [ENTRY], {"id": ENTRY}]),
)


valid_name = st.one_of(
    st.sampled_from(PROMPT_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_ .,&'()-]{0,20}", fullmatch=True),
    st.sampled_from(["é", "日本語", "x" * 255, "a+b".replace("+", "_")]),
)
valid_prompt = st.one_of(
    _padded(valid_name),
    st.lists(_padded(valid_name), min_size=1, max_size=5).map("+".join),
    st.lists(_padded(valid_name), min_size=1, max_size=5),
)
valid_extension = st.one_of(
    st.sampled_from(KNOWN_EXTENSIONS),
    st.sampled_from([1000, 1001, 1010]),
    st.lists(st.sampled_from(KNOWN_EXTENSIONS) | st.integers(1010, 1029), min_size=1, max_size=6),
    st.lists(_padded(st.sampled_from(KNOWN_EXTENSIONS)), min_size=1, max_size=6).map(",".join),
)
valid_autoanswer = st.one_of(st.booleans(), st.sampled_from(["yes", "no", " On ", "0"]))


def _valid_with(**hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid action data with some fields drawn from a hostile strategy instead."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "config_entry_id": st.just(ENTRY),
        "prompt": valid_prompt,
        "extension": valid_extension,
    }
    optional = {"autoanswer": hostile.pop("autoanswer", valid_autoanswer)}
    fields.update(hostile)
    return st.fixed_dictionaries(fields, optional=optional)


def service_data(*, graph_fields: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Action data: valid, valid but for one field, or anything at all."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "prompt": prompt_value,
        "extension": extension_value,
        "autoanswer": autoanswer_value,
        "foo": scalars,
        "entity_id": scalars,
    }
    if graph_fields:
        optional.update(dict.fromkeys(GRAPH_FIELDS, scalars))
    anything = st.fixed_dictionaries({"config_entry_id": entry_id_value}, optional=optional)
    return st.one_of(
        _valid_with(),
        _valid_with(),
        _valid_with(prompt=prompt_value),
        _valid_with(extension=extension_value),
        _valid_with(autoanswer=autoanswer_value),
        _valid_with(config_entry_id=entry_id_value),
        anything,
    )


def _run_locally(data: dict[str, Any], entry_id: str) -> list[dict[str, str]] | None:
    """What the action's own validation makes of ``data`` (schema, then the backend's)."""
    try:
        checked = PLAY_PROMPT_SCHEMA(data)
    except vol.Invalid:
        return None
    assert set(GRAPH_FIELDS).isdisjoint(checked)  # the sync strategy leaves them out
    if checked["config_entry_id"] != entry_id or "extension" not in checked:
        return None
    try:
        extensions = normalize_extensions(checked["extension"])
        names = normalize_prompts(checked["prompt"])
    except VoicePromptInputError:
        return None
    answer = "yes" if checked.get("autoanswer", False) else "no"
    return [{"extid": ext, "prompt": "+".join(names), "autoanswer": answer} for ext in extensions]


def _collect[T](strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """Draw ``count`` examples with Hypothesis' own generator (no fixture in @given)."""
    found: list[T] = []

    @_settings(count, phases=[Phase.generate])
    @given(strategy)
    def draw(value: T) -> None:
        found.append(value)

    draw()
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else f"{text[:300]}... ({len(text)} chars)"


# -- the action: pure validation --------------------------------------------------------------


def test_action_validation_property() -> None:
    """Schema + normalisers agree with the documented intent on every example."""
    outcomes: Counter[str] = Counter()

    @_settings(SYNC_EXAMPLES)
    @given(service_data(graph_fields=False))
    @example({"config_entry_id": ENTRY, "prompt": "hello111+queue1", "extension": "1000"})
    @example({"config_entry_id": ENTRY, "prompt": ["a b", " c "], "extension": [1000, " 1001 "]})
    @example({"config_entry_id": ENTRY, "prompt": "doorbell", "extension": "1000;1001,,1000"})
    @example({"config_entry_id": ENTRY, "prompt": "1234", "extension": "1000"})
    @example({"config_entry_id": ENTRY, "prompt": ["a+b"], "extension": "1000"})
    @example({"config_entry_id": ENTRY, "prompt": {"url": "x"}, "extension": "1000"})
    @example({"config_entry_id": ENTRY, "prompt": "a", "extension": True})
    @example({"config_entry_id": ENTRY, "prompt": "a", "extension": "1000", "autoanswer": "x"})
    def check(data: dict[str, Any]) -> None:
        outcomes["examples"] += 1
        got = _run_locally(data, ENTRY)
        assert got == _intended(data, ENTRY), _short(data)
        outcomes["accepted" if got is not None else "refused"] += 1
        for body in got or []:
            _assert_well_formed(body)

    check()
    print(f"\naction validation: {dict(outcomes)}")
    assert outcomes["examples"] >= SYNC_EXAMPLES
    # Both sides are exercised, not just a wall of refusals.
    assert outcomes["accepted"] >= SYNC_EXAMPLES // 10
    assert outcomes["refused"] >= SYNC_EXAMPLES // 10


# -- the action: end to end against the fake PBX ----------------------------------------------


class _AnyPrompt(set[str]):
    """Every prompt name is "uploaded": the fake then answers on extensions alone."""

    def __contains__(self, item: object) -> bool:
        return True


async def test_action_end_to_end_property(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A few hundred generated inputs through the real action to the fake PBX."""
    pbx.prompts = _AnyPrompt()
    entry_id = loaded_entry.entry_id
    examples = _collect(service_data(graph_fields=True), ACTION_EXAMPLES)
    outcomes: Counter[str] = Counter()

    for raw in examples:
        data = {
            key: (entry_id if key == "config_entry_id" and value == ENTRY else value)
            for key, value in raw.items()
        }
        before = len(pbx.requests)
        intended = _intended(data, entry_id)
        error: HomeAssistantError | vol.Invalid | None = None
        response: Any = None
        try:
            response = await hass.services.async_call(
                DOMAIN, SERVICE_PLAY_PROMPT, data, blocking=True, return_response=True
            )
        except (vol.Invalid, HomeAssistantError) as err:
            # ServiceValidationError is a HomeAssistantError; a plain HomeAssistantError
            # means the PBX refused every extension (checked below).
            error = err
        new = pbx.requests[before:]
        context = f"input {_short(raw)} → {error!r}"

        if intended is None:
            assert isinstance(error, (vol.Invalid, ServiceValidationError)), context
            assert new == [], context  # refused before anything was sent
            outcomes["refused"] += 1
            continue

        assert [r.path for r in new] == [PLAYPROMPT] * len(intended), context
        sent = [r.body for r in new]
        for body in sent:
            _assert_well_formed(body)
        key: Callable[[dict[str, str]], str] = json.dumps
        assert sorted(sent, key=key) == sorted(intended, key=key), context
        rang = {
            r.body["extid"]: r.reply["callid"]
            for r in new
            if r.reply is not None and r.reply.get("status") == "Success"
        }
        expected_calls = [
            {"extension": body["extid"], "call_id": rang[body["extid"]]}
            for body in intended
            if body["extid"] in rang
        ]
        if expected_calls:
            assert response is not None, context
            assert response["calls"] == expected_calls, context
            assert len(response["failed"]) == len(intended) - len(expected_calls), context
            outcomes["sent, rang"] += 1
        else:
            # No extension could ring (unknown, offline, busy): an error, never silence.
            assert isinstance(error, HomeAssistantError), context
            outcomes["sent, PBX refused"] += 1

    outcomes["examples"] = len(examples)
    print(f"\naction end to end: {dict(outcomes)}")
    assert len(examples) >= ACTION_EXAMPLES * 0.9
    assert outcomes["refused"] >= len(examples) // 10
    assert outcomes["sent, rang"] >= len(examples) // 10
    assert pbx.logins == 1  # nothing above upset the session


# -- the config flow: host and port fields ----------------------------------------------------

hostname = st.from_regex(
    r"([a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\.){0,3}[a-z]([a-z0-9-]{0,8}[a-z0-9])?",
    fullmatch=True,
)


@st.composite
def address_text(draw: st.DrawFn) -> tuple[str, tuple[str, int | None]]:
    """A pasted address in one of the shapes users paste, with what it must mean."""
    kind = draw(st.sampled_from(["ipv4", "ipv6", "name"]))
    if kind == "ipv4":
        ip = draw(st.ip_addresses(v=4))
        host_text, host = str(ip), str(ip)
    elif kind == "ipv6":
        ip = draw(st.ip_addresses(v=6))
        host_text, host = f"[{draw(st.sampled_from([ip.compressed, ip.exploded]))}]", str(ip)
    else:
        name = draw(hostname)
        host_text = draw(st.sampled_from([name, name.upper(), f"{name}."]))
        host = name
    port = draw(st.none() | st.integers(1, 65535))
    scheme = draw(st.sampled_from(["", "https://", "http://", "HTTPS://"]))
    userinfo = draw(st.sampled_from(["", "admin@", "api:secret@"])) if scheme else ""
    path = draw(st.sampled_from(["", "/", "/api/v1.0.0/", "/?lang=en", "#top"]))
    pad = draw(whitespace)
    text = f"{pad}{scheme}{userinfo}{host_text}{'' if port is None else f':{port}'}{path}{pad}"
    return text, (host, port)


def _assert_usable_host(result: tuple[str, int | None]) -> None:
    host, port = result
    assert host
    assert host.isascii()
    assert not set(host) & set(" \t\r\n/@?#[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        assert re.fullmatch(r"[a-z0-9.-]+", host), host
        assert not host.rsplit(".", 1)[-1].isdigit()
        assert len(host) <= 253
    assert port is None or 0 < port < 65536
    assert normalize_host(host) == (host, None)  # idempotent


def test_host_field_property() -> None:
    """Pasted addresses give host and port exactly; any other text is refused or clean."""
    outcomes: Counter[str] = Counter()

    @_settings(HOST_EXAMPLES)
    @given(address_text())
    def well_formed(case: tuple[str, tuple[str, int | None]]) -> None:
        text, expected = case
        outcomes["addresses"] += 1
        assert normalize_host(text) == expected, text

    @_settings(HOST_EXAMPLES)
    @given(
        st.one_of(
            st.text(max_size=60),
            st.from_regex(r"[a-zA-Z0-9:/.\[\]@ %#?-]{0,40}", fullmatch=True),
            address_text()
            .map(lambda case: case[0])
            .flatmap(
                lambda text: st.sampled_from(
                    [
                        f"{text} x",
                        f"{text}:99999",
                        f"{text}:0",
                        f"a b{text}",
                        f"{text}:\uff18\uff10",
                    ]
                )
            ),
        )
    )
    def hostile(text: str) -> None:
        outcomes["hostile"] += 1
        result = normalize_host(text)
        outcomes["hostile refused" if result is None else "hostile accepted"] += 1
        if result is not None:
            _assert_usable_host(result)

    well_formed()
    hostile()
    print(f"\nhost field: {dict(outcomes)}")
    assert outcomes["addresses"] >= HOST_EXAMPLES
    assert outcomes["hostile"] >= HOST_EXAMPLES


def test_port_field_property() -> None:
    """The port field is an int in 1..65535 or refused (JSON-representable values)."""
    seen: Counter[str] = Counter()

    @_settings(PORT_EXAMPLES)
    @given(
        st.one_of(
            st.integers(),
            st.integers(-5, 70_000),
            st.floats(allow_infinity=False),
            st.text(max_size=8),
            st.from_regex(r" ?-?[0-9]{1,7} ?", fullmatch=True),
            st.booleans(),
            st.none(),
            st.lists(st.integers(), max_size=2),
        )
    )
    def check(value: Any) -> None:
        seen["examples"] += 1
        try:
            port = CONNECTION_SCHEMA({CONF_HOST: "127.0.0.1", CONF_PORT: value})[CONF_PORT]
        except vol.Invalid:
            seen["refused"] += 1
            return
        assert isinstance(port, int)
        assert 1 <= port <= 65535
        seen["accepted"] += 1

    check()
    print(f"\nport field: {dict(seen)}")
    assert seen["examples"] >= PORT_EXAMPLES


@pytest.fixture
def closed_port(socket_enabled: None) -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_config_flow_fields_end_to_end_property(
    hass: HomeAssistant, pbx: FakeYeastarPBX, closed_port: int
) -> None:
    """Generated host/port pairs through the real Yeastar form.

    Only inputs that are refused, or that mean 127.0.0.1, are submitted: the test never
    contacts another address and never asks DNS. The PBX is already configured, so a
    valid submission ends in ``already_configured`` after its one login.
    """
    MockConfigEntry(domain=DOMAIN, unique_id=SERIAL, data={}).add_to_hass(hass)
    ports = [pbx.port, closed_port]

    def to_local(case: tuple[str, tuple[str, int | None]]) -> str:
        text, _ = case
        return text

    local = st.one_of(
        st.sampled_from([pbx.host, f"https://{pbx.host}/", "127.0.0.1.", "[127.0.0.1]"]),
        st.sampled_from(ports).map(lambda port: f"https://127.0.0.1:{port}/api"),
        st.sampled_from(ports).map(lambda port: f"127.0.0.1:{port}"),
    )
    host_values = st.one_of(
        _padded(local),
        _padded(local),
        _padded(local),
        address_text().map(to_local),
        st.text(max_size=30),
        st.sampled_from(["", " ", "https://", "127.0.0.1:0", "127.0.0.1:65536", "[::1", "a b"]),
        st.none(),
        st.integers(),
    )
    port_values = st.one_of(
        st.sampled_from(ports),
        st.sampled_from(ports),
        st.sampled_from([0, -1, 65536, 10**9, "8088x", None, "", 1.5e9]),
        st.sampled_from(ports).map(str),
    )
    examples = _collect(st.tuples(host_values, port_values), FLOW_EXAMPLES * 3)
    outcomes: Counter[str] = Counter()

    for host, port in examples:
        address = normalize_host(host) if isinstance(host, str) else None
        if address is not None and address[0] != "127.0.0.1":
            continue  # would leave the machine (or ask DNS): not submitted
        if outcomes["examples"] == FLOW_EXAMPLES:
            break
        outcomes["examples"] += 1
        before = len(pbx.requests)
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "yeastar"}
        )
        flow_id = result["flow_id"]
        user_input = {
            CONF_HOST: host,
            CONF_PORT: port,
            CONF_USERNAME: "api",
            CONF_PASSWORD: PASSWORD,
            "verify_ssl": False,
        }
        context = f"host={host!r} port={port!r}"
        try:
            result = await hass.config_entries.flow.async_configure(flow_id, user_input)
        except vol.Invalid:
            outcomes["refused by the form schema"] += 1
            assert not isinstance(host, str) or not _port_ok(port), context
            assert len(pbx.requests) == before, context
            hass.config_entries.flow.async_abort(flow_id)
            continue

        assert isinstance(host, str), context
        assert _port_ok(port), context
        if address is None:
            assert result["type"] is FlowResultType.FORM, context
            assert result["errors"] == {CONF_HOST: "invalid_host"}, context
            assert len(pbx.requests) == before, context
            outcomes["refused: invalid_host"] += 1
            hass.config_entries.flow.async_abort(flow_id)
            continue

        effective = address[1] or int(str(port))
        if effective == pbx.port:
            assert result["type"] is FlowResultType.ABORT, context
            assert result["reason"] == "already_configured", context
            new = pbx.requests[before:]
            assert [r.path for r in new] == ["login", "deviceinfo/query", "logout"], context
            assert new[0].body["password"] == FakeYeastarPBX.md5(PASSWORD)
            outcomes["reached the PBX"] += 1
        else:
            assert result["type"] is FlowResultType.FORM, context
            assert result["errors"] == {"base": "cannot_connect"}, context
            assert len(pbx.requests) == before, context
            outcomes["refused: cannot_connect (closed port)"] += 1
            hass.config_entries.flow.async_abort(flow_id)

    print(f"\nconfig flow end to end: {dict(outcomes)}")
    assert outcomes["examples"] >= FLOW_EXAMPLES * 0.9
    assert outcomes["reached the PBX"] >= FLOW_EXAMPLES // 10
    assert pbx.failed_logins == {}


def _port_ok(value: Any) -> bool:
    try:
        CONNECTION_SCHEMA({CONF_HOST: "x", CONF_PORT: value})
    except vol.Invalid:
        return False
    return True
