"""The remote backend's pure pieces, with no service: the client-side rate limiter (on an injected clock),
header parsing, the status -> error mapping, the retry decision table (exercised through
``httpx.MockTransport``, which stands in for nothing else), and output parsing; then one smoke test of
the client against a real ``browser-sessions api`` process (the backend end to end is test_remote_backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest

from browser_sessions.backends.remote.client import (
    ATTEMPTS,
    RemoteClient,
    RemoteSessionGone,
    retry_delay,
    status_error,
)
from browser_sessions.backends.remote.dialects import (
    new_task_message,
    read_task_body,
    start_session_body,
    state_message,
)
from browser_sessions.backends.remote.limiter import SlidingWindowLimiter, retry_after
from browser_sessions.backends.remote.worker import task_output
from browser_sessions.errors import (
    BrowserSessionsError,
    BrowserUnavailable,
    InvalidInput,
    OutputInvalid,
    RemoteServiceError,
)
from browser_sessions.models import TaskSpec
from browser_sessions.settings import Settings
from tests.processes import api_process
from tests.site import Site

pytestmark = pytest.mark.anyio

KEY = "sk-very-secret-key"
BASE = "http://service.test/api"


class FakeTime:
    """A monotonic and a wall clock that move only when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_offset = 1_700_000_000.0 - self.now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(limit: int, fake: FakeTime) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(limit, 60.0, clock=fake.clock, wall=fake.wall, sleep=fake.sleep)


# ----- the limiter -----


async def test_the_window_slides_one_send_at_a_time() -> None:
    fake = FakeTime()
    window = limiter(3, fake)
    for gap in (0, 10, 10):  # sends at 0, 10, 20
        fake.now += gap
        await window.acquire()
    assert fake.slept == [] and window.remaining == 0
    fake.now += 10  # t=30: the send at 0 leaves at 60
    assert window.wait_time() == pytest.approx(30)
    await window.acquire()
    assert fake.now == pytest.approx(1060)
    await window.acquire()  # the send at 10 leaves at 70
    assert fake.now == pytest.approx(1070)
    assert fake.slept == [pytest.approx(30), pytest.approx(10)]


async def test_the_server_count_is_adopted_when_lower() -> None:
    fake = FakeTime()
    window = limiter(10, fake)
    await window.acquire()
    reset = fake.wall() + 20  # unix seconds
    window.observe(httpx.Headers({"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": str(reset)}))
    assert window.remaining == 2
    await window.acquire()
    await window.acquire()
    assert window.wait_time() == pytest.approx(20)  # the phantom sends leave when the server's count resets
    fake.now += 20
    assert window.remaining == 7  # only our own sends of the last minute remain counted


def test_a_higher_or_stale_server_count_changes_nothing() -> None:
    fake = FakeTime()
    window = limiter(10, fake)
    window.observe(httpx.Headers({"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": str(fake.wall() + 30)}))
    window.observe(httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(fake.wall() - 5)}))
    window.observe(httpx.Headers({"X-RateLimit-Remaining": "soon"}))
    assert window.remaining == 10


def test_reset_as_seconds_from_now_and_missing_reset() -> None:
    fake = FakeTime()
    window = limiter(10, fake)
    window.observe(httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"}))
    assert window.wait_time() == pytest.approx(12)
    other = limiter(10, fake)
    other.observe(httpx.Headers({"X-RateLimit-Remaining": "9"}))
    assert other.remaining == 9 and other.wait_time() == 0


def test_hold_blocks_every_slot_for_a_while() -> None:
    fake = FakeTime()
    window = limiter(10, fake)
    window.hold(7)
    assert window.remaining == 0 and window.wait_time() == pytest.approx(7)
    fake.now += 7
    assert window.remaining == 10


def test_retry_after_reads_seconds_and_dates() -> None:
    wall = 1_700_000_000.0
    assert retry_after(httpx.Headers({"Retry-After": "17"})) == 17
    assert retry_after(httpx.Headers({"Retry-After": " 2.5 "})) == 2.5
    assert retry_after(httpx.Headers({"Retry-After": "-3"})) == 0
    date = format_datetime(datetime.fromtimestamp(wall + 30, UTC), usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": date}), wall=lambda: wall) == pytest.approx(30)
    assert retry_after(httpx.Headers({"Retry-After": "tomorrow-ish"})) is None
    assert retry_after(httpx.Headers({})) is None


# ----- statuses -> errors -----


@pytest.mark.parametrize(
    ("status", "body", "session_id", "kind", "code", "says"),
    [
        (400, {"success": False, "message": "taskDetails is required"}, None, InvalidInput, None, "taskDetails"),
        (401, {"message": "Invalid or revoked API key"}, None, RemoteServiceError, "UNAUTHORIZED", "REMOTE_API_KEY"),
        (401, {"message": "Invalid or revoked API key"}, "s1", RemoteServiceError, "UNAUTHORIZED", "revoked"),
        (401, {"message": "Session not found or unauthorized"}, "s1", RemoteSessionGone, "SESSION_NOT_FOUND", "s1"),
        (402, {"message": "Insufficient balance.", "balance": 0.15}, None, RemoteServiceError, None, "0.15 USD"),
        (403, {"message": "Account is deactivated"}, None, RemoteServiceError, "FORBIDDEN", "deactivated"),
        (404, {"success": False, "message": "Session not found"}, "s1", RemoteSessionGone, None, "no longer"),
        (404, {"error": "Task not found"}, "s1", RemoteServiceError, "NOT_FOUND", "Task not found"),
        (404, None, None, RemoteServiceError, "NOT_FOUND", "HTTP 404"),
        (429, {"message": "Rate limit exceeded."}, None, RemoteServiceError, "RATE_LIMIT_EXCEEDED", "a minute"),
        (503, {"message": "No available instances."}, None, BrowserUnavailable, None, "no available instances"),
        (500, {"message": "Internal server error"}, None, RemoteServiceError, "REMOTE_ERROR", "HTTP 500"),
        (418, "teapot", None, RemoteServiceError, "REMOTE_ERROR", "HTTP 418"),
    ],
)
def test_status_error_mapping(
    status: int, body: Any, session_id: str | None, kind: type[Exception], code: str | None, says: str
) -> None:
    error = status_error(status, body, session_id=session_id)
    assert type(error) is kind
    assert isinstance(error, BrowserSessionsError)
    if code is not None:
        assert error.code == code
    assert says in error.message


def test_insufficient_balance_code() -> None:
    error = status_error(402, {"message": "Insufficient balance."})
    assert isinstance(error, RemoteServiceError) and error.code == "INSUFFICIENT_BALANCE"
    assert "balance" in error.message


@pytest.mark.parametrize(
    ("trouble", "creates", "retried"),
    [
        ("never_sent", True, True),
        ("never_sent", False, True),
        ("rate_limited", True, True),
        ("rate_limited", False, True),
        ("unavailable", True, True),
        ("unavailable", False, True),
        ("server_error", True, False),
        ("server_error", False, True),
        ("maybe_sent", True, False),
        ("maybe_sent", False, True),
    ],
)
def test_retry_decision_table(trouble: Any, creates: bool, retried: bool) -> None:
    assert (retry_delay(trouble, creates=creates, attempt=1) is not None) is retried
    assert retry_delay(trouble, creates=creates, attempt=ATTEMPTS) is None  # bounded


def test_backoff_doubles_and_retry_after_wins() -> None:
    delays = [retry_delay("unavailable", creates=False, attempt=n) for n in range(1, ATTEMPTS)]
    assert delays == sorted(delays) and delays[1] == 2 * delays[0]
    assert retry_delay("rate_limited", creates=True, attempt=1, hinted=13.0) == 13.0


# ----- the client over a scripted transport -----

Reply = httpx.Response | Exception


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def script(fake: FakeTime) -> Callable[[list[Reply]], tuple[RemoteClient, list[httpx.Request]]]:
    """A client whose transport plays ``replies`` in order and records the requests it got (the mock
    transport holds no connections, so nothing needs closing)."""

    def make(replies: list[Reply]) -> tuple[RemoteClient, list[httpx.Request]]:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            reply = replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply

        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        settings = Settings(remote_url=BASE + "/", remote_api_key=KEY)
        return RemoteClient(settings, http, limiter(10, fake), sleep=fake.sleep), seen

    return make


def ok(body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body or {"success": True, "sessionId": "s1"}, headers=headers)


def status(code: int, message: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(code, json={"success": False, "message": message}, headers=headers)


async def test_requests_carry_the_key_and_stay_on_the_base_url(script: Any) -> None:
    client, seen = script([ok(), ok({"success": True, "status": "running"})])
    assert await client.post("/start/start-session", {"mode": "default"}, creates=True) == {
        "success": True,
        "sessionId": "s1",
    }
    await client.get(RemoteClient.task_path("s/1", "../t?x"))
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert str(seen[0].url) == f"{BASE}/start/start-session"
    assert seen[1].url.raw_path == b"/api/task/s%2F1/..%2Ft%3Fx"
    assert KEY not in repr(client)


@pytest.mark.parametrize("creates", [True, False])
async def test_429_waits_for_retry_after_and_resends(script: Any, fake: FakeTime, creates: bool) -> None:
    client, seen = script([status(429, "Rate limit exceeded.", **{"Retry-After": "7"}), ok()])
    await client.post("/start/send-message", {}, creates=creates)
    assert len(seen) == 2 and fake.slept[0] == 7


async def test_429_beyond_the_budget_gives_up_at_once(script: Any) -> None:
    client, seen = script([status(429, **{"Retry-After": "600"})])
    with pytest.raises(RemoteServiceError) as caught:
        await client.get("/task/s1/t1")
    assert caught.value.code == "RATE_LIMIT_EXCEEDED" and "600 s" in caught.value.message and len(seen) == 1


@pytest.mark.parametrize("creates", [True, False])
async def test_503_is_retried_then_reported_as_no_instances(script: Any, creates: bool) -> None:
    client, seen = script([status(503, "No available instances.")] * ATTEMPTS)
    with pytest.raises(BrowserUnavailable, match="no available instances"):
        await client.post("/start/start-session", {}, creates=creates)
    assert len(seen) == ATTEMPTS


@pytest.mark.parametrize(
    "trouble",
    [
        status(500, "Internal server error"),
        status(502),
        status(504),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadError("reset"),
    ],
)
async def test_unclear_outcomes_are_resent_only_when_nothing_is_created(script: Any, trouble: Reply) -> None:
    client, seen = script([trouble])
    with pytest.raises(RemoteServiceError) as caught:
        await client.post("/start/run-task", {"taskDetails": "x"}, creates=True)
    assert caught.value.code == "OUTCOME_UNKNOWN" and len(seen) == 1
    assert "not resent" in caught.value.message and "may or may not have created" in caught.value.message

    client, seen = script([trouble, ok()])
    assert await client.get("/task/s1/t1") == {"success": True, "sessionId": "s1"}
    assert len(seen) == 2


@pytest.mark.parametrize("creates", [True, False])
async def test_requests_never_sent_are_retried(script: Any, creates: bool) -> None:
    client, seen = script([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), ok()])
    await client.post("/start/start-session", {}, creates=creates)
    assert len(seen) == 3

    client, seen = script([httpx.ConnectError("refused")] * ATTEMPTS)
    with pytest.raises(RemoteServiceError) as caught:
        await client.post("/start/start-session", {}, creates=creates)
    assert caught.value.code == "REMOTE_UNREACHABLE" and len(seen) == ATTEMPTS and KEY not in caught.value.message


async def test_session_not_found_is_told_apart_from_a_bad_key(script: Any) -> None:
    client, _ = script([status(401, "Session not found or unauthorized")])
    with pytest.raises(RemoteSessionGone):
        await client.post("/start/send-message", {}, creates=False, session_id="s1")
    client, _ = script([status(401, "Invalid or revoked API key")])
    with pytest.raises(RemoteServiceError) as caught:
        await client.post("/start/start-session", {}, creates=True)
    assert caught.value.code == "UNAUTHORIZED"


async def test_a_create_answered_without_json_has_an_unknown_outcome(script: Any) -> None:
    client, _ = script([httpx.Response(200, text="<html>")])
    with pytest.raises(RemoteServiceError) as caught:
        await client.post("/start/start-session", {}, creates=True)
    assert caught.value.code == "OUTCOME_UNKNOWN"


async def test_posts_spend_the_budget_and_adopt_the_server_count(script: Any, fake: FakeTime) -> None:
    client, _ = script([ok(**{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(fake.wall() + 40)}), ok(), ok()])
    await client.get("/task/s1/t1")  # GETs are not limited and their headers are not read
    assert client.limiter.remaining == 10
    await client.post("/start/send-message", {}, creates=False)
    await client.post("/start/send-message", {}, creates=False)
    assert fake.slept == []
    client, _ = script([ok(**{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(fake.wall() + 40)}), ok()])
    await client.post("/start/send-message", {}, creates=False)
    await client.post("/start/send-message", {}, creates=False)
    assert fake.slept == [pytest.approx(40)]


def test_the_url_is_required_and_checked() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(InvalidInput, match="BROWSER_SESSIONS_REMOTE_URL"):
        RemoteClient(Settings(remote_url=None), http)
    with pytest.raises(InvalidInput, match="BROWSER_SESSIONS_REMOTE_URL"):
        RemoteClient(Settings(remote_url="ftp://x"), http)


# ----- outputs -----


def test_outputs_per_output_type() -> None:
    text = TaskSpec(task_details="x")
    assert task_output(text, "hello") == "hello"
    assert task_output(text, None) == ""
    schema = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "number"}}}}
    rows = TaskSpec(task_details="x", output_type="structured_json", output_schema=schema)
    assert task_output(rows, '[{"n": 1}]') == [{"n": 1}]
    with pytest.raises(OutputInvalid, match="not JSON"):
        task_output(rows, "n=1")
    with pytest.raises(OutputInvalid, match="does not match outputSchema at 0/n"):
        task_output(rows, '[{"n": "one"}]')
    table = TaskSpec(task_details="x", output_type="structured_csv", output_schema=["name", "price"])
    assert task_output(table, 'name,price\nA,"$1,000"\n') == 'name,price\nA,"$1,000"\n'
    with pytest.raises(OutputInvalid):
        task_output(table, "")


# ----- smoke: the client against a real `browser-sessions api` process -----


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``browser-sessions api`` with its own rate-limit budget."""
    log = tmp_path_factory.mktemp("service") / "api.log"
    with api_process(log, BROWSER_SESSIONS_API_KEYS=KEY, BROWSER_SESSIONS_API_INLINE_WAIT="1") as url:
        yield url


async def test_the_client_drives_a_real_service(service: str, site: Site) -> None:
    settings = Settings(remote_url=service, remote_api_key=KEY)
    async with httpx.AsyncClient(timeout=30) as http:
        client = RemoteClient(settings, http)
        with anyio.fail_after(60):
            started = await client.post("/start/start-session", start_session_body(None, "initialTask"), creates=True)
            sid = started["sessionId"]
            spec = TaskSpec(task_details=f"go to {site.url('/slow?s=2')}\nextract text")
            answer = read_task_body(
                await client.post("/start/send-message", new_task_message(sid, spec, "initialTask"), creates=True)
            )
            assert answer.status == "running" and answer.task_id  # held 1 s, then a pending stub
            while answer.status == "running":
                await anyio.sleep(0.3)
                answer = read_task_body(await client.get(RemoteClient.task_path(sid, answer.task_id), session_id=sid))
            assert answer.status == "completed" and answer.message, answer
            await client.post("/start/send-message", state_message(sid, "terminate"), creates=False, session_id=sid)
            with pytest.raises(RemoteSessionGone):
                await client.post("/start/send-message", state_message(sid, "pause"), creates=False, session_id=sid)

        stranger = RemoteClient(Settings(remote_url=service, remote_api_key="not-the-key"), http)
        with pytest.raises(RemoteServiceError) as caught:
            await stranger.post("/start/start-session", {"mode": "default"}, creates=True)
        assert caught.value.code == "UNAUTHORIZED" and "not-the-key" not in caught.value.message
