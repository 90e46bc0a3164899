"""The examples as users run them.

- Each host config in ``examples/`` starts our server with exactly the command, arguments and environment
  it names (host variables such as ``${workspaceFolder}`` substituted as the host would), and the official
  MCP client lists the tools over stdio in the handshake era the hosts speak. Each ``url`` config reaches a
  ``serve --transport streamable-http`` with bearer tokens at that URL with the header it names.
- Each agent-framework example runs as a real subprocess: without a model key up to the model (tools load,
  a session starts and is terminated by direct tool calls), and with a key through one agent run against
  the scripted model on 127.0.0.1 (tests/scripted_model.py), which calls start_session and terminate.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from browser_sessions.mcp.server import build_server
from browser_sessions.settings import Settings
from tests.conftest import make_settings
from tests.example_venvs import ROOT, example_python
from tests.processes import clean_env, free_port, running
from tests.scripted_model import Call, Received, Say, ScriptedModel

EXAMPLES = ROOT / "examples"
TOKEN = "examples-token-0123456789abcdef"
CHECKOUT_PLACEHOLDER = "/path/to/checkout"  # Claude Desktop has no variables: the README says to replace it
HOST_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# what a host substitutes for ${input:...} and ${env:...}: a user with no model key, holding the server's token
HOST_INPUTS = {"anthropic-api-key": "", "browser-sessions-token": TOKEN}
HOST_ENV = {"ANTHROPIC_API_KEY": "", "BROWSER_SESSIONS_AUTH_TOKENS": TOKEN}
# config file -> (key holding the servers, the entry's "type")
STDIO_CONFIGS = {
    "claude_desktop_config.json": ("mcpServers", None),
    "vscode_mcp.json": ("servers", "stdio"),
    "cursor_mcp.json": ("mcpServers", None),
}
URL_CONFIGS = {"vscode_mcp_http.json": ("servers", "http"), "cursor_mcp_http.json": ("mcpServers", None)}
FRAMEWORKS = ["langchain_agent.py", "pydantic_ai_agent.py"]
CONNECT_SECONDS = 60
RUN_SECONDS = 180
LEFTOVER_SECONDS = 10  # a server killed on a busy machine may leave Chromium exiting a moment longer


@pytest.fixture(scope="module")
def server_tools() -> list[str]:
    """The names of the tools the server offers, sorted: what every example must end up with."""

    async def names() -> list[str]:
        async with Client(build_server(make_settings())) as client:
            return sorted(tool.name for tool in (await client.list_tools()).tools)

    return anyio.run(names)


# ----- host configs -----


def server_entry(file: str, key: str, kind: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(whole config, its ``browser-sessions`` entry), checked for the host's shape."""
    config: dict[str, Any] = json.loads((EXAMPLES / file).read_text())
    assert list(config[key]) == ["browser-sessions"], f"{file}: one server under {key!r}"
    entry: dict[str, Any] = config[key]["browser-sessions"]
    assert entry.get("type") == kind, f"{file}: the entry's type must be {kind!r}"
    return config, entry


def substitute(value: str, config: dict[str, Any]) -> str:
    """``value`` as the host passes it on: ``${workspaceFolder}`` is this checkout, ``${input:id}`` (declared
    in ``inputs``) and ``${env:NAME}`` what the user gave; any other variable fails the test."""
    declared = {item["id"] for item in config.get("inputs", [])}

    def one(match: re.Match[str]) -> str:
        kind, _, name = match[1].partition(":")
        if kind == "workspaceFolder" and not name:
            return str(ROOT)
        if kind == "input" and name in declared and name in HOST_INPUTS:
            return HOST_INPUTS[name]
        if kind == "env" and name in HOST_ENV:
            return HOST_ENV[name]
        pytest.fail(f"the config uses ${{{match[1]}}}, which the test does not know a host value for")

    return HOST_VARIABLE.sub(one, value.replace(CHECKOUT_PLACEHOLDER, str(ROOT)))


@pytest.mark.anyio
@pytest.mark.parametrize("file", list(STDIO_CONFIGS))
async def test_a_host_config_starts_the_server(file: str, tmp_path: Path, server_tools: list[str]) -> None:
    config, entry = server_entry(file, *STDIO_CONFIGS[file])
    command = substitute(entry["command"], config)
    assert os.access(command, os.X_OK), f"{file}: {entry['command']} is {command}, which is no executable"
    assert entry["args"] == ["serve"]
    env = {name: substitute(value, config) for name, value in entry.get("env", {}).items()}
    env["BROWSER_SESSIONS_DATA_DIR"] = str(tmp_path)  # the only addition: keep the records out of ~/.local
    server = StdioServerParameters(command=command, args=entry["args"], env=env)
    with anyio.fail_after(CONNECT_SECONDS):
        async with Client(server, mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    assert tools == server_tools


@pytest.fixture(scope="module")
def http_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A ``serve --transport streamable-http`` that takes ``TOKEN``; yields its port."""
    folder = tmp_path_factory.mktemp("url-configs")
    port = free_port()
    env = clean_env(BROWSER_SESSIONS_AUTH_TOKENS=TOKEN, BROWSER_SESSIONS_DATA_DIR=str(folder))
    with running(["serve", "--transport", "streamable-http", "--port", str(port)], port, folder / "serve.log", env):
        yield port


@pytest.mark.anyio
@pytest.mark.parametrize("file", list(URL_CONFIGS))
async def test_a_url_config_reaches_the_server_with_its_header(
    file: str, http_port: int, server_tools: list[str]
) -> None:
    config, entry = server_entry(file, *URL_CONFIGS[file])
    url = urlsplit(substitute(entry["url"], config))
    default_port = Settings.model_fields["port"].default
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", "127.0.0.1", default_port, "/mcp")
    here = url._replace(netloc=f"127.0.0.1:{http_port}").geturl()  # the same URL on this test's free port
    headers = {name: substitute(value, config) for name, value in entry["headers"].items()}
    with anyio.fail_after(CONNECT_SECONDS):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(here, http_client=http), mode="legacy") as client,
        ):
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        async with httpx2.AsyncClient(timeout=30) as bare:
            without = await bare.post(here, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert tools == server_tools
    assert without.status_code == 401, "the header is what lets the client in"


# ----- agent frameworks -----


def python_for(example: str) -> tuple[Path, list[str]]:
    """(interpreter, extra arguments) to run ``example`` with, as its docstring tells a user to."""
    if example == "langchain_agent.py":  # its own venv; the server stays in the project's
        python = example_python("langchain", EXAMPLES / "requirements-langchain.txt")
        return python, ["--server-command", str(Path(sys.executable).parent / "browser-sessions")]
    return Path(sys.executable), []  # shares the project's venv and finds browser-sessions beside it


def run_example(python: Path, example: str, args: list[str], data_dir: Path, **env: str) -> str:
    """Run ``examples/<example>`` to the end; it must succeed and leave no process behind (every process the
    server or its Chromium started carries the data folder in its environment). Returns its output."""
    command = [str(python), str(EXAMPLES / example), *args]
    done = subprocess.run(
        command,
        env=clean_env(BROWSER_SESSIONS_DATA_DIR=str(data_dir), **env),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"{example} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    deadline = time.monotonic() + LEFTOVER_SECONDS
    while left := processes_with(f"BROWSER_SESSIONS_DATA_DIR={data_dir}"):
        assert time.monotonic() < deadline, f"{example} left processes behind: {left}"
        time.sleep(0.1)
    return done.stdout


def processes_with(variable: str) -> list[int]:
    """Ids of this machine's processes whose environment holds ``variable`` (``NAME=value``)."""
    wanted = variable.encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return [pid for pid in found if pid != os.getpid()]


def loaded_tools(output: str) -> list[str]:
    match = re.search(r"^loaded (\d+) tools: (.+)$", output, re.MULTILINE)
    assert match, output
    names = match[2].split(", ")
    assert int(match[1]) == len(names)
    return sorted(names)


@pytest.mark.parametrize("example", FRAMEWORKS)
def test_a_framework_example_without_a_model_loads_the_tools_and_calls_them(
    example: str, tmp_path: Path, server_tools: list[str]
) -> None:
    python, args = python_for(example)
    output = run_example(python, example, args, tmp_path)
    assert loaded_tools(output) == server_tools
    assert "no model configured" in output
    started = re.search(r"^started session (\S+): Active$", output, re.MULTILINE)
    assert started, output
    assert f"terminated session {started[1]}: Terminated" in output.splitlines()


def session_id(received: Received) -> dict[str, str]:
    """Arguments for ``terminate``: the session that the last tool result (start_session's) names, as JSON
    (structured content) or as our text reply."""
    observation = received.observation()
    match = re.search(r'"sessionId":\s*"([^"]+)"|^Session (\S+) is', observation)
    assert match, observation
    return {"sessionId": match[1] or match[2]}


def offered_tools(received: Received) -> list[str]:
    """The tool names a model request offered, in either wire format."""
    tools = received.body.get("tools") or []
    return sorted(tool["function"]["name"] if received.api == "openai" else tool["name"] for tool in tools)


# LangChain takes its model from the key; pydantic-ai is named one, since it streams from Anthropic models it
# knows to allow long outputs, and the scripted model answers whole responses only
MODEL_RUNS = [
    ("langchain_agent.py", "openai", []),
    ("pydantic_ai_agent.py", "anthropic", ["--model", "anthropic:scripted"]),
]


@pytest.mark.parametrize(("example", "api", "model"), MODEL_RUNS)
def test_a_framework_example_with_a_model_key_runs_its_agent_on_our_tools(
    example: str,
    api: str,
    model: list[str],
    tmp_path: Path,
    scripted: ScriptedModel,
    server_tools: list[str],
) -> None:
    python, args = python_for(example)
    scripted.script(Call("start_session", {}), Call("terminate", session_id), Say("The session is terminated."))
    keys = (
        {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": scripted.openai_base_url}
        if api == "openai"
        else {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": scripted.anthropic_base_url}
    )
    task = ["--task", "Start a browser session, then end it."]
    output = run_example(python, example, [*args, *model, *task], tmp_path, **keys)
    assert [received.api for received in scripted.requests] == [api] * 3, output
    assert offered_tools(scripted.requests[0]) == server_tools
    assert "Terminated" in scripted.requests[2].observation()  # terminate reached our server and ended it
    calls = re.findall(r"^  tool call: (\w+)\(", output, re.MULTILINE)
    assert calls == ["start_session", "terminate"], output
    assert output.splitlines()[-1] == "answer: The session is terminated."
