"""The lifecycle tools, one declaration each, gathered in ``TOOLS`` and registered in a loop (registry.py).

Handlers return result models; errors are ``BrowserSessionsError``s; replies.py renders the text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations

from browser_sessions.backends.base import Backend, Caller
from browser_sessions.backends.router import BackendRouter
from browser_sessions.mcp.app_state import app, sessions
from browser_sessions.mcp.guardrails import ask_user, can_elicit, resumed_task
from browser_sessions.mcp.http_boundary import request_owner
from browser_sessions.mcp.params import (
    AvoidDomains,
    BackendChoice,
    ControlAction,
    GuardrailResponse,
    IncludeEnded,
    InitialTask,
    MaxDuration,
    MaxInputTokens,
    MaxOutputTokens,
    Mode,
    OutputSchema,
    OutputTypeParam,
    ProfileId,
    Resume,
    Secrets,
    SessionId,
    StartingPoint,
    TaskDetails,
    TaskId,
    TerminateOnCompletion,
    WaitSeconds,
    from_arguments,
)
from browser_sessions.mcp.registry import ToolDeclaration
from browser_sessions.mcp.sampling import ClientSampling, can_sample
from browser_sessions.models import (
    SessionConfig,
    SessionList,
    SessionStarted,
    SessionState,
    Step,
    TaskResult,
    TaskSpec,
)


def _caller(ctx: Context[Any]) -> Caller:
    """The calling client: its owner (from its access token over HTTP, see http_boundary.py) and its
    model, where its connection can sample (see sampling.py)."""
    session = ctx.request_context.session
    owner = request_owner()
    if not can_sample(session):
        return Caller(owner=owner)
    return Caller(sampling=ClientSampling(session, timeout=app(ctx).settings.model_timeout), owner=owner)


async def _wait(ctx: Context[Any], backend: Backend, task: TaskResult, wait_seconds: float) -> TaskResult:
    """Wait for ``task`` up to ``wait_seconds``, reporting each step as MCP progress. When the task asks a
    question and the client can elicit, the user is asked directly (guardrails.py) and the wait goes on."""

    reported = 0

    async def progress(step: Step) -> None:
        nonlocal reported
        if step.n > reported:  # each wait below reports from the first step again
            reported = step.n
            await ctx.report_progress(step.n, None, f"step {step.n}: {step.action}")

    deadline = anyio.current_time() + wait_seconds
    while True:
        remaining = max(0.0, deadline - anyio.current_time())
        task = await backend.wait_task(task.session_id, task.task_id, remaining, progress)
        if task.status != "guardrail_trigger" or remaining <= 0 or not can_elicit(ctx):
            return task
        answered = await ask_user(ctx, backend, task)
        if answered is None:
            return task
        task = answered


TaskSender = Callable[[BackendRouter], Awaitable[TaskResult]]


async def _send_and_wait(ctx: Context[Any], send: TaskSender, wait_seconds: float) -> TaskResult:
    """``send`` the task and wait for it; on the retry of a call that asked the user the task's question
    (2026-07-28), apply the answer instead of sending again."""
    backend = sessions(ctx)
    task = await resumed_task(ctx, backend) or await send(backend)
    return await _wait(ctx, backend, task, wait_seconds)


async def start_session(
    ctx: Context[Any],
    profileId: ProfileId = None,
    mode: Mode = "default",
    initialTask: InitialTask = None,
    backend: BackendChoice = None,
    waitSeconds: WaitSeconds = 50,
) -> SessionStarted:
    """Start an isolated browser session (its own cookies, storage and cache). With initialTask, run it
    and wait up to waitSeconds for its result; otherwise the session waits for send_task."""
    router = sessions(ctx)
    task = await resumed_task(ctx, router)
    if task is None:
        config = SessionConfig(profile_id=profileId, mode=mode, initial_task=initialTask)
        started = await router.start_session(config, _caller(ctx), backend)
        if started.task is None:
            return started
        task = started.task
    task = await _wait(ctx, router, task, waitSeconds)
    state = await router.get_session(task.session_id)
    return SessionStarted(**state.model_dump(), task=task)


async def run_task(
    ctx: Context[Any],
    taskDetails: TaskDetails,
    startingPoint: StartingPoint = None,
    maxDuration: MaxDuration = 300_000,
    maxInputTokens: MaxInputTokens = 100_000,
    maxOutputTokens: MaxOutputTokens = 100_000,
    avoidDomains: AvoidDomains = [],  # noqa: B006 - pydantic copies defaults
    secrets: Secrets = [],  # noqa: B006
    outputType: OutputTypeParam = "text",
    outputSchema: OutputSchema = None,
    profileId: ProfileId = None,
    backend: BackendChoice = None,
    waitSeconds: WaitSeconds = 50,
) -> TaskResult:
    """Run one task in a fresh session that ends when the task ends; returns the result, or the running
    state after waitSeconds (then poll get_task or subscribe to the task's resource)."""
    spec = from_arguments(TaskSpec, {**locals(), "terminateOnCompletion": True})
    return await _send_and_wait(
        ctx, lambda router: router.run_task(spec, profileId, _caller(ctx), backend), waitSeconds
    )


async def send_task(
    ctx: Context[Any],
    sessionId: SessionId,
    taskDetails: TaskDetails,
    startingPoint: StartingPoint = None,
    maxDuration: MaxDuration = 300_000,
    maxInputTokens: MaxInputTokens = 100_000,
    maxOutputTokens: MaxOutputTokens = 100_000,
    avoidDomains: AvoidDomains = [],  # noqa: B006
    secrets: Secrets = [],  # noqa: B006
    outputType: OutputTypeParam = "text",
    outputSchema: OutputSchema = None,
    terminateOnCompletion: TerminateOnCompletion = False,
    waitSeconds: WaitSeconds = 50,
) -> TaskResult:
    """Queue a task in a live session (tasks run one at a time, in order) and wait up to waitSeconds."""
    spec = from_arguments(TaskSpec, locals())
    return await _send_and_wait(ctx, lambda router: router.send_task(sessionId, spec, _caller(ctx)), waitSeconds)


async def get_task(ctx: Context[Any], sessionId: SessionId, taskId: TaskId, waitSeconds: WaitSeconds = 0) -> TaskResult:
    """A task's status, steps and output; waits up to waitSeconds for it to finish."""
    return await _send_and_wait(ctx, lambda router: router.get_task(sessionId, taskId), waitSeconds)


async def answer_guardrail(
    ctx: Context[Any],
    sessionId: SessionId,
    taskId: TaskId,
    response: GuardrailResponse = "",
    resume: Resume = True,
    waitSeconds: WaitSeconds = 50,
) -> TaskResult:
    """Answer the question of a task in status guardrail_trigger (its result's guardrail field): it goes on
    with your response, or stops with resume=false. Then waits up to waitSeconds like get_task."""
    return await _send_and_wait(
        ctx, lambda router: router.answer_guardrail(sessionId, taskId, response, resume), waitSeconds
    )


async def get_session(ctx: Context[Any], sessionId: SessionId) -> SessionState:
    """A session's status with its transitions (timestamped, with reasons), tasks, page and usage."""
    return await sessions(ctx).get_session(sessionId)


async def list_sessions(ctx: Context[Any], includeEnded: IncludeEnded = False) -> SessionList:
    """The live sessions of this server (and ended ones with includeEnded, also from before a restart)."""
    return SessionList(sessions=await sessions(ctx).list_sessions(includeEnded))


async def terminate(ctx: Context[Any], sessionId: SessionId) -> SessionState:
    """End a session now: its running and queued tasks stop, the browser context closes, secrets are
    dropped. Returns the final state and usage."""
    return await sessions(ctx).terminate(sessionId)


async def control_session(ctx: Context[Any], sessionId: SessionId, action: ControlAction) -> SessionState:
    """pause: the running task waits after its current step (paused time does not count against
    maxDuration); resume: it continues; stop: end the current task only, the session stays."""
    return await sessions(ctx).control(sessionId, action)


_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_ACT = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)

TOOLS: list[ToolDeclaration] = [
    ToolDeclaration(start_session, "Start a browser session", _ACT),
    ToolDeclaration(run_task, "Run a one-shot browser task", _ACT),
    ToolDeclaration(send_task, "Send a task to a session", _ACT),
    ToolDeclaration(get_task, "Get a task's result", _READ),
    ToolDeclaration(answer_guardrail, "Answer a task's question", _ACT),
    ToolDeclaration(get_session, "Get a session's state", _READ),
    ToolDeclaration(list_sessions, "List sessions", _READ),
    ToolDeclaration(
        terminate,
        "Terminate a session",
        ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False),
    ),
    ToolDeclaration(
        control_session,
        "Pause, resume or stop a session's task",
        ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
    ),
]
