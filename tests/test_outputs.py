"""Each output type end to end, with schema validation and its failures."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import MODES, call, connect
from tests.site import Site

pytestmark = pytest.mark.anyio

ROWS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"Name": {"type": "string"}, "Price": {"type": "number"}, "Note": {"type": "string"}},
        "required": ["Name", "Price"],
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize("mode", MODES)
async def test_text_output_is_markdown_of_the_page(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        result = await call(client, "run_task", taskDetails=f"go to {site.url('/table')}\nextract text")
        assert result["outputType"] == "text"
        assert "# Price list" in result["output"]
        assert "| Keyboard | $12.50 | plain |" in result["output"]
        assert result["outputUri"] == f"{result['resourceUri']}/output"


async def test_text_output_without_extraction_says_what_was_done(site: Site) -> None:
    async with connect() as client:
        result = await call(client, "run_task", taskDetails=f"go to {site.url('/')}")
        assert result["output"] == f"Done: 1 steps. Now at Home ({site.url('/')})."


@pytest.mark.parametrize("mode", MODES)
async def test_structured_json_rows_are_typed_and_validated(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        result = await call(
            client,
            "run_task",
            taskDetails=f'go to {site.url("/table")}\nextract table "Prices"',
            outputType="structured_json",
            outputSchema=ROWS_SCHEMA,
        )
        assert result["status"] == "task_completed", result
        assert result["output"] == [
            {"Name": "Keyboard", "Price": 12.5, "Note": "plain"},
            {"Name": "Cable, long", "Price": 3.0, "Note": 'has "quotes", and commas'},
        ]


async def test_structured_json_fills_an_object_schema_with_one_array(site: Site) -> None:
    schema = {"type": "object", "properties": {"results": ROWS_SCHEMA}, "required": ["results"]}
    async with connect() as client:
        result = await call(
            client,
            "run_task",
            taskDetails=f"go to {site.url('/table')}\nextract table",
            outputType="structured_json",
            outputSchema=schema,
        )
        assert [row["Name"] for row in result["output"]["results"]] == ["Keyboard", "Cable, long"]


async def test_structured_json_that_misses_the_schema_fails_with_the_reason(site: Site) -> None:
    schema = {"type": "array", "items": {"type": "object", "required": ["Name", "Rating"]}}
    async with connect() as client:
        result = await call(
            client,
            "run_task",
            taskDetails=f"go to {site.url('/table')}\nextract table",
            outputType="structured_json",
            outputSchema=schema,
        )
        assert result["status"] == "failed"
        assert result["error"]["code"] == "OUTPUT_VALIDATION_FAILED"
        assert "'Rating' is a required property" in result["error"]["message"]
        assert result["output"] is None


async def test_structured_output_needs_an_extraction(site: Site) -> None:
    async with connect() as client:
        result = await call(
            client, "run_task", taskDetails=f"go to {site.url('/')}", outputType="structured_csv", outputSchema=["a"]
        )
        assert result["error"]["code"] == "OUTPUT_VALIDATION_FAILED"
        assert "extract table" in result["error"]["message"]


@pytest.mark.parametrize("mode", MODES)
async def test_structured_csv_writes_the_schema_columns_in_order_with_quoting(mode: str, site: Site) -> None:
    async with connect(mode) as client:
        result = await call(
            client,
            "run_task",
            taskDetails=f"go to {site.url('/table')}\nextract table",
            outputType="structured_csv",
            outputSchema=["note", "Name"],
        )
        assert result["status"] == "task_completed", result
        rows = list(csv.reader(io.StringIO(result["output"])))
        assert rows == [["note", "Name"], ["plain", "Keyboard"], ['has "quotes", and commas', "Cable, long"]]
        assert '"has ""quotes"", and commas"' in result["output"]


async def test_structured_csv_with_unknown_columns_names_the_real_ones(site: Site) -> None:
    async with connect() as client:
        result = await call(
            client,
            "run_task",
            taskDetails=f"go to {site.url('/table')}\nextract table",
            outputType="structured_csv",
            outputSchema=["Name", "Colour"],
        )
        assert result["status"] == "failed"
        assert result["error"]["code"] == "OUTPUT_VALIDATION_FAILED"
        assert "['Colour']" in result["error"]["message"]
        assert "['Name', 'Price', 'Note']" in result["error"]["message"]


async def test_form_instructions_fill_select_check_and_submit(site: Site) -> None:
    async with connect() as client:
        result = await call(
            client,
            "run_task",
            taskDetails=(
                f'go to {site.url("/form")}; type "Grace Hopper" into "Full name"; type "Arlington" into "Your city"\n'
                'select "Large" in "Size"; check "Gift wrap"; click "Order now"; wait for "Received"; extract text'
            ),
        )
        assert result["status"] == "task_completed", result
        assert "name=Grace Hopper; city=Arlington; size=Large; gift=on" in result["output"]
        assert len(result["steps"]) == 8


async def test_a_missing_element_fails_naming_the_line_and_the_options(site: Site) -> None:
    async with connect() as client:
        result = await call(client, "run_task", taskDetails=f'go to {site.url("/form")}\nclick "Buy it now"')
        assert result["status"] == "failed"
        assert result["error"]["code"] == "ELEMENT_NOT_FOUND"
        message = result["error"]["message"]
        assert message.startswith("Line 2 ('click \"Buy it now\"')")
        assert "Order now" in message


async def test_an_element_that_cannot_be_clicked_fails_the_task_not_the_session(site: Site) -> None:
    async with connect() as client:
        sid = (await call(client, "start_session"))["sessionId"]
        result = await call(
            client, "send_task", sessionId=sid, taskDetails=f'go to {site.url("/steps")}\nclick "Covered"'
        )
        assert result["status"] == "failed"
        assert result["error"]["message"].startswith("Line 2 ('click \"Covered\"'): click failed")
        assert (await call(client, "get_session", sessionId=sid))["status"] == "Active"


async def test_free_text_needs_a_model_and_a_bad_line_is_named(site: Site) -> None:
    async with connect() as client:
        free = await call(client, "run_task", taskDetails="find the cheapest keyboard on the site")
        assert free["error"]["code"] == "MODEL_REQUIRED"
        assert "instruction lines" in free["error"]["message"]
        bad = await call(client, "run_task", taskDetails=f'go to {site.url("/")}\nclik "Form"')
        assert bad["error"]["code"] == "INVALID_TASK_DETAILS"
        assert "Line 2" in bad["error"]["message"]
        assert bad["steps"] == []
