"""The wire view of a remote session (``SessionState``, ``tracked=True``), built from what this server
tracks: the service reports no page, tabs, downloads or session state, so those stay empty; the secret
placeholders are those this server sends with the session's tasks."""

from __future__ import annotations

import time
from datetime import timedelta

from browser_sessions.backends.remote.session import RemoteSession
from browser_sessions.backends.tasks import now
from browser_sessions.models import SessionState, SessionUsage, TaskSummary


def session_uri(session_id: str) -> str:
    return f"session://{session_id}"


def session_state(session: RemoteSession) -> SessionState:
    end = session.ended_at or now()
    tasks = list(session.tasks.values())
    deadline = session.idle_deadline()
    expires_at = None if deadline is None else now() + timedelta(seconds=max(0.0, deadline - time.monotonic()))
    return SessionState(
        session_id=session.id,
        backend="remote",
        tracked=True,
        status=session.status,
        reason=session.transitions[-1].reason,
        paused=session.paused,
        created_at=session.created_at,
        ended_at=session.ended_at,
        transitions=list(session.transitions),
        current_url=None,
        profile_id=session.profile_id,
        current_task_id=session.current.task_id if session.current else None,
        queued_task_ids=[task.task_id for task in session.queue],
        tasks=[TaskSummary(task_id=task.task_id, status=task.status) for task in tasks],
        idle_timeout_seconds=session.settings.idle_timeout,
        expires_at=expires_at,
        secrets=session.placeholders(),
        tabs=[],
        downloads=[],
        usage=SessionUsage(
            compute_time_ms=int((end - session.created_at).total_seconds() * 1000),
            tasks=len(tasks),
            steps=0,
            input_tokens=sum(task.usage.input_tokens for task in tasks),
            output_tokens=sum(task.usage.output_tokens for task in tasks),
        ),
        resource_uri=session_uri(session.id),
    )
