"""One remote session as this server tracks it: the service has no session-state endpoint, so status,
transitions and reasons are what we saw (answers, "Session not found", ``status: terminated``) or inferred
(inactivity), with a FIFO of tasks that ``run`` (the session's worker) sends one at a time.

Lifecycle tools reach the worker through ``enqueue``, ``request_end`` and the task records, which only set
state and wake it.

Inactivity: the service ends a session after 5 minutes without work, and it only sees what we send it. So
the clock restarts on what reaches the service (a task, a state or guardrail message, a task's end), not on
reads of our records; it runs while a task waits for a human's answer (as in the local backend). When it
runs out the session is marked Terminated as an inference; if ``idle_timeout`` is shorter than the service's
5 minutes a terminate is also sent, as the service would go on billing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime

import anyio
from pydantic import SecretStr

from browser_sessions.backends.base import ControlAction, EventSink, SessionChanged, SessionsChanged, TaskChanged
from browser_sessions.backends.remote.client import RemoteClient, RemoteSessionGone
from browser_sessions.backends.remote.dialects import Dialect, NewState, RemoteTask, state_message
from browser_sessions.backends.remote.records import RemoteTaskRecord
from browser_sessions.backends.remote.worker import drive
from browser_sessions.backends.tasks import GuardrailAnswer, TaskRecord, now
from browser_sessions.errors import BrowserSessionsError, InvalidInput, SessionEnded, TaskStopped
from browser_sessions.models import LIVE_STATUSES, SecretPlaceholders, SecretSpec, SessionStatus, TaskSpec, Transition
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.remote")

SERVICE_IDLE_SECONDS = 300.0  # the service's own inactivity timeout (reference §6)
BEST_EFFORT_SECONDS = 15.0  # a terminate we send on our own initiative may take this long, then we let go


class RemoteSession:
    def __init__(
        self,
        session_id: str,
        settings: Settings,
        client: RemoteClient,
        emit: EventSink,
        *,
        profile_id: str | None,
        requested_at: datetime,
        created_reason: str,
    ) -> None:
        self.id = session_id
        self.settings = settings
        self.client = client
        self.dialect: Dialect = settings.remote_dialect
        self.profile_id = profile_id
        self._emit = emit
        self.created_at = requested_at
        self.ended_at: datetime | None = None
        self.status: SessionStatus = "Active"
        self.transitions = [
            Transition(status="Pending", at=requested_at, reason="creation request sent to the remote service"),
            Transition(status="Active", at=now(), reason=created_reason),
        ]
        self.paused = False
        self.tasks: dict[str, RemoteTaskRecord] = {}
        self.queue: deque[RemoteTaskRecord] = deque()
        self.current: RemoteTaskRecord | None = None
        # what earlier tasks of the session gave, sent again with every task (the local backend keeps them
        # for the session's lifetime too); dropped when the session ends
        self._secrets: dict[tuple[str, str], SecretStr] = {}  # (match, name) -> value; later ones replace
        self.avoid_domains: set[str] = set()
        self.terminating: str | None = None  # set while we ask the service to end it: the reason to record
        self._wake = anyio.Event()
        self._end_request: tuple[SessionStatus, str] | None = None
        self._ended = anyio.Event()
        self._last_activity = time.monotonic()

    # ----- what tool calls do (set state, wake the worker) -----

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES and self._end_request is None

    def check_live(self) -> None:
        if not self.live:
            raise SessionEnded(self.id, self.status, self.transitions[-1].reason)

    def touch(self) -> None:
        """Something reached the service for this session: restart the inactivity clock."""
        self._last_activity = time.monotonic()
        self._wake.set()

    def idle_deadline(self) -> float | None:
        """Monotonic time at which we take the session as ended by inactivity, or None while it has work."""
        if not self.live:
            return None
        if self.current is not None and self.current.status != "guardrail_trigger":
            return None
        if self.current is None and self.queue:
            return None
        return self._last_activity + self.settings.idle_timeout

    def carry(self, spec: TaskSpec) -> None:
        """Keep ``spec``'s secrets and avoidDomains for the session's later tasks."""
        for secret in spec.secrets:
            for name, value in secret.fields.items():
                self._secrets[(secret.match, name)] = value
        self.avoid_domains.update(spec.avoid_domains)

    def wire_spec(self, spec: TaskSpec) -> TaskSpec:
        """``spec`` with what the session carries from earlier tasks."""
        self.carry(spec)
        by_match: dict[str, dict[str, SecretStr]] = {}
        for (match, name), value in self._secrets.items():
            by_match.setdefault(match, {})[name] = value
        secrets = [SecretSpec(match=match, fields=fields) for match, fields in by_match.items()]
        return spec.model_copy(update={"secrets": secrets, "avoid_domains": sorted(self.avoid_domains)})

    def placeholders(self) -> list[SecretPlaceholders]:
        by_match: dict[str, list[str]] = {}
        for match, name in self._secrets:
            by_match.setdefault(match, []).append(name)
        return [SecretPlaceholders(match=m, names=sorted(n)) for m, n in sorted(by_match.items())]

    def enqueue(self, spec: TaskSpec, task_id: str) -> RemoteTaskRecord:
        self.check_live()
        task = RemoteTaskRecord(self.id, task_id, spec, on_change=self._task_changed)
        self.tasks[task_id] = task
        self.queue.append(task)
        self._wake.set()
        self._changed()
        return task

    def adopt(self, spec: TaskSpec, task_id: str, answer: RemoteTask) -> RemoteTaskRecord:
        """Track a task the service started with the session (run-task), from its first ``answer``; it has
        run since the request was sent."""
        task = self.enqueue(spec, task_id)
        task.remote_id = answer.task_id
        task.first_answer = answer
        task.started_at = self.created_at
        task.active_seconds = (now() - self.created_at).total_seconds()
        task.begin()
        return task

    def queue_position(self, task: TaskRecord) -> int | None:
        queued: list[TaskRecord] = list(self.queue)
        if task not in queued:
            return None
        return queued.index(task) + (1 if self.current is not None else 0)

    async def send_state(self, new_state: NewState) -> None:
        """A state message (creates nothing, so it is safe to repeat); "Session not found" ends our record."""
        try:
            await self.client.post(
                "/start/send-message", state_message(self.id, new_state), creates=False, session_id=self.id
            )
        except RemoteSessionGone as exc:
            self.service_ended(f"the remote service no longer knows it: {exc.detail}")
            raise
        self.touch()

    def control(self, action: ControlAction) -> None:
        """Apply pause/resume/stop here, after the service took the message."""
        if action == "pause":
            self.paused = True
            if self.current is not None:
                self.current.pause_clock()
        elif action == "resume":
            self.paused = False
            if self.current is not None:
                self.current.resume_clock()
        elif self.current is not None:
            self.current.stop(TaskStopped("Stopped by control_session(stop); the session stays open for new tasks."))
        self._changed()

    def check_stoppable(self) -> None:
        if self.current is None:
            raise InvalidInput(f"Session {self.id} has no running task to stop; queued tasks start in order.")

    def request_end(self, status: SessionStatus, reason: str) -> None:
        if self._end_request is not None or self.status not in LIVE_STATUSES:
            return
        self._end_request = (status, reason)
        if self.current is not None:
            self.current.stop(TaskStopped(f"The session ended while this task ran ({reason})."))
        self._wake.set()

    def service_ended(self, reason: str) -> None:
        """The service answered "Session not found" or reported the session terminated."""
        self.request_end("Terminated", self.terminating or reason)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def wait_for_answer(self, task: RemoteTaskRecord) -> GuardrailAnswer:
        """The answer to ``task``'s question; if none comes within the inactivity timeout, the session is
        taken as ended (which stops the task)."""
        self._last_activity = time.monotonic()  # the question is the service's last sign of life
        self._changed()
        while True:
            deadline = self.idle_deadline()
            with anyio.move_on_after(None if deadline is None else deadline - time.monotonic()):
                return await task.wait_answer()
            deadline = self.idle_deadline()
            if deadline is not None and deadline <= time.monotonic():
                await self._end_idle(f"task {task.task_id}'s question went unanswered")
                await anyio.sleep_forever()  # request_end cancels this task's scope

    # ----- the worker -----

    async def run(self) -> None:
        """Send queued tasks one at a time and watch inactivity until the session ends. Never raises (but
        cancellation): a failure ends this session as Failed and leaves others alone."""
        try:
            while self._end_request is None:
                wake = self._wake
                if self.queue:
                    task = self.queue.popleft()
                    self.current = task
                    self._changed()
                    await drive(self, task)
                    self.current = None
                    self.touch()
                    if task.spec.terminate_on_completion and self._end_request is None:
                        if not task.ended_by_service:  # we gave up on it: make sure the service ends it
                            await self.send_quietly("terminate")
                        reason = f"terminateOnCompletion: task {task.task_id} {task.status}"
                        self._end_request = ("Completed", reason)
                    self._changed()
                    continue
                deadline = self.idle_deadline()
                if deadline is not None and deadline <= time.monotonic():
                    await self._end_idle("no task or call")
                    break
                with anyio.move_on_after(None if deadline is None else deadline - time.monotonic()):
                    await wake.wait()
                if wake is self._wake:
                    self._wake = anyio.Event()
        except Exception:
            logger.exception("the worker of remote session %s crashed", self.id)
            self._end_request = ("Failed", "internal error in the session worker (see the server log)")
        finally:
            self._close()

    async def _end_idle(self, what: str) -> None:
        timeout = self.settings.idle_timeout
        reason = f"inactivity: {what} for {timeout:g} s (inferred; the service ends sessions idle for 5 minutes)"
        if timeout < SERVICE_IDLE_SECONDS:
            await self.send_quietly("terminate")
            reason += "; terminate sent"
        self.request_end("Terminated", reason)

    async def send_quietly(self, new_state: NewState) -> bool:
        """A state message we send on our own initiative: bounded, errors logged. True if the service took it."""
        with anyio.move_on_after(BEST_EFFORT_SECONDS):
            try:
                await self.client.post(
                    "/start/send-message", state_message(self.id, new_state), creates=False, session_id=self.id
                )
                return True
            except BrowserSessionsError as exc:
                logger.info("%s of remote session %s: %s", new_state, self.id, exc)
        return False

    def _close(self) -> None:
        status, reason = self._end_request or ("Terminated", "server shutting down")
        for task in [self.current, *self.queue]:
            if task is not None and not task.finished:
                task.fail("TASK_STOPPED", f"The session ended before this task finished ({reason}).")
        self.queue.clear()
        self._secrets.clear()
        self.ended_at = now()
        self.status = status
        self.transitions.append(Transition(status=status, at=self.ended_at, reason=reason))
        self._ended.set()
        self._changed()
        self._emit(SessionsChanged())

    # ----- notifications -----

    def _changed(self) -> None:
        self._emit(SessionChanged(self.id))

    def _task_changed(self, task: TaskRecord) -> None:
        self._emit(TaskChanged(self.id, task.task_id))
        self._emit(SessionChanged(self.id))
