"""The release engine is tested against the AWS stand-in over real HTTP with real boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bikeshare.deploy.artifacts import upload_model
from bikeshare.deploy.aws import AwsTarget
from bikeshare.deploy.release import Clients
from standin import StandIn
from support.aws import BUCKET, REGION, Aws


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """One stand-in for the session; each test starts from a reset one."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ.setdefault(key, value)
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def aws(standin: StandIn) -> Iterator[Aws]:
    target = AwsTarget(region=REGION, endpoint_url=standin.url)
    yield Aws(
        standin.url,
        target,
        Clients(
            target.client("sagemaker"),
            target.client("sagemaker-runtime"),
            target.client("s3"),
            target.client("application-autoscaling"),
        ),
    )
    httpx.post(f"{standin.url}/_standin/reset", timeout=180).raise_for_status()


@pytest.fixture
def model_uri(aws: Aws, model_archive: Path) -> str:
    """The session's model archive, uploaded to the stand-in's S3."""
    s3 = aws.clients.s3
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return upload_model(s3, model_archive, BUCKET, "models", "0123456789abcdef")
