"""IAM, enforced: each call made with a role's credentials is checked against its policies.

moto stores IAM roles and STS sessions but authorizes nothing. Here every request signed with
the credentials of an assumed role (an STS session, as the pipeline's OIDC login gets) is
checked the way AWS checks it: the IAM actions the API call needs, on the resource ARNs it
names, with the condition keys AWS sets, against the role's identity policies (explicit Deny
wins, then any Allow, else denied). Calls signed with other keys (the account's own "testing"
keys, which tests use to set the account up as Terraform would) are not checked.

S3 requests of a role session are also checked against the bucket's policy, as S3 does: an
explicit Deny there refuses the request whatever the role's policies say (so the model bucket's
write-once rule, `If-None-Match: *` required under the model prefix, binds every role). Only Deny
statements are evaluated; an Allow in a bucket policy that applies to a request is Unmodelled.

What AWS checks on the caller's behalf is checked too: Application Auto Scaling's calls into
SageMaker and CloudWatch (its user guide, "Permissions required for API actions on target
services and CloudWatch") and iam:PassRole on CreateModel. What SageMaker checks against the
execution role lives in `sagemaker.py`, through `role_allows`.

A call this module does not know how to authorize is refused, so a new API call in the release
engine fails here until someone writes down what it needs. Every allowed action is recorded,
so the permissions a role is granted and never used can be reported (`usage`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

PARTITION = "aws"


@dataclass(frozen=True)
class Check:
    """One IAM authorization AWS performs for a request: an action on a resource."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    """The principal of an assumed-role session."""

    account: str
    role_name: str
    arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION


class Unmodelled(Exception):
    """The stand-in does not know which permissions this API call needs."""


@dataclass
class Usage:
    """What each role was allowed and refused, across the stand-in's life (reset clears it)."""

    allowed: dict[str, set[str]] = field(default_factory=dict)  # role -> actions
    denied: dict[str, list[str]] = field(default_factory=dict)  # role -> "action on resource"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, role: str, check: Check, allowed: bool) -> None:
        with self.lock:
            if allowed:
                self.allowed.setdefault(role, set()).add(check.action.lower())
            else:
                self.denied.setdefault(role, []).append(f"{check.action} on {check.resource}")

    def clear(self) -> None:
        with self.lock:
            self.allowed.clear()
            self.denied.clear()


USAGE = Usage()

# Bucket policies, kept here rather than in moto: moto evaluates a bucket's policy on object
# calls itself, ignoring conditions, so DenyInsecureTransport would refuse every request. The
# server answers Put/Get/DeleteBucketPolicy from this (reset clears it).
BUCKET_POLICIES: dict[str, dict[str, Any]] = {}


# ---------------------------------------------------------------------------------------------
# Policy evaluation


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcards: * any run of characters, ? one character; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _condition_holds(
    operator: str, key: str, wanted: list[str], context: Mapping[str, str]
) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base == "Null":  # "true": the key is absent from the request; "false": it is present
        return (key not in context) == (str(wanted[0]).lower() == "true")
    if key not in context:
        return if_exists or base.startswith(("StringNot", "ArnNot"))
    value = context[key]
    if base in ("StringEquals", "ArnEquals"):
        return value in wanted
    if base in ("StringLike", "ArnLike"):
        return any(_glob(w, value) for w in wanted)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return value not in wanted
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(_glob(w, value) for w in wanted)
    if base == "StringEqualsIgnoreCase":
        return value.lower() in {w.lower() for w in wanted}
    if base == "Bool":
        return value.lower() in {str(w).lower() for w in wanted}
    raise Unmodelled(f"the stand-in does not evaluate the IAM condition operator {operator}")


def _statement_applies(statement: Mapping[str, Any], check: Check) -> bool:
    if "Action" in statement:
        if not any(_glob(a, check.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, check.action, ignore_case=True) for a in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_glob(r, check.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(_glob(r, check.resource) for r in _as_list(statement["NotResource"])):
        return False
    return all(
        _condition_holds(operator, key, [str(v) for v in _as_list(values)], check.context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, values in keys.items()
    )


def decide(policies: Iterable[Mapping[str, Any]], check: Check) -> bool:
    """True when the identity policies allow the check (an explicit Deny always wins)."""
    allowed = False
    for policy in policies:
        for statement in _as_list(policy.get("Statement", [])):
            if not _statement_applies(statement, check):
                continue
            if statement.get("Effect", "Allow") == "Deny":
                return False
            allowed = True
    return allowed


def role_policies(account: str, role_name: str) -> list[dict[str, Any]]:
    """The identity policies of a role in the stand-in's IAM: inline and attached."""
    role = iam_backends[account][PARTITION].get_role(role_name)
    documents = [_document(text) for text in role.policies.values()]
    for managed in role.managed_policies.values():
        documents.append(_document(managed.default_version.document))
    return documents


def _document(text: str | Mapping[str, Any]) -> dict[str, Any]:
    return dict(text) if isinstance(text, Mapping) else json.loads(unquote(text))


def role_allows(account: str, role_arn: str, check: Check) -> bool:
    """Whether a role (for example an endpoint's execution role) may do what a check says."""
    name = role_arn.rpartition("/")[2]
    try:
        policies = role_policies(account, name)
    except Exception:  # moto raises its own NoSuchEntity for a missing role
        return False
    allowed = decide(policies, check)
    USAGE.record(name, check, allowed)
    return allowed


def trust_allows(
    account: str,
    role_name: str,
    action: str,
    principal: Mapping[str, str],
    context: Mapping[str, str],
) -> bool:
    """Whether a role's trust policy lets this principal assume it (Principal and Condition)."""
    role = iam_backends[account][PARTITION].get_role(role_name)
    trust = _document(role.assume_role_policy_document)
    for statement in _as_list(trust.get("Statement", [])):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        if not any(
            _glob(a, action, ignore_case=True) for a in _as_list(statement.get("Action", []))
        ):
            continue
        named = statement.get("Principal", {})
        if not any(principal.get(kind) in _as_list(values) for kind, values in dict(named).items()):
            continue
        if all(
            _condition_holds(operator, key, [str(v) for v in _as_list(values)], context)
            for operator, keys in statement.get("Condition", {}).items()
            for key, values in keys.items()
        ):
            return True
    return False


def refuse_web_identity(body: bytes) -> str | None:
    """Why STS refuses this AssumeRoleWithWebIdentity, or None when the role's trust allows it.

    The token's signature is not verified (the stand-in has no issuer keys); its issuer must be
    an OIDC provider of the account, its audience one of the provider's client ids, and the
    role's trust policy must allow the provider with the token's `sub` and `aud` claims.
    """
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    role_arn, token = form.get("RoleArn", ""), form.get("WebIdentityToken", "")
    claims = _jwt_claims(token)
    if claims is None:
        return "InvalidIdentityToken: the web identity token is not a JWT"
    account, role_name = role_arn.split(":")[4], role_arn.rpartition("/")[2]
    issuer = str(claims.get("iss", "")).removeprefix("https://")
    provider_arn = f"arn:{PARTITION}:iam::{account}:oidc-provider/{issuer}"
    iam = iam_backends[account][PARTITION]
    try:
        provider = iam.get_open_id_connect_provider(provider_arn)
        iam.get_role(role_name)
    except Exception:
        return (
            f"Not authorized to perform sts:AssumeRoleWithWebIdentity: no OIDC provider "
            f"{provider_arn} or no role {role_name} in account {account}"
        )
    audience = str(claims.get("aud", ""))
    if audience not in provider.client_id_list:
        return f"Incorrect token audience {audience!r} for {provider_arn}"
    context = {f"{issuer}:sub": str(claims.get("sub", "")), f"{issuer}:aud": audience}
    if trust_allows(
        account, role_name, "sts:AssumeRoleWithWebIdentity", {"Federated": provider_arn}, context
    ):
        return None
    return (
        f"Not authorized to perform sts:AssumeRoleWithWebIdentity: the trust policy of "
        f"{role_name} does not allow sub={context[f'{issuer}:sub']!r}"
    )


def _jwt_claims(token: str) -> dict[str, Any] | None:
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def report() -> dict[str, dict[str, list[str]]]:
    """Per role of the account(s): what was refused and what was granted but never used
    (registry-protocol actions apart: the stand-in's registry does not authorize them)."""
    granted = {}
    for by_partition in list(iam_backends.values()):
        backend = by_partition.get(PARTITION)
        for role in list(backend.roles.values()) if backend else []:
            if not role.path.startswith("/aws-service-role/"):
                granted[role.name] = role_policies(role.account_id, role.name)
    never_used = unused(granted)
    with USAGE.lock:
        return {
            role: {"denied": list(USAGE.denied.get(role, [])), "unused": never_used.get(role, [])}
            for role in sorted(set(granted) | set(USAGE.denied))
        }


# ---------------------------------------------------------------------------------------------
# Who is calling


@dataclass(frozen=True)
class Scope:
    """SigV4's credential scope of a request: who signed it, for which region and service
    (all empty when it is unsigned)."""

    access_key: str = ""
    region: str = ""
    service: str = ""


def credential_scope(environ: Mapping[str, Any]) -> Scope:
    """From the Authorization header, or a presigned URL's X-Amz-Credential."""
    header = re.search(r"Credential=([^,\s]+)", environ.get("HTTP_AUTHORIZATION", ""))
    credential = (
        header[1]
        if header
        else parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    )
    parts = credential.split("/")  # KEY/DATE/REGION/SERVICE/aws4_request
    return Scope(parts[0], parts[2], parts[3]) if len(parts) == 5 else Scope()


def caller(environ: Mapping[str, Any]) -> Caller | None:
    """The assumed-role session that signed this request, if any."""
    key = credential_scope(environ).access_key
    if not key:
        return None
    for by_partition in list(sts_backends.values()):
        backend = by_partition.get(PARTITION)
        session = backend.get_assumed_role_from_access_key(key) if backend else None
        if session is not None:
            role_name = session.role_arn.rpartition("/")[2]
            return Caller(session.account_id, role_name, session.arn)
    return None


def authorize(environ: dict[str, Any], body: bytes) -> tuple[Caller, Check, bool] | None:
    """The first check this request fails, with its caller and whether a resource policy
    denied it explicitly; None when it may go ahead."""
    who = caller(environ)
    if who is None:
        return None
    policies = role_policies(who.account, who.role_name)
    region = credential_scope(environ).region
    for check in required(environ, body, region, who.account):
        denied_by_bucket = bucket_policy_denies(who, check)
        allowed = not denied_by_bucket and decide(policies, check)
        USAGE.record(who.role_name, check, allowed)
        if not allowed:
            return who, check, denied_by_bucket
    return None


def denial_message(who: Caller, check: Check, explicit: bool = False) -> str:
    why = (
        "with an explicit deny in a resource-based policy"
        if explicit
        else f"because no identity-based policy allows the {check.action} action"
    )
    return (
        f"User: {who.arn} is not authorized to perform: {check.action} on resource: "
        f"{check.resource} {why}"
    )


def bucket_policy_denies(who: Caller, check: Check) -> bool:
    """Whether the policy of the bucket an S3 check names denies it to this caller."""
    if not check.action.startswith("s3:"):
        return False
    policy = BUCKET_POLICIES.get(
        check.resource.removeprefix(f"arn:{PARTITION}:s3:::").split("/")[0]
    )
    if not policy:
        return False
    principals = {"*", who.arn, f"arn:{PARTITION}:iam::{who.account}:root",
                  f"arn:{PARTITION}:iam::{who.account}:role/{who.role_name}"}  # fmt: skip
    for statement in _as_list(policy.get("Statement", [])):
        named = statement.get("Principal", {})
        wanted = _as_list(named) if isinstance(named, str) else _as_list(named.get("AWS", []))
        if not principals & set(wanted) or not _statement_applies(statement, check):
            continue
        if statement.get("Effect", "Allow") == "Deny":
            return True
        raise Unmodelled("the stand-in does not evaluate Allow statements of bucket policies")
    return False


# ---------------------------------------------------------------------------------------------
# What each API call needs


def required(environ: Mapping[str, Any], body: bytes, region: str, account: str) -> list[Check]:
    """The IAM checks AWS makes for this request (raises Unmodelled for unknown calls)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    arns = Arns(region, account)
    if target:
        prefix, _, operation = target.rpartition(".")
        params = json.loads(body or b"{}")
        service = JSON_SERVICES.get(prefix)
        if service is None:
            raise Unmodelled(f"the stand-in does not authorize {target}")
        return service(operation, params, arns)
    path = environ.get("PATH_INFO", "")
    service_name = credential_scope(environ).service
    if service_name == "sagemaker" and path.startswith("/endpoints/"):
        endpoint = unquote(path.split("/")[2])
        return [Check("sagemaker:InvokeEndpoint", arns.sagemaker("endpoint", endpoint))]
    if service_name == "sts":
        operation = parse_qs(body.decode()).get("Action", [""])[0]
        if operation == "GetCallerIdentity":  # AWS answers it for anyone
            return []
        raise Unmodelled(f"the stand-in does not authorize sts:{operation} for a role session")
    if service_name == "s3":
        return s3_checks(environ, arns)
    raise Unmodelled(
        f"the stand-in does not authorize {environ.get('REQUEST_METHOD')} {path} ({service_name})"
    )


@dataclass(frozen=True)
class Arns:
    region: str
    account: str

    def sagemaker(self, kind: str, name: str) -> str:
        return f"arn:{PARTITION}:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def ecr_repository(self, name: str, registry: str | None = None) -> str:
        return f"arn:{PARTITION}:ecr:{self.region}:{registry or self.account}:repository/{name}"

    def log_group(self, name: str) -> str:
        return f"arn:{PARTITION}:logs:{self.region}:{self.account}:log-group:{name}:*"

    def alarm(self, name: str) -> str:
        return f"arn:{PARTITION}:cloudwatch:{self.region}:{self.account}:alarm:{name}"


# SageMaker: the ARN each operation is authorized on, from the request field that names it.
SAGEMAKER_RESOURCES = {
    "CreateModel": ("model", "ModelName"),
    "DescribeModel": ("model", "ModelName"),
    "DeleteModel": ("model", "ModelName"),
    "CreateEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "DescribeEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "DeleteEndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "CreateEndpoint": ("endpoint", "EndpointName"),
    "UpdateEndpoint": ("endpoint", "EndpointName"),
    "DescribeEndpoint": ("endpoint", "EndpointName"),
    "DeleteEndpoint": ("endpoint", "EndpointName"),
}
SAGEMAKER_UNSCOPED = {"ListEndpointConfigs", "ListModels", "ListEndpoints"}


def sagemaker_checks(operation: str, params: Mapping[str, Any], arns: Arns) -> list[Check]:
    action = f"sagemaker:{operation}"
    if operation in SAGEMAKER_UNSCOPED:
        return [Check(action, "*")]
    if operation in ("AddTags", "ListTags"):
        return [Check(action, params["ResourceArn"])]
    if operation not in SAGEMAKER_RESOURCES:
        raise Unmodelled(f"the stand-in does not authorize sagemaker:{operation}")
    kind, field_name = SAGEMAKER_RESOURCES[operation]
    resource = arns.sagemaker(kind, params[field_name])
    checks = [Check(action, resource)]
    if operation in ("CreateEndpoint", "UpdateEndpoint"):  # the config it points the endpoint at
        checks.append(
            Check(action, arns.sagemaker("endpoint-config", params["EndpointConfigName"]))
        )
    if params.get("Tags"):  # creating with tags is tagging (sagemaker:AddTags on the resource)
        checks.append(Check("sagemaker:AddTags", resource))
    if operation == "CreateModel":
        checks.append(
            Check(
                "iam:PassRole",
                params["ExecutionRoleArn"],
                {"iam:PassedToService": "sagemaker.amazonaws.com"},
            )
        )
    return checks


ECR_REPOSITORY_SCOPED = {
    "DescribeImages",
    "BatchGetImage",
    "GetDownloadUrlForLayer",
    "BatchCheckLayerAvailability",
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
    "PutImage",
    "DescribeRepositories",
}


def ecr_checks(operation: str, params: Mapping[str, Any], arns: Arns) -> list[Check]:
    if operation == "GetAuthorizationToken":
        return [Check("ecr:GetAuthorizationToken", "*")]
    if operation in ECR_REPOSITORY_SCOPED and "repositoryName" in params:
        repository = arns.ecr_repository(params["repositoryName"], params.get("registryId"))
        return [Check(f"ecr:{operation}", repository)]
    raise Unmodelled(f"the stand-in does not authorize ecr:{operation}")


def logs_checks(operation: str, params: Mapping[str, Any], arns: Arns) -> list[Check]:
    if operation in ("FilterLogEvents", "DescribeLogStreams", "GetLogEvents"):
        return [Check(f"logs:{operation}", arns.log_group(params["logGroupName"]))]
    raise Unmodelled(f"the stand-in does not authorize logs:{operation}")


SCALING_SERVICE_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


def autoscaling_checks(operation: str, params: Mapping[str, Any], arns: Arns) -> list[Check]:
    """Application Auto Scaling's own action, then what it checks the caller for."""
    checks = [Check(f"application-autoscaling:{operation}", "*")]
    if operation in ("DescribeScalableTargets", "DescribeScalingPolicies"):
        return checks
    resource_id = params.get("ResourceId", "")
    match = re.fullmatch(r"endpoint/([^/]+)/variant/([^/]+)", resource_id)
    if params.get("ServiceNamespace") != "sagemaker" or match is None:
        raise Unmodelled(f"the stand-in does not authorize {operation} on {resource_id!r}")
    endpoint = arns.sagemaker("endpoint", match[1])
    # Its permission validation calls CloudWatch as the caller without naming an alarm
    # (DescribeAlarms with MaxRecords=1, PutMetricAlarm and DeleteAlarms without parameters:
    # the user guide's "Permissions validation for API calls on target resources").
    validation = [
        Check("cloudwatch:DescribeAlarms", "*"),
        Check("cloudwatch:PutMetricAlarm", "*"),
        Check("cloudwatch:DeleteAlarms", "*"),
    ]
    if operation == "RegisterScalableTarget":
        checks += [
            Check("sagemaker:DescribeEndpoint", endpoint),
            Check("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint),
            *validation,
        ]
        if not _scaling_role_exists(arns.account):
            checks.append(
                Check(
                    "iam:CreateServiceLinkedRole",
                    f"arn:{PARTITION}:iam::{arns.account}:role/aws-service-role/"
                    f"{SCALING_SERVICE}/{SCALING_SERVICE_ROLE}",
                    {"iam:AWSServiceName": SCALING_SERVICE},
                )
            )
        return checks
    if operation in ("PutScalingPolicy", "DeregisterScalableTarget", "DeleteScalingPolicy"):
        return [*checks, *validation]
    raise Unmodelled(f"the stand-in does not authorize application-autoscaling:{operation}")


def _scaling_role_exists(account: str) -> bool:
    try:
        iam_backends[account][PARTITION].get_role(SCALING_SERVICE_ROLE)
    except Exception:
        return False
    return True


def create_scaling_role(account: str) -> None:
    """Application Auto Scaling creates its service-linked role on the first registration."""
    if _scaling_role_exists(account):
        return
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": SCALING_SERVICE},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam_backends[account][PARTITION].create_role(
        role_name=SCALING_SERVICE_ROLE,
        assume_role_policy_document=json.dumps(trust),
        path=f"/aws-service-role/{SCALING_SERVICE}/",
        permissions_boundary=None,
        description="",
        tags=[],
        max_session_duration="3600",
        linked_service=None,
    )


def cloudwatch_checks(operation: str, params: Mapping[str, Any], arns: Arns) -> list[Check]:
    """CloudWatch alarms are authorized per alarm ARN."""
    names = params.get("AlarmNames") or ([params["AlarmName"]] if "AlarmName" in params else [])
    if operation in ("PutMetricAlarm", "DeleteAlarms", "SetAlarmState", "DescribeAlarms"):
        return [Check(f"cloudwatch:{operation}", arns.alarm(n)) for n in names] or [
            Check(f"cloudwatch:{operation}", arns.alarm("*"))
        ]
    raise Unmodelled(f"the stand-in does not authorize cloudwatch:{operation}")


def kms_direct_checks(operation: str, params: Mapping[str, Any], arns: Arns) -> list[Check]:
    """A caller's own call to KMS (not through S3: no kms:ViaService), on a key named by ARN
    or id; aliases and ciphertext-only Decrypt are not modelled."""
    key = str(params.get("KeyId", ""))
    if operation not in ("GenerateDataKey", "Encrypt", "Decrypt", "DescribeKey") or not key:
        raise Unmodelled(f"the stand-in does not authorize kms:{operation} ({key or 'no KeyId'})")
    if key.startswith("alias/") or ":alias/" in key:
        raise Unmodelled(f"the stand-in does not resolve KMS aliases ({key})")
    arn = (
        key
        if key.startswith("arn:")
        else f"arn:{PARTITION}:kms:{arns.region}:{arns.account}:key/{key}"
    )
    return [Check(f"kms:{operation}", arn)]


JSON_SERVICES = {
    "SageMaker": sagemaker_checks,
    "TrentService": kms_direct_checks,
    "AmazonEC2ContainerRegistry_V20150921": ecr_checks,
    "Logs_20140328": logs_checks,
    "AnyScaleFrontendService": autoscaling_checks,
    "GraniteServiceVersion20100801": cloudwatch_checks,
}


def s3_checks(environ: Mapping[str, Any], arns: Arns) -> list[Check]:
    """S3's REST calls, path-style (`/bucket/key`), as boto3 sends them to an address."""
    method = environ.get("REQUEST_METHOD", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
    bucket_arn = f"arn:{PARTITION}:s3:::{bucket}"
    if not bucket:
        raise Unmodelled("the stand-in does not authorize s3:ListAllMyBuckets for a role session")
    if not key:
        if method == "GET" and ("list-type" in query or not query):
            context = {"s3:prefix": query.get("prefix", [""])[0]}
            return [Check("s3:ListBucket", bucket_arn, context)]
        raise Unmodelled(f"the stand-in does not authorize {method} on bucket {bucket} ({query})")
    object_arn = f"{bucket_arn}/{key}"
    # Clients reach S3 over TLS; the stand-in's plain HTTP stands in for that endpoint, so the
    # bucket policy's DenyInsecureTransport sees what it would see from boto3 against AWS.
    transport = {"aws:SecureTransport": "true"}
    if "tagging" in query:
        action = {"PUT": "s3:PutObjectTagging", "GET": "s3:GetObjectTagging"}.get(method)
        if action is None:
            raise Unmodelled(f"the stand-in does not authorize {method} ?tagging")
        return [Check(action, object_arn)]
    if query and not set(query) <= {"versionId", "x-id"}:
        raise Unmodelled(f"the stand-in does not authorize {method} {object_arn} ({query})")
    if method in ("GET", "HEAD"):
        if not object_exists(bucket, key):
            # S3 says 404 only to a caller allowed s3:ListBucket (no s3:prefix in this context)
            return [Check("s3:GetObject", object_arn), Check("s3:ListBucket", bucket_arn)]
        if method == "HEAD":  # metadata only: S3 decrypts nothing, so KMS is not asked
            return [Check("s3:GetObject", object_arn)]
        return [Check("s3:GetObject", object_arn), *kms_checks(bucket, "kms:Decrypt", arns)]
    if method == "DELETE":
        action = "s3:DeleteObjectVersion" if "versionId" in query else "s3:DeleteObject"
        return [Check(action, object_arn, transport)]
    if method == "PUT":
        # s3:if-none-match is set only when the request carries the header (AWS: conditional
        # writes); bucket policies require it under the model prefix.
        written = dict(transport)
        if environ.get("HTTP_IF_NONE_MATCH") is not None:
            written["s3:if-none-match"] = environ["HTTP_IF_NONE_MATCH"]
        checks = [Check("s3:PutObject", object_arn, written)]
        if environ.get("HTTP_X_AMZ_TAGGING"):
            checks.append(Check("s3:PutObjectTagging", object_arn))
        return checks + kms_checks(bucket, "kms:GenerateDataKey", arns)
    raise Unmodelled(f"the stand-in does not authorize {method} {object_arn}")


def kms_checks(bucket: str, action: str, arns: Arns) -> list[Check]:
    """Objects in a bucket encrypted with a KMS key need the key too (SSE-KMS); S3 calls KMS on
    the caller's behalf, so the request carries kms:ViaService."""
    key = bucket_kms_key(bucket)
    via = {"kms:ViaService": f"s3.{arns.region}.amazonaws.com"}
    return [Check(action, key, via)] if key else []


def _bucket(name: str) -> Any:
    from moto.s3.models import s3_backends

    for by_partition in s3_backends.values():
        backend = by_partition.get(PARTITION)
        found = backend.buckets.get(name) if backend else None
        if found is not None:
            return found
    return None


def object_exists(bucket: str, key: str) -> bool:
    found = _bucket(bucket)
    return found is not None and key in found.keys


def bucket_kms_key(bucket: str) -> str | None:
    """The KMS key ARN a bucket encrypts new objects with by default, if any."""
    found = _bucket(bucket)
    rules = (found.encryption or {}).get("Rule", []) if found is not None else []
    for rule in rules if isinstance(rules, list) else [rules]:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") == "aws:kms":
            return default.get("KMSMasterKeyID")
    return None


# What a Docker client's pulls and pushes need. The stand-in's registry is docker-registry
# behind one password, so these are not authorized call by call; the report lists them apart.
REGISTRY_PROTOCOL = frozenset(
    action.lower()
    for action in (
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
    )
)


def unused(granted: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Per role, the actions its policies allow that no call needed since the last reset."""
    found: dict[str, list[str]] = {}
    with USAGE.lock:
        for role, policies in granted.items():
            used = USAGE.allowed.get(role, set())
            actions = {
                action
                for policy in policies
                for statement in _as_list(policy.get("Statement", []))
                if statement.get("Effect", "Allow") == "Allow"
                for action in _as_list(statement.get("Action", []))
            }
            missing = sorted(
                a
                for a in actions
                if a.lower() not in used and a.lower() not in REGISTRY_PROTOCOL and "*" not in a
            )
            if missing:
                found[role] = missing
    return found


__all__ = [
    "USAGE",
    "Caller",
    "Check",
    "Unmodelled",
    "authorize",
    "decide",
    "denial_message",
    "refuse_web_identity",
    "report",
    "role_allows",
    "trust_allows",
    "unused",
]
