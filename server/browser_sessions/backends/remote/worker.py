"""Following one task on the service, from sending it to a finished record: the ``newTask`` message (or
run-task's first answer), polls of ``GET /task/{sessionId}/{taskId}`` every ``remote_poll_interval`` s,
guardrail questions (the caller's answer goes to the service in ``answer_guardrail``; polling then goes on
with the same taskId), the output per outputType, and a give-up deadline of maxDuration plus
``POLL_SLACK`` of active time in case the service never reports an end.

A ``newTask`` whose outcome is unknown (no usable answer) is not resent: the task fails with
``OUTCOME_UNKNOWN``. Polls that fail for a passing reason are simply tried again at the next interval.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import anyio

from browser_sessions.backends.output_checks import check_csv, check_json
from browser_sessions.backends.remote.client import RemoteClient, RemoteSessionGone
from browser_sessions.backends.remote.dialects import RemoteTask, new_task_message, read_task_body
from browser_sessions.backends.remote.records import RemoteTaskRecord
from browser_sessions.errors import (
    BrowserSessionsError,
    OutputInvalid,
    RemoteServiceError,
    TaskFailure,
    TaskStopped,
    TaskTimeout,
)
from browser_sessions.models import TaskSpec

if TYPE_CHECKING:
    from browser_sessions.backends.remote.session import RemoteSession

logger = logging.getLogger("browser_sessions.remote")

POLL_SLACK = 60.0  # seconds past maxDuration we keep polling before giving up on the service's report
GUARDRAIL_ECHO_SECONDS = 10.0  # a poll this soon after an answer may still show the question answered
PASSING = frozenset({"REMOTE_ERROR", "REMOTE_UNREACHABLE", "RATE_LIMIT_EXCEEDED", "INSTANCE_UNAVAILABLE"})


async def drive(session: RemoteSession, task: RemoteTaskRecord) -> None:
    """Run ``task`` on the service; always leaves it finished (completed or failed)."""
    failure: BrowserSessionsError | None = None
    with anyio.CancelScope() as scope:
        task.scope = scope
        try:
            answer = task.first_answer
            if answer is None:
                task.begin()
                answer = await _send(session, task)
            await _follow(session, task, answer)
        except RemoteSessionGone as exc:
            session.service_ended(f"the remote service no longer knows it: {exc.detail}")  # stops the task
            failure = exc
        except BrowserSessionsError as exc:
            failure = exc
        except Exception:  # a bug must fail this task, not the session or the server
            logger.exception("task %s of remote session %s crashed", task.task_id, session.id)
            failure = TaskFailure("The task hit an internal error (logged on the server); the session is still usable.")
    task.scope = None
    if task.finished:
        return
    reason = task.stop_reason or failure or TaskStopped("The task was stopped.")
    task.fail(reason.code, reason.message)


async def _send(session: RemoteSession, task: RemoteTaskRecord) -> RemoteTask:
    body = new_task_message(session.id, session.wire_spec(task.spec), session.dialect)
    answer = await session.client.post("/start/send-message", body, creates=True, session_id=session.id)
    session.touch()
    return read_task_body(answer)


async def _follow(session: RemoteSession, task: RemoteTaskRecord, first: RemoteTask) -> None:
    """Apply answers until the task ends here; returns with the task finished or its session ending."""
    limit = task.spec.max_duration / 1000 + POLL_SLACK
    answer: RemoteTask | None = first
    while True:
        if answer is not None:
            task.note_usage(answer)
            task.remote_id = task.remote_id or answer.task_id
            if answer.status == "completed":
                _complete(task, answer.message)
                return
            if answer.status == "failed":
                task.ended_by_service = True
                task.fail(answer.code or "TASK_FAILED", answer.error or "The remote service reported the task failed.")
                return
            if answer.status == "terminated":
                session.service_ended(f"the remote service reported it terminated (while task {task.task_id} ran)")
                return
            question = answer.question or ""
            if answer.status == "guardrail" and not task.is_echo(question, GUARDRAIL_ECHO_SECONDS):
                task.ask(question)
                reply = await session.wait_for_answer(task)
                if not reply.resume:
                    raise TaskStopped(
                        "Stopped at its question by answer_guardrail(resume=false); the session stays open."
                    )
                task.answered()
        if task.remote_id is None:
            raise RemoteServiceError(
                "REMOTE_ERROR",
                "The remote service answered without a taskId, so this task cannot be followed; its result is "
                "only on the service's dashboard.",
            )
        if task.active_now() > limit:
            await session.send_quietly("stop")
            raise TaskTimeout(
                f"The remote service did not report this task's end within its maxDuration of "
                f"{task.spec.max_duration} ms plus {POLL_SLACK:g} s; a stop was sent. The session is still usable."
            )
        await anyio.sleep(session.settings.remote_poll_interval)
        answer = await _poll(session, task.remote_id)


async def _poll(session: RemoteSession, remote_id: str) -> RemoteTask | None:
    """The task's state, or None when the service could not say this time (tried again next interval)."""
    try:
        body = await session.client.get(RemoteClient.task_path(session.id, remote_id), session_id=session.id)
    except BrowserSessionsError as exc:
        if exc.code not in PASSING:
            raise
        logger.warning("polling task %s of remote session %s: %s", remote_id, session.id, exc)
        return None
    return read_task_body(body)


def _complete(task: RemoteTaskRecord, message: str | None) -> None:
    task.ended_by_service = True
    try:
        output = task_output(task.spec, message)
    except OutputInvalid as exc:
        task.fail(exc.code, exc.message, partial=message)
        return
    task.complete(output)


def task_output(spec: TaskSpec, message: str | None) -> Any:
    """The output value from the service's ``data.message``: text as is, JSON parsed and CSV read, both
    checked against ``outputSchema`` (the service says it validates; we do not take that on trust)."""
    if spec.output_type == "text":
        return message or ""
    if not message:
        raise OutputInvalid(f"The remote service completed the task without an answer; {spec.output_type} needs one.")
    if spec.output_type == "structured_csv":
        assert isinstance(spec.output_schema, list)  # TaskSpec guarantees it for structured_csv
        return check_csv(message, spec.output_schema)
    try:
        value = json.loads(message)
    except ValueError:
        raise OutputInvalid("The remote service's answer is not JSON, as outputType structured_json needs.") from None
    assert isinstance(spec.output_schema, dict)  # TaskSpec guarantees it for structured_json
    return check_json(value, spec.output_schema, "The remote service's answer")
