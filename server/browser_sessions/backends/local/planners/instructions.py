"""The instruction planner: task text written as instruction lines, run step by step with no model.

Forms (case-insensitive, one per line or separated by ``;`` outside quotes; quotes may be "..." or '...'):

    go to <url>                       (also: open, visit, navigate to)
    click "<name>"
    type "<text>" into "<field>"      (append "and press Enter" to submit)
    select "<option>" in "<field>"
    check "<name>"  /  uncheck "<name>"
    press <Key>
    wait for "<text>"
    extract text  /  extract text "<element>"
    extract table  /  extract table "<caption or heading>"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from browser_sessions.errors import InstructionError, ModelRequired
from browser_sessions.models import check_page_url


@dataclass(frozen=True)
class GoTo:
    url: str


@dataclass(frozen=True)
class Click:
    name: str


@dataclass(frozen=True)
class TypeText:
    text: str
    field: str
    submit: bool


@dataclass(frozen=True)
class Select:
    option: str
    field: str


@dataclass(frozen=True)
class Check:
    name: str
    checked: bool


@dataclass(frozen=True)
class Press:
    key: str


@dataclass(frozen=True)
class WaitFor:
    text: str


@dataclass(frozen=True)
class ExtractText:
    element: str | None


@dataclass(frozen=True)
class ExtractTable:
    title: str | None


Instruction = GoTo | Click | TypeText | Select | Check | Press | WaitFor | ExtractText | ExtractTable


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    instruction: Instruction


_Q = r"""(?:"([^"]*)"|'([^']*)'|“([^”]*)”)"""
_FORMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?:go to|goto|open|visit|navigate to)\s+(\S+)$", re.I), "goto"),
    (re.compile(rf"^click(?: on)?\s+{_Q}$", re.I), "click"),
    (re.compile(rf"^(?:type|enter|fill)\s+{_Q}\s+(?:into|in)\s+{_Q}(\s+and (?:press enter|submit))?$", re.I), "type"),
    (re.compile(rf"^(?:select|choose)\s+{_Q}\s+(?:in|from)\s+{_Q}$", re.I), "select"),
    (re.compile(rf"^(check|tick|uncheck|untick)\s+{_Q}$", re.I), "check"),
    (re.compile(r"^press\s+([A-Za-z0-9+_-]+)$", re.I), "press"),
    (re.compile(rf"^wait for\s+{_Q}$", re.I), "wait"),
    (re.compile(rf"^extract text(?:\s+(?:of|from)?\s*{_Q})?$", re.I), "text"),
    (re.compile(rf"^extract table(?:\s+{_Q})?$", re.I), "table"),
]
FORMS_HELP = (
    'go to <url>; click "<name>"; type "<text>" into "<field>"; select "<option>" in "<field>"; '
    'check "<name>"; press <Key>; wait for "<text>"; extract text; extract table ["<caption>"]'
)


def _quoted(text: str) -> list[str]:
    """The quoted values in ``text``, in order, whatever quote style each uses."""
    return [next((g for g in trio if g), "") for trio in re.findall(_Q, text)]


def _split(task_details: str) -> list[str]:
    """Lines, also split on ``;`` outside quotes."""
    parts: list[str] = []
    for raw in task_details.splitlines():
        current, quote = "", ""
        for ch in raw:
            if quote:
                quote = "" if ch == quote or (quote == "“" and ch == "”") else quote
            elif ch in "\"'“":
                quote = ch
            elif ch == ";":
                parts.append(current)
                current = ""
                continue
            current += ch
        parts.append(current)
    return [p.strip() for p in parts]


def _build(kind: str, match: re.Match[str]) -> Instruction:
    q = _quoted(match.group(0))
    if kind == "goto":
        url = match.group(1)
        url = url if "://" in url else f"https://{url}"
        try:
            return GoTo(check_page_url(url))
        except ValueError as exc:
            raise InstructionError(str(exc)) from None
    if kind == "click":
        return Click(q[0])
    if kind == "type":
        return TypeText(q[0], q[1], submit=match.group(match.re.groups) is not None)
    if kind == "select":
        return Select(q[0], q[1])
    if kind == "check":
        return Check(q[0], checked=match.group(1).lower() in ("check", "tick"))
    if kind == "press":
        return Press(match.group(1))
    if kind == "wait":
        return WaitFor(q[0])
    if kind == "text":
        return ExtractText(q[0] if q else None)
    return ExtractTable(q[0] if q else None)


def _parse_line(text: str) -> Instruction | None:
    for pattern, kind in _FORMS:
        found = pattern.match(text)
        if found:
            return _build(kind, found)
    return None


def _parse_numbered(number: int, text: str) -> Instruction | None:
    try:
        return _parse_line(text)
    except InstructionError as exc:
        raise InstructionError(f"Line {number} ({text!r}): {exc.message}") from None


def parse(task_details: str) -> list[Line]:
    """Parse the whole task up front, so a bad line fails the task before anything runs.

    Raises ``ModelRequired`` when no line is an instruction (free text), and ``InstructionError`` naming
    the first line that is not one when others are.
    """
    lines = [(n, text) for n, text in enumerate(_split(task_details), start=1) if text]
    parsed = [(n, text, _parse_numbered(n, text)) for n, text in lines]
    if parsed and all(instruction is None for _, _, instruction in parsed):
        raise ModelRequired(
            "This task reads as free text, which needs a model, and none is available: the server has no "
            "model configured (BROWSER_SESSIONS_MODEL with ANTHROPIC_API_KEY, OPENAI_API_KEY or OPENAI_BASE_URL) "
            "and this client offers no MCP sampling. To run it without a model, write it as instruction lines: "
            f"{FORMS_HELP}."
        )
    result: list[Line] = []
    for number, text, instruction in parsed:
        if instruction is None:
            raise InstructionError(
                f"Line {number} ({text!r}) is not an instruction this planner knows. Forms: {FORMS_HELP}."
            )
        result.append(Line(number, text, instruction))
    return result
