"""ECR: registry login without leaking the password, and digests of tags already pushed."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bikeshare.deploy.aws import error_code


@dataclass(frozen=True)
class RegistryLogin:
    """Where to push and with what; the password is never part of repr or logs."""

    registry: str
    username: str
    password: str = field(repr=False)
    scheme: str = "https"  # what ECR's proxyEndpoint says: https on AWS, http on LocalStack


def registry_login(ecr: Any) -> RegistryLogin:
    """Decode ECR's authorization token (`base64(user:password)`) for the account's registry."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    scheme, _, registry = data["proxyEndpoint"].rpartition("://")
    return RegistryLogin(
        registry=registry, username=username, password=password, scheme=scheme or "https"
    )


def write_secret(path: Path, secret: str) -> None:
    """Write a secret readable by its owner only, created that way (no window with wider mode)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret)
    path.chmod(0o600)


def existing_digest(ecr: Any, repository: str, tag: str) -> str | None:
    """The digest an (immutable) tag already points at, or None if it was never pushed."""
    try:
        details = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except Exception as error:
        if error_code(error) == "ImageNotFoundException":
            return None
        raise
    images = details.get("imageDetails", [])
    return images[0]["imageDigest"] if images else None
