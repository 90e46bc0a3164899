"""The local engine: one Chromium, many isolated sessions (one BrowserContext each), and the recovery of
sessions when the browser goes away. Implements the Backend protocol."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
from anyio.abc import TaskGroup
from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.base import (
    NO_CALLER,
    BackendEvent,
    Caller,
    ControlAction,
    EventSink,
    SessionsChanged,
    StepListener,
)
from browser_sessions.backends.local import steps
from browser_sessions.backends.local.browser import FoundBrowser, launch
from browser_sessions.backends.local.planners.model_choice import ModelChoice
from browser_sessions.backends.local.planners.models.choose import configured_model, wants_sampling
from browser_sessions.backends.local.records import SessionRecorder
from browser_sessions.backends.local.session import LocalSession
from browser_sessions.backends.local.views import session_state
from browser_sessions.backends.tasks import wait_for
from browser_sessions.errors import (
    BrowserUnavailable,
    InvalidInput,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    TaskNotFound,
)
from browser_sessions.models import BackendName, SessionConfig, SessionStarted, SessionState, TaskResult, TaskSpec
from browser_sessions.profiles import ProfileLease, Profiles
from browser_sessions.settings import Settings
from browser_sessions.step_models import ActRequest, ActResult, SnapshotFormat, SnapshotResult
from browser_sessions.store import Store

logger = logging.getLogger("browser_sessions.engine")
KEEP_ENDED = 200


class LocalBackend:
    name: BackendName = "local"

    def __init__(
        self,
        settings: Settings,
        playwright: Playwright,
        browser: Browser,
        found: FoundBrowser,
        models: ModelChoice,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.found = found
        self.models = models
        self.store = store  # where sessions and tasks are recorded (none: in memory only)
        self.profiles = Profiles(settings.profiles_dir)
        self._playwright = playwright
        self._browser = browser
        self._sessions: dict[str, LocalSession] = {}
        self._listeners: list[EventSink] = []
        self._group: TaskGroup | None = None
        self._browser_lost = anyio.Event()
        self._closing = False
        self._watch(browser)

    # ----- events -----

    def subscribe(self, listener: EventSink) -> None:
        self._listeners.append(listener)

    def _emit(self, event: BackendEvent) -> None:
        for listener in self._listeners:
            listener(event)

    # ----- lookups: the one resolver -----

    def _session(self, session_id: str) -> LocalSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def _live_session(self, session_id: str) -> LocalSession:
        session = self._session(session_id)
        if not session.live:
            raise SessionEnded(session.id, session.status, session.transitions[-1].reason)
        session.touch()
        return session

    # ----- Backend protocol -----

    async def start_session(self, config: SessionConfig, caller: Caller = NO_CALLER) -> SessionStarted:
        """With ``profileId``, the session holds the profile (one live session per profile) and starts from
        its saved state; an unknown profile or one in use is refused."""
        live = sum(1 for s in self._sessions.values() if s.live)
        if live >= self.settings.max_sessions:
            raise SessionLimitReached(
                f"{live} sessions are live, the most this server holds (BROWSER_SESSIONS_MAX_SESSIONS). "
                "Terminate one with terminate, then start again."
            )
        if self._group is None or self._browser_lost.is_set() or not self._browser.is_connected():
            raise BrowserUnavailable("The browser is restarting; try start_session again in a few seconds.")
        session_id = secrets.token_hex(6)
        profile: ProfileLease | None = None
        if config.profile_id is not None:
            profile = await anyio.to_thread.run_sync(
                self.profiles.lease, config.profile_id, caller.owner, f"live session {session_id}"
            )
        try:
            records = SessionRecorder(self.store, caller.owner)
            session = LocalSession(session_id, self.settings, self._emit, self.models, records=records, profile=profile)
        except BaseException:
            if profile is not None:
                profile.release()
            raise
        self._sessions[session.id] = session
        self._prune()
        self._emit(SessionsChanged())
        await self._group.start(session.run, self._browser)
        task = None
        initial = config.initial_task
        if initial is not None and session.live:
            if initial.task_details.strip() or initial.starting_point:
                task = session.enqueue(initial, secrets.token_hex(6), caller.sampling).to_result(queue_position=0)
            else:
                session.policy.extend(initial.avoid_domains)
                session.vault.add(initial.secrets)
        return SessionStarted(**session_state(session).model_dump(), task=task)

    async def run_task(self, spec: TaskSpec, profile_id: str | None, caller: Caller = NO_CALLER) -> TaskResult:
        one_shot = spec.model_copy(update={"terminate_on_completion": True})
        started = await self.start_session(SessionConfig(profile_id=profile_id, initial_task=one_shot), caller)
        if started.task is None:
            raise SessionEnded(started.session_id, started.status, started.reason)
        return started.task

    async def send_task(self, session_id: str, spec: TaskSpec, caller: Caller = NO_CALLER) -> TaskResult:
        session = self._live_session(session_id)
        task = session.enqueue(spec, secrets.token_hex(6), caller.sampling)
        return task.to_result(session.queue_position(task))

    async def answer_guardrail(self, session_id: str, task_id: str, response: str, resume: bool) -> TaskResult:
        session = self._live_session(session_id)
        task = session.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(session_id, task_id)
        task.answer(response, resume)
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
        task = session.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(session_id, task_id)
        if session.live:
            session.touch()
        return await wait_for(task, session, wait_seconds, on_step)

    async def get_task(self, session_id: str, task_id: str) -> TaskResult:
        return await self.wait_task(session_id, task_id, 0)

    async def get_session(self, session_id: str) -> SessionState:
        session = self._session(session_id)
        if session.live:
            session.touch()
        return session_state(session)

    async def list_sessions(self, include_ended: bool) -> list[SessionState]:
        return [session_state(s) for s in self._sessions.values() if include_ended or s.live]

    async def terminate(self, session_id: str) -> SessionState:
        session = self._live_session(session_id)
        session.request_end("Terminated", "terminated by the caller")
        with anyio.fail_after(30):
            await session.wait_ended()
        return session_state(session)

    async def control(self, session_id: str, action: ControlAction) -> SessionState:
        session = self._live_session(session_id)
        session.control(action)
        return session_state(session)

    async def screenshot(self, session_id: str) -> bytes:
        return await self._live_session(session_id).browser.screenshot()

    async def download(self, session_id: str, name: str) -> bytes:
        session = self._session(session_id)
        if not any(d.name == name for d in session.browser.downloads):
            names = ", ".join(d.name for d in session.browser.downloads) or "none yet"
            raise InvalidInput(f"Session {session_id} has no download {name!r} (it has: {names}).")
        return (self.settings.downloads(session_id) / name).read_bytes()

    async def step_snapshot(
        self, session_id: str, *, max_chars: int, ref: str | None, find: str | None, format: SnapshotFormat
    ) -> SnapshotResult:
        return await steps.snapshot(
            self._live_session(session_id), max_chars=max_chars, ref=ref, find=find, format=format
        )

    async def step_act(self, session_id: str, request: ActRequest, *, max_chars: int) -> ActResult:
        return await steps.act(self._live_session(session_id), request, max_chars=max_chars)

    async def step_screenshot(self, session_id: str, *, full_page: bool, ref: str | None) -> bytes:
        return await steps.screenshot(self._live_session(session_id), full_page=full_page, ref=ref)

    # ----- browser loss and recovery -----

    def _watch(self, browser: Browser) -> None:
        browser.on("disconnected", lambda _: None if self._closing else self._browser_lost.set())

    async def _recover_forever(self) -> None:
        while True:
            await self._browser_lost.wait()
            await self._recover()
            self._browser_lost = anyio.Event()

    async def _recover(self) -> None:
        window = self.settings.reconnect_window
        reason = f"connection to the browser lost; waiting up to {window:g} s for it to come back"
        orphans = [s for s in self._sessions.values() if s.live]
        for session in orphans:
            session.orphan(reason)
        deadline = time.monotonic() + window
        delay = 0.5
        while True:
            try:
                self._browser, self.found = await launch(self._playwright, self.settings)
                break
            except BrowserUnavailable as exc:
                logger.warning("relaunching the browser failed: %s", exc)
                if time.monotonic() + delay >= deadline:
                    for session in orphans:
                        session.request_end("Failed", f"the browser did not come back within {window:g} s")
                    return
                await anyio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._watch(self._browser)
        for session in orphans:
            try:
                await session.restore(self._browser)
            except PlaywrightError as exc:
                session.request_end("Failed", f"could not restore the session: {exc.message.splitlines()[0]}")

    def _prune(self) -> None:
        ended = [s for s in self._sessions.values() if not s.live and s.ended_at is not None]
        for session in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del self._sessions[session.id]

    async def _shutdown(self) -> None:
        self._closing = True
        live = [s for s in self._sessions.values() if s.live]
        for session in live:
            session.request_end("Terminated", "server shutting down")
        with anyio.move_on_after(15):
            for session in live:
                await session.wait_ended()


@asynccontextmanager
async def open_local_backend(settings: Settings, store: Store | None = None) -> AsyncIterator[LocalBackend]:
    """Start Playwright and Chromium, yield the engine (recording into ``store``, if any), and on exit end
    every session and the browser."""
    async with httpx.AsyncClient() as http:  # the model providers' connections
        models = ModelChoice(configured_model(settings, http), sampling_only=wants_sampling(settings))
        playwright = await async_playwright().start()
        try:
            browser, found = await launch(playwright, settings)
            backend = LocalBackend(settings, playwright, browser, found, models, store)
            try:
                async with anyio.create_task_group() as group:
                    backend._group = group
                    group.start_soon(backend._recover_forever)
                    try:
                        yield backend
                    finally:
                        with anyio.CancelScope(shield=True):
                            await backend._shutdown()
                        group.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    await backend._browser.close()
        finally:
            with anyio.CancelScope(shield=True):
                await playwright.stop()
