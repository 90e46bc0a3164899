"""The runs of servers that write one records database, and what a run that died leaves behind.

Each open ``Store`` is a run: it holds an exclusive ``flock`` on ``<database>-runs/<run>.lock`` until it
closes (or its process dies, which releases the lock). Opening a store ends what runs whose lock is free
left live: their sessions become Terminated with ``STOPPED_REASON`` at the time of their last record, and
their unfinished tasks failed with ``TASK_STOPPED``. A run whose lock is held is alive (another server on
the same data folder): its sessions are left alone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from browser_sessions.models import LIVE_STATUSES

logger = logging.getLogger("browser_sessions.store")

STOPPED_REASON = "the server stopped while it was live"
TASK_STOPPED_MESSAGE = "The server stopped while this task was queued or running; its session ended."
LIVE = tuple(sorted(LIVE_STATUSES))
LIVE_MARKS = ",".join("?" * len(LIVE))


def to_json(value: Any) -> str:
    """Compact JSON text that SQLite's UTF-8 can hold: lone surrogates (valid in JSON input, not in UTF-8)
    are written as ``\\u`` escapes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


def take_run_lock(runs: Path) -> tuple[str, int]:
    """A new run id and the descriptor holding its lock (close it to end the run)."""
    runs.mkdir(mode=0o700, exist_ok=True)
    run_id = secrets.token_hex(8)
    fd = os.open(runs / f"{run_id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return run_id, fd


def runs_dir(path: Path) -> Path:
    return path.with_name(f"{path.name}-runs")


def _run_is_dead(runs: Path, run_id: str) -> bool:
    """True when no process holds ``run_id``'s lock (its server is gone); removes its lock file then."""
    lock_path = runs / f"{run_id}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    lock_path.unlink(missing_ok=True)
    return True


def recover(db: sqlite3.Connection, runs: Path, own_run: str) -> None:
    """End what dead runs left live: sessions Terminated with ``STOPPED_REASON``, unfinished tasks failed."""
    db.execute("BEGIN IMMEDIATE")
    try:
        run_ids = [
            run_id
            for (run_id,) in db.execute(f"SELECT DISTINCT run_id FROM sessions WHERE status IN ({LIVE_MARKS})", LIVE)
            if run_id != own_run and _run_is_dead(runs, run_id)
        ]
        for run_id in run_ids:
            rows = db.execute(
                f"SELECT id, created_at, updated_at, transitions, usage FROM sessions "
                f"WHERE run_id = ? AND status IN ({LIVE_MARKS})",
                (run_id, *LIVE),
            ).fetchall()
            for session_id, created_at, updated_at, transitions, usage in rows:
                _end_stopped_session(db, session_id, created_at, updated_at, json.loads(transitions), json.loads(usage))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if run_ids:
        logger.info("marked the sessions of %d stopped server run(s) Terminated", len(run_ids))


def _end_stopped_session(
    db: sqlite3.Connection,
    session_id: str,
    created_at: str,
    updated_at: str,
    transitions: list[dict[str, Any]],
    usage: dict[str, Any],
) -> None:
    """The session's last record is when it was last known live: it ends there."""
    task_rows = db.execute("SELECT updated_at FROM tasks WHERE session_id = ?", (session_id,)).fetchall()
    ended_at = max([updated_at, *(row[0] for row in task_rows)])
    stopped = {"code": "TASK_STOPPED", "message": TASK_STOPPED_MESSAGE}
    db.execute(
        "UPDATE tasks SET status = 'failed', error = ?, ended_at = ?, updated_at = ? "
        "WHERE session_id = ? AND status NOT IN ('task_completed', 'failed')",
        (to_json(stopped), ended_at, ended_at, session_id),
    )
    totals = db.execute(
        "SELECT count(*), coalesce(sum(json_extract(usage, '$.steps')), 0), "
        "coalesce(sum(json_extract(usage, '$.inputTokens')), 0), "
        "coalesce(sum(json_extract(usage, '$.outputTokens')), 0) FROM tasks WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    elapsed = datetime.fromisoformat(ended_at) - datetime.fromisoformat(created_at)
    usage = {
        **usage,
        "computeTimeMs": int(elapsed.total_seconds() * 1000),
        "tasks": totals[0],
        "steps": totals[1],
        "inputTokens": totals[2],
        "outputTokens": totals[3],
    }
    transitions.append({"status": "Terminated", "at": ended_at, "reason": STOPPED_REASON})
    db.execute(
        "UPDATE sessions SET status = 'Terminated', reason = ?, ended_at = ?, transitions = ?, usage = ? WHERE id = ?",
        (STOPPED_REASON, ended_at, to_json(transitions), to_json(usage), session_id),
    )
