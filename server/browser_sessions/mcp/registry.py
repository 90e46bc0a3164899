"""Turning tool declarations into SDK tools: strict arguments, one error translation, one reply builder.

Each handler is wrapped so that
- unknown arguments are refused (the SDK's argument models ignore them) and every argument error reads
  as "field: what is wrong; fix and call again" with the input never echoed (it may hold secrets);
- our errors become ``ToolError``s (a plain exception reaches the caller as a bare "Error executing tool");
- the returned model is rendered once by ``replies.render`` into text plus structured content.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import PydanticCustomError

from browser_sessions.errors import BrowserSessionsError, describe_validation
from browser_sessions.mcp.replies import render

Handler = Callable[..., Awaitable[BaseModel]]


class NeedsInput(Exception):
    """Raised by a handler that needs the client to ask the user first (2026-07-28 connections): the call
    returns ``request`` and the client retries it with the answer."""

    def __init__(self, request: InputRequiredResult) -> None:
        super().__init__("input required")
        self.request = request


@dataclass(frozen=True)
class ToolDeclaration:
    handler: Handler
    title: str
    annotations: ToolAnnotations


def _strict(tool: Tool) -> None:
    base = tool.fn_metadata.arg_model

    class StrictArguments(base):  # type: ignore[valid-type,misc]
        model_config = ConfigDict(
            extra="forbid", hide_input_in_errors=True, arbitrary_types_allowed=True, title=base.__name__
        )

        @model_validator(mode="wrap")
        @classmethod
        def _readable(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
            try:
                return handler(data)
            except ValidationError as exc:
                # {{ }} keep braces in messages literal in pydantic's message template
                text = describe_validation(exc).replace("{", "{{").replace("}", "}}")
                raise PydanticCustomError("invalid_arguments", text) from None

    tool.fn_metadata.arg_model = StrictArguments
    tool.parameters = {**tool.parameters, "additionalProperties": False}


def _wrap(handler: Handler) -> Callable[..., Awaitable[CallToolResult | InputRequiredResult]]:
    signature = inspect.signature(handler, eval_str=True)

    @functools.wraps(handler)
    async def call(*args: Any, **kwargs: Any) -> CallToolResult | InputRequiredResult:
        try:
            result = await handler(*args, **kwargs)
        except NeedsInput as signal:
            return signal.request
        except BrowserSessionsError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from exc
        except ValidationError as exc:
            raise ToolError(describe_validation(exc)) from exc
        return render(result)

    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=Annotated[CallToolResult, signature.return_annotation]
    )
    return call


def build_tools(declarations: list[ToolDeclaration]) -> list[Tool]:
    tools: list[Tool] = []
    for declaration in declarations:
        tool = Tool.from_function(
            _wrap(declaration.handler),
            name=declaration.handler.__name__,
            title=declaration.title,
            annotations=declaration.annotations,
        )
        _strict(tool)
        tools.append(tool)
    return tools
