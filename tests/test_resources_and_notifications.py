"""Resources under session://, progress notifications while a tool waits, and change notifications for
subscribers on both protocol eras."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.client.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp.types import BlobResourceContents, TextResourceContents

from tests.conftest import MODES, call, connect
from tests.site import Site

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", MODES)
async def test_progress_reports_each_step_while_the_tool_waits(mode: str, site: Site) -> None:
    seen: list[tuple[float, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, message))

    async with connect(mode) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        result = await client.call_tool(
            "send_task",
            {"sessionId": sid, "taskDetails": f'go to {site.url("/form")}\nclick "Order now"\nextract text'},
            progress_callback=progress,
        )
        assert not result.is_error
    assert seen == [
        (1, f"step 1: go to {site.url('/form')}"),
        (2, 'step 2: click "Order now"'),
        (3, "step 3: extract text"),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_session_task_output_and_screenshot_resources(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        sid = (await call(client, "start_session"))["sessionId"]
        outputs: dict[str, dict[str, Any]] = {
            "text": {},
            "structured_json": {"outputSchema": {"type": "array"}},
            "structured_csv": {"outputSchema": ["Name"]},
        }
        mimes = {}
        for output_type, extra in outputs.items():
            task = await call(
                client,
                "send_task",
                sessionId=sid,
                taskDetails=f"go to {site.url('/table')}\nextract table",
                outputType=output_type,
                **extra,
            )
            content = (await client.read_resource(task["outputUri"])).contents[0]
            mimes[output_type] = content.mime_type
            assert isinstance(content, TextResourceContents)
            if output_type == "structured_json":
                assert json.loads(content.text) == task["output"]
            else:
                assert content.text == task["output"]
        assert mimes == {"text": "text/markdown", "structured_json": "application/json", "structured_csv": "text/csv"}

        state = (await client.read_resource(f"session://{sid}")).contents[0]
        assert state.mime_type == "application/json"
        assert json.loads(state.text)["status"] == "Active"
        task_state = (await client.read_resource(f"session://{sid}/tasks/{task['taskId']}")).contents[0]
        assert json.loads(task_state.text)["status"] == "task_completed"

        shot = (await client.read_resource(f"session://{sid}/screenshot")).contents[0]
        assert shot.mime_type == "image/png"
        assert isinstance(shot, BlobResourceContents)
        assert base64.b64decode(shot.blob).startswith(b"\x89PNG")

        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert f"session://{sid}" in listed
        assert f"session://{sid}/tasks/{task['taskId']}" in listed
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {
            "session://{sessionId}",
            "session://{sessionId}/tasks/{taskId}",
            "session://{sessionId}/tasks/{taskId}/output",
            "session://{sessionId}/downloads/{name}",
            "session://{sessionId}/screenshot",
        }

        with pytest.raises(MCPError) as missing:
            await client.read_resource("session://nope")
        assert "SESSION_NOT_FOUND" in missing.value.error.message
        await call(client, "terminate", sessionId=sid)
        assert f"session://{sid}" not in {str(r.uri) for r in (await client.list_resources()).resources}


async def test_legacy_subscribers_hear_updates_and_list_changes(site: Site) -> None:
    updates: list[str] = []
    list_changes = anyio.Event()
    updated = anyio.Event()

    async def handler(message: Any) -> None:
        if isinstance(message, Exception):
            raise message
        method = getattr(message, "method", None)
        if method == "notifications/resources/updated":
            updates.append(str(message.params.uri))
            updated.set()
        elif method == "notifications/resources/list_changed":
            list_changes.set()

    async with connect_legacy(handler) as client:
        assert client.server_capabilities is not None
        resources = client.server_capabilities.resources
        assert resources is not None and resources.subscribe is True and resources.list_changed is True
        sid = (await call(client, "start_session"))["sessionId"]
        with anyio.fail_after(10):
            await list_changes.wait()
        uri = f"session://{sid}"
        await client.subscribe_resource(uri)
        await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}")
        with anyio.fail_after(10):
            await updated.wait()
        assert set(updates) == {uri}  # only what was subscribed


async def test_modern_listeners_hear_updates_and_list_changes(site: Site) -> None:
    async with connect("auto") as client:
        sid = (await call(client, "start_session"))["sessionId"]
        uri = f"session://{sid}"
        events: list[object] = []
        async with client.listen(resources_list_changed=True, resource_subscriptions=[uri]) as subscription:
            assert uri in (subscription.honored.resource_subscriptions or [])
            await call(client, "send_task", sessionId=sid, taskDetails=f"go to {site.url('/')}", waitSeconds=0)
            await call(client, "start_session")
            with anyio.fail_after(10):
                async for event in subscription:
                    events.append(event)
                    if ResourceUpdated(uri=uri) in events and any(isinstance(e, ResourcesListChanged) for e in events):
                        break


def connect_legacy(handler: Any) -> Any:
    from browser_sessions.mcp.server import build_server
    from tests.conftest import make_settings

    return Client(build_server(make_settings()), mode="legacy", message_handler=handler)
