"""The model's input contract, defined once.

The CSV reader (training), the synthetic history, the model signature, the serving validator, the
CLI's help and the tests all read these definitions, so "hour must be an integer 0-23" means the
same thing everywhere, and adding a feature is one `Feature(...)` line here plus its value in
`EXAMPLE_ROW` (docs/guide.md, "Adding a feature to the model").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from bikeshare.errors import BikeshareError

Kind = Literal["string", "integer", "number"]


@dataclass(frozen=True)
class Feature:
    """One input column: its JSON kind and, for numbers, the inclusive range that makes sense.

    `synthetic` names the generator in `bikeshare.model.data.SYNTHESISERS` that makes the column
    of the synthetic training history; None (the default) draws values from the kind and range,
    independent of demand, so a new feature trains at once but carries no signal.
    """

    name: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    synthetic: str | None = None

    @property
    def dtype(self) -> str:
        """The pandas dtype of the column in training frames and the signature."""
        return _DTYPES[self.kind]

    def describe(self) -> str:
        """Human wording of what a valid value looks like, used in error messages."""
        if self.kind == "string":
            return 'a string such as "72"'
        noun = "an integer" if self.kind == "integer" else "a number"
        return f"{noun} from {_fmt(self.minimum)} to {_fmt(self.maximum)}"


_DTYPES: dict[Kind, str] = {"string": "object", "integer": "int64", "number": "float64"}


def _fmt(bound: float | None) -> str:
    return "-inf" if bound is None else f"{bound:g}"


FEATURES: tuple[Feature, ...] = (
    Feature("station_id", "string", synthetic="station"),
    Feature("hour", "integer", 0, 23, synthetic="hour"),
    # Beyond these, a reading is a sensor fault or a unit mix-up (Fahrenheit, Kelvin), not weather.
    Feature("temp_c", "number", -50.0, 55.0, synthetic="temperature"),
    Feature("dow", "integer", 0, 6, synthetic="dow"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
FEATURE_DTYPES: dict[str, str] = {f.name: f.dtype for f in FEATURES}
TARGET = "rides"

# The seed runbook's example row; the model's input example, the server's warm-up and every smoke
# test use it. One value per feature, in FEATURES' order (checked below, at import).
EXAMPLE_ROW: dict[str, Any] = {"station_id": "72", "hour": 8, "temp_c": 20.5, "dow": 2}


def example_row_problem(row: dict[str, Any], features: tuple[Feature, ...]) -> str | None:
    """Why the example row does not fit the features, or None when it does.

    Its values are sent as a table with the features' columns in order, so a row with a missing,
    extra or reordered key would be scored with values under the wrong columns."""
    names = [f.name for f in features]
    if list(row) != names:
        return f"EXAMPLE_ROW must have exactly the columns {names} in this order, has {list(row)}"
    for feature in features:
        problem = value_problem(feature, row[feature.name])
        if problem:
            return f"EXAMPLE_ROW: {problem}"
    return None


def value_problem(feature: Feature, value: Any) -> str | None:
    """Return why a JSON value is not valid for the feature, or None when it is.

    Types are strict: 8.5 is not an hour (MLflow would silently truncate it to 8), a string is not a
    number, and booleans are not integers even though Python says they are.
    """
    if feature.kind == "string":
        if isinstance(value, str) and value.strip():
            return None
        return f"{feature.name} must be {feature.describe()}, got {_show(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{feature.name} must be {feature.describe()}, got {_show(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{feature.name} must be {feature.describe()}, got {_show(value)}"
    if feature.kind == "integer" and isinstance(value, float) and not value.is_integer():
        return (
            f"{feature.name} must be {feature.describe()}, got {_show(value)} (not a whole number)"
        )
    return _range_problem(feature, value)


def text_problem(feature: Feature, text: str) -> str | None:
    """Like value_problem, for a value read as text (a CSV cell)."""
    if feature.kind == "string":
        return value_problem(feature, text)
    try:
        number = float(text)
    except ValueError:
        return f"{feature.name} must be {feature.describe()}, got {_show(text)}"
    if feature.kind == "integer" and not _is_integer_text(text):
        return f"{feature.name} must be {feature.describe()}, got {_show(text)}"
    return value_problem(feature, number)


def _is_integer_text(text: str) -> bool:
    stripped = text.strip()
    digits = stripped[1:] if stripped[:1] in "+-" else stripped
    if digits.isdigit():
        return True
    whole, dot, frac = digits.partition(".")
    return bool(dot) and whole.isdigit() and set(frac) <= {"0"}


def _range_problem(feature: Feature, number: float) -> str | None:
    # Compared as given: converting a huge JSON integer to float would overflow.
    low, high = feature.minimum, feature.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        shown = f"{number:g}" if isinstance(number, float) else _show(number).split(" ", 1)[1]
        return f"{feature.name} must be {feature.describe()}, got {shown}"
    return None


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    text = repr(value) if isinstance(value, str) else str(value)
    kinds = ((bool, "boolean"), (str, "string"), (int, "integer"), (float, "number"))
    type_name = next(
        (name for kind, name in kinds if isinstance(value, kind)), type(value).__name__
    )
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{type_name} {shown}"


# A feature added without its example value would otherwise surface much later, as a model whose
# input example the server refuses; here it fails every import with the reason.
_EXAMPLE_PROBLEM = example_row_problem(EXAMPLE_ROW, FEATURES)
if _EXAMPLE_PROBLEM:
    raise BikeshareError(f"src/bikeshare/model/features.py: {_EXAMPLE_PROBLEM}")
