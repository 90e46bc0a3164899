"""Guardrails: a model-driven task asks a human, waits, and goes on with the answer; answered through
answer_guardrail or, on connections that allow it, through MCP elicitation mid-call."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.client.context import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult

from tests.conftest import MODES, call, call_error, connect, model_settings
from tests.scripted_model import Call, Received, ScriptedModel, ref
from tests.site import Site

pytestmark = pytest.mark.anyio

QUESTION = "What is the code you received?"


def type_code(received: Received) -> Call:
    assert "the user answered: 424242" in received.observation()
    return Call("type", {"ref": ref(received.observation(), "textbox", "Code"), "text": "424242", "submit": True})


def verify_script(scripted: ScriptedModel) -> None:
    scripted.script(Call("ask_human", {"question": QUESTION}), type_code, Call("done", {"output": "verified"}))


async def test_a_question_waits_for_answer_guardrail_and_the_wait_is_not_task_time(
    site: Site, scripted: ScriptedModel
) -> None:
    verify_script(scripted)
    async with connect(**model_settings(scripted)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="Verify my account.",
            startingPoint=site.url("/verify"),
            maxDuration=3000,
            waitSeconds=30,
        )
        assert task["status"] == "guardrail_trigger", task
        assert task["guardrail"] == QUESTION
        ids = {"sessionId": task["sessionId"], "taskId": task["taskId"]}
        state = await call(client, "get_session", sessionId=task["sessionId"])
        assert state["expiresAt"] is not None  # inactivity still ends a session whose question goes unanswered
        snapshot = await call(client, "browser_snapshot", sessionId=task["sessionId"])
        assert "Enter your code" in snapshot["text"]  # the page is the caller's while the task waits
        await anyio.sleep(3.5)  # longer than maxDuration: waiting for a human is not task time
        done = await call(client, "answer_guardrail", **ids, response="424242")
    assert done["status"] == "task_completed", done
    assert done["output"] == "verified" and done["guardrail"] is None
    assert done["usage"]["durationMs"] < 3000
    assert (f"127.0.0.1:{site.port}", "/welcome?code=424242") in site.requests


async def test_resume_false_stops_the_task_and_keeps_the_session(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(Call("ask_human", {"question": "Buy it for $49.99?"}))
    async with connect(**model_settings(scripted)) as client:
        session = await call(client, "start_session")
        task = await call(
            client,
            "send_task",
            sessionId=session["sessionId"],
            taskDetails="Buy the keyboard.",
            startingPoint=site.url("/product"),
        )
        ids = {"sessionId": session["sessionId"], "taskId": task["taskId"]}
        error = await call_error(client, "answer_guardrail", **ids, response="")
        assert "INVALID_PARAMETER" in error and "resume=false" in error
        stopped = await call(client, "answer_guardrail", **ids, resume=False)
        assert stopped["status"] == "failed" and stopped["error"]["code"] == "TASK_STOPPED", stopped
        again = await call_error(client, "answer_guardrail", **ids, response="yes")
        assert "not waiting for an answer" in again
        state = await call(client, "get_session", sessionId=session["sessionId"])
        assert state["status"] == "Active"
    assert len(scripted.requests) == 1


async def test_control_stop_and_terminate_end_a_task_that_waits_for_an_answer(
    site: Site, scripted: ScriptedModel
) -> None:
    scripted.script(Call("ask_human", {"question": QUESTION}), Call("ask_human", {"question": QUESTION}))
    async with connect(**model_settings(scripted)) as client:
        session = await call(client, "start_session")
        sid = session["sessionId"]
        first = await call(client, "send_task", sessionId=sid, taskDetails="Verify.", startingPoint=site.url("/verify"))
        assert first["status"] == "guardrail_trigger"
        await call(client, "control_session", sessionId=sid, action="stop")
        stopped = await call(client, "get_task", sessionId=sid, taskId=first["taskId"], waitSeconds=10)
        assert stopped["status"] == "failed" and stopped["error"]["code"] == "TASK_STOPPED", stopped
        second = await call(client, "send_task", sessionId=sid, taskDetails="Verify again.")
        assert second["status"] == "guardrail_trigger"
        final = await call(client, "terminate", sessionId=sid)
        assert final["status"] == "Terminated"
        ended = await call(client, "get_task", sessionId=sid, taskId=second["taskId"])
    assert ended["status"] == "failed" and ended["error"]["code"] == "TASK_STOPPED"


async def test_an_unanswered_question_ends_the_session_after_the_inactivity_timeout(
    site: Site, scripted: ScriptedModel
) -> None:
    scripted.script(Call("ask_human", {"question": QUESTION}))
    async with connect(**model_settings(scripted, idle_timeout=2)) as client:
        task = await call(client, "run_task", taskDetails="Verify.", startingPoint=site.url("/verify"))
        assert task["status"] == "guardrail_trigger"
        with anyio.fail_after(15):
            while True:  # list_sessions does not count as activity on a session, unlike get_session
                listed = await call(client, "list_sessions", includeEnded=True)
                state = next(s for s in listed["sessions"] if s["sessionId"] == task["sessionId"])
                if state["status"] == "Terminated":
                    break
                await anyio.sleep(0.2)
        assert "unanswered" in state["reason"]
        ended = await call(client, "get_task", sessionId=task["sessionId"], taskId=task["taskId"])
    assert ended["status"] == "failed" and ended["error"]["code"] == "TASK_STOPPED"


def elicitation(action: str, seen: list[str]) -> dict[str, Any]:
    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        return ElicitResult(action=action, content={"answer": "424242"} if action == "accept" else None)  # type: ignore[arg-type]

    return {"elicitation_callback": answer}


@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_asks_the_user_within_the_call_in_both_eras(
    site: Site, scripted: ScriptedModel, mode: str
) -> None:
    # handshake era: elicitation/create mid-call; 2026-07-28: the call returns input_required with the
    # question and the client retries it with the answer (the SDK client does both through one callback)
    verify_script(scripted)
    seen: list[str] = []
    async with connect(mode, callbacks=elicitation("accept", seen), **model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Verify my account.", startingPoint=site.url("/verify"))
        listed = await call(client, "list_sessions", includeEnded=True)
    assert seen == [f"A browser task asks: {QUESTION}"]
    assert task["status"] == "task_completed" and task["output"] == "verified", task
    assert len(listed["sessions"]) == 1  # the retried call did not start another session
    assert len(scripted.requests) == 3


async def test_a_client_without_elicitation_gets_the_question_back(site: Site, scripted: ScriptedModel) -> None:
    verify_script(scripted)
    async with connect(**model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Verify my account.", startingPoint=site.url("/verify"))
        assert task["status"] == "guardrail_trigger" and task["guardrail"] == QUESTION
        ids = {"sessionId": task["sessionId"], "taskId": task["taskId"]}
        done = await call(client, "answer_guardrail", **ids, response="424242")
    assert done["status"] == "task_completed"


@pytest.mark.parametrize("mode", MODES)
async def test_a_declined_elicitation_stops_the_task(site: Site, scripted: ScriptedModel, mode: str) -> None:
    scripted.script(Call("ask_human", {"question": "Buy it for $49.99?"}))
    seen: list[str] = []
    async with connect(mode, callbacks=elicitation("decline", seen), **model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Buy the keyboard.", startingPoint=site.url("/product"))
    assert seen and task["status"] == "failed" and task["error"]["code"] == "TASK_STOPPED"


@pytest.mark.parametrize("mode", MODES)
async def test_a_dismissed_elicitation_leaves_the_question_to_answer_guardrail(
    site: Site, scripted: ScriptedModel, mode: str
) -> None:
    verify_script(scripted)
    seen: list[str] = []
    async with connect(mode, callbacks=elicitation("cancel", seen), **model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Verify my account.", startingPoint=site.url("/verify"))
        assert seen == [f"A browser task asks: {QUESTION}"]  # asked once, not again and again
        assert task["status"] == "guardrail_trigger", task
        ids = {"sessionId": task["sessionId"], "taskId": task["taskId"]}
        done = await call(client, "answer_guardrail", **ids, response="424242")
    assert done["status"] == "task_completed"
