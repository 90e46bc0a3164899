"""Which browser endpoint a new (or rehomed) session goes to: the least loaded connected one under its limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Placeable(Protocol):
    @property
    def connected(self) -> bool: ...

    def load(self) -> int:
        """Live sessions placed on it."""
        ...


P = TypeVar("P", bound=Placeable)


def least_loaded(endpoints: Sequence[P], limit: int) -> P | None:
    """The connected endpoint with the fewest live sessions, below ``limit`` (ties: the one listed first);
    None when every connected endpoint is full or none is connected."""
    best: P | None = None
    best_load = limit
    for endpoint in endpoints:
        if not endpoint.connected:
            continue
        load = endpoint.load()
        if load < best_load:
            best, best_load = endpoint, load
    return best
