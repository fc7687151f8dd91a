"""`bikeshare serve`: the process SageMaker starts, with workers, readiness and signal handling.

gunicorn is the pre-fork master: it loads the model once, forks one uvicorn worker per core
(copy-on-write, so workers start in milliseconds and share the model's memory), and on SIGTERM
stops accepting, lets in-flight requests finish for the grace period, then stops the workers.
SageMaker sends SIGKILL 30 s after SIGTERM, so the default grace is 25 s.
"""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from bikeshare.errors import BikeshareError
from bikeshare.model.package import check_model_dir

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from bikeshare.serving.app import ScoringApp

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
DEFAULT_GRACE_SECONDS = 25
# gunicorn kills a worker whose event loop has been silent this long; SageMaker gives up on an
# invocation after 60 s, so only a worker stuck well past that is restarted.
WORKER_SILENCE_TIMEOUT = 120

# gunicorn's advice for containers: worker heartbeat files in shared memory, not on a disk layer.
# A tmpfs mount, not a predictable temp file.
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108  # nosec B108

log = logging.getLogger("bikeshare.serving")


def default_port() -> int:
    """SageMaker tells containers that accept another port via SAGEMAKER_BIND_TO_PORT."""
    return int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))


def default_workers() -> int:
    """One worker per core this process may run on (a container's CPU set, not the host's)."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class ServeOptions:
    """How to serve; the defaults are SageMaker's conventions."""

    model_dir: Path = SAGEMAKER_MODEL_DIR
    # A container must listen on all its interfaces (SageMaker reaches it from outside).
    host: str = "0.0.0.0"  # noqa: S104  # nosec B104
    port: int = field(default_factory=default_port)
    workers: int = field(default_factory=default_workers)
    grace_seconds: int = DEFAULT_GRACE_SECONDS


def load_model(model_dir: Path) -> PyFuncModel:
    """Load the MLflow model, or fail with a message that says where SageMaker puts it."""
    try:
        check_model_dir(model_dir)  # also the trust check: our own format only, nothing else
    except BikeshareError as error:
        if (model_dir / "MLmodel").is_file():  # a model is there, but not one we serve
            raise BikeshareError(f"cannot serve: {error}") from error
        raise BikeshareError(
            f"cannot serve: {error}. SageMaker unpacks the endpoint's ModelDataUrl archive into "
            f"{SAGEMAKER_MODEL_DIR}; locally, mount one there "
            f"(-v MODEL_DIR:{SAGEMAKER_MODEL_DIR}:ro) or pass --model-dir"
        ) from error
    import mlflow.pyfunc

    try:
        # suppress_warnings: otherwise MLflow parses requirements.txt to compare it with what is
        # installed, following `-r`/`-c` lines to any path and importing requirement names it
        # finds no distribution for. The trust check refuses such files too; this is the second
        # lock (the image is built from the model's lock, so the comparison says nothing new).
        return mlflow.pyfunc.load_model(str(model_dir), suppress_warnings=True)
    except Exception as error:  # MLflow raises many types; all mean "this model will not load"
        raise BikeshareError(f"cannot load the MLflow model in {model_dir}: {error}") from error


def build_app(model_dir: Path) -> ScoringApp:
    """The ASGI app for the model in model_dir (the model is loaded now, in this process)."""
    from bikeshare.serving.app import ScoringApp

    return ScoringApp(load_model(model_dir))


def gunicorn_settings(options: ServeOptions) -> dict[str, Any]:
    """gunicorn's configuration for SageMaker serving."""
    return {
        "bind": [f"{options.host}:{options.port}"],
        "workers": options.workers,
        "worker_class": "uvicorn_worker.UvicornWorker",
        "graceful_timeout": options.grace_seconds,
        "timeout": WORKER_SILENCE_TIMEOUT,
        # SageMaker's front end keeps connections open; a short keep-alive would make it reconnect.
        "keepalive": 75,
        "preload_app": True,
        # Heartbeat files in memory: the image's filesystem may be read-only or slow.
        "worker_tmp_dir": str(SHARED_MEMORY) if SHARED_MEMORY.is_dir() else None,
        # The control socket would be written under $HOME; nothing here uses it.
        "control_socket_disable": True,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "bikeshare-serve",
    }


def serve(options: ServeOptions) -> None:
    """Load the model, then run gunicorn until SIGTERM or SIGINT. Never returns normally."""
    # One BLAS/OpenMP thread per worker: workers already fill the cores, single-row predictions
    # gain nothing from threads, and OpenMP's pool must not exist before gunicorn forks.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
    )
    app = build_app(options.model_dir)
    if os.environ.get("BIKESHARE_GC_FREEZE", "1") == "1":
        # Move everything loaded so far (MLflow, pandas, the model) out of the collector's reach
        # before forking: the workers' collections then neither walk nor copy-on-write these
        # pages, which otherwise shows up as multi-millisecond pauses in tail latency.
        gc.freeze()
    log.info("serving %s on %s:%d", options.model_dir, options.host, options.port)
    _GunicornServer(app, gunicorn_settings(options)).run()


class _GunicornServer(BaseApplication):
    """gunicorn embedded as a library, serving an app object we already built."""

    def __init__(self, app: ScoringApp, settings: dict[str, Any]) -> None:
        self._app = app
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> ScoringApp:
        return self._app
