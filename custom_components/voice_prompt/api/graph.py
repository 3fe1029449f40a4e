"""Async client for Microsoft Graph cloud communications (Teams calls, playPrompt, tones).

No Home Assistant imports: the caller injects an ``aiohttp.ClientSession`` and feeds
the notifications Graph posts to its callback URL into :meth:`GraphClient.handle_notification`
(or the raw body into ``client.tracker.handle_body``) after checking them with
:class:`GraphNotificationVerifier`. The client's :class:`GraphCallTracker` decides what a
notification means: each thing told acts once, only for calls the client placed, with
bounded work and memory, and refusals are counted and logged quietly. Calls the client
holds up are kept alive (``keepAlive``) and, when asked, end or stop playing at a key press
(``subscribeToTone``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import json
import logging
import re
import time
from typing import Any, Final
import uuid

import aiohttp
import jwt
from yarl import URL

from .exceptions import (
    VoicePromptAuthenticationError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSecretExpiredError,
    VoicePromptTenantNotFoundError,
    VoicePromptTimeoutError,
)
from .http import opt_str, transport_error
from .singleflight import SingleFlight

_LOGGER = logging.getLogger(__name__)

LOGIN_BASE: Final = "https://login.microsoftonline.com"
GRAPH_BASE: Final = "https://graph.microsoft.com"
OPENID_CONFIG_URL: Final = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
NOTIFICATION_ISSUER: Final = "https://api.botframework.com"
SCOPE: Final = "https://graph.microsoft.com/.default"

DEFAULT_TIMEOUT: Final = 10.0
MAX_PROMPTS: Final = 20
MAX_CLIENT_CONTEXT: Final = 256
# Fetch a new token this long before the old one expires.
TOKEN_REFRESH_MARGIN: Final = 300.0
# 429/503: at most this many tries and this much waiting in all.
MAX_TRIES: Final = 3
MAX_RETRY_WAIT: Final = 30.0
# Re-read the signing keys for an unknown key id at most this often.
KEYS_REFRESH_INTERVAL: Final = 60.0
# Notifications remembered for waiters that start after the notification arrived, and
# calls whose notifications count.
_MEMORY: Final = 512

# -- what a notification may be (the callback is on the internet) --------------------
# Graph posts one commsNotifications body per change, its ``value`` a batch of a few
# items (a call's state, an operation's result, a participants update) of 1-3 KB each.
# A call placed here tells about five things in its whole life: establishing,
# established, the prompts' result, terminating, terminated.
MAX_NOTIFICATION_BYTES: Final = 256 * 1024  # a hundred real ones; larger is not parsed
MAX_NOTIFICATION_ITEMS: Final = 20  # items after these are not read
# Graph can be faster than its own reply to create_call: a notification for a call not
# known yet is held until the reply (at most the request timeout) plus this margin, and
# at most _MAX_HELD of them.
HOLD_MARGIN: Final = 5.0
_MAX_HELD: Final = 32
# A call's notifications count until this long after its end (a prompt that the hang-up
# cancelled is reported after the call ended), or this long if no end is ever reported.
CALL_GRACE: Final = 60.0
MAX_CALL_LIFE: Final = 24 * 3600.0
# Operations remembered per call as having acted (beyond it the oldest is forgotten).
_MAX_OPERATIONS_PER_CALL: Final = 64
# Repeats of a refusal are summarised in one log line at most this often.
SUMMARY_INTERVAL: Final = 60.0
# Graph ends a call that hears no keepAlive for 45 minutes; Microsoft recommends every 15.
KEEP_ALIVE_INTERVAL: Final = 15 * 60.0
# Calls held up at once (Graph allows an app 100 concurrent calls); the oldest is let go.
_MAX_HOLDS: Final = 128
# Key presses remembered per call as having acted (older ones count as copies).
_MAX_TONES_PER_CALL: Final = 64
# Operations this client stopped itself, whose cancellation is no news.
_MAX_STOPPED: Final = 512
# A key the callee presses, as Graph's toneInfo names it.
_TONES: Final = {
    **{f"tone{digit}": str(digit) for digit in range(10)},
    "star": "*",
    "pound": "#",
    "a": "A",
    "b": "B",
    "c": "C",
    "d": "D",
}
_KEYS: Final = frozenset(_TONES.values())

_GUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
# A URL in Graph's own error text: it may quote what we sent (the callback path holds
# the webhook id; a prompt URL may hold a signature or a password). Errors keep scheme
# and host only.
_URL_IN_TEXT: Final = re.compile(
    r"(https?://)(?:[^/\s'\"?#]*@)?([^/\s'\"?#]+)[^\s'\"]*", re.IGNORECASE
)
_CALL_URL: Final = re.compile(r"/communications/calls/([^/]+)(?:/operations/([^/]+))?/?$", re.I)

# AADSTS codes of the token endpoint → (exception class, English message).
_TOKEN_ERRORS: Final[dict[int, tuple[type[VoicePromptAuthenticationError], str]]] = {
    90002: (VoicePromptTenantNotFoundError, "Microsoft Entra ID does not know tenant {tenant}"),
    700016: (
        VoicePromptAuthenticationError,
        "Microsoft Entra ID does not know application {client} in tenant {tenant}",
    ),
    7000215: (
        VoicePromptAuthenticationError,
        "Microsoft Entra ID refused the client secret (use the secret's value, not its ID)",
    ),
    7000222: (
        VoicePromptSecretExpiredError,
        "The client secret of application {client} has expired; create a new one",
    ),
}


class TargetKind(StrEnum):
    """Whom a call goes to (the identity's key in Graph's participant info)."""

    USER = "user"
    PHONE = "phone"


class GraphEventType(StrEnum):
    """What a notification can tell; the integration maps these to call outcomes."""

    CALL_ESTABLISHED = "call_established"
    CALL_TERMINATED = "call_terminated"
    PROMPT_COMPLETED = "prompt_completed"
    PROMPT_FAILED = "prompt_failed"
    TONE = "tone"  # a key press on a call subscribed to tones


@dataclass(frozen=True, slots=True)
class GraphMedia:
    """One prompt: an HTTPS URL of a WAV file and its cache key at Microsoft."""

    uri: str
    resource_id: str

    def as_media_info(self) -> dict[str, str]:
        """The ``mediaInfo`` object Graph expects."""
        return {
            "@odata.type": "#microsoft.graph.mediaInfo",
            "uri": self.uri,
            "resourceId": self.resource_id,
        }


@dataclass(frozen=True, slots=True)
class GraphTarget:
    """Whom to call: a Teams user (Entra object id) or a phone number (E.164)."""

    kind: TargetKind
    id: str


@dataclass(frozen=True, slots=True)
class GraphOperation:
    """A playPrompt operation as Graph reported it."""

    id: str
    status: str
    client_context: str | None
    result_code: int | None = None
    result_subcode: int | None = None
    result_message: str | None = None

    @property
    def finished(self) -> bool:
        """``completed``/``failed`` in a reply mean no notification will follow."""
        return self.status in ("completed", "failed")


@dataclass(frozen=True, slots=True)
class GraphEvent:
    """Something a notification told: call state changes and operation results."""

    type: GraphEventType
    call_id: str
    operation_id: str | None = None
    client_context: str | None = None
    result_code: int | None = None
    result_subcode: int | None = None
    result_message: str | None = None
    tone: str | None = None  # TONE: the key (0-9, *, #, A-D)
    sequence_id: int | None = None  # TONE: Graph's incremental number of the press


@dataclass(frozen=True, slots=True)
class GraphAcknowledgement:
    """A key press that acknowledged a call: the key, and whether the call ends for it."""

    key: str
    hangs_up: bool


@dataclass(slots=True)
class GraphPlayResult:
    """What ``async_play`` did."""

    call_id: str
    operation: GraphOperation
    placed_call: bool = False
    hung_up: bool = False
    final: GraphEvent | None = None
    acknowledged: GraphEvent | None = None  # the key press that stopped the prompts

    @property
    def outcome(self) -> GraphEvent | GraphOperation:
        """Where the result comes from: the final notification, else Graph's own reply.

        Graph may answer playPrompt with ``completed``/``failed`` at once and then sends
        no notification; both carry the same result code, subcode and message.
        """
        return self.final or self.operation

    @property
    def status(self) -> str:
        """``completed``, ``failed``, ``acknowledged``, or the reply's status while playing."""
        if self.final is None and self.acknowledged is not None:
            return "acknowledged"
        return self.final.type.removeprefix("prompt_") if self.final else self.operation.status

    @property
    def finished(self) -> bool:
        """Whether the prompts' outcome is known (and ``outcome`` carries its codes)."""
        return self.final is not None or self.operation.finished


def parse_target(value: str) -> GraphTarget:
    """A Teams user object id (GUID) or an E.164 phone number."""
    text = value.strip()
    if _GUID.fullmatch(text):
        return GraphTarget(TargetKind.USER, text.lower())
    phone = re.sub(r"[\s().-]", "", text)
    if _E164.fullmatch(phone):
        return GraphTarget(TargetKind.PHONE, phone)
    raise VoicePromptInputError(
        f"{text[:60]} is neither a Teams user's object ID nor a phone number like +31201234567",
        target=text[:60],
    )


def parse_media(items: Sequence[str | Mapping[str, Any]]) -> list[GraphMedia]:
    """Validate prompts: 1..20 HTTPS URLs, each optionally with a ``resource_id``."""
    if isinstance(items, str) or not isinstance(items, Sequence):
        items = [items]
    if not items:
        raise VoicePromptInputError("No prompt was given")
    if len(items) > MAX_PROMPTS:
        raise VoicePromptInputError(f"Microsoft Teams plays at most {MAX_PROMPTS} prompts at once")
    media: list[GraphMedia] = []
    for item in items:
        if isinstance(item, Mapping):
            uri, resource_id = item.get("url", item.get("uri")), item.get("resource_id")
        else:
            uri, resource_id = item, None
        if not isinstance(uri, str) or not uri.strip():
            raise VoicePromptInputError(f"Prompt {str(uri)[:80]} is not a URL")
        uri = uri.strip()
        if uri.lower().startswith("http://"):
            raise VoicePromptInputError(
                f"Prompt {_shown(uri)} uses http://; Microsoft Teams plays media only from "
                "https:// URLs"
            )
        if not uri.lower().startswith("https://") or any(c.isspace() for c in uri):
            raise VoicePromptInputError(f"Prompt {_shown(uri)} is not an https:// URL")
        if resource_id is not None and (
            not isinstance(resource_id, str) or not resource_id.strip()
        ):
            raise VoicePromptInputError(f"The resource ID of prompt {_shown(uri)} is empty")
        # Graph caches media by resourceId: the same URL keeps the same id.
        media.append(
            GraphMedia(
                uri,
                resource_id.strip() if resource_id else str(uuid.uuid5(uuid.NAMESPACE_URL, uri)),
            )
        )
    return media


def _shown(uri: str) -> str:
    """A prompt URL for an error message: user info (passwords) and query left out."""
    base, query, _ = uri.partition("?")
    base = base.partition("#")[0]
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        base = f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"
    return base[:120] + ("?…" if query else "")


def parse_key(value: str) -> str:
    """The key a callee presses to acknowledge: 0-9, *, # or A-D (what Graph reports)."""
    key = value.strip().upper() if isinstance(value, str) else ""
    if key not in _KEYS:
        raise VoicePromptInputError(f"{str(value)[:8]} is not a key (0-9, *, #, A-D)")
    return key


def check_client_context(value: str | None) -> str:
    """Graph allows at most 256 characters; a missing one is generated."""
    if value is None or value == "":
        return str(uuid.uuid4())
    if len(value) > MAX_CLIENT_CONTEXT:
        raise VoicePromptInputError(
            f"client_context may have at most {MAX_CLIENT_CONTEXT} characters"
        )
    return value


def _canonical_id(value: str) -> str:
    """Graph's usual id form: a dashed lower-case GUID when the id is one."""
    compact = value.replace("-", "").lower()
    if re.fullmatch(r"[0-9a-f]{32}", compact):
        return str(uuid.UUID(compact))
    return value


def _norm_id(value: str) -> str:
    """Graph writes ids with or without dashes and in either case in notifications."""
    return value.replace("-", "").lower()


class NotificationDrop(StrEnum):
    """Why a notification, or part of one, did nothing (the webhook's answer in brackets)."""

    UNAUTHORIZED = "unauthorized"  # (401) its bearer token was refused
    TOO_LARGE = "too_large"  # (413) its body is over MAX_NOTIFICATION_BYTES
    NOT_JSON = "not_json"  # (400) its body is not a JSON object
    TOO_MANY_ITEMS = "too_many_items"  # (202) items beyond MAX_NOTIFICATION_ITEMS were not read
    UNKNOWN_CALL = "unknown_call"  # (202) about a call not placed here, or one long ended
    DUPLICATE = "duplicate"  # (202) told already: Graph delivers at least once


_REFUSED_KINDS: Final = (
    NotificationDrop.UNAUTHORIZED,
    NotificationDrop.TOO_LARGE,
    NotificationDrop.NOT_JSON,
)
_IGNORED_KINDS: Final = (
    NotificationDrop.TOO_MANY_ITEMS,
    NotificationDrop.UNKNOWN_CALL,
    NotificationDrop.DUPLICATE,
)
# The first line of each kind says what and why; duplicates are normal (Graph delivers
# at least once) and get no line.
_DROP_LINES: Final = {
    NotificationDrop.UNAUTHORIZED: ("Refused", "its token was refused ({detail})"),
    NotificationDrop.TOO_LARGE: ("Refused", f"its body is over {MAX_NOTIFICATION_BYTES} bytes"),
    NotificationDrop.NOT_JSON: ("Refused", "its body is not a JSON object"),
    NotificationDrop.TOO_MANY_ITEMS: (
        "Read part of",
        f"it had {{detail}} items and only the first {MAX_NOTIFICATION_ITEMS} were read",
    ),
    NotificationDrop.UNKNOWN_CALL: (
        "Ignored",
        "it is about a call not placed (or played into) here, or one that ended more than "
        f"{CALL_GRACE:g} s ago",
    ),
}
# How every refusal of the verifier and the tracker begins.
_REFUSED: Final = "Refused a notification: "
_FIRST_LINE: Final = (
    "%s a notification for %s: %s; repeats are counted in the diagnostics and summarised "
    f"at most every {SUMMARY_INTERVAL:g} s"
)


class GraphNotificationError(ValueError):
    """A notification body that cannot be read; ``kind`` is TOO_LARGE or NOT_JSON.

    Not a VoicePromptError: it never leaves the webhook, which answers it with a status.
    """

    def __init__(self, kind: NotificationDrop) -> None:
        """Refused as ``kind``."""
        super().__init__(f"{_REFUSED}{kind}")
        self.kind = kind


class _DropLog:
    """Counts what did nothing, and says so without flooding the log.

    The first of each kind is logged with its reason; later ones are summarised in one
    line at most every SUMMARY_INTERVAL seconds (the first one after that writes it, and
    closing writes what is left). The counts stay for diagnostics.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: dict[NotificationDrop, int] = dict.fromkeys(NotificationDrop, 0)
        self._told: set[NotificationDrop] = set()
        self._pending: dict[NotificationDrop, int] = {}
        self._since: float | None = None  # when the current summary window began

    def note(self, kind: NotificationDrop, detail: str = "") -> None:
        self.counts[kind] += 1
        if kind is NotificationDrop.DUPLICATE:
            return
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if kind not in self._told:
            self._told.add(kind)
            verb, what = _DROP_LINES[kind]
            _LOGGER.warning(_FIRST_LINE, verb, self.name, what.format(detail=detail))
            return
        self._pending[kind] = self._pending.get(kind, 0) + 1
        if now - self._since >= SUMMARY_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Write the summary of the repeats counted since the last line, if any."""
        now = time.monotonic()
        if self._pending:
            parts = ", ".join(f"{kind} {count:,}" for kind, count in self._pending.items())
            total = sum(self._pending.values())
            _LOGGER.warning(
                "Refused or ignored %s more notification%s for %s in the last %d s (%s)",
                f"{total:,}",
                "" if total == 1 else "s",
                self.name,
                round(now - (self._since or now)),
                parts,
            )
            self._pending.clear()
        self._since = now


@dataclass(slots=True)
class _Call:
    """A call whose notifications count: when it began and ended, and what it told."""

    since: float
    ended: float | None = None
    # What acted already: the call's states, and its operations (ordered, oldest first).
    states: set[GraphEventType] = field(default_factory=set)
    operations: dict[str, None] = field(default_factory=dict)
    # Key presses by sequence id; ids at or below the floor were forgotten as old.
    tones: dict[int, None] = field(default_factory=dict)
    tone_floor: int = -1

    def tell(self, event: GraphEvent, now: float) -> bool:
        """Note what the event tells; False when it was told before (or cannot be new)."""
        if event.type is GraphEventType.TONE:
            return self._press(event.sequence_id)
        if event.operation_id is not None:
            operation = _norm_id(event.operation_id)
            if operation in self.operations:
                return False
            self.operations[operation] = None
            if len(self.operations) > _MAX_OPERATIONS_PER_CALL:
                del self.operations[next(iter(self.operations))]
            return True
        # A call is established once and ends once; an ended call does not come back.
        if event.type in self.states or self.ended is not None:
            return False
        self.states.add(event.type)
        if event.type is GraphEventType.CALL_TERMINATED:
            self.ended = now
        return True

    def _press(self, sequence_id: int | None) -> bool:
        """A key press acts once: a copy, or one older than those remembered, does not."""
        if (
            sequence_id is None
            or self.ended is not None
            or sequence_id <= self.tone_floor
            or sequence_id in self.tones
        ):
            return False
        self.tones[sequence_id] = None
        if len(self.tones) > _MAX_TONES_PER_CALL:
            oldest = next(iter(self.tones))
            del self.tones[oldest]
            self.tone_floor = max(self.tone_floor, oldest)
        return True

    def live(self, now: float) -> bool:
        if self.ended is not None:
            return now - self.ended <= CALL_GRACE
        return now - self.since <= MAX_CALL_LIFE


class GraphCallTracker:
    """Decides what a verified notification means; wakes whoever waits for it.

    Each thing a notification tells acts once: a call's ``established`` and ``terminated``,
    an operation's result, a key press (by its sequence id); later copies (Graph delivers at least once, anyone who captured
    one can replay it) are ignored. With ``known_calls_only`` (what a GraphClient uses)
    only calls it was told of with :meth:`register` count, from then until ``CALL_GRACE``
    seconds after their end; a notification for a call not known yet is held for
    ``hold_seconds`` (Graph can be faster than its own reply to create_call) and acts
    when the call is registered in time. Without it, every call counts from its first
    notification (for applications that place calls elsewhere).

    Events go to the listeners (:meth:`add_listener`) as they act; recent states are kept
    so a waiter that starts after its notification arrived still sees it. Memory is
    bounded: calls, held notifications, states and per-call records are capped.
    """

    def __init__(
        self,
        *,
        known_calls_only: bool = False,
        hold_seconds: float = DEFAULT_TIMEOUT + HOLD_MARGIN,
        name: str = "Microsoft Graph",
    ) -> None:
        """Start empty; ``name`` is how log lines call the notifications' receiver."""
        self._known_calls_only = known_calls_only
        self._hold_seconds = hold_seconds
        self._log = _DropLog(name)
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._held: deque[tuple[float, GraphEvent]] = deque()
        self._listeners: list[Callable[[GraphEvent], None]] = []
        self._call_states: OrderedDict[str, GraphEvent] = OrderedDict()
        self._operations: OrderedDict[str, GraphEvent] = OrderedDict()
        self._waiters: dict[tuple[str, str], list[asyncio.Future[GraphEvent]]] = {}

    @property
    def name(self) -> str:
        """How log lines call the receiver (an entry's title, say)."""
        return self._log.name

    @name.setter
    def name(self, value: str) -> None:
        self._log.name = value

    def add_listener(self, listener: Callable[[GraphEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every event that acts; return what removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def register(self, call_id: str) -> list[GraphEvent]:
        """A call this application placed (or played into): its notifications count.

        What was held for it acts now, in the order it came; those events are returned
        (and given to the listeners).
        """
        now = time.monotonic()
        self._expire_held(now)
        key = _norm_id(call_id)
        known = self._calls.get(key)
        self._remember_call(key, known if known is not None and known.live(now) else _Call(now))
        mine = [event for _, event in self._held if _norm_id(event.call_id) == key]
        if not mine:
            return []
        self._held = deque(item for item in self._held if _norm_id(item[1].call_id) != key)
        return [event for event in mine if self._act(event, now)]

    def refuse(self, kind: NotificationDrop, error: VoicePromptError | None = None) -> None:
        """Count (and quietly log) a notification refused before its body was read.

        ``error`` is why, for UNAUTHORIZED: what the verifier raised.
        """
        self._log.note(kind, error.message.removeprefix(_REFUSED) if error is not None else "")

    def handle_body(self, raw: bytes) -> list[GraphEvent]:
        """Read a raw ``commsNotifications`` body (already verified); return what acted.

        Raises GraphNotificationError (counted) for a body over MAX_NOTIFICATION_BYTES
        (not parsed at all) or one that is not a JSON object.
        """
        if len(raw) > MAX_NOTIFICATION_BYTES:
            self._log.note(NotificationDrop.TOO_LARGE)
            raise GraphNotificationError(NotificationDrop.TOO_LARGE)
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            self._log.note(NotificationDrop.NOT_JSON)
            raise GraphNotificationError(NotificationDrop.NOT_JSON)
        return self.handle(payload)

    def handle(self, payload: Mapping[str, Any]) -> list[GraphEvent]:
        """Read a ``commsNotifications`` object; return the events that acted.

        At most MAX_NOTIFICATION_ITEMS items are read (Graph sends a handful).
        """
        values = payload.get("value")
        if not isinstance(values, list):
            return []
        if len(values) > MAX_NOTIFICATION_ITEMS:
            self._log.note(NotificationDrop.TOO_MANY_ITEMS, f"{len(values):,}")
            values = values[:MAX_NOTIFICATION_ITEMS]
        now = time.monotonic()
        self._expire_held(now)
        events: list[GraphEvent] = []
        for item in values:
            if not isinstance(item, Mapping) or (event := _event_from(item)) is None:
                continue
            if self._known(event, now) and self._act(event, now):
                events.append(event)
        return events

    def _known(self, event: GraphEvent, now: float) -> bool:
        """Whether the event's call counts now; an unknown call's event is held or dropped."""
        key = _norm_id(event.call_id)
        call = self._calls.get(key)
        if call is not None and call.live(now):
            return True
        if not self._known_calls_only:
            self._remember_call(key, _Call(now))
            return True
        if call is not None:  # ended more than CALL_GRACE ago: its news is old
            self._log.note(NotificationDrop.UNKNOWN_CALL)
            return False
        if len(self._held) >= _MAX_HELD:
            self._held.popleft()
            self._log.note(NotificationDrop.UNKNOWN_CALL)
        self._held.append((now, event))
        return False

    def _act(self, event: GraphEvent, now: float) -> bool:
        """Record the event of a known call once; False for a copy of something told."""
        if not self._calls[_norm_id(event.call_id)].tell(event, now):
            self._log.note(NotificationDrop.DUPLICATE)
            return False
        self._record(event)
        for listener in list(self._listeners):
            listener(event)
        return True

    def _remember_call(self, key: str, call: _Call) -> None:
        self._calls[key] = call
        self._calls.move_to_end(key)
        while len(self._calls) > _MEMORY:
            self._calls.popitem(last=False)

    def _expire_held(self, now: float) -> None:
        while self._held and now - self._held[0][0] > self._hold_seconds:
            self._held.popleft()
            self._log.note(NotificationDrop.UNKNOWN_CALL)

    def _record(self, event: GraphEvent) -> None:
        if event.type is GraphEventType.TONE:
            return  # not a state anyone waits for: the listeners hear it
        if event.operation_id is not None:
            key, memory = ("op", _norm_id(event.operation_id)), self._operations
        else:
            key, memory = ("call", _norm_id(event.call_id)), self._call_states
        memory[key[1]] = event
        memory.move_to_end(key[1])
        while len(memory) > _MEMORY:
            memory.popitem(last=False)
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(event)

    def ended(self, call_id: str) -> bool:
        """Whether Graph reported the call terminated."""
        last = self._call_states.get(_norm_id(call_id))
        return last is not None and last.type is GraphEventType.CALL_TERMINATED

    async def wait_call(self, call_id: str, within: float) -> GraphEvent:
        """Wait for the call's next state (established or terminated)."""
        return await self._wait(("call", _norm_id(call_id)), self._call_states, within)

    async def wait_operation(self, operation_id: str, within: float) -> GraphEvent:
        """Wait for an operation's completion or failure."""
        return await self._wait(("op", _norm_id(operation_id)), self._operations, within)

    async def _wait(
        self, key: tuple[str, str], memory: OrderedDict[str, GraphEvent], within: float
    ) -> GraphEvent:
        if (known := memory.get(key[1])) is not None:
            return known
        future: asyncio.Future[GraphEvent] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            async with asyncio.timeout(within):
                return await future
        finally:
            waiters = self._waiters.get(key, [])
            if future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[key]

    def diagnostics(self) -> dict[str, Any]:
        """Calls that count now, notifications held, and what was refused or ignored."""
        now = time.monotonic()
        self._expire_held(now)
        counts = self._log.counts
        return {
            "calls": sum(call.live(now) for call in self._calls.values()),
            "held": len(self._held),
            "refused": {str(kind): counts[kind] for kind in _REFUSED_KINDS},
            "ignored": {str(kind): counts[kind] for kind in _IGNORED_KINDS},
        }

    def close(self) -> None:
        """Cancel every waiter (the entry is unloading) and write the last summary."""
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        self._log.flush()


def _event_from(item: Mapping[str, Any]) -> GraphEvent | None:
    url = item.get("resourceUrl") or item.get("resource") or ""
    data = item.get("resourceData")
    match = _CALL_URL.search(str(url))
    if match is None or not isinstance(data, Mapping):
        return None
    call_id = _canonical_id(match.group(1))
    operation_id = _canonical_id(match.group(2)) if match.group(2) else None
    code, subcode, message = _result_info(data)
    if operation_id is not None:
        status = str(data.get("status", "")).lower()
        if status not in ("completed", "failed"):
            return None
        return GraphEvent(
            GraphEventType.PROMPT_COMPLETED
            if status == "completed"
            else GraphEventType.PROMPT_FAILED,
            call_id,
            operation_id,
            opt_str(data.get("clientContext")),
            code,
            subcode,
            message,
        )
    state = str(data.get("state", "")).lower()
    deleted = item.get("changeType") == "deleted"
    # A key press comes as the call's toneInfo, the call still "established".
    if state != "terminated" and not deleted and (tone := data.get("toneInfo")) is not None:
        return _tone_event(call_id, tone)
    if state == "established":
        return GraphEvent(
            GraphEventType.CALL_ESTABLISHED, call_id, None, None, code, subcode, message
        )
    if state == "terminated" or deleted:
        return GraphEvent(
            GraphEventType.CALL_TERMINATED, call_id, None, None, code, subcode, message
        )
    return None


def _tone_event(call_id: str, tone: Any) -> GraphEvent | None:
    """A key press, or None for a toneInfo that names no key or has no sequence id."""
    if not isinstance(tone, Mapping):
        return None
    key = _TONES.get(str(tone.get("tone", "")).lower())
    sequence_id = _opt_int(tone.get("sequenceId"))
    if key is None or sequence_id is None or sequence_id < 0:
        return None
    return GraphEvent(GraphEventType.TONE, call_id, tone=key, sequence_id=sequence_id)


def _result_info(data: Mapping[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(code, subcode, message) of a resource's ``resultInfo``, if any."""
    info = data.get("resultInfo")
    if not isinstance(info, Mapping):
        return None, None, None
    return _opt_int(info.get("code")), _opt_int(info.get("subcode")), opt_str(info.get("message"))


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class GraphNotificationVerifier:
    """Checks the Bot Framework JWT on every notification before anyone acts on it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        *,
        openid_config_url: str = OPENID_CONFIG_URL,
        issuer: str = NOTIFICATION_ISSUER,
    ) -> None:
        """Verify tokens whose audience is ``client_id``."""
        self._session = session
        self._client_id = client_id
        self._openid_config_url = openid_config_url
        self._issuer = issuer
        self._keys: dict[str, Any] = {}
        self._keys_read: float | None = None  # monotonic time of the last read
        self._timeout = aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT)
        self._lock = asyncio.Lock()

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """Return the token's claims, or raise VoicePromptAuthenticationError."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _unauthorized("no bearer token")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("malformed token") from None
        if header.get("alg") != "RS256":
            raise _unauthorized("unexpected algorithm")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self._client_id,
                issuer=self._issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=60,
            )
        except jwt.PyJWTError as err:
            raise _unauthorized(type(err).__name__) from None
        return claims

    async def _key(self, kid: str) -> Any:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and (
                self._keys_read is None
                or time.monotonic() - self._keys_read > KEYS_REFRESH_INTERVAL
            ):
                await self._read_keys()
        if kid not in self._keys:
            raise _unauthorized("unknown signing key")
        return self._keys[kid]

    async def _read_keys(self) -> None:
        self._keys_read = time.monotonic()
        try:
            config = await self._get_json(self._openid_config_url)
            jwks = await self._get_json(str(config["jwks_uri"]))
            keys = jwt.PyJWKSet.from_dict(jwks).keys
        except (VoicePromptError, KeyError, TypeError, jwt.PyJWTError) as err:
            _LOGGER.warning("Cannot read the Bot Framework signing keys: %s", err)
            return
        self._keys = {key.key_id: key.key for key in keys if key.key_id}

    async def _get_json(self, url: str) -> Any:
        host = _host_of(url)
        status, data, _ = await _exchange(self._session, "GET", url, host, self._timeout)
        if status != 200 or data is None:
            raise VoicePromptResponseError(f"{host} answered HTTP {status}")
        return data


def _unauthorized(reason: str) -> VoicePromptAuthenticationError:
    return VoicePromptAuthenticationError(f"{_REFUSED}{reason}")


def _host_of(url: str) -> str:
    return URL(url).host or url


@dataclass(slots=True)
class _Hold:
    """A call this client holds up: kept alive, and ended or stopped by its key."""

    call_id: str
    keep_alive: asyncio.Task[None] | None = None
    key: str | None = None  # the key that acknowledges, when one was asked for
    hang_up: bool = True  # what the key does: end the call, or only stop the prompts
    acknowledged: asyncio.Future[GraphEvent] | None = None  # the press, once it came
    detached: bool = False  # async_play returned: a press is handled in the background
    operations: list[str] = field(default_factory=list)  # playing into it, newest last


class GraphClient:
    """Places Teams calls and plays prompts into them with app credentials.

    With ``keep_alive_interval`` (seconds, KEEP_ALIVE_INTERVAL is Microsoft's advice)
    every call the client placed or played into is kept alive until it ends; without
    it Graph ends a call after 45 minutes.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        *,
        login_base: str = LOGIN_BASE,
        graph_base: str = GRAPH_BASE,
        request_timeout: float = DEFAULT_TIMEOUT,
        keep_alive_interval: float | None = None,
    ) -> None:
        """Use the client-credentials grant of an app registered as a calling bot."""
        self._session = session
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self._token_url = f"{login_base.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._graph_base = graph_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._token_host = _host_of(self._token_url)
        self._graph_host = _host_of(self._graph_base)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_flight: SingleFlight[str] = SingleFlight()
        # Only the calls this client placed or played into produce events.
        self.tracker = GraphCallTracker(
            known_calls_only=True,
            hold_seconds=request_timeout + HOLD_MARGIN,
            name=f"application {client_id}",
        )
        self.tracker.add_listener(self._on_event)  # first: others ask what it decided
        self._keep_alive_interval = keep_alive_interval
        self._holds: OrderedDict[str, _Hold] = OrderedDict()
        self._stopped: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.token_requests = 0
        self.requests = 0
        self.retries = 0
        self.keep_alives = 0

    def __repr__(self) -> str:
        """Describe the client without the secret or the token."""
        return f"GraphClient(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, has_token={self._token is not None})"

    # -- public surface -------------------------------------------------------------

    async def async_validate(self) -> None:
        """Get a token: proves tenant, app and secret."""
        await self._access_token()

    async def create_call(
        self,
        target: GraphTarget,
        prompts: Sequence[GraphMedia],
        callback_uri: str,
        *,
        source_instance_id: str | None = None,
        on_placed: Callable[[str], None] | None = None,
    ) -> str:
        """Place an audio call with service-hosted media; return its id.

        ``on_placed`` hears the id before any notification of the call acts (Graph can
        notify before it replies; those notifications act when the call is registered).
        """
        body: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.call",
            "callbackUri": callback_uri,
            "targets": [
                {
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "identity": {
                        "@odata.type": "#microsoft.graph.identitySet",
                        target.kind.value: {
                            "@odata.type": "#microsoft.graph.identity",
                            "id": target.id,
                        },
                    },
                }
            ],
            "requestedModalities": ["audio"],
            "mediaConfig": {
                "@odata.type": "#microsoft.graph.serviceHostedMediaConfig",
                "preFetchMedia": [media.as_media_info() for media in prompts],
            },
            "tenantId": self.tenant_id,
        }
        if target.kind is TargetKind.PHONE:
            if not source_instance_id:
                raise VoicePromptInputError(
                    "Calling a phone number needs the application instance ID in the "
                    "integration's options",
                    target=target.id,
                )
            body["source"] = {
                "@odata.type": "#microsoft.graph.participantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "applicationInstance": {
                        "@odata.type": "#microsoft.graph.identity",
                        "id": source_instance_id,
                    },
                },
            }
        data = await self._api("POST", "/v1.0/communications/calls", body)
        call_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(call_id, str) or not call_id:
            raise VoicePromptResponseError(f"{self._graph_host} created a call without an ID")
        if on_placed is not None:
            on_placed(call_id)
        self.tracker.register(call_id)  # what Graph told before this reply acts now
        return call_id

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """Read a call resource."""
        data = await self._api(
            "GET", f"/v1.0/communications/calls/{_path_id(call_id)}", None, call_id=call_id
        )
        return data if isinstance(data, dict) else {}

    async def play_prompt(
        self,
        call_id: str,
        prompts: Sequence[GraphMedia],
        client_context: str,
        loop: bool = False,
    ) -> GraphOperation:
        """Play media into a call this app placed; ``loop`` exists only in beta."""
        body: dict[str, Any] = {
            "clientContext": client_context,
            "prompts": [
                {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": media.as_media_info()}
                for media in prompts
            ],
        }
        if loop:
            body["loop"] = True
        operation = await self._operation(
            call_id, "playPrompt", body, version="beta" if loop else "v1.0"
        )
        self.tracker.register(call_id)  # Graph let this app play into it: it is ours
        return operation

    async def hang_up(self, call_id: str) -> None:
        """End a call (204)."""
        await self._api(
            "DELETE", f"/v1.0/communications/calls/{_path_id(call_id)}", None, call_id=call_id
        )

    async def subscribe_to_tone(self, call_id: str, client_context: str) -> GraphOperation:
        """Have Graph report key presses (``toneInfo``) in the call's notifications."""
        return await self._operation(call_id, "subscribeToTone", {"clientContext": client_context})

    async def cancel_media_processing(self, call_id: str, client_context: str) -> GraphOperation:
        """Stop the prompts playing or queued in a call; the call stays up."""
        return await self._operation(
            call_id, "cancelMediaProcessing", {"clientContext": client_context}
        )

    async def keep_alive(self, call_id: str) -> None:
        """Tell Graph the call is still wanted (it ends one unheard of for 45 minutes)."""
        await self._api(
            "POST",
            f"/v1.0/communications/calls/{_path_id(call_id)}/keepAlive",
            None,
            call_id=call_id,
        )

    def acknowledgement(self, event: GraphEvent) -> GraphAcknowledgement | None:
        """What ``event`` did if it is the key press that acknowledged its call, else None."""
        hold = self._holds.get(_norm_id(event.call_id))
        pressed = hold.acknowledged if hold is not None else None
        if (
            hold is None
            or pressed is None
            or not pressed.done()
            or pressed.cancelled()
            or pressed.result() is not event
        ):
            return None
        return GraphAcknowledgement(str(event.tone), hold.hang_up)

    def stopped(self, operation_id: str | None) -> bool:
        """Whether this client stopped the operation itself (a key acknowledged its call)."""
        return operation_id is not None and _norm_id(operation_id) in self._stopped

    async def async_play(
        self,
        prompts: Sequence[GraphMedia],
        *,
        client_context: str,
        call_id: str | None = None,
        target: GraphTarget | None = None,
        callback_uri: str | None = None,
        source_instance_id: str | None = None,
        loop: bool = False,
        hang_up: bool = True,
        acknowledge: str | None = None,
        establish_timeout: float = 60.0,
        completion_timeout: float = 600.0,
        on_placed: Callable[[str], None] | None = None,
    ) -> GraphPlayResult:
        """Play into ``call_id``, or place a call to ``target``, play, wait, and hang up.

        With ``acknowledge`` (a key, see :func:`parse_key`) the call is subscribed to tones
        first; when the callee presses that key the prompts stop: the call is hung up
        (``hang_up``) or its media processing cancelled. A press while ``async_play``
        waits ends the wait (``acknowledged``); a later one, while the call is up (a
        loop, a call kept), is handled in the background.
        """
        key = None if acknowledge is None else parse_key(acknowledge)
        if call_id is not None:
            return await self._play_into(
                call_id, prompts, client_context, loop=loop, key=key, hang_up=hang_up
            )
        if target is None or callback_uri is None:
            raise ValueError("give call_id, or target and callback_uri")
        new_call = await self.create_call(
            target,
            prompts,
            callback_uri,
            source_instance_id=source_instance_id,
            on_placed=on_placed,
        )
        hold = self._hold(new_call, key, hang_up)
        result: GraphPlayResult | None = None
        try:
            state = await self._wait(
                self.tracker.wait_call(new_call, establish_timeout),
                f"The call was not answered within {establish_timeout:g} seconds",
            )
            if state.type is not GraphEventType.CALL_ESTABLISHED:
                raise VoicePromptRequestError(
                    f"The call was not answered ({state.result_message or 'terminated'})",
                    code=str(state.result_code or "") or None,
                    target=target.id,
                )
            if key is not None:
                await self.subscribe_to_tone(new_call, client_context)
            operation = await self.play_prompt(new_call, prompts, client_context, loop)
            hold.operations = [*hold.operations[-(_MAX_OPERATIONS_PER_CALL - 1) :], operation.id]
            result = GraphPlayResult(new_call, operation, placed_call=True)
            if loop:
                return result  # plays until hung up: no completion notification comes
            if not operation.finished:
                result.final, result.acknowledged = await self._outcome(
                    hold, operation, completion_timeout
                )
            if result.acknowledged is not None and not hang_up:
                await self._cancel_quietly(new_call, client_context)
        finally:
            # A call Graph already ended (not answered, callee hung up) needs no DELETE.
            if self.tracker.ended(new_call):
                self._release(new_call)
            elif (hang_up and not loop) or result is None:
                hung_up = await self._hang_up_quietly(new_call)
                if result is not None:
                    result.hung_up = hung_up
                if hung_up:
                    self._release(new_call)
            else:
                self._detach(hold, pressed=result.acknowledged)
        return result

    async def _play_into(
        self,
        call_id: str,
        prompts: Sequence[GraphMedia],
        client_context: str,
        *,
        loop: bool,
        key: str | None,
        hang_up: bool,
    ) -> GraphPlayResult:
        """Play into a call placed earlier; it is held (and its key listened for) from now."""
        known = self._holds.get(_norm_id(call_id))
        hold = self._hold(call_id, key, hang_up)
        try:
            if key is not None:
                await self.subscribe_to_tone(call_id, client_context)
            operation = await self.play_prompt(call_id, prompts, client_context, loop)
        except BaseException:
            if known is None:  # not a call of ours after all
                self._release(call_id)
            raise
        hold.operations = [*hold.operations[-(_MAX_OPERATIONS_PER_CALL - 1) :], operation.id]
        self._detach(hold)
        return GraphPlayResult(call_id, operation)

    def handle_notification(self, payload: Mapping[str, Any]) -> list[GraphEvent]:
        """Feed a verified ``commsNotifications`` body; return its events."""
        return self.tracker.handle(payload)

    async def async_close(self) -> None:
        """Forget the token, cancel waiters, and stop keeping calls alive (no logout)."""
        self.tracker.close()
        for call_id in list(self._holds):
            self._release(call_id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._token = None

    def diagnostics(self) -> dict[str, Any]:
        """Client state without the secret or the token."""
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "has_token": self._token is not None,
            "token_valid_for_seconds": max(0, round(self._token_expires - time.monotonic()))
            if self._token
            else None,
            "token_requests": self.token_requests,
            "requests": self.requests,
            "retries": self.retries,
        }

    # -- internals ------------------------------------------------------------------

    async def _operation(
        self, call_id: str, action: str, body: dict[str, Any], *, version: str = "v1.0"
    ) -> GraphOperation:
        """One of the call's actions that answers with an operation (commsOperation)."""
        data = await self._api(
            "POST",
            f"/{version}/communications/calls/{_path_id(call_id)}/{action}",
            body,
            call_id=call_id,
        )
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise VoicePromptResponseError(
                f"{self._graph_host} answered {action} without an operation ID"
            )
        code, subcode, message = _result_info(data)
        return GraphOperation(
            id=data["id"],
            status=str(data.get("status", "")),
            client_context=opt_str(data.get("clientContext")),
            result_code=code,
            result_subcode=subcode,
            result_message=message,
        )

    def _hold(self, call_id: str, key: str | None, hang_up: bool) -> _Hold:
        """The call's hold (new ones are kept alive); a key given listens anew."""
        norm = _norm_id(call_id)
        hold = self._holds.get(norm)
        if hold is None:
            hold = self._holds[norm] = _Hold(call_id)
            if self._keep_alive_interval is not None:
                hold.keep_alive = self._spawn(
                    self._keep_alive_loop(hold, self._keep_alive_interval)
                )
            while len(self._holds) > _MAX_HOLDS:
                oldest = next(iter(self._holds))
                _LOGGER.debug("No longer keeping call %s alive: too many calls", oldest)
                self._release(oldest)
        self._holds.move_to_end(norm)
        if key is not None:
            if hold.acknowledged is not None and not hold.acknowledged.done():
                hold.acknowledged.cancel()
            hold.key, hold.hang_up, hold.detached = key, hang_up, False
            hold.acknowledged = asyncio.get_running_loop().create_future()
        return hold

    def _detach(self, hold: _Hold, pressed: GraphEvent | None = None) -> None:
        """async_play returns with the call up: a press from now on is handled here.

        ``pressed`` is the press async_play acted on already; one it did not see (it
        came while a request was on its way) is acted on now.
        """
        hold.detached = True
        future = hold.acknowledged
        if pressed is None and future is not None and future.done() and not future.cancelled():
            self._spawn(self._stop(hold))

    def _release(self, call_id: str) -> None:
        """Let go of a call: it ended, or it is no longer ours to keep."""
        hold = self._holds.pop(_norm_id(call_id), None)
        if hold is None:
            return
        if hold.keep_alive is not None and hold.keep_alive is not asyncio.current_task():
            hold.keep_alive.cancel()
        if hold.acknowledged is not None and not hold.acknowledged.done():
            hold.acknowledged.cancel()

    def _on_event(self, event: GraphEvent) -> None:
        """The tracker's news for a held call: its end, or the key that acknowledges it."""
        hold = self._holds.get(_norm_id(event.call_id))
        if hold is None:
            return
        if event.type is GraphEventType.CALL_TERMINATED:
            self._release(event.call_id)
            return
        future = hold.acknowledged
        if (
            event.type is not GraphEventType.TONE
            or event.tone != hold.key
            or future is None
            or future.done()
        ):
            return
        future.set_result(event)
        for operation in hold.operations:  # their cancellation is no news
            self._stopped[_norm_id(operation)] = None
        while len(self._stopped) > _MAX_STOPPED:
            self._stopped.popitem(last=False)
        if hold.detached:
            self._spawn(self._stop(hold))

    async def _outcome(
        self, hold: _Hold, operation: GraphOperation, within: float
    ) -> tuple[GraphEvent | None, GraphEvent | None]:
        """(the prompts' result, None) or (None, the key press), whichever comes first."""
        waiting: asyncio.Future[GraphEvent] = asyncio.ensure_future(
            self.tracker.wait_operation(operation.id, within)
        )
        pressed = hold.acknowledged
        try:
            if pressed is not None:
                await asyncio.wait({waiting, pressed}, return_when=asyncio.FIRST_COMPLETED)
                if pressed.done() and not pressed.cancelled():
                    return None, pressed.result()
            # No key, or another action listens for one on this call now.
            await asyncio.wait({waiting})
        finally:
            waiting.cancel()  # only when leaving early: it is done otherwise
        return await self._wait(
            waiting,
            f"Microsoft Teams did not report the end of the prompts within {within:g} seconds",
        ), None

    async def _stop(self, hold: _Hold) -> None:
        """What the key does once async_play has returned: hang up, or stop the prompts."""
        if hold.hang_up:
            if not self.tracker.ended(hold.call_id) and await self._hang_up_quietly(hold.call_id):
                self._release(hold.call_id)
        else:
            await self._cancel_quietly(hold.call_id, str(uuid.uuid4()))

    async def _keep_alive_loop(self, hold: _Hold, interval: float) -> None:
        """Send keepAlive every ``interval`` seconds until the call ends or is let go."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.keep_alive(hold.call_id)
            except VoicePromptInputError as err:  # 404: it ended, unheard of
                _LOGGER.debug("Call %s is gone: %s", hold.call_id, err)
                self._release(hold.call_id)
                return
            except VoicePromptError as err:
                _LOGGER.warning("Could not keep call %s alive: %s", hold.call_id, err)
            else:
                self.keep_alives += 1

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel_quietly(self, call_id: str, client_context: str) -> None:
        """Stop the call's prompts; a failure is logged, not raised (the key counted)."""
        try:
            await self.cancel_media_processing(call_id, client_context)
        except VoicePromptError as err:
            _LOGGER.warning("Could not stop the prompts in call %s: %s", call_id, err)

    async def _wait(self, waiter: Any, timeout_message: str) -> GraphEvent:
        try:
            event: GraphEvent = await waiter
        except TimeoutError:
            raise VoicePromptTimeoutError(timeout_message) from None
        return event

    async def _hang_up_quietly(self, call_id: str) -> bool:
        """Hang up; a failure is logged, not raised (the prompts' outcome matters more)."""
        try:
            await self.hang_up(call_id)
        except VoicePromptError as err:
            _LOGGER.warning("Could not hang up call %s: %s", call_id, err)
            return False
        return True

    async def _access_token(self, stale: str | None = None) -> str:
        token = self._token
        if (
            token is not None
            and token != stale
            and time.monotonic() < self._token_expires - TOKEN_REFRESH_MARGIN
        ):
            return token
        return await self._token_flight.run(self._new_token)

    async def _new_token(self) -> str:
        self._token = None
        self.token_requests += 1
        data = await self._token_request()
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token:
            raise VoicePromptResponseError(f"{self._token_host} answered without an access token")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, (int, float, str)) and str(expires_in).isdigit()
            else 3599.0
        )
        self._token = token
        self._token_expires = time.monotonic() + lifetime
        return token

    async def _token_request(self) -> dict[str, Any]:
        host = self._token_host
        form = {
            "client_id": self.client_id,
            "client_secret": self._secret,
            "scope": SCOPE,
            "grant_type": "client_credentials",
        }
        status, data, _ = await _exchange(
            self._session, "POST", self._token_url, host, self._timeout, data=form
        )
        if status == 200 and isinstance(data, dict):
            return data
        codes = data.get("error_codes") if isinstance(data, dict) else None
        for code in codes if isinstance(codes, list) else []:
            if code in _TOKEN_ERRORS:
                cls, message = _TOKEN_ERRORS[code]
                raise cls(
                    message.format(tenant=self.tenant_id, client=self.client_id), code=str(code)
                )
        if (
            status in (400, 401)
            and isinstance(data, dict)
            and data.get("error") in ("invalid_client", "unauthorized_client")
        ):
            raise VoicePromptAuthenticationError(
                f"Microsoft Entra ID refused application {self.client_id} in tenant "
                f"{self.tenant_id} ({data.get('error')})",
                code=str(status),
            )
        raise VoicePromptResponseError(f"The token endpoint {host} answered HTTP {status}")

    async def _api(
        self, method: str, path: str, body: dict[str, Any] | None, *, call_id: str = ""
    ) -> Any:
        """A Graph request with one token refresh on 401 and bounded 429/503 retries."""
        url = self._graph_base + path
        host = self._graph_host
        waited = 0.0
        stale: str | None = None  # the token Graph refused once with 401
        tries = 0
        while True:
            tries += 1
            token = await self._access_token(stale)
            self.requests += 1
            status, data, retry_after = await _exchange(
                self._session,
                method,
                url,
                host,
                self._timeout,
                json_body=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            if 200 <= status < 300:
                return data
            if status == 401 and stale is None:
                stale = token
                continue
            if (
                status in (429, 503)
                and tries < MAX_TRIES
                and waited + retry_after <= MAX_RETRY_WAIT
            ):
                self.retries += 1
                waited += retry_after
                await asyncio.sleep(retry_after)
                continue
            raise _graph_error(status, data, host, call_id)


async def _exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    host: str,
    client_timeout: aiohttp.ClientTimeout,
    *,
    data: dict[str, str] | None = None,
    json_body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, float]:
    """One exchange: (status, parsed JSON body or None, Retry-After seconds).

    Every failure becomes a VoicePromptError naming the host, never the URL.
    """
    failure: VoicePromptError | None = None
    try:
        async with session.request(
            method, url, data=data, json=json_body, headers=headers, timeout=client_timeout
        ) as response:
            raw = await response.read()
            status = response.status
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except (TimeoutError, aiohttp.ClientError) as err:
        failure = transport_error(err, host, client_timeout.total or 0)
    if failure is not None:
        raise failure from None
    parsed: Any = None
    if raw:
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            if 200 <= status < 300:
                raise VoicePromptResponseError(f"{host} answered with something not JSON") from None
    return status, parsed, retry_after


def _path_id(call_id: str) -> str:
    if not call_id or not re.fullmatch(r"[0-9A-Za-z-]{1,64}", call_id):
        raise VoicePromptInputError(f"{call_id[:60]} is not a call ID")
    return call_id


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def _graph_error(status: int, data: Any, host: str, call_id: str) -> VoicePromptError:
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = (str(inner.get("request-id", "")) if isinstance(inner, dict) else "") or "-"
    code = str(error.get("code", status))
    detail = _URL_IN_TEXT.sub(r"\1\2/…", str(error.get("message", "")))[:300]
    if status == 401:
        return VoicePromptAuthenticationError(
            f"Microsoft Graph refused the app's token (request ID {request_id})", code=code
        )
    if status == 403 and code == "7504":
        return VoicePromptRequestError(
            "The app lacks the Calls.Initiate.All application permission with admin consent "
            f"(request ID {request_id})",
            code=code,
        )
    if status == 404:
        return VoicePromptInputError(
            f"Call {call_id} is not known to Microsoft Graph: it ended, or another app placed "
            f"it (request ID {request_id})",
            code=code,
        )
    if status in (429, 503):
        return VoicePromptRequestError(
            f"Microsoft Graph is busy; try again later (request ID {request_id})", code=code
        )
    reason = f": {detail}" if detail else ""
    return VoicePromptRequestError(
        f"Microsoft Graph refused the request{reason} (HTTP {status}, request ID {request_id})",
        code=code,
    )
