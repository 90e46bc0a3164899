"""A session's browser side: its context and tabs, dialogs, downloads, and which navigations its pages
tried that the domain policy or the egress proxy's address rule refused. Owned by one LocalSession; every
text it reports is redacted."""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote, urlsplit

import anyio
from playwright.async_api import Browser, BrowserContext, Dialog, Download, Page, Request, StorageState
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.local.downloads import unique_name
from browser_sessions.backends.local.driver import BlockedNavigation
from browser_sessions.backends.local.egress import BlockedRequest
from browser_sessions.backends.local.policy import DomainPolicy
from browser_sessions.backends.local.secrets import SecretVault
from browser_sessions.backends.tasks import now
from browser_sessions.errors import BrowserLost
from browser_sessions.models import DownloadInfo
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.session")

_REMEMBERED = 64  # hosts of recent top-level navigations, and of recent address refusals, kept to pair them


async def new_session_context(
    browser: Browser, settings: Settings, proxy_port: int, storage_state: dict[str, Any] | None = None
) -> BrowserContext:
    """A new context on ``browser`` whose every request goes through the egress proxy on ``proxy_port``."""
    return await browser.new_context(
        proxy={"server": f"http://127.0.0.1:{proxy_port}"},
        viewport={"width": settings.viewport_width, "height": settings.viewport_height},
        storage_state=cast("StorageState | None", storage_state),
        accept_downloads=True,
    )


class SessionBrowser:
    def __init__(
        self,
        session_id: str,
        settings: Settings,
        policy: DomainPolicy,
        vault: SecretVault,
        *,
        on_change: Callable[[], None],
        planner_driving: Callable[[], bool],
        initial_state: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.settings = settings
        self.policy = policy
        self.vault = vault
        self._on_change = on_change
        self._planner_driving = planner_driving
        self.context: BrowserContext | None = None
        self.pages: list[Page] = []
        self.active: Page | None = None
        self.dialog: Dialog | None = None  # waiting for the caller's answer
        self.dialog_opened = anyio.Event()  # set while ``dialog`` waits; a new Event once it is answered
        self.downloads: list[DownloadInfo] = []
        self.blocked_navigations: list[BlockedNavigation] = []
        self._navigated_hosts: deque[str] = deque(maxlen=_REMEMBERED)  # not yet paired with a refusal
        self._refused_hosts: OrderedDict[str, str] = OrderedDict()  # host -> why its address was refused
        self.last_url: str | None = None  # redacted
        self.title: str | None = None  # redacted
        self.last_snapshot: str | None = None  # what the caller last saw, for diff-only step results
        self._pending_downloads: list[Download] = []
        # cookies and storage the context opens with: a profile's at first, then the last saved; with a
        # profile, IndexedDB is saved too (Playwright's storage state carries it on request)
        self._saved_state: dict[str, Any] | None = initial_state
        self._with_indexed_db = initial_state is not None
        self._resume_url: str | None = None  # unredacted, in memory only: where a restored session reopens

    async def open(self, browser: Browser, proxy_port: int, *, restore: bool = False) -> None:
        """A fresh context whose every request goes through the session's egress proxy, starting from the
        profile's state if any; with ``restore``, from the cookies and storage saved after the last task,
        reopening the last page."""
        context = await new_session_context(browser, self.settings, proxy_port, self._saved_state)
        self.adopt(context, await context.new_page())
        if restore and self._resume_url and self._resume_url.startswith("http"):
            try:
                await self.pages[-1].goto(self._resume_url, timeout=self.settings.navigation_timeout * 1000)
            except PlaywrightError as exc:
                logger.info("session %s: reopening its last page failed: %s", self.session_id, exc.message)

    def adopt(self, context: BrowserContext, page: Page) -> None:
        """Take ``context`` (made by ``new_session_context`` for this session's proxy port, never used by
        another session) with its first tab ``page``."""
        context.set_default_timeout(self.settings.step_timeout * 1000)
        context.set_default_navigation_timeout(self.settings.navigation_timeout * 1000)
        context.on("request", self._on_request)
        context.on("page", self._on_page)
        self.context, self.pages, self.active = context, [], None
        self._on_page(page)

    def forget(self) -> None:
        """The browser went away: drop what belonged to it."""
        self.context, self.pages, self.active = None, [], None
        self.dialog_answered()

    async def close(self) -> None:
        context = self.context
        self.forget()
        if context is not None:
            with anyio.move_on_after(10):
                try:
                    await context.close()
                except PlaywrightError as exc:
                    logger.debug("closing context of %s: %s", self.session_id, exc)

    def live_pages(self) -> list[Page]:
        return [page for page in self.pages if not page.is_closed()]

    def active_page(self) -> Page | None:
        """The active tab (the newest one when the active tab was closed); None when no tab is open."""
        if self.active is None or self.active.is_closed():
            live = self.live_pages()
            self.active = live[-1] if live else None
        return self.active

    async def current_page(self) -> Page:
        """The active tab, opening one when the session has none."""
        page = self.active_page()
        if page is not None:
            return page
        if self.context is None:
            raise BrowserLost("The session's browser is not connected; it is being restored.")
        page = await self.context.new_page()
        self._on_page(page)
        return page

    async def refresh_title(self) -> None:
        page = await self.current_page()
        self.last_url = self.vault.redact(page.url)
        try:
            self.title = self.vault.redact(await page.title())
        except PlaywrightError:
            self.title = None
        self._on_change()

    async def screenshot(self, *, full_page: bool = False) -> bytes:
        """PNG of the active tab's viewport (or whole page)."""
        page = await self.current_page()
        try:
            timeout = self.settings.navigation_timeout * 1000
            return await page.screenshot(type="png", full_page=full_page, timeout=timeout)
        except PlaywrightError as exc:
            raise BrowserLost(f"Could not take a screenshot: {exc.message.splitlines()[0]}") from exc

    @property
    def saved_state(self) -> dict[str, Any] | None:
        """The cookies and storage last saved (or the profile's, before the first save)."""
        return self._saved_state

    async def save_state(self) -> None:
        """Remember cookies, storage and the page, to restore them if the browser is lost (and to save
        them back to the session's profile)."""
        if self.context is None:
            return
        try:
            state = await self.context.storage_state(indexed_db=self._with_indexed_db)
            self._saved_state = cast("dict[str, Any]", state)
            self._resume_url = (await self.current_page()).url
        except PlaywrightError as exc:
            logger.debug("saving state of %s: %s", self.session_id, exc)

    async def collect_downloads(self) -> None:
        """Save finished downloads into the session's folder (bounded); called after every step."""
        pending, self._pending_downloads[:] = list(self._pending_downloads), []
        folder = self.settings.downloads(self.session_id)
        for download in pending:
            folder.mkdir(parents=True, exist_ok=True)
            name = unique_name(folder, download.suggested_filename)
            try:
                with anyio.fail_after(self.settings.navigation_timeout):
                    await download.save_as(folder / name)
            except (PlaywrightError, TimeoutError) as exc:
                logger.info("session %s: download %s failed: %s", self.session_id, name, exc)
                continue
            self.downloads.append(
                DownloadInfo(
                    name=name,
                    uri=f"session://{self.session_id}/downloads/{quote(name)}",
                    size_bytes=(folder / name).stat().st_size,
                    url=self.vault.redact(download.url),
                    at=now(),
                )
            )
        if pending:
            self._on_change()

    def _on_page(self, page: Page) -> None:
        """A new tab (also a popup or new window) becomes the active one."""
        if page not in self.pages:
            self.pages.append(page)
            self.active = page
            page.on("dialog", self._on_dialog)
            page.on("download", self._on_download)

    def _on_download(self, download: Download) -> None:
        self._pending_downloads.append(download)

    async def _on_dialog(self, dialog: Dialog) -> None:
        if self._planner_driving():
            # a planner has no way to answer: accept, as a person clicking OK would, and go on
            await dialog.accept()
            return
        self.dialog = dialog
        self.dialog_opened.set()
        self._on_change()

    def dialog_answered(self) -> None:
        self.dialog = None
        self.dialog_opened = anyio.Event()

    def _on_request(self, request: Request) -> None:
        if not request.is_navigation_request():
            return
        try:
            if request.frame.parent_frame is not None:
                return  # an iframe: the proxy refuses it quietly, the task goes on
        except PlaywrightError:
            pass  # a popup's first navigation is issued before its frame exists: a top-level load
        host = (urlsplit(request.url).hostname or "").rstrip(".")
        rule = self.policy.blocked_by(host)
        if rule is not None:
            self.blocked_navigations.append(BlockedNavigation(host, rule))
        elif host in self._refused_hosts:
            self.blocked_navigations.append(BlockedNavigation(host, self._refused_hosts[host], "address"))
        else:
            self._navigated_hosts.append(host)

    def note_blocked(self, refusal: BlockedRequest) -> None:
        """The egress proxy refused a request. An address refusal becomes a blocked navigation when it meets
        a top-level navigation to its host; the two arrive in either order (the proxy and Playwright's
        request event race), so whichever comes second pairs them. Host rules are reported by the request
        event alone."""
        if refusal.kind != "address":
            return
        self._refused_hosts[refusal.host] = refusal.reason
        self._refused_hosts.move_to_end(refusal.host)
        while len(self._refused_hosts) > _REMEMBERED:
            self._refused_hosts.popitem(last=False)
        if refusal.host in self._navigated_hosts:
            self._navigated_hosts.remove(refusal.host)
            self.blocked_navigations.append(BlockedNavigation(refusal.host, refusal.reason, "address"))
