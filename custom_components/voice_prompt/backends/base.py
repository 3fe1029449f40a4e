"""What every backend is: its declared capabilities, the request it plays, what it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send

from ..api import VoicePromptError
from ..const import DOMAIN, SIGNAL_CALL_EVENT
from ..speech import SpeechFormat
from ..validation import vol
from .calls import CallEvent, CallFailure, CallResult, CallStatus, PlayRequest, PlayResult
from .outcomes import CallOutcomes

if TYPE_CHECKING:
    from homeassistant.const import Platform


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a backend can do; the action refuses a field whose capability is missing."""

    named_prompts: bool = False  # prompts stored on the PBX, played by name
    media_urls: bool = False  # https://, /local/ and media-source:// audio
    speech: bool = False  # a message spoken by Home Assistant's TTS (see speech_format)
    several_targets: bool = False  # one action rings several targets
    repeat: bool = False
    volume: bool = False
    autoanswer: bool = False
    outcome_events: bool = False  # the backend reports answered / played / ended
    dtmf: bool = False  # key presses reach Home Assistant
    external_numbers: bool = False
    paging: bool = False
    existing_call: bool = False  # play into a call placed earlier (call_id)
    client_context: bool = False  # a label the backend reports back
    loop: bool = False  # repeat until the call ends
    hang_up: bool = False  # choose whether the call ends after playing

    def names(self) -> list[str]:
        """The capabilities this backend has, for diagnostics."""
        return [item.name for item in fields(self) if getattr(self, item.name)]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who answered a config-flow check: the entry's unique id and the system's name."""

    unique_id: str
    name: str


class Backend(ABC):
    """One loaded entry's phone system: what ``entry.runtime_data`` holds.

    Subclasses declare their capabilities and config-flow contribution; the integration
    layer talks to every backend through this interface only.
    """

    kind: ClassVar[str]
    """Stored in the entry's data; names the backend in the registry."""
    name: ClassVar[str]
    """How messages name this kind of system ("Yeastar S-Series PBX")."""
    flow_steps: ClassVar[Mapping[str, vol.Schema]]
    """Config-flow menu steps this backend adds (step id → form), in menu order."""
    options_schema: ClassVar[vol.Schema | None] = None
    speech_format: ClassVar[SpeechFormat | None] = None
    """The audio format spoken messages are rendered in, when the system can play them."""
    platforms: ClassVar[tuple[Platform, ...]] = ()
    """Platforms besides those every entry has."""

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry) -> None:
        """Bind to the entry; nothing is contacted before ``async_setup``."""
        self.hass = hass
        self.entry = entry
        self.outcomes = CallOutcomes()

    # -- config flow (class level: there is no entry yet) -------------------------------

    @classmethod
    def clean_input(cls, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Normalise form input; return it with field errors (field → error key)."""
        return dict(data), {}

    @classmethod
    @abstractmethod
    async def async_identify(cls, hass: HomeAssistant, data: Mapping[str, Any]) -> Identity:
        """Contact the system with ``data`` and say who it is; raise the client's errors."""

    @classmethod
    @abstractmethod
    def reauth_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """The form that asks for new credentials of an entry with ``data``."""

    @classmethod
    @abstractmethod
    def reconfigure_schema(cls, data: Mapping[str, Any]) -> vol.Schema:
        """The form that changes how an entry with ``data`` reaches the system."""

    @classmethod
    @abstractmethod
    def describe(cls, data: Mapping[str, Any]) -> str:
        """What a check with ``data`` tried to reach, for the form's error messages."""

    @classmethod
    def title(cls, identity: Identity, data: Mapping[str, Any]) -> str:
        """The title an entry with ``data`` gets when the user gives none."""
        return identity.name

    @classmethod
    def certificate_address(cls, data: Mapping[str, Any]) -> tuple[str, int] | None:
        """Where an entry with ``data`` pins a TLS certificate on first use: (host, port).

        None when there is nothing to pin: plain HTTP, a certificate the system's CAs
        vouch for (verification on), a cloud service. Otherwise the config flow shows
        the certificate found there before any credential is sent, and stores its
        fingerprint in the entry (``backends.certificate``).
        """
        return None

    @classmethod
    def new_entry_data(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """The data a new entry stores (a backend may add generated values)."""
        return dict(data)

    # -- a loaded entry -------------------------------------------------------------------

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this entry's system can do (it may depend on what setup found)."""

    @property
    def events_unavailable(self) -> str | None:
        """Why this entry hears no call events now, though its system can send them.

        None: events arrive, or the system has none. The action's refusal of ``wait``,
        ``acknowledge`` and ``escalate`` quotes it, so the user knows what to fix.
        """
        return None

    @property
    @abstractmethod
    def device_info(self) -> DeviceInfo:
        """The device that represents the system (known after ``async_setup``)."""

    @abstractmethod
    async def async_setup(self) -> None:
        """Connect and learn what the system is; raise the client's errors."""

    @abstractmethod
    async def async_play(self, request: PlayRequest) -> PlayResult:
        """Play the request; one target failing is a ``CallFailure``, not an exception."""

    @abstractmethod
    async def async_close(self) -> None:
        """Release the connection (the entry is unloading or Home Assistant stops)."""

    async def async_stop(self) -> None:
        """Home Assistant stops (entries are not unloaded): close what must not linger.

        The default keeps everything: nothing of it outlives Home Assistant.
        """
        return

    @abstractmethod
    def diagnostics(self) -> dict[str, Any]:
        """State for diagnostics, without any secret."""

    @callback
    def async_placed(
        self,
        calls: Iterable[tuple[str, str | None]],
        failures: Iterable[tuple[str, VoicePromptError]],
    ) -> PlayResult:
        """The result of calls the system accepted; each failure is also a failed event."""
        result = PlayResult(
            calls=[
                CallResult(target=target, call_id=call_id, status=CallStatus.PLACED)
                for target, call_id in calls
            ]
        )
        for target, error in failures:
            result.failed.append(CallFailure(target=target, error=error))
            self.async_report(
                CallEvent(
                    status=CallStatus.FAILED,
                    target=target,
                    reason=error.message,
                    extras={"code": error.code},
                )
            )
        return result

    async def async_hang_up(self, call_id: str) -> bool:
        """End a call this entry placed, if the system can; False when it cannot.

        The default cannot: the system ends the call itself when its prompts end.
        """
        return False

    @callback
    def async_report(self, event: CallEvent) -> None:
        """Hand a call event to whoever waits for the call and to the entry's entities."""
        self.outcomes.feed(event)
        async_dispatcher_send(self.hass, SIGNAL_CALL_EVENT.format(self.entry.entry_id), event)

    @property
    def device_identifier(self) -> tuple[str, str]:
        """The device registry identifier of this entry's system."""
        return (DOMAIN, str(self.entry.unique_id))


type VoicePromptConfigEntry = ConfigEntry[Backend]

__all__ = [
    "Backend",
    "CallEvent",
    "CallFailure",
    "CallResult",
    "CallStatus",
    "Capabilities",
    "Identity",
    "PlayRequest",
    "PlayResult",
    "VoicePromptConfigEntry",
]
