"""The IAM documents rendered from infra/terraform (support.terraform_iam): what the roles get,
and that the renderer refuses what it does not evaluate instead of guessing."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from support.terraform_iam import (
    InvalidTerraform,
    Rendered,
    Setting,
    TerraformIamError,
    UnsupportedTerraform,
    render,
)

ACCOUNT = "123456789012"
SAGEMAKER = f"arn:aws:sagemaker:ca-central-1:{ACCOUNT}"
OIDC_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
PUSH = {
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
}


@cache
def rendered() -> Rendered:
    """infra/terraform with the test setting, rendered once for the module."""
    return render()


def policy(role: str) -> dict[str, Any]:
    """The one inline policy of a role."""
    (document,) = rendered().roles[role].policies.values()
    return document


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    (found,) = [s for s in document["Statement"] if s.get("Sid") == sid]
    return found


def assert_subject(trust: dict[str, Any], repository: str, environment: str) -> None:
    """The trust admits OIDC tokens of `repository`'s jobs bound to `environment` only (the
    subject may go on with more claims, such as the ref, but names no other environment)."""
    (subject,) = trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert re.fullmatch(rf"repo:{re.escape(repository)}:environment:{environment}(:.+)?", subject)


def test_the_roles_are_those_terraform_creates() -> None:
    roles = rendered().roles
    assert set(roles) == {
        "bikeshare-deployer-staging",
        "bikeshare-deployer-production",
        "bikeshare-promotion-planner",
        "bikeshare-sagemaker-execution",
    }
    assert roles["bikeshare-deployer-staging"].arn == (
        f"arn:aws:iam::{ACCOUNT}:role/bikeshare-deployer-staging"
    )
    assert set(roles["bikeshare-deployer-staging"].policies) == {"release-bikeshare-staging"}
    assert rendered().arn('aws_iam_role.deployer["staging"]') == (
        roles["bikeshare-deployer-staging"].arn
    )


def test_staging_deployer_releases_only_its_own_endpoint() -> None:
    own = statement(policy("bikeshare-deployer-staging"), "ReleaseOwnEndpoint")
    assert own["Effect"] == "Allow"
    assert f"{SAGEMAKER}:endpoint/bikeshare-staging" in own["Resource"]
    assert f"{SAGEMAKER}:endpoint-config/bikeshare-staging-*" in own["Resource"]
    assert f"{SAGEMAKER}:model/bikeshare-staging-*" in own["Resource"]
    assert not [arn for arn in own["Resource"] if "bikeshare-prod" in arn]
    assert {"sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint"} <= set(own["Action"])


def test_statements_name_the_arns_of_the_resources_terraform_creates() -> None:
    document = policy("bikeshare-deployer-staging")
    execution = rendered().roles["bikeshare-sagemaker-execution"].arn
    assert statement(document, "PassExecutionRoleToSageMakerOnly")["Resource"] == [execution]
    assert statement(document, "ServingImage")["Resource"] == [
        rendered().arn("aws_ecr_repository.serving")
    ]
    assert rendered().arn("aws_ecr_repository.serving") == (
        f"arn:aws:ecr:ca-central-1:{ACCOUNT}:repository/bikeshare-serving"
    )
    assert statement(document, "ModelArchives")["Resource"] == [
        "arn:aws:s3:::bikeshare-models/models/*"
    ]
    key = rendered().arn("aws_kms_key.bikeshare")
    assert re.fullmatch(rf"arn:aws:kms:ca-central-1:{ACCOUNT}:key/[0-9a-f-]{{36}}", key)
    assert statement(document, "EncryptedArtifacts")["Resource"] == [key]


def test_production_reads_the_staging_endpoint_it_promotes_and_staging_does_not() -> None:
    production = statement(policy("bikeshare-deployer-production"), "ReadPromotionSource")
    staging = statement(policy("bikeshare-deployer-staging"), "ReadPromotionSource")
    assert f"{SAGEMAKER}:endpoint/bikeshare-staging" in production["Resource"]
    assert f"{SAGEMAKER}:endpoint/bikeshare-prod" in production["Resource"]
    assert f"{SAGEMAKER}:endpoint/bikeshare-staging" in staging["Resource"]
    assert not [arn for arn in staging["Resource"] if "bikeshare-prod" in arn]


def test_only_staging_may_push_the_serving_image() -> None:
    staging = statement(policy("bikeshare-deployer-staging"), "ServingImage")
    production = statement(policy("bikeshare-deployer-production"), "ServingImage")
    assert set(staging["Action"]) >= PUSH
    assert not set(production["Action"]) & PUSH
    assert "ecr:BatchGetImage" in production["Action"]


def test_source_policy_documents_come_first_and_sids_stay_unique() -> None:
    ecr_login = rendered().documents["ecr_login"]["Statement"]
    read_archives = rendered().documents["read_model_archives"]["Statement"]
    assert [s["Sid"] for s in ecr_login] == ["EcrLogin"]
    for role in ("bikeshare-deployer-staging", "bikeshare-deployer-production"):
        assert policy(role)["Statement"][0] == ecr_login[0]
    for role in ("bikeshare-sagemaker-execution", "bikeshare-promotion-planner"):
        statements = policy(role)["Statement"]
        assert statements[: 1 + len(read_archives)] == ecr_login + read_archives
    for role in rendered().roles:
        sids = [s["Sid"] for s in policy(role)["Statement"]]
        assert len(sids) == len(set(sids)), role


def test_each_role_is_trusted_only_by_its_github_environment() -> None:
    for role, environment in (
        ("bikeshare-deployer-staging", "staging"),
        ("bikeshare-deployer-production", "production"),
        ("bikeshare-promotion-planner", "production-plan"),
    ):
        (trust,) = rendered().roles[role].trust["Statement"]
        assert trust["Action"] == ["sts:AssumeRoleWithWebIdentity"]
        assert trust["Principal"] == {"Federated": [OIDC_PROVIDER]}
        assert set(trust["Condition"]) == {"StringEquals"}
        assert set(trust["Condition"]["StringEquals"]) == {
            "token.actions.githubusercontent.com:aud",
            "token.actions.githubusercontent.com:sub",
        }
        assert trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"] == [
            "sts.amazonaws.com"
        ]
        assert_subject(trust, "octo-org/bikeshare", environment)


def test_the_execution_role_is_sagemakers_and_reads_what_serving_needs() -> None:
    role = rendered().roles["bikeshare-sagemaker-execution"]
    (trust,) = role.trust["Statement"]
    assert trust["Principal"] == {"Service": ["sagemaker.amazonaws.com"]}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": [ACCOUNT]}}
    assert set(role.policies) == {"serve-bikeshare-models"}
    document = role.policies["serve-bikeshare-models"]
    assert document["Version"] == "2012-10-17"
    assert statement(document, "ReadModelArchives")["Resource"] == [
        "arn:aws:s3:::bikeshare-models/models/*"
    ]
    assert statement(document, "PullServingImage")["Resource"] == [
        rendered().arn("aws_ecr_repository.serving")
    ]
    metrics = statement(document, "PublishMetrics")
    assert metrics["Resource"] == ["*"]
    assert "cloudwatch:namespace" in metrics["Condition"]["StringLike"]


def test_the_key_policy_and_the_bucket_policy_render() -> None:
    key_policy = rendered().resource_policies["aws_kms_key.bikeshare"]
    assert key_policy == rendered().documents["kms"]
    administers = statement(key_policy, "AccountAdministers")
    assert administers["Principal"] == {"AWS": [f"arn:aws:iam::{ACCOUNT}:root"]}
    bucket_policy = rendered().resource_policies["aws_s3_bucket_policy.models"]
    tls, write_once, create_only, no_delete = bucket_policy["Statement"]
    assert {s["Effect"] for s in bucket_policy["Statement"]} == {"Deny"}
    assert {str(s["Principal"]) for s in bucket_policy["Statement"]} == {"*"}
    assert sorted(tls["Resource"]) == [
        "arn:aws:s3:::bikeshare-models",
        "arn:aws:s3:::bikeshare-models/*",
    ]
    assert (
        write_once["Resource"]
        == create_only["Resource"]
        == no_delete["Resource"]
        == ["arn:aws:s3:::bikeshare-models/models/*"]
    )
    assert write_once["Condition"] == {"Null": {"s3:if-none-match": ["true"]}}
    assert create_only["Condition"] == {"StringNotEquals": {"s3:if-none-match": ["*"]}}


def test_documents_are_keyed_by_name_and_instance() -> None:
    documents = rendered().documents
    assert {
        'deployer["staging"]',
        'deployer["production"]',
        'github_environment_trust["production-plan"]',
        "kms",
        "ecr_login",
    } <= set(documents)
    assert documents['deployer["staging"]'] == policy("bikeshare-deployer-staging")


def test_other_variables_render_other_endpoints() -> None:
    qa = render(Setting().with_variables(environments={"qa": {"endpoint_name": "bikeshare-qa"}}))
    assert set(qa.roles) == {
        "bikeshare-deployer-qa",
        "bikeshare-promotion-planner",
        "bikeshare-sagemaker-execution",
    }
    (document,) = qa.roles["bikeshare-deployer-qa"].policies.values()
    assert (
        f"{SAGEMAKER}:endpoint/bikeshare-qa"
        in statement(document, "ReleaseOwnEndpoint")["Resource"]
    )
    assert not set(statement(document, "ServingImage")["Action"]) & PUSH
    (trust,) = qa.roles["bikeshare-deployer-qa"].trust["Statement"]
    assert_subject(trust, "octo-org/bikeshare", "qa")
    assert qa.setting.variable("ecr_repository_name") == "bikeshare-serving"  # the default


def test_the_account_partition_and_repository_come_from_the_setting() -> None:
    other = render(
        Setting(account_id="210987654321", partition="aws-us-gov").with_variables(
            github_repository="someone/else", region="us-gov-west-1"
        )
    )
    role = other.roles["bikeshare-deployer-staging"]
    assert role.arn == "arn:aws-us-gov:iam::210987654321:role/bikeshare-deployer-staging"
    own = statement(next(iter(role.policies.values())), "ReleaseOwnEndpoint")
    assert "arn:aws-us-gov:sagemaker:us-gov-west-1:210987654321:endpoint/bikeshare-staging" in (
        own["Resource"]
    )
    (trust,) = role.trust["Statement"]
    assert_subject(trust, "someone/else", "staging")


def test_a_created_oidc_provider_is_trusted_like_an_adopted_one() -> None:
    created = render(Setting().with_variables(create_github_oidc_provider=True))
    (trust,) = created.roles["bikeshare-deployer-staging"].trust["Statement"]
    assert trust["Principal"] == {"Federated": [OIDC_PROVIDER]}
    assert created.arn("aws_iam_openid_connect_provider.github[0]") == OIDC_PROVIDER


def test_variable_validations_are_enforced() -> None:
    wrong = Setting().with_variables(environments={"staging": {"endpoint_name": "other"}})
    with pytest.raises(InvalidTerraform, match="Endpoint names must start with bikeshare-"):
        render(wrong)
    with pytest.raises(InvalidTerraform, match="undeclared variables"):
        render(Setting().with_variables(enviroments={}))


def test_operators_follow_terraform_precedence() -> None:
    assert rendered().evaluate("true || false && false") is True
    assert rendered().evaluate('"a" == "b" || !false') is True
    assert rendered().evaluate('1 == "1"') is False  # no conversion for ==


# ------------------------------------------------------------------------------------------------
# The provider's rendering rules, and strictness, on small configurations


def render_tf(directory: Path, text: str) -> Rendered:
    (directory / "main.tf").write_text(text)
    return render(directory=directory)


def test_a_documents_own_statement_replaces_the_source_statement_with_its_sid(
    tmp_path: Path,
) -> None:
    documents = render_tf(
        tmp_path,
        """
data "aws_iam_policy_document" "base" {
  statement {
    sid       = "Shared"
    actions   = ["s3:GetObject"]
    resources = ["*"]
  }
  statement {
    sid       = "Kept"
    actions   = ["s3:ListBucket"]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "merged" {
  source_policy_documents = [data.aws_iam_policy_document.base.json]
  statement {
    sid       = "Shared"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:PutObject"]
    resources = ["arn:aws:s3:::bucket/&{aws:username}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalTag/team"
      values   = ["a"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalTag/team"
      values   = ["b"]
    }
  }
}
""",
    ).documents
    assert documents["merged"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Shared",
                "Effect": "Deny",
                "Action": ["s3:PutObject", "s3:DeleteObject"],  # a set, reverse-sorted
                "Resource": ["arn:aws:s3:::bucket/${aws:username}/*"],
                "Principal": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": ["a", "b"]}},
            },
            documents["base"]["Statement"][1],
        ],
    }


def test_a_sid_in_two_source_documents_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidTerraform, match="duplicate Sid 'Same'"):
        render_tf(
            tmp_path,
            """
data "aws_iam_policy_document" "one" {
  statement {
    sid       = "Same"
    actions   = ["s3:GetObject"]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "two" {
  source_policy_documents = [
    data.aws_iam_policy_document.one.json,
    data.aws_iam_policy_document.one.json,
  ]
}
""",
        )


def document_with(resources: str) -> str:
    return f"""
variable "on" {{
  default = true
}}

data "aws_iam_policy_document" "x" {{
  statement {{
    actions   = ["s3:GetObject"]
    resources = {resources}
  }}
}}
"""


@pytest.mark.parametrize(
    ("resources", "error", "named"),
    [
        ('[upper("arn:aws:s3:::b")]', UnsupportedTerraform, "function upper() is not supported"),
        ("[aws_s3_bucket.nope.arn]", InvalidTerraform, "undeclared resource aws_s3_bucket.nope"),
        ("[local.nope]", InvalidTerraform, "undeclared local value local.nope"),
        # Checked even where the variables take the other branch.
        ('var.on ? ["*"] : [var.nope]', InvalidTerraform, "undeclared variable var.nope"),
        ('var.on ? ["*"] : [jsonencode(1)]', UnsupportedTerraform, "function jsonencode()"),
        ('["a${each.key}"]', InvalidTerraform, "each. is only available in a for_each block"),
        ('[for r in ["a"] : r...]', InvalidTerraform, "does not parse"),
        ('["%{if var.on}x%{endif}"]', UnsupportedTerraform, "template_if_start"),
    ],
)
def test_an_expression_outside_the_subset_is_refused_naming_it(
    tmp_path: Path, resources: str, error: type[TerraformIamError], named: str
) -> None:
    with pytest.raises(error) as raised:
        render_tf(tmp_path, document_with(resources))
    message = str(raised.value)
    assert named in message
    assert "main.tf" in message
    if "does not parse" not in named:
        assert "data.aws_iam_policy_document.x statement[0].resources" in message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            'data "aws_iam_policy_document" "x" {\n  policy_id = "p"\n}\n',
            "['policy_id'] not modeled",
        ),
        (
            'data "aws_iam_policy_document" "x" {\n  statement {\n'
            '    dynamic "condition" {\n      for_each = []\n      content {}\n    }\n  }\n}\n',
            "['dynamic'] not modeled",
        ),
        (
            'resource "aws_iam_role" "r" {\n  name = "r"\n  assume_role_policy = "{}"\n'
            '  permissions_boundary = "arn:aws:iam::aws:policy/x"\n}\n',
            "['permissions_boundary'] not modeled",
        ),
        (
            'resource "aws_iam_policy" "p" {\n  policy = "{}"\n}\n',
            "IAM resource types that are not modeled: ['aws_iam_policy']",
        ),
        ('module "m" {\n  source = "./m"\n}\n', "module blocks are not evaluated"),
    ],
)
def test_a_block_outside_the_subset_is_refused(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(UnsupportedTerraform) as raised:
        render_tf(tmp_path, text)
    assert named in str(raised.value)
    assert "main.tf" in str(raised.value) or "aws_iam_policy" in named
