"""Rows, CSV bodies and payloads built from the model's feature list (features.py).

Tests that need "a valid row with one value changed" build it here instead of spelling out the
columns, so adding a feature (docs/guide.md, "Adding a feature to the model") needs no test edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES


def example_row(**changes: Any) -> dict[str, Any]:
    """The seed runbook's row with some values changed (every feature, in FEATURES' order)."""
    unknown = set(changes) - set(EXAMPLE_ROW)
    assert not unknown, f"not features: {sorted(unknown)}"  # a typo must not add a column
    return {**EXAMPLE_ROW, **changes}


def csv_text(
    *rows: dict[str, Any], columns: Sequence[str] = FEATURE_NAMES, newline: str = "\n"
) -> str:
    """A header of `columns` and one line per row; a column a row lacks is an empty cell."""
    lines = [",".join(columns)]
    lines += [",".join(str(row.get(name, "")) for name in columns) for row in rows]
    return newline.join(lines) + newline


def split_payload(*rows: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    """MLflow's `dataframe_split` for rows (the example row by default); nested in `inputs` as
    the runbook sends it when asked."""
    table = rows or (EXAMPLE_ROW,)
    split = {"columns": list(FEATURE_NAMES), "data": [[r[n] for n in FEATURE_NAMES] for r in table]}
    payload = {"dataframe_split": split}
    return {"inputs": payload} if nested else payload
