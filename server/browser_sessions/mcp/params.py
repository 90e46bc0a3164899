"""Tool parameter types: the seed's names, bounds and a one-line description each (the model reads them).

Limits mirror ``models.TaskSpec``, which validates them again when the spec is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from browser_sessions.models import OutputType, SecretSpec, TaskSpec

M = TypeVar("M", bound=BaseModel)


def from_arguments(model: type[M], arguments: Mapping[str, Any]) -> M:
    """The ``model`` among a tool's arguments (its parameters carry the model's wire names); the model
    validates them again, with the checks that span fields."""
    names = {field.alias or name for name, field in model.model_fields.items()}
    return model.model_validate({k: v for k, v in arguments.items() if k in names})


SessionId = Annotated[str, Field(min_length=1, max_length=64, description="The session's id from start_session.")]
TaskId = Annotated[str, Field(min_length=1, max_length=64, description="The task's id from send_task or run_task.")]
TaskDetails = Annotated[
    str,
    Field(
        min_length=1,
        max_length=20_000,
        description="What to do, in free text (needs a model), or as instruction lines that run with no model "
        '(go to <url>; click "<name>"; type "<text>" into "<field>"; select "<option>" in "<field>"; '
        'check "<name>"; press <Key>; wait for "<text>"; extract text; extract table ["<caption>"]). '
        "Secrets as {{secret.NAME}}.",
    ),
]
StartingPoint = Annotated[str | None, Field(description="http(s) URL loaded before the task starts.")]
MaxDuration = Annotated[int, Field(ge=1_000, le=300_000, description="Task time limit in ms (1000..300000).")]
MaxInputTokens = Annotated[int, Field(ge=0, le=100_000, description="Model input token budget (0..100000).")]
MaxOutputTokens = Annotated[int, Field(ge=0, le=100_000, description="Model output token budget (0..100000).")]
AvoidDomains = Annotated[
    list[str], Field(max_length=500, description="Domains (and subdomains) the browser must never contact.")
]
Secrets = Annotated[
    list[SecretSpec],
    Field(max_length=50, description="[{match: host pattern or 'all', fields: {NAME: value}}]; never shown back."),
]
OutputTypeParam = Annotated[OutputType, Field(description="text, structured_json or structured_csv.")]
OutputSchema = Annotated[
    dict[str, Any] | list[str] | None,
    Field(description="JSON Schema object (structured_json) or list of column names (structured_csv)."),
]
TerminateOnCompletion = Annotated[bool, Field(description="End the session when this task ends.")]
ProfileId = Annotated[
    str | None,
    Field(max_length=128, description="A saved profile (list_profiles) to start from; saved back as the session ends."),
]
Mode = Annotated[Literal["default"], Field(description='Session mode; only "default".')]
InitialTask = Annotated[TaskSpec | None, Field(description="A first task, with the same fields as send_task.")]
WaitSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=300,
        description="Seconds to wait for the task before returning its running state (0 returns at once).",
    ),
]
IncludeEnded = Annotated[
    bool, Field(description="Also list ended sessions (the most recent, also from before a server restart).")
]
ControlAction = Annotated[
    Literal["pause", "resume", "stop"],
    Field(description="pause after the current step, resume, or stop the current task (the session stays)."),
]
GuardrailResponse = Annotated[
    str,
    Field(
        max_length=10_000,
        description="Your answer to the task's question (needed with resume=true). Pass credentials as secrets, "
        "not here: answers reach the model.",
    ),
]
Resume = Annotated[bool, Field(description="true: continue with the answer; false: stop the task.")]
BackendChoice = Annotated[
    Literal["local", "remote"] | None,
    Field(
        description="Where the session runs: local (this machine's browser) or remote (the cloud service); "
        "default: the server's setting."
    ),
]
