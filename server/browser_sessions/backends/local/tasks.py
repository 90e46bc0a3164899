"""A task's live record inside the local engine, and its wire view (``TaskResult``).

The record is mutable and owned by its session's supervisor; everything that leaves it goes through
``to_result``, and every text in it was redacted before it was stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from browser_sessions.errors import TaskFailure
from browser_sessions.models import Planner, Step, TaskError, TaskResult, TaskSpec, TaskStatus, TaskUsage

SETTLED: frozenset[str] = frozenset({"task_completed", "failed", "guardrail_trigger"})


def now() -> datetime:
    return datetime.now(UTC)


def task_uri(session_id: str, task_id: str) -> str:
    return f"session://{session_id}/tasks/{task_id}"


@dataclass(eq=False)
class TaskRecord:
    session_id: str
    task_id: str
    spec: TaskSpec
    on_change: Callable[[TaskRecord], None]
    created_at: datetime = field(default_factory=now)
    status: TaskStatus = "started"
    planner: Planner | None = None
    steps: list[Step] = field(default_factory=list)
    output: Any = None
    error: TaskError | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    active_seconds: float = 0.0
    stop_reason: TaskFailure | None = None
    scope: anyio.CancelScope | None = None
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _active_since: float | None = None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    def wait_changed(self) -> anyio.Event:
        """An event set at the next change; take it before checking state, then wait on it."""
        return self._changed

    def touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
        self.on_change(self)

    def begin(self, planner: Planner | None) -> None:
        self.status = "running"
        self.planner = planner
        self.started_at = now()
        self.resume_clock()
        self.touch()

    def pause_clock(self) -> None:
        if self._active_since is not None:
            self.active_seconds += time.monotonic() - self._active_since
            self._active_since = None

    def resume_clock(self) -> None:
        if self._active_since is None:
            self._active_since = time.monotonic()

    def add_step(self, action: str, url: str | None) -> Step:
        step = Step(n=len(self.steps) + 1, at=now(), action=action, url=url)
        self.steps.append(step)
        self.touch()
        return step

    def complete(self, output: Any) -> None:
        self.pause_clock()
        self.status = "task_completed"
        self.output = output
        self.ended_at = now()
        self.touch()

    def fail(self, code: str, message: str) -> None:
        self.pause_clock()
        self.status = "failed"
        self.error = TaskError(code=code, message=message)
        self.ended_at = now()
        self.touch()

    def stop(self, reason: TaskFailure) -> None:
        """Ask a running task to end (its runner reports ``reason``); a queued one fails at once."""
        if self.settled:
            return
        self.stop_reason = reason
        if self.scope is not None:
            self.scope.cancel()
        else:
            self.fail(reason.code, reason.message)

    def to_result(self, queue_position: int | None = None) -> TaskResult:
        since = self._active_since
        active = self.active_seconds + (time.monotonic() - since if since is not None else 0.0)
        return TaskResult(
            session_id=self.session_id,
            task_id=self.task_id,
            status=self.status,
            planner=self.planner,
            output_type=self.spec.output_type,
            output=self.output,
            error=self.error,
            usage=TaskUsage(duration_ms=int(active * 1000), steps=len(self.steps)),
            steps=list(self.steps),
            queue_position=queue_position,
            created_at=self.created_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            resource_uri=task_uri(self.session_id, self.task_id),
            output_uri=f"{task_uri(self.session_id, self.task_id)}/output" if self.status == "task_completed" else None,
        )
