"""``browser-sessions run "<task>"``: one task in a fresh session, watched as it happens, its output printed.

Contracts:

- The backends are opened as ``serve`` opens them (``open_backends``: the records database, the local engine,
  the remote backend when configured) and the task is a one-shot ``run_task`` on the default backend
  (``BROWSER_SESSIONS_BACKEND``, local unless set): the session ends with the task (Completed,
  terminateOnCompletion) and a local one is recorded like a server's (``browser-sessions sessions``).
  The caller is the local user (owner ``local``); as on stdio, the browser may reach private addresses.
- Progress (run_display.py): a live display on a terminal, ``step N: action`` lines when stdout is piped.
  With ``--json`` stdout holds exactly one JSON object, the task result (the ``TaskResult`` wire shape) or,
  when no task ran, ``{"error": {"code", "message"}}``; the live display goes to stderr if that is a terminal.
- Exit codes: 0 completed; 1 the task failed or could not start (``CODE: message`` on stderr); 2 bad
  arguments or settings (what to fix on stderr); 130 interrupted: the first Ctrl-C (or SIGTERM) stops the
  task and terminates its session, a second one stops waiting for that.
- A task that asks a question (a guardrail) is answered at the terminal when stdin is one; otherwise it is
  stopped, and the question is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from pydantic import ValidationError

from browser_sessions.backends.local.planners.models.choose import chosen
from browser_sessions.errors import BrowserSessionsError, InvalidInput, ProfileNotFound, describe_validation
from browser_sessions.models import OutputType, SessionState, Step, TaskResult, TaskSpec
from browser_sessions.run_display import Display, choose_display, printable
from browser_sessions.settings import Settings

if TYPE_CHECKING:
    from browser_sessions.backends.router import BackendRouter

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
FOLLOW_SECONDS = 5.0  # one wait_task call; the loop goes on until the task settles
OUTPUT_TYPES: dict[str, OutputType] = {"text": "text", "json": "structured_json", "csv": "structured_csv"}
_FLAGS = {
    "taskDetails": "TASK",
    "startingPoint": "--starting-point",
    "maxDuration": "--max-duration",
    "outputType": "--output-type",
    "outputSchema": "--output-schema",
}


def add_run_command(commands: Any) -> None:
    """Add ``run`` to the CLI's subparsers."""
    run = commands.add_parser(
        "run",
        help="run one task in a fresh browser session and print its output",
        description="Run one task in a fresh browser session (it ends with the task) and print the output. "
        "Instruction lines need no model: "
        "browser-sessions run 'go to https://example.com; extract text'. Free text needs a model "
        "(BROWSER_SESSIONS_MODEL, ANTHROPIC_API_KEY or OPENAI_API_KEY). "
        "Exit codes: 0 completed, 1 task failed, 2 bad arguments, 130 interrupted.",
    )
    run.add_argument(
        "task", metavar="TASK", help="instruction lines (newlines or ';' between them), free text, or - for stdin"
    )
    run.add_argument("--starting-point", metavar="URL", help="http(s) URL loaded before the task starts")
    run.add_argument("--output-type", choices=list(OUTPUT_TYPES), default="text", help="default: text")
    run.add_argument(
        "--output-schema",
        metavar="SCHEMA",
        help="json: a JSON Schema; csv: a JSON list of column names (or name,price); inline or @file",
    )
    run.add_argument(
        "--max-duration", type=_seconds, metavar="SECONDS", help="time limit of the task, 1 to 300 (default 300)"
    )
    run.add_argument("--profile", metavar="ID", help="start from this saved profile (browser-sessions profiles list)")
    run.add_argument("--json", action="store_true", help="print the task result as one JSON object")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds, e.g. 60") from None
    if not 1 <= seconds <= 300:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give 1 to 300 seconds")
    return seconds


@dataclass(frozen=True)
class RunRequest:
    spec: TaskSpec
    profile_id: str | None


def _schema(text: str, output_type: OutputType) -> Any:
    """``--output-schema``: JSON inline or from ``@file``; for csv also ``name,price``."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--output-schema: cannot read {text[1:]} ({exc.strerror or exc}).") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if output_type == "structured_csv" and "[" not in text and "{" not in text:
            return [name.strip() for name in text.split(",") if name.strip()]
        raise InvalidInput(
            f"--output-schema is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); pass a JSON Schema "
            """for json (e.g. '{"type": "array", "items": {"type": "object"}}') or column names for csv """
            """(e.g. '["name", "price"]'), inline or as @file."""
        ) from exc


def request_from(args: argparse.Namespace) -> RunRequest:
    """The task the arguments describe; raises ``InvalidInput`` saying which flag to fix."""
    details: str = sys.stdin.read() if args.task == "-" else args.task
    if not details.strip() and not args.starting_point:
        raise InvalidInput("TASK is empty; write what to do, e.g. 'go to https://example.com; extract text'.")
    output_type = OUTPUT_TYPES[args.output_type]
    if output_type == "text" and args.output_schema is not None:
        raise InvalidInput("--output-schema is used with --output-type json or csv; drop it or add --output-type.")
    if output_type != "text" and args.output_schema is None:
        example = (
            """'{"type": "array", "items": {"type": "object"}}'""" if output_type == "structured_json" else "name,price"
        )
        raise InvalidInput(f"--output-type {args.output_type} needs --output-schema, e.g. --output-schema {example}.")
    fields: dict[str, Any] = {
        "taskDetails": details,
        "startingPoint": args.starting_point,
        "outputType": output_type,
        "outputSchema": None if args.output_schema is None else _schema(args.output_schema, output_type),
        "terminateOnCompletion": True,
    }
    if args.max_duration is not None:
        fields["maxDuration"] = round(args.max_duration * 1000)
    try:
        spec = TaskSpec.model_validate(fields)
    except ValidationError as exc:
        message = describe_validation(exc).removesuffix(" Fix them and call again.")
        for name, flag in _FLAGS.items():
            message = message.replace(f"{name}:", f"{flag}:")
        raise InvalidInput(message + " Fix them and run again.") from None
    return RunRequest(spec, args.profile)


class _Interrupts:
    """Ctrl-C and SIGTERM: the first stops the task and terminates its session, the next stops waiting."""

    def __init__(self, group: TaskGroup, display: Display) -> None:
        self.count = 0
        self.asking: anyio.CancelScope | None = None  # a question waiting for an answer at the terminal
        self.ended = anyio.Event()  # the session was terminated after the first interrupt
        self.router: BackendRouter | None = None
        self.session_id: str | None = None
        self._group = group
        self._display = display

    async def listen(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                self.count += 1
                if self.asking is not None:
                    self.asking.cancel()
                if self.count == 1 and self.router is not None and self.session_id is not None:
                    self._display.note("Stopping the task and ending its session (Ctrl-C again to quit at once).")
                    self._group.start_soon(self._terminate, self.router, self.session_id)
                else:
                    self._group.cancel_scope.cancel()

    async def _terminate(self, router: BackendRouter, session_id: str) -> None:
        try:
            with contextlib.suppress(BrowserSessionsError):  # it may have ended on its own meanwhile
                await router.terminate(session_id)
        finally:
            self.ended.set()


async def _follow(router: BackendRouter, task: TaskResult, display: Display, interrupts: _Interrupts) -> TaskResult:
    """Wait for ``task`` to finish, showing each step once; answer its questions at the terminal."""
    shown = 0

    async def on_step(step: Step) -> None:
        nonlocal shown
        if step.n > shown:  # each wait reports from the first step again
            shown = step.n
            display.step(step)

    while task.status not in ("task_completed", "failed"):
        task = await router.wait_task(task.session_id, task.task_id, FOLLOW_SECONDS, on_step)
        if task.status == "guardrail_trigger" and task.guardrail is not None:
            task = await _question(router, task, task.guardrail, display, interrupts)
    return await router.wait_task(task.session_id, task.task_id, FOLLOW_SECONDS, on_step)  # its session's end too


async def _question(
    router: BackendRouter, task: TaskResult, question: str, display: Display, interrupts: _Interrupts
) -> TaskResult:
    """Ask the task's question at the terminal and pass the answer on. With no one to answer, or an empty
    answer, the task stops; once interrupted, it stops with its session."""
    answer: str | None = None
    if not interrupts.count:
        with anyio.CancelScope() as interrupts.asking:
            answer = await display.ask(question)
        interrupts.asking = None
    if interrupts.count:
        await interrupts.ended.wait()
        return await router.get_task(task.session_id, task.task_id)
    if answer is None:
        display.note(
            f"The task asks: {question}\nNo terminal to answer on, so the task stops. Run it on a terminal to "
            "answer, or put what it needs into the task."
        )
    return await router.answer_guardrail(task.session_id, task.task_id, answer or "", bool(answer))


@dataclass
class Outcome:
    """How a run ended: the exit code, the task (None if it never started or was abandoned), and the error
    that kept it from starting."""

    exit_code: int = 0
    task: TaskResult | None = None
    error: tuple[str, str] | None = None


async def _execute(request: RunRequest, settings: Settings, display: Display) -> Outcome:
    from browser_sessions.backends.router import open_backends  # the engine's imports: only when it runs

    outcome = Outcome()
    session: SessionState | None = None
    async with anyio.create_task_group() as group:
        interrupts = _Interrupts(group, display)
        await group.start(interrupts.listen)
        try:
            async with open_backends(settings) as router:
                queued = await router.run_task(request.spec, request.profile_id)
                interrupts.router, interrupts.session_id = router, queued.session_id
                display.started(queued)
                outcome.task = await _follow(router, queued, display, interrupts)
                session = await router.get_session(queued.session_id)
                display.finished(outcome.task, session)
        except* BrowserSessionsError as errors:  # raised inside the engine's task groups, so grouped
            exc = _first(errors)
            usage = isinstance(exc, InvalidInput | ProfileNotFound)
            outcome.exit_code = EXIT_USAGE if usage else EXIT_FAILED
            outcome.error = (exc.code, exc.message)
        group.cancel_scope.cancel()
    if interrupts.count:
        where = f"; session {session.session_id} {session.status} ({session.reason})" if session else ""
        print(f"Interrupted{where}.", file=sys.stderr)
        outcome.exit_code = EXIT_INTERRUPTED
    elif outcome.task is not None and outcome.task.status != "task_completed":
        outcome.exit_code = EXIT_FAILED
    return outcome


def _first(errors: BaseExceptionGroup[BrowserSessionsError]) -> BrowserSessionsError:
    """The first error in a (possibly nested) group: the one to report."""
    first = errors.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _print_output(task: TaskResult) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    output = task.output
    if task.output_type == "structured_json":
        if console.is_terminal:
            console.print_json(data=output)
        else:
            print(json.dumps(output, indent=2, ensure_ascii=False))
    elif output is not None:
        text = printable(str(output)) if console.is_terminal else str(output)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)


def run_command(args: argparse.Namespace) -> int:
    """``browser-sessions run``; returns the exit code."""
    try:
        settings = Settings()
        chosen(settings)
        request = request_from(args)
    except ValidationError as exc:
        message = describe_validation(exc).replace("call again", "run again") + " (from BROWSER_SESSIONS_* settings)"
        return _refused(args, "INVALID_PARAMETER", message, EXIT_USAGE)
    except InvalidInput as exc:
        return _refused(args, exc.code, exc.message, EXIT_USAGE)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    display = choose_display(args.json)
    try:
        with display:
            outcome = anyio.run(_execute, request, settings, display)
    except KeyboardInterrupt:  # before the signal handlers were in place
        return EXIT_INTERRUPTED
    task = outcome.task
    if task is None:
        code, message = outcome.error or ("INTERRUPTED", "Interrupted before the task finished; its session ended.")
        return _refused(args, code, message, outcome.exit_code)
    if args.json:
        _print_json(task.model_dump(mode="json", by_alias=True))
    elif task.status == "task_completed":
        _print_output(task)
    if task.error is not None:
        print(f"{task.error.code}: {task.error.message}", file=sys.stderr)
    return outcome.exit_code


def _refused(args: argparse.Namespace, code: str, message: str, exit_code: int) -> int:
    """No task result to show: ``CODE: message`` on stderr (and as ``{"error": ...}`` on stdout with --json)."""
    if args.json:
        _print_json({"error": {"code": code, "message": message}})
    print(f"{code}: {message}", file=sys.stderr)
    return exit_code
