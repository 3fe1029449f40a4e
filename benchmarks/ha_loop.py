"""Home Assistant's own event loop for the benchmarks, on every release they run on."""

from __future__ import annotations

import asyncio

from homeassistant import runner


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop ``hass`` runs on: a loop policy until 2025, a function since Python 3.14."""
    create = getattr(runner, "create_event_loop", None)
    if create is not None:
        loop: asyncio.AbstractEventLoop = create(False)
        return loop
    return runner.HassEventLoopPolicy(False).new_event_loop()
