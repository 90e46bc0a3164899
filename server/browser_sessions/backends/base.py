"""The Backend protocol: the one seam between the MCP surface and where sessions live.

Both backends implement it directly; the MCP layer never knows which one holds a session beyond the
``backend`` field of its state. Every method that takes a ``session_id`` raises ``SessionNotFound`` for an
unknown one, so tool handlers never look sessions up themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from browser_sessions.models import BackendName, SessionConfig, SessionStarted, SessionState, Step, TaskResult, TaskSpec
from browser_sessions.step_models import ActRequest, ActResult, SnapshotFormat, SnapshotResult

if TYPE_CHECKING:
    from browser_sessions.backends.local.planners.models.base import ChatModel

ControlAction = Literal["pause", "resume", "stop"]


LOCAL_OWNER = "local"
"""The owner of every session on stdio and on HTTP without tokens: the one local user."""


@dataclass(frozen=True)
class Caller:
    """What a backend may use of the client that sends work: its own model, where its connection can
    sample (free-text tasks fall back to it when the server has no model configured), and the owner the
    session is created for (a stable id derived from the caller's credential, never the credential itself;
    ``BackendRouter`` keeps sessions apart by it)."""

    sampling: ChatModel | None = None
    owner: str = LOCAL_OWNER


NO_CALLER = Caller()


@dataclass(frozen=True)
class SessionChanged:
    session_id: str


@dataclass(frozen=True)
class TaskChanged:
    session_id: str
    task_id: str


@dataclass(frozen=True)
class SessionsChanged:
    """A session was created or ended: the list of live sessions differs."""


BackendEvent = SessionChanged | TaskChanged | SessionsChanged
EventSink = Callable[[BackendEvent], None]
StepListener = Callable[[Step], Awaitable[None]]


class Backend(Protocol):
    name: BackendName

    def subscribe(self, listener: EventSink) -> None:
        """Call ``listener`` (synchronously, never blocking) for every change of a session or task."""
        ...

    async def start_session(self, config: SessionConfig, caller: Caller = NO_CALLER) -> SessionStarted:
        """Create a session and return once it is Active (or Failed); queue ``initialTask`` if it has text."""
        ...

    async def run_task(self, spec: TaskSpec, profile_id: str | None, caller: Caller = NO_CALLER) -> TaskResult:
        """A one-shot session for ``spec``; it ends when the task ends. Returns the queued task."""
        ...

    async def send_task(self, session_id: str, spec: TaskSpec, caller: Caller = NO_CALLER) -> TaskResult:
        """Queue a task; tasks of a session run one at a time in the order sent."""
        ...

    async def answer_guardrail(self, session_id: str, task_id: str, response: str, resume: bool) -> TaskResult:
        """Answer the question of a task in ``guardrail_trigger``: it continues with ``response``, or stops
        (``resume=False``). Returns the task's state right after."""
        ...

    async def wait_task(
        self, session_id: str, task_id: str, wait_seconds: float, on_step: StepListener | None = None
    ) -> TaskResult:
        """Wait up to ``wait_seconds`` for the task to settle (completed, failed or guardrail), calling
        ``on_step`` for each step taken meanwhile; return its state either way."""
        ...

    async def get_task(self, session_id: str, task_id: str) -> TaskResult: ...

    async def get_session(self, session_id: str) -> SessionState: ...

    async def list_sessions(self, include_ended: bool) -> list[SessionState]: ...

    async def terminate(self, session_id: str) -> SessionState:
        """End the session (its running and queued tasks fail with TASK_STOPPED); return the final state."""
        ...

    async def control(self, session_id: str, action: ControlAction) -> SessionState:
        """pause (after the current step) / resume / stop (the current task only; the session stays)."""
        ...

    async def screenshot(self, session_id: str) -> bytes:
        """PNG of the session's current page (for the resource; works while a task runs)."""
        ...

    async def download(self, session_id: str, name: str) -> bytes:
        """A file the session downloaded (``DownloadInfo.name``)."""
        ...

    # ----- step tools: the caller drives; refused while a planner task runs unless it is paused -----

    async def step_snapshot(
        self, session_id: str, *, max_chars: int, ref: str | None, find: str | None, format: SnapshotFormat
    ) -> SnapshotResult: ...

    async def step_act(self, session_id: str, request: ActRequest, *, max_chars: int) -> ActResult: ...

    async def step_screenshot(self, session_id: str, *, full_page: bool, ref: str | None) -> bytes: ...
