"""The one mapping from client exceptions to what Home Assistant shows.

The clients raise the classes of ``api.exceptions`` with an English message that says
what went wrong (and names the extension, prompt or host). Here each class becomes a
translated key whose text frames that message as ``{detail}`` and names the entry.
"""

from __future__ import annotations

from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
)

from .api import exceptions as client
from .const import DOMAIN

# Most specific first: the first class an error is an instance of decides.
# Class → (translation key of exceptions, config-flow error key).
_KEYS: Final[tuple[tuple[type[client.VoicePromptError], str, str], ...]] = (
    (client.VoicePromptInputError, "invalid_input", "unknown"),
    (client.VoicePromptIPBlockedError, "ip_blocked", "ip_blocked"),
    (client.VoicePromptTenantNotFoundError, "tenant_not_found", "tenant_not_found"),
    (client.VoicePromptSecretExpiredError, "secret_expired", "secret_expired"),
    (client.VoicePromptAuthenticationError, "invalid_auth", "invalid_auth"),
    (client.VoicePromptTimeoutError, "timeout", "cannot_connect"),
    (client.VoicePromptCertificateChangedError, "certificate_changed", "certificate_changed"),
    (client.VoicePromptSSLError, "ssl_error", "ssl_error"),
    (client.VoicePromptConnectionError, "cannot_connect", "cannot_connect"),
    (client.VoicePromptResponseError, "invalid_response", "cannot_connect"),
    (client.VoicePromptAriDisabledError, "ari_disabled", "ari_disabled"),
    (client.VoicePromptApiDisabledError, "api_disabled", "api_disabled"),
    (client.VoicePromptRequestError, "request_failed", "unknown"),
    (client.VoicePromptError, "unknown_error", "unknown"),
)


def _keys(err: client.VoicePromptError) -> tuple[str, str]:
    return next((key, flow) for cls, key, flow in _KEYS if isinstance(err, cls))


def needs_reauth(err: client.VoicePromptError) -> bool:
    """Only new credentials cure it: retrying would lock the PBX, so ask the user."""
    return isinstance(err, client.VoicePromptAuthenticationError)


def translate_error(
    hass: HomeAssistant, entry: ConfigEntry, err: client.VoicePromptError
) -> HomeAssistantError:
    """The error an action raises; refused credentials also start reauth."""
    if needs_reauth(err):
        entry.async_start_reauth(hass)
    cls = (
        ServiceValidationError
        if isinstance(err, client.VoicePromptInputError)
        else HomeAssistantError
    )
    return cls(
        translation_domain=DOMAIN,
        translation_key=_keys(err)[0],
        translation_placeholders={"entry": entry.title, "detail": err.message},
    )


def setup_error(entry: ConfigEntry, err: client.VoicePromptError) -> HomeAssistantError:
    """Refused credentials wait for reauth; anything else is retried by Home Assistant."""
    failure = ConfigEntryAuthFailed if needs_reauth(err) else ConfigEntryNotReady
    return failure(
        translation_domain=DOMAIN,
        translation_key=_keys(err)[0],
        translation_placeholders={"entry": entry.title, "detail": err.message},
    )


def flow_error(err: client.VoicePromptError) -> str:
    """The config-flow error key for a failed check."""
    return _keys(err)[1]
