"""For tests of the page layer without the MCP server: Chromium as the engine launches it, and a server
for pages a test adds (path -> HTML), on 127.0.0.1, answering for any host name (``a.localhost`` and
``b.localhost`` are two origins)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.async_api import Browser, async_playwright

from browser_sessions.backends.local.browser import launch
from browser_sessions.settings import Settings


class PageServer:
    def __init__(self, server: ThreadingHTTPServer, pages: dict[str, str]) -> None:
        self._pages = pages
        self.port = server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def add(self, path: str, html: str, host: str = "127.0.0.1") -> str:
        """Serve ``html`` at ``path``; returns its URL on ``host``."""
        self._pages[path] = html
        return f"http://{host}:{self.port}{path}"


@contextmanager
def serve_pages() -> Iterator[PageServer]:
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PageServer(server, pages)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@asynccontextmanager
async def raw_chromium() -> AsyncIterator[Browser]:
    """Chromium found and launched exactly as the engine does it."""
    async with async_playwright() as playwright:
        browser, _ = await launch(playwright, Settings())
        try:
            yield browser
        finally:
            await browser.close()
