"""Sessions on browsers this server did not launch: Playwright browser servers and CDP endpoints
(``--browser-endpoint``, URL rules in ``endpoint_urls.py``).

With endpoints configured the engine launches no browser of its own: each new session goes to the least
loaded connected endpoint below ``endpoint_max_sessions`` (``placement.py``). When an endpoint's connection
drops, its sessions go Orphaned and are restored (cookies, storage, last URL, as saved after their last task)
on another connected endpoint, waiting for room or for an endpoint to come back until the reconnection window
ends, after which they are Failed. A lost endpoint is reconnected in the background (backing off to one try
every 10 s, or every reconnection window if shorter) and takes new sessions again once it answers. The other
endpoints go on taking new sessions throughout.
"""

from __future__ import annotations

import logging
import time

import anyio
from anyio.abc import TaskGroup
from playwright.async_api import Browser, Playwright
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.local.endpoint_urls import EndpointUrl, parse_endpoints
from browser_sessions.backends.local.placement import least_loaded
from browser_sessions.backends.local.session import LocalSession
from browser_sessions.errors import BrowserUnavailable, SessionLimitReached
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.endpoints")

CONNECT_TIMEOUT = 30.0  # seconds one connection attempt may take
RETRY_MAX_DELAY = 10.0  # seconds between reconnection attempts, at most
REHOME_POLL = 1.0  # seconds between looks for room while orphans wait (sessions ending free room silently)


class Endpoint:
    """One configured endpoint, its current connection (if any) and the sessions placed on it."""

    def __init__(self, address: EndpointUrl) -> None:
        self.address = address
        self.browser: Browser | None = None
        self.sessions: list[LocalSession] = []
        self.lost = anyio.Event()  # set when the current connection drops
        self.error: str | None = None  # why the last connection attempt failed

    @property
    def connected(self) -> bool:
        return self.browser is not None and not self.lost.is_set() and self.browser.is_connected()

    def load(self) -> int:
        self.sessions = [s for s in self.sessions if s.live]
        return len(self.sessions)


async def connect_endpoint(playwright: Playwright, address: EndpointUrl) -> Browser:
    """Connect to one endpoint; raises BrowserUnavailable naming it when it does not answer."""
    timeout = CONNECT_TIMEOUT * 1000
    try:
        if address.kind == "playwright":
            return await playwright.chromium.connect(address.url, timeout=timeout)
        return await playwright.chromium.connect_over_cdp(address.url, timeout=timeout)
    except PlaywrightError as exc:
        first = exc.message.strip().splitlines()[0] if exc.message.strip() else "no answer"
        raise BrowserUnavailable(
            f"Browser endpoint {address.label} ({address.kind}) did not answer: {first}. Check that it runs and "
            "that its Playwright version matches this server's (a Playwright server must)."
        ) from exc


class EndpointFleet:
    """The configured endpoints. ``connect`` once, then run ``supervise`` in a task group for the server's
    life; ``choose`` and ``assign`` put a new session on one; ``close`` disconnects (the endpoints' browsers
    keep running; a Playwright server closes the browser it launched for this connection)."""

    def __init__(self, playwright: Playwright, settings: Settings) -> None:
        self.settings = settings
        self.endpoints = [Endpoint(address) for address in parse_endpoints(settings.browser_endpoints)]
        self._playwright = playwright
        self._changed = anyio.Event()  # pulsed when an endpoint (re)connects
        self._closing = False

    async def connect(self) -> None:
        """Connect every endpoint at once; raises BrowserUnavailable when none answers (those that do not are
        retried by ``supervise``)."""
        async with anyio.create_task_group() as group:
            for endpoint in self.endpoints:
                group.start_soon(self._try_connect, endpoint)
        if not any(endpoint.connected for endpoint in self.endpoints):
            raise BrowserUnavailable(
                "No browser endpoint answered: " + " ".join(e.error or e.address.label for e in self.endpoints)
            )

    def choose(self) -> Endpoint:
        """The least loaded connected endpoint with room; raises SessionLimitReached when all are full,
        BrowserUnavailable when none is connected. ``assign`` the session to it with no await in between."""
        endpoint = least_loaded(self.endpoints, self.settings.endpoint_max_sessions)
        if endpoint is not None:
            return endpoint
        if any(e.connected for e in self.endpoints):
            raise SessionLimitReached(
                f"Every connected browser endpoint holds {self.settings.endpoint_max_sessions} live sessions "
                "(BROWSER_SESSIONS_ENDPOINT_MAX_SESSIONS). Terminate one with terminate, then start again."
            )
        raise BrowserUnavailable(
            "No browser endpoint is connected (they are being reconnected in the background); try "
            "start_session again in a few seconds."
        )

    def assign(self, endpoint: Endpoint, session: LocalSession) -> Browser:
        """Count ``session`` on ``endpoint`` (from ``choose``); returns the browser it opens its context on."""
        if endpoint.browser is None:
            raise BrowserUnavailable(f"Browser endpoint {endpoint.address.label} went away; start the session again.")
        endpoint.sessions.append(session)
        session.placement = endpoint.address.label
        return endpoint.browser

    async def supervise(self) -> None:
        """Forever: when an endpoint's connection drops, rehome its sessions and reconnect it."""
        async with anyio.create_task_group() as group:
            for endpoint in self.endpoints:
                group.start_soon(self._watch, endpoint, group)

    async def close(self) -> None:
        self._closing = True
        for endpoint in self.endpoints:
            browser, endpoint.browser = endpoint.browser, None
            if browser is not None:
                with anyio.move_on_after(10):
                    try:
                        await browser.close()
                    except PlaywrightError as exc:
                        logger.debug("closing the connection to %s: %s", endpoint.address.label, exc)

    # ----- connections -----

    async def _try_connect(self, endpoint: Endpoint) -> bool:
        try:
            browser = await connect_endpoint(self._playwright, endpoint.address)
        except BrowserUnavailable as exc:
            endpoint.error = exc.message
            logger.warning("%s", exc.message)
            return False
        endpoint.browser, endpoint.lost, endpoint.error = browser, anyio.Event(), None
        lost = endpoint.lost
        browser.on("disconnected", lambda _: None if self._closing else lost.set())
        logger.info("connected to browser endpoint %s (%s)", endpoint.address.label, endpoint.address.kind)
        self._changed.set()
        self._changed = anyio.Event()
        return True

    async def _watch(self, endpoint: Endpoint, group: TaskGroup) -> None:
        while True:
            if endpoint.connected:
                await endpoint.lost.wait()
                # an Orphaned one is being restored here by a rehoming that will see the failure itself
                orphans = [s for s in endpoint.sessions if s.live and s.status != "Orphaned"]
                endpoint.sessions, endpoint.browser = [], None
                logger.warning("browser endpoint %s lost with %d live sessions", endpoint.address.label, len(orphans))
                group.start_soon(self._rehome, orphans, endpoint.address.label)
            delay = 0.5
            while not await self._try_connect(endpoint):
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY, self.settings.reconnect_window)

    # ----- rehoming the sessions of a lost endpoint -----

    async def _rehome(self, orphans: list[LocalSession], label: str) -> None:
        window = self.settings.reconnect_window
        for session in orphans:
            session.orphan(
                f"connection to the browser lost (endpoint {label}); waiting up to {window:g} s for another endpoint"
            )
        deadline = time.monotonic() + window
        pending = orphans
        while True:
            waiting: list[LocalSession] = []
            for session in pending:
                if session.live and session.status == "Orphaned" and not await self._restore(session):
                    waiting.append(session)
            if not waiting:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for session in waiting:
                    session.request_end("Failed", f"no browser endpoint could take the session within {window:g} s")
                return
            changed = self._changed
            with anyio.move_on_after(min(remaining, REHOME_POLL)):
                await changed.wait()
            pending = waiting

    async def _restore(self, session: LocalSession) -> bool:
        """Restore ``session`` on the least loaded endpoint; False when none has room (or the chosen one went
        away meanwhile): try again later."""
        endpoint = least_loaded(self.endpoints, self.settings.endpoint_max_sessions)
        if endpoint is None:
            return False
        browser = self.assign(endpoint, session)
        try:
            await session.restore(
                browser, f"context restored from the last saved state on endpoint {endpoint.address.label}"
            )
        except PlaywrightError as exc:
            if session in endpoint.sessions:
                endpoint.sessions.remove(session)
            if endpoint.connected:
                session.request_end("Failed", f"could not restore the session: {exc.message.splitlines()[0]}")
                return True
            return False
        return True
