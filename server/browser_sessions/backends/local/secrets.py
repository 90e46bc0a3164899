"""Domain-bound secrets: values live only here, in memory, for the life of a session.

A task refers to a value as ``{{secret.NAME}}``. ``resolve`` substitutes it only for the page's current
host and only where text is typed into a page; everything that leaves the engine (step descriptions,
outputs, errors) passes ``redact`` first, which turns any value back into its placeholder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from browser_sessions.errors import TaskFailure
from browser_sessions.models import SecretPlaceholders, SecretSpec

PLACEHOLDER = re.compile(r"\{\{\s*secret\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")


class SecretUnavailable(TaskFailure):
    code = "SECRET_NOT_AVAILABLE"


@dataclass(frozen=True)
class _Entry:
    match: str
    name: str
    value: str

    def specificity(self, host: str) -> int:
        """-1 when the pattern does not cover ``host``; higher is more specific."""
        if self.match == "all":
            return 0
        if self.match.startswith("*."):
            base = self.match[2:]
            return len(base) if host == base or host.endswith("." + base) else -1
        return 10_000 if host == self.match else -1


class SecretVault:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}

    def add(self, specs: list[SecretSpec]) -> None:
        """Later specs replace earlier ones with the same match and name."""
        for spec in specs:
            for name, value in spec.fields.items():
                self._entries[(spec.match, name)] = _Entry(spec.match, name, value.get_secret_value())

    def clear(self) -> None:
        self._entries.clear()

    def placeholders(self) -> list[SecretPlaceholders]:
        by_match: dict[str, list[str]] = {}
        for entry in self._entries.values():
            by_match.setdefault(entry.match, []).append(entry.name)
        return [SecretPlaceholders(match=m, names=sorted(n)) for m, n in sorted(by_match.items())]

    def resolve(self, text: str, host: str) -> str:
        """Fill every placeholder in ``text`` for ``host`` (the most specific match wins)."""

        def fill(found: re.Match[str]) -> str:
            name = found.group(1)
            ranked = [
                (entry.specificity(host), entry)
                for entry in self._entries.values()
                if entry.name == name and entry.specificity(host) >= 0
            ]
            if not ranked:
                where = sorted(e.match for e in self._entries.values() if e.name == name)
                hint = f"it is bound to {', '.join(where)}" if where else "no secret has that name"
                raise SecretUnavailable(
                    f"{{{{secret.{name}}}}} cannot be used on {host or 'this page'}: {hint}. "
                    "Secrets are typed only on the hosts their match covers."
                )
            return max(ranked, key=lambda pair: pair[0])[1].value

        return PLACEHOLDER.sub(fill, text)

    def redact(self, text: str) -> str:
        """Replace every known value (longest first), also URL-encoded as a form would send it, by its
        placeholder."""
        for entry in sorted(self._entries.values(), key=lambda e: len(e.value), reverse=True):
            if entry.value:
                placeholder = f"{{{{secret.{entry.name}}}}}"
                for form in {entry.value, quote(entry.value, safe=""), quote_plus(entry.value)}:
                    text = text.replace(form, placeholder)
        return text
