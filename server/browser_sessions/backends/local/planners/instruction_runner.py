"""Runs parsed instruction lines on the page layer, one recorded step per line."""

from __future__ import annotations

from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.local.driver import Driver
from browser_sessions.backends.local.outputs import Extract, TextExtract
from browser_sessions.backends.local.page import actions
from browser_sessions.backends.local.page.extract import extract_table, page_markdown
from browser_sessions.backends.local.page.locate import locate, wait_for_text
from browser_sessions.backends.local.planners.instructions import (
    Check,
    Click,
    ExtractTable,
    ExtractText,
    GoTo,
    Instruction,
    Line,
    Press,
    Select,
    TypeText,
    WaitFor,
)
from browser_sessions.errors import TaskFailure


async def run_lines(lines: list[Line], run: Driver) -> list[Extract]:
    """Execute ``lines`` in order; a failing line fails the task with a message that names it."""
    extracts: list[Extract] = []
    for line in lines:
        await run.checkpoint()
        try:
            extract = await _perform(line.instruction, run)
        except TaskFailure as exc:
            exc.message = f"Line {line.number} ({line.text!r}): {exc.message}"
            raise
        except PlaywrightError as exc:
            first = exc.message.splitlines()[0] if exc.message else type(exc).__name__
            raise TaskFailure(f"Line {line.number} ({line.text!r}) failed: {first}") from exc
        if extract is not None:
            extracts.append(extract)
        await run.step(line.text)
    return extracts


async def _perform(instruction: Instruction, run: Driver) -> Extract | None:
    page = await run.page()
    timeout = run.step_timeout
    match instruction:
        case GoTo(url):
            await run.goto(url)
        case Click(name):
            await actions.click(run, await locate(page, name, "click", timeout=timeout))
        case TypeText(text, field, submit):
            await actions.type_text(run, await locate(page, field, "fill", timeout=timeout), text, submit=submit)
        case Select(option, field):
            await actions.select(run, await locate(page, field, "select", timeout=timeout), option)
        case Check(name, checked):
            await actions.check(run, await locate(page, name, "check", timeout=timeout), checked)
        case Press(key):
            await actions.press(run, key)
        case WaitFor(text):
            await actions.wait(run, text, None)
        case ExtractText(element):
            part = await wait_for_text(page, element, timeout=timeout) if element else None
            return TextExtract(await page_markdown(page, part))
        case ExtractTable(title):
            return await extract_table(page, title)
    return None
