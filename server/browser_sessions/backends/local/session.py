"""One local session: its BrowserContext, egress proxy, task queue, timers and lifecycle.

``run`` is the session's supervisor and the only code that changes its browser objects or runs its tasks;
tool calls reach it through ``enqueue``, ``control``, ``request_end`` and ``touch``, which only set state
and wake it. That keeps every browser call of a session on one coroutine, one task at a time (FIFO).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskStatus
from playwright.async_api import Browser, BrowserContext, Page, Request, StorageState
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.base import EventSink, SessionChanged, SessionsChanged, TaskChanged
from browser_sessions.backends.local.egress import EgressProxy
from browser_sessions.backends.local.policy import DomainPolicy
from browser_sessions.backends.local.secrets import SecretVault
from browser_sessions.backends.local.task_execution import execute_task
from browser_sessions.backends.local.task_run import BlockedNavigation
from browser_sessions.backends.local.tasks import TaskRecord, now
from browser_sessions.errors import BrowserLost, BrowserUnavailable, InvalidInput, SessionEnded, TaskStopped
from browser_sessions.models import LIVE_STATUSES, SessionStatus, TaskSpec, Transition
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.session")


class LocalSession:
    def __init__(self, session_id: str, settings: Settings, emit: EventSink, profile_id: str | None = None) -> None:
        self.id = session_id
        self.settings = settings
        self.profile_id = profile_id
        self._emit = emit
        self.created_at = now()
        self.ended_at: datetime | None = None
        self.status: SessionStatus = "Pending"
        self.transitions = [Transition(status="Pending", at=self.created_at, reason="starting a browser context")]
        self.policy = DomainPolicy()
        self.vault = SecretVault()
        self.blocked_navigations: list[BlockedNavigation] = []
        self.paused = False
        self._resumed = anyio.Event()
        self.tasks: dict[str, TaskRecord] = {}
        self.queue: deque[TaskRecord] = deque()
        self.current: TaskRecord | None = None
        self.context: BrowserContext | None = None
        self.pages: list[Page] = []
        self.last_url: str | None = None
        self.title: str | None = None
        self._saved_state: StorageState | None = None
        self._resume_url: str | None = None  # unredacted, in memory only: where a restored session reopens
        self._proxy = EgressProxy(self.policy.blocked_by)
        self._proxy_port = 0
        self._wake = anyio.Event()
        self._end_request: tuple[SessionStatus, str] | None = None
        self._ended = anyio.Event()
        self._last_activity = time.monotonic()

    # ----- what tool calls do (set state, wake the supervisor) -----

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES and self._end_request is None

    def touch(self) -> None:
        """A call concerned this session: restart its inactivity clock."""
        self._last_activity = time.monotonic()
        self._wake.set()

    def idle_deadline(self) -> float | None:
        """Monotonic time at which inactivity ends the session, or None while it has work."""
        if self.current is not None or self.queue or not self.live:
            return None
        return self._last_activity + self.settings.idle_timeout

    def enqueue(self, spec: TaskSpec, task_id: str) -> TaskRecord:
        if not self.live:
            raise SessionEnded(self.id, self.status, self.transitions[-1].reason)
        task = TaskRecord(self.id, task_id, spec, on_change=self._task_changed)
        self.tasks[task_id] = task
        self.queue.append(task)
        self.touch()
        self._changed()
        return task

    def queue_position(self, task: TaskRecord) -> int | None:
        if task not in self.queue:
            return None
        return list(self.queue).index(task) + (1 if self.current is not None else 0)

    def control(self, action: str) -> None:
        if not self.live:
            raise SessionEnded(self.id, self.status, self.transitions[-1].reason)
        self.touch()
        if action == "pause":
            self.paused = True
            self._resumed = anyio.Event()
        elif action == "resume":
            self.paused = False
            self._resumed.set()
        elif self.current is None:
            raise InvalidInput(f"Session {self.id} has no running task to stop; queued tasks start in order.")
        else:
            self.current.stop(TaskStopped("Stopped by control_session(stop); the session stays open for new tasks."))
        self._changed()

    def request_end(self, status: SessionStatus, reason: str) -> None:
        if self._end_request is not None or self.status not in LIVE_STATUSES:
            return
        self._end_request = (status, reason)
        if self.current is not None:
            self.current.stop(TaskStopped(f"The session ended while this task ran ({reason})."))
        self._resumed.set()
        self._wake.set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def wait_resumed(self) -> None:
        await self._resumed.wait()

    # ----- the supervisor -----

    async def run(self, browser: Browser, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the context, then run queued tasks and the inactivity timer until the session ends.

        Never raises (but cancellation): a failure ends this session as Failed and leaves others alone.
        """
        started = False
        async with anyio.create_task_group() as group:
            try:
                self._proxy_port = await group.start(self._proxy.serve)
                await self._open_context(browser, None)
                self._set_status("Active", "browser context ready")
                task_status.started()
                started = True
                await self._loop()
            except (PlaywrightError, BrowserUnavailable) as exc:
                logger.warning("session %s failed: %s", self.id, exc)
                self._end_request = ("Failed", f"browser error: {str(exc).splitlines()[0]}")
            except Exception:
                logger.exception("session %s crashed", self.id)
                self._end_request = ("Failed", "internal error in the session supervisor (see the server log)")
            finally:
                with anyio.CancelScope(shield=True):
                    await self._close()
                group.cancel_scope.cancel()
                if not started:
                    task_status.started()  # the caller sees the Failed status

    async def _loop(self) -> None:
        while self._end_request is None:
            wake = self._wake
            if self.status == "Active" and self.queue:
                task = self.queue.popleft()
                self.current = task
                self._changed()
                await execute_task(self, task)
                self.current = None
                self._last_activity = time.monotonic()
                await self._save_state()
                if task.spec.terminate_on_completion and self._end_request is None:
                    self._end_request = ("Completed", f"terminateOnCompletion: task {task.task_id} {task.status}")
                self._changed()
                continue
            deadline = self.idle_deadline()
            if deadline is not None and deadline <= time.monotonic():
                self._end_request = (
                    "Terminated",
                    f"inactivity: no task or call for {self.settings.idle_timeout:g} s",
                )
                break
            with anyio.move_on_after(None if deadline is None else deadline - time.monotonic()):
                await wake.wait()
            if wake is self._wake:
                self._wake = anyio.Event()

    async def _open_context(self, browser: Browser, storage: StorageState | None) -> None:
        context = await browser.new_context(
            proxy={"server": f"http://127.0.0.1:{self._proxy_port}"},
            viewport={"width": self.settings.viewport_width, "height": self.settings.viewport_height},
            storage_state=storage,
            accept_downloads=True,
        )
        context.set_default_timeout(self.settings.step_timeout * 1000)
        context.set_default_navigation_timeout(self.settings.navigation_timeout * 1000)
        context.on("request", self._on_request)
        context.on("page", self._on_page)
        self.context = context
        self.pages = []
        self._on_page(await context.new_page())

    async def _close(self) -> None:
        status, reason = self._end_request or ("Terminated", "server shutting down")
        for task in [self.current, *self.queue]:
            if task is not None and not task.settled:
                task.fail("TASK_STOPPED", f"The session ended before this task finished ({reason}).")
        self.queue.clear()
        context, self.context, self.pages = self.context, None, []
        if context is not None:
            with anyio.move_on_after(10):
                try:
                    await context.close()
                except PlaywrightError as exc:
                    logger.debug("closing context of %s: %s", self.id, exc)
        self.vault.clear()
        self.ended_at = now()
        self._set_status(status, reason)
        self._ended.set()
        self._emit(SessionsChanged())

    # ----- browser loss (driven by the engine) -----

    def orphan(self, reason: str) -> None:
        if self.status not in ("Active", "Pending"):
            return
        self.context, self.pages = None, []
        if self.current is not None:
            self.current.stop(BrowserLost(f"The browser was lost while this task ran ({reason})."))
        self._set_status("Orphaned", reason)

    async def restore(self, browser: Browser) -> None:
        """Recreate the context from the last saved cookies and storage and reopen the last URL."""
        if self.status != "Orphaned" or self._end_request is not None:
            return
        await self._open_context(browser, self._saved_state)
        if self._resume_url and self._resume_url.startswith("http"):
            try:
                await self.pages[-1].goto(self._resume_url, timeout=self.settings.navigation_timeout * 1000)
            except PlaywrightError as exc:
                logger.info("session %s: reopening its last page failed: %s", self.id, exc.message)
        self._set_status("Active", "browser relaunched; context restored from the last saved state")
        self._wake.set()

    # ----- page layer hooks -----

    async def current_page(self) -> Page:
        live = [page for page in self.pages if not page.is_closed()]
        if live:
            return live[-1]
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
        self._changed()

    async def screenshot(self) -> bytes:
        page = await self.current_page()
        try:
            return await page.screenshot(type="png", timeout=self.settings.navigation_timeout * 1000)
        except PlaywrightError as exc:
            raise BrowserLost(f"Could not take a screenshot: {exc.message.splitlines()[0]}") from exc

    def _on_page(self, page: Page) -> None:
        if page not in self.pages:
            self.pages.append(page)

    def _on_request(self, request: Request) -> None:
        if not request.is_navigation_request():
            return
        try:
            if request.frame.parent_frame is not None:
                return  # an iframe: the proxy refuses it quietly, the task goes on
        except PlaywrightError:
            pass  # a popup's first navigation is issued before its frame exists: a top-level load
        host = urlsplit(request.url).hostname or ""
        rule = self.policy.blocked_by(host)
        if rule is not None:
            self.blocked_navigations.append(BlockedNavigation(host, rule))

    async def _save_state(self) -> None:
        if self.context is None:
            return
        try:
            self._saved_state = await self.context.storage_state()
            self._resume_url = (await self.current_page()).url
        except PlaywrightError as exc:
            logger.debug("saving state of %s: %s", self.id, exc)

    # ----- notifications -----

    def _set_status(self, status: SessionStatus, reason: str) -> None:
        self.status = status
        self.transitions.append(Transition(status=status, at=now(), reason=reason))
        self._changed()

    def _changed(self) -> None:
        self._emit(SessionChanged(self.id))

    def _task_changed(self, task: TaskRecord) -> None:
        self._emit(TaskChanged(self.id, task.task_id))
        self._emit(SessionChanged(self.id))

    def redact(self, value: Any) -> Any:
        """``value`` (text or a JSON value) with every secret value of this session replaced."""
        if isinstance(value, str):
            return self.vault.redact(value)
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        if isinstance(value, dict):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        return value
