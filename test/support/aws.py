"""Stand-in helpers for the release-engine tests: constants and the Aws handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from bikeshare.deploy.aws import AwsTarget
from bikeshare.deploy.release import Clients, DeployRequest

REGION = "ca-central-1"
ROLE = "arn:aws:iam::123456789012:role/bikeshare-sagemaker-execution"
REPOSITORY = "bikeshare-serving"
BUCKET = "bikeshare-models"


@dataclass
class Aws:
    """Clients on the stand-in plus its control API."""

    url: str
    target: AwsTarget
    clients: Clients
    image: str  # the serving image, pushed to the stand-in's registry, by digest
    registry: Any  # the stand-in's LocalRegistry, to push other images

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/_standin/faults", json=faults, timeout=10).raise_for_status()

    @property
    def sagemaker(self) -> Any:
        return self.clients.sagemaker

    def request(self, endpoint: str, model_data: str, **overrides: Any) -> DeployRequest:
        """A deploy request for the pushed image, with test-speed polling."""
        values: dict[str, Any] = {
            "endpoint_name": endpoint,
            "image_uri": self.image,
            "model_data": model_data,
            "instance_type": "ml.m5.large",
            "role_arn": ROLE,
            "git_sha": "0123456789abcdef",
            "poll_seconds": 0.2,
            "timeout_seconds": 300,
        }
        values.update(overrides)
        return DeployRequest(**values)
