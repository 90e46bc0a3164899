"""What the server's lifespan yields: the backend and the notifier, reached by handlers through ``app``;
``sessions`` is the backend as the calling request's owner sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context

from browser_sessions.backends.router import BackendRouter
from browser_sessions.mcp.http_boundary import request_owner
from browser_sessions.mcp.notifications import Notifier
from browser_sessions.settings import Settings


@dataclass(frozen=True)
class AppState:
    settings: Settings
    backend: BackendRouter
    notifier: Notifier


def app(ctx: Context[Any]) -> AppState:
    """The running server's state; also remembers the caller's connection for change notifications."""
    state: AppState = ctx.request_context.lifespan_context
    state.notifier.remember(ctx.request_context.session, ctx.request_context.protocol_version)
    return state


def sessions(ctx: Context[Any]) -> BackendRouter:
    """The backend for this request's owner (http_boundary.py): only their sessions exist for it."""
    return app(ctx).backend.owned_by(request_owner())
