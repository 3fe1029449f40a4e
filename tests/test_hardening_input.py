"""Hardening: hostile input, property-tested with Hypothesis.

The claim: every input to the action (and to the config-flow address fields) either
reaches the PBX as exactly the intended request, or is refused with ``vol.Invalid`` /
``ServiceValidationError`` (a form error for the flow) before anything is sent. Never an
unhandled exception, never a malformed request at the PBX.

"Intended" is written down independently below (``_intended``), from the action's
documentation (README, DESIGN.md): ``target`` (or its old name ``extension``, not both) and
``prompt`` are one value or a list. A text holds one or several: extensions separated by
``,``/``;`` ("1000, 1001"), prompt names joined by ``+`` ("hello111+queue1"); a list of one
item is that text (the action's form sends lists). In a list of several, each item is one
extension or one name. An extension is digits only (1-16), blank ones are skipped,
duplicates are rung once, at most 500; a name is trimmed and may not be empty, all digits,
contain ``+``, be unprintable or longer than 255 characters, at most 50 names. Media
objects play on Teams only. ``autoanswer`` is a Home Assistant boolean (default no); the
Teams fields (``call_id``, ``client_context``, ``loop``, ``hang_up``) are refused on a PBX
entry. Scalars are read as text, as ``cv.string`` does.

Two layers:
- sync ``@given`` tests drive the pure validation with thousands of examples: the action
  schema (types only), the client's normalisers (``normalize_extensions`` /
  ``normalize_prompts``), ``parse_host`` and the port field of the Yeastar form;
- async tests take a few hundred Hypothesis-generated examples and send each through the
  real action (or the real config flow) to the fake PBX, checking what the PBX received.

Each test prints how many examples ran (``-s`` shows them); README's Reliability section
has the figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
import ipaddress
import json
import re
import socket
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.voice_prompt.api import (
    VoicePromptInputError,
    normalize_extensions,
    normalize_prompts,
)
from custom_components.voice_prompt.backends.host import parse_host
from custom_components.voice_prompt.backends.yeastar import YeastarBackend
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from custom_components.voice_prompt.services import PLAY_PROMPT_SCHEMA
from custom_components.voice_prompt.validation import vol
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from tests.conftest import PASSWORD, SERIAL
from tests.fakes.yeastar import DEFAULT_PROMPTS, FakeYeastarPBX

PLAYPROMPT = "extension/playprompt"
ENTRY = "<the entry id>"  # replaced by the real entry id in the async test
TEAMS_FIELDS = ("call_id", "client_context", "loop", "hang_up")
TEXT_FIELDS = ("config_entry_id", "call_id", "client_context")
BOOLEAN_FIELDS = ("autoanswer", "loop", "hang_up")
SCHEMA_FIELDS = {*TEXT_FIELDS, *BOOLEAN_FIELDS, "target", "extension", "prompt"}
YEASTAR_FORM = YeastarBackend.flow_steps["yeastar"]
# Refusals of a PBX entry's action: the schema's, the action's and the client's.
REFUSALS = {
    "entry_not_found",
    "fields_not_supported",
    "target_and_extension",
    "nothing_to_play",
    "target_required",
    "invalid_input",
}

SYNC_EXAMPLES = 600
NORMALISER_EXAMPLES = 600
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

_MISSING = object()


def _text(value: Any) -> str | None:
    """A scalar read as text (as cv.string does); None, lists and dicts are not text."""
    if value is None or isinstance(value, (list, dict)):
        return None
    return str(value)


def _texts(value: Any) -> list[str] | None:
    """One value or a list of them, each read as text; None: refused."""
    items = [] if value is None else value if isinstance(value, list) else [value]
    texts = [_text(item) for item in items]
    return None if any(text is None for text in texts) else texts  # type: ignore[return-value]


def _boolean(value: Any) -> bool | None:
    """A Home Assistant boolean (cv.boolean); None: refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.lower().strip()
        return True if word in _YES else False if word in _NO else None
    if isinstance(value, (int, float)):
        return value != 0
    return None


_YES = {"1", "true", "yes", "on", "enable"}
_NO = {"0", "false", "no", "off", "disable"}


def _media(value: dict[Any, Any]) -> dict[str, str] | None:
    """A Teams media object: ``url`` and optionally ``resource_id``, both texts."""
    if "url" not in value or not set(value) <= {"url", "resource_id"}:
        return None
    typed = {key: _text(item) for key, item in value.items()}
    return None if None in typed.values() else typed  # type: ignore[return-value]


def _typed(data: dict[str, Any]) -> dict[str, Any] | None:
    """What the action's schema makes of ``data`` (types only); None: vol.Invalid."""
    if not set(data) <= SCHEMA_FIELDS or "config_entry_id" not in data:
        return None
    typed: dict[str, Any] = {}
    for key, value in data.items():
        converted: Any
        if key in TEXT_FIELDS:
            converted = _text(value)
        elif key in BOOLEAN_FIELDS:
            converted = _boolean(value)
        elif key == "prompt":
            items = [] if value is None else value if isinstance(value, list) else [value]
            converted = [_media(item) if isinstance(item, dict) else _text(item) for item in items]
            converted = None if None in converted else converted
        else:
            converted = _texts(value)
        if converted is None:
            return None
        typed[key] = converted
    return typed


def _parts(items: list[str], separators: str) -> list[str]:
    """A list of one text holds several values; a longer list holds one per item."""
    if len(items) != 1:
        return items
    text = items[0]
    for separator in separators[1:]:
        text = text.replace(separator, separators[0])
    return text.split(separators[0])


def _intended_names(raw: list[str]) -> str | None:
    """Prompt names as the PBX gets them (joined by +); None: refused."""
    names = [name.strip() for name in raw]
    if not names or len(names) > 50:
        return None
    for name in names:
        if not name or "+" in name or name.isdigit():
            return None
        if len(name) > 255 or not name.isprintable():
            return None
    return "+".join(names)


def _intended_numbers(raw: list[str]) -> list[str] | None:
    """Extension numbers, blanks skipped, duplicates once; None: refused."""
    extensions: list[str] = []
    for item in raw:
        number = item.strip()
        if not number:
            continue
        if not re.fullmatch(r"[0-9]{1,16}", number, re.ASCII):
            return None
        if number not in extensions:
            extensions.append(number)
    if not extensions or len(extensions) > 500:
        return None
    return extensions


def _intended(data: dict[str, Any], entry_id: str) -> list[dict[str, str]] | None:
    """The playprompt bodies the PBX should get for ``data``; None: refuse it."""
    typed = _typed(data)
    if typed is None or typed["config_entry_id"] != entry_id:
        return None  # a type the schema refuses, an unknown key, another entry
    if set(TEAMS_FIELDS) & typed.keys() or ("target" in typed and "extension" in typed):
        return None  # a Microsoft Teams field on a PBX entry; target and its old name
    targets = typed.get("target", typed.get("extension", _MISSING))
    prompts = typed.get("prompt", [])
    if targets is _MISSING or not prompts or any(isinstance(p, dict) for p in prompts):
        return None  # no target, no prompt, or a media object (Teams only)
    prompt = _intended_names(_parts(prompts, "+"))
    extensions = _intended_numbers(_parts(targets, ",;"))
    if prompt is None or extensions is None:
        return None
    answer = "yes" if typed.get("autoanswer", False) else "no"
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
    ["doorbell"] * 50,
    ["doorbell"] * 51,
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
media = st.one_of(
    st.fixed_dictionaries({"url": any_text}, optional={"resource_id": any_text}),
    st.fixed_dictionaries({"url": scalars}, optional={"resource_id": scalars, "uri": any_text}),
)


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
    st.lists(prompt_text, min_size=1, max_size=3),  # texts joined by + in a list
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
    st.lists(extension_text, min_size=1, max_size=3),  # separated texts in a list
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
    st.sampled_from(["é", "日本語", "x" * 255, "a_b"]),
)
valid_prompt = st.one_of(
    _padded(valid_name),
    st.lists(_padded(valid_name), min_size=1, max_size=5).map("+".join),
    st.lists(_padded(valid_name), min_size=1, max_size=5),
    st.lists(_padded(valid_name), min_size=1, max_size=5).map(lambda names: ["+".join(names)]),
)
valid_extension = st.one_of(
    st.sampled_from(KNOWN_EXTENSIONS),
    st.sampled_from([1000, 1001, 1010]),
    st.lists(st.sampled_from(KNOWN_EXTENSIONS) | st.integers(1010, 1029), min_size=1, max_size=6),
    st.lists(_padded(st.sampled_from(KNOWN_EXTENSIONS)), min_size=1, max_size=6).map(",".join),
    st.lists(st.sampled_from(KNOWN_EXTENSIONS), min_size=1, max_size=6).map(
        lambda numbers: [";".join(numbers)]
    ),
)
# Lists of several whose items are themselves joined texts: refused (one value per item).
joined_prompt_items = st.lists(
    st.lists(_padded(valid_name), min_size=1, max_size=3).map("+".join), min_size=2, max_size=3
)
joined_extension_items = st.lists(
    st.lists(st.sampled_from(KNOWN_EXTENSIONS), min_size=1, max_size=3).map(", ".join),
    min_size=2,
    max_size=3,
)
valid_autoanswer = st.one_of(st.booleans(), st.sampled_from(["yes", "no", " On ", "0"]))


def _valid_with(
    target_key: str = "target", **hostile: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid action data with some fields drawn from a hostile strategy instead."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "config_entry_id": st.just(ENTRY),
        "prompt": valid_prompt,
        target_key: hostile.pop("target", valid_extension),
    }
    optional = {"autoanswer": hostile.pop("autoanswer", valid_autoanswer)}
    fields.update(hostile)
    return st.fixed_dictionaries(fields, optional=optional)


def service_data(*, teams_fields: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Action data: valid, valid but for one field, or anything at all."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "prompt": prompt_value,
        "target": extension_value,
        "extension": extension_value,
        "autoanswer": autoanswer_value,
        "foo": scalars,
        "entity_id": scalars,
    }
    if teams_fields:
        optional.update(dict.fromkeys(TEAMS_FIELDS, scalars))
    anything = st.fixed_dictionaries({"config_entry_id": entry_id_value}, optional=optional)
    return st.one_of(
        _valid_with(),
        _valid_with("extension"),  # 0.1.0's name of target
        _valid_with(prompt=prompt_value),
        _valid_with(prompt=joined_prompt_items),
        _valid_with(target=extension_value),
        _valid_with(target=joined_extension_items),
        _valid_with("extension", target=extension_value),
        _valid_with(autoanswer=autoanswer_value),
        _valid_with(config_entry_id=entry_id_value),
        anything,
    )


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


def test_action_schema_property() -> None:
    """The action's schema checks types only, exactly as documented, for every backend."""
    outcomes: Counter[str] = Counter()

    @_settings(SYNC_EXAMPLES)
    @given(service_data(teams_fields=True))
    @example({"config_entry_id": ENTRY, "prompt": "hello111+queue1", "target": "1000"})
    @example({"config_entry_id": ENTRY, "prompt": ["a b", " c "], "extension": [1000, " 1001 "]})
    @example({"config_entry_id": ENTRY, "prompt": {"url": "x"}, "target": None})
    @example({"config_entry_id": ENTRY, "prompt": [{"url": "x", "uri": "y"}], "target": "1"})
    @example({"config_entry_id": ENTRY, "prompt": "a", "extension": True, "loop": "on"})
    @example({"config_entry_id": ENTRY, "prompt": "a", "target": "1000", "autoanswer": "x"})
    @example({"config_entry_id": ENTRY, "prompt": None, "target": [None]})
    def check(data: dict[str, Any]) -> None:
        outcomes["examples"] += 1
        try:
            got: dict[str, Any] | None = PLAY_PROMPT_SCHEMA(data)
        except vol.Invalid:
            got = None
        assert got == _typed(data), _short(data)
        outcomes["accepted" if got is not None else "refused"] += 1

    check()
    print(f"\naction schema: {dict(outcomes)}")
    assert outcomes["examples"] >= SYNC_EXAMPLES
    # Both sides are exercised, not just a wall of refusals (or of acceptances).
    assert outcomes["accepted"] >= SYNC_EXAMPLES // 10
    assert outcomes["refused"] >= SYNC_EXAMPLES // 20


def test_normalisers_property() -> None:
    """The client's normalisers read a text or a list exactly as documented."""
    outcomes: Counter[str] = Counter()

    def normalised(function: Any, value: Any) -> Any:
        try:
            return function(value)
        except VoicePromptInputError:
            return None

    @_settings(NORMALISER_EXAMPLES)
    @given(
        st.one_of(extension_text, st.lists(_padded(extension_item), max_size=6)),
        st.one_of(prompt_text, st.lists(_padded(prompt_name), max_size=6)),
    )
    @example("1000;1001,,1000", "doorbell")
    @example(["1000", "1001,1002"], ["a+b", "c"])
    @example([" 1000 ", ""], ["hello111", " queue1 "])
    @example("", "")
    @example([], [])
    def check(extensions: str | list[str], prompts: str | list[str]) -> None:
        outcomes["examples"] += 1
        # One text holds several values; a list holds one per item.
        numbers = _parts([extensions], ",;") if isinstance(extensions, str) else extensions
        expected_extensions = _intended_numbers(numbers)
        assert normalised(normalize_extensions, extensions) == expected_extensions, extensions
        names = prompts.split("+") if isinstance(prompts, str) else prompts
        expected = _intended_names(names)
        got = normalised(normalize_prompts, prompts)
        assert (None if got is None else "+".join(got)) == expected, prompts
        outcomes["extensions accepted" if expected_extensions else "extensions refused"] += 1
        outcomes["prompts accepted" if expected else "prompts refused"] += 1

    check()
    print(f"\nnormalisers: {dict(outcomes)}")
    assert outcomes["examples"] >= NORMALISER_EXAMPLES
    assert outcomes["extensions accepted"] >= NORMALISER_EXAMPLES // 10
    assert outcomes["prompts accepted"] >= NORMALISER_EXAMPLES // 10


# -- the action: end to end against the fake PBX ----------------------------------------------


class _AnyPrompt(set[str]):
    """Every prompt name is "uploaded": the fake then answers on extensions alone."""

    def __contains__(self, item: object) -> bool:
        return True


def _errno(reply: dict[str, Any] | None) -> str | None:
    return None if reply is None else reply.get("errno")


async def test_list_items_are_one_name_or_extension_each(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A list of several holds one extension or one prompt name per item.

    ``+`` only joins names in one text ("hello111+queue1"), and ``,``/``;`` only separate
    extensions in one text ("1000, 1001"); README: a name with ``+`` is refused with
    nothing sent. A list of one item is that text (the action's form sends lists).
    """
    entry_id = loaded_entry.entry_id

    for data, words in (
        (
            {"target": ["1000", "1001"], "prompt": ["wakeup", "alarm+doorbell"]},
            "Prompt name alarm+doorbell contains +",
        ),
        (
            {"target": ["1000", "1001;1010"], "prompt": ["wakeup", "alarm"]},
            "1001;1010 is not an extension number",
        ),
    ):
        with pytest.raises(ServiceValidationError) as refused:
            await hass.services.async_call(
                DOMAIN,
                SERVICE_PLAY_PROMPT,
                {"config_entry_id": entry_id, **data},
                blocking=True,
                return_response=True,
            )
        assert refused.value.translation_key == "invalid_input", data
        assert words in (refused.value.translation_placeholders or {})["detail"]
        assert pbx.calls(PLAYPROMPT) == [], data

    response: Any = await hass.services.async_call(
        DOMAIN,
        SERVICE_PLAY_PROMPT,
        {"config_entry_id": entry_id, "target": ["1000, 1001"], "prompt": ["wakeup+alarm"]},
        blocking=True,
        return_response=True,
    )
    assert [call["target"] for call in response["calls"]] == ["1000", "1001"]
    assert {r.body["prompt"] for r in pbx.calls(PLAYPROMPT)} == {"wakeup+alarm"}


def _event_state(hass: HomeAssistant) -> dict[str, Any]:
    """The entry's event entity: its state (the last event's time) and attributes."""
    entity_id = er.async_get(hass).async_get_entity_id("event", DOMAIN, f"{SERIAL}_calls")
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    return {"state": state.state, **state.attributes}


async def test_action_end_to_end_property(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, pbx: FakeYeastarPBX
) -> None:
    """A few hundred generated inputs through the real action to the fake PBX."""
    pbx.prompts = _AnyPrompt()
    entry_id = loaded_entry.entry_id
    examples = _collect(service_data(teams_fields=True), ACTION_EXAMPLES)
    outcomes: Counter[str] = Counter()

    for raw in examples:
        data = {
            key: (entry_id if key == "config_entry_id" and value == ENTRY else value)
            for key, value in raw.items()
        }
        before = len(pbx.requests)
        event_before = _event_state(hass)
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
            if isinstance(error, ServiceValidationError):
                assert error.translation_key in REFUSALS, context
            assert new == [], context  # refused before anything was sent
            outcomes["refused"] += 1
            continue

        assert [r.path for r in new] == [PLAYPROMPT] * len(intended), context
        sent = [r.body for r in new]
        for body in sent:
            _assert_well_formed(body)
        assert sorted(sent, key=json.dumps) == sorted(intended, key=json.dumps), context
        replies = {r.body["extid"]: r.reply or {} for r in new}
        rang = {ext: reply["callid"] for ext, reply in replies.items() if _errno(reply) is None}
        expected_calls = [
            {"target": body["extid"], "call_id": rang[body["extid"]], "status": "placed"}
            for body in intended
            if body["extid"] in rang
        ]
        expected_failed = [
            (body["extid"], _errno(replies[body["extid"]]))
            for body in intended
            if body["extid"] not in rang
        ]
        if expected_calls:
            assert response is not None, context
            assert response["calls"] == expected_calls, context
            got_failed = [(f["target"], f["code"]) for f in response["failed"]]
            assert got_failed == expected_failed, context
            assert all(isinstance(f["error"], str) and f["error"] for f in response["failed"])
            outcomes["sent, rang"] += 1
        else:
            # No extension could ring (unknown, offline, busy): an error, never silence.
            assert isinstance(error, HomeAssistantError), context
            if len(intended) > 1:
                assert error.translation_key == "all_targets_failed", context
            outcomes["sent, PBX refused"] += 1
        # The entry's event entity heard of the failures: the last is the last reported.
        after = _event_state(hass)
        if expected_failed:
            assert after["event_type"] == "failed", context
            assert (after["target"], after["code"]) == expected_failed[-1], context
        elif after != event_before:  # a placed call may be reported too, nothing else
            assert after["event_type"] == "placed", context
            assert after["call_id"] in rang.values(), context

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
    kind = draw(st.sampled_from(["ipv4", "ipv6", "ipv6-bare", "name"]))
    port = draw(st.none() | st.integers(1, 65535))
    scheme = draw(st.sampled_from(["", "https://", "http://", "HTTPS://"]))
    if kind == "ipv4":
        ip = draw(st.ip_addresses(v=4))
        host_text, host = str(ip), str(ip)
    elif kind == "ipv6-bare":  # no brackets: no port, no scheme, nothing around it
        ip = draw(st.ip_addresses(v=6))
        pad = draw(whitespace)
        text = draw(st.sampled_from([ip.compressed, ip.exploded]))
        return f"{pad}{text}{pad}", (str(ip), None)
    elif kind == "ipv6":
        ip = draw(st.ip_addresses(v=6))
        host_text, host = f"[{draw(st.sampled_from([ip.compressed, ip.exploded]))}]", str(ip)
    else:
        name = draw(hostname)
        host_text = draw(st.sampled_from([name, name.upper(), f"{name}."]))
        host = name
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
    assert parse_host(host) == (host, None)  # idempotent


def test_host_field_property() -> None:
    """Pasted addresses give host and port exactly; any other text is refused or clean."""
    outcomes: Counter[str] = Counter()
    # Brackets belong to IPv6 only (accepted before the backends refactor).
    assert parse_host("[127.0.0.1]") is None
    assert parse_host("https://[127.0.0.1]:8088/") is None
    assert parse_host("[]") is None  # yarl itself raises IndexError there

    @_settings(HOST_EXAMPLES)
    @given(address_text())
    def well_formed(case: tuple[str, tuple[str, int | None]]) -> None:
        text, expected = case
        outcomes["addresses"] += 1
        assert parse_host(text) == expected, text

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
        result = parse_host(text)
        outcomes["hostile refused" if result is None else "hostile accepted"] += 1
        if result is not None:
            _assert_usable_host(result)

    well_formed()
    hostile()
    print(f"\nhost field: {dict(outcomes)}")
    assert outcomes["addresses"] >= HOST_EXAMPLES
    assert outcomes["hostile"] >= HOST_EXAMPLES


def _form_input(host: Any, port: Any) -> dict[str, Any]:
    return {
        CONF_HOST: host,
        CONF_PORT: port,
        CONF_USERNAME: "api",
        CONF_PASSWORD: PASSWORD,
        CONF_VERIFY_SSL: False,
    }


def _port_ok(value: Any) -> bool:
    try:
        YEASTAR_FORM(_form_input("x", value))
    except vol.Invalid:
        return False
    return True


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
            port = YEASTAR_FORM(_form_input("127.0.0.1", value))[CONF_PORT]
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
    valid submission ends in ``already_configured`` after its one login (and logout).
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
        address = parse_host(host) if isinstance(host, str) else None
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
        context = f"host={host!r} port={port!r}"
        try:
            result = await hass.config_entries.flow.async_configure(
                flow_id, _form_input(host, port)
            )
        except vol.Invalid:
            outcomes["refused by the form schema"] += 1
            assert not isinstance(host, str) or not _port_ok(port), context
            assert len(pbx.requests) == before, context
            hass.config_entries.flow.async_abort(flow_id)
            continue

        if result["type"] is FlowResultType.FORM and result["step_id"] == "certificate":
            assert len(pbx.requests) == before, context  # shown before any login
            result = await hass.config_entries.flow.async_configure(flow_id, {})
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
            assert result["description_placeholders"] == {
                "tried": f"the PBX at 127.0.0.1:{effective}"
            }
            assert len(pbx.requests) == before, context
            outcomes["refused: cannot_connect (closed port)"] += 1
            hass.config_entries.flow.async_abort(flow_id)

    print(f"\nconfig flow end to end: {dict(outcomes)}")
    assert outcomes["examples"] >= FLOW_EXAMPLES * 0.9
    assert outcomes["reached the PBX"] >= FLOW_EXAMPLES // 10
    assert pbx.failed_logins == {}
    assert pbx.tokens == {}  # every check logged out again
