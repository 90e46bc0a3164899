"""What a planner needs from a language model, whatever serves it: one call that takes the conversation
and the tools it may call and returns its reply with the tokens it used.

Providers (``anthropic.py``, ``openai.py``) and MCP sampling (``mcp/sampling.py``) implement ``ChatModel``;
they translate their wire errors into ``ModelError`` once, at their boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from browser_sessions.errors import TaskFailure


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON Schema object


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class UserText:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    text: str
    tool_calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ToolOutcome:
    """The answer to one ``ToolCall`` of the preceding ``AssistantTurn``."""

    call_id: str
    name: str
    text: str


Message = UserText | AssistantTurn | ToolOutcome


@dataclass(frozen=True)
class ModelRequest:
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    max_output_tokens: int


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool  # True when the source reported no usage and these are counted from characters


@dataclass(frozen=True)
class ModelReply:
    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    stop_reason: str | None


class ChatModel(Protocol):
    @property
    def name(self) -> str:
        """``provider:model`` as reported in task results, e.g. ``openai:gpt-4.1-mini``."""
        ...

    async def complete(self, request: ModelRequest) -> ModelReply:
        """One model turn. Raises ``ModelError`` (after the retries the source allows) on failure."""
        ...


class ModelError(TaskFailure):
    """The model could not be reached or refused the request; the message says what to check."""

    code = "MODEL_ERROR"


CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """A rough token count for sources that report none (about four characters per token)."""
    return max(1, len(text) // CHARS_PER_TOKEN) if text else 0
