"""One outcome per call from the events a backend reports, and waiting for it.

A waiting action holds one future per call it waits for: nothing polls, and an idle
wait costs a few hundred bytes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Final

from homeassistant.core import callback

from .calls import CallEvent, CallStatus

# Calls remembered per entry: those in progress, and the outcomes of the latest that ended
# (an outcome may arrive before its action starts waiting).
REMEMBERED_CALLS: Final = 512

# A call still in one of these states is waited for; any other status is its outcome.
UNDECIDED: Final = frozenset({CallStatus.PLACED, CallStatus.RINGING, CallStatus.ANSWERED})
# How far a call got; a later event never takes an outcome back.
_PROGRESS: Final = (
    CallStatus.PLACED,
    CallStatus.RINGING,
    CallStatus.ANSWERED,
    CallStatus.PLAYED,
    CallStatus.ACKNOWLEDGED,
)


class OutcomesClosedError(Exception):
    """The entry unloaded or Home Assistant is stopping: nobody waits any more."""


@dataclass(slots=True)
class _Waiting:
    futures: list[asyncio.Future[CallEvent]] = field(default_factory=list)


def merge(previous: CallEvent | None, event: CallEvent) -> CallEvent:
    """What is known of a call after ``event``, given what was known before.

    A call that ends after it was answered keeps how far it got (played, acknowledged);
    one that ends having never been answered did not answer.
    """
    if previous is None:
        merged = event
    else:
        merged = replace(
            event,
            target=event.target or previous.target,
            reason=event.reason or previous.reason,
            extras={**previous.extras, **event.extras},
        )
        if event.status in _PROGRESS and previous.status in _PROGRESS:
            best = max(previous.status, event.status, key=_PROGRESS.index)
            merged = replace(merged, status=best)
        elif event.status is CallStatus.ENDED and previous.status in _PROGRESS:
            merged = replace(merged, status=previous.status)
    if event.ends_call:
        merged = replace(merged, final=True)
    if merged.ends_call and merged.status in (
        CallStatus.ENDED,
        CallStatus.PLACED,
        CallStatus.RINGING,
    ):
        merged = replace(merged, status=CallStatus.NO_ANSWER)
    return merged


class CallOutcomes:
    """The calls of one entry: what each has done so far, and who waits for its end."""

    def __init__(self, remembered: int = REMEMBERED_CALLS) -> None:
        """Remember at most ``remembered`` calls in progress and as many ended ones."""
        self._remembered = remembered
        self._progress: OrderedDict[str, CallEvent] = OrderedDict()
        self._ended: OrderedDict[str, CallEvent] = OrderedDict()
        self._waiting: dict[str, _Waiting] = {}
        self.closed = False

    @callback
    def feed(self, event: CallEvent) -> None:
        """Take one event the backend reported."""
        if event.call_id is None or event.call_id in self._ended:
            return  # a call's outcome, once known, stays
        outcome = merge(self._progress.pop(event.call_id, None), event)
        if not outcome.ends_call:
            _keep(self._progress, event.call_id, outcome, self._remembered)
            return
        _keep(self._ended, event.call_id, outcome, self._remembered)
        for future in self._waiting.pop(event.call_id, _Waiting()).futures:
            if not future.done():
                future.set_result(outcome)

    def last(self, call_id: str) -> CallEvent | None:
        """The latest that is known of a call (None: nothing was reported)."""
        return self._ended.get(call_id) or self._progress.get(call_id)

    async def async_wait(self, call_id: str, seconds: float) -> CallEvent | None:
        """The call's outcome once it ends; None when ``seconds`` pass first.

        Raises OutcomesClosedError when the entry unloads while waiting.
        """
        if (ended := self._ended.get(call_id)) is not None:
            return ended
        if self.closed:
            raise OutcomesClosedError
        future: asyncio.Future[CallEvent] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(call_id, _Waiting())
        waiting.futures.append(future)
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            return None
        finally:
            if future in waiting.futures:
                waiting.futures.remove(future)
            if not waiting.futures and self._waiting.get(call_id) is waiting:
                del self._waiting[call_id]

    @callback
    def close(self) -> None:
        """End every wait: the entry unloads or Home Assistant stops."""
        self.closed = True
        for waiting in self._waiting.values():
            for future in waiting.futures:
                if not future.done():
                    future.set_exception(OutcomesClosedError())
        self._waiting.clear()

    @property
    def waiting(self) -> int:
        """How many calls someone waits for (diagnostics, benchmark)."""
        return len(self._waiting)


def _keep(store: OrderedDict[str, CallEvent], key: str, value: CallEvent, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)
