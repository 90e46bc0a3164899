"""The session lifecycle through the MCP client: states and transitions, queue order, inactivity,
maxDuration, terminateOnCompletion, run_task, control_session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from tests.conftest import MODES, call, call_error, connect
from tests.site import Site

pytestmark = pytest.mark.anyio


def statuses(state: dict[str, object]) -> list[str]:
    return [t["status"] for t in state["transitions"]]  # type: ignore[index,attr-defined]


@pytest.mark.parametrize("mode", MODES)
async def test_session_goes_pending_active_terminated_with_reasons(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        started = await call(client, "start_session")
        assert started["status"] == "Active"
        assert statuses(started) == ["Pending", "Active"]
        assert started["backend"] == "local"
        sid = started["sessionId"]

        done = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}\nextract text")
        assert done["status"] == "task_completed"
        assert "Welcome home." in done["output"]
        assert [s["action"] for s in done["steps"]] == [f"go to {site.url('/')}", "extract text"]

        state = await call(client, "get_session", sessionId=sid)
        assert state["currentUrl"] == site.url("/")
        assert state["title"] == "Home"
        assert state["tasks"] == [{"taskId": done["taskId"], "status": "task_completed"}]

        final = await call(client, "terminate", sessionId=sid)
        assert statuses(final) == ["Pending", "Active", "Terminated"]
        assert final["transitions"][-1]["reason"] == "terminated by the caller"
        assert final["endedAt"] is not None
        assert final["usage"]["tasks"] == 1 and final["usage"]["steps"] == 2
        assert final["usage"]["computeTimeMs"] > 0
        times = [t["at"] for t in final["transitions"]]
        assert times == sorted(times)


async def test_run_task_is_one_shot_and_completes_the_session(site: Site) -> None:
    async with connect() as client:
        result = await call(client, "run_task", taskDetails="extract text", startingPoint=site.url("/"))
        assert result["status"] == "task_completed"
        assert result["planner"] == "instructions"
        assert "Welcome home." in result["output"]
        state = await call(client, "get_session", sessionId=result["sessionId"])
        assert state["status"] == "Completed"
        assert state["reason"].startswith("terminateOnCompletion")
        listed = await call(client, "list_sessions")
        assert listed["sessions"] == []
        listed = await call(client, "list_sessions", includeEnded=True)
        assert [s["sessionId"] for s in listed["sessions"]] == [result["sessionId"]]


async def test_terminate_on_completion_ends_session_after_its_task(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        result = await call(
            client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}", terminateOnCompletion=True
        )
        assert result["status"] == "task_completed"
        with anyio.fail_after(10):
            while (state := await call(client, "get_session", sessionId=sid))["status"] == "Active":
                await anyio.sleep(0.05)
        assert state["status"] == "Completed"
        error = await call_error(client, "send_task", sessionId=sid, taskDetails="extract text")
        assert "SESSION_EXPIRED" in error and "start_session" in error


async def test_tasks_queue_and_run_in_order(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        slow = f"go to {site.url('/slow?s=1')}"
        first = await call(client, "send_task", sessionId=sid, taskDetails=slow, waitSeconds=0)
        second = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}", waitSeconds=0)
        third = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/table')}", waitSeconds=0)
        assert first["status"] in ("started", "running")
        assert (second["status"], second["queuePosition"]) == ("started", 1)
        assert (third["status"], third["queuePosition"]) == ("started", 2)
        state = await call(client, "get_session", sessionId=sid)
        assert state["queuedTaskIds"] == [second["taskId"], third["taskId"]]
        results = [
            await call(client, "get_task", sessionId=sid, taskId=t["taskId"], waitSeconds=30)
            for t in (first, second, third)
        ]
        assert [r["status"] for r in results] == ["task_completed"] * 3
        assert results[0]["endedAt"] <= results[1]["startedAt"]
        assert results[1]["endedAt"] <= results[2]["startedAt"]
        state = await call(client, "get_session", sessionId=sid)
        assert state["currentUrl"] == site.url("/table")


async def test_wait_seconds_zero_returns_running_state_with_resource(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        task = await call(
            client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/slow?s=1')}", waitSeconds=0
        )
        assert task["status"] in ("started", "running")
        assert task["resourceUri"] == f"session://{sid}/tasks/{task['taskId']}"
        assert task["output"] is None
        done = await call(client, "get_task", sessionId=sid, taskId=task["taskId"], waitSeconds=30)
        assert done["status"] == "task_completed"


async def test_an_idle_session_says_when_it_expires() -> None:
    async with connect() as client:
        before = datetime.now(UTC)
        started = await call(client, "start_session")
        assert started["idleTimeoutSeconds"] == 300
        expires = datetime.fromisoformat(started["expiresAt"])
        assert before + timedelta(seconds=300) <= expires <= datetime.now(UTC) + timedelta(seconds=300)
        await call(client, "terminate", sessionId=started["sessionId"])


async def test_inactivity_terminates_an_idle_session() -> None:
    async with connect(idle_timeout=1.0) as client:
        started = await call(client, "start_session")
        assert started["idleTimeoutSeconds"] == 1.0  # (expiresAt may be past already on a loaded machine)
        with anyio.fail_after(15):
            while (state := await call(client, "list_sessions", includeEnded=True))["sessions"][0][
                "status"
            ] == "Active":
                await anyio.sleep(0.1)
        ended = state["sessions"][0]
        assert ended["status"] == "Terminated"
        assert ended["reason"] == "inactivity: no task or call for 1 s"


async def test_a_running_task_keeps_the_session_alive_past_the_idle_timeout(site: Site) -> None:
    async with connect(idle_timeout=1.0) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        result = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/slow?s=2')}")
        assert result["status"] == "task_completed"
        state = await call(client, "get_session", sessionId=sid)
        assert state["status"] == "Active"


async def test_max_duration_fails_the_task_and_the_session_stays_usable(site: Site) -> None:
    async with connect(navigation_timeout=30.0) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        slow = await call(
            client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/slow?s=5')}", maxDuration=1000
        )
        assert slow["status"] == "failed"
        assert slow["error"]["code"] == "TASK_TIMEOUT"
        assert "1000 ms" in slow["error"]["message"]
        assert slow["usage"]["durationMs"] < 4000
        after = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}\nextract text")
        assert after["status"] == "task_completed"
        assert "Welcome home." in after["output"]


async def test_stop_ends_the_current_task_only(site: Site) -> None:
    async with connect(navigation_timeout=30.0) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        task = await call(
            client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/slow?s=5')}", waitSeconds=0
        )
        with anyio.fail_after(10):
            while (await call(client, "get_task", sessionId=sid, taskId=task["taskId"]))["status"] != "running":
                await anyio.sleep(0.05)
        await call(client, "control_session", sessionId=sid, action="stop")
        stopped = await call(client, "get_task", sessionId=sid, taskId=task["taskId"], waitSeconds=10)
        assert stopped["status"] == "failed"
        assert stopped["error"]["code"] == "TASK_STOPPED"
        assert (await call(client, "get_session", sessionId=sid))["status"] == "Active"
        error = await call_error(client, "control_session", sessionId=sid, action="stop")
        assert "no running task" in error


async def test_pause_holds_the_task_between_steps_and_resume_continues(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        paused = await call(client, "control_session", sessionId=sid, action="pause")
        assert paused["paused"] is True
        lines = f"go to {site.url('/')}\ngo to {site.url('/table')}"
        task = await call(client, "send_task", sessionId=sid, taskDetails=lines, maxDuration=2000, waitSeconds=3)
        # paused before its first step; 3 s of pause did not use up the 2 s maxDuration
        assert task["status"] == "running" and task["steps"] == []
        resumed = await call(client, "control_session", sessionId=sid, action="resume")
        assert resumed["paused"] is False
        done = await call(client, "get_task", sessionId=sid, taskId=task["taskId"], waitSeconds=30)
        assert done["status"] == "task_completed"
        assert len(done["steps"]) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_call_stops_the_waiting_not_the_task(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        with anyio.move_on_after(0.5) as waiting:
            await client.call_tool("send_task", {"sessionId": sid, "taskDetails": f"go to {site.url('/slow?s=2')}"})
        assert waiting.cancelled_caught
        state = await call(client, "get_session", sessionId=sid)
        task_id = state["currentTaskId"]
        assert task_id is not None
        done = await call(client, "get_task", sessionId=sid, taskId=task_id, waitSeconds=30)
        assert done["status"] == "task_completed"
