"""Promote: deploy to production exactly what staging serves now, verified.

With a pinned release (what the approved plan showed), exactly that or nothing: staging must
still serve the plan's config and image, and the model data to ship must be the plan's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bikeshare.deploy.endpoint import EndpointSnapshot, describe_endpoint
from bikeshare.deploy.images import require_digest
from bikeshare.deploy.release import Clients, DeployRequest, Outcome, Say, deploy, say_on_stderr
from bikeshare.errors import BikeshareError


@dataclass(frozen=True)
class PinnedRelease:
    """What a promotion plan showed, so the approved run ships that or refuses.

    `config` and `image_uri` are staging's (its endpoint config, its image by digest);
    `model_data` is what production gets: staging's, or the override the plan showed.
    """

    config: str
    image_uri: str
    model_data: str

    def flags(self) -> str:
        """The `bikeshare promote` options that pin this release, as a person types them."""
        return (
            f"--expect-config {self.config} --expect-image {self.image_uri} "
            f"--expect-model-data {self.model_data}"
        )


def promotion_request(
    clients: Clients,
    from_endpoint: str,
    request: DeployRequest,
    override_model_data: str | None,
    expected: PinnedRelease | None = None,
) -> tuple[DeployRequest, PinnedRelease]:
    """The production request (staging's image by digest, its model data or the override), and
    the release it ships, as a plan pins it.

    Refuses unless staging is InService on a release this tool verified, so production only ever
    receives something that passed the whole staging deploy, smoke test included; and, when the
    plan pinned a release, unless it is still exactly that one.
    """
    staging = describe_endpoint(clients.sagemaker, from_endpoint)
    if staging is None:
        raise BikeshareError(f"cannot promote: endpoint {from_endpoint} does not exist")
    if staging.status != "InService":
        raise BikeshareError(
            f"cannot promote: {from_endpoint} is {staging.status}, not InService "
            f"({staging.failure_reason or 'no failure reason'})"
        )
    if not staging.verified:
        why = staging.unverified_reason or (
            "deployed by hand or by an older tool, or verification failed"
        )
        raise BikeshareError(
            f"cannot promote: {from_endpoint} serves {staging.config_name}, which bikeshare did "
            f"not verify ({why}); deploy staging with `bikeshare deploy` (smoke test included) "
            "first"
        )
    if len(staging.variants) != 1:
        raise BikeshareError(
            f"cannot promote: {from_endpoint} has {len(staging.variants)} variants; promotion "
            "copies exactly one"
        )
    variant = staging.variants[0]
    resolved = replace(
        request,
        image_uri=require_digest(variant.image).pinned,
        model_data=override_model_data or variant.model_data,
        git_sha=staging.tags.get("bikeshare:git-sha", request.git_sha),
    )
    shipping = PinnedRelease(staging.config_name, resolved.image_uri, resolved.model_data)
    if expected is not None:
        check_pinned(staging, shipping, expected, override_model_data)
    return resolved, shipping


def check_pinned(
    staging: EndpointSnapshot,
    shipping: PinnedRelease,
    expected: PinnedRelease,
    override_model_data: str | None,
) -> None:
    """Refuse, changing nothing, unless what would ship is exactly what the plan showed.

    The image is compared by digest (a tag beside it changes nothing SageMaker runs); the config
    name too, so any staging deploy after the plan refuses, even one of the same pair.
    """
    planned_image = require_digest(expected.image_uri).pinned
    if shipping.config != expected.config or shipping.image_uri != planned_image:
        raise BikeshareError(
            f"cannot promote: {staging.name} changed since the plan: the plan showed "
            f"{expected.config} (image {planned_image}, model data {expected.model_data}), "
            f"{staging.name} now serves {shipping.config} (image {shipping.image_uri}, model "
            f"data {staging.variants[0].model_data}); nothing was changed: plan the promotion "
            "again and approve what it shows"
        )
    if shipping.model_data != expected.model_data:
        source = "--override-model-data" if override_model_data else f"{staging.name}'s"
        raise BikeshareError(
            f"cannot promote: the model data to ship, {shipping.model_data} ({source}), is not "
            f"the plan's {expected.model_data}; nothing was changed: promote with the override "
            "the plan showed, or plan again"
        )


def promote(
    clients: Clients,
    from_endpoint: str,
    request: DeployRequest,
    override_model_data: str | None = None,
    say: Say = say_on_stderr,
    expected: PinnedRelease | None = None,
) -> Outcome:
    """Resolve what staging serves and deploy it to the production endpoint.

    With `expected` (the approved plan's release), deploy exactly that or refuse before any
    change. A dry run says which options pin what it showed.
    """
    resolved, shipping = promotion_request(
        clients, from_endpoint, request, override_model_data, expected
    )
    source = "override" if override_model_data else f"staging ({from_endpoint})"
    say(
        f"promoting to {request.endpoint_name}: image {resolved.image_uri}, model data from "
        f"{source}: {resolved.model_data}"
    )
    if expected is not None:
        say(f"the plan's release, unchanged: {from_endpoint} still serves {expected.config}")
    outcome = deploy(clients, resolved, say)
    if request.dry_run:
        say(f"to promote exactly this plan: bikeshare promote ... {shipping.flags()}")
    return outcome
