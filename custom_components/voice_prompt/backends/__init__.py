"""The backends: one module per kind of phone system, each a ``Backend`` subclass.

Adding a backend is a client in ``api/``, a module here, its line in ``BACKENDS`` and its
strings; nothing else in the integration knows which backends exist.
"""

from __future__ import annotations

from typing import Final

from .asterisk import AsteriskBackend
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
from .yeastar_p import YeastarPBackend

# In the order of the config flow's menu.
BACKENDS: Final[dict[str, type[Backend]]] = {
    backend.kind: backend
    for backend in (YeastarBackend, TeamsBackend, YeastarPBackend, AsteriskBackend)
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
