"""Every kind of bad input gets an error result that says what is wrong and what to do; the server and
other sessions keep working."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MODES, call, call_error, connect
from tests.site import Site

pytestmark = pytest.mark.anyio

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("get_session", {"sessionId": "nope"}, ["SESSION_NOT_FOUND", "list_sessions"]),
    ("send_task", {"sessionId": "nope", "taskDetails": "extract text"}, ["SESSION_NOT_FOUND", "start_session"]),
    ("terminate", {"sessionId": "nope"}, ["SESSION_NOT_FOUND"]),
    ("get_task", {"sessionId": "nope", "taskId": "t"}, ["SESSION_NOT_FOUND"]),
    ("start_session", {"colour": "blue"}, ["colour: unknown field; remove it"]),
    ("start_session", {"mode": "turbo"}, ["mode: Input should be 'default'"]),
    (
        "start_session",
        {"initialTask": {"taskDetails": "extract text", "maxDuration": 999_999}},
        ["initialTask.maxDuration", "less than or equal to 300000"],
    ),
    ("start_session", {"initialTask": {"taskDetail": "typo"}}, ["initialTask.taskDetail: unknown field"]),
    ("run_task", {"taskDetails": "extract text", "maxDuration": 10}, ["maxDuration", "greater than or equal to 1000"]),
    (
        "run_task",
        {"taskDetails": "extract table", "outputType": "structured_json"},
        ["outputType structured_json needs outputSchema", "JSON Schema object"],
    ),
    (
        "run_task",
        {"taskDetails": "extract table", "outputType": "structured_csv", "outputSchema": {"type": "object"}},
        ["structured_csv needs outputSchema: a list of column names"],
    ),
    (
        "run_task",
        {"taskDetails": "extract table", "outputType": "structured_json", "outputSchema": {"type": "nonsense"}},
        ["not a valid JSON Schema"],
    ),
    ("run_task", {"taskDetails": "extract text", "startingPoint": "not a url"}, ["not an absolute http(s) URL"]),
    ("run_task", {"taskDetails": "extract text", "startingPoint": "file:///etc/passwd"}, ["https://example.com"]),
    ("run_task", {"taskDetails": "extract text", "avoidDomains": ["not a domain!"]}, ["is not a domain"]),
    ("run_task", {"taskDetails": ""}, ["taskDetails", "at least 1 character"]),
    ("run_task", {"taskDetails": "go to http://"}, ["Line 1"]),
    (
        "run_task",
        {"taskDetails": "extract text", "secrets": [{"match": "bad host!", "fields": {"pw": "x"}}]},
        ["secrets.0.match", "must be 'all', a host, or '*.domain'"],
    ),
    (
        "control_session",
        {"sessionId": "nope", "action": "explode"},
        ["action: Input should be 'pause', 'resume' or 'stop'"],
    ),
    ("start_session", {"profileId": "p1"}, ["PROFILE_NOT_FOUND: No profile with profileId 'p1'", "list_profiles"]),
]


@pytest.mark.parametrize("mode", MODES)
async def test_bad_input_is_an_error_that_says_what_to_do(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        live = (await call(client, "start_session"))["sessionId"]
        for tool, arguments, expected in CASES:
            result = await client.call_tool(tool, arguments)
            text = result.content[0].text if result.content and result.content[0].type == "text" else ""
            if not result.is_error:
                # "go to http://" parses as a line but fails the task, which is a failed result, not a call error
                assert result.structured_content is not None, (tool, arguments)
                text = str(result.structured_content.get("error"))
            for fragment in expected:
                assert fragment in text, (tool, arguments, text)
            assert "Traceback" not in text
        # the server and the other session carry on
        done = await call(client, "send_task", sessionId=live, taskDetails=f"go to {site.url('/')}\nextract text")
        assert done["status"] == "task_completed"


async def test_an_ended_session_refuses_work_but_stays_readable() -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        await call(client, "terminate", sessionId=sid)
        for tool, arguments in [
            ("send_task", {"sessionId": sid, "taskDetails": "extract text"}),
            ("terminate", {"sessionId": sid}),
            ("control_session", {"sessionId": sid, "action": "pause"}),
        ]:
            error = await call_error(client, tool, **arguments)
            assert "SESSION_EXPIRED" in error and "is Terminated" in error and "start_session" in error
        state = await call(client, "get_session", sessionId=sid)
        assert state["status"] == "Terminated"


async def test_unknown_task_in_a_known_session() -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        error = await call_error(client, "get_task", sessionId=sid, taskId="missing")
        assert "TASK_NOT_FOUND" in error and "get_session lists" in error


async def test_the_session_limit_is_a_clear_error() -> None:
    async with connect(max_sessions=2) as client:
        await call(client, "start_session")
        await call(client, "start_session")
        error = await call_error(client, "start_session")
        assert "SESSION_LIMIT_REACHED" in error and "Terminate one" in error
