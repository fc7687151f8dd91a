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
from bikeshare.model.runtime import RUNTIME_LABEL, as_requirements, installed_versions
from standin import StandIn, sagemaker
from standin.registry import PASSWORD
from standin.runners import DockerRunner
from support import docker_available
from support.aws import BUCKET, REGION, REPOSITORY, Aws
from support.images import push


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


@pytest.fixture(scope="session")
def deployable_image(standin: StandIn, request: pytest.FixtureRequest) -> str:
    """The image every deploy test ships, in the stand-in's ECR.

    With Docker, the real serving image is pushed and each endpoint variant runs it as a
    container, as SageMaker does. Without Docker, a manifest with the same runtime label stands
    in for it and variants run as `bikeshare serve` processes.
    """
    assert standin.registry is not None
    if docker_available():
        built = request.getfixturevalue("serving_image")
        sagemaker.STATE.runner_factory = DockerRunner
        return push(built, standin.registry.address, REPOSITORY, "test", PASSWORD)
    if os.environ.get("BIKESHARE_REQUIRE_DOCKER") == "1":
        pytest.fail("BIKESHARE_REQUIRE_DOCKER=1 but no Docker daemon answers")
    runtime = {RUNTIME_LABEL: as_requirements(installed_versions())}
    return standin.registry.push_manifest(REPOSITORY, "test", runtime)


@pytest.fixture
def aws(standin: StandIn, request: pytest.FixtureRequest) -> Iterator[Aws]:
    if standin.registry is None:
        reason = "the stand-in's ECR registry needs docker-registry and apache2-utils (Debian)"
        if os.environ.get("BIKESHARE_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    target = AwsTarget(region=REGION, endpoint_url=standin.url)
    image = request.getfixturevalue("deployable_image")
    yield Aws(
        standin.url,
        target,
        Clients(
            sagemaker=target.client("sagemaker"),
            runtime=target.client("sagemaker-runtime"),
            s3=target.client("s3"),
            autoscaling=target.client("application-autoscaling"),
            sts=target.client("sts"),
            ecr=target.client("ecr"),
        ),
        image,
        standin.registry,
    )
    httpx.post(f"{standin.url}/_standin/reset", timeout=180).raise_for_status()


@pytest.fixture
def model_uri(aws: Aws, model_archive: Path) -> str:
    """The session's model archive, uploaded to the stand-in's S3."""
    s3 = aws.clients.s3
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return upload_model(s3, model_archive, BUCKET, "models", "0123456789abcdef")
