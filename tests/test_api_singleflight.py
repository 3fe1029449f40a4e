"""SingleFlight: one login or token request for every concurrent caller, one outcome."""

from __future__ import annotations

import asyncio
import gc

import pytest

from custom_components.voice_prompt.api import VoicePromptTimeoutError
from custom_components.voice_prompt.api.singleflight import SingleFlight

TIMEOUT_MESSAGE = "pbx did not answer within 10 seconds"


class Runs:
    """A login stand-in: counts runs, waits until released, then answers or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self) -> str:
        self.count += 1
        await self.release.wait()
        if self.fail:
            raise VoicePromptTimeoutError(TIMEOUT_MESSAGE)
        return f"token-{self.count}"


async def _started(tasks: list[asyncio.Task[str]]) -> None:
    """Let every task reach its await."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not any(task.done() for task in tasks)


async def test_concurrent_callers_share_one_run() -> None:
    flight: SingleFlight[str] = SingleFlight()
    runs = Runs()
    tasks = [asyncio.create_task(flight.run(runs)) for _ in range(20)]
    await _started(tasks)

    runs.release.set()

    assert await asyncio.gather(*tasks) == ["token-1"] * 20
    assert runs.count == 1
    # Done: the next caller runs again.
    assert await flight.run(runs) == "token-2"
    assert runs.count == 2


async def test_a_failed_run_is_shared_not_repeated_per_waiter() -> None:
    """40 waiters behind a failing login: one attempt, 40 errors, each its own instance."""
    flight: SingleFlight[str] = SingleFlight()
    runs = Runs(fail=True)
    tasks = [asyncio.create_task(flight.run(runs)) for _ in range(40)]
    await _started(tasks)

    runs.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert runs.count == 1
    assert all(type(err) is VoicePromptTimeoutError for err in outcomes)
    assert len({id(err) for err in outcomes}) == 40
    assert {str(err) for err in outcomes} == {TIMEOUT_MESSAGE}
    # A copy is independent: context added by one caller stays its own.
    first, second = outcomes[0], outcomes[1]
    assert isinstance(first, VoicePromptTimeoutError)
    assert isinstance(second, VoicePromptTimeoutError)
    first.target = "1000"
    assert second.target is None
    assert first.message == second.message == TIMEOUT_MESSAGE
    assert first.code is second.code is None
    # The copies do not chain to the shared original (no traceback of another task).
    assert second.__cause__ is None
    assert second.__suppress_context__
    # Failed runs are not cached: the next caller tries again.
    runs.fail = False
    assert await flight.run(runs) == "token-2"
    assert runs.count == 2


async def test_a_cancelled_waiter_does_not_cancel_the_run() -> None:
    flight: SingleFlight[str] = SingleFlight()
    runs = Runs()
    leader = asyncio.create_task(flight.run(runs))
    waiters = [asyncio.create_task(flight.run(runs)) for _ in range(2)]
    await _started([leader, *waiters])

    waiters[0].cancel()
    await asyncio.sleep(0)
    runs.release.set()

    assert await leader == "token-1"
    assert await waiters[1] == "token-1"
    assert waiters[0].cancelled()
    assert runs.count == 1


async def test_waiters_run_it_themselves_when_the_runner_is_cancelled() -> None:
    """The caller running the login was cancelled (its action was): waiters carry on."""
    flight: SingleFlight[str] = SingleFlight()
    runs = Runs()
    leader = asyncio.create_task(flight.run(runs))
    waiters = [asyncio.create_task(flight.run(runs)) for _ in range(3)]
    await _started([leader, *waiters])

    leader.cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    runs.release.set()

    assert await asyncio.gather(*waiters) == ["token-2"] * 3
    assert leader.cancelled()
    assert runs.count == 2


async def test_a_failure_nobody_waited_for_is_not_reported_as_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[object] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        flight: SingleFlight[str] = SingleFlight()
        runs = Runs(fail=True)
        runs.release.set()
        with pytest.raises(VoicePromptTimeoutError) as exc_info:
            await flight.run(runs)
        assert str(exc_info.value) == TIMEOUT_MESSAGE
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []
