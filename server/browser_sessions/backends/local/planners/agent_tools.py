"""The tools a model-driven task offers its model: the actions of ``browser_act`` (one tool each, which
models choose more reliably than one tool with a mode), plus ``done`` and ``ask_human``.

A call to an action tool becomes the same ``ActRequest`` the step tools validate; its arguments carry the
request's wire names.
"""

from __future__ import annotations

from typing import Any

from browser_sessions.backends.local.planners.models.base import ToolCall, ToolSpec
from browser_sessions.models import TaskSpec
from browser_sessions.step_models import ActRequest

DONE = "done"
ASK_HUMAN = "ask_human"

_REF = {"type": "string", "description": "The element's ref from the page snapshot, e.g. e12."}


def _tool(name: str, description: str, required: list[str], **properties: dict[str, Any]) -> ToolSpec:
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return ToolSpec(name, description, schema)


ACTION_TOOLS: tuple[ToolSpec, ...] = (
    _tool("navigate", "Load a URL in the current tab.", ["url"], url={"type": "string", "description": "http(s) URL"}),
    _tool("click", "Click an element.", ["ref"], ref=_REF),
    _tool(
        "type",
        "Replace the text of a field. Write a secret as {{secret.NAME}}; it is filled in only on its hosts.",
        ["ref", "text"],
        ref=_REF,
        text={"type": "string"},
        submit={"type": "boolean", "description": "Press Enter afterwards."},
    ),
    _tool("select", "Choose an option of a select.", ["ref", "option"], ref=_REF, option={"type": "string"}),
    _tool("check", "Check or uncheck a checkbox or radio.", ["ref", "checked"], ref=_REF, checked={"type": "boolean"}),
    _tool("press", "Press a key, e.g. Enter, Escape, Control+A.", ["key"], key={"type": "string"}),
    _tool("hover", "Move the pointer over an element.", ["ref"], ref=_REF),
    _tool(
        "scroll",
        "Scroll an element into view, or the page in a direction.",
        [],
        ref=_REF,
        direction={"type": "string", "enum": ["up", "down", "left", "right"]},
        amount={"type": "integer", "minimum": 1, "maximum": 20000, "description": "Pixels."},
    ),
    _tool("back", "Go back in history.", []),
    _tool("forward", "Go forward in history.", []),
    _tool(
        "wait",
        "Wait for a text to appear, or for some seconds.",
        [],
        text={"type": "string"},
        seconds={"type": "number", "exclusiveMinimum": 0, "maximum": 60},
    ),
    _tool(
        "tab",
        "List, switch to or close a tab.",
        ["tabAction"],
        tabAction={"type": "string", "enum": ["list", "switch", "close"]},
        index={"type": "integer", "minimum": 0},
    ),
    _tool(
        "dialog",
        "Answer the open alert, confirm or prompt dialog.",
        ["accept"],
        accept={"type": "boolean"},
        text={"type": "string", "description": "prompt dialogs: the text to enter."},
    ),
)

_ASK = _tool(
    ASK_HUMAN,
    "Ask the user a question and wait for the answer: credentials you lack, a purchase or other irreversible "
    "step to confirm, a one-time code, or a real ambiguity in the task.",
    ["question"],
    question={"type": "string"},
)


_REFERENCES = {"$ref", "$defs", "definitions", "$id"}


def done_tool(spec: TaskSpec) -> ToolSpec:
    """``done`` with the output the task asks for: text, JSON fitting outputSchema, or CSV with its columns."""
    schema = spec.output_schema
    if spec.output_type == "structured_json" and isinstance(schema, dict) and not _REFERENCES & schema.keys():
        inline = {k: v for k, v in schema.items() if k != "$schema"}
        output: dict[str, Any] = {**inline, "description": "The result, fitting outputSchema."}
    elif spec.output_type == "structured_json":  # references would not resolve inside a property
        output = {"description": "The result as JSON fitting outputSchema (given in the instructions)."}
    elif spec.output_type == "structured_csv":
        columns = ", ".join(spec.output_schema or [])
        output = {"type": "string", "description": f"CSV text with a header row of exactly: {columns}"}
    else:
        output = {"type": "string", "description": "The answer the task asks for, in markdown."}
    return _tool(DONE, "Finish the task with its result.", ["output"], output=output)


def tools_for(spec: TaskSpec) -> tuple[ToolSpec, ...]:
    return (*ACTION_TOOLS, _ASK, done_tool(spec))


def action_request(call: ToolCall) -> ActRequest:
    """The step ``call`` asks for; raises pydantic's ``ValidationError`` (to be told to the model)."""
    return ActRequest.model_validate({**call.arguments, "action": call.name})


def is_action(name: str) -> bool:
    return any(tool.name == name for tool in ACTION_TOOLS)
