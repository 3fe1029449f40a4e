"""Real-network fakes of the backends the integration talks to (for tests and demos)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
import contextlib
import signal
import sys
from typing import Any


def emit(line: str) -> None:
    """One log line of a fake in program mode, flushed at once (output is often piped)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_for_stop_signal() -> None:
    """Return on Ctrl-C or SIGTERM (program mode of the fakes)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_until_stopped(close: Callable[[], Awaitable[None]], name: str) -> None:
    """Run until a stop signal, then ``close`` the fake (and say so, under ``name``)."""
    emit("Press Ctrl-C to stop.")
    try:
        await wait_for_stop_signal()
    finally:
        await close()
    emit(f"{name} stopped.")


def run_program(serve: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run`` a fake's program; Ctrl-C is a normal exit."""
    try:
        return asyncio.run(serve)
    except KeyboardInterrupt:
        return 0
