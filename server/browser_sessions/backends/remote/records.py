"""A remote task's record: the shared task record (``backends/tasks.py``) plus what following a task on the
service needs: its taskId there, run-task's first answer, and guardrail bookkeeping.

The service reports no steps and no planner, only an end state and token counts. The record is owned by its
session's worker; callers change it only through ``check_answerable`` / ``deliver`` (guardrail answers) and
``stop``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from browser_sessions.backends.remote.dialects import RemoteTask
from browser_sessions.backends.tasks import TaskRecord
from browser_sessions.errors import InvalidInput


@dataclass(eq=False)
class RemoteTaskRecord(TaskRecord):
    remote_id: str | None = None  # the service's taskId, once it has answered; ``task_id`` is ours
    first_answer: RemoteTask | None = None  # run-task's answer: the service started the task itself
    ended_by_service: bool = False  # the service reported the end (else we gave up or stopped it)
    answered_question: str | None = None  # the last question answered, and when (monotonic): see ``is_echo``
    answered_at: float = 0.0
    _answering: bool = False

    def note_usage(self, answer: RemoteTask) -> None:
        """Token counts are live while a task runs: keep the largest seen."""
        self.usage.input_tokens = max(self.usage.input_tokens, answer.input_tokens)
        self.usage.output_tokens = max(self.usage.output_tokens, answer.output_tokens)

    def check_answerable(self, response: str, resume: bool) -> None:
        if self._answering:
            raise InvalidInput(f"An answer to task {self.task_id}'s question is being sent; wait for the task.")
        super().check_answerable(response, resume)

    def sending(self, busy: bool) -> None:
        """An answer is on its way to the service (``deliver`` follows once it is there)."""
        self._answering = busy

    def answered(self) -> None:
        self.answered_question = self.guardrail
        self.answered_at = time.monotonic()
        super().answered()

    def is_echo(self, question: str, within: float) -> bool:
        """A poll right after an answer may still show the question just answered: not a new one."""
        return question == self.answered_question and time.monotonic() - self.answered_at < within
