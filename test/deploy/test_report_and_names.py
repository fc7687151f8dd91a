"""What the release engine writes and decides without AWS (the review of issue 20): reports that
a second Ctrl-C or a hostile value cannot turn into a lie, which untagged configs count as this
endpoint's releases, the "verified" wording, and the unlisted instance type escape hatch.

Unit tests: no stand-in, no model server; Markdown is read back with a CommonMark parser.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bikeshare.cli import build_parser
from bikeshare.deploy import cli as deploy_cli
from bikeshare.deploy.endpoint import (
    SMOKE_FAILED,
    SMOKE_PASSED,
    SMOKE_SKIPPED,
    UNVERIFIED_BECAUSE,
    is_release_name,
    release_name,
)
from bikeshare.deploy.release import (
    DeployRequest,
    Outcome,
    check_instance_type,
    serving_but_failed,
)
from bikeshare.deploy.report import ReleaseRecord, recorded
from bikeshare.errors import BikeshareError

ENDPOINT = "bikeshare-staging"


def test_a_second_ctrl_c_while_the_report_asks_aws_still_says_interrupted(
    tmp_path: Path,
) -> None:
    # The first Ctrl-C stops the command; the second arrives while the report waits to learn
    # what serves (AWS slow), as a person who wants their prompt back presses it again.
    def run(_: Any) -> Outcome:
        raise KeyboardInterrupt

    def serving() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # a daemon thread: never keeps the test waiting
        return "never"

    report = tmp_path / "report.md"
    record = ReleaseRecord(command="deploy", endpoint_name=ENDPOINT)
    with pytest.raises(KeyboardInterrupt):
        recorded(record, report, run, serving=serving)
    written = report.read_text()
    assert written.startswith(f"### `bikeshare deploy` on `{ENDPOINT}`: interrupted\n")
    assert "succeeded" not in written
    assert (
        "- serving now: unknown (interrupted again before AWS answered); run "
        f"`bikeshare status --endpoint-name {ENDPOINT}` to see what serves"
    ) in written


def test_a_record_without_an_outcome_never_says_succeeded() -> None:
    record = ReleaseRecord(command="deploy", endpoint_name=ENDPOINT)
    assert record.result == "did not finish"


@pytest.mark.parametrize("sha", ["0123456789abcdef", "unknown", "a", "", "x-y_z"])
@pytest.mark.parametrize("endpoint", [ENDPOINT, "e" * 63, "x" * 39 + "-yy"])
def test_every_name_bikeshare_gives_a_release_is_recognised(endpoint: str, sha: str) -> None:
    name = release_name(endpoint, sha, datetime(2026, 11, 28, 12, 17, 1, tzinfo=UTC))
    assert is_release_name(endpoint, name)


@pytest.mark.parametrize(
    "name",
    [
        f"{ENDPOINT}-eu-3f5614f-20261128121701",  # another endpoint's (`X-eu`)
        f"{ENDPOINT}-3f5614f-2026112812170",  # 13 digits
        f"{ENDPOINT}-3f5614f1-20261128121701",  # 8 characters of commit
        f"{ENDPOINT}-3f56-4f-20261128121701",
        f"{ENDPOINT}-by-hand",
        ENDPOINT,
        f"x{ENDPOINT}-3f5614f-20261128121701",
        f"{ENDPOINT}-3f5614f-20261128121701\n",
    ],
)
def test_a_name_bikeshare_would_not_give_this_endpoint_is_not_its_release(name: str) -> None:
    assert not is_release_name(ENDPOINT, name)


def request(**overrides: Any) -> DeployRequest:
    values: dict[str, Any] = {
        "endpoint_name": ENDPOINT,
        "image_uri": "i",
        "model_data": "m",
        "instance_type": "ml.m5.large",
        "execution_role_arn": "r",
    }
    return DeployRequest(**{**values, **overrides})


@pytest.mark.parametrize(
    ("smoke", "called"),
    [(True, "(verified)"), (False, "(InService, NOT verified: --no-smoke skipped the smoke")],
)
def test_a_release_that_serves_despite_a_later_failure_is_called_what_it_is(
    smoke: bool, called: str
) -> None:
    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteModel")
    failed = serving_but_failed(request(smoke=smoke), "new-config", "pruning old releases", refused)
    assert str(failed).startswith(f"{ENDPOINT} is serving new-config {called}"), failed
    assert str(failed).endswith("but pruning old releases failed: AccessDenied: no")
    assert failed.__cause__ is refused


def sagemaker_client() -> Any:
    """botocore's SageMaker client: its service model is what the instance type check reads."""
    return boto3.client("sagemaker", region_name="ca-central-1", aws_access_key_id="x",
                        aws_secret_access_key="x")  # fmt: skip  # noqa: S106 - offline, never sent


def test_an_unlisted_instance_type_is_refused_unless_allowed() -> None:
    with pytest.raises(BikeshareError, match="--allow-unlisted-instance-type"):
        check_instance_type(sagemaker_client(), "ml.z99.large")
    warning = check_instance_type(sagemaker_client(), "ml.z99.large", allow_unlisted=True)
    assert warning is not None
    assert warning.startswith("warning: --instance-type ml.z99.large is not in botocore ")
    assert "\n" not in warning
    assert check_instance_type(sagemaker_client(), "ml.m5.large", allow_unlisted=True) is None


@pytest.mark.parametrize("command", ["deploy", "promote"])
def test_deploy_and_promote_take_allow_unlisted_instance_type(command: str) -> None:
    source = (["--image-uri", "i", "--model-data", "m"] if command == "deploy"
              else ["--from-endpoint", ENDPOINT])  # fmt: skip
    argv = [command, "--endpoint-name", "bikeshare-prod", "--instance-type", "ml.z99.large",
            "--execution-role-arn", "r", "--git-sha", "abc", "--region", "ca-central-1",
            *source]  # fmt: skip
    for extra, allowed in (([], False), (["--allow-unlisted-instance-type"], True)):
        args = build_parser().parse_args([*argv, *extra])
        made = deploy_cli._request(args, image_uri="i", model_data="m")
        assert made.allow_unlisted_instance_type is allowed


def test_every_tag_value_the_record_writes_is_one_sagemaker_accepts() -> None:
    # SageMaker's tag values: letters, digits, spaces and _ . : / = + - @ only (its API
    # reference); the stand-in does not check it, so this does, for the fixed values written.
    allowed = re.compile(r"[\w\s.:/=+\-@]*")
    written = [SMOKE_PASSED, SMOKE_FAILED, SMOKE_SKIPPED, *UNVERIFIED_BECAUSE]
    assert [value for value in written if not allowed.fullmatch(value)] == []
