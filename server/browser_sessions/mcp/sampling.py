"""The calling client's own model, through MCP sampling (``sampling/createMessage``).

Only handshake-era (legacy) connections carry server-to-client requests, and the task outlives the tool
call that sent it, so requests go on the connection's standalone channel. Sampling is deprecated by the
2026-07-28 spec and absent from its connections; there, free-text tasks need a configured provider.

Tools are described in the system prompt and the model answers with one JSON object, which every sampling
client can do (tool-enabled sampling is a newer, optional client capability). Clients report no token
usage, so usage is estimated from text.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import anyio
from mcp import MCPDeprecationWarning
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.types import ClientCapabilities, SamplingCapability, SamplingMessage, TextContent
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from browser_sessions.backends.local.planners.models.base import (
    AssistantTurn,
    Message,
    ModelError,
    ModelReply,
    ModelRequest,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    Usage,
    UserText,
    estimate_tokens,
)

REPLY_FORMAT = """
Answer with exactly one JSON object and nothing else: {{"tool": "<name>", "arguments": {{...}}}}.
The tools and their arguments (JSON Schema):
{tools}"""


def can_sample(session: ServerSession) -> bool:
    """A legacy connection whose client declared sampling."""
    if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return False
    return session.check_client_capability(ClientCapabilities(sampling=SamplingCapability()))


class ClientSampling:
    """``ChatModel`` over the client's ``sampling/createMessage``."""

    def __init__(self, session: ServerSession, *, timeout: float) -> None:
        self._session = session
        self._timeout = timeout
        self._model = "client"

    @property
    def name(self) -> str:
        return f"sampling:{self._model}"

    async def complete(self, request: ModelRequest) -> ModelReply:
        system = request.system + REPLY_FORMAT.format(tools="\n".join(_describe(t) for t in request.tools))
        messages = _sampling_messages(request.messages)
        with warnings.catch_warnings():  # deprecated by 2026-07-28, still the legacy era's way
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            pending = self._session.create_message(messages, max_tokens=request.max_output_tokens, system_prompt=system)
        try:
            with anyio.fail_after(self._timeout):
                result = await pending
        except TimeoutError:
            raise ModelError(f"The client did not answer the sampling request within {self._timeout:g} s.") from None
        except MCPError as exc:
            raise ModelError(f"The client's model (MCP sampling) refused: {exc}") from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ModelError(
                "The client that sent this task disconnected, and its model (MCP sampling) with it. "
                "Send the task again, or configure a model on the server (BROWSER_SESSIONS_MODEL)."
            ) from None
        self._model = result.model or self._model
        text = result.content.text if isinstance(result.content, TextContent) else ""
        sent = system + "".join(m.content.text for m in messages if isinstance(m.content, TextContent))
        usage = Usage(input_tokens=estimate_tokens(sent), output_tokens=estimate_tokens(text), estimated=True)
        call = _parse_call(text)
        return ModelReply(
            text="" if call else text, tool_calls=(call,) if call else (), usage=usage, stop_reason=result.stop_reason
        )


def _describe(tool: ToolSpec) -> str:
    return f"- {tool.name}: {tool.description} {json.dumps(tool.parameters.get('properties', {}))}"


def _sampling_messages(messages: tuple[Message, ...]) -> list[SamplingMessage]:
    """The conversation as alternating text messages."""
    turns: list[tuple[str, str]] = []
    for message in messages:
        match message:
            case UserText(text):
                role, text = "user", text
            case AssistantTurn(text, calls):
                role = "assistant"
                text = "\n".join([text, *(json.dumps({"tool": c.name, "arguments": c.arguments}) for c in calls)])
            case ToolOutcome(_, name, text):
                role, text = "user", f"Result of {name}:\n{text}"
        text = text.strip()
        if turns and turns[-1][0] == role:
            turns[-1] = (role, f"{turns[-1][1]}\n\n{text}")
        else:
            turns.append((role, text))
    return [SamplingMessage(role=role, content=TextContent(type="text", text=text)) for role, text in turns]


def _parse_call(text: str) -> ToolCall | None:
    """The ``{"tool": ..., "arguments": ...}`` object in ``text``, if there is one."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value: Any = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("tool"), str):
        return None
    arguments = value.get("arguments")
    return ToolCall(id="sampled", name=value["tool"], arguments=arguments if isinstance(arguments, dict) else {})
