"""What stands in for the instances of an endpoint variant: a real model server per variant."""

from __future__ import annotations

import functools
import io
import multiprocessing
import multiprocessing.connection
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from standin import preloaded
from standin.cloudwatch import Sink, follow, tail_file
from standin.registry import PASSWORD as REGISTRY_PASSWORD
from standin.registry import USERNAME as REGISTRY_USER
from support import extract, free_port, wait_for_ping

# SageMaker's message when a container never answers /ping; the deploy reports it verbatim.
PING_FAILURE = (
    "The primary container for production variant {variant} did not pass the ping health check. "
    "Please check CloudWatch logs for this endpoint."
)


class VariantFailed(Exception):
    """A variant could not start; the message is SageMaker's FailureReason."""


def unpack_model(archive: bytes, workdir: Path) -> Path:
    """Unpack ModelDataUrl's archive as SageMaker does for /opt/ml/model; a bad archive fails
    the variant with SageMaker's kind of message."""
    model_dir = workdir / "model"
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as opened:
            extract(opened, model_dir)
    except (tarfile.TarError, OSError) as error:
        raise VariantFailed(f"Failed to extract model data archive: {error}") from error
    return model_dir


#: Variants' processes are forked from one server that has imported `bikeshare serve`'s stack
#: (standin.preloaded): ~5.5 s of CPU per variant, paid once per stand-in.
_FORK_SERVER = multiprocessing.get_context("forkserver")
_FORK_SERVER.set_forkserver_preload(list(preloaded.IMPORTS))
# `bikeshare serve` sets this before OpenMP loads; in a variant OpenMP is loaded already, by the
# fork server, which inherits this process's environment. Set at import, before any thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
#: A forked process's exit status is read from a pipe without a lock (popen_forkserver.poll),
#: by whoever asks first: the runner, its log follower, and multiprocessing's own clean-up in
#: another variant's start(). Two readers at once turn the status into 255, so all take this.
_STATUS = threading.Lock()


def fork_serve(
    model_dir: Path, workdir: Path, *extra: str
) -> tuple[multiprocessing.process.BaseProcess, str, Path]:
    """Start `bikeshare serve` with one worker on a free port, forked from the fork server:
    the process, its base URL and the file that gets its stdout and stderr."""
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    log_path.touch()  # the log's follower opens it now
    argv = ["--model-dir", str(model_dir), "--port", str(port), "--workers", "1", *extra]
    # daemon: if the stand-in's process exits normally without stopping it, multiprocessing's
    # exit handler terminates it (a container outlives nothing either).
    process = _FORK_SERVER.Process(
        target=preloaded.serve, args=(argv, str(log_path)), name=f"variant-{port}", daemon=True
    )
    with _STATUS:  # start() polls every other variant (multiprocessing.process._cleanup)
        process.start()
    return process, f"http://127.0.0.1:{port}", log_path


def exited(process: multiprocessing.process.BaseProcess) -> bool:
    """Whether a forked process has exited (its status read under _STATUS)."""
    with _STATUS:
        return not process.is_alive()


def wait_for_exit(process: multiprocessing.process.BaseProcess, timeout: float) -> bool:
    """Wait up to `timeout` seconds for a forked process to exit; whether it did."""
    multiprocessing.connection.wait([process.sentinel], timeout)
    return exited(process)


@dataclass
class ProcessRunner:
    """A `bikeshare serve` process standing in for a variant's container (no Docker needed).

    Forked from a server that has imported the serving stack already (fork_serve), as a
    container starts from an image with its packages installed: the variant loads its own model
    and serves it with gunicorn, as the console script does."""

    variant: str
    model_archive: bytes
    image: str
    health_timeout: float = 60.0
    log_sink: Sink | None = None  # the endpoint's CloudWatch log stream
    base_url: str = ""
    _process: multiprocessing.process.BaseProcess | None = None
    _log_path: Path | None = None
    _workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="standin-")))
    _shipping: threading.Thread | None = None

    def start(self) -> None:
        model_dir = unpack_model(self.model_archive, self._workdir)
        self._process, self.base_url, self._log_path = fork_serve(
            model_dir, self._workdir, "--grace-seconds", "2"
        )
        if self.log_sink is not None:
            lines = tail_file(str(self._log_path), done=lambda: not self._running())
            self._shipping = follow(lines, self.log_sink)
        self._wait_for_ping()

    def _running(self) -> bool:
        return self._process is not None and not exited(self._process)

    def _wait_for_ping(self) -> None:
        try:
            wait_for_ping(self.base_url, timeout=self.health_timeout, alive=self._running)
        except (RuntimeError, TimeoutError):
            self._say_why_if_silent()
            self.stop()
            raise VariantFailed(PING_FAILURE.format(variant=self.variant)) from None

    def _say_why_if_silent(self) -> None:
        """A variant that died before `bikeshare serve` ran (multiprocessing's start-up in the
        child failed) printed its reason where the fork server prints, not in its log: its log
        says at least that in CloudWatch, as a container's log would show its exit."""
        if self._process is None or self._log_path is None or self._running():
            return
        if self._log_path.stat().st_size:
            return
        note = (
            f"the variant's process exited with status {self._process.exitcode} before "
            "`bikeshare serve` wrote anything (its reason is in the stand-in's output)"
        )
        if self._shipping is not None:  # the follower may have ended on the empty log already
            self._shipping.join(timeout=5)
        if self.log_sink is not None:
            self.log_sink(note)

    def stop(self) -> None:
        if self._process is not None and not exited(self._process):
            self._process.terminate()
            if not wait_for_exit(self._process, timeout=10):
                self._process.kill()
                wait_for_exit(self._process, timeout=10)
        if self._shipping is not None:  # the last lines reach CloudWatch before the log goes
            self._shipping.join(timeout=5)
        shutil.rmtree(self._workdir, ignore_errors=True)


@dataclass
class DockerRunner:
    """The variant's image run as SageMaker runs it: pulled from the (stand-in) ECR, model data
    unpacked into a volume mounted read-only at /opt/ml/model, started with `serve`, port 8080,
    healthy only once /ping answers 200 within the health-check timeout."""

    variant: str
    model_archive: bytes
    image: str
    health_timeout: float = 60.0
    base_url: str = ""
    _container: str = ""
    _workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="standin-")))
    _watcher: subprocess.Popen[bytes] | None = None
    log_sink: Sink | None = None  # the endpoint's CloudWatch log stream
    _shipping: threading.Thread | None = None
    _log_follower: subprocess.Popen[str] | None = None  # `docker logs --follow`, reaped on stop

    def start(self) -> None:
        model_dir = unpack_model(self.model_archive, self._workdir)
        for path in (self._workdir, model_dir):
            path.chmod(0o755)  # the image runs as a non-root user
        _STARTED_CONTAINERS.append(self.variant)
        pulled = _pull(self.image, self._workdir / "docker-config")
        if pulled.returncode != 0:
            raise VariantFailed(
                f"Failed to pull image {self.image}: {pulled.stderr.strip()[-300:]}"
            )
        port = free_port()
        started = _docker(
            "run",
            "-d",
            "--label",
            OWNER_LABEL,
            "-v",
            f"{model_dir}:/opt/ml/model:ro",
            "-p",
            f"127.0.0.1:{port}:8080",
            self.image,
            "serve",
        )
        if started.returncode != 0:
            raise VariantFailed(
                f"CannotStartContainerError. Please ensure the model container for variant "
                f"{self.variant} starts correctly when invoked with 'docker run <image> serve'"
            )
        self._container = started.stdout.strip()
        self.base_url = f"http://127.0.0.1:{port}"
        # One `docker wait` per container tells when it exits: polling `docker inspect` many
        # times a second loaded the machine enough to make slow starts miss the deadline, and
        # one failed inspect read as a dead container.
        self._watcher = exit_watcher(self._container)
        if self.log_sink is not None:
            self._log_follower = output = subprocess.Popen(
                ["docker", "logs", "--follow", self._container],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            self._shipping = follow(output.stdout or [], self.log_sink)
        try:
            wait_for_ping(self.base_url, timeout=self.health_timeout, alive=self._running)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise VariantFailed(PING_FAILURE.format(variant=self.variant)) from None

    def _running(self) -> bool:
        return self._watcher is not None and self._watcher.poll() is None

    def stop(self) -> None:
        if self._container:
            _docker("rm", "-f", self._container)
            self._container = ""
        if self._shipping is not None:  # its last lines reach CloudWatch first
            self._shipping.join(timeout=5)
        if self._log_follower is not None:  # it ends with the container; reap it
            if self._log_follower.poll() is None:
                self._log_follower.kill()
            self._log_follower.wait(timeout=30)
            self._log_follower = None
        if self._watcher is not None:
            if self._watcher.poll() is None:
                self._watcher.kill()
            self._watcher.wait(timeout=30)
            self._watcher = None
        shutil.rmtree(self._workdir, ignore_errors=True)


#: Every endpoint container this process starts carries it, so stopping the stand-in removes
#: them all, even one a rollout thread was still starting.
OWNER_LABEL = f"bikeshare-standin.owner={os.getpid()}"
_STARTED_CONTAINERS: list[str] = []  # variants this process ran with Docker: sweep only then


def remove_owned_containers() -> list[str]:
    """Remove every container this stand-in process started; their ids."""
    if not _STARTED_CONTAINERS:
        return []
    listed = _docker("ps", "--all", "--quiet", "--filter", f"label={OWNER_LABEL}")
    ids = listed.stdout.split() if listed.returncode == 0 else []
    if ids:
        _docker("rm", "--force", *ids)
    return ids


def exit_watcher(container: str) -> subprocess.Popen[bytes]:
    """A `docker wait` process: it exits when the container does (poll() is None until then)."""
    return subprocess.Popen(
        ["docker", "wait", container], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _pull(image: str, config: Path) -> subprocess.CompletedProcess[str]:
    """Pull as SageMaker does, with the execution role's ECR access: here the stand-in
    registry's credentials, in a Docker config of this runner's own (never ~/.docker)."""
    registry = image.partition("/")[0]
    config.mkdir(exist_ok=True)
    subprocess.run(
        ["docker", *own_config(config), "login", registry, "--username", REGISTRY_USER,
         "--password-stdin"],
        input=REGISTRY_PASSWORD, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return _docker(*own_config(config), "pull", "--quiet", image)


@functools.cache
def docker_host() -> str:
    """The daemon the user's docker CLI talks to (its current context). A Docker config of our
    own holds no context, so without --host the CLI would fall back to the default socket
    (wrong under Docker Desktop, colima or rootless Docker)."""
    found = subprocess.run(
        ["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return found.stdout.strip() if found.returncode == 0 else ""


def own_config(config: Path) -> list[str]:
    """docker CLI options for a Docker config of our own, on the user's daemon."""
    host = docker_host()
    return ["--config", str(config), *(["--host", host] if host else [])]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=300
    )
