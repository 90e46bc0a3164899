"""The remote backend end to end through real processes: MCP client -> our server (remote backend) ->
HTTP -> ``browser-sessions api`` (a subprocess) -> its local engine -> Chromium, and the faults the service
can throw at it: 429 with Retry-After, 503, 500, a stalled answer, a connection dropped mid-poll."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import call, call_error, connect
from tests.processes import api_process
from tests.scripted_model import Call, ScriptedModel
from tests.site import Site

pytestmark = pytest.mark.anyio

KEY = "remote-test-key"
# tests share a process: 10 POSTs per minute would serialise them
SERVICE = {"BROWSER_SESSIONS_API_KEYS": KEY, "BROWSER_SESSIONS_API_RATE_LIMIT": "1000"}


def remote(url: str, **overrides: Any) -> dict[str, Any]:
    """Settings for our MCP server with the remote backend as its default, pointed at ``url``."""
    return {
        "backend": "remote",
        "remote_url": url,
        "remote_api_key": KEY,
        "remote_poll_interval": 0.3,
        **overrides,
    }


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_process(tmp_path_factory.mktemp("api") / "api.log", **SERVICE) as url:
        yield url


def lines(site: Site, path: str = "/table") -> str:
    return f"go to {site.url(path)}\nextract text"


async def test_sessions_and_queued_tasks_run_on_the_service(api_url: str, site: Site) -> None:
    async with connect(**remote(api_url)) as client:
        started = await call(client, "start_session", initialTask={"taskDetails": lines(site, "/")})
        assert started["backend"] == "remote" and started["tracked"] is True and started["status"] == "Active"
        assert started["task"]["status"] == "task_completed" and "Welcome home" in started["task"]["output"]
        sid = started["sessionId"]
        first = await call(client, "send_task", sessionId=sid, taskDetails=lines(site, "/slow?s=2"), waitSeconds=0)
        second = await call(client, "send_task", sessionId=sid, taskDetails=lines(site), waitSeconds=0)
        assert first["status"] in ("started", "running") and second["status"] == "started"
        done = await call(client, "get_task", sessionId=sid, taskId=second["taskId"], waitSeconds=30)
        assert done["status"] == "task_completed" and "Keyboard" in done["output"], done
        earlier = await call(client, "get_task", sessionId=sid, taskId=first["taskId"])
        assert earlier["status"] == "task_completed" and earlier["endedAt"] <= done["startedAt"]
        state = await call(client, "get_session", sessionId=sid)
        assert [t["status"] for t in state["tasks"]] == ["task_completed"] * 3
        error = await call_error(client, "browser_snapshot", sessionId=sid)
        assert "NOT_SUPPORTED" in error and "backend=local" in error
        final = await call(client, "terminate", sessionId=sid)
        assert final["status"] == "Terminated"
        gone = await call_error(client, "send_task", sessionId=sid, taskDetails=lines(site))
        assert "SESSION_EXPIRED" in gone


async def test_control_session_pauses_resumes_and_stops_a_remote_task(api_url: str, site: Site) -> None:
    async with connect(**remote(api_url)) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        slow = f"go to {site.url('/slow?s=3')}\ngo to {site.url('/slow?s=3')}\nextract text"
        task = await call(client, "send_task", sessionId=sid, taskDetails=slow, waitSeconds=0)
        paused = await call(client, "control_session", sessionId=sid, action="pause")
        assert paused["paused"] is True
        resumed = await call(client, "control_session", sessionId=sid, action="resume")
        assert resumed["paused"] is False
        await call(client, "control_session", sessionId=sid, action="stop")
        stopped = await call(client, "get_task", sessionId=sid, taskId=task["taskId"], waitSeconds=10)
        assert stopped["status"] == "failed" and stopped["error"]["code"] == "TASK_STOPPED", stopped
        after = await call(client, "send_task", sessionId=sid, taskDetails=lines(site, "/"), waitSeconds=30)
        assert after["status"] == "task_completed"  # the session stays usable


async def test_run_task_with_structured_output_polls_past_the_inline_wait(api_url: str, site: Site) -> None:
    schema = {"type": "array", "items": {"type": "object", "properties": {"Price": {"type": "number"}}}}
    async with connect(**remote(api_url)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails=f"go to {site.url('/slow?s=2')}\ngo to {site.url('/table')}\nextract table",
            outputType="structured_json",
            outputSchema=schema,
            waitSeconds=30,
        )
        assert task["status"] == "task_completed", task
        assert task["output"][0]["Price"] == 12.5
        state = await call(client, "get_session", sessionId=task["sessionId"])
    assert state["status"] == "Completed" and state["backend"] == "remote"


async def test_one_server_holds_local_and_remote_sessions(api_url: str, site: Site) -> None:
    async with connect(**remote(api_url, backend="local")) as client:
        here = await call(client, "start_session")
        there = await call(client, "start_session", backend="remote")
        assert (here["backend"], there["backend"]) == ("local", "remote")
        listed = await call(client, "list_sessions")
        assert {s["backend"] for s in listed["sessions"]} == {"local", "remote"}
        for session in (here, there):
            done = await call(client, "send_task", sessionId=session["sessionId"], taskDetails=lines(site, "/"))
            assert done["status"] == "task_completed"
    async with connect() as client:
        error = await call_error(client, "start_session", backend="remote")
    assert "BROWSER_SESSIONS_REMOTE_URL" in error


async def test_a_guardrail_on_the_service_is_answered_through_answer_guardrail(
    tmp_path: Path, site: Site, scripted: ScriptedModel
) -> None:
    scripted.script(Call("ask_human", {"question": "Which size?"}), Call("done", {"output": "ordered Large"}))
    model = {
        "BROWSER_SESSIONS_MODEL": "openai:scripted-gpt",
        "OPENAI_BASE_URL": scripted.openai_base_url,
        "BROWSER_SESSIONS_MODEL_RETRIES": "0",
    }
    with api_process(tmp_path / "api.log", **SERVICE, **model) as url:
        async with connect(**remote(url)) as client:
            task = await call(client, "run_task", taskDetails="Order the shirt.", startingPoint=site.url("/form"))
            assert task["status"] == "guardrail_trigger" and task["guardrail"] == "Which size?", task
            ids = {"sessionId": task["sessionId"], "taskId": task["taskId"]}
            done = await call(client, "answer_guardrail", **ids, response="Large", waitSeconds=30)
    assert done["status"] == "task_completed" and done["output"] == "ordered Large", done
    assert "the user answered: Large" in scripted.requests[1].observation()


async def test_faults_the_service_throws_are_retried_or_reported_and_nothing_runs_twice(
    tmp_path: Path, site: Site
) -> None:
    faults = ",".join(
        [
            "429@/start/start-session",  # rate limited: waited out (Retry-After: 1), then created
            "503@/start/start-session",  # no instances: nothing created, retried
            "500@/start/send-message",  # a newTask without an answer: not resent
            "500@/task/",  # a poll failing: polls are safe to repeat
            "drop@/task/",  # a poll dropped mid-answer: repeated
        ]
    )
    with api_process(tmp_path / "api.log", **SERVICE, BROWSER_SESSIONS_API_FAULTS=faults) as url:
        async with connect(**remote(url)) as client:
            session = await call(client, "start_session")
            assert session["status"] == "Active"
            sid = session["sessionId"]
            lost = await call(client, "send_task", sessionId=sid, taskDetails=lines(site, "/form?unique=1"))
            assert lost["status"] == "failed" and lost["error"]["code"] == "OUTCOME_UNKNOWN", lost
            assert "not resent" in lost["error"]["message"]
            slow = f"go to {site.url('/slow?s=2')}\ngo to {site.url('/form?unique=2')}\nextract text"
            done = await call(client, "send_task", sessionId=sid, taskDetails=slow, waitSeconds=30)
            assert done["status"] == "task_completed", done
    paths = [path for _, path in site.requests]
    assert "/form?unique=1" not in paths  # the 500 came before the service did anything
    assert paths.count("/form?unique=2") == 1


async def test_a_stalled_create_is_reported_once_and_not_resent(tmp_path: Path, site: Site) -> None:
    stall = "stall:4@/start/send-message"
    with api_process(tmp_path / "api.log", **SERVICE, BROWSER_SESSIONS_API_FAULTS=stall) as url:
        async with connect(**remote(url, remote_timeout=1.5)) as client:
            session = await call(client, "start_session")
            task = await call(
                client, "send_task", sessionId=session["sessionId"], taskDetails=lines(site, "/form?stalled=1")
            )
            assert task["error"]["code"] == "OUTCOME_UNKNOWN", task
            with anyio.fail_after(20):  # the service runs it once the stall is over (the session still lives)
                while (f"127.0.0.1:{site.port}", "/form?stalled=1") not in site.requests:
                    await anyio.sleep(0.1)
    # exactly once: the client never resent it
    assert [path for _, path in site.requests].count("/form?stalled=1") == 1


async def test_over_stdio_a_server_whose_default_is_remote_runs_tasks_on_the_service(api_url: str, site: Site) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "BROWSER_SESSIONS_BACKEND": "remote",
        "BROWSER_SESSIONS_REMOTE_URL": api_url,
        "BROWSER_SESSIONS_REMOTE_API_KEY": KEY,
        "BROWSER_SESSIONS_REMOTE_POLL_INTERVAL": "0.3",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "browser_sessions", "serve"], env=env)
    with anyio.fail_after(90):
        async with Client(params) as client:
            task = await call(client, "run_task", taskDetails=lines(site), waitSeconds=30)
    assert task["status"] == "task_completed" and "Keyboard" in task["output"], task
