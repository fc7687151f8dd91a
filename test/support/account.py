"""The AWS account as `terraform apply` leaves it, made in the stand-in; and logins to its roles.

The roles get the policies rendered from `infra/terraform` (support.terraform_iam), so the
stand-in (standin.iam) enforces exactly what Terraform grants. The release engine then runs as
a deployer role, logged in the way the workflows log in: a GitHub OIDC token exchanged with
AssumeRoleWithWebIdentity. The account's own keys ("testing") are the administrator, used only
to build the account and to observe it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.loaders import Loader

from support.terraform_iam import Rendered, Setting, render

ADMIN_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_REPOSITORY = "octo-org/bikeshare"
STS_AUDIENCE = "sts.amazonaws.com"


@cache
def terraform() -> Rendered:
    """The policies of infra/terraform for the test account (rendered once per process)."""
    return render(Setting(variables={"github_repository": GITHUB_REPOSITORY}))


class _SearchPaths(list[str]):
    """boto3 adds its data directory to the loader of every Session it makes: once is enough."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@cache
def _models() -> Loader:
    """botocore's reader of service models, endpoint rules and the like, shared by the suite's
    sessions. What it reads is botocore's packaged JSON, the same for every session; a session of
    its own re-reads and re-parses it, some 0.2 s for each client it makes (SageMaker's model is
    megabytes), and a release test makes a dozen clients from several sessions."""
    return Loader(extra_search_paths=_SearchPaths())


def new_session(region: str, **credentials: str) -> boto3.Session:
    """A boto3 session like `boto3.Session(...)`, its own in everything (credentials, config,
    events) but the read-only service models."""
    core = botocore.session.Session()
    core.register_component("data_loader", _models())
    return boto3.Session(botocore_session=core, region_name=region, **credentials)


def admin_session(region: str) -> boto3.Session:
    """A session with the account's own keys: not subject to any role's policies."""
    return new_session(region, **ADMIN_KEYS)


def admin_client(service: str, url: str, region: str) -> Any:
    """A client with the account's own keys: not subject to any role's policies."""
    return admin_session(region).client(service, endpoint_url=url)


def role_session(url: str, region: str, role: str, policy: dict[str, Any]) -> boto3.Session:
    """A session of a new role `role` holding only `policy`, assumed with the account's own keys
    (as a data scientist's SSO session would be)."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole",
    }]}  # fmt: skip
    iam = admin_client("iam", url, region)
    created = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=json.dumps(policy))
    credentials = admin_client("sts", url, region).assume_role(
        RoleArn=created["Role"]["Arn"], RoleSessionName=role
    )["Credentials"]
    return new_session(
        region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def provision(url: str, region: str, rendered: Rendered | None = None) -> None:
    """Create what Terraform creates that a release touches: the GitHub OIDC provider, the
    roles with their rendered policies, the model bucket (encrypted with the project's KMS
    key), the ECR repository and the per-endpoint alarms."""
    rendered = rendered or terraform()
    admin = admin_session(region)
    iam = admin.client("iam", endpoint_url=url)
    iam.create_open_id_connect_provider(
        Url=GITHUB_ISSUER, ClientIDList=[STS_AUDIENCE], ThumbprintList=["f" * 40]
    )
    for role in rendered.roles.values():
        iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust))
        for name, document in role.policies.items():
            iam.put_role_policy(
                RoleName=role.name, PolicyName=name, PolicyDocument=json.dumps(document)
            )
    setting = rendered.setting
    s3 = admin.client("s3", endpoint_url=url)
    bucket = setting.variable("model_bucket_name")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": rendered.arn("aws_kms_key.bikeshare"),
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_policy(  # the stand-in enforces its Deny statements on role sessions
        Bucket=bucket, Policy=json.dumps(rendered.resource_policies["aws_s3_bucket_policy.models"])
    )
    admin.client("ecr", endpoint_url=url).create_repository(
        repositoryName=setting.variable("ecr_repository_name"),
        imageTagMutability=rendered.evaluate("aws_ecr_repository.serving.image_tag_mutability"),
    )
    cloudwatch = admin.client("cloudwatch", endpoint_url=url)
    for alarm in rendered.alarms:
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )


def github_token(
    environment: str,
    repository: str = GITHUB_REPOSITORY,
    ref: str = "refs/heads/main",
    subject_template: tuple[str, ...] = ("repo", "context", "ref"),
) -> str:
    """A GitHub Actions OIDC token of a job bound to `environment` on `ref` (unsigned: the
    stand-in reads its claims, as STS does after checking the signature).

    The subject follows the repository's OIDC subject template, as infra/terraform expects it;
    ("repo", "context") gives GitHub's default, "repo:R:environment:E".
    """
    parts = {"repo": f"repo:{repository}", "context": f"environment:{environment}"}
    parts["ref"] = f"ref:{ref}"

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {
        "iss": GITHUB_ISSUER,
        "aud": STS_AUDIENCE,
        "sub": ":".join(parts[key] for key in subject_template),
        "repository": repository,
        "environment": environment,
        "ref": ref,
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass(frozen=True)
class Login:
    """Temporary credentials of one role session."""

    access_key: str
    secret_key: str
    session_token: str

    def session(self, region: str) -> boto3.Session:
        return new_session(
            region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
        )

    def environment(self) -> dict[str, str]:
        """The variables a process logged in as this session has."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def login(url: str, region: str, role: str, environment: str) -> Login:
    """Log in as `role` the way a workflow job bound to `environment` does."""
    sts = admin_client("sts", url, region)
    account = terraform().setting.account_id
    answer = sts.assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{account}:role/{role}",
        RoleSessionName=f"github-{environment}",
        WebIdentityToken=github_token(environment),
    )["Credentials"]
    return Login(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
