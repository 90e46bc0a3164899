"""A pydantic-ai agent whose toolset is browser-sessions, through pydantic-ai's MCP client (``MCPToolset``).

The server runs as ``browser-sessions serve`` over stdio. The toolset is entered once (``async with
toolset``) so one server process, and so one set of browser sessions, serves every call of the run; the
server stops when the block ends.

With ``ANTHROPIC_API_KEY`` or ``OPENAI_API_KEY`` set (or ``--model provider:name``), a pydantic-ai ``Agent``
carries out ``--task`` with these tools. Without a key it stops before the model: it prints the tools it
loaded, starts a session and terminates it by calling the tools directly.

    pip install -e ".[examples]"      # pydantic-ai-slim[mcp,anthropic,openai]; shares mcp 2 with the server
    .venv/bin/python examples/pydantic_ai_agent.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset

DEFAULT_TASK = (
    "Start a browser session, run the task 'go to https://example.com' followed by 'extract text' in it, "
    "tell me the page's heading, and terminate the session."
)
# openai-chat: the chat-completions API, which OpenAI-compatible servers (OPENAI_BASE_URL) speak too
DEFAULT_MODELS = {"ANTHROPIC_API_KEY": "anthropic:claude-sonnet-4-5", "OPENAI_API_KEY": "openai-chat:gpt-4.1"}


def server_environment() -> dict[str, str]:
    """The server's settings: this process's ``BROWSER_SESSIONS_*`` and model variables (the stdio client
    adds only a minimal environment such as HOME and PATH)."""
    ours = ("BROWSER_SESSIONS_", "ANTHROPIC_", "OPENAI_")
    return {name: value for name, value in os.environ.items() if name.startswith(ours)}


def find_server(requested: str | None) -> str:
    """The browser-sessions executable: as given, else the one installed next to this Python, else on PATH."""
    if requested:
        found = shutil.which(requested)
    else:
        beside = Path(sys.executable).parent / "browser-sessions"
        found = str(beside) if beside.exists() else shutil.which("browser-sessions")
    if found is None:
        raise SystemExit("browser-sessions not found: install it (pip install -e .) or pass --server-command PATH")
    return found


def choose_model(requested: str | None) -> str | None:
    """``provider:model`` for the agent, or None when no model is configured."""
    if requested:
        return requested
    return next((model for key, model in DEFAULT_MODELS.items() if os.environ.get(key)), None)


async def call(toolset: MCPToolset[Any], name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool the way the agent would, outside a model run; the result is the tool's structured content."""
    result = await toolset.direct_call_tool(name, arguments)
    if not isinstance(result, dict):
        raise SystemExit(f"{name} answered without structured content: {result!r}")
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-command", help="the browser-sessions executable (default: found)")
    parser.add_argument("--model", help="provider:model, e.g. anthropic:claude-sonnet-4-5 (default: from the key)")
    parser.add_argument("--task", default=DEFAULT_TASK, help="what the agent should do")
    args = parser.parse_args()

    transport = StdioTransport(
        command=find_server(args.server_command), args=["serve"], env=server_environment(), keep_alive=False
    )
    toolset: MCPToolset[Any] = MCPToolset(
        transport,
        id="browser-sessions",
        # the server starts in about 2 s, longer on a busy machine: pydantic-ai's default of 5 s is too tight
        init_timeout=60,
        # our tool errors say what to do next: show them to the model as they are, without a retry prompt
        tool_error_behavior="failed",
    )
    async with toolset:
        tools = await toolset.list_tools()
        print(f"loaded {len(tools)} tools: {', '.join(tool.name for tool in tools)}")

        model = choose_model(args.model)
        if model is None:
            print("no model configured (set ANTHROPIC_API_KEY or OPENAI_API_KEY, or --model): calling tools directly")
            started = await call(toolset, "start_session", {})
            print(f"started session {started['sessionId']}: {started['status']}")
            ended = await call(toolset, "terminate", {"sessionId": started["sessionId"]})
            print(f"terminated session {ended['sessionId']}: {ended['status']}")
            return 0

        agent = Agent(model, toolsets=[toolset], instructions="You use browser sessions to work on the web.")
        print(f"agent ({model}) working on: {args.task}")
        result = await agent.run(args.task)
        for message in result.all_messages():
            for part in message.parts:
                if part.part_kind == "tool-call":
                    print(f"  tool call: {part.tool_name}({part.args_as_dict()})")
        print(f"answer: {result.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
