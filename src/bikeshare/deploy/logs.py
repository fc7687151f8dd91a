"""The runbook's `aws logs tail /aws/sagemaker/Endpoints/NAME --since 30m`, through boto3."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from bikeshare.deploy.aws import error_code
from bikeshare.errors import BikeshareError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def log_group(endpoint: str) -> str:
    """Where SageMaker writes an endpoint's container logs."""
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def parse_since(since: str) -> int:
    """`30m`, `2h`, `1d`, `45s` -> seconds."""
    match = re.fullmatch(r"(\d+)([smhdw])", since.strip())
    if not match:
        raise BikeshareError(f"--since must look like 30m, 2h or 1d, got {since!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def log_lines(logs: Any, endpoint: str, start_ms: int) -> Iterator[tuple[int, str]]:
    """(timestamp in ms, formatted line) for every event since start_ms, oldest first."""
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=log_group(endpoint), startTime=start_ms, interleaved=True
        )
        for page in pages:
            for event in page.get("events", []):
                moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
                yield event["timestamp"], (
                    f"{moment:%Y-%m-%dT%H:%M:%S.%f}"[:-3]
                    + f"Z {event['logStreamName']} {event['message'].rstrip()}"
                )
    except Exception as error:
        if error_code(error) == "ResourceNotFoundException":
            raise BikeshareError(
                f"no logs for endpoint {endpoint}: log group {log_group(endpoint)} does not exist "
                "(the endpoint never started a container, or the name is wrong)"
            ) from error
        raise


def tail(
    logs: Any,
    endpoint: str,
    since: str,
    follow: bool,
    emit: Callable[[str], None] = print,
    poll_seconds: float = 5.0,
) -> int:
    """Print the events since `since`; with follow, keep printing new ones until interrupted."""
    start_ms = int((time.time() - parse_since(since)) * 1000)
    printed = 0
    while True:
        for timestamp, line in log_lines(logs, endpoint, start_ms):
            emit(line)
            printed += 1
            start_ms = max(start_ms, timestamp + 1)
        if not follow:
            return printed
        time.sleep(poll_seconds)
