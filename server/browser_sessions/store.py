"""The durable records: one SQLite file (the standard library's sqlite3, WAL mode) with the sessions, their
tasks and the server runs that wrote them. Task outputs and history stay readable after a restart.

Contracts:

- Writes are synchronous, one short statement each, on the caller's (the event loop's) thread. That is the
  point: a task's finished record must be on disk before anyone waiting for the task is woken, and tasks are
  finished by synchronous code. In WAL mode with ``synchronous=NORMAL`` a commit appends to the WAL file
  without an fsync (tens of microseconds), so it survives a crash of the server process (the OS holds the
  bytes), though not a power cut. A write that fails is logged and the server goes on.
- Reads run in a worker thread (``anyio.to_thread``) on a read-only connection of their own: they may
  return many rows.
- Runs (``store_runs.py``): each open ``Store`` is one run, holding a lock until it closes. Opening the store
  marks the sessions that dead runs left live as Terminated, "the server stopped while it was live", and
  fails their unfinished tasks. Several servers may share one database: a running server's sessions are
  left alone.
- No secret value reaches this module: callers hand it redacted values (``backends/local/records.py``).
- The database file (and so its ``-wal`` and ``-shm`` files, which SQLite creates alike) is readable by
  the owner only.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio

from browser_sessions.models import SessionState, TaskResult, TaskSummary
from browser_sessions.store_runs import LIVE, LIVE_MARKS, recover, runs_dir, take_run_lock, to_json

logger = logging.getLogger("browser_sessions.store")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT 'local',
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    profile_id TEXT,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    updated_at TEXT NOT NULL,
    transitions TEXT NOT NULL,
    usage TEXT NOT NULL,
    view TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (owner, created_at);
CREATE INDEX IF NOT EXISTS sessions_by_status ON sessions (status, run_id);
CREATE TABLE IF NOT EXISTS tasks (
    session_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    planner TEXT,
    model TEXT,
    output_type TEXT NOT NULL,
    output TEXT,
    error TEXT,
    usage TEXT NOT NULL,
    steps TEXT NOT NULL,
    replay TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (session_id, task_id)
);
"""

# What a session row keeps apart from its columns: the state fields that stay meaningful once it ended.
_VIEW_FIELDS = {"tracked", "current_url", "title", "idle_timeout_seconds", "secrets", "downloads"}

T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _is_text(value: str) -> bool:
    """Whether ``value`` can be looked up at all (an id with lone surrogates is none of ours)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_schema_version(db: sqlite3.Connection, path: Path) -> None:
    """Refuse (``sqlite3.DatabaseError``) a database written by a newer browser-sessions."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"{path} was written by a newer browser-sessions (schema {version}); upgrade, or set "
            "BROWSER_SESSIONS_DATABASE to another file."
        )


def _create_private(path: Path) -> None:
    """``path`` exists and only its owner may read or write it."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


class Store:
    """The records of one data folder (``BROWSER_SESSIONS_DATABASE``). Open with ``Store.open`` (blocking:
    call it in a worker thread), close once."""

    def __init__(self, path: Path, connection: sqlite3.Connection, run_id: str, run_lock: int) -> None:
        self.path = path
        self.run_id = run_id
        self._db = connection
        self._run_lock = run_lock

    # ----- opening, runs and recovery -----

    @classmethod
    def open(cls, path: Path) -> Store:
        path = path.expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        runs = runs_dir(path)
        run_id, lock = take_run_lock(runs)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            check_schema_version(db, path)
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            recover(db, runs, run_id)
        except BaseException:
            db.close()
            os.close(lock)
            raise
        return cls(path, db, run_id, lock)

    def close(self) -> None:
        self._db.close()
        (runs_dir(self.path) / f"{self.run_id}.lock").unlink(missing_ok=True)
        os.close(self._run_lock)

    # ----- writes (synchronous, small: see the module docstring) -----

    def save_session(self, state: SessionState, owner: str) -> None:
        """Insert or replace the session's row with ``state`` (redacted by the caller)."""
        data = state.model_dump(mode="json", by_alias=False)
        self._write(
            """INSERT INTO sessions (id, backend, owner, run_id, status, reason, profile_id, created_at, ended_at,
                   updated_at, transitions, usage, view)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET status = excluded.status, reason = excluded.reason,
                   ended_at = excluded.ended_at, updated_at = excluded.updated_at,
                   transitions = excluded.transitions, usage = excluded.usage, view = excluded.view""",
            (
                state.session_id,
                state.backend,
                owner,
                self.run_id,
                state.status,
                state.reason,
                state.profile_id,
                data["created_at"],
                data["ended_at"],
                _now(),
                to_json(state.model_dump(mode="json", by_alias=True, include={"transitions"})["transitions"]),
                to_json(state.usage.model_dump(mode="json", by_alias=True)),
                to_json(state.model_dump(mode="json", by_alias=True, include=_VIEW_FIELDS)),
            ),
        )

    def save_task(self, task: TaskResult, spec: dict[str, Any]) -> None:
        """Insert or replace the task's row with ``task`` and its ``spec`` (both redacted, the spec's secrets
        as placeholder names only)."""
        data = task.model_dump(mode="json", by_alias=True)
        self._write(
            """INSERT OR REPLACE INTO tasks (session_id, task_id, status, spec, planner, model, output_type, output,
                   error, usage, steps, replay, created_at, started_at, ended_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                task.session_id,
                task.task_id,
                task.status,
                to_json(spec),
                task.planner,
                task.model,
                task.output_type,
                to_json(data["output"]),
                None if task.error is None else to_json(data["error"]),
                to_json(data["usage"]),
                to_json(data["steps"]),
                None if task.replay is None else to_json(data["replay"]),
                data["createdAt"],
                data["startedAt"],
                data["endedAt"],
                _now(),
            ),
        )

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, parameters)
        except sqlite3.Error as exc:
            logger.error("could not write a record to %s: %s", self.path, exc)

    # ----- reads (in a worker thread) -----

    async def session(self, session_id: str) -> tuple[SessionState, str] | None:
        """The recorded state of ``session_id`` and its owner, or None."""
        if not _is_text(session_id):
            return None
        return await self._read(lambda db: _read_session(db, session_id))

    async def sessions(self, owner: str, *, ended: bool, limit: int) -> list[SessionState]:
        """``owner``'s most recent ``limit`` sessions (ended ones only with ``ended``), oldest first."""
        return await self._read(lambda db: _read_sessions(db, owner, ended, limit))

    async def task(self, session_id: str, task_id: str) -> TaskResult | None:
        if not (_is_text(session_id) and _is_text(task_id)):
            return None
        return await self._read(lambda db: _read_task(db, session_id, task_id))

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with closing(sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)) as db:
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                db.row_factory = sqlite3.Row
                return query(db)

        return await anyio.to_thread.run_sync(run)


def _state(db: sqlite3.Connection, row: sqlite3.Row) -> SessionState:
    tasks = db.execute(
        "SELECT task_id, status FROM tasks WHERE session_id = ? ORDER BY created_at, rowid", (row["id"],)
    ).fetchall()
    return SessionState.model_validate(
        {
            **json.loads(row["view"]),
            "sessionId": row["id"],
            "backend": row["backend"],
            "status": row["status"],
            "reason": row["reason"],
            "paused": False,
            "createdAt": row["created_at"],
            "endedAt": row["ended_at"],
            "transitions": json.loads(row["transitions"]),
            "profileId": row["profile_id"],
            "queuedTaskIds": [],
            "tasks": [TaskSummary(task_id=t["task_id"], status=t["status"]) for t in tasks],
            "tabs": [],
            "usage": json.loads(row["usage"]),
            "resourceUri": f"session://{row['id']}",
        }
    )


def _read_session(db: sqlite3.Connection, session_id: str) -> tuple[SessionState, str] | None:
    row = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else (_state(db, row), row["owner"])


def _read_sessions(db: sqlite3.Connection, owner: str, ended: bool, limit: int) -> list[SessionState]:
    where = f"owner = ? AND status NOT IN ({LIVE_MARKS})" if ended else "owner = ?"
    parameters = (owner, *LIVE) if ended else (owner,)
    rows = db.execute(
        f"SELECT * FROM sessions WHERE {where} ORDER BY created_at DESC LIMIT ?", (*parameters, limit)
    ).fetchall()
    return [_state(db, row) for row in reversed(rows)]


def _read_task(db: sqlite3.Connection, session_id: str, task_id: str) -> TaskResult | None:
    row = db.execute("SELECT * FROM tasks WHERE session_id = ? AND task_id = ?", (session_id, task_id)).fetchone()
    if row is None:
        return None
    uri = f"session://{session_id}/tasks/{task_id}"

    def loaded(column: str) -> Any:
        return None if row[column] is None else json.loads(row[column])

    return TaskResult.model_validate(
        {
            "sessionId": session_id,
            "taskId": task_id,
            "status": row["status"],
            "planner": row["planner"],
            "model": row["model"],
            "outputType": row["output_type"],
            "output": loaded("output"),
            "error": loaded("error"),
            "replay": loaded("replay"),
            "usage": loaded("usage"),
            "steps": loaded("steps"),
            "createdAt": row["created_at"],
            "startedAt": row["started_at"],
            "endedAt": row["ended_at"],
            "resourceUri": uri,
            "outputUri": f"{uri}/output" if row["status"] == "task_completed" else None,
        }
    )
