"""The instruction script of what a model-driven task did, so the same job can run again with no model.

Each action is written in the instruction planner's language, naming elements by the accessible name the
planner finds them by. Where an action has no such line (hover, history, tabs, dialogs) or its element has
no unique name, there is no script, and the notes say which step and why: a script that would not replay
is worse than none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from browser_sessions.backends.local.page.snapshot import Element
from browser_sessions.models import OutputType, Replay
from browser_sessions.step_models import ActRequest


def _quote(text: str) -> str | None:
    """``text`` in a quote style it does not contain; None when every style clashes or it spans lines."""
    if "\n" in text:
        return None
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return None


@dataclass
class ReplayBuilder:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def starting_point(self, url: str) -> None:
        self.lines.append(f"go to {url}")

    def record(self, step: int, action: str, line: str | None, problem: str) -> None:
        """Record a performed action by its ``replay_line`` result."""
        if line is not None:
            self.lines.append(line)
        elif problem == "":
            self.notes.append(f"step {step} ({action}) left out: replaying without it is the same")
        else:
            self.problems.append(f"step {step} ({action}): {problem}")

    def build(self, output_type: OutputType) -> Replay:
        if self.problems:
            return Replay(script=None, notes=[*self.problems, *self.notes])
        closing = "extract text" if output_type == "text" else "extract table"
        note = (
            f"the model wrote the output itself; the script ends with `{closing}`, which returns the page's "
            "content for you to read the same answer from"
        )
        return Replay(script="\n".join([*self.lines, closing]), notes=[*self.notes, note])


def replay_line(request: ActRequest, element: Element | None, same_name: int) -> tuple[str | None, str]:
    """The instruction line for ``request`` on ``element`` (``same_name`` elements on the page share its
    name, which a by-name replay could not tell apart), or None with the reason ("" when leaving the step
    out is harmless)."""
    match request.action:
        case "navigate":
            return f"go to {request.url}", ""
        case "press":
            return f"press {request.key}", ""
        case "scroll":
            return None, ""  # the planner scrolls elements into view by itself
        case "wait" if request.text is not None:
            quoted = _quote(request.text)
            return (f"wait for {quoted}", "") if quoted else (None, "the awaited text has both quote styles")
        case "wait":
            return None, ""  # each instruction waits for its element and for page loads by itself
        case "click" | "type" | "select" | "check":
            return _element_line(request, element, same_name)
    return None, f"the instruction language has no form for {request.action}"


def _element_line(request: ActRequest, element: Element | None, same_name: int) -> tuple[str | None, str]:
    if element is None or not element.name.strip():
        return None, "the element has no accessible name to find it by"
    if same_name > 1:
        return None, f"{same_name} elements on the page are named {element.name!r}"
    name = _quote(element.name)
    if name is None:
        return None, "the element's name has both quote styles"
    match request.action:
        case "click":
            return f"click {name}", ""
        case "check":
            return f"{'check' if request.checked else 'uncheck'} {name}", ""
        case "select":
            option = _quote(request.option or "")
            return (f"select {option} in {name}", "") if option else (None, "the option has both quote styles")
    text = _quote(request.text or "")
    if text is None:
        return None, "the typed text has both quote styles"
    return f"type {text} into {name}{' and press Enter' if request.submit else ''}", ""
