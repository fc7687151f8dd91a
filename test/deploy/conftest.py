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
from support.account import admin_client, admin_session, login, provision
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


def deployer_clients(target: AwsTarget) -> Clients:
    """Every client a release uses, from one logged-in target."""
    return Clients(
        sagemaker=target.client("sagemaker"),
        runtime=target.client("sagemaker-runtime"),
        s3=target.client("s3"),
        autoscaling=target.client("application-autoscaling"),
        sts=target.client("sts"),
        ecr=target.client("ecr"),
    )


@pytest.fixture
def aws(
    standin: StandIn, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Aws]:
    """The account as Terraform leaves it; the test acts as the staging deployer.

    `bikeshare` processes the test starts inherit the staging deployer's session too.
    """
    if standin.registry is None:
        reason = "the stand-in's ECR registry needs docker-registry and apache2-utils (Debian)"
        if os.environ.get("BIKESHARE_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    image = request.getfixturevalue("deployable_image")
    provision(standin.url, REGION)
    staging = login(standin.url, REGION, "bikeshare-deployer-staging", "staging")
    production = login(standin.url, REGION, "bikeshare-deployer-production", "production")
    for name, value in staging.environment().items():
        monkeypatch.setenv(name, value)
    yield Aws(
        standin.url,
        AwsTarget(region=REGION, endpoint_url=standin.url, session=admin_session(REGION)),
        deployer_clients(
            AwsTarget(region=REGION, endpoint_url=standin.url, session=staging.session(REGION))
        ),
        deployer_clients(
            AwsTarget(region=REGION, endpoint_url=standin.url, session=production.session(REGION))
        ),
        admin_client("sagemaker", standin.url, REGION),
        image,
        standin.registry,
    )
    httpx.post(f"{standin.url}/_standin/reset", timeout=180).raise_for_status()


@pytest.fixture
def model_uri(aws: Aws, model_archive: Path) -> str:
    """The session's model archive, uploaded to the stand-in's S3."""
    return upload_model(aws.clients.s3, model_archive, BUCKET, "models", "0123456789abcdef")
