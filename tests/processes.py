"""Our servers as users run them: a ``browser-sessions`` subcommand in a real subprocess on a free loopback
port, started until the port accepts connections and always stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "browser_sessions"]
STARTUP_SECONDS = 30
API_KEYS = "test-key-1,test-key-2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without our settings or model keys (the test decides each), plus ``settings``."""
    ours = ("BROWSER_SESSIONS_", "OPENAI_", "ANTHROPIC_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(ours)}, **settings}


@contextmanager
def running(args: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``browser-sessions <args>`` listening on 127.0.0.1:``port``; its output goes to ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*COMMAND, *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"port {port} not open after {STARTUP_SECONDS} s:\n{log.read_text()}")
                    time.sleep(0.05)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextmanager
def api_process(log: Path, **settings: str) -> Iterator[str]:
    """``browser-sessions api`` with short test timers (and ``settings`` over them); yields its base URL."""
    port = free_port()
    defaults = {
        "BROWSER_SESSIONS_API_KEYS": API_KEYS,
        "BROWSER_SESSIONS_API_INLINE_WAIT": "1.5",
        "BROWSER_SESSIONS_STEP_TIMEOUT": "2",
        "BROWSER_SESSIONS_NAVIGATION_TIMEOUT": "10",
        "BROWSER_SESSIONS_DATA_DIR": str(log.parent),
        "BROWSER_SESSIONS_ALLOW_PRIVATE_NETWORK": "true",  # the test sites are on 127.0.0.1
    }
    env = clean_env(**{**defaults, **settings})
    with running(["api", "--port", str(port)], port, log, env):
        yield f"http://127.0.0.1:{port}"
