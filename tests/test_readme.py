"""The README against the real thing, read as markdown (markdown-it, tables enabled):

- every ``browser-sessions ...`` command it shows (shell code blocks and inline code) parses with the CLI's own
  parser, and every subcommand and option of that parser is shown in at least one of them;
- every repository path it names (``scripts/...``, ``examples/...``, ``tools/...``, any top-level folder) exists;
- the settings table names each ``Settings`` field by an environment variable pydantic-settings really reads,
  with the field's default and real flags, and every ``BROWSER_SESSIONS_*`` name in the docs is a setting;
- the tool tables list exactly the tools a server lists through the official MCP client, with their real
  parameters, defaults, required ones and annotations; the resource table exactly its ``session://`` templates.

examples/README.md is held to the same commands and paths.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pydantic_settings import EnvSettingsSource

from browser_sessions.cli import _parser
from browser_sessions.settings import Settings
from tests.conftest import connect

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, ROOT / "examples" / "README.md"]
PROGRAM = "browser-sessions"
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
SHELL_OPERATORS = {"|", "||", "&&", ";", "&"}
SAMPLE = "2"  # stands for a placeholder: a value every argument type of the CLI accepts (text, int, seconds)


# ----- reading the markdown -----


@dataclass(frozen=True)
class Shown:
    """A piece of code the docs show, where (``README.md:12``), and whether inline (prose) or a code block."""

    where: str
    text: str
    inline: bool


@dataclass(frozen=True)
class Table:
    where: str
    header: list[str]
    rows: list[tuple[str, list[str]]]  # (where, raw markdown of each cell)


def _tokens(doc: Path) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(doc.read_text(encoding="utf-8"))


def _label(doc: Path) -> str:
    return str(doc.relative_to(ROOT)) if doc.is_relative_to(ROOT) else str(doc)


def _where(doc: Path, token: Token, offset: int = 0) -> str:
    line = token.map[0] + 1 if token.map else 0
    return f"{_label(doc)}:{line + offset}"


def shown_code(doc: Path) -> Iterator[Shown]:
    """Inline code spans, and the logical lines of shell code blocks (``\\`` continuations joined)."""
    for token in _tokens(doc):
        if token.type == "fence" and token.info.strip().split(" ")[0] in SHELL_FENCES:
            pending, start = "", 0
            for number, line in enumerate(token.content.splitlines()):
                if not pending:
                    start = number
                if line.endswith("\\"):
                    pending += line[:-1] + " "
                    continue
                yield Shown(_where(doc, token, start + 1), pending + line, inline=False)
                pending = ""
        elif token.type == "inline":
            for child in token.children or []:
                if child.type == "code_inline":
                    yield Shown(_where(doc, token), child.content, inline=True)


def tables(doc: Path) -> list[Table]:
    found: list[Table] = []
    current: Table | None = None
    row: list[str] = []
    row_where = ""
    for token in _tokens(doc):
        if token.type == "table_open":
            current = Table(_where(doc, token), [], [])
        elif token.type == "tr_open":
            row, row_where = [], _where(doc, token)
        elif token.type == "inline" and current is not None:
            row.append(token.content)
        elif token.type == "tr_close" and current is not None:
            if current.header:
                current.rows.append((row_where, row))
            else:
                current.header.extend(cell.strip().lower() for cell in row)
        elif token.type == "table_close" and current is not None:
            found.append(current)
            current = None
    return found


def tables_headed(first_column: str) -> list[Table]:
    """The README's tables whose first header cell is ``first_column``; there must be one at least."""
    found = [table for table in tables(README) if table.header and table.header[0] == first_column]
    assert found, f"README.md has no table whose first column is headed {first_column!r}"
    return found


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ----- commands -----


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command with its path of names, the program itself first (path ``()``)."""
    yield path, parser
    for name, sub in _subcommands(parser).items():
        yield from _walk(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """The long options of one (sub)command, help excluded."""
    return {
        option
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
        if option.startswith("--")
    }


def _placeholders(parser: argparse.ArgumentParser) -> set[str]:
    """The names the CLI's own help uses for values: metavars, and argparse's upper-cased dests."""
    names: set[str] = set()
    for _, sub in _walk(parser):
        for action in sub._actions:
            if isinstance(action.metavar, str):
                names.add(action.metavar)
            names.add(action.dest.upper())
    return names


def command_words(shown: Shown) -> list[str] | None:
    """The arguments after ``browser-sessions`` when ``shown`` runs it (after ``VAR=value`` assignments, with
    any path before the program name), up to a shell operator or comment; None when it runs something else."""
    if PROGRAM not in shown.text:
        return None
    try:
        words = shlex.split(shown.text, comments=True)
    except ValueError as exc:
        pytest.fail(f"{shown.where}: `{shown.text}` is not a valid shell command line: {exc}")
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        words.pop(0)
    if not words or Path(words[0]).name != PROGRAM:
        return None
    arguments: list[str] = []
    for word in words[1:]:
        if word in SHELL_OPERATORS or word.startswith((">", "2>")):
            break
        arguments.append(word)
    return arguments


def _is_json(word: str) -> bool:
    try:
        json.loads(word)
    except ValueError:
        return False
    return True


def variants(words: list[str], placeholders: set[str]) -> list[list[str]]:
    """Concrete argument lists for a synopsis: ``[optional]`` parts are taken in, each ``a|b|c`` gives one
    variant per alternative (shorter lists repeat their last), placeholders (``URL``, ``<task>``) a sample."""
    choices: list[list[str]] = []
    depth = 0
    for word in words:
        if word.startswith("[") and not _is_json(word):
            word, depth = word[1:], depth + 1
        if word.endswith("]") and depth and not _is_json(word):
            word, depth = word[:-1], depth - 1
        options = word.split("|") if re.fullmatch(r"[^|\s]+(\|[^|\s]+)+", word) else [word]
        choices.append([SAMPLE if o in placeholders or re.fullmatch(r"<[^<>]+>", o) else o for o in options])
    count = max((len(options) for options in choices), default=1)
    return [[options[min(i, len(options) - 1)] for options in choices] for i in range(count)]


def parse_error(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """What argparse says about ``argv`` (its last line), or None when it parses."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                return errors.getvalue().strip().splitlines()[-1]
    return None


def names_a_command(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """``argv`` is a chain of (sub)command names, as prose names a command ("``browser-sessions run``
    prints ..."): there it need only exist. Code blocks show command lines, which must parse."""
    current = parser
    for word in argv:
        subcommands = _subcommands(current)
        if word not in subcommands:
            return False
        current = subcommands[word]
    return True


def command_path(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[str, ...]:
    path: list[str] = []
    current = parser
    for word in argv:
        subcommands = _subcommands(current)
        if word in subcommands:
            path.append(word)
            current = subcommands[word]
    return tuple(path)


def test_every_command_shown_parses_and_every_command_and_option_is_shown() -> None:
    parser = _parser()
    placeholders = _placeholders(parser)
    bad: list[str] = []
    used: dict[tuple[str, ...], set[str]] = {}
    count = 0
    for doc in DOCS:
        for shown in shown_code(doc):
            words = command_words(shown)
            if words is None:
                continue
            for argv in variants(words, placeholders):
                count += 1
                error = parse_error(parser, argv)
                if error and not (shown.inline and names_a_command(parser, argv)):
                    bad.append(f"{shown.where}: `{shown.text}` -> browser-sessions {shlex.join(argv)}: {error}")
                used.setdefault(command_path(parser, argv), set()).update(w for w in argv if w.startswith("--"))
    assert not bad, "commands the docs show that the CLI refuses:\n" + "\n".join(bad)
    assert count, "found no browser-sessions command in the docs"

    unshown = [
        " ".join([PROGRAM, *path, option])
        for path, sub in _walk(parser)
        for option in sorted(_options(sub) - used.get(path, set()))
    ]
    unshown += [
        " ".join([PROGRAM, *path]) for path, _ in _walk(parser) if not any(shown[: len(path)] == path for shown in used)
    ]
    assert not unshown, "commands and options the README never shows in a command:\n" + "\n".join(unshown)


# ----- paths -----


def generated(path: str) -> bool:
    """Whether ``path`` is one a command makes (benchmark results, installed tools): git ignores it."""
    forms = [path, f"{path.rstrip('/')}/"]  # a folder pattern ("bench/.node/") matches only the folder form
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *forms], cwd=ROOT, capture_output=True, check=False)
    return ignored.returncode == 0  # 0: at least one form is ignored


def test_every_repository_path_shown_exists() -> None:
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    pattern = re.compile(rf"(?<![\w./~$-])(?:\./)?((?:{'|'.join(map(re.escape, folders))})/[\w./-]*)")
    missing: list[str] = []
    checked = 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in pattern.finditer(text):
            path = match.group(1).rstrip(".")
            checked += 1
            if not (ROOT / path).exists() and not generated(path):
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{_label(doc)}:{line}: {path}")
    assert checked, "found no repository path in the docs"
    assert not missing, "paths the docs show that do not exist:\n" + "\n".join(missing)


# ----- settings -----


def env_names() -> dict[str, set[str]]:
    """Each Settings field and the environment variables pydantic-settings reads it from (upper-cased)."""
    source = EnvSettingsSource(Settings)
    return {
        name: {env.upper() for _, env, _ in source._extract_field_info(field, name)}
        for name, field in Settings.model_fields.items()
    }


def default_literal(name: str) -> str | float | None:
    """The default a settings row must show as code: numbers, booleans and non-empty text; None where the
    default is unset, empty or depends on the machine (paths)."""
    value = Settings.model_fields[name].get_default(call_default_factory=True)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        return value
    return None


def _shows(spans: list[str], expected: str | float) -> bool:
    if isinstance(expected, str):
        return expected in spans
    for span in spans:
        with contextlib.suppress(ValueError):
            if float(span) == expected:
                return True
    return False


def test_settings_table_lists_every_setting_by_its_real_variable_default_and_flag() -> None:
    names = env_names()
    field_of = {env: field for field, envs in names.items() for env in envs}
    all_options = {option for _, sub in _walk(_parser()) for option in _options(sub)}
    problems: list[str] = []
    rows: dict[str, str] = {}
    for table in tables_headed("variable"):
        flag_column = table.header.index("flag") if "flag" in table.header else None
        default_column = table.header.index("default")
        for where, cells in table.rows:
            variables = [span for span in code_spans(cells[0]) if re.fullmatch(r"[A-Z][A-Z0-9_]+", span)]
            if len(variables) != 1:
                problems.append(f"{where}: a row names one variable, this one {variables or cells[0]!r}")
                continue
            variable = variables[0]
            field = field_of.get(variable)
            if field is None:
                problems.append(f"{where}: {variable} is not read by Settings")
                continue
            if field in rows:
                problems.append(f"{where}: {field} is already listed at {rows[field]}")
            rows[field] = where
            expected = default_literal(field)
            if expected is not None and not _shows(code_spans(cells[default_column]), expected):
                problems.append(
                    f"{where}: {variable} defaults to {expected!r}, the row shows {cells[default_column]!r}"
                )
            if flag_column is not None:
                for flag in re.findall(r"--[\w-]+", cells[flag_column]):
                    if flag not in all_options:
                        problems.append(f"{where}: no command has the flag {flag}")
    problems += [f"{field} ({' or '.join(sorted(names[field]))}) has no row" for field in names if field not in rows]
    assert not problems, "the settings table and Settings differ:\n" + "\n".join(problems)


def test_every_browser_sessions_variable_named_is_a_setting() -> None:
    real = {env for envs in env_names().values() for env in envs}
    unknown = [
        f"{_label(doc)}: {name}"
        for doc in DOCS
        for name in sorted(set(re.findall(r"BROWSER_SESSIONS_[A-Z0-9_]*[A-Z0-9]", doc.read_text(encoding="utf-8"))))
        if name not in real
    ]
    assert not unknown, "variables the docs name that no setting reads:\n" + "\n".join(unknown)


# ----- tools and resources -----


@dataclass(frozen=True)
class Signature:
    """``send_task(sessionId, taskDetails, …, terminateOnCompletion?, waitSeconds=50)``: plain names are
    required, ``?`` optional, ``=value`` optional with that default, ``…`` means more parameters exist."""

    name: str
    required: frozenset[str]
    optional: dict[str, Any]  # name -> the default shown, or ... when none is shown
    complete: bool


def read_signature(where: str, text: str) -> Signature:
    match = re.fullmatch(r"(\w+)\((.*)\)", text.strip())
    assert match, f"{where}: the tool cell should read name(parameters), not {text!r}"
    required: set[str] = set()
    optional: dict[str, Any] = {}
    complete = True
    for part in (p.strip() for p in match.group(2).split(",") if p.strip()):
        if "…" in part or "..." in part:
            complete = False
        elif plain := re.fullmatch(r"\w+", part):
            required.add(plain.group())
        elif maybe := re.fullmatch(r"(\w+)\?", part):
            optional[maybe.group(1)] = ...
        elif default := re.fullmatch(r"(\w+)=(.+)", part):
            optional[default.group(1)] = json.loads(default.group(2))
        else:
            pytest.fail(f"{where}: cannot read the parameter {part!r} of {text!r}")
    return Signature(match.group(1), frozenset(required), optional, complete)


@pytest.mark.anyio
async def test_tool_tables_match_the_tools_the_server_lists() -> None:
    async with connect() as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    problems: list[str] = []
    documented: dict[str, str] = {}
    for table in tables_headed("tool"):
        annotations_column = table.header.index("annotations")
        for where, cells in table.rows:
            spans = code_spans(cells[0])
            assert spans, f"{where}: the tool cell holds no code"
            signature = read_signature(where, spans[0])
            tool = listed.get(signature.name)
            if tool is None:
                problems.append(f"{where}: the server lists no tool {signature.name}")
                continue
            documented[signature.name] = where
            properties: dict[str, Any] = tool.input_schema.get("properties", {})
            required = set(tool.input_schema.get("required", []))
            for name in signature.required | set(signature.optional):
                if name not in properties:
                    problems.append(f"{where}: {signature.name} has no parameter {name}")
            for name in signature.required - required:
                problems.append(f"{where}: {signature.name}.{name} is optional: write {name}? or {name}=default")
            for name, shown in signature.optional.items():
                if name in required:
                    problems.append(f"{where}: {signature.name}.{name} is required: write it without ? or =")
                elif shown is not ... and name in properties and properties[name].get("default") != shown:
                    real = json.dumps(properties[name].get("default"))
                    problems.append(f"{where}: {signature.name}.{name} defaults to {real}, not {json.dumps(shown)}")
            named = signature.required | set(signature.optional)
            if signature.complete and set(properties) - named:
                problems.append(f"{where}: {signature.name} also takes {sorted(set(properties) - named)} (or write …)")
            hints = tool.annotations
            expected = {
                label
                for label, on in (
                    ("read-only", hints is not None and hints.read_only_hint),
                    ("destructive", hints is not None and hints.destructive_hint),
                )
                if on
            }
            shown_hints = cells[annotations_column]
            if set(re.findall(r"read-only|destructive", shown_hints)) != expected:
                problems.append(
                    f"{where}: {signature.name} is annotated {sorted(expected)}, the row shows {shown_hints!r}"
                )
    problems += [f"the server's tool {name} has no row" for name in sorted(set(listed) - set(documented))]
    assert not problems, "the tool tables and the server differ:\n" + "\n".join(problems)


@pytest.mark.anyio
async def test_resource_table_matches_the_templates_the_server_lists() -> None:
    async with connect() as client:
        listed = {template.uri_template for template in (await client.list_resource_templates()).resource_templates}
    shown = [code_spans(cells[0])[0] for table in tables_headed("uri") for _, cells in table.rows]
    assert sorted(shown) == sorted(listed), f"README: {sorted(shown)}\nserver: {sorted(listed)}"
