"""``ChatModel`` over Anthropic's Messages API (``POST {base_url}/v1/messages``), with plain httpx."""

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

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


class AnthropicModel(HttpChatModel):
    """One Claude model. ``complete`` makes one Messages call (retried per ``post_json``); when tools are given
    the model must call one of them (``tool_choice: any``)."""

    provider = "anthropic"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        model: str,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 120.0,
        retries: int = 3,
    ) -> None:
        url = base_url.rstrip("/") + "/v1/messages"
        super().__init__(http, model=model, url=url, timeout=timeout, retries=retries)
        self._api_key = api_key

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key, "anthropic-version": API_VERSION, "content-type": "application/json"}

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        return request_body(self._model, request)

    def parse_reply(self, data: dict[str, Any], body: dict[str, Any]) -> ModelReply:
        return parse_reply(data, body)


def request_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Messages API body for ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_output_tokens,
        "system": request.system,
        "messages": messages(request.messages),
    }
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
        body["tool_choice"] = {"type": "any"}
    return body


def messages(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Wire messages with roles alternating, as the API requires: consecutive messages of one role become one,
    and in a user message the ``tool_result`` blocks come first (the API rejects text before them)."""
    out: list[dict[str, Any]] = []
    for message in conversation:
        role, blocks = _blocks(message)
        if not blocks:
            continue  # an empty assistant turn has nothing to send, and the API rejects empty content
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for wire in out:
        if wire["role"] == "user":
            wire["content"].sort(key=lambda block: block["type"] != "tool_result")  # stable: order kept within
    return out


def _blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(message, UserText):
        return "user", [{"type": "text", "text": message.text}]
    if isinstance(message, ToolOutcome):
        return "user", [{"type": "tool_result", "tool_use_id": message.call_id, "content": message.text}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls]
    return "assistant", blocks


def parse_reply(data: dict[str, Any], body: dict[str, Any]) -> ModelReply:
    """The ``ModelReply`` in a Messages response; ``body`` (the request) counts input tokens if usage is absent."""
    content = data.get("content")
    if not isinstance(content, list):
        raise ModelError(f"The anthropic API answered without a content list (keys: {sorted(data)})")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            calls.append(
                ToolCall(
                    id=str(block.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"),
                    name=str(block.get("name", "")),
                    arguments=arguments if isinstance(arguments, dict) else {},
                )
            )
    stop = data.get("stop_reason")
    return ModelReply(
        text="".join(texts),
        tool_calls=tuple(calls),
        usage=_usage(data.get("usage"), body, content),
        stop_reason=stop if isinstance(stop, str) else None,
    )


def _usage(usage: Any, body: dict[str, Any], content: list[Any]) -> Usage:
    if isinstance(usage, dict) and isinstance(usage.get("input_tokens"), int):
        # cached prompt tokens are reported apart from input_tokens but were read all the same
        cached = sum(
            n
            for key in ("cache_read_input_tokens", "cache_creation_input_tokens")
            if isinstance(n := usage.get(key), int)
        )
        output = usage.get("output_tokens")
        return Usage(usage["input_tokens"] + cached, output if isinstance(output, int) else 0, estimated=False)
    return Usage(estimate_tokens(json.dumps(body)), estimate_tokens(json.dumps(content)), estimated=True)
