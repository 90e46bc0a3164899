"""Which hosts a session may reach: the ``avoidDomains`` rule and the server's ``egress_block_hosts``, shared by the
egress proxy (enforcement) and the page layer (reporting which navigation a task was refused)."""

from __future__ import annotations

from collections.abc import Iterable


def matches_host(host: str, patterns: Iterable[str]) -> str | None:
    """The first of ``patterns`` that names ``host``, or None. A pattern is a host (that host only) or
    ``*.domain`` (the domain and its subdomains); both sides are compared lower-case without a trailing dot."""
    name = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            base = pattern[2:]
            if name == base or name.endswith("." + base):
                return pattern
        elif name == pattern:
            return pattern
    return None


class DomainPolicy:
    """The union of ``avoidDomains`` of every task a session has started; a listed domain covers its
    subdomains. Rules only grow during a session, so a later task cannot reopen a domain an earlier one
    closed (documented in the README). ``egress_block_hosts`` (the server's ``BROWSER_SESSIONS_EGRESS_BLOCK_HOSTS``
    patterns, see ``matches_host``) are refused the same way."""

    def __init__(self, egress_block_hosts: Iterable[str] = ()) -> None:
        self._avoid: set[str] = set()
        self._block_hosts = tuple(egress_block_hosts)

    def extend(self, domains: Iterable[str]) -> None:
        """Add normalised domains (``models.normalise_domain`` output)."""
        self._avoid.update(domains)

    @property
    def avoided(self) -> list[str]:
        return sorted(self._avoid)

    def blocked_by(self, host: str) -> str | None:
        """The rule that blocks ``host`` (e.g. ``"avoidDomains: example.com"`` or
        ``"BROWSER_SESSIONS_EGRESS_BLOCK_HOSTS: *.example.com"``), or None when allowed."""
        name = host.lower().rstrip(".")
        pattern = matches_host(name, self._block_hosts)
        if pattern is not None:
            return f"BROWSER_SESSIONS_EGRESS_BLOCK_HOSTS: {pattern}"
        for domain in self._avoid:
            if name == domain or name.endswith("." + domain):
                return f"avoidDomains: {domain}"
        return None
