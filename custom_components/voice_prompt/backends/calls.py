"""What a call is to every backend: the request, its result, and the events it reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from ..api import VoicePromptError
from ..speech import Speech


class CallStatus(StrEnum):
    """What happened to a call, the same words for every backend."""

    PLACED = "placed"  # the backend accepted the call; nothing more is known
    RINGING = "ringing"
    ANSWERED = "answered"
    PLAYED = "played"  # the prompts played to the end
    ACKNOWLEDGED = "acknowledged"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    FAILED = "failed"
    ENDED = "ended"

    @property
    def ends_call(self) -> bool:
        """Whether a call with this status is over, whatever came before."""
        return self in _ENDING


_ENDING: Final = frozenset(
    {
        CallStatus.NO_ANSWER,
        CallStatus.BUSY,
        CallStatus.REJECTED,
        CallStatus.FAILED,
        CallStatus.ENDED,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayRequest:
    """One ``play_prompt`` action, validated for types, for the entry's backend.

    Optional fields are None when the caller left them out; the action has already
    refused every field the backend's capabilities do not cover.
    """

    targets: tuple[str, ...] = ()
    prompts: tuple[str | Mapping[str, Any], ...] = ()
    speech: Speech | None = None  # the message, rendered; it plays before the prompts
    repeat: int | None = None
    volume: int | None = None
    autoanswer: bool | None = None
    call_id: str | None = None
    client_context: str | None = None
    loop: bool | None = None
    hang_up: bool | None = None
    acknowledge: str | None = None  # the key the callee presses to confirm


@dataclass(slots=True, kw_only=True)
class CallResult:
    """One call the backend placed (or played into)."""

    target: str
    call_id: str | None
    status: CallStatus
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class CallFailure:
    """One target the backend could not call."""

    target: str
    error: VoicePromptError


@dataclass(slots=True)
class PlayResult:
    """What an action did: calls placed, and the targets that failed."""

    calls: list[CallResult] = field(default_factory=list)
    failed: list[CallFailure] = field(default_factory=list)
    acknowledged_by: str | None = None  # an escalation: the target that confirmed


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """Something that happened to a call, for the entry's event entity."""

    status: CallStatus
    target: str | None = None
    call_id: str | None = None
    reason: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    final: bool = False  # the last event of the call (statuses that end a call always are)

    @property
    def ends_call(self) -> bool:
        """Whether the call is over after this event."""
        return self.final or self.status.ends_call
