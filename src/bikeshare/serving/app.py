"""The ASGI application SageMaker talks to: /ping and /invocations in front of MLflow's scorer.

Scoring is MLflow's own: every accepted request goes through
`mlflow.pyfunc.scoring_server.invocations` (MLflow's parsing, schema enforcement, predict and
response format). What this layer adds is what SageMaker and the team need and stock MLflow lacks:
a /ping that means "can predict", a refusal to serve a model whose input signature is not this
image's feature list, the 6 MiB limit, strict validation with readable 4xx errors, and the
runbook's nested payload.

Only SageMaker's paths exist: /ping (and /health, its alias for tools that probe MLflow servers)
and /invocations. Everything else is a 404, in particular MLflow's FastAPI extras (/docs,
/openapi.json, /redoc: an API browser nobody calling an endpoint needs, and /version: the exact
MLflow version, a head start for anyone looking up its vulnerabilities). SageMaker forwards
nothing else anyway; this keeps a locally run image or a future MLflow route from exposing more.

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

from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES, FEATURES, Kind
from bikeshare.serving.payload import (
    MAX_BODY_BYTES,
    PayloadError,
    body_too_large,
    canonical_payload,
)

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel
    from mlflow.types import Schema

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("bikeshare.serving")

WARM_UP_PAYLOAD = {
    "dataframe_split": {"columns": list(FEATURE_NAMES), "data": [list(EXAMPLE_ROW.values())]}
}
# The MLflow column types a signature may give each kind of feature: what the checked payload's
# values (str, int, float) pass MLflow's schema enforcement as, unchanged.
SIGNATURE_TYPES: dict[Kind, tuple[str, ...]] = {
    "string": ("string",),
    "integer": ("long", "integer"),
    "number": ("double", "float"),
}
_KIND_NOUNS: dict[Kind, str] = {"string": "a string", "integer": "an integer", "number": "a number"}
# A /ping reason is read in `describe-endpoint`, CloudWatch and the deploy's error: one short line.
_MAX_REASON_CHARS = 300


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
        # Decided once, before any request: a model trained for another feature list must never
        # answer, not even with a 200 that silently ignored a column.
        self.mismatch = signature_mismatch(self.input_schema)
        self.health = Health()
        if self.mismatch:
            self.health = Health(ready=False, reason=self.mismatch)
            log.error("model NOT served, /ping will answer 503: %s", self.mismatch)
        self._invocations = scoring_server.invocations
        self._scorer: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"] in ("/ping", "/health"):
            await self._ping(send)
        elif scope["type"] == "http" and scope["path"] == "/invocations":
            await self._invoke(scope, receive, send)
        elif scope["type"] == "http":
            error = PayloadError(
                f"no such path {scope['path']}; this server answers /ping and /invocations",
                status=404,
                code="NOT_FOUND",
            )
            await _respond(send, error.status, error.to_json())
        elif scope["type"] == "websocket":
            # Closing before accepting is the ASGI way to refuse the handshake (a 403).
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.warm_up()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Let the request being scored finish, then stop the scoring thread."""
        if self._scorer is not None:
            self._scorer.shutdown(wait=True)
            self._scorer = None

    def _scoring_thread(self) -> ThreadPoolExecutor:
        # Created on first use inside the worker: threads do not survive gunicorn's fork.
        if self._scorer is None:
            self._scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        return self._scorer

    def warm_up(self) -> None:
        """Predict the model's example once in this process; /ping is 200 only after it works.

        Whatever goes wrong, /ping's 503 says why in one line; the traceback goes to the log.
        """
        if self.mismatch:
            log.error("model NOT ready, /ping will answer 503: %s", self.mismatch)
            return
        try:
            result = self._invocations(
                WARM_UP_PAYLOAD, "application/json", self.model, self.input_schema
            )
        except Exception as error:  # any failure means "cannot predict"
            log.exception("model NOT ready: predicting the example row failed")
            reason = _one_line(_root_cause(error))
        else:
            if result.status == 200:
                self.health = Health(ready=True, reason="ok")
                log.info("model ready: example row scored %s", result.response[:80])
                return
            reason = _one_line(result.response)
        self.health = Health(
            ready=False, reason=f"the model cannot predict its example row: {reason}"
        )
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
        if self.mismatch:
            error = PayloadError(self.mismatch, status=503, code="MODEL_IMAGE_MISMATCH")
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
        except Exception:  # a server fault: still one JSON line for the client, the trace logged
            log.exception("scoring a request failed")
            status, response = 500, _error_json(
                "INTERNAL_ERROR", "the server failed to score this request; see the server log"
            )
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
            # the client's request, still a 4xx with MLflow's own message. MLflow's JSON would
            # also carry its stack trace; that is for the log only.
            log.warning("MLflow refused a checked payload: %s", error.message[:500], exc_info=True)
            return error.get_http_status_code(), _error_json(error.error_code, error.message)
        return result.status, result.response.encode()


def signature_mismatch(schema: Schema | None) -> str | None:
    """Why a model's input signature is not exactly this image's features, or None when it is.

    The image's validator sends exactly FEATURES; MLflow would drop a column the model does not
    declare and the model would answer without it, so any difference is refused, by name and by
    kind (see SIGNATURE_TYPES).
    """
    problems = _signature_problems(schema)
    if not problems:
        return None
    return (
        "the model does not match this image: its signature is not the image's features ("
        + "; ".join(problems)
        + "); serve the model with the image it was trained for, or retrain it with this "
        "image's features"
    )


def _signature_problems(schema: Schema | None) -> list[str]:
    if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
        return [f"it declares no named columns; the image sends {', '.join(FEATURE_NAMES)}"]
    columns = {spec.name: _type_name(spec.type) for spec in schema.inputs}
    problems = []
    lacking = [name for name in FEATURE_NAMES if name not in columns]
    if lacking:
        problems.append(f"the image sends {', '.join(lacking)}, which the model's signature lacks")
    extra = [name for name in columns if name not in FEATURE_NAMES]
    if extra:
        problems.append(
            f"the model's signature takes {', '.join(extra)}, which the image does not send"
        )
    for feature in FEATURES:
        kind = columns.get(feature.name)
        if kind is not None and kind not in SIGNATURE_TYPES[feature.kind]:
            problems.append(
                f"{feature.name} is {kind} in the model's signature but "
                f"{_KIND_NOUNS[feature.kind]} in the image"
            )
    return problems


def _type_name(column_type: Any) -> str:
    # DataType members have a name ("long"); arrays, objects and maps only a string form.
    return str(getattr(column_type, "name", column_type))


def _root_cause(error: BaseException) -> BaseException:
    """The model's own exception when MLflow wrapped it, else the error itself.

    MLflow's `invocations` turns any exception from predict into one generic MlflowException
    ("Encountered an unexpected error while evaluating the model ..."), raised while handling
    the original: that original is the reason worth a /ping line.
    """
    from mlflow.exceptions import MlflowException

    cause = error.__cause__ or error.__context__
    wrapped = isinstance(error, MlflowException) and error.message.startswith(
        "Encountered an unexpected error"
    )
    return cause if wrapped and cause is not None else error


def _one_line(problem: BaseException | str) -> str:
    """A short single line: the exception's type and message, whitespace collapsed."""
    if isinstance(problem, BaseException):
        message = getattr(problem, "message", None) or str(problem)
        problem = f"{type(problem).__name__}: {message}"
    text = " ".join(problem.split())
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 3] + "..."
    return text


def _error_json(code: str, message: str) -> bytes:
    """The error shape MLflow and PayloadError use, without MLflow's stack trace."""
    return json.dumps({"error_code": code, "message": message}).encode()


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
