"""The provider clients against the scripted model server: both wire formats, usage, retries and refusals,
and which model the settings choose. No browser."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest

from browser_sessions.backends.local.planners.models import http as model_http
from browser_sessions.backends.local.planners.models.anthropic import AnthropicModel
from browser_sessions.backends.local.planners.models.base import (
    AssistantTurn,
    ModelError,
    ModelRequest,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    UserText,
)
from browser_sessions.backends.local.planners.models.choose import configured_model, wants_sampling
from browser_sessions.backends.local.planners.models.openai import OpenAIModel
from browser_sessions.errors import InvalidInput
from browser_sessions.settings import Settings
from tests.scripted_model import Call, Fail, Raw, Received, Say, ScriptedModel, ref, serve_model

KEY = "sk-test-CANARY-1234"
CLICK = ToolSpec("click", "Click an element by ref.", {"type": "object", "properties": {"ref": {"type": "string"}}})
PAGE = '- button "Add to cart" [e3]'
FIRST = ToolCall("c1", "click", {"ref": "e1"})
SECOND = ToolCall("c2", "click", {"ref": "e2"})
CONVERSATION = (
    UserText("Buy the cheapest keyboard."),
    UserText(PAGE),
    AssistantTurn("", (FIRST, SECOND)),
    ToolOutcome("c1", "click", "clicked e1"),
    ToolOutcome("c2", "click", "clicked e2"),
    UserText("3 steps left."),
)
REQUEST = ModelRequest("You drive a browser.", CONVERSATION, (CLICK,), max_output_tokens=512)


@pytest.fixture(scope="module")
def served() -> Iterator[ScriptedModel]:
    with serve_model() as model:
        yield model


@pytest.fixture
def scripted(served: ScriptedModel) -> ScriptedModel:
    served.script()
    served.requests.clear()
    return served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_http, "FIRST_DELAY", 0.01)


def anthropic(http: httpx.AsyncClient, scripted: ScriptedModel, retries: int = 3) -> AnthropicModel:
    return AnthropicModel(
        http, model="claude-test", api_key=KEY, base_url=scripted.anthropic_base_url + "/", retries=retries
    )


def openai(http: httpx.AsyncClient, scripted: ScriptedModel, key: str | None = KEY, retries: int = 3) -> OpenAIModel:
    return OpenAIModel(http, model="llama3.1:8b", api_key=key, base_url=scripted.openai_base_url, retries=retries)


@pytest.mark.anyio
async def test_anthropic_round_trip(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Call("click", {"ref": "e3"}, text="Adding it."))
    model = anthropic(http, scripted)
    reply = await model.complete(REQUEST)

    assert model.name == "anthropic:claude-test"
    assert reply.text == "Adding it." and reply.stop_reason == "tool_use"
    [call] = reply.tool_calls
    assert (call.name, call.arguments) == ("click", {"ref": "e3"}) and call.id.startswith("toolu_")
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.estimated) == (100, 20, False)

    [got] = scripted.requests
    assert got.api == "anthropic" and got.headers["x-api-key"] == KEY
    assert got.headers["anthropic-version"] == "2023-06-01"
    body = got.body
    assert (body["model"], body["max_tokens"], body["system"]) == ("claude-test", 512, "You drive a browser.")
    assert got.system() == "You drive a browser."
    assert body["tools"] == [{"name": "click", "description": CLICK.description, "input_schema": CLICK.parameters}]
    assert body["tool_choice"] == {"type": "any"}
    # consecutive same-role messages merged; tool results first in their user message
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    first = body["messages"][0]["content"]
    assert first == [{"type": "text", "text": "Buy the cheapest keyboard."}, {"type": "text", "text": PAGE}]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "click", "input": {"ref": "e1"}},
        {"type": "tool_use", "id": "c2", "name": "click", "input": {"ref": "e2"}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "clicked e1"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "clicked e2"},
        {"type": "text", "text": "3 steps left."},
    ]
    assert got.observation() == "clicked e2"


@pytest.mark.anyio
async def test_anthropic_text_reply_and_assistant_text(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Say("All done."))
    request = ModelRequest("sys", (UserText("go"), AssistantTurn("Looking.", (FIRST,))), (), 100)
    reply = await anthropic(http, scripted).complete(request)
    assert (reply.text, reply.tool_calls, reply.stop_reason) == ("All done.", (), "end_turn")
    body = scripted.requests[0].body
    assert "tools" not in body and "tool_choice" not in body
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "Looking."}


@pytest.mark.anyio
async def test_openai_round_trip(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Call("click", {"ref": "e3"}))
    model = openai(http, scripted)
    reply = await model.complete(REQUEST)

    assert model.name == "openai:llama3.1:8b"
    assert (reply.text, reply.stop_reason) == ("", "tool_calls")
    [call] = reply.tool_calls
    assert (call.name, call.arguments) == ("click", {"ref": "e3"}) and call.id.startswith("call_")
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.estimated) == (100, 20, False)

    [got] = scripted.requests
    assert got.api == "openai" and got.headers["authorization"] == f"Bearer {KEY}"
    body = got.body
    assert (body["model"], body["max_tokens"], body["tool_choice"]) == ("llama3.1:8b", 512, "required")
    function = {"name": "click", "description": CLICK.description, "parameters": CLICK.parameters}
    assert body["tools"] == [{"type": "function", "function": function}]
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": "You drive a browser."}
    assert got.system() == "You drive a browser."
    assert [m["role"] for m in messages] == ["system", "user", "user", "assistant", "tool", "tool", "user"]
    assistant = messages[3]
    assert assistant["content"] is None
    calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]]
    assert calls == [("c1", "click", {"ref": "e1"}), ("c2", "click", {"ref": "e2"})]
    assert messages[4] == {"role": "tool", "tool_call_id": "c1", "content": "clicked e1"}
    assert got.observation() == "clicked e2"


@pytest.mark.anyio
async def test_openai_sends_no_authorization_without_a_key(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Say("hi"))
    request = ModelRequest("sys", (UserText("go"), AssistantTurn("Thinking.", ())), (), 50)
    reply = await openai(http, scripted, key=None).complete(request)
    assert (reply.text, reply.tool_calls, reply.stop_reason) == ("hi", (), "stop")
    got = scripted.requests[0]
    assert "authorization" not in got.headers
    assert "tools" not in got.body and "tool_choice" not in got.body
    assert got.body["messages"][2] == {"role": "assistant", "content": "Thinking."}  # no empty tool_calls


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_usage_is_estimated_when_omitted(provider: str, http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Call("click", {"ref": "e3"}, usage=None))
    model = anthropic(http, scripted) if provider == "anthropic" else openai(http, scripted)
    usage = (await model.complete(REQUEST)).usage
    assert usage.estimated and usage.input_tokens > 50 and usage.output_tokens > 0


@pytest.mark.anyio
async def test_openai_odd_tool_calls(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"type": "function", "function": {"name": "click", "arguments": '{"ref": "e1"'}},
            {"id": "x", "type": "function", "function": {"name": "done", "arguments": ""}},
        ],
    }
    usage = {"prompt_tokens": 7, "completion_tokens": 3}
    payload = {"choices": [{"message": message, "finish_reason": "tool_calls"}], "usage": usage}
    scripted.script(Raw(payload))
    reply = await openai(http, scripted, retries=0).complete(REQUEST)
    broken, empty = reply.tool_calls
    assert broken.arguments == {"_unparsed": '{"ref": "e1"'} and broken.id.startswith("call_")
    assert (empty.id, empty.arguments) == ("x", {})


@pytest.mark.anyio
async def test_anthropic_usage_counts_cached_input(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 1}
    payload = {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "usage": usage}
    scripted.script(Raw(payload))
    reply = await anthropic(http, scripted, retries=0).complete(REQUEST)
    assert (reply.text, reply.usage.input_tokens, reply.usage.output_tokens) == ("ab", 111, 5)


@pytest.mark.anyio
async def test_a_non_json_success_is_a_model_error(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Raw("<html>proxy login</html>"))
    with pytest.raises(ModelError, match="other than a JSON object"):
        await openai(http, scripted, retries=0).complete(REQUEST)


@pytest.mark.anyio
async def test_rate_limit_waits_as_asked(
    http: httpx.AsyncClient, scripted: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.script(Fail(429, "slow down", {"retry-after": "1"}), Say("ok"))
    started = anyio.current_time()
    reply = await anthropic(http, scripted).complete(REQUEST)
    assert reply.text == "ok" and len(scripted.requests) == 2
    assert anyio.current_time() - started >= 0.95
    assert "HTTP 429" in caplog.text and KEY not in caplog.text and "slow down" not in caplog.text


@pytest.mark.anyio
async def test_server_errors_are_retried(http: httpx.AsyncClient, scripted: ScriptedModel, fast_backoff: None) -> None:
    scripted.script(Fail(500), Fail(500), Call("click", {"ref": "e9"}))
    reply = await openai(http, scripted).complete(REQUEST)
    assert reply.tool_calls[0].arguments == {"ref": "e9"} and len(scripted.requests) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_retries_run_out(
    provider: str, http: httpx.AsyncClient, scripted: ScriptedModel, fast_backoff: None
) -> None:
    scripted.script(*[Fail(503, "overloaded right now")] * 3)
    model = anthropic(http, scripted, retries=1) if provider == "anthropic" else openai(http, scripted, retries=1)
    with pytest.raises(ModelError) as failed:
        await model.complete(REQUEST)
    assert failed.value.code == "MODEL_ERROR" and len(scripted.requests) == 2
    assert str(failed.value) == (
        f"The {provider} API kept failing (HTTP 503 after 2 attempts): overloaded right now; try again later"
    )


@pytest.mark.anyio
async def test_a_long_retry_after_fails_at_once(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Fail(429, "quota", {"retry-after": "3600"}), Say("never"))
    with pytest.raises(ModelError, match=r"asked to wait 3600 s .*HTTP 429\): quota"):
        await anthropic(http, scripted).complete(REQUEST)
    assert len(scripted.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(("provider", "variable"), [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")])
async def test_a_refused_key_names_its_variable(
    provider: str, variable: str, http: httpx.AsyncClient, scripted: ScriptedModel
) -> None:
    scripted.script(Fail(401, "invalid x-api-key"))
    model = anthropic(http, scripted) if provider == "anthropic" else openai(http, scripted)
    with pytest.raises(ModelError) as failed:
        await model.complete(REQUEST)
    message = str(failed.value)
    assert f"The {provider} API refused the key (HTTP 401): invalid x-api-key" in message and variable in message
    assert KEY not in message and len(scripted.requests) == 1


@pytest.mark.anyio
async def test_refusals_are_not_retried(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    scripted.script(Fail(400, "max_tokens: too large"), Fail(404, "model: claude-test"), Say("never"))
    with pytest.raises(ModelError, match=r"rejected the request \(HTTP 400\): max_tokens: too large"):
        await anthropic(http, scripted).complete(REQUEST)
    assert len(scripted.requests) == 1
    with pytest.raises(ModelError, match=r"HTTP 404.*model: claude-test\. Check BROWSER_SESSIONS_MODEL"):
        await anthropic(http, scripted).complete(REQUEST)
    assert len(scripted.requests) == 2


@pytest.mark.anyio
async def test_an_unreachable_server_is_retried_then_reported(http: httpx.AsyncClient, fast_backoff: None) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIModel(http, model="m", base_url=f"http://127.0.0.1:{port}/v1", retries=2)
    with pytest.raises(ModelError, match=r"Could not reach the openai API at .* after 3 attempts .*OPENAI_BASE_URL"):
        await model.complete(REQUEST)


def test_requested_delay_reads_every_form() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    delay = model_http.requested_delay
    assert delay(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert delay(httpx.Headers({"retry-after": "2"})) == 2.0
    assert 28 <= (delay(httpx.Headers({"retry-after": soon})) or 0) <= 30
    assert delay(httpx.Headers({"retry-after": "whenever"})) is None and delay(httpx.Headers()) is None


@pytest.mark.anyio
async def test_callable_turns_see_the_request(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    def decide(got: Received) -> Call | Fail:
        return Call("click", lambda seen: {"ref": ref(seen.observation(), "button", "Add to cart")})

    scripted.script(decide)
    request = ModelRequest("sys", (UserText('- heading "Shop" [h1, e1]\n  - button "Add to cart" [e3]'),), (CLICK,), 9)
    reply = await anthropic(http, scripted).complete(request)
    assert reply.tool_calls[0].arguments == {"ref": "e3"}
    assert ref('- heading "Shop" [h1, e1]', "heading", "Shop") == "e1"
    assert ref('  - row: link "Keyboard" [f2e7] | $12.50', "link", "Keyboard") == "f2e7"
    with pytest.raises(AssertionError, match=r'no link "Shop" with a ref among:\n- heading "Shop" \[h1, e1\]'):
        ref('- heading "Shop" [h1, e1]', "link", "Shop")


@pytest.mark.anyio
async def test_an_exhausted_script_fails_visibly(http: httpx.AsyncClient, scripted: ScriptedModel) -> None:
    with pytest.raises(ModelError, match="script exhausted"):
        await anthropic(http, scripted, retries=0).complete(REQUEST)
    assert len(scripted.requests) == 1


def settings(monkeypatch: pytest.MonkeyPatch, **values: Any) -> Settings:
    # the settings read these from the environment; the machine's own must not leak in
    for name in ("BROWSER_SESSIONS_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return Settings(**values)


@pytest.mark.anyio
async def test_configured_model_rules(http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def chosen(**values: Any) -> str | None:
        model = configured_model(settings(monkeypatch, **values), http)
        return None if model is None else model.name

    assert chosen() is None
    assert chosen(anthropic_api_key="a", openai_api_key="o") == "anthropic:claude-sonnet-4-5"
    assert chosen(openai_api_key="o") == "openai:gpt-4.1-mini"
    assert chosen(openai_base_url="http://localhost:11434/v1") == "openai:gpt-4.1-mini"
    assert chosen(anthropic_api_key="  ") is None  # a blank key is no key
    assert chosen(model="openai:llama3.1:8b", openai_base_url="http://localhost:11434/v1") == "openai:llama3.1:8b"
    assert chosen(model="anthropic:claude-haiku-4-5", anthropic_api_key="a") == "anthropic:claude-haiku-4-5"
    assert chosen(model="sampling", anthropic_api_key="a") is None
    assert wants_sampling(settings(monkeypatch, model="sampling"))
    assert not wants_sampling(settings(monkeypatch, anthropic_api_key="a"))
    for bad in ("claude-sonnet-4-5", "gemini:pro", "openai:", ":gpt"):
        with pytest.raises(InvalidInput, match=r"provider:model, e\.g\. anthropic:claude-sonnet-4-5"):
            chosen(model=bad)
    with pytest.raises(InvalidInput, match="needs ANTHROPIC_API_KEY"):
        chosen(model="anthropic:claude-sonnet-4-5", openai_api_key="o")
    with pytest.raises(InvalidInput, match="needs OPENAI_API_KEY, or OPENAI_BASE_URL"):
        chosen(model="openai:gpt-4.1-mini")


@pytest.mark.anyio
async def test_configured_model_calls_with_the_settings(
    http: httpx.AsyncClient, scripted: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted.script(Say("from anthropic"))
    chosen = configured_model(
        settings(monkeypatch, anthropic_api_key=KEY, anthropic_base_url=scripted.anthropic_base_url, model_retries=0),
        http,
    )
    assert chosen is not None
    assert (await chosen.complete(REQUEST)).text == "from anthropic"
    assert scripted.requests[0].headers["x-api-key"] == KEY
