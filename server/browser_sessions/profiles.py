"""Saved profiles: a browser's logins (Playwright storage state: cookies, local storage and IndexedDB) kept
between sessions, under ``<data_dir>/profiles/<id>/``.

Layout and modes: ``profiles/`` and each ``<id>/`` are 0700; ``profile.json`` (metadata), ``state.json``
(the storage state) and ``lock`` are 0600, and so is an exported file: they hold live logins. Files are
replaced atomically (written aside, then renamed), so a crash leaves the old or the new state, never half.

A profile belongs to an owner (``Caller.owner``: "local" on stdio and from the CLI). Another owner's
profile does not exist for a caller: ``ProfileNotFound``, exactly as for an unknown id.

One live session at a time per profile: ``lease`` takes an exclusive ``flock`` on ``lock`` for the
session's life (across processes sharing the data folder, too) and writes the holder's session id into
it; a second ``lease`` is refused with ``ProfileInUse`` naming that session. The session saves its state
back after each task and when it ends, then releases the lease.

Every method does blocking file I/O: call it from a worker thread (``anyio.to_thread``) on the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from browser_sessions.backends.base import LOCAL_OWNER
from browser_sessions.errors import InvalidInput, ProfileInUse, ProfileNotFound
from browser_sessions.models import WireModel

EXPORT_FORMAT = "browser-sessions-profile"
EXPORT_VERSION = 1
PROFILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
EMPTY_STATE: dict[str, Any] = {"cookies": [], "origins": []}


class ProfileInfo(WireModel):
    """A profile's metadata (never its cookies or storage values)."""

    profile_id: str = Field(description="Pass as profileId to start_session or run_task.")
    name: str = Field(description="A label for people; not unique.")
    description: str = Field(default="", description="A longer note for people; may be empty.")
    owner: str = Field(description="Whose profile it is: 'local', or the owner id of an HTTP token.")
    created_at: datetime
    updated_at: datetime = Field(description="When its state was last saved.")
    last_session_id: str | None = Field(default=None, description="The session that saved it last.")
    cookies: int = Field(default=0, description="How many cookies the saved state holds.")
    origins: int = Field(default=0, description="How many origins have local storage or IndexedDB saved.")
    usage_count: int = Field(default=0, description="How many sessions have started from it.")
    last_used_at: datetime | None = Field(default=None, description="When a session last started from it.")


class ProfileList(WireModel):
    profiles: list[ProfileInfo]


def _write_private(path: Path, data: str, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` (mode 0600) atomically; with ``replace=False`` refuse an existing file."""
    if not replace and path.exists():
        raise InvalidInput(f"{path} exists; choose another file name or delete it first.")
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(aside, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(aside, 0o600)
        os.replace(aside, path)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _counts(state: dict[str, Any]) -> dict[str, int]:
    return {"cookies": len(state.get("cookies", [])), "origins": len(state.get("origins", []))}


def _check_state(state: Any) -> dict[str, Any]:
    """``state`` if it has the shape of a Playwright storage state, else ``InvalidInput``."""
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("cookies", []), list)
        or not isinstance(state.get("origins", []), list)
    ):
        raise InvalidInput('A storage state is a JSON object {"cookies": [...], "origins": [...]}.')
    return {"cookies": state.get("cookies", []), "origins": state.get("origins", []), **state}


class ProfileLease:
    """The right to use one profile for one session: holds the profile's lock until ``release``."""

    def __init__(self, profiles: Profiles, info: ProfileInfo, state: dict[str, Any], fd: int) -> None:
        self.profiles = profiles
        self.info = info
        self.state = state  # what the session starts from
        self._fd: int | None = fd

    @property
    def profile_id(self) -> str:
        return self.info.profile_id

    def save(self, state: dict[str, Any], session_id: str) -> None:
        self.profiles.save_state(self.profile_id, state, session_id)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor releases the flock


class Profiles:
    """The profiles under ``root`` (``Settings.profiles_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, profile_id: str) -> Path:
        return self.root / profile_id

    def _meta_path(self, profile_id: str) -> Path:
        return self._dir(profile_id) / "profile.json"

    def _write_meta(self, info: ProfileInfo) -> None:
        _write_private(self._meta_path(info.profile_id), info.model_dump_json(by_alias=True, indent=2))

    # ----- lookups -----

    def get(self, profile_id: str, owner: str | None = None) -> ProfileInfo:
        """The profile ``profile_id`` (of ``owner``, when given), else ``ProfileNotFound``."""
        if not PROFILE_ID.match(profile_id):
            raise ProfileNotFound(profile_id)
        try:
            info = ProfileInfo.model_validate_json(self._meta_path(profile_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValidationError):
            raise ProfileNotFound(profile_id) from None
        if owner is not None and info.owner != owner:
            raise ProfileNotFound(profile_id)
        return info

    def list_all(self, owner: str | None = None) -> list[ProfileInfo]:
        """The profiles (of ``owner``, when given), oldest first."""
        if not self.root.is_dir():
            return []
        found: list[ProfileInfo] = []
        for entry in self.root.iterdir():
            with contextlib.suppress(ProfileNotFound):
                found.append(self.get(entry.name, owner))
        return sorted(found, key=lambda info: (info.created_at, info.profile_id))

    def load_state(self, profile_id: str) -> dict[str, Any]:
        try:
            data = json.loads((self._dir(profile_id) / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return dict(EMPTY_STATE)
        return _check_state(data)

    # ----- changes -----

    def create(
        self,
        name: str = "",
        owner: str = LOCAL_OWNER,
        state: dict[str, Any] | None = None,
        profile_id: str | None = None,
        description: str = "",
    ) -> ProfileInfo:
        """A new profile, empty or with ``state``; ``profile_id`` is chosen unless given (and free)."""
        state = _check_state(state if state is not None else EMPTY_STATE)
        for label, text in (("name", name), ("description", description)):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                message = f"The profile {label} holds characters that are not text (lone surrogates)."
                raise InvalidInput(message) from None
        if profile_id is None:
            profile_id = secrets.token_hex(6)
        elif not PROFILE_ID.match(profile_id):
            raise InvalidInput(f"{profile_id!r} is not a profile id: letters, digits, '_' or '-', at most 64.")
        _private_dir(self.root)
        folder = self._dir(profile_id)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            raise InvalidInput(
                f"A profile with id {profile_id!r} exists; delete it first or choose another id."
            ) from None
        os.chmod(folder, 0o700)
        created = datetime.now(UTC)
        info = ProfileInfo(
            profile_id=profile_id,
            name=name,
            description=description,
            owner=owner,
            created_at=created,
            updated_at=created,
            **_counts(state),
        )
        try:
            _write_private(folder / "state.json", json.dumps(state))
            self._write_meta(info)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return info

    def save_state(self, profile_id: str, state: dict[str, Any], session_id: str | None) -> ProfileInfo:
        """Replace the profile's saved state (a session ending, or after each of its tasks)."""
        info = self.get(profile_id)
        state = _check_state(state)
        _write_private(self._dir(profile_id) / "state.json", json.dumps(state))
        info = info.model_copy(
            update={"updated_at": datetime.now(UTC), "last_session_id": session_id, **_counts(state)}
        )
        self._write_meta(info)
        return info

    def delete(self, profile_id: str, owner: str | None = None) -> ProfileInfo:
        """Remove the profile and its files; refused while a live session uses it."""
        info = self.get(profile_id, owner)
        lease = self.lease(profile_id, owner, holder="a deletion in progress", record_use=False)
        try:
            shutil.rmtree(self._dir(profile_id))
        finally:
            lease.release()
        return info

    def lease(self, profile_id: str, owner: str | None, holder: str, *, record_use: bool = True) -> ProfileLease:
        """Take the profile for ``holder`` (e.g. "session 1a2b3c"), with the state it starts from; refused
        with ``ProfileInUse`` naming the holder while another lease is held, in any process. With
        ``record_use`` (a session starting from it) its ``usage_count`` and ``last_used_at`` are updated."""
        info = self.get(profile_id, owner)
        lock_path = self._dir(profile_id) / "lock"
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        except FileNotFoundError:  # deleted meanwhile
            raise ProfileNotFound(profile_id) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            using = lock_path.read_text(encoding="utf-8").strip() or "another session"
            raise ProfileInUse(
                f"Profile {profile_id} is in use by {using}; one live session at a time uses a profile. "
                "Terminate that session (it saves the profile as it ends), then start again."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder} (pid {os.getpid()})".encode(), 0)
            if record_use:
                info = self.get(profile_id)  # as the lock's holder now, not as before it
                info = info.model_copy(update={"usage_count": info.usage_count + 1, "last_used_at": datetime.now(UTC)})
                self._write_meta(info)
            return ProfileLease(self, info, self.load_state(profile_id), fd)
        except BaseException:
            os.close(fd)
            raise

    # ----- files that travel -----

    def export(self, profile_id: str, destination: Path, owner: str | None = None) -> ProfileInfo:
        """Write the profile (metadata and state: live logins) to ``destination``, mode 0600; an existing
        file is refused."""
        info, document = self.export_document(profile_id, owner)
        _write_private(destination, json.dumps(document, indent=2), replace=False)
        return info

    def export_document(self, profile_id: str, owner: str | None = None) -> tuple[ProfileInfo, dict[str, Any]]:
        """The profile and the document ``export`` writes (what ``import_file`` and ``replace_from`` read)."""
        info = self.get(profile_id, owner)
        meta = info.model_dump(mode="json", by_alias=True, include={"profile_id", "name", "description", "created_at"})
        document = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "profile": meta,
            "storageState": self.load_state(profile_id),
        }
        return info, document

    def data_size(self, profile_id: str) -> int:
        """Bytes of the profile's saved state (0 when none is saved)."""
        try:
            return (self._dir(profile_id) / "state.json").stat().st_size
        except FileNotFoundError:
            return 0

    def replace_from(self, profile_id: str, document: Any, source: str, owner: str | None = None) -> ProfileInfo:
        """Replace the profile's saved state with an exported document's (its id, name and description stay);
        refused with ``ProfileInUse`` while a live session uses the profile."""
        _, state = read_export(document, source)
        lease = self.lease(profile_id, owner, holder="an upload in progress", record_use=False)
        try:
            return self.save_state(profile_id, state, None)
        finally:
            lease.release()

    def import_file(
        self, source: Path, *, owner: str = LOCAL_OWNER, name: str | None = None, keep_id: bool = False
    ) -> ProfileInfo:
        """A new profile from an ``export`` file: a new id, or the exported one with ``keep_id``."""
        try:
            document = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"Cannot read {source} as an exported profile: {exc}.") from None
        exported, state = read_export(document, str(source))
        exported_id = exported.get("profileId")
        if keep_id and not isinstance(exported_id, str):
            raise InvalidInput(f"{source} names no profile id to keep; import it without --keep-id.")
        return self.create(
            name=name if name is not None else str(exported.get("name", "")),
            owner=owner,
            state=state,
            profile_id=exported_id if keep_id else None,
            description=str(exported.get("description", "")),
        )


def read_export(document: Any, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(profile metadata, storage state)`` of an exported document, else ``InvalidInput`` naming ``source``."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"{source} is not a profile exported by `browser-sessions profiles export`.")
    if document.get("version") != EXPORT_VERSION:
        raise InvalidInput(f"{source} has export version {document.get('version')!r}; this server reads 1.")
    found = document.get("profile")
    return (found if isinstance(found, dict) else {}), _check_state(document.get("storageState"))
