"""The wire view of a local session (``SessionState``), built from its live record."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

from browser_sessions.backends.tasks import now
from browser_sessions.models import SessionState, SessionUsage, TabInfo, TaskSummary

if TYPE_CHECKING:
    from browser_sessions.backends.local.session import LocalSession


def session_uri(session_id: str) -> str:
    return f"session://{session_id}"


def tab_infos(session: LocalSession) -> list[TabInfo]:
    active = session.browser.active_page()
    return [
        TabInfo(index=i, url=session.vault.redact(page.url), active=page is active)
        for i, page in enumerate(session.browser.live_pages())
    ]


def session_state(session: LocalSession) -> SessionState:
    end = session.ended_at or now()
    tasks = list(session.tasks.values())
    deadline = session.idle_deadline()
    expires_at = None if deadline is None else now() + timedelta(seconds=max(0.0, deadline - time.monotonic()))
    page = session.browser.active_page()
    return SessionState(
        session_id=session.id,
        backend="local",
        status=session.status,
        reason=session.transitions[-1].reason,
        paused=session.paused,
        created_at=session.created_at,
        ended_at=session.ended_at,
        transitions=list(session.transitions),
        current_url=session.vault.redact(page.url) if page is not None else session.browser.last_url,
        title=session.browser.title,
        profile_id=session.profile_id,
        current_task_id=session.current.task_id if session.current else None,
        queued_task_ids=[task.task_id for task in session.queue],
        tasks=[TaskSummary(task_id=task.task_id, status=task.status) for task in tasks],
        idle_timeout_seconds=session.settings.idle_timeout,
        expires_at=expires_at,
        secrets=session.vault.placeholders(),
        tabs=tab_infos(session),
        downloads=list(session.browser.downloads),
        usage=SessionUsage(
            compute_time_ms=int((end - session.created_at).total_seconds() * 1000),
            tasks=len(tasks),
            steps=sum(len(task.steps) for task in tasks),
            input_tokens=sum(task.usage.input_tokens for task in tasks),
            output_tokens=sum(task.usage.output_tokens for task in tasks),
        ),
        resource_uri=session_uri(session.id),
    )
