"""Promotion and auto scaling: production gets exactly what staging verified, and keeps capacity."""

from __future__ import annotations

import pytest

from bikeshare.deploy import scaling
from bikeshare.deploy.endpoint import describe_endpoint
from bikeshare.deploy.promote import promote
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
    override = model_uri.replace("/models/", "/models/hotfix-")
    source = aws.clients.s3.get_object(
        Bucket=model_uri[5:].split("/")[0], Key=model_uri[5:].split("/", 1)[1]
    )["Body"].read()
    aws.clients.s3.put_object(
        Bucket=override[5:].split("/")[0], Key=override[5:].split("/", 1)[1], Body=source
    )
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
