"""Events from outside, drawn by Hypothesis: never an unhandled exception, only typed results.

What the phone systems send is read in one place per backend: ARI's websocket messages
(``parse_event``) and Graph's notification bodies (``GraphCallTracker.handle_body``). The
examples start from the real shapes (API_NOTES.md, the fakes) and bend every field: wrong
types, missing parts, unknown kinds, huge numbers, broken JSON. A message that is not an
event is a ValueError (ARI, counted by the reader) or a GraphNotificationError (Graph,
answered with 400); anything else is an event with the types its fields promise, or None.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from custom_components.voice_prompt.api.ari import AriEvent, AriEventType, parse_event
from custom_components.voice_prompt.api.graph import (
    GraphCallTracker,
    GraphEvent,
    GraphEventType,
    GraphNotificationError,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CALL_ID = "7ea5c2d1-0b3e-4f6a-9c8d-1e2f3a4b5c6d"
OPERATION_ID = "bb1d0c2e-3f4a-4b5c-8d6e-7f8091a2b3c4"

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _either(real: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as the system sends it, or any JSON value instead."""
    return st.one_of(real, JSON_VALUES)


# ------------------------------------------------------------------------ ARI


def _ari_channel() -> st.SearchStrategy[Any]:
    return _either(
        st.fixed_dictionaries(
            {"id": _either(st.just("vp-1.1")), "name": _either(st.just("PJSIP/1000-00000001"))},
            optional={"state": _either(st.sampled_from(["Ring", "Ringing", "Up", "Down"]))},
        )
    )


ARI_MESSAGES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"type": _either(st.sampled_from([kind.value for kind in AriEventType] + ["Dial"]))},
        optional={
            "channel": _ari_channel(),
            "playback": _either(
                st.fixed_dictionaries(
                    {"id": _either(st.just("pb-1"))},
                    optional={
                        "target_uri": _either(st.sampled_from(["channel:vp-1.1", "bridge:x"])),
                        "state": _either(st.sampled_from(["done", "failed", "playing"])),
                        "media_uri": _either(st.just("sound:hello-world")),
                    },
                )
            ),
            "digit": _either(st.sampled_from(["1", "#", ""])),
            "cause": _either(st.sampled_from([16, 17, 19, 21])),
            "cause_txt": _either(st.just("Normal Clearing")),
            "timestamp": _either(st.just("2026-12-02T16:44:37.721+0000")),
        },
    ),
)


@SETTINGS
@given(ARI_MESSAGES)
def test_an_ari_message_is_an_event_none_or_a_value_error(message: Any) -> None:
    """Every field of the event has the type it promises; nothing else escapes."""
    try:
        event = parse_event(message)
    except ValueError:
        return
    if event is None:
        return
    assert isinstance(event, AriEvent)
    assert isinstance(event.type, AriEventType)
    for text in (event.channel_id, event.playback_id, event.digit, event.cause_text):
        assert text is None or (isinstance(text, str) and text)
    assert event.cause is None or (isinstance(event.cause, int) and event.cause is not True)


# ------------------------------------------------------------------------ Graph


def _graph_item() -> st.SearchStrategy[Any]:
    call = f"/communications/calls/{CALL_ID}"
    return _either(
        st.fixed_dictionaries(
            {
                "changeType": _either(st.sampled_from(["created", "updated", "deleted"])),
                "resourceUrl": _either(
                    st.sampled_from([call, f"{call}/operations/{OPERATION_ID}", "/me"])
                ),
                "resourceData": _either(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "state": _either(
                                st.sampled_from(["establishing", "established", "terminated"])
                            ),
                            "status": _either(st.sampled_from(["running", "completed", "failed"])),
                            "clientContext": _either(st.just("doorbell")),
                            "resultInfo": _either(
                                st.fixed_dictionaries(
                                    {},
                                    optional={
                                        "code": _either(st.sampled_from([200, 400, 404])),
                                        "subcode": _either(st.sampled_from([0, 8535, 8536])),
                                        "message": _either(st.just("file format is invalid")),
                                    },
                                )
                            ),
                            "toneInfo": _either(
                                st.fixed_dictionaries(
                                    {
                                        "sequenceId": _either(st.integers(-3, 2**40)),
                                        "tone": _either(
                                            st.sampled_from(["tone1", "star", "pound", "tone"])
                                        ),
                                    }
                                )
                            ),
                        },
                    )
                ),
            }
        )
    )


GRAPH_BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda items: json.dumps({"value": items}).encode(),
        st.lists(_graph_item(), max_size=5),
    ),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
)


@SETTINGS
@given(st.lists(GRAPH_BODIES, min_size=1, max_size=4))
def test_graph_notifications_act_as_typed_events_or_are_refused(bodies: list[bytes]) -> None:
    """A body is refused (GraphNotificationError) or gives typed events of the one call."""
    tracker = GraphCallTracker()  # every call counts: the items need no placed call
    for body in bodies:
        try:
            events = tracker.handle_body(body)
        except GraphNotificationError:
            continue
        for event in events:
            assert isinstance(event, GraphEvent)
            assert isinstance(event.type, GraphEventType)
            assert event.call_id == CALL_ID
            if event.type is GraphEventType.TONE:
                assert event.tone is not None
                assert isinstance(event.sequence_id, int)
                assert event.sequence_id >= 0
            for number in (event.result_code, event.result_subcode):
                assert number is None or (isinstance(number, int) and number is not True)
