"""The main job, end to end: start the server over stdio with the official MCP client, serve a small shop
on 127.0.0.1, run real tasks on it, print the state changes and the output, and terminate the session.

``browser-sessions demo`` and ``examples/quickstart.py`` both run ``main``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from browser_sessions.demo_site import serve_demo_site

PRODUCTS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"Item": {"type": "string"}, "Price": {"type": "number"}, "Stock": {"type": "integer"}},
        "required": ["Item", "Price", "Stock"],
    },
}


def _structured(result: CallToolResult) -> dict[str, Any]:
    if result.is_error or result.structured_content is None:
        text = result.content[0].text if result.content and result.content[0].type == "text" else "?"
        raise SystemExit(f"tool call failed: {text}")
    content: dict[str, Any] = result.structured_content
    return content


async def run(say: Callable[[str], None] = print) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith("BROWSER_SESSIONS_")}
    server = StdioServerParameters(command=sys.executable, args=["-m", "browser_sessions", "serve"], env=env)

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        say(f"    progress: {message}")

    with serve_demo_site() as site:
        say(f"demo shop at {site}")
        async with Client(server) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
            say(f"connected over stdio ({client.protocol_version}); tools: {', '.join(tools)}")

            session = _structured(await client.call_tool("start_session", {}))
            session_id = session["sessionId"]
            say(f"session {session_id}: " + " -> ".join(t["status"] for t in session["transitions"]))

            say("task 1: read the product table as JSON")
            first = _structured(
                await client.call_tool(
                    "send_task",
                    {
                        "sessionId": session_id,
                        "taskDetails": f'go to {site}/\nextract table "Products"',
                        "outputType": "structured_json",
                        "outputSchema": PRODUCTS_SCHEMA,
                    },
                    progress_callback=progress,
                )
            )
            say(f"  {first['status']}: {json.dumps(first['output'])}")

            say("task 2: fill in the contact form")
            second = _structured(
                await client.call_tool(
                    "send_task",
                    {
                        "sessionId": session_id,
                        "taskDetails": (
                            'click "Contact us"\ntype "Ada" into "Name"\nselect "Returns" in "Topic"\n'
                            'check "Send me news"\nclick "Send"\nwait for "Thanks"\nextract text'
                        ),
                    },
                    progress_callback=progress,
                )
            )
            say(f"  {second['status']}: {second['output']!r}")

            final = _structured(await client.call_tool("terminate", {"sessionId": session_id}))
            say("state changes:")
            for change in final["transitions"]:
                say(f"  {change['at']}  {change['status']:<10} {change['reason']}")
            usage = final["usage"]
            say(f"usage: {usage['tasks']} tasks, {usage['steps']} steps, {usage['computeTimeMs']} ms compute")


def main() -> int:
    anyio.run(run)
    return 0
