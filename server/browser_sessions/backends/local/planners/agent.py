"""The model planner: observe the page -> the model calls one tool -> act -> repeat, until ``done``, the
step limit, a token budget or maxDuration (the task's cancel scope) ends it.

It drives pages through the same Driver and action layer as the step tools (``steps.act_on``). Older
observations are dropped from the conversation (only the latest page is shown), which keeps each turn's
input about the size of one snapshot.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from browser_sessions.backends.local.driver import Driver
from browser_sessions.backends.local.page.snapshot import Snapshot, take_snapshot
from browser_sessions.backends.local.planners.agent_prompt import fence, new_nonce, system_prompt, task_message
from browser_sessions.backends.local.planners.agent_tools import (
    ASK_HUMAN,
    DONE,
    action_request,
    is_action,
    tools_for,
)
from browser_sessions.backends.local.planners.models.base import (
    AssistantTurn,
    ChatModel,
    Message,
    ModelReply,
    ModelRequest,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    UserText,
)
from browser_sessions.backends.local.planners.replay import ReplayBuilder, replay_line
from browser_sessions.backends.local.steps import act_on, dialog_info
from browser_sessions.backends.local.views import tab_infos
from browser_sessions.backends.output_checks import check_csv, check_json
from browser_sessions.errors import (
    BrowserSessionsError,
    OutputInvalid,
    StepLimitReached,
    TokenBudgetExceeded,
    describe_validation,
)

if TYPE_CHECKING:
    from browser_sessions.backends.local.session import LocalSession
    from browser_sessions.backends.tasks import TaskRecord

MAX_TOKENS_PER_TURN = 8192
OMITTED = "(the page at this point is omitted; the latest observation shows the current page)"


@dataclass
class _Exchange:
    """One model turn and what it was told back: answers to its tool calls (the first is the one that
    ran), or a plain note when there was nothing to answer; ``page`` is shown only for the latest one."""

    reply: AssistantTurn | None
    answers: list[tuple[ToolCall, str]]
    note: str
    page: str


@dataclass
class AgentRun:
    session: LocalSession
    task: TaskRecord
    driver: Driver
    model: ChatModel
    nonce: str = field(default_factory=new_nonce)
    exchanges: list[_Exchange] = field(default_factory=list)
    replay: ReplayBuilder = field(default_factory=ReplayBuilder)
    snapshot: Snapshot | None = None
    last_note: str = ""
    output_attempts: int = 0

    async def run(self) -> Any:
        """The task's output; raises ``TaskFailure``s (the caller adds ``partial()`` to the result)."""
        spec, settings = self.task.spec, self.session.settings
        if spec.starting_point:
            self.replay.starting_point(spec.starting_point)
        system = system_prompt(spec, self.session.vault.placeholders(), self.nonce)
        tools = tools_for(spec)
        self.task.usage.step_limit = settings.agent_max_steps
        page = await self._observe()
        self.exchanges.append(_Exchange(None, [], task_message(spec), page))
        for _ in range(settings.agent_max_steps):
            reply = await self._ask(system, tools)
            self.last_note = reply.text.strip() or self.last_note
            turn = AssistantTurn(reply.text, reply.tool_calls)
            if not reply.tool_calls:
                note = "Call exactly one tool: an action on the page, ask_human(question), or done(output)."
                self.exchanges.append(_Exchange(turn, [], note, page))
                continue
            call, *others = reply.tool_calls
            declined = [(c, "Not run: one action per turn. Choose again after reading the result.") for c in others]
            if call.name == DONE:
                output, problem = self._finish(call)
                if problem is None:
                    self.task.replay = self.replay.build(spec.output_type)
                    return output
                answer = f"done: refused. {problem} Call done again with a corrected output."
            elif call.name == ASK_HUMAN:
                question = str(call.arguments.get("question") or "").strip() or "The task needs your input."
                response = await self.driver.ask_human(question)
                answer = f"ask_human: the user answered: {response}"
                page = await self._observe()
            elif is_action(call.name):
                answer = await self._act(call)
                page = await self._observe()
            else:
                answer = f"{call.name}: there is no such tool; call one of the tools you were given."
            self.exchanges.append(_Exchange(turn, [(call, answer), *declined], "", page))
        raise StepLimitReached(
            f"The task took {settings.agent_max_steps} model turns without finishing (the server's step limit, "
            "BROWSER_SESSIONS_AGENT_MAX_STEPS). Split the task into smaller ones; the partial result is in output."
        )

    def partial(self) -> str | None:
        """What exists of a result when the task stops early: where it got to and the model's last note."""
        if not self.exchanges:
            return None
        page = self.session.browser.active_page()
        where = f"{self.session.browser.title or '(untitled)'} ({page.url})" if page is not None else "no page"
        note = f" The model's last note: {self.last_note}" if self.last_note else ""
        return f"Unfinished after {len(self.task.steps)} steps; last page: {where}.{note}"

    # ----- the model -----

    async def _ask(self, system: str, tools: tuple[ToolSpec, ...]) -> ModelReply:
        spec, usage = self.task.spec, self.task.usage
        self._check_budget(spent_is_over=lambda used, limit: used >= limit)
        request = ModelRequest(
            system=system,
            messages=tuple(self._messages()),
            tools=tools,
            max_output_tokens=min(MAX_TOKENS_PER_TURN, spec.max_output_tokens - usage.output_tokens),
        )
        reply = await self.model.complete(request)
        self.task.model = self.model.name  # a sampling client names its model in its first reply
        usage.calls += 1
        usage.input_tokens += reply.usage.input_tokens
        usage.output_tokens += reply.usage.output_tokens
        usage.estimated = usage.estimated or reply.usage.estimated
        self.task.touch()
        self._check_budget(spent_is_over=lambda used, limit: used > limit)
        return reply

    def _check_budget(self, spent_is_over: Callable[[int, int], bool]) -> None:
        spec, usage = self.task.spec, self.task.usage
        how = "estimated from text; the model source reports none" if usage.estimated else "as reported by the model"
        for kind, used, limit in (
            ("Input", usage.input_tokens, spec.max_input_tokens),
            ("Output", usage.output_tokens, spec.max_output_tokens),
        ):
            if spent_is_over(used, limit):
                raise TokenBudgetExceeded(
                    f"The task used up max{kind}Tokens: {used} of {limit} {kind.lower()} tokens ({how}) after "
                    f"{usage.calls} model calls. Raise max{kind}Tokens (at most 100000) or split the task; "
                    "the partial result is in output."
                )

    def _messages(self) -> list[Message]:
        messages: list[Message] = []
        for i, exchange in enumerate(self.exchanges):
            page = exchange.page if i == len(self.exchanges) - 1 else OMITTED
            if exchange.reply is not None:
                messages.append(exchange.reply)
            if not exchange.answers:
                messages.append(UserText(f"{exchange.note}\n\n{page}"))
                continue
            (call, answer), *declined = exchange.answers
            messages.append(ToolOutcome(call.id, call.name, f"{answer}\n\n{page}"))
            messages += [ToolOutcome(c.id, c.name, text) for c, text in declined]
        return messages

    # ----- the page -----

    async def _observe(self) -> str:
        """The current page for the model, all of it inside the untrusted fence."""
        session, redact = self.session, self.session.vault.redact
        page = await self.driver.page()
        lines = [f"URL: {redact(page.url)}", f"Title: {session.browser.title or ''}"]
        tabs = tab_infos(session)
        if len(tabs) > 1:
            lines.append("Tabs: " + "; ".join(f"{t.index}{' (active)' if t.active else ''}: {t.url}" for t in tabs))
        dialog = dialog_info(session)
        if dialog is not None:
            self.snapshot = None
            lines.append(f"A {dialog.type} dialog is open: {dialog.message!r}. Answer it with the dialog tool.")
        else:
            self.snapshot = await take_snapshot(page, redact=redact)
            lines.append(self.snapshot.render(max_chars=session.settings.agent_snapshot_chars))
        return "Current page:\n" + fence("\n".join(lines), self.nonce)

    async def _act(self, call: ToolCall) -> str:
        try:
            request = action_request(call)
        except ValidationError as exc:
            return f"{call.name}: refused. {describe_validation(exc)}"
        element = self.snapshot.element(request.ref) if self.snapshot is not None and request.ref else None
        same = 0
        if element is not None and self.snapshot is not None:
            same = sum(1 for e in self.snapshot.elements if e.name.strip().lower() == element.name.strip().lower())
        line, problem = replay_line(request, element, same)
        label = line or " ".join(str(v) for v in (request.action, request.ref, request.key) if v)
        try:
            result = await act_on(
                self.session, self.driver, request, max_chars=0, against_last=False, label=label, observe=False
            )
        except BrowserSessionsError as exc:
            return f"{call.name}: failed.\n" + fence(exc.message, self.nonce)
        self.replay.record(len(self.task.steps), request.action, line, problem)
        if not result.changes:
            return f"{call.name}: done; the page below shows its effect."
        return f"{call.name}: done.\n" + fence("; ".join(result.changes), self.nonce)

    def _finish(self, call: ToolCall) -> tuple[Any, str | None]:
        """The checked output of ``done``, or the problem to tell the model (after the allowed retries the
        problem fails the task)."""
        spec = self.task.spec
        value = call.arguments.get("output")
        raw = value if isinstance(value, str) else json.dumps(value)
        try:
            if value is None:
                raise OutputInvalid("done needs output: the result the task asks for.")
            if spec.output_type == "structured_json":
                if isinstance(value, str):
                    with contextlib.suppress(json.JSONDecodeError):  # a plain string: the schema decides
                        value = json.loads(value)
                assert isinstance(spec.output_schema, dict)
                return check_json(value, spec.output_schema), None
            if spec.output_type == "structured_csv":
                assert isinstance(spec.output_schema, list)
                return check_csv(raw, spec.output_schema), None
            return raw, None
        except OutputInvalid as exc:
            self.output_attempts += 1
            self.last_note = f"its last output, which failed the check: {raw}"
            if self.output_attempts > self.session.settings.agent_output_retries:
                raise OutputInvalid(
                    f"{exc.message} The model could not fix its output in {self.output_attempts} attempts."
                ) from None
            return None, exc.message
