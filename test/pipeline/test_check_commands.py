"""Every command a Dagger check runs, run for real: natively on the repository, and (with Docker)
inside the tools container built from the same Dockerfile target the module builds.

Commands whose tool cannot be had here are listed in the README: actionlint and Terraform run
only from their images in the module; pip-audit cannot reach a vulnerability database, so it is
checked to fail closed (`--strict`) instead of reporting a false "no known vulnerabilities".
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bikeshare_ci import checks
from bikeshare_ci.main import SOURCE_IGNORE
from support import docker_or_skip
from support.dagger_plans import ROOT
from support.images import build_tools_image, docker

VENV_BIN = str(Path(sys.executable).parent)
#: Run by test/infra/test_terraform.py with the very same tuple (it also checks skip reasons).
ELSEWHERE = {checks.CHECKOV}
NATIVE = [c for c in (*checks.LINT, *checks.SECURITY) if c not in ELSEWHERE | {checks.PIP_AUDIT}]


def run_natively(command: tuple[str, ...], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = [arg.replace(checks.LOCKED_REQUIREMENTS, str(tmp_path / "req.txt")) for arg in command]
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        args, cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=600
    )


@pytest.mark.parametrize("command", NATIVE, ids=lambda c: " ".join(c[:2]))
def test_the_check_command_passes_on_the_repository(command: tuple, tmp_path: Path) -> None:
    result = run_natively(command, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_pip_audit_fails_closed_when_it_cannot_audit(tmp_path: Path) -> None:
    exported = run_natively(checks.EXPORT_REQUIREMENTS, tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "dagger-io==0.21.8" in (tmp_path / "req.txt").read_text()
    audit = run_natively(checks.PIP_AUDIT, tmp_path)
    if audit.returncode == 0:  # a machine with a reachable vulnerability database
        assert "No known vulnerabilities found" in audit.stdout + audit.stderr
    else:  # here: no database, and --strict turns that into a failure, not a false green
        assert "No known vulnerabilities found" not in audit.stdout


def test_tools_that_cannot_fully_run_here_are_named_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for tool in ("actionlint", "Terraform", "pip-audit"):
        assert f"| {tool} |" in readme, f"README must say why {tool} does not run here"


def test_terraform_fmt_passes_where_terraform_is_installed(tmp_path: Path) -> None:
    """`init` and `validate` need the provider registry, unreachable here; `fmt` does not."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed on this machine (the module uses its image)")
    infra = shutil.copytree(ROOT / "infra/terraform", tmp_path / "terraform")
    fmt = subprocess.run(
        list(checks.TERRAFORM[0]), cwd=infra, capture_output=True, text=True, check=False
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def copy_of_the_source(target: Path) -> Path:
    """The repository as the module's constructor sees it (SOURCE_IGNORE left out)."""
    names = {pattern.rsplit("/", 1)[-1] for pattern in SOURCE_IGNORE}
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*names, "sdk"))
    return target


@pytest.mark.docker
@pytest.mark.slow
def test_every_check_command_passes_inside_the_tools_container(tmp_path: Path) -> None:
    docker_or_skip()
    image = build_tools_image(tmp_path / "context")
    source = copy_of_the_source(tmp_path / "workspace")
    ca_bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    ca_env = []
    if ca_bundle and Path(ca_bundle).is_file():  # machines behind an intercepting proxy only
        shutil.copy2(ca_bundle, source / "build-ca.pem")
        ca_env = ["-e", "SSL_CERT_FILE=/workspace/build-ca.pem"]
    commands = [
        ("uv", "sync", "--locked", "--all-extras"),  # what tools_container() runs first
        *checks.LINT,
        *[c for c in checks.SECURITY if c != checks.PIP_AUDIT],
        checks.pytest_command(checks.TOOLS_CONTAINER_MARKER, reports="/tmp/reports"),
        checks.REHEARSAL,  # no Docker in there: endpoints run as `bikeshare serve`
    ]
    script = "set -e; mkdir -p /audit /tmp/reports; " + "; ".join(shlex.join(c) for c in commands)
    ran = docker(
        "run", "--rm", "-v", f"{source}:/workspace", *ca_env, image, "sh", "-c", script,
        check=False, timeout=1500,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "passed" in ran.stdout
    assert (source / "infra").exists()
