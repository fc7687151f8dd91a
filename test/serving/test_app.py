"""The ASGI app in this process: which paths exist, what /ping says, and model/image mismatches.

Cheap by design: the session's model (or a tiny sklearn model saved by MLflow here, never a
retrained one) is served through httpx's ASGI transport; no process, no container.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from sklearn.dummy import DummyRegressor
from sklearn.neighbors import KNeighborsRegressor

from bikeshare.model.features import EXAMPLE_ROW, FEATURES
from serving.asgi_client import AsgiClient, asgi_client

ROW = json.dumps({"dataframe_records": [EXAMPLE_ROW]})
JSON = "application/json"
# The signature types train.py writes for each kind of feature.
MLFLOW_TYPE = {"string": "string", "integer": "long", "number": "double"}
SIGNATURE_TYPES = {f.name: MLFLOW_TYPE[f.kind] for f in FEATURES}
LAST = FEATURES[-1].name
AN_INTEGER = next(f.name for f in FEATURES if f.kind == "integer")


def _tiny_model(target: Path, estimator: object, columns: dict[str, str]) -> Path:
    """A real skops-format MLflow model whose signature has exactly `columns` (name -> type).

    Optional columns are written as name + "?"; the estimator is fitted on the example row.
    """
    specs = [
        ColSpec(kind, name.rstrip("?"), required=not name.endswith("?"))
        for name, kind in columns.items()
    ]
    numeric = [f.name for f in FEATURES if f.kind != "string"]
    frame = pd.DataFrame([{name: EXAMPLE_ROW[name] for name in numeric}] * 2)
    estimator.fit(frame, [3.0, 3.0])  # type: ignore[attr-defined]
    signature = ModelSignature(
        inputs=Schema(specs), outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))])
    )
    mlflow.sklearn.save_model(
        estimator,
        str(target),
        serialization_format="skops",
        signature=signature,
        pip_requirements=[],
    )
    return target


def _served(target: Path, estimator: object, columns: dict[str, str]) -> AsgiClient:
    return asgi_client(_tiny_model(target, estimator, columns))


# --- Item 10: only SageMaker's paths exist; /ping's 503 is one readable line ------------------


@pytest.mark.parametrize(
    "path", ["/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect", "/version", "/x"]
)
def test_paths_other_than_sagemakers_are_404(in_process: AsgiClient, path: str) -> None:
    response = in_process.get(path)
    assert response.status_code == 404, response.text
    assert response.json() == {
        "error_code": "NOT_FOUND",
        "message": f"no such path {path}; this server answers /ping and /invocations",
    }


def test_health_is_an_alias_of_ping(in_process: AsgiClient) -> None:
    assert in_process.get("/health").json() == in_process.get("/ping").json() == {"status": "ok"}


def test_the_session_model_matches_the_image_and_predicts(in_process: AsgiClient) -> None:
    response = in_process.post("/invocations", ROW, JSON)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_ping_503_is_one_line_naming_why_and_the_trace_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Fitted on the numeric columns only, so predicting the example (with its text column)
    # raises inside sklearn.
    caplog.set_level(logging.INFO, logger="bikeshare.serving")
    client = _served(tmp_path / "m", KNeighborsRegressor(n_neighbors=1), SIGNATURE_TYPES)
    try:
        response = client.get("/ping")
        invoked = client.post("/invocations", ROW, JSON)
    finally:
        client.close()
    assert response.status_code == 503
    message = response.json()["message"]
    assert "Traceback" not in message
    assert "stack_trace" not in message
    assert "\n" not in message
    assert len(message) < 400
    assert message.startswith("the model cannot predict its example row: ")
    assert "ValueError" in message
    assert "Traceback (most recent call last)" in caplog.text  # the detail stays in the log
    assert invoked.status_code == 400
    assert "stack_trace" not in invoked.json()
    assert "Traceback" not in invoked.text


# --- Item 18: a model whose signature is not the image's feature list never serves -------------

MISMATCHES = [
    (
        "model lacks an image column",
        {k: v for k, v in SIGNATURE_TYPES.items() if k != LAST},
        f"the image sends {LAST}, which the model's signature lacks",
    ),
    (
        "model takes a column the image lacks",
        {**SIGNATURE_TYPES, "precip_mm?": "double"},
        "the model's signature takes precip_mm, which the image does not send",
    ),
    (
        "a column's kind differs",
        {**SIGNATURE_TYPES, AN_INTEGER: "double"},
        f"{AN_INTEGER} is double in the model's signature but an integer in the image",
    ),
]


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [case[1:] for case in MISMATCHES],
    ids=[case[0] for case in MISMATCHES],
)
def test_a_model_image_mismatch_is_refused_at_start(
    tmp_path: Path, columns: dict[str, str], fragment: str
) -> None:
    # A constant model: it would answer 200 to anything, which is exactly the silent failure.
    client = _served(tmp_path / "m", DummyRegressor(strategy="constant", constant=3.0), columns)
    try:
        ping = client.get("/ping")
        invoked = client.post("/invocations", ROW, JSON)
    finally:
        client.close()
    assert ping.status_code == 503, ping.text
    assert fragment in ping.json()["message"], ping.text
    assert ping.json()["message"].startswith(
        "the model does not match this image: its signature is not the image's features ("
    )
    assert invoked.status_code == 503, invoked.text
    assert invoked.json()["message"] == ping.json()["message"]
    assert invoked.json()["error_code"] == "MODEL_IMAGE_MISMATCH"


def test_a_model_matching_the_image_is_served(tmp_path: Path) -> None:
    """The control for the mismatch cases: the same tiny model with the image's exact columns."""
    client = _served(
        tmp_path / "m", DummyRegressor(strategy="constant", constant=3.0), SIGNATURE_TYPES
    )
    try:
        assert client.get("/ping").status_code == 200
        assert client.post("/invocations", ROW, JSON).json() == {"predictions": [3.0]}
    finally:
        client.close()
