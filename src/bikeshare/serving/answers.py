"""What a healthy model server answers: the checks of `probe`, `smoke` and the replay probe.

Standard library only: the replay probe runs this file inside the release's own image, whose
Python has whatever bikeshare version that release carried, or none.
"""

from __future__ import annotations

import json
import math
from typing import Any


class AnswerRejected(ValueError):
    """The server answered, but not with what a healthy release answers."""


def expected_rows(payload: dict[str, Any]) -> int:
    """How many predictions a payload must produce, in every JSON shape the serving runtime
    reads (serving/payload.py): dataframe_split, dataframe_records, instances, `inputs` as
    records or as columns, and the runbook's `{"inputs": {"dataframe_split": ...}}`."""
    inner = payload.get("inputs")
    nested = isinstance(inner, dict) and len(inner) == 1 and len(payload) == 1
    if nested and next(iter(inner)) in ("dataframe_split", "dataframe_records"):
        payload = inner  # the runbook's nesting, unwrapped as the server unwraps it
    split = payload.get("dataframe_split")
    if isinstance(split, dict):
        return len(split.get("data", []))
    for key in ("dataframe_records", "instances", "inputs"):
        if isinstance(payload.get(key), list):
            return len(payload[key])
    columns = payload.get("inputs")
    if isinstance(columns, dict) and columns:  # equal-length columns; a scalar is one row
        lengths = {len(v) if isinstance(v, list) else 1 for v in columns.values()}
        if len(lengths) == 1:
            return lengths.pop()
    raise AnswerRejected(f"payload has no rows in a known format: keys {sorted(payload)}")


def check_answer(body: str, rows: int) -> list[float]:
    """The predictions in an /invocations answer, or AnswerRejected naming what is wrong."""
    try:
        decoded = json.loads(body)
    except json.JSONDecodeError as error:
        raise AnswerRejected(f"the endpoint answered with non-JSON: {body[:200]!r}") from error
    predictions = decoded.get("predictions") if isinstance(decoded, dict) else None
    if not isinstance(predictions, list):
        raise AnswerRejected(f"the answer has no 'predictions' list: {body[:200]}")
    if len(predictions) != rows:
        raise AnswerRejected(f"expected {rows} prediction(s), got {len(predictions)}: {body[:200]}")
    bad = [p for p in predictions if not _is_sane(p)]
    if bad:
        raise AnswerRejected(f"predictions must be finite and non-negative, got {bad[:5]}")
    return [float(p) for p in predictions]


def model_error(status: int, body: str) -> str:
    """SageMaker's words when the container answers an invocation with an error status."""
    kind = "client" if status < 500 else "server"
    return f'Received {kind} error ({status}) from primary with message "{body}".'


def _is_sane(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
