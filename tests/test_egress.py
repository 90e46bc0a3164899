"""The egress proxy is what actually keeps a session off its ``avoidDomains``.

Real Chromium talks to real HTTP servers on 127.0.0.1 through a real ``EgressProxy``. Two servers stand
for two sites, so "the blocked site never saw the request" is checked on the blocked site's own log.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest
from anyio.abc import TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.local.egress import EgressProxy

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--proxy-bypass-list=<-loopback>",
]
BLOCK_MARK = "Blocked by browser-sessions"
TEST_TIMEOUT = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SiteHandler)
        self.lock = threading.Lock()
        self.hits: list[tuple[str, str]] = []  # (Host header, path) of every request received
        self.pages: dict[str, str] = {}
        self.redirects: dict[str, str] = {}


class _SiteHandler(BaseHTTPRequestHandler):
    server: _SiteServer

    def do_GET(self) -> None:
        host = self.headers.get("Host", "")
        with self.server.lock:
            self.server.hits.append((host, self.path))
        if self.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.server.pages.get(self.path, f"<h1>site {host} {self.path}</h1>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        with self.server.lock:
            self.server.hits.append((self.headers.get("Host", ""), self.path))
        data = b"echo:" + self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Site:
    """A site served on 127.0.0.1, reachable under any ``*.localhost`` name."""

    server: _SiteServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, name: str, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{name}:{self.port}{path}"

    @property
    def hits(self) -> list[tuple[str, str]]:
        with self.server.lock:
            return list(self.server.hits)


def _run_site() -> Iterator[Site]:
    server = _SiteServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def allowed() -> Iterator[Site]:
    yield from _run_site()


@pytest.fixture
def blocked() -> Iterator[Site]:
    yield from _run_site()


@dataclass
class Rules:
    """The test's decide(): blocks blocked.localhost and its subdomains, and records every host asked."""

    asked: list[str] = field(default_factory=list)

    def __call__(self, host: str) -> str | None:
        self.asked.append(host)
        if host == "blocked.localhost" or host.endswith(".blocked.localhost"):
            return "avoidDomains: blocked.localhost"
        return None


@asynccontextmanager
async def serving(rules: Rules, *, connect_timeout: float = 10.0) -> AsyncIterator[EgressProxy]:
    """Run an EgressProxy the way the engine does: started in a task group, cancelled at the end."""
    proxy = EgressProxy(rules, connect_timeout=connect_timeout)
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        assert port == proxy.port
        yield proxy
        tg.cancel_scope.cancel()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=os.environ.get("BROWSER_SESSIONS_BROWSER_PATH", "/usr/bin/chromium"),
            args=LAUNCH_ARGS,
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@asynccontextmanager
async def proxied_page(browser: Browser, proxy: EgressProxy) -> AsyncIterator[Page]:
    context = await browser.new_context(proxy={"server": f"http://127.0.0.1:{proxy.port}"})
    try:
        page = await context.new_page()
        page.set_default_timeout(10_000)
        yield page
    finally:
        await context.close()


async def read_to_end(stream: BufferedByteReceiveStream) -> bytes:
    """Everything until the peer closes; a reset counts as closing."""
    chunks: list[bytes] = []
    with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            chunks.append(await stream.receive())
    return b"".join(chunks)


async def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes to the proxy and return all it answers before closing."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        with suppress(anyio.BrokenResourceError):
            await stream.send(data)
        return await read_to_end(BufferedByteReceiveStream(stream))


@pytest.mark.anyio
async def test_allowed_navigation_loads_through_the_proxy(browser: Browser, allowed: Site) -> None:
    rules = Rules()
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(rules) as proxy, proxied_page(browser, proxy) as page:
            response = await page.goto(allowed.url("allowed.localhost", "/hello"))
            assert response is not None
            assert response.status == 200
            assert await page.inner_text("h1") == f"site allowed.localhost:{allowed.port} /hello"
    assert "allowed.localhost" in rules.asked  # the proxy, not a direct connection, carried it
    assert (f"allowed.localhost:{allowed.port}", "/hello") in allowed.hits
    assert proxy.blocked == []


@pytest.mark.anyio
async def test_post_body_reaches_allowed_host_intact(browser: Browser, allowed: Site) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy, proxied_page(browser, proxy) as page:
            await page.goto(allowed.url("allowed.localhost", "/form"))
            echoed = await page.evaluate(
                "() => fetch('/echo?q=1', {method: 'POST', body: 'x'.repeat(200000)}).then(r => r.text())"
            )
    assert echoed == "echo:" + "x" * 200_000
    assert (f"allowed.localhost:{allowed.port}", "/echo?q=1") in allowed.hits


@pytest.mark.anyio
async def test_redirect_to_blocked_host_never_reaches_it(browser: Browser, allowed: Site, blocked: Site) -> None:
    allowed.server.redirects["/go"] = blocked.url("blocked.localhost", "/secret?token=abc")
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy, proxied_page(browser, proxy) as page:
            response = await page.goto(allowed.url("allowed.localhost", "/go"))
            assert response is not None
            assert response.status == 403
            assert BLOCK_MARK in await page.inner_text("body")
    assert (f"allowed.localhost:{allowed.port}", "/go") in allowed.hits
    assert blocked.hits == []
    # Chromium also asks the blocked page's origin for /favicon.ico; that is refused too.
    assert {r.host for r in proxy.blocked} == {"blocked.localhost"}
    refusal = proxy.blocked[0]
    assert refusal.target == f"http://blocked.localhost:{blocked.port}/secret"  # no query string kept
    assert refusal.reason == "avoidDomains: blocked.localhost"
    assert refusal.at.tzinfo is not None


@pytest.mark.anyio
async def test_subresources_to_blocked_host_are_refused(browser: Browser, allowed: Site, blocked: Site) -> None:
    pixel = blocked.url("blocked.localhost", "/pixel.png")
    allowed.server.pages["/page"] = f'<h1>page</h1><img id="pixel" src="{pixel}">'
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy, proxied_page(browser, proxy) as page:
            await page.goto(allowed.url("allowed.localhost", "/page"))  # load waits for the image to settle
            assert await page.evaluate("() => document.getElementById('pixel').naturalWidth") == 0
            outcome = await page.evaluate(
                "url => fetch(url).then(r => 'status ' + r.status, () => 'failed')",
                blocked.url("blocked.localhost", "/data.json"),
            )
            assert outcome == "failed"
    assert blocked.hits == []
    assert {r.target for r in proxy.blocked} >= {pixel, blocked.url("blocked.localhost", "/data.json")}


@pytest.mark.anyio
async def test_popup_to_blocked_host_is_refused(browser: Browser, allowed: Site, blocked: Site) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy, proxied_page(browser, proxy) as page:
            await page.goto(allowed.url("allowed.localhost", "/opener"))
            async with page.context.expect_page() as popup_info:
                await page.evaluate("url => { window.open(url); }", blocked.url("blocked.localhost", "/popup"))
            popup = await popup_info.value
            await popup.wait_for_load_state()
            assert BLOCK_MARK in await popup.inner_text("body")
    assert blocked.hits == []
    assert {r.host for r in proxy.blocked} == {"blocked.localhost"}
    assert proxy.blocked[0].target == blocked.url("blocked.localhost", "/popup")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("typed", "decided"),
    [
        ("a.blocked.localhost", "a.blocked.localhost"),  # a subdomain rule sees the exact host
        ("blocked.localhost.", "blocked.localhost"),  # the trailing-dot spelling of the same host
        ("A.Blocked.LOCALHOST", "a.blocked.localhost"),
    ],
)
async def test_blocked_host_in_any_spelling_is_refused(
    browser: Browser, blocked: Site, typed: str, decided: str
) -> None:
    rules = Rules()
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(rules) as proxy, proxied_page(browser, proxy) as page:
            await page.goto(blocked.url(typed, "/"))
            assert BLOCK_MARK in await page.inner_text("body")
    assert rules.asked[0] == decided  # lower-case, no port, no trailing dot
    assert blocked.hits == []
    assert {r.host for r in proxy.blocked} == {decided}


@pytest.mark.anyio
async def test_https_to_blocked_host_is_refused_at_connect(browser: Browser, blocked: Site) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy, proxied_page(browser, proxy) as page:
            with pytest.raises(PlaywrightError, match="ERR_TUNNEL_CONNECTION_FAILED"):
                await page.goto(blocked.url("blocked.localhost", "/", scheme="https"))
    assert blocked.hits == []
    # Chromium sends its CONNECT again after the first refusal; both are refused and logged.
    assert proxy.blocked
    assert {(r.host, r.target) for r in proxy.blocked} == {("blocked.localhost", f"blocked.localhost:{blocked.port}")}


@pytest.mark.anyio
async def test_garbage_gets_400_and_the_proxy_keeps_serving(allowed: Site) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy:
            answer = await exchange(proxy.port, b"\x16\x03\x01\x00\xff garbage \x00\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400 ")
            assert await exchange(proxy.port, b"x" * (70 * 1024)) == b""  # oversized head: just closed
            chunked = f"POST {allowed.url('allowed.localhost', '/c')} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            assert (await exchange(proxy.port, chunked.encode())).startswith(b"HTTP/1.1 411 ")
            request = f"GET {allowed.url('allowed.localhost', '/after')} HTTP/1.1\r\nHost: x\r\n\r\n"
            answer = await exchange(proxy.port, request.encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert b"\r\nConnection: close" in head
    assert body == f"<h1>site allowed.localhost:{allowed.port} /after</h1>".encode()
    # The URL's authority, not the client's Host header, names the site.
    assert allowed.hits == [(f"allowed.localhost:{allowed.port}", "/after")]


@pytest.mark.anyio
async def test_connect_tunnels_allowed_hosts_and_refuses_blocked(allowed: Site, blocked: Site) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules()) as proxy:
            answer = await exchange(proxy.port, f"CONNECT blocked.localhost:{blocked.port} HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403 ")
            async with await anyio.connect_tcp("127.0.0.1", proxy.port) as stream:
                rx = BufferedByteReceiveStream(stream)
                await stream.send(f"CONNECT ALLOWED.localhost:{allowed.port} HTTP/1.1\r\n\r\n".encode())
                assert (await rx.receive_until(b"\r\n\r\n", 65536)).startswith(b"HTTP/1.1 200 ")
                await stream.send(b"GET /tunnel HTTP/1.1\r\nHost: tunnel.localhost\r\n\r\n")
                assert (await read_to_end(rx)).endswith(b"<h1>site tunnel.localhost /tunnel</h1>")
    assert blocked.hits == []
    assert allowed.hits == [("tunnel.localhost", "/tunnel")]
    assert [(r.host, r.target) for r in proxy.blocked] == [("blocked.localhost", f"blocked.localhost:{blocked.port}")]


@pytest.mark.anyio
async def test_unreachable_upstream_gets_502() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with anyio.fail_after(TEST_TIMEOUT):
        async with serving(Rules(), connect_timeout=5) as proxy:
            answer = await exchange(proxy.port, f"CONNECT allowed.localhost:{closed_port} HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 502 ")
            request = f"GET http://allowed.localhost:{closed_port}/ HTTP/1.1\r\n\r\n"
            assert (await exchange(proxy.port, request.encode())).startswith(b"HTTP/1.1 502 ")


@pytest.mark.anyio
async def test_cancelling_serve_closes_open_tunnels(allowed: Site) -> None:
    proxy = EgressProxy(Rules())
    proxy_scope = anyio.CancelScope()

    async def run_proxy(*, task_status: TaskStatus[int]) -> None:
        with proxy_scope:  # as the engine does: the session's scope, cancelled when the session ends
            await proxy.serve(task_status=task_status)

    with anyio.fail_after(TEST_TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(run_proxy)
            async with await anyio.connect_tcp("127.0.0.1", proxy.port) as stream:
                rx = BufferedByteReceiveStream(stream)
                await stream.send(f"CONNECT allowed.localhost:{allowed.port} HTTP/1.1\r\n\r\n".encode())
                assert (await rx.receive_until(b"\r\n\r\n", 65536)).startswith(b"HTTP/1.1 200 ")
                proxy_scope.cancel()
                assert await read_to_end(rx) == b""  # the session ended: its tunnel is gone
        with pytest.raises(OSError, match="connection attempts failed") as refused:
            await anyio.connect_tcp("127.0.0.1", proxy.port)
        assert isinstance(refused.value.__cause__, ConnectionRefusedError)
