"""Running one task of a session from start to a settled record: planner choice, startingPoint,
maxDuration (a cancel scope whose deadline pauses and guardrail waits do not consume), output building,
redaction."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from browser_sessions.backends.local.driver import Driver
from browser_sessions.backends.local.outputs import build_output
from browser_sessions.backends.local.planners.agent import AgentRun
from browser_sessions.backends.local.planners.instruction_runner import run_lines
from browser_sessions.backends.local.planners.instructions import Line, parse
from browser_sessions.backends.local.planners.models.base import ChatModel
from browser_sessions.backends.tasks import TaskRecord
from browser_sessions.errors import BrowserLost, InstructionError, ModelRequired, TaskFailure, TaskTimeout

if TYPE_CHECKING:
    from browser_sessions.backends.local.session import LocalSession

logger = logging.getLogger("browser_sessions.tasks")


def choose_planner(task_details: str, model: ChatModel | None) -> tuple[list[Line], ChatModel | None]:
    """Instruction lines run with no model; anything else needs ``model`` (else the parser's error)."""
    try:
        return parse(task_details), None
    except (ModelRequired, InstructionError):
        if model is None:
            raise
        return [], model


LOSS_GRACE_SECONDS = 2.0


async def _browser_lost_meanwhile(session: LocalSession) -> bool:
    """Whether the session's browser went away under the task. A step's error ("target closed") can reach the
    task before the connection's loss does (a browser endpoint's server dies with its browser): when a tab
    closed under the task, wait a little (bounded) for the connection to tell."""
    context = session.browser.context
    browser = context.browser if context is not None else None
    if browser is None:
        return False
    if browser.is_connected() and any(page.is_closed() for page in session.browser.pages):
        gone = anyio.Event()

        def disconnected(_: object) -> None:
            gone.set()

        browser.on("disconnected", disconnected)
        with anyio.move_on_after(LOSS_GRACE_SECONDS):
            await gone.wait()
        browser.remove_listener("disconnected", disconnected)
    return not browser.is_connected()


async def execute_task(session: LocalSession, task: TaskRecord) -> None:
    """Run ``task`` on ``session``; always leaves the task finished (completed or failed)."""
    spec = task.spec
    session.policy.extend(spec.avoid_domains)
    session.vault.add(spec.secrets)
    run = Driver(
        session,
        task,
        navigation_timeout=session.settings.navigation_timeout,
        step_timeout=session.settings.step_timeout,
        allow_file_urls=session.settings.allow_file_urls,
    )
    failure: TaskFailure | None = None
    agent: AgentRun | None = None
    with anyio.CancelScope(deadline=anyio.current_time() + spec.max_duration / 1000) as scope:
        task.scope = scope
        try:
            lines, model = choose_planner(spec.task_details, session.models.pick(task.sampling))
            task.begin("instructions" if model is None else "model", None if model is None else model.name)
            if spec.starting_point:
                await run.goto(spec.starting_point)
                await run.step(f"go to {spec.starting_point} (startingPoint)")
            if model is None:
                extracts = await run_lines(lines, run)
                page = await run.page()
                title = session.browser.title or "(untitled)"
                summary = f"Done: {len(task.steps)} steps. Now at {title} ({page.url})."
                output = build_output(extracts, spec.output_type, spec.output_schema, summary)
            else:
                agent = AgentRun(session, task, run, model)
                output = await agent.run()
            task.complete(session.redact(output))
        except TaskFailure as exc:
            failure = exc
        except Exception:  # a bug must fail this task, not the session or the server
            logger.exception("task %s of session %s crashed", task.task_id, session.id)
            failure = TaskFailure("The task hit an internal error (logged on the server); the session is still usable.")
    task.scope = None
    if task.finished:
        return
    if failure is not None and task.stop_reason is None and await _browser_lost_meanwhile(session):
        failure = BrowserLost(f"The browser was lost while this task ran ({failure.message})")
    if task.finished:  # the engine orphaned the session meanwhile, which failed the task
        return
    failure = task.stop_reason or failure
    if failure is None:
        failure = TaskTimeout(
            f"The task ran past its maxDuration of {spec.max_duration} ms after {len(task.steps)} steps. "
            "The session is still usable: send a shorter task or raise maxDuration (at most 300000)."
        )
    partial = agent.partial() if agent is not None else None
    task.fail(failure.code, session.redact(failure.message), partial=session.redact(partial))
