"""Values of the step tools (``browser_snapshot``, ``browser_act``, ``browser_screenshot``), camelCase on the
wire like the rest of the vocabulary in ``models.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from browser_sessions.models import DownloadInfo, TabInfo, WireModel, check_page_url

ActionName = Literal[
    "navigate",
    "click",
    "type",
    "select",
    "check",
    "press",
    "hover",
    "scroll",
    "back",
    "forward",
    "wait",
    "upload",
    "tab",
    "dialog",
]

SnapshotFormat = Literal["text", "json"]

_NEEDS: dict[str, tuple[str, ...]] = {
    "navigate": ("url",),
    "click": ("ref",),
    "type": ("ref", "text"),
    "select": ("ref", "option"),
    "check": ("ref", "checked"),
    "press": ("key",),
    "hover": ("ref",),
    "upload": ("ref", "file"),
    "tab": ("tab_action",),
    "dialog": ("accept",),
}
_WIRE = {"tab_action": "tabAction"}


class ActRequest(WireModel):
    """One step; which fields it needs depends on ``action`` (checked here, with a message naming them)."""

    action: ActionName
    url: str | None = None
    ref: str | None = None
    text: str | None = None
    submit: bool = False
    option: str | None = None
    checked: bool | None = None
    key: str | None = None
    direction: Literal["up", "down", "left", "right"] | None = None
    amount: int = Field(default=600, ge=1, le=20_000)
    seconds: float | None = Field(default=None, gt=0, le=60)
    file: str | None = None
    tab_action: Literal["list", "switch", "close"] | None = None
    index: int | None = Field(default=None, ge=0)
    accept: bool | None = None

    @model_validator(mode="after")
    def _fields_for_action(self) -> ActRequest:
        missing = [_WIRE.get(name, name) for name in _NEEDS.get(self.action, ()) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"action {self.action} needs {', '.join(missing)}")
        if self.action == "navigate" and self.url is not None:
            check_page_url(self.url)
        if self.action == "scroll" and self.ref is None and self.direction is None:
            raise ValueError("action scroll needs ref (scroll it into view) or direction (up, down, left, right)")
        if self.action == "wait" and (self.text is None) == (self.seconds is None):
            raise ValueError("action wait needs exactly one of text or seconds")
        if self.action == "tab" and self.tab_action in ("switch", "close") and self.index is None:
            raise ValueError(f"tab {self.tab_action} needs index (see tabAction list)")
        return self


class DialogInfo(WireModel):
    type: str = Field(description="alert, confirm, prompt or beforeunload")
    message: str
    default_value: str | None = None
    how_to_answer: str = 'browser_act action="dialog" accept=true|false (text="..." for a prompt)'


class ActResult(WireModel):
    session_id: str
    action: ActionName
    url: str
    title: str
    changes: list[str] = Field(description="What the step changed, in words.")
    dialog: DialogInfo | None = None
    tabs: list[TabInfo]
    new_downloads: list[DownloadInfo]
    snapshot: str = Field(description="The page after the step: whole (within maxChars) or only what changed.")
    snapshot_kind: Literal["full", "diff", "none"]


class SnapshotElement(WireModel):
    ref: str
    role: str
    name: str
    value: str | None = None
    checked: bool | None = None
    disabled: bool | None = None
    expanded: bool | None = None
    in_viewport: bool


class SnapshotResult(WireModel):
    session_id: str
    url: str
    title: str
    text: str | None = Field(default=None, description="The snapshot (format text).")
    elements: list[SnapshotElement] | None = Field(default=None, description="The elements (format json).")
    chars: int = Field(description="Length of what was returned.")
    dialog: DialogInfo | None = None


class ScreenshotResult(WireModel):
    session_id: str
    uri: str = Field(description="Resource with a fresh screenshot of the current viewport.")
    full_page: bool
    ref: str | None = None
    size_bytes: int
    png: SkipJsonSchema[bytes] = Field(default=b"", exclude=True, repr=False)  # sent as image content
