"""Turning what a task extracted into its output: markdown text, JSON checked against ``outputSchema``
with ``jsonschema``, or CSV with the schema's columns in order."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from browser_sessions.backends.local.page.extract import Table
from browser_sessions.backends.output_checks import check_json
from browser_sessions.errors import OutputInvalid
from browser_sessions.models import OutputType


@dataclass(frozen=True)
class TextExtract:
    markdown: str


Extract = TextExtract | Table

_NUMBER_NOISE = re.compile(r"[^\d.eE+-]")


def build_output(extracts: list[Extract], output_type: OutputType, schema: Any, summary: str) -> Any:
    """The task's output value; ``summary`` (what was done) stands in for text when nothing was extracted.

    Raises ``OutputInvalid`` with the validation message when a structured output cannot be made to fit.
    """
    if output_type == "text":
        if not extracts:
            return summary
        return "\n\n".join(e.markdown if isinstance(e, TextExtract) else e.markdown() for e in extracts)
    if not extracts:
        raise OutputInvalid(
            f"outputType {output_type} needs something extracted: end the task with `extract table` "
            '(or `extract table "<caption>"`)' + (" or `extract text`." if output_type == "structured_json" else ".")
        )
    last = extracts[-1]
    if output_type == "structured_json":
        return _json_output(last, schema)
    if not isinstance(last, Table):
        raise OutputInvalid("structured_csv needs a table: end the task with `extract table`.")
    return _csv_output(last, schema)


def _json_output(extract: Extract, schema: dict[str, Any]) -> Any:
    if isinstance(extract, TextExtract):
        value: Any = extract.markdown
    else:
        rows_schema, wrap_key = _rows_location(schema)
        rows = [_coerce(record, rows_schema.get("items", {})) for record in extract.records()]
        value = {wrap_key: rows} if wrap_key else rows
    return check_json(value, schema, "The extracted output")


def _rows_location(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Where table rows go: the schema itself when it is an array; its only array property when it is an
    object with exactly one (e.g. ``{"results": [...]}``); otherwise the schema (validation will say why)."""
    if schema.get("type") == "object":
        arrays = [(k, v) for k, v in schema.get("properties", {}).items() if v.get("type") == "array"]
        if len(arrays) == 1:
            return arrays[0][1], arrays[0][0]
    return schema, None


def _coerce(record: dict[str, str], item_schema: dict[str, Any]) -> dict[str, Any]:
    """Cell text to the types the schema asks for ("$1,299.00" -> 1299.0), matching keys case-insensitively."""
    properties: dict[str, Any] = item_schema.get("properties", {})
    by_lower = {name.lower(): name for name in properties}
    result: dict[str, Any] = {}
    for header, text in record.items():
        key = by_lower.get(header.lower(), header)
        wanted = properties.get(key, {}).get("type")
        result[key] = _convert(text, wanted)
    return result


def _convert(text: str, wanted: Any) -> Any:
    kinds = wanted if isinstance(wanted, list) else [wanted]
    if "null" in kinds and not text.strip():
        return None
    if "number" in kinds or "integer" in kinds:
        digits = _NUMBER_NOISE.sub("", text)
        try:
            number = float(digits)
        except ValueError:
            return text
        if "integer" in kinds and number.is_integer():
            return int(number)
        return number if "number" in kinds else text
    if "boolean" in kinds and text.strip().lower() in ("true", "yes", "false", "no"):
        return text.strip().lower() in ("true", "yes")
    return text


def _csv_output(table: Table, columns: list[str]) -> str:
    by_lower = {header.lower(): i for i, header in enumerate(table.headers)}
    missing = [c for c in columns if c.lower() not in by_lower]
    if missing:
        raise OutputInvalid(
            f"outputSchema columns {missing} are not in the extracted table, whose columns are "
            f"{list(table.headers)}. Use those names in outputSchema."
        )
    indexes = [by_lower[c.lower()] for c in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in table.rows:
        writer.writerow([row[i] if i < len(row) else "" for i in indexes])
    return buffer.getvalue()
