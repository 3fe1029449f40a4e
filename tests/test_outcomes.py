"""One outcome per call from a backend's events, and waiting for it."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.voice_prompt.backends.calls import CallEvent, CallStatus
from custom_components.voice_prompt.backends.outcomes import (
    CallOutcomes,
    OutcomesClosedError,
    merge,
)


def _event(status: CallStatus, call_id: str | None = "c1", **changes: object) -> CallEvent:
    return CallEvent(status=status, target="1000", call_id=call_id, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        pytest.param(["ringing", "answered", "ended"], "answered", id="answered-then-hung-up"),
        pytest.param(["ringing", "answered", "played", "ended"], "played", id="played"),
        pytest.param(["answered", "acknowledged", "played", "ended"], "acknowledged", id="ack"),
        pytest.param(["ringing", "ended"], "no_answer", id="rang-out"),
        pytest.param(["ended"], "no_answer", id="nothing-before"),
        pytest.param(["ringing", "busy"], "busy", id="busy"),
        pytest.param(["answered", "failed"], "failed", id="failed-after-answer"),
    ],
)
def test_merge_keeps_how_far_a_call_got(statuses: list[str], outcome: str) -> None:
    known: CallEvent | None = None
    for status in statuses:
        known = merge(known, _event(CallStatus(status)))
    assert known is not None
    assert known.ends_call
    assert known.status == outcome


def test_merge_keeps_target_reason_and_extras() -> None:
    first = CallEvent(status=CallStatus.ANSWERED, target="1000", call_id="c", extras={"a": 1})
    last = CallEvent(status=CallStatus.ENDED, call_id="c", reason="Normal", extras={"b": 2})

    merged = merge(first, last)

    assert (merged.target, merged.reason, dict(merged.extras)) == (
        "1000",
        "Normal",
        {"a": 1, "b": 2},
    )
    assert merged.status is CallStatus.ANSWERED


def test_a_final_event_ends_the_call_whatever_its_status() -> None:
    assert not _event(CallStatus.PLAYED).ends_call
    assert _event(CallStatus.PLAYED, final=True).ends_call


async def test_wait_gets_the_outcome_when_the_call_ends() -> None:
    outcomes = CallOutcomes()
    waiter = asyncio.create_task(outcomes.async_wait("c1", 5))
    await asyncio.sleep(0)
    assert outcomes.waiting == 1

    outcomes.feed(_event(CallStatus.ANSWERED))
    await asyncio.sleep(0)
    assert not waiter.done()
    assert outcomes.last("c1") == _event(CallStatus.ANSWERED)
    outcomes.feed(_event(CallStatus.PLAYED, final=True))

    outcome = await waiter
    assert outcome is not None
    assert outcome.status is CallStatus.PLAYED
    assert outcomes.waiting == 0


async def test_an_outcome_that_came_first_is_remembered() -> None:
    """A call may end before its action starts waiting."""
    outcomes = CallOutcomes()
    outcomes.feed(_event(CallStatus.BUSY))

    outcome = await outcomes.async_wait("c1", 5)

    assert outcome is not None
    assert outcome.status is CallStatus.BUSY


async def test_wait_is_bounded() -> None:
    outcomes = CallOutcomes()
    outcomes.feed(_event(CallStatus.RINGING))

    assert await outcomes.async_wait("c1", 0.01) is None
    assert outcomes.waiting == 0
    assert outcomes.last("c1") == _event(CallStatus.RINGING)


async def test_two_waiters_of_one_call_both_get_it() -> None:
    outcomes = CallOutcomes()
    waiters = [asyncio.create_task(outcomes.async_wait("c1", 5)) for _ in range(2)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    outcomes.feed(_event(CallStatus.REJECTED))
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]
    outcome = await waiters[1]
    assert outcome is not None
    assert outcome.status is CallStatus.REJECTED


async def test_close_ends_every_wait() -> None:
    outcomes = CallOutcomes()
    waiter = asyncio.create_task(outcomes.async_wait("c1", 5))
    await asyncio.sleep(0)

    outcomes.close()

    with pytest.raises(OutcomesClosedError):
        await waiter
    with pytest.raises(OutcomesClosedError):
        await outcomes.async_wait("c2", 5)


def test_events_without_a_call_id_and_memory_are_bounded() -> None:
    outcomes = CallOutcomes(remembered=3)
    outcomes.feed(_event(CallStatus.FAILED, call_id=None))
    for number in range(10):
        outcomes.feed(_event(CallStatus.RINGING, call_id=f"r{number}"))
        outcomes.feed(_event(CallStatus.BUSY, call_id=f"b{number}"))

    assert [outcomes.last(f"r{n}") is not None for n in range(10)] == [False] * 7 + [True] * 3
    assert [outcomes.last(f"b{n}") is not None for n in range(10)] == [False] * 7 + [True] * 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(CallStatus)), st.sampled_from(["a", "b", None]), st.booleans()
        ),
        max_size=30,
    )
)
def test_any_event_order_gives_one_outcome_per_call(
    events: list[tuple[CallStatus, str | None, bool]],
) -> None:
    """Whatever order and repetition: never an exception; an ended call has a real outcome."""
    outcomes = CallOutcomes(remembered=4)
    for status, call_id, final in events:
        outcomes.feed(_event(status, call_id=call_id, final=final))
    for call_id in ("a", "b"):
        known = outcomes.last(call_id)
        if known is not None and known.ends_call:
            assert known.status not in (CallStatus.ENDED, CallStatus.PLACED, CallStatus.RINGING)


def test_an_outcome_once_known_stays() -> None:
    """Events after the end (a late hang-up report, a copy) change nothing."""
    outcomes = CallOutcomes()
    outcomes.feed(_event(CallStatus.PLAYED, final=True))
    outcomes.feed(_event(CallStatus.ENDED))
    known = outcomes.last("c1")
    assert known is not None
    assert known.status is CallStatus.PLAYED
