"""The whole CD path against the AWS stand-in, through the CLI as the pipeline runs it.

This is what `dagger call rehearse` runs alone (`pytest -m rehearsal`; `test-release` runs it
too): publish, upload, deploy v1, deploy v2, an injected smoke failure that rolls back to v2
(verified), and an explicit rollback to v1 (verified). No AWS account is needed; `.ci/run`
runs it with the real image under Docker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import run_cli
from support.aws import BUCKET, REGION, REPOSITORY, ROLE, Aws

# containers: with Docker the endpoint's variants run the pushed serving image, as on AWS.
pytestmark = [pytest.mark.rehearsal, pytest.mark.containers]

ENDPOINT = "bikeshare-staging"


def bikeshare(aws: Aws, *args: str, check: bool = True) -> str:
    result = run_cli(*args, "--region", REGION, "--endpoint-url", aws.url, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout.strip() + result.stderr


def deploy(aws: Aws, image: str, model: str, sha: str, report: Path) -> int:
    result = run_cli(
        "deploy", "--endpoint-name", ENDPOINT, "--image-uri", image, "--model-data", model,
        "--instance-type", "ml.m5.large", "--execution-role-arn", ROLE, "--git-sha", sha,
        "--poll-seconds", "0.2", "--report", str(report),
        "--region", REGION, "--endpoint-url", aws.url, check=False,
    )  # fmt: skip
    return result.returncode


def serving(aws: Aws) -> dict:
    status = run_cli("status", "--endpoint-name", ENDPOINT, "--json", "--region", REGION,
                     "--endpoint-url", aws.url)  # fmt: skip
    return json.loads(status.stdout)


def test_publish_deploy_twice_fail_smoke_and_roll_back(
    aws: Aws, model_archive: Path, tmp_path: Path
) -> None:
    # publish: a tag never pushed is reported as such (publish then pushes; the session's image
    # was pushed for real with `docker push` to the stand-in's registry, by digest)
    unpublished = run_cli("image-digest", "--repository", REPOSITORY, "--tag", "1111111aaaa",
                          "--region", REGION, "--endpoint-url", aws.url, check=False)  # fmt: skip
    assert unpublished.returncode == 1
    assert "has no image tagged 1111111aaaa; push it first" in unpublished.stderr
    image = aws.image
    password = tmp_path / "ecr-password"
    login = bikeshare(aws, "ecr-login", "--password-file", str(password))
    assert password.read_text() not in login, "the registry password never reaches stdout"

    model = bikeshare(aws, "upload-model", str(model_archive), "--bucket", BUCKET).splitlines()[0]

    assert deploy(aws, image, model, "1111111aaaa", tmp_path / "v1.md") == 0
    v1 = serving(aws)["config_name"]
    assert deploy(aws, image, model, "2222222bbbb", tmp_path / "v2.md") == 0
    v2 = serving(aws)
    assert v2["previous_config"] == v1
    assert "succeeded" in (tmp_path / "v2.md").read_text().splitlines()[0]

    aws.faults(invoke_errors={ENDPOINT: [500]})
    assert deploy(aws, image, model, "3333333cccc", tmp_path / "v3.md") == 1
    failed = (tmp_path / "v3.md").read_text()
    assert failed.splitlines()[0].endswith(": failed")
    assert v2["config_name"] in failed.split("**Error**")[1]
    after = serving(aws)
    assert (after["status"], after["config_name"]) == ("InService", v2["config_name"])

    back = bikeshare(aws, "rollback", "--endpoint-name", ENDPOINT, "--to-config", v1,
                     "--poll-seconds", "0.2")  # fmt: skip
    assert f"{ENDPOINT} serves {v1}" in back
    assert serving(aws)["config_name"] == v1
