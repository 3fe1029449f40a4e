"""One login or token request at a time; callers that arrive meanwhile share its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .exceptions import VoicePromptError


class SingleFlight[T]:
    """Run one coroutine for every concurrent caller and give them all its outcome.

    A failed run is not repeated by each waiting caller in turn: behind a login that
    times out, 40 waiters would otherwise wait 40 timeouts one after another. They all
    get its error instead (each its own copy, to add its own context to); the next
    call after that tries again.
    """

    def __init__(self) -> None:
        """Nothing runs yet."""
        self._pending: asyncio.Future[T] | None = None

    async def run(self, func: Callable[[], Awaitable[T]]) -> T:
        """Await ``func()``, or the run already in flight."""
        while (pending := self._pending) is not None:
            try:
                # shield: one waiter being cancelled must not cancel the shared outcome.
                return await asyncio.shield(pending)
            except VoicePromptError as err:
                raise err.copy() from None
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The caller that ran it was cancelled, not this one: run it here.
        self._pending = pending = asyncio.get_running_loop().create_future()
        try:
            result = await func()
        except Exception as err:
            pending.set_exception(err)
            pending.exception()  # marks it retrieved: there may be no waiter at all
            raise
        except BaseException:
            pending.cancel()
            raise
        else:
            pending.set_result(result)
            return result
        finally:
            self._pending = None
