"""Auto scaling of an endpoint variant, owned by the deploy because the deploy owns the endpoint.

SageMaker resets nothing by itself, but an update that changes the instance type must not carry a
scalable target registered for the old variant, and a new config's InitialInstanceCount would
otherwise undo what auto scaling chose. So: deregister before a type change, keep live capacity
with RetainAllVariantProperties otherwise, and (re-)register after the deploy is verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bikeshare.errors import BikeshareError

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"


@dataclass(frozen=True)
class ScalingPolicy:
    """Target tracking on invocations per instance per minute, between min and max instances."""

    min_capacity: int
    max_capacity: int
    target_invocations: float = 100.0
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60

    def check(self) -> None:
        """Refuse bounds SageMaker would refuse, before anything changes."""
        if not 1 <= self.min_capacity <= self.max_capacity:
            raise BikeshareError(
                f"auto scaling needs 1 <= --min-instances ({self.min_capacity}) <= "
                f"--max-instances ({self.max_capacity})"
            )
        if self.target_invocations <= 0:
            raise BikeshareError("--target-invocations must be positive")


def resource_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's id for a SageMaker variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def policy_name(endpoint: str, variant: str) -> str:
    """One policy per variant, named after it."""
    return f"{endpoint}-{variant}-invocations"


def registered_target(autoscaling: Any, endpoint: str, variant: str) -> dict[str, Any] | None:
    """The variant's scalable target, or None."""
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE,
        ResourceIds=[resource_id(endpoint, variant)],
        ScalableDimension=DIMENSION,
    )["ScalableTargets"]
    return targets[0] if targets else None


def deregister(autoscaling: Any, endpoint: str, variant: str) -> bool:
    """Remove the variant's scalable target (and so its policies); False if there was none."""
    if registered_target(autoscaling, endpoint, variant) is None:
        return False
    autoscaling.deregister_scalable_target(
        ServiceNamespace=NAMESPACE,
        ResourceId=resource_id(endpoint, variant),
        ScalableDimension=DIMENSION,
    )
    return True


def register(autoscaling: Any, endpoint: str, variant: str, policy: ScalingPolicy) -> None:
    """Register the variant as a scalable target with a target-tracking policy."""
    policy.check()
    rid = resource_id(endpoint, variant)
    autoscaling.register_scalable_target(
        ServiceNamespace=NAMESPACE,
        ResourceId=rid,
        ScalableDimension=DIMENSION,
        MinCapacity=policy.min_capacity,
        MaxCapacity=policy.max_capacity,
    )
    autoscaling.put_scaling_policy(
        PolicyName=policy_name(endpoint, variant),
        ServiceNamespace=NAMESPACE,
        ResourceId=rid,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": policy.target_invocations,
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": policy.scale_in_cooldown,
            "ScaleOutCooldown": policy.scale_out_cooldown,
        },
    )


def describe(autoscaling: Any, endpoint: str, variant: str) -> dict[str, Any] | None:
    """What `status` shows: bounds and the target value, or None when not scaled."""
    target = registered_target(autoscaling, endpoint, variant)
    if target is None:
        return None
    policies = autoscaling.describe_scaling_policies(
        ServiceNamespace=NAMESPACE,
        ResourceId=resource_id(endpoint, variant),
        ScalableDimension=DIMENSION,
    )["ScalingPolicies"]
    tracking = policies[0].get("TargetTrackingScalingPolicyConfiguration", {}) if policies else {}
    return {
        "min": target["MinCapacity"],
        "max": target["MaxCapacity"],
        "target_invocations_per_instance": tracking.get("TargetValue"),
    }
