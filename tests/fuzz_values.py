"""Hypothesis strategies for hostile input, shared by the MCP and the REST fuzzing (tests/test_fuzz*.py).

- ``hostile()``: any JSON value a careless or malicious caller might send: wrong types, huge and control-
  character strings, unicode, path traversal, odd URLs, injection text, extreme numbers, deep nesting.
- ``for_schema(schema, ...)``: a value for a JSON-schema'd field: mostly valid-looking (within the schema's
  bounds, steered by the field's name so that valid calls stay cheap: waits of a second at most, URLs on the
  test site, short instruction tasks), sometimes hostile.
- ``arguments(schema, ...)``: a whole argument object: all valid, one bad field, or chaos, with missing
  required fields and extra fields mixed in.

The secret canary is only ever planted as a secret's value (``secrets[].fields``), so finding it in any
answer is a leak, never an echo of some other field.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

CANARY = "canary-7f3a9c-never-shown"
# examples per fuzz test (per era for tools; one request per endpoint each); FUZZ_EXAMPLES=500 digs deeper
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example drives a browser, shrinking takes minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

Strategy = st.SearchStrategy[Any]


def nested(depth: int, leaf: Any = "x", key: str | None = "a") -> Any:
    """``depth`` levels of objects (``{key: ...}``) or, with ``key=None``, of lists."""
    value = leaf
    for _ in range(depth):
        value = [value] if key is None else {key: value}
    return value


HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "\r\nSet-Cookie: stolen=1",
    "\u202eevil\u202c",
    "\ufeff",
    "\U0001f600" * 50,
    "é" * 100,
    "../../../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\System32\\config\\SAM",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://",
    "http://[::1",
    "http://127.0.0.1:1/",
    "http://localhost:99999/",
    "https://exa mple.com/",
    "about:blank",
    "<script>alert(1)</script>",
    "'; DROP TABLE sessions; --",
    "${jndi:ldap://127.0.0.1:1/x}",
    "%s%s%s%n",
    "{{secret.PASSWORD}}",
    "{{secret.}}",
    "{0.__class__}",
    "null",
    "true",
    "-1",
    "NaN",
    "sk-live-0123456789abcdef0123456789abcdef",
    "Bearer test-key-1",
]
HOSTILE_NUMBERS = [-1, 0, 1, -(2**63), 2**63, 2**64 + 1, 10**30, -(10**30), 0.5, -0.0, 1e308, -1e308, 5e-324]

# built when drawn, so that hypothesis does not carry them around in every example's description
huge_text = st.sampled_from([("A", 20_001), ("Ω", 100_000), ("\x00", 1000), ("{{secret.X}}", 2000)]).map(
    lambda piece: piece[0] * piece[1]
)
# any unicode text (surrogates excepted: they cannot be encoded to send), control characters included
any_text = st.text(max_size=60)
control_text = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Co"]), min_size=1, max_size=30)
hostile_text = st.one_of(st.sampled_from(HOSTILE_STRINGS), any_text, control_text, huge_text)
hostile_number = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
scalars = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text)
json_values: Strategy = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)


NESTING_KEYS = ["a", "properties", "items", "not", "taskDetails", "secrets", "initialTask", "message", "task"]


def deep_values(max_depth: int) -> Strategy:
    """Objects (keys JSON Schema and our models know) or lists nested up to ``max_depth`` levels, often right
    at the limits that matter (our schema limit of 64, Python's recursion limit of 1000)."""
    edges = [d for d in (63, 64, 65, 100, 150, 200, 900, 990) if d <= max_depth]
    depths = st.one_of(st.sampled_from(edges), st.integers(min_value=2, max_value=max_depth))
    return st.builds(nested, depths, scalars, st.one_of(st.none(), st.sampled_from(NESTING_KEYS)))


# the official MCP client refuses to serialise much deeper arguments ("Maximum serialization depth exceeded")
MCP_MAX_DEPTH = 200


def hostile(max_depth: int = MCP_MAX_DEPTH) -> Strategy:
    """Any JSON value: scalars of every type (hostile strings and numbers among them), small containers of
    them, or deep nesting."""
    return st.one_of(scalars, json_values, deep_values(max_depth))


# ----- valid-looking values, steered by a field's name -----

# field name -> valid-looking values; a tuple of names -> objects holding those fields together
Hints = dict[str | tuple[str, ...], Strategy]


@dataclass
class Targets:
    """What valid-looking values point at: ids of things that exist (or once did), and the test site."""

    site: str  # e.g. http://127.0.0.1:8000
    session_ids: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    profile_ids: list[str] = field(default_factory=list)

    @staticmethod
    def _ids(known: list[str], unknown: list[str], length: int) -> Strategy:
        others = st.one_of(st.sampled_from(unknown), st.text(min_size=1, max_size=length))
        return st.one_of(st.sampled_from(known), others) if known else others

    def session_id(self) -> Strategy:
        unknown = ["s_0000", "0" * 64, "../sessions", "' OR 1=1 --", "%2e%2e%2f"]
        return self._ids(self.session_ids, unknown, 64)

    def task_id(self) -> Strategy:
        return self._ids(self.task_ids, ["t_0000", "x" * 64, "../../tasks"], 64)

    def profile_id(self) -> Strategy:
        return self._ids(self.profile_ids, ["p1", "../../../etc", "default", "*"], 128)

    def url(self) -> Strategy:
        paths = st.sampled_from(["/", "/table", "/product", "/echo?q=%3Cb%3E", "/missing"])
        return st.builds(lambda path: f"{self.site}{path}", paths)

    def task_details(self) -> Strategy:
        lines = st.one_of(
            st.builds(lambda url: f"go to {url}", self.url()),
            st.sampled_from(
                [
                    "extract text",
                    "extract table",
                    'click "Price list"',
                    'type "{{secret.PASSWORD}}" into "Search"',
                    'wait for "Price"',
                    "press Enter",
                    "frobnicate the widget",
                ]
            ),
        )
        instructions = st.builds("\n".join, st.lists(lines, min_size=1, max_size=3))
        return st.one_of(instructions, st.sampled_from(["Find the cheapest cable", "go to"]), any_text)

    @staticmethod
    def output_schemas() -> Strategy:
        """JSON Schemas and column lists: small ones, broken ones, one with a remote $ref (never fetched, we
        hope), and schemas nested around our limit of 64 levels and past jsonschema's recursion."""
        small = st.sampled_from(
            [
                {"type": "object"},
                {"type": "array", "items": {"type": "object"}},
                {"type": "nonsense"},
                {"$ref": "#/nowhere"},
                {"$ref": "http://127.0.0.1:1/schema.json"},
            ]
        )
        columns = st.lists(st.text(max_size=10), max_size=4)
        depths = st.sampled_from([3, 64, 65, 150, 200])
        deep = st.builds(nested, depths, st.just({"type": "object"}), st.sampled_from(["not", "items"]))
        return st.one_of(st.none(), small, columns, deep, deep)  # deep twice: schemas are what recurses

    def outputs(self) -> Strategy:
        """outputType with an outputSchema, as callers pair them (or mismatch them)."""
        types = st.sampled_from(["text", "structured_json", "structured_json", "structured_csv"])
        return st.fixed_dictionaries({"outputType": types, "outputSchema": self.output_schemas()})

    def secrets(self) -> Strategy:
        values = st.sampled_from([CANARY, f"pw {CANARY}", CANARY * 3, f'"{CANARY}"'])
        names = st.sampled_from(["PASSWORD", "token", "API_KEY", "bad name!", ""])
        matches = st.sampled_from(["all", "127.0.0.1", "*.example.com", "bad host!", ""])
        spec = st.fixed_dictionaries({"match": matches, "fields": st.dictionaries(names, values, max_size=2)})
        return st.lists(spec, max_size=2)

    def hints(self) -> Hints:
        """Field name -> valid-looking values; every wait short, every URL on the test site."""
        short_wait = st.floats(min_value=0, max_value=1)
        return {
            "sessionId": self.session_id(),
            "session_id": self.session_id(),
            "taskId": self.task_id(),
            "task_id": self.task_id(),
            "profileId": st.one_of(st.none(), self.profile_id()),
            "environmentId": self.profile_id(),
            "waitSeconds": short_wait,
            "seconds": st.floats(min_value=0.01, max_value=0.3),
            "url": self.url(),
            "startingPoint": st.one_of(st.none(), self.url()),
            "startingUrl": self.url(),
            "taskDetails": self.task_details(),
            "prompt": self.task_details(),
            "secrets": self.secrets(),
            "outputSchema": self.output_schemas(),
            ("outputType", "outputSchema"): self.outputs(),
            "avoidDomains": st.lists(st.sampled_from(["example.com", "*.evil.test", "127.0.0.2"]), max_size=3),
            "file": st.sampled_from(["report.csv", "../../../../etc/passwd", "/etc/passwd", "nope.txt"]),
        }


def for_schema(schema: dict[str, Any], defs: dict[str, Any], name: str, hints: Hints, bad: bool) -> Strategy:
    """A value for the field ``name`` with ``schema``: valid-looking, or (``bad``) valid-looking or hostile."""
    valid = _valid(schema, defs, name, hints)
    return st.one_of(valid, hostile()) if bad else valid


def _valid(schema: dict[str, Any], defs: dict[str, Any], name: str, hints: Hints) -> Strategy:
    if "$ref" in schema:
        return _valid(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name, hints)
    if name in hints:
        return hints[name]
    if "anyOf" in schema:
        return st.one_of([_valid(option, defs, name, hints) for option in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        low = schema.get("minLength", 0)
        return st.text(min_size=low, max_size=max(low, min(schema.get("maxLength", 40), 40)))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        return st.floats(
            min_value=low,
            max_value=schema.get("maximum"),
            exclude_min="exclusiveMinimum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = _valid(schema.get("items", {}), defs, name, hints)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "object" and "properties" in schema:
        return _arguments(schema, defs, hints, chaos=False)
    if kind == "object":
        low = schema.get("minProperties", 0)
        deep = deep_values(MCP_MAX_DEPTH).filter(lambda value: isinstance(value, dict) and len(value) >= low)
        return st.one_of(st.dictionaries(any_text, json_values, min_size=low, max_size=3), deep)
    return json_values


# fields whose default would make a valid call slow (waitSeconds defaults to 50): always sent, short
ALWAYS_SENT = frozenset({"waitSeconds"})


def arguments(schema: dict[str, Any], targets: Targets) -> Strategy:
    """An argument object for an object ``schema``: every field valid-looking, one field hostile, or every
    field possibly hostile; then maybe a required field dropped or unknown fields added."""
    return _arguments(schema, {}, targets.hints(), chaos=True)


def _arguments(schema: dict[str, Any], defs: dict[str, Any], hints: Hints, *, chaos: bool) -> Strategy:
    defs = {**defs, **schema.get("$defs", {})}
    properties: dict[str, Any] = schema.get("properties", {})
    required: Sequence[str] = schema.get("required", [])

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        style = draw(st.sampled_from(["valid", "valid", "one bad", "chaos"])) if chaos else "valid"
        bad_one = draw(st.sampled_from(sorted(properties))) if style == "one bad" and properties else None
        result: dict[str, Any] = {}
        for group, joint in hints.items():
            together = isinstance(group, tuple) and set(group) <= set(properties) and bad_one not in group
            if together and draw(st.booleans()):
                result.update(draw(joint))
        for name, sub in properties.items():
            if name in result:
                continue
            always = name in required or name in ALWAYS_SENT or name == bad_one
            if not always and not draw(st.booleans()):
                continue
            bad = style == "chaos" or name == bad_one
            result[name] = draw(for_schema(sub, defs, name, hints, bad))
        if chaos and required and draw(st.integers(0, 9)) == 0:
            result.pop(draw(st.sampled_from(list(required))), None)
        if chaos and draw(st.integers(0, 9)) == 0:
            result.update(draw(st.dictionaries(st.sampled_from(["colour", "__proto__", "sessionid", ""]), scalars)))
        return result

    return build()


def leaks(text: str) -> list[str]:
    """What in an answer must never reach a caller: a planted secret, a Python traceback."""
    found = []
    if CANARY in text:
        found.append("the planted secret value")
    if "Traceback (most recent call last)" in text or 'File "/' in text:
        found.append("a Python traceback")
    return found
