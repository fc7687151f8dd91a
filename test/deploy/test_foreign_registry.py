"""The ECR login goes to this account's ECR registry only (issue 20, item 4).

A second registry on this machine stands in for a foreign one (an attacker's, a typo's). It
speaks just enough of the Docker Registry HTTP API v2 for the image check to pass, so if the
deploy sent it the ECR login the deploy would go on; it records every request it receives.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bikeshare.deploy.registry import DOCKER_MANIFEST
from bikeshare.deploy.release import deploy
from bikeshare.errors import BikeshareError
from bikeshare.model.runtime import RUNTIME_LABEL, as_requirements, installed_versions
from support.aws import Aws

REPOSITORY = "bikeshare-serving"
CONFIG = json.dumps(
    {"config": {"Labels": {RUNTIME_LABEL: as_requirements(installed_versions())}}}
).encode()
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": CONFIG_DIGEST,
            "size": len(CONFIG),
        },
        "layers": [],
    }
).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class ForeignRegistry(BaseHTTPRequestHandler):
    """Answers only the manifest and config blob of one image; records what it was sent."""

    seen: ClassVar[list[tuple[str, str | None]]] = []  # (path, Authorization header)

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        answers = {
            f"/v2/{REPOSITORY}/manifests/{DIGEST}": (DOCKER_MANIFEST, MANIFEST),
            f"/v2/{REPOSITORY}/blobs/{CONFIG_DIGEST}": ("application/octet-stream", CONFIG),
        }
        if self.path not in answers:
            self.send_response(404)
            self.end_headers()
            return
        kind, body = answers[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def foreign_registry() -> Iterator[str]:
    """The foreign registry's address, host:port on this machine."""
    ForeignRegistry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ForeignRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_ecr_login_is_never_sent_to_another_registry(
    aws: Aws, model_uri: str, foreign_registry: str, dry_run: bool
) -> None:
    image = f"{foreign_registry}/{REPOSITORY}@{DIGEST}"
    request = aws.request("bikeshare-staging", model_uri, image_uri=image, dry_run=dry_run)

    with pytest.raises(BikeshareError) as refused:
        deploy(aws.clients, request, lambda _: None)

    assert ForeignRegistry.seen == [], "the foreign registry was asked (and sent the ECR login)"
    message = str(refused.value)
    assert f"is in registry {foreign_registry}, not this account's ECR registry" in message
    assert "nothing was changed" in message
    assert aws.sagemaker.list_models()["Models"] == []


def test_the_strict_foreign_registry_would_pass_the_image_check(foreign_registry: str) -> None:
    """The stand-in is a working registry: refusing is the deploy's doing, not its."""
    from bikeshare.deploy.images import parse_image
    from bikeshare.deploy.registry import inspect_image

    image = parse_image(f"{foreign_registry}/{REPOSITORY}@{DIGEST}")
    facts = inspect_image(image, "AWS", "not-a-password")
    assert facts.media_type == DOCKER_MANIFEST
    assert RUNTIME_LABEL in facts.labels
    assert [path for path, _ in ForeignRegistry.seen] == [
        f"/v2/{REPOSITORY}/manifests/{DIGEST}",
        f"/v2/{REPOSITORY}/blobs/{CONFIG_DIGEST}",
    ]
