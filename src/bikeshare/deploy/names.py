"""Names the release commands accept before any AWS call: SageMaker's endpoint-name rule.

An endpoint name ends up in config names, tags, log group names and Markdown reports, so one
that SageMaker would refuse (or that carries Markdown or a newline) is refused at the CLI.
"""

from __future__ import annotations

import re

from bikeshare.errors import BikeshareError

# SageMaker's pattern for EndpointName (CreateEndpoint API reference): at most 63 characters.
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def check_endpoint_name(name: str) -> str:
    """The name itself, or a BikeshareError naming SageMaker's rule (the value shown quoted)."""
    if ENDPOINT_NAME.fullmatch(name):
        return name
    raise BikeshareError(
        f"{name!r} is not a SageMaker endpoint name: 1 to 63 letters, digits and hyphens, "
        "starting and ending with a letter or digit"
    )
