"""The page as a person perceives it, compact, for a model that then acts by ref.

``take_snapshot`` makes one ``evaluate`` per frame (``snapshot_js``), splices each child frame's tree under
its ``<iframe>`` and renders lines such as ``- textbox "Full name" [e4] = "Ada"``, indented by meaningful
containers only (landmarks, lists, tables, forms, dialogs, iframes). Every actionable element has a ref:
``e12`` in the main frame, ``f2e7`` in the page's second child frame. A ref stays the same while its element
exists; ``resolve_ref`` turns it into a Playwright ``Locator`` or raises ``StaleRef``. Every string taken from
the page passes through the caller's ``redact`` before it is stored.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

import anyio
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Locator, Page

from browser_sessions.backends.local.page.snapshot_js import RESOLVE_JS, SNAPSHOT_JS
from browser_sessions.backends.local.page.snapshot_text import RUN_CHARS, Line, around, clip, found, show, subtree
from browser_sessions.errors import BrowserLost, InvalidInput, NavigationFailed

_FRAME_SECONDS = 10.0
_CHILD_SECONDS = 3.0  # a child frame that is slow to answer must not hold up the page's snapshot
_REF = re.compile(r"(?:f([1-9][0-9]*))?(e[1-9][0-9]*)?")
_LANDMARKS = {"navigation", "main", "banner", "contentinfo", "complementary", "region", "search", "dialog", "iframe"}
_SELECTED = {"tab", "option", "treeitem"}  # their ``checked`` reads "selected"


class StaleRef(InvalidInput):
    code = "STALE_REF"

    def __init__(self, ref: str) -> None:
        super().__init__(f"ref {ref} is gone from the page; call browser_snapshot for fresh refs")
        self.ref = ref


@dataclass(frozen=True)
class Element:
    """An actionable element. ``value`` is never set for password fields; for tabs and options ``checked``
    means selected."""

    ref: str
    role: str
    name: str
    value: str | None = None
    checked: bool | None = None
    disabled: bool = False
    expanded: bool | None = None
    in_viewport: bool = False


@dataclass(frozen=True)
class Snapshot:
    url: str
    title: str
    text: str  # the whole page, rendered, no budget applied
    elements: tuple[Element, ...]  # in document order
    _lines: tuple[Line, ...] = field(default=(), repr=False, compare=False)
    _viewport_height: float = field(default=720.0, repr=False, compare=False)

    def element(self, ref: str) -> Element | None:
        """The actionable element with that ref; None for other refs (headings and landmarks have refs too)."""
        return next((e for e in self.elements if e.ref == ref), None)

    def render(self, *, max_chars: int = 8000, ref: str | None = None, find: str | None = None) -> str:
        """The snapshot as text, never longer than `max_chars`.

        The whole page when it fits, else: the lines in and within one screen of the viewport (every actionable
        element in view first), an outline of headings and landmarks, and a note on how to get more. `ref`
        renders that element's subtree only (a heading's: its section); `find` the lines containing that text
        (case-insensitive), each with its path. ``InvalidInput`` for a malformed ref or an empty find,
        ``StaleRef`` for a ref not in this snapshot.
        """
        lines, span = self._lines, range(len(self._lines))
        if ref is not None:
            _parse(ref)
            if (within := subtree(lines, ref)) is None:
                raise StaleRef(ref)
            span = within
        if find is not None:
            return clip(found(lines, find, span), max_chars)
        if ref is not None:
            return clip("\n".join(show(lines[i], lines[span.start].depth) for i in span), max_chars)
        head = f"url: {self.url}\ntitle: {self.title}"
        whole = f"{head}\n{self.text}"
        return whole if len(whole) <= max_chars else around(lines, head, len(whole), self._viewport_height, max_chars)


_TIGHT = re.compile(r"\] ([).,;:!?])")  # "story 1 [e8] )." -> "story 1 [e8])."


def _in_prose(n: Any) -> bool:
    return n["k"] == "t" or (n["k"] == "e" and n.get("role") == "link" and not n.get("c") and bool(n.get("n")))


def _runs(nodes: list[Any]) -> list[list[Any]]:
    """Nodes grouped so that text and the plain links in its flow form one run (a paragraph)."""
    runs: list[list[Any]] = []
    for n in nodes:
        last = runs[-1][-1] if runs else None
        if last is not None and n.get("il") and _in_prose(n) and _in_prose(last) and {n["k"], last["k"]} == {"t", "e"}:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


def _label(role: str, name: str, ref: str | None) -> str:
    return role + (f" {_quote(name)}" if name else "") + (f" [{ref}]" if ref else "")


def _quote(text: str) -> str:
    return '"' + _cut(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cut(text: str) -> str:
    return text if len(text) <= RUN_CHARS else text[: RUN_CHARS - 1] + "…"


def _parse(ref: str) -> tuple[int, str | None]:
    """(frame number, 0 for the main frame; the element's ref in its frame, None for a frame's ref)."""
    match = _REF.fullmatch(ref)
    if match is None or not (match.group(1) or match.group(2)):
        raise InvalidInput(f"{ref!r} is not a ref: refs look like e12, f2e7 or f2, as browser_snapshot shows them.")
    return int(match.group(1) or 0), match.group(2)


class _Frames:
    """One page's frame numbers (f1, f2, ... in order of first sight, kept while the frame lives), each frame's
    highest ref so far (a new document in it numbers on from there), and each numbered frame's ``<iframe>``."""

    def __init__(self) -> None:
        self.number: dict[Frame, int] = {}
        self.floor: dict[Frame, int] = {}
        self.iframe: dict[int, tuple[Frame, str]] = {}
        self.last = 0  # numbers are never reused: an old frame's refs must not reach a new frame

    def sync(self, page: Page) -> list[Frame]:
        for frame in [f for f in {*self.number, *self.floor} if f.is_detached()]:
            self.iframe.pop(self.number.pop(frame, 0), None)
            self.floor.pop(frame, None)
        live = [f for f in page.frames if not f.is_detached()]
        for frame in live:
            if frame is not page.main_frame and frame not in self.number:
                self.last = self.number[frame] = self.last + 1
        return live


_PAGES: WeakKeyDictionary[Page, _Frames] = WeakKeyDictionary()


class _Where(NamedTuple):
    """The frame being emitted: its ref prefix, its offset from the main viewport, the band of it in view."""

    frame: Frame
    prefix: str
    dy: float
    band: tuple[float, float]


def _place(n: Any, at: _Where) -> tuple[float, float, bool]:
    top = n["y"] + at.dy
    return top, top + n["h"], bool(n["v"]) and top < at.band[1] and top + n["h"] > at.band[0]


class _Build:
    """Turns the frames' node trees (see ``snapshot_js``) into lines and elements, in document order."""

    def __init__(self, reads: dict[Frame, Any], kids: dict[tuple[Frame, object], Frame], frames: _Frames,
                 redact: Callable[[str], str]) -> None:  # fmt: skip
        self.reads, self.kids, self.frames, self.redact = reads, kids, frames, redact
        self.lines: list[Line] = []
        self.elements: list[Element] = []

    def add(self, depth: int, text: str, label: str, n: Any, at: _Where, up: int, **more: Any) -> int:
        self.lines.append(Line(depth, text, label, more.pop("full", text), *_place(n, at), up, **more))
        return len(self.lines) - 1

    def nodes(self, nodes: list[Any], depth: int, up: int, at: _Where) -> None:
        for run in _runs(nodes):
            if len(run) > 1:  # running text with links in it reads as one line: "... see story 1 [e8]. ..."
                self.prose(run, depth, up, at)
                continue
            n = run[0]
            kind, role = n["k"], n.get("role")
            if kind in ("t", "i"):
                full = self.redact(n["t"] if kind == "t" else n["n"])
                text = f"text: {_cut(full)}" if kind == "t" else f"img {_quote(full)}"
                self.add(depth, text, text, n, at, up, full=full)
            elif kind == "e":
                label, ref = self.element(n, at)
                line = self.add(depth, label + (":" if n.get("c") else ""), label, n, at, up, refs=(ref,), ref=ref)
                self.nodes(n.get("c", []), depth + 1, line, at)
            elif kind == "f":
                self.iframe(n, depth, up, at)
            elif role == "heading":
                name = self.redact(n["n"])
                label = f"heading {_quote(name)} [h{n['lvl']}, {at.prefix}{n['r']}]"
                inline, refs = self.inline(n["c"], at, name)
                text = f"{label}: {inline}" if inline else label
                self.add(depth, text, label, n, at, up, refs=refs, ref=at.prefix + n["r"], level=n["lvl"])
            else:
                own = at.prefix + n["r"] if "r" in n else None
                label = _label(role, self.redact(n["n"]), own) + (" modal" if n.get("modal") else "")
                line = self.add(depth, label + ":", label, n, at, up, ref=own, landmark=role in _LANDMARKS)
                if role != "table":
                    self.nodes(n["c"], depth + 1, line, at)
                for row in n["c"] if role == "table" else []:
                    cells = [self.inline(cell["c"], at) for cell in row["c"]]
                    text = "row: " + " | ".join(c[0] for c in cells)
                    self.add(depth + 1, text, text, row, at, line, refs=tuple(r for c in cells for r in c[1]))

    def prose(self, run: list[Any], depth: int, up: int, at: _Where) -> None:
        parts, refs, full = [], [], []
        for n in run:
            if n["k"] == "t":
                text = self.redact(n["t"])
                parts.append(_cut(text))
                full.append(text)
            else:
                name = self.redact(n["n"])
                label, ref = self.element(n, at, hide_name=True)
                parts.append(f"{_cut(name)} [{ref}]" if name else label)
                full.append(name)
                refs.append(ref)
        text = "text: " + _TIGHT.sub(r"]\1", " ".join(parts))
        self.add(depth, text, text, run[0], at, up, refs=tuple(refs), full=" ".join(full))

    def inline(self, nodes: list[Any], at: _Where, same: str = "") -> tuple[str, tuple[str, ...]]:
        """Nodes as one line; an element named `same` (its heading's name) is shown without its name."""
        parts, refs = [], []
        for n in nodes:
            if n["k"] == "e":
                label, ref = self.element(n, at, hide_name=self.redact(n["n"]) == same)
                parts.append(label)
                refs.append(ref)
            elif n["k"] in ("t", "i"):
                text = self.redact(n["t"] if n["k"] == "t" else n["n"])
                parts.append(_cut(text) if n["k"] == "t" else f"img {_quote(text)}")
            if n.get("c"):
                text, more = self.inline(n["c"], at)
                parts.append(text)
                refs.extend(more)
        return " ".join(p for p in parts if p), tuple(refs)

    def element(self, n: Any, at: _Where, *, hide_name: bool = False) -> tuple[str, str]:
        ref, role, name = at.prefix + n["r"], n["role"], self.redact(n["n"])
        name = name[:100] if n.get("ni") else name  # taken from content that is shown as children anyway
        value = self.redact(n["val"]) if "val" in n else None
        checked = n["chk"] if isinstance(n.get("chk"), bool) else None
        el = Element(ref, role, name, value, checked, bool(n.get("dis")), n.get("exp"), _place(n, at)[2])
        self.elements.append(el)
        shown = name and not n.get("ni") and not hide_name
        parts = [_label(role, name if shown else "", ref), f"= {_quote(value)}" if value else ""]
        parts += ["selected" if role in _SELECTED else "checked"] if checked else []
        parts += ["disabled"] if el.disabled else []
        parts += [{True: "expanded", False: "collapsed"}[el.expanded]] if el.expanded is not None else []
        return " ".join(p for p in parts if p), ref

    def iframe(self, n: Any, depth: int, up: int, at: _Where) -> None:
        child = self.kids.get((at.frame, n["fi"])) or self.kids.get((at.frame, n["r"]))
        number = self.frames.number.get(child) if child is not None else None
        label = _label("iframe", self.redact(n["n"]), f"f{number}" if number else None)
        if child is None or number is None:
            self.add(depth, label, label, n, at, up)
            return
        self.frames.iframe[number] = (at.frame, n["r"])
        line = self.add(depth, label + ":", label, n, at, up, ref=f"f{number}", landmark=True)
        if child in self.reads:
            top, bottom, _ = _place(n, at)
            where = _Where(child, f"f{number}", top, (max(at.band[0], top), min(at.band[1], bottom)))
            self.nodes(self.reads[child]["nodes"], depth + 1, line, where)


async def take_snapshot(page: Page, *, redact: Callable[[str], str] = lambda s: s) -> Snapshot:
    """Snapshot the page: all frames read concurrently (one ``evaluate`` each, 10 s at most), child frames
    spliced under their ``<iframe>``; a child frame that does not answer shows as an empty iframe. Raises
    ``BrowserLost`` when the page is closed, ``NavigationFailed`` when its main frame cannot be read."""
    for closed in [p for p in _PAGES if p.is_closed()]:  # their frames refer back to them: never collected
        del _PAGES[closed]
    frames = _PAGES.setdefault(page, _Frames())
    reads: dict[Frame, Any] = {}
    errors: dict[Frame, PlaywrightError] = {}

    async def read(frame: Frame) -> None:
        with anyio.move_on_after(_FRAME_SECONDS if frame is page.main_frame else _CHILD_SECONDS):
            for _ in range(2):  # a navigation landing mid-read destroys the context; the new one answers
                try:
                    data = json.loads(await frame.evaluate(SNAPSHOT_JS, frames.floor.get(frame, 0)))
                except PlaywrightError as exc:
                    errors[frame] = exc
                    continue
                frames.floor[frame] = max(frames.floor.get(frame, 0), int(data["next"]) - 1)
                reads[frame] = data
                return

    async with anyio.create_task_group() as group:
        for frame in frames.sync(page):
            group.start_soon(read, frame)
    main = page.main_frame
    if main not in reads:
        if page.is_closed():
            raise BrowserLost("The page was closed while taking its snapshot.") from errors.get(main)
        why = errors[main].message.splitlines()[0] if main in errors else f"no answer within {_FRAME_SECONDS:g} s"
        raise NavigationFailed(f"Could not read the page ({why}). Wait for it to load, then snapshot again.")
    kids: dict[tuple[Frame, object], Frame] = {}
    for frame, data in reads.items():
        if (parent := frame.parent_frame) is not None and data["idx"] >= 0:
            kids[(parent, data["idx"])] = frame
        elif parent is not None:  # not in window.frames (an iframe in a shadow root): ask for its element
            with anyio.move_on_after(_CHILD_SECONDS), contextlib.suppress(PlaywrightError):
                kids[(parent, await (await frame.frame_element()).get_attribute("data-bs-ref"))] = frame
    top = reads[main]
    build = _Build(reads, kids, frames, redact)
    build.nodes(top["nodes"], 0, -1, _Where(main, "", 0.0, (0.0, float(top["vh"]))))
    text = "\n".join(show(line, 0) for line in build.lines)
    title = redact(" ".join(str(top["title"]).split()))
    return Snapshot(redact(page.url), title, text, tuple(build.elements), tuple(build.lines), float(top["vh"]) or 720.0)


async def resolve_ref(page: Page, ref: str) -> Locator:
    """A locator for the element with that ref (a frame's ref: its ``<iframe>``). Raises ``StaleRef`` ("ref e12
    is gone from the page; call browser_snapshot for fresh refs") if it no longer exists, ``InvalidInput`` for
    a malformed ref, ``BrowserLost`` when the page is closed."""
    number, local = _parse(ref)
    if page.is_closed():
        raise BrowserLost("The page was closed.")
    frames = _PAGES.get(page) or _Frames()
    frame = next((f for f, n in frames.number.items() if n == number), None) if number else page.main_frame
    if local is None:
        frame, local = frames.iframe.get(number, (None, ""))
    if frame is None or frame.is_detached():
        raise StaleRef(ref)
    locator = frame.locator(f'[data-bs-ref="{local}"]')
    try:
        with anyio.fail_after(_FRAME_SECONDS):
            alive = await locator.evaluate_all(RESOLVE_JS, local)
    except TimeoutError as exc:
        raise NavigationFailed(f"The page did not answer within {_FRAME_SECONDS:g} s; try again.") from exc
    except PlaywrightError as exc:
        if page.is_closed():
            raise BrowserLost("The page was closed.") from exc
        raise StaleRef(ref) from exc
    if not alive:
        raise StaleRef(ref)
    return locator
