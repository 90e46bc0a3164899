"""``manifest.json``, the MCP Bundle (MCPB 0.4) that installs the server in Claude Desktop: the official
``mcpb`` validator accepts it, it lists exactly the server's tools and prompts, its ``user_config`` reaches
real settings, and the server starts from it as a host starts it, blank optional fields included."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from browser_sessions import __version__
from browser_sessions.mcp.server import build_server
from browser_sessions.settings import Settings
from tests.conftest import call, make_settings
from tests.node_tools import ROOT, run_tool

MANIFEST_PATH = ROOT / "manifest.json"
PLACEHOLDER = re.compile(r"^\$\{user_config\.(\w+)\}$")
ENV_BY_USER_CONFIG = {  # the bundle form's fields (what the issue asks for) and the setting each one sets
    "backend": "BROWSER_SESSIONS_BACKEND",
    "remote_url": "BROWSER_SESSIONS_REMOTE_URL",
    "remote_api_key": "BROWSER_SESSIONS_REMOTE_API_KEY",
    "browser_path": "BROWSER_SESSIONS_BROWSER_PATH",
}


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(MANIFEST_PATH.read_text())
    return loaded


def host_env(values: dict[str, Any]) -> dict[str, str]:
    """``mcp_config.env`` as a host fills it in: each ``${user_config.KEY}`` replaced by the user's value, else
    the option's default (booleans as ``true``/``false``, like ``@anthropic-ai/mcpb``'s own substitution)."""
    options = manifest()["user_config"]
    env: dict[str, str] = {}
    for name, template in manifest()["server"]["mcp_config"]["env"].items():
        match = PLACEHOLDER.match(template)
        assert match, f"{name}: {template!r} is not a single ${{user_config.KEY}} placeholder"
        value = values.get(match[1], options[match[1]].get("default"))
        assert value is not None, (
            f"user_config.{match[1]} has neither a value nor a default: hosts would pass the placeholder"
        )
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


async def served() -> tuple[set[str], set[str]]:
    """The tool and prompt names a freshly built server lists to the official MCP client."""
    async with Client(build_server(make_settings()), mode="legacy") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
    return tools, prompts


@pytest.mark.anyio
async def test_manifest_lists_exactly_the_servers_tools_and_prompts() -> None:
    declared = manifest()
    tool_names = [tool["name"] for tool in declared["tools"]]
    with anyio.fail_after(60):
        tools, prompts = await served()
    assert len(tool_names) == len(set(tool_names)), "a tool is listed twice"
    assert set(tool_names) == tools, (
        f"missing from manifest: {tools - set(tool_names)}; not served: {set(tool_names) - tools}"
    )
    assert all(tool.get("description") for tool in declared["tools"]), "every tool needs a description for the host"
    assert {prompt["name"] for prompt in declared.get("prompts", [])} == prompts
    assert not declared.get("tools_generated") and not declared.get("prompts_generated")


def test_manifest_is_a_uv_bundle_of_this_project_running_browser_sessions_serve() -> None:
    declared = manifest()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = declared["server"]
    assert declared["manifest_version"] == "0.4"
    assert declared["version"] == project["version"] == __version__
    assert declared["compatibility"]["runtimes"]["python"] == project["requires-python"]
    assert server["type"] == "uv"  # the host installs pyproject.toml's dependencies with uv (compiled ones too)
    assert (ROOT / server["entry_point"]).is_file()
    config = server["mcp_config"]
    assert config["command"] == "uv"
    assert config["args"][:3] == ["run", "--directory", "${__dirname}"]
    command = config["args"][3:]
    assert command == ["browser-sessions", "serve"]
    assert command[0] in project["scripts"]


def test_user_config_maps_onto_real_settings() -> None:
    declared = manifest()
    options = declared["user_config"]
    used = {}
    for name, template in declared["server"]["mcp_config"]["env"].items():
        match = PLACEHOLDER.match(template)
        assert match and match[1] in options, f"{name}: {template!r} names no user_config option"
        assert name.startswith("BROWSER_SESSIONS_"), name
        assert name.removeprefix("BROWSER_SESSIONS_").lower() in Settings.model_fields, f"{name} is not a setting"
        used[match[1]] = name
    assert used == ENV_BY_USER_CONFIG
    assert options["remote_api_key"]["sensitive"] is True
    assert [key for key, option in options.items() if option.get("sensitive")] == ["remote_api_key"]
    assert all(not option.get("required") for option in options.values()), "local sessions need no configuration"


def test_user_config_values_and_blank_defaults_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_BY_USER_CONFIG.values():
        monkeypatch.delenv(name, raising=False)
    chosen = {
        "backend": "remote",
        "remote_url": "https://browsers.example.com",
        "remote_api_key": "key-123",
        "browser_path": "/opt/chrome/chrome",
    }
    for name, value in host_env(chosen).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.backend == "remote"
    assert settings.remote_url == "https://browsers.example.com"
    assert settings.remote_api_key is not None and settings.remote_api_key.get_secret_value() == "key-123"
    assert settings.browser_path == Path("/opt/chrome/chrome")

    for name, value in host_env({}).items():  # the form left as it comes: every optional field blank
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.backend, settings.remote_url, settings.remote_api_key, settings.browser_path) == (
        "local",
        None,
        None,
        None,
    )


@pytest.mark.anyio
async def test_server_starts_from_the_manifest_with_the_form_left_blank(tmp_path: Path) -> None:
    """What Claude Desktop runs (``uv run ... browser-sessions serve``, here the same console script from this
    virtualenv) with the env it builds from an untouched form: the tools list and a session starts."""
    script = Path(sys.executable).parent / manifest()["server"]["mcp_config"]["args"][3]
    env = {**host_env({}), "BROWSER_SESSIONS_DATA_DIR": str(tmp_path), "PATH": os.environ["PATH"]}
    params = StdioServerParameters(command=str(script), args=manifest()["server"]["mcp_config"]["args"][4:], env=env)
    with anyio.fail_after(60):
        async with Client(params, mode="legacy") as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
            started = await call(client, "start_session")
            ended = await call(client, "terminate", sessionId=started["sessionId"])
    assert listed == {tool["name"] for tool in manifest()["tools"]}
    assert started["status"] == "Active" and started["backend"] == "local"
    assert ended["status"] == "Terminated"


def test_mcpb_validates_the_manifest(tmp_path: Path) -> None:
    ran = run_tool("mcpb", ["validate", str(MANIFEST_PATH)], tmp_path / "home")
    assert ran.returncode == 0, ran
    assert "Manifest schema validation passes" in ran.stdout, ran


def test_mcpb_rejects_what_the_schema_forbids(tmp_path: Path) -> None:
    """The validator really checks: an option without its description and an unknown key both fail."""
    broken = manifest()
    del broken["user_config"]["backend"]["description"]
    broken["resources"] = []
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(broken))
    ran = run_tool("mcpb", ["validate", str(path)], tmp_path / "home")
    assert ran.returncode != 0, ran
    output = ran.stdout + ran.stderr
    assert "user_config.backend.description" in output and "resources" in output, ran


def test_mcpb_packs_the_project_and_nothing_else(tmp_path: Path) -> None:
    """``mcpb pack`` (with .mcpbignore) bundles what a uv host needs to build and run the server: the manifest,
    pyproject.toml, the README it names and the package sources; no virtualenvs, node_modules, tests or caches."""
    bundle = tmp_path / "browser-sessions.mcpb"
    ran = run_tool("mcpb", ["pack", str(ROOT), str(bundle)], tmp_path / "home")
    assert ran.returncode == 0, ran
    names = zipfile.ZipFile(bundle).namelist()
    assert {name.split("/")[0] for name in names} == {"manifest.json", "pyproject.toml", "README.md", "server"}
    assert manifest()["server"]["entry_point"] in names
    assert "server/browser_sessions/py.typed" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
