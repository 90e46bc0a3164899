"""One local session: its egress proxy, task queue, timers and lifecycle (its browser side is in
``session_browser.py``).

``run`` is the session's supervisor: it opens and closes the context and runs queued tasks one at a time
(FIFO). Lifecycle tools reach it through ``enqueue``, ``control``, ``request_end`` and ``touch``, which only
set state and wake it. Pages are driven under ``page_lock``: the supervisor holds it while a task runs
(releasing it while the task is paused), a step tool holds it for one step.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskStatus
from playwright.async_api import Browser
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.base import EventSink, SessionChanged, SessionsChanged, TaskChanged
from browser_sessions.backends.local.addresses import AddressPolicy
from browser_sessions.backends.local.egress import EgressProxy
from browser_sessions.backends.local.planners.model_choice import ModelChoice
from browser_sessions.backends.local.planners.models.base import ChatModel
from browser_sessions.backends.local.policy import DomainPolicy
from browser_sessions.backends.local.pool import WarmContext
from browser_sessions.backends.local.records import SessionRecorder
from browser_sessions.backends.local.secrets import SecretVault
from browser_sessions.backends.local.session_browser import SessionBrowser
from browser_sessions.backends.local.task_execution import execute_task
from browser_sessions.backends.tasks import GuardrailAnswer, TaskRecord, now
from browser_sessions.errors import (
    BrowserLost,
    BrowserSessionsError,
    BrowserUnavailable,
    InvalidInput,
    SessionEnded,
    TaskStopped,
)
from browser_sessions.models import LIVE_STATUSES, SessionStatus, TaskSpec, Transition
from browser_sessions.profiles import ProfileLease
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.session")


class LocalSession:
    def __init__(
        self,
        session_id: str,
        settings: Settings,
        emit: EventSink,
        models: ModelChoice,
        *,
        records: SessionRecorder | None = None,
        profile: ProfileLease | None = None,
    ) -> None:
        self.id = session_id
        self.settings = settings
        self.models = models
        self.records = records or SessionRecorder(None, "local")
        self.profile = profile  # held until the session ends, which saves the state back
        self.profile_id = profile.profile_id if profile is not None else None
        self._emit = emit
        self.created_at = now()
        self.ended_at: datetime | None = None
        self.status: SessionStatus = "Pending"
        self.transitions = [Transition(status="Pending", at=self.created_at, reason="starting a browser context")]
        self.policy = DomainPolicy(settings.egress_block_host_list)
        self.vault = SecretVault()
        self.paused = False
        self._resumed = anyio.Event()
        self.tasks: dict[str, TaskRecord] = {}
        self.queue: deque[TaskRecord] = deque()
        self.current: TaskRecord | None = None
        self.page_lock = anyio.Lock()  # held by a running task (released while paused) or by one step tool
        self.browser = SessionBrowser(
            session_id,
            settings,
            self.policy,
            self.vault,
            on_change=self._changed,
            planner_driving=lambda: (
                self.current is not None and self.current.planner == "instructions" and not self.page_handed_over
            ),
            initial_state=profile.state if profile is not None else None,
        )
        self._proxy = EgressProxy(
            self.policy.blocked_by,
            addresses=AddressPolicy.from_settings(settings),
            on_blocked=self.browser.note_blocked,
        )
        self._proxy_port = 0
        self.placement: str | None = None  # the browser endpoint it runs on (its label), when endpoints are used
        self._warm: WarmContext | None = None
        self._wake = anyio.Event()
        self._end_request: tuple[SessionStatus, str] | None = None
        self._ended = anyio.Event()
        self._last_activity = time.monotonic()
        self.records.session(self)

    # ----- what tool calls do (set state, wake the supervisor) -----

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES and self._end_request is None

    def touch(self) -> None:
        """A call concerned this session: restart its inactivity clock."""
        self._last_activity = time.monotonic()
        self._wake.set()

    @property
    def page_handed_over(self) -> bool:
        """The caller may drive the page: no task runs, or it is paused, or it waits for a human's answer."""
        return self.current is None or self.paused or self.current.status == "guardrail_trigger"

    def idle_deadline(self) -> float | None:
        """Monotonic time at which inactivity ends the session, or None while it has work. A task waiting
        for a human's answer is not work: the inactivity timeout runs meanwhile."""
        if not self.live:
            return None
        if self.current is not None and self.current.status != "guardrail_trigger":
            return None
        if self.current is None and self.queue:
            return None
        return self._last_activity + self.settings.idle_timeout

    def enqueue(self, spec: TaskSpec, task_id: str, sampling: ChatModel | None = None) -> TaskRecord:
        if not self.live:
            raise SessionEnded(self.id, self.status, self.transitions[-1].reason)
        task = TaskRecord(
            self.id, task_id, spec, on_change=self._task_changed, sampling=sampling, on_finish=self._task_finished
        )
        self.tasks[task_id] = task
        self.queue.append(task)
        self.records.task(self, task)
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

    async def wait_for_answer(self, task: TaskRecord) -> GuardrailAnswer:
        """The answer to ``task``'s question; if none comes within the inactivity timeout (each call about
        the session restarts it), the session ends as Terminated, which stops the task."""
        self._changed()  # the idle deadline applies from now
        while True:
            deadline = self.idle_deadline()
            with anyio.move_on_after(None if deadline is None else deadline - time.monotonic()):
                return await task.wait_answer()
            deadline = self.idle_deadline()
            if deadline is not None and deadline <= time.monotonic():
                self.request_end(
                    "Terminated",
                    f"inactivity: task {task.task_id}'s question went unanswered for {self.settings.idle_timeout:g} s",
                )
                await anyio.sleep_forever()  # request_end cancels this task's scope

    # ----- the supervisor -----

    async def run(
        self,
        browser: Browser,
        warm: WarmContext | None = None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open the context (or take ``warm``, a pooled one this session alone gets and closes when it ends),
        then run queued tasks and the inactivity timer until the session ends.

        Never raises (but cancellation): a failure ends this session as Failed and leaves others alone.
        """
        started = False
        self._warm = warm
        async with anyio.create_task_group() as group:
            try:
                if warm is not None:
                    warm.claim(self.policy.blocked_by, self.browser.note_blocked)
                    self._proxy_port = warm.proxy_port
                    self.browser.adopt(warm.context, warm.page)
                else:
                    self._proxy_port = await group.start(self._proxy.serve)
                    await self.browser.open(browser, self._proxy_port)
                where = f" on endpoint {self.placement}" if self.placement else ""
                self._set_status("Active", f"browser context ready{where}")
                self._last_activity = time.monotonic()  # the inactivity clock starts once the session is usable
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
                async with self.page_lock:
                    await execute_task(self, task)
                self.current = None
                self._last_activity = time.monotonic()
                await self.browser.save_state()
                await self._save_profile()
                self.records.session(self)
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

    async def _close(self) -> None:
        status, reason = self._end_request or ("Terminated", "server shutting down")
        for task in [self.current, *self.queue]:
            if task is not None and not task.finished:
                task.fail("TASK_STOPPED", f"The session ended before this task finished ({reason}).")
        self.queue.clear()
        if self.profile is not None:
            try:
                with anyio.move_on_after(self.settings.navigation_timeout):
                    await self.browser.save_state()
                await self._save_profile()
            finally:
                self.profile.release()
        await self.browser.close()
        if self._warm is not None:
            await self._warm.stop_proxy()  # the pooled context's proxy, which runs outside this session's task group
        self.ended_at = now()
        self._set_status(status, reason)  # recorded while the vault can still redact
        self.vault.clear()
        self._ended.set()
        self._emit(SessionsChanged())

    # ----- browser loss (driven by the engine) -----

    def orphan(self, reason: str) -> None:
        if self.status not in ("Active", "Pending"):
            return
        self.browser.forget()
        if self.current is not None:
            self.current.stop(BrowserLost(f"The browser was lost while this task ran ({reason})."))
        self._set_status("Orphaned", reason)

    async def restore(
        self, browser: Browser, reason: str = "browser relaunched; context restored from the last saved state"
    ) -> None:
        """Recreate the context on ``browser`` from the last saved cookies and storage and reopen the last URL;
        ``reason`` goes with the return to Active."""
        if self.status != "Orphaned" or self._end_request is not None:
            return
        await self.browser.open(browser, self._proxy_port, restore=True)
        self._set_status("Active", reason)
        self._wake.set()

    # ----- notifications -----

    def _set_status(self, status: SessionStatus, reason: str) -> None:
        self.status = status
        self.transitions.append(Transition(status=status, at=now(), reason=reason))
        self.records.session(self)
        self._changed()

    def _task_finished(self, task: TaskRecord) -> None:
        self.records.task(self, task)

    async def _save_profile(self) -> None:
        """Write the cookies and storage last saved back to the session's profile (a failure is logged: the
        session goes on, the profile keeps its previous state)."""
        state = self.browser.saved_state
        if self.profile is None or state is None:
            return
        try:
            await anyio.to_thread.run_sync(self.profile.save, state, self.id)
        except (OSError, BrowserSessionsError) as exc:
            logger.error("session %s: saving profile %s failed: %s", self.id, self.profile.profile_id, exc)

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
