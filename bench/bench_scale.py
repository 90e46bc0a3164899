"""Scale of browser-sessions: memory per live session against raw Playwright, and leaks over start/terminate cycles.

Run: ``.venv/bin/python bench/bench_scale.py [--sessions 100] [--cycles 1000] [--every 100] [--warmup 5]
[--pool-size N]``

Three parts, each in a fresh Python process (so one part's heap does not hide another's growth), one after
the other in the same run, on the demo shop served on 127.0.0.1:
  ours-live    the official MCP client on ``build_server(settings)`` in memory; K sessions started to Active,
               each running the task "go to <shop>" + "extract text" to completion, all K live at once.
  anchor-live  raw Playwright on a Chromium launched as the server launches it (``launch(settings)``, same
               switches): K ``new_context()`` (our viewport) + ``new_page()`` + ``goto(shop)`` + body text.
  cycles       the MCP server again: N cycles of start_session (to Active), task "go to <shop>", terminate;
               process count and memory when fresh, at the baseline (after W warm-up cycles: first-use
               costs are not leaks), after every M cycles and at the end.
Memory of a side = PSS (``/proc/<pid>/smaps_rollup``) of its Chromium processes (``chromium_pss`` from
bench_lifecycle) + its Playwright driver (node) + its own Python process; read after the Chromium process
count has been steady for a while (``STEADY_READS``). The baseline is read the same way after the server has
started (and, with a warm pool, after the pool has filled), so pooled contexts are in the baseline.
Per live session = (with K - baseline) / K. Ours' Python process also holds the in-memory MCP client.
Prints one table; writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from playwright.async_api import Browser, BrowserContext, async_playwright

from bench_lifecycle import child_pids, chromium_pss, start_active, tool
from browser_sessions import __version__
from browser_sessions.backends.local.browser import find_browser, launch
from browser_sessions.demo_site import serve_demo_site
from browser_sessions.mcp.server import build_server
from browser_sessions.settings import Settings
from timing import Series

RESULTS = Path(__file__).parent / "results" / "scale.json"
CALL_SECONDS = 60  # bound on any single operation
SETTLE_SECONDS = 2.0  # least wait before memory is read
STEADY_READS = 3  # ... and the Chromium process count must be the same this many reads in a row, 0.5 s apart
STEADY_MAX_SECONDS = 30.0
PSS_READS = 3  # then PSS is the median of this many reads, 0.5 s apart (it wanders by tens of MB)
# Return to baseline, decided before the run: Chromium process count within +-1 (Chromium starts a singleton
# helper of its own now and then, e.g. its on-device model service), Chromium PSS within max(10 % of baseline,
# 25 MB); our Python process: growth per 100 cycles over the second half of the run at most 2 MB (it keeps the
# last 200 ended sessions by design, KEEP_ENDED in engine.py, so it grows over the first 200 cycles, then not).
PROCESS_TOLERANCE = 1
PSS_TOLERANCE_FRACTION = 0.10
PSS_TOLERANCE_MB = 25.0
PYTHON_GROWTH_MB_PER_100 = 2.0


# ----- reading memory -----


def pss_mb(pid: int) -> float:
    """PSS of one process in MB (0 if it is gone)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0.0)


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


@dataclass(frozen=True)
class Reading:
    """One look at a side: its Chromium processes, its Playwright driver, and this Python process."""

    label: str
    chromium_processes: int
    chromium_pss_mb: float
    driver_pss_mb: float
    python_pss_mb: float
    python_rss_mb: float
    open_fds: int
    gc_objects: int


async def read(label: str, driver: int, executable: Path) -> Reading:
    """Wait until the Chromium process count is steady (a pool refilling, renderers exiting), then read."""
    await anyio.sleep(SETTLE_SECONDS)
    counts: list[int] = []
    with anyio.move_on_after(STEADY_MAX_SECONDS):
        while len(counts) < STEADY_READS or len(set(counts[-STEADY_READS:])) > 1:
            counts.append(chromium_pss(driver, executable)[1])
            await anyio.sleep(0.5)
    gc.collect()
    looks = []
    for _ in range(PSS_READS):
        looks.append((*chromium_pss(driver, executable), pss_mb(driver)))
        await anyio.sleep(0.5)
    return Reading(
        label,
        looks[-1][1],
        statistics.median(look[0] for look in looks),
        statistics.median(look[2] for look in looks),
        pss_mb(os.getpid()),
        rss_mb(),
        len(os.listdir("/proc/self/fd")),
        len(gc.get_objects()),
    )


# ----- settings -----


def bench_settings(args: argparse.Namespace, data_dir: Path) -> Settings:
    """Settings() with room for K sessions, no idle ending during the run, a throw-away data folder, and the
    warm pool size when asked for and when this version of Settings has one."""
    base = Settings()
    update: dict[str, Any] = {
        "max_sessions": max(base.max_sessions, args.sessions),
        "idle_timeout": 3600.0,
        "data_dir": data_dir,
    }
    if args.pool_size is not None and "pool_size" in Settings.model_fields:
        update["pool_size"] = args.pool_size
    return base.model_copy(update=update)


def pool_size(settings: Settings) -> int | None:
    """The warm pool size in use, or None when Settings has no such setting (no pool yet)."""
    value = getattr(settings, "pool_size", None)
    return int(value) if value is not None else None


# ----- the parts (each runs in its own process) -----


async def task_done(client: Client, session_id: str, details: str) -> None:
    with anyio.fail_after(CALL_SECONDS):
        done = await tool(client, "send_task", sessionId=session_id, taskDetails=details)
    if done["status"] != "task_completed":
        raise RuntimeError(f"task {details!r} ended {done['status']}: {done.get('error')}")


async def part_ours_live(settings: Settings, url: str, sessions: int) -> dict[str, Any]:
    known = child_pids()
    executable = find_browser(settings, None).path
    async with Client(build_server(settings)) as client:
        [driver] = child_pids() - known
        baseline = await read("baseline", driver, executable)
        ids = []
        started = time.perf_counter()
        for n in range(sessions):
            with anyio.fail_after(CALL_SECONDS):
                session_id = await start_active(client)
            await task_done(client, session_id, f"go to {url}\nextract text")
            ids.append(session_id)
            if (n + 1) % 25 == 0:
                print(f"  ours: {n + 1} sessions live", flush=True)
        opened_s = time.perf_counter() - started
        live = await read(f"{sessions} live", driver, executable)
        listed = await tool(client, "list_sessions")
        for session_id in ids:
            await tool(client, "terminate", sessionId=session_id)
    live_count = len(listed.get("sessions", [])) if isinstance(listed.get("sessions"), list) else None
    return {"baseline": asdict(baseline), "live": asdict(live), "open_seconds": round(opened_s, 1),
            "listed_live": live_count}  # fmt: skip


async def part_anchor_live(settings: Settings, url: str, sessions: int) -> dict[str, Any]:
    async with async_playwright() as playwright:
        browser, found = await launch(playwright, settings)
        [driver] = child_pids()
        try:
            baseline = await read("baseline", driver, found.path)
            contexts: list[BrowserContext] = []
            started = time.perf_counter()
            for _ in range(sessions):
                with anyio.fail_after(CALL_SECONDS):
                    contexts.append(await open_anchor(browser, settings, url))
            opened_s = time.perf_counter() - started
            live = await read(f"{sessions} live", driver, found.path)
            for context in contexts:
                await context.close()
            version = browser.version
        finally:
            await browser.close()
    return {"baseline": asdict(baseline), "live": asdict(live), "open_seconds": round(opened_s, 1),
            "chromium": version}  # fmt: skip


async def open_anchor(browser: Browser, settings: Settings, url: str) -> BrowserContext:
    context = await browser.new_context(viewport={"width": settings.viewport_width, "height": settings.viewport_height})
    page = await context.new_page()
    await page.goto(url)
    if "Demo Shop" not in await page.inner_text("body"):
        raise RuntimeError(f"the anchor's page at {url} is not the demo shop")
    return context


async def part_cycles(settings: Settings, url: str, cycles: int, every: int, task: bool, warmup: int) -> dict[str, Any]:
    known = child_pids()
    executable = find_browser(settings, None).path
    readings: list[Reading] = []
    cycle_ms: list[float] = []
    async with Client(build_server(settings)) as client:
        [driver] = child_pids() - known

        async def cycle() -> None:
            with anyio.fail_after(CALL_SECONDS):
                session_id = await start_active(client)
                if task:
                    await task_done(client, session_id, f"go to {url}")
                await tool(client, "terminate", sessionId=session_id)

        fresh = await read("fresh", driver, executable)
        for _ in range(warmup):  # first-use costs (code paged in, caches) are not a leak
            await cycle()
        readings.append(await read("baseline", driver, executable))
        for n in range(1, cycles + 1):
            started = time.perf_counter()
            await cycle()
            cycle_ms.append((time.perf_counter() - started) * 1000)
            if n % every == 0 or n == cycles:
                readings.append(await read(f"after {n}", driver, executable))
                last = readings[-1]
                print(
                    f"  cycles: {n}/{cycles}  chromium {last.chromium_processes} processes "
                    f"{last.chromium_pss_mb:.0f} MB, python RSS {last.python_rss_mb:.0f} MB",
                    flush=True,
                )
        live = await tool(client, "list_sessions")
    sessions = live.get("sessions")
    return {
        "fresh": asdict(fresh),
        "warmup_cycles": warmup,
        "readings": [asdict(r) for r in readings],
        "cycle_ms": {"p50": round(Series("cycle", cycle_ms).p50, 1), "p95": round(Series("cycle", cycle_ms).p95, 1)},
        "live_at_end": len(sessions) if isinstance(sessions, list) else None,
    }


PARTS = ("ours-live", "anchor-live", "cycles")


def run_part(args: argparse.Namespace) -> None:
    """One part in this process; its figures go to ``--part-output`` as JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as data_dir, serve_demo_site() as base:
        settings = bench_settings(args, Path(data_dir))
        url = f"{base}/"
        if args.part == "ours-live":
            figures = anyio.run(part_ours_live, settings, url, args.sessions)
        elif args.part == "anchor-live":
            figures = anyio.run(part_anchor_live, settings, url, args.sessions)
        else:
            figures = anyio.run(part_cycles, settings, url, args.cycles, args.every, not args.no_task, args.warmup)
        figures["pool_size"] = pool_size(settings)
        figures["load_average"] = os.getloadavg()
    Path(args.part_output).write_text(json.dumps(figures))


# ----- the whole run -----


def spawn(part: str, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--part", part, "--part-output", str(output)]
    command += ["--sessions", str(args.sessions), "--cycles", str(args.cycles), "--every", str(args.every)]
    command += ["--warmup", str(args.warmup)]
    if args.pool_size is not None:
        command += ["--pool-size", str(args.pool_size)]
    if args.no_task:
        command.append("--no-task")
    print(f"{part} ...", flush=True)
    subprocess.run(command, check=True)
    figures: dict[str, Any] = json.loads(output.read_text())
    return figures


def _slope_per_100(points: list[tuple[int, float]]) -> float | None:
    """Least-squares growth per 100 cycles through (cycle, value) points; None with fewer than two."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return None
    return 100 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def _cycle(label: str) -> int:
    return 0 if label == "baseline" else int(label.split()[-1])


def live_summary(ours: dict[str, Any], anchor: dict[str, Any], sessions: int) -> dict[str, Any]:
    def per_session(part: dict[str, Any], key: str) -> float:
        return float((part["live"][key] - part["baseline"][key]) / sessions)

    keys = ("chromium_pss_mb", "driver_pss_mb", "python_pss_mb")
    figures = {key: (per_session(ours, key), per_session(anchor, key)) for key in keys}
    figures["total_mb"] = (sum(o for o, _ in figures.values()), sum(a for _, a in figures.values()))
    rows: dict[str, dict[str, float | None]] = {
        key: {"ours": round(o, 2), "anchor": round(a, 2), "ratio": round(o / a, 2) if a > 0 else None}
        for key, (o, a) in figures.items()
    }
    processes = {
        side: part["live"]["chromium_processes"] - part["baseline"]["chromium_processes"]
        for side, part in (("ours", ours), ("anchor", anchor))
    }
    return {"per_session": rows, "chromium_processes_added": processes}


def cycles_summary(cycles: dict[str, Any]) -> dict[str, Any]:
    readings = cycles["readings"]
    first, last = readings[0], readings[-1]
    half = _cycle(last["label"]) / 2
    after = [r for r in readings if _cycle(r["label"]) > 0]
    second_half = [r for r in readings if _cycle(r["label"]) >= half]
    growth = {}
    for key in ("chromium_processes", "chromium_pss_mb", "driver_pss_mb", "python_rss_mb", "open_fds", "gc_objects"):
        growth[key] = {
            "baseline": first[key],
            "end": last[key],
            "end_minus_baseline": round(last[key] - first[key], 1),
            "per_100_all": _round(_slope_per_100([(_cycle(r["label"]), r[key]) for r in after])),
            "per_100_second_half": _round(_slope_per_100([(_cycle(r["label"]), r[key]) for r in second_half])),
        }
    pss_tolerance = max(PSS_TOLERANCE_FRACTION * first["chromium_pss_mb"], PSS_TOLERANCE_MB)
    python_slope = growth["python_rss_mb"]["per_100_second_half"]
    verdict = {
        "chromium_processes_back": abs(last["chromium_processes"] - first["chromium_processes"]) <= PROCESS_TOLERANCE,
        "chromium_pss_back": last["chromium_pss_mb"] - first["chromium_pss_mb"] <= pss_tolerance,
        "python_flat": python_slope is not None and python_slope <= PYTHON_GROWTH_MB_PER_100,
        "no_live_sessions_left": cycles["live_at_end"] == 0,
    }
    tolerance = {
        "chromium_processes": PROCESS_TOLERANCE,
        "chromium_pss_mb": round(pss_tolerance, 1),
        "python_rss_mb_per_100_second_half": PYTHON_GROWTH_MB_PER_100,
    }
    return {"growth": growth, "verdict": verdict, "tolerance": tolerance}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def report(figures: dict[str, Any]) -> None:
    k = figures["sessions"]
    live = figures.get("live")
    if live is not None:
        print(f"\n1. memory per live session, {k} sessions live, each after a task on the demo shop (PSS MB)")
        print(f"  {'':<28}{'ours':>9}{'anchor':>9}{'ratio':>8}")
        names = {"chromium_pss_mb": "Chromium processes", "driver_pss_mb": "Playwright driver (node)",
                 "python_pss_mb": "Python process", "total_mb": "total"}  # fmt: skip
        for key, row in live["per_session"].items():
            ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}"
            print(f"  {names[key]:<28}{row['ours']:>9.1f}{row['anchor']:>9.1f}{ratio:>8}")
        added = live["chromium_processes_added"]
        print(f"  Chromium processes added: ours {added['ours']}, anchor {added['anchor']}")
        for side in ("ours", "anchor"):
            part = figures[side]
            b, a = part["baseline"], part["live"]
            print(
                f"  {side}: total {b['chromium_pss_mb'] + b['driver_pss_mb'] + b['python_pss_mb']:.0f} -> "
                f"{a['chromium_pss_mb'] + a['driver_pss_mb'] + a['python_pss_mb']:.0f} MB, "
                f"opened in {part['open_seconds']} s"
            )
    cycles = figures.get("cycles")
    if cycles is not None:
        summary = figures["cycles_summary"]
        print(f"\n2. {figures['cycles_run']} start/terminate cycles (pool size {cycles['pool_size']}), "
              f"cycle p50 {cycles['cycle_ms']['p50']} ms, p95 {cycles['cycle_ms']['p95']} ms")  # fmt: skip
        print(f"  {'reading':<14}{'chromium procs':>15}{'chromium MB':>12}{'driver MB':>10}{'py RSS MB':>10}"
              f"{'py fds':>7}{'gc objects':>11}")  # fmt: skip
        for r in [cycles["fresh"], *cycles["readings"]]:
            print(
                f"  {r['label']:<14}{r['chromium_processes']:>15}{r['chromium_pss_mb']:>12.1f}"
                f"{r['driver_pss_mb']:>10.1f}{r['python_rss_mb']:>10.1f}{r['open_fds']:>7}{r['gc_objects']:>11}"
            )
        print(f"  {'growth':<14}{'end - base':>12}{'per 100 (all)':>15}{'per 100 (2nd half)':>20}")
        for key, g in summary["growth"].items():
            all_, half = g["per_100_all"], g["per_100_second_half"]
            print(f"  {key:<22}{g['end_minus_baseline']:>10}{all_!s:>13}{half!s:>20}")
        print(f"  tolerance: {summary['tolerance']}")
        print(f"  verdict: {summary['verdict']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100, help="K sessions live at once (default 100)")
    parser.add_argument("--cycles", type=int, default=1000, help="start/terminate cycles (default 1000; 0 skips)")
    parser.add_argument("--every", type=int, default=100, help="read memory every M cycles (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="cycles before the baseline is read (default 5)")
    parser.add_argument("--pool-size", type=int, default=None, help="warm pool size, if the server has a pool")
    parser.add_argument("--no-task", action="store_true", help="cycles without the 'go to <shop>' task")
    parser.add_argument("--skip-live", action="store_true", help="skip the K-live-sessions parts")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--part-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sessions < 1 or args.every < 1 or args.cycles < 0 or args.warmup < 0:
        parser.error("--sessions and --every must be at least 1, --cycles and --warmup at least 0")
    if args.part is not None:
        run_part(args)
        return 0

    if args.pool_size is not None and "pool_size" not in Settings.model_fields:
        print("NOTE: this server has no warm pool (no pool_size setting); --pool-size is ignored.")
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "browser_sessions": __version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "sessions": args.sessions,
        "cycles_run": args.cycles,
        "every": args.every,
        "warmup_cycles": args.warmup,
        "cycle_task": not args.no_task,
        "pool_size_asked": args.pool_size,
        "settings_has_pool_size": "pool_size" in Settings.model_fields,
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        if not args.skip_live:
            figures["ours"] = spawn("ours-live", args, Path(tmp) / "ours.json")
            figures["anchor"] = spawn("anchor-live", args, Path(tmp) / "anchor.json")
            figures["chromium"] = figures["anchor"].pop("chromium")
            figures["live"] = live_summary(figures["ours"], figures["anchor"], args.sessions)
        if args.cycles > 0:
            figures["cycles"] = spawn("cycles", args, Path(tmp) / "cycles.json")
            figures["cycles_summary"] = cycles_summary(figures["cycles"])
    figures["load_average_end"] = os.getloadavg()
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    report(figures)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    load = figures["load_average_end"]
    print(f"\nwall {figures['wall_seconds']} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"figures in {RESULTS}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
