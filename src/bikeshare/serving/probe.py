"""Probe a running serving container over HTTP, as SageMaker's health check and a first request do.

`bikeshare probe URL` runs against the image started the way SageMaker starts it (the Dagger
`image-test` check, the suite's Docker tests), so an image that cannot start, listens on the
wrong port, answers /ping too slowly or rejects its own model's example fails before any push.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bikeshare.errors import BikeshareError
from bikeshare.serving.answers import AnswerRejected, check_answer, expected_rows


class SmokeFailed(BikeshareError):
    """The container answered, but not with what a healthy release answers."""


#: SageMaker's limits for a container: /ping within 2 s, /invocations within 60 s.
PING_SECONDS = 2.0
INVOCATION_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeResult:
    """A container that became healthy and answered its model's example."""

    ready_after_seconds: float
    ping_ms: float
    predictions: list[float]

    def summary(self) -> str:
        """One line for logs and reports."""
        return (
            f"healthy after {self.ready_after_seconds:.1f} s, /ping in {self.ping_ms:.0f} ms, "
            f"{len(self.predictions)} prediction(s) {self.predictions[:5]}"
        )


def probe(base_url: str, payload: dict[str, Any], startup_seconds: float = 180.0) -> ProbeResult:
    """Wait for /ping, check it answers within SageMaker's 2 s, then score `payload`."""
    base = base_url.rstrip("/")
    started = time.monotonic()
    last_problem = _wait_until_healthy(base, started + startup_seconds)
    if last_problem:
        raise SmokeFailed(
            f"{base}/ping did not answer 200 within {startup_seconds:.0f} s ({last_problem}); "
            "SageMaker would report the container as failing its health check"
        )
    ready = time.monotonic() - started
    ping_started = time.monotonic()
    status, _ = _request(f"{base}/ping", None, PING_SECONDS)
    ping_ms = (time.monotonic() - ping_started) * 1000
    if status != 200:
        raise SmokeFailed(f"{base}/ping answered {status} after being healthy")
    body = json.dumps(payload).encode()
    status, text = _request(f"{base}/invocations", body, INVOCATION_SECONDS)
    if status != 200:
        raise SmokeFailed(f"{base}/invocations answered {status}: {text[:300]}")
    try:
        return ProbeResult(ready, ping_ms, check_answer(text, expected_rows(payload)))
    except AnswerRejected as error:
        raise SmokeFailed(str(error)) from None


def _wait_until_healthy(base: str, deadline: float) -> str:
    """'' once /ping answers 200 within the limit; otherwise the last problem seen."""
    problem = "no answer yet"
    while time.monotonic() < deadline:
        try:
            status, _ = _request(f"{base}/ping", None, PING_SECONDS)
        except urllib.error.URLError as error:  # refused, unresolvable: not listening (yet)
            problem = str(error.reason)
        except OSError as error:  # reset or timed out mid-request
            problem = f"{type(error).__name__}: {error}"
        else:
            if status == 200:
                return ""
            problem = f"HTTP {status}"
        time.sleep(0.5)
    return problem


def _request(url: str, body: bytes | None, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own container
        url,
        data=body,
        headers={"Content-Type": "application/json"} if body is not None else {},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # nosec B310  # noqa: S310
            return answer.status, answer.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")
