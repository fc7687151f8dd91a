"""Helpers shared by the test modules (importable because pytest puts test/ on sys.path)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx


def run_cli(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `bikeshare` console script (the one the containers run) and capture output."""
    bikeshare = Path(sys.executable).with_name("bikeshare")
    return subprocess.run(
        [str(bikeshare), *args], capture_output=True, text=True, check=check, timeout=300, env=env
    )


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# wait_for_ping's pauses between polls, in seconds: the first, and the most it grows to.
PING_PAUSE_FIRST = 0.02
PING_PAUSE_MAX = 0.1


def wait_for_ping(
    base_url: str, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True
) -> float:
    """Poll GET /ping until it answers 200; return the seconds it took.

    A server or container is ready ~2 s after it starts, and each poll is one local connection
    on one client, so the pause grows only to PING_PAUSE_MAX: a half-second cap lost ~0.25 s per
    start on average, over a hundred starts per suite run."""
    started, pause = time.monotonic(), PING_PAUSE_FIRST
    with httpx.Client(timeout=2) as client:  # one client: a new one costs ~18 ms CPU (TLS setup)
        while time.monotonic() - started < timeout:
            if not alive():
                raise RuntimeError(f"server behind {base_url} exited before /ping answered 200")
            try:
                if client.get(f"{base_url}/ping").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(pause)
            pause = min(pause * 1.5, PING_PAUSE_MAX)
    raise TimeoutError(f"{base_url}/ping did not answer 200 within {timeout} s")


@dataclass
class ServeProcess:
    """A real `bikeshare serve` process on a free port."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM, as SageMaker and `docker stop` do; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        """What the server wrote to stdout and stderr."""
        return self.log_path.read_text(errors="replace")


def start_serve(model_dir: Path, log_dir: Path, *extra: str, workers: int = 2) -> ServeProcess:
    """Start `bikeshare serve` and wait until /ping is 200."""
    server = launch_serve(model_dir, log_dir, *extra, workers=workers)
    try:
        wait_for_ping(server.base_url, alive=lambda: server.process.poll() is None)
    except Exception:
        server.stop()
        raise RuntimeError(f"bikeshare serve did not become ready:\n{server.log()}") from None
    return server


def launch_serve(model_dir: Path, log_dir: Path, *extra: str, workers: int = 2) -> ServeProcess:
    """Start `bikeshare serve` without waiting for it."""
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    bikeshare = Path(sys.executable).with_name("bikeshare")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(bikeshare),
                "serve",
                "--model-dir",
                str(model_dir),
                "--port",
                str(port),
                "--workers",
                str(workers),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServeProcess(process, f"http://127.0.0.1:{port}", log_path)


# Lines printed at the end of the pytest run (image size and the like), in the order added.
REPORT_LINES: list[str] = []


def docker_problem() -> str:
    """Why no Docker daemon answers ('' when one does): no CLI at all, as in the tools
    container, or a CLI without a reachable daemon."""
    if shutil.which("docker") is None:
        return "no docker CLI on this machine"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return ""
    return f"no Docker daemon reachable: {probe.stderr.strip().splitlines()[-1:]}"


def docker_available() -> bool:
    """Whether a Docker daemon answers."""
    return not docker_problem()


def docker_or_skip() -> None:
    """Skip when no Docker daemon is reachable, unless CI demands Docker (then fail)."""
    import pytest

    reason = docker_problem()
    if not reason:
        return
    if os.environ.get("BIKESHARE_REQUIRE_DOCKER") == "1":
        pytest.fail(f"BIKESHARE_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


def broken_model_archive(directory: Path) -> Path:
    """A model.tar.gz the serving runtime cannot load: in the project's own format (so upload and
    preflight accept it), but its model file is no skops file (a model and image that do not
    match fail the same way: the server exits)."""
    path = directory / "broken.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in (
            (
                "MLmodel",
                "flavors:\n  python_function: {loader_module: mlflow.sklearn, model_path: m.skops}"
                "\n  sklearn: {pickled_model: m.skops, serialization_format: skops}\n",
            ),
            ("m.skops", "nope: not a skops file"),
            ("requirements.txt", ""),  # the trust model wants one; no pins, so any runtime fits
            (
                "serving_input_example.json",
                '{"dataframe_split": {"columns": ["station_id"], "data": [["72"]]}}',
            ),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def extract(archive: tarfile.TarFile, target: Path) -> None:
    """extractall with the "data" filter, as the release tools unpack model archives."""
    from bikeshare.deploy.artifacts import safe_extract

    safe_extract(archive, target)
