"""Hostile and random arguments at every MCP tool (as ``list_tools`` reports them, built from each tool's input
schema; tests/fuzz_values.py), through the official client on an in-memory server, in both protocol eras.

Properties: every call returns within a bound; a failure is an error result that says what is wrong (a field
and its problem, or a code and a message), never a bare "Error executing tool", a traceback or a planted
secret; and afterwards the server still serves: a session kept out of the fuzzing completes a task.

One server per era serves every example. Each example first ends the sessions the previous one left and
starts a fresh victim session whose id the examples use, so valid-looking calls reach live sessions too.

The server and its client live on an event loop in a blocking portal, and the tests are plain functions that
call through it: hypothesis stops an example by raising ``StopTest``, a ``BaseException``, out of a draw, and
inside anyio's pytest runner that kills the runner task that a module-scoped async fixture shares with the
tests (see HypothesisWorks/hypothesis#3999 for the same clash with pytest-trio).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, Tool

from tests.conftest import MODES, connect, text_of
from tests.fuzz_values import CANARY, FUZZ_SETTINGS, Targets, arguments, leaks, nested
from tests.site import Site

PYTHON_RECURSION_LIMIT = 1000  # CPython's default
CALL_SECONDS = 30  # valid-looking calls wait a second at most and run short tasks on the test site
CLEAR_ERROR = re.compile(r"Invalid arguments: \S|^[A-Z][A-Z_]+: \S")


@contextmanager
def default_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit while the server answers, as a real server has it: hypothesis raises the
    interpreter's limit while a test runs, which would hide a server that recurses too deeply."""
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(raised)


class Recorded(logging.Handler):
    """Every log record, kept: the server's log must hold no unexpected error and no secret either."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Fuzzed:
    """A client on a server, driven from test code through ``portal``."""

    portal: BlockingPortal
    client: Client
    tools: list[Tool]
    targets: Targets
    log: Recorded
    control: str = ""  # a live session the fuzzing never names

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        async def bounded() -> CallToolResult:
            with anyio.fail_after(CALL_SECONDS):
                return await self.client.call_tool(tool, arguments)

        with default_recursion_limit():
            return self.portal.call(bounded)

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = self.call(tool, arguments)
        assert not result.is_error and result.structured_content is not None, text_of(result)
        return result.structured_content

    def fresh_victim(self) -> None:
        """End every session but the control one, then start the victim the next example aims at."""
        for state in self.ok("list_sessions")["sessions"]:
            if state["sessionId"] != self.control:
                self.call("terminate", {"sessionId": state["sessionId"]})
        self.targets.session_ids[0] = self.ok("start_session")["sessionId"]


@pytest.fixture(scope="module", params=MODES)
def fuzzed(request: pytest.FixtureRequest, site: Site) -> Iterator[Fuzzed]:
    log, root = Recorded(), logging.getLogger()
    level = root.level
    root.addHandler(log)
    root.setLevel(logging.INFO)  # the server's INFO lines quote the errors callers read
    try:
        with (
            start_blocking_portal("asyncio") as portal,
            portal.wrap_async_context_manager(connect(request.param)) as client,
        ):
            tools = portal.call(client.list_tools).tools
            fuzzed = Fuzzed(portal, client, tools, Targets(site=site.url("").rstrip("/")), log)
            fuzzed.control = fuzzed.ok("start_session")["sessionId"]
            ended = fuzzed.ok("run_task", taskDetails=f"go to {site.url('/')}\nextract text")
            assert ended["status"] == "task_completed", ended
            fuzzed.targets.session_ids += ["victim, set per example", ended["sessionId"]]
            fuzzed.targets.task_ids.append(ended["taskId"])
            if any(tool.name == "create_profile" for tool in tools):
                fuzzed.targets.profile_ids.append(fuzzed.ok("create_profile", name="fuzzed")["profileId"])
            yield fuzzed
    finally:
        root.removeHandler(log)
        root.setLevel(level)


def check_answer(tool: Tool, sent: dict[str, Any], result: CallToolResult) -> None:
    text = text_of(result)
    seen = f"{text}\n{json.dumps(result.structured_content, default=str)}"
    assert not leaks(seen), (tool.name, leaks(seen), text[:2000])
    if not result.is_error:
        assert result.structured_content is not None, (tool.name, text[:2000])
        return
    detail = text.removeprefix(f"Error executing tool {tool.name}").removeprefix(":").strip()
    assert CLEAR_ERROR.search(detail), f"{tool.name} answered an unclear error: {text[:2000]!r}"
    if "Invalid arguments: " in detail:
        fields = {*sent, *tool.input_schema.get("properties", {}), "arguments"}
        assert any(name and name in detail for name in fields), f"{tool.name}: no field named in {detail!r}"


@FUZZ_SETTINGS
@given(data=st.data())
def test_every_tool_answers_hostile_arguments_clearly(fuzzed: Fuzzed, data: st.DataObject) -> None:
    fuzzed.fresh_victim()
    # every draw before any call: a replay then draws the same even where the server answers differently
    calls = [(tool, data.draw(arguments(tool.input_schema, fuzzed.targets), label=tool.name)) for tool in fuzzed.tools]
    for tool, sent in calls:
        check_answer(tool, sent, fuzzed.call(tool.name, sent))


def test_the_server_keeps_serving_after_the_fuzzing(fuzzed: Fuzzed, site: Site) -> None:
    """Runs after the fuzzing in its era (module order); the control session was started before it."""
    table = f"go to {site.url('/table')}\nextract table"
    done = fuzzed.ok("send_task", sessionId=fuzzed.control, taskDetails=table)
    assert done["status"] == "task_completed", done
    assert "Cable, long" in json.dumps(done["output"])
    assert fuzzed.ok("get_session", sessionId=fuzzed.control)["status"] == "Active"
    fresh = fuzzed.ok("run_task", taskDetails=table)
    assert fresh["status"] == "task_completed", fresh
    unexpected = [record for record in fuzzed.log.records if record.exc_info or record.levelno >= logging.ERROR]
    assert not unexpected, [record.getMessage() for record in unexpected]
    assert not any(CANARY in record.getMessage() for record in fuzzed.log.records)


def test_a_deeply_nested_output_schema_is_refused_clearly(fuzzed: Fuzzed) -> None:
    """Found while building the fuzzing: checking such a schema recursed past Python's limit inside jsonschema, and the
    caller read a bare "Error executing tool run_task"."""
    for depth in (150, 200):
        schema = nested(depth, {"type": "object"}, key="not")
        arguments = {"taskDetails": "extract text", "outputType": "structured_json", "outputSchema": schema}
        for tool, sent in [("run_task", arguments), ("start_session", {"initialTask": arguments})]:
            result = fuzzed.call(tool, sent)
            assert result.is_error, text_of(result)
            assert "outputSchema nests more than 64 levels of objects and lists; flatten it" in text_of(result)
