"""The one error tree of browser-sessions.

Every failure a caller can act on is a ``BrowserSessionsError`` with a stable ``code`` (the seed API's
codes where one exists) and a message that says what went wrong and what to do next. Boundaries translate
foreign errors exactly once (Playwright errors in the local backend) with ``raise ... from``; the MCP layer
turns these into tool errors. Task failures carry the same ``code`` in the task result's ``error``.

::

    BrowserSessionsError
    ├── InvalidInput                    bad arguments the caller can fix            INVALID_PARAMETER
    ├── SessionNotFound                 unknown or ended sessionId                  SESSION_NOT_FOUND
    ├── SessionEnded                    session exists but no longer takes work     SESSION_EXPIRED
    ├── TaskNotFound                    unknown taskId in a known session           TASK_NOT_FOUND
    ├── BrowserUnavailable              no Chromium found or it failed to start    INSTANCE_UNAVAILABLE
    ├── SessionLimitReached             max_sessions live already                   SESSION_LIMIT_REACHED
    ├── SessionBusy                     a task drives the page; step tools wait     TASK_RUNNING
    ├── NotSupported                    the session's backend cannot do that        NOT_SUPPORTED
    ├── ProfileNotFound                 unknown profileId (or another owner's)      PROFILE_NOT_FOUND
    ├── ProfileInUse                    a live session already uses the profile     PROFILE_IN_USE
    ├── RemoteServiceError              the cloud service refused or failed         (the service's code)
    └── TaskFailure                     a task ended in failure (carried in results)
        ├── TaskTimeout                 maxDuration passed                          TASK_TIMEOUT
        ├── TaskStopped                 control_session(stop) or session ended      TASK_STOPPED
        ├── DomainBlocked               avoidDomains refused a navigation           DOMAIN_BLOCKED
        │                               (or the server's BROWSER_SESSIONS_EGRESS_BLOCK_HOSTS)
        ├── PrivateAddressBlocked       a navigation to a private/metadata address  PRIVATE_ADDRESS_BLOCKED
        ├── FileUrlBlocked              a file:// URL with file URLs off            FILE_URL_BLOCKED
        ├── InstructionError            a line the planner cannot parse             INVALID_TASK_DETAILS
        ├── ModelRequired               free text with no model configured          MODEL_REQUIRED
        ├── ElementNotFound             nothing on the page matches                 ELEMENT_NOT_FOUND
        ├── NavigationFailed            page did not load                           NAVIGATION_FAILED
        ├── OutputInvalid               output failed outputSchema                  OUTPUT_VALIDATION_FAILED
        ├── BrowserLost                 the browser went away mid-task             BROWSER_LOST
        ├── TokenBudgetExceeded         maxInputTokens / maxOutputTokens used up    TOKEN_BUDGET_EXCEEDED
        ├── StepLimitReached            the agent used its step allowance          STEP_LIMIT_REACHED
        └── ModelError                  the model could not be reached or refused   MODEL_ERROR
                                        (planners/models/base.py)
"""

from __future__ import annotations

from pydantic import ValidationError


class BrowserSessionsError(Exception):
    """Base of every error we raise on purpose; ``str()`` is the message meant for the caller."""

    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(BrowserSessionsError):
    code = "INVALID_PARAMETER"


class SessionNotFound(BrowserSessionsError):
    code = "SESSION_NOT_FOUND"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"No session with sessionId {session_id!r}. Call list_sessions to see live sessions, "
            "or start_session to create one."
        )


class SessionEnded(BrowserSessionsError):
    code = "SESSION_EXPIRED"

    def __init__(self, session_id: str, status: str, reason: str) -> None:
        super().__init__(
            f"Session {session_id} is {status} ({reason}) and takes no more work. "
            "Start a new session with start_session; its records stay readable with get_session."
        )


class TaskNotFound(BrowserSessionsError):
    code = "TASK_NOT_FOUND"

    def __init__(self, session_id: str, task_id: str) -> None:
        super().__init__(f"Session {session_id} has no task {task_id!r}. get_session lists the session's taskIds.")


class BrowserUnavailable(BrowserSessionsError):
    code = "INSTANCE_UNAVAILABLE"


class SessionLimitReached(BrowserSessionsError):
    code = "SESSION_LIMIT_REACHED"


class SessionBusy(BrowserSessionsError):
    code = "TASK_RUNNING"


class NotSupported(BrowserSessionsError):
    code = "NOT_SUPPORTED"


class ProfileNotFound(BrowserSessionsError):
    code = "PROFILE_NOT_FOUND"

    def __init__(self, profile_id: str) -> None:
        self.profile_id = profile_id
        super().__init__(
            f"No profile with profileId {profile_id!r}. list_profiles shows your profiles; create one with "
            "create_profile (or `browser-sessions profiles create`), or start without profileId."
        )


class ProfileInUse(BrowserSessionsError):
    code = "PROFILE_IN_USE"


class RemoteServiceError(BrowserSessionsError):
    """What the remote service answered, with a code from its status: UNAUTHORIZED (401), INSUFFICIENT_BALANCE
    (402), FORBIDDEN (403), NOT_FOUND (404), RATE_LIMIT_EXCEEDED (429), REMOTE_ERROR (5xx), REMOTE_UNREACHABLE
    (no connection), OUTCOME_UNKNOWN (no answer to a request that creates something, which is therefore not
    resent)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TaskFailure(BrowserSessionsError):
    code = "TASK_FAILED"


class TaskTimeout(TaskFailure):
    code = "TASK_TIMEOUT"


class TaskStopped(TaskFailure):
    code = "TASK_STOPPED"


class DomainBlocked(TaskFailure):
    code = "DOMAIN_BLOCKED"

    def __init__(self, host: str, rule: str) -> None:
        where = "this task's avoidDomains" if rule.startswith("avoidDomains") else "the server's blocked hosts"
        super().__init__(f"Blocked: {host} is in {where} ({rule}). Choose a page on another domain.")
        self.host = host


class PrivateAddressBlocked(TaskFailure):
    """The egress proxy refused a top-level navigation because of where the host resolved to."""

    code = "PRIVATE_ADDRESS_BLOCKED"

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"Blocked: {host} is not a public address ({reason}), and this server keeps sessions off private, "
            "loopback, link-local and cloud-metadata addresses. Choose a public page. (The operator can allow "
            "a host with BROWSER_SESSIONS_EGRESS_ALLOW_HOSTS, or private addresses with "
            "BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK=true.)"
        )
        self.host = host


class FileUrlBlocked(TaskFailure):
    code = "FILE_URL_BLOCKED"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"Blocked: {url} is a local file, and this server does not open file:// URLs. Load an http(s) URL "
            "like https://example.com/path instead. (The operator can allow local files with "
            "BROWSER_SESSIONS_ALLOW_FILE_URLS=true.)"
        )


class InstructionError(TaskFailure):
    code = "INVALID_TASK_DETAILS"


class ModelRequired(TaskFailure):
    code = "MODEL_REQUIRED"


class ElementNotFound(TaskFailure):
    code = "ELEMENT_NOT_FOUND"


class NavigationFailed(TaskFailure):
    code = "NAVIGATION_FAILED"


class OutputInvalid(TaskFailure):
    code = "OUTPUT_VALIDATION_FAILED"


class BrowserLost(TaskFailure):
    code = "BROWSER_LOST"


class TokenBudgetExceeded(TaskFailure):
    code = "TOKEN_BUDGET_EXCEEDED"


class StepLimitReached(TaskFailure):
    code = "STEP_LIMIT_REACHED"


def describe_validation(error: ValidationError) -> str:
    """One readable line per problem, without the offending input (it may hold secrets)."""
    parts: list[str] = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in item["loc"]) or "arguments"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; remove it (the tool's input schema lists the fields it takes)"
        elif item["type"] == "missing":
            message = "required; add it"
        parts.append(f"{where}: {message}")
    return "Invalid arguments: " + "; ".join(parts) + ". Fix them and call again."
