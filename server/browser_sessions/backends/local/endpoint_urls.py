"""What a ``--browser-endpoint`` URL names: a Playwright browser server or a CDP endpoint, and whether it is on
this machine.

The kind, from the URL:

- ``pw+ws://`` / ``pw+wss://``: a Playwright browser server (``playwright run-server``, ``launchServer``);
- ``cdp+http(s)://`` / ``cdp+ws(s)://``: a Chrome DevTools Protocol endpoint (Chrome's remote debugging port,
  Browserless, Selenium Grid's ``se:cdp``);
- without a prefix, ``http(s)://`` is CDP (only the DevTools port answers plain HTTP), ``ws(s)://`` whose path
  starts with ``/devtools/`` is CDP (Chrome's own browser websocket), any other ``ws(s)://`` is a Playwright
  server. Write the prefix when a CDP service listens on a websocket of its own (Browserless: ``cdp+ws://``).

Sessions' requests leave through an egress proxy on this machine's loopback, which only a browser on this
machine can reach: an endpoint whose host is not loopback is refused (see the README, "Browsers on other
machines").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from browser_sessions.errors import InvalidInput

EndpointKind = Literal["playwright", "cdp"]

_PREFIXES: dict[str, EndpointKind] = {"pw": "playwright", "cdp": "cdp"}
_SCHEMES = {"playwright": ("ws", "wss"), "cdp": ("http", "https", "ws", "wss")}


@dataclass(frozen=True)
class EndpointUrl:
    """One endpoint as configured: ``url`` to connect to (prefix removed), its ``kind``, and ``label``, a
    name safe to show and log (scheme, host and port: no path, query or credentials, which may hold tokens)."""

    url: str
    kind: EndpointKind
    label: str


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(text: str) -> EndpointUrl:
    """Parse one endpoint URL (rules in the module docstring); raises InvalidInput saying how to write it, or
    why an endpoint off this machine is refused."""
    raw = text.strip()
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise InvalidInput(
            f"Browser endpoint {raw!r} is not a URL; write ws://host:port/ (a Playwright browser server) or "
            "http://host:port (a CDP endpoint), optionally prefixed pw+ or cdp+."
        )
    prefix, plus, base = scheme.lower().rpartition("+")
    explicit = _PREFIXES.get(prefix) if plus else None
    if plus and explicit is None:
        raise InvalidInput(f"Browser endpoint {raw!r}: unknown prefix {prefix!r}+ (use pw+ or cdp+).")
    url = f"{base}://{rest}"
    parts = urlsplit(url)
    kind: EndpointKind
    if explicit is not None:
        kind = explicit
    elif base in ("http", "https") or parts.path.startswith("/devtools/"):
        kind = "cdp"
    else:
        kind = "playwright"
    if base not in _SCHEMES[kind]:
        raise InvalidInput(
            f"Browser endpoint {raw!r}: a {kind} endpoint is reached over {' or '.join(_SCHEMES[kind])}, not {base}."
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidInput(f"Browser endpoint {raw!r} names no host.")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"Browser endpoint {raw!r} has an invalid port.") from exc
    label = f"{base}://{f'[{host}]' if ':' in host else host}{f':{port}' if port else ''}"
    if not _is_loopback(host):
        raise InvalidInput(
            f"Browser endpoint {label} is not on this machine's loopback. Each session's requests go through "
            "an egress proxy on 127.0.0.1 here (it applies avoidDomains and the private-network rule), which a "
            "browser on another machine cannot reach. Run the browser server on this machine (e.g. `playwright "
            "run-server --host 127.0.0.1`), or run browser-sessions next to the browsers on the other machine "
            "(`browser-sessions api` there, BROWSER_SESSIONS_BACKEND=remote here)."
        )
    return EndpointUrl(url=url, kind=kind, label=label)


def parse_endpoints(texts: list[str]) -> list[EndpointUrl]:
    """Every configured endpoint, parsed; raises InvalidInput on the first bad one or on a repeated one."""
    parsed = [parse_endpoint(text) for text in texts]
    urls = [endpoint.url for endpoint in parsed]
    for endpoint in parsed:
        if urls.count(endpoint.url) > 1:
            raise InvalidInput(f"Browser endpoint {endpoint.label} is configured twice; list each once.")
    return parsed
