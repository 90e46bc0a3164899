"""The cloud service's session endpoints (reference/remote-api.md §3-§5) on a ``BackendRouter``, and the
list of every route (the profile endpoints are in profile_routes.py).

Each handler reads its body with the wire dialects (``backends/remote/dialects.py``, both request dialects
accepted), makes one or two backend calls and answers with the documented shapes; failures leave through
``answers.error_response``. Every call acts as the request's owner (its API key): another key's sessions
and tasks are answered exactly as unknown ones.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from browser_sessions.api.answers import (
    INVALID,
    MISSING,
    UNAUTHORIZED,
    ApiError,
    base_url,
    guarded,
    json_object,
    owner,
)
from browser_sessions.api.profile_routes import profile_routes
from browser_sessions.backends.base import ControlAction
from browser_sessions.backends.remote.dialects import (
    guardrail_text,
    read_run_task,
    read_start_session,
    read_task,
    task_body,
)
from browser_sessions.backends.router import BackendRouter
from browser_sessions.errors import BrowserUnavailable, SessionEnded
from browser_sessions.models import LIVE_STATUSES, TaskResult
from browser_sessions.settings import Settings

ACK = {"success": True, "message": "Message sent successfully"}
_CONTROL: dict[str, ControlAction] = {"pause": "pause", "resume": "resume", "stop": "stop"}


def _task_response(request: Request, task: TaskResult) -> JSONResponse:
    poll_url = f"{base_url(request)}/task/{task.session_id}/{task.task_id}"
    status, body = task_body(task, poll_url)
    return JSONResponse(body, status)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"success": True, "status": "ok"})


class _Endpoints:
    def __init__(self, settings: Settings, router: BackendRouter) -> None:
        self.settings = settings
        self.router = router

    def _backend(self, request: Request) -> BackendRouter:
        """The sessions as the request's owner sees them."""
        return self.router.owned_by(owner(request))

    async def _held(self, request: Request, task: TaskResult) -> JSONResponse:
        """Hold the request until the task settles or api_inline_wait passes (the service's hybrid model,
        §5.3): the result inline, or a pending stub with its pollUrl."""
        task = await self._backend(request).wait_task(task.session_id, task.task_id, self.settings.api_inline_wait)
        return _task_response(request, task)

    async def start_session(self, request: Request) -> JSONResponse:
        config = read_start_session(await json_object(request))
        started = await self._backend(request).start_session(config)
        if started.status == "Failed":  # the browser could not give it a context
            raise BrowserUnavailable(started.reason)
        base = base_url(request)
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
        spec, profile_id = read_run_task(await json_object(request))
        if not spec.task_details.strip():
            raise ApiError(400, "taskDetails is required", MISSING)
        try:
            task = await self._backend(request).run_task(spec, profile_id)
        except SessionEnded as exc:  # the one-shot session never came up: no instance, not a missing session
            raise BrowserUnavailable(exc.message) from exc
        return await self._held(request, task)

    async def send_message(self, request: Request) -> JSONResponse:
        body = await json_object(request)
        session_id, message = body.get("sessionId"), body.get("message")
        if not isinstance(session_id, str) or not session_id or not isinstance(message, dict):
            raise ApiError(400, "sessionId and message are required", MISSING)
        backend = self._backend(request)
        action = message.get("actionType")
        if action == "newTask":
            spec = read_task(message)
            if not spec.task_details.strip() and not spec.starting_point:
                raise ApiError(400, "taskDetails is required", MISSING)
            task = await backend.send_task(session_id, spec)
            return await self._held(request, task)
        if action == "state":
            await self._change_state(backend, session_id, message.get("newState"))
        elif action == "guardrail":
            await self._answer_guardrail(backend, session_id, message)
        elif action == "interaction":
            raise ApiError(
                400,
                "interaction is not supported by this server; drive the page with the MCP step tools",
                "NOT_SUPPORTED",
            )
        else:
            raise ApiError(400, f"actionType must be newTask, state, guardrail or interaction, not {action!r}", INVALID)
        return JSONResponse(ACK)

    @staticmethod
    async def _change_state(backend: BackendRouter, session_id: str, new_state: Any) -> None:
        if isinstance(new_state, str) and new_state in _CONTROL:
            await backend.control(session_id, _CONTROL[new_state])
        elif new_state == "terminate":
            await backend.terminate(session_id)
        else:
            raise ApiError(400, f"newState must be pause, resume, stop or terminate, not {new_state!r}", INVALID)

    @staticmethod
    async def _answer_guardrail(backend: BackendRouter, session_id: str, message: dict[str, Any]) -> None:
        """Answer the question of the session's task in guardrail_trigger (a session runs one task at a time,
        so the message needs no taskId); ``newState: "stop"`` stops that task instead."""
        state = await backend.get_session(session_id)
        if state.status not in LIVE_STATUSES:
            raise SessionEnded(session_id, state.status, state.reason)
        task = await backend.get_task(session_id, state.current_task_id) if state.current_task_id else None
        if task is None or task.status != "guardrail_trigger":
            raise ApiError(
                400,
                f"No task of session {session_id} is waiting for an answer (guardrail_trigger); nothing to answer.",
                INVALID,
            )
        resume = message.get("newState") != "stop"
        await backend.answer_guardrail(session_id, task.task_id, guardrail_text(message), resume)

    async def get_task(self, request: Request) -> JSONResponse:
        session_id, task_id = request.path_params["session_id"], request.path_params["task_id"]
        return _task_response(request, await self._backend(request).get_task(session_id, task_id))


def api_routes(settings: Settings, router: BackendRouter) -> list[Route]:
    """Every endpoint: the sessions' on ``router`` (each request acting as its key's owner) and the
    profiles' (profile_routes.py). Unknown paths answer 404."""
    api = _Endpoints(settings, router)
    return [
        Route("/start/health", health, methods=["GET"]),
        Route("/start/start-session", guarded(api.start_session), methods=["POST"]),
        Route("/start/run-task", guarded(api.run_task), methods=["POST"]),
        Route("/start/send-message", guarded(api.send_message, UNAUTHORIZED), methods=["POST"]),
        Route("/task/{session_id}/{task_id}", guarded(api.get_task), methods=["GET"]),
        *profile_routes(settings),
    ]
