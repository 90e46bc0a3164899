"""Virtual environments for examples whose framework cannot share the project's venv.

``langchain-mcp-adapters`` requires ``mcp<2`` while the server requires mcp 2, so the LangChain example gets
a venv of its own, built from ``examples/requirements-langchain.txt`` (exact pins) under the git-ignored
``.venv-examples/`` and reused while that file is unchanged. The server it talks to stays in the project's
venv, as a user's would be installed apart from their agent."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".venv-examples"
INSTALL_SECONDS = 600


def example_python(name: str, requirements: Path) -> Path:
    """The interpreter of the venv ``.venv-examples/<name>`` holding exactly ``requirements``; builds it when
    missing, half-built or made from other requirements. Raises ``AssertionError`` with pip's output when the
    install fails (e.g. the package index cannot be reached)."""
    VENVS.mkdir(exist_ok=True)
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    with (VENVS / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run building the same venv finishes first
        if stamp.exists() and stamp.read_text() == wanted and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        # no pip inside: the project's pip installs into it (``--python``), which saves bootstrapping one
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
        _run([*pip, "install", "--quiet", "--requirement", str(requirements)])
        stamp.write_text(wanted)  # written last: a venv without it is rebuilt
    return python


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
