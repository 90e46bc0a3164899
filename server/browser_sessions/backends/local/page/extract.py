"""Reading a page: its content as markdown, and HTML tables as rows.

Each call makes one ``evaluate`` in the page. The page side walks the composed tree (open shadow roots and
their slots included), drops what a person cannot see, and hands back plain data. Markdown is then written
in Python by ``markdownify`` from a cleaned HTML fragment: the browser is the only place that knows what is
hidden, but markdown escaping, nested lists and code blocks are markdownify's well-tested business, not
something to re-derive in a string constant. Tables skip markdownify (its tables lose headers and leave
``|`` unescaped): the page side turns each into the same rows ``extract_table`` gives, and ``Table.markdown``
writes them, so a table reads the same in both.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from markdownify import markdownify
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page

from browser_sessions.errors import BrowserLost, ElementNotFound, NavigationFailed, TaskFailure

_ELEMENT_TIMEOUT_MS = 2_000

# Shared page-side helpers: visibility, composed-tree children, and a table's cell grid.
_COMMON_JS = r"""
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const hidden = e => {
  if (e.hidden || e.getAttribute('aria-hidden') === 'true') return true;
  const s = getComputedStyle(e);
  return s.display === 'none' || s.visibility === 'hidden' || s.visibility === 'collapse';
};
const kids = n => {
  if (n.shadowRoot) return [...n.shadowRoot.childNodes];
  const slotted = n.localName === 'slot' ? n.assignedNodes({flatten: true}) : [];
  return slotted.length ? slotted : [...n.childNodes];
};
// Data tables only: a <table> that holds other tables, or says it is presentation, is page layout.
const isTable = e => ['table', 'grid', 'treegrid'].includes(e.getAttribute('role')) || e.localName === 'table'
  && !['presentation', 'none'].includes(e.getAttribute('role')) && !e.querySelector('table');
const ROLE_CELL = '[role=cell],[role=gridcell],[role=columnheader],[role=rowheader]';
const rowsOf = t => t.localName === 'table' ? [...t.rows].map(r => ({r, cells: [...r.cells]}))
  : [...t.querySelectorAll('[role=row]')].filter(r => r.closest('table,[role=table],[role=grid],[role=treegrid]') === t)
    .map(r => ({r, cells: [...r.querySelectorAll(ROLE_CELL)].filter(c => c.closest('[role=row]') === r)}));
const labelOf = t => {
  const ids = (t.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
  const byIds = ids.map(id => t.getRootNode().getElementById?.(id)?.textContent).join(' ');
  return [norm(t.caption?.innerText), norm(t.getAttribute('aria-label')), norm(byIds), norm(t.getAttribute('summary'))];
};
const tableOf = (t, heading, cellText = c => norm(c.innerText)) => {
  // A grid of cells where colspan and rowspan repeat the spanning cell's text into every slot it covers.
  const grid = [], carry = [];
  for (const {r, cells} of rowsOf(t)) {
    if (!r.getClientRects().length) continue;
    const row = [];
    const fill = () => {
      while (carry[row.length]?.left > 0) { carry[row.length].left--; row.push(carry[row.length]); }
    };
    for (const c of cells) {
      fill();
      const cell = {text: cellText(c), th: c.localName === 'th' || /header/.test(c.getAttribute('role') || '')};
      const cols = Math.min(Math.max(+c.getAttribute('colspan') || 1, 1), 1000);
      const rows = Math.min(Math.max(+c.getAttribute('rowspan') || 1, 1), 1000);
      for (let k = 0; k < cols; k++) { carry[row.length] = {...cell, left: rows - 1}; row.push(cell); }
    }
    fill();
    grid.push({head: r.parentElement?.localName === 'thead', cells: row});
  }
  let headers = [], body = grid;
  const thead = grid.filter(g => g.head);
  const first = grid[0]?.cells || [];
  if (thead.length) { headers = thead[thead.length - 1].cells; body = grid.filter(g => !g.head); }
  else if (first.some(c => c.th) && first.every(c => c.th || !c.text)) { headers = first; body = grid.slice(1); }
  const width = body.reduce((w, g) => Math.max(w, g.cells.length), headers.length);
  const pad = cells => Array.from({length: width}, (_, i) => cells[i]?.text ?? '');
  const [caption, aria, labelled, summary] = labelOf(t);
  return {
    title: caption || aria || labelled || summary || heading || null,
    headers: pad(headers).map((h, i) => h || `column_${i + 1}`),
    rows: body.map(g => pad(g.cells)).filter(r => r.some(Boolean)),
  };
};
"""

_TABLE_JS = (
    "(query) => {"
    + _COMMON_JS
    + r"""
  const found = [];
  let heading = null, pick = null;
  const walk = n => {
    for (const e of kids(n)) {
      if (pick || e.nodeType !== 1 || hidden(e)) continue;
      if (/^h[1-6]$/.test(e.localName) || e.getAttribute('role') === 'heading') heading = norm(e.innerText) || heading;
      if (isTable(e) && e.getClientRects().length) {
        const names = [...labelOf(e), heading].filter(Boolean);
        found.push(names[0] || `untitled table ${found.length + 1}`);
        if (query === null || names.some(x => x.toLowerCase().includes(query))) { pick = tableOf(e, heading); return; }
      }
      walk(e);
    }
  };
  walk(document.body || document.documentElement);
  return {table: pick, titles: found};
}"""
)

_MARKDOWN_JS = (
    "([root, budget, marker]) => {"
    + _COMMON_JS
    + r"""
  const SKIP = new Set(['script', 'style', 'noscript', 'svg', 'math', 'template', 'head', 'iframe', 'object',
    'embed', 'canvas', 'input', 'textarea', 'select', 'datalist']);
  const KEEP = new Set(('h1 h2 h3 h4 h5 h6 p ul ol li pre code blockquote em strong b i s del br hr dl dt dd '
    + 'sub sup kbd figure figcaption a img').split(' '));
  const esc = s => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const linkOf = e => e.localName === 'a' && /^(https?|mailto|ftp):/i.test(String(e.href)) ? String(e.href) : null;
  // Table cells are written as one line of text, keeping their links as [text](url).
  const inline = n => {
    if (n.nodeType === 3) return n.data;
    if (n.nodeType !== 1 || SKIP.has(n.localName) || hidden(n)) return '';
    const text = kids(n).map(inline).join(''), href = linkOf(n);
    if (href && norm(text)) return `[${norm(text)}](${href})`;
    return /^inline/.test(getComputedStyle(n).display) ? text : ` ${text} `;
  };
  const out = [], tables = [];
  let left = budget;
  const visit = e => {
    if (left <= 0) return;
    if (e.nodeType === 3) { out.push(esc(e.data)); left -= e.data.length; return; }
    if (e.nodeType !== 1 || SKIP.has(e.localName) || hidden(e)) return;
    let tag = e.localName, attrs = '';
    if (e.getAttribute('role') === 'heading') tag = 'h' + Math.min(Math.max(+e.getAttribute('aria-level') || 2, 1), 6);
    if (isTable(e)) {
      const t = tableOf(e, null, c => norm(inline(c)));
      left -= t.rows.length * t.headers.length * 8;
      tables.push(t);
      out.push(`${t.title ? `<p>${esc(t.title)}</p>` : ''}<p>${marker}${tables.length - 1}x</p>`);
      return;
    }
    if (tag === 'img') {
      const src = String(e.currentSrc || e.src || ''), alt = norm(e.alt);
      // Inline data: and blob: sources are noise to a reader; their alt text is what counts.
      if (alt) out.push(/^https?:/i.test(src) ? `<img alt="${esc(alt)}" src="${esc(src)}">` : esc(alt));
      return;
    }
    if (tag === 'br' || tag === 'hr') { out.push(`<${tag}>`); return; }
    if (linkOf(e)) attrs = ` href="${esc(linkOf(e))}"`;
    // Unknown and custom elements keep only their block/inline nature, which decides line breaks.
    if (!KEEP.has(tag)) tag = /^(inline|contents|ruby)/.test(getComputedStyle(e).display) ? 'span' : 'div';
    out.push(`<${tag}${attrs}>`);
    kids(e).forEach(visit);
    out.push(`</${tag}>`);
  };
  const mains = root ? [] : [...document.querySelectorAll('main,[role=main]')].filter(m => m.checkVisibility());
  visit(root || (mains.length === 1 ? mains[0] : document.body || document.documentElement));
  return {title: norm(document.title), html: out.join(''), tables, truncated: left <= 0};
}"""
)


@dataclass(frozen=True)
class Table:
    """One table as a person reads it: a title, column headers, and rows of cell text of equal width."""

    title: str | None
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def records(self) -> list[dict[str, str]]:
        """Rows keyed by header; a repeated header gets a numeric suffix (``Price``, ``Price_2``)."""
        keys: list[str] = []
        for header in self.headers:
            key, n = header, 1
            while key in keys:
                n += 1
                key = f"{header}_{n}"
            keys.append(key)
        return [dict(zip(keys, row, strict=True)) for row in self.rows]

    def markdown(self) -> str:
        """A GitHub-style markdown table; ``|`` in cells is escaped. Empty string for a table with no columns."""
        if not self.headers:
            return ""

        def line(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        return "\n".join([line(self.headers), line(("---",) * len(self.headers)), *map(line, self.rows)])

    @classmethod
    def _from_page(cls, data: dict[str, Any]) -> Table:
        title = data.get("title")
        return cls(
            title=str(title) if title else None,
            headers=tuple(str(h) for h in data["headers"]),
            rows=tuple(tuple(str(c) for c in row) for row in data["rows"]),
        )


async def page_markdown(page: Page, element: Locator | None = None, *, max_chars: int = 200_000) -> str:
    """Readable markdown of the page's main content (or of one element).

    Whole page: ``# title`` then the single visible ``<main>``/``role=main`` when there is one, else the body.
    Headings, paragraphs, lists, links as ``[text](absolute url)``, images with alt text, and tables as
    markdown tables. Never included: script/style/noscript/svg, hidden elements (display:none,
    visibility:hidden, aria-hidden, ``hidden``), form control values. The result never exceeds `max_chars`;
    when cut, it ends with a note saying so. Raises ``ElementNotFound`` when `element` does not resolve
    within 2 s, ``NavigationFailed`` when the page changes under the read, ``BrowserLost`` when it closed.
    """
    marker = f"TBL{secrets.token_hex(6)}N"
    args = [None, max_chars * 2, marker]
    try:
        if element is None:
            data = await page.evaluate(f"(args) => ({_MARKDOWN_JS})(args)", args)
        else:
            data = await element.evaluate(
                f"(el, args) => ({_MARKDOWN_JS})([el, args[1], args[2]])", args, timeout=_ELEMENT_TIMEOUT_MS
            )
    except PlaywrightError as exc:
        raise _translated(page, exc, element) from exc
    tables = [Table._from_page(t) for t in data["tables"]]
    body = await anyio.to_thread.run_sync(_html_to_markdown, str(data["html"]), marker, tables)
    title = str(data["title"])
    if element is None and title and not body.startswith(f"# {title}\n"):
        body = f"# {title}\n\n{body}"
    return _clip(body, max_chars, cut=bool(data["truncated"]))


async def extract_table(page: Page, title: str | None = None) -> Table:
    """The first visible table whose title contains `title` (case-insensitive), or the first table at all.

    Tables are ``<table>`` or ``role=table|grid|treegrid`` elements, shadow roots included; a table's title
    candidates are its caption, aria-label(ledby), summary and nearest preceding heading, and ``Table.title``
    is the first of them present. Headers are the last ``<thead>`` row, else the first row when all its
    non-empty cells are ``th``, else ``column_1``..; spanned cells repeat their text. Raises
    ``ElementNotFound`` naming the tables that exist when none matches.
    """
    query = " ".join(title.split()).lower() if title is not None else None
    try:
        data = await page.evaluate(f"(query) => ({_TABLE_JS})(query)", query)
    except PlaywrightError as exc:
        raise _translated(page, exc, None) from exc
    if data["table"] is not None:
        return Table._from_page(data["table"])
    titles = [str(t) for t in data["titles"]]
    wanted = f"titled {title!r}" if title is not None else "at all"
    if not titles:
        raise ElementNotFound(f"The page has no visible table {wanted}; it may still be loading.")
    listed = ", ".join(repr(t) for t in titles[:8]) + (f" and {len(titles) - 8} more" if len(titles) > 8 else "")
    raise ElementNotFound(f"No visible table {wanted}. Tables on the page: {listed}. Use part of one of these titles.")


def _html_to_markdown(html: str, marker: str, tables: list[Table]) -> str:
    text = markdownify(html, heading_style="ATX", bullets="-", escape_asterisks=False, escape_underscores=False)
    text = re.sub(rf"{marker}(\d+)x", lambda m: tables[int(m.group(1))].markdown(), text)
    # Dropped elements leave runs of blank lines and trailing spaces behind.
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _clip(text: str, max_chars: int, *, cut: bool) -> str:
    if len(text) <= max_chars and not cut:
        return text
    note = f"\n\n[Truncated: the content runs past {max_chars:,} characters; read one element instead.]\n"
    keep = max(max_chars - len(note), 0)
    return (text[:keep].rstrip() + note)[:max_chars]


def _translated(page: Page, exc: PlaywrightError, element: Locator | None) -> TaskFailure:
    """The one translation of a Playwright failure while reading, chosen by what went away."""
    if page.is_closed():
        return BrowserLost("The page was closed while reading it.")
    if element is not None:
        return ElementNotFound(
            f"Could not read the element: it did not appear within {_ELEMENT_TIMEOUT_MS // 1000} s "
            f"or went away ({exc.message.splitlines()[0]}). Locate it again."
        )
    return NavigationFailed(
        f"The page changed while reading it ({exc.message.splitlines()[0]}). Wait for it to load, then retry."
    )
