"""Shared fixtures: the test site, server settings for fast timers, and an MCP client connected to a fresh
``build_server`` (in memory, per protocol era) with real Chromium behind it."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from browser_sessions.mcp.server import build_server
from browser_sessions.settings import Settings
from tests.scripted_model import ScriptedModel, serve_model
from tests.site import Site, serve_site

MODES = ["auto", "legacy"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    with serve_site() as served:
        yield served


@pytest.fixture
def scripted() -> Iterator[ScriptedModel]:
    """A scripted language model on 127.0.0.1 (tests/scripted_model.py)."""
    with serve_model() as served:
        yield served


def model_settings(scripted: ScriptedModel, api: str = "openai", **overrides: Any) -> dict[str, Any]:
    """Server settings whose model is ``scripted``, over the Anthropic or the OpenAI wire format."""
    if api == "anthropic":
        base = {
            "model": "anthropic:scripted-claude",
            "anthropic_api_key": "sk-test",
            "anthropic_base_url": scripted.anthropic_base_url,
        }
    else:
        base = {"model": "openai:scripted-gpt", "openai_base_url": scripted.openai_base_url}
    return {**base, "model_retries": 0, **overrides}


DATA_DIR = tempfile.mkdtemp(prefix="browser-sessions-tests-")


def make_settings(**overrides: Any) -> Settings:
    """Fast timers and no model; a data folder (records, profiles, downloads) of its own unless given."""
    base: dict[str, Any] = {
        "step_timeout": 2.0,
        "navigation_timeout": 10.0,
        "data_dir": tempfile.mkdtemp(prefix="server-", dir=DATA_DIR),
        # no model unless a test configures one, whatever the machine's environment holds
        "model": None,
        "anthropic_api_key": None,
        "openai_api_key": None,
        "openai_base_url": None,
    }
    return Settings(**{**base, **overrides})


@asynccontextmanager
async def connect(
    mode: str = "auto", *, callbacks: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[Client]:
    """An MCP client on a new server (its own engine and Chromium); ``callbacks`` are the client's
    (``sampling_callback``, ``elicitation_callback``), whose presence declares the capabilities."""
    server = build_server(make_settings(**overrides))
    async with Client(server, mode=mode, **(callbacks or {})) as client:  # type: ignore[arg-type]
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; return the error text the caller reads."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"expected an error, got {result.structured_content}"
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
