"""Fault injection for tests of clients of ``browser-sessions api`` (``BROWSER_SESSIONS_API_FAULTS``): answer
429, 500 or 503 without processing a request, stall it, or drop the connection mid-answer, on a schedule."""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from browser_sessions.api.answers import error_body
from browser_sessions.errors import InvalidInput

logger = logging.getLogger("browser_sessions.api")

RATE_LIMITED = "Rate limit exceeded. Please try again later."
_FAULT = re.compile(r"(429|500|503|drop|stall:(\d+(?:\.\d*)?))(?:@(.*))?")
_FAULT_BODIES = {"500": "Internal server error", "503": "No available instances."}


@dataclass(frozen=True)
class Fault:
    kind: str  # 429, 500, 503, stall or drop
    prefix: str = ""
    seconds: float = 0.0


def parse_faults(text: str) -> list[Fault]:
    """``FAULT[@PATH_PREFIX]`` entries, comma-separated; InvalidInput naming a bad one."""
    faults: list[Fault] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        if not (match := _FAULT.fullmatch(entry)):
            raise InvalidInput(
                f"BROWSER_SESSIONS_API_FAULTS entry {entry!r}: write 429, 500, 503, stall:SECONDS or drop, "
                "optionally followed by @PATH_PREFIX"
            )
        kind, seconds, prefix = match.groups()
        faults.append(Fault("stall" if seconds else kind, prefix or "", float(seconds or 0)))
    return faults


class FaultInjection:
    """Each fault is used once, by the next request whose path starts with its prefix, in the order given.
    429/500/503 answer without processing the request; ``stall`` holds the request (its body already read,
    so it takes effect even if the client gives up) and then processes it; ``drop`` processes it and then
    breaks the connection mid-response."""

    def __init__(self, app: ASGIApp, faults: list[Fault], rate_limit: int) -> None:
        self.app = app
        self.pending = list(faults)
        self.rate_limit = rate_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self._take(scope["path"]) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        logger.warning("injecting fault %s into %s %s", fault.kind, scope["method"], scope["path"])
        if fault.kind == "429":
            reset = str(math.ceil(time.time()) + 1)
            headers = {"Retry-After": "1", "X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": "0"}
            await JSONResponse(error_body(RATE_LIMITED), 429, {**headers, "X-RateLimit-Reset": reset})(
                scope, receive, send
            )
        elif fault.kind in _FAULT_BODIES:
            await JSONResponse(error_body(_FAULT_BODIES[fault.kind]), int(fault.kind))(scope, receive, send)
        elif fault.kind == "stall":
            replay = await _buffered(receive)
            await anyio.sleep(fault.seconds)
            await self.app(scope, replay, send)
        else:
            await self._drop(scope, receive, send)

    def _take(self, path: str) -> Fault | None:
        for index, fault in enumerate(self.pending):
            if path.startswith(fault.prefix):
                return self.pending.pop(index)
        return None

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response's head with its full Content-Length but only the first half of its body, then
        return unfinished: uvicorn then closes the connection, and the client sees it drop mid-body."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        declared = max(len(body), 1)  # always more than is sent
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(declared).encode())]})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now (uvicorn hands a disconnect, not the body, to a reader that comes
    after the client left) and return a ``receive`` that replays it."""
    body = bytearray()
    message: Message = {"more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    return replay
