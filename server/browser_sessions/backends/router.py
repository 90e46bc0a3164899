"""Where sessions live: the one choice between the local engine and the remote service.

``BackendRouter`` is itself a ``Backend``: new sessions go to the backend a call names (or the server's
default, ``BROWSER_SESSIONS_BACKEND``), and every call about a session goes to the backend that holds it.

It is also the one place sessions are kept apart by owner: a router acts for one owner (``owned_by`` gives
the view for another; all views share the sessions), records the owner of each session it creates, lists
only that owner's sessions and answers ``SessionNotFound`` for anyone else's, exactly as for an unknown id.
``open_backends`` opens what the settings configure: the local engine, and the remote backend when
``BROWSER_SESSIONS_REMOTE_URL`` is set, and the store they record into.

A session no backend holds (it ended before this server started, or its backend has let it go) is read
back from the store: the ``Archive`` (archive.py) is its home, readable and never live. That fallback is
here and nowhere else.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

import anyio

from browser_sessions.backends.archive import Archive
from browser_sessions.backends.base import (
    LOCAL_OWNER,
    NO_CALLER,
    Backend,
    Caller,
    ControlAction,
    EventSink,
    StepListener,
)
from browser_sessions.backends.local.engine import open_local_backend
from browser_sessions.backends.remote.backend import open_remote_backend
from browser_sessions.errors import BrowserUnavailable, InvalidInput, SessionNotFound
from browser_sessions.models import BackendName, SessionConfig, SessionStarted, SessionState, TaskResult, TaskSpec
from browser_sessions.settings import Settings
from browser_sessions.step_models import ActRequest, ActResult, SnapshotFormat, SnapshotResult
from browser_sessions.store import Store

logger = logging.getLogger("browser_sessions.backends")
T = TypeVar("T")


@dataclass(frozen=True)
class _Home:
    backend: Backend
    owner: str


class BackendRouter:
    name: BackendName

    def __init__(
        self,
        backends: dict[BackendName, Backend],
        default: BackendName,
        owner: str = LOCAL_OWNER,
        archive: Archive | None = None,
    ) -> None:
        self._backends = backends
        self.name = default
        self.owner = owner
        self._homes: dict[str, _Home] = {}
        self._archive = archive.owned_by(owner) if archive is not None else None

    def owned_by(self, owner: str) -> BackendRouter:
        """This router acting for ``owner``: the same backends and sessions, seen and touched as ``owner``."""
        view = BackendRouter(self._backends, self.name, owner, self._archive)
        view._homes = self._homes  # shared: a session created through one view is known to all
        return view

    def choose(self, name: BackendName | None) -> Backend:
        """The backend for a new session: ``name``, or the default."""
        chosen = name or self.name
        backend = self._backends.get(chosen)
        if backend is None:
            hint = {
                "remote": "set BROWSER_SESSIONS_REMOTE_URL (and BROWSER_SESSIONS_REMOTE_API_KEY)",
                "local": "install Chromium (browser-sessions doctor says how) and restart the server",
            }[chosen]
            raise InvalidInput(f"This server has no {chosen} backend: {hint}, or choose another backend.")
        return backend

    def owns(self, session_id: str) -> bool:
        """Whether ``session_id`` is a session of this router's owner."""
        home = self._homes.get(session_id)
        return home is not None and home.owner == self.owner

    def _home(self, session_id: str) -> Backend:
        """The backend holding ``session_id`` if this router's owner owns it. The one ownership check:
        another owner's session is answered exactly like an unknown one."""
        home = self._homes.get(session_id)
        if home is None and self._archive is not None:
            return self._archive  # ended before this server started, or unknown: it checks owner and id
        if home is None or home.owner != self.owner:
            raise SessionNotFound(session_id)
        return home.backend

    async def _read(self, session_id: str, read: Callable[[Backend], Awaitable[T]]) -> T:
        """``read`` from the session's home, or from the archive once the home has let the session go."""
        home = self._home(session_id)
        try:
            return await read(home)
        except SessionNotFound:
            if self._archive is None or home is self._archive:
                raise
            return await read(self._archive)

    def _remember(self, session_id: str, backend: Backend) -> None:
        self._homes[session_id] = _Home(backend, self.owner)

    def _as_owner(self, caller: Caller) -> Caller:
        return replace(caller, owner=self.owner)

    # ----- Backend protocol: new sessions -----

    def subscribe(self, listener: EventSink) -> None:
        for backend in self._backends.values():
            backend.subscribe(listener)

    async def start_session(
        self, config: SessionConfig, caller: Caller = NO_CALLER, backend: BackendName | None = None
    ) -> SessionStarted:
        chosen = self.choose(backend)
        started = await chosen.start_session(config, self._as_owner(caller))
        self._remember(started.session_id, chosen)
        return started

    async def run_task(
        self, spec: TaskSpec, profile_id: str | None, caller: Caller = NO_CALLER, backend: BackendName | None = None
    ) -> TaskResult:
        chosen = self.choose(backend)
        task = await chosen.run_task(spec, profile_id, self._as_owner(caller))
        self._remember(task.session_id, chosen)
        return task

    # ----- Backend protocol: calls about a session go to its home -----

    async def send_task(self, session_id: str, spec: TaskSpec, caller: Caller = NO_CALLER) -> TaskResult:
        return await self._home(session_id).send_task(session_id, spec, self._as_owner(caller))

    async def answer_guardrail(self, session_id: str, task_id: str, response: str, resume: bool) -> TaskResult:
        return await self._home(session_id).answer_guardrail(session_id, task_id, response, resume)

    async def wait_task(
        self, session_id: str, task_id: str, wait_seconds: float, on_step: StepListener | None = None
    ) -> TaskResult:
        return await self._read(session_id, lambda home: home.wait_task(session_id, task_id, wait_seconds, on_step))

    async def get_task(self, session_id: str, task_id: str) -> TaskResult:
        return await self._read(session_id, lambda home: home.get_task(session_id, task_id))

    async def get_session(self, session_id: str) -> SessionState:
        return await self._read(session_id, lambda home: home.get_session(session_id))

    async def list_sessions(self, include_ended: bool) -> list[SessionState]:
        states: list[SessionState] = []
        for backend in self._backends.values():
            states += [state for state in await backend.list_sessions(include_ended) if self.owns(state.session_id)]
        if include_ended and self._archive is not None:
            held = {state.session_id for state in states}
            states += [s for s in await self._archive.list_sessions(True) if s.session_id not in held]
            states.sort(key=lambda state: state.created_at)
        return states

    async def terminate(self, session_id: str) -> SessionState:
        return await self._home(session_id).terminate(session_id)

    async def control(self, session_id: str, action: ControlAction) -> SessionState:
        return await self._home(session_id).control(session_id, action)

    async def screenshot(self, session_id: str) -> bytes:
        return await self._home(session_id).screenshot(session_id)

    async def download(self, session_id: str, name: str) -> bytes:
        return await self._read(session_id, lambda home: home.download(session_id, name))

    async def step_snapshot(
        self, session_id: str, *, max_chars: int, ref: str | None, find: str | None, format: SnapshotFormat
    ) -> SnapshotResult:
        home = self._home(session_id)
        return await home.step_snapshot(session_id, max_chars=max_chars, ref=ref, find=find, format=format)

    async def step_act(self, session_id: str, request: ActRequest, *, max_chars: int) -> ActResult:
        return await self._home(session_id).step_act(session_id, request, max_chars=max_chars)

    async def step_screenshot(self, session_id: str, *, full_page: bool, ref: str | None) -> bytes:
        return await self._home(session_id).step_screenshot(session_id, full_page=full_page, ref=ref)


@asynccontextmanager
async def open_backends(settings: Settings) -> AsyncIterator[BackendRouter]:
    """The configured backends behind one router. The local engine is required when it is the default;
    with the remote default, a machine without Chromium still serves remote sessions (logged)."""
    async with AsyncExitStack() as stack:
        try:
            store = await anyio.to_thread.run_sync(Store.open, settings.database_path)
        except (sqlite3.Error, OSError) as exc:
            raise InvalidInput(
                f"Cannot open the records database {settings.database_path}: {exc}. Set BROWSER_SESSIONS_DATABASE "
                "(or BROWSER_SESSIONS_DATA_DIR) to a writable place."
            ) from exc
        stack.callback(store.close)  # registered first, so closed after the backends have recorded their ends
        backends: dict[BackendName, Backend] = {}
        if settings.remote_url:
            backends["remote"] = await stack.enter_async_context(open_remote_backend(settings))
        elif settings.backend == "remote":
            raise InvalidInput("BROWSER_SESSIONS_BACKEND=remote needs BROWSER_SESSIONS_REMOTE_URL.")
        try:
            backends["local"] = await stack.enter_async_context(open_local_backend(settings, store))
        except BrowserUnavailable as exc:
            if settings.backend == "local":
                raise
            logger.warning("no local backend (remote sessions only): %s", exc.message)
        yield BackendRouter(backends, settings.backend, archive=Archive(store, settings))
