"""Step tools: the calling agent drives a local session itself, by refs from a compact snapshot.

Same registration, errors and replies as the lifecycle tools (registry.py, replies.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from browser_sessions.mcp.app_state import sessions
from browser_sessions.mcp.params import SessionId, from_arguments
from browser_sessions.mcp.registry import ToolDeclaration
from browser_sessions.step_models import ActionName, ActRequest, ActResult, ScreenshotResult, SnapshotResult

MaxChars = Annotated[int, Field(ge=500, le=200_000, description="Budget for the returned page state, in characters.")]
Ref = Annotated[str | None, Field(max_length=32, description='An element ref from the snapshot, e.g. "e12" or "f1e3".')]


async def browser_snapshot(
    ctx: Context[Any],
    sessionId: SessionId,
    maxChars: MaxChars = 8000,
    ref: Annotated[str | None, Field(max_length=32, description="Only this element's subtree.")] = None,
    find: Annotated[
        str | None, Field(min_length=1, max_length=200, description="Only what contains this text.")
    ] = None,
    format: Annotated[Literal["text", "json"], Field(description="text, or json: a list of elements.")] = "text",
) -> SnapshotResult:
    """The current page as a person perceives it: URL, title, headings, text, and every element one can act
    on with a ref ([e12]). Over maxChars it shows the viewport area plus an outline; use ref or find for more."""
    return await sessions(ctx).step_snapshot(sessionId, max_chars=maxChars, ref=ref, find=find, format=format)


async def browser_act(
    ctx: Context[Any],
    sessionId: SessionId,
    action: Annotated[ActionName, Field(description="What to do; the fields it needs are listed per field.")],
    url: Annotated[str | None, Field(description="navigate: http(s) URL.")] = None,
    ref: Ref = None,
    text: Annotated[
        str | None, Field(max_length=10_000, description="type: text ({{secret.NAME}} allowed); wait: text to await.")
    ] = None,
    submit: Annotated[bool, Field(description="type: press Enter afterwards.")] = False,
    option: Annotated[str | None, Field(description="select: option label or value.")] = None,
    checked: Annotated[bool | None, Field(description="check: true to check, false to uncheck.")] = None,
    key: Annotated[str | None, Field(description='press: a key such as "Enter", "Escape", "Control+A".')] = None,
    direction: Annotated[
        Literal["up", "down", "left", "right"] | None, Field(description="scroll: without ref, which way.")
    ] = None,
    amount: Annotated[int, Field(ge=1, le=20_000, description="scroll: pixels.")] = 600,
    seconds: Annotated[float | None, Field(gt=0, le=60, description="wait: seconds, instead of text.")] = None,
    file: Annotated[str | None, Field(description="upload: a file name in the server's upload folder.")] = None,
    tabAction: Annotated[Literal["list", "switch", "close"] | None, Field(description="tab: what to do.")] = None,
    index: Annotated[int | None, Field(ge=0, description="tab switch/close: the tab's index.")] = None,
    accept: Annotated[bool | None, Field(description="dialog: true accepts (OK), false dismisses.")] = None,
    maxChars: MaxChars = 8000,
) -> ActResult:
    """One step on the page: navigate(url), click(ref), type(ref, text, submit?), select(ref, option),
    check(ref, checked), press(key), hover(ref), scroll(ref | direction), back, forward, wait(text | seconds),
    upload(ref, file), tab(tabAction list|switch|close, index), dialog(accept, text?). Returns what changed
    and the new page state (or only what changed)."""
    request = from_arguments(ActRequest, locals())
    return await sessions(ctx).step_act(sessionId, request, max_chars=maxChars)


async def browser_screenshot(
    ctx: Context[Any],
    sessionId: SessionId,
    fullPage: Annotated[bool, Field(description="The whole page instead of the viewport.")] = False,
    ref: Annotated[str | None, Field(max_length=32, description="Only this element.")] = None,
) -> ScreenshotResult:
    """A PNG of the page (or one element), plus a link to the session's screenshot resource."""
    png = await sessions(ctx).step_screenshot(sessionId, full_page=fullPage, ref=ref)
    return ScreenshotResult(
        session_id=sessionId,
        uri=f"session://{sessionId}/screenshot",
        full_page=fullPage,
        ref=ref,
        size_bytes=len(png),
        png=png,
    )


_STEP = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
_LOOK = ToolAnnotations(read_only_hint=True, open_world_hint=False)

BROWSER_TOOLS: list[ToolDeclaration] = [
    ToolDeclaration(browser_snapshot, "Snapshot the page", _LOOK),
    ToolDeclaration(browser_act, "Act on the page", _STEP),
    ToolDeclaration(browser_screenshot, "Screenshot the page", _LOOK),
]
