"""An async try's whole budget (:class:`smsgate.answers.TryDeadlines`): one timer for every try
in flight ends those past their deadline, and only those, as :func:`asyncio.timeout` would.

The end to end case (a vendor trickling its answer's headers, counted by the vendor's own
server) is tests/test_hardening.py's ``test_a_send_whose_answer_headers_trickle_ends_within_its_budget``.
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from smsgate.answers import ANSWER_TIME_FACTOR, TryDeadlines, too_slow_try, try_budget
from smsgate.errors import UnknownOutcome
from smsgate.transport import AsyncDriver


def test_the_budget_is_every_phase_and_the_body() -> None:
    assert (
        try_budget({"pool": 1, "connect": 2, "write": 3, "read": 4}) == 1 + 2 + 3 + 4 + ANSWER_TIME_FACTOR * 4
    )
    assert try_budget(httpx.Timeout(10).as_dict()) == 40 + ANSWER_TIME_FACTOR * 10
    for unbounded in ("pool", "connect", "write", "read"):
        timeouts: dict[str, float | None] = {"pool": 1, "connect": 1, "write": 1, "read": 1}
        timeouts[unbounded] = None
        assert try_budget(timeouts) is None, unbounded
    assert try_budget(None) is None
    assert try_budget({"read": 1.0}) is None  # a phase not given is not bounded


async def _watched(deadlines: TryDeadlines, budget: float, wait: float) -> str:
    """A try as the driver makes one: watched, settled, its deadline's cancellation told apart."""
    assert deadlines.watch(budget)
    try:
        await asyncio.sleep(wait)
        return "answered"
    except asyncio.CancelledError:
        if deadlines.settle():
            return "too slow"
        raise
    finally:
        deadlines.settle()


def test_only_the_tries_past_their_deadline_end_and_the_rest_answer() -> None:
    async def main() -> list[str]:
        deadlines = TryDeadlines(asyncio.get_running_loop())
        tries = [
            asyncio.ensure_future(_watched(deadlines, budget, wait))
            for budget, wait in ((0.2, 0.05), (0.2, 5.0), (0.6, 0.4), (0.3, 5.0), (5.0, 0.7))
        ]
        done = await asyncio.gather(*tries)
        assert not deadlines._at and not deadlines._fired  # nothing left watched
        return done

    started = asyncio.get_event_loop_policy().new_event_loop()
    try:
        t0 = started.time()
        assert started.run_until_complete(main()) == [
            "answered",
            "too slow",
            "answered",
            "too slow",
            "answered",
        ]
        assert started.time() - t0 < 2.0  # the slow ones ended at their deadline, not after 5 s
    finally:
        started.close()


def test_a_try_cancelled_by_its_caller_is_cancelled_not_too_slow() -> None:
    async def main() -> None:
        deadlines = TryDeadlines(asyncio.get_running_loop())
        one = asyncio.ensure_future(_watched(deadlines, 10.0, 10.0))
        await asyncio.sleep(0.05)
        one.cancel()
        with pytest.raises(asyncio.CancelledError):
            await one
        assert not deadlines._at and not deadlines._fired

    asyncio.run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 counts no cancellations")
def test_a_caller_cancelling_as_the_deadline_passes_still_cancels() -> None:
    async def main() -> None:
        deadlines = TryDeadlines(asyncio.get_running_loop())
        one = asyncio.ensure_future(_watched(deadlines, 0.1, 10.0))
        await asyncio.sleep(0.09)
        loop = asyncio.get_running_loop()
        loop.call_at(deadlines._timer_at, one.cancel)  # the caller's cancel right after the deadline's
        with pytest.raises(asyncio.CancelledError):
            await one

    asyncio.run(main())


def test_a_try_that_ended_as_too_slow_leaves_its_task_uncancelled() -> None:
    """After the deadline's cancellation is taken back, the task goes on (an outer timeout of
    its own still works, and later awaits are not cancelled)."""

    async def main() -> str:
        deadlines = TryDeadlines(asyncio.get_running_loop())
        assert await _watched(deadlines, 0.05, 5.0) == "too slow"
        await asyncio.sleep(0.01)  # not cancelled
        task = asyncio.current_task()
        assert task is not None
        if sys.version_info >= (3, 11):
            assert task.cancelling() == 0
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(1)
        return "went on"

    assert asyncio.run(main()) == "went on"


class _Hanging:
    """An AsyncSender whose answer never comes (counts its requests)."""

    def __init__(self) -> None:
        self.asked = 0

    async def send(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        pass


def test_the_driver_ends_a_post_past_its_budget_as_a_read_timeout_sent_once() -> None:
    sender = _Hanging()
    request = httpx.Request(
        "POST",
        "http://vendor.invalid/send",
        json={"to": "+2348031234567"},
        extensions={"timeout": httpx.Timeout(0.05).as_dict()},
    )

    async def main() -> None:
        driver = AsyncDriver(sender)
        with pytest.raises(UnknownOutcome, match="ReadTimeout after the request was sent") as caught:
            await driver.send(request)
        assert "no whole answer within 0.3 s" in str(caught.value.__cause__)

    asyncio.run(main())
    assert sender.asked == 1  # a POST that may have reached the vendor is not sent again
    assert isinstance(too_slow_try(request, 0.3), httpx.ReadTimeout)


def test_a_request_without_timeouts_on_an_async_sender_is_not_bounded() -> None:
    sender = _Hanging()
    request = httpx.Request("GET", "http://vendor.invalid/status")

    async def main() -> None:
        driver = AsyncDriver(sender)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(driver.send(request), 0.3)

    asyncio.run(main())
