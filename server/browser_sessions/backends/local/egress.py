"""A per-session HTTP forward proxy on 127.0.0.1: the enforcement point for ``avoidDomains``, the server's
blocked hosts and its private-network rule.

Every request the browser sends, each redirect hop and subresource included, arrives here as its own proxy
request: ``CONNECT host:port`` (https, wss) or absolute-form ``METHOD http://host[:port]/path``. ``decide``
sees the host (lower-case, no port, no IPv6 brackets, no trailing dot), so a decision cannot be sidestepped
by spelling. Then the host is resolved once (``addresses.resolve_host``), the ``AddressPolicy`` judges every
address it resolved to, and only those checked addresses are dialled: no second lookup a rebinding DNS
server could answer differently. A refused request never opens an upstream connection: it gets ``403``, is appended to
``EgressProxy.blocked``, passed to ``on_blocked`` and logged by host and reason. Plain http is one
request per client connection (``Connection: close`` both ways; nothing after the request's own body is
forwarded). Request heads are bounded (64 KiB, 30 s); malformed requests get ``400``, unreachable
upstreams ``502``; one bad connection never stops the listener.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias
from urllib.parse import SplitResult, urlsplit

import anyio
import anyio.abc
from anyio.abc import ByteReceiveStream, ByteSendStream, SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from browser_sessions.backends.local.addresses import AddressPolicy, IPAddress, resolve_host

logger = logging.getLogger("browser_sessions.egress")

Decide: TypeAlias = Callable[[str], str | None]
"""Host (lower-case, no port) -> the reason it is blocked, or None if allowed."""
Resolve: TypeAlias = Callable[[str, int], Awaitable[list[IPAddress]]]
"""(host, port) -> the addresses to dial, in order; raises OSError when the host cannot be resolved."""
Dial: TypeAlias = Callable[[str, int], Awaitable[SocketStream]]
"""(address, port) -> an open connection; raises OSError when it cannot connect (default: anyio.connect_tcp)."""

_MAX_HEAD = 64 * 1024
_HEAD_TIMEOUT = 30.0
_LINGER = 2.0  # how long a refused client may take to hang up after our reply
_HALF_CLOSE_GRACE = 30.0  # how long upstream may keep talking after the client has hung up
_CHUNK = 64 * 1024
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) ([\x21-\x7e]+) HTTP/1\.[01]")
_HEADER_LINE = re.compile(rf"({_TOKEN}):[ \t]*([^\x00\r\n]*?)[ \t]*")
_DROP_REQUEST = frozenset({"host", "connection", "keep-alive", "proxy-connection", "proxy-authorization", "upgrade"})
_DROP_RESPONSE = frozenset({b"connection", b"keep-alive", b"proxy-connection"})


@dataclass(frozen=True)
class BlockedRequest:
    """One request the proxy refused; ``target`` carries no query string."""

    host: str
    target: str  # "http://host[:port]/path" for plain http, "host:port" for CONNECT
    reason: str  # what decide() or the AddressPolicy said
    at: datetime  # UTC
    kind: Literal["host", "address"] = "host"  # refused by host rule, or by where the host resolved to


class _BadRequest(Exception):
    """The client sent something that is not a proxy request we can forward faithfully."""

    def __init__(self, what: str, status: int = 400, phrase: str = "Bad Request") -> None:
        super().__init__(what)
        self.status, self.phrase = status, phrase


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]


class EgressProxy:
    """HTTP forward proxy that asks ``decide`` about every host, and ``addresses`` (when given) about every
    address it resolves to, before any byte reaches it. ``on_blocked`` hears of each refusal as it happens
    (before the browser gets the ``403``)."""

    def __init__(
        self,
        decide: Decide,
        *,
        addresses: AddressPolicy | None = None,
        on_blocked: Callable[[BlockedRequest], None] | None = None,
        resolve: Resolve | None = None,
        dial: Dial | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._decide = decide
        self._addresses = addresses
        self._on_blocked = on_blocked
        self._resolve = resolve or resolve_host
        self._dial = dial or _dial_tcp
        self._connect_timeout = connect_timeout
        self._blocked: list[BlockedRequest] = []
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The listening port; raises ``RuntimeError`` before ``serve()`` has started."""
        if self._port is None:
            raise RuntimeError("EgressProxy.serve() has not started yet")
        return self._port

    @property
    def blocked(self) -> list[BlockedRequest]:
        """A copy of the refusal log, oldest first."""
        return list(self._blocked)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1:0, call task_status.started(port), serve until cancelled.

        Cancelling closes every connection."""
        async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
            self._port = listener.extra(SocketAttribute.local_port)
            task_status.started(self._port)
            await listener.serve(self._guard)

    async def _guard(self, client: SocketStream) -> None:
        async with client:
            try:
                await self._handle(client, BufferedByteReceiveStream(client))
            except Exception as exc:  # one bad connection must never take the listener down
                logger.debug("connection dropped: %s", type(exc).__name__)

    async def _handle(self, client: SocketStream, rx: BufferedByteReceiveStream) -> None:
        try:
            with anyio.fail_after(_HEAD_TIMEOUT):
                head = await rx.receive_until(b"\r\n\r\n", _MAX_HEAD)
        except (TimeoutError, anyio.IncompleteRead, anyio.DelimiterNotFound, *_GONE):
            return  # too slow, too large or gone: close without a word
        try:
            request = _parse_head(head)
            if request.method == "CONNECT":
                url, body_length = None, 0
                host, port = _host_port(request.target, None)
                target = request.target.lower()
            elif request.target[:7].lower() == "http://":
                url = urlsplit(request.target)
                host, port = _host_port(url.netloc, 80)
                target = f"http://{url.netloc.lower()}{url.path or '/'}"
                body_length = _body_length(request.headers)
            else:
                raise _BadRequest("not a proxy request")
        except _BadRequest as exc:
            logger.debug("bad request: %s", exc)
            await _reply(client, rx, exc.status, exc.phrase, f"Malformed proxy request: {exc}")
            return
        addresses, refusal = await self._admit(host, port, target)
        if refusal is not None:
            self._blocked.append(refusal)
            if self._on_blocked is not None:
                self._on_blocked(refusal)
            logger.info("blocked %s: %s", host, refusal.reason)
            body = f"Blocked by browser-sessions: {html.escape(host)} ({html.escape(refusal.reason)})"
            await _reply(client, rx, 403, "Forbidden", f"<!doctype html><title>Blocked</title><p>{body}</p>")
            return
        upstream = await self._connect(host, addresses, port)
        if upstream is None:
            await _reply(client, rx, 502, "Bad Gateway", f"Could not reach {html.escape(host)}")
            return
        async with upstream:
            if url is None:
                await client.send(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await _relay(rx, upstream, lambda: _pipe(upstream, client), forward=True)
            else:
                await upstream.send(_upstream_head(request, url))
                await _forward_body(rx, upstream, body_length)
                upstream_rx = BufferedByteReceiveStream(upstream)
                await _relay(rx, upstream, lambda: _forward_response(upstream_rx, client), forward=False)

    async def _admit(self, host: str, port: int, target: str) -> tuple[list[IPAddress], BlockedRequest | None]:
        """The addresses ``host`` may be dialled at (empty when it cannot be resolved), or the refusal."""
        reason = self._decide(host)
        if reason is not None:
            return [], BlockedRequest(host, target, reason, datetime.now(UTC))
        if self._addresses is not None and (reason := self._addresses.refuse_name(host)) is not None:
            return [], BlockedRequest(host, target, reason, datetime.now(UTC), "address")
        try:
            with anyio.fail_after(self._connect_timeout):
                addresses = await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:  # unresolvable (or not IDNA), or TimeoutError from fail_after
            logger.debug("upstream %s unresolvable: %s", host, type(exc).__name__)
            return [], None
        if self._addresses is not None and (reason := self._addresses.refuse_addresses(host, addresses)) is not None:
            return [], BlockedRequest(host, target, reason, datetime.now(UTC), "address")
        return addresses, None

    async def _connect(self, host: str, addresses: list[IPAddress], port: int) -> SocketStream | None:
        """A connection to the first of ``addresses`` that answers, all within the connect timeout."""
        with anyio.move_on_after(self._connect_timeout):
            for address in addresses:
                try:
                    return await self._dial(str(address), port)
                except OSError as exc:  # refused or unreachable: try the next address
                    logger.debug("upstream %s at %s unreachable: %s", host, address, type(exc).__name__)
        return None


def _parse_head(head: bytes) -> _Request:
    lines = head.decode("latin-1").split("\r\n")
    if not (request_line := _REQUEST_LINE.fullmatch(lines[0])):
        raise _BadRequest("request line")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not (header := _HEADER_LINE.fullmatch(line)):
            raise _BadRequest("header line")
        headers.append((header[1], header[2]))
    return _Request(request_line[1], request_line[2], headers)


def _host_port(authority: str, default_port: int | None) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` into the host decide() sees and the port to dial."""
    try:
        parts = urlsplit("//" + authority)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise _BadRequest("authority") from exc
    if "@" in authority or parts.netloc != authority:
        raise _BadRequest("authority")
    host = (host or "").removesuffix(".")  # "a.example." names the same host as "a.example"
    port = default_port if port is None else port
    if not host or not port:
        raise _BadRequest("authority")
    return host, port


def _body_length(headers: list[tuple[str, str]]) -> int:
    """Bytes of request body to forward. Chromium never sends chunked bodies over HTTP/1.1 (streaming
    uploads need HTTP/2), so they get ``411``: only bytes we can count ever go upstream."""
    if any(n.lower() == "transfer-encoding" for n, _ in headers):
        raise _BadRequest("chunked request body", 411, "Length Required")
    lengths = {v for n, v in headers if n.lower() == "content-length"}
    if not lengths:
        return 0
    length = lengths.pop()
    if lengths or not length.isdecimal():  # latin-1 holds no other decimal digits
        raise _BadRequest("content-length")
    return int(length)


def _upstream_head(request: _Request, url: SplitResult) -> bytes:
    # The URL's authority wins over any Host header the client sent (RFC 9112 section 3.2.2).
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    lines = [f"{request.method} {path} HTTP/1.1", f"Host: {url.netloc}"]
    lines += [f"{n}: {v}" for n, v in request.headers if n.lower() not in _DROP_REQUEST]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _forward_body(rx: BufferedByteReceiveStream, dst: ByteSendStream, length: int) -> None:
    while length > 0:
        data = await rx.receive(min(length, _CHUNK))
        await dst.send(data)
        length -= len(data)


async def _forward_response(upstream_rx: BufferedByteReceiveStream, client: ByteSendStream) -> None:
    """Relay the upstream response with ``Connection: close`` so the browser never reuses the connection."""
    try:
        head = await upstream_rx.receive_until(b"\r\n\r\n", _MAX_HEAD)
    except (anyio.IncompleteRead, anyio.DelimiterNotFound):
        await client.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    lines = [ln for ln in head.split(b"\r\n") if ln.split(b":", 1)[0].strip().lower() not in _DROP_RESPONSE]
    await client.send(b"\r\n".join([*lines, b"Connection: close", b"", b""]))
    await _pipe(upstream_rx, client)


async def _pipe(src: ByteReceiveStream, dst: ByteSendStream) -> None:
    with suppress(*_GONE):
        while True:
            await dst.send(await src.receive(_CHUNK))


async def _relay(
    client_rx: ByteReceiveStream, upstream: SocketStream, down: Callable[[], Awaitable[None]], *, forward: bool
) -> None:
    """Run ``down`` (upstream to client) to its end while reading the client.

    Client bytes go upstream only if ``forward``. When the client hangs up, upstream gets EOF and at most
    ``_HALF_CLOSE_GRACE`` seconds to finish.
    """
    async with anyio.create_task_group() as tg:

        async def from_client() -> None:
            with suppress(*_GONE):
                while True:
                    data = await client_rx.receive(_CHUNK)
                    if forward:
                        await upstream.send(data)
            with suppress(*_GONE):
                await upstream.send_eof()
            await anyio.sleep(_HALF_CLOSE_GRACE)
            tg.cancel_scope.cancel()

        tg.start_soon(from_client)
        await down()
        tg.cancel_scope.cancel()


async def _reply(client: SocketStream, client_rx: ByteReceiveStream, status: int, phrase: str, body: str) -> None:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    with suppress(*_GONE):
        await client.send(head.encode("latin-1") + data)
        await client.send_eof()
        # Closing with unread input would reset the connection and could swallow the reply.
        with anyio.move_on_after(_LINGER):
            while True:
                await client_rx.receive(_CHUNK)


async def _dial_tcp(address: str, port: int) -> SocketStream:
    return await anyio.connect_tcp(address, port)
