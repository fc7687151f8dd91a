"""What stands in for the instances of an endpoint variant: a real model server per variant."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from support import launch_serve, wait_for_ping

# SageMaker's message when a container never answers /ping; the deploy reports it verbatim.
PING_FAILURE = (
    "The primary container for production variant {variant} did not pass the ping health check. "
    "Please check CloudWatch logs for this endpoint."
)


class VariantFailed(Exception):
    """A variant could not start; the message is SageMaker's FailureReason."""


@dataclass
class ProcessRunner:
    """A `bikeshare serve` process standing in for a variant's container (no Docker needed)."""

    variant: str
    model_archive: bytes
    image: str
    health_timeout: float = 60.0
    base_url: str = ""
    _process: subprocess.Popen[bytes] | None = None
    _workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="standin-")))

    def start(self) -> None:
        model_dir = self._workdir / "model"
        try:
            with tarfile.open(fileobj=io.BytesIO(self.model_archive), mode="r:*") as archive:
                archive.extractall(model_dir, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise VariantFailed(f"Failed to extract model data archive: {error}") from error
        server = launch_serve(model_dir, self._workdir, "--grace-seconds", "2", workers=1)
        self._process, self.base_url = server.process, server.base_url
        self._wait_for_ping()

    def _wait_for_ping(self) -> None:
        alive = lambda: self._process is not None and self._process.poll() is None  # noqa: E731
        try:
            wait_for_ping(self.base_url, timeout=self.health_timeout, alive=alive)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise VariantFailed(PING_FAILURE.format(variant=self.variant)) from None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)
