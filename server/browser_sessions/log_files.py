"""The server's log file in the data folder: ``<data_dir>/logs/browser-sessions.log``, next to the records
and profiles, so everything durable lives in one place.

The file gets what stderr gets (the same level), rotates at ``MAX_BYTES`` keeping ``BACKUPS`` old files, and
is readable by its owner only, like the database. Nothing secret is logged in the first place: secrets are
redacted before any message is built, and tokens and keys are never formatted into one.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from browser_sessions.settings import Settings

MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _PrivateRotatingFile(RotatingFileHandler):
    """A rotating log whose every file (the current one and each new one after a rollover) is mode 0600."""

    def _open(self):  # type: ignore[no-untyped-def]  # the base method is untyped
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        os.chmod(self.baseFilename, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8")


def log_path(settings: Settings) -> Path:
    return settings.data_dir / "logs" / "browser-sessions.log"


def log_to_file(settings: Settings) -> Path:
    """Send the ``browser_sessions`` and ``mcp`` loggers to the data folder's log file as well; returns it."""
    path = log_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = _PrivateRotatingFile(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(settings.log_level)
    for name in ("browser_sessions", "mcp", "uvicorn"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.getLevelName(settings.log_level):
            logger.setLevel(settings.log_level)
    return path
