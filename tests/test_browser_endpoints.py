"""Browsers the server did not launch (``browser_endpoints``): two real Playwright browser servers
(``playwright run-server``) on 127.0.0.1 take the sessions, least loaded first; losing one orphans its
sessions, which are restored on the other (cookies and page as last saved); with both gone they end Failed
after the reconnection window; a server that comes back takes sessions again. Also a real CDP endpoint
(Chromium's remote debugging port), and the endpoint URL rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from mcp import Client
from playwright._impl._driver import compute_driver_executable

from browser_sessions.backends.local.endpoint_urls import parse_endpoint, parse_endpoints
from browser_sessions.errors import InvalidInput
from tests.conftest import call, call_error, connect
from tests.processes import free_port
from tests.site import Site

pytestmark = pytest.mark.anyio

CHROMIUM = "/usr/bin/chromium"


def start_server(port: int) -> subprocess.Popen[bytes]:
    """``playwright run-server`` (the driver Playwright's Python package ships) on 127.0.0.1:``port``, in a
    process group of its own (the server and the Chromium it launches), once it listens. ``--unsafe`` lets
    the client name the Chromium to launch (Playwright's own download does not work here), through the
    ``launch-options`` query parameter of the URL (``launch_url``)."""
    node, cli = compute_driver_executable()
    proc = subprocess.Popen(
        [node, cli, "run-server", "--host", "127.0.0.1", "--port", str(port), "--unsafe"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("Listening on ws://127.0.0.1:"):
        stop(proc)
        pytest.fail(f"playwright run-server did not start: {line}")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc``'s process group (it and what it launched), as a crash or a lost machine would."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextmanager
def servers(count: int) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """``count`` run-servers at once: (URL, process) each; a test may kill one early."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for _ in range(count):
            port = free_port()
            started.append((launch_url(port), start_server(port)))
        yield started
    finally:
        for _, proc in started:
            stop(proc)


def launch_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/?launch-options=" + quote(json.dumps({"executablePath": CHROMIUM}))


def placed_on(state: dict[str, Any]) -> str:
    """The endpoint label in the session's last Active transition (``... on endpoint ws://host:port``)."""
    active = [t for t in state["transitions"] if t["status"] == "Active"]
    return str(active[-1]["reason"]).rsplit("on endpoint ", 1)[1]


async def wait_status(client: Client, sid: str, status: str, seconds: float) -> dict[str, Any]:
    with anyio.fail_after(seconds):
        while (state := await call(client, "get_session", sessionId=sid))["status"] != status:
            await anyio.sleep(0.1)
    return state


async def wait_restored(client: Client, sid: str) -> dict[str, Any]:
    """The session once it is Active again after having been Orphaned."""
    with anyio.fail_after(60):
        while True:
            state = await call(client, "get_session", sessionId=sid)
            if state["status"] == "Active" and any(t["status"] == "Orphaned" for t in state["transitions"]):
                return state
            await anyio.sleep(0.1)


async def test_sessions_spread_over_two_servers_and_survive_losing_them(site: Site) -> None:
    with servers(2) as started:
        (url_a, proc_a), (url_b, proc_b) = started
        label_a, label_b = parse_endpoint(url_a).label, parse_endpoint(url_b).label
        async with connect(browser_endpoints=[url_a, url_b], reconnect_window=4.0) as client:
            sids = [(await call(client, "start_session"))["sessionId"] for _ in range(4)]
            states = [await call(client, "get_session", sessionId=sid) for sid in sids]
            where = [placed_on(state) for state in states]
            assert sorted(where) == sorted([label_a, label_a, label_b, label_b])  # least loaded first

            on_a = [sid for sid, label in zip(sids, where, strict=True) if label == label_a]
            on_b = [sid for sid, label in zip(sids, where, strict=True) if label == label_b]
            for sid, value in ((on_a[0], "alpha"), (on_b[0], "beta")):
                done = await call(
                    client, "send_task", sessionId=sid, taskDetails=f"go to {site.url(f'/cookie/set?v={value}')}"
                )
                assert done["status"] == "task_completed"

            running = await call(
                client, "send_task", sessionId=on_a[1], taskDetails=f"go to {site.url('/slow?s=5')}", waitSeconds=0
            )
            with anyio.fail_after(20):
                while (await call(client, "get_task", sessionId=on_a[1], taskId=running["taskId"]))[
                    "status"
                ] != "running":
                    await anyio.sleep(0.05)

            stop(proc_a)  # endpoint A goes away: its sessions move to B
            lost = await call(client, "get_task", sessionId=on_a[1], taskId=running["taskId"], waitSeconds=30)
            assert (lost["status"], lost["error"]["code"]) == ("failed", "BROWSER_LOST"), lost["error"]
            for sid in on_a:
                state = await wait_restored(client, sid)
                assert [t["status"] for t in state["transitions"]] == ["Pending", "Active", "Orphaned", "Active"]
                assert f"endpoint {label_a}" in state["transitions"][2]["reason"]
                assert placed_on(state) == label_b
            state = await call(client, "get_session", sessionId=on_a[0])
            assert state["currentUrl"] == site.url("/cookie/set?v=alpha")
            shown = await call(
                client, "send_task", sessionId=on_a[0], taskDetails=f"go to {site.url('/cookie/show')}\nextract text"
            )
            assert shown["status"] == "task_completed"
            assert "token=alpha" in shown["output"]

            fresh = await call(client, "start_session")  # new sessions go on starting, on B
            assert fresh["status"] == "Active"
            assert placed_on(fresh) == label_b

            stop(proc_b)  # now no endpoint is left: after the window, every session is Failed
            for sid in [*sids, fresh["sessionId"]]:
                state = await wait_status(client, sid, "Failed", 60)
                assert "no browser endpoint could take the session" in state["transitions"][-1]["reason"]
            refused = await call_error(client, "start_session")
            assert "INSTANCE_UNAVAILABLE" in refused

            # endpoint A comes back on its port: it is reconnected in the background and takes sessions again
            back = start_server(int(label_a.rsplit(":", 1)[1]))
            try:
                with anyio.fail_after(60):
                    while True:
                        result = await client.call_tool("start_session", {})
                        if not result.is_error:
                            break
                        await anyio.sleep(0.2)
                assert result.structured_content is not None
                assert placed_on(result.structured_content) == label_a
            finally:
                stop(back)


@contextmanager
def cdp_chromium() -> Iterator[str]:
    """Chromium with its remote debugging port on 127.0.0.1 (in a process group of its own, killed at the
    end); yields its http:// endpoint, read from the DevToolsActivePort file it writes once it listens."""
    profile = Path(tempfile.mkdtemp(prefix="cdp-chromium-"))
    switches = ["--headless=new", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]
    if os.geteuid() == 0:
        switches.append("--no-sandbox")
    proc = subprocess.Popen(
        [CHROMIUM, *switches, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and active.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Chromium did not open its debugging port")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{int(active.read_text().split()[0])}"
    finally:
        stop(proc)


async def test_a_cdp_endpoint_takes_sessions_behind_their_egress_proxy(site: Site) -> None:
    # private addresses refused but 127.0.0.1 exempt: the site loads, localhost (the same server) is
    # refused by the session's egress proxy, so the endpoint's browser sends through it
    with cdp_chromium() as url:
        async with connect(
            browser_endpoints=[url],
            endpoint_max_sessions=1,
            allow_private_network=False,
            egress_allow_hosts="127.0.0.1",
        ) as client:
            started = await call(client, "start_session")
            assert placed_on(started) == url
            assert "SESSION_LIMIT_REACHED" in await call_error(client, "start_session")  # one per endpoint here
            done = await call(
                client,
                "send_task",
                sessionId=started["sessionId"],
                taskDetails=f"go to {site.url('/cookie/set?v=cdp')}\ngo to {site.url('/cookie/show')}\nextract text",
            )
            assert done["status"] == "task_completed"
            assert "token=cdp" in done["output"]
            refused = await call(
                client, "send_task", sessionId=started["sessionId"], taskDetails=f"go to {site.url('/', 'localhost')}"
            )
            assert refused["status"] == "failed"
            assert refused["error"]["code"] == "PRIVATE_ADDRESS_BLOCKED", refused["error"]


def test_endpoint_urls_say_their_kind() -> None:
    kinds = {
        "ws://127.0.0.1:3000/": "playwright",
        "pw+ws://localhost:3000/x": "playwright",
        "http://127.0.0.1:9222": "cdp",
        "ws://127.0.0.1:9222/devtools/browser/abc": "cdp",
        "cdp+ws://127.0.0.1:3000/?token=secret": "cdp",
    }
    for url, kind in kinds.items():
        assert parse_endpoint(url).kind == kind
    parsed = parse_endpoint("cdp+ws://user:pw@127.0.0.1:3000/chrome?token=secret")
    assert parsed.url == "ws://user:pw@127.0.0.1:3000/chrome?token=secret"
    assert parsed.label == "ws://127.0.0.1:3000"  # no credentials or tokens in what is shown
    for bad, says in {
        "ws://192.0.2.7:3000/": "not on this machine's loopback",
        "127.0.0.1:3000": "not a URL",
        "pw+http://127.0.0.1:3000": "reached over ws or wss",
        "x+ws://127.0.0.1:3000": "unknown prefix",
    }.items():
        with pytest.raises(InvalidInput, match=says):
            parse_endpoint(bad)
    with pytest.raises(InvalidInput, match="configured twice"):
        parse_endpoints(["ws://127.0.0.1:1/", "pw+ws://127.0.0.1:1/"])
