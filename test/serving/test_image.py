"""The serving image, built from the Dockerfile and run exactly as SageMaker runs it; and what
the image tests need (a base image they skip without) and leave behind (nothing)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standin.registry import PASSWORD, LocalRegistry
from standin.registry import available as registry_available
from support import REPORT_LINES, docker_or_skip, extract, free_port, run_cli, wait_for_ping
from support.container_files import SERVING_IMAGE_DIRS
from support.images import (
    BASE_TAG,
    REQUIRE_DOCKER,
    Leftovers,
    docker,
    ensure_base_image,
    skip_or_fail,
)
from support.rows import example_row, split_payload

RUNBOOK_PAYLOAD = json.dumps(split_payload(nested=True))

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
        content=json.dumps(split_payload(example_row(temp_c=2050.5), nested=True)),
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


# --- the base image: skip without what makes it, unless CI requires Docker ---------------------


def only_on_path(monkeypatch: pytest.MonkeyPatch, directory: Path, *tools: str) -> Path:
    """PATH holding only `tools` (links to the real ones): this machine without the rest."""
    directory.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not installed here"
        (directory / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(directory))
    return directory


def decision(tag: str) -> tuple[str, str]:
    """What ensure_base_image decides for `tag`: ("skip" | "fail", reason) or ("use", tag)."""
    try:
        return "use", ensure_base_image(tag)
    except pytest.skip.Exception as skipped:
        return "skip", str(skipped.msg)
    except pytest.fail.Exception as failed:
        return "fail", str(failed.msg)


def never_built() -> str:
    """A base image tag that no one builds (this process's own, so never a real one)."""
    tag = f"bikeshare-test/never-built:{os.getpid()}"
    assert docker("image", "inspect", tag, check=False).returncode != 0
    return tag


@pytest.mark.parametrize("required", ["", "1"])
def test_without_docker_image_tests_skip_naming_it_unless_required(
    required: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(REQUIRE_DOCKER, required)
    only_on_path(monkeypatch, tmp_path / "bin", "bash")
    expected = "fail" if required else "skip"
    assert decision(BASE_TAG) == (
        expected,
        (
            f"{REQUIRE_DOCKER}=1 but no docker CLI on this machine"
            if required
            else "no docker CLI on this machine"
        ),
    )


@pytest.mark.parametrize("required", ["", "1"])
def test_without_debootstrap_image_tests_skip_naming_it_unless_required(
    required: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docker_or_skip()
    tag = never_built()
    monkeypatch.setenv(REQUIRE_DOCKER, required)
    only_on_path(monkeypatch, tmp_path / "bin", "bash", "docker")
    outcome, reason = decision(tag)
    assert outcome == ("fail" if required else "skip")
    assert reason.startswith(f"{REQUIRE_DOCKER}=1 but " if required else "the base image")
    assert f"the base image {tag} is not built and debootstrap" in reason
    assert "apt-get install debootstrap" in reason


def test_debootstrap_without_root_skips_saying_how_to_build_the_base_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docker_or_skip()
    tag = never_built()
    monkeypatch.delenv(REQUIRE_DOCKER, raising=False)
    tools = only_on_path(monkeypatch, tmp_path / "bin", "bash", "docker")
    ran = tmp_path / "debootstrap-ran"
    # debootstrap must not even start here: it would only fail, minutes later
    (tools / "debootstrap").write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    (tools / "debootstrap").chmod(0o755)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert decision(tag) == (
        "skip",
        f"the base image {tag} is not built and debootstrap needs root: run "
        f"`sudo bash test/support/base_image.sh {tag}` once",
    )
    assert not ran.exists()


def empty_image(tag: str) -> str:
    """An image of one empty layer: made in a second, with no base image and no registry."""
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    subprocess.run(["docker", "import", "-", tag], input=empty.getvalue(), capture_output=True,
                   check=True, timeout=120)  # fmt: skip
    return tag


@pytest.fixture
def tiny_image() -> Iterator[str]:
    """An empty image of this test's own, removed after it."""
    docker_or_skip()
    tag = empty_image(f"bikeshare-test/tiny:{os.getpid()}")
    yield tag
    docker("rmi", tag, check=False)


def test_a_base_image_already_built_needs_no_debootstrap(
    tiny_image: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(REQUIRE_DOCKER, "1")
    only_on_path(monkeypatch, tmp_path / "bin", "bash", "docker")
    assert decision(tiny_image) == ("use", tiny_image)


# --- what the tests leave behind: nothing ------------------------------------------------------


def present(reference: str) -> bool:
    """Whether the Docker daemon knows this image reference (a tag or a digest)."""
    return docker("image", "inspect", reference, check=False, timeout=120).returncode == 0


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    """A stand-in registry of this test's own (docker-registry with the ECR login)."""
    if not registry_available():
        skip_or_fail("the stand-in's registry needs docker-registry and apache2-utils (Debian)")
    started = LocalRegistry().start()
    yield started
    started.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of this test's own: a login written to ~/.docker would land here (and other
    sessions running beside this one write the real one)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    return home


@pytest.fixture
def owner() -> Iterator[Leftovers]:
    """Leftovers of this test's own; removed after it even when it fails halfway."""
    made = Leftovers()
    yield made
    made.remove()


def test_pushes_and_derived_images_are_removed_with_their_owner(
    registry: LocalRegistry, tiny_image: str, home: Path, tmp_path: Path, owner: Leftovers
) -> None:
    pinned = owner.push(tiny_image, registry.address, "tiny", "pushed", PASSWORD)
    (tmp_path / "context").mkdir()
    derived = owner.image_from(
        tiny_image, "LABEL broken=yes", "bikeshare-broken:x", tmp_path / "context"
    )
    config = owner.docker_config()
    references = [f"{registry.address}/tiny:pushed", pinned, derived]
    assert [present(reference) for reference in references] == [True, True, True]
    assert derived == f"bikeshare-broken:x-s{os.getpid()}", "no other session removes it"
    assert list(json.loads((config / "config.json").read_text())["auths"]) == [registry.address]

    assert owner.remove() == []
    assert [present(reference) for reference in references] == [False, False, False]
    assert present(tiny_image), "only the references go, not the image they were made from"
    assert not config.exists(), "the login goes with its session"
    assert not (home / ".docker").exists(), "and it never was in ~/.docker"


def test_a_test_session_removes_its_pushes_and_logins_when_it_ends(
    registry: LocalRegistry, tiny_image: str, home: Path
) -> None:
    """What the release tests' fixtures push (through `push`) goes when the Python process
    ends, as a pytest session does."""
    session = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "from support.images import SESSION, docker, push\n"
        f"pinned = push({tiny_image!r}, {registry.address!r}, 'tiny', 'session', {PASSWORD!r})\n"
        "print(pinned, SESSION.config, docker('image', 'inspect', pinned).returncode)\n"
    )
    ran = subprocess.run([sys.executable, "-c", session], capture_output=True, text=True,
                         check=False, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "could not remove" not in ran.stderr
    pinned, config, inspected = ran.stdout.split()
    assert pinned.startswith(f"{registry.address}/tiny@sha256:")
    assert inspected == "0", "the push was there while the session ran"
    assert not present(pinned)
    assert not present(f"{registry.address}/tiny:session")
    assert not Path(config).exists()
    assert not (home / ".docker").exists()
