"""The caller's own steps on a local session: snapshot, act, screenshot.

They go through the same Driver and action layer as the planners. A step takes the session's page lock,
so it is refused while a planner task drives the page, unless that task is paused (manual takeover).
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
from playwright.async_api import Error as PlaywrightError

from browser_sessions.backends.local.driver import Driver
from browser_sessions.backends.local.page import actions
from browser_sessions.backends.local.page.snapshot import resolve_ref, take_snapshot
from browser_sessions.backends.local.views import tab_infos
from browser_sessions.errors import InvalidInput, SessionBusy, SessionEnded, TaskFailure
from browser_sessions.step_models import (
    ActRequest,
    ActResult,
    DialogInfo,
    SnapshotElement,
    SnapshotFormat,
    SnapshotResult,
)

if TYPE_CHECKING:
    from browser_sessions.backends.local.session import LocalSession

LOCK_WAIT = 30.0


@asynccontextmanager
async def manual(session: LocalSession) -> AsyncIterator[Driver]:
    """Hold the session's page for one step."""
    if not session.live:
        raise SessionEnded(session.id, session.status, session.transitions[-1].reason)
    if not session.page_handed_over:
        assert session.current is not None
        raise SessionBusy(
            f"Task {session.current.task_id} is driving session {session.id}. Wait for it (get_task), stop it, "
            "or pause it with control_session(pause) to take over; resume hands control back."
        )
    try:
        with anyio.fail_after(LOCK_WAIT):
            await session.page_lock.acquire()
    except TimeoutError:
        raise SessionBusy(
            f"Session {session.id}'s page stayed busy for {LOCK_WAIT:g} s (a paused task finishing its step, or "
            "another step). Try again."
        ) from None
    try:
        yield Driver(
            session,
            None,
            navigation_timeout=session.settings.navigation_timeout,
            step_timeout=session.settings.step_timeout,
            allow_file_urls=session.settings.allow_file_urls,
        )
    finally:
        session.page_lock.release()


def dialog_info(session: LocalSession) -> DialogInfo | None:
    dialog = session.browser.dialog
    if dialog is None:
        return None
    redact = session.vault.redact
    default = dialog.default_value if dialog.type == "prompt" else None
    return DialogInfo(type=dialog.type, message=redact(dialog.message), default_value=default)


async def snapshot(
    session: LocalSession, *, max_chars: int, ref: str | None, find: str | None, format: SnapshotFormat
) -> SnapshotResult:
    async with manual(session) as driver:
        page = await driver.page()
        if session.browser.dialog is not None:
            return SnapshotResult(session_id=session.id, url=page.url, title="", chars=0, dialog=dialog_info(session))
        snap = await take_snapshot(page, redact=session.vault.redact)
        if format == "json":
            elements = [
                SnapshotElement(**vars(e))
                for e in snap.elements
                if (ref is None or e.ref == ref) and (find is None or find.lower() in e.name.lower())
            ]
            size = sum(len(e.model_dump_json()) for e in elements)
            return SnapshotResult(session_id=session.id, url=snap.url, title=snap.title, elements=elements, chars=size)
        text = snap.render(max_chars=max_chars, ref=ref, find=find)
        if ref is None and find is None:
            session.browser.last_snapshot = text
        return SnapshotResult(session_id=session.id, url=snap.url, title=snap.title, text=text, chars=len(text))


async def act(session: LocalSession, request: ActRequest, *, max_chars: int) -> ActResult:
    async with manual(session) as driver:
        return await act_on(session, driver, request, max_chars=max_chars, against_last=True)


async def act_on(
    session: LocalSession,
    driver: Driver,
    request: ActRequest,
    *,
    max_chars: int,
    against_last: bool,
    label: str | None = None,
    observe: bool = True,
) -> ActResult:
    """Perform ``request`` with ``driver`` (the caller's or a planner's), record it as a step named
    ``label``, and report what changed, with the page state after it unless not ``observe``: only what
    changed since the last snapshot when ``against_last`` (the step tools) and that is smaller, else the
    whole snapshot."""
    page = await driver.page()
    before_url, before_tabs, before_downloads = (
        page.url,
        len(session.browser.live_pages()),
        len(session.browser.downloads),
    )
    if session.browser.dialog is not None and request.action != "dialog":
        raise SessionBusy(f"A {session.browser.dialog.type} dialog is open; answer it first with action=dialog.")
    await perform(session, driver, request)
    if session.browser.dialog is None:  # an open dialog freezes the page: nothing more to read now
        await driver.step(label or request.action)
    page = await driver.page()
    changes: list[str] = []
    if page.url != before_url:
        changes.append(f"now at {session.vault.redact(page.url)}")
    tabs = tab_infos(session)
    if len(tabs) > before_tabs:
        changes.append(f"{len(tabs) - before_tabs} new tab(s); the newest is active")
    new_downloads = session.browser.downloads[before_downloads:]
    changes += [f"downloaded {d.name} ({d.size_bytes} bytes): {d.uri}" for d in new_downloads]
    dialog = dialog_info(session)
    kind: Literal["full", "diff", "none"] = "none"
    text = ""
    if dialog is not None:
        changes.append(f"a {dialog.type} dialog opened: {dialog.message!r}; answer with action=dialog")
    elif observe:
        snap = await take_snapshot(page, redact=session.vault.redact)
        rendered = snap.render(max_chars=max_chars)
        text, kind = rendered, "full"
        if against_last:
            text, kind = _against_last(session.browser.last_snapshot, rendered)
            session.browser.last_snapshot = rendered
    return ActResult(
        session_id=session.id,
        action=request.action,
        url=session.vault.redact(page.url),
        title=session.browser.title or "",
        changes=changes or ([_page_change(kind, text)] if observe else []),
        dialog=dialog,
        tabs=tabs,
        new_downloads=list(new_downloads),
        snapshot=text,
        snapshot_kind=kind,
    )


def _page_change(kind: str, snapshot: str) -> str:
    if kind == "none" or snapshot == "(unchanged)":
        return "nothing visible changed"
    return "the page changed (see the snapshot)"


def _against_last(last: str | None, new: str) -> tuple[str, Literal["full", "diff"]]:
    """Only what changed, when that is smaller than the whole new snapshot."""
    if last is None:
        return new, "full"
    lines = [
        line
        for line in difflib.unified_diff(last.splitlines(), new.splitlines(), lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    diff = "\n".join(lines) or "(unchanged)"
    return (diff, "diff") if len(diff) < len(new) else (new, "full")


async def perform(session: LocalSession, driver: Driver, request: ActRequest) -> None:
    page = await driver.page()
    target = await resolve_ref(page, request.ref) if request.ref is not None else None
    match request.action:
        case "navigate":
            await driver.goto(request.url or "")
        case "click" if target is not None:
            await actions.click(driver, target)
        case "type" if target is not None:
            await actions.type_text(driver, target, request.text or "", submit=request.submit)
        case "select" if target is not None:
            await actions.select(driver, target, request.option or "")
        case "check" if target is not None:
            await actions.check(driver, target, bool(request.checked))
        case "press":
            await actions.press(driver, request.key or "")
        case "hover" if target is not None:
            await actions.hover(driver, target)
        case "scroll":
            await actions.scroll(driver, target, request.direction or "down", request.amount)
        case "back" | "forward":
            await actions.history(driver, request.action)
        case "wait":
            await actions.wait(driver, request.text, request.seconds)
        case "upload" if target is not None:
            await actions.upload(driver, target, upload_path(session, request.file or ""))
        case "tab":
            await _tab(session, request)
        case "dialog":
            await _answer_dialog(session, request)


async def screenshot(session: LocalSession, *, full_page: bool, ref: str | None) -> bytes:
    async with manual(session) as driver:
        if ref is None:
            return await session.browser.screenshot(full_page=full_page)
        target = await resolve_ref(await driver.page(), ref)
        try:
            return await target.screenshot(timeout=driver.step_timeout * 1000)
        except PlaywrightError as exc:
            raise TaskFailure(f"screenshot failed: {exc.message.splitlines()[0]}") from exc


def upload_path(session: LocalSession, name: str) -> Path:
    folder = session.settings.uploads.resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise InvalidInput(
            f"Uploads are read only from {folder} (BROWSER_SESSIONS_UPLOAD_DIR); {name!r} is not a file there. "
            "Put the file in that folder and pass its name."
        )
    return path


async def _tab(session: LocalSession, request: ActRequest) -> None:
    pages = session.browser.live_pages()
    if request.tab_action == "list":
        return
    index = request.index if request.index is not None else -1
    if not 0 <= index < len(pages):
        raise InvalidInput(f"There is no tab {index}; the session has tabs 0..{len(pages) - 1} (tabAction list).")
    if request.tab_action == "switch":
        session.browser.active = pages[index]
        await pages[index].bring_to_front()
        return
    if len(pages) == 1:
        raise InvalidInput("That is the session's only tab; terminate the session instead of closing it.")
    try:
        await pages[index].close()
    except PlaywrightError as exc:
        raise TaskFailure(f"closing tab {index} failed: {exc.message.splitlines()[0]}") from exc


async def _answer_dialog(session: LocalSession, request: ActRequest) -> None:
    dialog = session.browser.dialog
    if dialog is None:
        raise InvalidInput("No dialog is open.")
    session.browser.dialog_answered()
    try:
        if request.accept:
            await dialog.accept(request.text) if request.text is not None else await dialog.accept()
        else:
            await dialog.dismiss()
    except PlaywrightError as exc:
        raise TaskFailure(f"answering the dialog failed: {exc.message.splitlines()[0]}") from exc
