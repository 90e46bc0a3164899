"""What the remote backend cannot do: the service's API only runs tasks, with no page access."""

from __future__ import annotations

from typing import NoReturn

from browser_sessions.errors import NotSupported
from browser_sessions.step_models import ActRequest, ActResult, SnapshotFormat, SnapshotResult

NO_PAGE_ACCESS = (
    "The remote service offers no step tools, screenshots or downloads (its API only runs tasks); start a local "
    "session (backend=local) to drive the page yourself."
)


class NoPageAccess:
    """The Backend methods that need the page: each checks the session exists, then refuses."""

    def _session(self, session_id: str) -> object:
        raise NotImplementedError

    def _refuse(self, session_id: str) -> NoReturn:
        self._session(session_id)  # an unknown session is SessionNotFound, as for every call
        raise NotSupported(NO_PAGE_ACCESS)

    async def screenshot(self, session_id: str) -> bytes:
        self._refuse(session_id)

    async def download(self, session_id: str, name: str) -> bytes:
        self._refuse(session_id)

    async def step_snapshot(
        self, session_id: str, *, max_chars: int, ref: str | None, find: str | None, format: SnapshotFormat
    ) -> SnapshotResult:
        self._refuse(session_id)

    async def step_act(self, session_id: str, request: ActRequest, *, max_chars: int) -> ActResult:
        self._refuse(session_id)

    async def step_screenshot(self, session_id: str, *, full_page: bool, ref: str | None) -> bytes:
        self._refuse(session_id)
