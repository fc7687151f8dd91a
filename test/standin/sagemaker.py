"""SageMaker behaviour moto lacks: UpdateEndpoint, status transitions, real serving, faults.

Modelled on AWS's documented behaviour (and MLflow's own SageMaker test mock):
- CreateEndpoint: Creating, then InService once every variant answers /ping, or Failed with
  SageMaker's FailureReason.
- UpdateEndpoint: refused unless InService; Updating; on success the new config serves; on failure
  (container never healthy, injected fault, auto-rollback alarm in ALARM) the endpoint returns to
  InService on the OLD config with FailureReason set, the silent rollback AWS does.
- CreateModel: refuses images without a digest.
- InvokeEndpoint: forwarded to the variant's real model server; its 4xx/5xx become ModelError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from moto.applicationautoscaling.models import ApplicationAutoscalingBackend
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ecr.responses import ECRResponse
from moto.s3.models import s3_backends
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from standin import iam
from standin.cloudwatch import endpoint_sink
from standin.registry import PASSWORD as REGISTRY_PASSWORD
from standin.registry import USERNAME as REGISTRY_USER
from standin.runners import ProcessRunner, VariantFailed, remove_owned_containers


class ModelError(JsonRESTError):
    """What InvokeEndpoint raises when the container answers with an error (HTTP 424)."""

    code = 424

    def __init__(self, message: str) -> None:
        super().__init__("ModelError", message)


@dataclass
class Faults:
    """Injected faults, set through POST /_standin/faults."""

    fail_updates: list[str] = field(default_factory=list)  # FailureReasons, one per update
    transition_seconds: float = 0.0  # extra time spent Creating/Updating
    invoke_errors: dict[str, list[int]] = field(default_factory=dict)  # endpoint -> statuses
    throttle: dict[str, int] = field(default_factory=dict)  # action -> how many to throttle
    # CreateEndpoint calls that do not see a just-created config yet (eventual consistency)
    config_not_visible: int = 0

    def next_update_failure(self) -> str | None:
        return self.fail_updates.pop(0) if self.fail_updates else None


@dataclass
class StandInState:
    """Everything the extension keeps beside moto's own backends."""

    faults: Faults = field(default_factory=Faults)
    health_timeout: float = 60.0
    runner_factory: Callable[..., Any] = ProcessRunner
    runners: dict[str, list[Any]] = field(default_factory=dict)  # endpoint -> running variants
    registry: str | None = None  # host:port of the local registry standing in for ECR
    lock: threading.RLock = field(default_factory=threading.RLock)
    threads: list[threading.Thread] = field(default_factory=list)

    def stop_all(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)
        with self.lock:
            for runners in self.runners.values():
                for runner in runners:
                    runner.stop()
            self.runners.clear()
            remove_owned_containers()
            self.faults = Faults()
            self.health_timeout = 60.0


STATE = StandInState()


def _in_background(work: Callable[[], None]) -> None:
    thread = threading.Thread(target=work, daemon=True)
    STATE.threads.append(thread)
    thread.start()


def _model_archive(
    backend: SageMakerModelBackend, model_name: str, endpoint_name: str
) -> tuple[bytes, str]:
    model = backend._models[model_name]
    container = model.primary_container or {}
    uri = container.get("ModelDataUrl", "")
    _execution_role_can_run(
        backend, model.execution_role_arn, uri, container.get("Image", ""), endpoint_name
    )
    bucket, key = uri[5:].split("/", 1)
    s3 = s3_backends[backend.account_id]["aws"]
    try:
        return bytes(s3.get_object(bucket, key).value), container.get("Image", "")
    except Exception as error:  # moto raises its own MissingKey/MissingBucket
        raise VariantFailed(
            f"Failed to download model data from {uri}: {type(error).__name__}"
        ) from error


def _execution_role_can_run(
    backend: SageMakerModelBackend, role_arn: str, model_data: str, image: str, endpoint: str
) -> None:
    """What SageMaker does as the execution role before a container starts: read the model
    archive (and its KMS key), pull the image from ECR, and open the endpoint's log stream."""
    account, region = backend.account_id, backend.region_name
    bucket, key = model_data[5:].split("/", 1)
    needs = [iam.Check("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")]
    kms_key = iam.bucket_kms_key(bucket)
    if kms_key:
        needs.append(iam.Check("kms:Decrypt", kms_key))
    for check in needs:
        if not iam.role_allows(account, role_arn, check):
            raise VariantFailed(
                f"Could not access model data at {model_data}. Please ensure that the role "
                f'"{role_arn}" exists and that its trust relationship policy allows the action '
                '"sts:AssumeRole" for the service principal "sagemaker.amazonaws.com". Also '
                f'ensure that the role has "{check.action}" permissions on {check.resource}.'
            )
    registry, _, rest = image.partition("/")
    if STATE.registry and registry == STATE.registry:
        repository = rest.partition("@")[0].partition(":")[0]
        arn = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
        for check in (
            iam.Check("ecr:GetAuthorizationToken", "*"),
            iam.Check("ecr:BatchGetImage", arn),
            iam.Check("ecr:GetDownloadUrlForLayer", arn),
        ):
            if not iam.role_allows(account, role_arn, check):
                raise VariantFailed(
                    f"The execution role {role_arn} is not authorized to perform {check.action} "
                    f"on {check.resource}: SageMaker could not pull the image {image}"
                )
    # Without these the endpoint still serves, but its container logs never reach CloudWatch;
    # a refusal is recorded and shows in the stand-in's authorization report.
    group = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}:*"
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        iam.role_allows(account, role_arn, iam.Check(action, group))


def _start_variants(
    backend: SageMakerModelBackend, config_name: str, endpoint_name: str
) -> list[Any]:
    config = backend.endpoint_configs[config_name]
    started: list[Any] = []
    try:
        for variant in config.production_variants:
            archive, image = _model_archive(backend, variant["ModelName"], endpoint_name)
            runner = STATE.runner_factory(
                variant=variant["VariantName"],
                model_archive=archive,
                image=image,
                health_timeout=STATE.health_timeout,
                log_sink=endpoint_sink(
                    backend.account_id, backend.region_name, endpoint_name, variant["VariantName"]
                ),
            )
            runner.start()
            started.append(runner)
    except Exception as error:
        for runner in started:
            runner.stop()
        if isinstance(error, VariantFailed):
            raise
        # A stand-in bug must fail the endpoint visibly, not leave it Creating forever.
        raise VariantFailed(f"the stand-in could not start a variant: {error!r}") from error
    return started


def _execution_roles_read_alarms(
    backend: SageMakerModelBackend, config_name: str, deployment_config: dict | None
) -> None:
    """Deployment guardrails: the execution role must be allowed cloudwatch:DescribeAlarms on
    every auto-rollback alarm (SageMaker's deployment-guardrails configuration guide)."""
    alarms = ((deployment_config or {}).get("AutoRollbackConfiguration") or {}).get("Alarms", [])
    account, region = backend.account_id, backend.region_name
    for variant in backend.endpoint_configs[config_name].production_variants:
        role = backend._models[variant["ModelName"]].execution_role_arn
        for alarm in alarms:
            arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm['AlarmName']}"
            if not iam.role_allows(account, role, iam.Check("cloudwatch:DescribeAlarms", arn)):
                raise ValidationError(
                    message=f"The execution role {role} is not authorized to perform "
                    f"cloudwatch:DescribeAlarms on the auto-rollback alarm {arn}."
                )


def _firing_alarm(backend: SageMakerModelBackend, deployment_config: dict | None) -> str | None:
    alarms = ((deployment_config or {}).get("AutoRollbackConfiguration") or {}).get("Alarms", [])
    cloudwatch = cloudwatch_backends[backend.account_id][backend.region_name]
    for alarm in alarms:
        found = cloudwatch.alarms.get(alarm["AlarmName"])
        if found is not None and found.state_value == "ALARM":
            return alarm["AlarmName"]
    return None


def create_endpoint(
    self: SageMakerModelBackend,
    endpoint_name: str,
    endpoint_config_name: str,
    tags: list[dict[str, str]],
) -> FakeEndpoint:
    with STATE.lock:
        if STATE.faults.config_not_visible > 0:
            STATE.faults.config_not_visible -= 1
            raise ValidationError(
                message=f'Could not find endpoint configuration "{endpoint_config_name}".'
            )
    endpoint = _original["create_endpoint"](self, endpoint_name, endpoint_config_name, tags)
    endpoint.endpoint_status = "Creating"

    def bring_up() -> None:
        time.sleep(STATE.faults.transition_seconds)
        try:
            runners = _start_variants(self, endpoint_config_name, endpoint_name)
        except VariantFailed as error:
            endpoint.endpoint_status, endpoint.failure_reason = "Failed", str(error)
            return
        with STATE.lock:
            STATE.runners[endpoint_name] = runners
        endpoint.endpoint_status = "InService"

    _in_background(bring_up)
    return endpoint


def update_endpoint(
    self: SageMakerModelBackend,
    endpoint_name: str,
    endpoint_config_name: str,
    retain_all: bool,
    deployment_config: dict | None,
) -> FakeEndpoint:
    endpoint = self.endpoints.get(endpoint_name)
    if endpoint is None:
        raise ValidationError(message=f'Could not find endpoint "{endpoint_name}".')
    if endpoint_config_name not in self.endpoint_configs:
        raise ValidationError(
            message=f'Could not find endpoint configuration "{endpoint_config_name}".'
        )
    _execution_roles_read_alarms(self, endpoint_config_name, deployment_config)
    with STATE.lock:
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        endpoint.endpoint_status, endpoint.failure_reason = "Updating", None

    def roll_out() -> None:
        time.sleep(STATE.faults.transition_seconds)
        reason = STATE.faults.next_update_failure()
        new_runners: list[Any] = []
        if reason is None:
            try:
                new_runners = _start_variants(self, endpoint_config_name, endpoint_name)
            except VariantFailed as error:
                reason = str(error)
        alarm = _firing_alarm(self, deployment_config) if reason is None else None
        if alarm:
            reason = (
                f"Deployment was rolled back because CloudWatch alarm {alarm} went into "
                "ALARM state during the traffic shift."
            )
        if reason is not None:
            for runner in new_runners:
                runner.stop()
            endpoint.failure_reason = reason
            endpoint.endpoint_status = "InService"  # still on the old config: a silent rollback
            return
        with STATE.lock:
            old = STATE.runners.get(endpoint_name, [])
            STATE.runners[endpoint_name] = new_runners
            previous_variants = endpoint.production_variants
            endpoint.endpoint_config_name = endpoint_config_name
            endpoint.production_variants = endpoint._process_production_variants(
                self.endpoint_configs[endpoint_config_name].production_variants
            )
            if retain_all:
                _retain_counts(endpoint.production_variants, previous_variants)
            endpoint.endpoint_status = "InService"
        for runner in old:
            runner.stop()

    _in_background(roll_out)
    return endpoint


def _retain_counts(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> None:
    by_name = {v["VariantName"]: v for v in old}
    for variant in new:
        kept = by_name.get(variant["VariantName"])
        if kept:
            for key in (
                "CurrentInstanceCount",
                "DesiredInstanceCount",
                "CurrentWeight",
                "DesiredWeight",
            ):
                if key in kept:
                    variant[key] = kept[key]


def delete_endpoint(self: SageMakerModelBackend, endpoint_name: str) -> None:
    _original["delete_endpoint"](self, endpoint_name)
    with STATE.lock:
        for runner in STATE.runners.pop(endpoint_name, []):
            runner.stop()


def create_model(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    name = kwargs.get("model_name", "")
    if name in self._models:  # moto would replace the model every config of that name serves
        raise ValidationError(
            message=f'Cannot create already existing model "{self._models[name].arn}".'
        )
    role = kwargs.get("execution_role_arn", "")
    if not _sagemaker_may_assume(self.account_id, role):
        raise ValidationError(
            message=f"Could not assume role {role}. Please ensure that the role exists and allows "
            "principal 'sagemaker.amazonaws.com' to assume the role."
        )
    containers = [kwargs.get("primary_container") or {}, *(kwargs.get("containers") or [])]
    for container in containers:
        image = container.get("Image", "")
        if image and "@sha256:" not in image:
            raise ValidationError(
                message=f"Image {image} must be referenced by digest (repository@sha256:...) "
                "in this account's stand-in, as the deploy tool requires."
            )
        if image and _manifest_type(image) in OCI_TYPES:
            raise ValidationError(
                message=f"Unsupported manifest media type for image {image}: SageMaker "
                "supports Docker image manifest V2, schema 2 only."
            )
    return _original["create_model"](self, **kwargs)


def create_endpoint_config(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    name = kwargs.get("endpoint_config_name", "")
    if name in self.endpoint_configs:  # moto would replace it under a serving endpoint
        raise ValidationError(
            message="Cannot create already existing endpoint configuration "
            f'"{self.endpoint_configs[name].endpoint_config_arn}".'
        )
    return _original["create_endpoint_config"](self, **kwargs)


def _sagemaker_may_assume(account: str, role_arn: str) -> bool:
    """SageMaker assumes the execution role as its service principal, from this account."""
    try:
        return iam.trust_allows(
            account,
            role_arn.rpartition("/")[2],
            "sts:AssumeRole",
            {"Service": "sagemaker.amazonaws.com"},
            {"aws:SourceAccount": account},
        )
    except Exception:  # moto's NoSuchEntity: the role does not exist
        return False


OCI_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


def _manifest_type(image: str) -> str | None:
    """The manifest media type of an image in the stand-in's registry (None elsewhere)."""
    registry, _, rest = image.partition("/")
    if not STATE.registry or registry != STATE.registry:
        return None
    repository, _, digest = rest.partition("@")
    answer = httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{digest}",
        auth=(REGISTRY_USER, REGISTRY_PASSWORD),
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            + ", ".join(OCI_TYPES)
        },
        timeout=10,
    )
    return answer.headers.get("content-type") if answer.status_code == 200 else None


def update_endpoint_response(self: SageMakerResponse) -> ActionResult:
    self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
        retain_all=bool(self._get_param("RetainAllVariantProperties")),
        deployment_config=self._get_param("DeploymentConfig"),
    )
    endpoint = self.sagemaker_backend.endpoints[self._get_param("EndpointName")]
    return ActionResult({"EndpointArn": endpoint.arn})


def invoke_endpoint_response(self: SageMakerRuntimeResponse) -> Any:
    name = self._get_params().get("EndpointName") or self.path.split("/")[2]
    errors = STATE.faults.invoke_errors.get(name)
    if errors:
        status = errors.pop(0)
        raise ModelError(
            f"Received server error ({status}) from primary with message "
            '"injected by the stand-in".'
        )
    with STATE.lock:
        runners = list(STATE.runners.get(name, []))
    if not runners:
        raise ValidationError(
            message=f"Endpoint {name} of account {self.current_account} not found."
        )
    answer = httpx.post(
        f"{runners[0].base_url}/invocations",
        content=self.body,
        headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
        timeout=60,
    )
    if answer.status_code >= 400:
        kind = "client" if answer.status_code < 500 else "server"
        raise ModelError(
            f"Received {kind} error ({answer.status_code}) from primary with "
            f'message "{answer.text}".'
        )
    headers = {
        "Content-Type": answer.headers.get("content-type", "application/json"),
        "x-Amzn-Invoked-Production-Variant": runners[0].variant,
    }
    return 200, headers, answer.content


def get_authorization_token_response(self: ECRResponse) -> ActionResult:
    """ECR's token, pointing at the local registry whose htpasswd matches it."""
    result = _original["get_authorization_token"](self)
    if STATE.registry:
        for data in result.result["authorizationData"]:
            data["proxyEndpoint"] = f"http://{STATE.registry}"
    return result


def add_tags(self: SageMakerModelBackend, arn: str, tags: list[dict[str, str]]) -> Any:
    """SageMaker's AddTags overwrites a key's value; moto appends a second tag with that key,
    which hides code that reads the first one (or a list cut at one page)."""
    resource = self._get_resource_from_arn(arn)
    new = {tag["Key"] for tag in tags}
    merged = [tag for tag in resource.tags if tag["Key"] not in new] + list(tags)
    if len(merged) > 50:  # refused whole: none of the call's tags is added
        raise ValidationError(message=f"{arn} would have more than 50 tags, SageMaker's limit.")
    resource.tags = merged
    return resource.tags


def register_scalable_target(self: ApplicationAutoscalingBackend, *args: Any, **kwargs: Any) -> Any:
    """The first registration creates Application Auto Scaling's service-linked role."""
    iam.create_scaling_role(self.account_id)
    return _original["register_scalable_target"](self, *args, **kwargs)


_original: dict[str, Callable[..., Any]] = {}


def install() -> None:
    """Patch moto's SageMaker classes in this process (idempotent)."""
    if _original:
        return
    for name in ("create_endpoint", "delete_endpoint", "create_model", "create_endpoint_config"):
        _original[name] = getattr(SageMakerModelBackend, name)
    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerModelBackend.update_endpoint = update_endpoint
    SageMakerModelBackend.delete_endpoint = delete_endpoint
    SageMakerModelBackend.create_model = create_model
    SageMakerModelBackend.create_endpoint_config = create_endpoint_config
    SageMakerModelBackend.add_tags = add_tags
    _original["register_scalable_target"] = ApplicationAutoscalingBackend.register_scalable_target
    ApplicationAutoscalingBackend.register_scalable_target = register_scalable_target
    _original["get_authorization_token"] = ECRResponse.get_authorization_token
    ECRResponse.get_authorization_token = get_authorization_token_response
    SageMakerResponse.update_endpoint = update_endpoint_response
    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint_response
