"""Lifecycle latency and memory of browser-sessions against raw Playwright on the same Chromium.

Run: ``.venv/bin/python bench/bench_lifecycle.py [--runs 50] [--idle-sessions 20]``

Anchor (raw Playwright, launched with the server's own switches): ``new_context()`` + ``new_page()``, and
``page.goto(url)`` + reading the body text. Ours (the official MCP client on ``build_server(Settings())``
in memory): ``start_session`` until Active, a ``go to <url>`` task from send until done, and an
``extract text`` task on the loaded page. Memory: PSS of this process's Chromium processes before and after
starting K idle sessions. All pages come from the demo shop on 127.0.0.1.

Prints one table and writes the same figures to bench/results/lifecycle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from playwright.async_api import Browser, async_playwright

from browser_sessions import __version__
from browser_sessions.backends.local.browser import launch
from browser_sessions.demo_site import serve_demo_site
from browser_sessions.mcp.server import build_server
from browser_sessions.settings import Settings

RESULTS = Path(__file__).parent / "results" / "lifecycle.json"
WARMUP = 2  # untimed runs before each measured series (first context, first navigation, code paths)
SETTLE_SECONDS = 2.0  # let Chromium finish spawning/reaping renderers before reading memory
CALL_SECONDS = 60  # bound on any single operation


# ----- timing -----


@dataclass(frozen=True)
class Series:
    name: str
    samples_ms: list[float]

    def quantile(self, q: int) -> float:
        if len(self.samples_ms) == 1:
            return self.samples_ms[0]
        return statistics.quantiles(self.samples_ms, n=100, method="inclusive")[q - 1]

    @property
    def p50(self) -> float:
        return self.quantile(50)

    @property
    def p95(self) -> float:
        return self.quantile(95)


async def measure(
    name: str,
    runs: int,
    timed: Callable[[], Awaitable[Any]],
    after: Callable[[Any], Awaitable[None]] | None = None,
) -> Series:
    """Time ``timed`` ``runs`` times (after WARMUP untimed runs); ``after`` gets its value, untimed."""
    samples: list[float] = []
    for i in range(WARMUP + runs):
        with anyio.fail_after(CALL_SECONDS):
            started = time.perf_counter()
            value = await timed()
            elapsed = (time.perf_counter() - started) * 1000
            if after is not None:
                await after(value)
        if i >= WARMUP:
            samples.append(elapsed)
    return Series(name, samples)


# ----- memory: PSS of our Chromium processes -----


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
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may contain spaces and parentheses
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


def chromium_pss_mb(executable: Path) -> tuple[float, int]:
    """Summed PSS (MB) and count of the Chromium processes descending from this process.

    A process counts when it descends from us and runs the browser executable. Launchers such as Debian's
    /usr/bin/chromium are shell scripts that exec the real binary, so the binaries the Playwright driver
    (our child) started also count. Other Chromiums on the machine are not ours and are left out.
    """
    procs = _processes()
    mine = _descendants(os.getpid(), procs)
    binaries = {os.path.realpath(executable), str(executable)}
    drivers = {pid for pid in mine if procs[pid].ppid == os.getpid()}
    binaries |= {procs[pid].exe for pid in mine if procs[pid].ppid in drivers}
    total_kb = 0
    count = 0
    for pid in mine:
        proc = procs[pid]
        if proc.exe not in binaries and proc.argv0 not in binaries:
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


async def settled_pss(executable: Path) -> tuple[float, int]:
    await anyio.sleep(SETTLE_SECONDS)
    return chromium_pss_mb(executable)


# ----- anchor: raw Playwright -----


@dataclass(frozen=True)
class Anchor:
    series: list[Series]
    memory: Memory
    chromium: str
    executable: Path


async def bench_anchor(settings: Settings, url: str, runs: int, idle: int) -> Anchor:
    async with async_playwright() as playwright:
        browser, found = await launch(playwright, settings)
        try:
            memory = await _anchor_memory(browser, found.path, idle)
            series = await _anchor_series(browser, url, runs)
            return Anchor(series, memory, browser.version, found.path)
        finally:
            await browser.close()


async def _anchor_memory(browser: Browser, executable: Path, idle: int) -> Memory:
    before, n_before = await settled_pss(executable)
    contexts = []
    for _ in range(idle):
        context = await browser.new_context()
        await context.new_page()
        contexts.append(context)
    after, n_after = await settled_pss(executable)
    for context in contexts:
        await context.close()
    return Memory("anchor: idle context+page", idle, before, after, n_before, n_after)


async def _anchor_series(browser: Browser, url: str, runs: int) -> list[Series]:
    async def open_page() -> Any:
        context = await browser.new_context()
        await context.new_page()
        return context

    async def close(context: Any) -> None:
        await context.close()

    start = await measure("anchor: new_context+new_page", runs, open_page, close)

    context = await browser.new_context()
    page = await context.new_page()

    async def goto_and_read() -> str:
        await page.goto(url)
        return await page.inner_text("body")

    async def read() -> str:
        return await page.inner_text("body")

    goto = await measure("anchor: goto+body text", runs, goto_and_read)
    text = await measure("anchor: body text", runs, read)
    await context.close()
    return [start, goto, text]


# ----- ours: the MCP server in memory -----


async def _tool(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{name} failed: {result.content}")
    return result.structured_content


async def bench_ours(
    settings: Settings, executable: Path, url: str, runs: int, idle: int
) -> tuple[list[Series], Memory]:
    async with Client(build_server(settings)) as client:
        memory = await _ours_memory(client, executable, idle)

        async def start() -> str:
            state = await _tool(client, "start_session")
            while state["status"] != "Active":
                if state["status"] != "Pending":
                    raise RuntimeError(f"session ended before Active: {state['status']} {state.get('reason')}")
                await anyio.sleep(0.005)
                state = await _tool(client, "get_session", sessionId=state["sessionId"])
            return str(state["sessionId"])

        async def terminate(session_id: str) -> None:
            await _tool(client, "terminate", sessionId=session_id)

        start_series = await measure("ours: start_session (to Active)", runs, start, terminate)

        session_id = await start()

        def task(details: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            async def send() -> dict[str, Any]:
                done = await _tool(client, "send_task", sessionId=session_id, taskDetails=details)
                if done["status"] != "task_completed":
                    raise RuntimeError(f"task {details!r} ended {done['status']}: {done.get('error')}")
                return done

            return send

        goto = await measure("ours: task 'go to <url>'", runs, task(f"go to {url}"))
        extract = await measure("ours: task 'extract text'", runs, task("extract text"))
        await terminate(session_id)
    return [start_series, goto, extract], memory


async def _ours_memory(client: Client, executable: Path, idle: int) -> Memory:
    before, n_before = await settled_pss(executable)
    sessions = [str((await _tool(client, "start_session"))["sessionId"]) for _ in range(idle)]
    after, n_after = await settled_pss(executable)
    for session_id in sessions:
        await _tool(client, "terminate", sessionId=session_id)
    return Memory("ours: idle session", idle, before, after, n_before, n_after)


# ----- report -----


def _ratio(ours: float, anchor: float) -> float:
    return ours / anchor if anchor > 0 else float("nan")


def report(anchor: Anchor, ours: list[Series], memory: Memory, args: argparse.Namespace, url: str) -> dict[str, Any]:
    start_anchor, goto_anchor, text_anchor = anchor.series
    start_ours, goto_ours, extract_ours = ours
    pairs = {start_ours.name: start_anchor, goto_ours.name: goto_anchor, extract_ours.name: text_anchor}
    rows: list[dict[str, Any]] = []
    for series in [*anchor.series, *ours]:
        row: dict[str, Any] = {
            "metric": series.name,
            "n": len(series.samples_ms),
            "p50_ms": round(series.p50, 2),
            "p95_ms": round(series.p95, 2),
        }
        paired = pairs.get(series.name)
        if paired is not None:
            row["vs"] = paired.name
            row["ratio_p50"] = round(_ratio(series.p50, paired.p50), 2)
            row["ratio_p95"] = round(_ratio(series.p95, paired.p95), 2)
        row["samples_ms"] = [round(x, 3) for x in series.samples_ms]
        rows.append(row)

    memories = [anchor.memory, memory]
    width = max(len(name) for name in [*(r["metric"] for r in rows), *(m.name + " MB each" for m in memories)]) + 2
    print(f"{'metric':<{width}}{'n':>4}{'p50 ms':>10}{'p95 ms':>10}{'ours/anchor p50':>18}{'p95':>7}")
    for r in rows:
        ratio = f"{r['ratio_p50']:>18.2f}{r['ratio_p95']:>7.2f}" if "vs" in r else ""
        print(f"{r['metric']:<{width}}{r['n']:>4}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{ratio}")
    print(f"\n{'memory (Chromium PSS)':<{width}}{'K':>4}{'MB each':>10}{'':>10}{'ours/anchor':>18}")
    ratio_mem = _ratio(memory.per_session_mb, anchor.memory.per_session_mb)
    for m in memories:
        ratio = f"{ratio_mem:>18.2f}" if m is memory else f"{'':>18}"
        print(
            f"{m.name:<{width}}{m.sessions:>4}{m.per_session_mb:>10.1f}{'':>10}{ratio}"
            f"   ({m.before_mb:.0f} -> {m.after_mb:.0f} MB, {m.processes_before} -> {m.processes_after} processes)"
        )
    print(
        f"\nstart ratio (p50) {_ratio(start_ours.p50, start_anchor.p50):.2f}, "
        f"task ratio (p50, 'go to' vs goto+body text) {_ratio(goto_ours.p50, goto_anchor.p50):.2f}"
    )
    return {
        "browser_sessions": __version__,
        "chromium": anchor.chromium,
        "executable": str(anchor.executable),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "warmup_runs": WARMUP,
        "url": url,
        "metrics": rows,
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
            for m in memories
        ],
        "ratios": {
            "start_p50": round(_ratio(start_ours.p50, start_anchor.p50), 2),
            "start_p95": round(_ratio(start_ours.p95, start_anchor.p95), 2),
            "task_p50": round(_ratio(goto_ours.p50, goto_anchor.p50), 2),
            "task_p95": round(_ratio(goto_ours.p95, goto_anchor.p95), 2),
            "memory_per_session": round(ratio_mem, 2),
        },
    }


async def run(args: argparse.Namespace) -> None:
    settings = Settings()
    if args.idle_sessions >= settings.max_sessions:
        settings = settings.model_copy(update={"max_sessions": args.idle_sessions + 1})
    started = time.perf_counter()
    with serve_demo_site() as base:
        url = f"{base}/"
        anchor = await bench_anchor(settings, url, args.runs, args.idle_sessions)
        ours, memory = await bench_ours(settings, anchor.executable, url, args.runs, args.idle_sessions)
    figures = report(anchor, ours, memory, args, url)
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wall {figures['wall_seconds']} s; figures in {RESULTS}")


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
