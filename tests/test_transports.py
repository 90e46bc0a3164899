"""The server as users run it: ``browser-sessions serve`` in a real subprocess, driven by the official MCP
client over stdio, streamable HTTP and SSE, on both protocol eras; and the loopback-only guard for HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPDeprecationWarning, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.subscriptions import ResourceUpdated
from mcp.types import CreateMessageRequestParams, ResourceUpdatedNotification, TextResourceContents

from tests.conftest import DATA_DIR, MODES, call
from tests.processes import running
from tests.site import Site
from tests.test_sampling import sampling

pytestmark = pytest.mark.anyio

SERVE = [sys.executable, "-m", "browser_sessions", "serve"]
TOOL_NAMES = {
    "start_session",
    "run_task",
    "send_task",
    "get_task",
    "answer_guardrail",
    "get_session",
    "list_sessions",
    "terminate",
    "control_session",
    "browser_snapshot",
    "browser_act",
    "browser_screenshot",
    "list_profiles",
    "create_profile",
    "delete_profile",
}
PROTOCOL = {"auto": "2026-07-28", "legacy": "2025-11-25"}
STARTUP_SECONDS = 30


def child_env() -> dict[str, str]:
    """What the server child needs: the caller's ``BROWSER_SESSIONS_*`` settings and PATH (the stdio client
    passes only a minimal environment), with the short timeouts the in-memory tests use."""
    env = {k: v for k, v in os.environ.items() if k.startswith("BROWSER_SESSIONS_")}
    env["PATH"] = os.environ["PATH"]
    if "PYTHONPATH" in os.environ:  # the child imports the code under test, as this process does
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.setdefault("BROWSER_SESSIONS_STEP_TIMEOUT", "2")
    env.setdefault("BROWSER_SESSIONS_NAVIGATION_TIMEOUT", "10")
    env.setdefault("BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK", "true")  # the test site is on 127.0.0.1
    env.setdefault("BROWSER_SESSIONS_DATA_DIR", tempfile.mkdtemp(prefix="server-", dir=DATA_DIR))  # not the user's
    return env


def task_for(site: Site) -> str:
    return f"go to {site.url('/')}\nextract text"


async def exercise(client: Client, site: Site) -> None:
    """The main job over one connection: tools, a session, a task with progress, the session resource."""
    assert {tool.name for tool in (await client.list_tools()).tools} == TOOL_NAMES

    started = await call(client, "start_session")
    assert started["status"] == "Active"
    sid = started["sessionId"]

    messages: list[str | None] = []
    both_steps = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)
        if len(messages) == 2:
            both_steps.set()

    result = await client.call_tool(
        "send_task", {"sessionId": sid, "taskDetails": task_for(site)}, progress_callback=on_progress
    )
    assert not result.is_error, result.content
    done = result.structured_content
    assert done is not None
    assert done["status"] == "task_completed"
    assert "Welcome home." in done["output"]
    with anyio.fail_after(5):  # over a real transport progress notifications race the result
        await both_steps.wait()
    assert messages == [f"step 1: go to {site.url('/')}", "step 2: extract text"]

    read = await client.read_resource(f"session://{sid}")
    [content] = read.contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    state = json.loads(content.text)
    assert (state["sessionId"], state["status"], state["currentUrl"]) == (sid, "Active", site.url("/"))

    final = await call(client, "terminate", sessionId=sid)
    assert final["status"] == "Terminated"
    assert final["transitions"][-1]["reason"] == "terminated by the caller"


# ----- stdio -----


@pytest.mark.parametrize("mode", MODES)
async def test_stdio(mode: str, site: Site) -> None:
    params = StdioServerParameters(command=SERVE[0], args=SERVE[1:], env=child_env())
    with anyio.fail_after(90):
        async with Client(params, mode=mode) as client:
            assert client.protocol_version == PROTOCOL[mode]
            await exercise(client, site)


# ----- HTTP transports (a server process on a free loopback port) -----


@contextmanager
def serve_process(transport: str, port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``serve`` on 127.0.0.1:``port`` with the test settings."""
    args = ["serve", "--transport", transport, "--port", str(port)]
    with running(args, port, log_path, {**os.environ, **child_env()}) as proc:
        yield proc


@pytest.fixture
def http_url(free_tcp_port: int, tmp_path: Path) -> Iterator[str]:
    with serve_process("streamable-http", free_tcp_port, tmp_path / "serve.log"):
        yield f"http://127.0.0.1:{free_tcp_port}/mcp"


@pytest.mark.parametrize("mode", MODES)
async def test_streamable_http(mode: str, http_url: str, site: Site) -> None:
    with anyio.fail_after(90):
        async with Client(http_url, mode=mode) as client:
            assert client.protocol_version == PROTOCOL[mode]
            await exercise(client, site)


async def test_streamable_http_legacy_subscriber_hears_resource_updated(http_url: str, site: Site) -> None:
    watched: list[str] = []
    updated = anyio.Event()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification) and str(message.params.uri) in watched:
            updated.set()

    with anyio.fail_after(90):
        async with Client(http_url, mode="legacy", message_handler=on_message) as client:
            sid = (await call(client, "start_session"))["sessionId"]
            uri = f"session://{sid}"
            watched.append(uri)
            with pytest.warns(MCPDeprecationWarning):
                await client.subscribe_resource(uri)
            done = await call(client, "send_task", sessionId=sid, taskDetails=task_for(site))
            assert done["status"] == "task_completed"
            with anyio.fail_after(10):
                await updated.wait()
            with pytest.warns(MCPDeprecationWarning):
                await client.unsubscribe_resource(uri)
            await call(client, "terminate", sessionId=sid)


async def test_streamable_http_legacy_client_model_drives_a_task_after_the_call_returned(
    http_url: str, site: Site
) -> None:
    received: list[CreateMessageRequestParams] = []
    with anyio.fail_after(90):
        async with Client(http_url, mode="legacy", **sampling(received)) as client:
            task = await call(
                client, "run_task", taskDetails="What does it cost?", startingPoint=site.url("/shop"), waitSeconds=0
            )
            ids = {"sessionId": task["sessionId"], "taskId": task["taskId"]}
            done = await call(client, "get_task", **ids, waitSeconds=60)
    assert done["status"] == "task_completed" and done["output"] == "It costs $49.99.", done
    assert len(received) == 2


async def test_streamable_http_modern_listener_hears_resource_updated(http_url: str, site: Site) -> None:
    with anyio.fail_after(90):
        async with Client(http_url) as client:
            assert client.protocol_version == PROTOCOL["auto"]
            sid = (await call(client, "start_session"))["sessionId"]
            uri = f"session://{sid}"
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                assert uri in subscription.honored.resource_subscriptions
                done = await call(client, "send_task", sessionId=sid, taskDetails=task_for(site))
                assert done["status"] == "task_completed"
                with anyio.fail_after(10):
                    async for event in subscription:
                        if event == ResourceUpdated(uri=uri):
                            break
            await call(client, "terminate", sessionId=sid)


@pytest.fixture
def sse_url(free_tcp_port: int, tmp_path: Path) -> Iterator[str]:
    with serve_process("sse", free_tcp_port, tmp_path / "serve.log"):
        yield f"http://127.0.0.1:{free_tcp_port}/sse"


async def test_sse_smoke(sse_url: str) -> None:
    with anyio.fail_after(60):
        async with Client(sse_client(sse_url)) as client:
            started = await call(client, "start_session")
            assert started["status"] == "Active"
            final = await call(client, "terminate", sessionId=started["sessionId"])
            assert final["status"] == "Terminated"


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_http_transports_refuse_non_loopback_host(transport: str) -> None:
    # A browser path that cannot work shows the refusal comes before any browser is looked for.
    env = {**os.environ, "BROWSER_SESSIONS_BROWSER_PATH": "/nonexistent"}
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [*SERVE, "--transport", transport, "--host", "0.0.0.0", "--port", "0"], env=env, check=False
        )
    assert done.returncode != 0
    stderr = done.stderr.decode()
    assert "Refusing to serve on 0.0.0.0" in stderr
    assert "loopback" in stderr
    assert done.stdout == b""
