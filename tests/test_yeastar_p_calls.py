"""Which P-Series call an event is about, and what it means (``backends/yeastar_p_calls``)."""

from __future__ import annotations

from typing import Any

from freezegun.api import FrozenDateTimeFactory
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.voice_prompt.api.yeastar_p_events import (
    TOPICS,
    YeastarPEvent,
    YeastarPEventType,
    YeastarPMember,
    YeastarPMemberKind,
    parse_event,
)
from custom_components.voice_prompt.backends.calls import CallEvent, CallStatus
from custom_components.voice_prompt.backends.yeastar_p_calls import (
    MATCH_SECONDS,
    REMEMBERED,
    CallTracker,
    status_for_reason,
)

EXT = YeastarPMemberKind.EXTENSION
STATUS = YeastarPEventType.CALL_STATUS


def _status(call_id: str, number: str, state: str, **member: Any) -> YeastarPEvent:
    return YeastarPEvent(STATUS, call_id, (YeastarPMember(EXT, number, status=state, **member),))


def _other(call_id: str, kind: YeastarPEventType, number: str, **fields: Any) -> YeastarPEvent:
    return YeastarPEvent(kind, call_id, (YeastarPMember(EXT, number, status="ANSWER"),), **fields)


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("480 Temporatily Unavailable", CallStatus.NO_ANSWER),
        ("408 Request Time", CallStatus.NO_ANSWER),
        ("603 Declined", CallStatus.NO_ANSWER),
        ("487 Request Terminated", CallStatus.NO_ANSWER),
        ("486 Busy here", CallStatus.BUSY),
        ("Circuit/channel congestion", CallStatus.BUSY),
        ("User Busy", CallStatus.REJECTED),
        ("DND", CallStatus.REJECTED),
        ("404 NOT found", CallStatus.FAILED),
        ("NO Dial Permission", CallStatus.FAILED),
        ("Line Unreachable", CallStatus.FAILED),
        ("", CallStatus.FAILED),
        (None, CallStatus.FAILED),
    ],
)
def test_reasons(reason: str | None, status: CallStatus) -> None:
    """Every documented 30015 reason has its outcome."""
    assert status_for_reason(reason) is status


def test_a_whole_call() -> None:
    """Ringing, answered, played, ended: our id, the number, the PBX's id in the extras."""
    tracker = CallTracker()
    ours = tracker.add("1000", last_prompt="b", acknowledge=None)
    assert tracker.diagnostics() == {"waiting_for_pbx": 1, "in_progress": 0}
    seen: list[CallEvent] = []
    for event in (
        YeastarPEvent(
            YeastarPEventType.EXTENSION_CALL_STATUS, extension="1000", extension_status="Ringing"
        ),
        _status("9.1", "1000", "RING"),
        _status("9.1", "1000", "RING"),  # no news
        _status("9.1", "1000", "ANSWER"),
        _other("9.1", YeastarPEventType.PLAY_PROMPT_END, "1000", prompt="a"),  # not the last
        _other("9.1", YeastarPEventType.PLAY_PROMPT_END, "1000", prompt="b"),
        _status("9.1", "1000", "BYE"),
        _status("9.1", "1000", "BYE"),  # over: dropped
    ):
        seen += tracker.events(event)
    assert [(event.status, event.final) for event in seen] == [
        (CallStatus.RINGING, False),
        (CallStatus.ANSWERED, False),
        (CallStatus.PLAYED, False),
        (CallStatus.ENDED, True),
    ]
    assert {event.call_id for event in seen} == {ours}
    assert {event.target for event in seen} == {"1000"}
    assert seen[-1].extras == {"pbx_call_id": "9.1"}
    assert tracker.diagnostics() == {"waiting_for_pbx": 0, "in_progress": 0}


def test_only_a_starting_event_binds() -> None:
    """A BYE, a prompt's end or a key of a call already there binds nothing."""
    tracker = CallTracker()
    tracker.add("1000", last_prompt=None, acknowledge="1")
    for event in (
        _status("1.1", "1000", "BYE"),
        _status("1.1", "1000", "HOLD"),
        _other("1.2", YeastarPEventType.PLAY_PROMPT_END, "1000"),
        _other("1.3", YeastarPEventType.DTMF, "1000", digit="1"),
        _status("1.4", "2000", "RING"),  # another number
        YeastarPEvent(STATUS, None),
        YeastarPEvent(
            YeastarPEventType.EXTENSION_CALL_STATUS, extension="1000", extension_status="Idle"
        ),
    ):
        assert tracker.events(event) == []
    assert tracker.diagnostics()["waiting_for_pbx"] == 1


def test_acknowledge_and_digits() -> None:
    """The acknowledging key is reported once; every key goes with the end."""
    tracker = CallTracker()
    tracker.add("+4930123456", last_prompt=None, acknowledge="#")
    outbound = YeastarPMember(YeastarPMemberKind.OUTBOUND, "+4930123456", status="ANSWER")
    events: list[CallEvent] = []
    for digit in ("3", "#", "#"):
        events += tracker.events(YeastarPEvent(STATUS, "5.5", (outbound,)))
        events += tracker.events(YeastarPEvent(YeastarPEventType.DTMF, "5.5", (), digit=digit))
    events += tracker.events(YeastarPEvent(YeastarPEventType.PLAY_PROMPT_END, "5.5"))
    events += tracker.events(
        YeastarPEvent(
            YeastarPEventType.CALL_STATUS,
            "5.5",
            (YeastarPMember(YeastarPMemberKind.OUTBOUND, "+4930123456", status="BYE"),),
        )
    )
    assert [event.status for event in events] == [
        CallStatus.ANSWERED,
        CallStatus.ACKNOWLEDGED,
        CallStatus.PLAYED,
        CallStatus.ENDED,
    ]
    assert events[1].extras["digit"] == "#"
    assert events[-1].extras["digits"] == "3##"


def test_group_and_failure_at_once() -> None:
    """A group is reached through its number; a 30015 first is the call's outcome."""
    tracker = CallTracker()
    tracker.add("6300", last_prompt=None, acknowledge=None)
    tracker.add("1001", last_prompt=None, acknowledge=None)
    (event,) = tracker.events(
        YeastarPEvent(
            YeastarPEventType.CALL_FAILED,
            "7.7",
            (YeastarPMember(EXT, "1001", status="BYE"),),
            reason="486 Busy here",
        )
    )
    assert (event.target, event.status, event.reason, event.final) == (
        "1001",
        CallStatus.BUSY,
        "486 Busy here",
        True,
    )
    (event,) = tracker.events(_status("7.8", "1000", "RING", call_path="6300"))
    assert (event.target, event.status) == ("6300", CallStatus.RINGING)


def test_same_number_twice_in_order() -> None:
    """Two calls to one number: the first event binds the older request."""
    tracker = CallTracker()
    first = tracker.add("1000", last_prompt=None, acknowledge=None)
    second = tracker.add("1000", last_prompt=None, acknowledge=None)
    assert [e.call_id for e in tracker.events(_status("1.1", "1000", "RING"))] == [first]
    assert [e.call_id for e in tracker.events(_status("1.2", "1000", "RING"))] == [second]


def test_discard_and_expiry(freezer: FrozenDateTimeFactory) -> None:
    """A refused request is forgotten; one no event names in time expires."""
    tracker = CallTracker()
    refused = tracker.add("1000", last_prompt=None, acknowledge=None)
    tracker.discard(refused)
    assert tracker.events(_status("1.1", "1000", "RING")) == []
    tracker.add("1000", last_prompt=None, acknowledge=None)
    freezer.tick(MATCH_SECONDS + 1)
    assert tracker.events(_status("1.2", "1000", "RING")) == []
    assert tracker.diagnostics()["waiting_for_pbx"] == 0


def test_bounded_memory() -> None:
    """Calls followed and ended ids are bounded (a PBX sending events forever)."""
    tracker = CallTracker()
    for index in range(REMEMBERED + 10):
        tracker.add(str(index), last_prompt=None, acknowledge=None)
        tracker.events(_status(f"c{index}", str(index), "RING"))
    assert tracker.diagnostics()["in_progress"] == REMEMBERED
    for index in range(REMEMBERED + 10):
        tracker.events(_status(f"c{index}", str(index), "BYE"))
    assert len(tracker._ended) <= REMEMBERED


_TEXT = st.text(max_size=6) | st.sampled_from(["1000", "6300", "+4930123456", "1", "#"])
_VALUE = st.none() | st.booleans() | st.integers() | _TEXT | st.lists(_TEXT, max_size=2)
_MEMBER = st.dictionaries(
    st.sampled_from(["extension", "outbound", "inbound", "x"]),
    st.dictionaries(
        st.sampled_from(["number", "to", "from", "member_status", "call_path", "channel_id"]),
        _VALUE | st.sampled_from(["RING", "ANSWER", "ANSWERED", "BYE", "HOLD", "ALERT"]),
        max_size=5,
    ),
    min_size=1,
    max_size=1,
)
_MSG = st.fixed_dictionaries(
    {"call_id": st.sampled_from(["1.1", "1.2", "2.1", 7])},
    optional={
        "members": st.lists(_MEMBER | _VALUE, max_size=3),
        "reason": _VALUE,
        "info": _VALUE,
        "infos": _VALUE,
        "prompt": st.sampled_from(["doorbell", "alarm"]) | _VALUE,
        "extension": _TEXT,
        "status": st.sampled_from(["Ringing", "Idle"]) | _VALUE,
    },
)
REPORTS = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from([*TOPICS, 30012]), "msg": _MSG | _VALUE}),
    max_size=12,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(reports=REPORTS, acknowledge=st.sampled_from([None, "1", "#"]))
def test_any_events_never_raise(reports: list[dict[str, Any]], acknowledge: str | None) -> None:
    """Whatever the PBX sends, the tracker gives events of our calls only, never raising."""
    tracker = CallTracker()
    ours = {
        tracker.add(number, last_prompt="alarm", acknowledge=acknowledge)
        for number in ("1000", "6300", "+4930123456")
    }
    for report in reports:
        event = parse_event(report)
        if event is None:
            continue
        for call_event in tracker.events(event):
            assert call_event.call_id in ours
            assert call_event.target in ("1000", "6300", "+4930123456")
            assert isinstance(call_event.status, CallStatus)
