"""The cloud service's endpoints (reference/remote-api.md §3-§5) on a ``Backend``.

Each handler reads its body with the wire dialects (``backends/remote/dialects.py``, both request dialects
accepted), makes one or two backend calls and answers with the documented shapes. Exceptions become HTTP
answers in one place, ``error_response``; bodies are ``{"success": false, "message", "code"?}`` and never
carry a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from browser_sessions.backends.base import Backend, ControlAction
from browser_sessions.backends.remote.dialects import (
    guardrail_text,
    read_run_task,
    read_start_session,
    read_task,
    task_body,
)
from browser_sessions.errors import (
    BrowserSessionsError,
    BrowserUnavailable,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    TaskNotFound,
    describe_validation,
)
from browser_sessions.models import LIVE_STATUSES, TaskResult
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.api")

MAX_BODY_BYTES = 1_000_000  # far above any real task (taskDetails <= 20k chars); bounds what one request holds
INVALID = "INVALID_PARAMETER"
ACK = {"success": True, "message": "Message sent successfully"}
NO_INSTANCES = "No available instances."
_CONTROL: dict[str, ControlAction] = {"pause": "pause", "resume": "resume", "stop": "stop"}
# The answer about a session that does not exist or has ended: 404 on most endpoints, 401 on send-message (§5).
SessionGone = tuple[int, str]
NOT_FOUND: SessionGone = (404, "Session not found")
UNAUTHORIZED: SessionGone = (401, "Session not found or unauthorized")


class ApiError(Exception):
    """An answer the HTTP layer decides itself (missing fields, unsupported actions)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def error_body(message: str, code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "message": message}
    if code:
        body["code"] = code
    return body


def error_response(exc: Exception, session_gone: SessionGone = NOT_FOUND) -> JSONResponse:
    """The one map from an exception to the service's error answer; unexpected ones are logged with their
    traceback here and answered 500 without it."""
    status, message, code = _classify(exc, session_gone)
    return JSONResponse(error_body(message, code), status)


def _classify(exc: Exception, session_gone: SessionGone) -> tuple[int, str, str | None]:
    if isinstance(exc, ApiError):
        return exc.status, exc.message, exc.code
    if isinstance(exc, ValidationError):
        return 400, describe_validation(exc), INVALID
    if isinstance(exc, SessionNotFound | SessionEnded):
        return session_gone[0], session_gone[1], exc.code
    if isinstance(exc, TaskNotFound):
        return 404, "Task not found", exc.code
    if isinstance(exc, SessionLimitReached | BrowserUnavailable):
        return 503, NO_INSTANCES, exc.code
    if isinstance(exc, BrowserSessionsError):
        return 400, exc.message, exc.code
    logger.error("unexpected error answering a request", exc_info=exc)
    return 500, "Internal server error", None


Handler = Callable[[Request], Awaitable[JSONResponse]]


def _guarded(handler: Handler, session_gone: SessionGone = NOT_FOUND) -> Handler:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            return await handler(request)
        except Exception as exc:  # every error, expected or not, leaves through error_response
            return error_response(exc, session_gone)

    return endpoint


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else, 413 past MAX_BODY_BYTES (read in chunks, so an
    oversized body is refused before it is all in memory)."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.", INVALID)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object (Content-Type: application/json).", INVALID)
    return body


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _task_response(request: Request, task: TaskResult) -> JSONResponse:
    poll_url = f"{_base_url(request)}/task/{task.session_id}/{task.task_id}"
    status, body = task_body(task, poll_url)
    return JSONResponse(body, status)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"success": True, "status": "ok"})


class _Endpoints:
    def __init__(self, settings: Settings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend

    async def _held(self, request: Request, task: TaskResult) -> JSONResponse:
        """Hold the request until the task settles or api_inline_wait passes (the service's hybrid model,
        §5.3): the result inline, or a pending stub with its pollUrl."""
        task = await self.backend.wait_task(task.session_id, task.task_id, self.settings.api_inline_wait)
        return _task_response(request, task)

    async def start_session(self, request: Request) -> JSONResponse:
        started = await self.backend.start_session(read_start_session(await _json_object(request)))
        if started.status == "Failed":  # the browser could not give it a context
            raise BrowserUnavailable(started.reason)
        base = _base_url(request)
        body: dict[str, Any] = {
            "success": True,
            "sessionId": started.session_id,
            "socketURL": base,  # documented as the Socket.IO server; this server has none, so it is only its URL
            "expiresIn": round(self.settings.idle_timeout * 1000),
            "message": "Session started",
        }
        if started.task is not None:
            # An extension: the service documents no taskId for the initialTask (reference §3.2, Q1), which
            # leaves its result unreachable over REST; we name it and where to poll it.
            body["taskId"] = started.task.task_id
            body["pollUrl"] = f"{base}/task/{started.session_id}/{started.task.task_id}"
        return JSONResponse(body)

    async def run_task(self, request: Request) -> JSONResponse:
        spec, profile_id = read_run_task(await _json_object(request))
        if not spec.task_details.strip():
            raise ApiError(400, "taskDetails is required", "MISSING_REQUIRED_FIELD")
        try:
            task = await self.backend.run_task(spec, profile_id)
        except SessionEnded as exc:  # the one-shot session never came up: no instance, not a missing session
            raise BrowserUnavailable(exc.message) from exc
        return await self._held(request, task)

    async def send_message(self, request: Request) -> JSONResponse:
        body = await _json_object(request)
        session_id, message = body.get("sessionId"), body.get("message")
        if not isinstance(session_id, str) or not session_id or not isinstance(message, dict):
            raise ApiError(400, "sessionId and message are required", "MISSING_REQUIRED_FIELD")
        action = message.get("actionType")
        if action == "newTask":
            spec = read_task(message)
            if not spec.task_details.strip() and not spec.starting_point:
                raise ApiError(400, "taskDetails is required", "MISSING_REQUIRED_FIELD")
            task = await self.backend.send_task(session_id, spec)
            return await self._held(request, task)
        if action == "state":
            await self._change_state(session_id, message.get("newState"))
        elif action == "guardrail":
            await self._answer_guardrail(session_id, message)
        elif action == "interaction":
            raise ApiError(
                400,
                "interaction is not supported by this server; drive the page with the MCP step tools",
                "NOT_SUPPORTED",
            )
        else:
            raise ApiError(400, f"actionType must be newTask, state, guardrail or interaction, not {action!r}", INVALID)
        return JSONResponse(ACK)

    async def _change_state(self, session_id: str, new_state: Any) -> None:
        if isinstance(new_state, str) and new_state in _CONTROL:
            await self.backend.control(session_id, _CONTROL[new_state])
        elif new_state == "terminate":
            await self.backend.terminate(session_id)
        else:
            raise ApiError(400, f"newState must be pause, resume, stop or terminate, not {new_state!r}", INVALID)

    async def _answer_guardrail(self, session_id: str, message: dict[str, Any]) -> None:
        """Answer the question of the session's task in guardrail_trigger (a session runs one task at a time,
        so the message needs no taskId); ``newState: "stop"`` stops that task instead."""
        state = await self.backend.get_session(session_id)
        if state.status not in LIVE_STATUSES:
            raise SessionEnded(session_id, state.status, state.reason)
        task = await self.backend.get_task(session_id, state.current_task_id) if state.current_task_id else None
        if task is None or task.status != "guardrail_trigger":
            raise ApiError(
                400,
                f"No task of session {session_id} is waiting for an answer (guardrail_trigger); nothing to answer.",
                INVALID,
            )
        resume = message.get("newState") != "stop"
        await self.backend.answer_guardrail(session_id, task.task_id, guardrail_text(message), resume)

    async def get_task(self, request: Request) -> JSONResponse:
        task = await self.backend.get_task(request.path_params["session_id"], request.path_params["task_id"])
        return _task_response(request, task)


def api_routes(settings: Settings, backend: Backend) -> list[Route]:
    """The implemented endpoints; profile endpoints are not among them yet (unknown paths answer 404)."""
    api = _Endpoints(settings, backend)
    return [
        Route("/start/health", health, methods=["GET"]),
        Route("/start/start-session", _guarded(api.start_session), methods=["POST"]),
        Route("/start/run-task", _guarded(api.run_task), methods=["POST"]),
        Route("/start/send-message", _guarded(api.send_message, UNAUTHORIZED), methods=["POST"]),
        Route("/task/{session_id}/{task_id}", _guarded(api.get_task), methods=["GET"]),
    ]
