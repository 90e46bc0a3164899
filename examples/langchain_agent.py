"""A LangChain agent whose tools are browser-sessions, through ``langchain-mcp-adapters``.

The server runs as ``browser-sessions serve`` over stdio. The tools are loaded on ONE MCP session that stays
open for the whole run: browser sessions live in the server process, so a session started by one tool call
must still be there for the next (``MultiServerMCPClient.get_tools()`` alone would start a new server for
every call).

With ``ANTHROPIC_API_KEY`` or ``OPENAI_API_KEY`` set (or ``--model provider:name``), a LangChain agent
(``langchain.agents.create_agent``, a ReAct loop) carries out ``--task``. Without a key it stops before the
model: it prints the tools it loaded, starts a session and terminates it by calling the tools directly.

    python3 -m venv .venv-examples/langchain
    .venv-examples/langchain/bin/pip install -r examples/requirements-langchain.txt
    .venv-examples/langchain/bin/python examples/langchain_agent.py --server-command .venv/bin/browser-sessions

langchain-mcp-adapters needs mcp<2 while browser-sessions needs mcp 2, so the two live in separate venvs: the
example's venv holds the client side only and starts the server from wherever it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from typing import Any

import anyio
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp import ClientSession

DEFAULT_TASK = (
    "Start a browser session, run the task 'go to https://example.com' followed by 'extract text' in it, "
    "tell me the page's heading, and terminate the session."
)
DEFAULT_MODELS = {"ANTHROPIC_API_KEY": "anthropic:claude-sonnet-4-5", "OPENAI_API_KEY": "openai:gpt-4.1"}


def server_environment() -> dict[str, str]:
    """The server's settings: this process's ``BROWSER_SESSIONS_*`` and model variables (the stdio client
    adds only a minimal environment such as HOME and PATH)."""
    ours = ("BROWSER_SESSIONS_", "ANTHROPIC_", "OPENAI_")
    return {name: value for name, value in os.environ.items() if name.startswith(ours)}


def choose_model(requested: str | None) -> str | None:
    """``provider:model`` for the agent, or None when no model is configured."""
    if requested:
        return requested
    return next((model for key, model in DEFAULT_MODELS.items() if os.environ.get(key)), None)


async def call(tool: BaseTool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Invoke a loaded tool as an agent would (a tool call) and return the MCP structured content, which
    langchain-mcp-adapters hands over as the ToolMessage's artifact."""
    message = await tool.ainvoke({"type": "tool_call", "name": tool.name, "args": arguments, "id": "direct-1"})
    if message.status == "error" or not message.artifact:
        raise SystemExit(f"{tool.name} failed: {message.content}")
    structured: dict[str, Any] = message.artifact["structured_content"]
    return structured


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-command", default="browser-sessions", help="the browser-sessions executable")
    parser.add_argument("--model", help="provider:model, e.g. anthropic:claude-sonnet-4-5 (default: from the key)")
    parser.add_argument("--task", default=DEFAULT_TASK, help="what the agent should do")
    args = parser.parse_args()

    command = shutil.which(args.server_command)
    if command is None:
        raise SystemExit(f"{args.server_command} not found: pass --server-command /path/to/.venv/bin/browser-sessions")
    client = MultiServerMCPClient(
        {
            "browser-sessions": {
                "transport": "stdio",
                "command": command,
                "args": ["serve"],
                "env": server_environment(),
            }
        }
    )
    try:
        async with client.session("browser-sessions") as session:
            await work(session, choose_model(args.model), args.task)
    except* anyio.BrokenResourceError:
        # mcp 1.x's stdio client (langchain-mcp-adapters needs mcp<2) raises this when the server still writes a
        # message while the client closes (python-sdk issue #1960; fixed in mcp 2). The client has waited for the
        # server to exit by then and the work is done.
        pass
    return 0


async def work(session: ClientSession, model: str | None, task: str) -> None:
    """Load the tools on ``session``; run the agent with ``model``, or call two tools directly without one."""
    tools = await load_mcp_tools(session)
    print(f"loaded {len(tools)} tools: {', '.join(tool.name for tool in tools)}")
    by_name = {tool.name: tool for tool in tools}

    if model is None:
        print("no model configured (set ANTHROPIC_API_KEY or OPENAI_API_KEY, or --model): calling tools directly")
        started = await call(by_name["start_session"], {})
        print(f"started session {started['sessionId']}: {started['status']}")
        ended = await call(by_name["terminate"], {"sessionId": started["sessionId"]})
        print(f"terminated session {ended['sessionId']}: {ended['status']}")
        return

    from langchain.agents import create_agent  # imported here: slow to import, and only the agent needs it

    agent = create_agent(model, tools, system_prompt="You use browser sessions to work on the web.")
    print(f"agent ({model}) working on: {task}")
    result = await agent.ainvoke({"messages": [{"role": "user", "content": task}]})
    for message in result["messages"]:
        for tool_call in getattr(message, "tool_calls", None) or []:
            print(f"  tool call: {tool_call['name']}({tool_call['args']})")
    print(f"answer: {result['messages'][-1].text}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
