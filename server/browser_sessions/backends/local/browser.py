"""Finding and launching Chromium.

Discovery order: ``BROWSER_SESSIONS_BROWSER_PATH``, Playwright's own managed Chromium, then a system
Chromium or Chrome on PATH. The switches below keep Chromium quiet on closed networks (engine-notes) and
route loopback through each session's egress proxy.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser, Playwright
from playwright.async_api import Error as PlaywrightError

from browser_sessions.errors import BrowserUnavailable
from browser_sessions.settings import Settings

SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

QUIET_SWITCHES = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    # Sessions' proxies must also see loopback and *.localhost (Chromium bypasses them by default).
    "--proxy-bypass-list=<-loopback>",
    # WebRTC would send UDP (STUN, media) around the proxy, to any address; with this it uses only proxied
    # TCP (TURN over a CONNECT), which the egress rules see.
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)

INSTALL_HINT = (
    "Install one: `apt-get install -y chromium` (Debian/Ubuntu), or `playwright install chromium` where "
    "downloads work, or set BROWSER_SESSIONS_BROWSER_PATH to a Chromium/Chrome executable."
)


@dataclass(frozen=True)
class FoundBrowser:
    path: Path
    source: str  # "setting", "playwright", or "PATH"


def find_browser(settings: Settings, playwright_chromium: str | None) -> FoundBrowser:
    """Return the first usable browser; ``playwright_chromium`` is Playwright's managed executable path."""
    if settings.browser_path is not None:
        if not os.access(settings.browser_path, os.X_OK):
            raise BrowserUnavailable(
                f"BROWSER_SESSIONS_BROWSER_PATH={settings.browser_path} is not an executable file. {INSTALL_HINT}"
            )
        return FoundBrowser(settings.browser_path, "setting")
    if playwright_chromium and os.access(playwright_chromium, os.X_OK):
        return FoundBrowser(Path(playwright_chromium), "playwright")
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return FoundBrowser(Path(found), "PATH")
    raise BrowserUnavailable(f"No Chromium or Chrome found. {INSTALL_HINT}")


def launch_switches(settings: Settings) -> list[str]:
    switches = list(QUIET_SWITCHES)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        switches.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox on
    return switches + list(settings.browser_args)


async def launch(playwright: Playwright, settings: Settings) -> tuple[Browser, FoundBrowser]:
    found = find_browser(settings, playwright.chromium.executable_path)
    try:
        browser = await playwright.chromium.launch(
            executable_path=str(found.path), headless=settings.headless, args=launch_switches(settings)
        )
    except PlaywrightError as exc:
        raise BrowserUnavailable(
            f"Chromium at {found.path} (from {found.source}) failed to start: {exc.message.splitlines()[0]}. "
            f"Run `browser-sessions doctor`. {INSTALL_HINT}"
        ) from exc
    return browser, found
