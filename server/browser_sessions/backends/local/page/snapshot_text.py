"""A snapshot's lines, and the ways ``Snapshot.render`` shows them within a budget.

A page is a tuple of ``Line`` in document order, each pointing at the line of its enclosing container, so a
subset of lines can always be shown with the containers around it. ``around`` picks the lines in and near the
viewport (every line with an actionable element in view first) and adds an outline; ``subtree`` finds the
lines under one ref; ``found`` lists the lines holding some text, each with its path.
"""

from __future__ import annotations

from dataclasses import dataclass

from browser_sessions.errors import InvalidInput

RUN_CHARS = 300  # a longer run of text is cut, with "…"
_OUTLINE = "outline (headings and landmarks; position in screens from the viewport, - above, + below):"
_NOTE = (
    "[snapshot truncated: {:,} chars in full; showing the viewport area. Get more with ref=<ref of a section>,"
    ' find="<text>", or scroll and snapshot again]'
)


@dataclass(frozen=True, slots=True)
class Line:
    depth: int
    text: str  # as rendered after "- "
    label: str  # the line's own node, as paths and the outline name it
    full: str  # what find= searches: the text before runs were cut
    top: float  # px from the main viewport's top
    bottom: float
    seen: bool  # in the viewport
    up: int  # index of the enclosing container's line, -1 at the top
    refs: tuple[str, ...] = ()  # actionable elements on the line
    ref: str | None = None  # the line's own node
    level: int = 0  # heading level
    landmark: bool = False


def show(line: Line, base: int = 0) -> str:
    return "  " * (line.depth - base) + "- " + line.text


def clip(text: str, max_chars: int) -> str:
    """`text` when it fits, else as many whole lines as fit with a note saying so; never over `max_chars`."""
    if len(text) <= max_chars:
        return text
    note = f"\n[cut at {max_chars:,} of {len(text):,} chars; narrow with ref= or find=]"
    if len(note) >= max_chars:
        return text[:max_chars]
    keep = text[: max_chars - len(note)]
    return keep[: keep.rfind("\n")] + note if "\n" in keep else keep + note


def subtree(lines: tuple[Line, ...], ref: str) -> range | None:
    """The lines of the node with that ref: its own and those nested in it; for a heading, its section (up to
    the next heading of the same or a higher level); for an element shown inline, its line. None if absent."""
    for i, line in enumerate(lines):
        if ref in line.refs and line.ref != ref:
            return range(i, i + 1)
        if line.ref != ref:
            continue
        end = i + 1
        while end < len(lines) and (
            lines[end].depth > line.depth
            or (line.level and lines[end].depth == line.depth and not 0 < lines[end].level <= line.level)
        ):
            end += 1
        return range(i, end)
    return None


def found(lines: tuple[Line, ...], find: str, span: range) -> str:
    """Each line of `span` containing `find` (case-insensitive) as ``main [e1] > form [e5] > button "Go" [e7]``:
    its containers and the nearest heading before it, then the line (a long text: the part around the match)."""
    wanted = " ".join(find.split()).lower()
    if not wanted:
        raise InvalidInput("find must contain some text to look for.")
    hits = {i for i in span if wanted in lines[i].full.lower()}
    out = [f'find "{wanted}": {len(hits)} match{"" if len(hits) == 1 else "es"}']
    section = -1  # the nearest heading so far
    for i in range(span.stop):
        line, path, j = lines[i], [], lines[i].up
        while j >= 0 and i in hits:
            path.append(j)
            j = lines[j].up
        # Only a heading in the line's own containers says where it is (not one in a sidebar before it).
        if i in hits and section >= 0 and lines[section].up in (-1, *path) and section not in path:
            path.append(section)
        section = i if line.level else section
        if i not in hits:
            continue
        text = line.text
        if len(line.full) > RUN_CHARS and line.ref is None and not line.refs:
            at = max(line.full.lower().find(wanted) - 100, 0)
            text = "text: " + ("…" if at else "") + line.full[at : at + RUN_CHARS - 2] + "…"
        out.append(" > ".join([*(lines[j].label for j in sorted(path)), text]))
    return "\n".join(out)


def around(lines: tuple[Line, ...], head: str, full: int, viewport_height: float, max_chars: int) -> str:
    """`head`, the lines in and within one screen of the viewport, an outline and a note, in `max_chars`.

    Lines with an actionable element in view come first, then the others by distance from the view; each
    brings its containers' lines along, and ``- …`` marks what was left out between them. The outline takes
    at most 30% of the room, and never room the actionable elements in view need. `full` is the length of the
    whole rendering, for the note.
    """
    vh = viewport_height
    note = _NOTE.format(full)

    def far(line: Line) -> float:
        return 0.0 if line.seen else max(line.top - vh, -line.bottom, 0.0)

    def area(count: int) -> str:
        chosen: set[int] = set()
        for i in order[:count]:
            while i >= 0 and i not in chosen:
                chosen.add(i)
                i = lines[i].up
        shown, last = [], -1
        for i in sorted(chosen):
            shown += ["- …"] if i > last + 1 else []
            shown.append(show(lines[i]))
            last = i
        return "\n".join([*shown, "- …"] if last < len(lines) - 1 else shown)

    must = [i for i, line in enumerate(lines) if line.seen and line.refs]
    near = [i for i, line in enumerate(lines) if far(line) <= vh and not (line.seen and line.refs)]
    order = must + sorted(near, key=lambda i: far(lines[i]))
    room = max_chars - len(head) - len(note) - len(_OUTLINE) - 4
    outline = _outline(lines, vh, max(min(room * 3 // 10, room - len(area(len(must)))), 0))
    low, high = 0, len(order)  # the most lines of `order` whose area fits beside the outline
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if len(area(mid)) <= room - len(outline) else (low, mid - 1)
    return clip("\n".join([head, area(low), _OUTLINE, outline, note]), max_chars)


def _outline(lines: tuple[Line, ...], vh: float, budget: int) -> str:
    """Headings and landmarks with their position, the biggest and nearest first, listed in document order."""
    marks = [i for i, line in enumerate(lines) if line.level or line.landmark]
    entries = {i: f"- {lines[i].label} ({'in view' if lines[i].seen else f'{lines[i].top / vh:+.1f}'})" for i in marks}
    picked, used = [], 40
    for i in sorted(marks, key=lambda i: (lines[i].level, abs(lines[i].top) // vh, i)):
        if used + len(entries[i]) + 1 <= budget:
            picked.append(i)
            used += len(entries[i]) + 1
    more = [f"- ({len(marks) - len(picked)} more not listed)"] if len(picked) < len(marks) else []
    return "\n".join([*(entries[i] for i in sorted(picked)), *more])
