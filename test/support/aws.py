"""Stand-in helpers for the release-engine tests: constants and the Aws handle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx

from bikeshare.deploy.aws import AwsTarget
from bikeshare.deploy.release import Clients, DeployRequest

REGION = "ca-central-1"
ROLE = "arn:aws:iam::123456789012:role/bikeshare-sagemaker-execution"
REPOSITORY = "bikeshare-serving"
BUCKET = "bikeshare-models"


def release_clients(session: Any, url: str) -> Clients:
    """Every client a release uses, from one logged-in boto3 session."""
    return Clients.of(AwsTarget(region=session.region_name, endpoint_url=url, session=session))


@dataclass
class Aws:
    """The stand-in's account as Terraform leaves it, its control API, and who acts in it.

    `clients` act as the staging deployer and `production` as the production deployer, logged
    in as their workflows are, so every call is authorized against the Terraform policies.
    `sagemaker` is the account administrator's: tests use it to look, and to do what only
    AWS itself or a person would (scale a variant, remove a tag).
    """

    url: str
    target: AwsTarget  # the administrator's: for what Terraform, AWS or a person would do
    clients: Clients
    admin_sagemaker: Any
    sessions: dict[str, Any]  # GitHub environment -> the boto3 session of its role
    image: str  # the serving image, pushed to the stand-in's registry, by digest
    registry: Any  # the stand-in's LocalRegistry, to push other images

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/_standin/faults", json=faults, timeout=10).raise_for_status()

    @property
    def sagemaker(self) -> Any:
        return self.admin_sagemaker

    @cached_property
    def production(self) -> Clients:
        """The production deployer's release clients (made when a test first asks for them)."""
        return self.clients_of("production")

    def client(self, environment: str, service: str) -> Any:
        """Any AWS client, logged in as the role of `environment` (the plan job's too)."""
        return self.sessions[environment].client(service, endpoint_url=self.url)

    def clients_of(self, environment: str) -> Clients:
        """A release's clients, logged in as the role of `environment`."""
        return release_clients(self.sessions[environment], self.url)

    def authorization(self) -> dict[str, dict[str, list[str]]]:
        """Per role: the calls the stand-in refused, and the permissions no call used."""
        answer = httpx.get(f"{self.url}/_standin/authorization", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def request(self, endpoint: str, model_data: str, **overrides: Any) -> DeployRequest:
        """A deploy request for the pushed image, with test-speed polling."""
        values: dict[str, Any] = {
            "endpoint_name": endpoint,
            "image_uri": self.image,
            "model_data": model_data,
            "instance_type": "ml.m5.large",
            "execution_role_arn": ROLE,
            "git_sha": "0123456789abcdef",
            "poll_seconds": 0.2,
            "timeout_seconds": 300,
        }
        values.update(overrides)
        return DeployRequest(**values)
