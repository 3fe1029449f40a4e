"""Async clients for the Voice Prompt backends, usable without Home Assistant.

Each client takes an injected ``aiohttp.ClientSession`` and raises the exceptions of
:mod:`.exceptions`, which carry the backend's own codes.
"""

from .exceptions import (
    VoicePromptApiDisabledError,
    VoicePromptAriDisabledError,
    VoicePromptAuthenticationError,
    VoicePromptCertificateChangedError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSecretExpiredError,
    VoicePromptSSLError,
    VoicePromptTenantNotFoundError,
    VoicePromptTimeoutError,
    VoicePromptTokenError,
)
from .graph import (
    GraphClient,
    GraphEvent,
    GraphEventType,
    GraphMedia,
    GraphNotificationVerifier,
    GraphPlayResult,
    GraphTarget,
    TargetKind,
    check_client_context,
    parse_media,
    parse_target,
)
from .yeastar import (
    AuthMode,
    YeastarClient,
    YeastarDeviceInfo,
    YeastarExtension,
    YeastarPlayResult,
    normalize_extensions,
    normalize_prompts,
)
from .yeastar_p import YeastarPClient, YeastarPSystemInfo
from .yeastar_reports import YeastarReport, YeastarReportError, YeastarReportKind, parse_report

__all__ = [
    "AuthMode",
    "GraphClient",
    "GraphEvent",
    "GraphEventType",
    "GraphMedia",
    "GraphNotificationVerifier",
    "GraphPlayResult",
    "GraphTarget",
    "TargetKind",
    "VoicePromptApiDisabledError",
    "VoicePromptAriDisabledError",
    "VoicePromptAuthenticationError",
    "VoicePromptCertificateChangedError",
    "VoicePromptConnectionError",
    "VoicePromptError",
    "VoicePromptIPBlockedError",
    "VoicePromptInputError",
    "VoicePromptRequestError",
    "VoicePromptResponseError",
    "VoicePromptSSLError",
    "VoicePromptSecretExpiredError",
    "VoicePromptTenantNotFoundError",
    "VoicePromptTimeoutError",
    "VoicePromptTokenError",
    "YeastarClient",
    "YeastarDeviceInfo",
    "YeastarExtension",
    "YeastarPClient",
    "YeastarPSystemInfo",
    "YeastarPlayResult",
    "YeastarReport",
    "YeastarReportError",
    "YeastarReportKind",
    "check_client_context",
    "normalize_extensions",
    "normalize_prompts",
    "parse_media",
    "parse_report",
    "parse_target",
]
