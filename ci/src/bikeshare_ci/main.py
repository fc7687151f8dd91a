"""The main object: the constructor and every public function, kept short.

Containers and images live in containers.py, the checks' commands in checks.py, credentials in
aws.py and the Markdown reports in report.py. The domain (training, serving, deploying) is the
`bikeshare` CLI from src/; this module only runs it in containers, in order, with secrets.
"""

import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, ReturnType, check, dag, function, object_type

from . import checks, containers
from .aws import AwsAccess
from .release import PLATFORM, UNSET_GIT_SHA, Release
from .report import StepResult, failures, output_tail, steps_table

#: What no step needs: VCS data, virtualenvs, caches and generated output.
SOURCE_IGNORE = [
    ".git",
    "**/.venv",
    "**/__pycache__",
    "**/.pytest_cache",
    "**/.ruff_cache",
    "**/.hypothesis",
    "**/*.egg-info",
    "**/.terraform",
    "ci/sdk",
    "benchmarks/out",
    "htmlcov",
    "dist",
    "build",
    ".coverage*",
    "coverage.xml",
    "junit.xml",
]
#: image-test's client: SageMaker's health check and a first request, against the service.
PROBE_MODEL = ["bikeshare", "probe", "http://model:8080", "--model-archive", "/model/model.tar.gz"]


class CiFailed(Exception):
    """`ci` found failing checks; the message lists every one with the tail of its output."""


#: Checks and `ci` are cached for one session only: the engine's default would keep a result for
#: up to 7 days (core/modfunc.go), so a second `ci --fresh` would replay the first without
#: running anything. Across sessions the function runs again and its unchanged steps come from
#: the layer cache; `--fresh` gives them a new token so they really run.
CHECK_CACHE = "session"
FRESH_DOC = Doc("Run past Dagger's cache (the weekly CI run)")
ENDPOINT_DOC = Doc(
    "AWS API endpoint for every service instead of AWS's own: LocalStack, the local stand-in, a "
    "private (VPC) endpoint. It is reached from containers the engine runs, so not localhost: "
    "e.g. http://172.17.0.1:4566 for a service on a Linux Docker host"
)


@object_type
class BikeshareCi:
    """bikeshare's CI/CD: checks, the SageMaker serving image, and blue/green releases

    Run `dagger call ci` for every check, `dagger check` to run them as checks, and the release
    functions after `with-aws-oidc` or `with-aws-keys`.
    """

    source: Annotated[
        dagger.Directory,
        DefaultPath("/"),
        Ignore(SOURCE_IGNORE),
        Doc("The repository (default: this module's repository without .git, venvs, caches)"),
    ]
    git_sha: Annotated[
        str,
        Doc("Commit being checked or released (in GitHub: github.sha); labels and tags use it"),
    ] = UNSET_GIT_SHA
    github_repository: Annotated[
        str, Doc("OWNER/NAME on GitHub, for the reproduce line in reports (GITHUB_REPOSITORY)")
    ] = ""
    base_image: Annotated[
        str,
        Doc("Python base image of the tools and serving images (default, or empty: "
            "python:3.11-slim by digest; a mirror or air-gapped registry can serve another)"),
    ] = containers.PYTHON_BASE  # fmt: skip
    actionlint_image: Annotated[
        str, Doc("actionlint image for the security check (default: rhysd/actionlint by digest)")
    ] = containers.ACTIONLINT_IMAGE
    terraform_image: Annotated[
        str, Doc("Terraform image for terraform-validate (default: hashicorp/terraform by tag)")
    ] = containers.TERRAFORM_IMAGE

    # ---- credentials: each returns the release functions ---------------------------------------

    @function(cache="session")  # never persist a result that holds secret handles
    def with_aws_oidc(
        self,
        request_url: Annotated[
            dagger.Secret, Doc("GitHub's ACTIONS_ID_TOKEN_REQUEST_URL, e.g. env://ACTIONS_ID_...")
        ],
        request_token: Annotated[
            dagger.Secret, Doc("GitHub's ACTIONS_ID_TOKEN_REQUEST_TOKEN (a Dagger secret)")
        ],
        deployer_role_arn: Annotated[
            str, Doc("The deployer role to assume with the GitHub OIDC token (Terraform output)")
        ],
        region: Annotated[str, Doc("AWS region, e.g. ca-central-1")],
        endpoint_url: Annotated[str, ENDPOINT_DOC] = "",
    ) -> Release:
        """Reach AWS with GitHub OIDC: the pipeline exchanges the Actions token for the role."""
        return self._release(
            AwsAccess(
                region=region,
                deployer_role_arn=deployer_role_arn,
                request_url=request_url,
                request_token=request_token,
                endpoint_url=endpoint_url,
            )
        )

    @function(cache="session")  # never persist a result that holds secret handles
    def with_aws_keys(
        self,
        access_key_id: Annotated[dagger.Secret, Doc("e.g. env://AWS_ACCESS_KEY_ID")],
        secret_access_key: Annotated[dagger.Secret, Doc("e.g. env://AWS_SECRET_ACCESS_KEY")],
        region: Annotated[str, Doc("AWS region, e.g. ca-central-1")],
        session_token: Annotated[
            dagger.Secret | None, Doc("e.g. env://AWS_SESSION_TOKEN, for temporary keys")
        ] = None,
        endpoint_url: Annotated[str, ENDPOINT_DOC] = "",
    ) -> Release:
        """Reach AWS with access keys (a laptop's SSO session exported as env vars)."""
        return self._release(
            AwsAccess(
                region=region,
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
                session_token=session_token,
                endpoint_url=endpoint_url,
            )
        )

    # ---- checks --------------------------------------------------------------------------------

    @function(cache=CHECK_CACHE)
    @check
    def lint(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """ruff and black from uv.lock, check only (CI never rewrites code)."""
        return self._run_all(self._tools(fresh, checks.LINT_INPUTS), checks.LINT)

    @function(cache=CHECK_CACHE)
    async def test(self, fresh: Annotated[bool, FRESH_DOC] = False) -> str:
        """Every test area concurrently (the whole suite); a table, failing with each failure.

        Each area is also a check of its own (`test-model`, `test-docs`...), with only the files
        it reads, so an area whose files did not change is replayed from Dagger's cache.
        """
        return await _run_checks(self._area_runs(fresh))

    @function(cache=CHECK_CACHE)
    async def test_report(self) -> dagger.Directory:
        """Each test area's JUnit XML, coverage XML and exit-code, also when tests fail.

        That is when the report is wanted, e.g. `test-report export --path=out`: a directory
        per area (model/junit.xml, ...), and `exit-code` at the top, the first non-zero one.
        """
        runs = {name: self._pytest(name, False, expect=ReturnType.ANY) for name in checks.AREAS}
        codes: dict[str, int] = {}

        async def run(name: str) -> None:
            codes[name] = await (await runs[name].sync()).exit_code()

        async with anyio.create_task_group() as group:  # the areas run concurrently
            for name in runs:
                group.start_soon(run, name)
        report = dag.directory()
        for name, ran in runs.items():  # in the table's order
            area = ran.directory(checks.REPORTS).with_new_file(
                checks.EXIT_CODE_FILE, f"{codes[name]}\n"
            )
            report = report.with_directory(name, area)
        first_failure = next((codes[name] for name in runs if codes[name]), 0)
        return report.with_new_file(checks.EXIT_CODE_FILE, f"{first_failure}\n")

    # One check per test area (checks.AREAS): its container holds only the area's inputs.

    @function(cache=CHECK_CACHE)
    @check
    def test_model(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The model's tests (test/model): features, training, packaging, trust."""
        return self._pytest("model", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_serving(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The serving runtime's tests (test/serving): payloads, the app, gunicorn, the probe."""
        return self._pytest("serving", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_deploy(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The release engine's tests (test/deploy), whole releases aside (see test-release)."""
        return self._pytest("deploy", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_release(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """Whole releases against the local AWS stand-in: deploy, promote, the rehearsal."""
        return self._pytest("release", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_pipeline(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """This module offline, and every check's commands run for real (test/pipeline)."""
        return self._pytest("pipeline", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_infra(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The Terraform's tests (test/infra): validity, checkov, the release engine's IAM."""
        return self._pytest("infra", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_workflows(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The GitHub workflows' tests and .ci/run's (test/workflows, test/test_ci_entry.py)."""
        return self._pytest("workflows", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_cli(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The `bikeshare` command line as a whole (test/test_cli.py)."""
        return self._pytest("cli", fresh)

    @function(cache=CHECK_CACHE)
    @check
    def test_docs(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """README and guide against the whole repository, and the area table's own checks.

        The one area with every file: its tests check paths the docs name (test/docs), and
        that every other area's inputs cover what its tests read (test_area_inputs.py).
        """
        return self._pytest("docs", fresh)

    @function(cache=CHECK_CACHE)
    @check
    async def security(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """bandit, pip-audit --strict on uv.lock, checkov, zizmor, yamllint and actionlint."""
        workflows = self.source.directory(checks.WORKFLOWS)
        actionlint = containers.actionlint_container(workflows, self.actionlint_image)
        command = checks.actionlint_command(await workflows.entries())
        await self._fresh(actionlint, fresh).with_exec(list(command)).sync()
        tools = self._tools(fresh, checks.SECURITY_INPUTS).with_directory(
            checks.AUDIT_DIR, dag.directory()
        )
        return self._run_all(tools, checks.SECURITY)

    @function(cache=CHECK_CACHE)
    @check
    def terraform_validate(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """terraform fmt -check, init -backend=false and validate, plugins in a cache volume."""
        terraform = containers.terraform_container(
            self.source.directory("infra/terraform"), self.terraform_image
        )
        return self._run_all(self._fresh(terraform, fresh), checks.TERRAFORM)

    @function(cache=CHECK_CACHE)
    @check
    async def image_test(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """Run the serving image as SageMaker does and probe /ping and /invocations on 8080."""
        archive = self.model()
        service = await self.serve(archive)
        return (
            self._tools(fresh, checks.PROJECT_INPUTS)  # the probe needs only the installed CLI
            .with_mounted_file("/model/model.tar.gz", archive)
            .with_service_binding("model", service)
            .with_exec(PROBE_MODEL)
        )

    @function(cache=CHECK_CACHE)
    def rehearse(self, fresh: Annotated[bool, FRESH_DOC] = False) -> dagger.Container:
        """The release engine's CD path against the local AWS stand-in (no AWS account needed).

        Inside the tools container: `bikeshare deploy` of v1 and v2 with an image pushed to the
        stand-in's registry, an injected smoke failure rolled back, and a verified rollback. The
        module's own publish and cd-staging are not part of it. It gets the release area's inputs.
        Not a check of its own: `test-release` runs the same test (`ci` would run it twice).
        """
        inputs = checks.AREAS["release"].inputs()
        return self._tools(fresh, inputs).with_exec(list(checks.REHEARSAL))

    @function(cache=CHECK_CACHE)
    async def ci(self, fresh: Annotated[bool, FRESH_DOC] = False) -> str:
        """Every check concurrently, each test area on its own; a table, failing with each failure.

        Each check's container holds only the files it reads: a check whose files did not
        change is replayed from Dagger's cache (a docs/ edit re-runs test-docs alone).
        """
        runs: dict[str, Callable[[], Awaitable[dagger.Container]]] = {
            "lint": lambda: _now(self.lint(fresh)),
            **self._area_runs(fresh),
            "security": lambda: self.security(fresh),
            "terraform-validate": lambda: _now(self.terraform_validate(fresh)),
            "image-test": lambda: self.image_test(fresh),
        }
        return await _run_checks(runs)

    # ---- images, models, services --------------------------------------------------------------

    @function
    async def build(
        self,
        platform: Annotated[
            str, Doc("Target platform (SageMaker ml.m5.*: linux/amd64)")
        ] = PLATFORM,
    ) -> dagger.Container:
        """The serving image from the Dockerfile's `serving` target (no model inside)."""
        return await containers.labelled_serving_image(
            self.source, self.base_image, platform, self.git_sha, self.github_repository
        )

    @function
    def tools(self) -> dagger.Container:
        """The container every check and release command runs in (`tools terminal` to explore)."""
        return self._tools()

    @function
    def model(
        self,
        data: Annotated[
            dagger.File | None,
            Doc("Rides history CSV to train on (default: synthetic data, for tests only)"),
        ] = None,
        seed: Annotated[int, Doc("Seed for the split and trees (and the synthetic data)")] = 0,
    ) -> dagger.File:
        """A trained, packaged model.tar.gz; without --data, trained on synthetic data.

        A release ships a model on real data: `model --data=rides.csv export --path=...`,
        then `upload-model`, then CD with its URI (docs/guide.md).
        """
        return containers.trained_model(self._tools(inputs=checks.PROJECT_INPUTS), seed, data)

    @function
    async def serve(
        self,
        model: Annotated[
            dagger.File | None, Doc("model.tar.gz to serve (default: a freshly trained one)")
        ] = None,
    ) -> dagger.Service:
        """The serving image running a model as SageMaker runs it (`serve up --ports 8080:8080`)."""
        archive = model or self.model()
        model_dir = containers.unpacked_model(self._tools(inputs=checks.PROJECT_INPUTS), archive)
        return await containers.model_service(await self.build(), model_dir)

    # ---- helpers (not functions) ---------------------------------------------------------------

    def _release(self, aws: AwsAccess) -> Release:
        return Release(
            source=self.source,
            git_sha=self.git_sha,
            github_repository=self.github_repository,
            base_image=self.base_image,
            aws=aws,
        )

    def _tools(
        self,
        fresh: bool = False,
        inputs: tuple[str, ...] | None = None,
        exclude: tuple[str, ...] = (),
    ) -> dagger.Container:
        """The tools container; with `inputs`, /workspace holds only those files, less `exclude`."""
        tools = containers.tools_container(self.source, self.base_image, inputs, exclude)
        return self._fresh(tools, fresh)

    def _pytest(
        self, area: str, fresh: bool, expect: ReturnType = ReturnType.SUCCESS
    ) -> dagger.Container:
        """One test area's pytest run, on exactly that area's inputs (the whole source for an
        area marked `everything`)."""
        spec = checks.AREAS[area]
        inputs = None if spec.everything else spec.inputs()
        command = checks.pytest_command(paths=spec.pytest_paths())
        return (
            self._tools(fresh, inputs, spec.elsewhere)
            .with_directory(checks.REPORTS, dag.directory())
            .with_exec(list(command), expect=expect)
        )

    def _area_runs(self, fresh: bool) -> dict[str, Callable[[], Awaitable[dagger.Container]]]:
        """Each test area's check by its function name (test-model...), in the table's order."""
        return {
            f"test-{name}": functools.partial(_now, self._pytest(name, fresh))
            for name in checks.AREAS
        }

    @staticmethod
    def _run_all(
        container: dagger.Container, commands: tuple[checks.Command, ...]
    ) -> dagger.Container:
        for command in commands:
            container = container.with_exec(list(command))
        return container

    @staticmethod
    def _fresh(container: dagger.Container, fresh: bool) -> dagger.Container:
        return containers.with_run_token(container, uuid.uuid4().hex) if fresh else container


async def _now(container: dagger.Container) -> dagger.Container:
    return await container.sync()


async def _run_checks(runs: dict[str, Callable[[], Awaitable[dagger.Container]]]) -> str:
    """Run checks concurrently to the end; their table, or CiFailed with every failure."""
    results: list[StepResult] = []
    async with anyio.create_task_group() as group:
        for name, run in runs.items():
            group.start_soon(_record_check, name, run, results)
    results.sort(key=lambda r: list(runs).index(r.name))
    table = steps_table(results)
    print(table)
    if any(not r.passed for r in results):
        raise CiFailed(f"{table}\n\n{failures(results)}")
    return table


async def _record_check(
    name: str, run: Callable[[], Awaitable[dagger.Container]], results: list[StepResult]
) -> None:
    """Run one check and record its outcome; never raises, so sibling checks keep running."""
    started = time.monotonic()
    try:
        await (await run()).sync()
    except dagger.ExecError as error:
        detail = f"$ {' '.join(error.command)}\n{output_tail(error.stdout, error.stderr)}"
        results.append(StepResult(name, False, time.monotonic() - started, detail))
    except Exception as error:  # any failure is this check's result, not ci's
        results.append(StepResult(name, False, time.monotonic() - started, str(error)))
    else:
        results.append(StepResult(name, True, time.monotonic() - started))
