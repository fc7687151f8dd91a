from pathlib import Path

import pandas as pd
import pytest

from bikeshare.errors import BikeshareError
from bikeshare.model import data as data_module
from bikeshare.model.data import STATION_IDS, DataError, read_rides_csv, synthetic_rides
from bikeshare.model.features import FEATURE_NAMES, FEATURES, TARGET, Feature, value_problem
from support.rows import csv_text, example_row

COLUMNS = [*FEATURE_NAMES, TARGET]
# The pandas dtype each kind of feature must have, restated rather than read from features.py.
KIND_DTYPES = {"string": "object", "integer": "int64", "number": "float64"}


def _rides_csv(*rows: dict, columns: list[str] = COLUMNS) -> str:
    """A training CSV: each row is the example row with changes, plus `rides`."""
    return csv_text(*rows, columns=columns)


def _ride(rides: object = 3, **changes: object) -> dict:
    return {**example_row(**changes), TARGET: rides}


def test_synthetic_data_is_deterministic_and_typed() -> None:
    first, second = synthetic_rides(seed=4), synthetic_rides(seed=4)
    pd.testing.assert_frame_equal(first, second)
    assert not first.equals(synthetic_rides(seed=5))
    assert list(first.columns) == [*FEATURE_NAMES, TARGET]
    assert first["station_id"].map(type).eq(str).all()
    assert set(first["station_id"]) == set(STATION_IDS)
    assert "72" in STATION_IDS
    assert first["hour"].between(0, 23).all()
    assert first["dow"].between(0, 6).all()
    assert (first[TARGET] >= 0).all()


def _mean_rides(frame: pd.DataFrame, **where: object) -> float:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column].isin(value) if isinstance(value, list) else frame[column] == value
    return float(frame.loc[mask, TARGET].mean())


def test_synthetic_data_has_commute_weekend_and_weather_shape() -> None:
    data = synthetic_rides(seed=0)
    weekday, weekend = [0, 1, 2, 3, 4], [5, 6]
    assert _mean_rides(data, hour=8, dow=weekday) > 4 * _mean_rides(data, hour=3, dow=weekday)
    assert _mean_rides(data, hour=17, dow=weekday) > 2 * _mean_rides(data, hour=13, dow=weekday)
    assert _mean_rides(data, hour=13, dow=weekend) > 2 * _mean_rides(data, hour=8, dow=weekend)
    mild = data[data["temp_c"].between(17, 25)][TARGET].mean()
    cold = data[data["temp_c"] < 5][TARGET].mean()
    assert mild > 1.5 * cold
    per_station = data.groupby("station_id")[TARGET].mean()
    assert per_station.max() > 2 * per_station.min()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rides.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_a_good_csv_with_signature_dtypes(tmp_path: Path) -> None:
    rows = (_ride(14), _ride(0, station_id="007", hour=23, temp_c=-3, dow=6))
    path = _write(tmp_path, _rides_csv(*rows))
    frame = read_rides_csv(path)
    assert frame["station_id"].tolist() == ["72", "007"]  # ids stay labels, zeros kept
    assert frame.dtypes.astype(str).to_dict() == {
        **{f.name: KIND_DTYPES[f.kind] for f in FEATURES},
        "rides": "float64",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"missing column(s) {', '.join(COLUMNS)}"),
        (_rides_csv(), "no data rows"),
        (
            _rides_csv(_ride(), columns=[c for c in COLUMNS if c != "dow"]),
            "missing column(s) dow",
        ),
        (
            _rides_csv(_ride(hour=8.5)),
            "line 2: hour must be an integer from 0 to 23, got string '8.5'",
        ),
        (
            _rides_csv(_ride(), _ride(temp_c="hot")),
            "line 3: temp_c must be a number from -50 to 55, got string 'hot'",
        ),
        (_rides_csv(_ride(dow=9)), "line 2: dow must be an integer from 0 to 6, got 9"),
        (_rides_csv(_ride(-1)), "line 2: rides must be a non-negative number, got '-1'"),
        (_rides_csv(_ride(1, station_id="")), "line 2: station_id must be a string"),
    ],
)
def test_bad_csv_is_rejected_with_a_precise_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataError) as error:
        read_rides_csv(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


# A feature declared with one Feature(...) line and nothing else must get a synthetic column.
NEW_FEATURES = (
    Feature("precip_mm", "number", 0, 300),
    Feature("events", "integer", 0, 3),
    Feature("zone", "string"),
    Feature("wind_kmh", "number", minimum=0),
)


def test_a_feature_without_a_generator_gets_valid_values_and_changes_no_other_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = synthetic_rides(seed=2)
    monkeypatch.setattr(data_module, "FEATURES", (*FEATURES, *NEW_FEATURES))
    monkeypatch.setattr(
        data_module,
        "FEATURE_DTYPES",
        {f.name: KIND_DTYPES[f.kind] for f in (*FEATURES, *NEW_FEATURES)},
    )
    after = synthetic_rides(seed=2)
    pd.testing.assert_frame_equal(after[before.columns], before)
    pd.testing.assert_frame_equal(after, synthetic_rides(seed=2))
    for feature in NEW_FEATURES:
        column = after[feature.name]
        assert column.nunique() > 1, feature  # spread over its range, not a constant
        problems = {value_problem(feature, v.item() if hasattr(v, "item") else v) for v in column}
        assert problems == {None}, (feature, sorted(map(str, problems))[:3])


def test_a_feature_naming_an_unknown_generator_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    typo = Feature("precip_mm", "number", 0, 300, synthetic="rainfal")
    monkeypatch.setattr(data_module, "FEATURES", (*FEATURES, typo))
    with pytest.raises(BikeshareError) as refused:
        synthetic_rides(seed=0)
    message = str(refused.value)
    assert "feature precip_mm: synthetic='rainfal' names no generator" in message
    assert "temperature" in message  # the generators that do exist are listed
