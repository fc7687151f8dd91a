"""What an endpoint serves, read from SageMaker, and how release resources are named."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bikeshare.deploy.aws import error_code, error_message, is_not_found
from bikeshare.errors import BikeshareError

# SageMaker's endpoint statuses, grouped by what the deploy may do about them.
IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
BROKEN = frozenset({"Failed", "UpdateRollbackFailed"})

NAME_LIMIT = 63  # SageMaker's limit for model, endpoint config and endpoint names
DEFAULT_VARIANT = "AllTraffic"

# Tags on the endpoint: the deployment record that `status` shows and `promote` trusts.
TAG_VERIFIED_CONFIG = "bikeshare:verified-config"
TAG_PREVIOUS_CONFIG = "bikeshare:previous-config"
TAG_GIT_SHA = "bikeshare:git-sha"
TAG_DEPLOYED_AT = "bikeshare:deployed-at"
# Written instead of the verified config when the serving config was not smoke-tested (a
# `--no-smoke` deploy, or a rollback to a release whose smoke test did not pass): `status` and
# `promote` say so, with the reason recorded beside it.
TAG_UNVERIFIED_CONFIG = "bikeshare:unverified-config"
TAG_UNVERIFIED_REASON = "bikeshare:unverified-reason"

# Tags on each release (its model and endpoint config). The endpoint tag is what pruning and
# rollback trust to tell this endpoint's releases from another's: names only share a prefix.
TAG_ENDPOINT = "bikeshare:endpoint"
# A release's smoke test: "skipped" (--no-smoke, from creation), then "passed" or "failed" once it
# ran. Only "passed" makes a release verified when a rollback returns to it: positive evidence,
# so a release whose smoke failed, or whose update never took (an alarm), or one made by hand,
# is not.
TAG_SMOKE = "bikeshare:smoke"
SMOKE_SKIPPED = "skipped"
SMOKE_PASSED = "passed"
SMOKE_FAILED = "failed"
# Why a config is unverified: the TAG_UNVERIFIED_REASON value (a code, as SageMaker tag values
# allow no commas or parentheses) and what `status` and `promote` say for it.
WHY_NO_SMOKE, WHY_SMOKE_FAILED, WHY_NO_RECORD = "no-smoke", "smoke-failed", "no-record"
UNVERIFIED_BECAUSE = {
    WHY_NO_SMOKE: "it was deployed with --no-smoke, so its smoke test never ran",
    WHY_SMOKE_FAILED: "its smoke test failed",
    WHY_NO_RECORD: (
        "no record says its smoke test passed (made by hand, by an older bikeshare, or its "
        "update never took)"
    ),
}


@dataclass(frozen=True)
class Variant:
    """One production variant as configured."""

    name: str
    model_name: str
    instance_type: str
    instance_count: int
    image: str = ""
    model_data: str = ""
    current_count: int | None = None
    current_weight: float | None = None


@dataclass(frozen=True)
class EndpointSnapshot:
    """Everything `status` shows and a deploy needs to know before it changes anything."""

    name: str
    arn: str
    status: str
    config_name: str
    failure_reason: str | None
    variants: tuple[Variant, ...]
    tags: dict[str, str] = field(default_factory=dict)
    last_modified: str = ""

    @property
    def verified(self) -> bool:
        """Whether this tool verified the config that is serving now, smoke test included."""
        return (
            self.tags.get(TAG_VERIFIED_CONFIG) == self.config_name
            and self.tags.get(TAG_UNVERIFIED_CONFIG) != self.config_name
        )

    @property
    def unverified_reason(self) -> str | None:
        """Why the record calls the serving config unverified, when the record says why."""
        if self.tags.get(TAG_UNVERIFIED_CONFIG) == self.config_name:
            # Records from before the reason was written were only ever --no-smoke deploys.
            why = self.tags.get(TAG_UNVERIFIED_REASON, WHY_NO_SMOKE)
            return UNVERIFIED_BECAUSE.get(why, why)
        return None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for `status --json` and reports."""
        data = asdict(self)
        data["verified"] = self.verified
        data["previous_config"] = self.tags.get(TAG_PREVIOUS_CONFIG)
        data["unverified_reason"] = self.unverified_reason
        return data


def describe_endpoint(sagemaker: Any, name: str) -> EndpointSnapshot | None:
    """Read the endpoint, its config and models; None when the endpoint does not exist."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
    except Exception as error:  # botocore ClientError; anything else propagates below
        if is_not_found(error):
            return None
        raise
    config_name = endpoint["EndpointConfigName"]
    runtime = {v["VariantName"]: v for v in endpoint.get("ProductionVariants", [])}
    try:
        variants = tuple(
            _variant(sagemaker, spec, runtime.get(spec["VariantName"], {}))
            for spec in _config_variants(sagemaker, config_name)
        )
    except Exception as error:
        if error_code(error) in ACCESS_DENIED and not config_name.startswith(release_prefix(name)):
            raise _unreadable_release(name, config_name, error) from error
        raise
    tags = resource_tags(sagemaker, endpoint["EndpointArn"])
    return EndpointSnapshot(
        name=name,
        arn=endpoint["EndpointArn"],
        status=endpoint["EndpointStatus"],
        config_name=config_name,
        failure_reason=endpoint.get("FailureReason"),
        variants=variants,
        tags=tags,
        last_modified=str(endpoint.get("LastModifiedTime", "")),
    )


ACCESS_DENIED = ("AccessDenied", "AccessDeniedException")


def _unreadable_release(endpoint: str, config: str, error: Exception) -> BikeshareError:
    """A serving release the role may not read: one made before bikeshare named its releases."""
    return BikeshareError(
        f"{endpoint}'s endpoint config {config}: reading it or its model was refused "
        f"({error_message(error)}). The deploy and plan roles read only releases named "
        f"{release_prefix(endpoint)}*; one with another name was made before bikeshare (by the "
        "seed's workflows, for example). Add its config and model names to `adopted_releases` "
        'in infra/terraform for this environment and apply (docs/guide.md, "Migration from the '
        "seed's workflows\"); nothing was changed"
    )


def _config_variants(sagemaker: Any, config_name: str) -> list[dict[str, Any]]:
    try:
        return sagemaker.describe_endpoint_config(EndpointConfigName=config_name)[
            "ProductionVariants"
        ]
    except Exception as error:
        if is_not_found(error):
            return []  # someone deleted the serving config; the snapshot still reports status
        raise


def _variant(sagemaker: Any, spec: dict[str, Any], runtime: dict[str, Any]) -> Variant:
    image = model_data = ""
    try:
        container = sagemaker.describe_model(ModelName=spec["ModelName"]).get(
            "PrimaryContainer", {}
        )
        image, model_data = container.get("Image", ""), container.get("ModelDataUrl", "")
    except Exception as error:
        if not is_not_found(error):
            raise
    return Variant(
        name=spec["VariantName"],
        model_name=spec["ModelName"],
        instance_type=spec.get("InstanceType", ""),
        instance_count=int(spec.get("InitialInstanceCount", 1)),
        image=image,
        model_data=model_data,
        current_count=runtime.get("CurrentInstanceCount"),
        current_weight=runtime.get("CurrentWeight"),
    )


def describe_release(sagemaker: Any, endpoint: str, config: str | None) -> dict[str, str]:
    """The image and model data of what `endpoint` serves, or of its release `config`."""
    if config is None:
        snapshot = describe_endpoint(sagemaker, endpoint)
        if snapshot is None:
            raise BikeshareError(f"endpoint {endpoint} does not exist")
        config, variants = snapshot.config_name, list(snapshot.variants)
    else:
        try:
            variants = [
                _variant(sagemaker, spec, {}) for spec in _config_variants(sagemaker, config)
            ]
        except Exception as error:
            if error_code(error) in ACCESS_DENIED and not config.startswith(
                release_prefix(endpoint)
            ):
                raise _unreadable_release(endpoint, config, error) from error
            raise
    if not variants or not variants[0].image:
        raise BikeshareError(
            f"endpoint config {config} of {endpoint} no longer exists (or its model was "
            "deleted); replay from the failed run's report, which names the image and model data"
        )
    return {"config": config, "image_uri": variants[0].image, "model_data": variants[0].model_data}


def resource_tags(sagemaker: Any, arn: str) -> dict[str, str]:
    """Every tag of one resource (a release's config or model, an endpoint), every page."""
    return {
        tag["Key"]: tag["Value"]
        for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn)
        for tag in page.get("Tags", [])
    }


def release_name(endpoint_name: str, git_sha: str, now: datetime) -> str:
    """`<endpoint>-<sha7>-<yyyymmddHHMMSS>`, shortened at the front part to fit 63 characters.

    Model and endpoint config share the name: one release, one name to search for.
    """
    sha = re.sub(r"[^0-9a-zA-Z]", "", git_sha)[:7] or "nosha"
    suffix = f"-{sha}-{now:%Y%m%d%H%M%S}"
    prefix = endpoint_name[: NAME_LIMIT - len(suffix)].rstrip("-")
    return prefix + suffix


def is_release_name(endpoint_name: str, name: str) -> bool:
    """Whether `name` is one release_name() could give a release of this endpoint: its prefix for
    this endpoint, 1 to 7 letters or digits of commit, 14 digits of time, and nothing else.

    An `X-eu` endpoint's names do not match `X`'s (their prefix is `X-eu`). Endpoint names long
    enough to be cut to the same prefix cannot be told apart by name: the tag tells them apart.
    """
    found = _RELEASE_SUFFIX.fullmatch(name)
    if found is None:
        return False
    suffix = name[len(found["prefix"]) :]
    return found["prefix"] == endpoint_name[: NAME_LIMIT - len(suffix)].rstrip("-")


_RELEASE_SUFFIX = re.compile(r"(?P<prefix>.+)-[0-9A-Za-z]{1,7}-[0-9]{14}")


def release_prefix(endpoint_name: str) -> str:
    """What every release name of this endpoint starts with: what the roles may touch, and what
    narrows a listing. Another endpoint's releases may start with it too (`X-eu`'s start with
    `X-`): which endpoint a release belongs to is its TAG_ENDPOINT tag, never its name."""
    return endpoint_name[: NAME_LIMIT - len("-nosha00-yyyymmddHHMMSS")].rstrip("-") + "-"
