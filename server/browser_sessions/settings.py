"""Server settings: ``BROWSER_SESSIONS_*`` environment variables, overridden by CLI flags.

Every setting is listed in the README's settings table; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Transport = Literal["stdio", "sse", "streamable-http"]


def default_data_dir() -> Path:
    """The user's data folder: ``$XDG_DATA_HOME/browser-sessions`` (``~/.local/share/browser-sessions``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "browser-sessions"


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?$")


def _host_patterns(value: str) -> list[str]:
    """``"Intranet.Example.com, *.corp.example, 10.0.0.5"`` -> normalised patterns (lower-case, no trailing
    dot or IPv6 brackets); raises ValueError naming an entry that is neither a host, ``*.domain`` nor an IP."""
    patterns: list[str] = []
    for item in _comma_list(value):
        text = item.lower().rstrip(".").removeprefix("[").removesuffix("]")
        name = text.removeprefix("*.")
        try:
            ipaddress.ip_address(name)
            is_ip = True
        except ValueError:
            is_ip = False
        if not (is_ip and name == text) and not _HOST_NAME.match(name):
            raise ValueError(f"{item!r} is not a host; write hosts like intranet.example.com, *.example.com, 10.0.0.5")
        patterns.append(text)
    return patterns


class Settings(BaseSettings):
    """Values a server runs with. Frozen: build a new one (``model_copy(update=...)``) to change it."""

    # env_ignore_empty: an empty variable means unset, as hosts pass blank optional fields (Claude Desktop's
    # bundle form, manifest.json) as "" rather than leaving the variable out
    model_config = SettingsConfigDict(
        env_prefix="BROWSER_SESSIONS_",
        env_ignore_empty=True,
        frozen=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    browser_path: Path | None = Field(
        default=None, description="Chromium or Chrome executable; found automatically when unset."
    )
    headless: bool = Field(default=True, description="Run Chromium without a window.")
    browser_args: list[str] = Field(
        default_factory=list, description="Extra Chromium command-line switches (JSON list)."
    )
    idle_timeout: float = Field(
        default=300.0, gt=0, description="Seconds without a task or call before a session is Terminated."
    )
    reconnect_window: float = Field(
        default=300.0, gt=0, description="Seconds an Orphaned session waits for the browser to come back."
    )
    browser_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browsers to place sessions on instead of launching one, comma-separated: Playwright "
        "browser servers (ws://, or pw+ws://) and CDP endpoints (http://, or cdp+ws://), on this machine's loopback.",
    )
    endpoint_max_sessions: int = Field(
        default=25, ge=1, le=1000, description="Live sessions one browser endpoint holds at most."
    )
    navigation_timeout: float = Field(default=30.0, gt=0, description="Seconds a page load may take.")
    step_timeout: float = Field(
        default=5.0, gt=0, description="Seconds an instruction waits for its element to appear."
    )
    viewport_width: int = Field(default=1024, ge=320, le=3840, description="Viewport width in CSS pixels.")
    viewport_height: int = Field(default=600, ge=240, le=2160, description="Viewport height in CSS pixels.")
    max_sessions: int = Field(default=50, ge=1, le=1000, description="Live sessions one server holds at once.")
    pool_size: int = Field(
        default=2,
        ge=0,
        le=50,
        description="Fresh browser contexts kept ready so sessions start at once (each goes to one session; 0: off).",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where everything durable is kept: the database, profiles, downloads.",
    )
    database: Path | None = Field(
        default=None,
        description="The SQLite file of session and task records (default: <data_dir>/browser-sessions.db).",
    )
    upload_dir: Path | None = Field(
        default=None, description="The only folder uploads are read from (default: <data_dir>/uploads)."
    )
    transport: Transport = Field(default="stdio", description="MCP transport for `serve`.")
    host: str = Field(default="127.0.0.1", description="Bind address for the HTTP transports.")
    port: int = Field(default=8931, ge=0, le=65535, description="Port for the HTTP transports.")
    auth_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer tokens the HTTP transports accept, comma-separated; each token is one owner "
        "(required to bind anything but loopback). Secret: never shown or logged.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Extra Host names the HTTP transports accept, comma-separated (name or name:port), "
        "e.g. the name a reverse proxy serves them under.",
    )
    allowed_origins: str = Field(
        default="", description="Extra Origin values the HTTP transports accept, comma-separated."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the server log on stderr."
    )

    model: str | None = Field(
        default=None,
        description="provider:model for free-text tasks (anthropic:..., openai:..., or sampling); "
        "chosen automatically when unset.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("anthropic_api_key", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com",
        validation_alias=AliasChoices("anthropic_base_url", "ANTHROPIC_BASE_URL"),
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("openai_api_key", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("openai_base_url", "OPENAI_BASE_URL")
    )
    model_timeout: float = Field(default=120.0, gt=0, description="Seconds one model call may take.")
    model_retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a model call after 429, 5xx or a network error."
    )
    agent_max_steps: int = Field(
        default=40, ge=1, le=500, description="Actions a model-driven task may take before it is stopped."
    )
    agent_snapshot_chars: int = Field(
        default=6000, ge=500, le=100_000, description="Page snapshot budget per model turn, in characters."
    )
    agent_output_retries: int = Field(
        default=2, ge=0, le=5, description="Times the model may fix an output that fails outputSchema."
    )
    guardrail_elicitation: bool = Field(
        default=True,
        description="Ask the user through MCP elicitation when a task needs human input and the client can.",
    )

    allow_private_network: bool | None = Field(
        default=None,
        description="Let the browser reach private, loopback and link-local addresses (true/false). Unset: "
        "allowed on stdio, refused on the HTTP transports and under `browser-sessions api`.",
    )
    egress_allow_hosts: str = Field(
        default="",
        description="Hosts the browser may reach even at private addresses, comma-separated (host, *.domain "
        "or IP). Not a whitelist: other public hosts stay reachable.",
    )
    egress_block_hosts: str = Field(
        default="",
        description="Hosts the browser may never reach, comma-separated (host or *.domain); refused like "
        "avoidDomains (DOMAIN_BLOCKED).",
    )
    allow_file_urls: bool = Field(
        default=False, description="Let navigate, go to and startingPoint load file:// URLs (local files)."
    )

    @field_validator("browser_endpoints", mode="before")
    @classmethod
    def _split_endpoints(cls, value: object) -> object:
        return _comma_list(value) if isinstance(value, str) else value

    @field_validator("egress_allow_hosts", "egress_block_hosts")
    @classmethod
    def _check_host_patterns(cls, value: str) -> str:
        return ",".join(_host_patterns(value))

    backend: Literal["local", "remote"] = Field(
        default="local", description="Where sessions live unless start_session/run_task say otherwise."
    )
    remote_url: str | None = Field(
        default=None, description="Base URL of the cloud browser-session service (or a `browser-sessions api`)."
    )
    remote_api_key: SecretStr | None = Field(default=None, description="Bearer key for the remote service.")
    remote_dialect: Literal["initialTask", "task"] = Field(
        default="initialTask",
        description="Request names: initialTask (profileId, taskDetails, startingPoint) or task "
        "(environmentId, prompt, startingUrl).",
    )
    remote_timeout: float = Field(
        default=70.0, gt=0, description="Seconds one HTTP call to the service may take (it holds tasks 50 s)."
    )
    remote_poll_interval: float = Field(default=2.5, gt=0, description="Seconds between polls of a running task.")
    remote_rate_limit: int = Field(
        default=10, ge=1, description="Requests per 60 s the service allows (POST endpoints); the client keeps to it."
    )
    api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="`browser-sessions api`: accepted bearer keys, comma-separated (required); each key is one owner.",
    )
    api_host: str = Field(default="127.0.0.1", description="`browser-sessions api`: bind address.")
    api_port: int = Field(default=8080, ge=0, le=65535, description="`browser-sessions api`: port.")
    api_inline_wait: float = Field(
        default=50.0, ge=0, le=300, description="`browser-sessions api`: seconds a task request is held before pollUrl."
    )
    api_rate_limit: int = Field(default=10, ge=1, description="`browser-sessions api`: POST requests per 60 s per key.")
    api_faults: str = Field(
        default="",
        description="`browser-sessions api`, for tests: faults to inject, comma-separated FAULT[@PATH_PREFIX] "
        "(429, 500, 503, stall:SECONDS, drop), each used once by the next matching request.",
    )

    @property
    def auth_token_list(self) -> list[str]:
        return _comma_list(self.auth_tokens.get_secret_value())

    @property
    def allowed_host_list(self) -> list[str]:
        return _comma_list(self.allowed_hosts)

    @property
    def allowed_origin_list(self) -> list[str]:
        return _comma_list(self.allowed_origins)

    @property
    def egress_allow_host_list(self) -> list[str]:
        return _comma_list(self.egress_allow_hosts)

    @property
    def egress_block_host_list(self) -> list[str]:
        return _comma_list(self.egress_block_hosts)

    @property
    def private_network_allowed(self) -> bool:
        """Whether sessions may reach private addresses: ``allow_private_network`` when set, else only on
        stdio (one local user). ``browser-sessions api`` sets it to False when unset."""
        if self.allow_private_network is not None:
            return self.allow_private_network
        return self.transport == "stdio"

    @property
    def api_key_list(self) -> list[str]:
        return _comma_list(self.api_keys.get_secret_value())

    @property
    def uploads(self) -> Path:
        return self.upload_dir or self.data_dir / "uploads"

    def downloads(self, session_id: str) -> Path:
        return self.data_dir / "downloads" / session_id

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "browser-sessions.db"

    @property
    def profiles_dir(self) -> Path:
        return self.data_dir / "profiles"
