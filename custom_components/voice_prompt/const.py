"""Names shared by the integration's modules."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "voice_prompt"
LOGGER = logging.getLogger(__package__)

# Which backend serves an entry (entry.data); see backends/.
CONF_BACKEND: Final = "backend"

SERVICE_PLAY_PROMPT: Final = "play_prompt"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_TARGET: Final = "target"
ATTR_EXTENSION: Final = "extension"  # 0.1.0's name of target, still accepted
ATTR_PROMPT: Final = "prompt"
ATTR_MESSAGE: Final = "message"
ATTR_TTS_ENGINE: Final = "tts_engine"
ATTR_LANGUAGE: Final = "language"
ATTR_TTS_OPTIONS: Final = "tts_options"
ATTR_REPEAT: Final = "repeat"
ATTR_VOLUME: Final = "volume"
ATTR_AUTOANSWER: Final = "autoanswer"
ATTR_CALL_ID: Final = "call_id"
ATTR_CLIENT_CONTEXT: Final = "client_context"
ATTR_LOOP: Final = "loop"
ATTR_HANG_UP: Final = "hang_up"
ATTR_ACKNOWLEDGE: Final = "acknowledge"
ATTR_WAIT: Final = "wait"
ATTR_TIMEOUT: Final = "timeout"
ATTR_ESCALATE: Final = "escalate"

# Config subentry type of a named target (notify entity + announce button).
SUBENTRY_TARGET: Final = "target"

# Dispatcher signal of an entry's call events, formatted with the entry id.
SIGNAL_CALL_EVENT: Final = "voice_prompt_call_event_{}"
