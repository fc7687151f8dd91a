"""Request checking without a server: every accepted format and every class of bad input."""

import json

import pytest

from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES, FEATURES
from bikeshare.serving.payload import MAX_BODY_BYTES, PayloadError, canonical_payload
from support.rows import csv_text, example_row, split_payload

ROW = [EXAMPLE_ROW[name] for name in FEATURE_NAMES]
CANONICAL = {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [ROW]}}
RECORD = dict(zip(FEATURE_NAMES, ROW, strict=True))
RUNBOOK = json.dumps(split_payload(nested=True), separators=(",", ":"))


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    "body",
    [
        RUNBOOK.encode(),
        _json({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [ROW]}}),
        _json({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [ROW], "index": [7]}}),
        _json({"dataframe_records": [RECORD]}),
        _json({"instances": [RECORD]}),
        _json({"inputs": [RECORD]}),
        _json({"inputs": {name: [value] for name, value in RECORD.items()}}),
        _json({"inputs": {"dataframe_records": [RECORD]}}),
        _json({"dataframe_records": [dict(reversed(list(RECORD.items())))]}),
        _json({"dataframe_records": [{**RECORD, "hour": 8.0}]}),
    ],
    ids=[
        "runbook",
        "split",
        "split-index",
        "records",
        "instances",
        "inputs-records",
        "inputs-columns",
        "runbook-records",
        "column-order",
        "integral-float",
    ],
)
def test_every_json_format_becomes_the_canonical_split(body: bytes) -> None:
    assert canonical_payload(body, "application/json") == CANONICAL


def test_csv_becomes_the_canonical_split() -> None:
    body = csv_text(RECORD, columns=FEATURE_NAMES[::-1], newline="\r\n").encode()
    assert canonical_payload(body, "text/csv; charset=utf-8") == CANONICAL


def test_types_are_exact_in_the_canonical_payload() -> None:
    body = _json({"dataframe_records": [{**RECORD, "temp_c": 20, "hour": 8.0}]})
    data = canonical_payload(body, "application/json")["dataframe_split"]["data"][0]
    assert [type(v) for v in data] == [
        {"string": str, "integer": int, "number": float}[f.kind] for f in FEATURES
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"{", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not UTF-8"),
        (RUNBOOK.encode(), "application/x-www-form-urlencoded", 415, "unsupported content type"),
        (RUNBOOK.encode(), None, 415, "no Content-Type header"),
        (RUNBOOK.encode(), "application/json; charset=latin-1", 415, "UTF-8"),
        (b"[1, 2]", "application/json", 400, "must be an object"),
        (_json({"foo": 1}), "application/json", 400, "found keys: foo"),
        (
            _json({"instances": [RECORD], "inputs": [RECORD]}),
            "application/json",
            400,
            "exactly one of the keys",
        ),
        (
            _json({"dataframe_split": {"columns": list(FEATURE_NAMES)}}),
            "application/json",
            400,
            "must have 'columns' and 'data'",
        ),
        (
            _json({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [ROW[:3]]}}),
            "application/json",
            400,
            f"data[0] must be a list of {len(FEATURE_NAMES)} values",
        ),
        (_json({"dataframe_records": []}), "application/json", 400, "no rows to score"),
        (
            _json({"dataframe_records": [{k: v for k, v in RECORD.items() if k != "dow"}]}),
            "application/json",
            400,
            "row 0: missing column(s) dow",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "rain_mm": 2}]}),
            "application/json",
            400,
            "row 0: unexpected column(s) rain_mm",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "hour": 8.5}]}),
            "application/json",
            400,
            "row 0: hour must be an integer from 0 to 23, got number 8.5",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "hour": 24}]}),
            "application/json",
            400,
            "hour must be an integer from 0 to 23, got 24",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "dow": 7}]}),
            "application/json",
            400,
            "dow must be an integer from 0 to 6, got 7",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "temp_c": 451.0}]}),
            "application/json",
            400,
            "temp_c must be a number from -50 to 55, got 451",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "temp_c": float("nan")}]}),
            "application/json",
            400,
            "temp_c must be a number from -50 to 55, got NaN",
        ),
        (
            _json({"dataframe_records": [{**RECORD, "station_id": 72}]}),
            "application/json",
            400,
            "station_id must be a string",
        ),
        (
            _json({"inputs": {"station_id": ["72", "73"], "hour": [8]}}),
            "application/json",
            400,
            "different lengths",
        ),
        (b"", "text/csv", 400, "CSV body is empty"),
        (csv_text(example_row(hour=8.5)).encode(), "text/csv", 400, "got string '8.5'"),
        (
            csv_text(RECORD).encode().rstrip(b"\n").rpartition(b",")[0] + b"\n",
            "text/csv",
            400,
            f"CSV line 2 has {len(FEATURE_NAMES) - 1} values",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply"),
        (
            b'{"dataframe_records": [{"hour": 1' + b"0" * 5000 + b"}]}",
            "application/json",
            400,
            "not valid JSON",
        ),
    ],
)
def test_bad_input_is_refused_with_a_named_problem(
    body: bytes, content_type: str | None, status: int, fragment: str
) -> None:
    with pytest.raises(PayloadError) as refused:
        canonical_payload(body, content_type)
    assert refused.value.status == status
    assert fragment in str(refused.value)
    assert json.loads(refused.value.to_json())["message"] == str(refused.value)


def test_many_bad_cells_are_summarised() -> None:
    rows = [{**RECORD, "hour": 99} for _ in range(10)]
    with pytest.raises(PayloadError) as refused:
        canonical_payload(_json({"dataframe_records": rows}), "application/json")
    message = str(refused.value)
    assert message.count("hour must be") == 3
    assert message.endswith("(and more)")


def test_body_over_sagemakers_limit_is_413() -> None:
    with pytest.raises(PayloadError) as refused:
        canonical_payload(b" " * (MAX_BODY_BYTES + 1), "application/json")
    assert refused.value.status == 413
    assert "6 MiB" in str(refused.value)


# Item 5: the CSV reader itself must never raise past the checker (that was a 500).
HEADER = ",".join(FEATURE_NAMES)
LINE = ",".join(str(value) for value in ROW)
TEXT_COLUMN = next(i for i, feature in enumerate(FEATURES) if feature.kind == "string")


def _csv(*lines: str, newline: str = "\n") -> bytes:
    return newline.join(lines).encode()


def _with_cell(index: int, cell: str) -> str:
    cells = [str(value) for value in ROW]
    cells[index] = cell
    return ",".join(cells)


@pytest.mark.parametrize(
    "body",
    [
        _csv(HEADER, LINE, "", newline="\r"),
        _csv(HEADER, LINE, newline="\r"),
        _csv(HEADER, LINE, newline="\r\n") + b"\r",
        b"\xef\xbb\xbf" + _csv(HEADER, LINE, ""),
    ],
    ids=["cr-only", "cr-only-no-final", "mixed-endings", "excel-bom"],
)
def test_csv_line_endings_and_excels_bom_are_accepted(body: bytes) -> None:
    assert canonical_payload(body, "text/csv") == CANONICAL


def test_a_quoted_cell_keeps_its_carriage_return() -> None:
    body = _csv(HEADER, _with_cell(TEXT_COLUMN, '"7\r2"'), "", newline="\r")
    data = canonical_payload(body, "text/csv")["dataframe_split"]["data"]
    assert data[0][TEXT_COLUMN] == "7\r2"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            _csv(HEADER, _with_cell(0, "7" * 131_073)),
            "CSV line 2 has a value longer than 131072 characters",
        ),
        (
            _csv(HEADER, LINE, _with_cell(-1, "2" * 200_000)),
            "CSV line 3 has a value longer than 131072 characters",
        ),
        (_csv(HEADER, '"' + LINE), "CSV line 2 is not valid CSV"),
        (_csv(HEADER, _with_cell(TEXT_COLUMN, '"72"x')), "CSV line 2 is not valid CSV"),
        (
            _csv(",".join([FEATURE_NAMES[0], *FEATURE_NAMES[:-1]]), LINE),
            f"the CSV header names the column {FEATURE_NAMES[0]} twice",
        ),
    ],
    ids=["huge-first-cell", "huge-last-cell", "unclosed-quote", "text-after-quote", "dup-header"],
)
def test_unreadable_csv_is_a_named_400(body: bytes, fragment: str) -> None:
    with pytest.raises(PayloadError) as refused:
        canonical_payload(body, "text/csv")
    assert refused.value.status == 400
    assert fragment in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_huge_integer_for_a_number_feature_without_bounds_is_a_400(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Feature permits no minimum/maximum (the guide's walkthrough adds such features); the range
    check then passes any JSON integer, and float() of 10**400 overflowed: a 500, not a 400."""
    from bikeshare.model.features import Feature
    from bikeshare.serving import payload

    unbounded = tuple(
        Feature(f.name, f.kind) if f.kind != "string" else f for f in payload.FEATURES
    )
    monkeypatch.setattr(payload, "FEATURES", unbounded)
    for feature in (f for f in unbounded if f.kind != "string"):
        row = {**RECORD, feature.name: 10**400}
        with pytest.raises(PayloadError) as refused:
            canonical_payload(_json({"dataframe_records": [row]}), "application/json")
        assert refused.value.status == 400
        assert f"{feature.name} must be" in str(refused.value)
        assert "beyond a 64-bit float" in str(refused.value)
