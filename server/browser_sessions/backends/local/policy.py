"""Which hosts a session may reach: the ``avoidDomains`` rule, shared by the egress proxy (enforcement)
and the page layer (reporting which navigation a task was refused)."""

from __future__ import annotations

from collections.abc import Iterable


class DomainPolicy:
    """The union of ``avoidDomains`` of every task a session has started; a listed domain covers its
    subdomains. Rules only grow during a session, so a later task cannot reopen a domain an earlier one
    closed (documented in the README)."""

    def __init__(self) -> None:
        self._avoid: set[str] = set()

    def extend(self, domains: Iterable[str]) -> None:
        """Add normalised domains (``models.normalise_domain`` output)."""
        self._avoid.update(domains)

    @property
    def avoided(self) -> list[str]:
        return sorted(self._avoid)

    def blocked_by(self, host: str) -> str | None:
        """The rule that blocks ``host`` (e.g. ``"avoidDomains: example.com"``), or None when allowed."""
        name = host.lower().rstrip(".")
        for domain in self._avoid:
            if name == domain or name.endswith("." + domain):
                return f"avoidDomains: {domain}"
        return None
