"""``browser-sessions profiles create|list|delete|export|import``: saved logins from the command line, in the
data folder the server uses (``BROWSER_SESSIONS_DATA_DIR``).

With ``--json`` every command prints one JSON object on stdout: the profile (``id`` is its profileId), the
list (``{"profiles": [...]}``) or, on failure, ``{"error": {"code", "message"}}``. Exit codes: 0 done,
1 refused (unknown profile, in use, bad file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from browser_sessions.backends.base import LOCAL_OWNER
from browser_sessions.errors import BrowserSessionsError
from browser_sessions.profiles import ProfileInfo, Profiles
from browser_sessions.settings import Settings


def add_profile_commands(commands: Any) -> None:
    """Add ``profiles`` and its subcommands to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    profiles = commands.add_parser("profiles", help="saved logins (cookies, storage) that sessions start from")
    actions = profiles.add_subparsers(dest="profiles_command", required=True)

    create = actions.add_parser("create", parents=[common], help="create an empty profile")
    create.add_argument("--name", default="", help="a label for people")
    create.add_argument("--owner", default=LOCAL_OWNER, help="whose profile: local (default) or an HTTP owner id")

    listing = actions.add_parser("list", parents=[common], help="list profiles")
    listing.add_argument("--owner", help="only this owner's profiles")

    delete = actions.add_parser("delete", parents=[common], help="delete a profile (refused while in use)")
    delete.add_argument("profile_id", metavar="ID")

    export = actions.add_parser("export", parents=[common], help="write a profile to a file (mode 0600)")
    export.add_argument("profile_id", metavar="ID")
    export.add_argument("file", type=Path, metavar="FILE", help="a new .json file; it holds live logins")

    imported = actions.add_parser("import", parents=[common], help="create a profile from an exported file")
    imported.add_argument("file", type=Path, metavar="FILE")
    imported.add_argument("--name", help="a label (default: the exported one)")
    imported.add_argument("--owner", default=LOCAL_OWNER, help="whose profile: local (default) or an owner id")
    imported.add_argument("--keep-id", action="store_true", help="keep the exported profile id")


def _wire(info: ProfileInfo, **extra: Any) -> dict[str, Any]:
    return {"id": info.profile_id, **info.model_dump(mode="json", by_alias=True), **extra}


def _line(info: ProfileInfo) -> str:
    name = f" {info.name!r}" if info.name else ""
    return (
        f"{info.profile_id}{name} owner={info.owner} cookies={info.cookies} origins={info.origins} "
        f"saved={info.updated_at:%Y-%m-%d %H:%M:%S}"
    )


def run_profiles(args: argparse.Namespace, settings: Settings | None = None) -> int:
    profiles = Profiles((settings or Settings()).profiles_dir)
    command: str = args.profiles_command
    try:
        if command == "list":
            found = profiles.list_all(args.owner)
            if args.json:
                return _print({"profiles": [_wire(info) for info in found]})
            print("\n".join(_line(info) for info in found) or "No profiles. Create one with: profiles create")
            return 0
        if command == "create":
            info = profiles.create(name=args.name, owner=args.owner)
            text = f"Created profile {_line(info)}\nStart sessions from it with profileId={info.profile_id}."
            return _print(_wire(info), text, args.json)
        if command == "delete":
            info = profiles.delete(args.profile_id)
            return _print(_wire(info, deleted=True), f"Deleted profile {info.profile_id}.", args.json)
        if command == "export":
            info = profiles.export(args.profile_id, args.file)
            text = f"Exported profile {info.profile_id} to {args.file} (mode 0600: it holds live logins)."
            return _print(_wire(info, file=str(args.file)), text, args.json)
        info = profiles.import_file(args.file, owner=args.owner, name=args.name, keep_id=args.keep_id)
        return _print(_wire(info), f"Imported profile {_line(info)}", args.json)
    except BrowserSessionsError as exc:
        code, message = exc.code, exc.message
    except OSError as exc:
        code, message = "FILE_ERROR", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    if args.json:
        _print({"error": {"code": code, "message": message}})
    else:
        print(f"{code}: {message}", file=sys.stderr)
    return 1


def _print(document: dict[str, Any], text: str | None = None, as_json: bool = True) -> int:
    print(json.dumps(document, indent=2) if as_json or text is None else text)
    return 0
