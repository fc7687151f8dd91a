"""Image references SageMaker will accept: pinned by digest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bikeshare.errors import BikeshareError

_REFERENCE = re.compile(
    r"^(?P<registry>[a-z0-9.-]+(?::\d+)?)/(?P<repository>[a-z0-9._/-]+)"
    r"(?::(?P<tag>[\w.-]{1,128}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class ImageReference:
    """`registry/repository[:tag]@sha256:...`, split into its parts."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> str:
        """The reference by digest only: what SageMaker stores and `promote` redeploys."""
        return f"{self.registry}/{self.repository}@{self.digest}"


def parse_image(uri: str) -> ImageReference:
    """Parse an image URI, naming what is wrong with it (whitespace included)."""
    if uri != uri.strip():
        raise BikeshareError(
            f"image URI {uri!r} has leading or trailing whitespace (a PowerShell line continuation "
            "with a trailing space does this); remove it"
        )
    match = _REFERENCE.match(uri)
    if not match:
        raise BikeshareError(
            f"{uri!r} is not an image reference like "
            "ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY@sha256:DIGEST"
        )
    return ImageReference(**match.groupdict())


def require_digest(uri: str) -> ImageReference:
    """Refuse tag-only references: a tag can move after the deploy and SageMaker would not know."""
    image = parse_image(uri)
    if image.digest is None:
        raise BikeshareError(
            f"image {uri} is referenced by tag only; deploy it by digest "
            f"({image.registry}/{image.repository}@sha256:...), as `dagger call publish` prints "
            "it, so the endpoint runs exactly the image that was tested"
        )
    return image
