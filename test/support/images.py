"""The serving image for the tests: built once per session from the repository's Dockerfile.

Also what the tests add to Docker, and its removal: registry tags, derived images and registry
logins belong to the session that made them (`SESSION`), which removes them when it ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from standin.runners import own_config
from support import REPORT_LINES, docker_problem, run_cli

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "bikeshare-test/python-base:3.11-bookworm"
BASE_IMAGE_SCRIPT = ROOT / "test/support/base_image.sh"
IMAGE_TAG = "bikeshare-serving:test"
TOOLS_TAG = "bikeshare-tools:test"
REQUIRE_DOCKER = "BIKESHARE_REQUIRE_DOCKER"  # CI sets it to 1: missing Docker fails, not skips


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the docker CLI and capture its output."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test this machine cannot run, or fail it where CI demands Docker."""
    if os.environ.get(REQUIRE_DOCKER) == "1":
        pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}")
    pytest.skip(reason)


def base_image_problem(tag: str = BASE_TAG) -> str:
    """Why the base image can be neither found nor built here ('' when it can be had)."""
    problem = docker_problem()
    if problem:
        return problem
    if docker("image", "inspect", tag, check=False, timeout=120).returncode == 0:
        return ""  # built before: debootstrap is not needed again
    if shutil.which("debootstrap") is None:
        return (
            f"the base image {tag} is not built and debootstrap, which builds it, is not "
            "installed (Debian: apt-get install debootstrap)"
        )
    if os.geteuid() != 0:
        return (
            f"the base image {tag} is not built and debootstrap needs root: run "
            f"`sudo bash test/support/base_image.sh {tag}` once"
        )
    return ""


def ensure_base_image(tag: str = BASE_TAG) -> str:
    """The local stand-in for python:3.11-slim (debootstrap), built once per machine.

    Skips the test (fails it under BIKESHARE_REQUIRE_DOCKER=1) when Docker or debootstrap is
    missing; a build that was attempted and broke fails with the script's own words."""
    problem = base_image_problem(tag)
    if problem:
        skip_or_fail(problem)
    built = subprocess.run(
        ["bash", str(BASE_IMAGE_SCRIPT), tag],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if built.returncode != 0:
        pytest.fail(f"{BASE_IMAGE_SCRIPT.name} could not build {tag}: {built.stderr[-3000:]}")
    return tag


def build_context(target: Path) -> Path:
    """What .dockerignore lets through, plus this machine's CA bundle for the test build only."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__"))
    ca_bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if ca_bundle and Path(ca_bundle).is_file():
        shutil.copy2(ca_bundle, target / "build-ca.pem")
    return target


def build_serving_image(context_dir: Path) -> str:
    """Build the Dockerfile's serving target on the base stand-in, as the pipeline would."""
    base_image = ensure_base_image()
    context = build_context(context_dir)
    started = time.monotonic()
    runtime = run_cli("runtime-versions", "--lock", str(ROOT / "uv.lock")).stdout.strip()
    build = docker(
        "build",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"MODEL_RUNTIME={runtime}",
        "--target",
        "serving",
        "-t",
        IMAGE_TAG,
        str(context),
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    size = int(docker("image", "inspect", IMAGE_TAG, "--format", "{{.Size}}").stdout)
    base = int(docker("image", "inspect", base_image, "--format", "{{.Size}}").stdout)
    REPORT_LINES.append(
        f"serving image {IMAGE_TAG}: {size / 1e6:.0f} MB ({(size - base) / 1e6:.0f} MB over the "
        f"{base / 1e6:.0f} MB base stand-in); built in {time.monotonic() - started:.0f} s"
    )
    return IMAGE_TAG


def build_tools_image(context_dir: Path) -> str:
    """Build the Dockerfile's tools target: the container every Dagger check runs in."""
    context_dir.mkdir(parents=True, exist_ok=True)
    build = docker(
        "build", "--build-arg", f"BASE_IMAGE={ensure_base_image()}", "--target", "tools",
        "-t", TOOLS_TAG, str(build_context(context_dir)), check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return TOOLS_TAG


@dataclass
class Leftovers:
    """What tests add to the Docker daemon and the docker CLI's config, and its removal.

    Registry tags (`127.0.0.1:PORT/...`) name a stand-in registry that dies with its session, so
    they could only ever be leftovers; logins go to a Docker config of our own, never to
    ~/.docker; derived images carry the session's suffix so that concurrent sessions on one
    daemon never remove each other's. Only references are removed: layers that other images
    share stay, and so do the base image and the cached serving build.
    """

    suffix: str = field(default_factory=lambda: f"s{os.getpid()}")
    references: list[str] = field(default_factory=list)
    config: Path | None = None

    def docker_config(self) -> Path:
        """The Docker config (DOCKER_CONFIG) that holds this session's registry logins."""
        if self.config is None:
            self.config = Path(tempfile.mkdtemp(prefix="bikeshare-docker-config-"))
        return self.config

    def image_from(self, base: str, dockerfile: str, tag: str, context_dir: Path) -> str:
        """A small image derived from another (for broken-container fault tests), tagged
        `tag` plus this session's suffix."""
        own = _suffixed(tag, self.suffix)
        (context_dir / "Dockerfile").write_text(f"FROM {base}\n{dockerfile}\n")
        self.references.append(own)
        docker("build", "-q", "-t", own, str(context_dir))
        return own

    def push(self, image: str, registry: str, repository: str, tag: str, password: str) -> str:
        """Log in, tag and push to a registry; return `registry/repository@sha256:...`."""
        config = own_config(self.docker_config())
        subprocess.run(
            ["docker", *config, "login", "--username", "AWS", "--password-stdin", registry],
            input=password, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        target = f"{registry}/{repository}:{tag}"
        self.references.append(target)
        docker("tag", image, target)
        pushed = docker(*config, "push", target).stdout
        digest = next(word for word in pushed.split() if word.startswith("sha256:"))
        pinned = f"{registry}/{repository}@{digest}"
        self.references.append(pinned)  # what a push (and the stand-in's pull) records locally
        return pinned

    def remove(self) -> list[str]:
        """Remove every reference and the Docker config; return what could not be removed."""
        failed = []
        for reference in reversed(self.references):  # newest first: derived before base
            removed = docker("rmi", reference, check=False, timeout=300)
            if removed.returncode != 0 and "No such image" not in removed.stderr:
                failed.append(f"{reference}: {removed.stderr.strip()}")
        self.references.clear()
        if self.config is not None:
            shutil.rmtree(self.config, ignore_errors=True)
            self.config = None
        return failed


def _suffixed(reference: str, suffix: str) -> str:
    """`name:tag` as `name:tag-suffix` (`name` alone as `name:suffix`)."""
    repository, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:  # no tag, only a registry's port
        return f"{reference}:{suffix}"
    return f"{repository}:{tag}-{suffix}"


SESSION = Leftovers()  # this test session's: removed when the Python process ends


@atexit.register
def _remove_session_leftovers() -> None:
    """At the end of the session: registry tags and logins outlive nothing that needs them."""
    if not SESSION.references and SESSION.config is None:
        return
    for failure in SESSION.remove():
        print(f"bikeshare tests: could not remove {failure}", file=sys.stderr)


def image_from(base: str, dockerfile: str, tag: str, context_dir: Path) -> str:
    """A small image derived from another, removed when the session ends (`Leftovers`)."""
    return SESSION.image_from(base, dockerfile, tag, context_dir)


def push(image: str, registry: str, repository: str, tag: str, password: str) -> str:
    """Push with this session's own login; the tags go when the session ends (`Leftovers`)."""
    return SESSION.push(image, registry, repository, tag, password)
