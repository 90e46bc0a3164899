"""The one action layer: what can be done to a page, for the instruction planner (elements found by name)
and the step tools (elements found by ref) alike. Playwright errors are translated here, once."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Literal, TypeVar

import anyio
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator

from browser_sessions.backends.local.driver import Driver
from browser_sessions.backends.local.page.locate import wait_for_text
from browser_sessions.errors import NavigationFailed, TaskFailure

Direction = Literal["up", "down", "left", "right"]
T = TypeVar("T")


_WHY = ("intercepts pointer events", "is not visible", "is not enabled", "is not stable", "not attached", "outside")


def _reason(message: str) -> str:
    """The first line of a Playwright error, plus the call-log line that says why it waited in vain."""
    lines = message.splitlines() or ["(no message)"]
    why = [line.strip(" -") for line in lines[1:] if any(mark in line for mark in _WHY)]
    return lines[0] + (f" ({why[-1]}; take a fresh snapshot or try another element)" if why else "")


async def _do(what: str, action: Awaitable[T]) -> T:
    try:
        return await action
    except PlaywrightError as exc:
        raise TaskFailure(f"{what} failed: {_reason(exc.message)}") from exc


async def click(driver: Driver, target: Locator) -> None:
    if not await driver.until_dialog(_do("click", target.click(timeout=driver.step_timeout * 1000))):
        await driver.settle()


async def hover(driver: Driver, target: Locator) -> None:
    await _do("hover", target.hover(timeout=driver.step_timeout * 1000))


async def type_text(driver: Driver, target: Locator, text: str, *, submit: bool) -> None:
    """Replace the field's content with ``text`` (secret placeholders filled for the current host)."""
    await _do("type", target.fill(await driver.fill_secrets(text), timeout=driver.step_timeout * 1000))
    if submit:
        await _do("press Enter", target.press("Enter", timeout=driver.step_timeout * 1000))
        await driver.settle()


async def select(driver: Driver, target: Locator, option: str) -> None:
    # a string matches an option's label or value
    await _do("select", target.select_option(option, timeout=driver.step_timeout * 1000))


async def check(driver: Driver, target: Locator, checked: bool) -> None:
    await _do("check", target.set_checked(checked, timeout=driver.step_timeout * 1000))


async def press(driver: Driver, key: str) -> None:
    page = await driver.page()
    if not await driver.until_dialog(_do(f"press {key}", page.keyboard.press(key))):
        await driver.settle()


async def scroll(driver: Driver, target: Locator | None, direction: Direction, amount: int) -> None:
    """Scroll ``target`` into view, or the page by ``amount`` pixels in ``direction``."""
    if target is not None:
        await _do("scroll", target.scroll_into_view_if_needed(timeout=driver.step_timeout * 1000))
        return
    dx = {"left": -amount, "right": amount}.get(direction, 0)
    dy = {"up": -amount, "down": amount}.get(direction, 0)
    page = await driver.page()
    await _do("scroll", page.mouse.wheel(dx, dy))
    await _do("scroll", page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))"))


async def history(driver: Driver, way: Literal["back", "forward"]) -> None:
    page = await driver.page()
    timeout = driver.navigation_timeout * 1000
    go = page.go_back(timeout=timeout) if way == "back" else page.go_forward(timeout=timeout)
    if await _do(way, go) is None:
        raise NavigationFailed(f"There is no page to go {way} to in this tab.")
    driver.raise_if_blocked()


async def wait(driver: Driver, text: str | None, seconds: float | None) -> None:
    """Wait until ``text`` is visible (up to the navigation timeout), or for ``seconds``."""
    if text is not None:
        await wait_for_text(await driver.page(), text, timeout=driver.navigation_timeout)
    elif seconds is not None:
        await anyio.sleep(seconds)


async def upload(driver: Driver, target: Locator, file: Path) -> None:
    await _do("upload", target.set_input_files(file, timeout=driver.step_timeout * 1000))
