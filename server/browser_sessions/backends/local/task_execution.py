"""Running one task of a session from start to a settled record: planner choice, startingPoint,
maxDuration (a cancel scope whose deadline pauses do not consume), output building, redaction."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from browser_sessions.backends.local.driver import Driver
from browser_sessions.backends.local.outputs import build_output
from browser_sessions.backends.local.planners.instruction_runner import run_lines
from browser_sessions.backends.local.planners.instructions import parse
from browser_sessions.backends.local.tasks import TaskRecord
from browser_sessions.errors import TaskFailure, TaskTimeout

if TYPE_CHECKING:
    from browser_sessions.backends.local.session import LocalSession

logger = logging.getLogger("browser_sessions.tasks")


async def execute_task(session: LocalSession, task: TaskRecord) -> None:
    """Run ``task`` on ``session``; always leaves the task settled (completed or failed)."""
    spec = task.spec
    session.policy.extend(spec.avoid_domains)
    session.vault.add(spec.secrets)
    run = Driver(
        session,
        task,
        navigation_timeout=session.settings.navigation_timeout,
        step_timeout=session.settings.step_timeout,
    )
    failure: TaskFailure | None = None
    task.begin("instructions")
    with anyio.CancelScope(deadline=anyio.current_time() + spec.max_duration / 1000) as scope:
        task.scope = scope
        try:
            lines = parse(spec.task_details)
            if spec.starting_point:
                await run.goto(spec.starting_point)
                await run.step(f"go to {spec.starting_point} (startingPoint)")
            extracts = await run_lines(lines, run)
            page = await run.page()
            summary = f"Done: {len(task.steps)} steps. Now at {session.browser.title or '(untitled)'} ({page.url})."
            output = build_output(extracts, spec.output_type, spec.output_schema, summary)
            task.complete(session.redact(output))
        except TaskFailure as exc:
            failure = exc
        except Exception:  # a bug must fail this task, not the session or the server
            logger.exception("task %s of session %s crashed", task.task_id, session.id)
            failure = TaskFailure("The task hit an internal error (logged on the server); the session is still usable.")
    task.scope = None
    if task.settled:
        return
    failure = task.stop_reason or failure
    if failure is None:
        failure = TaskTimeout(
            f"The task ran past its maxDuration of {spec.max_duration} ms after {len(task.steps)} steps. "
            "The session is still usable: send a shorter task or raise maxDuration (at most 300000)."
        )
    task.fail(failure.code, session.redact(failure.message))
