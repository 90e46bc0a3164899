"""Pure pieces with no browser: the instruction parser, domain rules, the secret vault, output building."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from browser_sessions.backends.local.outputs import TextExtract, build_output
from browser_sessions.backends.local.page.extract import Table
from browser_sessions.backends.local.planners.instructions import (
    Check,
    Click,
    ExtractTable,
    ExtractText,
    GoTo,
    Press,
    Select,
    TypeText,
    WaitFor,
    parse,
)
from browser_sessions.backends.local.policy import DomainPolicy
from browser_sessions.backends.local.secrets import SecretUnavailable, SecretVault
from browser_sessions.errors import InstructionError, ModelRequired, OutputInvalid
from browser_sessions.models import SecretSpec, normalise_domain


def test_every_instruction_form_parses_case_insensitively_with_any_quotes() -> None:
    lines = parse(
        "GO TO example.com/a\n"
        'Click on "Add to cart"; type \'it"s\' into "Name" and press Enter\n'
        "select “Blue” from 'Colour'; uncheck \"News\"; tick 'Terms'\n"
        'press Escape; wait for "Done"; extract text; extract text of "Total"; extract table; extract table "Prices"'
    )
    assert [line.instruction for line in lines] == [
        GoTo("https://example.com/a"),
        Click("Add to cart"),
        TypeText('it"s', "Name", submit=True),
        Select("Blue", "Colour"),
        Check("News", checked=False),
        Check("Terms", checked=True),
        Press("Escape"),
        WaitFor("Done"),
        ExtractText(None),
        ExtractText("Total"),
        ExtractTable(None),
        ExtractTable("Prices"),
    ]
    assert [line.number for line in lines] == list(range(1, 13))


def test_semicolons_inside_quotes_do_not_split() -> None:
    (line,) = parse('type "a; b" into "Notes"')
    assert line.instruction == TypeText("a; b", "Notes", submit=False)


def test_free_text_asks_for_a_model_and_a_stray_line_is_named() -> None:
    with pytest.raises(ModelRequired):
        parse("Open amazon.com and look up laptops")
    with pytest.raises(InstructionError, match=r"Line 2 \('clik \"x\"'\)"):
        parse('go to https://a.example\nclik "x"')
    with pytest.raises(InstructionError, match="Line 1"):
        parse("go to http://")
    assert parse("  \n ; ") == []


def test_domain_rules_cover_subdomains_only() -> None:
    policy = DomainPolicy()
    policy.extend([normalise_domain("https://Shop.Example.com:8443/x"), normalise_domain("*.evil.test")])
    assert policy.avoided == ["evil.test", "shop.example.com"]
    assert policy.blocked_by("shop.example.com") == "avoidDomains: shop.example.com"
    assert policy.blocked_by("a.b.shop.example.com.") is not None
    assert policy.blocked_by("example.com") is None
    assert policy.blocked_by("notshop.example.com") is None
    assert policy.blocked_by("EVIL.test") is not None


def test_vault_fills_by_specificity_and_redacts_every_encoding() -> None:
    vault = SecretVault()
    vault.add(
        [
            SecretSpec(match="all", fields={"pw": SecretStr("fallback pw")}),
            SecretSpec(match="*.example.com", fields={"pw": SecretStr("wild&pw")}),
            SecretSpec(match="login.example.com", fields={"pw": SecretStr("exact pw")}),
        ]
    )
    assert vault.resolve("{{secret.pw}}", "login.example.com") == "exact pw"
    assert vault.resolve("{{ secret.pw }}", "www.example.com") == "wild&pw"
    assert vault.resolve("{{secret.pw}}", "other.org") == "fallback pw"
    with pytest.raises(SecretUnavailable, match="no secret has that name"):
        vault.resolve("{{secret.user}}", "other.org")
    text = "a=wild%26pw b=exact+pw c=exact%20pw d=fallback pw"
    assert vault.redact(text) == "a={{secret.pw}} b={{secret.pw}} c={{secret.pw}} d={{secret.pw}}"
    assert [p.model_dump() for p in vault.placeholders()] == [
        {"match": "*.example.com", "names": ["pw"]},
        {"match": "all", "names": ["pw"]},
        {"match": "login.example.com", "names": ["pw"]},
    ]
    vault.clear()
    assert vault.redact("exact pw") == "exact pw"


def test_secret_values_never_show_in_model_dumps_or_reprs() -> None:
    spec = SecretSpec(match="all", fields={"pw": SecretStr("hunter2")})
    assert "hunter2" not in repr(spec)
    assert "hunter2" not in spec.model_dump_json()


TABLE = Table(title="t", headers=("Name", "Price", "In stock"), rows=(("A", "$1,299.00", "yes"), ("B", "", "no")))


def test_json_output_coerces_cells_to_schema_types() -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "price": {"type": ["number", "null"]},
                "in stock": {"type": "boolean"},
            },
        },
    }
    value = build_output([TABLE], "structured_json", schema, "")
    assert value == [
        {"name": "A", "price": 1299.0, "in stock": True},
        {"name": "B", "price": None, "in stock": False},
    ]
    strict = {**schema, "items": {**schema["items"], "properties": {"price": {"type": "number"}}}}
    with pytest.raises(OutputInvalid, match="at 1/price: '' is not of type 'number'"):
        build_output([TABLE], "structured_json", strict, "")


def test_text_output_joins_extracts_and_csv_quotes() -> None:
    text = build_output([TextExtract("# Hi"), TABLE], "text", None, "summary")
    assert text.startswith("# Hi\n\n| Name | Price | In stock |")
    assert build_output([], "text", None, "summary") == "summary"
    assert build_output([TABLE], "structured_csv", ["price", "name"], "") == 'price,name\n"$1,299.00",A\n,B\n'
