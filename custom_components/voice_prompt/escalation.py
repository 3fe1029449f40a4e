"""``wait`` and ``escalate`` of the action: outcomes instead of ``placed``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Final

from .api import VoicePromptError, VoicePromptInputError
from .backends.base import (
    Backend,
    CallEvent,
    CallFailure,
    CallResult,
    CallStatus,
    PlayRequest,
    PlayResult,
)
from .backends.outcomes import UNDECIDED, OutcomesClosedError
from .errors import needs_reauth

DEFAULT_WAIT_TIMEOUT: Final = 120  # seconds, per call (per target when escalating)
MAX_WAIT_TIMEOUT: Final = 900


async def async_wait_calls(
    backend: Backend, result: PlayResult, seconds: float
) -> list[CallResult]:
    """Wait for every undecided call of ``result``; return those that did not end in time.

    Each call's status becomes its outcome, its extras gain what the events told.
    """

    async def one(call: CallResult) -> bool:
        if call.status not in UNDECIDED or call.call_id is None:
            return True
        outcome = await backend.outcomes.async_wait(call.call_id, seconds)
        if outcome is None:
            if (known := backend.outcomes.last(call.call_id)) is not None:
                _apply(call, known)
            call.extras["timed_out"] = True
            return False
        _apply(call, outcome)
        return True

    ended = await asyncio.gather(*(one(call) for call in result.calls))
    return [call for call, done in zip(result.calls, ended, strict=True) if not done]


def _apply(call: CallResult, event: CallEvent) -> None:
    call.status = event.status
    call.extras.update(event.extras)
    if event.reason is not None:
        call.extras["reason"] = event.reason


def goal_reached(request: PlayRequest, call: CallResult) -> bool:
    """Whether a call did what an escalation asks: acknowledged, or answered without a key."""
    if request.acknowledge is not None:
        return call.status is CallStatus.ACKNOWLEDGED
    return call.status in (CallStatus.ANSWERED, CallStatus.PLAYED, CallStatus.ACKNOWLEDGED)


async def async_escalate(
    backend: Backend, request: PlayRequest, seconds: float
) -> tuple[PlayResult, str | None]:
    """Call the targets one after another until one acknowledges (or answers).

    Returns every step's calls and failures, and the target that acknowledged (None:
    nobody did). Cancelled, or the entry unloading, the call in progress is ended first.
    """
    result = PlayResult()
    for target in request.targets:
        try:
            step = await backend.async_play(replace(request, targets=(target,)))
        except VoicePromptError as err:
            # The caller's mistake or refused credentials fail the next target too.
            if isinstance(err, VoicePromptInputError) or needs_reauth(err):
                raise
            result.failed.append(CallFailure(target=target, error=err))
            continue
        result.failed.extend(step.failed)
        result.calls.extend(step.calls)
        try:
            await async_wait_calls(backend, step, seconds)
        except (asyncio.CancelledError, OutcomesClosedError):
            await _async_end(backend, step)
            raise
        if any(goal_reached(request, call) for call in step.calls):
            return result, target
        # The next target is called only once this one's call is over.
        await _async_end(backend, step)
    return result, None


async def _async_end(backend: Backend, step: PlayResult) -> None:
    for call in step.calls:
        if call.status in UNDECIDED and call.call_id is not None:
            await backend.async_hang_up(call.call_id)
