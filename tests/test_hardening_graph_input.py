"""Hardening for the Teams backend: hostile action input, property-tested with Hypothesis.

The claim, as for the PBX: every value a caller can put in the Teams fields either
becomes exactly the intended Graph request data or is refused with ``vol.Invalid`` or a
``VoicePromptInputError`` (a translated ServiceValidationError in Home Assistant) before
anything is sent. Never another exception.

"Intended" is written from the documentation, independently of the code: a prompt is an
``https://`` URL without white space (``http://`` is refused), or ``{url, resource_id}``;
1 to 20 of them; the same URL always gets the same generated resource id; a target is a
GUID (any case, kept lower-case) or ``+`` and 7 to 15 digits, spaces, dots, dashes and
brackets allowed in between; ``client_context`` is at most 256 characters, generated when
empty. A refusal says why in English and never repeats a URL's query (a signature).
"""

from __future__ import annotations

import re
from typing import Any
import uuid

from hypothesis import given, settings, strategies as st

from custom_components.voice_prompt.api import (
    TargetKind,
    VoicePromptInputError,
    check_client_context,
    parse_media,
    parse_target,
)
from custom_components.voice_prompt.services import PLAY_PROMPT_SCHEMA
from custom_components.voice_prompt.validation import vol

# A signed URL's query: long and random enough that finding it in a text is a leak.
SIGNATURES = st.text(alphabet="0123456789abcdef", min_size=16, max_size=24)
SIGNED = st.builds(
    lambda scheme, sig, space: f"{scheme}://media.example.test/a{space}.wav?sig={sig}",
    st.sampled_from(["https", "http", "ftp", "HTTPS"]),
    SIGNATURES,
    st.sampled_from(["", " "]),
)
URLS = st.one_of(
    st.builds(lambda path: f"https://media.example.test/{path}", st.text(max_size=30)),
    st.builds(lambda path: f"http://media.example.test/{path}", st.text(max_size=10)),
    st.text(max_size=40),
    st.sampled_from(["https://", "HTTPS://A/x.wav", " https://a/b.wav ", "ftp://a/b"]),
    SIGNED,
)
ITEMS = st.one_of(
    URLS,
    st.fixed_dictionaries(
        {"url": URLS}, optional={"resource_id": st.one_of(st.text(max_size=10), st.none())}
    ),
    st.integers(),
    st.none(),
    st.booleans(),
)
PROMPTS = st.one_of(ITEMS, st.lists(ITEMS, max_size=25))
GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def _intended_url(item: Any) -> str | None:
    """The URL Graph should get for one item, or None when it must be refused."""
    url = item.get("url") if isinstance(item, dict) else item
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url.lower().startswith("https://") or any(c.isspace() for c in url):
        return None
    resource_id = item.get("resource_id") if isinstance(item, dict) else None
    if resource_id is not None and (not isinstance(resource_id, str) or not resource_id.strip()):
        return None
    return url


def _signatures(items: list[Any]) -> set[str]:
    """The ``sig=`` values of the items' URLs that no other, visible part of the input holds."""
    signatures, visible = set(), []
    for item in items:
        url = item.get("url") if isinstance(item, dict) else item
        base, _, query = str(url).partition("?")
        visible.append(base)
        if isinstance(url, str) and query.startswith("sig="):
            signatures.add(query.removeprefix("sig=").strip())
    return {sig for sig in signatures if sig and not any(sig in text for text in visible)}


def _outcome(func: Any, *args: Any) -> tuple[Any, VoicePromptInputError | None]:
    """(result, None) or (None, the input error): any other exception fails the test."""
    try:
        return func(*args), None
    except VoicePromptInputError as err:
        return None, err


def _assert_explained(error: VoicePromptInputError) -> None:
    """A refusal carries an English message and no backend code (nothing was sent)."""
    assert isinstance(error.message, str)
    assert error.message.strip()
    assert str(error) == error.message
    assert error.code is None


@settings(max_examples=1500, deadline=None)
@given(PROMPTS)
def test_media_is_exact_or_refused(prompts: Any) -> None:
    items = prompts if isinstance(prompts, list) else [prompts]
    intended = [_intended_url(item) for item in items]
    acceptable = 0 < len(items) <= 20 and None not in intended
    media, error = _outcome(parse_media, prompts)
    if error is not None:
        assert not acceptable, f"refused a valid prompt list: {error}"
        _assert_explained(error)
        for signature in _signatures(items):
            assert signature not in error.message, "a URL's signature is in the error"
        return
    assert acceptable, f"accepted {prompts!r}"
    assert [m.uri for m in media] == intended
    assert all(m.resource_id.strip() for m in media)
    for item, medium in zip(items, media, strict=True):
        given_id = item.get("resource_id") if isinstance(item, dict) else None
        expected_id = (
            given_id.strip() if given_id else str(uuid.uuid5(uuid.NAMESPACE_URL, medium.uri))
        )
        assert medium.resource_id == expected_id
    again = parse_media(prompts)  # the same URL keeps the same cache id
    assert [m.resource_id for m in again] == [m.resource_id for m in media]


PHONE_NOISE = st.text(alphabet=" .-()", max_size=3)


@st.composite
def _targets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["guid", "phone", "text"]))
    if kind == "guid":
        value = str(draw(st.uuids()))
        return value.upper() if draw(st.booleans()) else value
    if kind == "phone":
        digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=17))
        return "+" + "".join(d + draw(PHONE_NOISE) for d in digits)
    return draw(st.text(max_size=40))


@settings(max_examples=1500, deadline=None)
@given(_targets())
def test_target_is_exact_or_refused(text: str) -> None:
    stripped = text.strip()
    phone = re.sub(r"[\s().-]", "", stripped)
    if GUID_RE.fullmatch(stripped):
        expected: tuple[TargetKind, str] | None = (TargetKind.USER, stripped.lower())
    elif re.fullmatch(r"\+[1-9][0-9]{6,14}", phone):
        expected = (TargetKind.PHONE, phone)
    else:
        expected = None
    target, error = _outcome(parse_target, text)
    if error is not None:
        assert expected is None, f"refused {text!r}"
        _assert_explained(error)
        assert error.target == stripped[:60]  # the error says whom it concerns
        return
    assert (target.kind, target.id) == expected


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=300)))
def test_client_context_is_kept_or_refused(value: str | None) -> None:
    context, error = _outcome(check_client_context, value)
    if error is not None:
        assert value is not None
        assert len(value) > 256
        _assert_explained(error)
        return
    if value:
        assert context == value
    else:
        assert str(uuid.UUID(context)) == context  # a generated UUID


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=800, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "prompt",
                "call_id",
                "target",
                "extension",
                "client_context",
                "loop",
                "hang_up",
                "autoanswer",
            ]
        ),
        JSONISH,
    )
)
def test_schema_types_the_teams_fields_or_refuses(fields: dict[str, Any]) -> None:
    """The action schema lets through only the documented types, never crashes."""
    data = {"config_entry_id": "x", "prompt": "https://a/b.wav", **fields}
    try:
        validated = PLAY_PROMPT_SCHEMA(data)
    except vol.Invalid:
        return
    for key in ("call_id", "client_context"):
        if key in validated:
            assert isinstance(validated[key], str)
    for key in ("target", "extension"):  # one or a list: always a list of texts
        if key in validated:
            assert isinstance(validated[key], list)
            assert all(isinstance(item, str) for item in validated[key])
    for key in ("loop", "hang_up", "autoanswer"):
        if key in validated:
            assert isinstance(validated[key], bool)
    prompt = validated["prompt"]
    assert isinstance(prompt, list)
    for item in prompt:
        assert isinstance(item, (str, dict))
        if isinstance(item, dict):
            assert set(item) <= {"url", "resource_id"}
            assert all(isinstance(value, str) for value in item.values())
