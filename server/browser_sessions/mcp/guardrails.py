"""Asking the user a task's guardrail question directly, where the client can elicit.

- Handshake-era connections: ``elicitation/create`` is sent mid-call and the answer comes back in it.
- 2026-07-28 connections: there are no server-to-client requests, so the waiting task tool returns an
  ``InputRequiredResult`` carrying the question; the client asks the user and retries the same call with
  the answer and our (sealed) request state, and ``resumed_task`` applies the answer before the tool does
  anything else. The retried tool then goes on waiting for the task.

An answer resumes the task, a decline stops it, a cancel leaves the question to ``answer_guardrail``.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp.server.mcpserver import AcceptedElicitation, Context, DeclinedElicitation
from mcp.types import (
    ClientCapabilities,
    ElicitationCapability,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from browser_sessions.backends.base import Backend
from browser_sessions.mcp.app_state import app
from browser_sessions.mcp.registry import NeedsInput
from browser_sessions.models import TaskResult

KEY = "guardrail"


class GuardrailReply(BaseModel):
    answer: str = Field(description="Your answer to the task's question.")


def can_elicit(ctx: Context[Any]) -> bool:
    """The client can be asked, and the user did not just dismiss the question on this call."""
    dismissed = (ctx.input_responses or {}).get(KEY)
    if isinstance(dismissed, ElicitResult) and dismissed.action == "cancel":
        return False
    session = ctx.request_context.session
    return app(ctx).settings.guardrail_elicitation and session.check_client_capability(
        ClientCapabilities(elicitation=ElicitationCapability())
    )


def _message(task: TaskResult) -> str:
    return f"A browser task asks: {task.guardrail}"


async def ask_user(ctx: Context[Any], backend: Backend, task: TaskResult) -> TaskResult | None:
    """Ask the user ``task``'s question; the task after the answer, or None to leave the question waiting.
    On a 2026-07-28 connection this raises ``NeedsInput`` (the call returns the question instead)."""
    if ctx.request_context.session.protocol_version in MODERN_PROTOCOL_VERSIONS:
        request = ElicitRequest(
            params=ElicitRequestFormParams(message=_message(task), requested_schema=GuardrailReply.model_json_schema())
        )
        state = json.dumps({"sessionId": task.session_id, "taskId": task.task_id})
        raise NeedsInput(InputRequiredResult(input_requests={KEY: request}, request_state=state))
    with anyio.move_on_after(app(ctx).settings.idle_timeout):
        reply = await ctx.elicit(_message(task), GuardrailReply)
        if isinstance(reply, AcceptedElicitation):
            return await backend.answer_guardrail(task.session_id, task.task_id, reply.data.answer, True)
        if isinstance(reply, DeclinedElicitation):
            return await backend.answer_guardrail(task.session_id, task.task_id, "", False)
    return None


async def resumed_task(ctx: Context[Any], backend: Backend) -> TaskResult | None:
    """On the retry of a call that returned a task's question (2026-07-28): the task after the user's
    answer. None on any other call."""
    if ctx.request_state is None:
        return None
    state = json.loads(ctx.request_state)  # sealed by the SDK: only this server could have written it
    session_id, task_id = state["sessionId"], state["taskId"]
    reply = (ctx.input_responses or {}).get(KEY)
    if isinstance(reply, ElicitResult) and reply.action == "accept":
        answer = (reply.content or {}).get("answer")
        if isinstance(answer, str) and answer.strip():
            return await backend.answer_guardrail(session_id, task_id, answer, True)
    if isinstance(reply, ElicitResult) and reply.action == "decline":
        return await backend.answer_guardrail(session_id, task_id, "", False)
    return await backend.get_task(session_id, task_id)
