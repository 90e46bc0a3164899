"""The HTTP boundary: bearer tokens (each token is one owner), the owner of a request, and the Host/Origin
checks against DNS rebinding. Both are the SDK's own machinery, configured here:

- ``StaticTokens`` is a ``TokenVerifier``; with ``AuthSettings`` the streamable-HTTP and SSE transports
  answer ``401`` to a request without a valid ``Authorization: Bearer`` token, and bind each MCP session to
  the credential that opened it.
- ``transport_security`` gives ``TransportSecuritySettings``: a request whose ``Host`` is not one of this
  server's names answers ``421``, one whose ``Origin`` is not allowed ``403``.

Tokens are secrets, owners are not: a request's owner is ``token-`` plus a hash prefix of its token
(``owner_id``, owners.py), the value sessions are recorded under. No token is ever logged or stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import socket
from urllib.parse import urlsplit

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl

from browser_sessions.backends.base import LOCAL_OWNER
from browser_sessions.errors import InvalidInput
from browser_sessions.owners import owner_id
from browser_sessions.settings import Settings

MIN_TOKEN_CHARS = 16
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


class StaticTokens(TokenVerifier):
    """The tokens of ``BROWSER_SESSIONS_AUTH_TOKENS``. Every configured token is compared, each in constant
    time, so neither a match nor its position shows in the timing."""

    def __init__(self, tokens: list[str]) -> None:
        self._known = [(hashlib.sha256(token.encode()).digest(), owner_id(token)) for token in tokens]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = hashlib.sha256(token.encode()).digest()
        owner: str | None = None
        for digest, candidate in self._known:
            if hmac.compare_digest(given, digest):
                owner = candidate
        return None if owner is None else AccessToken(token=token, client_id=owner, scopes=[])


def request_owner() -> str:
    """Whom the current request acts for: its token's owner over HTTP with tokens, else the local user."""
    access = get_access_token()
    return access.client_id if access is not None else LOCAL_OWNER


def check_tokens(settings: Settings) -> None:
    """Refuse weak tokens (``InvalidInput`` naming the rule, never the token)."""
    if any(len(token) < MIN_TOKEN_CHARS for token in settings.auth_token_list):
        raise InvalidInput(
            f"BROWSER_SESSIONS_AUTH_TOKENS holds a token shorter than {MIN_TOKEN_CHARS} characters; use long "
            "random tokens, e.g. $(openssl rand -hex 32)."
        )


def auth_options(settings: Settings) -> tuple[TokenVerifier | None, AuthSettings | None]:
    """``(token_verifier, auth)`` for ``MCPServer``: both None without tokens. The server is a plain
    resource server with static tokens: no OAuth metadata is served, so ``issuer_url`` is only nominal."""
    tokens = settings.auth_token_list
    if not tokens:
        return None, None
    issuer = AnyHttpUrl(f"http://{_bracketed(settings.host or '127.0.0.1')}:{settings.port}")
    return StaticTokens(tokens), AuthSettings(issuer_url=issuer, resource_server_url=None)


def server_names(settings: Settings) -> list[str]:
    """The names clients may reach this server by (its ``Host``): loopback when bound to loopback or to
    every interface, the machine's names and addresses when bound to every interface, the bound address
    otherwise, plus ``BROWSER_SESSIONS_ALLOWED_HOSTS``. IPv6 addresses are bracketed; ports are separate."""
    host = settings.host.strip("[]")
    names: list[str] = []
    if host in _LOOPBACK_NAMES or host in _WILDCARDS or _is_loopback_address(host):
        names += _LOOPBACK_NAMES
    if host in _WILDCARDS:
        names += _machine_names()
    elif host not in _LOOPBACK_NAMES:
        names.append(host)
    return list(dict.fromkeys(_bracketed(name) for name in names))


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host and Origin checks for the HTTP transports. A name from the bound address or the machine is
    accepted on any port; an ``ALLOWED_HOSTS`` entry with a port only on that port. Origins: ``http(s)://``
    on the accepted names, plus ``BROWSER_SESSIONS_ALLOWED_ORIGINS``. Requests without ``Origin`` (not from a
    browser page) pass."""
    hosts: list[str] = []
    origins: list[str] = []
    entries: list[tuple[str, int | None]] = [(name, None) for name in server_names(settings)]
    entries += [_parse_host(entry) for entry in settings.allowed_host_list]
    for name, port in entries:
        suffixes = [f":{port}"] if port is not None else ["", ":*"]
        hosts += [f"{name}{suffix}" for suffix in suffixes]
        origins += [f"{scheme}://{name}{suffix}" for scheme in ("http", "https") for suffix in suffixes]
    origins += settings.allowed_origin_list
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


def _parse_host(entry: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{entry}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or parts.path or parts.query or parts.username:
        raise InvalidInput(
            f"BROWSER_SESSIONS_ALLOWED_HOSTS entry {entry!r} is not a host name or host:port "
            "(e.g. mcp.example.com, 10.0.0.5:8931, [fe80::1])."
        )
    return _bracketed(parts.hostname), port


def _machine_names() -> list[str]:
    names = [socket.gethostname(), socket.getfqdn()]
    with contextlib.suppress(OSError):  # a host name that does not resolve: its name is still accepted
        names += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)]
    return [name.split("%")[0] for name in names if name]


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name
