"""Ended sessions read back from the store (``store.py``): those that ended before this server started, and
those a backend has let go of since. ``BackendRouter`` sends a call here for a session no backend holds.

The archive is a ``Backend`` whose sessions are never live: reads answer from the records, every call that
would act on a session raises ``SessionEnded`` with its final status and reason, and it never starts one.
Like the router, it acts for one owner: anyone else's session is ``SessionNotFound``.
"""

from __future__ import annotations

from typing import NoReturn

import anyio

from browser_sessions.backends.base import LOCAL_OWNER, NO_CALLER, Caller, ControlAction, EventSink, StepListener
from browser_sessions.errors import InvalidInput, NotSupported, SessionEnded, SessionNotFound, TaskNotFound
from browser_sessions.models import (
    LIVE_STATUSES,
    BackendName,
    SessionConfig,
    SessionStarted,
    SessionState,
    TaskResult,
    TaskSpec,
)
from browser_sessions.settings import Settings
from browser_sessions.step_models import ActRequest, ActResult, SnapshotFormat, SnapshotResult
from browser_sessions.store import Store

LISTED = 100  # ended sessions list_sessions(includeEnded) shows from the records, the most recent


class Archive:
    name: BackendName = "local"  # never chosen for new sessions

    def __init__(self, store: Store, settings: Settings, owner: str = LOCAL_OWNER) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner

    def owned_by(self, owner: str) -> Archive:
        return Archive(self.store, self.settings, owner)

    async def _ended(self, session_id: str) -> SessionState:
        found = await self.store.session(session_id)
        if found is None or found[1] != self.owner or found[0].status in LIVE_STATUSES:
            raise SessionNotFound(session_id)
        return found[0]

    async def _refuse(self, session_id: str) -> NoReturn:
        state = await self._ended(session_id)
        raise SessionEnded(state.session_id, state.status, state.reason)

    # ----- reads -----

    def subscribe(self, listener: EventSink) -> None:
        """Nothing here changes."""

    async def get_session(self, session_id: str) -> SessionState:
        return await self._ended(session_id)

    async def list_sessions(self, include_ended: bool) -> list[SessionState]:
        if not include_ended:
            return []
        return await self.store.sessions(self.owner, ended=True, limit=LISTED)

    async def get_task(self, session_id: str, task_id: str) -> TaskResult:
        await self._ended(session_id)
        task = await self.store.task(session_id, task_id)
        if task is None:
            raise TaskNotFound(session_id, task_id)
        return task

    async def wait_task(
        self, session_id: str, task_id: str, wait_seconds: float, on_step: StepListener | None = None
    ) -> TaskResult:
        return await self.get_task(session_id, task_id)  # finished long ago: nothing to wait for

    async def download(self, session_id: str, name: str) -> bytes:
        state = await self._ended(session_id)
        if not any(d.name == name for d in state.downloads):
            names = ", ".join(d.name for d in state.downloads) or "none"
            raise InvalidInput(f"Session {session_id} has no download {name!r} (it has: {names}).")
        path = anyio.Path(self.settings.downloads(session_id) / name)
        try:
            return await path.read_bytes()
        except FileNotFoundError:
            raise InvalidInput(f"The file of download {name!r} of session {session_id} was removed.") from None

    # ----- acts: refused -----

    async def start_session(self, config: SessionConfig, caller: Caller = NO_CALLER) -> SessionStarted:
        raise NotSupported("The archive of ended sessions starts no sessions.")

    async def run_task(self, spec: TaskSpec, profile_id: str | None, caller: Caller = NO_CALLER) -> TaskResult:
        raise NotSupported("The archive of ended sessions starts no sessions.")

    async def send_task(self, session_id: str, spec: TaskSpec, caller: Caller = NO_CALLER) -> TaskResult:
        await self._refuse(session_id)

    async def answer_guardrail(self, session_id: str, task_id: str, response: str, resume: bool) -> TaskResult:
        await self._refuse(session_id)

    async def terminate(self, session_id: str) -> SessionState:
        await self._refuse(session_id)

    async def control(self, session_id: str, action: ControlAction) -> SessionState:
        await self._refuse(session_id)

    async def screenshot(self, session_id: str) -> bytes:
        await self._refuse(session_id)

    async def step_snapshot(
        self, session_id: str, *, max_chars: int, ref: str | None, find: str | None, format: SnapshotFormat
    ) -> SnapshotResult:
        await self._refuse(session_id)

    async def step_act(self, session_id: str, request: ActRequest, *, max_chars: int) -> ActResult:
        await self._refuse(session_id)

    async def step_screenshot(self, session_id: str, *, full_page: bool, ref: str | None) -> bytes:
        await self._refuse(session_id)
