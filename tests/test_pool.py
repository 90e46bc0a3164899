"""The warm pool: sessions start on fresh pooled contexts that no other session ever had; the pool is
refilled after each start, skipped by profile sessions, off with ``pool_size=0``, and rebuilt on the new
browser after Chromium dies (a start during the relaunch waits for it instead of failing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from playwright.async_api import Browser, BrowserContext

from browser_sessions.backends.base import BackendEvent, SessionChanged
from browser_sessions.backends.local.engine import LocalBackend, open_local_backend
from browser_sessions.models import SessionConfig, TaskSpec
from tests.conftest import call, connect, make_settings
from tests.site import Site
from tests.test_browser_loss import kill_browser
from tests.test_profiles import what_the_site_sees

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def engine(**overrides: Any) -> AsyncIterator[LocalBackend]:
    async with open_local_backend(make_settings(**overrides)) as backend:
        yield backend


def browser_of(backend: LocalBackend) -> Browser:
    return backend._browser


def context_of(backend: LocalBackend, session_id: str) -> BrowserContext:
    context = backend._sessions[session_id].browser.context
    assert context is not None
    return context


async def pool_filled(backend: LocalBackend) -> list[BrowserContext]:
    """Wait until the pool holds ``pool_size`` contexts on the engine's current browser; returns them."""
    with anyio.fail_after(20):
        while len(ready := [c for c in backend._pool.ready if c.browser is browser_of(backend)]) < backend._pool.size:
            await anyio.sleep(0.02)
    return ready


async def run(backend: LocalBackend, session_id: str, details: str) -> str:
    task = await backend.send_task(session_id, TaskSpec(task_details=details))
    result = await backend.wait_task(session_id, task.task_id, 20)
    assert result.status == "task_completed", result
    return result.output or ""


async def proxy_listening(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def test_pooled_sessions_see_nothing_of_earlier_or_concurrent_sessions(site: Site) -> None:
    async with connect(pool_size=2) as client:
        first = (await call(client, "start_session"))["sessionId"]
        await call(
            client,
            "send_task",
            sessionId=first,
            taskDetails=f"go to {site.url('/cookie/set?v=leak')}\ngo to {site.url('/storage?v=leak')}\n"
            'wait for "indexeddb: leak"',
        )
        for _ in range(3):  # more than the pool holds: refilled contexts too, while the first session lives
            seen = await what_the_site_sees(client, site)
            assert "cookies: []" in seen and "local storage: none" in seen and "indexeddb: none" in seen, seen
        await call(client, "terminate", sessionId=first)
        seen = await what_the_site_sees(client, site)
        assert "cookies: []" in seen and "local storage: none" in seen and "indexeddb: none" in seen, seen


async def test_each_session_gets_its_own_pooled_context_which_is_closed_with_its_proxy(site: Site) -> None:
    async with engine(pool_size=2) as backend:
        browser = browser_of(backend)
        kept = await backend.start_session(SessionConfig())
        used: list[BrowserContext] = []
        for _ in range(5):
            expected = (await pool_filled(backend))[0]
            started = await backend.start_session(SessionConfig())
            context = context_of(backend, started.session_id)
            assert context is expected and context not in used
            used.append(context)
            port = backend._sessions[started.session_id]._proxy_port
            assert "Welcome home." in await run(backend, started.session_id, f"go to {site.url('/')}\nextract text")
            await backend.terminate(started.session_id)
            assert context not in browser.contexts
            assert not await proxy_listening(port)
        ready = await pool_filled(backend)
        assert not set(ready) & set(used)
        assert len(browser.contexts) == 1 + 2  # the live session and the pool: nothing leaked
        assert set(browser.contexts) == {context_of(backend, kept.session_id), *ready}


async def test_pool_size_zero_starts_every_session_on_its_own_context(site: Site) -> None:
    async with engine(pool_size=0) as backend:
        browser = browser_of(backend)
        started = [await backend.start_session(SessionConfig()) for _ in range(2)]
        assert backend._pool.ready == []
        assert len(browser.contexts) == 2
        assert "Welcome home." in await run(backend, started[0].session_id, f"go to {site.url('/')}\nextract text")
        for session in started:
            await backend.terminate(session.session_id)
        assert browser.contexts == []


async def test_a_profile_session_bypasses_the_pool_and_starts_logged_in(site: Site) -> None:
    cookie = {"name": "token", "value": "saved", "domain": "127.0.0.1", "path": "/", "expires": -1}
    cookie |= {"httpOnly": False, "secure": False, "sameSite": "Lax"}
    async with engine(pool_size=2) as backend:
        profile = backend.profiles.create(name="login", state={"cookies": [cookie], "origins": []})
        pooled = await pool_filled(backend)
        started = await backend.start_session(SessionConfig(profile_id=profile.profile_id))
        assert context_of(backend, started.session_id) not in pooled
        assert backend._pool.ready == pooled  # untouched
        output = await run(backend, started.session_id, f"go to {site.url('/cookie/show')}\nextract text")
        assert "cookies: [token=saved]" in output


async def test_after_a_crash_the_pool_is_rebuilt_and_a_start_during_the_relaunch_waits_for_it() -> None:
    async with engine(pool_size=2) as backend:
        old = browser_of(backend)
        before = await backend.start_session(SessionConfig())
        await pool_filled(backend)
        orphaned = anyio.Event()

        def on_event(event: BackendEvent) -> None:
            if isinstance(event, SessionChanged):
                session = backend._sessions.get(event.session_id)
                if session is not None and session.status == "Orphaned":
                    orphaned.set()

        backend.subscribe(on_event)
        assert kill_browser() >= 1
        with anyio.fail_after(20):
            await orphaned.wait()  # the engine knows: the relaunch has begun
        during = await backend.start_session(SessionConfig())
        assert during.status == "Active"
        assert [t.status for t in during.transitions] == ["Pending", "Active"]
        new = browser_of(backend)
        assert new is not old and context_of(backend, during.session_id).browser is new

        ready = await pool_filled(backend)
        with anyio.fail_after(30):
            while (await backend.get_session(before.session_id)).status != "Active":
                await anyio.sleep(0.05)
        assert set(new.contexts) == {
            context_of(backend, before.session_id),
            context_of(backend, during.session_id),
            *ready,
        }
