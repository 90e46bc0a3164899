"""Step tools: the caller drives a session by refs from the compact snapshot."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import BlobResourceContents

from tests.conftest import MODES, call, call_error, connect
from tests.site import Site

pytestmark = pytest.mark.anyio


async def refs(client: Client, sid: str) -> dict[str, str]:
    """name -> ref of every element in the current snapshot."""
    snap = await call(client, "browser_snapshot", sessionId=sid, format="json")
    return {element["name"]: element["ref"] for element in snap["elements"]}


async def act(client: Client, sid: str, action: str, **fields: Any) -> dict[str, Any]:
    return await call(client, "browser_act", sessionId=sid, action=action, **fields)


async def steps_session(client: Client, site: Site) -> str:
    sid = (await call(client, "start_session"))["sessionId"]
    other = site.url("/frame", host="other.localhost")
    await act(client, sid, "navigate", url=site.url(f"/steps?to={other}"))
    return sid


@pytest.mark.parametrize("mode", MODES)
async def test_snapshot_then_click_type_select_check_by_ref(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        sid = await steps_session(client, site)
        snap = await call(client, "browser_snapshot", sessionId=sid)
        assert snap["url"] == site.url(f"/steps?to={site.url('/frame', host='other.localhost')}")
        assert '"Add one"' in snap["text"] and "Step page" in snap["text"]
        r = await refs(client, sid)
        clicked = await act(client, sid, "click", ref=r["Add one"])
        assert "Count: 1" in clicked["snapshot"]
        typed = await act(client, sid, "type", ref=r["Nickname"], text="Ada")
        assert '"Ada"' in typed["snapshot"]
        await act(client, sid, "select", ref=r["Colour"], option="Green")
        await act(client, sid, "check", ref=r["I agree"], checked=True)
        elements = (await call(client, "browser_snapshot", sessionId=sid, format="json"))["elements"]
        by_name = {e["name"]: e for e in elements}
        assert by_name["Nickname"]["value"] == "Ada"
        assert by_name["Colour"]["value"] == "Green"
        assert by_name["I agree"]["checked"] is True
        await act(client, sid, "hover", ref=r["Add one"])
        await act(client, sid, "scroll", direction="down", amount=300)
        await act(client, sid, "scroll", ref=r["Get report"])
        await act(client, sid, "press", key="Tab")
        waited = await act(client, sid, "wait", text="Step page")
        assert waited["action"] == "wait"
        await act(client, sid, "wait", seconds=0.1)
        await act(client, sid, "navigate", url=site.url("/table"))
        back = await act(client, sid, "back")
        assert back["url"].startswith(site.url("/steps"))
        forward = await act(client, sid, "forward")
        assert forward["url"] == site.url("/table")
        assert forward["title"] == "Prices"


async def test_what_plain_trees_miss_handler_only_iframes_and_shadow_dom(site: Site) -> None:
    async with connect() as client:
        sid = await steps_session(client, site)
        with anyio.fail_after(10):
            while True:
                snap = await call(client, "browser_snapshot", sessionId=sid, format="json")
                frame_refs = [e["ref"] for e in snap["elements"] if e["name"] == "Frame button"]
                if len(frame_refs) == 2:
                    break
                await anyio.sleep(0.1)
        r = {e["name"]: e["ref"] for e in snap["elements"]}
        assert len(frame_refs) == 2, snap["elements"]  # same-origin and cross-origin iframe
        assert all(ref.startswith("f") for ref in frame_refs)
        for ref in frame_refs:
            await act(client, sid, "click", ref=ref)
        names = [e["name"] for e in (await call(client, "browser_snapshot", sessionId=sid, format="json"))["elements"]]
        assert names.count("Frame pressed") == 2
        handled = await act(client, sid, "click", ref=r["Handler only"])
        assert "handler ran" in handled["snapshot"]
        shadow = await act(client, sid, "click", ref=r["Shadow button"])
        assert "Shadow pressed" in shadow["snapshot"]


async def test_a_dialog_is_reported_and_answered(site: Site) -> None:
    async with connect() as client:
        sid = await steps_session(client, site)
        r = await refs(client, sid)
        opened = await act(client, sid, "click", ref=r["Delete"])
        assert opened["dialog"]["type"] == "confirm"
        assert opened["dialog"]["message"] == "Really delete?"
        assert opened["snapshotKind"] == "none"
        snap = await call(client, "browser_snapshot", sessionId=sid)
        assert snap["dialog"]["type"] == "confirm"
        error = await call_error(client, "browser_act", sessionId=sid, action="click", ref=r["Add one"])
        assert "answer it first with action=dialog" in error
        answered = await act(client, sid, "dialog", accept=True)
        assert answered["dialog"] is None
        assert "deleted" in answered["snapshot"]


async def test_a_popup_becomes_a_tab(site: Site) -> None:
    async with connect() as client:
        sid = await steps_session(client, site)
        r = await refs(client, sid)
        opened = await act(client, sid, "click", ref=r["Open prices"])
        assert len(opened["tabs"]) == 2
        assert opened["tabs"][1]["active"] is True
        assert opened["url"] == site.url("/table")
        assert any("new tab" in change for change in opened["changes"])
        switched = await act(client, sid, "tab", tabAction="switch", index=0)
        assert switched["url"].startswith(site.url("/steps"))
        assert (await call(client, "get_session", sessionId=sid))["currentUrl"] == switched["url"]
        closed = await act(client, sid, "tab", tabAction="close", index=1)
        assert len(closed["tabs"]) == 1
        error = await call_error(client, "browser_act", sessionId=sid, action="tab", tabAction="switch", index=5)
        assert "no tab 5" in error


async def test_downloads_are_saved_listed_and_readable(site: Site) -> None:
    async with connect() as client:
        sid = await steps_session(client, site)
        r = await refs(client, sid)
        result = await act(client, sid, "click", ref=r["Get report"])
        with anyio.fail_after(10):
            while not (downloads := (await call(client, "get_session", sessionId=sid))["downloads"]):
                await anyio.sleep(0.1)
        assert [d["name"] for d in downloads] == ["report.csv"]
        assert result["newDownloads"] == [] or result["newDownloads"][0]["name"] == "report.csv"
        content = (await client.read_resource(downloads[0]["uri"])).contents[0]
        assert isinstance(content, BlobResourceContents)
        assert base64.b64decode(content.blob) == b"name,total\nQ1,12\n"


async def test_upload_reads_only_from_the_upload_folder(site: Site, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("hello")
    async with connect(upload_dir=tmp_path) as client:
        sid = await steps_session(client, site)
        r = await refs(client, sid)
        uploaded = await act(client, sid, "upload", ref=r["Attachment"], file="note.txt")
        assert "chosen: note.txt" in uploaded["snapshot"]
        error = await call_error(
            client, "browser_act", sessionId=sid, action="upload", ref=r["Attachment"], file="../x"
        )
        assert str(tmp_path) in error and "BROWSER_SESSIONS_UPLOAD_DIR" in error


async def test_a_large_page_stays_within_budget_with_an_outline(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        await act(client, sid, "navigate", url=site.url("/large"), maxChars=3000)
        snap = await call(client, "browser_snapshot", sessionId=sid, maxChars=3000)
        assert snap["chars"] <= 3000
        assert "truncated" in snap["text"]
        assert '"Link 0"' in snap["text"]
        found = await call(client, "browser_snapshot", sessionId=sid, find="Link 1234")
        assert "Link 1234" in found["text"]


async def test_stale_refs_and_bad_arguments_say_what_to_do(site: Site) -> None:
    async with connect() as client:
        sid = await steps_session(client, site)
        r = await refs(client, sid)
        await act(client, sid, "navigate", url=site.url("/"))
        stale = await call_error(client, "browser_act", sessionId=sid, action="click", ref=r["Add one"])
        assert "browser_snapshot" in stale
        cases = [
            ({"action": "fly"}, "action"),
            ({"action": "click"}, "action click needs ref"),
            ({"action": "navigate", "url": "ftp://x"}, "http(s) URL"),
            ({"action": "click", "ref": "not a ref"}, "ref"),
            ({"action": "wait"}, "exactly one of text or seconds"),
        ]
        await act(client, sid, "navigate", url=site.url("/steps"))
        covered = (await refs(client, sid))["Covered"]
        blocked = await call_error(client, "browser_act", sessionId=sid, action="click", ref=covered)
        assert "click failed" in blocked and "intercepts pointer events" in blocked
        for arguments, fragment in cases:
            error = await call_error(client, "browser_act", sessionId=sid, **arguments)
            assert fragment in error, (arguments, error)


async def test_secrets_type_on_their_host_and_never_show(site: Site) -> None:
    canary = "canary-step-4242"
    async with connect() as client:
        sid = (
            await call(
                client,
                "start_session",
                initialTask={"secrets": [{"match": "app.localhost", "fields": {"pw": canary}}]},
            )
        )["sessionId"]
        await act(client, sid, "navigate", url=site.url("/steps", host="app.localhost"))
        r = await refs(client, sid)
        typed = await act(client, sid, "type", ref=r["Nickname"], text="{{secret.pw}}")
        snap = await call(client, "browser_snapshot", sessionId=sid)
        elements = await call(client, "browser_snapshot", sessionId=sid, format="json")
        assert canary not in str([typed, snap, elements])
        assert "{{secret.pw}}" in str(elements)
        await act(client, sid, "navigate", url=site.url("/steps"))
        r = await refs(client, sid)
        error = await call_error(
            client, "browser_act", sessionId=sid, action="type", ref=r["Nickname"], text="{{secret.pw}}"
        )
        assert "SECRET_NOT_AVAILABLE" in error


async def test_avoid_domains_hold_for_navigate_and_clicks(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session", initialTask={"avoidDomains": ["tracker.localhost"]}))["sessionId"]
        error = await call_error(
            client, "browser_act", sessionId=sid, action="navigate", url=site.url("/", host="tracker.localhost")
        )
        assert "DOMAIN_BLOCKED" in error
        await act(client, sid, "navigate", url=site.url(f"/popup?to={site.url('/', host='tracker.localhost')}"))
        r = await refs(client, sid)
        error = await call_error(client, "browser_act", sessionId=sid, action="click", ref=r["Open"])
        assert "DOMAIN_BLOCKED" in error and "tracker.localhost" in error


async def test_step_tools_wait_for_a_paused_task_and_refuse_a_running_one(site: Site) -> None:
    async with connect(navigation_timeout=30.0) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        lines = f"go to {site.url('/slow?s=1')}\ngo to {site.url('/table')}"
        task = await call(client, "send_task", sessionId=sid, taskDetails=lines, waitSeconds=0)
        with anyio.fail_after(10):
            while (await call(client, "get_task", sessionId=sid, taskId=task["taskId"]))["status"] != "running":
                await anyio.sleep(0.05)
        refused = await call_error(client, "browser_snapshot", sessionId=sid)
        assert "TASK_RUNNING" in refused and "control_session(pause)" in refused
        await call(client, "control_session", sessionId=sid, action="pause")
        snap = await call(client, "browser_snapshot", sessionId=sid)  # waits for the step boundary
        assert snap["url"] == site.url("/slow?s=1")
        await call(client, "control_session", sessionId=sid, action="resume")
        done = await call(client, "get_task", sessionId=sid, taskId=task["taskId"], waitSeconds=30)
        assert done["status"] == "task_completed"


async def test_screenshot_returns_an_image_and_a_link(site: Site) -> None:
    async with connect() as client:
        sid = await steps_session(client, site)
        result = await client.call_tool("browser_screenshot", {"sessionId": sid})
        assert not result.is_error
        image = result.content[0]
        assert image.type == "image" and base64.b64decode(image.data).startswith(b"\x89PNG")
        assert any(block.type == "resource_link" for block in result.content)
        r = await refs(client, sid)
        part = await call(client, "browser_screenshot", sessionId=sid, ref=r["Add one"])
        whole = await call(client, "browser_screenshot", sessionId=sid, fullPage=True)
        assert 0 < part["sizeBytes"] < whole["sizeBytes"]
