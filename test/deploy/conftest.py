"""The release engine is tested against the AWS stand-in over real HTTP with real boto3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bikeshare.deploy.artifacts import upload_model
from bikeshare.deploy.aws import AwsTarget
from bikeshare.model.runtime import RUNTIME_LABEL, as_requirements, installed_versions
from standin import StandIn, sagemaker
from standin.registry import PASSWORD
from standin.runners import DockerRunner, ProcessRunner
from support import REPORT_LINES, docker_available
from support.account import admin_session, login, provision
from support.aws import BUCKET, REGION, REPOSITORY, Aws, release_clients
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
    """The image every deploy test ships, in the stand-in's ECR: with Docker, the real serving
    image, pushed; without, a manifest with the same runtime label stands in for it (what deploy
    checks before it changes anything reads only the manifest)."""
    assert standin.registry is not None
    if docker_available():
        built = request.getfixturevalue("serving_image")
        return push(built, standin.registry.address, REPOSITORY, "test", PASSWORD)
    if os.environ.get("BIKESHARE_REQUIRE_DOCKER") == "1":
        pytest.fail("BIKESHARE_REQUIRE_DOCKER=1 but no Docker daemon answers")
    runtime = {RUNTIME_LABEL: as_requirements(installed_versions())}
    return standin.registry.push_manifest(REPOSITORY, "test", runtime)


def variant_runner(request: pytest.FixtureRequest) -> type[DockerRunner] | type[ProcessRunner]:
    """How the test's endpoint variants run. A test marked `containers` runs the pushed image
    as a container with Docker, as SageMaker does (the image's own behaviour is what it
    checks); the others fork `bikeshare serve` processes (standin.preloaded), seconds faster
    per deploy: the same code, on this machine's Python. Without Docker every variant is a
    process."""
    wants_containers = request.node.get_closest_marker("containers") is not None
    return DockerRunner if wants_containers and docker_available() else ProcessRunner


@dataclass
class NeverUsed:
    """The permissions no release test needed: per role, those unused in every test so far."""

    by_role: dict[str, set[str]] | None = None

    def add(self, report: dict[str, dict[str, list[str]]]) -> None:
        unused = {role: set(found["unused"]) for role, found in report.items()}
        if self.by_role is None:
            self.by_role = unused
        else:
            self.by_role = {
                role: self.by_role.get(role, set()) & unused.get(role, set())
                for role in self.by_role.keys() | unused.keys()
            }


@pytest.fixture(scope="session")
def never_used() -> Iterator[NeverUsed]:
    """Report, after the run, what the Terraform grants and no release test used."""
    found = NeverUsed()
    yield found
    for role, actions in sorted((found.by_role or {}).items()):
        REPORT_LINES.append(
            f"granted to {role} and used by no release test: {', '.join(sorted(actions))}"
            if actions
            else f"granted to {role}: every permission was used by a release test"
        )


@pytest.fixture
def aws(
    standin: StandIn,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    never_used: NeverUsed,
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
    sagemaker.STATE.runner_factory = variant_runner(request)
    provision(standin.url, REGION)
    staging = login(standin.url, REGION, "bikeshare-deployer-staging", "staging")
    production = login(standin.url, REGION, "bikeshare-deployer-production", "production")
    planner = login(standin.url, REGION, "bikeshare-promotion-planner", "production-plan")
    for name, value in staging.environment().items():
        monkeypatch.setenv(name, value)
    sessions = {
        "staging": staging.session(REGION),
        "production": production.session(REGION),
        "production-plan": planner.session(REGION),
    }
    admin = admin_session(REGION)
    yield Aws(
        standin.url,
        AwsTarget(region=REGION, endpoint_url=standin.url, session=admin),
        release_clients(sessions["staging"], standin.url),
        admin.client("sagemaker", endpoint_url=standin.url),
        sessions,
        image,
        standin.registry,
    )
    never_used.add(httpx.get(f"{standin.url}/_standin/authorization", timeout=10).json())
    httpx.post(f"{standin.url}/_standin/reset", timeout=180).raise_for_status()


@pytest.fixture
def model_uri(aws: Aws, model_archive: Path) -> str:
    """The session's model archive, uploaded to the stand-in's S3."""
    return upload_model(aws.clients.s3, model_archive, BUCKET, "models", "0123456789abcdef")
