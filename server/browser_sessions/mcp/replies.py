"""The one reply builder: a result model becomes a short text for the model plus structured content."""

from __future__ import annotations

import base64
import json

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel

from browser_sessions.models import SessionList, SessionStarted, SessionState, TaskResult
from browser_sessions.profiles import ProfileInfo, ProfileList
from browser_sessions.step_models import ActResult, ScreenshotResult, SnapshotResult

MAX_OUTPUT_IN_TEXT = 20_000


def render(result: BaseModel) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(type="text", text=summary(result))]
    if isinstance(result, ScreenshotResult):
        content.insert(0, ImageContent(type="image", data=base64.b64encode(result.png).decode(), mime_type="image/png"))
        content.append(ResourceLink(type="resource_link", uri=result.uri, name="screenshot", mime_type="image/png"))
    return CallToolResult(content=content, structured_content=result.model_dump(mode="json", by_alias=True))


def summary(result: BaseModel) -> str:
    if isinstance(result, SessionStarted):
        text = session_text(result)
        return text if result.task is None else f"{text}\n{task_text(result.task)}"
    if isinstance(result, SessionState):
        return session_text(result)
    if isinstance(result, TaskResult):
        return task_text(result)
    if isinstance(result, SnapshotResult):
        return snapshot_text(result)
    if isinstance(result, ActResult):
        return act_text(result)
    if isinstance(result, ScreenshotResult):
        return f"Screenshot of session {result.session_id} ({result.size_bytes} bytes). Live view: {result.uri}"
    if isinstance(result, SessionList):
        if not result.sessions:
            return "No sessions. Start one with start_session."
        return "\n".join(session_text(s) for s in result.sessions)
    if isinstance(result, ProfileInfo):
        return profile_text(result)
    if isinstance(result, ProfileList):
        if not result.profiles:
            return "No profiles. Create one with create_profile."
        return "\n".join(profile_text(p) for p in result.profiles)
    return result.model_dump_json(by_alias=True)


def profile_text(profile: ProfileInfo) -> str:
    name = f" ({profile.name})" if profile.name else ""
    return (
        f"Profile {profile.profile_id}{name}: {profile.cookies} cookies, storage of {profile.origins} origins, "
        f"saved {profile.updated_at:%Y-%m-%d %H:%M} UTC. Use it with profileId={profile.profile_id}."
    )


def session_text(state: SessionState) -> str:
    page = f" at {state.current_url}" if state.current_url and state.current_url != "about:blank" else ""
    paused = " (paused)" if state.paused else ""
    running = f"; running task {state.current_task_id}" if state.current_task_id else ""
    queued = f"; {len(state.queued_task_ids)} queued" if state.queued_task_ids else ""
    return (
        f"Session {state.session_id} is {state.status}{paused}{page} ({state.reason}){running}{queued}. "
        f"Resource: {state.resource_uri}"
    )


def task_text(task: TaskResult) -> str:
    head = f"Task {task.task_id} in session {task.session_id}"
    seconds = task.usage.duration_ms / 1000
    if task.status == "task_completed":
        output = task.output if isinstance(task.output, str) else json.dumps(task.output, indent=2)
        if len(output) > MAX_OUTPUT_IN_TEXT:
            output = f"{output[:MAX_OUTPUT_IN_TEXT]}\n[... truncated; read {task.output_uri} for all of it]"
        return f"{head} completed in {seconds:.1f} s, {task.usage.steps} steps. Output ({task.output_type}):\n{output}"
    if task.status == "failed" and task.error is not None:
        return f"{head} failed after {task.usage.steps} steps: {task.error.code}: {task.error.message}"
    if task.status == "started":
        ahead = f" behind {task.queue_position} task(s)" if task.queue_position else ""
        where = f"queued{ahead}"
    else:
        last = f"; last step: {task.steps[-1].action}" if task.steps else ""
        where = f"{task.status}, {task.usage.steps} steps so far{last}"
    return (
        f"{head} is {where}. Call get_task with waitSeconds to wait for it, or read/subscribe {task.resource_uri}; "
        "control_session stops it."
    )


def snapshot_text(result: SnapshotResult) -> str:
    if result.dialog is not None:
        return f"A {result.dialog.type} dialog is open: {result.dialog.message!r}. {result.dialog.how_to_answer}."
    if result.text is not None:
        return result.text
    return json.dumps([e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in result.elements or []])


def act_text(result: ActResult) -> str:
    lines = [f"{result.action}: {'; '.join(result.changes)}."]
    if result.snapshot_kind != "full":  # a full snapshot starts with url and title itself
        lines += [f"url: {result.url}", f"title: {result.title}"]
    if result.dialog is not None:
        lines.append(f"Dialog ({result.dialog.type}): {result.dialog.message!r}. {result.dialog.how_to_answer}.")
    if result.snapshot_kind == "diff":
        lines.append("Page changes since the last snapshot (- removed, + added):")
    if result.snapshot:
        lines.append(result.snapshot)
    return "\n".join(lines)
