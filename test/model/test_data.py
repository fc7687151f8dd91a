from pathlib import Path

import pandas as pd
import pytest

from bikeshare.model.data import STATION_IDS, DataError, read_rides_csv, synthetic_rides
from bikeshare.model.features import FEATURE_NAMES, TARGET


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
    path = _write(tmp_path, "station_id,hour,temp_c,dow,rides\n72,8,20.5,2,14\n007,23,-3,6,0\n")
    frame = read_rides_csv(path)
    assert frame["station_id"].tolist() == ["72", "007"]  # ids stay labels, zeros kept
    assert frame.dtypes.astype(str).to_dict() == {
        "station_id": "object",
        "hour": "int64",
        "temp_c": "float64",
        "dow": "int64",
        "rides": "float64",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "missing column(s) station_id, hour, temp_c, dow, rides"),
        ("station_id,hour,temp_c,dow,rides\n", "no data rows"),
        ("station_id,hour,temp_c,rides\n72,8,20.5,3\n", "missing column(s) dow"),
        (
            "station_id,hour,temp_c,dow,rides\n72,8.5,20,2,3\n",
            "line 2: hour must be an integer from 0 to 23, got string '8.5'",
        ),
        (
            "station_id,hour,temp_c,dow,rides\n72,8,20,2,3\n72,8,hot,2,3\n",
            "line 3: temp_c must be a number from -50 to 55, got string 'hot'",
        ),
        (
            "station_id,hour,temp_c,dow,rides\n72,8,20,9,3\n",
            "line 2: dow must be an integer from 0 to 6, got 9",
        ),
        (
            "station_id,hour,temp_c,dow,rides\n72,8,20,2,-1\n",
            "line 2: rides must be a non-negative number, got '-1'",
        ),
        ("station_id,hour,temp_c,dow,rides\n,8,20,2,1\n", "line 2: station_id must be a string"),
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
