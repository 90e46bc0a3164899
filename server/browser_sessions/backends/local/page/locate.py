"""Finding elements the way a person names them: "the Add to cart button", "the Username field".

``locate`` turns a visible name plus what the caller means to do with it (an ``Intent``) into exactly one
visible Playwright ``Locator``. It tries strategies from the most to the least specific, all exact matches
before any substring match, and the first strategy that finds something wins; within one strategy the first
match in document order wins (plain-text matches prefer the first that looks clickable). Matching ignores
case and surrounding whitespace, reaches into open shadow roots (Playwright's locators pierce them) and,
when the main frame has no match, into same-origin iframes.

Every wait is bounded by ``timeout``. Expected failures raise ``ElementNotFound`` with the names a caller
could use instead; a closed page raises ``BrowserLost``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import anyio
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Locator, Page

from browser_sessions.errors import BrowserLost, ElementNotFound, InvalidInput

Intent = Literal["click", "fill", "select", "check"]

_Role = Literal[
    "button", "link", "menuitem", "tab", "checkbox", "radio", "option", "switch",
    "textbox", "searchbox", "combobox", "spinbutton", "listbox",
]  # fmt: skip


@dataclass(frozen=True)
class _Wanted:
    """A name as asked for, matched either exactly or as a substring; both ignore case."""

    text: str
    exact: bool

    @property
    def matcher(self) -> str | re.Pattern[str]:
        # Playwright matches a plain string as a case-insensitive substring; exactness needs a pattern,
        # escaped for both Python and JavaScript because Playwright ships its source to the page.
        if not self.exact:
            return self.text
        words = (re.sub(r"[\\^$.*+?()\[\]{}|/]", lambda m: "\\" + m.group(0), w) for w in self.text.split())
        return re.compile(r"^\s*" + r"\s+".join(words) + r"\s*$", re.IGNORECASE)

    @property
    def css(self) -> str:
        """The text as a CSS string, for attribute selectors (which compare whole values)."""
        return '"' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# A strategy builds, for one frame, the locator of every element it would accept for the wanted name.
_Strategy = Callable[[Frame, _Wanted], Locator]

_POLL_SECONDS = 0.1
# A search round started just before the deadline still gets to finish (Playwright's first role query on
# a page of tens of thousands of elements takes seconds); a hung renderer does not.
_ROUND_GRACE_SECONDS = 5.0
_CANDIDATE_SECONDS = 2.0

_CLICK_ROLES: tuple[_Role, ...] = ("button", "link", "menuitem", "tab", "checkbox", "radio", "option")
_FILL_ROLES: tuple[_Role, ...] = ("textbox", "searchbox", "combobox", "spinbutton")
_CHECK_ROLES: tuple[_Role, ...] = ("checkbox", "radio", "switch")

# What `fill` can type into; <select> is a combobox too but only `select` can change it.
_FILLABLE = (
    "input:not([type=checkbox]):not([type=radio]):not([type=submit]):not([type=button]):not([type=reset])"
    ":not([type=hidden]):not([type=image]):not([type=file]):not([type=range]):not([type=color]),"
    " textarea, [contenteditable]:not([contenteditable=false]), [role=textbox], [role=searchbox],"
    " [role=combobox]:not(select), [role=spinbutton]"
)
_SELECTABLE = "select, [role=listbox]"
_CHECKABLE = "input[type=checkbox], input[type=radio], [role=checkbox], [role=radio], [role=switch]"

_WHAT: dict[Intent, str] = {
    "click": "button, link or other clickable element",
    "fill": "text field",
    "select": "dropdown or list box",
    "check": "checkbox, radio button or switch",
}

# Text matches can land on plain words; prefer the one that looks clickable (a control, a handler, a
# pointer cursor) so "click Details" picks the expander, not the heading that also says "Details".
_PREFER_CLICKABLE_JS = """els => {
  const control = 'a[href],button,summary,label,[onclick],[role=button],[role=link],[role=menuitem],[role=tab]';
  const i = els.findIndex(e => e.closest(control) || getComputedStyle(e).cursor === 'pointer');
  return i < 0 ? 0 : i;
}"""

# What each intent offers when nothing matched; click also offers pointer-cursor elements (see the JS).
_CANDIDATE_CSS: dict[Intent, str] = {
    "click": "a[href], button, summary, input[type=button], input[type=submit], input[type=reset],"
    " [role=button], [role=link], [role=menuitem], [role=tab], [role=checkbox], [role=radio], [onclick]",
    "fill": _FILLABLE,
    "select": _SELECTABLE,
    "check": _CHECKABLE,
}

_CANDIDATES_JS = """([sel, pointers, limit]) => {
  const norm = s => (s || '').replace(/\\s+/g, ' ').trim().slice(0, 80);
  const shown = e => e.getClientRects().length > 0 && e.checkVisibility({visibilityProperty: true});
  const byIds = e => (e.getAttribute('aria-labelledby') || '').split(/\\s+/)
    .map(id => e.getRootNode().getElementById?.(id)?.innerText).filter(Boolean).join(' ');
  const name = e => [e.getAttribute('aria-label'), byIds(e), ...[...(e.labels || [])].map(l => l.innerText),
    e.getAttribute('placeholder'), ['input', 'textarea', 'select'].includes(e.localName) ? '' : e.innerText,
    e.type === 'submit' || e.type === 'button' || e.type === 'reset' ? e.value : '',
    e.getAttribute('title'), e.querySelector?.('img[alt]')?.alt, e.getAttribute('name'), e.id]
    .map(norm).find(Boolean);
  const pointer = e => getComputedStyle(e).cursor === 'pointer'
    && !(e.parentElement && getComputedStyle(e.parentElement).cursor === 'pointer');
  const out = [];
  const walk = root => {
    const it = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT);
    for (let e = it.nextNode(); e && out.length < limit; e = it.nextNode()) {
      if ((e.matches(sel) || (pointers && pointer(e))) && shown(e)) {
        const n = name(e);
        if (n && !out.includes(n)) out.push(n);
      }
      if (e.shadowRoot) walk(e.shadowRoot);
    }
  };
  walk(document);
  return out;
}"""


def _roles(roles: Sequence[_Role]) -> _Strategy:
    def strategy(frame: Frame, wanted: _Wanted) -> Locator:
        found = frame.get_by_role(roles[0], name=wanted.matcher)
        for role in roles[1:]:
            found = found.or_(frame.get_by_role(role, name=wanted.matcher))
        return found

    return strategy


def _only(css: str, strategy: _Strategy) -> _Strategy:
    return lambda frame, wanted: strategy(frame, wanted).and_(frame.locator(css))


def _label(frame: Frame, wanted: _Wanted) -> Locator:
    return frame.get_by_label(wanted.matcher)


def _placeholder(frame: Frame, wanted: _Wanted) -> Locator:
    return frame.get_by_placeholder(wanted.matcher)


def _text(frame: Frame, wanted: _Wanted) -> Locator:
    return frame.get_by_text(wanted.matcher)


def _described(frame: Frame, wanted: _Wanted) -> Locator:
    by_aria = frame.locator(f"[aria-label={wanted.css} i]")
    return frame.get_by_title(wanted.matcher).or_(frame.get_by_alt_text(wanted.matcher)).or_(by_aria)


def _attribute(frame: Frame, wanted: _Wanted) -> Locator:
    return frame.locator(f"[name={wanted.css} i], [id={wanted.css} i]")


# (exact strategies, substring strategies) per intent; every exact one is tried before any substring one.
_STRATEGIES: dict[Intent, tuple[tuple[_Strategy, ...], tuple[_Strategy, ...]]] = {
    "click": (
        (_roles(_CLICK_ROLES), _text, _described),
        (_roles(_CLICK_ROLES), _text),
    ),
    "fill": (
        tuple(_only(_FILLABLE, s) for s in (_label, _placeholder, _roles(_FILL_ROLES), _attribute)),
        tuple(_only(_FILLABLE, s) for s in (_label, _placeholder)),
    ),
    "select": (
        tuple(_only(_SELECTABLE, s) for s in (_roles(("combobox", "listbox")), _label)),
        tuple(_only(_SELECTABLE, s) for s in (_roles(("combobox", "listbox")), _label)),
    ),
    "check": (
        (_roles(_CHECK_ROLES), _only(_CHECKABLE, _label)),
        (_roles(_CHECK_ROLES), _only(_CHECKABLE, _label)),
    ),
}


# The timeout is part of the contract, not a cancel scope: running out of it is a domain answer
# (ElementNotFound with the names on offer), which a caller's fail_after could not give.
async def locate(page: Page, name: str, intent: Intent, *, timeout: float = 5.0) -> Locator:  # noqa: ASYNC109
    """Return exactly one visible element that a person would call `name`, suited to `intent`.

    Waits up to `timeout` seconds for such an element to appear, polling every 0.1 s. Raises
    ``ElementNotFound`` naming `name` and listing up to eight names the page does offer for this intent,
    ``InvalidInput`` for a blank name, ``BrowserLost`` when the page closes meanwhile.
    """
    wanted = " ".join(name.split())
    if not wanted:
        raise InvalidInput(f"Say which {_WHAT[intent]} to use: the name was empty.")
    exact_strategies, loose_strategies = _STRATEGIES[intent]
    tiers = [(s, _Wanted(wanted, exact=True)) for s in exact_strategies]
    tiers += [(s, _Wanted(wanted, exact=False)) for s in loose_strategies]

    async def search(frame: Frame) -> Locator | None:
        for strategy, name_as in tiers:
            found = strategy(frame, name_as).filter(visible=True)
            if await found.count():
                pick = await found.evaluate_all(_PREFER_CLICKABLE_JS) if strategy is _text else 0
                return found.nth(int(pick))
        return None

    found, error = await _poll(page, search, timeout)
    if found is not None:
        return found
    names = await candidate_names(page, intent)
    offer = (
        f" Names the page does offer: {', '.join(_quote(n) for n in names)}. Use one of these."
        if names
        else f" The page shows no {_WHAT[intent]} at all: it may still be loading, or the element may sit"
        " behind a menu or tab that must be opened first."
    )
    raise ElementNotFound(
        f"No visible {_WHAT[intent]} named {_quote(wanted)} appeared within {timeout:g} s.{offer}"
    ) from error


async def wait_for_text(page: Page, text: str, *, timeout: float) -> Locator:  # noqa: ASYNC109
    """Return the first visible element whose text contains `text` (case-insensitive, whitespace-normalised).

    Waits up to `timeout` seconds; raises ``ElementNotFound`` quoting `text` and the start of what the page
    does show, ``InvalidInput`` for blank text, ``BrowserLost`` when the page closes meanwhile.
    """
    wanted = " ".join(text.split())
    if not wanted:
        raise InvalidInput("Say which text to wait for: it was empty.")

    async def search(frame: Frame) -> Locator | None:
        found = frame.get_by_text(wanted).filter(visible=True)
        return found.first if await found.count() else None

    found, error = await _poll(page, search, timeout)
    if found is not None:
        return found
    shown = ""
    with anyio.move_on_after(_CANDIDATE_SECONDS):
        try:
            body = await page.evaluate("() => document.body ? document.body.innerText : ''")
            shown = " ".join(str(body).split())[:200]
        except PlaywrightError:
            shown = ""
    seen = f" The page currently shows: {shown!r}." if shown else " The page shows no text yet."
    raise ElementNotFound(f"The text {_quote(wanted)} did not appear within {timeout:g} s.{seen}") from error


async def candidate_names(page: Page, intent: Intent, limit: int = 8) -> list[str]:
    """Up to `limit` distinct names of visible elements suited to `intent`, main frame first.

    Meant for error messages, so it never raises on a misbehaving page: it gives what it could gather
    within two seconds, possibly nothing.
    """
    names: list[str] = []
    with anyio.move_on_after(_CANDIDATE_SECONDS):
        for frame in _frames(page):
            if len(names) >= limit:
                break
            try:
                found = await frame.evaluate(_CANDIDATES_JS, [_CANDIDATE_CSS[intent], intent == "click", limit])
            except PlaywrightError:
                continue
            names.extend(str(n) for n in found if str(n) not in names)
    return names[:limit]


async def _poll(
    page: Page, search: Callable[[Frame], Awaitable[Locator | None]], seconds: float
) -> tuple[Locator | None, PlaywrightError | None]:
    """Run `search` over the frames until it finds something or `seconds` pass.

    Playwright errors inside a round (a frame navigating or detaching under us) only end that round: the
    next poll sees the new document. The last such error is returned so the caller can chain it.
    """
    deadline = anyio.current_time() + max(seconds, 0.0)
    error: PlaywrightError | None = None
    with anyio.move_on_after(max(seconds, 0.0) + _ROUND_GRACE_SECONDS):
        while True:
            for frame in _frames(page):
                try:
                    found = await search(frame)
                except PlaywrightError as exc:
                    if page.is_closed():
                        raise BrowserLost("The page was closed while looking for an element on it.") from exc
                    error = exc
                    continue
                if found is not None:
                    return found, None
            if anyio.current_time() >= deadline:
                break
            await anyio.sleep(min(_POLL_SECONDS, max(deadline - anyio.current_time(), 0.0)))
    return None, error


def _frames(page: Page) -> list[Frame]:
    """The main frame, then attached child frames that share its origin (srcdoc and blank ones inherit it)."""
    main = page.main_frame
    origin = _origin(main.url)
    children = [
        f
        for f in page.frames
        if f is not main
        and not f.is_detached()
        and (f.url in ("about:blank", "about:srcdoc", "") or _origin(f.url) == origin)
    ]
    return [main, *children]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'
