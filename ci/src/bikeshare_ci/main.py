"""The main object: the constructor and every public function, kept short.

Containers and images live in containers.py, the checks' commands in checks.py, credentials in
aws.py and the Markdown reports in report.py. The domain (training, serving, deploying) is the
`bikeshare` CLI from src/; this module only runs it in containers, in order, with secrets.
"""

import dataclasses
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Self, TypeVar

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, ReturnType, check, dag, function, object_type

from . import checks, containers
from .aws import AwsAccess
from .report import (
    FAILED,
    OUTCOME_FILE,
    SUCCEEDED,
    SUMMARY_FILE,
    StepResult,
    failures,
    reproduce_line,
    run_report,
    steps_table,
    tail,
)

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
PLATFORM = "linux/amd64"  # ml.m5.* instances are x86-64
REPORT_DIR = "/run/bikeshare"  # where release commands write their Markdown report
# A path, not a password: ecr-login writes the password here; it never reaches stdout.
ECR_PASSWORD_FILE = "/run/ecr/password"  # noqa: S105  # nosec B105


T = TypeVar("T")


class CiFailed(Exception):
    """`ci` found failing checks; the message lists every one with its stderr tail."""


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
    ] = "dev"
    github_repository: Annotated[
        str, Doc("OWNER/NAME on GitHub, for the reproduce line in reports (GITHUB_REPOSITORY)")
    ] = ""
    aws: AwsAccess | None = dataclasses.field(default=None, init=False)

    # ---- credentials -------------------------------------------------------------------------

    @function
    def with_aws_oidc(
        self,
        request_url: Annotated[
            dagger.Secret, Doc("GitHub's ACTIONS_ID_TOKEN_REQUEST_URL, e.g. env://ACTIONS_ID_...")
        ],
        request_token: Annotated[
            dagger.Secret, Doc("GitHub's ACTIONS_ID_TOKEN_REQUEST_TOKEN (a Dagger secret)")
        ],
        role_arn: Annotated[str, Doc("IAM role to assume with the GitHub OIDC token")],
        region: Annotated[str, Doc("AWS region, e.g. ca-central-1")],
    ) -> Self:
        """Reach AWS with GitHub OIDC: the pipeline exchanges the Actions token for the role."""
        self.aws = AwsAccess(
            region=region, role_arn=role_arn, request_url=request_url, request_token=request_token
        )
        return self

    @function
    def with_aws_keys(
        self,
        access_key_id: Annotated[dagger.Secret, Doc("e.g. env://AWS_ACCESS_KEY_ID")],
        secret_access_key: Annotated[dagger.Secret, Doc("e.g. env://AWS_SECRET_ACCESS_KEY")],
        region: Annotated[str, Doc("AWS region, e.g. ca-central-1")],
        session_token: Annotated[
            dagger.Secret | None, Doc("e.g. env://AWS_SESSION_TOKEN, for temporary keys")
        ] = None,
    ) -> Self:
        """Reach AWS with access keys (a laptop's SSO session exported as env vars)."""
        self.aws = AwsAccess(
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
        )
        return self

    # ---- checks --------------------------------------------------------------------------------

    @function
    @check
    def lint(
        self, fresh: Annotated[bool, Doc("Run past Dagger's cache (the weekly CI run)")] = False
    ) -> dagger.Container:
        """ruff and black from uv.lock, check only (CI never rewrites code)."""
        return self._run_all(self._tools(fresh), checks.LINT)

    @function
    @check
    def test(
        self, fresh: Annotated[bool, Doc("Run past Dagger's cache (the weekly CI run)")] = False
    ) -> dagger.Container:
        """The test suite with coverage and JUnit (tests that need Docker skip in here)."""
        return (
            self._tools(fresh)
            .with_directory(checks.REPORTS, dag.directory())
            .with_exec(list(checks.pytest_command()))
        )

    @function
    def test_report(self) -> dagger.Directory:
        """JUnit XML and coverage XML of the `test` check, e.g. `test-report export --path out`."""
        return self.test().directory(checks.REPORTS)

    @function
    @check
    async def security(
        self, fresh: Annotated[bool, Doc("Run past Dagger's cache (the weekly CI run)")] = False
    ) -> dagger.Container:
        """bandit, pip-audit --strict on uv.lock, checkov, zizmor, yamllint and actionlint."""
        actionlint = containers.actionlint_container(self.source)
        await self._fresh(actionlint, fresh).with_exec(list(checks.ACTIONLINT)).sync()
        tools = self._tools(fresh).with_directory("/audit", dag.directory())
        return self._run_all(tools, checks.SECURITY)

    @function
    @check
    def terraform_validate(
        self, fresh: Annotated[bool, Doc("Run past Dagger's cache (the weekly CI run)")] = False
    ) -> dagger.Container:
        """terraform fmt -check, init -backend=false and validate, plugins in a cache volume."""
        terraform = containers.terraform_container(self.source.directory("infra/terraform"))
        return self._run_all(self._fresh(terraform, fresh), checks.TERRAFORM)

    @function
    @check
    async def image_test(
        self, fresh: Annotated[bool, Doc("Run past Dagger's cache (the weekly CI run)")] = False
    ) -> dagger.Container:
        """Run the serving image as SageMaker does and probe /ping and /invocations on 8080."""
        archive = self.model()
        service = await self.serve(archive)
        return (
            self._tools(fresh)
            .with_mounted_file("/model/model.tar.gz", archive)
            .with_service_binding("model", service)
            .with_exec(PROBE_MODEL)
        )

    @function
    @check
    async def rehearse(
        self, fresh: Annotated[bool, Doc("Run past Dagger's cache (the weekly CI run)")] = False
    ) -> dagger.Container:
        """The whole CD path against the local AWS stand-in: publish, deploy v1 and v2, an
        injected smoke failure, and a verified rollback (no AWS account needed)."""
        return self._tools(fresh).with_exec(list(checks.REHEARSAL))

    @function
    async def ci(
        self,
        fresh: Annotated[bool, Doc("Run every check past Dagger's cache (the weekly run)")] = False,
    ) -> str:
        """Every check concurrently; a table of results, failing with every failure's stderr."""
        runs: dict[str, Callable[[], Awaitable[dagger.Container]]] = {
            "lint": lambda: _now(self.lint(fresh)),
            "test": lambda: _now(self.test(fresh)),
            "security": lambda: self.security(fresh),
            "terraform-validate": lambda: _now(self.terraform_validate(fresh)),
            "image-test": lambda: self.image_test(fresh),
            "rehearse": lambda: self.rehearse(fresh),
        }
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

    # ---- delivery ------------------------------------------------------------------------------

    @function
    async def build(
        self,
        platform: Annotated[
            str, Doc("Target platform (SageMaker ml.m5.*: linux/amd64)")
        ] = PLATFORM,
        base_image: Annotated[
            str, Doc("Python base image, pinned by digest")
        ] = containers.PYTHON_BASE,
    ) -> dagger.Container:
        """The serving image from the Dockerfile's `serving` target (no model inside)."""
        runtime = (
            await self._tools()
            .with_exec(["bikeshare", "runtime-versions", "--lock", "uv.lock"])
            .stdout()
        )
        labels = {
            "org.opencontainers.image.revision": self.git_sha,
            "org.opencontainers.image.version": await self._version(),
        }
        if self.github_repository:
            labels["org.opencontainers.image.source"] = (
                f"https://github.com/{self.github_repository}"
            )
        return containers.serving_image(self.source, runtime.strip(), base_image, platform, labels)

    @function
    def tools(self) -> dagger.Container:
        """The container every check and release command runs in (`tools terminal` to explore)."""
        return self._tools()

    @function
    def model(
        self, seed: Annotated[int, Doc("Seed for the synthetic data, split and trees")] = 0
    ) -> dagger.File:
        """A freshly trained, packaged model.tar.gz (synthetic data; deterministic per seed)."""
        return (
            self._tools()
            .with_exec(["bikeshare", "train", "--output", "/build/model", "--seed", str(seed)])
            .with_exec(["bikeshare", "package", "/build/model", "--output", "/build/model.tar.gz"])
            .file("/build/model.tar.gz")
        )

    @function
    async def serve(
        self,
        model: Annotated[
            dagger.File | None, Doc("model.tar.gz to serve (default: a freshly trained one)")
        ] = None,
    ) -> dagger.Service:
        """The serving image running a model as SageMaker runs it (`serve up --ports 8080:8080`)."""
        archive = model or self.model()
        model_dir = containers.unpacked_model(self._tools(), archive)
        return containers.model_service(await self.build(), model_dir)

    @function(cache="never")
    async def publish(
        self,
        repository_url: Annotated[
            str, Doc("ECR repository URL, e.g. 123456789012.dkr.ecr.ca-central-1.amazonaws.com/x")
        ],
        tag: Annotated[
            str, Doc("Immutable tag (default: the first 12 characters of git-sha)")
        ] = "",
        platform: Annotated[str, Doc("Target platform of the image")] = PLATFORM,
    ) -> str:
        """Push the serving image with Docker v2 media types (SageMaker rejects OCI manifests);
        return REGISTRY/REPOSITORY@sha256:..., or the existing digest if the tag exists."""
        aws = self._require_aws()
        tag = tag or self.git_sha[:12]
        repository = repository_url.partition("/")[2]
        tools = self._release_tools()
        existing = await tools.with_exec(
            ["bikeshare", "image-digest", "--repository", repository, "--tag", tag,
             *aws.cli_args()],
            expect=ReturnType.ANY,
        ).sync()  # fmt: skip
        if await existing.exit_code() == 0:
            return (await existing.stdout()).strip()
        login = await tools.with_exec(
            ["bikeshare", "ecr-login", "--password-file", ECR_PASSWORD_FILE, *aws.cli_args()]
        ).sync()
        registry = (await login.stdout()).strip()
        password = dag.set_secret(
            f"ecr-password-{registry}", await login.file(ECR_PASSWORD_FILE).contents()
        )
        image = await self.build(platform)
        return await image.with_registry_auth(registry, "AWS", password).publish(
            f"{repository_url}:{tag}", media_types=dagger.ImageMediaTypes.DockerMediaTypes
        )

    @function(cache="never")
    async def upload_model(
        self,
        bucket: Annotated[str, Doc("S3 bucket for model archives (Terraform output model_bucket)")],
        model: Annotated[
            dagger.File | None, Doc("model.tar.gz (default: one trained from this commit)")
        ] = None,
        prefix: Annotated[str, Doc("Key prefix; archives land under PREFIX/SHA256/")] = "models",
    ) -> str:
        """Upload a packaged model under its sha256 (idempotent) and return its s3:// URI."""
        aws = self._require_aws()
        uploaded = (
            self._release_tools()
            .with_mounted_file("/input/model.tar.gz", model or self.model())
            .with_exec(["bikeshare", "upload-model", "/input/model.tar.gz", "--bucket", bucket,
                        "--prefix", prefix, "--git-sha", self.git_sha, *aws.cli_args()])
        )  # fmt: skip
        return (await uploaded.stdout()).strip()

    @function(cache="never")
    async def deploy(
        self,
        endpoint_name: Annotated[str, Doc("SageMaker endpoint, e.g. bikeshare-staging")],
        image_uri: Annotated[str, Doc("Serving image by digest (what publish returns)")],
        model_data: Annotated[str, Doc("s3:// URI of model.tar.gz (what upload-model returns)")],
        instance_type: Annotated[str, Doc("e.g. ml.m5.large")],
        execution_role_arn: Annotated[str, Doc("SageMaker execution role (Terraform output)")],
        alarms: Annotated[
            list[str] | None, Doc("CloudWatch alarms that roll the update back")
        ] = None,
        strategy: Annotated[str, Doc("all-at-once, canary or linear")] = "all-at-once",
        instance_count: Annotated[int, Doc("Instances behind the endpoint")] = 1,
        dry_run: Annotated[bool, Doc("Print the plan and change nothing")] = False,
    ) -> dagger.Directory:
        """Blue/green deploy, verify, smoke-test, roll back on failure; returns summary.md and
        outcome (`deploy ... export --path run`)."""
        args = ["deploy", "--image-uri", image_uri, "--model-data", model_data,
                *_release_args(endpoint_name, instance_type, execution_role_arn, alarms, strategy,
                               instance_count, dry_run)]  # fmt: skip
        step, report = await self._release_command("deploy", args)
        chain = self._with_laptop_keys("deploy", endpoint_name=endpoint_name, image_uri=image_uri,
                                       model_data=model_data, instance_type=instance_type,
                                       execution_role_arn=execution_role_arn, alarms=alarms,
                                       strategy=strategy, instance_count=instance_count,
                                       dry_run=True)  # fmt: skip
        return self._run_directory(f"deploy to {endpoint_name}", [step], [report], chain)

    @function(cache="never")
    async def promote(
        self,
        from_endpoint: Annotated[str, Doc("The staging endpoint whose release is promoted")],
        endpoint_name: Annotated[str, Doc("The production endpoint, e.g. bikeshare-prod")],
        instance_type: Annotated[str, Doc("e.g. ml.m5.large")],
        execution_role_arn: Annotated[str, Doc("SageMaker execution role (Terraform output)")],
        alarms: Annotated[
            list[str] | None, Doc("CloudWatch alarms that roll the update back")
        ] = None,
        override_model_data: Annotated[
            str, Doc("s3:// model.tar.gz to promote instead of the one staging serves")
        ] = "",
        strategy: Annotated[str, Doc("all-at-once, canary or linear")] = "all-at-once",
        instance_count: Annotated[int, Doc("Instances behind the endpoint")] = 1,
        dry_run: Annotated[bool, Doc("Show what would be promoted and change nothing")] = False,
    ) -> dagger.Directory:
        """Deploy to production exactly what staging serves (image digest, model data) with the
        same verification, smoke test and rollback; returns summary.md and outcome."""
        args = ["promote", "--from-endpoint", from_endpoint,
                *(["--override-model-data", override_model_data] if override_model_data else []),
                *_release_args(endpoint_name, instance_type, execution_role_arn, alarms, strategy,
                               instance_count, dry_run)]  # fmt: skip
        step, report = await self._release_command("promote", args)
        chain = self._with_laptop_keys("promote", from_endpoint=from_endpoint,
                                       endpoint_name=endpoint_name, instance_type=instance_type,
                                       execution_role_arn=execution_role_arn, alarms=alarms,
                                       override_model_data=override_model_data,
                                       strategy=strategy, instance_count=instance_count,
                                       dry_run=True)  # fmt: skip
        return self._run_directory(f"promote to {endpoint_name}", [step], [report], chain)

    @function(cache="never")
    async def rollback(
        self,
        endpoint_name: Annotated[str, Doc("The endpoint to roll back")],
        to_config: Annotated[
            str, Doc("Endpoint config to serve (default: the previous verified release)")
        ] = "",
    ) -> dagger.Directory:
        """Point the endpoint back at a previous config and verify it serves it."""
        args = ["rollback", "--endpoint-name", endpoint_name,
                *(["--to-config", to_config] if to_config else [])]  # fmt: skip
        step, report = await self._release_command("rollback", args)
        chain = self._with_laptop_keys("status", endpoint_name=endpoint_name)
        return self._run_directory(f"rollback of {endpoint_name}", [step], [report], chain)

    @function(cache="never")
    async def smoke(self, endpoint_name: Annotated[str, Doc("The endpoint to invoke")]) -> str:
        """Invoke the endpoint with its model's own serving example and check the answer."""
        return await self._bikeshare(["smoke", "--endpoint-name", endpoint_name])

    @function(cache="never")
    async def status(self, endpoint_name: Annotated[str, Doc("The endpoint to describe")]) -> str:
        """What the endpoint serves now, what it served before, and the deployment record."""
        return await self._bikeshare(["status", "--endpoint-name", endpoint_name])

    @function(cache="never")
    async def logs(
        self,
        endpoint_name: Annotated[str, Doc("The endpoint whose container logs to print")],
        since: Annotated[str, Doc("How far back: 45s, 30m, 2h, 1d")] = "30m",
    ) -> str:
        """The endpoint's CloudWatch logs since --since."""
        return await self._bikeshare(["logs", "--endpoint-name", endpoint_name, "--since", since])

    @function(cache="never")
    async def cd_staging(
        self,
        repository_url: Annotated[str, Doc("ECR repository URL (Terraform output)")],
        endpoint_name: Annotated[str, Doc("The staging endpoint, e.g. bikeshare-staging")],
        instance_type: Annotated[str, Doc("e.g. ml.m5.large")],
        execution_role_arn: Annotated[str, Doc("SageMaker execution role (Terraform output)")],
        model_bucket: Annotated[str, Doc("S3 bucket for model archives (Terraform output)")] = "",
        model_data: Annotated[
            str, Doc("s3:// model.tar.gz to deploy instead of training one from this commit")
        ] = "",
        alarms: Annotated[
            list[str] | None, Doc("CloudWatch alarms that roll the update back")
        ] = None,
        strategy: Annotated[str, Doc("all-at-once, canary or linear")] = "all-at-once",
        platform: Annotated[str, Doc("Target platform of the image")] = PLATFORM,
    ) -> dagger.Directory:
        """Build, publish, upload the model, deploy blue/green, verify, smoke-test and roll back
        on failure; returns summary.md (the job summary) and outcome, also when it failed."""
        steps: list[StepResult] = []
        reports: list[str] = []
        image_uri = await _step(
            steps, "build and publish image", self.publish(repository_url, platform=platform)
        )
        if model_data:
            uri = model_data
        elif not model_bucket:
            uri = None
            steps.append(
                StepResult(
                    "upload model",
                    False,
                    0.0,
                    "pass --model-bucket or " "--model-data: there is no model to deploy",
                )
            )
        else:
            uri = await _step(steps, "train and upload model", self.upload_model(model_bucket))
        if image_uri is None or uri is None:
            steps.append(StepResult("deploy, verify, smoke", False, 0.0, skipped=True))
        else:
            args = ["deploy", "--image-uri", image_uri, "--model-data", uri,
                    *_release_args(endpoint_name, instance_type, execution_role_arn, alarms,
                                   strategy, 1, False)]  # fmt: skip
            step, report = await self._release_command("deploy, verify, smoke", args)
            steps.append(step)
            reports.append(report)
        return self._run_directory(f"cd-staging to {endpoint_name}", steps, reports, "rehearse")

    # ---- helpers (not functions) ---------------------------------------------------------------

    def _tools(self, fresh: bool = False) -> dagger.Container:
        return self._fresh(containers.tools_container(self.source), fresh)

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

    def _require_aws(self) -> AwsAccess:
        if self.aws is None:
            raise ValueError(
                "no AWS credentials: call with-aws-oidc (GitHub Actions) or with-aws-keys "
                "(e.g. --access-key-id=env://AWS_ACCESS_KEY_ID) before this function"
            )
        return self.aws

    def _release_tools(self) -> dagger.Container:
        """The tools container with credentials and a per-call token: never a cache replay."""
        tools = self._require_aws().apply(self._tools())
        return containers.with_run_token(tools, uuid.uuid4().hex)

    async def _bikeshare(self, args: list[str]) -> str:
        aws = self._require_aws()
        return await self._release_tools().with_exec(["bikeshare", *args, *aws.cli_args()]).stdout()

    async def _release_command(self, name: str, args: list[str]) -> tuple[StepResult, str]:
        """Run a release command; its Markdown report and outcome, also when it failed."""
        aws = self._require_aws()
        started = time.monotonic()
        ran = await (
            self._release_tools()
            .with_directory(REPORT_DIR, dag.directory())
            .with_exec(
                ["bikeshare", *args, "--git-sha", self.git_sha,
                 "--report", f"{REPORT_DIR}/report.md", *aws.cli_args()],
                expect=ReturnType.ANY,
            )
            .sync()
        )  # fmt: skip
        code = await ran.exit_code()
        seconds = time.monotonic() - started
        files = await ran.directory(REPORT_DIR).entries()
        report = await ran.file(f"{REPORT_DIR}/report.md").contents() if files else ""
        detail = (
            "" if code == 0 else f"bikeshare {args[0]} exited {code}:\n{tail(await ran.stderr())}"
        )
        return StepResult(name, code == 0, seconds, detail), report

    def _with_laptop_keys(self, function: str, **arguments: object) -> str:
        """`function --name=value ...` after a laptop's credentials, for the reproduce line."""
        region = self.aws.region if self.aws else "REGION"
        keys = ("with-aws-keys --access-key-id=env://AWS_ACCESS_KEY_ID "
                "--secret-access-key=env://AWS_SECRET_ACCESS_KEY "
                f"--session-token=env://AWS_SESSION_TOKEN --region={region}")  # fmt: skip
        flags = [_flag(name, value) for name, value in arguments.items()]
        return " ".join([keys, function, *(flag for flag in flags if flag)])

    def _run_directory(
        self, title: str, steps: list[StepResult], reports: list[str], chain: str
    ) -> dagger.Directory:
        """summary.md and outcome: what the workflows put in the job summary and fail on."""
        ok = all(s.passed or s.skipped for s in steps)
        real = (
            "A real re-run needs AWS access (`with-aws-keys ...` before the function, without "
            "`--dry-run`); production changes only through the approved GitHub workflow."
        )
        summary = run_report(
            title,
            steps,
            reports,
            reproduce_line(self.github_repository, self.git_sha, chain),
            real,
        )
        return (
            dag.directory()
            .with_new_file(SUMMARY_FILE, summary)
            .with_new_file(OUTCOME_FILE, SUCCEEDED if ok else FAILED)
        )

    async def _version(self) -> str:
        pyproject = tomllib.loads(await self.source.file("pyproject.toml").contents())
        return pyproject["project"]["version"]


def _release_args(
    endpoint_name: str,
    instance_type: str,
    execution_role_arn: str,
    alarms: list[str] | None,
    strategy: str,
    instance_count: int,
    dry_run: bool,
) -> list[str]:
    """The `bikeshare deploy|promote` options both share."""
    alarm_args = [arg for name in alarms or [] if name for arg in ("--alarm", name)]
    return [
        "--endpoint-name", endpoint_name, "--instance-type", instance_type,
        "--role-arn", execution_role_arn, "--strategy", strategy,
        "--instance-count", str(instance_count), *alarm_args,
        *(["--dry-run"] if dry_run else []),
    ]  # fmt: skip


def _flag(name: str, value: object) -> str:
    """One `dagger call` flag as a person types it ('' when the value is unset)."""
    option = "--" + name.replace("_", "-")
    if value is True:
        return option
    if value in ("", None, False) or value == []:
        return ""
    shown = ",".join(value) if isinstance(value, list) else value
    return f"{option}={shown}"


async def _now(container: dagger.Container) -> dagger.Container:
    return await container.sync()


async def _record_check(
    name: str, run: Callable[[], Awaitable[dagger.Container]], results: list[StepResult]
) -> None:
    """Run one check and record its outcome; never raises, so sibling checks keep running."""
    started = time.monotonic()
    try:
        await (await run()).sync()
    except dagger.ExecError as error:
        detail = f"$ {' '.join(error.command)}\n{tail(error.stderr or error.stdout)}"
        results.append(StepResult(name, False, time.monotonic() - started, detail))
    except Exception as error:  # any failure is this check's result, not ci's
        results.append(StepResult(name, False, time.monotonic() - started, str(error)))
    else:
        results.append(StepResult(name, True, time.monotonic() - started))


async def _step(steps: list[StepResult], name: str, work: Awaitable[T]) -> T | None:
    """Run one CD step after the previous ones passed; record its result and duration."""
    if any(not s.passed for s in steps):
        steps.append(StepResult(name, False, 0.0, skipped=True))
        work.close()  # type: ignore[attr-defined]  # the coroutine never runs
        return None
    started = time.monotonic()
    try:
        value = await work
    except dagger.ExecError as error:
        detail = f"$ {' '.join(error.command)}\n{tail(error.stderr or error.stdout)}"
        steps.append(StepResult(name, False, time.monotonic() - started, detail))
        return None
    except Exception as error:  # the report says what failed, and the job fails
        steps.append(StepResult(name, False, time.monotonic() - started, str(error)))
        return None
    steps.append(StepResult(name, True, time.monotonic() - started))
    return value
