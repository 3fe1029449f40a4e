"""The backends: one module per kind of phone system, each a ``Backend`` subclass.

Adding a backend is a client in ``api/``, a module here, its line in ``BACKENDS`` and its
strings; nothing else in the integration knows which backends exist.
"""

from __future__ import annotations

from typing import Final

from .base import (
    Backend,
    CallEvent,
    CallStatus,
    Capabilities,
    Identity,
    PlayRequest,
    PlayResult,
    VoicePromptConfigEntry,
)
from .graph import TeamsBackend
from .yeastar import YeastarBackend

BACKENDS: Final[dict[str, type[Backend]]] = {
    backend.kind: backend for backend in (YeastarBackend, TeamsBackend)
}

__all__ = [
    "BACKENDS",
    "Backend",
    "CallEvent",
    "CallStatus",
    "Capabilities",
    "Identity",
    "PlayRequest",
    "PlayResult",
    "VoicePromptConfigEntry",
]
