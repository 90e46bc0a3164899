"""Losing the browser: sessions go Orphaned, the engine relaunches Chromium and restores them (cookies,
storage and page as last saved), a task running at that moment fails with BROWSER_LOST."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from tests.conftest import call, connect
from tests.site import Site

pytestmark = pytest.mark.anyio


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def kill_browser() -> int:
    """SIGKILL the Chromium browser process(es) this test process started; returns how many."""
    killed = 0
    for pid in _descendants(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chrom" in Path(argv[0].decode(errors="replace")).name.encode() and not any(
            a.startswith(b"--type=") for a in argv
        ):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


async def test_sessions_survive_a_browser_crash(site: Site) -> None:
    async with connect(navigation_timeout=30.0) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/cookie/set?v=kept')}")
        running = await call(
            client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/slow?s=5')}", waitSeconds=0
        )
        with anyio.fail_after(10):
            while (await call(client, "get_task", sessionId=sid, taskId=running["taskId"]))["status"] != "running":
                await anyio.sleep(0.05)
        assert kill_browser() >= 1

        lost = await call(client, "get_task", sessionId=sid, taskId=running["taskId"], waitSeconds=20)
        assert lost["status"] == "failed"
        assert lost["error"]["code"] == "BROWSER_LOST"
        with anyio.fail_after(30):
            while (state := await call(client, "get_session", sessionId=sid))["status"] != "Active":
                await anyio.sleep(0.1)
        assert [t["status"] for t in state["transitions"]] == ["Pending", "Active", "Orphaned", "Active"]
        assert "connection to the browser lost" in state["transitions"][2]["reason"]
        assert state["currentUrl"] == site.url("/cookie/set?v=kept")

        after = await call(
            client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/cookie/show')}\nextract text"
        )
        assert after["status"] == "task_completed"
        assert "token=kept" in after["output"]
        # and the server keeps accepting new sessions
        other = await call(client, "start_session")
        assert other["status"] == "Active"
