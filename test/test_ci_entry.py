"""`.ci/run` is CI's entry point and changes the machine: it refuses a laptop unless asked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUARD = ROOT / ".ci" / "may-change-machine"


def guard(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The guard on a machine with no CI variable and no container marker, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "IS_SANDBOX")}
    base["BIKESHARE_CONTAINER_MARKERS"] = str(tmp_path / "no-marker")
    return subprocess.run(
        ["bash", str(GUARD), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_a_machine_that_is_not_ci_is_refused_with_what_to_run_instead(tmp_path: Path) -> None:
    refused = guard(tmp_path)
    assert refused.returncode == 2
    assert "refusing to run here" in refused.stderr
    assert "uv run --locked --all-extras pytest" in refused.stderr
    assert ".ci/run --on-this-machine" in refused.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--on-this-machine",), {}),
        ((), {"CI": "true"}),
    ],
    ids=["asked", "ci-variable"],
)
def test_ci_or_an_explicit_request_is_allowed(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    allowed = guard(tmp_path, *args, **env)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stderr == ""


def test_root_in_a_container_or_sandbox_is_allowed(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("the container rule admits root only; this run is not root")
    marker = tmp_path / ".dockerenv"
    marker.touch()
    in_container = guard(tmp_path, BIKESHARE_CONTAINER_MARKERS=str(marker))
    assert in_container.returncode == 0, in_container.stderr
    in_sandbox = guard(tmp_path, IS_SANDBOX="yes")
    assert in_sandbox.returncode == 0, in_sandbox.stderr


def test_a_user_in_a_container_is_refused(tmp_path: Path) -> None:
    """Only root can install packages: a user there is someone's own machine or devcontainer."""
    if os.getuid() == 0:
        pytest.skip("needs a user that is not root; this run is root")
    marker = tmp_path / ".dockerenv"
    marker.touch()
    assert (
        guard(tmp_path, BIKESHARE_CONTAINER_MARKERS=str(marker), IS_SANDBOX="yes").returncode == 2
    )


def test_ci_run_consults_the_guard_before_it_changes_anything() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    guard_line = script.index('bash .ci/may-change-machine "$@"')
    for change in ("pip install", "go install", "bash .ci/docker-up"):
        assert guard_line < script.index(change), f"{change} runs before the guard"
