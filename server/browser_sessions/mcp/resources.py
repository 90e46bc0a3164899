"""Session resources under ``session://``: state, tasks, task outputs (with the output's own MIME type) and
a screenshot of the current page; ``resources/list`` lists live sessions and their tasks. Each request sees
only its owner's sessions (http_boundary.py): anyone else's read as unknown, and subscribing to them
(``resources/subscribe``, or ``subscriptions/listen`` on 2026-07-28) is accepted but never notified.

MCPServer fixes one MIME type per template and lists only static resources, so these handlers are
registered on the low-level server directly (the SDK's documented workaround, also for subscribe).
"""

from __future__ import annotations

import base64
import json
import mimetypes
from typing import Any
from urllib.parse import unquote, urlsplit

from mcp import MCPError
from mcp.server import MCPServer, ServerRequestContext
from mcp.server.subscriptions import ListenHandler, SubscriptionBus
from mcp.types import (
    INVALID_PARAMS,
    BlobResourceContents,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from browser_sessions.backends.router import BackendRouter
from browser_sessions.errors import BrowserSessionsError
from browser_sessions.mcp.app_state import AppState
from browser_sessions.mcp.http_boundary import request_owner
from browser_sessions.models import TaskResult

OUTPUT_MIME = {"text": "text/markdown", "structured_json": "application/json", "structured_csv": "text/csv"}

TEMPLATES = [
    ResourceTemplate(
        uri_template="session://{sessionId}",
        name="session",
        title="Session state",
        description="Status, timestamped transitions with reasons, tasks, current page and usage (JSON).",
        mime_type="application/json",
    ),
    ResourceTemplate(
        uri_template="session://{sessionId}/tasks/{taskId}",
        name="task",
        title="Task state",
        description="A task's status, steps, output and error (JSON).",
        mime_type="application/json",
    ),
    ResourceTemplate(
        uri_template="session://{sessionId}/tasks/{taskId}/output",
        name="task-output",
        title="Task output",
        description="A completed task's output: text/markdown, application/json or text/csv by outputType.",
    ),
    ResourceTemplate(
        uri_template="session://{sessionId}/downloads/{name}",
        name="download",
        title="Downloaded file",
        description="A file the session downloaded (listed in the session state's downloads).",
        mime_type="application/octet-stream",
    ),
    ResourceTemplate(
        uri_template="session://{sessionId}/screenshot",
        name="screenshot",
        title="Screenshot",
        description="PNG of the session's current page (live sessions).",
        mime_type="image/png",
    ),
]


def _sessions(ctx: ServerRequestContext[AppState]) -> BackendRouter:
    return ctx.lifespan_context.backend.owned_by(request_owner())


def _not_found(uri: str, message: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=message, data={"uri": uri})


async def _list(ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None) -> ListResourcesResult:
    resources: list[Resource] = []
    for state in await _sessions(ctx).list_sessions(include_ended=False):
        resources.append(
            Resource(
                uri=state.resource_uri,
                name=f"session {state.session_id}",
                description=f"{state.status} at {state.current_url or 'about:blank'}",
                mime_type="application/json",
            )
        )
        for task in state.tasks:
            resources.append(
                Resource(
                    uri=f"{state.resource_uri}/tasks/{task.task_id}",
                    name=f"task {task.task_id} of session {state.session_id}",
                    description=task.status,
                    mime_type="application/json",
                )
            )
    return ListResourcesResult(resources=resources)


async def _templates(
    ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
) -> ListResourceTemplatesResult:
    return ListResourceTemplatesResult(resource_templates=TEMPLATES)


async def _read(ctx: ServerRequestContext[AppState], params: ReadResourceRequestParams) -> ReadResourceResult:
    uri = str(params.uri)
    parts = urlsplit(uri)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "session" or not parts.netloc:
        raise _not_found(uri, f"Unknown resource {uri}; session resources look like session://<sessionId>.")
    backend = _sessions(ctx)
    session_id = parts.netloc
    try:
        if not segments:
            state = await backend.get_session(session_id)
            return _text(uri, "application/json", state.model_dump_json(by_alias=True, indent=2))
        if segments == ["screenshot"]:
            png = await backend.screenshot(session_id)
            blob = base64.b64encode(png).decode()
            return ReadResourceResult(contents=[BlobResourceContents(uri=uri, blob=blob, mime_type="image/png")])
        if len(segments) == 2 and segments[0] == "downloads":
            name = unquote(segments[1])
            data = await backend.download(session_id, name)
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return ReadResourceResult(
                contents=[BlobResourceContents(uri=uri, blob=base64.b64encode(data).decode(), mime_type=mime)]
            )
        if len(segments) in (2, 3) and segments[0] == "tasks" and segments[2:] in ([], ["output"]):
            task = await backend.get_task(session_id, segments[1])
            if len(segments) == 2:
                return _text(uri, "application/json", task.model_dump_json(by_alias=True, indent=2))
            return _output(uri, task)
    except BrowserSessionsError as exc:
        raise _not_found(uri, f"{exc.code}: {exc.message}") from exc
    raise _not_found(uri, f"Unknown resource {uri}; see resources/templates/list for the session:// forms.")


def _output(uri: str, task: TaskResult) -> ReadResourceResult:
    if task.status != "task_completed":
        raise _not_found(
            uri,
            f"Task {task.task_id} has no output (status {task.status}). Read {task.resource_uri} or wait with "
            "get_task.",
        )
    value: Any = task.output
    text = value if isinstance(value, str) else json.dumps(value, indent=2)
    return _text(uri, OUTPUT_MIME[task.output_type], text)


def _text(uri: str, mime: str, text: str) -> ReadResourceResult:
    return ReadResourceResult(contents=[TextResourceContents(uri=uri, text=text, mime_type=mime)])


def _may_hear(router: BackendRouter, uri: str) -> bool:
    """Whether the owner of ``router`` may be notified about ``uri``: not about another owner's session."""
    parts = urlsplit(uri)
    return parts.scheme != "session" or router.owns(parts.netloc)


async def _subscribe(ctx: ServerRequestContext[AppState], params: SubscribeRequestParams) -> EmptyResult:
    if _may_hear(_sessions(ctx), str(params.uri)):
        ctx.lifespan_context.notifier.subscribe(ctx.session, str(params.uri))
    return EmptyResult()


class _OwnListen(ListenHandler):
    """The SDK's ``subscriptions/listen`` with the caller's own session URIs only: another owner's are left
    out of the honored filter, exactly like a URI that names no session."""

    async def __call__(
        self, ctx: ServerRequestContext[AppState], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        wanted = params.notifications.resource_subscriptions
        if wanted:
            router = _sessions(ctx)
            notifications = params.notifications.model_copy(
                update={"resource_subscriptions": [uri for uri in wanted if _may_hear(router, uri)]}
            )
            params = params.model_copy(update={"notifications": notifications})
        return await super().__call__(ctx, params)


async def _unsubscribe(ctx: ServerRequestContext[AppState], params: UnsubscribeRequestParams) -> EmptyResult:
    ctx.lifespan_context.notifier.unsubscribe(ctx.session, str(params.uri))
    return EmptyResult()


def register_resources(server: MCPServer[AppState], bus: SubscriptionBus) -> None:
    low = server._lowlevel_server
    low.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, _OwnListen(bus))
    low.add_request_handler("resources/list", PaginatedRequestParams, _list)
    low.add_request_handler("resources/templates/list", PaginatedRequestParams, _templates)
    low.add_request_handler("resources/read", ReadResourceRequestParams, _read)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
