"""``browser-sessions sessions``: the live and recent sessions in this data folder's records database
(``BROWSER_SESSIONS_DATABASE``, default ``<BROWSER_SESSIONS_DATA_DIR>/browser-sessions.db``).

Contracts:

- Live means recorded live by a server (``serve`` or ``run``) whose process still runs. Before it
  reads, the command settles what servers that are gone left live, exactly as a server opening the
  database does (``store_runs.recover``: a run whose lock no process holds is dead; its sessions become
  Terminated, "the server stopped while it was live"). So a session is never shown live after its server
  died, and the records say so from then on. Running servers' sessions are left alone.
- Default: every live session plus the ``--limit`` (20) most recent; ``--all``: every recorded session;
  newest first, every owner.
- ``--json`` prints ``{"database", "total", "sessions": [...]}``, each session with ``sessionId``, ``status``,
  ``live``, ``backend``, ``owner``, ``profileId``, ``createdAt``, ``endedAt``, ``reason`` (why it is in its
  status: for an ended one, why it ended) and ``tasks`` (how many it was sent).
- A missing database is no error (nothing was recorded yet); it is not created. Exit codes: 0 listed,
  1 the database cannot be read or settled (the message says why).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from browser_sessions.errors import describe_validation
from browser_sessions.models import LIVE_STATUSES, BackendName, SessionStatus, WireModel
from browser_sessions.run_display import printable
from browser_sessions.settings import Settings
from browser_sessions.store import BUSY_TIMEOUT_MS, check_schema_version
from browser_sessions.store_runs import LIVE, LIVE_MARKS, recover, runs_dir

RECENT = 20


class SessionRow(WireModel):
    """One line of the listing."""

    session_id: str
    status: SessionStatus
    live: bool = Field(description="Recorded live by a server that still runs.")
    backend: BackendName
    owner: str
    profile_id: str | None
    created_at: datetime
    ended_at: datetime | None
    reason: str
    tasks: int


def add_sessions_command(commands: Any) -> None:
    """Add ``sessions`` to the CLI's subparsers."""
    sessions = commands.add_parser(
        "sessions",
        help="list live and recent sessions from the records",
        description="List the sessions recorded in the data folder: live ones (their server still runs) and the "
        f"most recent ({RECENT} unless --limit), newest first.",
    )
    sessions.add_argument("--all", action="store_true", help="every recorded session")
    sessions.add_argument(
        "--limit",
        type=_positive,
        default=RECENT,
        metavar="N",
        help=f"recent sessions besides the live (default {RECENT})",
    )
    sessions.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number, e.g. 50") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return number


_COLUMNS = "id, status, backend, owner, profile_id, created_at, ended_at, reason"
_TASKS = "(SELECT count(*) FROM tasks WHERE tasks.session_id = sessions.id) AS tasks"


def read_sessions(path: Path, limit: int | None) -> tuple[list[SessionRow], int]:
    """Settle the records of dead servers, then the live sessions and the ``limit`` most recent (all with
    None), newest first, and how many are recorded in all. Blocking (sqlite3)."""
    if not path.exists():
        return [], 0
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'").fetchone() is None:
            return [], 0
        check_schema_version(db, path)
        recover(db, runs_dir(path), own_run="")
        total = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        if limit is None:
            rows = db.execute(f"SELECT {_COLUMNS}, {_TASKS} FROM sessions ORDER BY created_at DESC").fetchall()
        else:
            rows = db.execute(
                f"SELECT {_COLUMNS}, {_TASKS} FROM sessions WHERE status IN ({LIVE_MARKS}) OR id IN "
                "(SELECT id FROM sessions ORDER BY created_at DESC LIMIT ?) ORDER BY created_at DESC",
                (*LIVE, limit),
            ).fetchall()
    return [_row(*row) for row in rows], total


def _row(
    session_id: str,
    status: str,
    backend: str,
    owner: str,
    profile_id: str | None,
    created_at: str,
    ended_at: str | None,
    reason: str,
    tasks: int,
) -> SessionRow:
    return SessionRow.model_validate(
        {
            "sessionId": session_id,
            "status": status,
            "live": status in LIVE_STATUSES,
            "backend": backend,
            "owner": owner,
            "profileId": profile_id,
            "createdAt": created_at,
            "endedAt": ended_at,
            "reason": reason,
            "tasks": tasks,
        }
    )


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _print_table(rows: list[SessionRow], total: int, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal:
        for row in rows:
            print(
                f"{row.session_id}  {row.status:<10} {'live' if row.live else 'ended':<5}  {row.backend:<6}  "
                f"{row.owner}  started {_when(row.created_at)}  tasks {row.tasks}  {row.reason}"
            )
    else:
        table = Table(box=None, header_style="bold")
        for column in ("session", "state", "backend", "owner", "started", "tasks"):
            table.add_column(column, justify="right" if column == "tasks" else "left", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for row in rows:
            state = Text(row.status, style="bold green" if row.live else ("red" if row.status == "Failed" else ""))
            table.add_row(
                Text(printable(row.session_id)),
                state,
                Text(row.backend),
                Text(printable(row.owner)),
                Text(_when(row.created_at)),
                Text(str(row.tasks)),
                Text(printable(row.reason)),
            )
        console.print(table)
    live = sum(row.live for row in rows)
    more = f"; {total - len(rows)} older not shown (--all shows them)" if total > len(rows) else ""
    print(f"{live} live, {len(rows)} shown of {total} recorded in {path}{more}")


def run_sessions(args: argparse.Namespace) -> int:
    """``browser-sessions sessions``; returns the exit code."""
    try:
        path = Settings().database_path.expanduser().resolve()  # as Store.open names it, and so its runs
    except ValidationError as exc:
        print(describe_validation(exc).replace("call again", "run again") + " (BROWSER_SESSIONS_*)", file=sys.stderr)
        return 2
    try:
        rows, total = read_sessions(path, None if args.all else args.limit)
    except (sqlite3.Error, OSError) as exc:
        message = (
            f"Cannot read the records in {path}: {exc}. Check BROWSER_SESSIONS_DATABASE (or "
            "BROWSER_SESSIONS_DATA_DIR) and that you may read and write that file."
        )
        if args.json:
            print(json.dumps({"error": {"code": "RECORDS_UNREADABLE", "message": message}}, indent=2))
        print(message, file=sys.stderr)
        return 1
    if args.json:
        document = {"database": str(path), "total": total, "sessions": [row.model_dump(mode="json") for row in rows]}
        print(json.dumps(document, indent=2, ensure_ascii=False))
    elif total == 0:
        print(
            f"No sessions recorded in {path}. "
            "Run a task with: browser-sessions run 'go to https://example.com; extract text'"
        )
    else:
        _print_table(rows, total, path)
    return 0
