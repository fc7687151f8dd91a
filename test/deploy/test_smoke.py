"""The smoke test's payloads and words (issue 20, item 13): every shape the serving runtime
reads is counted, and a refusal names where the payload came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bikeshare.deploy.smoke import SmokeFailed, expected_rows, smoke_test
from bikeshare.model.features import FEATURE_NAMES
from bikeshare.serving.payload import canonical_payload
from support.rows import example_row

ROW = example_row()
SPLIT = {"columns": list(FEATURE_NAMES), "data": [[ROW[n] for n in FEATURE_NAMES]] * 2}
RECORDS = [ROW, ROW]
SHAPES = {
    "dataframe_split": {"dataframe_split": SPLIT},
    "dataframe_records": {"dataframe_records": RECORDS},
    "instances": {"instances": RECORDS},
    "inputs as records": {"inputs": RECORDS},
    "inputs as columns": {"inputs": {name: [ROW[name]] * 2 for name in FEATURE_NAMES}},
    "the guide's inputs.dataframe_split": {"inputs": {"dataframe_split": SPLIT}},
    "the guide's inputs.dataframe_records": {"inputs": {"dataframe_records": RECORDS}},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_the_server_reads_is_counted_as_the_server_counts_it(shape: str) -> None:
    payload = SHAPES[shape]
    served = canonical_payload(json.dumps(payload).encode(), "application/json")
    assert expected_rows(payload) == len(served["dataframe_split"]["data"]) == 2


def _runtime() -> Any:
    return boto3.client(
        "sagemaker-runtime",
        region_name="ca-central-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - never sent: the Stubber answers
    )


def test_a_refused_payload_file_is_named_not_the_models_example(tmp_path: Path) -> None:
    runtime = _runtime()
    payload = {"dataframe_split": {"columns": ["station"], "data": [["72"]]}}
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="row 0: missing column(s) station_id",
            http_status_code=424,
            expected_params={
                "EndpointName": "bikeshare-staging",
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps(payload).encode(),
            },
        )
        with pytest.raises(SmokeFailed) as refused:
            smoke_test(runtime, "bikeshare-staging", payload, f"the payload file {tmp_path}/p.json")
    message = str(refused.value)
    assert f"refused the payload file {tmp_path}/p.json: the model and the payload disagree" in (
        message
    )
    assert "own serving example" not in message


def test_a_payload_without_rows_names_its_source() -> None:
    with pytest.raises(
        SmokeFailed, match=r"^the payload file p\.json: payload has no rows in a known"
    ):
        smoke_test(_runtime(), "bikeshare-staging", {"rows": []}, "the payload file p.json")
