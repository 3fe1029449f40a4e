"""What every client does the same with HTTP: name hosts, read fields, turn failures into errors."""

from __future__ import annotations

import os
from typing import Any, Final

import aiohttp

from .exceptions import (
    VoicePromptCertificateChangedError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
)
from .tls import format_fingerprint


def url_host(host: str) -> str:
    """A host as it stands in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def opt_str(value: Any) -> str | None:
    """A reply field as text; None when it is missing or empty."""
    return str(value) if value not in (None, "") else None


# No number people dial is this long (E.164: 15 digits); str() of an int of more than
# 4,300 digits even raises.
_LONGEST_NUMBER: Final = 10**40


def number_text(value: object) -> str | None:
    """A target given as text or a whole number, as text; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _LONGEST_NUMBER:
        return str(value)
    return None


def shown(value: object) -> str:
    """How a refusal quotes what it was given: at most 40 characters, never raising."""
    if isinstance(value, int) and abs(value) >= _LONGEST_NUMBER:
        return "A number of more than 40 digits"
    return str(value)[:40]


def bounded(what: str, value: object, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``; ``what`` says what it counts."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise VoicePromptInputError(f"{what} must be a whole number from {low} to {high}")
    return value


def describe(err: BaseException) -> str:
    """Why an exchange failed, in a few words of ours.

    aiohttp's own texts hold URLs (a PBX token travels in the query) and read like a
    traceback ("Cannot connect to host 127.0.0.1:8088 ssl:False [Connect call failed …]").
    """
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return getattr(err.certificate_error, "verify_message", None) or "certificate not trusted"
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return "host name not found"
    if isinstance(err, aiohttp.ClientConnectorError):
        # asyncio's strerror names the address; the number's own text does not.
        code = err.os_error.errno
        return os.strerror(code).lower() if code else type(err.os_error).__name__
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(err, aiohttp.ClientPayloadError):
        return "the reply broke off"
    if isinstance(err, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(err, aiohttp.ClientResponseError):
        return "the reply was not valid HTTP"
    return type(err).__name__


def transport_error(
    err: TimeoutError | aiohttp.ClientError, host: str, seconds: float
) -> VoicePromptError:
    """The client's error for an exchange that failed before a reply (no URL in it).

    Build it inside the ``except`` block and raise it after: raised there, aiohttp's
    error would stay attached as its context, and a ClientResponseError's request info
    holds the URL with its token and the Authorization header.
    """
    if isinstance(err, TimeoutError):
        return VoicePromptTimeoutError(f"{host} did not answer within {seconds:g} seconds")
    if isinstance(err, aiohttp.ServerFingerprintMismatch):
        # aiohttp checks the pin right after the handshake: the request was never written.
        expected, received = err.expected.hex(), err.got.hex()
        return VoicePromptCertificateChangedError(
            f"{host} presented another TLS certificate than the pinned one "
            f"(pinned SHA-256 {format_fingerprint(expected)}, "
            f"presented {format_fingerprint(received)})",
            expected=expected,
            received=received,
        )
    if isinstance(err, aiohttp.ClientSSLError):
        return VoicePromptSSLError(
            f"The TLS certificate of {host} was not accepted ({describe(err)})"
        )
    return VoicePromptConnectionError(f"Cannot connect to {host} ({describe(err)})")
