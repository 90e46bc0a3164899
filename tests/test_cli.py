"""The ``browser-sessions`` command as a user runs it: ``doctor``, ``--version`` and the ``demo``, each in a
real subprocess."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from subprocess import CompletedProcess

import anyio
import pytest

from browser_sessions import __version__

pytestmark = pytest.mark.anyio

COMMAND = [sys.executable, "-m", "browser_sessions"]


async def run_cli(*args: str, **env: str) -> CompletedProcess[bytes]:
    return await anyio.run_process([*COMMAND, *args], env={**os.environ, **env}, check=False)


async def test_doctor_finds_the_browser_and_opens_a_page() -> None:
    with anyio.fail_after(60):
        done = await run_cli("doctor")
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    found = re.search(r"^browser: (\S+) \(found via (setting|playwright|PATH)\)$", out, re.MULTILINE)
    assert found, out
    assert os.access(Path(found[1]), os.X_OK)
    assert re.search(r"launched Chromium [\d.]+ and opened a page in [\d.]+ s", out), out
    assert f"browser-sessions {__version__}" in out


async def test_doctor_without_a_browser_says_what_to_do() -> None:
    with anyio.fail_after(60):
        done = await run_cli("doctor", BROWSER_SESSIONS_BROWSER_PATH="/nonexistent")
    assert done.returncode == 1
    output = done.stdout.decode() + done.stderr.decode()
    assert "NOT READY" in output
    assert "/nonexistent" in output
    assert "apt-get install" in output or "BROWSER_SESSIONS_BROWSER_PATH" in output


async def test_settings_that_cannot_work_stop_serve_and_doctor_with_what_to_do() -> None:
    with anyio.fail_after(60):
        serve = await run_cli("serve", BROWSER_SESSIONS_MODEL="gpt-4o")
        remote = await run_cli("serve", BROWSER_SESSIONS_BACKEND="remote")
        doctor = await run_cli("doctor", BROWSER_SESSIONS_MODEL="anthropic:claude-sonnet-4-5", ANTHROPIC_API_KEY="")
    assert serve.returncode == 2
    assert "provider:model, e.g. anthropic:" in serve.stderr.decode()
    assert remote.returncode == 2 and "BROWSER_SESSIONS_REMOTE_URL" in remote.stderr.decode()
    assert doctor.returncode == 1
    assert "needs ANTHROPIC_API_KEY" in doctor.stderr.decode()


async def test_version() -> None:
    with anyio.fail_after(30):
        done = await run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"browser-sessions {__version__}"


async def test_demo_runs_end_to_end() -> None:
    with anyio.fail_after(120):
        done = await run_cli("demo")
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert out.count("task_completed") == 2, out
    assert re.search(r"^\s+\S+\s+Terminated\s+terminated by the caller$", out, re.MULTILINE), out
    assert "progress: step 1:" in out
