"""Step tools of browser-sessions against Playwright MCP (the anchor), both over MCP stdio, on the same pages.

Run: ``.venv/bin/python bench/bench_steps.py [--runs 20] [--episodes 5]``

Both servers run as subprocesses and are driven with the official MCP client (``Client`` over stdio):
  ours    ``python -m browser_sessions serve`` (stdio): ``start_session``, ``browser_act``, ``browser_snapshot``
  anchor  ``@playwright/mcp`` from npm, installed by this script into bench/.node/, on the same Debian Chromium
          (``--executable-path``, ``--headless --isolated --no-sandbox``, our viewport size), otherwise defaults.
Pages are served by this script on 127.0.0.1. Three parts:
  1. step latency (p50/p95 ms, series interleaved round by round so both sides share the machine's load):
     a click plus the page state it returns, on a counter page (a small DOM change) and on a link to another
     small page (a navigation); a snapshot alone. Playwright MCP writes the state after an action to a file
     and returns a link: its click is timed with reading that file, and also with a browser_snapshot call.
  2. snapshot size (UTF-8 bytes of the reply text the caller receives) on a shop table, a form, a news
     article with ~50 links, and a huge page (the Python docs' library/stdtypes.html); for ours also whether
     the snapshot kept within maxChars, and how many of the interactive elements in the viewport (found by a
     JS query in a third, plain Playwright browser with our viewport) appear next to a ref.
  3. MiniWoB++ tasks (the ``miniwob`` package's HTML) with one fixed script per task reading the instruction
     and the reward from the server's own snapshots; the same seeds for both sides.
Prints one table; writes bench/results/steps.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from playwright.async_api import async_playwright

from browser_sessions import __version__
from browser_sessions.backends.local.browser import launch
from browser_sessions.settings import Settings
from timing import Series

BENCH = Path(__file__).parent
RESULTS = BENCH / "results" / "steps.json"
NODE_DIR = BENCH / ".node"  # npm packages (and a pip fallback) this script installs itself; git-ignored
PW_MCP_CLI = NODE_DIR / "node_modules" / "@playwright" / "mcp" / "cli.js"
PY_FALLBACK = NODE_DIR / "python"
CHROMIUM = Path(os.environ.get("BROWSER_SESSIONS_BROWSER_PATH") or "/usr/bin/chromium")
STDTYPES_GLOB = "/usr/share/doc/python3*/html/library/stdtypes.html"
STDTYPES_HINT = "apt-get install -y python3.11-doc  (Debian; or the python3.X-doc matching your python3)"
WARMUP = 2
CALL_SECONDS = 120  # bound on any single tool call
MAX_CHARS = 8000  # what ours is asked for in browser_snapshot
OURS_REF = re.compile(r"\[(?:[^\]]*?,\s*)?((?:f\d+)?e\d+)\]")  # [e12], [f1e3], [h1, e7]
THEIRS_REF = re.compile(r"\[ref=((?:f\d+)?e\d+)\]")
ANCHOR = "playwright-mcp"
# The anchor waits 500 ms after each action by default (--timeout-settle) for work the action set off;
# a second instance without that wait gives the like-for-like click figure.
NO_SETTLE = "pw-mcp settle=0"


# ----- pages -----


def _page(title: str, body: str) -> str:
    nav = "".join(f'<a href="/{p}">{p.title()}</a> ' for p in ("shop", "form", "news"))
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head>"
        f"<body><header><nav>{nav}</nav></header><main>{body}</main>"
        f"<footer><a href='/about'>About us</a> <a href='/help'>Help</a></footer></body></html>"
    )


def counter_page() -> str:
    items = "".join(f"<li>Item {i}: a line of text that does not change</li>" for i in range(1, 13))
    script = "document.getElementById('n').textContent = +document.getElementById('n').textContent + 1"
    return _page(
        "Counter",
        f"<h1>Counter</h1><p>Clicks so far: <output id=n>0</output></p>"
        f'<button onclick="{script}">Add one</button><ul>{items}</ul>',
    )


def nav_page(me: str, other: str) -> str:
    return _page(
        f"Page {me}",
        f"<h1>Page {me}</h1><p>A small page. Its only job is to link to page {other}.</p>"
        f'<p><a href="/nav/{other.lower()}">Go to page {other}</a></p>',
    )


def shop_page() -> str:
    rng = random.Random(1)
    products = ["Kettle", "Toaster", "Blender", "Mixer", "Juicer", "Grinder", "Scale", "Oven", "Fryer", "Grill"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{rng.randint(10, 200)}.{rng.randint(0, 99):02d} EUR</td>"
        f"<td>{rng.randint(0, 40)} in stock</td><td><button>Order now</button></td></tr>"
        for name in products
    )
    return _page(
        "Shop",
        "<h1>Kitchen shop</h1><form role=search><label>Search products <input type=search name=q></label>"
        "<button>Search</button></form>"
        f"<table><thead><tr><th>Product</th><th>Price</th><th>Stock</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table><p><a href='/cart'>View cart</a></p>",
    )


def form_page() -> str:
    countries = "".join(f"<option>{c}</option>" for c in ("France", "Germany", "Italy", "Spain", "Portugal"))
    return _page(
        "Form",
        "<h1>Create an account</h1><form>"
        "<p><label>Full name <input name=name required></label></p>"
        "<p><label>Email <input type=email name=email></label></p>"
        "<p><label>Password <input type=password name=pw></label></p>"
        "<p><label>Phone <input type=tel name=phone placeholder='+33 1 23 45 67 89'></label></p>"
        f"<p><label>Country <select name=country>{countries}</select></label></p>"
        "<p><label>Birth date <input type=date name=born></label></p>"
        "<fieldset><legend>Shipping</legend><label><input type=radio name=ship checked> Standard</label>"
        "<label><input type=radio name=ship> Express</label></fieldset>"
        "<p><label>Notes <textarea name=notes></textarea></label></p>"
        "<p><label><input type=checkbox name=news> Send me the newsletter</label></p>"
        "<p><label><input type=checkbox name=terms> I accept the terms</label></p>"
        "<p><button type=submit>Create account</button> <button type=reset>Clear</button></p></form>",
    )


def news_page() -> str:
    rng = random.Random(2)
    words = ["city", "council", "river", "budget", "school", "market", "train", "museum", "harbour", "festival"]
    paragraphs = []
    link_no = 0
    for _ in range(8):
        parts = []
        for _ in range(5):
            sentence = " ".join(rng.choice(words) for _ in range(14))
            if link_no < 30:
                link_no += 1
                sentence += f' (see <a href="/story/{link_no}">story {link_no} on the {rng.choice(words)}</a>)'
            parts.append(sentence.capitalize() + ".")
        paragraphs.append("<p>" + " ".join(parts) + "</p>")
    related = "".join(
        f'<li><a href="/related/{i}">Related: the {words[i % len(words)]} report, part {i}</a></li>'
        for i in range(1, 18)
    )
    return _page(
        "News",
        "<article><h1>The council votes on the river budget</h1><p>By A. Reporter, 3 March</p>"
        + "".join(paragraphs)
        + f"</article><aside><h2>Related</h2><ul>{related}</ul></aside>",
    )


def synthetic_huge_page() -> str:
    """A stand-in for stdtypes.html when that is missing: text, code and links whose Playwright snapshot is
    about as long as the real page's (~620k characters)."""
    rng = random.Random(3)
    words = ["value", "object", "method", "string", "sequence", "mapping", "return", "type", "integer", "list"]
    sections = []
    for n in range(1, 271):
        text = " ".join(rng.choice(words) for _ in range(90))
        links = " ".join(
            f'<a href="#s{rng.randint(1, 270)}">{rng.choice(words)}.{rng.choice(words)}()</a>' for _ in range(5)
        )
        sections.append(
            f"<section id=s{n}><h2>{n}. The {rng.choice(words)} {rng.choice(words)} type</h2>"
            f"<p>{text}</p><p>{text[::-1]}</p><pre>&gt;&gt;&gt; {rng.choice(words)}({n})\n{n * 7}</pre>"
            f"<p>See also: {links}</p><table><tr><td>{text[:80]}</td><td>{text[80:160]}</td></tr></table></section>"
        )
    return _page("Built-in Types (synthetic)", "".join(sections))


SEED_SCRIPT = (
    '<script src="../core/core.js"></script>\n'
    "<script>(function () { var seed = core.QueryString.seed; if (seed === undefined) return;"
    " var real = core.startEpisodeReal;"  # seed right before each episode, as miniwob's own env does
    " core.startEpisodeReal = function () { Math.seedrandom(seed); real(); }; })();</script>"
)


@dataclass(frozen=True)
class Site:
    base: str
    huge_url: str
    huge_source: str


def _handler(routes: dict[str, str], mounts: dict[str, Path]) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/favicon.ico":
                self.send_response(204)
                self.end_headers()
                return
            if path in routes:
                self._send(routes[path].encode(), "text/html; charset=utf-8")
                return
            for prefix, folder in mounts.items():
                if path.startswith(prefix):
                    file = (folder / path[len(prefix) :]).resolve()
                    if folder.resolve() not in file.parents or not file.is_file():
                        break
                    body = file.read_bytes()
                    if prefix == "/miniwob/" and file.suffix == ".html":
                        body = body.replace(b'<script src="../core/core.js"></script>', SEED_SCRIPT.encode())
                    self._send(body, self.guess_type(str(file)))
                    return
            self.send_error(404)

    return Handler


@contextlib.contextmanager
def serve_pages(miniwob_html: Path, stdtypes: Path | None) -> Iterator[Site]:
    routes = {
        "/counter": counter_page(),
        "/nav/a": nav_page("A", "B"),
        "/nav/b": nav_page("B", "A"),
        "/shop": shop_page(),
        "/form": form_page(),
        "/news": news_page(),
    }
    mounts = {"/miniwob/": miniwob_html}
    if stdtypes is not None:
        mounts["/pydoc/"] = stdtypes.parent.parent
        huge, source = "/pydoc/library/stdtypes.html", str(stdtypes)
    else:
        routes["/huge"] = synthetic_huge_page()
        huge, source = "/huge", "synthetic"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, mounts))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield Site(base, base + huge, source)
    finally:
        server.shutdown()
        server.server_close()


# ----- installs this bench manages itself -----


def ensure_playwright_mcp() -> str:
    if not PW_MCP_CLI.exists():
        print(f"installing @playwright/mcp into {NODE_DIR} (npm) ...", flush=True)
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        # playwright-core alone downloads no browser; we point it at the system Chromium.
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_DIR), "--no-fund", "--no-audit", "@playwright/mcp"], check=True
        )
    package = json.loads((PW_MCP_CLI.parent / "package.json").read_text())
    return str(package["version"])


def ensure_miniwob() -> Path:
    """The ``html`` folder of the ``miniwob`` package: from this venv, else bench/.node/python (installed there)."""
    spec = importlib.util.find_spec("miniwob")  # locate without importing (its import pulls in gymnasium)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "html"
    html_dir = PY_FALLBACK / "miniwob" / "html"
    if not html_dir.is_dir():
        print(f"installing miniwob (HTML tasks only, no dependencies) into {PY_FALLBACK} (pip) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(PY_FALLBACK), "miniwob"],
            check=True,
        )
    return html_dir


def find_stdtypes() -> Path | None:
    found = sorted(Path("/").glob(STDTYPES_GLOB.lstrip("/")))
    return found[-1] if found else None


# ----- the two servers behind one interface -----


class StepError(RuntimeError):
    """A tool call answered with an error."""


class BrokenBenchError(RuntimeError):
    """A step did not do what the bench needs (no ref where one must be, a session that would not start)."""


@dataclass(frozen=True)
class Reply:
    state: str  # the page state the caller gets (for the anchor after an action: the linked file's content)
    reply_bytes: int  # UTF-8 bytes of the reply's text parts
    url: str | None


class Side(Protocol):
    name: str
    ref_re: re.Pattern[str]

    async def navigate(self, url: str) -> Reply: ...
    async def snapshot(self) -> Reply: ...
    async def click(self, ref: str, element: str) -> Reply: ...
    async def type(self, ref: str, text: str, element: str) -> Reply: ...


def _text(result: Any) -> str:
    return "\n".join(part.text for part in result.content if getattr(part, "type", None) == "text")


async def _call(client: Client, name: str, arguments: dict[str, Any]) -> Any:
    with anyio.fail_after(CALL_SECONDS):
        result = await client.call_tool(name, arguments)
    if result.is_error:
        raise StepError(f"{name}({arguments}) failed: {_text(result)[:500]}")
    return result


@dataclass
class Ours:
    client: Client
    session_id: str
    name: str = "ours"
    ref_re: re.Pattern[str] = OURS_REF

    async def _act(self, **arguments: Any) -> Reply:
        result = await _call(self.client, "browser_act", {"sessionId": self.session_id, **arguments})
        content = result.structured_content or {}
        return Reply(str(content.get("snapshot") or ""), len(_text(result).encode()), content.get("url"))

    async def navigate(self, url: str) -> Reply:
        return await self._act(action="navigate", url=url)

    async def snapshot(self) -> Reply:
        arguments = {"sessionId": self.session_id, "maxChars": MAX_CHARS}
        result = await _call(self.client, "browser_snapshot", arguments)
        content = result.structured_content or {}
        return Reply(str(content.get("text") or ""), len(_text(result).encode()), content.get("url"))

    async def click(self, ref: str, element: str) -> Reply:
        return await self._act(action="click", ref=ref)

    async def type(self, ref: str, text: str, element: str) -> Reply:
        return await self._act(action="type", ref=ref, text=text, submit=False)


_SNAPSHOT_LINK = re.compile(r"^- \[Snapshot\]\(([^)]+)\)$", re.M)
_YAML_BLOCK = re.compile(r"^### Snapshot\n```yaml\n(.*?)\n```", re.M | re.S)
_PAGE_URL = re.compile(r"^- Page URL: (\S+)$", re.M)


@dataclass
class Theirs:
    client: Client
    workspace: Path  # the server's cwd: links in its replies are relative to it
    name: str = ANCHOR
    ref_re: re.Pattern[str] = THEIRS_REF

    def _reply(self, result: Any) -> Reply:
        text = _text(result)
        url = _PAGE_URL.search(text)
        if block := _YAML_BLOCK.search(text):
            state = block.group(1)
        elif link := _SNAPSHOT_LINK.search(text):
            state = (self.workspace / link.group(1)).read_text()
        else:
            state = ""
        return Reply(state, len(text.encode()), url.group(1) if url else None)

    async def navigate(self, url: str) -> Reply:
        return self._reply(await _call(self.client, "browser_navigate", {"url": url}))

    async def snapshot(self) -> Reply:
        return self._reply(await _call(self.client, "browser_snapshot", {}))

    async def click(self, ref: str, element: str) -> Reply:
        return self._reply(await _call(self.client, "browser_click", {"target": ref, "element": element}))

    async def type(self, ref: str, text: str, element: str) -> Reply:
        arguments = {"target": ref, "element": element, "text": text, "submit": False}
        return self._reply(await _call(self.client, "browser_type", arguments))


STEP_TOOLS = {"browser_act", "browser_snapshot"}


@contextlib.asynccontextmanager
async def open_ours(logs: Path) -> AsyncIterator[Ours | str]:
    """Our server over stdio with one Active session; yields a message instead when it cannot start or has no
    step tools yet (so the anchor side still gets measured)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("BROWSER_SESSIONS_") or k in ("PATH", "HOME")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "browser_sessions", "serve"], env=env)
    log = logs / "steps-ours.log"
    with log.open("w") as errlog:
        async with contextlib.AsyncExitStack() as stack:
            connection = Client(stdio_client(params, errlog=errlog), read_timeout_seconds=CALL_SECONDS)
            try:
                client = await stack.enter_async_context(connection)
            except Exception:  # any start-up failure: say so, with the server's own last log line
                client = None
            if client is None:
                errlog.flush()
                tail = log.read_text().strip().splitlines()[-1:] or ["its log is empty"]
                yield f"our server did not start ({tail[0]}; full log in {log})"
                return
            names = {tool.name for tool in (await client.list_tools()).tools}
            if missing := STEP_TOOLS - names:
                yield f"our server has no {', '.join(sorted(missing))} yet (it lists: {', '.join(sorted(names))})"
                return
            state = (await _call(client, "start_session", {})).structured_content
            while state["status"] == "Pending":
                await anyio.sleep(0.01)
                state = (await _call(client, "get_session", {"sessionId": state["sessionId"]})).structured_content
            if state["status"] != "Active":
                raise BrokenBenchError(f"our session ended before Active: {state}")
            try:
                yield Ours(client, state["sessionId"])
            finally:
                await _call(client, "terminate", {"sessionId": state["sessionId"]})


@contextlib.asynccontextmanager
async def open_theirs(
    logs: Path, settings: Settings, name: str = ANCHOR, extra: tuple[str, ...] = ()
) -> AsyncIterator[Theirs]:
    workspace = Path(tempfile.mkdtemp(prefix="bench-pw-mcp-"))
    args = [
        str(PW_MCP_CLI),
        "--executable-path", str(CHROMIUM),
        "--headless", "--isolated", "--no-sandbox",
        "--viewport-size", f"{settings.viewport_width}x{settings.viewport_height}",
        "--output-dir", str(workspace / "out"),
        *extra,
    ]  # fmt: skip
    params = StdioServerParameters(command="node", args=args, cwd=workspace, env={"PATH": os.environ["PATH"]})
    log = logs / f"steps-{re.sub(r'[^a-z0-9]+', '-', name)}.log"
    try:
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=CALL_SECONDS) as client:
                yield Theirs(client, workspace, name)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


# ----- reading snapshots (both formats) -----


@dataclass(frozen=True)
class Node:
    ref: str
    role: str
    name: str  # the quoted accessible name, else the line's own text, else the text of its first children
    line: str


_LINE = re.compile(r"^(\s*)-\s+['\"]?([\w-]+)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
CHILD_LINES = 12  # how far down a nameless element's name is looked for


def line_text(line: str) -> str:
    """One snapshot line's words: no role, refs, attributes, YAML quoting, nor ``/url:``-style properties."""
    body = line.strip()
    if body.startswith("- /"):
        return ""
    body = re.sub(r"^-\s+['\"]?[\w-]+", "", body)
    body = re.sub(r"\[[^\]]*\]", "", body).replace('\\"', '"').strip()
    body = re.sub(r"['\"]?:$", "", re.sub(r"^:\s*", "", body)).strip()
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
        body = body[1:-1]
    return body


def nodes(state: str, ref_re: re.Pattern[str]) -> list[Node]:
    """The elements with a ref, in either server's format."""
    lines = state.splitlines()
    found = []
    for i, line in enumerate(lines):
        ref = ref_re.search(line)
        head = _LINE.match(line)
        if not ref or not head:
            continue
        quoted = _QUOTED.search(line[: ref.start()])
        name = quoted.group(1).replace('\\"', '"') if quoted else line_text(line)
        if not name:
            indent, words = len(head.group(1)), []
            for child in lines[i + 1 : i + 1 + CHILD_LINES]:
                if len(child) - len(child.lstrip()) <= indent:
                    break
                words.append(line_text(child))
            name = " ".join(w for w in words if w)
        found.append(Node(ref.group(1), head.group(2), name, line))
    return found


def find_ref(state: str, ref_re: re.Pattern[str], name: str, roles: set[str] | None = None) -> str | None:
    """The first element with exactly this name (or, failing that, this name ignoring case)."""
    candidates = [n for n in nodes(state, ref_re) if roles is None or n.role in roles]
    for fold in (str, str.casefold):
        for node in candidates:
            if fold(node.name.strip()) == fold(name):
                return node.ref
    return None


def flat_text(state: str) -> str:
    """The snapshot's words in order, without its structure."""
    return re.sub(r"\s+", " ", " ".join(line_text(line) for line in state.splitlines())).strip()


# ----- 1. latency -----


@dataclass(frozen=True)
class Op:
    """One timed step; ``after`` runs untimed (finding the next ref)."""

    name: str
    timed: Callable[[], Awaitable[Any]]
    after: Callable[[], Awaitable[None]] | None = None


async def interleaved(ops: list[Op], runs: int) -> dict[str, Series]:
    """``WARMUP + runs`` rounds; each round times every op once, in order."""
    samples: dict[str, list[float]] = {op.name: [] for op in ops}
    for round_no in range(WARMUP + runs):
        for op in ops:
            started = time.perf_counter()
            await op.timed()
            elapsed = (time.perf_counter() - started) * 1000
            if op.after is not None:
                await op.after()
            if round_no >= WARMUP:
                samples[op.name].append(elapsed)
    return {name: Series(name, values) for name, values in samples.items()}


def _count(state: str) -> int | None:
    found = re.search(r"Clicks so far:?\s*\"?\s*(\d+)", flat_text(state))
    return int(found.group(1)) if found else None


class Counting:
    """Clicks "Add one" on one side's counter page; ``verify`` checks that the page counted every click."""

    def __init__(self, side: Side) -> None:
        self.side, self.clicks, self.ref = side, 0, ""

    async def setup(self, base: str) -> None:
        await self.side.navigate(base + "/counter")
        self.ref = find_ref((await self.side.snapshot()).state, self.side.ref_re, "Add one", {"button"}) or ""
        if not self.ref:
            raise BrokenBenchError(f"{self.side.name}: no ref for the 'Add one' button")

    async def step(self, with_snapshot: bool = False) -> None:
        reply = await self.side.click(self.ref, "Add one button")
        if with_snapshot:
            reply = await self.side.snapshot()
        self.clicks += 1
        self.ref = find_ref(reply.state, self.side.ref_re, "Add one", {"button"}) or self.ref

    async def verify(self) -> dict[str, Any]:
        shown = _count((await self.side.snapshot()).state)
        return {"clicks": self.clicks, "page_shows": shown, "ok": shown == self.clicks}


class Navigating:
    """Follows "Go to page B" / "Go to page A" back and forth on one side; each click loads the other page."""

    def __init__(self, side: Side) -> None:
        self.side, self.on, self.ref, self.state = side, "a", "", ""
        self.clicks, self.wrong_url, self.refetched = 0, 0, 0

    def _target(self) -> str:
        return "Go to page B" if self.on == "a" else "Go to page A"

    async def setup(self, base: str) -> None:
        await self.side.navigate(base + "/nav/a")
        self.on, self.state = "a", (await self.side.snapshot()).state
        await self.find_next()

    async def step(self, with_snapshot: bool = False) -> None:
        reply = await self.side.click(self.ref, self._target() + " link")
        if with_snapshot:
            reply = await self.side.snapshot()
        self.clicks += 1
        self.on = "b" if self.on == "a" else "a"
        if not (reply.url or "").endswith("/nav/" + self.on):
            self.wrong_url += 1
        self.state = reply.state

    async def find_next(self) -> None:
        ref = find_ref(self.state, self.side.ref_re, self._target(), {"link"})
        if ref is None:  # the state the click returned lacked the next link (a diff, say): read the page
            self.refetched += 1
            ref = find_ref((await self.side.snapshot()).state, self.side.ref_re, self._target(), {"link"})
        if ref is None:
            raise BrokenBenchError(f"{self.side.name}: no ref for link {self._target()!r}")
        self.ref = ref

    def verify(self) -> dict[str, Any]:
        return {
            "clicks": self.clicks,
            "wrong_url_after_click": self.wrong_url,
            "state_lacked_next_link": self.refetched,
            "ok": self.wrong_url == 0,
        }


def _click_ops(side: Side, page: str, driver: Counting | Navigating) -> list[Op]:
    after = driver.find_next if isinstance(driver, Navigating) else None
    if side.name == "ours":
        return [Op(f"ours: act click ({page})", driver.step, after)]
    if side.name != ANCHOR:
        return [Op(f"{side.name}: click + read state file ({page})", driver.step, after)]
    return [
        Op(f"{side.name}: click + read state file ({page})", driver.step, after),
        Op(f"{side.name}: click + snapshot ({page})", partial(driver.step, with_snapshot=True), after),
    ]


async def measure_latency(
    sides: list[Side], clicks_only: list[Side], base: str, runs: int
) -> tuple[dict[str, Series], dict[str, Any]]:
    series: dict[str, Series] = {}
    checks: dict[str, Any] = {}
    counters = [Counting(side) for side in sides + clicks_only]
    for counter in counters:
        await counter.setup(base)
    series |= await interleaved([op for c in counters for op in _click_ops(c.side, "counter", c)], runs)
    for counter in counters:
        checks[f"{counter.side.name}: counter"] = await counter.verify()

    walkers = [Navigating(side) for side in sides + clicks_only]
    for walker in walkers:
        await walker.setup(base)
    series |= await interleaved([op for w in walkers for op in _click_ops(w.side, "navigate", w)], runs)
    checks |= {f"{w.side.name}: navigate": w.verify() for w in walkers}

    for side in sides:
        await side.navigate(base + "/shop")
    series |= await interleaved([Op(f"{side.name}: snapshot (shop)", side.snapshot) for side in sides], runs)
    return series, checks


# (ours, anchor, headline)
LATENCY_PAIRS = [
    ("ours: act click (counter)", "playwright-mcp: click + read state file (counter)", "click, small DOM change"),
    ("ours: act click (counter)", "playwright-mcp: click + snapshot (counter)", None),
    ("ours: act click (counter)", f"{NO_SETTLE}: click + read state file (counter)", "like for like"),
    ("ours: act click (navigate)", "playwright-mcp: click + read state file (navigate)", "click that navigates"),
    ("ours: act click (navigate)", "playwright-mcp: click + snapshot (navigate)", None),
    ("ours: act click (navigate)", f"{NO_SETTLE}: click + read state file (navigate)", "like for like"),
    ("ours: snapshot (shop)", "playwright-mcp: snapshot (shop)", "snapshot alone"),
]


# ----- 2. snapshot size and viewport coverage -----

VIEWPORT_ELEMENTS_JS = """() => {
  const roleOf = (el) => {
    const tag = el.tagName.toLowerCase(), type = (el.getAttribute('type') || 'text').toLowerCase();
    if (tag === 'a') return 'link';
    if (tag === 'button' || ['submit', 'button', 'reset', 'image'].includes(type) && tag === 'input') return 'button';
    if (tag === 'select') return el.multiple ? 'listbox' : 'combobox';
    if (tag === 'textarea') return 'textbox';
    if (type === 'checkbox' || type === 'radio') return type;
    if (type === 'search') return 'searchbox';
    if (type === 'range') return 'slider';
    if (type === 'number') return 'spinbutton';
    return 'textbox';
  };
  const nameOf = (el) => {
    const text = (s) => (s || '').replace(/\\s+/g, ' ').trim();
    if (el.getAttribute('aria-label')) return text(el.getAttribute('aria-label'));
    const by = el.getAttribute('aria-labelledby');
    if (by) return text(by.split(/\\s+/).map((id) => document.getElementById(id)?.innerText).join(' '));
    if (el.labels && el.labels.length) {
      // a label's text without the control's own content (a select's options, say)
      return text(Array.from(el.labels).map((label) => {
        const copy = label.cloneNode(true);
        copy.querySelectorAll('select, textarea, input').forEach((control) => control.remove());
        return copy.textContent;
      }).join(' '));
    }
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) return text(el.value);
    if (el.tagName === 'A' || el.tagName === 'BUTTON') {
      const inner = text(el.innerText);
      if (inner) return inner;
      const img = el.querySelector('img[alt]');
      if (img) return text(img.alt);
    }
    return text(el.getAttribute('title') || el.getAttribute('placeholder') || '');
  };
  const out = [];
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
    const r = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (r.width <= 0 || r.height <= 0 || style.visibility === 'hidden') continue;
    if (r.bottom <= 0 || r.top >= window.innerHeight || r.right <= 0 || r.left >= window.innerWidth) continue;
    out.push({role: roleOf(el), name: nameOf(el), tag: el.tagName.toLowerCase()});
  }
  return out;
}"""

NAME_PREFIX = 30  # compare names by their start: a server may shorten long names


def _names(element: str, shown: str) -> bool:
    """Does a snapshot line's text ``shown`` name ``element`` (both without whitespace)? A line may shorten a
    long name with an ellipsis."""
    if shown.startswith(element):
        return True
    short = shown.rstrip(".\u2026")
    return short != shown and len(short) >= 8 and element.startswith(short)


def coverage(state: str, ref_re: re.Pattern[str], elements: list[dict[str, str]]) -> dict[str, Any]:
    """How many viewport elements have their name (or, unnamed, their role) on a line with a ref (or, for a
    nameless line, in the text just under it).

    Counted as multisets: three "Order now" buttons need three ref lines naming "Order now".
    """
    squeeze = partial(re.sub, r"\s+", "")
    lines = nodes(state, ref_re)
    texts = [(squeeze(n.name), squeeze(line_text(n.line))) for n in lines]
    # our running-text lines carry links inline: "... see story 1 [e8]. ..." (the text before each ref names it)
    inline = [
        squeeze(segment)
        for line in state.splitlines()
        if line.lstrip().startswith("- text:")
        for segment in re.split(r"\[f?\d*e\d+\]", line)[:-1]
    ]
    named = Counter(squeeze(e["name"])[:NAME_PREFIX] for e in elements if e["name"])
    unnamed = Counter(e["role"] for e in elements if not e["name"])
    found = 0
    missing: list[str] = []
    for prefix, want in named.items():
        have = sum(1 for pair in texts if any(_names(prefix, text) for text in pair))
        have += sum(1 for segment in inline if segment.endswith(prefix) or prefix in segment[-2 * NAME_PREFIX :])
        found += min(want, have)
        if have < want:
            missing.append(f"{prefix!r} x{want - have}")
    for role, want in unnamed.items():
        roles = {role, "textbox"} if role == "searchbox" else {role}
        have = sum(1 for n in lines if n.role in roles and not n.name)
        found += min(want, have)
        if have < want:
            missing.append(f"unnamed {role} x{want - have}")
    return {"found": found, "total": len(elements), "missing": missing}


async def viewport_elements(settings: Settings, urls: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """The interactive elements in the first viewport of each page, from a plain Playwright page of our size."""
    result = {}
    async with async_playwright() as playwright:
        browser, _ = await launch(playwright, settings)
        try:
            page = await browser.new_page(
                viewport={"width": settings.viewport_width, "height": settings.viewport_height}
            )
            for label, url in urls.items():
                await page.goto(url)
                result[label] = await page.evaluate(VIEWPORT_ELEMENTS_JS)
        finally:
            await browser.close()
    return result


async def measure_sizes(sides: list[Side], urls: dict[str, str], settings: Settings) -> list[dict[str, Any]]:
    elements = await viewport_elements(settings, urls)
    rows = []
    for label, url in urls.items():
        row: dict[str, Any] = {"page": label, "url": url, "viewport_elements": len(elements[label])}
        for side in sides:
            await side.navigate(url)
            started = time.perf_counter()
            reply = await side.snapshot()
            row[side.name] = {
                "reply_bytes": reply.reply_bytes,
                "snapshot_bytes": len(reply.state.encode()),
                "snapshot_chars": len(reply.state),
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "refs": len(nodes(reply.state, side.ref_re)),
                "viewport_coverage": coverage(reply.state, side.ref_re, elements[label]),
            }
            if side.name == "ours":
                row[side.name]["within_max_chars"] = len(reply.state) <= MAX_CHARS
        rows.append(row)
    return rows


# ----- 3. MiniWoB++ -----


@dataclass(frozen=True)
class Click:
    name: str | set[str]
    roles: set[str] | None = None


@dataclass(frozen=True)
class Type:
    roles: set[str]
    text: str


Plan = list[Click | Type]
TEXTBOX = {"textbox", "searchbox"}


def _plan_checkboxes(m: re.Match[str]) -> Plan:
    names = [] if m.group(1) == "nothing" else [n.strip() for n in m.group(1).split(",")]
    return [*(Click(n, {"checkbox"}) for n in names), Click("Submit", {"button"})]


# task -> (pattern of the instruction in the snapshot's flat text, the fixed script from its match)
TASKS: dict[str, tuple[str, Callable[[re.Match[str]], Plan]]] = {
    "click-button": (r'Click on the "(.+?)" button', lambda m: [Click(m.group(1), {"button"})]),
    "click-link": (r'Click on the link "(.+?)"', lambda m: [Click(m.group(1))]),
    "click-dialog": (r"Close the dialog box", lambda m: [Click({"Close", "close", "x", "\u00d7"}, {"button"})]),
    "click-tab": (r"Click on (Tab #\d)", lambda m: [Click(m.group(1), {"tab", "link"})]),
    "focus-text": (r"Focus into the textbox", lambda m: [Click(set(), TEXTBOX)]),
    "enter-text": (
        r'Enter\s*"\s*(.+?)\s*"\s*into the text field',
        lambda m: [Type(TEXTBOX, m.group(1)), Click("Submit", {"button"})],
    ),
    "click-checkboxes": (r"Select (.+?) and click Submit", _plan_checkboxes),
}
_REWARD = re.compile(r"Last reward:?\s*(-?\d+\.\d+)")


def _ref_for(state: str, side: Side, step: Click | Type) -> str | None:
    if isinstance(step, Type) or (isinstance(step.name, set) and not step.name):
        roles = step.roles
        return next((n.ref for n in nodes(state, side.ref_re) if roles is None or n.role in roles), None)
    names = step.name if isinstance(step.name, set) else {step.name}
    for name in names:
        if ref := find_ref(state, side.ref_re, name, step.roles):
            return ref
    return None


async def episode(side: Side, url: str, task: str) -> dict[str, Any]:
    pattern, plan_of = TASKS[task]
    await side.navigate(url)
    start = find_ref((await side.snapshot()).state, side.ref_re, "START")
    if start is None:
        return {"ok": False, "why": "no ref for the START cover"}
    await side.click(start, "START cover")
    state = (await side.snapshot()).state
    instruction = re.search(pattern, flat_text(state))
    if instruction is None:
        return {"ok": False, "why": "instruction not found in the snapshot"}
    for step in plan_of(instruction):
        ref = _ref_for(state, side, step)
        if ref is None:
            state = (await side.snapshot()).state
            ref = _ref_for(state, side, step)
        if ref is None:
            return {"ok": False, "why": f"no ref for {step}"}
        try:
            if isinstance(step, Type):
                await side.type(ref, step.text, "text field")
            else:
                await side.click(ref, str(step.name) or "text field")
        except StepError as error:
            return {"ok": False, "why": str(error)[:300]}
    reward = _REWARD.search(flat_text((await side.snapshot()).state))
    if reward is None:
        return {"ok": False, "why": "no reward shown after the last step"}
    return {"ok": float(reward.group(1)) > 0, "reward": float(reward.group(1))}


async def measure_miniwob(sides: list[Side], base: str, episodes: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        results[task] = {}
        for side in sides:
            runs = []
            for seed in range(1, episodes + 1):
                url = f"{base}/miniwob/miniwob/{task}.html?seed={seed}"
                runs.append({"seed": seed, **await episode(side, url, task)})
            results[task][side.name] = {"success": sum(r["ok"] for r in runs), "episodes": runs}
    return results


# ----- run and report -----


@dataclass
class Results:
    series: dict[str, Series] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    sizes: list[dict[str, Any]] = field(default_factory=list)
    miniwob: dict[str, dict[str, Any]] = field(default_factory=dict)
    ours_missing: str | None = None


async def bench(args: argparse.Namespace, site: Site, settings: Settings) -> Results:
    results = Results()
    logs = RESULTS.parent
    async with open_theirs(logs, settings) as theirs, open_ours(logs) as ours:
        sides: list[Side] = [theirs]
        if isinstance(ours, str):
            results.ours_missing = ours
            print(f"NOTE: {ours}; measuring the anchor side only.", flush=True)
        else:
            sides.insert(0, ours)
        print("1/3 latency ...", flush=True)
        async with open_theirs(logs, settings, NO_SETTLE, ("--timeout-settle", "0")) as no_settle:
            results.series, results.checks = await measure_latency(sides, [no_settle], site.base, args.runs)
        print("2/3 snapshot sizes ...", flush=True)
        urls = {p: f"{site.base}/{p}" for p in ("shop", "form", "news")} | {"huge": site.huge_url}
        results.sizes = await measure_sizes(sides, urls, settings)
        print("3/3 MiniWoB++ ...", flush=True)
        results.miniwob = await measure_miniwob(sides, site.base, args.episodes)
    return results


def _ratio(ours: float | None, theirs: float | None, digits: int = 2) -> float | None:
    return round(ours / theirs, digits) if ours is not None and theirs else None


def _fmt(value: float | None, spec: str) -> str:
    return format("n/a" if value is None else format(value, spec), ">" + spec.split(".")[0])


def _found(side: dict[str, Any] | None) -> str:
    if side is None:
        return "n/a"
    return f"{side['viewport_coverage']['found']}/{side['viewport_coverage']['total']}"


def report(results: Results) -> dict[str, Any]:
    series = results.series
    print(f"\n{'1. step latency':<56}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}")
    for s in sorted(series.values(), key=lambda s: (s.name.split(": ")[1].split("(")[-1], s.name)):
        print(f"  {s.name:<54}{len(s.samples_ms):>4}{s.p50:>9.1f}{s.p95:>9.1f}")
    ratios = []
    print(f"\n  {'ratio ours / playwright-mcp':<76}{'p50':>6}{'p95':>6}")
    for ours, theirs, headline in LATENCY_PAIRS:
        o, t = series.get(ours), series.get(theirs)
        r50 = _ratio(o.p50 if o else None, t.p50 if t else None)
        r95 = _ratio(o.p95 if o else None, t.p95 if t else None)
        ratios.append({"ours": ours, "anchor": theirs, "headline": headline, "p50": r50, "p95": r95})
        label = f"{ours.removeprefix('ours: ')}  /  {theirs.removeprefix('playwright-mcp: ')}"
        mark = f"  <- {headline}" if headline else ""
        print(f"  {label:<76}{_fmt(r50, '6.2f')}{_fmt(r95, '6.2f')}{mark}")
    bad = {name: check for name, check in results.checks.items() if not check["ok"]}
    print(f"  checks: {bad or 'all steps did what they should'}")

    print(f"\n{'2. snapshot size (reply bytes)':<32}{'ours':>9}{'theirs':>10}{'ratio':>7}"
          f"{'ours<=maxChars':>16}{'viewport refs ours':>20}{'theirs':>8}")  # fmt: skip
    for row in results.sizes:
        o, t = row.get("ours"), row["playwright-mcp"]
        row["ratio"] = _ratio(o["reply_bytes"] if o else None, t["reply_bytes"], 3)
        ours_bytes = str(o["reply_bytes"]) if o else "n/a"
        within = str(o["within_max_chars"]) if o else "n/a"
        print(
            f"  {row['page']:<30}{ours_bytes:>9}{t['reply_bytes']:>10}{_fmt(row['ratio'], '7.3f')}{within:>16}"
            f"{_found(o):>20}{_found(t):>8}"
        )

    print(f"\n{'3. MiniWoB++ successes':<32}{'ours':>9}{'theirs':>10}")
    successes: Counter[str] = Counter()
    episodes = 0
    for task, by_side in results.miniwob.items():
        t = by_side["playwright-mcp"]
        n = len(t["episodes"])
        episodes += n
        cells = []
        for name in ("ours", "playwright-mcp"):
            if name in by_side:
                successes[name] += by_side[name]["success"]
                cells.append(f"{by_side[name]['success']}/{n}")
            else:
                cells.append("n/a")
        print(f"  {task:<30}{cells[0]:>9}{cells[1]:>10}")
    cells = [
        f"{successes[name]}/{episodes}" if results.ours_missing is None or name != "ours" else "n/a"
        for name in ("ours", "playwright-mcp")
    ]
    print(f"  {'total':<30}{cells[0]:>9}{cells[1]:>10}")

    return {
        "latency": [
            {
                "metric": s.name,
                "n": len(s.samples_ms),
                "p50_ms": round(s.p50, 2),
                "p95_ms": round(s.p95, 2),
            }
            for s in series.values()
        ],
        "latency_ratios": ratios,
        "latency_checks": results.checks,
        "sizes": results.sizes,
        "miniwob": results.miniwob,
        "samples_ms": {s.name: [round(x, 3) for x in s.samples_ms] for s in series.values()},
    }


async def run(
    args: argparse.Namespace, started: float, pw_mcp_version: str, miniwob_html: Path, stdtypes: Path | None
) -> int:
    settings = Settings()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with serve_pages(miniwob_html, stdtypes) as site:
        results = await bench(args, site, settings)
    figures = report(results)
    figures = {
        "browser_sessions": __version__,
        "playwright_mcp": pw_mcp_version,
        "playwright_mcp_flags": "--executable-path --headless --isolated --no-sandbox --viewport-size --output-dir",
        "no_settle_flags": "the same + --timeout-settle 0",
        "chromium": (await anyio.run_process([str(CHROMIUM), "--version"])).stdout.decode().strip(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "warmup_rounds": WARMUP,
        "episodes": args.episodes,
        "max_chars": MAX_CHARS,
        "huge_page": site.huge_source,
        "ours_missing": results.ours_missing,
        **figures,
        "load_average": os.getloadavg(),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    load = os.getloadavg()
    print(f"\nwall {figures['wall_seconds']} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"figures in {RESULTS}")
    if results.ours_missing:
        print(f"INCOMPLETE: {results.ours_missing}. Ours was not measured.")
        return 1
    return 0


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed steps per latency series (default 20)")
    parser.add_argument("--episodes", type=int, default=5, help="MiniWoB++ episodes per task and side (default 5)")
    args = parser.parse_args()
    if args.runs < 1 or args.episodes < 1:
        parser.error("--runs and --episodes must be at least 1")
    started = time.perf_counter()
    pw_mcp_version = ensure_playwright_mcp()
    miniwob_html = ensure_miniwob()
    stdtypes = find_stdtypes()
    if stdtypes is None:
        print(f"NOTE: no {STDTYPES_GLOB}; using a synthetic huge page. For the real one: {STDTYPES_HINT}")
    status = 2
    try:
        status = anyio.run(run, args, started, pw_mcp_version, miniwob_html, stdtypes)
    except* (StepError, BrokenBenchError) as group:  # the bench's own failures: one line each, no traceback
        for error in _leaves(group):
            print(f"FAILED: {error}", file=sys.stderr)
        print(f"Server logs: {RESULTS.parent}/steps-*.log", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
