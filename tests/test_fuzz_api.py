"""Hostile and random requests at every REST endpoint of ``browser-sessions api`` (a real subprocess): random
and hostile JSON bodies shaped by the endpoints' models (tests/fuzz_values.py), bodies that are not JSON or
not objects, wrong methods, odd paths, odd and missing headers.

Properties: never a 500 (a 503 "No available instances." is the documented answer at the session limit) and
never a traceback; every error answer is JSON ``{"success": false, "message"}`` with a message; a planted
secret is never answered or logged; afterwards the health check answers and a real task completes.

Requests are plain httpx calls from plain test functions (no event loop shared with hypothesis's draws;
tests/test_fuzz.py says why). Each example first ends the sessions the previous one started and starts a
victim session whose id the examples use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from browser_sessions.api.routes import api_routes
from browser_sessions.models import SessionConfig, TaskSpec
from tests.conftest import make_settings
from tests.fuzz_values import CANARY, FUZZ_SETTINGS, NESTING_KEYS, Targets, arguments, hostile, leaks
from tests.processes import api_process
from tests.site import Site

KEY = {"Authorization": "Bearer test-key-1"}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND"]


def _task_schema() -> dict[str, Any]:
    schema = TaskSpec.model_json_schema(by_alias=True)
    # the newer dialect's names for two fields (reference/remote-api.md §0.3)
    schema["properties"] |= {"prompt": {"type": "string"}, "startingUrl": {"type": "string"}}
    return schema


def _body_schemas() -> dict[str, dict[str, Any]]:
    """The JSON bodies the known POST endpoints read, as JSON schemas."""
    task = _task_schema()
    start = SessionConfig.model_json_schema(by_alias=True)
    start["properties"] |= {"environmentId": {"type": "string"}, "task": task}
    run = {**task, "properties": {**task["properties"], "profileId": {"type": "string"}, "task": task}}
    message = {
        **task,
        "properties": {
            "actionType": {"enum": ["newTask", "state", "guardrail", "interaction"]},
            "newState": {"enum": ["start", "pause", "resume", "stop", "terminate"]},
            **task["properties"],
        },
        "required": ["actionType"],
    }
    send = {"type": "object", "properties": {"sessionId": {"type": "string"}, "message": message}}
    return {"/start/start-session": start, "/start/run-task": run, "/start/send-message": send}


BODY_SCHEMAS = _body_schemas()
# only the routes' paths and methods are read: no backend is needed
ROUTES = [(route.path, sorted(route.methods or [])) for route in api_routes(make_settings(), None)]  # type: ignore[arg-type]

not_json = st.sampled_from(
    [
        b"",
        b"{",
        b'{"taskDetails": "extract text"',
        b"\xff\xfe\x00garbage",
        b"null",
        b'"a string"',
        b"[1, 2, 3]",
        b"NaN",
        b'{"a": 1e999999}',
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b"x" * 1_200_000,
        b'{"taskDetails": "\\ud800"}',
        b"--boundary\r\nContent-Disposition: form-data; name=x\r\n\r\ny\r\n--boundary--",
        # profile uploads: a file that is no archive, a file with no name, a part with no name, no end
        b'--boundary\r\nContent-Disposition: form-data; name="file"; filename="p.tar.gz"\r\n\r\n\x1f\x8bxx\r\n'
        b"--boundary--",
        b'--boundary\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\n\x00\r\n--boundary--',
        b"--boundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--boundary--",
        b'--boundary\r\nContent-Disposition: form-data; name="file"; filename="a.tgz"\r\n\r\n' + b"\x1f" * 5000,
    ]
)
header_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-ABCXYZ_0123456789"), min_size=1, max_size=20)
# printable ASCII without surrounding blanks: anything else httpx refuses to send
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200).map(str.strip)
odd_headers = st.sampled_from(
    [
        {},
        {"Host": "evil.test"},
        {"Host": "127.0.0.1:1"},
        {"Origin": "http://evil.test"},
        {"X-Forwarded-For": "169.254.169.254"},
        {"Accept": "text/html"},
        {"Transfer-Encoding": "chunked"},
    ]
)
bad_auth_headers = st.sampled_from(
    [
        {"Authorization": "Bearer test-key-2"},
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "bearer test-key-1"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
        {"Authorization": "Bearer test-key-1 test-key-2"},
        {"Authorization": "Bearer " + "k" * 8000},
    ]
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "*/*",
        "multipart/form-data; boundary=boundary",
        "multipart/form-data",
    ]
)


@dataclass
class Served:
    url: str
    log: Path
    http: httpx.Client
    targets: Targets
    started: dict[str, dict[str, str]] = field(default_factory=dict)  # sessionId -> the headers that started it

    def start_victim(self) -> None:
        """End the sessions the last example started, then start the victim this one aims at."""
        for session_id, headers in self.started.items():
            self.http.post("/start/send-message", json=_state(session_id, "terminate"), headers=headers)
        self.started.clear()
        response = self.http.post("/start/start-session", json={}, headers=KEY)
        assert response.status_code == 200, response.text
        self.targets.session_ids[0] = response.json()["sessionId"]
        self.started[self.targets.session_ids[0]] = KEY

    def settled(self, response: httpx.Response) -> dict[str, Any]:
        """A task answer, polled to its end when it came back pending."""
        body: dict[str, Any] = response.json()
        deadline = time.monotonic() + 30
        while body.get("pending") and time.monotonic() < deadline:
            time.sleep(0.2)
            body = self.http.get(body["pollUrl"], headers=KEY).json()
        return body


def _state(session_id: str, new_state: str) -> dict[str, Any]:
    return {"sessionId": session_id, "message": {"actionType": "state", "newState": new_state}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("fuzz-api") / "api.log"
    with (
        api_process(log, BROWSER_SESSIONS_API_RATE_LIMIT="100000") as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        served = Served(url, log, http, Targets(site=site.url("").rstrip("/")))
        done = served.settled(http.post("/start/run-task", json={"taskDetails": "extract text"}, headers=KEY))
        assert done.get("type") == "task_completed", done
        served.targets.session_ids += ["victim, set per example", done["sessionId"]]
        served.targets.task_ids.append(done["taskId"])
        yield served


@st.composite
def requests(draw: st.DrawFn, path: str, methods: list[str], targets: Targets) -> dict[str, Any]:
    """One request for the route ``path``: its method or another, its path parameters from the targets,
    some headers, and a body: a JSON object shaped by the endpoint, other JSON, or bytes that are not JSON."""
    method = draw(st.sampled_from(METHODS if draw(st.integers(0, 4)) == 0 else methods))
    route = path
    for parameter in [part for part in route.split("/") if part.startswith("{")]:
        value = draw(targets.task_id() if "task" in parameter else targets.session_id())
        path = path.replace(parameter, quote(value, safe=""))
    auth = draw(bad_auth_headers) if draw(st.integers(0, 4)) == 0 else KEY  # most requests get past the key check
    headers = {**auth, "Content-Type": draw(content_types)}
    headers |= draw(odd_headers) | draw(st.dictionaries(header_names, header_values, max_size=3))
    schema = BODY_SCHEMAS.get(route, {"type": "object"})
    kind = draw(st.sampled_from(["shaped", "shaped", "json", "deep", "bytes", "none"]))
    if kind == "shaped":
        body: bytes | None = json.dumps(draw(arguments(schema, targets))).encode()
    elif kind == "json":
        body = json.dumps(draw(hostile())).encode()
    elif kind == "deep":  # written out, since json.dumps itself stops near Python's recursion limit
        depth = draw(st.sampled_from([64, 65, 200, 900, 990, 1000, 5000, 100_000]))
        key = draw(st.sampled_from(NESTING_KEYS))
        body = (f'{{"{key}":' * depth + '"x"' + "}" * depth).encode()
    elif kind == "bytes":
        body = draw(not_json)
    else:
        body = None
    return {"method": method, "url": path, "headers": headers, "content": body}


odd_paths = st.one_of(
    st.sampled_from(
        [
            "/",
            "/start",
            "/start/",
            "/start/health/",
            "/start/run-task/x",
            "/task",
            "/task/a",
            "/task/a/b/c",
            "/task//",
            "/profiles",
            "/%00",
            "/start/%2e%2e/task/a/b",
            "/start/run-task?taskDetails=extract%20text",
            "/" + "a" * 5000,
        ]
    ),
    st.lists(st.text(max_size=20), max_size=4).map(lambda parts: "/" + "/".join(quote(p, safe="") for p in parts)),
)


def check_answer(request: dict[str, Any], response: httpx.Response) -> None:
    where = f"{request['method']} {request['url']} -> {response.status_code}"
    assert response.status_code < 500 or response.status_code == 503, f"{where}: {response.text[:2000]}"
    assert not leaks(response.text), (where, leaks(response.text), response.text[:2000])
    if request["method"] == "HEAD" or response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        pytest.fail(f"{where}: the error answer is not JSON: {response.text[:2000]!r}")
    assert isinstance(body, dict) and body.get("success") is False, f"{where}: {body}"
    assert isinstance(body.get("message"), str) and body["message"].strip(), f"{where}: {body}"


@FUZZ_SETTINGS
@given(data=st.data())
def test_every_endpoint_answers_hostile_requests_clearly(served: Served, data: st.DataObject) -> None:
    served.start_victim()
    sent = [data.draw(requests(path, methods, served.targets), label=path) for path, methods in ROUTES]
    odd = {"method": data.draw(st.sampled_from(METHODS)), "url": data.draw(odd_paths), "headers": KEY, "content": None}
    for request in [*sent, odd]:
        response = served.http.request(**request)
        check_answer(request, response)
        if response.status_code == 200 and request["method"] != "HEAD":
            answer = response.json()
            if isinstance(answer, dict) and isinstance(answer.get("sessionId"), str):
                served.started[answer["sessionId"]] = request["headers"]


def test_the_api_keeps_serving_after_the_fuzzing(served: Served, site: Site) -> None:
    """Runs after the fuzzing (module order)."""
    served.start_victim()
    health = served.http.get("/start/health")
    assert (health.status_code, health.json()) == (200, {"success": True, "status": "ok"})
    task = {"taskDetails": f"go to {site.url('/table')}\nextract table"}
    body = served.settled(served.http.post("/start/run-task", json=task, headers=KEY))
    assert body.get("type") == "task_completed", body
    assert "Cable, long" in body["data"]["message"]
    log = served.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]
    assert CANARY not in log


def test_deep_nesting_is_refused_clearly(served: Served) -> None:
    """Found while building the fuzzing: an outputSchema nested past jsonschema's recursion answered 500, and a
    body nested past Python's JSON parser was called "not a JSON object"."""
    schema = '{"not":' * 300 + '{"type": "object"}' + "}" * 300
    deep_schema = f'{{"taskDetails": "extract text", "outputType": "structured_json", "outputSchema": {schema}}}'
    for body, message in [
        (deep_schema, "outputSchema nests more than 64 levels of objects and lists; flatten it"),
        ('{"a":' * 5000 + "1" + "}" * 5000, "The request body nests objects or lists too deeply; flatten it."),
    ]:
        response = served.http.post("/start/run-task", content=body, headers=KEY)
        assert response.status_code == 400, response.text
        assert message in response.json()["message"]
