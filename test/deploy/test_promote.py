"""Promotion and auto scaling: production gets exactly what staging verified, and keeps capacity."""

from __future__ import annotations

import pytest

from bikeshare.cli import main
from bikeshare.deploy import scaling
from bikeshare.deploy.endpoint import describe_endpoint, describe_release
from bikeshare.deploy.promote import PinnedRelease, promote
from bikeshare.deploy.release import DeployRequest, deploy
from bikeshare.deploy.scaling import ScalingPolicy
from bikeshare.errors import BikeshareError
from support.aws import Aws

STAGING, PROD = "bikeshare-staging", "bikeshare-prod"


def quiet(_: str) -> None:
    """Progress is not under test here."""


def prod_request(aws: Aws, **overrides: object) -> DeployRequest:
    """Production's settings; image and model data come from staging."""
    return aws.request(PROD, "", image_uri="", **overrides)


def copy_model(aws: Aws, model_uri: str, prefix: str) -> str:
    """The same archive under another key: a second model staging or an override can name."""
    bucket, key = model_uri[5:].split("/", 1)
    copy = model_uri.replace("/models/", f"/models/{prefix}/")  # still <sha256>/model.tar.gz
    body = aws.clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    aws.clients.s3.put_object(  # write-once under the model prefix: the bucket policy
        Bucket=bucket, Key=copy[5:].split("/", 1)[1], Body=body, IfNoneMatch="*"
    )
    return copy


def plan_of(aws: Aws, override: str | None = None) -> PinnedRelease:
    """What the plan job pins: staging's config and image (`release-of`), the model data to ship."""
    release = describe_release(aws.sagemaker, STAGING, None)
    return PinnedRelease(release["config"], release["image_uri"], override or release["model_data"])


def test_upload_staging_promote_with_auto_scaling(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="feedface42"), say=quiet)
    outcome = promote(
        aws.production,
        STAGING,
        prod_request(aws, scaling=ScalingPolicy(1, 4, target_invocations=250)),
        say=quiet,
    )
    staging = describe_endpoint(aws.sagemaker, STAGING)
    prod = describe_endpoint(aws.sagemaker, PROD)
    assert prod.config_name == outcome.new_config
    assert prod.verified
    assert prod.variants[0].image == staging.variants[0].image
    assert prod.variants[0].model_data == staging.variants[0].model_data == model_uri
    assert "-feedfac-" in outcome.new_config  # the commit staging was deployed from
    registered = scaling.describe(aws.production.autoscaling, PROD, "AllTraffic")
    assert registered == {"min": 1, "max": 4, "target_invocations_per_instance": 250.0}


def test_a_second_deploy_keeps_the_scaled_capacity(aws: Aws, model_uri: str) -> None:
    policy = ScalingPolicy(1, 4)
    deploy(aws.production, aws.request(PROD, model_uri, scaling=policy), say=quiet)
    # What auto scaling would do under load: raise the variant to 3 instances.
    aws.sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=PROD,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
    )
    deploy(
        aws.production,
        aws.request(PROD, model_uri, git_sha="2ndd3ploy", scaling=policy),
        say=quiet,
    )
    described = aws.sagemaker.describe_endpoint(EndpointName=PROD)
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    assert scaling.describe(aws.production.autoscaling, PROD, "AllTraffic")["max"] == 4


def test_instance_type_change_deregisters_then_re_registers(aws: Aws, model_uri: str) -> None:
    deploy(aws.production, aws.request(PROD, model_uri, scaling=ScalingPolicy(2, 6)), say=quiet)
    lines: list[str] = []
    deploy(
        aws.production,
        aws.request(PROD, model_uri, instance_type="ml.m5.xlarge", git_sha="bigger1"),
        say=lines.append,
    )
    assert any(
        line.startswith("deregistered auto scaling of bikeshare-prod/AllTraffic") for line in lines
    )
    assert any(
        line.startswith("auto scaling registered for bikeshare-prod/AllTraffic: 2-6")
        for line in lines
    )
    assert scaling.describe(aws.production.autoscaling, PROD, "AllTraffic")["min"] == 2
    prod = describe_endpoint(aws.sagemaker, PROD)
    assert prod.variants[0].instance_type == "ml.m5.xlarge"


def test_promote_refuses_a_staging_release_bikeshare_did_not_verify(
    aws: Aws, model_uri: str
) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    endpoint = aws.sagemaker.describe_endpoint(EndpointName=STAGING)
    aws.sagemaker.delete_tags(
        ResourceArn=endpoint["EndpointArn"], TagKeys=["bikeshare:verified-config"]
    )
    with pytest.raises(BikeshareError, match="which bikeshare did not verify"):
        promote(aws.production, STAGING, prod_request(aws), say=quiet)
    assert aws.sagemaker.list_endpoints(NameContains=PROD)["Endpoints"] == []


def test_promote_refuses_a_missing_staging(aws: Aws) -> None:
    with pytest.raises(BikeshareError, match="endpoint bikeshare-staging does not exist"):
        promote(aws.production, STAGING, prod_request(aws), say=quiet)


def test_promote_with_an_override_model(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    override = copy_model(aws, model_uri, "hotfix")
    promote(aws.production, STAGING, prod_request(aws), override_model_data=override, say=quiet)
    assert describe_endpoint(aws.sagemaker, PROD).variants[0].model_data == override


def test_promote_dry_run_shows_the_plan_and_changes_nothing(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    lines: list[str] = []
    # the plan job runs before the approval, as the read-only planner role
    planner = aws.clients_of("production-plan")
    outcome = promote(planner, STAGING, prod_request(aws, dry_run=True), say=lines.append)
    assert outcome.dry_run
    assert lines[0].startswith(f"promoting to {PROD}: image ")
    assert f"model data:   {model_uri}" in "\n".join(lines)
    assert aws.sagemaker.list_endpoints(NameContains=PROD)["Endpoints"] == []


def test_promote_ships_exactly_the_release_the_plan_pinned(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="a11ce5"), say=quiet)
    planned = plan_of(aws)
    lines: list[str] = []
    planner = aws.clients_of("production-plan")
    promote(planner, STAGING, prod_request(aws, dry_run=True), say=lines.append, expected=planned)
    assert f"--expect-config {planned.config} " in lines[-1], "the dry run names its pins"
    outcome = promote(aws.production, STAGING, prod_request(aws), say=quiet, expected=planned)
    prod = describe_endpoint(aws.sagemaker, PROD)
    assert prod.config_name == outcome.new_config
    assert (prod.variants[0].image, prod.variants[0].model_data) == (
        planned.image_uri,
        planned.model_data,
    )


def test_promote_refuses_when_staging_changed_after_the_plan(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="a11ce5"), say=quiet)
    planned = plan_of(aws)
    # A CD run lands between the plan and the approval: staging serves another model now.
    newer = copy_model(aws, model_uri, "newer")
    deploy(aws.clients, aws.request(STAGING, newer, git_sha="b0b0b0"), say=quiet)
    now = describe_endpoint(aws.sagemaker, STAGING).config_name
    with pytest.raises(BikeshareError) as refused:
        promote(aws.production, STAGING, prod_request(aws), say=quiet, expected=planned)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{STAGING} changed since the plan" in message
    assert f"the plan showed {planned.config} " in message
    assert f"now serves {now} " in message
    assert newer in message
    assert "nothing was changed" in message
    assert aws.sagemaker.list_endpoints(NameContains=PROD)["Endpoints"] == []
    models = aws.sagemaker.list_models()["Models"]  # the stand-in ignores NameContains here
    assert [m["ModelName"] for m in models if m["ModelName"].startswith(PROD)] == []


def test_promote_refuses_an_override_the_plan_did_not_show(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    shown, other = copy_model(aws, model_uri, "hotfix"), copy_model(aws, model_uri, "other")
    planned = plan_of(aws, override=shown)
    for override in (other, None):  # another override, or none: staging's model is not shown
        with pytest.raises(BikeshareError, match=f"is not the plan's {shown}; nothing was"):
            promote(aws.production, STAGING, prod_request(aws), override, quiet, planned)
    assert aws.sagemaker.list_endpoints(NameContains=PROD)["Endpoints"] == []
    promote(aws.production, STAGING, prod_request(aws), shown, quiet, planned)
    assert describe_endpoint(aws.sagemaker, PROD).variants[0].model_data == shown


def test_a_half_pinned_plan_is_refused_before_aws_is_reached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["promote", "--from-endpoint", STAGING, "--endpoint-name", PROD, "--instance-type",
            "ml.m5.large", "--execution-role-arn", "arn:aws:iam::1:role/x", "--region",
            "ca-central-1", "--endpoint-url", "http://127.0.0.1:9",
            "--expect-config", "c"]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "bikeshare promote: error: --expect-config, --expect-image, --expect-model-data pin the "
        "plan's release together; --expect-image, --expect-model-data missing\n"
    )
