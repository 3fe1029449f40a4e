"""Exceptions of the Voice Prompt clients, shared by every backend.

Each carries an English message for standalone use and the backend's own ``code`` (a
Yeastar errno, an AADSTS number, an HTTP status) where there is one. They know nothing of
Home Assistant: the integration maps the classes to its translated messages. Messages
never contain credentials or URLs with secrets (a Yeastar token travels in the URL).
"""

from __future__ import annotations

import copy
from typing import Self


class VoicePromptError(Exception):
    """Base class for everything the clients raise."""

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None) -> None:
        """Describe the failure; ``target`` is the extension or user it concerns, if any."""
        super().__init__(message)
        self.message = message
        self.code = code
        self.target = target

    def copy(self) -> Self:
        """The same error as a separate instance (one per caller that shares it)."""
        return copy.copy(self)


class VoicePromptConnectionError(VoicePromptError):
    """The backend could not be reached, or the exchange broke off."""


class VoicePromptTimeoutError(VoicePromptConnectionError):
    """The backend did not answer in time."""


class VoicePromptSSLError(VoicePromptConnectionError):
    """The TLS handshake failed (most often a self-signed certificate)."""


class VoicePromptCertificateChangedError(VoicePromptSSLError):
    """The server presented another certificate than the pinned one; nothing was sent.

    ``expected`` and ``received`` are the SHA-256 fingerprints (hex) of the pinned and the
    presented certificate: public values, not secrets.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: str = "",
        received: str = "",
        code: str | None = None,
        target: str | None = None,
    ) -> None:
        """Name both certificates."""
        super().__init__(message, code=code, target=target)
        self.expected = expected
        self.received = received


class VoicePromptResponseError(VoicePromptError):
    """The backend answered something that is not a valid API reply."""


class VoicePromptAuthenticationError(VoicePromptError):
    """Credentials or token were refused: only new ones (reauth) can cure it."""


class VoicePromptTokenError(VoicePromptAuthenticationError):
    """An API token is unknown, blank or timed out (a fresh login cures it)."""


class VoicePromptTenantNotFoundError(VoicePromptAuthenticationError):
    """Microsoft Entra ID does not know the tenant."""


class VoicePromptSecretExpiredError(VoicePromptAuthenticationError):
    """The client secret has expired."""


class VoicePromptIPBlockedError(VoicePromptError):
    """The backend blocks this address after too many failed logins (it lifts it by itself)."""


class VoicePromptRequestError(VoicePromptError):
    """The backend refused the request (device state, permission, internal error, ...)."""


class VoicePromptApiDisabledError(VoicePromptRequestError):
    """The system has no usable API: not enabled, not permitted, not licensed or not there."""


class VoicePromptAriDisabledError(VoicePromptApiDisabledError):
    """Asterisk's HTTP server answers, but without the REST Interface (ari.conf, http.conf)."""


class VoicePromptInputError(VoicePromptRequestError):
    """The request was refused because of the caller's input."""
