"""Naming downloaded files inside a session's folder."""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(suggested: str) -> str:
    """A file name with no path parts or odd characters (``../../x y?.pdf`` -> ``x y_.pdf``)."""
    name = _UNSAFE.sub("_", Path(suggested.replace("\\", "/")).name).strip(" .")
    return name[:120] or "download"


def unique_name(folder: Path, suggested: str) -> str:
    """``safe_name(suggested)``, numbered (``report (2).pdf``) when the folder has it already."""
    name = safe_name(suggested)
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 2
    while (folder / candidate).exists():
        candidate, n = f"{stem} ({n}){suffix}", n + 1
    return candidate
