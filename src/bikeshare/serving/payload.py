"""Turn an /invocations request into the one payload shape MLflow's scoring server is given.

Every format MLflow accepts (dataframe_split, dataframe_records, instances, inputs, CSV) plus the
seed runbook's nested `{"inputs": {"dataframe_split": ...}}` is read here, checked strictly against
the feature definitions, and rewritten as a canonical `dataframe_split` with exact types. Anything
wrong becomes a PayloadError whose message names the problem, so bad input is a 4xx, never a 5xx,
and never silently coerced (stock MLflow truncates `"hour": 8.5` to 8 and accepts hour 24).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bikeshare.errors import BikeshareError
from bikeshare.model.features import (
    FEATURE_NAMES,
    FEATURES,
    Feature,
    text_problem,
    value_problem,
)

# SageMaker's InvokeEndpoint limit; bigger bodies never reach a real endpoint, so refuse them here
# too instead of spending a worker on them.
MAX_BODY_BYTES = 6 * 1024 * 1024
JSON = "application/json"
CSV = "text/csv"
SUPPORTED_CONTENT_TYPES = (JSON, CSV)
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_MAX_PROBLEMS_SHOWN = 3

Row = Mapping[str, Any]


class PayloadError(BikeshareError):
    """A request the server refuses; `status` is the HTTP status and `code` a stable label."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def to_json(self) -> bytes:
        """The same shape MLflow uses for its own errors, so clients parse one format."""
        return json.dumps({"error_code": self.code, "message": str(self)}).encode()


def canonical_payload(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Check a request and return `{"dataframe_split": {"columns": [...], "data": [...]}}`."""
    mime = media_type(content_type)
    if len(body) > MAX_BODY_BYTES:
        raise body_too_large(len(body))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PayloadError(f"request body is not UTF-8 text: {error}") from error
    rows = rows_from_json_text(text) if mime == JSON else rows_from_csv_text(text)
    return {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": checked_data(rows)}}


def body_too_large(size: int) -> PayloadError:
    """The 413 for a body over SageMaker's limit."""
    return PayloadError(
        f"request body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes (6 MiB, SageMaker's "
        "InvokeEndpoint maximum): split the rows over several requests",
        status=413,
        code="PAYLOAD_TOO_LARGE",
    )


def media_type(content_type: str | None) -> str:
    """The request's media type, or a 415 naming the supported ones."""
    mime, _, params = (content_type or "").partition(";")
    mime = mime.strip().lower()
    charset = params.strip().lower().removeprefix("charset=").strip('"') if params else "utf-8"
    if mime not in SUPPORTED_CONTENT_TYPES or charset not in ("utf-8", "utf8"):
        got = f"'{content_type}'" if content_type else "no Content-Type header"
        raise PayloadError(
            f"unsupported content type {got}; send application/json or text/csv (UTF-8)",
            status=415,
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    return mime


def rows_from_json_text(text: str) -> list[Row]:
    """Parse a JSON body in any supported format into rows of column -> value."""
    try:
        payload = json.loads(text)
    except ValueError as error:  # JSONDecodeError, or an integer over the 4300-digit limit
        raise PayloadError(f"request body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise PayloadError("request body is JSON nested too deeply to be a table") from error
    return rows_from_json(payload)


def rows_from_json(payload: Any) -> list[Row]:
    """Rows from a decoded JSON payload in any of MLflow's formats or the runbook's nesting."""
    if not isinstance(payload, dict):
        raise PayloadError(
            f"the JSON body must be an object with one of the keys {', '.join(FORMATS)}; "
            f"got {_json_kind(payload)}"
        )
    payload = _unwrap_runbook_nesting(payload)
    unknown = sorted(set(payload) - set(FORMATS))
    present = [key for key in FORMATS if key in payload]
    if unknown or len(present) != 1:
        found = ", ".join(sorted(payload)) or "none"
        raise PayloadError(
            f"the JSON body must have exactly one of the keys {', '.join(FORMATS)}; "
            f"found keys: {found}"
        )
    key = present[0]
    return _ROW_READERS[key](payload[key], key)


def _unwrap_runbook_nesting(payload: dict[str, Any]) -> dict[str, Any]:
    """`{"inputs": {"dataframe_split": {...}}}` (what the team's runbook sends) means the inner
    frame; stock MLflow answers it with a 400. A real columnar `inputs` has feature names as keys,
    so the two cannot be confused."""
    inner = payload.get("inputs")
    if len(payload) == 1 and isinstance(inner, dict) and len(inner) == 1:
        (key,) = inner
        if key in ("dataframe_split", "dataframe_records"):
            return inner
    return payload


def _rows_from_split(split: Any, where: str) -> list[Row]:
    if not isinstance(split, dict):
        raise PayloadError(f"{where} must be an object with 'columns' and 'data'")
    unknown = sorted(set(split) - {"columns", "data", "index"})
    if unknown or "columns" not in split or "data" not in split:
        raise PayloadError(
            f"{where} must have 'columns' and 'data' (and optionally 'index'); "
            f"found keys: {', '.join(sorted(split)) or 'none'}"
        )
    columns, data = split["columns"], split["data"]
    if not _is_list_of(columns, str):
        raise PayloadError(f"{where}.columns must be a list of column names")
    if len(set(columns)) != len(columns):
        raise PayloadError(f"{where}.columns names a column twice: {columns}")
    if not isinstance(data, list):
        raise PayloadError(f"{where}.data must be a list of rows")
    rows: list[Row] = []
    for index, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise PayloadError(
                f"{where}.data[{index}] must be a list of {len(columns)} values, one per column; "
                f"got {_json_kind(values)}"
            )
        rows.append(dict(zip(columns, values, strict=True)))
    return rows


def _rows_from_records(records: Any, where: str) -> list[Row]:
    if not isinstance(records, list):
        raise PayloadError(f"{where} must be a list of row objects; got {_json_kind(records)}")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise PayloadError(
                f"{where}[{index}] must be an object mapping column names to values; "
                f"got {_json_kind(record)}"
            )
    return records


def _rows_from_inputs(inputs: Any, where: str) -> list[Row]:
    """`inputs` is either records (a list) or columns (an object of equal-length lists)."""
    if isinstance(inputs, list):
        return _rows_from_records(inputs, where)
    if not isinstance(inputs, dict):
        raise PayloadError(f"{where} must be a list of rows or an object of columns")
    columns = {
        name: values if isinstance(values, list) else [values] for name, values in inputs.items()
    }
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name}: {len(values)}" for name, values in columns.items())
        raise PayloadError(f"{where} columns have different lengths ({sizes})")
    count = lengths.pop() if lengths else 0
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


_ROW_READERS = {
    "dataframe_split": _rows_from_split,
    "dataframe_records": _rows_from_records,
    "instances": _rows_from_records,
    "inputs": _rows_from_inputs,
}


def rows_from_csv_text(text: str) -> list[Row]:
    """Rows from a CSV body with a header line; cells stay text until checked.

    Lines may end in LF, CRLF or a bare CR (old Mac and some Excel exports); a leading byte-order
    mark (Excel's "CSV UTF-8") is not part of the first column name. Quoting is strict: text after
    a closing quote, or a quote never closed, is refused rather than silently repaired.
    """
    lines = _csv_lines(text.removeprefix("\ufeff"))
    if not lines or not any(cell.strip() for cell in lines[0]):
        raise PayloadError("CSV body is empty; send a header line with the column names, then rows")
    header = [name.strip() for name in lines[0]]
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise PayloadError(f"the CSV header names the column {', '.join(twice)} twice")
    rows: list[Row] = []
    for number, cells in enumerate(lines[1:], start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise PayloadError(
                f"CSV line {number} has {len(cells)} values for {len(header)} columns"
            )
        rows.append({name: _CsvCell(cell) for name, cell in zip(header, cells, strict=True)})
    return rows


def _csv_lines(text: str) -> list[list[str]]:
    """Every CSV record as a list of cells, or a 400 naming the record the reader stopped at."""
    # newline="" hands line endings to the csv module, which knows CR, LF and CRLF, and keeps
    # them inside quoted cells; the default would refuse a bare CR with a csv.Error (a 500).
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    lines: list[list[str]] = []
    try:
        for cells in reader:
            lines.append(cells)
    except csv.Error as error:
        # The record being read is the one after the last complete one.
        number = len(lines) + 1
        if "field larger than field limit" in str(error):
            limit = csv.field_size_limit()
            raise PayloadError(
                f"CSV line {number} has a value longer than {limit} characters; no feature "
                "takes a value that long"
            ) from error
        raise PayloadError(f"CSV line {number} is not valid CSV: {error}") from error
    return lines


class _CsvCell(str):
    """A CSV value: text to be parsed by the feature's rules, not a JSON string."""

    __slots__ = ()


def checked_data(rows: Sequence[Row]) -> list[list[Any]]:
    """Check every row against the features and return the values in feature order, typed."""
    if not rows:
        raise PayloadError("no rows to score: the request holds an empty table")
    problems: list[str] = []
    data: list[list[Any]] = []
    for index, row in enumerate(rows):
        problem = _columns_problem(row)
        if problem:
            raise PayloadError(f"row {index}: {problem}")
        values = [row[f.name] for f in FEATURES]
        for feature, value in zip(FEATURES, values, strict=True):
            problem = _cell_problem(feature, value)
            if problem:
                problems.append(f"row {index}: {problem}")
        if not problems:
            data.append([_typed(f, v) for f, v in zip(FEATURES, values, strict=True)])
        elif len(problems) > _MAX_PROBLEMS_SHOWN:
            break
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
        more = " (and more)" if len(problems) > _MAX_PROBLEMS_SHOWN else ""
        raise PayloadError(shown + more)
    return data


def _columns_problem(row: Row) -> str | None:
    missing = [name for name in FEATURE_NAMES if name not in row]
    extra = sorted(str(name) for name in row if name not in FEATURE_NAMES)
    parts = []
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected column(s) {', '.join(extra)}")
    if parts:
        return "; ".join(parts) + f" (the model takes exactly {', '.join(FEATURE_NAMES)})"
    return None


def _cell_problem(feature: Feature, value: Any) -> str | None:
    if isinstance(value, _CsvCell):
        return text_problem(feature, value)
    problem = value_problem(feature, value)
    if problem is None and feature.kind != "string" and not _fits_a_float(value):
        # Only a feature without bounds gets here (JSON integers are unbounded; the range check
        # compares them exactly): the model reads float64, which this one would overflow.
        return f"{feature.name} must be {feature.describe()}, got an integer beyond a 64-bit float"
    return problem


def _fits_a_float(value: int | float) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _typed(feature: Feature, value: Any) -> Any:
    if feature.kind == "string":
        return str(value)
    number = float(value)
    return int(number) if feature.kind == "integer" else number


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


def _json_kind(value: Any) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)
