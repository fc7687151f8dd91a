"""The release engine tells the truth (issue 20, items 3, 8, 9, 11, 12, 14): what it prunes, what
it calls verified, what its reports and records say, and what it refuses before changing anything.

Every deploy here starts a model server (15 to 25 s), so each test runs as few as its item needs
and checks everything that sequence can show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bikeshare.deploy.endpoint import (
    TAG_GIT_SHA,
    TAG_PREVIOUS_CONFIG,
    TAG_VERIFIED_CONFIG,
    describe_endpoint,
)
from bikeshare.deploy.promote import promote
from bikeshare.deploy.release import Clients, DeployFailed, Polling, deploy, rollback
from bikeshare.deploy.report import ReleaseRecord, recorded, serving_now
from bikeshare.errors import BikeshareError
from support import run_cli
from support.aws import REGION, ROLE, Aws

STAGING, EU, PROD = "bikeshare-staging", "bikeshare-staging-eu", "bikeshare-prod"


def quiet(_: str) -> None:
    """Progress is not under test here."""


def aws_args(aws: Aws) -> list[str]:
    return ["--region", REGION, "--endpoint-url", aws.url]


def configs(aws: Aws) -> set[str]:
    return {
        c["EndpointConfigName"] for c in aws.sagemaker.list_endpoint_configs()["EndpointConfigs"]
    }


def models(aws: Aws) -> set[str]:
    return {m["ModelName"] for m in aws.sagemaker.list_models()["Models"]}


def test_rollback_records_its_release_and_pruning_keeps_to_its_own_endpoint(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    # Item 11: a rollback records the commit of the release it returns to, and its report names
    # the config it left.
    s1 = deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="1111111aa"), say=quiet)
    s2 = deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="2222222bb"), say=quiet)
    report = tmp_path / "rollback.md"
    back = run_cli("rollback", "--endpoint-name", STAGING, "--poll-seconds", "0.2",
                   "--report", str(report), *aws_args(aws), check=False)  # fmt: skip
    assert back.returncode == 0, back.stderr
    written = report.read_text()
    assert written.startswith(f"### `bikeshare rollback` on `{STAGING}`: succeeded")
    assert f"- previous config: `{s2.new_config}`" in written
    assert f"- new config: `{s1.new_config}`" in written
    record = describe_endpoint(aws.sagemaker, STAGING).tags
    assert record[TAG_GIT_SHA] == "1111111aa", "the record names the rolled-away release's commit"
    assert record[TAG_VERIFIED_CONFIG] == s1.new_config

    # Item 3: another endpoint whose name starts with this one's, deployed by its own role (the
    # account's administrator here: the staging role may not touch it).
    eu = Clients.of(aws.target)
    e1 = deploy(eu, aws.request(EU, model_uri, git_sha="e1e1e1e"), say=quiet)
    e2 = deploy(eu, aws.request(EU, model_uri, git_sha="e2e2e2e"), say=quiet)
    s3 = deploy(
        aws.clients,
        aws.request(STAGING, model_uri, git_sha="3333333cc", keep_releases=1),
        say=quiet,
    )
    # staging's own: s3 serves, s1 is its rollback target, s2 is beyond keep=1 and pruned
    mine = {s1.new_config, s3.new_config}
    assert configs(aws) == mine | {e1.new_config, e2.new_config}, "pruned another endpoint's"
    assert models(aws) == configs(aws)
    final = rollback(eu, EU, None, Polling(seconds=0.2), say=quiet)
    assert final.config_name == e1.new_config
    assert describe_endpoint(aws.sagemaker, EU).tags[TAG_GIT_SHA] == "e1e1e1e"
    assert final.tags[TAG_PREVIOUS_CONFIG] == e2.new_config


def test_no_smoke_is_unverified_and_rollback_to_a_wrong_config_changes_nothing(
    aws: Aws, model_uri: str
) -> None:
    # Item 8: deployed with --no-smoke, through the command people run.
    deployed = run_cli("deploy", "--endpoint-name", STAGING, "--image-uri", aws.image,
                       "--model-data", model_uri, "--instance-type", "ml.m5.large",
                       "--execution-role-arn", ROLE, "--poll-seconds", "0.2", "--no-smoke",
                       *aws_args(aws), check=False)  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    serving = deployed.stdout.strip().removeprefix(f"{STAGING} serves ")
    status = run_cli("status", "--endpoint-name", STAGING, *aws_args(aws), check=False)
    assert f"serving config:  {serving} (NOT verified by bikeshare)" in status.stdout
    with pytest.raises(BikeshareError, match="which bikeshare did not verify") as refused:
        promote(aws.production, STAGING, aws.request(PROD, "", image_uri=""), say=quiet)
    assert "--no-smoke" in str(refused.value), "promote says why it is not verified"
    assert aws.sagemaker.list_endpoints(NameContains=PROD)["Endpoints"] == []

    # Item 12: a typo, and a config of another endpoint that the staging role could point at.
    aws.sagemaker.create_model(
        ModelName=f"{EU}-e1e1e1e-20250101000000",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": aws.image, "ModelDataUrl": model_uri},
        Tags=[{"Key": "bikeshare:endpoint", "Value": EU}],
    )
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName=f"{EU}-e1e1e1e-20250101000000",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{EU}-e1e1e1e-20250101000000",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        Tags=[{"Key": "bikeshare:endpoint", "Value": EU}],
    )
    for wrong, says in (
        (serving[:-1] + ("8" if serving.endswith("9") else "9"), "does not exist"),
        (f"{EU}-e1e1e1e-20250101000000", f"is a release of {EU}, not of {STAGING}"),
    ):
        back = run_cli("rollback", "--endpoint-name", STAGING, "--to-config", wrong,
                       "--poll-seconds", "0.2", *aws_args(aws), check=False)  # fmt: skip
        assert back.returncode == 1
        assert back.stderr.strip().splitlines() == [
            f"bikeshare rollback: error: endpoint config {wrong} {says}; nothing was changed: "
            f"{STAGING} still serves {serving}"
        ]
        assert "ROLLBACK FAILED" not in back.stderr
        assert aws.sagemaker.describe_endpoint(EndpointName=STAGING)["EndpointConfigName"] == (
            serving
        )


def test_an_interrupted_deploy_reports_interrupted_and_what_serves(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    # Item 9: Ctrl-C while the deploy waits for the endpoint.
    def interrupt_while_creating(line: str) -> None:
        if line.startswith(f"{STAGING}: Creating"):
            raise KeyboardInterrupt

    record = ReleaseRecord(command="deploy", endpoint_name=STAGING)
    report = tmp_path / "report.md"
    request = aws.request(STAGING, model_uri)

    def run(say: object) -> object:
        def both(line: str) -> None:
            say(line)  # type: ignore[operator]
            interrupt_while_creating(line)

        return deploy(aws.clients, request, say=both)

    with pytest.raises(KeyboardInterrupt):
        recorded(record, report, run, serving=lambda: serving_now(aws.clients.sagemaker, STAGING))
    written = report.read_text()
    assert written.startswith(f"### `bikeshare deploy` on `{STAGING}`: interrupted")
    assert "succeeded" not in written
    created = aws.sagemaker.describe_endpoint(EndpointName=STAGING)["EndpointConfigName"]
    assert f"- serving now: `{STAGING}` is Creating on `{created}`, not verified" in written
    assert f"`bikeshare status --endpoint-name {STAGING}`" in written

    # Unknown (the describe fails): the report says so and names the status command.
    def unreachable() -> str:
        raise ConnectionError("no route to host")

    record = ReleaseRecord(command="rollback", endpoint_name=STAGING)

    def stopped(_: object) -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recorded(record, report, stopped, serving=unreachable)
    written = report.read_text()
    assert written.startswith(f"### `bikeshare rollback` on `{STAGING}`: interrupted")
    assert "- serving now: unknown (ConnectionError: no route to host); run " in written
    assert f"`bikeshare status --endpoint-name {STAGING}`" in written


def test_a_mistyped_instance_type_is_refused_before_anything_is_created(aws: Aws) -> None:
    # Item 14: the typo, refused up front (a dry run too), with the type it was likely meant to be;
    # before S3 is read, so the model archive need not exist.
    never_read = "s3://bikeshare-models/models/0000/model.tar.gz"
    for dry_run in (True, False):
        request = aws.request(STAGING, never_read, instance_type="ml.m5.lrge", dry_run=dry_run)
        with pytest.raises(BikeshareError) as refused:
            deploy(aws.clients, request, say=quiet)
        message = str(refused.value)
        assert message.startswith("--instance-type ml.m5.lrge is not a SageMaker endpoint ")
        assert "did you mean ml.m5.large?" in message
        assert "nothing was changed" in message
        assert "\n" not in message
    assert models(aws) == set()
    assert configs(aws) == set()


def test_a_refused_endpoint_config_leaves_no_model_behind(aws: Aws, model_uri: str) -> None:
    # Item 14: a type botocore lists but this account's SageMaker (the stand-in) does not offer,
    # as a region that lacks it refuses it: CreateModel succeeds, CreateEndpointConfig is refused.
    offered = aws.sagemaker.meta.service_model.shape_for("ProductionVariantInstanceType").enum
    assert "ml.c6g.large" in offered
    request = aws.request(STAGING, model_uri, instance_type="ml.c6g.large")
    with pytest.raises(DeployFailed) as refused:
        deploy(aws.clients, request, say=quiet)
    message = str(refused.value)
    assert message.startswith("SageMaker refused the endpoint config of ")
    assert "ml.c6g.large" in message
    assert "Removed this release's model; nothing was changed: " in message
    assert models(aws) == set()
    assert configs(aws) == set()
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []


def test_only_a_release_whose_smoke_passed_counts_as_verified_after_a_rollback(
    aws: Aws, model_uri: str
) -> None:
    # Review of item 8: a release whose smoke test FAILED stays unverified when a rollback returns
    # to it, and promote refuses it. Verified needs positive evidence: the release's smoke tag.
    lines: list[str] = []
    s1 = deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="1111111aa"), say=quiet)
    bad_payload = {"dataframe_split": {"columns": ["station_id"], "data": [["x"]]}}
    failing = aws.request(STAGING, model_uri, git_sha="2222222bb", smoke_payload=bad_payload)
    with pytest.raises(DeployFailed, match="smoke test of"):
        deploy(aws.clients, failing, say=quiet)
    (s2,) = [c for c in configs(aws) if "-2222222-" in c]
    assert describe_endpoint(aws.sagemaker, STAGING).config_name == s1.new_config
    rollback(aws.clients, STAGING, s2, Polling(seconds=0.2), say=lines.append)
    snapshot = describe_endpoint(aws.sagemaker, STAGING)
    assert snapshot.config_name == s2
    assert not snapshot.verified, "recorded verified although its smoke test failed"
    assert snapshot.tags[TAG_VERIFIED_CONFIG] == s1.new_config, "the last verified one stays"
    assert snapshot.unverified_reason == "its smoke test failed"
    # Item 4 of the review: the rollback's own line tells the truth too.
    assert lines[-1] == f"{STAGING} is serving {s2} again (InService, NOT verified)"
    with pytest.raises(BikeshareError, match="which bikeshare did not verify") as refused:
        promote(aws.production, STAGING, aws.request(PROD, "", image_uri="", dry_run=True),
                say=quiet)  # fmt: skip
    assert "its smoke test failed" in str(refused.value)

    # Back to s1, whose smoke test passed: verified again, and said so.
    lines.clear()
    rollback(aws.clients, STAGING, s1.new_config, Polling(seconds=0.2), say=lines.append)
    assert describe_endpoint(aws.sagemaker, STAGING).verified
    assert lines[-1] == f"{STAGING} is serving {s1.new_config} again (verified)"

    # Review item 3: an untagged config is this endpoint's only if bikeshare could have named it
    # for this endpoint; `X-eu`'s names (by hand, untagged) are refused, nothing changes.
    for hand_made in (f"{EU}-e1e1e1e-20250101000000", f"{STAGING}-by-hand"):
        aws.sagemaker.create_endpoint_config(
            EndpointConfigName=hand_made,
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": s1.new_config,
                                 "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        )  # fmt: skip
        with pytest.raises(BikeshareError) as refused:
            rollback(aws.clients, STAGING, hand_made, Polling(seconds=0.2), say=quiet)
        assert str(refused.value) == (
            f"endpoint config {hand_made} carries no bikeshare:endpoint tag and is not named "
            f"like a release of {STAGING} ({STAGING}-<commit>-<yyyymmddHHMMSS>), so it is not "
            f"known to be one; nothing was changed: {STAGING} still serves {s1.new_config}"
        )
        assert describe_endpoint(aws.sagemaker, STAGING).config_name == s1.new_config
