"""The Terraform policies, enforced: what each role may do, what it may not, and mutations.

Every release test already runs as a deployer role under the policies rendered from
infra/terraform (see conftest.py). These tests show the rule bites: a permission removed from
the rendered policy fails a release with AccessDenied, and the findings of the first-run review
(issue 13) stay fixed.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bikeshare.deploy.artifacts import upload_model
from bikeshare.deploy.endpoint import describe_endpoint
from bikeshare.deploy.promote import promote
from bikeshare.deploy.release import DeployFailed, deploy, rollback
from bikeshare.deploy.scaling import ScalingPolicy
from bikeshare.errors import BikeshareError
from support.account import admin_client, role_session, terraform
from support.aws import BUCKET, REGION, ROLE, Aws
from support.terraform_iam import Rendered, Setting, render

STAGING, PROD = "bikeshare-staging", "bikeshare-prod"


def quiet(_: str) -> None:
    """Progress is not under test here."""


def apply_policies(aws: Aws, rendered: Rendered) -> None:
    """What `terraform apply` does to the roles' inline policies after a change."""
    iam = admin_client("iam", aws.url, REGION)
    for role in rendered.roles.values():
        for name, document in role.policies.items():
            iam.put_role_policy(
                RoleName=role.name, PolicyName=name, PolicyDocument=json.dumps(document)
            )


def remove_permission(aws: Aws, role: str, action: str) -> None:
    """A mutation of the Terraform: `action` no longer granted to `role`."""
    rendered = terraform()
    policies = copy.deepcopy(rendered.roles[role].policies)
    removed = False
    for document in policies.values():
        for statement in document["Statement"]:
            if action in statement["Action"]:
                statement["Action"].remove(action)
                removed = True
        document["Statement"] = [s for s in document["Statement"] if s["Action"]]
    assert removed, f"{role} is not granted {action}: the mutation would prove nothing"
    iam = admin_client("iam", aws.url, REGION)
    for name, document in policies.items():
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


@pytest.mark.parametrize(
    ("action", "said"),
    [
        ("sagemaker:CreateModel", "not authorized to perform: sagemaker:CreateModel on resource"),
        ("iam:PassRole", f"not authorized to perform: iam:PassRole on resource: {ROLE}"),
        ("sagemaker:AddTags", "not authorized to perform: sagemaker:AddTags on resource"),
        # S3 answers HEAD with a bare 403; the deploy says what the roles may read instead
        ("s3:GetObject", "was refused (AccessDenied). The deploy roles, and the SageMaker"),
    ],
)
def test_a_deployer_permission_removed_fails_the_release_with_access_denied(
    aws: Aws, model_uri: str, action: str, said: str
) -> None:
    remove_permission(aws, "bikeshare-deployer-staging", action)
    with pytest.raises(Exception, match="AccessDenied") as refused:
        deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    assert said in str(refused.value)
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []
    assert aws.sagemaker.list_models()["Models"] == []


def test_an_update_the_role_may_not_make_leaves_the_release_serving_and_says_so(
    aws: Aws, model_uri: str
) -> None:
    """A refused UpdateEndpoint (here: AccessDenied) is reported like SageMaker's own refusals:
    the endpoint keeps its release, and this release's config and model are removed."""
    first = deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    remove_permission(aws, "bikeshare-deployer-staging", "sagemaker:UpdateEndpoint")
    with pytest.raises(DeployFailed) as refused:
        deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="denied1"), say=quiet)
    message = str(refused.value)
    assert "not authorized to perform: sagemaker:UpdateEndpoint" in message
    assert f"{STAGING} still serves {first.new_config}, unchanged; removed this release" in message
    assert [m["ModelName"] for m in aws.sagemaker.list_models()["Models"]] == [first.new_config]


def test_an_execution_role_that_cannot_read_the_model_fails_the_first_deploy_cleanly(
    aws: Aws, model_uri: str
) -> None:
    remove_permission(aws, "bikeshare-sagemaker-execution", "s3:GetObject")
    with pytest.raises(DeployFailed, match="Could not access model data") as failed:
        deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    assert f'"{ROLE}"' in str(failed.value)
    assert "nothing is serving" in str(failed.value)
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []


def test_rollback_alarms_need_describe_alarms_on_the_execution_role(
    aws: Aws, model_uri: str
) -> None:
    """Finding 1: SageMaker refuses a guarded update when the execution role may not read the
    alarms, and the deploy says so instead of blaming another deploy."""
    first = deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    guarded = aws.request(STAGING, model_uri, git_sha="guarded1", alarms=("bikeshare-staging-5xx",))
    second = deploy(aws.clients, guarded, say=quiet)  # Terraform grants it: the update goes on
    remove_permission(aws, "bikeshare-sagemaker-execution", "cloudwatch:DescribeAlarms")
    with pytest.raises(DeployFailed) as refused:
        deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="guarded2",
                                        alarms=("bikeshare-staging-5xx",)), say=quiet)  # fmt: skip
    message = str(refused.value)
    assert "is not authorized to perform cloudwatch:DescribeAlarms" in message
    assert "Another" not in message
    assert f"still serves {second.new_config}, unchanged" in message
    assert first.new_config != second.new_config
    assert describe_endpoint(aws.sagemaker, STAGING).config_name == second.new_config


def test_scaling_refused_after_a_verified_release_says_the_release_serves(
    aws: Aws, model_uri: str
) -> None:
    """Finding 2: Application Auto Scaling checks the caller for
    sagemaker:UpdateEndpointWeightsAndCapacities; without it the release still serves."""
    policy = ScalingPolicy(1, 2)
    deploy(aws.production, aws.request(PROD, model_uri, scaling=policy), say=quiet)
    remove_permission(
        aws, "bikeshare-deployer-production", "sagemaker:UpdateEndpointWeightsAndCapacities"
    )
    with pytest.raises(DeployFailed) as failed:
        deploy(aws.production, aws.request(PROD, model_uri, git_sha="scaled2", scaling=policy),
               say=quiet)  # fmt: skip
    message = str(failed.value)
    serving = describe_endpoint(aws.sagemaker, PROD)
    assert f"is serving {serving.config_name} (verified), but registering its auto" in message
    assert "sagemaker:UpdateEndpointWeightsAndCapacities" in message
    assert serving.verified
    assert "-scaled2-" in serving.config_name


def test_deployers_cannot_change_or_delete_the_terraform_rollback_alarms(aws: Aws) -> None:
    """Finding 3: the deployers' alarm permissions cover only target tracking's alarms."""
    for environment, alarm in (("staging", "bikeshare-prod-5xx"),
                               ("staging", "bikeshare-staging-5xx"),
                               ("production", "bikeshare-prod-latency")):  # fmt: skip
        cloudwatch = aws.client(environment, "cloudwatch")
        with pytest.raises(Exception, match="AccessDenied"):
            cloudwatch.delete_alarms(AlarmNames=[alarm])
        with pytest.raises(Exception, match="AccessDenied"):
            cloudwatch.put_metric_alarm(
                AlarmName=alarm, MetricName="m", Namespace="n", Statistic="Sum", Period=60,
                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
            )  # fmt: skip
    names = [
        a["AlarmName"] for a in aws.target.client("cloudwatch").describe_alarms()["MetricAlarms"]
    ]
    assert {"bikeshare-prod-5xx", "bikeshare-staging-5xx", "bikeshare-prod-latency"} <= set(names)


def _seed_endpoint(aws: Aws, model_data: str) -> tuple[str, str]:
    """What the seed's SageMaker SDK script leaves: the config named like the endpoint, the
    model named after the image."""
    config, model = STAGING, "bikeshare-serving-2026-11-30-09-15-02-123"
    aws.sagemaker.create_model(
        ModelName=model, ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": aws.image, "ModelDataUrl": model_data},
    )  # fmt: skip
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model,
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )  # fmt: skip
    aws.sagemaker.create_endpoint(EndpointName=STAGING, EndpointConfigName=config)
    for _ in range(600):
        if aws.sagemaker.describe_endpoint(EndpointName=STAGING)["EndpointStatus"] != "Creating":
            break
        time.sleep(0.2)
    return config, model


def test_a_seed_endpoint_is_refused_with_the_migration_step_then_adopted(
    aws: Aws, model_uri: str
) -> None:
    """Finding 4: the seed's releases have other names. Unadopted, every command stops before
    changing anything and names the step; adopted, deploy and rollback work."""
    config, model = _seed_endpoint(aws, model_uri)
    with pytest.raises(BikeshareError, match="adopted_releases") as refused:
        deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    assert f"{STAGING}'s endpoint config {config}: reading it" in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert len(aws.sagemaker.list_models()["Models"]) == 1

    adopted = Setting().with_variables(
        github_repository="octo-org/bikeshare", adopted_releases={"staging": [config, model]}
    )
    apply_policies(aws, render(adopted))
    release = deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="adopt01"), say=quiet)
    assert release.previous_config == config
    back = rollback(aws.clients, STAGING, None, say=quiet)
    assert back.config_name == config
    assert back.status == "InService"


def test_model_data_outside_the_model_prefix_is_refused_up_front(aws: Aws, model_uri: str) -> None:
    """Finding 5: neither the deployers nor the execution role may read it; say why."""
    deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    outside = f"s3://{BUCKET}/override/model.tar.gz"
    admin_s3 = aws.target.client("s3")
    body = admin_s3.get_object(Bucket=BUCKET, Key=model_uri.split("/", 3)[3])["Body"].read()
    admin_s3.put_object(Bucket=BUCKET, Key="override/model.tar.gz", Body=body)
    with pytest.raises(BikeshareError, match="was refused") as refused:
        promote(aws.production, STAGING, aws.request(PROD, "", image_uri=""),
                override_model_data=outside, say=quiet)  # fmt: skip
    message = str(refused.value)
    assert f"reading model artifact {outside} was refused (AccessDenied)" in message
    assert "`bikeshare upload-model`" in message
    assert "Nothing was changed" in message
    assert aws.sagemaker.list_endpoints(NameContains=PROD)["Endpoints"] == []


def test_create_endpoint_is_retried_while_the_new_config_is_not_visible(
    aws: Aws, model_uri: str
) -> None:
    """Finding 6: CreateEndpoint right after CreateEndpointConfig may not see the config yet
    (AWS's CreateEndpoint reference); that is retried, not taken for a racing deploy."""
    aws.faults(config_not_visible=2)
    outcome = deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    assert describe_endpoint(aws.sagemaker, STAGING).config_name == outcome.new_config


def test_production_never_writes_model_archives_or_images(aws: Aws, model_uri: str) -> None:
    """Finding 7: production only deploys what staging uploaded and published."""
    key = model_uri.split("/", 3)[3]
    with pytest.raises(Exception, match="AccessDenied"):
        aws.production.s3.put_object(Bucket=BUCKET, Key=key, Body=b"replaced")
    with pytest.raises(Exception, match="AccessDenied"):
        aws.production.ecr.describe_images(repositoryName="bikeshare-serving")
    assert aws.production.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def data_scientist(aws: Aws, policy: dict) -> Any:
    """A session of a role holding only `policy`, as a data scientist's SSO session would."""
    return role_session(aws.url, REGION, "data-scientist", policy)


def test_the_model_publisher_policy_uploads_models_and_nothing_else(
    aws: Aws, model_archive: Path
) -> None:
    """Terraform's model_publisher document: how a model trained on real data reaches S3."""
    session = data_scientist(aws, terraform().documents["model_publisher"])
    s3 = session.client("s3", endpoint_url=aws.url)
    uri = upload_model(s3, model_archive, BUCKET, "models", "cafebabe")
    assert uri.startswith(f"s3://{BUCKET}/models/")
    assert upload_model(s3, model_archive, BUCKET, "models", "cafebabe") == uri, "idempotent"
    with pytest.raises(Exception, match=r"\(403\) when calling the HeadObject"):  # no body
        upload_model(s3, model_archive, BUCKET, "elsewhere", "cafebabe")
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
    with pytest.raises(Exception, match="AccessDenied"):
        session.client("sagemaker", endpoint_url=aws.url).list_endpoint_configs()
    key = terraform().arn("aws_kms_key.bikeshare")
    with pytest.raises(Exception, match="AccessDenied"):  # the key only through S3
        session.client("kms", endpoint_url=aws.url).generate_data_key(KeyId=key, KeySpec="AES_256")
    report = aws.authorization()["data-scientist"]
    assert f"kms:GenerateDataKey on {key}" in report["denied"], "refused by the policy itself"
    assert report["unused"] == [], "every permission of the document is needed"


def test_unused_permissions_are_reported(aws: Aws) -> None:
    """What a role is granted and no call used is reported, role by role."""
    aws.client("staging", "sagemaker").list_endpoint_configs()
    report = aws.authorization()
    assert "sagemaker:ListEndpointConfigs" not in report["bikeshare-deployer-staging"]["unused"]
    assert "sagemaker:CreateModel" in report["bikeshare-deployer-staging"]["unused"]
    assert report["bikeshare-deployer-staging"]["denied"] == []
