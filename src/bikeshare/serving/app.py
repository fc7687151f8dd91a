"""The ASGI application SageMaker talks to: /ping and /invocations in front of MLflow's server.

Scoring is MLflow's own: every accepted request goes through
`mlflow.pyfunc.scoring_server.invocations` (MLflow's parsing, schema enforcement, predict and
response format), and every other path (/health, /version) is served by the FastAPI app that
`scoring_server.init` builds. What this layer adds is what SageMaker and the team need and stock
MLflow lacks: a /ping that means "can predict", the 6 MiB limit, strict validation with readable
4xx errors, and the runbook's nested payload.

It is a bare ASGI callable rather than middleware on MLflow's FastAPI app on purpose: MLflow's app
sends each request through an `@app.middleware("http")` timeout wrapper, which costs more than the
model's own predict on a one-row request. Scoring runs on one dedicated thread per worker process:
the event loop stays free to answer /ping within SageMaker's 2 s even while a 6 MiB request is
being scored (that takes seconds), and one thread per worker (workers = cores) adds no GIL
contention.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES
from bikeshare.serving.payload import (
    MAX_BODY_BYTES,
    PayloadError,
    body_too_large,
    canonical_payload,
)

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("bikeshare.serving")

WARM_UP_PAYLOAD = {
    "dataframe_split": {"columns": list(FEATURE_NAMES), "data": [list(EXAMPLE_ROW.values())]}
}


@dataclass
class Health:
    """Whether this worker has proved it can predict, and why not when it cannot."""

    ready: bool = False
    reason: str = "warming up: the model has not predicted its example yet"


class ScoringApp:
    """SageMaker's container contract for one loaded MLflow pyfunc model."""

    def __init__(self, model: PyFuncModel) -> None:
        from mlflow.pyfunc import scoring_server

        self.model = model
        self.input_schema = model.metadata.get_input_schema()
        self.health = Health()
        self._invocations = scoring_server.invocations
        self._mlflow_app = scoring_server.init(model)
        self._scorer: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] in ("/ping", "/health"):
            await self._ping(send)
        elif scope["type"] == "http" and scope["path"] == "/invocations":
            await self._invoke(scope, receive, send)
        else:
            await self._mlflow_app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.warm_up()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._scorer is not None:
                    self._scorer.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _scoring_thread(self) -> ThreadPoolExecutor:
        # Created on first use inside the worker: threads do not survive gunicorn's fork.
        if self._scorer is None:
            self._scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        return self._scorer

    def warm_up(self) -> None:
        """Predict the model's example once in this process; /ping is 200 only after it works."""
        status, body = self.score_payload(WARM_UP_PAYLOAD)
        if status == 200:
            self.health = Health(ready=True, reason="ok")
            log.info("model ready: example row scored %s", body.decode()[:80])
        else:
            self.health = Health(ready=False, reason=f"the model cannot predict: {body.decode()}")
            log.error("model NOT ready, /ping will answer 503: %s", self.health.reason)

    async def _ping(self, send: Send) -> None:
        if self.health.ready:
            await _respond(send, 200, b'{"status": "ok"}')
        else:
            body = json.dumps({"status": "unavailable", "message": self.health.reason})
            await _respond(send, 503, body.encode())

    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            error = PayloadError("use POST for /invocations", status=405, code="METHOD_NOT_ALLOWED")
            await _respond(send, error.status, error.to_json())
            return
        try:
            body = await _read_body(scope, receive)
            content_type = _header(scope, b"content-type")
            loop = asyncio.get_running_loop()
            status, response = await loop.run_in_executor(
                self._scoring_thread(), self.score, body, content_type
            )
        except PayloadError as error:
            status, response = error.status, error.to_json()
        await _respond(send, status, response)

    def score(self, body: bytes, content_type: str | None) -> tuple[int, bytes]:
        """Check the request, then let MLflow's scoring server predict and format the answer."""
        return self.score_payload(canonical_payload(body, content_type))

    def score_payload(self, payload: dict[str, Any]) -> tuple[int, bytes]:
        """Run MLflow's invocation handler on an already-checked canonical payload."""
        from mlflow.exceptions import MlflowException

        try:
            result = self._invocations(payload, "application/json", self.model, self.input_schema)
        except MlflowException as error:
            # Validation runs first, so this is MLflow refusing something we let through: still
            # the client's request, still a 4xx with MLflow's own message.
            log.warning("MLflow refused a checked payload: %s", error.message[:500])
            return error.get_http_status_code(), error.serialize_as_json().encode()
        return result.status, result.response.encode()


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    declared = _header(scope, b"content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise body_too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise body_too_large(size)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
