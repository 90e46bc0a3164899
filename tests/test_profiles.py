"""Profiles: logins kept between sessions through the MCP tools and the CLI, one live session per profile,
owner-only files, and profiles kept apart by owner."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import anyio
import pytest
from mcp import Client

from browser_sessions.profiles import Profiles
from tests.conftest import call, call_error, connect
from tests.processes import clean_env
from tests.site import Site

pytestmark = pytest.mark.anyio


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def log_in(client: Client, profile_id: str, site: Site, value: str) -> str:
    """A session on ``profile_id`` that gets a login cookie ``value`` and keeps a note in local storage and
    IndexedDB, then ends (saving them into the profile); returns its session id."""
    sid = (await call(client, "start_session", profileId=profile_id))["sessionId"]
    done = await call(
        client,
        "send_task",
        sessionId=sid,
        taskDetails=f"go to {site.url(f'/cookie/set?v={value}')}\ngo to {site.url(f'/storage?v={value}')}\n"
        f'wait for "indexeddb: {value}"',
    )
    assert done["status"] == "task_completed", done
    await call(client, "terminate", sessionId=sid)
    return str(sid)


async def what_the_site_sees(client: Client, site: Site, **start: Any) -> str:
    """The cookies the site receives and the page's view of local storage and IndexedDB, in a new session."""
    sid = (await call(client, "start_session", **start))["sessionId"]
    cookies = await call(
        client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/cookie/show')}\nextract text"
    )
    storage = await call(
        client,
        "send_task",
        sessionId=sid,
        taskDetails=f'go to {site.url("/storage")}\nwait for "indexeddb:"\nextract text',
    )
    await call(client, "terminate", sessionId=sid)
    return f"{cookies['output']}\n{storage['output']}"


async def test_a_session_on_a_profile_starts_logged_in_and_saves_back_when_it_ends(site: Site, tmp_path: Path) -> None:
    async with connect(data_dir=str(tmp_path)) as client:
        profile = await call(client, "create_profile", name="shop login")
        pid = profile["profileId"]
        assert (profile["name"], profile["owner"], profile["cookies"]) == ("shop login", "local", 0)

        first = await log_in(client, pid, site, "first-login")
        [saved] = (await call(client, "list_profiles"))["profiles"]
        assert (saved["profileId"], saved["cookies"], saved["origins"], saved["lastSessionId"]) == (pid, 1, 1, first)

        seen = await what_the_site_sees(client, site, profileId=pid)
        assert "cookies: [token=first-login]" in seen
        assert "local storage: first-login" in seen and "indexeddb: first-login" in seen

        # a session without the profile starts clean
        clean = await what_the_site_sees(client, site)
        assert "cookies: []" in clean and "local storage: none" in clean and "indexeddb: none" in clean

        # run_task on the profile: the one-shot session saves what it changed when it ends
        relogin = await call(
            client,
            "run_task",
            taskDetails="extract text",
            startingPoint=site.url("/cookie/set?v=second"),
            profileId=pid,
        )
        assert relogin["status"] == "task_completed"
        state = await call(client, "get_session", sessionId=relogin["sessionId"])
        assert (state["status"], state["profileId"]) == ("Completed", pid)
        assert "cookies: [token=second]" in await what_the_site_sees(client, site, profileId=pid)


async def test_profile_files_are_readable_by_the_owner_only(site: Site, tmp_path: Path) -> None:
    async with connect(data_dir=str(tmp_path)) as client:
        pid = (await call(client, "create_profile"))["profileId"]
        await log_in(client, pid, site, "private")
    folder = tmp_path / "profiles" / pid
    assert mode(tmp_path / "profiles") == 0o700
    assert mode(folder) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["lock", "profile.json", "state.json"]
    for file in folder.iterdir():
        assert mode(file) == 0o600, file
    assert "private" in (folder / "state.json").read_text()  # the login is there, for its owner only


async def test_an_unknown_profile_is_a_clear_error(tmp_path: Path) -> None:
    someone_else = Profiles(tmp_path / "profiles").create(name="not yours", owner="token-0123456789abcdef")
    async with connect(data_dir=str(tmp_path)) as client:
        for profile_id in ("no-such-profile", "../../etc", someone_else.profile_id):
            for tool, arguments in (
                ("start_session", {}),
                ("run_task", {"taskDetails": "extract text"}),
                ("delete_profile", {}),
            ):
                error = await call_error(client, tool, profileId=profile_id, **arguments)
                assert f"PROFILE_NOT_FOUND: No profile with profileId {profile_id!r}" in error, error
                assert "list_profiles" in error and "create_profile" in error
        # another owner's profile is not listed either
        assert (await call(client, "list_profiles"))["profiles"] == []
        assert (await call(client, "list_sessions"))["sessions"] == []


async def test_a_second_live_session_on_a_profile_is_refused_naming_the_first(tmp_path: Path) -> None:
    async with connect(data_dir=str(tmp_path)) as client:
        pid = (await call(client, "create_profile"))["profileId"]
        first = (await call(client, "start_session", profileId=pid))["sessionId"]
        for tool, arguments in (("start_session", {}), ("run_task", {"taskDetails": "extract text"})):
            error = await call_error(client, tool, profileId=pid, **arguments)
            assert f"PROFILE_IN_USE: Profile {pid} is in use by live session {first}" in error, error
            assert "Terminate that session" in error
        error = await call_error(client, "delete_profile", profileId=pid)
        assert f"PROFILE_IN_USE: Profile {pid} is in use by live session {first}" in error
        assert [s["sessionId"] for s in (await call(client, "list_sessions"))["sessions"]] == [first]

        await call(client, "terminate", sessionId=first)
        second = await call(client, "start_session", profileId=pid)
        assert second["status"] == "Active"
        await call(client, "terminate", sessionId=second["sessionId"])
        deleted = await call(client, "delete_profile", profileId=pid)
        assert deleted["profileId"] == pid
        assert (await call(client, "list_profiles"))["profiles"] == []
    assert not (tmp_path / "profiles" / pid).exists()


# ----- the CLI -----


async def profiles_cli(data_dir: Path, *args: str) -> CompletedProcess[bytes]:
    command = [sys.executable, "-m", "browser_sessions", "profiles", *args]
    with anyio.fail_after(60):
        return await anyio.run_process(command, env=clean_env(BROWSER_SESSIONS_DATA_DIR=str(data_dir)), check=False)


async def cli_json(data_dir: Path, *args: str) -> Any:
    done = await profiles_cli(data_dir, *args, "--json")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return json.loads(done.stdout)


async def test_cli_create_list_export_import_delete_with_json(site: Site, tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = await cli_json(data, "create", "--name", "from the CLI")
    pid = created["id"]
    assert created["profileId"] == pid and created["name"] == "from the CLI" and created["owner"] == "local"
    assert [p["id"] for p in (await cli_json(data, "list"))["profiles"]] == [pid]

    async with connect(data_dir=str(data)) as client:  # the server sees the CLI's profile, and logs in on it
        assert [p["profileId"] for p in (await call(client, "list_profiles"))["profiles"]] == [pid]
        await log_in(client, pid, site, "exported-login")

    export = tmp_path / "carried.json"
    exported = await cli_json(data, "export", pid, str(export))
    assert exported["id"] == pid and exported["file"] == str(export)
    assert mode(export) == 0o600
    document = json.loads(export.read_text())
    assert document["format"] == "browser-sessions-profile"
    assert [c["value"] for c in document["storageState"]["cookies"]] == ["exported-login"]

    refused = await profiles_cli(data, "export", pid, str(export), "--json")  # never overwrites
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["code"] == "INVALID_PARAMETER"

    imported = await cli_json(data, "import", str(export), "--name", "copy")
    copy = imported["id"]
    assert copy != pid and (imported["name"], imported["cookies"], imported["origins"]) == ("copy", 1, 1)
    kept = await cli_json(tmp_path / "elsewhere", "import", str(export), "--keep-id")
    assert kept["id"] == pid

    deleted = await cli_json(data, "delete", pid)
    assert deleted["id"] == pid and deleted["deleted"] is True
    assert [p["id"] for p in (await cli_json(data, "list"))["profiles"]] == [copy]
    gone = await profiles_cli(data, "delete", pid, "--json")
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["error"]["code"] == "PROFILE_NOT_FOUND"
    human = await profiles_cli(data, "delete", pid)
    assert human.returncode == 1 and b"PROFILE_NOT_FOUND" in human.stderr and human.stdout == b""
    listed = (await profiles_cli(data, "list")).stdout.decode()
    assert listed.startswith(f"{copy} 'copy' owner=local cookies=1 origins=1")

    async with connect(data_dir=str(data)) as client:  # the imported copy carries the login
        seen = await what_the_site_sees(client, site, profileId=copy)
    assert "cookies: [token=exported-login]" in seen and "indexeddb: exported-login" in seen


async def test_cli_import_refuses_what_is_not_an_export(tmp_path: Path) -> None:
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps({"cookies": []}))
    done = await profiles_cli(tmp_path / "data", "import", str(stray), "--json")
    assert done.returncode == 1
    assert "not a profile exported by" in json.loads(done.stdout)["error"]["message"]
    missing = await profiles_cli(tmp_path / "data", "import", str(tmp_path / "missing.json"))
    assert missing.returncode == 1 and b"Cannot read" in missing.stderr
