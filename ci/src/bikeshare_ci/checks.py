"""The commands each check runs, defined once.

The Dagger functions run them in the tools container; the test suite runs the very same lists
natively and inside that container built with Docker, so a green suite means these commands work.
Plain data, no Dagger import: the suite imports this file without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass

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


#: The quick subset the suite itself runs inside the tools container: the full suite *is* the
#: `test` check, so running all of it in there from the suite would run the suite in itself.
TOOLS_CONTAINER_MARKER = "tools_container"


def pytest_command(
    marker: str = "", reports: str = REPORTS, paths: tuple[str, ...] = ()
) -> Command:
    """pytest with coverage and JUnit written to `reports`; `marker` selects a subset and
    `paths` the test files or directories (default: the whole suite, pyproject's testpaths)."""
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
        *paths,
    )


# ---- inputs: which repository files each check's container gets -----------------------------
#
# Dagger caches a step by the content of its inputs, so a check whose container holds only the
# files it reads is replayed from cache when anything else changes (a docs/ edit re-runs the docs
# area alone). Each entry is a `Directory.filter(include=...)` pattern: a path takes the file or
# the whole directory; `**/*.py` globs. test/pipeline/test_area_inputs.py proves from this table
# that each area's inputs hold every module its tests import and every repository path they name.

#: What the Dockerfile's `tools` target COPYs (and the .dockerignore that filters its context):
#: the image is dependencies only, so no source change rebuilds it. build-ca.pem exists only on
#: machines behind an intercepting proxy (the Dockerfile's `build-ca*`).
TOOLS_IMAGE_INPUTS: tuple[str, ...] = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "uv.lock",
    "build-ca.pem",
)
#: The `serving` target's context: what .dockerignore lets through (its `build` stage installs
#: the project from src/, whose metadata names README.md).
SERVING_IMAGE_INPUTS: tuple[str, ...] = (*TOOLS_IMAGE_INPUTS, "README.md", "src")
#: What `uv sync --locked --all-extras` installs the project from in every tools container:
#: pyproject's `readme` makes the editable build read README.md; uv and hatchling also look for
#: their own configuration files (.python-version exists; a pattern that matches nothing costs
#: nothing, and a file added later must re-run what it can change).
PROJECT_INPUTS: tuple[str, ...] = (
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "src",
    "uv.toml",
    ".python-version",
    "hatch.toml",
)
#: The files pytest looks for to find its configuration, in the directories from its arguments'
#: common ancestor up (the first found wins over pyproject.toml), and the conftest.py at the
#: root: absent today, read if added.
PYTEST_CONFIGURATION: tuple[str, ...] = (
    *(
        f"**/{name}"
        for name in ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini")
    ),
    "**/setup.cfg",
    "conftest.py",
)
#: Every pytest run: the project, the root conftest.py and test/support, which it imports (and
#: which imports the stand-in's helpers and builds images from the tools image's own inputs, so
#: including them costs no extra run: a change to them rebuilds the image under every area).
PYTEST_BASE: tuple[str, ...] = (
    *PROJECT_INPUTS,
    *PYTEST_CONFIGURATION,
    "Dockerfile",
    ".dockerignore",
    "build-ca.pem",
    "test/conftest.py",
    "test/support",
    "test/standin",
)
#: `ruff check .` and `black --check .`: every Python file, their configuration (pyproject's
#: tool tables, nested ones too), the .gitignore files both honour and the .ignore files ruff
#: honours too.
LINT_INPUTS: tuple[str, ...] = (
    *PROJECT_INPUTS,
    "**/*.py",
    "**/*.pyi",
    "**/*.ipynb",
    "**/pyproject.toml",
    "**/ruff.toml",
    "**/.ruff.toml",
    "**/.gitignore",
    "**/.ignore",
)
#: checkov's own configuration in the directory it runs from (absent today).
CHECKOV_CONFIGURATION: tuple[str, ...] = (".checkov.yaml", ".checkov.yml")
#: bandit (src, ci/src), the lock pip-audit audits, checkov (infra/terraform), zizmor and
#: actionlint (.github/workflows), yamllint (every YAML file, with its configuration).
SECURITY_INPUTS: tuple[str, ...] = (
    *PROJECT_INPUTS,
    "ci/src",
    "infra/terraform",
    ".github",
    ".yamllint",
    ".yamllint.yaml",
    "**/*.yml",
    "**/*.yaml",
)


@dataclass(frozen=True)
class Area:
    """One slice of the test suite, run as its own Dagger check (`test-AREA`, documented there)."""

    tests: tuple[str, ...]  # what pytest runs (files or directories under test/)
    reads: tuple[str, ...] = ()  # repository paths beyond PYTEST_BASE and `tests`
    #: Test files under `tests` that belong to another area (pytest --ignore).
    elsewhere: tuple[str, ...] = ()
    #: The whole repository: tests that check every path the docs name, or the table itself.
    everything: bool = False

    def inputs(self) -> tuple[str, ...]:
        """The `include` patterns of this area's source directory."""
        return tuple(dict.fromkeys((*PYTEST_BASE, *self.tests, *self.reads)))

    def pytest_paths(self) -> tuple[str, ...]:
        """pytest's path arguments: the tests, less what another area runs."""
        return (*self.tests, *(f"--ignore={path}" for path in self.elsewhere))


#: Whole-repository tests that live in test/pipeline: the docs area (which gets everything) runs
#: them, so a docs edit does not re-run the pipeline area and these see every file.
WHOLE_REPOSITORY_TESTS = (
    "test/pipeline/test_area_inputs.py",
    "test/pipeline/test_guide_names_tools.py",
)

#: Whole releases against the stand-in, each test several deploys with endpoint processes:
#: inside test-deploy they made it the one long check, running alone on one core for minutes
#: after the others had finished, so `ci` runs them beside the rest of test/deploy
#: (benchmarks/pipeline.md).
RELEASE_TESTS = tuple(
    f"test/deploy/test_{name}.py"
    for name in ("release", "promote", "rehearsal", "tags", "truth", "replay")
)

#: The test suite by area, in the order `ci` shows them. Every test file is in exactly one area
#: (test/pipeline/test_area_inputs.py checks it, that each area's inputs cover its reads, and
#: that each `reads` entry is needed). infra/terraform is in nearly every area because
#: test/support/account.py, which the stand-in fixtures use, grants the IAM policies Terraform
#: defines (test/support/terraform_iam.py); ci/src where tests import the module.
AREAS: dict[str, Area] = {
    "model": Area(
        tests=("test/model",),
        reads=("infra/terraform",),
    ),
    "serving": Area(
        tests=("test/serving",),
        reads=("infra/terraform", ".github/workflows"),
    ),
    "deploy": Area(
        tests=("test/deploy",),
        reads=("infra/terraform",),
        elsewhere=RELEASE_TESTS,
    ),
    "release": Area(
        tests=RELEASE_TESTS,
        reads=("test/deploy/conftest.py", "infra/terraform"),
    ),
    "pipeline": Area(
        tests=("test/pipeline",),
        reads=(
            *LINT_INPUTS,
            *SECURITY_INPUTS,
            "ci",
            "infra",
            "dagger.json",
        ),
        elsewhere=WHOLE_REPOSITORY_TESTS,
    ),
    "infra": Area(
        tests=("test/infra",),
        reads=("infra/terraform", "ci/src", ".github/workflows", *CHECKOV_CONFIGURATION),
    ),
    "workflows": Area(
        tests=("test/workflows", "test/test_ci_entry.py"),
        reads=(".github", ".ci", "ci/src", "dagger.json", "infra/terraform"),
    ),
    "cli": Area(
        tests=("test/test_cli.py",),
        reads=("infra/terraform",),
    ),
    "docs": Area(
        tests=("test/docs", *WHOLE_REPOSITORY_TESTS),
        everything=True,
    ),
}

#: The whole CD path against the AWS stand-in (moto, its registry and endpoint processes all
#: inside the container): publish, deploy v1 and v2, a smoke failure rolled back, a rollback.
#: It is the release area's rehearsal tests, so it gets the release area's inputs.
REHEARSAL: Command = (
    "pytest",
    "-p",
    "no:cacheprovider",
    "-m",
    "rehearsal",
    *AREAS["release"].tests,
)
