"""Hardening: the Yeastar P-Series backend and S-Series API v2, property-tested with Hypothesis.

The claim, as ``test_hardening_input.py`` makes it for S-Series API v1: every input to the
action either reaches the PBX as exactly the intended request, or is refused (``vol.Invalid``
from the schema, or a translated ``ServiceValidationError``) with nothing sent. Never another
exception, never a request the PBX refuses as malformed, never a secret in what a user or a
bug report can see. The fields the newer APIs added are in: ``repeat`` (sent as ``count``),
``volume``, and targets that are paging groups or external numbers.

"Intended" is written down below from the documentation (services.yaml, README, DESIGN.md,
the shared API notes and the clients' docstrings), not from the code:

- The schema reads ``target`` (or ``extension``, not both) and ``prompt`` as one value or a
  list, scalars as text (``cv.string``); ``autoanswer`` as a Home Assistant boolean;
  ``repeat`` and ``volume`` as ``cv.positive_int`` does: Python's ``int()`` of a number or
  a text (``2.9`` is 2, ``true`` is 1, ``" 7 "`` and an Arabic-Indic 7 are 7), at least 0.
- A text holds several targets separated by ``,``/``;`` and several names joined by ``+``;
  a list of one text is that text; in a longer list each item is one target or one name.
- A number to call is 1-32 ASCII digits, optionally after one ``+`` (extension, paging or
  intercom group, external number); blanks are skipped, duplicates rung once, at most 500.
- P-Series ``call/play_prompt``: ``{"number", "prompts": [names], "auto_answer": "yes"|"no"}``
  plus ``count`` (1-10) and ``volume`` (0-20) as JSON numbers when given. A name is 1-64
  letters or digits of any script, ``_``, ``-`` and inner spaces; at most 50 names.
- S-Series API v2 ``call/playprompt``: ``{"number", "prompt": "a+b", "autoanswer"}`` plus
  ``count`` and ``volume`` (same ranges) as text, the guide's example. Names as on v1: not
  empty, not all digits, no ``+``, printable, at most 255 characters; at most 50.
- S-Series API v1: ``repeat`` and ``volume`` are refused by capability (naming them), and
  only extensions (1-16 digits) can be rung, with ``{"extid", "prompt", "autoanswer"}``.
- Teams-only fields are refused on a PBX entry; media objects play on Teams only.

Each test prints how many examples ran (``-s`` shows them). Two edges found by these
properties (infinite repeat/volume, 5,000-digit numbers) are fixed examples at the end.
"""

# ruff: noqa: F811 - the fixtures imported from tests.yeastar_p_fixtures are test arguments

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
import json
import logging
import math
import re
import traceback
from typing import Any, Final

from hypothesis import HealthCheck, Phase, example, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.voice_prompt.api import (
    VoicePromptInputError,
    yeastar as s_api,
    yeastar_p as p_api,
)
from custom_components.voice_prompt.api.http import bounded
from custom_components.voice_prompt.const import DOMAIN, SERVICE_PLAY_PROMPT
from custom_components.voice_prompt.validation import vol
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from tests.conftest import PASSWORD, play_prompt
from tests.fakes.yeastar import (
    DEFAULT_PROMPTS as S_PROMPTS,
    V2_FIRMWARE_VERSION,
    FakeYeastarPBX,
    RecordedRequest,
)
from tests.fakes.yeastar_p import DEFAULT_PROMPTS as P_PROMPTS, FakeYeastarP
from tests.yeastar_p_fixtures import (  # noqa: F401 - fixtures
    P_CALL_ID,
    P_CLIENT_SECRET,
    P_PLAY,
    fake_p,
    p_entry,
    p_loaded,
)

ENTRY: Final = "<the entry id>"  # replaced by the real entry id in the async tests
S_V2_PLAY: Final = "call/playprompt"
S_V1_PLAY: Final = "extension/playprompt"
EXTERNAL: Final = "+4930123456"
SCHEMA: Final = "the action's schema"  # a refusal by vol.Invalid, not a translation key
INVALID: Final = frozenset({"invalid_input"})

TEAMS_TEXT_FIELDS: Final = ("call_id", "client_context")
TEAMS_BOOLEAN_FIELDS: Final = ("loop", "hang_up")
TEAMS_FIELDS: Final = frozenset({*TEAMS_TEXT_FIELDS, *TEAMS_BOOLEAN_FIELDS})
# services.yaml and the clients' docstrings: how often the prompts play, and how loud.
COUNT_RANGE: Final = range(1, 11)
VOLUME_RANGE: Final = range(21)
MAX_NAMES: Final = 50
MAX_TARGETS: Final = 500
P_MAX_NAME: Final = 64
S_MAX_NAME: Final = 255

P_ACTION_EXAMPLES = 250
S_V2_ACTION_EXAMPLES = 200
S_V1_ACTION_EXAMPLES = 150
NORMALISER_EXAMPLES = 400
BOUNDED_EXAMPLES = 300

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

_YES: Final = {"1", "true", "yes", "on", "enable"}
_NO: Final = {"0", "false", "no", "off", "disable"}
# Python's int() of a text: surrounding whitespace (but not the ASCII separators
# \x1c-\x1f, which str.strip() also removes), a sign, decimal digits of any script with
# single underscores between them, at most 4300 digits.
_INT_TEXT: Final = re.compile(r"[^\S\x1c-\x1f]*([+-]?\d+(?:_\d+)*)[^\S\x1c-\x1f]*")
_NUMBER: Final = re.compile(r"\+?[0-9]{1,32}")
_EXTENSION: Final = re.compile(r"[0-9]{1,16}")


def _text(value: Any) -> str | None:
    """A scalar read as text (cv.string); None, lists and dicts are not text."""
    if value is None or isinstance(value, (list, dict)):
        return None
    return str(value)


def _texts(value: Any) -> list[str] | None:
    """One value or a list of them (none: an empty list), each read as text."""
    items = [] if value is None else value if isinstance(value, list) else [value]
    texts = [_text(item) for item in items]
    return None if None in texts else texts  # type: ignore[return-value]


def _boolean(value: Any) -> bool | None:
    """A Home Assistant boolean (cv.boolean)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.lower().strip()
        return True if word in _YES else False if word in _NO else None
    if isinstance(value, (int, float)):
        return value != 0
    return None


def _whole(value: Any) -> int | None:
    """A number field as cv.positive_int reads it: int() of the value, at least 0."""
    number: int
    if isinstance(value, bool):
        number = 1 if value else 0
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = math.trunc(value)
    elif isinstance(value, str):
        match = _INT_TEXT.fullmatch(value)
        if match is None or len(match.group(1)) > 4300:
            return None
        number = int(match.group(1))
    else:
        return None
    return number if number >= 0 else None


def _media(value: dict[Any, Any]) -> dict[str, str] | None:
    """A Teams media object: ``url`` and optionally ``resource_id``, both texts."""
    if "url" not in value or not set(value) <= {"url", "resource_id"}:
        return None
    typed = {key: _text(item) for key, item in value.items()}
    return None if None in typed.values() else typed  # type: ignore[return-value]


def _typed(data: dict[str, Any]) -> dict[str, Any] | None:
    """What the action's schema makes of ``data`` (types only); None: vol.Invalid."""
    typed: dict[str, Any] = {}
    for key, value in data.items():
        converted: Any
        if key in ("config_entry_id", *TEAMS_TEXT_FIELDS):
            converted = _text(value)
        elif key in ("autoanswer", *TEAMS_BOOLEAN_FIELDS):
            converted = _boolean(value)
        elif key in ("repeat", "volume"):
            converted = _whole(value)
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


def _numbers(raw: list[str]) -> list[str] | None:
    """Numbers to call, trimmed, blanks skipped, duplicates once; None: refused."""
    numbers: list[str] = []
    for item in raw:
        number = item.strip()
        if not number:
            continue
        if not _NUMBER.fullmatch(number):
            return None
        if number not in numbers:
            numbers.append(number)
    return numbers if 1 <= len(numbers) <= MAX_TARGETS else None


def _extensions(raw: list[str]) -> list[str] | None:
    """API v1 rings extensions only: digits, at most 16."""
    numbers = _numbers(raw)
    if numbers is None or not all(_EXTENSION.fullmatch(number) for number in numbers):
        return None
    return numbers


def _p_names(raw: list[str]) -> list[str] | None:
    """P-Series Custom Prompt names: letters, digits, _, - and inner spaces, 1-64 each."""
    names = [name.strip() for name in raw]
    if not 1 <= len(names) <= MAX_NAMES:
        return None
    for name in names:
        if not name or len(name) > P_MAX_NAME:
            return None
        if not all(char.isalnum() or char in "_- " for char in name):
            return None
    return names


def _s_names(raw: list[str]) -> list[str] | None:
    """S-Series Custom Prompt names: not empty, not all digits, no +, printable, ≤ 255."""
    names = [name.strip() for name in raw]
    if not 1 <= len(names) <= MAX_NAMES:
        return None
    for name in names:
        if not name or "+" in name or name.isdigit():
            return None
        if len(name) > S_MAX_NAME or not name.isprintable():
            return None
    return names


def _answer(value: bool) -> str:
    return "yes" if value else "no"


def _p_body(
    number: str, names: list[str], autoanswer: bool, count: int | None, volume: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"number": number, "prompts": names, "auto_answer": _answer(autoanswer)}
    return body | _optional(count=count, volume=volume)


def _s_v2_body(
    number: str, names: list[str], autoanswer: bool, count: int | None, volume: int | None
) -> dict[str, Any]:
    body = {"number": number, "prompt": "+".join(names), "autoanswer": _answer(autoanswer)}
    return body | {key: str(value) for key, value in _optional(count=count, volume=volume).items()}


def _s_v1_body(
    number: str, names: list[str], autoanswer: bool, count: int | None, volume: int | None
) -> dict[str, Any]:
    # Refused by capability before.
    assert count is None
    assert volume is None
    return {"extid": number, "prompt": "+".join(names), "autoanswer": _answer(autoanswer)}


def _optional(**fields: int | None) -> dict[str, int]:
    """The optional fields that were given (``count``, ``volume``)."""
    return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class Rules:
    """What one PBX entry takes, from its documentation."""

    names: Callable[[list[str]], list[str] | None]
    numbers: Callable[[list[str]], list[str] | None]
    body: Callable[[str, list[str], bool, int | None, int | None], dict[str, Any]]
    unsupported: frozenset[str]  # fields the backend lacks the capability for


P_RULES: Final = Rules(names=_p_names, numbers=_numbers, body=_p_body, unsupported=TEAMS_FIELDS)
S_V2_RULES: Final = Rules(
    names=_s_names, numbers=_numbers, body=_s_v2_body, unsupported=TEAMS_FIELDS
)
S_V1_RULES: Final = Rules(
    names=_s_names,
    numbers=_extensions,
    body=_s_v1_body,
    unsupported=TEAMS_FIELDS | {"repeat", "volume"},
)


def _intended(data: dict[str, Any], rules: Rules) -> list[dict[str, Any]] | frozenset[str]:
    """The bodies the PBX should get for ``data``, in target order; or why it is refused.

    A refusal is the set of reasons any of which may be the one raised: the action's own
    checks come before the client's (``invalid_input``), in an order nothing documents.
    """
    typed = _typed(data)
    if typed is None:
        return frozenset({SCHEMA})
    targets = typed.get("target", typed.get("extension", []))
    prompts = typed.get("prompt", [])
    reasons = set()
    if rules.unsupported & typed.keys():
        reasons.add("fields_not_supported")
    if "target" in typed and "extension" in typed:
        reasons.add("target_and_extension")
    if not prompts:
        reasons.add("nothing_to_play")
    if not targets:
        reasons.add("target_required")
    if reasons:
        return frozenset(reasons)
    if any(isinstance(prompt, dict) for prompt in prompts):
        return INVALID  # a media object: Teams only
    names = rules.names(_parts(prompts, "+"))
    numbers = rules.numbers(_parts(targets, ",;"))
    count, volume = typed.get("repeat"), typed.get("volume")
    if names is None or numbers is None:
        return INVALID
    if (count is not None and count not in COUNT_RANGE) or (
        volume is not None and volume not in VOLUME_RANGE
    ):
        return INVALID
    autoanswer = typed.get("autoanswer", False)
    return [rules.body(number, names, autoanswer, count, volume) for number in numbers]


# -- strategies -------------------------------------------------------------------------------

WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2003\u3000\u2028"
whitespace = st.text(alphabet=WHITESPACE, max_size=2)
any_text = st.text(max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**40),
    st.floats(),
    any_text,
    st.just(""),
    whitespace,
)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=2),
    max_leaves=6,
)
media = st.fixed_dictionaries({"url": any_text}, optional={"resource_id": any_text})


def _padded(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(whitespace, strategy, whitespace).map("".join)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = ["1000"]
    for _ in range(depth):
        value = [value]
    return value


def _targets_strategy(known: list[str]) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(any target value, a valid one) for a PBX that knows the numbers ``known``."""
    item = st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        st.sampled_from([EXTERNAL, "004930123456", "+1", "1234567", "+" + "9" * 32, "9" * 32]),
        st.sampled_from(
            ["4242", "0", "9" * 33, "+" + "9" * 33, "++1", "+", "1+1", "-1000", "1000.0"]
        ),
        st.sampled_from(
            [
                "1 000",
                "\uff11\uff10\uff10\uff10",
                "\u0661\u0660\u0660\u0660",
                "1000\x00",
                "0x10",
                "+ 1000",
                "10a0",
            ]
        ),
        st.from_regex(r"\+?[0-9]{1,34}", fullmatch=True),
        st.text(alphabet="0123456789+\u0661\u00b2,; ", max_size=6),
        any_text,
    )
    text = st.one_of(
        _padded(item),
        st.tuples(st.lists(_padded(item), max_size=5), st.sampled_from([",", ";", ", ", ";;"])).map(
            lambda parts: parts[1].join(parts[0])
        ),
    )
    huge: list[Any] = [
        ["1000"] * 2_000,
        ",".join(str(n) for n in range(1_000_000, 1_000_501)),  # 501 numbers
        [str(n) for n in range(1_000_000, 1_000_501)],
        "1" * 10_000,
        "+" + "1" * 10_000,
        [EXTERNAL] * 3 + [f" {EXTERNAL} "],
        _nested(100),
    ]
    anything = st.one_of(
        text,
        text,
        st.sampled_from([1000, 6300, 4930123456, 0, -1, 10**40, 1000.0, 1e20, True, False]),
        st.lists(st.one_of(_padded(item), st.integers(999, 1003)), max_size=5),
        st.lists(text, min_size=1, max_size=3),  # separated texts in a list
        st.lists(st.one_of(item, scalars, nested), max_size=4),
        scalars,
        nested,
        st.sampled_from(huge),
    )
    valid = st.one_of(
        st.sampled_from(known),
        st.lists(st.sampled_from(known), min_size=1, max_size=4),
        st.lists(_padded(st.sampled_from(known)), min_size=1, max_size=4).map(",".join),
        st.lists(st.sampled_from(known), min_size=1, max_size=4).map(lambda n: [";".join(n)]),
    )
    return anything, valid


def _prompts_strategy(
    known: list[str], odd: list[str]
) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(any prompt value, a valid one) for a PBX with the prompts ``known``."""
    name = st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ -]{0,20}", fullmatch=True),
        st.sampled_from(odd),
        any_text,
    )
    text = st.one_of(_padded(name), st.lists(_padded(name), max_size=5).map("+".join))
    huge: list[Any] = [
        "x" * 10_000,
        "doorbell+" * 60,
        ["doorbell"] * 51,
        ["doorbell"] * 50,
        "+".join(["doorbell"] * 50),
        _nested(100),
    ]
    anything = st.one_of(
        text,
        text,
        st.lists(_padded(name), max_size=5),
        st.lists(text, min_size=1, max_size=3),  # texts joined by + in a list
        st.lists(st.one_of(_padded(name), scalars, nested, media), max_size=4),
        scalars,
        media,
        nested,
        st.sampled_from(huge),
    )
    valid = st.one_of(
        _padded(st.sampled_from(known)),
        st.lists(st.sampled_from(known), min_size=1, max_size=4),
        st.lists(st.sampled_from(known), min_size=1, max_size=4).map("+".join),
    )
    return anything, valid


# Names at the edges of both rule sets: valid on one PBX and refused on the other, or on both.
ODD_NAMES: Final = [
    "123",
    "²³",
    "٣٣",
    "Türklingel",
    "日本語",
    "a  b",
    "x_-y",
    "door.bell",
    "alarm!",
    "a+b",
    "",
    " ",
    "a\tb",
    "a\u00a0b",
    "a\u2028b",
    "e\u0301",
    "\x00",
    "x" * 64,
    "x" * 65,
    "x" * 255,
    "x" * 256,
]
# P-Series: extensions 1000-1003, paging 6300 and intercom 6301 (tests/fakes/yeastar_p.py).
P_KNOWN: Final = ["1000", "1001", "1002", "1003", "6300", "6301", EXTERNAL]
# S-Series: 1002 is unavailable and 1003 busy; 1010-1109 are registered; paging group 6300.
S_KNOWN: Final = ["1000", "1001", "1002", "1003", "1010", "1011", "1050", "6300"]
p_target, valid_p_target = _targets_strategy(P_KNOWN)
p_prompt, valid_p_prompt = _prompts_strategy(sorted(P_PROMPTS), ODD_NAMES)
s_target, valid_s_target = _targets_strategy(S_KNOWN)
s_prompt, valid_s_prompt = _prompts_strategy(sorted(S_PROMPTS), ODD_NAMES)

# repeat and volume; infinities have their own test (test_infinite_repeat_or_volume_is_refused).
number_value = st.one_of(
    st.integers(-2, 22),
    st.integers(-2, 22),
    st.integers(),
    st.booleans(),
    st.floats(allow_infinity=False),
    st.sampled_from(["3", " 7 ", "10", "0", "20", "21", "-1", "٣", "1_0", "3.0", "", "ten"]),
    st.sampled_from(["+5", "-0", "0x5", "1e1", "²", "5\x1c", "\u20035", "1__0", "_1"]),
    st.from_regex(r" ?[+-]?[0-9]{1,3} ?", fullmatch=True),
    st.none(),
    st.lists(st.integers(0, 5), max_size=2),
    any_text,
)
autoanswer_value = st.one_of(
    st.booleans(),
    st.sampled_from(["yes", "no", "on", "off", "true", "false", "1", "0", " YES ", "maybe", ""]),
    st.integers(-2, 2),
    st.floats(),
    st.none(),
    any_text,
    st.lists(st.booleans(), max_size=2),
)
valid_autoanswer = st.one_of(st.booleans(), st.sampled_from(["yes", "no", " On ", "0"]))


def service_data(
    target: st.SearchStrategy[Any],
    valid_target: st.SearchStrategy[Any],
    prompt: st.SearchStrategy[Any],
    valid_prompt: st.SearchStrategy[Any],
    *,
    numbers: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Action data: valid, valid but for one field, or anything at all."""

    def valid_with(**hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        fields: dict[str, st.SearchStrategy[Any]] = {
            "config_entry_id": st.just(ENTRY),
            "target": valid_target,
            "prompt": valid_prompt,
        }
        optional: dict[str, st.SearchStrategy[Any]] = {"autoanswer": valid_autoanswer}
        if numbers:
            optional |= {"repeat": st.integers(1, 10), "volume": st.integers(0, 20)}
        for key, strategy in hostile.items():
            optional.pop(key, None)
            fields[key] = strategy
        return st.fixed_dictionaries(fields, optional=optional)

    anything = st.fixed_dictionaries(
        {"config_entry_id": st.just(ENTRY)},
        optional={
            "target": target,
            "extension": target,
            "prompt": prompt,
            "autoanswer": autoanswer_value,
            **({"repeat": number_value, "volume": number_value} if numbers else {}),
            **dict.fromkeys(TEAMS_FIELDS, scalars),
        },
    )
    hostile_numbers = (
        [valid_with(repeat=number_value), valid_with(volume=number_value)] if numbers else []
    )
    return st.one_of(
        valid_with(),
        valid_with(),
        valid_with(target=target),
        valid_with(prompt=prompt),
        *hostile_numbers,
        valid_with(autoanswer=autoanswer_value),
        st.fixed_dictionaries(
            {"config_entry_id": st.just(ENTRY), "extension": valid_target, "prompt": valid_prompt}
        ),
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


class _AnyPrompt(set[str]):
    """Every prompt name is "uploaded" (S-Series fake): it answers on numbers alone."""

    def __contains__(self, item: object) -> bool:
        return True


class _AnyPromptP(dict[str, str]):
    """Every prompt name is "uploaded" (P-Series fake): it answers on numbers alone."""

    def __contains__(self, item: object) -> bool:
        return True


# -- secrets: nothing observable holds one ----------------------------------------------------

PREFIX = 12  # a leaked prefix of a token is a leak too


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])


def _error_texts(err: BaseException) -> Iterable[str]:
    yield "".join(traceback.format_exception(err))
    for link in _chain(err):
        yield str(link)
        yield repr(link)
        yield repr(link.args)
        for attribute in ("translation_placeholders", "message", "target"):
            if (value := getattr(link, attribute, None)) is not None:
                yield repr(value)


def _observable(
    caplog: pytest.LogCaptureFixture,
    errors: list[BaseException],
    responses: list[Any],
    changes: list[Event[Any]],
) -> list[tuple[str, str]]:
    """(where, text) of errors, responses, event entity states and every log record."""
    texts = [("error", text) for err in errors for text in _error_texts(err)]
    texts += [("response", json.dumps(response)) for response in responses]
    texts += [
        ("state", repr(dict(change.data["new_state"].attributes)))
        for change in changes
        if change.data["new_state"] is not None
    ]
    for record in caplog.records:
        texts.append((f"log {record.name}", caplog.handler.format(record)))
        texts.append((f"log args {record.name}", repr(record.args)))
        if record.exc_info and record.exc_info[1] is not None:
            texts += [(f"log {record.name}", text) for text in _error_texts(record.exc_info[1])]
    return texts


def _assert_no_leak(texts: list[tuple[str, str]], secrets: dict[str, bool]) -> None:
    """No secret (nor, for tokens, its first characters) in any text, in any case."""
    lowered = [(where, text.lower()) for where, text in texts]
    for secret, prefix_too in secrets.items():
        needles = {secret.lower(), *([secret[:PREFIX].lower()] if prefix_too else [])}
        for where, text in lowered:
            for needle in needles:
                assert needle not in text, f"secret {secret[:4]}… leaked in {where}"


def _p_secrets(fake: FakeYeastarP) -> dict[str, bool]:
    """The Client Secret and every access and refresh token the fake issued or saw."""
    found = {P_CLIENT_SECRET: False}
    for grant in fake.grants:
        found |= {grant.access_token: True, grant.refresh_token: True}
    for request in fake.requests:
        if request.token:
            found[request.token] = True
        for source in (request.reply, request.body):
            if isinstance(source, dict):
                for key in ("access_token", "refresh_token"):
                    if isinstance(value := source.get(key), str) and value:
                        found[value] = True
    return found


def _s_secrets(pbx: FakeYeastarPBX) -> dict[str, bool]:
    """The password, its MD5 and every token the fake issued or saw."""
    found = {PASSWORD: False, FakeYeastarPBX.md5(PASSWORD): True}
    found |= dict.fromkeys(pbx.tokens, True)
    for request in pbx.requests:
        if request.token:
            found[request.token] = True
        if isinstance(request.reply, dict) and isinstance(token := request.reply.get("token"), str):
            found[token] = True
    return found


def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("custom_components.voice_prompt", "homeassistant", "aiohttp"):
        caplog.set_level(logging.DEBUG, logger=name)


# -- the action: end to end against the fakes -------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Pbx:
    """How to read one fake: its requests, its play path and what its replies mean."""

    requests: list[RecordedRequest]
    play_path: str
    target_key: str  # the body field that holds the number
    # A reply → (call id, None) when the PBX placed the call, else (None, its code).
    verdict: Callable[[dict[str, Any]], tuple[str | None, str | None]]
    # The codes the PBX may refuse a well-formed request with (an unknown number, ...);
    # any other code means the request itself was malformed.
    refusals: frozenset[str]


def _p_verdict(reply: dict[str, Any]) -> tuple[str | None, str | None]:
    return (P_CALL_ID, None) if reply["errcode"] == 0 else (None, str(reply["errcode"]))


def _s_verdict(reply: dict[str, Any]) -> tuple[str | None, str | None]:
    if reply["status"] == "Success":
        return str(reply["callid"]), None
    return None, str(reply["errno"])


async def _action_property(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    pbx: Pbx,
    rules: Rules,
    examples: list[dict[str, Any]],
    errors: list[BaseException],
    responses: list[Any],
) -> Counter[str]:
    """Send each example through the real action; check what the fake received."""
    outcomes: Counter[str] = Counter()
    for raw in examples:
        data = {
            key: (entry.entry_id if key == "config_entry_id" and value == ENTRY else value)
            for key, value in raw.items()
        }
        intended = _intended(data, rules)
        before = len(pbx.requests)
        error: vol.Invalid | HomeAssistantError | None = None
        response: Any = None
        try:
            response = await hass.services.async_call(
                DOMAIN, SERVICE_PLAY_PROMPT, data, blocking=True, return_response=True
            )
        except (vol.Invalid, HomeAssistantError) as err:
            # Anything else escapes and fails the test: never another exception.
            error = err
            errors.append(err)
        new = pbx.requests[before:]
        context = f"input {_short(raw)} → {error!r}"

        if isinstance(intended, frozenset):
            if SCHEMA in intended:
                assert isinstance(error, vol.Invalid), context
                outcomes["refused by the schema"] += 1
            else:
                assert isinstance(error, ServiceValidationError), context
                assert error.translation_domain == DOMAIN, context
                assert error.translation_key in intended, context
                if error.translation_key == "fields_not_supported":
                    fields = ", ".join(sorted(rules.unsupported & data.keys()))
                    assert (error.translation_placeholders or {})["fields"] == fields, context
                outcomes[f"refused: {error.translation_key}"] += 1
            assert new == [], context  # refused before anything was sent
            continue

        assert [r.path for r in new] == [pbx.play_path] * len(intended), context
        sent = sorted((r.body for r in new), key=json.dumps)
        assert sent == sorted(intended, key=json.dumps), context
        verdicts = {r.body[pbx.target_key]: pbx.verdict(r.reply or {}) for r in new}
        codes = {code for _, code in verdicts.values() if code is not None}
        assert codes <= pbx.refusals, context  # nothing malformed reached the PBX
        placed = [
            body[pbx.target_key] for body in intended if verdicts[body[pbx.target_key]][1] is None
        ]
        expected_calls = [
            {"target": number, "call_id": verdicts[number][0], "status": "placed"}
            for number in placed
        ]
        expected_failed = [
            (body[pbx.target_key], verdicts[body[pbx.target_key]][1])
            for body in intended
            if body[pbx.target_key] not in placed
        ]
        if placed:
            assert error is None, context
            responses.append(response)
            assert response["calls"] == expected_calls, context
            assert [(f["target"], f["code"]) for f in response["failed"]] == expected_failed
            assert all(isinstance(f["error"], str) and f["error"] for f in response["failed"])
            outcomes["sent, placed"] += 1
        else:
            # No number could be called: an error, never silence.
            assert isinstance(error, HomeAssistantError), context
            if len(intended) > 1:
                assert error.translation_key == "all_targets_failed", context
            outcomes["sent, the PBX refused every number"] += 1
    outcomes["examples"] = len(examples)
    return outcomes


def _assert_both_sides(outcomes: Counter[str], count: int) -> None:
    """Enough examples ran, and both refusals and calls were among them."""
    examples = outcomes["examples"]
    assert examples >= count * 0.9
    assert outcomes["sent, placed"] >= examples // 10
    refused = sum(n for key, n in outcomes.items() if key.startswith("refused"))
    assert refused >= examples // 10


async def test_p_series_action_end_to_end_property(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Generated targets, prompts, repeat, volume and autoanswer through the real action."""
    _debug_logs(caplog)
    fake_p.prompts = _AnyPromptP(fake_p.prompts)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    examples = _collect(
        service_data(p_target, valid_p_target, p_prompt, valid_p_prompt), P_ACTION_EXAMPLES
    )
    pbx = Pbx(
        requests=fake_p.requests,
        play_path=P_PLAY,
        target_key="number",
        verdict=_p_verdict,
        refusals=frozenset({"60001"}),  # DATA NOT FOUND: a number the PBX does not know
    )
    errors: list[BaseException] = []
    responses: list[Any] = []

    outcomes = await _action_property(hass, p_loaded, pbx, P_RULES, examples, errors, responses)

    print(f"\nP-Series action end to end: {dict(outcomes)}")
    _assert_both_sides(outcomes, P_ACTION_EXAMPLES)
    assert fake_p.token_requests == 1  # nothing above upset the token
    _assert_no_leak(_observable(caplog, errors, responses, changes), _p_secrets(fake_p))


@pytest.fixture
async def v2_entry(
    hass: HomeAssistant, pbx: FakeYeastarPBX, config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The S-Series entry set up on a firmware with API v2 (the client then speaks v2)."""
    pbx.firmware_version = V2_FIRMWARE_VERSION
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.runtime_data.capabilities.repeat
    return config_entry


async def test_s_series_v2_action_end_to_end_property(
    hass: HomeAssistant,
    pbx: FakeYeastarPBX,
    v2_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same on S-Series API v2: count and volume as text, any number form."""
    _debug_logs(caplog)
    pbx.prompts = _AnyPrompt()
    logins = pbx.successful_logins  # setup's: v1 to read the firmware, then v2
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    examples = _collect(
        service_data(s_target, valid_s_target, s_prompt, valid_s_prompt), S_V2_ACTION_EXAMPLES
    )
    fake = Pbx(
        requests=pbx.requests,
        play_path=S_V2_PLAY,
        target_key="number",
        verdict=_s_verdict,
        # No such number, unavailable, busy, no outbound permission (no dial permission set).
        refusals=frozenset({"10011", "10015", "10008", "10024"}),
    )
    errors: list[BaseException] = []
    responses: list[Any] = []

    outcomes = await _action_property(hass, v2_entry, fake, S_V2_RULES, examples, errors, responses)

    print(f"\nS-Series API v2 action end to end: {dict(outcomes)}")
    _assert_both_sides(outcomes, S_V2_ACTION_EXAMPLES)
    assert pbx.successful_logins == logins  # nothing above upset the session
    _assert_no_leak(_observable(caplog, errors, responses, changes), _s_secrets(pbx))


async def test_s_series_v1_refuses_repeat_and_volume_property(
    hass: HomeAssistant, pbx: FakeYeastarPBX, loaded_entry: MockConfigEntry
) -> None:
    """On API v1, repeat and volume are refused by capability, naming them, nothing sent.

    Without them, only extensions are rung (an external number or a group beyond 16 digits
    needs API v2).
    """
    assert not loaded_entry.runtime_data.capabilities.repeat
    pbx.prompts = _AnyPrompt()
    without = service_data(s_target, valid_s_target, s_prompt, valid_s_prompt, numbers=False)
    valid = st.fixed_dictionaries(
        {"config_entry_id": st.just(ENTRY), "target": valid_s_target, "prompt": valid_s_prompt},
        optional={"autoanswer": valid_autoanswer},
    )
    number = st.one_of(st.integers(0, 21), st.integers(0, 21), number_value)
    numbers = st.one_of(
        st.fixed_dictionaries({"repeat": number}),
        st.fixed_dictionaries({"volume": number}),
        st.fixed_dictionaries({"repeat": number, "volume": number}),
    )
    with_numbers = st.tuples(st.one_of(valid, without), numbers).map(lambda p: p[0] | p[1])
    # Half carry repeat and/or volume (drawn apart: one_of's mix varies a lot).
    examples = _collect(without, S_V1_ACTION_EXAMPLES // 2)
    examples += _collect(with_numbers, S_V1_ACTION_EXAMPLES - len(examples))
    fake = Pbx(
        requests=pbx.requests,
        play_path=S_V1_PLAY,
        target_key="extid",
        verdict=_s_verdict,
        refusals=frozenset({"10006", "10015", "10008"}),  # no such extension, unavailable, busy
    )

    outcomes = await _action_property(hass, loaded_entry, fake, S_V1_RULES, examples, [], [])

    print(f"\nS-Series API v1 action end to end: {dict(outcomes)}")
    _assert_both_sides(outcomes, S_V1_ACTION_EXAMPLES)
    assert outcomes["refused: fields_not_supported"] >= outcomes["examples"] // 10


# -- secrets on the P-Series' failure paths, through the action -------------------------------


def _echo(fake: FakeYeastarP) -> dict[str, Any]:
    """A refusal that echoes the access token and the Client Secret as values."""
    token = fake.grants[-1].access_token
    return {
        "errcode": 40002,
        "errmsg": "PARAMETER ERROR",
        "invalid_param_list": [
            {"field": "number", "value": token},
            {"field": "prompts", "value": P_CLIENT_SECRET},
        ],
    }


P_FAULTS: Final[dict[str, Callable[[FakeYeastarP], None]]] = {
    "dropped connection": lambda fake: setattr(fake, "drop_connection", True),
    "redirect loop (the URL holds the token)": lambda fake: setattr(fake, "redirect_loop", True),
    "HTTP 500": lambda fake: setattr(fake, "http_status", 500),
    "not JSON": lambda fake: setattr(fake, "garbage", True),
    "not an object": lambda fake: fake.reply_override.update({P_PLAY: "[1, 2]"}),
    "token and secret echoed": lambda fake: fake.fail_next.update({P_PLAY: [_echo(fake)] * 2}),
    "token refused twice": lambda fake: fake.fail_next.update({P_PLAY: [10004] * 4}),
    "internal error": lambda fake: fake.fail_next.update({P_PLAY: [-2] * 2}),
}


def _lift_faults(fake: FakeYeastarP) -> None:
    fake.drop_connection = fake.redirect_loop = fake.garbage = False
    fake.http_status = None
    fake.reply_override.clear()
    fake.fail_next.clear()


async def test_p_series_failures_hold_no_secret(
    hass: HomeAssistant,
    fake_p: FakeYeastarP,
    p_loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every way a P-Series play can fail: no Client Secret or token in what anyone sees.

    ``test_yeastar_p.py`` checks the logs of the flows, token renewal, reauth and
    diagnostics; here the action's errors (with their whole cause chain), responses,
    event entity states and DEBUG logs after transport and PBX failures.
    """
    _debug_logs(caplog)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    errors: list[BaseException] = []
    responses: list[Any] = []
    failed: Counter[str] = Counter()

    for name, fault in P_FAULTS.items():
        for target in ("1000", ["1000", "6300"]):
            fault(fake_p)
            with pytest.raises(HomeAssistantError) as raised:
                await play_prompt(hass, p_loaded, target=target, prompt="doorbell", repeat=2)
            _lift_faults(fake_p)
            errors.append(raised.value)
            failed[name] += 1
    responses.append(await play_prompt(hass, p_loaded, target="1000", prompt="doorbell"))

    print(f"\nP-Series failures: {len(errors)} errors, {len(caplog.records)} log records")
    assert failed == dict.fromkeys(P_FAULTS, 2)
    assert responses[0]["calls"] == [{"target": "1000", "call_id": P_CALL_ID, "status": "placed"}]
    assert fake_p.refreshes >= 1  # the refused token was renewed: new tokens to look for
    secrets = _p_secrets(fake_p)
    assert len(secrets) >= 5  # the secret, the first and the renewed pair of tokens
    _assert_no_leak(_observable(caplog, errors, responses, changes), secrets)


# -- the clients' normalisers, directly -------------------------------------------------------

number_item = st.one_of(
    st.sampled_from(P_KNOWN),
    st.sampled_from(["004930123456", "+" + "9" * 32, "9" * 32, "9" * 33, "++1", "+", "1+1"]),
    st.sampled_from(
        [
            "-1000",
            "1000.0",
            "1 000",
            "\u0661\u0660\u0660\u0660",
            "\uff11\uff10\uff10\uff10",
            "1000\n",
            "\u20031000",
        ]
    ),
    st.from_regex(r"\+?[0-9]{1,34}", fullmatch=True),
    st.text(alphabet="0123456789+\u0661,; ", max_size=6),
    any_text,
)
number_text = st.one_of(
    _padded(number_item),
    st.tuples(st.lists(_padded(number_item), max_size=5), st.sampled_from([",", ";", ", "])).map(
        lambda parts: parts[1].join(parts[0])
    ),
)
number_input = st.one_of(
    number_text,
    number_text,
    st.integers(-10, 10**40),
    st.booleans(),
    st.none(),
    st.floats(),
    st.lists(
        st.one_of(
            _padded(number_item),
            st.integers(-5, 10**35),
            st.booleans(),
            st.none(),
            st.floats(),
            st.lists(number_item, max_size=2),
        ),
        max_size=6,
    ),
    st.lists(_padded(number_item), max_size=4).map(tuple),
    st.binary(max_size=6),
    st.dictionaries(any_text, any_text, max_size=2),
    st.sampled_from(
        [
            [str(n) for n in range(10**6, 10**6 + MAX_TARGETS)],  # exactly 500
            [str(n) for n in range(10**6, 10**6 + MAX_TARGETS + 1)],
            ",".join(str(n) for n in range(10**6, 10**6 + MAX_TARGETS)),
            ["1000"] * 5_000,
            "1" * 10_000,
        ]
    ),
)
name_item = st.one_of(
    st.sampled_from(sorted(P_PROMPTS)),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ -]{0,20}", fullmatch=True),
    st.sampled_from(ODD_NAMES),
    any_text,
)
prompt_input = st.one_of(
    _padded(name_item),
    st.lists(_padded(name_item), max_size=6).map("+".join),
    st.lists(_padded(name_item), max_size=6),
    st.lists(_padded(name_item), max_size=4).map(tuple),
    st.lists(st.one_of(name_item, scalars), max_size=4),
    scalars,
    st.binary(max_size=4),
    st.sampled_from([["doorbell"] * 50, ["doorbell"] * 51, "+".join(["doorbell"] * 51)]),
)


def _doc_number(value: Any) -> str | None:
    """One number: a text or a whole number, trimmed, 1-32 ASCII digits after an optional +."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text if _NUMBER.fullmatch(text) else None


def _doc_numbers(value: Any) -> list[str] | None:
    """``"1000"``, ``"1000, +4930123"``, a whole number, or a list (one number an item)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        items: list[Any] = str(value).replace(";", ",").split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return None  # bytes and dicts are no list of numbers
    if any(isinstance(item, bool) or not isinstance(item, (str, int)) for item in items):
        return None
    return _numbers([str(item) for item in items])


def _doc_prompts(value: Any, names: Callable[[list[str]], list[str] | None]) -> list[str] | None:
    """``"a+b"`` or a list of names."""
    if isinstance(value, str):
        raw: list[Any] = value.split("+")
    elif isinstance(value, (list, tuple)):
        raw = list(value)
    else:
        return None
    if any(not isinstance(name, str) for name in raw):
        return None
    return names(raw)


def _normalised(function: Callable[[Any], Any], value: Any) -> Any:
    """The function's result, or None when it refuses with VoicePromptInputError."""
    try:
        return function(value)
    except VoicePromptInputError:
        return None


def test_number_normalisers_property() -> None:
    """The P-Series (and S-Series v2) number normalisers return the documented form or refuse."""
    outcomes: Counter[str] = Counter()

    @_settings(NORMALISER_EXAMPLES)
    @given(number_input)
    @example("1000; 1001,,1000")
    @example(["1000", "1001,1002"])
    @example([" +4930123456 ", "", 6300])
    @example(b"1000")  # bytes are no sequence of numbers
    @example(1000)
    @example(-1000)
    @example(True)
    @example([])
    def check(value: Any) -> None:
        outcomes["examples"] += 1
        expected = _doc_numbers(value)
        assert _normalised(p_api.normalize_numbers, value) == expected, _short(value)
        assert _normalised(s_api.normalize_numbers, value) == expected, _short(value)
        assert _normalised(p_api.normalize_number, value) == _doc_number(value), _short(value)
        outcomes["accepted" if expected else "refused"] += 1

    check()
    print(f"\nnumber normalisers: {dict(outcomes)}")
    assert outcomes["examples"] >= NORMALISER_EXAMPLES
    assert outcomes["accepted"] >= NORMALISER_EXAMPLES // 10
    assert outcomes["refused"] >= NORMALISER_EXAMPLES // 10


def test_prompt_normalisers_property() -> None:
    """The P-Series prompt normalisers return the documented names or refuse."""
    outcomes: Counter[str] = Counter()

    @_settings(NORMALISER_EXAMPLES)
    @given(prompt_input)
    @example("doorbell+lunch_ready")
    @example([" Türklingel ", "a b", "x_-y", "123"])
    @example("door.bell")
    @example(["a+b"])
    @example("")
    @example([""])
    @example([])
    @example("x" * 64)
    @example("x" * 65)
    def check(value: Any) -> None:
        outcomes["examples"] += 1
        expected = _doc_prompts(value, _p_names)
        assert _normalised(p_api.normalize_prompts, value) == expected, _short(value)
        name = _p_names([value]) if isinstance(value, str) else None
        got = _normalised(p_api.normalize_prompt_name, value)
        assert got == (None if name is None else name[0]), _short(value)
        outcomes["accepted" if expected else "refused"] += 1

    check()
    print(f"\nprompt normalisers: {dict(outcomes)}")
    assert outcomes["examples"] >= NORMALISER_EXAMPLES
    assert outcomes["accepted"] >= NORMALISER_EXAMPLES // 10
    assert outcomes["refused"] >= NORMALISER_EXAMPLES // 10


def test_count_and_volume_bounds_property() -> None:
    """count is a whole number 1-10 and volume one 0-20, in both clients; nothing else."""
    # The documented ranges (services.yaml, API notes, the clients' docstrings).
    for client in (p_api, s_api):
        assert (client.MAX_COUNT, client.MIN_VOLUME, client.MAX_VOLUME) == (10, 0, 20)
    outcomes: Counter[str] = Counter()

    @_settings(BOUNDED_EXAMPLES)
    @given(
        st.one_of(
            st.integers(-3, 25),
            st.integers(0, 20),
            st.integers(0, 20),
            st.integers(),
            st.booleans(),
            st.floats(),
            st.decimals(allow_nan=False, places=0),
            st.fractions(max_denominator=3),
            st.sampled_from(["3", " 7 ", "", "ten"]),
            st.none(),
            st.lists(st.integers(0, 5), max_size=2),
        )
    )
    @example(1)
    @example(10)
    @example(0)
    @example(20)
    @example(True)
    @example(3.0)
    @example(Decimal(3))
    def check(value: Any) -> None:
        outcomes["examples"] += 1
        whole = isinstance(value, int) and not isinstance(value, bool)
        for low, high in ((1, p_api.MAX_COUNT), (p_api.MIN_VOLUME, p_api.MAX_VOLUME)):
            expected = value if whole and low <= value <= high else None
            got = _normalised(lambda v, low=low, high=high: bounded("It", v, low, high), value)
            assert got == expected, _short(value)
            assert got is None or type(got) is int
        outcomes["accepted" if whole and 0 <= value <= 20 else "refused"] += 1

    check()
    print(f"\ncount and volume bounds: {dict(outcomes)}")
    assert outcomes["examples"] >= BOUNDED_EXAMPLES
    assert outcomes["accepted"] >= BOUNDED_EXAMPLES // 10


# -- edges the documentation rules out -------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("repeat", math.inf), ("volume", -math.inf)])
async def test_infinite_repeat_or_volume_is_refused(
    hass: HomeAssistant, fake_p: FakeYeastarP, p_loaded: MockConfigEntry, field: str, value: float
) -> None:
    """An infinite number is no whole number: refused by the schema, nothing sent."""
    before = len(fake_p.requests)
    with pytest.raises(vol.Invalid):
        await play_prompt(hass, p_loaded, target="1000", prompt="doorbell", **{field: value})
    assert len(fake_p.requests) == before


@pytest.mark.parametrize(
    "normalise",
    [
        p_api.normalize_number,
        p_api.normalize_numbers,
        s_api.normalize_numbers,
        s_api.normalize_extensions,
    ],
    ids=["p-number", "p-numbers", "s-numbers", "s-extensions"],
)
def test_huge_whole_number_is_refused_as_input(normalise: Callable[[Any], Any]) -> None:
    """A library caller's 5000-digit number is no number to call: VoicePromptInputError."""
    with pytest.raises(VoicePromptInputError) as exc_info:
        normalise(10**5000)
    assert str(exc_info.value).startswith("A number of more than 40 digits is not")
