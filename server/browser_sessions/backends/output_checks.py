"""Checking a task's output against its ``outputSchema``: a JSON value with ``jsonschema``, CSV text by its
header. Both backends use these, whoever produced the output (the page, a model, or the remote service)."""

from __future__ import annotations

import csv
import io
from typing import Any

import jsonschema

from browser_sessions.errors import OutputInvalid


def check_json(value: Any, schema: dict[str, Any], what: str = "The output") -> Any:
    """``value`` if it fits ``schema``; else ``OutputInvalid`` naming where and why."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise OutputInvalid(f"{what} does not match outputSchema at {where}: {error.message}")
    return value


def check_csv(text: str, columns: list[str]) -> str:
    """``text`` as CSV with exactly ``columns`` as its header (any case) and rows of that width, rewritten
    with standard quoting; else ``OutputInvalid`` saying what is wrong."""
    rows = list(csv.reader(io.StringIO(text.strip())))
    if not rows:
        raise OutputInvalid(f"The output is empty; write CSV with the header row {','.join(columns)}.")
    header = [cell.strip() for cell in rows[0]]
    if [h.lower() for h in header] != [c.lower() for c in columns]:
        raise OutputInvalid(f"The CSV header is {header}; outputSchema wants exactly {columns}, in that order.")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise OutputInvalid(f"CSV row {number} has {len(row)} fields; every row needs {len(columns)}.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows[1:])
    return buffer.getvalue()
