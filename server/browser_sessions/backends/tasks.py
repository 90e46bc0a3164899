"""A task's live record inside a backend, and its wire view (``TaskResult``): the local engine's tasks, and
(with a few fields more, ``remote/records.py``) the tasks this server follows on the remote service.

The record is mutable and owned by its session's supervisor; everything that leaves it goes through
``to_result``, and every text in it was redacted before it was stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio

from browser_sessions.backends.base import StepListener
from browser_sessions.backends.local.planners.models.base import ChatModel
from browser_sessions.errors import InvalidInput, TaskFailure
from browser_sessions.models import Planner, Replay, Step, TaskError, TaskResult, TaskSpec, TaskStatus, TaskUsage

FINISHED: frozenset[str] = frozenset({"task_completed", "failed"})


def now() -> datetime:
    return datetime.now(UTC)


def task_uri(session_id: str, task_id: str) -> str:
    return f"session://{session_id}/tasks/{task_id}"


@dataclass
class ModelUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    step_limit: int | None = None


@dataclass(frozen=True)
class GuardrailAnswer:
    resume: bool
    response: str


@dataclass(eq=False)
class TaskRecord:
    session_id: str
    task_id: str
    spec: TaskSpec
    on_change: Callable[[TaskRecord], None]
    created_at: datetime = field(default_factory=now)
    status: TaskStatus = "started"
    planner: Planner | None = None
    model: str | None = None
    usage: ModelUsage = field(default_factory=ModelUsage)
    steps: list[Step] = field(default_factory=list)
    output: Any = None
    error: TaskError | None = None
    guardrail: str | None = None
    replay: Replay | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    active_seconds: float = 0.0
    sampling: ChatModel | None = None  # the model of the client that sent the task, if it can sample
    on_finish: Callable[[TaskRecord], None] | None = None  # records the finished task before waiters wake
    stop_reason: TaskFailure | None = None
    scope: anyio.CancelScope | None = None
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _active_since: float | None = None
    _answer: GuardrailAnswer | None = None
    _answered: anyio.Event = field(default_factory=anyio.Event)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def settled(self) -> bool:
        """Finished, or waiting for a human's answer: where a caller waiting for the task gets it back."""
        return self.finished or self.status == "guardrail_trigger"

    def wait_changed(self) -> anyio.Event:
        """An event set at the next change; take it before checking state, then wait on it."""
        return self._changed

    def touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        self.on_change(self)

    def begin(self, planner: Planner | None = None, model: str | None = None) -> None:
        self.status = "running"
        self.planner = planner
        self.model = model
        self.started_at = self.started_at or now()
        self.resume_clock()
        self.touch()

    def pause_clock(self) -> None:
        if self._active_since is not None:
            self.active_seconds += time.monotonic() - self._active_since
            self._active_since = None

    def resume_clock(self) -> None:
        """The clock runs while the task works: not once it is finished, nor while it waits for an answer."""
        if self._active_since is None and not self.finished and self.status != "guardrail_trigger":
            self._active_since = time.monotonic()

    def active_now(self) -> float:
        """Seconds the task has worked so far."""
        since = self._active_since
        return self.active_seconds + (time.monotonic() - since if since is not None else 0.0)

    def add_step(self, action: str, url: str | None) -> Step:
        step = Step(n=len(self.steps) + 1, at=now(), action=action, url=url)
        self.steps.append(step)
        self.touch()
        return step

    # ----- guardrails: the planner asks a human and waits for answer_guardrail -----

    def ask(self, question: str) -> None:
        self.pause_clock()
        self.status = "guardrail_trigger"
        self.guardrail = question
        self._answer = None
        self._answered = anyio.Event()
        self.touch()

    def answer(self, response: str, resume: bool) -> None:
        self.check_answerable(response, resume)
        self.deliver(response, resume)

    def check_answerable(self, response: str, resume: bool) -> None:
        if self.status != "guardrail_trigger":
            raise InvalidInput(
                f"Task {self.task_id} is not waiting for an answer (its status is {self.status}); "
                "answer_guardrail applies while a task's status is guardrail_trigger."
            )
        if resume and not response.strip():
            raise InvalidInput("response is empty; write the answer to the task's question, or pass resume=false.")

    def deliver(self, response: str, resume: bool) -> None:
        """Wake the runner waiting in ``wait_answer``."""
        self._answer = GuardrailAnswer(resume, response)
        self._answered.set()

    async def wait_answer(self) -> GuardrailAnswer:
        await self._answered.wait()
        assert self._answer is not None
        return self._answer

    def answered(self) -> None:
        """Back to running after an answer."""
        self.status = "running"
        self.guardrail = None
        self.resume_clock()
        self.touch()

    def complete(self, output: Any) -> None:
        self.pause_clock()
        self.status = "task_completed"
        self.output = output
        self.ended_at = now()
        self._finished()

    def fail(self, code: str, message: str, partial: Any = None) -> None:
        self.pause_clock()
        self.status = "failed"
        self.guardrail = None
        self.output = partial
        self.error = TaskError(code=code, message=message)
        self.ended_at = now()
        self._finished()

    def _finished(self) -> None:
        """Record the outcome (``on_finish``, synchronous), then wake whoever waits: an outcome reported is
        an outcome recorded, even if the process dies right after."""
        if self.on_finish is not None:
            self.on_finish(self)
        self.touch()

    def stop(self, reason: TaskFailure) -> None:
        """Ask a running task to end (its runner reports ``reason``); a queued one fails at once."""
        if self.finished:
            return
        self.stop_reason = reason
        if self.status == "guardrail_trigger":  # the question is void: waiters now wait for the failure
            self.answered()
        if self.scope is not None:
            self.scope.cancel()
        else:
            self.fail(reason.code, reason.message)

    def to_result(self, queue_position: int | None = None) -> TaskResult:
        return TaskResult(
            session_id=self.session_id,
            task_id=self.task_id,
            status=self.status,
            planner=self.planner,
            model=self.model,
            output_type=self.spec.output_type,
            output=self.output,
            error=self.error,
            guardrail=self.guardrail,
            replay=self.replay,
            usage=TaskUsage(
                duration_ms=int(self.active_now() * 1000),
                steps=len(self.steps),
                input_tokens=self.usage.input_tokens,
                output_tokens=self.usage.output_tokens,
                tokens_estimated=self.usage.estimated,
                model_calls=self.usage.calls,
                step_limit=self.usage.step_limit,
            ),
            steps=list(self.steps),
            queue_position=queue_position,
            created_at=self.created_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            resource_uri=task_uri(self.session_id, self.task_id),
            output_uri=f"{task_uri(self.session_id, self.task_id)}/output" if self.status == "task_completed" else None,
        )


class TaskHolder(Protocol):
    """The session side of waiting for a task."""

    def queue_position(self, task: TaskRecord) -> int | None: ...

    async def wait_ended(self) -> None: ...


async def wait_for(
    task: TaskRecord, holder: TaskHolder, wait_seconds: float, on_step: StepListener | None
) -> TaskResult:
    """Wait up to ``wait_seconds`` for ``task`` to settle, calling ``on_step`` for each of its steps (from the
    first) meanwhile; return its state either way. A finished task that ends its session
    (terminateOnCompletion) is reported together with that end."""
    reported = len(task.steps) if on_step is None else 0
    deadline = time.monotonic() + wait_seconds
    while True:
        changed = task.wait_changed()
        if on_step is not None:
            for step in task.steps[reported:]:
                await on_step(step)
            reported = len(task.steps)
        remaining = deadline - time.monotonic()
        if task.finished and task.spec.terminate_on_completion and wait_seconds > 0:
            with anyio.move_on_after(10):
                await holder.wait_ended()
        if task.settled or remaining <= 0:
            return task.to_result(holder.queue_position(task))
        with anyio.move_on_after(remaining):
            await changed.wait()
