"""What the PBX backends share: the address form, its parsing, and the IP-block repair."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from ..api import VoicePromptError, VoicePromptInputError, VoicePromptIPBlockedError
from ..const import DOMAIN
from ..validation import vol
from .base import PlayRequest, VoicePromptConfigEntry
from .host import parse_host

# Extension whose outbound permission calls to external numbers use (the APIs'
# dial permission); an option, as it is a PBX policy rather than a per-call choice.
CONF_DIAL_PERMISSION: Final = "dial_permission"
# PBXs ship with a self-signed certificate.
DEFAULT_VERIFY_SSL: Final = False
SECRET: Final = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)
VERIFY: Final[dict[vol.Marker, Any]] = {
    vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): bool
}


def address_fields(default_port: int) -> dict[vol.Marker, Any]:
    """Host and port of a PBX form."""
    return {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=default_port): cv.port,
    }


def clean_address(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A pasted URL becomes its host; a port in it wins over the port field."""
    values = dict(data)
    address = parse_host(str(values.get(CONF_HOST, "")))
    if address is None:
        return values, {CONF_HOST: "invalid_host"}
    host, port = address
    return {**values, CONF_HOST: host, CONF_PORT: port or values[CONF_PORT]}, {}


def pinned_address(data: Mapping[str, Any]) -> tuple[str, int] | None:
    """The PBX's address when its certificate is pinned, i.e. not verified with the CAs."""
    host, port = data.get(CONF_HOST), data.get(CONF_PORT)
    if data.get(CONF_VERIFY_SSL, DEFAULT_VERIFY_SSL) or host is None or port is None:
        return None  # verified, or no address (damaged data: the check itself then fails)
    return str(host), int(port)


def describe_address(data: Mapping[str, Any]) -> str:
    """How the form's errors name the PBX: "the PBX at host:port" (IPv6 in brackets)."""
    host = str(data.get(CONF_HOST, ""))
    address = f"[{host}]:{data.get(CONF_PORT)}" if ":" in host else f"{host}:{data.get(CONF_PORT)}"
    return f"the PBX at {address}"


def named_play(
    entry: VoicePromptConfigEntry, request: PlayRequest
) -> tuple[str | list[str], str | list[str]]:
    """A PBX request's targets and Custom Prompt names, as the PBX clients take them.

    One text may hold several ("1000, 1001", "hello111+queue1"; a list of only that text is
    the same: the action's form sends lists); in a longer list each item is one target or
    one prompt name (the clients refuse a separator inside one).
    """
    if not request.targets:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="target_required",
            translation_placeholders={"entry": entry.title},
        )
    if any(not isinstance(item, str) for item in request.prompts):
        raise VoicePromptInputError("A PBX plays Custom Prompts by name, not media objects")
    targets = list(request.targets)
    names = [str(item) for item in request.prompts]
    return (
        targets[0] if len(targets) == 1 else targets,
        names[0] if len(names) == 1 else names,
    )


class BlockedRepair:
    """A repair issue while the PBX locks Home Assistant out; gone once it answers again."""

    def __init__(self, hass: HomeAssistant, entry: VoicePromptConfigEntry, host: str) -> None:
        """Pick up an issue a previous setup attempt left (it outlives a setup retry)."""
        self._hass = hass
        self._entry = entry
        self._host = host
        self._issue_id = f"ip_blocked_{entry.entry_id}"
        self._shown = ir.async_get(hass).async_get_issue(DOMAIN, self._issue_id) is not None

    def update(self, err: VoicePromptError | None) -> None:
        """After each exchange: the error it ended in, or None when it worked."""
        if isinstance(err, VoicePromptIPBlockedError):
            self._shown = True
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                self._issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="ip_blocked",
                translation_placeholders={"entry": self._entry.title, "host": self._host},
            )
        elif self._shown and (err is None or err.code is not None):
            # The PBX answered (a refusal carries its code too): it no longer blocks us.
            self._shown = False
            ir.async_delete_issue(self._hass, DOMAIN, self._issue_id)
