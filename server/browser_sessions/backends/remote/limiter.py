"""Keeping to the service's request budget on our side (reference §19): 10 POSTs per 60 s sliding window
per user, every one counted (failed ones too), ``X-RateLimit-*`` headers on answers, ``Retry-After`` on 429.

The window is the send times of our last requests. The server's own count may be lower than ours thinks
(other processes share the user's budget), so ``observe`` adopts its ``X-RateLimit-Remaining`` by adding
phantom sends that leave the window when the server says its count resets.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime

import anyio

WINDOW_SECONDS = 60.0
# X-RateLimit-Reset below this is a number of seconds from now, not a unix time (some servers send that)
_UNIX_TIME_FLOOR = 1_000_000_000

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SlidingWindowLimiter:
    """At most ``limit`` sends in any ``window`` seconds. ``clock`` is monotonic seconds, ``wall`` unix
    seconds (for the server's reset times); both and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._sends: list[float] = []  # sorted send times (real and phantom), on ``clock``
        self._lock = anyio.Lock()  # FIFO: waiters get slots in the order they asked

    def _expire(self) -> None:
        cutoff = self._clock() - self.window
        del self._sends[: bisect.bisect_right(self._sends, cutoff)]

    @property
    def remaining(self) -> int:
        """Sends allowed right now."""
        self._expire()
        return max(0, self.limit - len(self._sends))

    def wait_time(self) -> float:
        """Seconds until a send is allowed (0 when one is)."""
        self._expire()
        if len(self._sends) < self.limit:
            return 0.0
        # the send that must leave the window for one slot to free up
        return max(0.0, self._sends[len(self._sends) - self.limit] + self.window - self._clock())

    async def acquire(self) -> None:
        """Wait for a free slot and take it (the caller sends right after)."""
        async with self._lock:
            while (delay := self.wait_time()) > 0:
                await self._sleep(delay)
            self._sends.append(self._clock())

    def _fill(self, count: int, free_at: float) -> None:
        """Add ``count`` phantom sends that leave the window at ``free_at`` (on ``clock``)."""
        for _ in range(max(0, count)):
            bisect.insort(self._sends, free_at - self.window)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt the server's ``X-RateLimit-Remaining``/``-Reset`` when it counts fewer sends left than we do."""
        remaining = _number(headers.get("x-ratelimit-remaining"))
        if remaining is None:
            return
        missing = self.remaining - max(0, int(remaining))
        if missing <= 0:
            return
        reset = _number(headers.get("x-ratelimit-reset"))
        free_in = self.window  # no reset time: assume the sends we did not see were just made
        if reset is not None:
            free_in = reset - self._wall() if reset >= _UNIX_TIME_FLOOR else reset
        if free_in <= 0:
            return  # the server's window has already moved on
        self._fill(missing, self._clock() + min(free_in, self.window))

    def hold(self, seconds: float) -> None:
        """No sends for ``seconds`` (a 429 told us so): fill the window until then."""
        if seconds > 0:
            self._fill(self.remaining, self._clock() + min(seconds, self.window))


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str], wall: Clock = time.time) -> float | None:
    """Seconds ``Retry-After`` asks us to wait (delta-seconds or an HTTP date), or None if absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value.strip())
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - wall())
