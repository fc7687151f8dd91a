"""`bikeshare serve` as a real process over HTTP: SageMaker's container contract."""

import contextlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow.pyfunc
import pandas as pd
import pytest

from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES
from bikeshare.serving.payload import MAX_BODY_BYTES
from support import ServeProcess, launch_serve, run_cli, start_serve
from support.rows import csv_text, example_row, split_payload

RUNBOOK_PAYLOAD = json.dumps(split_payload(nested=True))
JSON = {"Content-Type": "application/json"}


def invoke(
    server: ServeProcess,
    body: bytes | str,
    content_type: str = "application/json",
    **kwargs: object,
) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/invocations",
        content=body,
        headers={"Content-Type": content_type},
        timeout=60,
        **kwargs,
    )


@pytest.fixture(scope="module")
def expected(model_dir: Path) -> float:
    """The prediction for the runbook row, computed in-process by MLflow itself."""
    return float(mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame([EXAMPLE_ROW]))[0])


def test_ping_is_ok_once_the_model_predicts(server: ServeProcess) -> None:
    response = httpx.get(f"{server.base_url}/ping", timeout=2)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "model ready: example row scored" in server.log()


def test_runbook_payload_is_answered(server: ServeProcess, expected: float) -> None:
    response = invoke(server, RUNBOOK_PAYLOAD)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [pytest.approx(expected, rel=1e-12)]}


RECORD = dict(EXAMPLE_ROW)
FORMATS = {
    "dataframe_split": {
        "dataframe_split": {"columns": list(FEATURE_NAMES), "data": [list(RECORD.values())]}
    },
    "dataframe_records": {"dataframe_records": [RECORD]},
    "instances": {"instances": [RECORD]},
    "inputs-records": {"inputs": [RECORD]},
    "inputs-columns": {"inputs": {k: [v] for k, v in RECORD.items()}},
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_mlflow_json_format_is_accepted(
    server: ServeProcess, expected: float, name: str
) -> None:
    response = invoke(server, json.dumps(FORMATS[name]))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [pytest.approx(expected, rel=1e-12)]


def test_csv_is_accepted(server: ServeProcess, expected: float) -> None:
    response = invoke(server, csv_text(RECORD), "text/csv")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [pytest.approx(expected, rel=1e-12)]


def test_a_hundred_rows_get_a_hundred_predictions(server: ServeProcess, model_dir: Path) -> None:
    rows = [
        list(example_row(hour=h % 24, temp_c=10.0 + h / 10, dow=h % 7).values()) for h in range(100)
    ]
    payload = {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": rows}}
    response = invoke(server, json.dumps(payload))
    local = mlflow.pyfunc.load_model(str(model_dir)).predict(
        pd.DataFrame(rows, columns=list(FEATURE_NAMES))
    )
    assert response.json()["predictions"] == pytest.approx(list(local), rel=1e-12)


BAD_REQUESTS = [
    ("malformed JSON", b'{"inputs":', "application/json", 400, "not valid JSON"),
    ("wrong content type", RUNBOOK_PAYLOAD, "text/plain", 415, "unsupported content type"),
    (
        "missing column",
        json.dumps({"dataframe_records": [{k: v for k, v in RECORD.items() if k != "dow"}]}),
        "application/json",
        400,
        "missing column(s) dow",
    ),
    (
        "extra column",
        json.dumps({"dataframe_records": [{**RECORD, "humidity": 0.4}]}),
        "application/json",
        400,
        "unexpected column(s) humidity",
    ),
    (
        "fractional hour",
        json.dumps({"dataframe_records": [{**RECORD, "hour": 8.5}]}),
        "application/json",
        400,
        "hour must be an integer from 0 to 23, got number 8.5",
    ),
    (
        "string hour",
        json.dumps({"dataframe_records": [{**RECORD, "hour": "eight"}]}),
        "application/json",
        400,
        "hour must be an integer",
    ),
    (
        "hour 24",
        json.dumps({"dataframe_records": [{**RECORD, "hour": 24}]}),
        "application/json",
        400,
        "got 24",
    ),
    (
        "dow 7",
        json.dumps({"dataframe_records": [{**RECORD, "dow": 7}]}),
        "application/json",
        400,
        "dow must be an integer from 0 to 6, got 7",
    ),
    (
        "absurd temperature",
        json.dumps({"dataframe_records": [{**RECORD, "temp_c": -273.15}]}),
        "application/json",
        400,
        "temp_c must be a number from -50 to 55",
    ),
    (
        "NaN",
        json.dumps({"dataframe_records": [{**RECORD, "temp_c": float("nan")}]}),
        "application/json",
        400,
        "got NaN",
    ),
    (
        "empty data",
        json.dumps({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": []}}),
        "application/json",
        400,
        "no rows to score",
    ),
    ("empty body", b"", "application/json", 400, "not valid JSON"),
    ("unknown format", json.dumps({"foo": 1}), "application/json", 400, "found keys: foo"),
]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "status", "fragment"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_is_a_named_4xx_and_serving_goes_on(
    server: ServeProcess,
    name: str,
    body: bytes | str,
    content_type: str,
    status: int,
    fragment: str,
) -> None:
    response = invoke(server, body, content_type)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    assert invoke(server, RUNBOOK_PAYLOAD).status_code == 200


def test_body_over_six_mib_is_413_by_declared_length(server: ServeProcess) -> None:
    response = invoke(server, b" " * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert "6 MiB" in response.json()["message"]


def test_body_over_six_mib_is_413_when_streamed_without_length(server: ServeProcess) -> None:
    def chunks():  # chunked transfer encoding: no Content-Length to check up front
        for _ in range(7):
            yield b" " * (1024 * 1024)

    response = httpx.post(
        f"{server.base_url}/invocations", content=chunks(), headers=JSON, timeout=60
    )
    assert response.status_code == 413
    assert invoke(server, RUNBOOK_PAYLOAD).status_code == 200


def test_get_on_invocations_is_405(server: ServeProcess) -> None:
    assert httpx.get(f"{server.base_url}/invocations", timeout=5).status_code == 405


def test_mlflows_api_browser_is_not_served(server: ServeProcess) -> None:
    # Every path but SageMaker's is a 404 (test_app.py has the list); here through gunicorn.
    response = httpx.get(f"{server.base_url}/openapi.json", timeout=5)
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


def test_ping_stays_fast_while_a_large_request_is_scored(server: ServeProcess) -> None:
    body = _slow_body(150_000)
    results: list[httpx.Response] = []
    # one per worker, so every worker is busy scoring
    started = [send_in_background(server, body, results) for _ in range(2)]
    senders = [sender for sender, _ in started]
    for _, sent in started:
        assert sent.wait(timeout=60), "a request was never sent"
    time.sleep(0.2)  # both workers have read theirs and are scoring
    slowest = 0.0
    for _ in range(5):
        started = time.monotonic()
        assert httpx.get(f"{server.base_url}/ping", timeout=2).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
    for sender in senders:
        sender.join()
    assert [len(r.json()["predictions"]) for r in results] == [150_000, 150_000]
    assert slowest < 2.0  # SageMaker's health-check budget


def _mismatched_model(model_dir: Path, target: Path) -> Path:
    """The session's model with its signature's last column renamed: not this image's features."""
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    shutil.copytree(model_dir, target)
    model = Model.load(str(target / "MLmodel"))
    assert model.signature is not None
    *kept, last = model.signature.inputs.inputs
    renamed = ColSpec(last.type, "renamed_" + last.name)
    model.signature = ModelSignature(Schema([*kept, renamed]), model.signature.outputs)
    model.save(str(target / "MLmodel"))
    return target


def test_a_model_not_matching_the_image_is_refused_at_start(
    model_dir: Path, tmp_path: Path
) -> None:
    """Through gunicorn's preload and each worker's warm-up (test_app.py has the cases)."""
    server = launch_serve(_mismatched_model(model_dir, tmp_path / "other"), tmp_path, workers=1)
    last = FEATURE_NAMES[-1]
    try:
        response = _first_ping_answer(server)
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        message = response.json()["message"]
        assert message.startswith("the model does not match this image")
        assert f"the image sends {last}, which the model's signature lacks" in message
        assert f"signature takes renamed_{last}, which the image does not send" in message
        assert "\n" not in message
        refused = invoke(server, RUNBOOK_PAYLOAD)
        assert refused.status_code == 503  # never served, not even with a 200
        assert refused.json()["error_code"] == "MODEL_IMAGE_MISMATCH"
    finally:
        assert server.stop() == 0
    assert "model NOT served, /ping will answer 503: the model does not match" in server.log()


def _first_ping_answer(server: ServeProcess, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{server.base_url}/ping", timeout=2)
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(server.log())


def test_serve_refuses_a_directory_without_a_model(tmp_path: Path) -> None:
    result = run_cli("serve", "--model-dir", str(tmp_path), "--port", "0", check=False)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1].startswith("bikeshare serve: error: cannot serve:")
    )
    assert "/opt/ml/model" in result.stderr


def _slow_body(rows: int) -> bytes:
    """A large CSV of varied valid rows: seconds of scoring."""
    return csv_text(
        *(
            example_row(station_id=str(60 + i % 25), hour=i % 24, temp_c=i % 30 + 0.5, dow=i % 7)
            for i in range(rows)
        )
    ).encode()


def send_in_background(
    server: ServeProcess, body: bytes, results: list[httpx.Response]
) -> tuple[threading.Thread, threading.Event]:
    """POST `body` as CSV from a thread; the event is set once its last byte is handed to the
    connection, so the caller knows the request is in flight rather than guessing with a sleep
    (a fixed sleep was too short under load: the request was not sent yet)."""
    sent = threading.Event()

    def chunks() -> Iterator[bytes]:
        step = 1 << 20
        for start in range(0, len(body), step):
            yield body[start : start + step]
        sent.set()

    headers = {"Content-Type": "text/csv", "Content-Length": str(len(body))}
    sender = threading.Thread(
        target=lambda: results.append(
            httpx.post(f"{server.base_url}/invocations", content=chunks(), headers=headers,
                       timeout=60)
        )
    )  # fmt: skip
    sender.start()
    return sender, sent


def test_sigterm_lets_in_flight_requests_finish_then_exits(model_dir: Path, tmp_path: Path) -> None:
    server = start_serve(model_dir, tmp_path, workers=1)
    results: list[httpx.Response] = []
    sender, sent = send_in_background(server, _slow_body(120_000), results)
    assert sent.wait(timeout=60), "the request was never sent"
    time.sleep(0.2)  # the worker has read it and is scoring (seconds of work)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    status = server.process.wait(timeout=30)
    sender.join()
    assert status == 0, server.log()
    assert results[0].status_code == 200
    assert len(results[0].json()["predictions"]) == 120_000
    assert time.monotonic() - started < 30  # SageMaker's SIGKILL deadline


def test_grace_period_bounds_shutdown(model_dir: Path, tmp_path: Path) -> None:
    server = start_serve(model_dir, tmp_path, "--grace-seconds", "1", workers=1)
    senders = [
        threading.Thread(target=lambda: _ignore_errors(invoke, server, _slow_body(200_000)))
        for _ in range(4)
    ]  # about 4 x 4 s of queued work in the single worker
    for sender in senders:
        sender.start()
    time.sleep(1.0)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    assert time.monotonic() - started < 6, server.log()


def _ignore_errors(call, server: ServeProcess, body: bytes) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the point is that these are cut off
        call(server, body, "text/csv")
