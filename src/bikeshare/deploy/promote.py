"""Promote: deploy to production exactly what staging serves now, verified."""

from __future__ import annotations

from dataclasses import replace

from bikeshare.deploy.endpoint import describe_endpoint
from bikeshare.deploy.images import require_digest
from bikeshare.deploy.release import Clients, DeployRequest, Outcome, Say, deploy, say_on_stderr
from bikeshare.errors import BikeshareError


def promotion_request(
    clients: Clients, from_endpoint: str, request: DeployRequest, override_model_data: str | None
) -> DeployRequest:
    """The production request: staging's image by digest and its model data (or the override).

    Refuses unless staging is InService on a release this tool verified, so production only ever
    receives something that passed the whole staging deploy, smoke test included.
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
        raise BikeshareError(
            f"cannot promote: {from_endpoint} serves {staging.config_name}, which bikeshare did "
            "not verify (deployed by hand or by an older tool, or verification failed); deploy "
            "staging with `bikeshare deploy` first"
        )
    if len(staging.variants) != 1:
        raise BikeshareError(
            f"cannot promote: {from_endpoint} has {len(staging.variants)} variants; promotion "
            "copies exactly one"
        )
    variant = staging.variants[0]
    image = require_digest(variant.image).pinned
    return replace(
        request,
        image_uri=image,
        model_data=override_model_data or variant.model_data,
        git_sha=staging.tags.get("bikeshare:git-sha", request.git_sha),
    )


def promote(
    clients: Clients,
    from_endpoint: str,
    request: DeployRequest,
    override_model_data: str | None = None,
    say: Say = say_on_stderr,
) -> Outcome:
    """Resolve what staging serves and deploy it to the production endpoint."""
    resolved = promotion_request(clients, from_endpoint, request, override_model_data)
    source = "override" if override_model_data else f"staging ({from_endpoint})"
    say(
        f"promoting to {request.endpoint_name}: image {resolved.image_uri}, model data from "
        f"{source}: {resolved.model_data}"
    )
    return deploy(clients, resolved, say)
