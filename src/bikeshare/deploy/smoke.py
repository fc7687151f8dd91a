"""Smoke test: send the model's own serving example (or a --payload file) to the endpoint and
check the answer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bikeshare.deploy.aws import error_code, error_message
from bikeshare.errors import BikeshareError
from bikeshare.serving import answers


class SmokeFailed(BikeshareError):
    """The endpoint answered, but not with what a healthy release answers."""


@dataclass(frozen=True)
class SmokeResult:
    """A passed smoke test."""

    predictions: list[float]
    latency_ms: float

    def summary(self) -> str:
        """One line for logs and reports."""
        shown = ", ".join(f"{p:.3f}" for p in self.predictions[:5])
        return f"{len(self.predictions)} prediction(s) [{shown}] in {self.latency_ms:.0f} ms"


def expected_rows(payload: dict[str, Any], source: str = "the smoke payload") -> int:
    """How many predictions a payload must produce, in any shape the serving runtime reads."""
    try:
        return answers.expected_rows(payload)
    except answers.AnswerRejected as error:
        raise SmokeFailed(f"{source}: {error}") from None


def smoke_test(
    runtime: Any, endpoint_name: str, payload: dict[str, Any], source: str = "the smoke payload"
) -> SmokeResult:
    """Invoke the endpoint and validate: 200, JSON, one finite non-negative number per row.

    `source` says where the payload came from (a --payload file, or the serving example of a
    model archive), so a refusal blames the right one."""
    rows = expected_rows(payload, source)
    started = time.monotonic()
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(payload).encode(),
        )
    except Exception as error:
        raise SmokeFailed(_invoke_failure(endpoint_name, error, source)) from error
    latency_ms = (time.monotonic() - started) * 1000
    body = answer["Body"].read().decode("utf-8", errors="replace")
    return SmokeResult(check_answer(body, rows), latency_ms)


def _invoke_failure(endpoint_name: str, error: Exception, source: str) -> str:
    message = error_message(error)
    if error_code(error) == "ModelError" and ("column" in message or "schema" in message.lower()):
        return (
            f"{endpoint_name} refused {source}: the model and the payload disagree on the "
            f"signature ({message})"
        )
    return (
        f"invoking {endpoint_name} failed: {error_code(error) or type(error).__name__}: {message}"
    )


def check_answer(body: str, rows: int) -> list[float]:
    """The predictions in an /invocations answer, or SmokeFailed naming what is wrong."""
    try:
        return answers.check_answer(body, rows)
    except answers.AnswerRejected as error:
        raise SmokeFailed(str(error)) from None


def read_payload(path: Path) -> dict[str, Any]:
    """A smoke payload from the file the user gave (--payload), read as UTF-8 whatever the
    machine's locale (a UTF-8 byte-order mark is allowed: Windows editors write one); anything
    else, such as the UTF-16 of PowerShell 5's `>`, is named, not guessed at."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bom = (
            " (it starts with a UTF-16 byte-order mark)"
            if data[:2] in (b"\xff\xfe", b"\xfe\xff")
            else ""
        )
        raise BikeshareError(
            f"{path} is not UTF-8 text{bom}: byte {error.start} is {data[error.start]:#04x}; "
            "save the payload as UTF-8 (in PowerShell: Set-Content -Encoding utf8)"
        ) from error
    return load_payload(text, str(path))


def load_payload(text: str, where: str) -> dict[str, Any]:
    """A smoke payload from a file the user gave (--payload)."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise BikeshareError(f"{where} is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise BikeshareError(f"{where} must hold a JSON object such as MLflow's serving example")
    return payload
