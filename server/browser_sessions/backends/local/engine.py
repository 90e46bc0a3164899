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
from browser_sessions.backends.local.endpoints import EndpointFleet
from browser_sessions.backends.local.planners.model_choice import ModelChoice
from browser_sessions.backends.local.planners.models.choose import configured_model, wants_sampling
from browser_sessions.backends.local.pool import WarmPool
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
START_WAIT_SECONDS = 60.0  # at most this long (and the reconnection window) a start waits for a relaunch


class LocalBackend:
    name: BackendName = "local"

    def __init__(
        self,
        settings: Settings,
        playwright: Playwright,
        browser: Browser | None,
        found: FoundBrowser | None,
        models: ModelChoice,
        store: Store | None = None,
        fleet: EndpointFleet | None = None,
    ) -> None:
        """``browser`` is the one launched here; None with ``fleet``, whose endpoints take every session."""
        self.settings = settings
        self.fleet = fleet
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
        self._relaunched = anyio.Event()  # pulsed when a relaunch ends (well or not): waiting starts go on
        self._pool = WarmPool(settings)
        self._closing = False
        if browser is not None:
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
        browser: Browser | None = None
        if self.fleet is None:
            browser, group = await self._available_browser()
        elif self._group is None:
            raise BrowserUnavailable("The server is starting; try start_session again in a few seconds.")
        else:
            group = self._group
        session_id = secrets.token_hex(6)
        profile: ProfileLease | None = None
        if config.profile_id is not None:
            profile = await anyio.to_thread.run_sync(
                self.profiles.lease, config.profile_id, caller.owner, f"live session {session_id}"
            )
        try:
            endpoint = self.fleet.choose() if self.fleet is not None else None
            records = SessionRecorder(self.store, caller.owner)
            session = LocalSession(session_id, self.settings, self._emit, self.models, records=records, profile=profile)
        except BaseException:
            if profile is not None:
                profile.release()
            raise
        self._sessions[session.id] = session
        self._prune()
        self._emit(SessionsChanged())
        if self.fleet is not None and endpoint is not None:
            browser = self.fleet.assign(endpoint, session)  # no await since choose: it still has room
        assert browser is not None
        warm = self._pool.take(browser) if profile is None and self.fleet is None else None
        await group.start(session.run, browser, warm)
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

    async def _available_browser(self) -> tuple[Browser, TaskGroup]:
        """The browser (and the group sessions run in); while it is being relaunched, waits (bounded) for it."""
        if self._browser is None:
            raise BrowserUnavailable("This server places sessions on browser endpoints; it launched no browser.")
        with anyio.move_on_after(min(START_WAIT_SECONDS, self.settings.reconnect_window)):
            while self._browser_lost.is_set() and not self._browser.is_connected():
                await self._relaunched.wait()
        if self._group is None or not self._browser.is_connected():
            raise BrowserUnavailable("The browser is restarting; try start_session again in a few seconds.")
        return self._browser, self._group

    def _pulse_relaunched(self) -> None:
        self._relaunched.set()
        self._relaunched = anyio.Event()

    def _watch(self, browser: Browser) -> None:
        browser.on("disconnected", lambda _: None if self._closing else self._browser_lost.set())

    async def _recover_forever(self) -> None:
        while True:
            await self._browser_lost.wait()
            await self._recover()
            self._browser_lost = anyio.Event()
            self._pulse_relaunched()

    async def _recover(self) -> None:
        window = self.settings.reconnect_window
        reason = f"connection to the browser lost; waiting up to {window:g} s for it to come back"
        orphans = [s for s in self._sessions.values() if s.live]
        for session in orphans:
            session.orphan(reason)
        await self._pool.drop()
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
        self._pool.fill(self._browser)
        self._pulse_relaunched()
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
        await self._pool.aclose()
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
            if settings.browser_endpoints:  # sessions go to the endpoints (endpoints.py), no browser here
                fleet = EndpointFleet(playwright, settings)
                await fleet.connect()
                backend = LocalBackend(settings, playwright, None, None, models, store, fleet)
            else:
                browser, found = await launch(playwright, settings)
                backend = LocalBackend(settings, playwright, browser, found, models, store)
            try:
                async with anyio.create_task_group() as group:
                    backend._group = group
                    if backend.fleet is not None:
                        group.start_soon(backend.fleet.supervise)
                    else:
                        backend._pool.start(group, browser)
                        group.start_soon(backend._recover_forever)
                    try:
                        yield backend
                    finally:
                        with anyio.CancelScope(shield=True):
                            await backend._shutdown()
                        group.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    if backend.fleet is not None:
                        await backend.fleet.close()
                    if backend._browser is not None:
                        await backend._browser.close()
        finally:
            with anyio.CancelScope(shield=True):
                await playwright.stop()
