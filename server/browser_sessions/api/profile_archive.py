"""The ``.tar.gz`` a profile travels in over ``browser-sessions api``: one member, ``MEMBER``, holding the
document ``browser-sessions profiles export`` writes (so ``tar xzf`` and ``profiles import`` read it too).

``unpack`` trusts nothing it is given: the gzip stream is decompressed with a bound (a small file that
inflates past ``MAX_UNPACKED_BYTES`` is refused before it is all inflated), the tar must hold exactly
``MEMBER`` as a regular file (no other names, so no paths outside it, no links, no devices), and the member
must be an export whose storage state has the shape Playwright reads. Nothing is ever written to disk.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import zlib
from typing import Any

from browser_sessions.errors import InvalidInput
from browser_sessions.profiles import read_export

MEMBER = "browser-sessions-profile.json"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # the .tar.gz as sent
MAX_UNPACKED_BYTES = 32 * 1024 * 1024  # the tar inside it: a storage state is JSON, far below this
NOT_GZIP = "Only .tar.gz files are allowed"


def pack(document: dict[str, Any]) -> bytes:
    """``document`` as a ``.tar.gz`` holding ``MEMBER`` (mode 0600)."""
    data = json.dumps(document, indent=2).encode()
    info = tarfile.TarInfo(MEMBER)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def unpack(archive: bytes) -> dict[str, Any]:
    """The export document inside ``archive``, or ``InvalidInput`` saying what is wrong with it."""
    if len(archive) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not archive.startswith(b"\x1f\x8b"):
        raise InvalidInput(f"{NOT_GZIP}: the file is not gzip-compressed.")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(archive)) as unzipped:
            raw = unzipped.read(MAX_UNPACKED_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInput(f"{NOT_GZIP}: the file is not a readable gzip stream ({exc}).") from None
    if len(raw) > MAX_UNPACKED_BYTES:
        raise InvalidInput(f"The archive unpacks to more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB.")
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            members = tar.getmembers()
            names = [member.name for member in members]
            if len(members) != 1 or names[0] != MEMBER:
                raise InvalidInput(
                    f"The archive must hold exactly one file, {MEMBER} (as GET /profiles/:id/download gives it); "
                    f"it holds {names[:5]!r}{' and more' if len(names) > 5 else ''}."
                )
            if not members[0].isreg():
                raise InvalidInput(f"{MEMBER} in the archive must be a regular file, not a link or a folder.")
            extracted = tar.extractfile(members[0])
            assert extracted is not None  # a regular file always has contents
            text = extracted.read()
    except tarfile.TarError as exc:
        raise InvalidInput(f"{NOT_GZIP}: the gzip stream does not hold a tar archive ({exc}).") from None
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput(f"{MEMBER} in the archive is not JSON.") from None
    _, state = read_export(document, MEMBER)
    _check_entries(state)
    return {**document, "storageState": state}


def _check_entries(state: dict[str, Any]) -> None:
    """Cookies and origins shaped as Playwright's storage state has them (a bad entry would fail the next
    session on the profile instead)."""
    for cookie in state["cookies"]:
        if not isinstance(cookie, dict) or not all(
            isinstance(cookie.get(key), str) for key in ("name", "value", "domain", "path")
        ):
            raise InvalidInput("Each cookie in storageState needs string name, value, domain and path.")
    for origin in state["origins"]:
        if (
            not isinstance(origin, dict)
            or not isinstance(origin.get("origin"), str)
            or not isinstance(origin.get("localStorage", []), list)
        ):
            raise InvalidInput("Each origin in storageState needs a string origin and a localStorage list.")
