"""The serving image, built from the Dockerfile and run exactly as SageMaker runs it."""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import REPORT_LINES, extract, free_port, run_cli, wait_for_ping
from support.container_files import SERVING_IMAGE_DIRS
from support.images import docker

RUNBOOK_PAYLOAD = (
    '{"inputs":{"dataframe_split":{"columns":["station_id","hour","temp_c","dow"],'
    '"data":[["72",8,20.5,2]]}}}'
)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def opt_ml_model(model_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.tar.gz unpacked as SageMaker unpacks it, readable by the image's non-root user."""
    target = tmp_path_factory.mktemp("opt-ml-model")
    with tarfile.open(model_archive) as archive:
        extract(archive, target)
    target.chmod(0o755)
    return target


class Container:
    def __init__(self, image: str, model: Path, *extra: str, port: int = 8080) -> None:
        self.host_port = free_port()
        self.id = docker(
            "run",
            "-d",
            "-v",
            f"{model}:/opt/ml/model:ro",
            "-p",
            f"127.0.0.1:{self.host_port}:{port}",
            *extra,
            image,
            "serve",
        ).stdout.strip()
        self.base_url = f"http://127.0.0.1:{self.host_port}"

    def running(self) -> bool:
        return docker("inspect", "-f", "{{.State.Running}}", self.id).stdout.strip() == "true"

    def logs(self) -> str:
        result = docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "-f", self.id, check=False)


@pytest.fixture
def container(serving_image: str, opt_ml_model: Path) -> Iterator[Container]:
    running = Container(serving_image, opt_ml_model)
    yield running
    running.remove()


def test_image_serves_like_sagemaker_runs_it(container: Container) -> None:
    seconds = wait_for_ping(container.base_url, timeout=90, alive=container.running)
    REPORT_LINES.append(f"serving image: docker run -> /ping 200 in {seconds:.1f} s")
    answer = httpx.post(
        f"{container.base_url}/invocations",
        content=RUNBOOK_PAYLOAD,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction > 0

    bad = httpx.post(
        f"{container.base_url}/invocations",
        timeout=30,
        headers={"Content-Type": "application/json"},
        content=RUNBOOK_PAYLOAD.replace("20.5", "2050.5"),
    )
    assert bad.status_code == 400
    assert "temp_c must be a number from -50 to 55" in bad.json()["message"]

    started = time.monotonic()
    docker("stop", "--time", "30", container.id)
    stopped_in = time.monotonic() - started
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", container.id).stdout.strip()
    assert exit_code == "0", container.logs()
    assert stopped_in < 10, f"docker stop took {stopped_in:.1f} s"
    REPORT_LINES.append(f"serving image: docker stop -> clean exit in {stopped_in:.1f} s")


def test_probe_checks_the_image_as_the_image_test_check_does(
    container: Container, model_archive: Path
) -> None:
    """`bikeshare probe` is what the Dagger `image-test` check runs against this same image."""
    probed = run_cli(
        "probe", container.base_url, "--model-archive", str(model_archive), check=False
    )
    assert probed.returncode == 0, probed.stderr + container.logs()
    assert "healthy after" in probed.stdout
    assert "1 prediction(s)" in probed.stdout


def test_image_honours_sagemaker_bind_to_port(serving_image: str, opt_ml_model: Path) -> None:
    moved = Container(serving_image, opt_ml_model, "-e", "SAGEMAKER_BIND_TO_PORT=9090", port=9090)
    try:
        wait_for_ping(moved.base_url, timeout=90, alive=moved.running)
    finally:
        moved.remove()


def test_image_without_a_model_fails_with_a_clear_message(
    serving_image: str, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)
    result = docker(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/opt/ml/model:ro",
        serving_image,
        "serve",
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "no MLmodel file" in result.stderr
    assert "SageMaker unpacks the endpoint's ModelDataUrl archive into /opt/ml/model" in (
        result.stderr
    )


def test_image_metadata_follows_the_byoc_contract(serving_image: str) -> None:
    config = json.loads(
        docker("image", "inspect", serving_image, "--format", "{{json .Config}}").stdout
    )
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == ["bikeshare"]
    assert config["User"] == "model-server"


def test_image_has_the_directories_the_offline_engine_assumes(serving_image: str) -> None:
    """The other side of support/container_files.py: what plans may rely on being there."""
    missing = docker(
        "run", "--rm", "--entrypoint", "sh", serving_image, "-c",
        'for d in "$@"; do test -d "$d" || echo "$d"; done', "sh", *SERVING_IMAGE_DIRS,
    ).stdout.split()  # fmt: skip
    assert missing == []
    healthcheck = json.loads(
        docker("image", "inspect", serving_image, "--format", "{{json .Config.Healthcheck}}").stdout
    )
    assert healthcheck["Test"][0] == "CMD", "exec form: the module re-applies it as args"


def test_image_declares_the_model_runtime_it_really_carries(serving_image: str) -> None:
    labels = json.loads(
        docker("image", "inspect", serving_image, "--format", "{{json .Config.Labels}}").stdout
    )
    inside = docker(
        "run", "--rm", "--entrypoint", "bikeshare", serving_image, "runtime-versions"
    ).stdout.strip()
    assert labels["com.bikeshare.model-runtime"] == inside
    assert "scikit-learn==" in inside


def test_image_carries_only_what_serving_needs(serving_image: str) -> None:
    probe = docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        serving_image,
        "-c",
        "for tool in gcc cc make java nginx uv pip; do command -v $tool; done; "
        "python3 -c 'import boto3' 2>/dev/null && echo boto3; "
        "python3 -c 'import uvloop, httptools, gunicorn, sklearn, mlflow' && echo serving-ok",
        check=False,
    )
    assert probe.stdout.split() == ["serving-ok"], probe.stdout + probe.stderr
