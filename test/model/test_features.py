import math

import pytest

from bikeshare.model.features import (
    EXAMPLE_ROW,
    FEATURES,
    FEATURES_BY_NAME,
    Feature,
    example_row_problem,
    text_problem,
    value_problem,
)

HOUR = FEATURES_BY_NAME["hour"]
TEMP = FEATURES_BY_NAME["temp_c"]
STATION = FEATURES_BY_NAME["station_id"]


@pytest.mark.parametrize(
    ("feature", "value"),
    [(HOUR, 0), (HOUR, 23), (HOUR, 8.0), (TEMP, -12.5), (TEMP, 30), (STATION, "72")],
)
def test_valid_values_pass(feature, value) -> None:
    assert value_problem(feature, value) is None


@pytest.mark.parametrize(
    ("feature", "value", "expected"),
    [
        (HOUR, 8.5, "hour must be an integer from 0 to 23, got number 8.5 (not a whole number)"),
        (HOUR, 24, "hour must be an integer from 0 to 23, got 24"),
        (HOUR, True, "hour must be an integer from 0 to 23, got boolean True"),
        (HOUR, "8", "hour must be an integer from 0 to 23, got string '8'"),
        (TEMP, math.nan, "temp_c must be a number from -50 to 55, got NaN"),
        (TEMP, 300.0, "temp_c must be a number from -50 to 55, got 300"),
        (STATION, 72, 'station_id must be a string such as "72", got integer 72'),
        (STATION, None, 'station_id must be a string such as "72", got null'),
        (STATION, "  ", "station_id must be a string such as \"72\", got string '  '"),
    ],
)
def test_invalid_values_are_named(feature, value, expected: str) -> None:
    assert value_problem(feature, value) == expected


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("8", True),
        ("08", True),
        ("8.0", True),
        ("8.5", False),
        ("eight", False),
        ("", False),
        ("-1", False),
    ],
)
def test_csv_cells_are_checked_as_text(text: str, ok: bool) -> None:
    assert (text_problem(HOUR, text) is None) is ok


def test_the_example_row_fits_the_features() -> None:
    assert example_row_problem(EXAMPLE_ROW, FEATURES) is None


NEW = Feature("new_feature", "number", 0, 300)
WITH_NEW = [*EXAMPLE_ROW, NEW.name]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # The step the guide's walkthrough asks for and is easiest to forget: the example value.
        (
            dict(EXAMPLE_ROW),
            f"EXAMPLE_ROW must have exactly the columns {WITH_NEW} in this order, "
            f"has {list(EXAMPLE_ROW)}",
        ),
        # Served as a table in FEATURES' order: a reordered row would put values under the wrong
        # columns.
        (
            {NEW.name: 1.5, **EXAMPLE_ROW},
            f"in this order, has {[NEW.name, *EXAMPLE_ROW]}",
        ),
        ({**EXAMPLE_ROW, NEW.name: -1}, "EXAMPLE_ROW: new_feature must be a number from 0 to"),
    ],
    ids=["missing", "reordered", "invalid"],
)
def test_an_example_row_that_does_not_fit_is_named(row: dict, expected: str) -> None:
    problem = example_row_problem(row, (*FEATURES, NEW))
    assert problem is not None
    assert expected in problem
