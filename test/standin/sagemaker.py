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
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ecr.responses import ECRResponse
from moto.s3.models import s3_backends
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

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


def _model_archive(backend: SageMakerModelBackend, model_name: str) -> tuple[bytes, str]:
    model = backend._models[model_name]
    container = model.primary_container or {}
    uri = container.get("ModelDataUrl", "")
    bucket, key = uri[5:].split("/", 1)
    s3 = s3_backends[backend.account_id]["aws"]
    try:
        return bytes(s3.get_object(bucket, key).value), container.get("Image", "")
    except Exception as error:  # moto raises its own MissingKey/MissingBucket
        raise VariantFailed(
            f"Failed to download model data from {uri}: {type(error).__name__}"
        ) from error


def _start_variants(
    backend: SageMakerModelBackend, config_name: str, endpoint_name: str
) -> list[Any]:
    config = backend.endpoint_configs[config_name]
    started: list[Any] = []
    try:
        for variant in config.production_variants:
            archive, image = _model_archive(backend, variant["ModelName"])
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
            message=f"Endpoint {name} of account {self.current_account} " "not found."
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


_original: dict[str, Callable[..., Any]] = {}


def install() -> None:
    """Patch moto's SageMaker classes in this process (idempotent)."""
    if _original:
        return
    for name in ("create_endpoint", "delete_endpoint", "create_model"):
        _original[name] = getattr(SageMakerModelBackend, name)
    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerModelBackend.update_endpoint = update_endpoint
    SageMakerModelBackend.delete_endpoint = delete_endpoint
    SageMakerModelBackend.create_model = create_model
    _original["get_authorization_token"] = ECRResponse.get_authorization_token
    ECRResponse.get_authorization_token = get_authorization_token_response
    SageMakerResponse.update_endpoint = update_endpoint_response
    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint_response
