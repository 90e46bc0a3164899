"""The cloud service's wire format, both ways, in one place: request bodies our remote client sends and our
``browser-sessions api`` server reads, and task results the server writes and the client reads.

Two request dialects are documented (reference/remote-api.md §0.3):

- ``initialTask`` (the default; the seed's names): ``profileId``, ``initialTask{taskDetails, startingPoint}``,
  flat ``run-task`` bodies, guardrail answers in ``taskDetails``;
- ``task`` (the newer names): ``environmentId``, ``task{prompt, startingUrl}``, ``run-task`` as
  ``{task: {...}}``, guardrail answers in ``prompt``.

The client sends one dialect (never two aliases at once); the server accepts both. Results are read
defensively: both completion shapes, both usage namings, pending stubs, guardrails and failures; unknown
fields are kept in ``raw``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from browser_sessions.models import SessionConfig, TaskResult, TaskSpec

Dialect = Literal["initialTask", "task"]
NewState = Literal["pause", "resume", "stop", "terminate"]

# our names (TaskSpec wire aliases) -> the newer dialect's, where they differ
_NEWER = {"taskDetails": "prompt", "startingPoint": "startingUrl"}
_OLDER = {new: old for old, new in _NEWER.items()}
_TASK_FIELDS = set(TaskSpec.model_fields[name].alias or name for name in TaskSpec.model_fields)


# ----- requests: what the client sends -----


def task_object(spec: TaskSpec, dialect: Dialect) -> dict[str, Any]:
    """The task's fields under the dialect's names; secrets with their values (they are sent, not shown)."""
    body = spec.model_dump(by_alias=True, exclude_none=True)
    body["secrets"] = [
        {"match": s.match, "fields": {k: v.get_secret_value() for k, v in s.fields.items()}} for s in spec.secrets
    ]
    if dialect == "task":
        body = {_NEWER.get(k, k): v for k, v in body.items()}
    return body


def start_session_body(profile_id: str | None, dialect: Dialect) -> dict[str, Any]:
    """start-session without an initial task: the documented responses carry no taskId for one, so the
    client sends the first task as a newTask message instead."""
    body: dict[str, Any] = {"mode": "default"}
    if profile_id is not None:
        body["environmentId" if dialect == "task" else "profileId"] = profile_id
    return body


def run_task_body(spec: TaskSpec, profile_id: str | None, dialect: Dialect) -> dict[str, Any]:
    if dialect == "task":
        body: dict[str, Any] = {"task": task_object(spec, dialect), "mode": "default"}
        if profile_id is not None:
            body["environmentId"] = profile_id
        return body
    body = {**task_object(spec, dialect), "mode": "default"}
    if profile_id is not None:
        body["profileId"] = profile_id
    return body


def new_task_message(session_id: str, spec: TaskSpec, dialect: Dialect) -> dict[str, Any]:
    message = {"actionType": "newTask", "newState": "start", **task_object(spec, dialect)}
    return {"sessionId": session_id, "message": message}


def state_message(session_id: str, new_state: NewState) -> dict[str, Any]:
    return {"sessionId": session_id, "message": {"actionType": "state", "newState": new_state}}


def guardrail_message(session_id: str, response: str, resume: bool, dialect: Dialect) -> dict[str, Any]:
    text_field = "prompt" if dialect == "task" else "taskDetails"
    message = {"actionType": "guardrail", text_field: response, "newState": "resume" if resume else "stop"}
    return {"sessionId": session_id, "message": message}


# ----- requests: what the server reads (either dialect) -----


def read_task(obj: dict[str, Any]) -> TaskSpec:
    """A task object in either dialect as our ``TaskSpec``; fields the service documents but we do not
    implement (files, webhook, policyId, proxy...) are ignored; pydantic errors name bad ones."""
    fields = {_OLDER.get(k, k): v for k, v in obj.items()}
    return TaskSpec.model_validate({k: v for k, v in fields.items() if k in _TASK_FIELDS})


def read_start_session(body: dict[str, Any]) -> SessionConfig:
    task = body.get("initialTask", body.get("task"))
    if task is None and ("taskDetails" in body or "prompt" in body):  # the earliest, flat bodies
        task = {k: v for k, v in body.items() if k not in ("mode", "profileId", "environmentId")}
    profile = body.get("profileId", body.get("environmentId"))
    return SessionConfig(
        profile_id=profile,
        mode=body.get("mode") or "default",
        initial_task=read_task(task) if isinstance(task, dict) else None,
    )


def read_run_task(body: dict[str, Any]) -> tuple[TaskSpec, str | None]:
    task = _object(body.get("task")) or body
    profile = body.get("profileId", body.get("environmentId"))
    return read_task(task), profile if isinstance(profile, str) else None


def guardrail_text(message: dict[str, Any]) -> str:
    return str(message.get("prompt", message.get("taskDetails")) or "")


# ----- results: what the server writes -----


def _usage_body(result: TaskResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "completion_time": usage.duration_ms / 1000,
        "cost": 0.0,
    }


def _message_text(result: TaskResult) -> str:
    if isinstance(result.output, str):
        return result.output
    return json.dumps(result.output)


def task_body(result: TaskResult, poll_url: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for ``result`` (inline answers and ``GET /task`` alike)."""
    ids = {"sessionId": result.session_id, "taskId": result.task_id}
    if result.status == "task_completed":
        data = {"message": _message_text(result), "files": [], "network": []}
        ended = result.ended_at.isoformat().replace("+00:00", "Z") if result.ended_at else None
        body = {"success": True, **ids, "type": "task_completed", "data": data, "usage": _usage_body(result)}
        return 200, {**body, "completedAt": ended}
    if result.status == "guardrail_trigger":
        data = {"type": "human_input_needed", "value": result.guardrail or ""}
        return 200, {"success": True, **ids, "type": "guardrail_trigger", "data": data}
    if result.status == "failed":
        error = result.error
        body = {"success": False, **ids, "status": "failed", "usage": _usage_body(result)}
        return 200, {**body, "error": error.message if error else "failed", "code": error.code if error else None}
    return 200, {
        "success": True,
        **ids,
        "status": "pending" if result.status == "started" else "running",
        "pending": True,
        "pollUrl": poll_url,
        "usage": _usage_body(result),
        "message": "Task still running. Poll GET /task/:sessionId/:taskId for result.",
    }


# ----- results: what the client reads -----

RemoteStatus = Literal["running", "completed", "guardrail", "failed", "terminated"]


@dataclass(frozen=True)
class RemoteTask:
    """A task as the service reported it, normalised (§5.6 of the reference)."""

    status: RemoteStatus
    task_id: str | None
    message: str | None = None  # data.message: the answer (JSON or CSV as text for structured outputs)
    question: str | None = None  # guardrail data.value
    error: str | None = None
    code: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    poll_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _number(*values: Any) -> int:
    return next((int(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)), 0)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def read_task_body(body: dict[str, Any]) -> RemoteTask:
    """Normalise any documented task shape: inline completion (top-level or under ``result``), pending
    stubs, running polls, guardrails, failures, terminated sessions."""
    inner = _object(body.get("result")) or body
    data = _object(inner.get("data"))
    usage = _object(inner.get("usage")) or _object(body.get("usage")) or _object(data.get("usage"))
    task_id = body.get("taskId") or inner.get("taskId")

    def task(status: RemoteStatus, **details: Any) -> RemoteTask:
        return RemoteTask(
            status=status,
            task_id=str(task_id) if task_id else None,
            input_tokens=_number(usage.get("prompt_tokens"), usage.get("inputTokens"), data.get("prompt_tokens")),
            output_tokens=_number(
                usage.get("completion_tokens"), usage.get("outputTokens"), data.get("completion_tokens")
            ),
            raw=body,
            **details,
        )

    kind = inner.get("type") or body.get("type")
    status = body.get("status")
    if kind == "task_completed":
        message = data.get("message")
        return task(
            "completed", message=message if isinstance(message, str) or message is None else json.dumps(message)
        )
    if kind == "guardrail_trigger":
        return task("guardrail", question=str(data.get("value") or ""))
    if status == "failed" or kind == "failed" or body.get("success") is False:
        error = body.get("error") or inner.get("error") or body.get("message")
        return task("failed", error=str(error or "the task failed"), code=body.get("code") or inner.get("code"))
    if status == "terminated":
        return task("terminated", error="the session was terminated")
    return task("running", poll_url=body.get("pollUrl"))


def error_message(body: Any, status: int) -> str:
    """The service's error text from either error shape."""
    if isinstance(body, dict):
        text = body.get("message") or body.get("error")
        if text:
            return str(text)
    return f"HTTP {status}"
