"""Lifecycle latency and memory of browser-sessions against raw Playwright on the same Chromium.

Run: ``.venv/bin/python bench/bench_lifecycle.py [--runs 50] [--idle-sessions 20]``

Anchor: raw Playwright on a Chromium launched exactly as the server launches it (``launch(Settings())``).
Ours: the official MCP client on ``build_server(Settings())`` in memory, with its own Chromium.
Pairs (ours vs anchor):
  start_session until Active            vs  new_context() + new_page()
  task "go to <url>", send until done   vs  page.goto(url) + reading the body text  (the headline task ratio)
                                        and vs  page.goto(url) alone (like for like: the task reads nothing)
  task "go to <url>" + "extract text"   vs  page.goto(url) + reading the body text  (like for like)
  task "extract text" on the page       vs  reading the body text again
Series run interleaved, one sample of each per round, so both sides see the same machine load: the starts
in one phase, the tasks in another (a context closing after each start would slow the next navigation).
Memory: PSS of each side's Chromium processes before and after opening K idle sessions / pages.
All pages come from the demo shop on 127.0.0.1. Prints one table; writes bench/results/lifecycle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from browser_sessions import __version__
from browser_sessions.backends.local.browser import launch
from browser_sessions.demo_site import serve_demo_site
from browser_sessions.mcp.server import build_server
from browser_sessions.settings import Settings
from timing import Series

RESULTS = Path(__file__).parent / "results" / "lifecycle.json"
WARMUP = 2  # untimed rounds first (first context, first navigation, cold code paths)
SETTLE_SECONDS = 2.0  # let Chromium finish spawning renderers before memory is read
CALL_SECONDS = 60  # bound on any single operation


# ----- timing -----


@dataclass(frozen=True)
class Op:
    """One measured operation; ``after`` receives its value and runs untimed (clean-up)."""

    name: str
    timed: Callable[[], Awaitable[Any]]
    after: Callable[[Any], Awaitable[None]] | None = None


async def measure_interleaved(ops: list[Op], runs: int) -> dict[str, Series]:
    """``WARMUP + runs`` rounds; each round times every op once, in order."""
    samples: dict[str, list[float]] = {op.name: [] for op in ops}
    for round_no in range(WARMUP + runs):
        for op in ops:
            with anyio.fail_after(CALL_SECONDS):
                started = time.perf_counter()
                value = await op.timed()
                elapsed = (time.perf_counter() - started) * 1000
                if op.after is not None:
                    await op.after(value)
            if round_no >= WARMUP:
                samples[op.name].append(elapsed)
    return {name: Series(name, values) for name, values in samples.items()}


# ----- memory: PSS of one side's Chromium processes -----


@dataclass(frozen=True)
class Proc:
    ppid: int
    exe: str
    argv0: str


def _processes() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        procs[pid] = Proc(ppid, exe, argv0)
    return procs


def _descendants(root: int, procs: dict[int, Proc]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def child_pids() -> set[int]:
    """This process's children: the Playwright drivers (the demo site is a thread, not a process)."""
    return {pid for pid, proc in _processes().items() if proc.ppid == os.getpid()}


def chromium_pss(driver: int, executable: Path) -> tuple[float, int]:
    """Summed PSS (MB) and count of the browser processes under one Playwright ``driver`` (our child).

    A process counts when it runs the browser executable. Launchers such as Debian's /usr/bin/chromium are
    shell scripts that exec the real binary, so the binary the driver started also counts. Crashpad
    handlers re-parent to init and are left out, as is every Chromium that is not ours.
    """
    procs = _processes()
    tree = _descendants(driver, procs)
    binaries = {str(executable), os.path.realpath(executable)}
    binaries |= {procs[pid].exe for pid in tree if procs[pid].ppid == driver}
    total_kb = 0
    count = 0
    for pid in tree:
        if procs[pid].exe not in binaries and procs[pid].argv0 not in binaries:
            continue
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
                count += 1
                break
    return total_kb / 1024, count


@dataclass(frozen=True)
class Memory:
    name: str
    sessions: int
    before_mb: float
    after_mb: float
    processes_before: int
    processes_after: int

    @property
    def per_session_mb(self) -> float:
        return (self.after_mb - self.before_mb) / self.sessions


async def measure_memory(
    name: str, driver: int, executable: Path, count: int, open_one: Callable[[], Awaitable[Any]]
) -> tuple[Memory, list[Any]]:
    await anyio.sleep(SETTLE_SECONDS)
    before, n_before = chromium_pss(driver, executable)
    opened = []
    for _ in range(count):
        with anyio.fail_after(CALL_SECONDS):
            opened.append(await open_one())
    await anyio.sleep(SETTLE_SECONDS)
    after, n_after = chromium_pss(driver, executable)
    return Memory(name, count, before, after, n_before, n_after), opened


# ----- the two sides -----


async def tool(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{name} failed: {result.content}")
    return result.structured_content


async def open_context(browser: Browser) -> BrowserContext:
    context = await browser.new_context()
    await context.new_page()
    return context


def anchor_ops(browser: Browser, page: Page, url: str) -> list[Op]:
    async def close(context: BrowserContext) -> None:
        await context.close()

    async def goto() -> None:
        await page.goto(url)

    async def goto_and_read() -> str:
        await page.goto(url)
        return await page.inner_text("body")

    async def read() -> str:
        return await page.inner_text("body")

    return [
        Op("anchor: new_context+new_page", lambda: open_context(browser), close),
        Op("anchor: goto", goto),
        Op("anchor: goto+body text", goto_and_read),
        Op("anchor: body text", read),
    ]


async def start_active(client: Client) -> str:
    state = await tool(client, "start_session")
    while state["status"] != "Active":
        if state["status"] != "Pending":
            raise RuntimeError(f"session ended before Active: {state['status']} {state.get('reason')}")
        await anyio.sleep(0.005)
        state = await tool(client, "get_session", sessionId=state["sessionId"])
    return str(state["sessionId"])


def ours_ops(client: Client, session_id: str, url: str) -> list[Op]:
    async def terminate(sid: str) -> None:
        await tool(client, "terminate", sessionId=sid)

    def task(details: str) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def send() -> dict[str, Any]:
            done = await tool(client, "send_task", sessionId=session_id, taskDetails=details)
            if done["status"] != "task_completed":
                raise RuntimeError(f"task {details!r} ended {done['status']}: {done.get('error')}")
            return done

        return send

    return [
        Op("ours: start_session (to Active)", lambda: start_active(client), terminate),
        Op("ours: task 'go to <url>'", task(f"go to {url}")),
        Op("ours: task 'go to' + 'extract text'", task(f"go to {url}\nextract text")),
        Op("ours: task 'extract text'", task("extract text")),
    ]


# (ours, anchor, headline): how the table pairs the series
PAIRS = [
    ("ours: start_session (to Active)", "anchor: new_context+new_page", "start"),
    ("ours: task 'go to <url>'", "anchor: goto+body text", "task"),
    ("ours: task 'go to <url>'", "anchor: goto", None),
    ("ours: task 'go to' + 'extract text'", "anchor: goto+body text", None),
    ("ours: task 'extract text'", "anchor: body text", None),
]


@dataclass(frozen=True)
class Results:
    series: dict[str, Series]
    memory: list[Memory]
    chromium: str
    executable: Path


async def bench(settings: Settings, url: str, runs: int, idle: int) -> Results:
    async with async_playwright() as playwright:
        browser, found = await launch(playwright, settings)
        [anchor_driver] = child_pids()
        try:
            anchor_memory, contexts = await measure_memory(
                "anchor: idle context+page", anchor_driver, found.path, idle, lambda: open_context(browser)
            )
            for context in contexts:
                await context.close()
            async with Client(build_server(settings)) as client:
                [ours_driver] = child_pids() - {anchor_driver}
                ours_memory, sessions = await measure_memory(
                    "ours: idle session", ours_driver, found.path, idle, lambda: start_active(client)
                )
                for sid in sessions:
                    await tool(client, "terminate", sessionId=sid)

                context = await browser.new_context()
                page = await context.new_page()
                session_id = await start_active(client)
                pairs = list(zip(anchor_ops(browser, page, url), ours_ops(client, session_id, url), strict=True))
                # Starts first, on their own: a context closing after each start would slow the next navigation.
                series = await measure_interleaved(list(pairs[0]), runs)
                series |= await measure_interleaved([op for pair in pairs[1:] for op in pair], runs)
                await tool(client, "terminate", sessionId=session_id)
                await context.close()
            return Results(series, [anchor_memory, ours_memory], browser.version, found.path)
        finally:
            await browser.close()


# ----- report -----


def _ratio(ours: float, anchor: float) -> float:
    return ours / anchor if anchor > 0 else float("nan")


def report(results: Results, runs: int, url: str) -> dict[str, Any]:
    series = results.series
    rows: list[dict[str, Any]] = [
        {"metric": s.name, "n": len(s.samples_ms), "p50_ms": round(s.p50, 2), "p95_ms": round(s.p95, 2)}
        for s in sorted(series.values(), key=lambda s: s.name.startswith("ours"))
    ]
    ratios: list[dict[str, Any]] = []
    for ours, anchor, headline in PAIRS:
        ratios.append(
            {
                "ours": ours,
                "anchor": anchor,
                "headline": headline,
                "p50": round(_ratio(series[ours].p50, series[anchor].p50), 2),
                "p95": round(_ratio(series[ours].p95, series[anchor].p95), 2),
            }
        )
    memory = results.memory
    anchor_memory, ours_memory = memory
    memory_ratio = round(_ratio(ours_memory.per_session_mb, anchor_memory.per_session_mb), 2)

    width = max(len(r["metric"]) for r in rows) + 2
    print(f"{'metric':<{width}}{'n':>4}{'p50 ms':>10}{'p95 ms':>10}")
    for r in rows:
        print(f"{r['metric']:<{width}}{r['n']:>4}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}")
    pair_width = max(len(f"{r['ours']}  /  {r['anchor']}") for r in ratios) + 2
    print(f"\n{'ratio ours / anchor':<{pair_width}}{'p50':>7}{'p95':>7}")
    for r in ratios:
        label = f"{r['ours']}  /  {r['anchor']}"
        mark = f"   <- {r['headline']}" if r["headline"] else ""
        print(f"{label:<{pair_width}}{r['p50']:>7.2f}{r['p95']:>7.2f}{mark}")
    print(f"\n{'memory (Chromium PSS)':<{width}}{'K':>4}{'MB each':>10}")
    for m in memory:
        print(
            f"{m.name:<{width}}{m.sessions:>4}{m.per_session_mb:>10.1f}"
            f"   ({m.before_mb:.0f} -> {m.after_mb:.0f} MB, {m.processes_before} -> {m.processes_after} processes)"
        )
    print(f"{'ratio ours / anchor':<{width}}{'':>4}{memory_ratio:>10.2f}")

    samples = {s.name: [round(x, 3) for x in s.samples_ms] for s in series.values()}
    return {
        "browser_sessions": __version__,
        "chromium": results.chromium,
        "executable": str(results.executable),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "runs": runs,
        "warmup_rounds": WARMUP,
        "url": url,
        "metrics": rows,
        "ratios": ratios,
        "memory": [
            {
                "metric": m.name,
                "sessions": m.sessions,
                "before_mb": round(m.before_mb, 1),
                "after_mb": round(m.after_mb, 1),
                "processes_before": m.processes_before,
                "processes_after": m.processes_after,
                "per_session_mb": round(m.per_session_mb, 2),
            }
            for m in memory
        ],
        "memory_ratio": memory_ratio,
        "samples_ms": samples,
    }


async def run(args: argparse.Namespace) -> None:
    settings = Settings()
    if args.idle_sessions >= settings.max_sessions:
        settings = settings.model_copy(update={"max_sessions": args.idle_sessions + 1})
    started = time.perf_counter()
    with serve_demo_site() as base:
        url = f"{base}/"
        results = await bench(settings, url, args.runs, args.idle_sessions)
    figures = report(results, args.runs, url)
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwall {figures['wall_seconds']} s, load average {os.getloadavg()[0]:.1f}; figures in {RESULTS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per latency metric (default 50)")
    parser.add_argument("--idle-sessions", type=int, default=20, help="K idle sessions for memory (default 20)")
    args = parser.parse_args()
    if args.runs < 1 or args.idle_sessions < 1:
        parser.error("--runs and --idle-sessions must be at least 1")
    anyio.run(run, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
