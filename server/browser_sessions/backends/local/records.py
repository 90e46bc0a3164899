"""What a local session writes to the store (``store.py``): its state at each transition and its tasks when
queued and when finished.

Everything written passes here, and here every string in it is redacted once more with the session's
vault and the task's own secrets (which join the vault only when the task starts), so no secret value is
ever written, whatever a field holds. A task's spec is kept without its secret values: only each secret's
``match`` and names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from browser_sessions.backends.local.secrets import SecretVault
from browser_sessions.backends.local.views import session_state
from browser_sessions.backends.tasks import TaskRecord
from browser_sessions.models import SessionState, TaskResult, TaskSpec
from browser_sessions.store import Store

if TYPE_CHECKING:
    from browser_sessions.backends.local.session import LocalSession


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    if isinstance(value, dict):
        return {redact(k): _redacted(v, redact) for k, v in value.items()}
    return value


def spec_record(spec: TaskSpec, redact: Callable[[str], str]) -> dict[str, Any]:
    """``spec`` as the store keeps it: secrets as ``{match, names}``, every text redacted with ``redact``
    and with the spec's own secrets."""
    own = SecretVault()
    own.add(spec.secrets)
    data = spec.model_dump(mode="json", by_alias=True, exclude={"secrets"})
    data["secrets"] = [{"match": s.match, "names": sorted(s.fields)} for s in spec.secrets]
    return dict(_redacted(data, lambda text: redact(own.redact(text))))


class SessionRecorder:
    """Writes one session's records; a no-op without a store."""

    def __init__(self, store: Store | None, owner: str) -> None:
        self.store = store
        self.owner = owner

    def session(self, session: LocalSession) -> None:
        if self.store is None:
            return
        data = session_state(session).model_dump(mode="json", by_alias=True)
        self.store.save_session(SessionState.model_validate(_redacted(data, session.vault.redact)), self.owner)

    def task(self, session: LocalSession, task: TaskRecord) -> None:
        """Called when the task is queued and when it finishes, before anyone waiting for it is woken."""
        if self.store is None:
            return
        own = SecretVault()
        own.add(task.spec.secrets)

        def redact(text: str) -> str:
            return session.vault.redact(own.redact(text))

        data = task.to_result(session.queue_position(task)).model_dump(mode="json", by_alias=True)
        result = TaskResult.model_validate(_redacted(data, redact))
        self.store.save_task(result, spec_record(task.spec, session.vault.redact))
