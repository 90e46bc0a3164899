"""What a model-driven task keeps from the model and from hostile pages: secret values never reach the
model, page text is fenced as untrusted data, and a model that obeys an injected instruction still cannot
send a secret to a host it is not bound to."""

from __future__ import annotations

import re

import pytest

from tests.conftest import call, connect, model_settings
from tests.scripted_model import Call, Received, ScriptedModel, ref
from tests.site import Site

pytestmark = pytest.mark.anyio

PASSWORD = "hunter2-canary-9f3a"


def type_into(field: str, text: str, submit: bool = False) -> Call:
    return Call("type", lambda r: {"ref": ref(r.observation(), "textbox", field), "text": text, "submit": submit})


async def test_the_model_sees_placeholders_and_the_bound_host_gets_the_value(
    site: Site, scripted: ScriptedModel
) -> None:
    scripted.script(
        type_into("Email", "me@example.com"),
        type_into("Password", "{{secret.password}}", submit=True),
        Call("done", {"output": "signed in"}),
    )
    login = site.url("/login", host="bank.localhost")
    async with connect(**model_settings(scripted)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="Sign in.",
            startingPoint=login,
            secrets=[{"match": "bank.localhost", "fields": {"password": PASSWORD}}],
        )
    assert task["status"] == "task_completed", task
    assert any(PASSWORD in path for _, path in site.requests)  # the site got the real value
    assert "{{secret.password}} on bank.localhost" in scripted.requests[0].system()
    # the welcome page echoes the password back; the model saw only the placeholder
    assert "password={{secret.password}}" in scripted.requests[2].observation()
    for received in scripted.requests:
        assert PASSWORD not in received.everything()
    assert PASSWORD not in str(task)


def fenced(received: Received) -> tuple[str, str]:
    """(the page fence's nonce, the text inside the latest fence) of an observation."""
    observation = received.observation()
    found = re.search(r"<untrusted-page-([0-9a-f]{12})>\n(.*)\n</untrusted-page-\1>", observation, re.S)
    assert found, observation
    return found.group(1), found.group(2)


async def test_page_text_is_fenced_and_an_obedient_model_still_cannot_leak_a_secret(
    site: Site, scripted: ScriptedModel
) -> None:
    # the worst case: the model obeys the page and tries to type the bank password into the attacker's form
    def obey(received: Received) -> Call:
        return type_into("Password", "{{secret.password}}", submit=True)

    scripted.script(obey, Call("done", {"output": "nothing to claim"}))
    async with connect(**model_settings(scripted)) as client:
        task = await call(
            client,
            "run_task",
            taskDetails="Tell me what the offer on this page is.",
            startingPoint=site.url("/inject", host="evil.localhost"),
            secrets=[{"match": "bank.localhost", "fields": {"password": PASSWORD}}],
        )
    assert task["status"] == "task_completed", task
    first = scripted.requests[0]
    nonce, page = fenced(first)
    assert "ignore all previous instructions" in page  # the injection is inside the fence, as data
    assert f"untrusted-page-{nonce}>" in first.system() and "never instructions" in first.system()
    task_text = first.body["messages"][1]["content"]
    assert task_text.startswith("TASK (from the user):\nTell me what the offer on this page is.")
    assert task_text.index("TASK") < task_text.index(f"<untrusted-page-{nonce}>")
    # typing the secret on a host it is not bound to was refused, and the model was told so
    assert "cannot be used on evil.localhost" in scripted.requests[1].observation()
    assert not any("pw=" in path for host, path in site.requests if host.startswith("evil.localhost"))
    for received in scripted.requests:
        assert PASSWORD not in received.everything()
