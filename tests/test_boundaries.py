"""Isolation between sessions, avoidDomains as a real boundary, and secrets that never come back."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import MODES, call, connect
from tests.site import Site

pytestmark = pytest.mark.anyio

CANARY = "canary-7f3b9e1d-secret"


@pytest.mark.parametrize("mode", MODES)
async def test_a_cookie_set_in_one_session_is_invisible_in_another(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        a = (await call(client, "start_session"))["sessionId"]
        b = (await call(client, "start_session"))["sessionId"]
        await call(client, "send_task", sessionId=a, taskDetails=f"go to {site.url('/cookie/set?v=alpha')}")
        show = f'go to {site.url("/cookie/show")}\nextract text "cookies"'
        seen_a = await call(client, "send_task", sessionId=a, taskDetails=show)
        seen_b = await call(client, "send_task", sessionId=b, taskDetails=show)
        assert "token=alpha" in seen_a["output"]
        assert "token=alpha" not in seen_b["output"]
        assert "cookies: []" in seen_b["output"]


async def test_going_to_an_avoided_domain_fails_naming_it(site: Site) -> None:
    async with connect() as client:
        before = len(site.requests)
        result = await call(
            client,
            "run_task",
            taskDetails=f"go to {site.url('/', host='shop.blocked.localhost')}",
            avoidDomains=["blocked.localhost"],
        )
        assert result["status"] == "failed"
        assert result["error"]["code"] == "DOMAIN_BLOCKED"
        assert "shop.blocked.localhost" in result["error"]["message"]
        assert "blocked.localhost" not in {h.split(":")[0] for h, _ in site.requests[before:]}


async def test_a_redirect_into_an_avoided_domain_is_stopped_before_it_is_contacted(site: Site) -> None:
    async with connect() as client:
        target = site.url("/", host="evil.localhost")
        start = site.url(f"/redirect?to={target}", host="good.localhost")
        before = len(site.requests)
        result = await call(client, "run_task", taskDetails=f"go to {start}", avoidDomains=["evil.localhost"])
        assert result["status"] == "failed"
        assert result["error"]["code"] == "DOMAIN_BLOCKED"
        assert "evil.localhost" in result["error"]["message"]
        hosts = {h.split(":")[0] for h, _ in site.requests[before:]}
        assert "good.localhost" in hosts
        assert "evil.localhost" not in hosts


async def test_a_popup_and_a_subresource_to_an_avoided_domain_never_reach_it(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        image = site.url("/pixel.png", host="tracker.localhost")
        before = len(site.requests)
        page = await call(
            client,
            "send_task",
            sessionId=sid,
            taskDetails=f"go to {site.url(f'/image-from?src={image}', host='news.localhost')}\nextract text",
            avoidDomains=["tracker.localhost"],
        )
        # a blocked subresource does not fail the task; it simply never loads
        assert page["status"] == "task_completed"
        popup_target = site.url("/", host="tracker.localhost")
        popup = await call(
            client,
            "send_task",
            sessionId=sid,
            taskDetails=f'go to {site.url(f"/popup?to={popup_target}")}\nclick "Open"',
        )
        assert popup["status"] == "failed"
        assert popup["error"]["code"] == "DOMAIN_BLOCKED"
        assert "tracker.localhost" not in {h.split(":")[0] for h, _ in site.requests[before:]}


async def test_secrets_are_typed_on_their_host_and_never_shown(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [{"match": "login.localhost", "fields": {"password": CANARY, "email": "ada@example.com"}}]
    login = site.url("/login", host="login.localhost")
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        done = await call(
            client,
            "send_task",
            sessionId=sid,
            taskDetails=(
                f'go to {login}\ntype "{{{{secret.email}}}}" into "Email"\n'
                f'type "{{{{secret.password}}}}" into "Password"\nclick "Sign in"\nextract text'
            ),
            secrets=secrets,
        )
        assert done["status"] == "task_completed", done
        # the site received the real values: the placeholder was filled on the matching host ...
        assert any(CANARY in path for _, path in site.requests)
        # ... but the page echoing them back is redacted to placeholders
        assert "password={{secret.password}}" in done["output"]
        assert CANARY not in done["output"]
        state = await call(client, "get_session", sessionId=sid)
        assert state["secrets"] == [{"match": "login.localhost", "names": ["email", "password"]}]

        elsewhere = await call(
            client,
            "send_task",
            sessionId=sid,
            taskDetails=f'go to {site.url("/form")}\ntype "{{{{secret.password}}}}" into "Full name"',
        )
        assert elsewhere["status"] == "failed"
        assert elsewhere["error"]["code"] == "SECRET_NOT_AVAILABLE"
        assert "login.localhost" in elsewhere["error"]["message"]

        everything = [done, state, elsewhere, await call(client, "list_sessions", includeEnded=True)]
        for uri in (
            f"session://{sid}",
            f"session://{sid}/tasks/{done['taskId']}",
            f"session://{sid}/tasks/{done['taskId']}/output",
        ):
            everything.append((await client.read_resource(uri)).model_dump(mode="json"))
        everything.append(await call(client, "terminate", sessionId=sid))
    dumped = json.dumps(everything)
    assert CANARY not in dumped, dumped[max(0, dumped.find(CANARY) - 300) : dumped.find(CANARY) + 50]
    assert CANARY not in caplog.text


async def test_secret_matching_prefers_the_most_specific_pattern(site: Site) -> None:
    secrets = [
        {"match": "all", "fields": {"name": "fallback-name"}},
        {"match": "*.shop.localhost", "fields": {"name": "shop-name"}},
    ]
    async with connect() as client:
        result = await call(
            client,
            "run_task",
            taskDetails=(
                f'go to {site.url("/form", host="eu.shop.localhost")}\ntype "{{{{secret.name}}}}" into "Full name"\n'
                'click "Order now"'
            ),
            secrets=secrets,
        )
        assert result["status"] == "task_completed", result
        assert any("name=shop-name" in path for _, path in site.requests)
