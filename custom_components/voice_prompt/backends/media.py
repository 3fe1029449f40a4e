"""Prompts that are audio on Home Assistant: media-source ids and paths, as fetchable URLs.

Shared by the backends whose phone system downloads audio by URL (``media_urls``): each
passes the base URL its system can reach (Teams: the external HTTPS URL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from homeassistant.components import media_source
from homeassistant.components.media_player.browse_media import async_process_play_media_url
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from ..const import DOMAIN

# How much of an id the error repeats (ids of TTS media sources hold a whole text).
_SHOWN: Final = 120


def is_media_source(prompt: str) -> bool:
    """Whether ``prompt`` is a ``media-source://`` id."""
    return media_source.is_media_source_id(prompt)


async def async_media_url(hass: HomeAssistant, prompt: str, base_url: Callable[[], str]) -> str:
    """The URL a phone system fetches ``prompt`` from.

    A ``media-source://`` id is resolved; a path on Home Assistant (``/local/...``, a
    resolved ``/media/...``) gets ``base_url()`` in front, signed where Home Assistant
    asks for a login; any other text is returned as it is, for the client to check.
    ``base_url`` is called only when a path needs it (it may raise: no such URL).
    """
    if is_media_source(prompt):
        try:
            resolved = await media_source.async_resolve_media(hass, prompt, None)
        except HomeAssistantError as err:
            shown = prompt if len(prompt) <= _SHOWN else f"{prompt[:_SHOWN]}…"
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="media_source_unresolvable",
                translation_placeholders={
                    "prompt": shown,
                    "detail": str(err) or type(err).__name__,
                },
            ) from err
        # A signature (authSig) lets the system fetch /media/... without a login; the
        # TTS proxy and absolute URLs elsewhere are left as they are.
        prompt = async_process_play_media_url(hass, resolved.url, allow_relative_url=True)
    return base_url() + prompt if prompt.startswith("/") else prompt
