"""The Terraform, read with python-hcl2: the properties the pipeline and its reviewers rely on.

checkov runs too, in its own environment (`uv tool run`): it pins old libraries and installs a
package named `hcl2`, like python-hcl2 does, so the two must never share one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from bikeshare_ci.checks import CHECKOV
from support.terraform_iam import render

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"


@cache
def parsed(name: str) -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (TERRAFORM / name).open() as handle:
        return hcl2.load(handle, serialization_options=options)


def blocks(kind: str, type_name: str) -> dict[str, Any]:
    """Every `kind "type_name" "x" {}` across the files, by x."""
    found: dict[str, Any] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        for block in parsed(path.name).get(kind, []):
            found.update(block.get(type_name, {}))
    return found


def resource(type_name: str, name: str) -> dict[str, Any]:
    return blocks("resource", type_name)[name]


def statements(document: str) -> list[dict[str, Any]]:
    """A policy document's statements, those it takes from its source_policy_documents included."""
    found = blocks("data", "aws_iam_policy_document")[document]
    included = [
        statement
        for source in found.get("source_policy_documents", [])
        for statement in statements(
            re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", source)[1]
        )
    ]
    return included + found["statement"]


def test_standard_layout_one_file_per_concern() -> None:
    names = {p.name for p in TERRAFORM.glob("*.tf")}
    assert {
        "versions.tf",
        "backend.tf",
        "variables.tf",
        "outputs.tf",
        "ecr.tf",
        "s3.tf",
        "oidc.tf",
        "iam_deployer.tf",
        "iam_planner.tf",
        "iam_execution.tf",
        "alarms.tf",
        "kms.tf",
    } <= names


def test_terraform_and_provider_are_pinned() -> None:
    terraform = parsed("versions.tf")["terraform"][0]
    assert terraform["required_version"] == ">= 1.10.0"
    aws = terraform["required_providers"][0]["aws"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", aws["version"]), "the AWS provider is pinned exactly"


def test_backend_is_partial_s3_with_native_locking() -> None:
    backend = parsed("backend.tf")["terraform"][0]["backend"][0]["s3"]
    assert backend["use_lockfile"] is True
    assert backend["encrypt"] is True
    assert "bucket" not in backend  # partial: given at init time, per account


def test_ecr_repository_is_immutable_scanned_encrypted_and_pruned() -> None:
    repo = resource("aws_ecr_repository", "serving")
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert repo["image_scanning_configuration"][0]["scan_on_push"] is True
    assert repo["encryption_configuration"][0]["encryption_type"] == "KMS"
    assert "imageCountMoreThan" in resource("aws_ecr_lifecycle_policy", "serving")["policy"]


def test_model_bucket_is_versioned_encrypted_private_tls_only_with_lifecycle() -> None:
    versioning = resource("aws_s3_bucket_versioning", "models")
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    sse = resource("aws_s3_bucket_server_side_encryption_configuration", "models")
    assert sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == (
        "aws:kms"
    )
    block = resource("aws_s3_bucket_public_access_block", "models")
    assert all(
        block[key] is True
        for key in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    by_sid = {statement["sid"]: statement for statement in statements("models_bucket")}
    deny = by_sid["DenyInsecureTransport"]
    assert deny["effect"] == "Deny"
    assert deny["condition"][0]["variable"] == "aws:SecureTransport"
    assert deny["condition"][0]["values"] == ["false"]
    write_once = by_sid["DenyOverwritingModelArchives"]  # not Object Lock: see s3.tf
    assert (write_once["effect"], write_once["actions"]) == ("Deny", ["s3:PutObject"])
    assert write_once["condition"] == [
        {"test": "Null", "variable": "s3:if-none-match", "values": ["true"]}
    ]
    create_only = by_sid["DenyNonCreatingWritesOfModelArchives"]  # If-None-Match: <an ETag>
    assert (create_only["effect"], create_only["actions"]) == ("Deny", ["s3:PutObject"])
    assert create_only["resources"] == write_once["resources"]
    assert create_only["condition"] == [
        {"test": "StringNotEquals", "variable": "s3:if-none-match", "values": ["*"]}
    ]
    assert by_sid["DenyDeletingModelArchives"]["effect"] == "Deny"
    assert resource("aws_s3_bucket_lifecycle_configuration", "models")["rule"]


def test_github_oidc_provider_is_created_or_adopted() -> None:
    created = resource("aws_iam_openid_connect_provider", "github")
    adopted = blocks("data", "aws_iam_openid_connect_provider")["github"]
    assert created["count"] == "${var.create_github_oidc_provider ? 1 : 0}"
    assert adopted["count"] == "${var.create_github_oidc_provider ? 0 : 1}"
    assert created["client_id_list"] == ["sts.amazonaws.com"]


def test_each_deployer_role_trusts_only_its_github_environment() -> None:
    role = resource("aws_iam_role", "deployer")
    assert role["for_each"] == "${var.environments}"
    assert role["assume_role_policy"] == (
        "${data.aws_iam_policy_document.github_environment_trust[each.key].json}"
    )
    trust_document = blocks("data", "aws_iam_policy_document")["github_environment_trust"]
    assert "keys(var.environments)" in trust_document["for_each"]
    (trust,) = statements("github_environment_trust")
    conditions = {c["variable"]: c["values"] for c in trust["condition"]}
    assert conditions["token.actions.githubusercontent.com:aud"] == ["sts.amazonaws.com"]
    # the ref comes from the repository's OIDC subject template (oidc.tf says why)
    assert conditions["token.actions.githubusercontent.com:sub"] == [
        "repo:${var.github_repository}:environment:${each.key}:ref:refs/heads/${var.release_branch}"
    ]
    assert trust["actions"] == ["sts:AssumeRoleWithWebIdentity"]


def test_pass_role_only_for_the_execution_role_to_sagemaker() -> None:
    (passing,) = [s for s in statements("deployer") if "iam:PassRole" in s["actions"]]
    assert passing["resources"] == ["${aws_iam_role.sagemaker_execution.arn}"]
    assert passing["condition"][0]["variable"] == "iam:PassedToService"
    assert passing["condition"][0]["values"] == ["sagemaker.amazonaws.com"]


def test_deployer_covers_what_the_release_engine_calls() -> None:
    """A coarse reading; the stand-in enforces the rendered policies call by call."""
    policy = render().roles["bikeshare-deployer-staging"].policies["release-bikeshare-staging"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    for needed in (
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:UpdateEndpoint",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
        "sagemaker:InvokeEndpoint",
        "sagemaker:ListEndpointConfigs",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "s3:PutObject",
        "logs:FilterLogEvents",
    ):
        assert needed in actions, needed
    own = next(s for s in policy["Statement"] if s["Sid"] == "ReleaseOwnEndpoint")
    assert all("/bikeshare-staging" in r for r in own["Resource"])


def _actions(statement: dict[str, Any]) -> list[str]:
    value = statement["actions"]
    return value if isinstance(value, list) else re.findall(r'"([a-z-]+:\w+)"', value)


def test_unscoped_resources_are_only_where_aws_allows_no_scoping_and_say_why() -> None:
    for document in ("deployer", "sagemaker_execution", "promotion_planner"):
        for statement in statements(document):
            if statement.get("resources") == ["*"]:
                assert statement["sid"] in {
                    "EcrLogin",
                    "ListReleasesToPrune",
                    "DeployOwnedAutoScaling",
                    "TargetTrackingAlarms",
                    "PublishMetrics",
                }
                assert statement.get("__comments__"), f"{statement['sid']} needs its reason"


def test_promotion_plan_role_is_read_only_and_bound_to_its_own_environment() -> None:
    role = resource("aws_iam_role", "promotion_planner")
    assert role["assume_role_policy"] == (
        "${data.aws_iam_policy_document.github_environment_trust"
        "[var.promotion_plan_environment].json}"
    )
    trust_document = blocks("data", "aws_iam_policy_document")["github_environment_trust"]
    assert "var.promotion_plan_environment" in trust_document["for_each"]
    actions = {a for s in statements("promotion_planner") for a in _actions(s)}
    assert "sagemaker:DescribeEndpoint" in actions
    assert "s3:GetObject" in actions
    writes = re.compile(r":(Create|Update|Delete|Put|Upload|Initiate|Complete|Register|Add|Pass)")
    assert not [a for a in actions if writes.search(a)], "the plan role must change nothing"


def test_alarms_per_endpoint_notify_an_encrypted_topic() -> None:
    errors = resource("aws_cloudwatch_metric_alarm", "errors_5xx")
    latency = resource("aws_cloudwatch_metric_alarm", "latency")
    assert errors["metric_name"] == "Invocation5XXErrors"
    assert latency["metric_name"] == "ModelLatency"
    assert "microseconds" in latency["alarm_description"]
    for alarm in (errors, latency):
        assert alarm["for_each"] == "${var.environments}"
        assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]
    assert resource("aws_sns_topic", "alarms")["kms_master_key_id"]


def test_the_endpoint_is_owned_by_the_pipeline_not_terraform() -> None:
    for owned_by_the_deploy in (
        "aws_sagemaker_endpoint",
        "aws_sagemaker_endpoint_configuration",
        "aws_sagemaker_model",
        "aws_appautoscaling_target",
        "aws_appautoscaling_policy",
    ):
        assert not blocks("resource", owned_by_the_deploy), owned_by_the_deploy
    assert "owned by the pipeline" in (TERRAFORM / "iam_deployer.tf").read_text()


def test_checkov_is_clean_and_every_skip_has_a_reason() -> None:
    if shutil.which("uv") is None:
        pytest.skip("checkov runs in its own environment through uv")
    for path in TERRAFORM.glob("*.tf"):
        for skip in re.findall(r"#checkov:skip=([^\n]*)", path.read_text()):
            check, _, reason = skip.partition(":")
            assert len(reason.strip()) > 20, f"{path.name}: {check} needs a written reason"
    result = subprocess.run(
        list(CHECKOV),  # the security check's command, run in the repository root as there
        cwd=TERRAFORM.parents[1],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout
