"""``build_server``: a fresh MCP server whose lifespan owns the backend (no module globals)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from mcp.server import MCPServer, NotificationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus

from browser_sessions import __version__
from browser_sessions.backends.router import BackendRouter, open_backends
from browser_sessions.mcp.app_state import AppState
from browser_sessions.mcp.browser_tools import BROWSER_TOOLS
from browser_sessions.mcp.http_boundary import auth_options
from browser_sessions.mcp.notifications import Notifier
from browser_sessions.mcp.profile_tools import PROFILE_TOOLS
from browser_sessions.mcp.registry import build_tools
from browser_sessions.mcp.resources import register_resources
from browser_sessions.mcp.tools import TOOLS
from browser_sessions.settings import Settings

INSTRUCTIONS = """\
browser-sessions gives you isolated browser sessions (own cookies, storage, cache), many at once.
- One-off job: run_task(taskDetails, startingPoint?) starts a session, runs the task, ends the session.
- Several steps in one browser: start_session() -> send_task(sessionId, taskDetails) as often as needed -> terminate.
- taskDetails is free text (run by a model: the server's, or yours through MCP sampling on handshake-era
  connections) or instruction lines, which need no model: go to <url>; click "<name>"; type "<text>" into
  "<field>"; select "<option>" in "<field>"; check "<name>"; press <Key>; wait for "<text>"; extract text;
  extract table. A completed model task returns replay.script: the same job as instruction lines.
- A task in status guardrail_trigger asks a question (its guardrail field): answer_guardrail(sessionId, taskId,
  response) lets it go on; resume=false stops it.
- Task tools wait up to waitSeconds (default 50) and then return status "running" with a taskId: poll
  get_task(sessionId, taskId, waitSeconds) or subscribe to session://<sessionId>/tasks/<taskId>.
- outputType structured_json/structured_csv needs outputSchema; the output is validated against it.
- Secrets: pass secrets=[{match, fields}] and write {{secret.NAME}} in taskDetails; values are never shown.
- Drive a session yourself: browser_snapshot(sessionId) gives the page with refs like [e12]; browser_act(sessionId,
  action="click", ref="e12") acts and returns what changed. Refused while a task runs, unless it is paused.
- Sessions idle for 5 minutes are terminated; terminate sessions you no longer need.
- start_session/run_task take backend=local|remote where the server has both; step tools need local sessions.
- Stay logged in across sessions: create_profile() once, then start_session(profileId=...); the session's cookies
  and storage are saved into the profile when it ends. One live session per profile. list_profiles shows them.
- Records outlive the server: get_task, get_session and list_sessions(includeEnded=true) read ended sessions
  and task outputs from before a restart.
"""

BackendFactory = Callable[[Settings], AbstractAsyncContextManager[BackendRouter]]


def build_server(
    settings: Settings | None = None, backend_factory: BackendFactory | None = None
) -> MCPServer[AppState]:
    """A new server; each lifespan (per stdio connection, once per HTTP server) opens its own backend."""
    settings = settings or Settings()
    factory = backend_factory or open_backends
    bus = InMemorySubscriptionBus()

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        notifier = Notifier(bus)
        async with factory(settings) as backend, anyio.create_task_group() as group:
            backend.subscribe(notifier.on_event)
            group.start_soon(notifier.pump)
            try:
                yield AppState(settings=settings, backend=backend, notifier=notifier)
            finally:
                notifier.close()
                group.cancel_scope.cancel()

    token_verifier, auth = auth_options(settings)  # HTTP transports only; stdio has one local user
    server: MCPServer[AppState] = MCPServer(
        name="browser-sessions",
        title="Browser sessions",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=build_tools(TOOLS + BROWSER_TOOLS + PROFILE_TOOLS),
        lifespan=lifespan,
        subscriptions=bus,
        log_level=settings.log_level,
        token_verifier=token_verifier,
        auth=auth,
    )
    register_resources(server, bus)
    _advertise_list_changed(server)
    return server


def _advertise_list_changed(server: MCPServer[Any]) -> None:
    """Tell handshake-era clients that list_changed notifications are sent (MCPServer passes no
    NotificationOptions, so they would read false)."""
    low = server._lowlevel_server
    original = low.create_initialization_options

    @functools.wraps(original)
    def with_options(notification_options: NotificationOptions | None = None, *args: Any, **kwargs: Any) -> Any:
        options = notification_options or NotificationOptions(resources_changed=True)
        return original(options, *args, **kwargs)

    low.create_initialization_options = with_options  # type: ignore[method-assign]
