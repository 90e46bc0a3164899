"""``browser-sessions api`` as clients of the cloud service use it: a real subprocess on 127.0.0.1 driven
with httpx, checked against the documented shapes and messages (reference/remote-api.md §3-§5, §11, §12,
§19). One process serves most tests; the rate limit and the fault injection get a process each."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.processes import api_process
from tests.scripted_model import Call, ScriptedModel, serve_model
from tests.site import Site
from tests.test_guardrails import QUESTION, verify_script
from tests.test_outputs import ROWS_SCHEMA

pytestmark = pytest.mark.anyio

API = [sys.executable, "-m", "browser_sessions", "api"]
STARTUP_SECONDS = 30
KEY_1 = {"Authorization": "Bearer test-key-1"}
KEY_2 = {"Authorization": "Bearer test-key-2"}
MISSING_KEY = "API key required. Provide Authorization: Bearer <api_key>"
RATE_LIMITED = {"success": False, "message": "Rate limit exceeded. Please try again later."}
ACK = {"success": True, "message": "Message sent successfully"}
GONE = "Session not found or unauthorized"


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with serve_model() as served:
        yield served


@pytest.fixture(scope="module")
def api(model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The main server; its model (for free-text tasks) is the scripted one."""
    env = {
        "BROWSER_SESSIONS_MODEL": "openai:scripted-gpt",
        "OPENAI_BASE_URL": model.openai_base_url,
        "BROWSER_SESSIONS_MODEL_RETRIES": "0",
        "BROWSER_SESSIONS_API_RATE_LIMIT": "1000",  # the tests here send far more than 10 POSTs a minute
    }
    with api_process(tmp_path_factory.mktemp("api") / "api.log", **env) as url:
        yield url


@pytest.fixture
async def client(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, headers=KEY_1, timeout=30) as http:
        yield http


async def poll(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """GET ``url`` (a pollUrl) until the task is no longer pending."""
    with anyio.fail_after(30):
        while True:
            response = await client.get(url)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if not body.get("pending"):
                return body
            await anyio.sleep(0.25)


async def settled(client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    """A task answer, polled to its end when it came back pending."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return await poll(client, body["pollUrl"]) if body.get("pending") else body


async def start(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/start/start-session", json=body)
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    return started


async def send(client: httpx.AsyncClient, session_id: str, **message: Any) -> httpx.Response:
    return await client.post("/start/send-message", json={"sessionId": session_id, "message": message})


def new_task(**fields: Any) -> dict[str, Any]:
    return {"actionType": "newTask", "newState": "start", **fields}


def assert_completed(body: dict[str, Any]) -> str:
    """Shape A of an inline or polled completion; returns data.message."""
    assert body["success"] is True and body["type"] == "task_completed", body
    assert {"sessionId", "taskId", "completedAt"} <= set(body)
    assert body["data"]["files"] == [] and body["data"]["network"] == []
    usage = body["usage"]
    assert all(isinstance(usage[k], int) for k in ("prompt_tokens", "completion_tokens", "total_tokens")), usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert isinstance(usage["completion_time"], int | float)
    message = body["data"]["message"]
    assert isinstance(message, str)
    return message


def assert_pending(body: dict[str, Any], base: str) -> None:
    assert body["success"] is True and body["pending"] is True, body
    assert body["status"] in ("pending", "running")
    assert body["pollUrl"] == f"{base}/task/{body['sessionId']}/{body['taskId']}"


# ----- the main server -----


async def test_health_needs_no_key_and_everything_else_needs_a_good_one(api: str) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=10) as anonymous:
        health = await anonymous.get("/start/health")
        assert (health.status_code, health.json()) == (200, {"success": True, "status": "ok"})
        missing = await anonymous.post("/start/start-session", json={})
        assert (missing.status_code, missing.json()) == (401, {"success": False, "message": MISSING_KEY})
        poll_without_key = await anonymous.get("/task/abc/def")
        assert poll_without_key.status_code == 401
        wrong = await anonymous.post("/start/run-task", json={}, headers={"Authorization": "Bearer test-key-3"})
        assert (wrong.status_code, wrong.json()) == (401, {"success": False, "message": "Invalid or revoked API key"})
        unknown = await anonymous.get("/cron-jobs", headers=KEY_2)  # triggers are not served
        assert (unknown.status_code, unknown.json()) == (404, {"success": False, "message": "Not found"})


async def test_a_new_task_completes_inline_and_a_terminated_session_is_gone(
    client: httpx.AsyncClient, api: str, site: Site
) -> None:
    started = await start(client)
    assert started["success"] is True and started["expiresIn"] == 300000, started
    assert started["socketURL"] == api and "taskId" not in started
    sid = started["sessionId"]

    response = await send(client, sid, **new_task(taskDetails=f"go to {site.url('/')}\nextract text"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Welcome home." in assert_completed(body)  # inline: within the 1.5 s the server holds a request
    assert body["sessionId"] == sid
    again = await client.get(f"/task/{sid}/{body['taskId']}")
    assert again.json() == body

    unknown_task = await client.get(f"/task/{sid}/nope")
    assert (unknown_task.status_code, unknown_task.json()["message"]) == (404, "Task not found")
    unknown_session = await client.get("/task/nope/nope")
    assert (unknown_session.status_code, unknown_session.json()["message"]) == (404, "Session not found")

    terminated = await send(client, sid, actionType="state", newState="terminate")
    assert (terminated.status_code, terminated.json()) == (200, ACK)
    after = await send(client, sid, **new_task(taskDetails="extract text"))
    assert (after.status_code, after.json()["message"]) == (401, GONE)
    never = await send(client, "nope", actionType="state", newState="pause")
    assert (never.status_code, never.json()["message"]) == (401, GONE)


async def test_slow_tasks_answer_a_pending_stub_and_finish_through_polling(
    client: httpx.AsyncClient, api: str, site: Site
) -> None:
    slow = f"go to {site.url('/slow?s=4')}\nextract text"
    started = await start(client, mode="default", initialTask={"taskDetails": slow})
    sid = started["sessionId"]
    # taskId and pollUrl for the initialTask are our extension of the documented start-session answer
    assert started["pollUrl"] == f"{api}/task/{sid}/{started['taskId']}"

    queued = await send(client, sid, **new_task(taskDetails="extract text"))  # waits behind the slow one
    assert queued.status_code == 200
    stub = queued.json()
    assert_pending(stub, api)
    assert stub["message"] == "Task still running. Poll GET /task/:sessionId/:taskId for result."

    first = await poll(client, started["pollUrl"])
    assert "finally" in assert_completed(first)
    second = await poll(client, stub["pollUrl"])
    assert "finally" in assert_completed(second)
    await send(client, sid, actionType="state", newState="terminate")


async def test_structured_json_comes_as_a_json_string(client: httpx.AsyncClient, site: Site) -> None:
    sid = (await start(client))["sessionId"]
    task = new_task(
        taskDetails=f'go to {site.url("/table")}\nextract table "Prices"',
        outputType="structured_json",
        outputSchema=ROWS_SCHEMA,
    )
    body = await settled(client, await send(client, sid, **task))
    assert json.loads(assert_completed(body)) == [
        {"Name": "Keyboard", "Price": 12.5, "Note": "plain"},
        {"Name": "Cable, long", "Price": 3.0, "Note": 'has "quotes", and commas'},
    ]
    await send(client, sid, actionType="state", newState="terminate")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"taskDetails": "extract text", "startingPoint": "/"}, "Welcome home.", id="flat"),
        pytest.param({"task": {"prompt": "extract text", "startingUrl": "/table"}}, "Keyboard", id="task"),
    ],
)
async def test_run_task_in_both_dialects_runs_once_and_ends_its_session(
    client: httpx.AsyncClient, site: Site, body: dict[str, Any], expected: str
) -> None:
    task = body.get("task", body)
    for key in ("startingPoint", "startingUrl"):
        if key in task:
            task[key] = site.url(task[key])
    done = await settled(client, await client.post("/start/run-task", json=body))
    assert expected in assert_completed(done)
    after = await send(client, done["sessionId"], **new_task(taskDetails="extract text"))
    assert (after.status_code, after.json()["message"]) == (401, GONE)


async def test_state_messages_pause_resume_and_stop(client: httpx.AsyncClient, site: Site) -> None:
    sid = (await start(client))["sessionId"]
    running = (await send(client, sid, **new_task(taskDetails=f"go to {site.url('/slow?s=4')}"))).json()
    assert running["pending"] is True
    for state in ("pause", "resume", "stop"):
        answer = await send(client, sid, actionType="state", newState=state)
        assert (answer.status_code, answer.json()) == (200, ACK), state
    stopped = await poll(client, running["pollUrl"])
    assert stopped["success"] is False and stopped["status"] == "failed", stopped
    assert stopped["code"] == "TASK_STOPPED"
    bad = await send(client, sid, actionType="state", newState="sleep")
    assert bad.status_code == 400 and "newState" in bad.json()["message"]
    await send(client, sid, actionType="state", newState="terminate")


async def test_a_failing_task_reports_failed_with_code_and_error(client: httpx.AsyncClient, site: Site) -> None:
    sid = (await start(client))["sessionId"]
    task = new_task(taskDetails=f'go to {site.url("/form")}\nclick "Nothing here"')
    failed = await settled(client, await send(client, sid, **task))
    assert failed["success"] is False and failed["status"] == "failed", failed
    assert failed["code"] == "ELEMENT_NOT_FOUND"
    assert "Nothing here" in failed["error"]
    await send(client, sid, actionType="state", newState="terminate")


async def test_missing_and_bad_fields_are_400(client: httpx.AsyncClient) -> None:
    sid = (await start(client))["sessionId"]
    required = "sessionId and message are required"
    for body in ({}, {"sessionId": sid}, {"message": {"actionType": "state", "newState": "pause"}}):
        answer = await client.post("/start/send-message", json=body)
        assert (answer.status_code, answer.json()["message"]) == (400, required), body
    for body in ({}, {"task": {"startingUrl": "https://example.com"}}):
        answer = await client.post("/start/run-task", json=body)
        assert (answer.status_code, answer.json()["message"]) == (400, "taskDetails is required"), body

    not_an_object = await client.post("/start/start-session", content=b"[1, 2]")
    assert not_an_object.status_code == 400 and not_an_object.json()["success"] is False
    too_short = await client.post("/start/run-task", json={"taskDetails": "extract text", "maxDuration": 5})
    assert too_short.status_code == 400
    assert too_short.json()["code"] == "INVALID_PARAMETER" and "maxDuration" in too_short.json()["message"]

    for message, words in [
        ({"actionType": "dance"}, "actionType"),
        ({"actionType": "interaction", "action": {"type": "click"}}, "interaction is not supported"),
        ({"actionType": "guardrail", "taskDetails": "yes", "newState": "resume"}, "waiting for an answer"),
    ]:
        answer = await send(client, sid, **message)
        assert answer.status_code == 400 and words in answer.json()["message"], answer.text
    await send(client, sid, actionType="state", newState="terminate")


async def test_a_guardrail_question_is_answered_with_send_message(
    client: httpx.AsyncClient, site: Site, model: ScriptedModel
) -> None:
    verify_script(model)  # ask_human, then type the code it was given, then done("verified")
    sid = (await start(client))["sessionId"]
    task = new_task(taskDetails="Verify my account.", startingPoint=site.url("/verify"))
    asked = await settled(client, await send(client, sid, **task))
    assert asked["success"] is True and asked["type"] == "guardrail_trigger", asked
    assert asked["data"] == {"type": "human_input_needed", "value": QUESTION}

    answer = await send(client, sid, actionType="guardrail", taskDetails="424242", newState="resume")
    assert (answer.status_code, answer.json()) == (200, ACK)
    done = await poll(client, f"/task/{sid}/{asked['taskId']}")
    assert assert_completed(done) == "verified"
    assert done["usage"]["prompt_tokens"] > 0  # the scripted model's reported usage
    assert (f"127.0.0.1:{site.port}", "/welcome?code=424242") in site.requests
    await send(client, sid, actionType="state", newState="terminate")


async def test_a_guardrail_answer_with_new_state_stop_stops_only_the_task(
    client: httpx.AsyncClient, site: Site, model: ScriptedModel
) -> None:
    model.script(Call("ask_human", {"question": "Buy it for $49.99?"}))
    sid = (await start(client))["sessionId"]
    task = new_task(taskDetails="Buy the keyboard.", startingPoint=site.url("/product"))
    asked = await settled(client, await send(client, sid, **task))
    assert asked["type"] == "guardrail_trigger", asked
    empty = await send(client, sid, actionType="guardrail", taskDetails="", newState="resume")
    assert empty.status_code == 400  # resuming needs an answer

    answer = await send(client, sid, actionType="guardrail", newState="stop")
    assert (answer.status_code, answer.json()) == (200, ACK)
    stopped = await poll(client, f"/task/{sid}/{asked['taskId']}")
    assert (stopped["status"], stopped["code"]) == ("failed", "TASK_STOPPED"), stopped
    goes_on = await settled(client, await send(client, sid, **new_task(taskDetails="extract text")))
    assert "Wireless keyboard" in assert_completed(goes_on)  # the session stayed, on the same page
    await send(client, sid, actionType="state", newState="terminate")


async def test_api_refuses_to_start_without_keys() -> None:
    env = {**os.environ, "BROWSER_SESSIONS_API_KEYS": " , "}
    with anyio.fail_after(30):
        done = await anyio.run_process([*API, "--port", "0"], env=env, check=False)
    assert done.returncode == 2
    assert "BROWSER_SESSIONS_API_KEYS" in done.stderr.decode()


# ----- rate limit -----


async def test_post_requests_are_rate_limited_per_key(tmp_path: Path) -> None:
    with api_process(tmp_path / "api.log", BROWSER_SESSIONS_API_RATE_LIMIT="3") as url:
        async with httpx.AsyncClient(base_url=url, headers=KEY_1, timeout=10) as client:
            for remaining in (2, 1, 0):  # failed requests count too
                answer = await client.post("/start/send-message", json={})
                assert answer.status_code == 400
                assert answer.headers["X-RateLimit-Limit"] == "3"
                assert answer.headers["X-RateLimit-Remaining"] == str(remaining)
                assert time.time() < int(answer.headers["X-RateLimit-Reset"]) <= time.time() + 61
            limited = await client.post("/start/start-session", json={})
            assert (limited.status_code, limited.json()) == (429, RATE_LIMITED)
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert limited.headers["X-RateLimit-Remaining"] == "0"

            other_key = await client.post("/start/send-message", json={}, headers=KEY_2)
            assert (other_key.status_code, other_key.headers["X-RateLimit-Remaining"]) == (400, "2")
            polled = await client.get("/task/nope/nope")  # polling is not limited
            assert polled.status_code == 404 and "X-RateLimit-Limit" not in polled.headers


# ----- fault injection -----

FAULTS = (
    "429@/start/start-session,500@/start/start-session,503@/start/start-session,"
    "stall:2@/task/,drop@/task/,stall:1@/start/send-message"
)


async def test_injected_faults(tmp_path: Path, site: Site) -> None:
    env = {"BROWSER_SESSIONS_API_FAULTS": FAULTS, "BROWSER_SESSIONS_MAX_SESSIONS": "2"}
    with api_process(tmp_path / "api.log", **env) as url:
        async with httpx.AsyncClient(base_url=url, headers=KEY_1, timeout=30) as client:
            rate_limited = await client.post("/start/start-session", json={})
            assert (rate_limited.status_code, rate_limited.json()) == (429, RATE_LIMITED)
            assert rate_limited.headers["Retry-After"] == "1" and "X-RateLimit-Reset" in rate_limited.headers
            failed = await client.post("/start/start-session", json={})
            assert (failed.status_code, failed.json()) == (500, {"success": False, "message": "Internal server error"})
            busy = await client.post("/start/start-session", json={})
            assert (busy.status_code, busy.json()) == (503, {"success": False, "message": "No available instances."})
            started = await client.post("/start/start-session", json={})
            assert started.status_code == 200
            assert started.headers["X-RateLimit-Remaining"] == "9"  # the faulted calls never got this far
            sid = started.json()["sessionId"]

            # With at most 2 sessions this works only if none of the faulted calls made one.
            task = {"taskDetails": "extract text", "startingPoint": site.url("/")}
            done = await settled(client, await client.post("/start/run-task", json=task))
            poll_path = f"/task/{done['sessionId']}/{done['taskId']}"

            began = time.monotonic()
            stalled = await client.get(poll_path)
            assert stalled.status_code == 200 and time.monotonic() - began >= 1.9
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await client.get(poll_path)
            assert (await client.get(poll_path)).json() == stalled.json()

            # A stalled request takes effect even though its client gave up waiting.
            terminate = {"sessionId": sid, "message": {"actionType": "state", "newState": "terminate"}}
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/start/send-message", json=terminate, timeout=0.3)
            pause = {"sessionId": sid, "message": {"actionType": "state", "newState": "pause"}}
            with anyio.fail_after(10):
                while True:
                    await anyio.sleep(0.5)
                    answer = await client.post("/start/send-message", json=pause, headers=KEY_2)
                    if answer.status_code == 401:
                        break
                    assert answer.json() == ACK  # not yet terminated


async def test_task_results_outlive_a_restart_of_the_api(site: Site, tmp_path: Path) -> None:
    body = {"taskDetails": "extract text", "startingPoint": site.url("/")}
    with api_process(tmp_path / "first.log") as base:
        async with httpx.AsyncClient(base_url=base, headers=KEY_1, timeout=30) as http:
            done = await settled(http, await http.post("/start/run-task", json=body))
            started = await start(http)  # live when the process stops
    assert "Welcome home." in assert_completed(done)
    with api_process(tmp_path / "second.log") as base:
        async with (
            httpx.AsyncClient(base_url=base, headers=KEY_1, timeout=30) as owner,
            httpx.AsyncClient(base_url=base, headers=KEY_2, timeout=30) as other,
        ):
            again = await owner.get(f"/task/{done['sessionId']}/{done['taskId']}")
            assert again.status_code == 200 and again.json()["data"] == done["data"]
            hidden = await other.get(f"/task/{done['sessionId']}/{done['taskId']}")
            unknown = await other.get(f"/task/{'0' * 12}/{done['taskId']}")
            assert (hidden.status_code, hidden.json()) == (unknown.status_code, unknown.json())
            ended = await send(owner, started["sessionId"], **new_task(taskDetails="extract text"))
            assert (ended.status_code, ended.json()["message"]) == (401, GONE)
