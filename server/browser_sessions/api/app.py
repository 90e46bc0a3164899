"""``browser-sessions api``: the cloud browser-session service's REST API (reference/remote-api.md) served on
our local engine, so clients of the service (and our own remote backend) can point at it.

Layers, outermost first: fault injection (tests only, ``BROWSER_SESSIONS_API_FAULTS``), bearer-key auth
(each key is one owner, ``owners.owner_id``), the per-key rate limit of POST ``/start/*``, then the endpoints
(``routes.py``, ``profile_routes.py``) on a ``BackendRouter`` over the local engine, which keeps each owner's
sessions apart.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import re
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import Iterator

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from browser_sessions.api.answers import error_body
from browser_sessions.api.faults import RATE_LIMITED, FaultInjection, parse_faults
from browser_sessions.api.profile_routes import ARCHIVE_PATH
from browser_sessions.api.routes import api_routes
from browser_sessions.backends.router import BackendRouter, open_backends
from browser_sessions.log_files import log_to_file
from browser_sessions.owners import owner_id
from browser_sessions.settings import Settings

logger = logging.getLogger("browser_sessions.api")

WINDOW_SECONDS = 60.0
# Auth, rate-limit and fault answers are exactly the documented bodies (§3.3, §19): no ``code``.
MISSING_KEY = "API key required. Provide Authorization: Bearer <api_key>"


# ----- auth -----


def _public(scope: Scope) -> bool:
    """The health check, and a profile archive (its link's token, not a key, opens it)."""
    if scope["method"] not in ("GET", "HEAD"):
        return False
    return scope["path"] == "/start/health" or ARCHIVE_PATH.fullmatch(scope["path"]) is not None


class BearerAuth:
    """``Authorization: Bearer <key>`` with one of the configured keys on every endpoint but the public ones;
    the key is kept in ``scope["state"]["api_key"]`` for the rate limit, and its owner id (derived once per
    key, at start) in ``scope["state"]["owner"]`` for the endpoints."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self.keys = [(key.encode(), owner_id(key)) for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _public(scope):
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        found = self._key(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            given = scheme.lower() == "bearer" and token.strip()
            message = "Invalid or revoked API key" if given else MISSING_KEY
            await JSONResponse(error_body(message), 401, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        key, owner = found
        await self.app({**scope, "state": {**scope.get("state", {}), "api_key": key, "owner": owner}}, receive, send)

    def _key(self, token: str) -> tuple[str, str] | None:
        given = token.encode()
        found = None
        for key, owner in self.keys:  # every key compared, so the time taken does not tell which one matched
            if hmac.compare_digest(given, key):
                found = (key.decode(), owner)
        return found


# ----- rate limit -----


class RateLimit:
    """POST ``/start/*``: at most ``limit`` requests per key in any 60 s (a sliding window). Requests that
    fail count, as the service documents; requests refused here with 429 do not, so ``Retry-After`` holds.
    Every limited response carries X-RateLimit-Limit / -Remaining / -Reset (unix seconds when the oldest
    request in the window leaves it, i.e. when a slot frees)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.hits: defaultdict[str, deque[float]] = defaultdict(deque)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/start/"):
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        hits = self.hits[scope["state"]["api_key"]]
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        if len(hits) >= self.limit:
            wait = hits[0] + WINDOW_SECONDS - now
            headers = {**self._headers(hits, now), "Retry-After": str(max(1, math.ceil(wait)))}
            await JSONResponse(error_body(RATE_LIMITED), 429, headers)(scope, receive, send)
            return
        hits.append(now)
        extra = [(name.lower().encode(), value.encode()) for name, value in self._headers(hits, now).items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, hits: deque[float], now: float) -> dict[str, str]:
        reset = time.time() + (hits[0] + WINDOW_SECONDS - now)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - len(hits))),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }


# ----- the app -----


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (unknown path, wrong method) in the service's error shape."""
    assert isinstance(exc, HTTPException)
    message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
    return JSONResponse(error_body(message), exc.status_code, exc.headers)


async def _crash(request: Request, exc: Exception) -> Response:
    # Reached only for an error outside the endpoints (they answer their own); uvicorn logs the traceback.
    return JSONResponse(error_body("Internal server error"), 500)


def build_api(settings: Settings, router: BackendRouter) -> Starlette:
    """The ASGI app serving the service's API on ``router`` (the local engine and the records)."""
    return Starlette(
        routes=api_routes(settings, router),
        middleware=[
            Middleware(FaultInjection, faults=parse_faults(settings.api_faults), rate_limit=settings.api_rate_limit),
            Middleware(BearerAuth, keys=settings.api_key_list),
            Middleware(RateLimit, limit=settings.api_rate_limit),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would re-raise SIGTERM once it stops, killing the process before the engine closes its
        # browser; serve_api handles the signals itself instead.
        yield


async def serve_api(settings: Settings) -> None:
    """Serve on settings.api_host:api_port until SIGINT/SIGTERM or cancellation; then stop taking requests,
    let running ones finish (5 s at most) and end every session and the browser."""
    parse_faults(settings.api_faults)  # a bad entry stops us before the browser starts
    logging.basicConfig(level=settings.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    local_only = settings.model_copy(update={"backend": "local", "remote_url": None})  # never a service's client
    async with open_backends(local_only) as router:
        config = uvicorn.Config(
            build_api(settings, router),
            host=settings.api_host,
            port=settings.api_port,
            lifespan="off",
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=5,
        )
        logging.getLogger("uvicorn.access").addFilter(_hide_link_tokens)
        log_to_file(settings)  # after uvicorn.Config, which resets the handlers of uvicorn's loggers
        server = _Server(config)
        host = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
        logger.info("browser-sessions api on http://%s:%d", host, settings.api_port)  # never the keys
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signals, server)
            try:
                await server.serve()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    if server.started:  # stop listening and let running requests finish, as on a signal
                        await server.shutdown()
                raise
            group.cancel_scope.cancel()


_TOKEN = re.compile(r"([?&]token=)[^&\s]*")


def _hide_link_tokens(record: logging.LogRecord) -> bool:
    """The access log line of a profile archive without its link's token (a short-lived credential)."""
    if isinstance(record.args, tuple) and any(isinstance(arg, str) and "token=" in arg for arg in record.args):
        record.args = tuple(_TOKEN.sub(r"\1[hidden]", arg) if isinstance(arg, str) else arg for arg in record.args)
    return True


async def _stop_on_signals(server: uvicorn.Server) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            server.force_exit = server.should_exit  # a second signal stops waiting for running requests
            server.should_exit = True
