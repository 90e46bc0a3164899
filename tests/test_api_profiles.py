"""``browser-sessions api`` with several keys: each key is one owner (its sessions, tasks and profiles are
invisible to the others), and the profile endpoints of reference/remote-api.md §16.1 (and their /environments
aliases) on our profiles: create, list, delete, download through a signed link, upload with strict checks, and
sessions started with ``profileId`` that begin logged in. A real subprocess on 127.0.0.1, driven with httpx."""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from browser_sessions.api.profile_archive import MAX_UPLOAD_BYTES
from tests.processes import api_process, clean_env
from tests.site import Site
from tests.test_api import GONE, assert_completed, new_task, poll, send, settled, start

pytestmark = pytest.mark.anyio

KEYS = ["test-key-1", "test-key-2", "test-key-3"]
MEMBER = "browser-sessions-profile.json"
NOT_FOUND = {"success": False, "message": "Profile not found", "code": "PROFILE_NOT_FOUND"}
PROFILE_FIELDS = {
    "_id",
    "userId",
    "name",
    "description",
    "blobSize",
    "blobUploadedAt",
    "lastUsedAt",
    "usageCount",
    "status",
    "createdAt",
    "updatedAt",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The server and its log file."""
    log = tmp_path_factory.mktemp("api-profiles") / "api.log"
    env = {"BROWSER_SESSIONS_API_KEYS": ",".join(KEYS), "BROWSER_SESSIONS_API_RATE_LIMIT": "1000"}
    with api_process(log, **env) as url:
        yield url, log


@pytest.fixture
async def clients(served: tuple[str, Path]) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per key."""
    opened = [
        httpx.AsyncClient(base_url=served[0], headers={"Authorization": f"Bearer {key}"}, timeout=30) for key in KEYS
    ]
    try:
        yield opened
    finally:
        for client in opened:
            await client.aclose()


async def create(client: httpx.AsyncClient, name: str, **more: Any) -> dict[str, Any]:
    response = await client.post("/profiles", json={"name": name, **more})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["success"], body["message"]) == (True, "Profile created")
    return dict(body["profile"])


async def profiles_of(client: httpx.AsyncClient, kind: str = "profiles") -> list[dict[str, Any]]:
    response = await client.get(f"/{kind}")
    assert response.status_code == 200, response.text
    return list(response.json()[kind])


async def task(client: httpx.AsyncClient, session_id: str, details: str) -> str:
    """Run ``details`` in the session to its end; its output."""
    return assert_completed(await settled(client, await send(client, session_id, **new_task(taskDetails=details))))


async def log_in(client: httpx.AsyncClient, site: Site, value: str, **start_body: Any) -> str:
    """A session (started with ``start_body``) that gets a login cookie and storage ``value``, then ends."""
    sid = (await start(client, **start_body))["sessionId"]
    await task(
        client,
        sid,
        f"go to {site.url(f'/cookie/set?v={value}')}\ngo to {site.url(f'/storage?v={value}')}\n"
        f'wait for "indexeddb: {value}"',
    )
    await send(client, sid, actionType="state", newState="terminate")
    return str(sid)


async def what_the_site_sees(client: httpx.AsyncClient, site: Site, **start_body: Any) -> str:
    sid = (await start(client, **start_body))["sessionId"]
    cookies = await task(client, sid, f"go to {site.url('/cookie/show')}\nextract text")
    storage = await task(client, sid, f'go to {site.url("/storage")}\nwait for "indexeddb:"\nextract text')
    await send(client, sid, actionType="state", newState="terminate")
    return f"{cookies}\n{storage}"


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue())


def export(cookies: list[Any], origins: list[Any] | None = None) -> bytes:
    document = {
        "format": "browser-sessions-profile",
        "version": 1,
        "profile": {"profileId": "x", "name": "x"},
        "storageState": {"cookies": cookies, "origins": origins or []},
    }
    return json.dumps(document).encode()


async def upload(client: httpx.AsyncClient, profile_id: str, data: bytes, name: str = "p.tar.gz") -> httpx.Response:
    return await client.post(f"/profiles/{profile_id}/upload", files={"file": (name, data, "application/gzip")})


# ----- ownership -----


async def test_another_keys_sessions_and_tasks_are_answered_as_unknown_ones(
    clients: list[httpx.AsyncClient], site: Site
) -> None:
    mine, theirs = clients[0], clients[1]
    sid = (await start(mine))["sessionId"]
    done = await settled(mine, await send(mine, sid, **new_task(taskDetails=f"go to {site.url('/')}\nextract text")))
    tid = done["taskId"]
    one_shot = await settled(mine, await mine.post("/start/run-task", json={"taskDetails": "extract text"}))

    for path in (f"/task/{sid}/{tid}", f"/task/{one_shot['sessionId']}/{one_shot['taskId']}"):
        foreign = await theirs.get(path)
        unknown = await theirs.get("/task/nope/nope")
        assert (foreign.status_code, foreign.json()) == (unknown.status_code, unknown.json()), path
        assert (foreign.status_code, foreign.json()["message"]) == (404, "Session not found")
    for message in (
        new_task(taskDetails="extract text"),
        {"actionType": "state", "newState": "pause"},
        {"actionType": "state", "newState": "resume"},
        {"actionType": "state", "newState": "stop"},
        {"actionType": "state", "newState": "terminate"},
        {"actionType": "guardrail", "taskDetails": "yes", "newState": "resume"},
    ):
        foreign = await send(theirs, sid, **message)
        unknown = await send(theirs, "nope", **message)
        assert (foreign.status_code, foreign.json()) == (unknown.status_code, unknown.json()), message
        assert (foreign.status_code, foreign.json()["message"]) == (401, GONE)

    # the owner's session went through all of that untouched
    assert "Welcome home." in await task(mine, sid, "extract text")
    assert (await mine.get(f"/task/{sid}/{tid}")).json() == done
    await send(mine, sid, actionType="state", newState="terminate")


# ----- profiles: create, list, delete -----


async def test_profiles_are_created_listed_newest_first_and_deleted_per_key(clients: list[httpx.AsyncClient]) -> None:
    mine, theirs = clients[0], clients[1]
    first = await create(mine, "shop", description="the shop login")
    assert set(first) == PROFILE_FIELDS
    assert first["status"] == "empty" and first["blobSize"] == 0 and first["usageCount"] == 0
    assert (first["name"], first["description"], first["blobUploadedAt"], first["lastUsedAt"]) == (
        "shop",
        "the shop login",
        None,
        None,
    )
    assert first["userId"].startswith("token-") and "test-key" not in first["userId"]
    assert first["createdAt"].endswith("Z") and first["updatedAt"] == first["createdAt"]
    second = await create(mine, "mail")
    listed = [p["_id"] for p in await profiles_of(mine)]
    assert listed.index(second["_id"]) < listed.index(first["_id"])  # newest first

    # another key sees none of them and can touch none of them, answered as for an unknown id
    assert not {first["_id"], second["_id"]} & {p["_id"] for p in await profiles_of(theirs)}
    for profile_id in (first["_id"], "no-such-profile"):
        for answer in (
            await theirs.delete(f"/profiles/{profile_id}"),
            await theirs.get(f"/profiles/{profile_id}/download"),
            await upload(theirs, profile_id, b"x"),
        ):
            assert (answer.status_code, answer.json()) == (404, NOT_FOUND), answer.request.url
        started = await theirs.post("/start/start-session", json={"profileId": profile_id})
        assert (started.status_code, started.json()["code"]) == (400, "PROFILE_NOT_FOUND")
        assert f"No profile with profileId {profile_id!r}" in started.json()["message"]

    deleted = await mine.delete(f"/profiles/{first['_id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"success": True, "message": "Profile deleted"})
    again = await mine.delete(f"/profiles/{first['_id']}")
    assert (again.status_code, again.json()) == (404, NOT_FOUND)
    assert [p["_id"] for p in await profiles_of(mine)] == [second["_id"]]


async def test_profile_fields_are_checked_and_twenty_is_the_most_per_key(clients: list[httpx.AsyncClient]) -> None:
    client = clients[2]
    for body, status, message in [
        ({}, 400, "Profile name is required"),
        ({"name": "  "}, 400, "Profile name is required"),
        ({"name": 7}, 400, "Profile name is required"),
        ({"name": "n" * 101}, 400, "Profile name must be at most 100 characters"),
        ({"name": "n", "description": "d" * 501}, 400, "Profile description must be at most 500 characters"),
        ({"name": "n", "description": ["d"]}, 400, "Profile description must be a string"),
    ]:
        answer = await client.post("/profiles", json=body)
        assert (answer.status_code, answer.json()["success"], answer.json()["message"]) == (status, False, message)
    assert await profiles_of(client) == []

    made = [await create(client, "n" * 100, description="d" * 500)]
    made += [await create(client, f"profile {n}") for n in range(19)]
    over = await client.post("/profiles", json={"name": "one too many"})
    assert (over.status_code, over.json()["message"]) == (400, "Maximum of 20 profiles allowed")
    assert len(await profiles_of(client)) == 20
    other_key = await clients[0].post("/profiles", json={"name": "still fine"})  # the limit is per key
    assert other_key.status_code == 200
    await clients[0].delete(f"/profiles/{other_key.json()['profile']['_id']}")

    # /environments: the same profiles under the G4 names
    environments = await profiles_of(client, "environments")
    assert [e["_id"] for e in environments] == [p["_id"] for p in await profiles_of(client)]
    refused = await client.post("/environments", json={"name": "one too many"})
    assert (refused.status_code, refused.json()["message"]) == (400, "Maximum of 20 environments allowed")
    gone = await client.delete(f"/environments/{made[0]['_id']}")
    assert (gone.status_code, gone.json()) == (200, {"success": True, "message": "Environment deleted"})
    missing = await client.delete(f"/environments/{made[0]['_id']}")
    assert (missing.status_code, missing.json()["message"]) == (404, "Environment not found")
    nameless = await client.post("/environments", json={})
    assert (nameless.status_code, nameless.json()["message"]) == (400, "Environment name is required")
    created = await client.post("/environments", json={"name": "env"})
    assert created.json()["message"] == "Environment created" and created.json()["environment"]["status"] == "empty"
    for profile in await profiles_of(client):
        assert (await client.delete(f"/profiles/{profile['_id']}")).status_code == 200


# ----- profiles in sessions, download and upload -----


async def test_a_login_saved_by_an_api_session_is_there_next_time_and_travels_in_the_archive(
    clients: list[httpx.AsyncClient], site: Site, served: tuple[str, Path]
) -> None:
    mine, theirs = clients[0], clients[1]
    profile = await create(mine, "shop")
    pid = profile["_id"]
    empty = await mine.get(f"/profiles/{pid}/download")
    assert (empty.status_code, empty.json()["message"]) == (400, "Profile has no data to download")

    # while a live session uses the profile: a second session, a deletion and an upload are refused
    sid = (await start(mine, profileId=pid))["sessionId"]
    for refused in (
        await mine.post("/start/start-session", json={"profileId": pid}),
        await mine.post("/start/run-task", json={"taskDetails": "extract text", "profileId": pid}),
        await mine.delete(f"/profiles/{pid}"),
        await upload(mine, pid, tar_gz([(tarfile.TarInfo(MEMBER), export([]))])),
    ):
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "PROFILE_IN_USE"
        assert f"Profile {pid} is in use by live session {sid}" in refused.json()["message"]
    await send(mine, sid, actionType="state", newState="terminate")

    await log_in(mine, site, "api-login", profileId=pid)
    [saved] = [p for p in await profiles_of(mine) if p["_id"] == pid]
    assert saved["status"] == "ready" and saved["blobSize"] > 0 and saved["usageCount"] == 2
    assert saved["lastUsedAt"] is not None and saved["blobUploadedAt"] is not None

    # the next session with the profile (G4 name: environmentId) starts logged in; one without starts clean
    seen = await what_the_site_sees(mine, site, environmentId=pid)
    assert "cookies: [token=api-login]" in seen
    assert "local storage: api-login" in seen and "indexeddb: api-login" in seen
    assert "cookies: []" in await what_the_site_sees(mine, site)

    # download: a signed link on this server, needing no key; the archive holds the export
    link = await mine.get(f"/profiles/{pid}/download")
    assert link.status_code == 200 and link.json()["success"] is True
    url = link.json()["downloadUrl"]
    assert url.startswith(f"{served[0]}/profiles/{pid}/archive?token=")
    async with httpx.AsyncClient(timeout=30) as anonymous:
        fetched = await anonymous.get(url)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "application/gzip"
        for bad in (url[:-1] + ("0" if url[-1] != "0" else "1"), url.split("?")[0], url.replace(pid, "other")):
            refused = await anonymous.get(bad)
            assert refused.status_code in (403, 404) and refused.json()["success"] is False, bad
    with tarfile.open(fileobj=io.BytesIO(fetched.content), mode="r:gz") as tar:
        assert tar.getnames() == [MEMBER]
        member = tar.extractfile(MEMBER)
        assert member is not None
        document = json.loads(member.read())
    assert document["format"] == "browser-sessions-profile"
    assert [c["value"] for c in document["storageState"]["cookies"]] == ["api-login"]
    token = url.split("token=")[1]
    for log in [served[1], *served[1].parent.rglob("*.log*")]:  # stderr and the data folder's log hide it
        assert token not in log.read_text(errors="replace"), log

    # upload into another profile (through /environments, same handler): it starts logged in too
    copy = await create(mine, "copy")
    uploaded = await mine.post(
        f"/environments/{copy['_id']}/upload", files={"file": ("shop.tgz", fetched.content, "application/gzip")}
    )
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert (body["message"], body["environment"]["_id"], body["environment"]["status"]) == (
        "Profile uploaded successfully",
        copy["_id"],
        "ready",
    )
    assert "cookies: [token=api-login]" in await what_the_site_sees(mine, site, profileId=copy["_id"])

    # run-task with the profile: the one-shot session saves what it changed when it ends
    relogin = {"taskDetails": "extract text", "startingPoint": site.url("/cookie/set?v=second"), "profileId": pid}
    done = await settled(mine, await mine.post("/start/run-task", json=relogin))
    assert "set second" in assert_completed(done)
    await poll(mine, f"/task/{done['sessionId']}/{done['taskId']}")
    with anyio.fail_after(30):  # the session saves the profile as it ends, just after its task's answer
        while "token=second" not in await what_the_site_sees(mine, site, profileId=pid):
            await anyio.sleep(0.2)

    # nothing of it is the other key's
    assert pid not in {p["_id"] for p in await profiles_of(theirs)}
    assert (await theirs.get(f"/profiles/{pid}/download")).json() == NOT_FOUND


async def test_bad_uploads_are_refused_and_change_nothing(clients: list[httpx.AsyncClient]) -> None:
    client = clients[0]
    pid = (await create(client, "target"))["_id"]
    good = export([{"name": "t", "value": "v", "domain": "127.0.0.1", "path": "/"}])
    link = tarfile.TarInfo(MEMBER)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    folder = tarfile.TarInfo("profiles")
    folder.type = tarfile.DIRTYPE
    bomb = export([{"name": "t", "value": "v" * (33 * 1024 * 1024), "domain": "127.0.0.1", "path": "/"}])
    cases: list[tuple[str, bytes, int, str]] = [
        ("p.zip", tar_gz([(tarfile.TarInfo(MEMBER), good)]), 400, "Only .tar.gz files are allowed"),
        ("p.tar.gz", b"PK\x03\x04 not gzip at all", 400, "Only .tar.gz files are allowed: the file is not gzip"),
        ("p.tar.gz", b"\x1f\x8b\x08\x00broken", 400, "not a readable gzip stream"),
        ("p.tar.gz", gzip.compress(b"plain text, no tar"), 400, "does not hold a tar archive"),
        ("p.tar.gz", tar_gz([(tarfile.TarInfo("../../evil.json"), good)]), 400, "'../../evil.json'"),
        ("p.tar.gz", tar_gz([(tarfile.TarInfo(f"/tmp/{MEMBER}"), good)]), 400, "must hold exactly one file"),
        ("p.tgz", tar_gz([(tarfile.TarInfo(MEMBER), good), (tarfile.TarInfo("x"), b"")]), 400, "exactly one"),
        ("p.tgz", tar_gz([(folder, b""), (tarfile.TarInfo(MEMBER), good)]), 400, "exactly one"),
        ("p.tgz", tar_gz([(link, b"")]), 400, "must be a regular file"),
        ("p.tgz", tar_gz([(tarfile.TarInfo(MEMBER), b"{not json")]), 400, "is not JSON"),
        ("p.tgz", tar_gz([(tarfile.TarInfo(MEMBER), b'{"cookies": []}')]), 400, "is not a profile exported by"),
        ("p.tgz", tar_gz([(tarfile.TarInfo(MEMBER), export(["a cookie"]))]), 400, "Each cookie in storageState"),
        ("p.tgz", tar_gz([(tarfile.TarInfo(MEMBER), bomb)]), 400, "unpacks to more than 32 MB"),
        ("p.tgz", b"\x1f\x8b" + bytes(MAX_UPLOAD_BYTES), 413, "The file is larger than 10 MB"),
        ("p.tgz", b"\x1f\x8b" + bytes(11 * 1024 * 1024), 413, "The upload is larger than"),
    ]
    for name, data, status, words in cases:
        answer = await upload(client, pid, data, name)
        assert answer.status_code == status and answer.json()["success"] is False, (name, words, answer.text)
        assert words in answer.json()["message"], (words, answer.json())

    for request in (
        client.post(f"/profiles/{pid}/upload", json={"file": "x"}),
        client.post(f"/profiles/{pid}/upload", files={"other": ("p.tar.gz", good, "application/gzip")}),
        client.post(f"/profiles/{pid}/upload", data={"file": "not a file"}, files={"x": ("y", b"", "text/plain")}),
    ):
        answer = await request
        assert answer.status_code == 400 and answer.json()["message"].startswith("No file provided"), answer.text
    two = [("file", ("a.tgz", good, "application/gzip")), ("file", ("b.tgz", good, "application/gzip"))]
    answer = await client.post(f"/profiles/{pid}/upload", files=two)
    assert answer.status_code == 400 and "multipart" in answer.json()["message"]

    [target] = [p for p in await profiles_of(client) if p["_id"] == pid]
    assert (target["status"], target["blobSize"]) == ("empty", 0)
    accepted = await upload(client, pid, tar_gz([(tarfile.TarInfo(MEMBER), good)]))
    assert accepted.status_code == 200 and accepted.json()["profile"]["status"] == "ready"
    assert (await client.delete(f"/profiles/{pid}")).status_code == 200


# ----- doctor -----


async def test_doctor_shows_secret_settings_redacted(tmp_path: Path) -> None:
    secrets = {
        "BROWSER_SESSIONS_API_KEYS": "api-key-secret-0123456789",
        "BROWSER_SESSIONS_AUTH_TOKENS": "auth-token-secret-0123456789",
        "BROWSER_SESSIONS_REMOTE_API_KEY": "remote-key-secret-0123456789",
    }
    env = clean_env(BROWSER_SESSIONS_DATA_DIR=str(tmp_path), **secrets)
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "browser_sessions", "doctor"], env=env, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    for name, value in secrets.items():
        assert value not in output
        [line] = [
            line for line in output.splitlines() if line.strip().startswith(name.removeprefix("BROWSER_SESSIONS_"))
        ]
        assert "**********" in line, line
