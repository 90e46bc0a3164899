"""How every endpoint of ``browser-sessions api`` answers failures, and reads bodies.

Bodies are ``{"success": false, "message", "code"?}`` (reference/remote-api.md §12) and never carry a
traceback. Exceptions become HTTP answers in one place, ``error_response``; ``guarded`` wraps every handler
so nothing leaves it another way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from browser_sessions.errors import (
    BrowserSessionsError,
    BrowserUnavailable,
    ProfileInUse,
    ProfileNotFound,
    SessionEnded,
    SessionLimitReached,
    SessionNotFound,
    TaskNotFound,
    describe_validation,
)

logger = logging.getLogger("browser_sessions.api")

MAX_BODY_BYTES = 1_000_000  # far above any real task (taskDetails <= 20k chars); bounds what one request holds
INVALID = "INVALID_PARAMETER"
MISSING = "MISSING_REQUIRED_FIELD"
NO_INSTANCES = "No available instances."
# The answer about a session that does not exist, has ended or is another key's: 404 on most endpoints,
# 401 on send-message (§5). The three are answered alike, so no key learns of another's sessions.
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


def error_response(exc: Exception, session_gone: SessionGone = NOT_FOUND) -> Response:
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
    if isinstance(exc, ProfileNotFound):  # the profileId of a new session: the argument is wrong
        shown = exc.profile_id[:100]
        message = f"No profile with profileId {shown!r}. GET /profiles lists yours; POST /profiles creates one."
        return 400, message, exc.code
    if isinstance(exc, ProfileInUse):
        return 409, exc.message, exc.code
    if isinstance(exc, BrowserSessionsError):
        return 400, exc.message, exc.code
    logger.error("unexpected error answering a request", exc_info=exc)
    return 500, "Internal server error", None


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler, session_gone: SessionGone = NOT_FOUND) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # every error, expected or not, leaves through error_response
            return error_response(exc, session_gone)

    return endpoint


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The body, read in chunks so one past ``limit`` bytes is refused (413) before it is all in memory."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"{what} is larger than {limit} bytes.", INVALID)
    return bytes(data)


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else, 413 past MAX_BODY_BYTES."""
    data = await read_body(request, MAX_BODY_BYTES, "The request body")
    try:
        body = json.loads(data)
    except RecursionError:
        raise ApiError(400, "The request body nests objects or lists too deeply; flatten it.", INVALID) from None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object (Content-Type: application/json).", INVALID)
    return body


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def owner(request: Request) -> str:
    """The owner the request acts for: its API key's (set by the auth layer, app.py)."""
    found: str = request.state.owner
    return found
