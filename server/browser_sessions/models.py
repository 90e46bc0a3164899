"""The value vocabulary of the whole system: the seed API's session config, task spec, session state and
task result, camelCase on the wire. The MCP tools, the local engine and (later) the REST API and the
remote client all speak these; nothing re-invents them. Values are frozen; live objects never live here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.alias_generators import to_camel

SessionStatus = Literal["Pending", "Active", "Completed", "Terminated", "Failed", "Orphaned"]
LIVE_STATUSES: frozenset[str] = frozenset({"Pending", "Active", "Orphaned"})
TaskStatus = Literal["started", "running", "task_completed", "guardrail_trigger", "failed"]
OutputType = Literal["text", "structured_json", "structured_csv"]
Planner = Literal["instructions", "model"]
BackendName = Literal["local", "remote"]

MAX_SCHEMA_DEPTH = 64  # real output schemas nest a few levels; the limit keeps jsonschema's recursion bounded
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?$")


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors; inputs never echoed."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
    )


def check_http_url(value: str) -> str:
    """Accept an absolute http(s) URL with a host; raise ValueError saying what a good one looks like."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL; write it like https://example.com/path")
    return value.strip()


def check_page_url(value: str) -> str:
    """Accept a URL a page may be sent to: an absolute http(s) URL with a host, or a ``file:///path`` URL
    (refused when it is loaded unless the server allows file URLs: ``errors.FileUrlBlocked``)."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme == "file" and parts.path.startswith("/") and parts.netloc in ("", "localhost"):
        return text
    return check_http_url(text)


def nesting_depth(value: Any) -> int:
    """How deeply objects and lists nest in ``value`` (a scalar is 0), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def normalise_domain(value: str) -> str:
    """``https://Shop.Example.com:8080/x`` -> ``shop.example.com``; a leading ``*.`` or ``.`` is dropped
    because a listed domain always covers its subdomains."""
    text = value.strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    text = text.split("/")[0].split(":")[0].removeprefix("*.").lstrip(".")
    if not _DOMAIN.match(text):
        raise ValueError(f"{value!r} is not a domain; write it like example.com")
    return text


class SecretSpec(WireModel):
    """Domain-bound credentials; used through ``{{secret.NAME}}`` placeholders, never shown."""

    match: str = Field(description="Host pattern: 'all', an exact host ('github.com') or a wildcard ('*.example.com').")
    fields: dict[str, SecretStr] = Field(
        min_length=1, description="Placeholder name -> value, typed where {{secret.NAME}} appears."
    )

    @field_validator("match")
    @classmethod
    def _match(cls, value: str) -> str:
        text = value.strip().lower()
        if text == "all":
            return text
        bare = text.removeprefix("*.")
        if not _DOMAIN.match(bare):
            raise ValueError(f"secrets match {value!r} must be 'all', a host, or '*.domain'")
        return text

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not _SECRET_NAME.match(name):
                raise ValueError(f"secret field name {name!r} must be letters, digits, '_' or '-'")
        return value


class TaskSpec(WireModel):
    """One task, with the seed's names and limits (``initialTask`` of start-session, or a ``newTask``)."""

    task_details: str = Field(
        default="", max_length=20_000, description="What to do: instruction lines, or free text (needs a model)."
    )
    starting_point: str | None = Field(default=None, description="http(s) URL loaded before the task starts.")
    max_duration: int = Field(default=300_000, ge=1_000, le=300_000, description="Task time limit in ms.")
    max_input_tokens: int = Field(default=100_000, ge=0, le=100_000, description="Model input token budget.")
    max_output_tokens: int = Field(default=100_000, ge=0, le=100_000, description="Model output token budget.")
    avoid_domains: list[str] = Field(
        default_factory=list, max_length=500, description="Domains (and their subdomains) never contacted."
    )
    terminate_on_completion: bool = Field(default=False, description="End the session when this task ends.")
    secrets: list[SecretSpec] = Field(
        default_factory=list, max_length=50, description="Domain-bound credentials for {{secret.NAME}}."
    )
    output_type: OutputType = Field(default="text", description="text, structured_json or structured_csv.")
    output_schema: dict[str, Any] | list[str] | None = Field(
        default=None, description="JSON Schema (structured_json) or column names (structured_csv)."
    )

    @field_validator("starting_point")
    @classmethod
    def _starting_point(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_page_url(value)

    @field_validator("avoid_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return sorted({normalise_domain(item) for item in value})

    @model_validator(mode="after")
    def _schema_fits_output_type(self) -> TaskSpec:
        schema = self.output_schema
        if nesting_depth(schema) > MAX_SCHEMA_DEPTH:  # jsonschema recurses per level: refuse before it overflows
            raise ValueError(f"outputSchema nests more than {MAX_SCHEMA_DEPTH} levels of objects and lists; flatten it")
        if self.output_type == "text":
            if schema is not None:
                raise ValueError(
                    "outputSchema is only used with outputType structured_json or structured_csv; "
                    "drop it or set outputType"
                )
        elif self.output_type == "structured_json":
            if not isinstance(schema, dict):
                raise ValueError(
                    "outputType structured_json needs outputSchema: a JSON Schema object, "
                    'e.g. {"type": "array", "items": {"type": "object"}}'
                )
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"outputSchema is not a valid JSON Schema: {exc.message}") from None
        else:
            if not isinstance(schema, list) or not schema or not all(isinstance(c, str) and c for c in schema):
                raise ValueError(
                    'outputType structured_csv needs outputSchema: a list of column names, e.g. ["name", "price"]'
                )
            if len(set(schema)) != len(schema):
                raise ValueError("outputSchema column names must be unique")
        return self


class SessionConfig(WireModel):
    """start-session body (the seed's G3 shape)."""

    profile_id: str | None = Field(default=None, max_length=128, description="Profile whose logins to load.")
    mode: Literal["default"] = Field(default="default", description='Only "default" exists.')
    initial_task: TaskSpec | None = Field(default=None, description="A first task to run once the session is up.")


class Transition(WireModel):
    status: SessionStatus
    at: datetime
    reason: str


class TaskError(WireModel):
    code: str
    message: str


class Step(WireModel):
    n: int
    at: datetime
    action: str = Field(description="What was done, with secrets shown only as placeholders.")
    url: str | None = None


class TaskUsage(WireModel):
    duration_ms: int = Field(description="Wall time the task ran (queue, pauses and guardrail waits excluded).")
    steps: int
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_estimated: bool = Field(
        default=False, description="True when the model source reported no usage and tokens were counted from text."
    )
    model_calls: int = 0
    step_limit: int | None = Field(default=None, description="Model turns the task was allowed (model planner).")


class Replay(WireModel):
    """What a model-driven task did, as instruction lines that run again with no model."""

    script: str | None = Field(description="Instruction lines (secrets as placeholders), or null if not replayable.")
    notes: list[str] = Field(description="Steps left out or that could not be expressed, and why.")


class SessionUsage(WireModel):
    compute_time_ms: int = Field(description="Creation to termination (or now): what the seed bills.")
    tasks: int
    steps: int
    input_tokens: int = 0
    output_tokens: int = 0


class TaskResult(WireModel):
    session_id: str
    task_id: str
    status: TaskStatus
    planner: Planner | None = Field(default=None, description="Which planner ran the task.")
    model: str | None = Field(default=None, description="provider:model (or sampling:<model>) that drove it.")
    output_type: OutputType
    output: Any = Field(
        default=None, description="Text, a JSON value, or CSV text; on failure, any partial output; else null."
    )
    error: TaskError | None = None
    guardrail: str | None = Field(
        default=None, description="While status is guardrail_trigger: the question; answer with answer_guardrail."
    )
    replay: Replay | None = Field(default=None, description="Model-driven tasks: the same job as instruction lines.")
    usage: TaskUsage
    steps: list[Step]
    queue_position: int | None = Field(default=None, description="Tasks ahead of this one, while queued.")
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    resource_uri: str = Field(description="Read or subscribe for updates.")
    output_uri: str | None = Field(default=None, description="The output as a resource, once completed.")


class TaskSummary(WireModel):
    task_id: str
    status: TaskStatus


class SecretPlaceholders(WireModel):
    match: str
    names: list[str] = Field(description="Use as {{secret.NAME}} in taskDetails.")


class DownloadInfo(WireModel):
    name: str
    uri: str = Field(description="session://{sessionId}/downloads/{name}")
    size_bytes: int
    url: str = Field(description="Where it came from (secrets redacted).")
    at: datetime


class TabInfo(WireModel):
    index: int
    url: str
    active: bool


class SessionState(WireModel):
    session_id: str
    backend: BackendName
    tracked: bool = Field(
        default=False,
        description="True when this server tracks the state itself (the remote service has no session-state "
        "endpoint): status and reasons are what this server saw and inferred.",
    )
    status: SessionStatus
    reason: str = Field(description="Why the session is in its status.")
    paused: bool
    created_at: datetime
    ended_at: datetime | None = None
    transitions: list[Transition]
    current_url: str | None = None
    title: str | None = None
    profile_id: str | None = None
    current_task_id: str | None = None
    queued_task_ids: list[str]
    tasks: list[TaskSummary]
    idle_timeout_seconds: float
    expires_at: datetime | None = Field(default=None, description="When inactivity ends it, if nothing happens.")
    secrets: list[SecretPlaceholders]
    tabs: list[TabInfo]
    downloads: list[DownloadInfo]
    usage: SessionUsage
    resource_uri: str


class SessionStarted(SessionState):
    task: TaskResult | None = Field(default=None, description="The initialTask's result or running state.")


class SessionList(WireModel):
    sessions: list[SessionState]
