"""Deploy a release to a SageMaker endpoint so that the endpoint is never left broken.

The order: refuse what cannot work before changing anything (image by digest, model artifact
readable, endpoint not busy or broken); record what serves now; create model and endpoint config;
create or update the endpoint (blue/green); wait with progress; verify the endpoint serves the NEW
config (a failed update silently returns to InService on the old one); smoke test; on failure roll
back to the recorded config and verify that too. Every exit says what is serving.
"""

from __future__ import annotations

import difflib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from bikeshare.deploy import scaling
from bikeshare.deploy.artifacts import read_verified_archive
from bikeshare.deploy.aws import (
    AwsTarget,
    error_code,
    error_message,
    is_not_found,
    rejected_credentials,
)
from bikeshare.deploy.compatibility import check_compatible, image_runtime
from bikeshare.deploy.ecr import registry_login
from bikeshare.deploy.endpoint import (
    ACCESS_DENIED,
    BROKEN,
    DEFAULT_VARIANT,
    IN_PROGRESS,
    SMOKE_FAILED,
    SMOKE_PASSED,
    SMOKE_SKIPPED,
    TAG_DEPLOYED_AT,
    TAG_ENDPOINT,
    TAG_GIT_SHA,
    TAG_PREVIOUS_CONFIG,
    TAG_SMOKE,
    TAG_UNVERIFIED_CONFIG,
    TAG_UNVERIFIED_REASON,
    TAG_VERIFIED_CONFIG,
    WHY_NO_RECORD,
    WHY_NO_SMOKE,
    WHY_SMOKE_FAILED,
    EndpointSnapshot,
    describe_endpoint,
    is_release_name,
    release_name,
    release_prefix,
    resource_tags,
)
from bikeshare.deploy.images import require_digest
from bikeshare.deploy.registry import inspect_image, require_docker_media_type
from bikeshare.deploy.scaling import ScalingPolicy
from bikeshare.deploy.smoke import SmokeFailed, SmokeResult, smoke_test
from bikeshare.errors import BikeshareError

Strategy = Literal["all-at-once", "canary", "linear"]
Say = Callable[[str], None]


def say_on_stderr(message: str) -> None:
    """Progress goes to stderr so stdout stays parseable (`status --json`, URIs)."""
    print(message, file=sys.stderr, flush=True)


class DeployFailed(BikeshareError):
    """A deploy that did not complete; the message always says what is serving now."""


@dataclass(frozen=True)
class Clients:
    """The AWS clients a release needs."""

    sagemaker: Any
    runtime: Any
    s3: Any
    autoscaling: Any = None
    sts: Any = None
    ecr: Any = None  # when given, the image is checked in its registry before any change

    @classmethod
    def of(cls, target: AwsTarget) -> Clients:
        """Every client a release uses, made by one target (one region, endpoint, login)."""
        return cls(
            sagemaker=target.client("sagemaker"),
            runtime=target.client("sagemaker-runtime"),
            s3=target.client("s3"),
            autoscaling=target.client("application-autoscaling"),
            sts=target.client("sts"),
            ecr=target.client("ecr"),
        )


@dataclass(frozen=True)
class Polling:
    """How often to look at an endpoint while waiting for it, and for how long at most."""

    seconds: float = 15.0
    timeout: float = 3600.0


@dataclass(frozen=True)
class DeployRequest:
    """Everything `bikeshare deploy` was asked to do."""

    endpoint_name: str
    image_uri: str
    model_data: str
    instance_type: str
    execution_role_arn: str
    instance_count: int = 1
    strategy: Strategy = "all-at-once"
    canary_percent: int = 10
    bake_seconds: int = 300
    alarms: tuple[str, ...] = ()
    wait: bool = False
    smoke: bool = True
    dry_run: bool = False
    git_sha: str = "unknown"
    smoke_payload: dict[str, Any] | None = None
    keep_releases: int = 5
    poll_seconds: float = 15.0
    timeout_seconds: float = 3600.0
    scaling: ScalingPolicy | None = None
    # Deploy an instance type the locked botocore does not list yet (a warning, not a refusal).
    allow_unlisted_instance_type: bool = False

    @property
    def polling(self) -> Polling:
        """The wait settings of this request."""
        return Polling(self.poll_seconds, self.timeout_seconds)


@dataclass
class Outcome:
    """What a deploy did; `serving` is the config verified to be serving at the end."""

    endpoint_name: str
    new_config: str
    previous_config: str | None
    serving: str | None
    smoke: SmokeResult | None = None
    plan: list[str] = field(default_factory=list)
    dry_run: bool = False


def check_request(request: DeployRequest) -> None:
    """Refuse impossible combinations before touching AWS."""
    require_digest(request.image_uri)
    if request.scaling is not None:
        request.scaling.check()
    if request.instance_count < 1:
        raise BikeshareError("--instance-count must be at least 1")
    if not 1 <= len(request.alarms) <= 10 and request.alarms:
        raise BikeshareError("SageMaker accepts 1 to 10 --alarm names for auto-rollback")
    if request.strategy != "all-at-once":
        if not 1 <= request.canary_percent <= 50:
            raise BikeshareError("--canary-percent must be between 1 and 50")
        step = math.ceil(request.instance_count * request.canary_percent / 100)
        if step * 2 > request.instance_count:
            raise BikeshareError(
                f"a {request.strategy} rollout of {request.canary_percent}% on "
                f"{request.instance_count} instance(s) shifts {step} instance(s), more than half; "
                "SageMaker requires the canary or step to be at most 50% of capacity: raise "
                "--instance-count or use --strategy all-at-once"
            )
        if not 0 <= request.bake_seconds <= 3600:
            raise BikeshareError("--bake-seconds must be between 0 and 3600")


def check_instance_type(
    sagemaker: Any, instance_type: str, allow_unlisted: bool = False
) -> str | None:
    """Refuse an instance type SageMaker's API does not list for an endpoint variant, before
    anything is created (it would otherwise be refused after CreateModel, a typo included).

    The list is the ProductionVariantInstanceType enum of the service model the client sends
    with: botocore's, so it is only as new as the botocore in uv.lock. A type AWS added after
    that release is missing from it; `allow_unlisted` (--allow-unlisted-instance-type) lets such
    a type through and returns the warning line to print instead of refusing. None when listed.
    """
    shape = sagemaker.meta.service_model.shape_for("ProductionVariantInstanceType")
    offered: list[str] = list(shape.enum)
    if instance_type in offered:
        return None
    if allow_unlisted:
        return (
            f"warning: --instance-type {instance_type} is not in botocore {_botocore_version()}'s "
            "list of SageMaker endpoint instance types; deploying it anyway "
            "(--allow-unlisted-instance-type): SageMaker itself accepts or refuses it"
        )
    close = difflib.get_close_matches(instance_type, offered, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise BikeshareError(
        f"--instance-type {instance_type} is not a SageMaker endpoint instance type in botocore "
        f"{_botocore_version()}'s service model ({len(offered)} listed, e.g. ml.m5.large); "
        f"{hint}nothing was changed (a type newer than this botocore: "
        "--allow-unlisted-instance-type)"
    )


def _botocore_version() -> str:
    import botocore

    return str(botocore.__version__)


def deployment_config(request: DeployRequest) -> dict[str, Any]:
    """SageMaker's blue/green DeploymentConfig for the requested strategy."""
    routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    size = {"Type": "CAPACITY_PERCENT", "Value": request.canary_percent}
    if request.strategy == "canary":
        routing = {
            "Type": "CANARY",
            "WaitIntervalInSeconds": request.bake_seconds,
            "CanarySize": size,
        }
    elif request.strategy == "linear":
        routing = {
            "Type": "LINEAR",
            "WaitIntervalInSeconds": request.bake_seconds,
            "LinearStepSize": size,
        }
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": max(600, min(28800, int(request.timeout_seconds))),
        }
    }
    if request.alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in request.alarms]
        }
    return config


def deploy(
    clients: Clients,
    request: DeployRequest,
    say: Say = say_on_stderr,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Run one release end to end; raise DeployFailed (saying what serves) when it fails."""
    check_request(request)
    unlisted = check_instance_type(
        clients.sagemaker, request.instance_type, request.allow_unlisted_instance_type
    )
    if unlisted is not None:
        say(unlisted)
    try:
        payload, current = _preflight(clients, request, say)
    except Exception as error:
        rejected = rejected_credentials(error)
        if rejected is not None:
            raise rejected from error
        raise
    name = _name_unlike_the_serving_release(request, current, now)
    outcome = Outcome(
        endpoint_name=request.endpoint_name,
        new_config=name,
        previous_config=current.config_name if current else None,
        serving=current.config_name if current else None,
        plan=_plan(request, current, name),
        dry_run=request.dry_run,
    )
    for line in outcome.plan:
        say(line)
    if request.dry_run:
        say("dry run: nothing was changed")
        return outcome
    _create_release(clients.sagemaker, request, current, name)
    if current is None:
        return _first_deploy(clients, request, outcome, payload, say)
    return _update(clients, request, current, outcome, payload, say)


def _preflight(
    clients: Clients, request: DeployRequest, say: Say
) -> tuple[dict[str, Any] | None, EndpointSnapshot | None]:
    """Read-only checks: who we are, the artifact, its smoke payload, the endpoint's state."""
    if clients.sts is not None:
        say(f"acting as {clients.sts.get_caller_identity()['Arn']}")
    _, archive = read_verified_archive(clients.s3, request.model_data)  # hashed against its key
    payload = request.smoke_payload or archive.serving_example
    if request.smoke and payload is None:
        raise BikeshareError(
            f"{request.model_data} has no serving_input_example.json to smoke-test with; "
            "pass --payload FILE or --no-smoke"
        )
    if clients.ecr is not None:
        say(_check_image(clients.ecr, request, archive.requirements))
    return payload, _deployable(clients.sagemaker, request, say)


def _check_image(ecr: Any, request: DeployRequest, model_requirements: dict[str, str]) -> str:
    """Docker v2 manifest, and a model runtime that can load this model; else refuse.

    The ECR login goes to the registry ECR names for this account and region, never to the one
    --image-uri names: any other registry is refused before it is contacted. The models bikeshare
    creates pull in SageMaker's Platform mode, which reads only from ECR."""
    image = require_digest(request.image_uri)
    login = registry_login(ecr)
    if image.registry != login.registry:
        raise BikeshareError(
            f"image {request.image_uri} is in registry {image.registry}, not this account's ECR "
            f"registry {login.registry}; bikeshare sends the ECR login only there and SageMaker "
            f"pulls this deploy's images only from ECR: push the image to {login.registry}; "
            "nothing was changed"
        )
    facts = inspect_image(image, login.username, login.password, login.scheme)
    require_docker_media_type(facts, request.image_uri)
    runtime = image_runtime(facts.labels, request.image_uri)
    check_compatible(model_requirements, runtime, request.model_data, request.image_uri)
    shown = ", ".join(f"{k}=={v}" for k, v in sorted(runtime.items()) if k in model_requirements)
    return f"image checked: Docker v2 manifest; its model runtime matches the model ({shown})"


def _deployable(sagemaker: Any, request: DeployRequest, say: Say) -> EndpointSnapshot | None:
    """The endpoint as it is now, once it is in a state a deploy may start from."""
    current = describe_endpoint(sagemaker, request.endpoint_name)
    if current is None or current.status == "InService":
        return current
    name = request.endpoint_name
    if current.status in IN_PROGRESS:
        if not request.wait:
            raise BikeshareError(
                f"endpoint {name} is {current.status} (since {current.last_modified}); another "
                "change is in progress. Re-run with --wait, or try later; nothing was changed"
            )
        say(f"{name} is {current.status}; waiting for it to settle (--wait)")
        current = wait_until_settled(sagemaker, name, request.polling, say)
        if current.status == "InService":
            return current
    if current.status == "Failed":
        raise BikeshareError(
            f"endpoint {name} is Failed ({current.failure_reason}); SageMaker only allows deleting "
            f"a Failed endpoint: `aws sagemaker delete-endpoint --endpoint-name {name}`, then "
            "deploy again to create it afresh"
        )
    if current.status in BROKEN:
        raise BikeshareError(
            f"endpoint {name} is {current.status} ({current.failure_reason}); roll it back to a "
            f"known config with `bikeshare rollback --endpoint-name {name} --to-config CONFIG`, "
            "or update it to one, before deploying"
        )
    raise BikeshareError(f"endpoint {name} is {current.status}; nothing was changed")


def _plan(request: DeployRequest, current: EndpointSnapshot | None, name: str) -> list[str]:
    action = "create endpoint" if current is None else f"update endpoint ({request.strategy})"
    lines = [
        f"plan for {request.endpoint_name}: {action}",
        f"  image:        {request.image_uri}",
        f"  model data:   {request.model_data}",
        f"  new config:   {name} ({request.instance_count} x {request.instance_type})",
        f"  now serving:  {current.config_name if current else 'nothing (new endpoint)'}",
    ]
    if request.alarms:
        lines.append(f"  auto-rollback alarms: {', '.join(request.alarms)}")
    lines.append(f"  smoke test:   {'yes' if request.smoke else 'skipped (--no-smoke)'}")
    return lines


#: How long a deploy waits for a release name unlike the serving release's (names have
#: one-second resolution), in pauses of NAME_PAUSE seconds.
NAME_PAUSES = 40
NAME_PAUSE = 0.05


def _name_unlike_the_serving_release(
    request: DeployRequest, current: EndpointSnapshot | None, now: Callable[[], datetime]
) -> str:
    """This release's name. A deploy of the serving release's commit within the second that
    release was named in waits for the next second: SageMaker refuses a model or config name
    twice (a deploy right after a deploy, as tests and scripted retries do)."""
    name = release_name(request.endpoint_name, request.git_sha, now())
    for _ in range(NAME_PAUSES):
        if current is None or name != current.config_name:
            return name
        time.sleep(NAME_PAUSE)
        name = release_name(request.endpoint_name, request.git_sha, now())
    waited = NAME_PAUSES * NAME_PAUSE
    raise DeployFailed(
        f"release name {name} is the one {request.endpoint_name} serves and the clock did not "
        f"advance in {waited:g} s; nothing was changed: {request.endpoint_name} still serves {name}"
    )


def _create_release(
    sagemaker: Any, request: DeployRequest, current: EndpointSnapshot | None, name: str
) -> None:
    variant = current.variants[0].name if current and current.variants else DEFAULT_VARIANT
    serves = f"still serves {current.config_name}" if current else "does not exist yet"
    try:
        sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=request.execution_role_arn,
            PrimaryContainer={"Image": request.image_uri, "ModelDataUrl": request.model_data},
            Tags=release_tags(request),
        )
    except Exception as error:
        # A refused name or container says nothing changed; a denied call stays as it is (its
        # AccessDenied names the missing permission).
        if error_code(error) != "ValidationException":
            raise
        raise DeployFailed(
            f"SageMaker refused the model of {name}: {_short(error_message(error)).rstrip('.')}."
            f" Nothing was changed: {request.endpoint_name} {serves}"
        ) from error
    try:
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": variant,
                    "ModelName": name,
                    "InstanceType": request.instance_type,
                    "InitialInstanceCount": request.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=release_tags(request),
        )
    except Exception as error:
        # Nothing uses the model yet: whatever went wrong, it must not be left behind.
        _delete_release(sagemaker, name)
        if not error_code(error):
            raise
        raise DeployFailed(
            f"SageMaker refused the endpoint config of {name}: "
            f"{_short(error_message(error)).rstrip('.')}. "
            f"Removed this release's model; nothing was changed: {request.endpoint_name} {serves}"
        ) from error


def release_tags(request: DeployRequest) -> list[dict[str, str]]:
    """The tags of a release's model and config: which endpoint it belongs to (what pruning and
    rollback trust, never the name), its commit, image and model data, and a skipped smoke test."""
    tags = {
        TAG_ENDPOINT: request.endpoint_name,
        TAG_GIT_SHA: request.git_sha,
        "bikeshare:image": request.image_uri[-256:],
        "bikeshare:model-data": request.model_data[-256:],
    }
    if not request.smoke:
        tags[TAG_SMOKE] = SMOKE_SKIPPED
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _short(message: str, limit: int = 300) -> str:
    """An AWS message cut to one readable line (moto's enum refusals list every value)."""
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def wait_until_settled(sagemaker: Any, name: str, polling: Polling, say: Say) -> EndpointSnapshot:
    """Poll until the endpoint leaves the in-progress states, printing each transition."""
    started = time.monotonic()
    last = ""
    while True:
        snapshot = describe_endpoint(sagemaker, name)
        if snapshot is None:
            raise DeployFailed(f"endpoint {name} disappeared while waiting for it")
        elapsed = time.monotonic() - started
        if snapshot.status != last:
            say(f"{name}: {snapshot.status} ({_clock(elapsed)})")
            last = snapshot.status
        if snapshot.status not in IN_PROGRESS:
            return snapshot
        if elapsed > polling.timeout:
            raise DeployFailed(
                f"{name} is still {snapshot.status} after {_clock(elapsed)}; SageMaker carries on "
                f"without us. Check it with `bikeshare status --endpoint-name {name}`"
            )
        time.sleep(polling.seconds)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _first_deploy(
    clients: Clients, request: DeployRequest, outcome: Outcome, payload: Any, say: Say
) -> Outcome:
    sagemaker, name = clients.sagemaker, request.endpoint_name
    try:
        _create_endpoint(sagemaker, name, outcome.new_config, request.polling)
    except Exception as error:
        if not _refused(error):
            raise
        _delete_release(sagemaker, outcome.new_config)
        try:
            raced = describe_endpoint(sagemaker, name) is not None
        except Exception:  # the refusal is what the user must see, not a second error
            raced = False
        raise DeployFailed(
            f"SageMaker refused to create {name}: {error_message(error)}. "
            + ("Another deploy created it first; " if raced else "Nothing is serving; ")
            + "removed this release's config and model"
        ) from error
    final = wait_until_settled(sagemaker, name, request.polling, say)
    if final.status != "InService":
        _remove_first_deploy(sagemaker, name, outcome.new_config)
        reason = (final.failure_reason or "no reason given").rstrip(".")
        raise DeployFailed(
            f"first deploy of {name} failed: {final.status}: {reason}. Removed the endpoint, its "
            "config and model: nothing is left behind, nothing is serving"
        )
    try:
        outcome.smoke = _smoke(clients, request, payload, say, outcome.new_config)
    except SmokeFailed as error:
        _remove_first_deploy(sagemaker, name, outcome.new_config)
        raise DeployFailed(
            f"first deploy of {name}: smoke test failed: {str(error).rstrip('.')}. Removed the "
            "endpoint, its config and model: nothing is left behind, nothing is serving"
        ) from error
    outcome.serving = outcome.new_config
    _record(
        sagemaker,
        final,
        outcome.new_config,
        previous=None,
        git_sha=request.git_sha,
        unverified=None if request.smoke else WHY_NO_SMOKE,
    )
    scaling_failed = _scaling_after_release(
        clients, request, final, request.scaling, outcome.new_config, say
    )
    if scaling_failed is not None:
        raise scaling_failed
    say(f"{name} is serving {outcome.new_config} ({_verified_word(request)})")
    return outcome


# What SageMaker answers when it did not accept a CreateEndpoint or UpdateEndpoint: the
# release's config and model are removed and the message says what serves.
REFUSED = frozenset({"ValidationException", "AccessDeniedException", "AccessDenied"})


def _refused(error: Exception) -> bool:
    """Whether SageMaker answered a call with an error (any code: REFUSED, a limit, throttling
    once the retries ran out), so the call changed nothing. A lost connection is not a refusal:
    the call may have been accepted, and its release may be in use."""
    return bool(error_code(error))


# SageMaker's CreateEndpoint reads the endpoint config with an eventually consistent read: right
# after CreateEndpointConfig it may answer "Could not find endpoint configuration". AWS's
# CreateEndpoint reference recommends DescribeEndpointConfig first, and retrying.
CONFIG_NOT_VISIBLE = "Could not find endpoint configuration"
CREATE_ATTEMPTS = 5


def _create_endpoint(sagemaker: Any, name: str, config: str, polling: Polling) -> None:
    """CreateEndpoint, retried while SageMaker does not see the new config yet."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            sagemaker.describe_endpoint_config(EndpointConfigName=config)
            sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
            return
        except Exception as error:
            not_visible = CONFIG_NOT_VISIBLE in error_message(error)
            if not not_visible or attempt == CREATE_ATTEMPTS:
                raise
            time.sleep(min(polling.seconds, 2.0) * attempt)


def _remove_first_deploy(sagemaker: Any, name: str, config: str) -> None:
    sagemaker.delete_endpoint(EndpointName=name)
    deadline = time.monotonic() + 300
    while describe_endpoint(sagemaker, name) is not None and time.monotonic() < deadline:
        time.sleep(1)
    _delete_release(sagemaker, config)


def _update(
    clients: Clients,
    request: DeployRequest,
    current: EndpointSnapshot,
    outcome: Outcome,
    payload: Any,
    say: Say,
) -> Outcome:
    sagemaker, name, new = clients.sagemaker, request.endpoint_name, outcome.new_config
    same_type = all(v.instance_type == request.instance_type for v in current.variants)
    kept_scaling = _release_scaling_for_type_change(clients, current, same_type, say)
    try:
        sagemaker.update_endpoint(
            EndpointName=name,
            EndpointConfigName=new,
            DeploymentConfig=deployment_config(request),
            # Keep the live instance count (auto scaling's doing) unless the type changes,
            # where the new config's count must apply.
            RetainAllVariantProperties=same_type,
        )
    except Exception as error:
        if not _refused(error):
            raise
        _delete_release(sagemaker, new)
        _apply_scaling(clients, request, current, kept_scaling, say)
        raise DeployFailed(
            f"SageMaker refused the update of {name}: {error_message(error)}. "
            + ("Another change started first; " if _raced(sagemaker, name, error) else "")
            + f"{name} still serves {current.config_name}, unchanged; removed this release's "
            "config and model"
        ) from error
    final = wait_until_settled(sagemaker, name, request.polling, say)
    if final.config_name != new or final.status != "InService":
        if final.config_name == current.config_name:
            _apply_scaling(clients, request, final, kept_scaling, say)
        raise DeployFailed(_not_serving_new(name, new, final))
    try:
        outcome.smoke = _smoke(clients, request, payload, say, new)
    except SmokeFailed as error:
        _tag_smoke(sagemaker, new, SMOKE_FAILED, say)
        serving = rollback_to(
            sagemaker, name, current.config_name, request.polling, say, current.verified
        )
        outcome.serving = serving.config_name
        _apply_scaling(clients, request, serving, kept_scaling, say)
        raise DeployFailed(
            f"smoke test of {new} failed: {str(error).rstrip('.')}. Rolled back: {name} is serving "
            f"{serving.config_name} again (verified {serving.status})"
        ) from error
    outcome.serving = new
    _record(
        sagemaker,
        final,
        new,
        previous=current.config_name,
        git_sha=request.git_sha,
        unverified=None if request.smoke else WHY_NO_SMOKE,
    )
    scaling_failed = _scaling_after_release(
        clients, request, final, request.scaling or kept_scaling, new, say
    )
    try:
        prune_releases(
            sagemaker, name, keep=request.keep_releases, protect={new, current.config_name}, say=say
        )
    except Exception as error:
        raise serving_but_failed(request, new, "pruning old releases", error) from error
    if scaling_failed is not None:
        raise scaling_failed
    say(f"{name} is serving {new} ({_verified_word(request)})")
    return outcome


def _verified_word(request: DeployRequest) -> str:
    """What the last line calls the release: verified only if its smoke test passed."""
    return "verified" if request.smoke else "InService, NOT verified: --no-smoke skipped the smoke"


def serving_but_failed(
    request: DeployRequest, new: str, step: str, error: Exception, then: str = ""
) -> DeployFailed:
    """The failure of a step after the release serves (pruning, auto scaling): it says the
    release serves, and whether it is verified, so nobody rolls back a good release over it;
    `then` says what to do about it."""
    failed = DeployFailed(
        f"{request.endpoint_name} is serving {new} ({_verified_word(request)}), but {step} "
        f"failed: {error_code(error) or type(error).__name__}: {error_message(error)}{then}"
    )
    failed.__cause__ = error
    return failed


def _scaling_after_release(
    clients: Clients,
    request: DeployRequest,
    final: EndpointSnapshot,
    policy: ScalingPolicy | None,
    new: str,
    say: Say,
) -> DeployFailed | None:
    """Auto scaling once the release is verified. A failure is returned, to fail the command
    after the rest of the release is done; it says the release serves, so nobody rolls back a
    good release over it, and how to register the scaling again."""
    try:
        _apply_scaling(clients, request, final, policy, say)
    except Exception as error:
        assert policy is not None  # noqa: S101  # nosec B101 - nothing to apply otherwise
        return serving_but_failed(
            request,
            new,
            "registering its auto scaling",
            error,
            then=". The release stays; fix the cause, then deploy again with --min-instances "
            f"{policy.min_capacity} --max-instances {policy.max_capacity} --target-invocations "
            f"{policy.target_invocations:g}",
        )
    return None


def _raced(sagemaker: Any, name: str, refusal: Exception) -> bool:
    """Whether SageMaker refused an update because another change got there first (and not,
    say, because a role lacks a permission SageMaker checks)."""
    if "in-progress" in error_message(refusal):
        return True
    try:
        now = describe_endpoint(sagemaker, name)
    except Exception:  # the refusal is what the user must see, not a second error
        return False
    return now is not None and now.status in IN_PROGRESS


def _release_scaling_for_type_change(
    clients: Clients, current: EndpointSnapshot, same_type: bool, say: Say
) -> ScalingPolicy | None:
    """Before an update that changes the instance type, deregister the variant's scalable
    target (AWS requires it) and return its policy so it can be put back afterwards."""
    if same_type or clients.autoscaling is None or not current.variants:
        return None
    variant = current.variants[0].name
    previous = scaling.describe(clients.autoscaling, current.name, variant)
    if previous is None:
        return None
    scaling.deregister(clients.autoscaling, current.name, variant)
    say(f"deregistered auto scaling of {current.name}/{variant} for the instance type change")
    return ScalingPolicy(
        min_capacity=previous["min"],
        max_capacity=previous["max"],
        target_invocations=previous["target_invocations_per_instance"] or 100.0,
    )


def _apply_scaling(
    clients: Clients,
    request: DeployRequest,
    snapshot: EndpointSnapshot,
    policy: ScalingPolicy | None,
    say: Say,
) -> None:
    if policy is None or clients.autoscaling is None or not snapshot.variants:
        return
    variant = snapshot.variants[0].name
    scaling.register(clients.autoscaling, request.endpoint_name, variant, policy)
    say(
        f"auto scaling registered for {request.endpoint_name}/{variant}: "
        f"{policy.min_capacity}-{policy.max_capacity} instances, target "
        f"{policy.target_invocations:g} invocations per instance per minute"
    )


def _not_serving_new(name: str, new: str, final: EndpointSnapshot) -> str:
    reason = final.failure_reason or "no reason given"
    if final.status == "InService":
        return (
            f"update of {name} to {new} did not take: SageMaker rolled it back ({reason}). "
            f"{name} is serving {final.config_name} (verified InService)"
        )
    return (
        f"update of {name} to {new} failed: endpoint is {final.status} ({reason}) on "
        f"{final.config_name}; act now: `bikeshare rollback --endpoint-name {name} "
        f"--to-config {final.config_name}` or check `bikeshare status`"
    )


def _smoke(
    clients: Clients, request: DeployRequest, payload: Any, say: Say, release: str
) -> SmokeResult | None:
    """Smoke-test the endpoint (now serving `release`); a pass is written on the release."""
    if not request.smoke:
        say("smoke test skipped (--no-smoke)")
        return None
    result = smoke_test(clients.runtime, request.endpoint_name, payload)
    say(f"smoke test passed: {result.summary()}")
    _tag_smoke(clients.sagemaker, release, SMOKE_PASSED, say)
    return result


def _tag_smoke(sagemaker: Any, release: str, result: str, say: Say) -> None:
    """Write a smoke test's result on the release's config and model (TAG_SMOKE): the evidence a
    later rollback to it needs to call it verified. Best effort: a release left untagged counts
    as unverified, the safe side, and the line says so."""
    try:
        arns = (
            sagemaker.describe_endpoint_config(EndpointConfigName=release)["EndpointConfigArn"],
            sagemaker.describe_model(ModelName=release)["ModelArn"],
        )
        for arn in arns:
            sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": TAG_SMOKE, "Value": result}])
    except Exception as error:
        say(
            f"warning: could not tag {release} {TAG_SMOKE}={result} "
            f"({error_code(error) or type(error).__name__}: {_short(error_message(error))}); "
            "a rollback to it will call it NOT verified"
        )


def rollback_to(
    sagemaker: Any, name: str, config: str, polling: Polling, say: Say, verified: bool
) -> EndpointSnapshot:
    """Point the endpoint back at a config, wait, and check it serves it; loud if not.

    `verified` is whether that config's smoke test passed: the last line calls it verified only
    then (being InService is not being verified)."""
    say(f"rolling {name} back to {config}")
    try:
        sagemaker.update_endpoint(
            EndpointName=name, EndpointConfigName=config, RetainAllVariantProperties=True
        )
        final = wait_until_settled(sagemaker, name, polling, say)
    except Exception as error:
        raise DeployFailed(
            f"ROLLBACK FAILED: could not point {name} back at {config}: {error}. The endpoint may "
            f"be serving a bad release; run `bikeshare status --endpoint-name {name}` and "
            f"`bikeshare rollback --endpoint-name {name} --to-config {config}` now"
        ) from error
    if final.config_name != config or final.status != "InService":
        raise DeployFailed(
            f"ROLLBACK FAILED: {name} is {final.status} on {final.config_name}, not on {config} "
            f"({final.failure_reason}). Run `bikeshare rollback --endpoint-name {name} "
            f"--to-config {config}` now"
        )
    called = "verified" if verified else "InService, NOT verified"
    say(f"{name} is serving {config} again ({called})")
    return final


def _record(
    sagemaker: Any,
    final: EndpointSnapshot,
    config: str,
    previous: str | None,
    git_sha: str,
    unverified: str | None = None,
) -> dict[str, str]:
    """Tag the endpoint with the deployment record: what serves, whether its smoke test passed
    (verified) or else why not (`unverified`), its commit, what came before. Returns the tags
    written.

    An unverified config is recorded under its own key, so the last verified config stays
    known; the roles may add tags but not remove them, so a stale unverified key is overwritten.
    """
    tags = {TAG_DEPLOYED_AT: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), TAG_GIT_SHA: git_sha}
    if unverified is None:
        tags[TAG_VERIFIED_CONFIG] = config
        if TAG_UNVERIFIED_CONFIG in final.tags:
            tags[TAG_UNVERIFIED_CONFIG] = "none"
    else:
        tags[TAG_UNVERIFIED_CONFIG] = config
        tags[TAG_UNVERIFIED_REASON] = unverified
    if previous:
        tags[TAG_PREVIOUS_CONFIG] = previous
    sagemaker.add_tags(
        ResourceArn=final.arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )
    return tags


def _delete_release(sagemaker: Any, name: str) -> None:
    """Delete one release's endpoint config and model (missing ones are fine)."""
    for call, key in (
        (sagemaker.delete_endpoint_config, "EndpointConfigName"),
        (sagemaker.delete_model, "ModelName"),
    ):
        try:
            call(**{key: name})
        except Exception as error:
            if error_code(error) != "ValidationException":
                raise


def prune_releases(sagemaker: Any, endpoint: str, keep: int, protect: set[str], say: Say) -> None:
    """Delete this endpoint's oldest releases beyond `keep`, never the protected ones.

    A release is this endpoint's when its config's TAG_ENDPOINT tag says so. The name prefix
    only narrows the listing: `X-eu`'s releases start with `X-` too. Releases without the tag
    (made by hand, or before bikeshare tagged them) are never pruned.
    """
    prefix = release_prefix(endpoint)
    configs = []
    for page in sagemaker.get_paginator("list_endpoint_configs").paginate(NameContains=prefix):
        configs += [
            c
            for c in page["EndpointConfigs"]
            if c["EndpointConfigName"].startswith(prefix) and _belongs(sagemaker, c, endpoint)
        ]
    configs.sort(key=lambda c: c["CreationTime"], reverse=True)
    for old in configs[keep:]:
        if old["EndpointConfigName"] not in protect:
            _delete_release(sagemaker, old["EndpointConfigName"])
            say(f"pruned old release {old['EndpointConfigName']}")


def _belongs(sagemaker: Any, config: dict[str, Any], endpoint: str) -> bool:
    """Whether a listed endpoint config is tagged as a release of `endpoint`. One this role may
    not read, or that is gone by now, is not one to delete."""
    try:
        tags = resource_tags(sagemaker, config["EndpointConfigArn"])
    except Exception as error:
        if error_code(error) in ACCESS_DENIED or is_not_found(error):
            return False
        raise
    return tags.get(TAG_ENDPOINT) == endpoint


def _rollback_target(sagemaker: Any, current: EndpointSnapshot, config: str) -> dict[str, str]:
    """The tags of the config a rollback goes to, once it is known to exist and not to be another
    endpoint's release; else refuse, before anything changes."""
    name = current.name
    unchanged = f"nothing was changed: {name} still serves {current.config_name}"
    try:
        arn = sagemaker.describe_endpoint_config(EndpointConfigName=config)["EndpointConfigArn"]
        tags = resource_tags(sagemaker, arn)
    except Exception as error:
        if is_not_found(error):
            raise BikeshareError(f"endpoint config {config} does not exist; {unchanged}") from error
        if error_code(error) in ACCESS_DENIED:
            raise BikeshareError(
                f"endpoint config {config} may not be read by this role ({error_message(error)}), "
                f"so it is not a release of {name}; {unchanged}"
            ) from error
        raise
    owner = tags.get(TAG_ENDPOINT)
    if owner is None and not _may_be_own(current, config):
        raise BikeshareError(
            f"endpoint config {config} carries no {TAG_ENDPOINT} tag and is not named like a "
            f"release of {name} ({release_prefix(name)}<commit>-<yyyymmddHHMMSS>), so it is not "
            f"known to be one; {unchanged}"
        )
    if owner is not None and owner != name:
        raise BikeshareError(
            f"endpoint config {config} is a release of {owner}, not of {name}; {unchanged}"
        )
    return tags


def _may_be_own(current: EndpointSnapshot, config: str) -> bool:
    """Whether an untagged config (made by hand, or before releases were tagged) is taken for
    this endpoint's: named exactly as bikeshare names this endpoint's releases, or the config
    this endpoint's own record says it served before (an adopted release of the seed's)."""
    return is_release_name(current.name, config) or (
        current.tags.get(TAG_PREVIOUS_CONFIG) == config
    )


def _unverified_reason(release: dict[str, str]) -> str | None:
    """Why a release a rollback returns to is not verified (None: its smoke test passed)."""
    smoke = release.get(TAG_SMOKE)
    if smoke == SMOKE_PASSED:
        return None
    if smoke == SMOKE_SKIPPED:
        return WHY_NO_SMOKE
    return WHY_SMOKE_FAILED if smoke == SMOKE_FAILED else WHY_NO_RECORD


def rollback(
    clients: Clients,
    name: str,
    to_config: str | None,
    polling: Polling = Polling(seconds=5.0),
    say: Say = say_on_stderr,
) -> EndpointSnapshot:
    """`bikeshare rollback`: back to --to-config, or to the previous verified release."""
    current = describe_endpoint(clients.sagemaker, name)
    if current is None:
        raise BikeshareError(f"endpoint {name} does not exist; nothing to roll back")
    target = to_config or current.tags.get(TAG_PREVIOUS_CONFIG)
    if not target:
        raise BikeshareError(
            f"{name} has no recorded previous release; pass --to-config CONFIG "
            "(`aws sagemaker list-endpoint-configs` lists them)"
        )
    if current.status in IN_PROGRESS:
        raise BikeshareError(f"endpoint {name} is {current.status}; wait for it, then roll back")
    release = _rollback_target(clients.sagemaker, current, target)
    unverified = _unverified_reason(release)
    final = rollback_to(clients.sagemaker, name, target, polling, say, unverified is None)
    # The record names the release now serving: its own commit (from its tags), whether its
    # smoke test passed (the release's tag says so, or it is unverified), the config left.
    written = _record(
        clients.sagemaker,
        final,
        target,
        previous=current.config_name,
        git_sha=release.get(TAG_GIT_SHA, "unknown"),
        unverified=unverified,
    )
    return replace(final, tags={**final.tags, **written})
