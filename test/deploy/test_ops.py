"""ECR login, existing-tag digests and log tailing, as the CLI runs them."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bikeshare.deploy.release import deploy
from support import run_cli
from support.aws import REGION, Aws

REPOSITORY = "bikeshare-serving"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + "1" * 64,
        },
        "layers": [],
    }
)


def aws_args(aws: Aws) -> list[str]:
    return ["--region", REGION, "--endpoint-url", aws.url]


def test_ecr_login_writes_the_password_only_to_the_file(aws: Aws, tmp_path: Path) -> None:
    password_file = tmp_path / "ecr-password"
    result = run_cli("ecr-login", "--password-file", str(password_file), *aws_args(aws))
    password = password_file.read_text()
    assert password
    assert password not in result.stdout
    assert password not in result.stderr
    assert result.stdout.strip() == aws.registry.address  # ECR's proxyEndpoint, here local
    assert password_file.stat().st_mode & 0o777 == 0o600


def test_existing_immutable_tag_returns_its_digest(aws: Aws) -> None:
    ecr = aws.target.client("ecr")  # the repository is Terraform's (immutable tags)
    pushed = ecr.put_image(
        repositoryName=REPOSITORY,
        imageManifest=MANIFEST,
        imageManifestMediaType=json.loads(MANIFEST)["mediaType"],
        imageTag="0123abc",
    )["image"]["imageId"]["imageDigest"]
    found = run_cli("image-digest", "--repository", REPOSITORY, "--tag", "0123abc", *aws_args(aws))
    assert found.stdout.strip().endswith(f"/{REPOSITORY}@{pushed}")
    missing = run_cli(
        "image-digest", "--repository", REPOSITORY, "--tag", "nope", *aws_args(aws), check=False
    )
    assert missing.returncode == 1
    assert "has no image tagged nope; push it first" in missing.stderr


def test_logs_prints_the_endpoints_recent_events(aws: Aws) -> None:
    logs = aws.target.client("logs")
    group = "/aws/sagemaker/Endpoints/bikeshare-staging"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="AllTraffic/i-0abc")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="AllTraffic/i-0abc",
        logEvents=[
            {"timestamp": now - 3_600_000, "message": "an hour ago"},
            {"timestamp": now - 60_000, "message": "model ready: example row scored"},
        ],
    )
    result = run_cli(
        "logs", "--endpoint-name", "bikeshare-staging", "--since", "30m", *aws_args(aws)
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("AllTraffic/i-0abc model ready: example row scored")


def test_logs_of_an_endpoint_without_logs_is_a_clear_error(aws: Aws) -> None:
    result = run_cli("logs", "--endpoint-name", "bikeshare-staging", *aws_args(aws), check=False)
    assert result.returncode == 1
    assert "log group /aws/sagemaker/Endpoints/bikeshare-staging does not exist" in result.stderr


#: `bikeshare serve`'s first line (the model directory differs between Docker and processes).
SERVING = re.compile(r"serving \S+ on \S+:\d+")


@pytest.mark.containers  # with Docker: `docker logs` of the variant's container
def test_logs_shows_what_the_endpoints_container_printed(aws: Aws, model_uri: str) -> None:
    """The stand-in copies each variant container's output into CloudWatch Logs as SageMaker
    does, so `logs` can be rehearsed without writing events by hand."""
    deploy(aws.clients, aws.request("bikeshare-staging", model_uri), say=lambda _: None)
    deadline = time.monotonic() + 30
    while True:
        result = run_cli(
            "logs", "--endpoint-name", "bikeshare-staging", "--since", "5m", *aws_args(aws)
        )
        if SERVING.search(result.stdout) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    served = [line for line in result.stdout.splitlines() if SERVING.search(line)]
    assert served, result.stdout + result.stderr
    assert " AllTraffic/" in served[0], "stream per variant instance, as SageMaker names them"
