"""Async clients for the Voice Prompt backends (no Home Assistant imports)."""

from .errors import (
    VoicePromptAuthenticationError,
    VoicePromptConnectionError,
    VoicePromptError,
    VoicePromptInputError,
    VoicePromptIPBlockedError,
    VoicePromptRequestError,
    VoicePromptResponseError,
    VoicePromptSSLError,
    VoicePromptTimeoutError,
    VoicePromptTokenError,
)
from .yeastar import (
    YeastarClient,
    YeastarDeviceInfo,
    YeastarExtension,
    YeastarPlayResult,
    normalize_extensions,
    normalize_prompts,
)

__all__ = [
    "VoicePromptAuthenticationError",
    "VoicePromptConnectionError",
    "VoicePromptError",
    "VoicePromptIPBlockedError",
    "VoicePromptInputError",
    "VoicePromptRequestError",
    "VoicePromptResponseError",
    "VoicePromptSSLError",
    "VoicePromptTimeoutError",
    "VoicePromptTokenError",
    "YeastarClient",
    "YeastarDeviceInfo",
    "YeastarExtension",
    "YeastarPlayResult",
    "normalize_extensions",
    "normalize_prompts",
]
