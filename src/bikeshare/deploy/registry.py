"""Read an image's manifest and labels from its registry (Docker Registry HTTP API v2).

Works against ECR (basic auth with the ECR token) and any v2 registry. Used before a deploy to
refuse what SageMaker would refuse late (OCI manifests) and to read the model runtime the image
declares.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bikeshare.deploy.images import ImageReference
from bikeshare.errors import BikeshareError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))


@dataclass(frozen=True)
class ImageFacts:
    """What the registry says about an image: its manifest media type and its labels."""

    media_type: str
    labels: dict[str, str]


class _NoAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """ECR answers blob reads with a redirect to a presigned S3 URL, which refuses a second
    authorization; follow it without ours."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
        return new


def _base_url(registry: str) -> str:
    # Like Docker: plain HTTP only for registries on this machine.
    host = registry.split(":")[0]
    local = host in ("127.0.0.1", "localhost") or host.endswith(".localhost")
    return f"{'http' if local else 'https'}://{registry}"


def _get(url: str, username: str, password: str, accept: str) -> tuple[str, bytes]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 - http(s) built by _base_url
        url, headers={"Authorization": f"Basic {token}", "Accept": accept}
    )
    opener = urllib.request.build_opener(_NoAuthOnRedirect)
    try:
        with opener.open(request, timeout=30) as answer:
            kind = answer.headers.get("Content-Type", "").split(";")[0].strip()
            return kind, answer.read()
    except urllib.error.HTTPError as error:
        raise BikeshareError(f"registry refused {url} (HTTP {error.code})") from None
    except (urllib.error.URLError, TimeoutError) as error:
        raise BikeshareError(f"cannot reach the image registry at {url}: {error}") from None


def inspect_image(
    image: ImageReference, username: str, password: str, scheme: str | None = None
) -> ImageFacts:
    """The manifest media type of the pinned image and the labels of its (amd64) config.

    `scheme` is the one the registry's login named (ECR's proxyEndpoint); without it, plain
    HTTP only for registries on this machine, as Docker does."""
    root = f"{scheme}://{image.registry}" if scheme else _base_url(image.registry)
    base = f"{root}/v2/{image.repository}"
    kind, body = _get(f"{base}/manifests/{image.digest}", username, password, ACCEPT)
    manifest = json.loads(body)
    media_type = manifest.get("mediaType") or kind
    if media_type in (DOCKER_LIST, OCI_INDEX):
        digest = _amd64_manifest(manifest, image)
        _, body = _get(f"{base}/manifests/{digest}", username, password, ACCEPT)
        manifest = json.loads(body)
    config_digest = manifest.get("config", {}).get("digest")
    if not config_digest:
        raise BikeshareError(f"manifest of {image.pinned} has no config blob")
    _, config = _get(f"{base}/blobs/{config_digest}", username, password, "*/*")
    labels = (json.loads(config).get("config") or {}).get("Labels") or {}
    return ImageFacts(media_type=media_type, labels=labels)


def _amd64_manifest(index: dict[str, Any], image: ImageReference) -> str:
    for entry in index.get("manifests", []):
        platform = entry.get("platform", {})
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return entry["digest"]
    raise BikeshareError(
        f"{image.pinned} has no linux/amd64 image; SageMaker's ml.* instances need one"
    )


def require_docker_media_type(facts: ImageFacts, uri: str) -> None:
    """SageMaker refuses OCI manifests (at CreateModel or, worse, when the endpoint starts)."""
    if facts.media_type in (OCI_MANIFEST, OCI_INDEX):
        raise BikeshareError(
            f"image {uri} has an OCI manifest ({facts.media_type}); SageMaker accepts only Docker "
            "v2 manifests. Publish with Docker media types (Dagger: "
            "publish(..., media_types=ImageMediaTypes.DockerMediaTypes)); nothing was changed"
        )
