"""Names and defaults of the Voice Prompt integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "voice_prompt"
LOGGER = logging.getLogger(__package__)

CONF_BACKEND: Final = "backend"
BACKEND_YEASTAR: Final = "yeastar"
BACKEND_GRAPH: Final = "graph"

DEFAULT_VERIFY_SSL: Final = False  # Yeastar PBXs ship with a self-signed certificate
# Well inside the PBX's 30-minute idle limit; the client only sends a heartbeat when idle.
KEEPALIVE_INTERVAL: Final = timedelta(minutes=5)

SERVICE_PLAY_PROMPT: Final = "play_prompt"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_PROMPT: Final = "prompt"
ATTR_EXTENSION: Final = "extension"
ATTR_AUTOANSWER: Final = "autoanswer"

# Microsoft Graph
CONF_TENANT_ID: Final = "tenant_id"
CONF_APPLICATION_INSTANCE_ID: Final = "application_instance_id"
CONF_HANG_UP: Final = "hang_up"
DEFAULT_HANG_UP: Final = True
ESTABLISH_TIMEOUT: Final = 60.0
COMPLETION_TIMEOUT: Final = 600.0
ATTR_CALL_ID: Final = "call_id"
ATTR_TARGET: Final = "target"
ATTR_CLIENT_CONTEXT: Final = "client_context"
ATTR_LOOP: Final = "loop"
ATTR_HANG_UP: Final = "hang_up"
SIGNAL_GRAPH_EVENT: Final = "voice_prompt_graph_event_{}"
