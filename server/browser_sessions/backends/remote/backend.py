"""The remote backend: the Backend protocol served by a cloud browser-session service over its REST API
(reference/remote-api.md), with this server tracking what the service cannot report.

- A session's id is the service's sessionId. Tasks get our own ids at once, so ``send_task`` returns the
  task queued (status ``started``) as the local backend does; each is mapped to the service's taskId when
  the service answers its ``newTask``. ``wait_task`` works as in the local backend; the service reports no
  steps, so ``on_step`` is never called.
- ``start_session`` creates the session without its initial task (the documented answer carries no taskId
  for one) and queues that task as a ``newTask``. ``run_task`` uses ``/start/run-task`` and follows the task
  the service started.
- Session status is tracked here (``tracked=True``): what we saw (answers, "Session not found", a
  ``terminated`` poll) or inferred (inactivity); see session.py.
- Screenshots, downloads and the step tools raise ``NotSupported``: the service has no API for them.
- Shutdown terminates the live sessions on the service, because it bills per minute and would otherwise
  keep each one up to its 5-minute inactivity timeout; the terminates are sent together and given
  ``SHUTDOWN_SECONDS`` (the request budget may not allow them all); the rest end by inactivity.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NoReturn

import anyio
import httpx
from anyio.abc import TaskGroup

from browser_sessions.backends.base import (
    NO_CALLER,
    BackendEvent,
    Caller,
    ControlAction,
    EventSink,
    SessionsChanged,
    StepListener,
)
from browser_sessions.backends.remote.client import CONNECT_TIMEOUT, RemoteClient, RemoteSessionGone
from browser_sessions.backends.remote.dialects import (
    guardrail_message,
    read_task_body,
    run_task_body,
    start_session_body,
)
from browser_sessions.backends.remote.records import RemoteTaskRecord
from browser_sessions.backends.remote.session import RemoteSession
from browser_sessions.backends.remote.unsupported import NoPageAccess
from browser_sessions.backends.remote.views import session_state
from browser_sessions.backends.tasks import now, wait_for
from browser_sessions.errors import (
    BrowserUnavailable,
    RemoteServiceError,
    SessionEnded,
    SessionNotFound,
    TaskNotFound,
)
from browser_sessions.models import BackendName, SessionConfig, SessionStarted, SessionState, TaskResult, TaskSpec
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.remote")
KEEP_ENDED = 200
SHUTDOWN_SECONDS = 10.0


class RemoteBackend(NoPageAccess):
    name: BackendName = "remote"

    def __init__(self, settings: Settings, client: RemoteClient) -> None:
        self.settings = settings
        self.client = client
        self._sessions: dict[str, RemoteSession] = {}
        self._listeners: list[EventSink] = []
        self._group: TaskGroup | None = None

    # ----- events -----

    def subscribe(self, listener: EventSink) -> None:
        self._listeners.append(listener)

    def _emit(self, event: BackendEvent) -> None:
        for listener in self._listeners:
            listener(event)

    # ----- lookups: the one resolver -----

    def _session(self, session_id: str) -> RemoteSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def _live_session(self, session_id: str) -> RemoteSession:
        session = self._session(session_id)
        session.check_live()
        return session

    def _task(self, session: RemoteSession, task_id: str) -> RemoteTaskRecord:
        task = session.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(session.id, task_id)
        return task

    def _register(self, body: dict[str, Any], profile_id: str | None, requested: datetime, why: str) -> RemoteSession:
        """Track the session the service just created (``body`` is its answer) and start its worker."""
        if self._group is None:
            raise BrowserUnavailable("The remote backend is shutting down; try again once the server is back.")
        session_id = body.get("sessionId")
        if not isinstance(session_id, str | int) or not str(session_id):
            raise RemoteServiceError(
                "OUTCOME_UNKNOWN",
                "The remote service answered without a sessionId, so the session it may have created cannot be "
                "tracked here. Check the service's dashboard before trying again.",
            )
        session = RemoteSession(
            str(session_id),
            self.settings,
            self.client,
            self._emit,
            profile_id=profile_id,
            requested_at=requested,
            created_reason=why,
        )
        self._sessions[session.id] = session
        self._prune()
        self._emit(SessionsChanged())
        self._group.start_soon(session.run)
        return session

    # ----- Backend protocol -----

    async def start_session(self, config: SessionConfig, caller: Caller = NO_CALLER) -> SessionStarted:
        requested = now()
        body = start_session_body(config.profile_id, self.settings.remote_dialect)
        answer = await self.client.post("/start/start-session", body, creates=True)
        why = "created by the remote service (start-session answered); it reports no readiness, so taken as Active"
        session = self._register(answer, config.profile_id, requested, why)
        task = None
        initial = config.initial_task
        if initial is not None:
            if initial.task_details.strip() or initial.starting_point:
                task = session.enqueue(initial, secrets.token_hex(6)).to_result(queue_position=0)
            else:
                session.carry(initial)
        return SessionStarted(**session_state(session).model_dump(), task=task)

    async def run_task(self, spec: TaskSpec, profile_id: str | None, caller: Caller = NO_CALLER) -> TaskResult:
        one_shot = spec.model_copy(update={"terminate_on_completion": True})
        requested = now()
        body = run_task_body(one_shot, profile_id, self.settings.remote_dialect)
        answer = await self.client.post("/start/run-task", body, creates=True)
        task_id = secrets.token_hex(6)
        why = f"created by the remote service to run task {task_id} (run-task answered)"
        session = self._register(answer, profile_id, requested, why)
        return session.adopt(one_shot, task_id, read_task_body(answer)).to_result()

    async def send_task(self, session_id: str, spec: TaskSpec, caller: Caller = NO_CALLER) -> TaskResult:
        session = self._live_session(session_id)
        task = session.enqueue(spec, secrets.token_hex(6))
        return task.to_result(session.queue_position(task))

    async def answer_guardrail(self, session_id: str, task_id: str, response: str, resume: bool) -> TaskResult:
        """The answer goes to the service here, so its failures reach the caller and the question stays open."""
        session = self._live_session(session_id)
        task = self._task(session, task_id)
        task.check_answerable(response, resume)
        message = guardrail_message(session.id, response, resume, self.settings.remote_dialect)
        task.sending(True)
        try:
            await self.client.post("/start/send-message", message, creates=False, session_id=session.id)
        except RemoteSessionGone as exc:
            self._gone(session, exc)
        finally:
            task.sending(False)
        session.touch()
        if task.status == "guardrail_trigger":  # not stopped meanwhile
            task.deliver(response, resume)
        with anyio.move_on_after(5):  # return the task as it goes on, not as it was
            while True:
                changed = task.wait_changed()
                if task.status != "guardrail_trigger":
                    break
                await changed.wait()
        return task.to_result(session.queue_position(task))

    async def wait_task(
        self, session_id: str, task_id: str, wait_seconds: float, on_step: StepListener | None = None
    ) -> TaskResult:
        session = self._session(session_id)
        task = self._task(session, task_id)
        return await wait_for(task, session, wait_seconds, on_step)

    async def get_task(self, session_id: str, task_id: str) -> TaskResult:
        return await self.wait_task(session_id, task_id, 0)

    async def get_session(self, session_id: str) -> SessionState:
        return session_state(self._session(session_id))

    async def list_sessions(self, include_ended: bool) -> list[SessionState]:
        return [session_state(s) for s in self._sessions.values() if include_ended or s.live]

    async def terminate(self, session_id: str) -> SessionState:
        session = self._live_session(session_id)
        reason = "terminated by the caller"
        session.terminating = reason  # a worker hearing "Session not found" meanwhile records this reason
        try:
            await session.send_state("terminate")
        except RemoteSessionGone:
            pass  # ended already, which is what the caller wants
        finally:
            session.terminating = None
        session.request_end("Terminated", reason)
        with anyio.fail_after(30):
            await session.wait_ended()
        return session_state(session)

    async def control(self, session_id: str, action: ControlAction) -> SessionState:
        session = self._live_session(session_id)
        if action == "stop":
            session.check_stoppable()
        try:
            await session.send_state(action)
        except RemoteSessionGone as exc:
            self._gone(session, exc)
        session.control(action)
        return session_state(session)

    # ----- ends -----

    def _gone(self, session: RemoteSession, exc: RemoteSessionGone) -> NoReturn:
        reason = f"the remote service no longer knows it: {exc.detail}"
        session.service_ended(reason)
        raise SessionEnded(session.id, "Terminated", reason) from None

    def _prune(self) -> None:
        ended = [s for s in self._sessions.values() if not s.live and s.ended_at is not None]
        for session in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self._sessions[session.id]

    async def _shutdown(self) -> None:
        live = [s for s in self._sessions.values() if s.live]
        reason = "server shutting down"
        for session in live:
            session.terminating = reason
        with anyio.move_on_after(SHUTDOWN_SECONDS):
            async with anyio.create_task_group() as group:
                for session in live:
                    group.start_soon(session.send_quietly, "terminate")
        for session in live:
            session.request_end("Terminated", reason)
        with anyio.move_on_after(5):
            for session in live:
                await session.wait_ended()


@asynccontextmanager
async def open_remote_backend(settings: Settings) -> AsyncIterator[RemoteBackend]:
    """Yield the remote backend for ``settings.remote_url`` (``InvalidInput`` if unset or not an http(s) URL);
    on exit, terminate the live sessions on the service (bounded) and stop their workers."""
    timeout = httpx.Timeout(settings.remote_timeout, connect=min(CONNECT_TIMEOUT, settings.remote_timeout))
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        backend = RemoteBackend(settings, RemoteClient(settings, http))
        async with anyio.create_task_group() as group:
            backend._group = group
            try:
                yield backend
            finally:
                backend._group = None
                with anyio.CancelScope(shield=True):
                    await backend._shutdown()
                group.cancel_scope.cancel()
