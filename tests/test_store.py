"""Durable records: task outputs and history readable after a restart, sessions live when the server died
shown Terminated with the reason, a task recorded before it is reported, several servers on one database,
and no secret value in the database file (WAL included) or the server logs (stderr and the data folder's)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import stat
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, quote_plus

import anyio
import pytest
from mcp import Client
from mcp.types import TextResourceContents

from browser_sessions.backends.router import open_backends
from browser_sessions.backends.tasks import TaskRecord
from browser_sessions.errors import SessionNotFound
from browser_sessions.models import LIVE_STATUSES, SessionState, TaskSpec
from browser_sessions.store import Store
from browser_sessions.store_runs import STOPPED_REASON
from tests.conftest import call, call_error, connect, make_settings
from tests.processes import clean_env, free_port, running
from tests.site import Site

pytestmark = pytest.mark.anyio

TABLE_SCHEMA = {"type": "array", "items": {"type": "object"}}
FIRST_OF_2026 = datetime(2026, 1, 1, tzinfo=UTC)


def database(data_dir: Path) -> Path:
    return data_dir / "browser-sessions.db"


def serve_env(data_dir: Path) -> dict[str, str]:
    return clean_env(
        BROWSER_SESSIONS_DATA_DIR=str(data_dir),
        BROWSER_SESSIONS_STEP_TIMEOUT="2",
        BROWSER_SESSIONS_NAVIGATION_TIMEOUT="10",
        BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK="true",  # the test site is on 127.0.0.1
    )


def serve_args(port: int) -> list[str]:
    return ["serve", "--transport", "streamable-http", "--port", str(port), "--log-level", "DEBUG"]


async def read_text(client: Client, uri: str) -> TextResourceContents:
    [content] = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    return content


async def test_outputs_and_history_are_readable_after_a_restart(site: Site, tmp_path: Path) -> None:
    async with connect(data_dir=str(tmp_path)) as client:
        text = await call(client, "run_task", taskDetails="extract text", startingPoint=site.url("/"))
        sid = (await call(client, "start_session"))["sessionId"]
        table = await call(
            client,
            "send_task",
            sessionId=sid,
            taskDetails=f"go to {site.url('/table')}\nextract table",
            outputType="structured_json",
            outputSchema=TABLE_SCHEMA,
        )
        assert (text["status"], table["status"]) == ("task_completed", "task_completed")
        before = await call(client, "get_session", sessionId=sid)
    # the server stopped cleanly: the open session ended as it shut down

    async with connect(data_dir=str(tmp_path)) as client:
        for done in (text, table):
            again = await call(client, "get_task", sessionId=done["sessionId"], taskId=done["taskId"], waitSeconds=5)
            for field in ("status", "output", "outputType", "steps", "planner", "createdAt", "endedAt", "outputUri"):
                assert again[field] == done[field], field
            assert again["usage"] == done["usage"]
        output = await read_text(client, text["outputUri"])
        assert (output.mime_type, output.text) == ("text/markdown", text["output"])
        rows = await read_text(client, table["outputUri"])
        assert (rows.mime_type, json.loads(rows.text)) == ("application/json", table["output"])
        resource = json.loads((await read_text(client, f"session://{sid}/tasks/{table['taskId']}")).text)
        assert resource["output"] == table["output"]

        state = await call(client, "get_session", sessionId=sid)
        assert [t["status"] for t in state["transitions"]] == ["Pending", "Active", "Terminated"]
        assert state["reason"] == "server shutting down"
        assert state["tasks"] == [{"taskId": table["taskId"], "status": "task_completed"}]
        assert (state["currentUrl"], state["title"]) == (before["currentUrl"], before["title"])
        assert state["usage"]["tasks"] == 1 and state["usage"]["steps"] == before["usage"]["steps"]
        one_shot = await call(client, "get_session", sessionId=text["sessionId"])
        assert one_shot["status"] == "Completed" and one_shot["reason"].startswith("terminateOnCompletion")

        assert (await call(client, "list_sessions"))["sessions"] == []
        ended = (await call(client, "list_sessions", includeEnded=True))["sessions"]
        assert [s["sessionId"] for s in ended] == [text["sessionId"], sid]

        # ended is ended: records to read, nothing to act on
        assert "SESSION_EXPIRED" in await call_error(client, "send_task", sessionId=sid, taskDetails="extract text")
        assert "SESSION_EXPIRED" in await call_error(client, "terminate", sessionId=sid)
        assert "TASK_NOT_FOUND" in await call_error(client, "get_task", sessionId=sid, taskId="nope")
        assert "SESSION_NOT_FOUND" in await call_error(client, "get_session", sessionId="nope")


async def test_sessions_live_when_the_server_died_show_terminated_with_the_reason(site: Site, tmp_path: Path) -> None:
    port = free_port()
    with running(serve_args(port), port, tmp_path / "serve.log", serve_env(tmp_path)) as server:
        with anyio.fail_after(90):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                sid = (await call(client, "start_session"))["sessionId"]
                done = await call(
                    client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}\nextract text"
                )
                assert done["status"] == "task_completed"
                slow = await call(
                    client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/slow?s=20')}", waitSeconds=0
                )
                queued = await call(client, "send_task", sessionId=sid, taskDetails="extract text", waitSeconds=0)
        server.kill()  # no shutdown: whatever was live stays recorded live
        server.wait(10)

    async with connect(data_dir=str(tmp_path)) as client:
        state = await call(client, "get_session", sessionId=sid)
        assert state["status"] == "Terminated"
        assert state["reason"] == STOPPED_REASON == "the server stopped while it was live"
        assert [t["status"] for t in state["transitions"]] == ["Pending", "Active", "Terminated"]
        assert state["endedAt"] is not None and state["usage"]["tasks"] == 3
        again = await call(client, "get_task", sessionId=sid, taskId=done["taskId"])
        assert (again["status"], again["output"]) == ("task_completed", done["output"])
        for unfinished in (slow, queued):
            task = await call(client, "get_task", sessionId=sid, taskId=unfinished["taskId"])
            assert task["status"] == "failed"
            assert task["error"]["code"] == "TASK_STOPPED" and "server stopped" in task["error"]["message"]
        listed = (await call(client, "list_sessions", includeEnded=True))["sessions"]
        assert [(s["sessionId"], s["status"]) for s in listed] == [(sid, "Terminated")]


async def test_ended_sessions_stay_their_owners_after_a_restart(site: Site, tmp_path: Path) -> None:
    settings = make_settings(data_dir=str(tmp_path))
    spec = TaskSpec(task_details="extract text", starting_point=site.url("/"))
    async with open_backends(settings) as router:
        mine = router.owned_by("token-mine")
        queued = await mine.run_task(spec, None)
        done = await mine.wait_task(queued.session_id, queued.task_id, 30)
        assert done.status == "task_completed"

    async with open_backends(settings) as router:
        mine, theirs = router.owned_by("token-mine"), router.owned_by("token-theirs")
        assert (await mine.get_task(done.session_id, done.task_id)).output == done.output
        assert [s.session_id for s in await mine.list_sessions(include_ended=True)] == [done.session_id]
        for other in (theirs, router):  # another token, and the local user
            with pytest.raises(SessionNotFound):
                await other.get_session(done.session_id)
            with pytest.raises(SessionNotFound):
                await other.get_task(done.session_id, done.task_id)
            assert await other.list_sessions(include_ended=True) == []


async def test_a_finished_task_is_recorded_before_anyone_waiting_is_woken() -> None:
    seen: list[tuple[bool, str]] = []

    def record(task: TaskRecord) -> None:
        seen.append((woken.is_set(), task.status))

    task = TaskRecord("s", "t", TaskSpec(task_details="x"), on_change=lambda _: None, on_finish=record)
    woken = task.wait_changed()
    task.begin("instructions")
    woken = task.wait_changed()
    task.complete("the output")
    assert seen == [(False, "task_completed")] and woken.is_set()


async def test_the_record_is_on_disk_when_the_result_arrives(site: Site, tmp_path: Path) -> None:
    async with connect(data_dir=str(tmp_path)) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        done = await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}\nextract text")
        with closing(sqlite3.connect(database(tmp_path))) as db:  # another connection, as after a crash
            row = db.execute("SELECT status, output FROM tasks WHERE task_id = ?", (done["taskId"],)).fetchone()
        assert row == ("task_completed", json.dumps(done["output"], separators=(",", ":"), ensure_ascii=False))
        await call(client, "terminate", sessionId=sid)


def state_row(session_id: str, status: str, created: datetime = FIRST_OF_2026) -> SessionState:
    """A session's state as a backend would record it, to write straight into a ``Store``."""
    at = created.isoformat()
    return SessionState.model_validate(
        {
            "sessionId": session_id,
            "backend": "local",
            "status": status,
            "reason": f"{status.lower()} for the test",
            "paused": False,
            "createdAt": at,
            "endedAt": None if status in LIVE_STATUSES else at,
            "transitions": [{"status": status, "at": at, "reason": "testing"}],
            "queuedTaskIds": [],
            "tasks": [],
            "idleTimeoutSeconds": 300,
            "secrets": [],
            "tabs": [],
            "downloads": [],
            "usage": {"computeTimeMs": 0, "tasks": 0, "steps": 0},
            "resourceUri": f"session://{session_id}",
        }
    )


async def test_servers_sharing_a_database_leave_each_others_live_sessions_alone(tmp_path: Path) -> None:
    path = database(tmp_path)
    first = Store.open(path)
    first.save_session(state_row("live-in-first", "Active"), "local")
    second = Store.open(path)  # the first server still runs: its session stays live
    found = await second.session("live-in-first")
    assert found is not None and found[0].status == "Active"
    second.save_session(state_row("live-in-second", "Active"), "token-other")
    first.close()  # as if its process died: its lock is free
    third = Store.open(path)
    stopped = await third.session("live-in-first")
    alive = await third.session("live-in-second")
    assert stopped is not None and (stopped[0].status, stopped[0].reason) == ("Terminated", STOPPED_REASON)
    assert alive is not None and (alive[0].status, alive[1]) == ("Active", "token-other")
    assert [s.session_id for s in await third.sessions("local", ended=True, limit=10)] == ["live-in-first"]
    assert await third.sessions("token-other", ended=True, limit=10) == []
    second.close()
    third.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ----- no secret value is ever written -----


def leaks(data: bytes, canary: str) -> list[str]:
    return [form for form in {canary, quote(canary, safe=""), quote_plus(canary)} if form.encode() in data]


async def test_the_secret_canary_is_in_neither_the_database_nor_the_log(site: Site, tmp_path: Path) -> None:
    canary = f"canary {secrets.token_hex(8)}/&"
    secret = [{"match": "login.localhost", "fields": {"password": canary}}]
    login = site.url("/login", host="login.localhost")
    typing = f'go to {login}\ntype "{{{{secret.password}}}}" into "Password"\nclick "Sign in"\nextract text'
    db = database(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    with running(serve_args(port), port, log, serve_env(tmp_path)):
        with anyio.fail_after(90):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                one_shot = await call(client, "run_task", taskDetails=typing, secrets=secret)
                assert one_shot["status"] == "task_completed", one_shot
                assert "password={{secret.password}}" in one_shot["output"]
                sid = (await call(client, "start_session"))["sessionId"]
                kept = await call(client, "send_task", sessionId=sid, taskDetails=typing, secrets=secret)
                assert kept["status"] == "task_completed", kept
                queued = await call(
                    client,
                    "send_task",
                    sessionId=sid,
                    taskDetails=f'go to {site.url("/slow?s=20")}\ntype "{canary}" into "Password"',
                    secrets=secret,
                    waitSeconds=0,
                )
                assert any(quote_plus(canary) in path for _, path in site.requests)  # the site got the value
                wal = db.with_name(f"{db.name}-wal")
                assert wal.stat().st_size > 0  # the records are in the WAL now: it is searched too
                for file in (db, wal, db.with_name(f"{db.name}-shm")):
                    assert leaks(file.read_bytes(), canary) == [], file
                await call(client, "terminate", sessionId=sid)
    log_file = tmp_path / "logs" / "browser-sessions.log"  # the data folder's own log
    for file in (db, log, log_file):
        assert leaks(file.read_bytes(), canary) == [], file
    assert b"serving streamable-http" in log.read_bytes()  # stderr was written (its format is the SDK's choice)
    assert b" DEBUG browser_sessions." in log_file.read_bytes()  # the data folder's log, at its most talkative
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    with closing(sqlite3.connect(db)) as records:
        specs = [json.loads(spec) for (spec,) in records.execute("SELECT spec FROM tasks ORDER BY created_at")]
        failed = records.execute("SELECT status FROM tasks WHERE task_id = ?", (queued["taskId"],)).fetchone()
    assert [spec["secrets"] for spec in specs] == [[{"match": "login.localhost", "names": ["password"]}]] * 3
    assert "{{secret.password}}" in specs[2]["taskDetails"]  # the value typed literally, redacted all the same
    assert failed == ("failed",)
