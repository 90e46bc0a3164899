"""How ``browser-sessions run`` shows a task as it happens: a rich live display on a terminal, plain lines
when piped, nothing at all when stdout must carry only JSON and no terminal is there to watch.

Contracts:

- ``step`` is called once per step, in order; ``finished`` once, with the final task and session.
- ``LiveDisplay`` keeps a spinner line (state, step count, elapsed time) at the bottom and prints each step
  above it; the spinner is gone when the task ends and a summary line stays.
- ``PlainDisplay`` writes ``step N: action`` (the MCP progress text) and a summary line, flushed per line, so
  a pipe sees each step when it happens.
- Text taken from pages (step descriptions, outputs) is shown on a terminal with control characters made
  visible (``printable``): a page cannot move the cursor or retitle the user's terminal.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Protocol, TextIO

import anyio
from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from browser_sessions.models import SessionState, Step, TaskResult

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters (but newline and tab) shown as ``\\xNN`` instead of acted on."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text.replace("\r\n", "\n"))


def summary(task: TaskResult, session: SessionState | None) -> str:
    """``completed in 1.2 s, 3 steps; session 1a2b3c Completed (the task ended: ...)``."""
    outcome = "completed" if task.status == "task_completed" else task.status.replace("_", " ")
    steps = f"{len(task.steps)} step{'s' if len(task.steps) != 1 else ''}"
    text = f"{outcome} in {task.usage.duration_ms / 1000:.1f} s, {steps}"
    if session is not None:
        text += f"; session {session.session_id} {session.status} ({session.reason})"
    return text


class Display(Protocol):
    def __enter__(self) -> Display: ...

    def __exit__(self, *exc: object) -> None: ...

    def started(self, task: TaskResult) -> None:
        """The session is up and the task queued in it."""

    def step(self, step: Step) -> None: ...

    def note(self, text: str) -> None:
        """Something the person running the command should know (shown beside the progress)."""

    def finished(self, task: TaskResult, session: SessionState | None) -> None: ...

    async def ask(self, question: str) -> str | None:
        """Ask the person at the terminal ``question`` (a task's guardrail); None when no one can answer."""
        ...


class QuietDisplay:
    """No progress (``--json`` with nothing but pipes around)."""

    def __enter__(self) -> QuietDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def started(self, task: TaskResult) -> None:
        return None

    def step(self, step: Step) -> None:
        return None

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def finished(self, task: TaskResult, session: SessionState | None) -> None:
        return None

    async def ask(self, question: str) -> str | None:
        return None


class PlainDisplay(QuietDisplay):
    """One line per step on ``stream`` (stdout when piped)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def _line(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def started(self, task: TaskResult) -> None:
        self._line(f"session {task.session_id}: task {task.task_id} started")

    def step(self, step: Step) -> None:
        self._line(f"step {step.n}: {step.action}")

    def finished(self, task: TaskResult, session: SessionState | None) -> None:
        self._line(summary(task, session))


class _Status:
    """The spinner line; rendered afresh at each refresh, so the elapsed time ticks."""

    def __init__(self) -> None:
        self.text = "starting the browser"
        self.steps = 0
        self._since = time.monotonic()
        self._spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        elapsed = time.monotonic() - self._since
        steps = f" · {self.steps} step{'s' if self.steps != 1 else ''}" if self.steps else ""
        self._spinner.update(text=Text.assemble((self.text, "bold"), (f"{steps} · {elapsed:.1f} s", "dim")))
        return self._spinner


class LiveDisplay:
    """A spinner with the task's state and the steps printed above it, on a terminal ``console``."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._status = _Status()
        self._live = Live(self._status, console=console, refresh_per_second=10, transient=True)

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def started(self, task: TaskResult) -> None:
        self._status.text = "running"
        self._console.print(Text.assemble(("session ", "dim"), task.session_id, (" · task ", "dim"), task.task_id))

    def step(self, step: Step) -> None:
        self._status.steps = step.n
        line = Text.assemble(("✓ ", "green"), (f"{step.n:>2}  ", "dim"), printable(step.action))
        if step.url and step.url not in step.action:
            line.append(f"  {printable(step.url)}", style="dim")
        self._console.print(line)

    def note(self, text: str) -> None:
        self._console.print(Text(printable(text), style="yellow"))

    def finished(self, task: TaskResult, session: SessionState | None) -> None:
        self._live.stop()
        mark = ("✓ ", "bold green") if task.status == "task_completed" else ("✗ ", "bold red")
        self._console.print(Text.assemble(mark, summary(task, session)))

    async def ask(self, question: str) -> str | None:
        """Asked on the terminal when stdin is one (the spinner stops meanwhile); cancellable while it waits."""
        if not sys.stdin.isatty():
            return None
        self._live.stop()
        try:
            self._console.print(Text.assemble(("? ", "bold yellow"), ("The task asks: ", "bold"), printable(question)))
            self._console.print("  your answer (empty to stop the task): ", end="")
            await anyio.wait_readable(sys.stdin.fileno())  # a whole line: the terminal sends it on Enter
            line = sys.stdin.readline()
            return line.rstrip("\n") if line else None
        finally:
            self._live.start()


def choose_display(as_json: bool) -> Display:
    """Live on a terminal (stdout, or stderr with ``--json``), else plain lines on stdout, else nothing. A
    terminal is a real one (``FORCE_COLOR`` does not make a pipe one); ``TERM=dumb`` or ``TTY_INTERACTIVE=0``
    ask for plain lines."""
    stream = sys.stderr if as_json else sys.stdout
    console = Console(file=stream, highlight=False)
    if stream.isatty() and console.is_interactive:
        return LiveDisplay(console)
    return QuietDisplay() if as_json else PlainDisplay(sys.stdout)
