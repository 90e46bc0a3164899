"""Free-text tasks on the calling client's own model (MCP sampling), where the connection allows it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.client.context import ClientRequestContext
from mcp.types import CreateMessageRequestParams, CreateMessageResult, ErrorData, TextContent

from tests.conftest import call, connect, model_settings
from tests.scripted_model import Call, ScriptedModel, ref
from tests.site import Site

pytestmark = pytest.mark.anyio


def sampling(received: list[CreateMessageRequestParams]) -> dict[str, Any]:
    """A client model that opens the product page, then reports the price it read."""

    async def answer(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
        received.append(params)
        last = params.messages[-1].content
        seen = last.text if isinstance(last, TextContent) else ""
        if len(received) == 1:
            action = {"tool": "click", "arguments": {"ref": ref(seen, "link", "Wireless keyboard")}}
        else:
            price = "$49.99" if "$49.99" in seen else "unknown"
            action = {"tool": "done", "arguments": {"output": f"It costs {price}."}}
        reply = f"Sure.\n{json.dumps(action)}"
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=reply), model="client-llm")

    return {"sampling_callback": answer}


@pytest.mark.parametrize("wait", [50, 0])
async def test_a_legacy_client_that_samples_drives_the_task_with_its_own_model(site: Site, wait: int) -> None:
    received: list[CreateMessageRequestParams] = []
    async with connect("legacy", callbacks=sampling(received)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="What does the wireless keyboard cost?",
            startingPoint=site.url("/shop"),
            waitSeconds=wait,
        )
        # with waitSeconds=0 the call returns at once and the task samples over the connection afterwards
        task = await call(client, "get_task", sessionId=task["sessionId"], taskId=task["taskId"], waitSeconds=30)
    assert task["status"] == "task_completed", task
    assert task["output"] == "It costs $49.99."
    assert task["planner"] == "model" and task["model"] == "sampling:client-llm"
    assert task["usage"]["tokensEstimated"] is True and task["usage"]["modelCalls"] == 2
    assert received[0].system_prompt is not None and '"tool": "<name>"' in received[0].system_prompt
    assert [m.role for m in received[1].messages] == ["user", "assistant", "user"]


async def test_a_2026_connection_cannot_sample_so_free_text_needs_a_configured_model(site: Site) -> None:
    received: list[CreateMessageRequestParams] = []
    async with connect("auto", callbacks=sampling(received)) as client:
        task = await call(client, "run_task", taskDetails="What does it cost?", startingPoint=site.url("/shop"))
    assert task["error"]["code"] == "MODEL_REQUIRED" and "instruction lines" in task["error"]["message"]
    assert received == []


async def test_a_configured_model_comes_before_the_clients(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(Call("done", {"output": "from the provider"}))
    received: list[CreateMessageRequestParams] = []
    async with connect("legacy", callbacks=sampling(received), **model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Answer.", startingPoint=site.url("/shop"))
    assert task["output"] == "from the provider" and task["model"] == "openai:scripted-gpt"
    assert received == []


async def test_model_sampling_uses_only_the_clients_model(site: Site, scripted: ScriptedModel) -> None:
    received: list[CreateMessageRequestParams] = []
    settings = model_settings(scripted, model="sampling")
    async with connect("legacy", callbacks=sampling(received), **settings) as client:
        task = await call(client, "run_task", taskDetails="What does it cost?", startingPoint=site.url("/shop"))
    assert task["model"] == "sampling:client-llm" and task["status"] == "task_completed"
    assert scripted.requests == []


async def test_a_client_that_refuses_to_sample_fails_the_task_with_its_reason(site: Site) -> None:
    async def refuse(context: ClientRequestContext, params: CreateMessageRequestParams) -> ErrorData:
        return ErrorData(code=-1, message="the user declined the sampling request")

    async with connect("legacy", callbacks={"sampling_callback": refuse}) as client:
        task = await call(client, "run_task", taskDetails="What does it cost?", startingPoint=site.url("/shop"))
    assert task["error"]["code"] == "MODEL_ERROR"
    assert "the user declined the sampling request" in task["error"]["message"]
