"""``browser-sessions run`` and ``browser-sessions sessions`` as a user runs them: real subprocesses, real
Chromium, the test site on 127.0.0.1, a pseudo-terminal for the live display, and a real ``serve`` process
whose session is listed live, then ended once that process is gone."""

from __future__ import annotations

import functools
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import anyio
import pytest
from mcp import Client

from browser_sessions.cli import main
from browser_sessions.run_display import printable
from browser_sessions.store import Store
from browser_sessions.store_runs import STOPPED_REASON
from tests.conftest import call
from tests.processes import clean_env, free_port, running
from tests.scripted_model import Call, Received, ScriptedModel
from tests.site import Site
from tests.test_store import state_row

pytestmark = pytest.mark.anyio

COMMAND = [sys.executable, "-m", "browser_sessions"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PRICES_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"Name": {"type": "string"}, "Price": {"type": "number"}},
        "required": ["Name", "Price"],
    },
}


def cli_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """Our settings only as the test gives them: its own data folder, short timers, no model, no terminal
    overrides (rich reads FORCE_COLOR, TTY_COMPATIBLE, TTY_INTERACTIVE)."""
    defaults = {
        "BROWSER_SESSIONS_DATA_DIR": str(data_dir),
        "BROWSER_SESSIONS_STEP_TIMEOUT": "2",
        "BROWSER_SESSIONS_NAVIGATION_TIMEOUT": "10",
    }
    env = clean_env(**{**defaults, **settings})
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"):
        env.pop(name, None)
    return env


async def cli(data_dir: Path, *args: str, stdin: bytes | None = None, **settings: str) -> CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process([*COMMAND, *args], input=stdin, env=cli_env(data_dir, **settings), check=False)


async def recorded(data_dir: Path, *args: str) -> dict[str, dict[str, Any]]:
    """``sessions --json [args]``: the listed sessions by id."""
    done = await cli(data_dir, "sessions", "--json", *args)
    assert done.returncode == 0, done.stderr.decode()
    return {row["sessionId"]: row for row in json.loads(done.stdout)["sessions"]}


def home_task(site: Site) -> str:
    return f"go to {site.url('/')}; extract text"


# ----- run, piped -----


async def test_piped_run_prints_each_step_then_the_output_and_the_session_is_recorded(
    site: Site, tmp_path: Path
) -> None:
    done = await cli(tmp_path, "run", home_task(site))
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert done.stderr == b""
    lines = out.splitlines()
    started = re.fullmatch(r"session (\w+): task (\w+) started", lines[0])
    assert started, out
    assert lines[1:3] == [f"step 1: go to {site.url('/')}", "step 2: extract text"]
    assert re.fullmatch(rf"completed in [\d.]+ s, 2 steps; session {started[1]} Completed \(.+\)", lines[3]), out
    assert "Welcome home." in "\n".join(lines[4:])
    assert "\x1b" not in out  # plain lines: no terminal codes in a pipe

    [(session_id, row)] = (await recorded(tmp_path)).items()
    assert session_id == started[1]
    assert (row["status"], row["live"], row["backend"], row["owner"], row["tasks"]) == (
        "Completed",
        False,
        "local",
        "local",
        1,
    )
    assert row["reason"] == f"terminateOnCompletion: task {started[2]} task_completed"
    assert row["endedAt"] is not None


async def test_json_run_prints_one_task_result_with_the_validated_output(site: Site, tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(PRICES_SCHEMA))
    done = await cli(
        tmp_path,
        "run",
        "-",  # the task from stdin
        "--starting-point",
        site.url("/table"),
        "--output-type",
        "json",
        "--output-schema",
        f"@{schema_file}",
        "--max-duration",
        "60",
        "--json",
        stdin=b'extract table "Prices"\n',
    )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert (result["status"], result["outputType"], result["error"]) == ("task_completed", "structured_json", None)
    assert [(row["Name"], row["Price"]) for row in result["output"]] == [("Keyboard", 12.5), ("Cable, long", 3)]
    actions = [step["action"] for step in result["steps"]]
    assert actions == [f"go to {site.url('/table')} (startingPoint)", 'extract table "Prices"']
    assert result["outputUri"] == f"session://{result['sessionId']}/tasks/{result['taskId']}/output"


# ----- failures and bad arguments -----


async def test_failed_tasks_exit_1_with_the_code_and_message_on_stderr(site: Site, tmp_path: Path) -> None:
    outcomes: dict[str, CompletedProcess[bytes]] = {}

    async def run(name: str, *args: str) -> None:
        outcomes[name] = await cli(tmp_path / name, "run", *args)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "element", f'go to {site.url("/")}; click "No such button"')
        group.start_soon(run, "model", "Find the cheapest keyboard on the shop", "--json")

    element = outcomes["element"]
    assert element.returncode == 1
    assert re.search(r"^ELEMENT_NOT_FOUND: .*No such button", element.stderr.decode(), re.MULTILINE)
    assert f"step 1: go to {site.url('/')}" in element.stdout.decode()

    model = outcomes["model"]
    assert model.returncode == 1
    stderr = model.stderr.decode()
    assert stderr.startswith("MODEL_REQUIRED: This task reads as free text, which needs a model")
    assert "BROWSER_SESSIONS_MODEL" in stderr and "instruction lines" in stderr
    result = json.loads(model.stdout)
    assert (result["status"], result["error"]["code"]) == ("failed", "MODEL_REQUIRED")


async def test_a_task_that_cannot_start_says_why(site: Site, tmp_path: Path) -> None:
    outcomes: dict[str, CompletedProcess[bytes]] = {}

    async def run(name: str, *args: str, **settings: str) -> None:
        outcomes[name] = await cli(tmp_path / name, "run", home_task(site), *args, **settings)

    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(run, "browser", "--json", BROWSER_SESSIONS_BROWSER_PATH="/nonexistent"))
        group.start_soon(run, "profile", "--profile", "no-such-profile")

    browser = outcomes["browser"]
    assert browser.returncode == 1
    assert json.loads(browser.stdout)["error"]["code"] == "INSTANCE_UNAVAILABLE"
    assert browser.stderr.decode().startswith("INSTANCE_UNAVAILABLE: BROWSER_SESSIONS_BROWSER_PATH=/nonexistent")
    profile = outcomes["profile"]
    assert profile.returncode == 2
    assert profile.stderr.decode().startswith("PROFILE_NOT_FOUND: No profile with profileId 'no-such-profile'.")
    assert profile.stdout == b""


BAD_ARGUMENTS = [
    (["go to https://example.com", "--output-type", "json"], "--output-type json needs --output-schema"),
    (["extract table", "--output-type", "json", "--output-schema", "{nope"], "--output-schema is not JSON"),
    (["extract text", "--output-schema", '["a"]'], "--output-schema is used with --output-type json or csv"),
    (["extract text", "--starting-point", "example"], "--starting-point: 'example' is not an absolute http(s)"),
    (["extract text", "--max-duration", "0"], "argument --max-duration: 0 is out of range: give 1 to 300"),
    (["extract text", "--output-type", "xml"], "argument --output-type: invalid choice: 'xml'"),
    (["   "], "TASK is empty"),
    ([], "the following arguments are required: TASK"),
]


@pytest.mark.parametrize(("args", "says"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_saying_what_to_fix(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in os.environ:
        if name.startswith(("BROWSER_SESSIONS_", "OPENAI_", "ANTHROPIC_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BROWSER_SESSIONS_DATA_DIR", str(tmp_path))
    try:
        code = main(["run", *args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "browser-sessions.db").exists()  # refused before any browser or record


async def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "extract table", "--output-type", "csv", "--json")
    assert done.returncode == 2
    assert "--output-type csv needs --output-schema, e.g. --output-schema name,price" in done.stderr.decode()
    assert json.loads(done.stdout)["error"]["code"] == "INVALID_PARAMETER"


# ----- run on a terminal -----


Reply = Callable[[subprocess.Popen[bytes], int], object]


def _run_on_a_terminal(
    args: list[str], env: dict[str, str], on_prompt: tuple[bytes, Reply] | None = None, seconds: float = 45
) -> tuple[int, bytes]:
    """Run with stdin, stdout and stderr on a new pseudo-terminal; its exit code and everything it drew.
    ``on_prompt``: once ``prompt`` was drawn, ``reply(process, terminal)`` once. Killed after ``seconds``."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True)
    finally:
        os.close(terminal)
    drawn = bytearray()
    deadline = time.monotonic() + seconds
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                proc.kill()
                pytest.fail(f"still running after {seconds} s; it drew:\n{drawn.decode(errors='replace')}")
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's last user is gone
                break
            if not chunk:
                break
            drawn += chunk
            if on_prompt is not None and on_prompt[0] in drawn:
                on_prompt[1](proc, controller)
                on_prompt = None
    finally:
        os.close(controller)
    return proc.wait(30), bytes(drawn)


async def test_terminal_run_draws_a_live_display_then_the_output(site: Site, tmp_path: Path) -> None:
    env = {**cli_env(tmp_path), "TERM": "xterm-256color", "COLUMNS": "120"}
    with anyio.fail_after(60):
        code, drawn = await anyio.to_thread.run_sync(_run_on_a_terminal, [*COMMAND, "run", home_task(site)], env)
    text = drawn.decode()
    plain = ANSI.sub("", text)
    assert code == 0, plain
    assert text.startswith("\x1b[?25l")  # the live display hides the cursor while it draws...
    assert "\x1b[?25h" in text  # ...and shows it again when it stops
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] starting the browser", plain), plain  # the spinner's line
    assert f"✓  1  go to {site.url('/')}" in plain
    assert "✓  2  extract text" in plain
    assert re.search(r"✓ completed in [\d.]+ s, 2 steps; session \w+ Completed", plain), plain
    assert plain.index("✓  2  extract text") < plain.index("Welcome home.")


# ----- a task that asks a question -----


PROMPT = b"your answer (empty to stop the task): "


def _asks_then_reports(scripted: ScriptedModel) -> None:
    def done(received: Received) -> Call:
        assert "the user answered: yes, buy it" in received.observation()
        return Call("done", {"output": "bought"})

    scripted.script(Call("ask_human", {"question": "Buy it for $49.99?"}), done)


def model_env(data_dir: Path, scripted: ScriptedModel) -> dict[str, str]:
    return cli_env(
        data_dir,
        BROWSER_SESSIONS_MODEL="openai:scripted-gpt",
        OPENAI_BASE_URL=scripted.openai_base_url,
        BROWSER_SESSIONS_MODEL_RETRIES="0",
    )


async def test_a_question_is_asked_on_the_terminal_and_the_answer_goes_to_the_task(
    site: Site, scripted: ScriptedModel, tmp_path: Path
) -> None:
    _asks_then_reports(scripted)
    env = {**model_env(tmp_path, scripted), "TERM": "xterm-256color", "COLUMNS": "120"}
    args = [*COMMAND, "run", "Buy the keyboard.", "--starting-point", site.url("/product")]
    with anyio.fail_after(60):
        code, drawn = await anyio.to_thread.run_sync(
            _run_on_a_terminal, args, env, (PROMPT, lambda _, terminal: os.write(terminal, b"yes, buy it\r"))
        )
    plain = ANSI.sub("", drawn.decode())
    assert code == 0, plain
    assert "? The task asks: Buy it for $49.99?" in plain
    assert plain.rstrip().endswith("bought")
    assert len(scripted.requests) == 2


async def test_ctrl_c_at_a_question_stops_the_task_and_ends_its_session(
    site: Site, scripted: ScriptedModel, tmp_path: Path
) -> None:
    _asks_then_reports(scripted)
    env = {**model_env(tmp_path, scripted), "TERM": "xterm-256color", "COLUMNS": "120"}
    args = [*COMMAND, "run", "Buy the keyboard.", "--starting-point", site.url("/product")]
    with anyio.fail_after(60):
        code, drawn = await anyio.to_thread.run_sync(
            _run_on_a_terminal, args, env, (PROMPT, lambda proc, _: proc.send_signal(signal.SIGINT))
        )
    plain = ANSI.sub("", drawn.decode())
    assert code == 130, plain
    assert plain.count("The task asks:") == 1  # not asked again once interrupted
    assert "TASK_STOPPED: The session ended while this task ran (terminated by the caller)." in plain
    [row] = (await recorded(tmp_path)).values()
    assert (row["status"], row["reason"], row["live"]) == ("Terminated", "terminated by the caller", False)
    assert len(scripted.requests) == 1


async def test_a_question_without_a_terminal_stops_the_task_and_shows_it(
    site: Site, scripted: ScriptedModel, tmp_path: Path
) -> None:
    _asks_then_reports(scripted)
    args = [*COMMAND, "run", "Buy the keyboard.", "--starting-point", site.url("/product")]
    with anyio.fail_after(60):
        done = await anyio.run_process(args, env=model_env(tmp_path, scripted), check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "The task asks: Buy it for $49.99?\nNo terminal to answer on, so the task stops." in stderr
    assert re.search(r"^TASK_STOPPED: ", stderr, re.MULTILINE), stderr
    assert len(scripted.requests) == 1


# ----- Ctrl-C -----


async def test_ctrl_c_stops_the_task_and_terminates_its_session(site: Site, tmp_path: Path) -> None:
    task = f'go to {site.url("/")}; wait for "text that never comes"'
    env = cli_env(tmp_path, BROWSER_SESSIONS_NAVIGATION_TIMEOUT="30")
    with anyio.fail_after(60):
        async with await anyio.open_process([*COMMAND, "run", task], env=env) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            seen = b""
            async for chunk in proc.stdout:  # the first step is done: the task is waiting for the text
                seen += chunk
                if b"step 1: " in seen:
                    break
            proc.send_signal(signal.SIGINT)
            async for chunk in proc.stdout:
                seen += chunk
            stderr = b"".join([chunk async for chunk in proc.stderr]).decode()
            code = await proc.wait()
    assert code == 130, seen.decode() + stderr
    session_id = re.search(rb"^session (\w+):", seen, re.MULTILINE)
    assert session_id, seen
    assert "TASK_STOPPED: The session ended while this task ran (terminated by the caller)." in stderr
    assert f"Interrupted; session {session_id[1].decode()} Terminated" in stderr
    row = (await recorded(tmp_path))[session_id[1].decode()]
    assert (row["status"], row["live"], row["reason"]) == ("Terminated", False, "terminated by the caller")


# ----- sessions -----


async def test_a_serve_process_session_is_live_until_that_process_is_gone(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path)
    args = ["serve", "--transport", "streamable-http", "--port", str(port)]
    with running(args, port, tmp_path / "serve.log", env) as server:
        with anyio.fail_after(60):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                session_id = (await call(client, "start_session"))["sessionId"]
        live = (await recorded(tmp_path))[session_id]
        assert (live["status"], live["live"], live["endedAt"], live["tasks"]) == ("Active", True, None, 0)

        server.kill()  # no shutdown: its records still say live, only its free run lock tells it is gone
        server.wait(20)
        ended = (await recorded(tmp_path))[session_id]
        assert (ended["status"], ended["live"], ended["reason"]) == ("Terminated", False, STOPPED_REASON)
        assert ended["endedAt"] is not None
        assert list((tmp_path / "browser-sessions.db-runs").iterdir()) == []


async def test_sessions_lists_the_live_and_the_recent_or_all_newest_first(tmp_path: Path) -> None:
    first = datetime(2026, 1, 1, tzinfo=UTC)
    store = Store.open(tmp_path / "browser-sessions.db")  # a running server: its live session stays live
    try:
        store.save_session(state_row("live-oldest", "Active", first), "token-abc")
        for n in range(25):
            store.save_session(state_row(f"ended-{n:02}", "Terminated", first + timedelta(minutes=n + 1)), "local")
        default = await recorded(tmp_path)
        limited = await recorded(tmp_path, "--limit", "3")
        everything = await recorded(tmp_path, "--all")
        text = await cli(tmp_path, "sessions")
    finally:
        store.close()
    newest = [f"ended-{n:02}" for n in range(24, -1, -1)]
    assert list(default) == [*newest[:20], "live-oldest"]
    assert list(limited) == [*newest[:3], "live-oldest"]
    assert list(everything) == [*newest, "live-oldest"]
    assert (default["live-oldest"]["live"], default["live-oldest"]["owner"]) == (True, "token-abc")
    lines = text.stdout.decode().splitlines()
    assert len(lines) == 22 and lines[0].startswith("ended-24  Terminated ended  local")
    assert "live-oldest  Active     live" in lines[20]
    assert lines[21] == (
        f"1 live, 21 shown of 26 recorded in {tmp_path / 'browser-sessions.db'}; 5 older not shown (--all shows them)"
    )


async def test_sessions_without_records_says_how_to_make_some(tmp_path: Path) -> None:
    done = await cli(tmp_path, "sessions")
    assert done.returncode == 0
    assert done.stdout.decode().startswith(f"No sessions recorded in {tmp_path / 'browser-sessions.db'}.")
    assert json.loads((await cli(tmp_path, "sessions", "--json")).stdout)["sessions"] == []
    assert not (tmp_path / "browser-sessions.db").exists()


def test_page_text_cannot_drive_the_terminal() -> None:
    hostile = "Price\r\nlist\x1b]0;owned\x07\x1b[2J\x9b31m\tend"
    assert printable(hostile) == "Price\nlist\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\tend"
