"""The page layer's handle on a session: act on its current page, navigate under its domain policy, type
secrets for the current host, record steps, and (inside a task) honour pause and the time budget.

Planners (instructions now, a model later) and the step tools drive pages only through a ``Driver`` and the
actions in ``page/actions.py``: one action layer, not two.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from browser_sessions.backends.local.policy import DomainPolicy
from browser_sessions.backends.local.secrets import SecretVault
from browser_sessions.backends.tasks import GuardrailAnswer, TaskRecord
from browser_sessions.errors import (
    BrowserSessionsError,
    DomainBlocked,
    FileUrlBlocked,
    NavigationFailed,
    PrivateAddressBlocked,
    TaskFailure,
    TaskStopped,
)

T = TypeVar("T")

POPUP_GRACE = 0.05  # seconds after an action for a window.open() to surface as a page


@dataclass(frozen=True)
class BlockedNavigation:
    """A top-level navigation refused by a host rule, or by the address its host resolved to."""

    host: str
    rule: str
    kind: Literal["host", "address"] = "host"

    def error(self) -> TaskFailure:
        if self.kind == "address":
            return PrivateAddressBlocked(self.host, self.rule)
        return DomainBlocked(self.host, self.rule)


class BrowserView(Protocol):
    """The parts of a session's browser side a driver uses."""

    blocked_navigations: list[BlockedNavigation]
    dialog_opened: anyio.Event

    async def current_page(self) -> Page: ...

    async def refresh_title(self) -> None: ...

    async def collect_downloads(self) -> None: ...


class SessionView(Protocol):
    """The parts of a live session a driver uses."""

    policy: DomainPolicy
    vault: SecretVault
    paused: bool
    page_lock: anyio.Lock

    @property
    def browser(self) -> BrowserView: ...

    async def wait_resumed(self) -> None: ...

    async def wait_for_answer(self, task: TaskRecord) -> GuardrailAnswer: ...


class Driver:
    """``task`` is the task being run, or None for the caller's own steps (step tools)."""

    def __init__(
        self,
        session: SessionView,
        task: TaskRecord | None,
        *,
        navigation_timeout: float,
        step_timeout: float,
        allow_file_urls: bool = False,
    ) -> None:
        self._session = session
        self.task = task
        self.navigation_timeout = navigation_timeout
        self.step_timeout = step_timeout
        self.allow_file_urls = allow_file_urls
        self._blocked_seen = len(session.browser.blocked_navigations)

    async def page(self) -> Page:
        return await self._session.browser.current_page()

    async def host(self) -> str:
        return urlsplit((await self.page()).url).hostname or ""

    async def goto(self, url: str) -> None:
        """Load ``url`` in the current page; refuse avoided domains (and file:// URLs unless the server allows
        them) before any request is made. Private addresses are refused by the egress proxy."""
        parts = urlsplit(url)
        if parts.scheme == "file" and not self.allow_file_urls:
            raise FileUrlBlocked(url)
        host = parts.hostname or ""
        rule = self._session.policy.blocked_by(host)
        if rule is not None:
            raise DomainBlocked(host, rule)
        page = await self.page()
        try:
            await page.goto(url, wait_until="load", timeout=self.navigation_timeout * 1000)
        except PlaywrightError as exc:
            self.raise_if_blocked()
            raise NavigationFailed(f"Could not load {url}: {exc.message.splitlines()[0]}") from exc
        self.raise_if_blocked()

    async def until_dialog(self, action: Awaitable[object]) -> bool:
        """Run ``action``, but stop waiting for it when it opens a dialog that waits for the caller (the page
        is frozen until the dialog is answered; the action then completes on its own). True if one opened."""
        opened = self._session.browser.dialog_opened
        failed: list[BrowserSessionsError] = []
        async with anyio.create_task_group() as group:

            async def act() -> None:
                try:
                    await action
                except BrowserSessionsError as exc:  # raised below as itself, not inside an ExceptionGroup
                    failed.append(exc)
                group.cancel_scope.cancel()

            async def watch() -> None:
                await opened.wait()
                group.cancel_scope.cancel()

            group.start_soon(act)
            group.start_soon(watch)
        if failed:
            raise failed[0]
        return opened.is_set()

    async def settle(self) -> None:
        """Let what an action started finish (bounded): a navigation of the page, or a popup, which the
        page opens a moment after the click returns and which then becomes the current page."""
        await anyio.sleep(POPUP_GRACE)
        page = await self.page()
        try:
            await page.wait_for_load_state("load", timeout=self.navigation_timeout * 1000)
        except PlaywrightError as exc:
            self.raise_if_blocked()
            raise NavigationFailed(f"The page did not finish loading: {exc.message.splitlines()[0]}") from exc
        self.raise_if_blocked()

    def raise_if_blocked(self) -> None:
        """Fail the task if any page of the session tried to navigate to a refused host meanwhile."""
        blocked = self._session.browser.blocked_navigations[self._blocked_seen :]
        self._blocked_seen += len(blocked)
        if blocked:
            raise blocked[0].error()

    async def fill_secrets(self, text: str) -> str:
        """``text`` with its ``{{secret.NAME}}`` placeholders filled for the current host."""
        return self._session.vault.resolve(text, await self.host())

    async def step(self, action: str) -> None:
        """Record a finished step (redacted), then honour pause before the next one."""
        self.raise_if_blocked()
        await self._session.browser.collect_downloads()
        await self._session.browser.refresh_title()
        if self.task is None:
            return
        page = await self.page()
        redact = self._session.vault.redact
        self.task.add_step(redact(action), redact(page.url))
        await self.checkpoint()

    async def checkpoint(self) -> None:
        """While the session is paused, wait with the page handed over to the caller's step tools."""
        if self._session.paused and self.task is not None:
            await self._hand_over(self._session.wait_resumed)

    async def ask_human(self, question: str) -> str:
        """Put the task in ``guardrail_trigger`` with ``question`` and wait for answer_guardrail; the page is
        the caller's meanwhile. Returns the answer; a ``resume=false`` answer stops the task."""
        assert self.task is not None, "only a task asks a human"
        task = self.task
        task.ask(self._session.vault.redact(question))
        answer = await self._hand_over(lambda: self._session.wait_for_answer(task))
        if not answer.resume:
            raise TaskStopped("Stopped at its question by answer_guardrail(resume=false); the session stays open.")
        task.answered()
        return answer.response

    async def _hand_over(self, wait: Callable[[], Awaitable[T]]) -> T:
        """Await ``wait()`` with the page lock released and the task's clock and maxDuration deadline
        stopped, so time spent with a human does not count against the task."""
        assert self.task is not None
        scope = self.task.scope
        remaining = (scope.deadline - anyio.current_time()) if scope is not None else math.inf
        self.task.pause_clock()
        if scope is not None:
            scope.deadline = math.inf
        self._session.page_lock.release()
        try:
            return await wait()
        finally:
            with anyio.CancelScope(shield=True):  # the supervisor releases it when the task ends, cancelled or not
                await self._session.page_lock.acquire()
            if scope is not None:
                scope.deadline = anyio.current_time() + remaining
            self.task.resume_clock()
