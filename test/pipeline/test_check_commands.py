"""Every command a Dagger check runs, run for real in the directory layout its container gives it:
natively on a copy of the source as the module's constructor sees it (no .git, no .venv), the
actionlint command on a directory holding only .github/workflows (its container's layout), and
(with Docker) inside the tools container built from the same Dockerfile target the module builds.

Terraform runs only from its image in the module (`fmt` also natively where it is installed);
pip-audit cannot reach a vulnerability database here, so it is checked to fail closed
(`--strict`) instead of reporting a false "no known vulnerabilities". actionlint is a Go module:
`.ci/run` installs it with `go install`, pinned to the module's image version.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bikeshare_ci import checks, containers
from bikeshare_ci.main import SOURCE_IGNORE
from support import docker_or_skip
from support.container_files import TOOLS_IMAGE_DIRS
from support.dagger_plans import ROOT
from support.images import build_tools_image, docker

VENV_BIN = str(Path(sys.executable).parent)
#: Run by test/infra/test_terraform.py with the very same tuple (it also checks skip reasons).
ELSEWHERE = {checks.CHECKOV}
NATIVE = [c for c in (*checks.LINT, *checks.SECURITY) if c not in ELSEWHERE | {checks.PIP_AUDIT}]


def run_natively(
    command: tuple[str, ...], tmp_path: Path, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    args = [arg.replace(checks.LOCKED_REQUIREMENTS, str(tmp_path / "req.txt")) for arg in command]
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, check=False, timeout=600
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/workspace as the tools container has it: the source without SOURCE_IGNORE."""
    return copy_of_the_source(tmp_path_factory.mktemp("workspace") / "workspace")


@pytest.mark.parametrize("command", NATIVE, ids=lambda c: " ".join(c[:2]))
def test_the_check_command_passes_in_the_containers_layout(
    command: tuple, tmp_path: Path, workspace: Path
) -> None:
    result = run_natively(command, tmp_path, cwd=workspace)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def actionlint_or_skip() -> str:
    """The actionlint binary, at the module image's version; .ci/run installs it (go install)."""
    found = shutil.which("actionlint") or shutil.which(Path.home() / "go/bin/actionlint")
    if found is None:
        if os.environ.get("BIKESHARE_REQUIRE_ACTIONLINT") == "1":
            pytest.fail("BIKESHARE_REQUIRE_ACTIONLINT=1 but actionlint is not installed")
        pytest.skip("actionlint is not installed (go install github.com/rhysd/actionlint/...)")
    return str(found)


@pytest.fixture(scope="module")
def actionlint_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/repo as the actionlint container has it: .github/workflows and nothing else."""
    repo = tmp_path_factory.mktemp("actionlint") / "repo"
    shutil.copytree(ROOT / checks.WORKFLOWS, repo / checks.WORKFLOWS)
    return repo


def test_actionlint_is_the_modules_image_version() -> None:
    version = subprocess.run(
        [actionlint_or_skip(), "-version"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    image_tag = containers.ACTIONLINT_IMAGE.split("@")[0].rsplit(":", 1)[1]
    assert version == f"v{image_tag}"


def test_the_actionlint_command_passes_in_its_containers_layout(actionlint_layout: Path) -> None:
    binary = actionlint_or_skip()
    entries = [p.name for p in (actionlint_layout / checks.WORKFLOWS).iterdir()]
    command = checks.actionlint_command(entries)
    ran = subprocess.run(
        [binary, *command[1:]], cwd=actionlint_layout, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(command) - 2 == len(list((ROOT / checks.WORKFLOWS).glob("*.yml")))


def test_actionlint_without_files_fails_in_that_layout(actionlint_layout: Path) -> None:
    """The command the module ran before: no .git there, so actionlint finds no project."""
    ran = subprocess.run(
        [actionlint_or_skip(), "-verbose"],
        cwd=actionlint_layout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode != 0
    assert "no project was found in any parent directories" in ran.stdout + ran.stderr


def test_pip_audit_fails_closed_when_it_cannot_audit(tmp_path: Path) -> None:
    exported = run_natively(checks.EXPORT_REQUIREMENTS, tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "dagger-io==0.21.8" in (tmp_path / "req.txt").read_text()
    audit = run_natively(checks.PIP_AUDIT, tmp_path)
    if audit.returncode == 0:  # a machine with a reachable vulnerability database
        assert "No known vulnerabilities found" in audit.stdout + audit.stderr
    else:  # here: no database, and --strict turns that into a failure, not a false green
        assert "No known vulnerabilities found" not in audit.stdout


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
    # The other side of support/container_files.py: the directories plans rely on are there.
    image_dirs = "for d in " + shlex.join(TOOLS_IMAGE_DIRS) + '; do test -d "$d"; done; '
    script = "set -e; " + image_dirs + "mkdir -p /audit /tmp/reports; "
    script += "; ".join(shlex.join(c) for c in commands)
    ran = docker(
        "run", "--rm", "-v", f"{source}:/workspace", *ca_env, image, "sh", "-c", script,
        check=False, timeout=1500,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "passed" in ran.stdout
    assert (source / "infra").exists()
