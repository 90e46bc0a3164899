"""The warm pool: fresh session contexts made ahead of time, so ``start_session`` does not wait for Chromium.

A pooled unit (``WarmContext``) is everything a session's browser side needs at creation: a new
BrowserContext with its first (blank) page, and its own egress proxy on 127.0.0.1 through which that context
sends every request. Until the unit is claimed, its proxy refuses every host (``ProxyGate``); ``claim`` binds
the gate to the one session's DomainPolicy. A unit goes to exactly one session, which closes it (context and
proxy) when it ends: a unit is never returned to the pool, so nothing a session did reaches another.

The pool keeps ``size`` units ready on one browser, refilling in the background after each ``take``. When the
browser goes away the engine calls ``drop`` (the units die with it) and, once it is relaunched, ``fill`` on the
new one. ``aclose`` empties it for good. Sessions that need a special context (a profile's storage state)
do not use the pool.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from contextlib import suppress

import anyio
from anyio.abc import TaskGroup, TaskStatus
from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.local.addresses import AddressPolicy
from browser_sessions.backends.local.egress import BlockedRequest, Decide, EgressProxy
from browser_sessions.backends.local.session_browser import new_session_context
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.pool")

_CLOSE_SECONDS = 10  # bound on closing one context
_RETRY_SECONDS = (1.0, 30.0)  # first and longest pause before trying again after a context failed to open
UNCLAIMED = "no session holds this context yet"


class ProxyGate:
    """The decisions of a pooled unit's egress proxy: every host is refused until ``bind`` gives it the one
    session's rule and refusal listener, after which they decide."""

    def __init__(self) -> None:
        self._decide: Decide | None = None
        self._on_blocked: Callable[[BlockedRequest], None] | None = None

    def bind(self, decide: Decide, on_blocked: Callable[[BlockedRequest], None]) -> None:
        """Give the gate to one session; raises ``RuntimeError`` if it already belongs to one."""
        if self._decide is not None:
            raise RuntimeError("this pooled context already belongs to a session")
        self._decide, self._on_blocked = decide, on_blocked

    def decide(self, host: str) -> str | None:
        return UNCLAIMED if self._decide is None else self._decide(host)

    def blocked(self, refusal: BlockedRequest) -> None:
        if self._on_blocked is not None:
            self._on_blocked(refusal)


class WarmContext:
    """One pooled unit: a never-used context on ``browser`` with its first page, and its egress proxy on
    ``proxy_port`` (served until ``stop_proxy``)."""

    def __init__(
        self,
        browser: Browser,
        context: BrowserContext,
        page: Page,
        proxy_port: int,
        gate: ProxyGate,
        proxy_scope: anyio.CancelScope,
        proxy_done: anyio.Event,
    ) -> None:
        self.browser = browser
        self.context = context
        self.page = page
        self.proxy_port = proxy_port
        self._gate = gate
        self._proxy_scope = proxy_scope
        self._proxy_done = proxy_done

    def claim(self, decide: Decide, on_blocked: Callable[[BlockedRequest], None]) -> None:
        """Make the unit one session's: its proxy now asks ``decide`` about every host and reports refusals
        to ``on_blocked``. A second claim raises ``RuntimeError``."""
        self._gate.bind(decide, on_blocked)

    async def stop_proxy(self) -> None:
        """Stop the proxy and return once its listener and every connection are closed (bounded). Call after
        closing the context."""
        self._proxy_scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_SECONDS):
            await self._proxy_done.wait()

    async def aclose(self) -> None:
        """Close the context (bounded; a context whose browser is gone counts as closed), then the proxy."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_SECONDS), suppress(PlaywrightError):
            await self.context.close()
        await self.stop_proxy()


async def _serve_proxy(
    proxy: EgressProxy, scope: anyio.CancelScope, done: anyio.Event, *, task_status: TaskStatus[int]
) -> None:
    try:
        with scope:
            await proxy.serve(task_status=task_status)
    finally:
        done.set()


class WarmPool:
    """Keeps up to ``settings.pool_size`` fresh units ready on one browser (none when it is 0)."""

    def __init__(self, settings: Settings) -> None:
        self.size = settings.pool_size
        self._settings = settings
        self._addresses = AddressPolicy.from_settings(settings)
        self._group: TaskGroup | None = None
        self._ready: deque[WarmContext] = deque()
        self._wanted = anyio.Event()  # set by take: the filler makes more
        self._filler: anyio.CancelScope | None = None
        self._closed = False

    @property
    def ready(self) -> list[BrowserContext]:
        """The contexts of the units waiting to be taken, next first."""
        return [unit.context for unit in self._ready]

    def start(self, group: TaskGroup, browser: Browser) -> None:
        """Run the pool's proxies and refilling in ``group`` (the engine's, which outlives every session), and
        begin filling on ``browser``."""
        self._group = group
        self.fill(browser)

    def fill(self, browser: Browser) -> None:
        """Keep ``size`` units ready on ``browser`` from now on (after ``drop``, on a relaunched browser)."""
        if self._group is None or self._closed or self.size == 0:
            return
        if self._filler is not None:
            self._filler.cancel()
        self._filler = anyio.CancelScope()
        self._group.start_soon(self._keep_filled, browser, self._filler)

    def take(self, browser: Browser) -> WarmContext | None:
        """A ready unit on ``browser`` for one session, which must ``claim`` it and close it when it ends, or
        None when none is ready (the caller makes its own context). Either way the pool refills."""
        self._wanted.set()
        while self._ready:
            unit = self._ready.popleft()
            if unit.browser is browser and browser.is_connected() and not unit.page.is_closed():
                return unit
            if self._group is not None:
                self._group.start_soon(unit.aclose)
        if self.size:
            logger.debug("warm pool empty: the session makes its own context")
        return None

    async def drop(self) -> None:
        """Stop filling and close every ready unit (the browser went away, or the pool is closing)."""
        if self._filler is not None:
            self._filler.cancel()
            self._filler = None
        units, self._ready = list(self._ready), deque()
        for unit in units:
            await unit.aclose()

    async def aclose(self) -> None:
        """Empty the pool for good: no unit is left open, none is made again."""
        self._closed = True
        await self.drop()

    async def _keep_filled(self, browser: Browser, scope: anyio.CancelScope) -> None:
        with scope:
            delay = _RETRY_SECONDS[0]
            while browser.is_connected():
                wanted = self._wanted = anyio.Event()
                while len(self._ready) < self.size and browser.is_connected():
                    try:
                        unit = await self._open(browser)
                    except PlaywrightError as exc:
                        logger.warning("warm pool: opening a context failed: %s", exc.message.splitlines()[0])
                        await anyio.sleep(delay)  # back off; the loop ends if the browser is gone
                        delay = min(delay * 2, _RETRY_SECONDS[1])
                        continue
                    delay = _RETRY_SECONDS[0]
                    self._ready.append(unit)
                await wanted.wait()

    async def _open(self, browser: Browser) -> WarmContext:
        assert self._group is not None
        gate = ProxyGate()
        proxy = EgressProxy(gate.decide, addresses=self._addresses, on_blocked=gate.blocked)
        proxy_scope, proxy_done = anyio.CancelScope(), anyio.Event()
        port: int = await self._group.start(_serve_proxy, proxy, proxy_scope, proxy_done)
        context: BrowserContext | None = None
        try:
            context = await new_session_context(browser, self._settings, port)
            page = await context.new_page()
        except BaseException:
            if context is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_SECONDS), suppress(PlaywrightError):
                    await context.close()
            proxy_scope.cancel()
            raise
        return WarmContext(browser, context, page, port, gate, proxy_scope, proxy_done)
