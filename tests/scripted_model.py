"""A scripted language model: real HTTP on 127.0.0.1 speaking both the Anthropic Messages and the OpenAI
chat-completions wire formats, answering each request with the next turn of a script and recording every
request, so agent-loop tests can drive a task turn by turn and assert what the model was shown."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Api = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class Received:
    api: Api
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]

    def observation(self) -> str:
        """Text of the LAST tool result (anthropic tool_result block / openai role=tool message), or of the last
        user text if there is none."""
        results = [t for role, kind, t in self._parts() if kind == "tool_result"]
        users = [t for role, kind, t in self._parts() if role == "user" and kind == "text"]
        return (results or users or [""])[-1]

    def everything(self) -> str:
        """json.dumps(body) — for asserting what the model never received."""
        return json.dumps(self.body)

    def system(self) -> str:
        """The system prompt (anthropic `system`, openai first system message)."""
        if self.api == "anthropic":
            return _text(self.body.get("system"))
        messages = self.body.get("messages") or []
        return next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")

    def _parts(self) -> Iterator[tuple[str, str, str]]:
        """(role, kind, text) of every text-bearing part, in order; kind is ``text`` or ``tool_result``."""
        for message in self.body.get("messages") or []:
            role, content = message.get("role", ""), message.get("content")
            if self.api == "openai":
                yield role, "tool_result" if role == "tool" else "text", _text(content)
            elif isinstance(content, str):
                yield role, "text", content
            else:
                for block in content or []:
                    if block.get("type") in ("text", "tool_result"):
                        yield role, block["type"], _text(block.get("content", block.get("text")))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(_text(part.get("text")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


@dataclass(frozen=True)
class Call:
    """The model calls one tool."""

    name: str
    arguments: dict[str, Any] | Callable[[Received], dict[str, Any]]
    usage: tuple[int, int] | None = (100, 20)  # (input, output) tokens; None = omit usage from the response
    text: str = ""  # optional text alongside the call


@dataclass(frozen=True)
class Say:
    """The model answers text only, no tool call."""

    text: str
    usage: tuple[int, int] | None = (100, 20)


@dataclass(frozen=True)
class Fail:
    """An HTTP error response in the provider's error shape."""

    status: int
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"retry-after": "1"}


@dataclass(frozen=True)
class Raw:
    """A 200 answer with exactly this body: a JSON value, or text sent as it is (e.g. a proxy's HTML page)."""

    body: Any


Turn = Call | Say | Fail | Raw | Callable[[Received], "Turn"]

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class ScriptedModel:
    """The served model. ``script``/``add`` set what it answers; each request consumes one turn, and with
    none left it answers 500 "script exhausted"."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.anthropic_base_url = self.url
        self.openai_base_url = self.url + "/v1"
        self.requests: list[Received] = []
        self._turns: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def script(self, *turns: Turn) -> None:
        """Replace the queue of turns; each request consumes one."""
        with self._lock:
            self._turns = deque(turns)

    def add(self, *turns: Turn) -> None:
        with self._lock:
            self._turns.extend(turns)

    def answer(self, api: Api, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """(status, extra headers, JSON) for one request, which is recorded whatever the answer."""
        received = Received(api, headers, body)
        with self._lock:
            self.requests.append(received)
            turn: Turn = self._turns.popleft() if self._turns else Fail(500, "script exhausted")
            number = next(self._ids)
        while not isinstance(turn, Call | Say | Fail | Raw):
            turn = turn(received)
        if isinstance(turn, Raw):
            return 200, {}, turn.body
        if isinstance(turn, Fail):
            return turn.status, turn.headers, _error(api, turn)
        text = turn.text
        call = None
        if isinstance(turn, Call):
            arguments = turn.arguments(received) if callable(turn.arguments) else turn.arguments
            call = (f"{'toolu' if api == 'anthropic' else 'call'}_{number:04d}", turn.name, arguments)
        shape = _anthropic if api == "anthropic" else _openai
        return 200, {}, shape(number, body.get("model", ""), text, call, turn.usage)


def _anthropic(n: int, model: str, text: str, call: tuple[str, str, Any] | None, usage: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if call:
        content.append({"type": "tool_use", "id": call[0], "name": call[1], "input": call[2]})
    reply: dict[str, Any] = {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if call else "end_turn",
    }
    if usage is not None:
        reply["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    return reply


def _openai(n: int, model: str, text: str, call: tuple[str, str, Any] | None, usage: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if call:
        message["tool_calls"] = [
            {"id": call[0], "type": "function", "function": {"name": call[1], "arguments": json.dumps(call[2])}}
        ]
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}
    reply: dict[str, Any] = {
        "id": f"chatcmpl-{n:04d}",
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
    }
    if usage is not None:
        reply["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return reply


def _error(api: Api, fail: Fail) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(fail.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": fail.message}}
    kind = "server_error" if fail.status >= 500 else "invalid_request_error"
    return {"error": {"message": fail.message, "type": kind, "code": None}}  # OpenAI often sends a null code


_ROUTES: dict[str, Api] = {"/v1/messages": "anthropic", "/v1/chat/completions": "openai"}


def _handler(model: ScriptedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            api = _ROUTES.get(self.path.split("?")[0])
            if api is None:
                return self._send(404, {}, {"error": {"message": f"no route POST {self.path}", "type": "not_found"}})
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, {}, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._send(*model.answer(api, headers, body))

        def _send(self, status: int, headers: dict[str, str], payload: Any) -> None:
            text = isinstance(payload, str)  # a Raw text body goes out as it is
            data = (payload if text else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


_LABELLED = r"(?<![\w-]){role} {name} \[([^\]]*)\]"
_REF = re.compile(r"^(?:f\d+e\d+|e\d+|f\d+)$")


def ref(observation: str, role: str, name: str) -> str:
    """The ref of the element `- {role} "{name}" [..., eN]` in a snapshot text, e.g. 'e3'; AssertionError
    listing the lines if absent."""
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'  # as the snapshot quotes names
    pattern = re.compile(_LABELLED.format(role=re.escape(role), name=re.escape(quoted)))
    for line in observation.splitlines():
        if match := pattern.search(line):
            tokens = [t.strip() for t in match.group(1).split(",")]
            if found := [t for t in tokens if _REF.match(t)]:
                return found[-1]
    lines = [line for line in observation.splitlines() if "[" in line][:80]
    raise AssertionError(f"no {role} {quoted} with a ref among:\n" + "\n".join(lines))


@contextmanager
def serve_model() -> Iterator[ScriptedModel]:
    """A ScriptedModel serving on a free port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    model = ScriptedModel(server.server_address[1])
    server.RequestHandlerClass = _handler(model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
