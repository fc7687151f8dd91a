"""The commands each check runs, defined once.

The Dagger functions run them in the tools container; the test suite runs the very same lists
natively and inside that container built with Docker, so a green suite means these commands work.
Plain data, no Dagger import: the suite imports this file without an engine.
"""

from __future__ import annotations

Command = tuple[str, ...]

#: Where `test` writes JUnit and coverage inside the container (`test-report` exports it).
REPORTS = "/reports"
#: pytest's exit status, beside the reports: `test-report` returns them when tests fail too.
EXIT_CODE_FILE = "exit-code"

#: ruff and black from uv.lock, checking only: CI never rewrites code (the seed ran `--fix`).
LINT: tuple[Command, ...] = (
    ("ruff", "check", "--no-fix", "."),
    ("black", "--check", "--diff", "."),
)

#: checkov pins old libraries and installs a package named `hcl2`, like python-hcl2 (a dev
#: dependency) does, so it runs in its own throwaway environment, pinned: a new checkov
#: release would otherwise fail unrelated commits with new checks.
CHECKOV_PACKAGE = "checkov==3.3.30"
CHECKOV: Command = (
    "uv", "tool", "run", "--from", CHECKOV_PACKAGE, "checkov",
    "--directory", "infra/terraform", "--framework", "terraform",
    "--skip-download", "--compact", "--quiet",
)  # fmt: skip

#: The locked requirements, exported with hashes, are what pip-audit audits (not whatever
#: happens to be installed).
AUDIT_DIR = "/audit"  # an empty directory the security check's container gets
LOCKED_REQUIREMENTS = f"{AUDIT_DIR}/locked-requirements.txt"
EXPORT_REQUIREMENTS: Command = (
    "uv", "export", "--locked", "--all-extras", "--no-emit-project",
    "--format", "requirements-txt", "--output-file", LOCKED_REQUIREMENTS,
)  # fmt: skip
#: --strict: a package that cannot be audited (e.g. no database reachable) fails the check
#: instead of reporting a false "No known vulnerabilities found".
PIP_AUDIT: Command = (
    "pip-audit", "--strict", "--disable-pip", "--progress-spinner", "off",
    "--requirement", LOCKED_REQUIREMENTS,
)  # fmt: skip

#: Security: each finding fails the check; there is no `|| true` anywhere.
SECURITY: tuple[Command, ...] = (
    ("bandit", "--configfile", "pyproject.toml", "--recursive", "src", "ci/src", "--quiet"),
    EXPORT_REQUIREMENTS,
    PIP_AUDIT,
    CHECKOV,
    ("zizmor", "--offline", "--no-progress", ".github/workflows"),
    ("yamllint", "--strict", "."),
)

#: The workflows actionlint reads, relative to the directory it runs in.
WORKFLOWS = ".github/workflows"


def actionlint_command(workflow_entries: list[str]) -> Command:
    """actionlint on each workflow file, named: without file arguments it looks for a project,
    a directory holding both .git and .github/workflows, and the check's container has no .git
    ("no project was found in any parent directories")."""
    files = sorted(
        f"{WORKFLOWS}/{name}" for name in workflow_entries if name.endswith((".yml", ".yaml"))
    )
    if not files:
        raise ValueError(f"no workflow files in {WORKFLOWS}: nothing for actionlint to check")
    return ("actionlint", "-verbose", *files)


#: Run from the Terraform image in infra/terraform; the provider cache is a cache volume.
TERRAFORM: tuple[Command, ...] = (
    ("terraform", "fmt", "-check", "-recursive", "-diff"),
    ("terraform", "init", "-backend=false", "-input=false"),
    ("terraform", "validate"),
)

#: The whole CD path against the AWS stand-in (moto, its registry and endpoint processes all
#: inside the container): publish, deploy v1 and v2, a smoke failure rolled back, a rollback.
REHEARSAL: Command = ("pytest", "-p", "no:cacheprovider", "-m", "rehearsal", "test/deploy")

#: The quick subset the suite itself runs inside the tools container: the full suite *is* the
#: `test` check, so running all of it in there from the suite would run the suite in itself.
TOOLS_CONTAINER_MARKER = "tools_container"


def pytest_command(marker: str = "", reports: str = REPORTS) -> Command:
    """pytest with coverage and JUnit written to `reports`; `marker` selects a subset."""
    selection = ("-m", marker) if marker else ()
    return (
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={reports}/junit.xml",
        "--cov=bikeshare",
        f"--cov-report=xml:{reports}/coverage.xml",
        "--cov-report=term",
        *selection,
    )
