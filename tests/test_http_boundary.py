"""The HTTP boundary over real HTTP: ``browser-sessions serve`` in a subprocess with bearer tokens, driven by
the official MCP client and by plain HTTP requests.

- A token is required (none or a wrong one: 401), and tokens are never written to the log.
- Each session belongs to the token that created it: another token can neither list, read, act on, control
  nor terminate it, and is answered exactly as for an unknown session; the owner still can.
- Host and Origin are checked (DNS rebinding): a foreign Host gets 421, a foreign Origin 403.
- Bound beyond loopback, ``serve`` refuses to start without tokens and starts with one.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPDeprecationWarning, MCPError
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ResourceUpdatedNotification, TextResourceContents

from tests.conftest import MODES, call, call_error
from tests.processes import clean_env, free_port, running
from tests.site import Site

pytestmark = pytest.mark.anyio

TOKEN_A = "alice-0123456789abcdef0123456789"
TOKEN_B = "bob-fedcba9876543210fedcba987654"
UNKNOWN_ID = "0123456789ab"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def serve_env(data_dir: Path, **settings: str) -> dict[str, str]:
    return clean_env(
        BROWSER_SESSIONS_STEP_TIMEOUT="2",
        BROWSER_SESSIONS_NAVIGATION_TIMEOUT="10",
        BROWSER_SESSIONS_DATA_DIR=str(data_dir),
        BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK="true",  # the test site is on 127.0.0.1
        **settings,
    )


@dataclass(frozen=True)
class Served:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One streamable-HTTP server with two tokens, shared by this module's tests."""
    folder = tmp_path_factory.mktemp("http-boundary")
    port = free_port()
    env = serve_env(folder, BROWSER_SESSIONS_AUTH_TOKENS=f"{TOKEN_A}, {TOKEN_B}")
    with running(["serve", "--transport", "streamable-http", "--port", str(port)], port, folder / "serve.log", env):
        yield Served(port, folder / "serve.log")


def http_client(token: str | None = None) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300))


@asynccontextmanager
async def connected(url: str, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    async with http_client(token) as http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client


async def post_initialize(url: str, token: str | None, **headers: str) -> httpx2.Response:
    async with http_client(token) as http:
        return await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers})


def unknown_session_error(message: str, session_id: str) -> str:
    """``message`` about ``session_id`` as it would read about a session that never existed."""
    return message.replace(session_id, UNKNOWN_ID)


async def read_error(client: Client, uri: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return str(caught.value)


# ----- tokens -----


async def test_a_request_without_a_token_or_with_a_wrong_one_is_refused(served: Served) -> None:
    with anyio.fail_after(30):
        missing = await post_initialize(served.url, None)
        wrong = await post_initialize(served.url, TOKEN_A[:-1] + "x")
        right = await post_initialize(served.url, TOKEN_A)
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401, wrong.text
    assert right.status_code == 200, right.text


async def test_an_mcp_session_answers_only_the_token_that_opened_it(served: Served) -> None:
    with anyio.fail_after(30):
        opened = await post_initialize(served.url, TOKEN_A)
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        async with http_client(TOKEN_B) as bob, http_client(TOKEN_A) as alice:
            stolen = await bob.post(served.url, json=ping, headers={**MCP_HEADERS, **session})
            own = await alice.post(served.url, json=ping, headers={**MCP_HEADERS, **session})
    assert stolen.status_code == 404, stolen.text
    assert own.status_code == 200, own.text


# ----- ownership between two credentials -----


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_belongs_to_the_token_that_created_it(mode: str, served: Served, site: Site) -> None:
    with anyio.fail_after(120):
        async with connected(served.url, TOKEN_A, mode) as alice, connected(served.url, TOKEN_B, mode) as bob:
            sid = (await call(alice, "start_session"))["sessionId"]
            task = await call(alice, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}\nextract text")
            assert task["status"] == "task_completed", task
            tid = task["taskId"]

            # Bob cannot list it, in the tool or the resource list
            for include_ended in (False, True):
                listed = await call(bob, "list_sessions", includeEnded=include_ended)
                assert sid not in {s["sessionId"] for s in listed["sessions"]}
            assert not [r for r in (await bob.list_resources()).resources if sid in str(r.uri)]

            # every call about it reads exactly as for a session that does not exist
            attempts: dict[str, dict[str, Any]] = {
                "get_session": {},
                "get_task": {"taskId": tid},
                "send_task": {"taskDetails": "extract text"},
                "answer_guardrail": {"taskId": tid, "response": "yes"},
                "control_session": {"action": "pause"},
                "browser_snapshot": {},
                "browser_act": {"action": "navigate", "url": site.url("/shop")},
                "browser_screenshot": {},
                "terminate": {},
            }
            for tool, arguments in attempts.items():
                refused = await call_error(bob, tool, sessionId=sid, **arguments)
                never_existed = await call_error(bob, tool, sessionId=UNKNOWN_ID, **arguments)
                assert "SESSION_NOT_FOUND" in refused, (tool, refused)
                assert unknown_session_error(refused, sid) == never_existed, tool
            for suffix in ("", f"/tasks/{tid}", f"/tasks/{tid}/output", "/screenshot"):
                refused = await read_error(bob, f"session://{sid}{suffix}")
                never_existed = await read_error(bob, f"session://{UNKNOWN_ID}{suffix}")
                assert "SESSION_NOT_FOUND" in refused, (suffix, refused)
                assert unknown_session_error(refused, sid) == never_existed, suffix

            # Alice still has it, untouched: Active, on the page her task opened, her task done
            state = await call(alice, "get_session", sessionId=sid)
            assert (state["status"], state["currentUrl"]) == ("Active", site.url("/"))
            assert [t["taskId"] for t in state["tasks"]] == [tid]
            assert sid in {s["sessionId"] for s in (await call(alice, "list_sessions"))["sessions"]}
            assert (await call(alice, "get_task", sessionId=sid, taskId=tid))["status"] == "task_completed"
            [content] = (await alice.read_resource(f"session://{sid}")).contents
            assert isinstance(content, TextResourceContents)
            assert json.loads(content.text)["sessionId"] == sid
            snapshot = await call(alice, "browser_snapshot", sessionId=sid)
            assert snapshot["url"] == site.url("/")
            acted = await call(alice, "browser_act", sessionId=sid, action="navigate", url=site.url("/shop"))
            assert acted["url"] == site.url("/shop")
            paused = await call(alice, "control_session", sessionId=sid, action="pause")
            assert paused["sessionId"] == sid

            # and the other way round: Bob's own session is his alone
            bobs = (await call(bob, "start_session"))["sessionId"]
            assert bobs not in {s["sessionId"] for s in (await call(alice, "list_sessions"))["sessions"]}
            assert "SESSION_NOT_FOUND" in await call_error(alice, "terminate", sessionId=bobs)
            assert (await call(bob, "terminate", sessionId=bobs))["status"] == "Terminated"

            assert (await call(alice, "terminate", sessionId=sid))["status"] == "Terminated"
            # an ended session stays private too
            ended = await call_error(bob, "get_session", sessionId=sid)
            assert unknown_session_error(ended, sid) == await call_error(bob, "get_session", sessionId=UNKNOWN_ID)


async def test_a_subscription_to_another_owners_session_is_never_notified(served: Served, site: Site) -> None:
    heard: list[str] = []
    own_heard = anyio.Event()
    own_uri: list[str] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            heard.append(str(message.params.uri))
            if heard[-1] in own_uri:
                own_heard.set()

    task = f"go to {site.url('/')}"
    with anyio.fail_after(90):
        async with (
            connected(served.url, TOKEN_A) as alice,
            http_client(TOKEN_B) as http,
            Client(
                streamable_http_client(served.url, http_client=http), mode="legacy", message_handler=on_message
            ) as bob,
        ):
            alices = (await call(alice, "start_session"))["sessionId"]
            bobs = (await call(bob, "start_session"))["sessionId"]
            own_uri.append(f"session://{bobs}")
            with pytest.warns(MCPDeprecationWarning):
                await bob.subscribe_resource(f"session://{alices}")  # accepted, as for any unknown URI
            with pytest.warns(MCPDeprecationWarning):
                await bob.subscribe_resource(own_uri[0])
            assert (await call(alice, "send_task", sessionId=alices, taskDetails=task))["status"] == "task_completed"
            # events are delivered in order: once Bob hears about his later task, Alice's would have come first
            assert (await call(bob, "send_task", sessionId=bobs, taskDetails=task))["status"] == "task_completed"
            await own_heard.wait()
            assert not [uri for uri in heard if alices in uri]
            await call(alice, "terminate", sessionId=alices)
            await call(bob, "terminate", sessionId=bobs)


async def test_a_modern_listener_is_never_told_of_another_owners_session(served: Served, site: Site) -> None:
    task = f"go to {site.url('/')}"
    with anyio.fail_after(90):
        async with connected(served.url, TOKEN_A, "auto") as alice, connected(served.url, TOKEN_B, "auto") as bob:
            alices = f"session://{(await call(alice, 'start_session'))['sessionId']}"
            bobs_id = (await call(bob, "start_session"))["sessionId"]
            bobs = f"session://{bobs_id}"
            async with bob.listen(resource_subscriptions=[alices, bobs]) as subscription:
                assert subscription.honored.resource_subscriptions == [bobs]  # Alice's reads as no session
                await call(alice, "send_task", sessionId=alices.removeprefix("session://"), taskDetails=task)
                await call(bob, "send_task", sessionId=bobs_id, taskDetails=task)
                heard: list[str] = []
                async for event in subscription:  # in order: Alice's events would come before Bob's
                    heard.append(str(getattr(event, "uri", "")))
                    if heard[-1] == bobs:
                        break
            assert not [uri for uri in heard if uri.startswith(alices)]


def test_tokens_never_reach_the_log(served: Served) -> None:
    for path in (served.log, served.log.parent / "logs" / "browser-sessions.log"):  # stderr, the data folder's
        log = path.read_text()
        assert "serving streamable-http" in log  # the log is being written
        assert TOKEN_A not in log
        assert TOKEN_B not in log


# ----- DNS rebinding -----


async def test_a_foreign_host_or_origin_is_refused(served: Served) -> None:
    with anyio.fail_after(30):
        foreign_host = await post_initialize(served.url, TOKEN_A, Host=f"rebound.example:{served.port}")
        foreign_origin = await post_initialize(served.url, TOKEN_A, Origin="http://rebound.example")
        own_origin = await post_initialize(served.url, TOKEN_A, Origin=f"http://localhost:{served.port}")
    assert foreign_host.status_code == 421, foreign_host.text
    assert foreign_origin.status_code == 403, foreign_origin.text
    assert own_origin.status_code == 200, own_origin.text


# ----- binding beyond loopback -----


SERVE_ANYWHERE = [sys.executable, "-m", "browser_sessions", "serve", "--transport", "streamable-http"]


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_binding_beyond_loopback_without_a_token_refuses_to_start(transport: str, tmp_path: Path) -> None:
    # A browser path that cannot work shows the refusal comes before any browser is looked for.
    env = serve_env(tmp_path, BROWSER_SESSIONS_BROWSER_PATH="/nonexistent")
    args = [sys.executable, "-m", "browser_sessions", "serve", "--transport", transport, "--host", "0.0.0.0"]
    done = subprocess.run([*args, "--port", "0"], env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "Refusing to serve on 0.0.0.0 without authentication" in done.stderr.decode()
    assert "BROWSER_SESSIONS_AUTH_TOKENS" in done.stderr.decode()
    assert done.stdout == b""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"BROWSER_SESSIONS_AUTH_TOKENS": f"{TOKEN_A},short-secret"}, "shorter than 16 characters"),
        ({"BROWSER_SESSIONS_ALLOWED_HOSTS": "https://mcp.example.test/"}, "is not a host name or host:port"),
    ],
)
def test_bad_boundary_settings_refuse_to_start(settings: dict[str, str], message: str, tmp_path: Path) -> None:
    env = serve_env(tmp_path, BROWSER_SESSIONS_BROWSER_PATH="/nonexistent", **settings)
    done = subprocess.run([*SERVE_ANYWHERE, "--port", "0"], env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert "short-secret" not in done.stderr.decode()
    assert TOKEN_A not in done.stderr.decode()


async def test_binding_beyond_loopback_with_a_token_serves_it(tmp_path: Path) -> None:
    port = free_port()
    env = serve_env(
        tmp_path,
        BROWSER_SESSIONS_AUTH_TOKENS=TOKEN_A,
        BROWSER_SESSIONS_ALLOWED_HOSTS="mcp.example.test, proxy.example.test:8443",
        BROWSER_SESSIONS_ALLOWED_ORIGINS="https://app.example.test",
    )
    with running([*SERVE_ANYWHERE[3:], "--host", "0.0.0.0", "--port", str(port)], port, tmp_path / "serve.log", env):
        url = f"http://127.0.0.1:{port}/mcp"
        with anyio.fail_after(60):
            assert (await post_initialize(url, None)).status_code == 401
            accepted = {
                "machine name": {"Host": f"{socket.gethostname()}:{port}"},
                "allowed name, any port": {"Host": "mcp.example.test:1234"},
                "allowed name and port": {"Host": "proxy.example.test:8443"},
                "allowed origin": {"Origin": "https://app.example.test"},
                "origin on an allowed name": {"Origin": "https://mcp.example.test"},
            }
            for case, headers in accepted.items():
                assert (await post_initialize(url, TOKEN_A, **headers)).status_code == 200, case
            refused = {
                "foreign name": ({"Host": f"rebound.example:{port}"}, 421),
                "allowed name, other port": ({"Host": "proxy.example.test:9999"}, 421),
                "foreign origin": ({"Origin": "https://rebound.example"}, 403),
            }
            for case, (headers, status) in refused.items():
                assert (await post_initialize(url, TOKEN_A, **headers)).status_code == status, case
            async with connected(url, TOKEN_A) as client:
                started = await call(client, "start_session")
                assert started["status"] == "Active"
                assert (await call(client, "terminate", sessionId=started["sessionId"]))["status"] == "Terminated"


# ----- SSE -----


async def test_sse_requires_the_token_and_keeps_sessions_apart(tmp_path: Path) -> None:
    port = free_port()
    env = serve_env(tmp_path, BROWSER_SESSIONS_AUTH_TOKENS=f"{TOKEN_A},{TOKEN_B}")
    with running(["serve", "--transport", "sse", "--port", str(port)], port, tmp_path / "serve.log", env):
        url = f"http://127.0.0.1:{port}/sse"
        with anyio.fail_after(60):
            async with http_client() as http:
                assert (await http.get(url)).status_code == 401
                assert (await http.get(url, headers={"Authorization": f"Bearer {TOKEN_B}x"})).status_code == 401
            alice_headers = {"Authorization": f"Bearer {TOKEN_A}"}
            bob_headers = {"Authorization": f"Bearer {TOKEN_B}"}
            async with (
                Client(sse_client(url, headers=alice_headers)) as alice,
                Client(sse_client(url, headers=bob_headers)) as bob,
            ):
                sid = (await call(alice, "start_session"))["sessionId"]
                assert "SESSION_NOT_FOUND" in await call_error(bob, "get_session", sessionId=sid)
                assert (await call(bob, "list_sessions"))["sessions"] == []
                assert (await call(alice, "terminate", sessionId=sid))["status"] == "Terminated"
