"""Real MCP clients from the npm registry against the server as users run it: the MCP Inspector CLI over stdio
and streamable HTTP, and the official conformance suite (``@modelcontextprotocol/conformance``, a 2025-11-25
era client) over streamable HTTP. Versions are pinned in ``tools/node``; see tests/node_tools.py."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.node_tools import Ran, run_tool
from tests.processes import clean_env, free_port, running
from tests.test_manifest import served

SERVE = str(Path(sys.executable).parent / "browser-sessions")

# Every server scenario of the pinned suite, by whether it applies to a server with our tools. The suite is
# written against its own fixture server: most scenarios call tools, resources and prompts of that server
# (test_simple_text, test://static-text, test_simple_prompt, ...) which a product server does not have.
APPLICABLE = {
    "server-initialize": "the initialize handshake",
    "ping": "ping answers {}",
    "tools-list": "every tool has a name, description and inputSchema",
    "resources-list": "resources/list is well formed",
    "resources-subscribe": "we declare resources.subscribe; subscribing answers {} (the suite's URI is any URI to us)",
    "resources-unsubscribe": "we declare resources.subscribe; unsubscribing answers {}",
    "prompts-list": "we declare prompts (none yet); prompts/list is well formed",
    "server-sse-multiple-streams": "concurrent POSTs on one MCP session each get a working SSE stream",
    "dns-rebinding-protection": "a loopback server without auth refuses foreign Host/Origin, accepts localhost",
}
FIXTURE_TOOL = "calls a fixture tool of the suite's test server that we do not have"
EXCLUDED = {
    "logging-set-level": "we declare no logging capability and send no log notifications (-32601 is correct)",
    "completion-complete": "we declare no completions; it completes the fixture prompt test_prompt_with_arguments",
    "tools-call-simple-text": FIXTURE_TOOL + " (test_simple_text; it passes on the unknown-tool error)",
    "tools-call-error": FIXTURE_TOOL + " (test_error_handling; it passes on the unknown-tool error)",
    "tools-call-image": FIXTURE_TOOL + " (test_image_content)",
    "tools-call-audio": FIXTURE_TOOL + " (test_audio_content)",
    "tools-call-embedded-resource": FIXTURE_TOOL + " (test_embedded_resource)",
    "tools-call-mixed-content": FIXTURE_TOOL + " (test_multiple_content_types)",
    "tools-call-with-logging": FIXTURE_TOOL + " (test_tool_with_logging)",
    "tools-call-with-progress": FIXTURE_TOOL + " (test_tool_with_progress; our progress: test_transports.py)",
    "tools-call-sampling": FIXTURE_TOOL + " (test_sampling; our sampling: test_sampling.py)",
    "tools-call-elicitation": FIXTURE_TOOL + " (test_elicitation; our elicitation: test_guardrails.py)",
    "elicitation-sep1034-defaults": FIXTURE_TOOL + " (test_elicitation_sep1034_defaults)",
    "elicitation-sep1330-enums": FIXTURE_TOOL + " (test_elicitation_sep1330_enums)",
    "json-schema-2020-12": FIXTURE_TOOL + " (json_schema_2020_12_tool; pending in the suite)",
    "server-sse-polling": FIXTURE_TOOL + " (test_reconnection; pending in the suite)",
    "resources-read-text": "reads the fixture resource test://static-text",
    "resources-read-binary": "reads the fixture resource test://static-binary",
    "resources-templates-read": "reads the fixture template test://template/{id}/data",
    "prompts-get-simple": "gets the fixture prompt test_simple_prompt",
    "prompts-get-with-args": "gets the fixture prompt test_prompt_with_arguments",
    "prompts-get-embedded-resource": "gets the fixture prompt test_prompt_with_embedded_resource",
    "prompts-get-with-image": "gets the fixture prompt test_prompt_with_image",
}


@pytest.fixture(scope="module")
def served_tools() -> set[str]:
    """The tool names the server lists to the official Python MCP client (in memory)."""
    tools, _ = anyio.run(served)
    return tools


@pytest.fixture(scope="module")
def served_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``browser-sessions serve --transport streamable-http`` on a free loopback port, as users run it."""
    folder = tmp_path_factory.mktemp("serve-http")
    port = free_port()
    env = clean_env(BROWSER_SESSIONS_DATA_DIR=str(folder))
    with running(["serve", "--transport", "streamable-http", "--port", str(port)], port, folder / "serve.log", env):
        yield f"http://127.0.0.1:{port}/mcp"


def inspector(target: list[str], *args: str, home: Path) -> Ran:
    """``mcp-inspector --cli <target> <args> --format json``: one connection, one request, then exit. A stdio
    ``target`` is the server's command line, ``--``, then Inspector options for that server (``-e KEY=VALUE``)."""
    return run_tool("mcp-inspector", ["--cli", *target, *args, "--format", "json"], home)


def call_tool(target: list[str], tool: str, home: Path, **arguments: str) -> Ran:
    """``tools/call`` of ``tool`` through the Inspector, the arguments passed as JSON (verbatim)."""
    return inspector(target, "--method", "tools/call", "--tool-name", tool, *json_arguments(arguments), home=home)


def json_arguments(arguments: dict[str, str]) -> list[str]:
    return ["--tool-args-json", json.dumps(arguments)] if arguments else []


def listed_names(ran: Ran) -> set[str]:
    assert ran.returncode == 0, ran
    return {tool["name"] for tool in ran.json()["result"]["tools"]}


def tool_result(ran: Ran) -> dict[str, Any]:
    result: dict[str, Any] = ran.json()["result"]
    return result


def test_inspector_over_stdio(tmp_path: Path, served_tools: set[str]) -> None:
    """Each Inspector call spawns its own ``browser-sessions serve``: the tools list (portable schemas under
    ``--strict``), ``start_session`` returns an Active session, and a ``terminate`` of it from the next server
    process finds it ended with the server that held it (a stdio server's sessions do not outlive it)."""
    home = tmp_path / "home"
    target = [SERVE, "serve", "--", "-e", f"BROWSER_SESSIONS_DATA_DIR={tmp_path / 'data'}"]

    assert listed_names(inspector(target, "--method", "tools/list", "--strict", home=home)) == served_tools

    start = call_tool(target, "start_session", home)
    assert start.returncode == 0, start
    started = tool_result(start)["structuredContent"]
    assert started["status"] == "Active" and started["backend"] == "local"
    assert re.fullmatch(r"[0-9a-f]{12}", started["sessionId"]), started

    end = call_tool(target, "terminate", home, sessionId=started["sessionId"])
    assert end.returncode == 5, end  # the Inspector's exit code for a tool result with isError
    text = tool_result(end)["content"][0]["text"]
    assert "SESSION_EXPIRED" in text and f"Session {started['sessionId']} is Terminated" in text, text


def test_inspector_over_streamable_http(tmp_path: Path, served_url: str, served_tools: set[str]) -> None:
    """Against one ``serve --transport streamable-http`` process: the tools list on both protocol eras, then
    ``start_session``, ``terminate`` and ``get_session`` of that session, each call its own Inspector run."""
    home = tmp_path / "home"
    target = ["--transport", "http", "--server-url", served_url]

    for era in ("legacy", "modern"):
        listed = inspector(target, "--method", "tools/list", "--strict", "--protocol-era", era, home=home)
        assert listed_names(listed) == served_tools, era

    start = call_tool(target, "start_session", home)
    assert start.returncode == 0, start
    started = tool_result(start)["structuredContent"]
    assert started["status"] == "Active"

    end = call_tool(target, "terminate", home, sessionId=started["sessionId"])
    assert end.returncode == 0, end
    ended = tool_result(end)["structuredContent"]
    assert (ended["sessionId"], ended["status"]) == (started["sessionId"], "Terminated")
    assert ended["transitions"][-1]["reason"] == "terminated by the caller"

    get = call_tool(target, "get_session", home, sessionId=started["sessionId"])
    assert get.returncode == 0, get
    assert tool_result(get)["structuredContent"]["status"] == "Terminated"


def test_every_conformance_scenario_is_classified(tmp_path: Path) -> None:
    """A new suite version with new server scenarios fails here until each is judged applicable or not."""
    ran = run_tool("conformance", ["list"], tmp_path / "home")
    assert ran.returncode == 0, ran
    section = ran.stdout.split("Server scenarios", 1)[1].split("Client scenarios", 1)[0]
    listed = set(re.findall(r"^\s+- (\S+)", section, re.MULTILINE))
    classified = APPLICABLE.keys() | EXCLUDED.keys()
    assert not APPLICABLE.keys() & EXCLUDED.keys()
    assert listed == classified, (
        f"not classified yet: {listed - classified}; no longer in the suite: {classified - listed}"
    )


@pytest.mark.parametrize("scenario", sorted(APPLICABLE))
def test_conformance_scenario_passes(scenario: str, tmp_path: Path, served_url: str) -> None:
    results = tmp_path / "results"
    ran = run_tool("conformance", ["server", "--url", served_url, "--scenario", scenario, "-o", str(results)], tmp_path)
    assert ran.returncode == 0, ran
    [checks_file] = results.glob(f"server-{scenario}-*/checks.json")
    statuses = [check["status"] for check in json.loads(checks_file.read_text())]
    assert "SUCCESS" in statuses and "FAILURE" not in statuses, ran
