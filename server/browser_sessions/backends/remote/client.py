"""The HTTP client of the remote service: authentication, the request budget, retries, and the one place
where the service's statuses become our errors.

Retry decision table (``retry_delay``); a call gives up after ``ATTEMPTS`` tries or ``RETRY_BUDGET`` seconds
of waiting, whichever comes first:

==========================================  ========================  ========================================
what happened                               creates=False             creates=True (start-session, run-task,
                                            (polls, state/guardrail)  newTask)
==========================================  ========================  ========================================
never sent (connect refused/timeout, pool)  retry, backoff            retry, backoff
429 (not processed)                         retry after Retry-After   retry after Retry-After
503 (no instance: nothing created)          retry, backoff            retry, backoff
500/502/504                                 retry, backoff            OUTCOME_UNKNOWN, not resent
maybe sent (read timeout, dropped conn.)    retry, backoff            OUTCOME_UNKNOWN, not resent
other status                                mapped error, no retry    mapped error, no retry
==========================================  ========================  ========================================

Requests only go to ``settings.remote_url`` (callers pass paths; a ``pollUrl`` is never followed) and
redirects are not followed. The API key is sent in the Authorization header only: it is in no log line,
message or repr.
"""

from __future__ import annotations

import logging
from typing import Any, Literal
from urllib.parse import quote

import anyio
import httpx

from browser_sessions.backends.remote.dialects import error_message
from browser_sessions.backends.remote.limiter import Sleep, SlidingWindowLimiter, retry_after
from browser_sessions.errors import (
    BrowserSessionsError,
    BrowserUnavailable,
    InvalidInput,
    RemoteServiceError,
    SessionNotFound,
)
from browser_sessions.models import check_http_url
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.remote")

ATTEMPTS = 4  # tries per call, the first included
BACKOFF_FIRST = 1.0  # seconds before the second try; doubled for each further one
BACKOFF_MAX = 8.0
RETRY_BUDGET = 75.0  # seconds one call may spend waiting between tries (Retry-After included)
CONNECT_TIMEOUT = 10.0

Trouble = Literal["never_sent", "maybe_sent", "rate_limited", "unavailable", "server_error"]
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
_CREATED = {
    "/start/start-session": "a new session",
    "/start/run-task": "a new session running the task",
    "/start/send-message": "the task",
}


class RemoteSessionGone(SessionNotFound):
    """The service answered "Session not found" (401 on send-message, 404 on polls) for a session we track."""

    def __init__(self, session_id: str, detail: str) -> None:
        BrowserSessionsError.__init__(
            self,
            f"The remote service no longer knows session {session_id} ({detail}): it ended, e.g. after 5 idle "
            "minutes. Start a new session with start_session.",
        )
        self.session_id = session_id
        self.detail = detail


def retry_delay(trouble: Trouble, *, creates: bool, attempt: int, hinted: float | None = None) -> float | None:
    """Seconds to wait before trying again after ``attempt`` (1-based) met ``trouble``; None: do not retry."""
    if creates and trouble in ("maybe_sent", "server_error"):
        return None  # the service may have acted on it: resending could run it twice
    if attempt >= ATTEMPTS:
        return None
    if trouble == "rate_limited" and hinted is not None:
        return hinted
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** (attempt - 1))


def status_error(status: int, body: Any, *, session_id: str | None = None, wait: float | None = None) -> Exception:
    """Our error for a non-2xx answer (``session_id``: the call concerns that session, so "not found" means it
    is gone)."""
    message = error_message(body, status)
    gone = session_id is not None and "session" in message.lower()
    if status == 400:
        return InvalidInput(f"The remote service refused the request: {message}. Fix the arguments and call again.")
    if status in (401, 404) and gone:
        assert session_id is not None
        return RemoteSessionGone(session_id, message)
    if status == 401:
        return RemoteServiceError(
            "UNAUTHORIZED",
            f"The remote service refused the API key ({message}). Check BROWSER_SESSIONS_REMOTE_API_KEY.",
        )
    if status == 402:
        balance = body.get("balance") if isinstance(body, dict) else None
        shown = f"; balance {balance} USD" if isinstance(balance, int | float) else ""
        return RemoteServiceError(
            "INSUFFICIENT_BALANCE",
            f"The remote account's balance is too low ({message}{shown}). Top it up, then try again.",
        )
    if status == 403:
        return RemoteServiceError(
            "FORBIDDEN",
            f"The remote service refused access ({message}): the account may be deactivated or the API key "
            "lack a permission.",
        )
    if status == 404:
        return RemoteServiceError(
            "NOT_FOUND", f"The remote service found nothing there ({message}). Check BROWSER_SESSIONS_REMOTE_URL."
        )
    if status == 429:
        later = f" in {wait:.0f} s" if wait else " in a minute"
        return RemoteServiceError(
            "RATE_LIMIT_EXCEEDED",
            f"The remote service's rate limit is used up ({message}); it allows 10 requests a minute. "
            f"Try again{later}.",
        )
    if status == 503:
        return BrowserUnavailable(
            f"The remote service has no available instances ({message}). Try again in a minute, or start a "
            "local session (backend=local)."
        )
    if status >= 500:
        return RemoteServiceError("REMOTE_ERROR", f"The remote service failed (HTTP {status}: {message}). Try later.")
    return RemoteServiceError("REMOTE_ERROR", f"The remote service answered HTTP {status} ({message}).")


def outcome_unknown(path: str, what_happened: str) -> RemoteServiceError:
    created = _CREATED.get(path, "something")
    return RemoteServiceError(
        "OUTCOME_UNKNOWN",
        f"The remote service gave no usable answer to POST {path} ({what_happened}). It may or may not have "
        f"created {created}; it was not resent, so nothing runs twice. Check the service's dashboard "
        "(or list_sessions) before trying again.",
    )


class RemoteClient:
    """JSON calls to the service at ``settings.remote_url`` over ``http`` (whose timeouts apply)."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        limiter: SlidingWindowLimiter | None = None,
        *,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not settings.remote_url:
            raise InvalidInput(
                "The remote backend needs the service's URL: set BROWSER_SESSIONS_REMOTE_URL "
                "(e.g. https://connect.webrun.ai, or a `browser-sessions api` server)."
            )
        try:
            self.base_url = check_http_url(settings.remote_url).rstrip("/")
        except ValueError as exc:
            raise InvalidInput(f"BROWSER_SESSIONS_REMOTE_URL: {exc}") from None
        self._key = settings.remote_api_key
        self._timeout = settings.remote_timeout
        self._http = http
        self.limiter = limiter or SlidingWindowLimiter(settings.remote_rate_limit)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"RemoteClient({self.base_url!r})"

    @staticmethod
    def task_path(session_id: str, task_id: str) -> str:
        return f"/task/{quote(session_id, safe='')}/{quote(task_id, safe='')}"

    async def post(
        self, path: str, body: dict[str, Any], *, creates: bool, session_id: str | None = None
    ) -> dict[str, Any]:
        """POST within the request budget. ``creates``: the service starts something on it, so an unclear
        outcome is never resent (``OUTCOME_UNKNOWN``). ``session_id``: "not found" means that session is gone."""
        return await self._call("POST", path, body, creates=creates, session_id=session_id)

    async def get(self, path: str, *, session_id: str | None = None) -> dict[str, Any]:
        return await self._call("GET", path, None, creates=False, session_id=session_id)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, *, creates: bool, session_id: str | None
    ) -> dict[str, Any]:
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            if method == "POST":
                await self.limiter.acquire()
            hinted: float | None = None
            try:
                response = await self._http.request(method, self.base_url + path, json=body, headers=self._headers())
            except NEVER_SENT as exc:
                trouble: Trouble = "never_sent"
                failure: Exception = RemoteServiceError(
                    "REMOTE_UNREACHABLE",
                    f"Could not connect to the remote service at {self.base_url} ({type(exc).__name__}). "
                    "Check BROWSER_SESSIONS_REMOTE_URL and that the service is up.",
                )
            except MAYBE_SENT as exc:
                trouble = "maybe_sent"
                what = (
                    f"no answer within BROWSER_SESSIONS_REMOTE_TIMEOUT={self._timeout:g} s"
                    if isinstance(exc, httpx.TimeoutException)
                    else f"the connection dropped: {type(exc).__name__}"
                )
                if creates:
                    raise outcome_unknown(path, what) from None
                failure = RemoteServiceError("REMOTE_ERROR", f"The remote service did not answer ({what}). Try later.")
            except httpx.HTTPError as exc:  # an invalid URL, a proxy error...: retrying would not help
                raise RemoteServiceError(
                    "REMOTE_ERROR", f"Calling the remote service failed: {type(exc).__name__}: {exc}"
                ) from None
            else:
                if method == "POST":
                    self.limiter.observe(response.headers)
                status = response.status_code
                if 200 <= status < 300:
                    return self._json(response, path, creates)
                content = _body(response)
                if status == 429:
                    trouble, hinted = "rate_limited", retry_after(response.headers)
                    self.limiter.hold(hinted or 0.0)
                elif status == 503:
                    trouble = "unavailable"
                elif status in (500, 502, 504):
                    trouble = "server_error"
                    if creates:
                        raise outcome_unknown(path, f"it answered HTTP {status}: {error_message(content, status)}")
                else:
                    raise status_error(status, content, session_id=session_id)
                failure = status_error(status, content, session_id=session_id, wait=hinted)
            delay = retry_delay(trouble, creates=creates, attempt=attempt, hinted=hinted)
            if delay is None or waited + delay > RETRY_BUDGET:
                raise failure
            logger.warning(
                "%s %s: %s (try %d of %d); retrying in %.1f s", method, path, trouble, attempt, ATTEMPTS, delay
            )
            await self._sleep(delay)
            waited += delay

    def _headers(self) -> dict[str, str]:
        if self._key is None:
            return {}
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def _json(self, response: httpx.Response, path: str, creates: bool) -> dict[str, Any]:
        content = _body(response)
        if isinstance(content, dict):
            return content
        if creates:
            raise outcome_unknown(path, f"HTTP {response.status_code} without a JSON object")
        raise RemoteServiceError("REMOTE_ERROR", f"The remote service answered {path} without a JSON object.")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
