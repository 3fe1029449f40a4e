"""One exception tree for every backend.

Each exception carries a ``translation_key`` and ``placeholders`` so the Home Assistant
layer can show a translated message, and an English ``str()`` for standalone use.
Messages never contain credentials or URLs (a Yeastar token travels in the URL).
"""

from __future__ import annotations

from typing import Self


class VoicePromptError(Exception):
    """Base class for everything the API clients raise."""

    translation_key = "unknown_error"
    message = "Unexpected error: {detail}"
    # True when only new credentials (reauth) can cure it; retrying would not.
    needs_new_credentials = False

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        translation_key: str | None = None,
        message: str | None = None,
        **placeholders: str,
    ) -> None:
        """Build the error; ``placeholders`` fill the message template."""
        if translation_key is not None:
            self.translation_key = translation_key
        if message is not None:
            self.message = message
        self.code = code
        self.placeholders: dict[str, str] = {
            "detail": detail,
            "code": code or "",
            **placeholders,
        }
        super().__init__(self._render())

    def _render(self) -> str:
        try:
            return self.message.format(**self.placeholders)
        except (KeyError, IndexError, ValueError):
            return self.message

    def copy(self) -> Self:
        """The same error as a separate instance (one per caller that shares it)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.placeholders = dict(self.placeholders)
        clone.args = self.args
        return clone

    def with_context(self, **placeholders: str) -> VoicePromptError:
        """Add placeholders (extension, prompt, ...) known only to the caller."""
        self.placeholders.update(placeholders)
        self.args = (self._render(),)
        return self


class VoicePromptConnectionError(VoicePromptError):
    """The backend could not be reached, or the exchange broke off."""

    translation_key = "cannot_connect"
    message = "Cannot connect to {host}: {detail}"


class VoicePromptTimeoutError(VoicePromptConnectionError):
    """The backend did not answer in time."""

    translation_key = "timeout"
    message = "{host} did not answer within {timeout} seconds"


class VoicePromptSSLError(VoicePromptConnectionError):
    """The TLS handshake failed (most often a self-signed certificate)."""

    translation_key = "ssl_error"
    message = (
        "The TLS certificate of {host} was not accepted ({detail}); turn off "
        "certificate verification for a PBX with a self-signed certificate"
    )


class VoicePromptResponseError(VoicePromptError):
    """The backend answered something that is not a valid API reply."""

    translation_key = "invalid_response"
    message = "{host} sent a reply that is not a valid API response: {detail}"


class VoicePromptAuthenticationError(VoicePromptError):
    """Credentials or token were refused: a new password or token is needed."""

    translation_key = "invalid_auth"
    message = "The API username, password or token was refused by {host}"
    needs_new_credentials = True


class VoicePromptIPBlockedError(VoicePromptAuthenticationError):
    """The PBX blocks this address after too many failed logins."""

    translation_key = "ip_blocked"
    # The PBX lifts the block by itself after 10 minutes.
    needs_new_credentials = False
    message = (
        "{host} has locked out this address after repeated failed logins; "
        "wait 10 minutes before trying again"
    )


class VoicePromptTokenError(VoicePromptAuthenticationError):
    """The token is unknown, blank or timed out (a fresh login cures it)."""

    translation_key = "token_rejected"
    message = "{host} refused the API token (unknown, blank or expired)"


class VoicePromptRequestError(VoicePromptError):
    """The backend refused the request (device state, internal error, ...)."""

    translation_key = "request_failed"
    message = "The request was refused with error {code}"


class VoicePromptInputError(VoicePromptRequestError):
    """The backend refused the request because of the caller's input."""

    translation_key = "invalid_input"
    message = "The request was refused because of its input (error {code})"
