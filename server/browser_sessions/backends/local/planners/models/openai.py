"""``ChatModel`` over OpenAI-compatible chat completions (``POST {base_url}/chat/completions``): OpenAI itself,
Ollama, vLLM, LM Studio, OpenRouter. Plain httpx; only fields every such server understands."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from browser_sessions.backends.local.planners.models.base import (
    Message,
    ModelError,
    ModelReply,
    ModelRequest,
    ToolCall,
    ToolOutcome,
    Usage,
    UserText,
    estimate_tokens,
)
from browser_sessions.backends.local.planners.models.http import HttpChatModel

DEFAULT_BASE_URL = "https://api.openai.com/v1"
UNPARSED = "_unparsed"  # the argument key holding a tool call's arguments that were not a JSON object


class OpenAIModel(HttpChatModel):
    """One chat-completions model. ``api_key`` None sends no ``Authorization`` header (local servers need none).
    When tools are given the model must call one (``tool_choice: required``)."""

    provider = "openai"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
    ) -> None:
        url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        super().__init__(http, model=model, url=url, timeout=timeout, retries=retries)
        self._api_key = api_key

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        return request_body(self._model, request)

    def parse_reply(self, data: dict[str, Any], body: dict[str, Any]) -> ModelReply:
        return parse_reply(data, body)


def request_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The chat-completions body for ``request``; the system prompt is the first message."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_output_tokens,
        "messages": [{"role": "system", "content": request.system}, *map(_message, request.messages)],
    }
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
        body["tool_choice"] = "required"
    return body


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message, UserText):
        return {"role": "user", "content": message.text}
    if isinstance(message, ToolOutcome):
        return {"role": "tool", "tool_call_id": message.call_id, "content": message.text}
    wire: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls
        ]
    return wire


def parse_reply(data: dict[str, Any], body: dict[str, Any]) -> ModelReply:
    """The ``ModelReply`` in ``choices[0]``; ``body`` (the request) counts input tokens if usage is absent."""
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(first, dict) or not isinstance(message, dict):
        raise ModelError(f"The openai API answered without choices[0].message (keys: {sorted(data)})")
    calls = tuple(_call(c) for c in message.get("tool_calls") or () if isinstance(c, dict))
    stop = first.get("finish_reason")
    return ModelReply(
        text=_text(message.get("content")),
        tool_calls=calls,
        usage=_usage(data.get("usage"), body, message),
        stop_reason=stop if isinstance(stop, str) else None,
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers answer in content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _call(wire: dict[str, Any]) -> ToolCall:
    function = wire.get("function")
    function = function if isinstance(function, dict) else {}
    return ToolCall(
        id=str(wire.get("id") or f"call_{uuid.uuid4().hex[:24]}"),  # some local servers send none
        name=str(function.get("name", "")),
        arguments=_arguments(function.get("arguments")),
    )


def _arguments(raw: Any) -> dict[str, Any]:
    """A JSON-object string as a dict (some servers send the dict itself); anything else under ``UNPARSED`` so
    the loop can show the model what it sent."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}  # a call of a tool without parameters
    text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        parsed = json.loads(text)
    except ValueError:
        return {UNPARSED: text}
    return parsed if isinstance(parsed, dict) else {UNPARSED: text}


def _usage(usage: Any, body: dict[str, Any], message: dict[str, Any]) -> Usage:
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        output = usage.get("completion_tokens")
        return Usage(usage["prompt_tokens"], output if isinstance(output, int) else 0, estimated=False)
    return Usage(estimate_tokens(json.dumps(body)), estimate_tokens(json.dumps(message)), estimated=True)
