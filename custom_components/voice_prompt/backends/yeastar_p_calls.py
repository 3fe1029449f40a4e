"""P-Series calls from the PBX's events: which call an event is about, and what it means.

``call/play_prompt`` answers without a call id, so each target gets an id of ours when
it is sent, and waits for the PBX's call to show up. The first call event that names the
target's number (a member's number, or the group it was reached through) *and starts a
call* (ringing, answered, or failed at once) after the request binds the PBX's call id to
ours; the call's later events follow that id. A target that no event names within
``MATCH_SECONDS`` is forgotten. Events of calls already over (a BYE, a prompt's end, a
key) never bind: they belong to a call that was there before the request.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
import time
from typing import Any, Final
import uuid

from ..api.yeastar_p_events import YeastarPEvent, YeastarPEventType
from .calls import CallEvent, CallStatus

# The PBX reports a call within a second of the request; this leaves room for a busy one.
MATCH_SECONDS: Final = 30.0
# Calls followed at once, and ended PBX call ids remembered (their late events are dropped).
REMEMBERED: Final = 512

_RINGING: Final = frozenset({"ALERT", "RING", "EARLYMEDIA"})
_ANSWERED: Final = frozenset({"ANSWER", "ANSWERED"})
_BYE: Final = "BYE"
# 30015 reasons (as the PBX writes them, compared in lower case, by prefix) → outcome;
# any other reason (no permission, unknown number, line unreachable) is failed.
_REASONS: Final[tuple[tuple[str, CallStatus], ...]] = (
    ("480", CallStatus.NO_ANSWER),  # not answered
    ("408", CallStatus.NO_ANSWER),  # not answered, or the phone is off
    ("603", CallStatus.NO_ANSWER),  # rang until the timeout
    ("487", CallStatus.NO_ANSWER),  # cancelled while ringing
    ("486", CallStatus.BUSY),  # in another call
    ("circuit/channel congestion", CallStatus.BUSY),
    ("user busy", CallStatus.REJECTED),  # the callee declined
    ("dnd", CallStatus.REJECTED),  # do not disturb: the callee takes no calls
)


def status_for_reason(reason: str | None) -> CallStatus:
    """The outcome of a call that failed (30015) for ``reason``."""
    text = (reason or "").strip().lower()
    return next(
        (status for prefix, status in _REASONS if text.startswith(prefix)), CallStatus.FAILED
    )


@dataclass(slots=True)
class _Call:
    """One target of one action, as far as its events told."""

    call_id: str  # ours: what the action returned
    number: str
    placed_at: float
    last_prompt: str | None  # its 30018 means everything played
    acknowledge: str | None  # the key that acknowledges
    pbx_call_id: str | None = None
    channel_id: str | None = None  # the callee's channel: what call/hangup ends
    reported: set[CallStatus] = field(default_factory=set)
    digits: list[str] = field(default_factory=list)


class CallTracker:
    """The P-Series calls of one entry, from request to end, turned into ``CallEvent``s."""

    def __init__(self, match_seconds: float = MATCH_SECONDS) -> None:
        """Wait ``match_seconds`` at most for a target's first event."""
        self._match_seconds = match_seconds
        self._waiting: dict[str, deque[_Call]] = {}  # number → calls not yet seen, oldest first
        self._calls: OrderedDict[str, _Call] = OrderedDict()  # PBX call id → call
        self._ended: OrderedDict[str, None] = OrderedDict()  # PBX call ids of calls over

    def add(self, number: str, *, last_prompt: str | None, acknowledge: str | None) -> str:
        """A target about to be called; returns the call id the action reports."""
        call = _Call(f"vp-{uuid.uuid4().hex}", number, time.monotonic(), last_prompt, acknowledge)
        self._waiting.setdefault(number, deque()).append(call)
        return call.call_id

    def discard(self, call_id: str) -> None:
        """Forget a target the PBX refused (no call will come)."""
        for number, queue in list(self._waiting.items()):
            for call in [call for call in queue if call.call_id == call_id]:
                queue.remove(call)
            if not queue:
                del self._waiting[number]

    def channel(self, call_id: str) -> str | None:
        """The channel of a call in progress (None: not ours, not seen yet, or over)."""
        return next(
            (call.channel_id for call in self._calls.values() if call.call_id == call_id), None
        )

    def diagnostics(self) -> dict[str, Any]:
        """How many calls wait for their first event, and how many are followed."""
        return {
            "waiting_for_pbx": sum(len(queue) for queue in self._waiting.values()),
            "in_progress": len(self._calls),
        }

    def events(self, event: YeastarPEvent) -> list[CallEvent]:
        """What ``event`` means for the calls of this entry (most events: nothing)."""
        if event.type is YeastarPEventType.EXTENSION_CALL_STATUS:
            return self._extension_status(event)
        if event.call_id is None or event.call_id in self._ended:
            return []
        call = self._calls.get(event.call_id) or self._bind(event)
        if call is None:
            return []
        status, reason, final = self._meaning(call, event)
        if status is None or (status in call.reported and not final):
            return []
        call.reported.add(status)
        extras: dict[str, Any] = {"pbx_call_id": call.pbx_call_id}
        if status is CallStatus.ACKNOWLEDGED:
            extras["digit"] = call.acknowledge
        if final:
            self._end(call)
            if call.digits:
                extras["digits"] = "".join(call.digits)
        return [
            CallEvent(
                status=status,
                target=call.number,
                call_id=call.call_id,
                reason=reason,
                extras=extras,
                final=final,
            )
        ]

    # -- internals -------------------------------------------------------------------------

    def _extension_status(self, event: YeastarPEvent) -> list[CallEvent]:
        """30008 Ringing of an extension we are about to call: it rings (nothing binds)."""
        queue = self._waiting.get(event.extension or "")
        if event.extension_status != "Ringing" or not queue:
            return []
        call = queue[0]
        if CallStatus.RINGING in call.reported:
            return []
        call.reported.add(CallStatus.RINGING)
        return [CallEvent(status=CallStatus.RINGING, target=call.number, call_id=call.call_id)]

    def _bind(self, event: YeastarPEvent) -> _Call | None:
        """The waiting call this event starts, if it starts one of ours."""
        starts = event.type is YeastarPEventType.CALL_FAILED or (
            event.type is YeastarPEventType.CALL_STATUS
            and any(member.status in _RINGING | _ANSWERED for member in event.members)
        )
        if not starts:
            return None
        now = time.monotonic()
        for number in event.numbers():
            queue = self._waiting.get(number)
            while queue and queue[0].placed_at + self._match_seconds < now:
                queue.popleft()  # never showed up
            if not queue:
                self._waiting.pop(number, None)
                continue
            call = queue.popleft()
            if not queue:
                del self._waiting[number]
            call.pbx_call_id = str(event.call_id)
            self._calls[call.pbx_call_id] = call
            while len(self._calls) > REMEMBERED:
                self._calls.popitem(last=False)
            return call
        return None

    def _meaning(
        self, call: _Call, event: YeastarPEvent
    ) -> tuple[CallStatus | None, str | None, bool]:
        """(status, reason, final) of one event of a bound call; status None: nothing new."""
        if event.type is YeastarPEventType.CALL_FAILED:
            return status_for_reason(event.reason), event.reason, True
        if event.type is YeastarPEventType.DTMF:
            if event.digit:
                call.digits.append(event.digit)
            if call.acknowledge is not None and event.digit == call.acknowledge:
                return CallStatus.ACKNOWLEDGED, None, False
            return None, None, False
        if event.type is YeastarPEventType.PLAY_PROMPT_END:
            # One 30018 per prompt: the last prompt's end is the end of what we play.
            if call.last_prompt is None or event.prompt in (None, call.last_prompt):
                return CallStatus.PLAYED, None, False
            return None, None, False
        ours = [member for member in event.members if member.reaches(call.number)]
        call.channel_id = next(
            (member.channel_id for member in ours if member.channel_id), call.channel_id
        )
        statuses = {member.status for member in ours or event.members}
        if statuses & _ANSWERED:
            return CallStatus.ANSWERED, None, False
        if statuses & _RINGING:
            return CallStatus.RINGING, None, False
        if statuses and statuses <= {_BYE}:
            return CallStatus.ENDED, None, True
        return None, None, False

    def _end(self, call: _Call) -> None:
        pbx_call_id = str(call.pbx_call_id)
        self._calls.pop(pbx_call_id, None)
        self._ended[pbx_call_id] = None
        while len(self._ended) > REMEMBERED:
            self._ended.popitem(last=False)
