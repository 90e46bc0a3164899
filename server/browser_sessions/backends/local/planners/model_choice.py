"""Which model drives a free-text task: the provider the settings configure, else the model of the client
that sent the task (MCP sampling, where its connection allows it); with ``BROWSER_SESSIONS_MODEL=sampling``
only the client's."""

from __future__ import annotations

from dataclasses import dataclass

from browser_sessions.backends.local.planners.models.base import ChatModel


@dataclass(frozen=True)
class ModelChoice:
    configured: ChatModel | None = None
    sampling_only: bool = False

    def pick(self, sampling: ChatModel | None) -> ChatModel | None:
        if self.sampling_only:
            return sampling
        return self.configured or sampling
