"""activities/held_calls.py: a held call's activity, once answered, waits for the other calls held for the same
instant in its process (at most until its bound), so that a burst completes after its last call is answered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from activities.held_calls import HeldCalls


async def test_an_answered_call_waits_for_the_other_calls_of_its_instant() -> None:
    held = HeldCalls()
    instant = datetime.now(UTC).replace(microsecond=0)
    other_instant = instant + timedelta(seconds=1)
    first_answered = asyncio.Event()
    second_may_answer = asyncio.Event()
    finished: list[str] = []

    async def first() -> None:
        with held.call(instant):
            pass  # answered at once
        first_answered.set()
        await held.all_answered(instant, at_most_until=datetime.now(UTC) + timedelta(seconds=30))
        finished.append("first")

    async def second() -> None:
        with held.call(instant):
            await second_may_answer.wait()
        finished.append("second")

    async def unrelated() -> None:
        with held.call(other_instant):
            await first_answered.wait()
        await held.all_answered(other_instant, at_most_until=datetime.now(UTC) + timedelta(seconds=30))
        finished.append("unrelated")

    tasks = [asyncio.create_task(job()) for job in (second, unrelated, first)]
    await first_answered.wait()
    await asyncio.sleep(0.05)
    assert finished == ["unrelated"] and held.open_calls(instant) == 1
    second_may_answer.set()
    await asyncio.gather(*tasks)
    assert finished == ["unrelated", "second", "first"]
    assert held.open_calls(instant) == 0


async def test_the_wait_ends_at_its_bound_and_a_call_that_failed_counts_as_answered() -> None:
    held = HeldCalls()
    instant = datetime.now(UTC)
    stuck = asyncio.Event()

    async def slow() -> None:
        with held.call(instant):
            await stuck.wait()

    async def failing() -> None:
        with held.call(instant):
            raise RuntimeError("connection reset")

    slow_task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    try:
        await failing()
    except RuntimeError:
        pass
    assert held.open_calls(instant) == 1
    began = asyncio.get_running_loop().time()
    await held.all_answered(instant, at_most_until=datetime.now(UTC) + timedelta(seconds=0.3))
    assert 0.25 <= asyncio.get_running_loop().time() - began < 2
    stuck.set()
    await slow_task
    await held.all_answered(
        instant, at_most_until=datetime.now(UTC) + timedelta(seconds=30)
    )  # none open: at once
