"""The event reports a Yeastar S-Series PBX POSTs to the address its API login named.

No Home Assistant imports. With ``version: "1.0.2"`` at login the reports are well-formed
JSON objects; API v1 names their kind ``action``, API v2 ``event``. Only the reports that
end a call this integration placed are read; every other kind is ``None`` (answered, not
acted on: the PBX repeats a report until it gets HTTP 200).

Documented shapes (Yeastar S-Series API guide, "Call Failure" and "Prompt Play End"):

- ``{"action": "CallFailed", "reason": "486 Busy Here", "callid": "1536976927.37",
  "ext": {"extid": "1002"}, ...}``; the reasons with a SIP code are 404, 480, 484, 486,
  487 and 603, others are words ("DND", "Line unreachable", "User busy").
- ``{"action": "PlayPromptEnd", "callid": "1495780325.384", "ext": {"extid": "1002"},
  "prompt": "appletest"}`` (to an external number ``outbound`` replaces ``ext``).
- API v2 puts the extension in ``members: [{"ext": {"number": "1023", ...}}]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import json
import re
from typing import Any, Final

from .exceptions import VoicePromptResponseError

# A report is a few hundred bytes; anything much larger is not one.
MAX_REPORT_BYTES: Final = 16_384
# Call ids look like "1495780325.384"; longer texts are kept out of events and logs.
MAX_CALL_ID_LENGTH: Final = 64
MAX_TEXT_LENGTH: Final = 200

_SIP_CODE: Final = re.compile(r"\s*([1-6][0-9]{2})(?![0-9])")
_EXTENSION: Final = re.compile(r"[0-9]{1,16}")


class YeastarReportKind(StrEnum):
    """The reports that end a call."""

    CALL_FAILED = "CallFailed"
    PLAY_PROMPT_END = "PlayPromptEnd"


class YeastarReportError(VoicePromptResponseError):
    """A body that is not a Yeastar report (not JSON, or a known kind in a wrong shape)."""


@dataclass(frozen=True, slots=True)
class YeastarReport:
    """One report about a call."""

    kind: YeastarReportKind
    call_id: str
    extension: str | None = None  # the extension called, when the report names it
    reason: str | None = None  # CallFailed: the PBX's words ("486 Busy Here")
    code: str | None = None  # CallFailed: the SIP code the reason starts with ("486")
    prompt: str | None = None  # PlayPromptEnd: the prompt played


def parse_report(body: bytes) -> YeastarReport | None:
    """The report in ``body``; None for a kind this integration does not act on.

    Raises YeastarReportError for anything else; never another exception.
    """
    if len(body) > MAX_REPORT_BYTES:
        raise YeastarReportError("The report is too large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise YeastarReportError("The report is not JSON") from None
    if not isinstance(data, dict):
        raise YeastarReportError("The report is not a JSON object")
    action = data.get("action", data.get("event"))
    if not isinstance(action, str):
        raise YeastarReportError("The report names no action")
    try:
        kind = YeastarReportKind(action)
    except ValueError:
        return None  # another kind (BootUp, ExtensionStatus, NewCdr, ...)
    call_id = _text(data.get("callid"), MAX_CALL_ID_LENGTH)
    if call_id is None:
        raise YeastarReportError(f"The {kind} report has no valid call id")
    extension = _extension(data)
    if kind is YeastarReportKind.PLAY_PROMPT_END:
        return YeastarReport(kind, call_id, extension, prompt=_optional(data.get("prompt")))
    reason = _text(data.get("reason"), MAX_TEXT_LENGTH)
    if reason is None:
        raise YeastarReportError("The CallFailed report has no reason")
    match = _SIP_CODE.match(reason)
    return YeastarReport(kind, call_id, extension, reason, match.group(1) if match else None)


def report_address(url: str) -> str:
    """``url`` as the login's absolute ``url`` (``urltag`` 1) takes it.

    Every example of the guide writes it without a scheme ("110.22.2.3:8260/report"), so
    an ``http://`` URL loses its scheme; other schemes are sent whole (the guide says
    nothing of HTTPS reports).
    """
    return url.removeprefix("http://")


def _text(value: Any, limit: int) -> str | None:
    """A short, printable, non-empty text or whole number, as text."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**limit:
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > limit or not text.isprintable():
        return None
    return text


def _optional(value: Any) -> str | None:
    if value is None:
        return None
    if (text := _text(value, MAX_TEXT_LENGTH)) is None:
        raise YeastarReportError("A report field has a wrong type")
    return text


def _extension(data: dict[str, Any]) -> str | None:
    """The extension a report names: v1 ``ext.extid``, v2 ``members[].ext.number``."""
    candidates: list[Any] = []
    if isinstance(ext := data.get("ext"), dict):
        candidates.append(ext.get("extid"))
    members = data.get("members")
    if isinstance(members, list):
        candidates += [
            member["ext"].get("number")
            for member in members
            if isinstance(member, dict) and isinstance(member.get("ext"), dict)
        ]
    for candidate in candidates:
        text = _text(candidate, 16)
        if text is not None and _EXTENSION.fullmatch(text):
            return text
    return None
