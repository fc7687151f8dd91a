"""Property-based: over a thousand generated payloads, valid and invalid, sent over HTTP to the
ScoringApp in this process (the app gunicorn runs, without the socket), and a sample of them
through the real `bikeshare serve` process; then raw CSV text, fuzzed in this process (the CSV
reader's own failure modes).

Whatever arrives, the server answers with no 5xx; valid tables get exactly one finite,
non-negative prediction per row; invalid ones get a 4xx whose JSON names the problem. Validity
is decided here by an oracle written independently of the server's validator.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bikeshare.model.features import (
    EXAMPLE_ROW,
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    Feature,
)
from serving.asgi_client import AsgiClient
from support import ServeProcess

# CI must not find a new counter-example on its own and fail a commit that did not cause it; it
# replays the same examples every run. Locally, every run explores new ones.
DERANDOMIZE = os.environ.get("CI") == "true"
MIN_PAYLOADS = 1000


def _is_valid(name: str, value: Any) -> bool:
    """The oracle: the model's input contract (each feature's kind and range), restated plainly."""
    feature = FEATURES_BY_NAME[name]
    if feature.kind == "string":
        return isinstance(value, str) and value.strip() != ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    low, high, whole = feature.minimum, feature.maximum, feature.kind == "integer"
    if whole and isinstance(value, float) and not value.is_integer():
        return False
    return (low is None or low <= value) and (high is None or value <= high)


def _good_values(feature: Feature) -> st.SearchStrategy[Any]:
    """Valid JSON values for a feature: labels, whole numbers (also as floats), or numbers."""
    if feature.kind == "string":
        return st.text(min_size=1, max_size=6).filter(str.strip)
    low = None if feature.minimum is None else math.ceil(feature.minimum)
    high = None if feature.maximum is None else math.floor(feature.maximum)
    if feature.kind == "integer":
        return st.integers(low, high) | st.integers(low, high).map(float)
    numbers = st.floats(feature.minimum, feature.maximum, allow_nan=False, allow_infinity=False)
    return numbers | st.integers(low, high)


good_values = {feature.name: _good_values(feature) for feature in FEATURES}
any_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.text(max_size=5)
    | st.floats(allow_nan=True, allow_infinity=True)
)
bad_values = (
    any_json_scalar
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-5 rows; each cell is usually valid, sometimes anything at all; columns sometimes off."""
    table = []
    for _ in range(draw(st.integers(1, 5))):
        row = {}
        for name in FEATURE_NAMES:
            corrupt = draw(st.integers(0, 24)) == 0
            row[name] = draw(bad_values if corrupt else good_values[name])
        if draw(st.integers(0, 19)) == 0:
            row.pop(draw(st.sampled_from(FEATURE_NAMES)))
        if draw(st.integers(0, 19)) == 0:
            row[draw(st.sampled_from(["rain_mm", "Hour", ""]))] = 1
        table.append(row)
    return table


def _table_is_valid(table: list[dict[str, Any]]) -> bool:
    return all(
        set(row) == set(FEATURE_NAMES) and all(_is_valid(k, v) for k, v in row.items())
        for row in table
    )


@dataclass
class Case:
    """One request and what the oracle expects of it."""

    body: bytes
    content_type: str
    expected_rows: int | None  # None: must be refused with a 4xx


def _as_json(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=True).encode()


def _json_case(table: list[dict[str, Any]], shape: str) -> Case:
    columns = list(dict.fromkeys(k for row in table for k in row))
    same_columns = all(list(row) == columns for row in table)
    if shape in ("split", "runbook") and not same_columns:
        shape = "records"  # a split table needs one column list
    payload: Any
    if shape == "split":
        payload = {
            "dataframe_split": {"columns": columns, "data": [list(r.values()) for r in table]}
        }
    elif shape == "runbook":
        payload = {
            "inputs": {
                "dataframe_split": {"columns": columns, "data": [list(r.values()) for r in table]}
            }
        }
    elif shape == "columns":
        if not same_columns:
            return _json_case(table, "records")
        payload = {"inputs": {c: [r[c] for r in table] for c in columns}}
    else:
        payload = {
            {"records": "dataframe_records", "instances": "instances", "inputs": "inputs"}[
                shape
            ]: table
        }
    valid = _table_is_valid(table)
    return Case(_as_json(payload), "application/json", len(table) if valid else None)


def _csv_case(table: list[dict[str, Any]]) -> Case:
    """CSV carries text: only scalar cells, written the way a spreadsheet would."""
    columns = list(FEATURE_NAMES)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    valid = True
    for row in table:
        cells = [row.get(c, "") for c in columns]
        cells = [
            c if isinstance(c, str | int | float) and not isinstance(c, bool) else "x"
            for c in cells
        ]
        text = ["" if isinstance(c, str) and not c.strip() else str(c) for c in cells]
        writer.writerow(text)
        valid = valid and all(_csv_cell_is_valid(c, t) for c, t in zip(columns, text, strict=True))
    return Case(out.getvalue().encode(), "text/csv", len(table) if valid else None)


def _csv_cell_is_valid(name: str, text: str) -> bool:
    whole = FEATURES_BY_NAME[name].kind == "integer"
    if FEATURES_BY_NAME[name].kind == "string":
        return (
            text.strip() != ""
            and "\n" not in text
            and "\r" not in text
            and text == text.strip("\x00")
        )
    try:
        number = float(text)
    except ValueError:
        return False
    if whole and not (
        number.is_integer() and "e" not in text.lower() and "inf" not in text.lower()
    ):
        return False
    return _is_valid(name, int(number) if whole else number)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    table = draw(rows())
    shape = draw(
        st.sampled_from(["split", "runbook", "records", "instances", "inputs", "columns", "csv"])
    )
    return _csv_case(table) if shape == "csv" else _json_case(table, shape)


garbage = st.one_of(
    st.binary(max_size=64).map(lambda b: Case(b, "application/json", None)),
    st.binary(max_size=64).map(lambda b: Case(b, "text/csv", None)),
    st.recursive(
        any_json_scalar,
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["inputs", "instances", "dataframe_split", "columns", "data", "x"]),
            inner,
            max_size=3,
        ),
        max_leaves=8,
    ).map(lambda p: Case(_as_json(p), "application/json", None)),
    st.sampled_from(["text/plain", "application/xml", "", "application/json; charset=latin-1"]).map(
        lambda ct: Case(b'{"instances": []}', ct, None)
    ),
)


# Sends one case's body with its Content-Type to /invocations; the answer.
Send = Callable[[Case], httpx.Response]
# Through the real server process: its HTTP parser, worker and headers, not only the app.
OVER_THE_SOCKET = 120


def _over_the_socket(server: ServeProcess) -> Send:
    def send(case: Case) -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/invocations",
            content=case.body,
            headers={"Content-Type": case.content_type},
            timeout=30,
        )

    return send


def _in_this_process(client: AsgiClient) -> Send:
    return lambda case: client.post("/invocations", case.body, case.content_type)


def _check(send: Send, case: Case) -> None:
    response = send(case)
    assert response.status_code < 500, (case, response.text)
    if case.expected_rows is not None:
        assert response.status_code == 200, (case, response.text)
    if response.status_code == 200:
        predictions = response.json()["predictions"]
        if case.expected_rows is not None:
            assert len(predictions) == case.expected_rows
        assert all(math.isfinite(p) and p >= 0 for p in predictions), predictions
    else:
        assert 400 <= response.status_code < 500
        assert response.json()["message"], response.text


def _send_generated_payloads(
    send: Send, examples: int, derandomize: bool = DERANDOMIZE
) -> dict[str, int]:
    """Send `examples` generated cases, checking each; how many were valid and invalid."""
    sent = {"valid": 0, "invalid": 0}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=st.one_of(cases(), cases(), cases(), garbage))
    def check(case: Case) -> None:
        _check(send, case)
        sent["valid" if case.expected_rows is not None else "invalid"] += 1

    check()
    return sent


def test_over_a_thousand_generated_payloads(in_process: AsgiClient) -> None:
    """The ScoringApp each gunicorn worker runs, over HTTP in this process: ~20x cheaper."""
    sent = _send_generated_payloads(_in_this_process(in_process), examples=1050)
    assert sum(sent.values()) >= MIN_PAYLOADS
    assert sent["valid"] >= 200, sent
    assert sent["invalid"] >= 200, sent


def test_generated_payloads_through_the_real_server(server: ServeProcess) -> None:
    """The same property end to end: gunicorn's parser and worker answer as the app does.

    Always the same 120 cases, and at least a tenth of each kind: drawn afresh, the valid share
    of 120 ranged 17-47% over 15 draws, and 10% once in the engine, where a fifth was required.
    A Hypothesis upgrade draws another fixed set. The thousand cases above explore."""
    sent = _send_generated_payloads(
        _over_the_socket(server), examples=OVER_THE_SOCKET, derandomize=True
    )
    assert sum(sent.values()) >= OVER_THE_SOCKET
    assert sent["valid"] >= OVER_THE_SOCKET // 10, sent
    assert sent["invalid"] >= OVER_THE_SOCKET // 10, sent


# Raw CSV, fuzzed below the csv.writer level: what spreadsheets, scripts and attackers send.
# Line endings (LF, CRLF, a bare CR), quotes, NULs, a byte-order mark, very long cells.
csv_cell = st.one_of(
    st.text(alphabet=',"\r\n\x00\ufeff 0123456789.-+eEinfa\u0661x', max_size=8),
    st.sampled_from([str(value) for value in EXAMPLE_ROW.values()]),
    st.sampled_from(["1e400", "nan", "-0", '"72"', '"7\r2"', '"a""b"']),
    st.integers(131_000, 131_200).map(lambda n: "7" * n),  # around csv's field size limit
)


@st.composite
def raw_csv(draw: st.DrawFn) -> bytes:
    """A header (usually the features) and rows joined by any line ending, cells unescaped."""
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    header = list(FEATURE_NAMES) if draw(st.integers(0, 4)) else draw(st.lists(csv_cell))
    lines = [",".join(header)]
    width = len(FEATURE_NAMES)
    for _ in range(draw(st.integers(0, 3))):
        lines.append(",".join(draw(st.lists(csv_cell, min_size=width - 1, max_size=width + 1))))
    body = ending.join(lines) + draw(st.sampled_from(["", ending]))
    return (draw(st.sampled_from(["", "\ufeff"])) + body).encode()


def test_no_csv_body_is_a_5xx_or_a_crash(in_process: AsgiClient) -> None:
    """In this process (the same ScoringApp gunicorn runs): cheap enough for 300 bodies."""

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=raw_csv())
    def check(body: bytes) -> None:
        response = in_process.post("/invocations", body, "text/csv")
        assert response.status_code < 500, (body[:300], response.text)
        if response.status_code == 200:
            predictions = response.json()["predictions"]
            assert predictions
            assert all(math.isfinite(p) and p >= 0 for p in predictions), predictions
        else:
            message = response.json()["message"]
            assert message
            assert "\n" not in message, (body[:300], message)

    check()
