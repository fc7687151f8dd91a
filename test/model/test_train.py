"""Model-level tests: contract, determinism, plausibility and accuracy against a naive baseline."""

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from bikeshare.errors import BikeshareError
from bikeshare.model import train as train_module
from bikeshare.model.data import synthetic_rides
from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES, FEATURES, Feature
from bikeshare.model.train import (
    build_pipeline,
    example_frame,
    per_hour_baseline_mae,
    pinned_requirements,
    split_holdout,
    train_model,
)
from support.rows import example_row

# The model must beat "mean rides for that hour" on held-out rows by at least this fraction.
REQUIRED_IMPROVEMENT_OVER_BASELINE = 0.25
# MLflow's column type for each kind of feature, restated rather than read from train.py.
MLFLOW_TYPES = {"string": "string", "integer": "long", "number": "double"}


def test_signature_and_examples_match_the_features(model_dir: Path) -> None:
    model = mlflow.pyfunc.load_model(str(model_dir))
    inputs = model.metadata.get_input_schema()
    assert inputs.input_names() == list(FEATURE_NAMES)
    assert [t.name for t in inputs.input_types()] == [MLFLOW_TYPES[f.kind] for f in FEATURES]
    example = json.loads((model_dir / "input_example.json").read_text())
    assert example == {"columns": list(FEATURE_NAMES), "data": [list(EXAMPLE_ROW.values())]}
    serving = json.loads((model_dir / "serving_input_example.json").read_text())
    assert serving == {"dataframe_split": example}


def test_requirements_pin_what_the_model_needs(model_dir: Path) -> None:
    written = (model_dir / "requirements.txt").read_text().split()
    assert written == pinned_requirements()
    assert any(line.startswith("scikit-learn==") for line in written)


def test_loaded_model_predicts_the_runbook_row(model_dir: Path) -> None:
    model = mlflow.pyfunc.load_model(str(model_dir))
    prediction = model.predict(pd.DataFrame([EXAMPLE_ROW]))
    assert prediction.shape == (1,)
    assert np.isfinite(prediction).all()
    assert prediction[0] > 0


def test_commute_peak_and_non_negative_predictions(model_dir: Path) -> None:
    model = mlflow.pyfunc.load_model(str(model_dir))
    grid = pd.DataFrame(
        [
            example_row(station_id=s, hour=h, temp_c=t, dow=d)
            for s in ("60", "72", "84", "unknown")
            for h in range(24)
            for t in (-20.0, 0.0, 20.5, 40.0)
            for d in range(7)
        ]
    )
    predictions = model.predict(grid)
    assert (predictions >= 0).all()
    rows = grid.assign(rides=predictions)
    weekday = rows[(rows["dow"] < 5) & (rows["temp_c"] == 20.5)]
    at = weekday.groupby("hour")["rides"].mean()
    assert at[8] > 3 * at[3]
    assert at[17] > 2 * at[3]


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    frame = synthetic_rides(seed=3).sample(4000, random_state=1)
    grid = synthetic_rides(seed=9).head(200)[list(FEATURE_NAMES)]
    first = train_model(frame, tmp_path / "a", seed=3)
    second = train_model(frame, tmp_path / "b", seed=3)
    assert first.holdout_mae == second.holdout_mae
    a = mlflow.pyfunc.load_model(str(tmp_path / "a")).predict(grid)
    b = mlflow.pyfunc.load_model(str(tmp_path / "b")).predict(grid)
    np.testing.assert_array_equal(a, b)


def test_holdout_error_beats_the_per_hour_baseline() -> None:
    frame = synthetic_rides(seed=0)
    train, holdout = split_holdout(frame, seed=0)
    model = build_pipeline(seed=0).fit(train[list(FEATURE_NAMES)], train["rides"])
    mae = np.abs(model.predict(holdout[list(FEATURE_NAMES)]) - holdout["rides"]).mean()
    baseline = per_hour_baseline_mae(train, holdout)
    assert mae < (1 - REQUIRED_IMPROVEMENT_OVER_BASELINE) * baseline, (mae, baseline)


def test_report_in_mlmodel_metadata(model_dir: Path) -> None:
    metadata = mlflow.pyfunc.load_model(str(model_dir)).metadata.metadata["bikeshare"]
    assert metadata["seed"] == 0
    assert metadata["training_rows"] == len(synthetic_rides(0))
    assert metadata["holdout_mae"] < metadata["baseline_mae"]


def test_refuses_to_overwrite_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(BikeshareError, match="already exists"):
        train_model(synthetic_rides(0).head(100), tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_every_string_feature_is_encoded_so_a_new_label_column_trains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    zone = Feature("zone", "string")
    monkeypatch.setattr(train_module, "FEATURES", (*FEATURES, zone))
    frame = synthetic_rides(seed=1).head(400).assign(zone=lambda f: "z" + f["hour"].astype(str))
    columns = [*FEATURE_NAMES, "zone"]
    model = build_pipeline(seed=0).fit(frame[columns], frame["rides"])
    assert np.isfinite(model.predict(frame[columns].head(5))).all()


def test_the_example_frame_has_the_signatures_dtypes_in_feature_order() -> None:
    frame = example_frame()
    assert list(frame.columns) == list(FEATURE_NAMES)
    kinds = {"string": "object", "integer": "int64", "number": "float64"}
    assert frame.dtypes.astype(str).tolist() == [kinds[f.kind] for f in FEATURES]


def test_the_suite_fits_with_one_openmp_thread() -> None:
    """test/conftest.py's OMP_NUM_THREADS=1 reached scikit-learn's OpenMP runtime: with a thread
    per core, fits on the loaded 2-core CI machine were 10-20x slower."""
    from threadpoolctl import threadpool_info

    openmp = [pool for pool in threadpool_info() if pool["user_api"] == "openmp"]
    assert openmp, threadpool_info()
    assert {pool["num_threads"] for pool in openmp} == {1}, openmp
