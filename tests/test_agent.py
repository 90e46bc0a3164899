"""Model-driven tasks end to end: MCP client -> server -> agent loop -> a scripted model over real HTTP
(both wire formats) -> real Chromium on local pages."""

from __future__ import annotations

import pytest

from tests.conftest import call, connect, model_settings
from tests.scripted_model import Call, Fail, Received, Say, ScriptedModel, ref
from tests.site import Site

pytestmark = pytest.mark.anyio


def click(role: str, name: str) -> Call:
    return Call("click", lambda r: {"ref": ref(r.observation(), role, name)})


@pytest.mark.parametrize("api", ["anthropic", "openai"])
async def test_a_free_text_task_runs_on_the_model_and_returns_a_replayable_script(
    site: Site, scripted: ScriptedModel, api: str
) -> None:
    scripted.script(
        click("link", "Wireless keyboard"),
        click("button", "Add to cart"),
        Call("done", {"output": "The wireless keyboard costs $49.99; it is in the cart."}),
    )
    async with connect(**model_settings(scripted, api)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="Find the price of the wireless keyboard and add it to the cart.",
            startingPoint=site.url("/shop"),
        )
        assert task["status"] == "task_completed", task
        assert task["planner"] == "model"
        assert task["model"] == ("anthropic:scripted-claude" if api == "anthropic" else "openai:scripted-gpt")
        assert task["output"] == "The wireless keyboard costs $49.99; it is in the cart."
        assert task["usage"]["modelCalls"] == 3
        assert (task["usage"]["inputTokens"], task["usage"]["outputTokens"]) == (300, 60)
        assert task["usage"]["tokensEstimated"] is False
        assert [s["action"] for s in task["steps"]][1:] == ['click "Wireless keyboard"', 'click "Add to cart"']
        assert (f"127.0.0.1:{site.port}", "/echo?added=keyboard") in site.requests
        state = await call(client, "get_session", sessionId=task["sessionId"])
        assert (state["usage"]["inputTokens"], state["usage"]["outputTokens"]) == (300, 60)

        first = scripted.requests[0]
        assert "Find the price of the wireless keyboard" in first.everything()
        tools = (
            {t["name"] for t in first.body["tools"]}
            if api == "anthropic"
            else {t["function"]["name"] for t in first.body["tools"]}
        )
        assert {"click", "type", "navigate", "done", "ask_human"} <= tools
        assert "$49.99" in scripted.requests[1].observation()  # the product page was shown to the model
        # only the latest page is shown: the shop page left the conversation once the product page came
        assert "Price list" not in scripted.requests[2].everything()

        replay = task["replay"]
        assert replay["script"].splitlines() == [
            f"go to {site.url('/shop')}",
            'click "Wireless keyboard"',
            'click "Add to cart"',
            "extract text",
        ]
        before = len(scripted.requests)
        again = await call(client, "run_task", taskDetails=replay["script"])
        assert again["status"] == "task_completed" and again["planner"] == "instructions", again
        assert "added=keyboard" in again["output"]
        assert len(scripted.requests) == before  # the replay needed no model


async def test_no_script_is_returned_when_a_step_has_no_instruction_form(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(
        Call("hover", lambda r: {"ref": ref(r.observation(), "link", "Wireless keyboard")}),
        Call("scroll", {"direction": "down"}),
        Call("done", {"output": "looked around"}),
    )
    async with connect(**model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Look around.", startingPoint=site.url("/shop"))
    assert task["status"] == "task_completed"
    assert task["replay"]["script"] is None
    notes = task["replay"]["notes"]
    assert any("hover" in note and "no form" in note for note in notes), notes
    assert any("scroll" in note and "left out" in note for note in notes), notes


async def test_instruction_lines_never_reach_the_model(site: Site, scripted: ScriptedModel) -> None:
    async with connect(**model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails=f"go to {site.url('/table')}\nextract table")
        assert task["planner"] == "instructions" and task["model"] is None and task["status"] == "task_completed"
    assert scripted.requests == []


async def test_the_token_budget_ends_the_task_with_partial_output(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(*[Call("scroll", {"direction": "down"}, usage=(100, 20))] * 5)
    async with connect(**model_settings(scripted)) as client:
        task = await call(
            client, "run_task", taskDetails="Read the shop.", startingPoint=site.url("/shop"), maxInputTokens=250
        )
    assert task["status"] == "failed"
    assert task["error"]["code"] == "TOKEN_BUDGET_EXCEEDED"
    assert "maxInputTokens: 300 of 250" in task["error"]["message"]
    assert task["usage"]["modelCalls"] == 3
    assert task["output"].startswith("Unfinished after") and "Shop" in task["output"]


async def test_usage_is_estimated_and_said_so_when_the_provider_reports_none(
    site: Site, scripted: ScriptedModel
) -> None:
    scripted.script(Call("done", {"output": "done"}, usage=None))
    async with connect(**model_settings(scripted)) as client:
        task = await call(client, "run_task", taskDetails="Say done.", startingPoint=site.url("/shop"))
    assert task["status"] == "task_completed"
    assert task["usage"]["tokensEstimated"] is True
    assert task["usage"]["inputTokens"] > 100  # the snapshot, the tools and the prompt, counted from text


async def test_the_step_limit_stops_a_task_that_does_not_finish(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(Say("Let me think."), *[Call("scroll", {"direction": "down"})] * 2)
    async with connect(**model_settings(scripted, agent_max_steps=3)) as client:
        task = await call(client, "run_task", taskDetails="Wander.", startingPoint=site.url("/shop"))
    assert task["error"]["code"] == "STEP_LIMIT_REACHED"
    assert "BROWSER_SESSIONS_AGENT_MAX_STEPS" in task["error"]["message"]
    assert task["usage"]["stepLimit"] == 3 and task["usage"]["modelCalls"] == 3
    assert "Call exactly one tool" in scripted.requests[1].everything()  # the text-only turn was nudged
    assert "The model's last note: Let me think." in task["output"]


async def test_schema_repair_then_success(site: Site, scripted: ScriptedModel) -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
            "required": ["name", "price"],
        },
    }

    def corrected(received: Received) -> Call:
        assert "does not match outputSchema at 0/price" in received.observation()
        return Call("done", {"output": [{"name": "Keyboard", "price": 12.5}]})

    scripted.script(Call("done", {"output": [{"name": "Keyboard", "price": "$12.50"}]}), corrected)
    async with connect(**model_settings(scripted)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="List the products and prices.",
            startingPoint=site.url("/table"),
            outputType="structured_json",
            outputSchema=schema,
        )
    assert task["status"] == "task_completed", task
    assert task["output"] == [{"name": "Keyboard", "price": 12.5}]
    done_tool = next(t for t in scripted.requests[0].body["tools"] if t["function"]["name"] == "done")
    assert done_tool["function"]["parameters"]["properties"]["output"]["type"] == "array"  # the schema itself


async def test_an_output_that_never_fits_fails_with_the_validation_message(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(*[Call("done", {"output": "name;price\nKeyboard;12.5"})] * 3)
    async with connect(**model_settings(scripted)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="List the products and prices as CSV.",
            startingPoint=site.url("/table"),
            outputType="structured_csv",
            outputSchema=["name", "price"],
        )
    assert task["error"]["code"] == "OUTPUT_VALIDATION_FAILED"
    assert "CSV header" in task["error"]["message"] and "3 attempts" in task["error"]["message"]
    assert len(scripted.requests) == 3


async def test_provider_errors_are_retried_and_then_reported(site: Site, scripted: ScriptedModel) -> None:
    scripted.script(
        Fail(429, "slow down", headers={"retry-after": "1"}),
        Fail(500, "upstream hiccup"),
        Call("done", {"output": "made it"}),
        Fail(401, "invalid x-api-key"),
    )
    async with connect(**model_settings(scripted, "anthropic", model_retries=2)) as client:
        task = await call(client, "run_task", taskDetails="Say made it.", startingPoint=site.url("/shop"))
        assert task["status"] == "task_completed" and task["output"] == "made it"
        assert len(scripted.requests) == 3
        failed = await call(client, "run_task", taskDetails="Again.", startingPoint=site.url("/shop"))
    assert failed["error"]["code"] == "MODEL_ERROR"
    assert "ANTHROPIC_API_KEY" in failed["error"]["message"] and "invalid x-api-key" in failed["error"]["message"]
    assert len(scripted.requests) == 4  # a refused key is not retried
