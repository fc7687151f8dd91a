"""The serving image for the tests: built once per session from the repository's Dockerfile."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from support import REPORT_LINES, run_cli

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "bikeshare-test/python-base:3.11-bookworm"
IMAGE_TAG = "bikeshare-serving:test"
TOOLS_TAG = "bikeshare-tools:test"


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the docker CLI and capture its output."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def ensure_base_image() -> str:
    """The local stand-in for python:3.11-slim (debootstrap), built once per machine."""
    subprocess.run(
        ["bash", str(ROOT / "test/support/base_image.sh"), BASE_TAG], check=True, timeout=900
    )
    return BASE_TAG


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


def image_from(base: str, dockerfile: str, tag: str, context_dir: Path) -> str:
    """A small image derived from another (for broken-container fault tests)."""
    (context_dir / "Dockerfile").write_text(f"FROM {base}\n{dockerfile}\n")
    docker("build", "-q", "-t", tag, str(context_dir))
    return tag


def push(image: str, registry: str, repository: str, tag: str, password: str) -> str:
    """Log in, tag and push to a registry; return `registry/repository@sha256:...`."""
    subprocess.run(
        ["docker", "login", "--username", "AWS", "--password-stdin", registry],
        input=password,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    target = f"{registry}/{repository}:{tag}"
    docker("tag", image, target)
    pushed = docker("push", target).stdout
    digest = next(word for word in pushed.split() if word.startswith("sha256:"))
    return f"{registry}/{repository}@{digest}"
