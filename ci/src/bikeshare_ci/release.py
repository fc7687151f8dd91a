"""The release functions, reachable only through `with-aws-oidc` or `with-aws-keys`.

`Release` carries the credentials, so a release function without them cannot even be typed:
`dagger call with-aws-keys ... deploy ...`. Every function here changes or reads AWS, so none is
ever served from Dagger's cache. The work itself is the `bikeshare` CLI from src/.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import dagger
from dagger import Doc, ReturnType, dag, function, object_type

from . import containers
from .aws import AwsAccess
from .report import (
    FAILED,
    OUTCOME_FILE,
    SUCCEEDED,
    SUMMARY_FILE,
    StepResult,
    output_tail,
    reproduce_line,
    run_report,
)

PLATFORM = "linux/amd64"  # ml.m5.* instances are x86-64
REPORT_DIR = "/run/bikeshare"  # where release commands write their Markdown report
REPORT_FILE = f"{REPORT_DIR}/report.md"
# A path, not a password: ecr-login writes the password here; it never reaches stdout.
ECR_LOGIN_DIR = "/run/ecr"
ECR_PASSWORD_FILE = f"{ECR_LOGIN_DIR}/password"  # nosec B105
#: The tag publish would use without --git-sha or --tag: refused, since ECR tags are immutable.
UNSET_GIT_SHA = "dev"
#: cd-staging without a model: CD ships a model someone trained and uploaded, never one of its own.
NO_MODEL = (
    "no model to deploy, nothing was changed: pass --model-data=s3://BUCKET/models/SHA256/"
    "model.tar.gz (the workflow's S3_MODEL_TAR variable), a model uploaded with upload-model; "
    'CD never trains one (docs/guide.md, "Shipping a model trained on real data")'
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: Where replay puts the release's model (as SageMaker does) and its probe.
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
REPLAY_MODEL_DIR = "/run/replay/model"  # in the tools container, before it moves to the image
REPLAY_PROBE_DIR = "/opt/bikeshare-replay"
REPLAY_PAYLOAD = f"{REPLAY_PROBE_DIR}/payload.json"
SERVING_EXAMPLE = f"{SAGEMAKER_MODEL_DIR}/serving_input_example.json"
#: What a promote dry run pins, beside summary.md: the plan job prints it as its job output.
PLAN_FILE = "plan.json"
PLAN_KEYS = {"from_endpoint", "config", "image_uri", "model_data", "override"}
#: The plan's fields `bikeshare promote` checks, and its option for each.
PIN_FLAGS = {
    "config": "--expect-config",
    "image_uri": "--expect-image",
    "model_data": "--expect-model-data",
}

T = TypeVar("T")


def by_digest(reference: str) -> str:
    """`REPO@sha256:...`: one form for a first push and for a re-run that finds the tag.

    The engine's publish keeps the tag (`reference.WithDigest` on the parsed name), while
    `bikeshare image-digest` prints the digest form; CreateModel and the release records get
    the same string either way.
    """
    name, at, digest = reference.strip().partition("@")
    if not at or not _DIGEST.fullmatch(digest) or "/" not in name:
        raise ValueError(f"{reference!r} is not an image reference with a sha256 digest")
    # A tag can only follow the last path component; a registry's port is in the first.
    path, _, last = name.rpartition("/")
    return f"{path}/{last.partition(':')[0]}@{digest}"


@object_type
class Release:
    """Release functions with AWS credentials: publish, upload-model, deploy, smoke, status,
    logs, rollback, promote, cd-staging, and replay (a release served and smoked locally)."""

    source: Annotated[dagger.Directory, Doc("The repository")]
    git_sha: Annotated[str, Doc("Commit being released")]
    github_repository: Annotated[str, Doc("OWNER/NAME on GitHub, for reproduce lines")]
    base_image: Annotated[str, Doc("Python base image of the tools and serving images")]
    aws: Annotated[AwsAccess, Doc("How the release containers reach AWS")]

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
        """Push the serving image and return it as REGISTRY/REPOSITORY@sha256:....

        Docker v2 media types (SageMaker rejects OCI manifests); when the tag exists already,
        its digest, in the same form.
        """
        tag = tag or self._commit_tag()
        repository = repository_url.partition("/")[2]
        tools = self._tools()
        existing = await tools.with_exec(
            ["bikeshare", "image-digest", "--repository", repository, "--tag", tag,
             *self.aws.cli_args()],
            expect=ReturnType.ANY,
        ).sync()  # fmt: skip
        if await existing.exit_code() == 0:
            return by_digest(await existing.stdout())
        registry, password = await self._ecr_login()
        image = await containers.labelled_serving_image(
            self.source, self.base_image, platform, self.git_sha, self.github_repository
        )
        published = await image.with_registry_auth(registry, "AWS", password).publish(
            f"{repository_url}:{tag}", media_types=dagger.ImageMediaTypes.DockerMediaTypes
        )
        return by_digest(published)

    @function(cache="never")
    async def upload_model(
        self,
        bucket: Annotated[str, Doc("S3 bucket for model archives (Terraform output model_bucket)")],
        model: Annotated[
            dagger.File, Doc("model.tar.gz to upload (`model ... export`, `bikeshare package`)")
        ],
        prefix: Annotated[str, Doc("Key prefix; archives land under PREFIX/SHA256/")] = "models",
    ) -> str:
        """Upload a packaged model under its sha256 (idempotent) and return its s3:// URI."""
        uploaded = (
            self._tools()
            .with_mounted_file("/input/model.tar.gz", model)
            .with_exec(["bikeshare", "upload-model", "/input/model.tar.gz", "--bucket", bucket,
                        "--prefix", prefix, "--git-sha", self.git_sha, *self.aws.cli_args()])
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
        """Blue/green deploy, verify, smoke-test, and roll back on failure.

        Returns summary.md and outcome (`deploy ... export --path=run`).
        """
        args = ["deploy", "--image-uri", image_uri, "--model-data", model_data,
                *self._rollout_args(endpoint_name, instance_type, execution_role_arn, alarms,
                                    strategy, instance_count, dry_run)]  # fmt: skip
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
        plan: Annotated[
            str | None,
            Doc(
                "The approved plan: the plan job's output, whose last line is the release a "
                "--dry-run pinned (its plan.json); deploy exactly that or refuse (unset: what "
                "staging serves now)"
            ),
        ] = None,
    ) -> dagger.Directory:
        """Deploy to production exactly what staging serves (image digest, model data).

        A dry run pins what it shows (staging's config, its image by digest, the model data to
        ship, the override included) and returns it as plan.json beside summary.md and outcome;
        given --plan, promote ships exactly that release or refuses, changing nothing. The same
        verification, smoke test and rollback as deploy.
        """
        steps: list[StepResult] = []
        pins = await self._promotion_pins(steps, from_endpoint, override_model_data, plan, dry_run)
        reports = [_pins_markdown(pins, dry_run)] if pins else []
        if steps and not steps[-1].passed:
            steps.append(StepResult("promote", False, 0.0, skipped=True))
        else:
            args = ["promote", "--from-endpoint", from_endpoint,
                    *(["--override-model-data", override_model_data] if override_model_data
                      else []),
                    *(arg for name in PIN_FLAGS if pins for arg in (PIN_FLAGS[name], pins[name])),
                    *self._rollout_args(endpoint_name, instance_type, execution_role_arn, alarms,
                                        strategy, instance_count, dry_run)]  # fmt: skip
            step, report = await self._release_command("promote", args)
            steps.append(step)
            reports.insert(0, report)
        chain = self._with_laptop_keys("promote", from_endpoint=from_endpoint,
                                       endpoint_name=endpoint_name, instance_type=instance_type,
                                       execution_role_arn=execution_role_arn, alarms=alarms,
                                       override_model_data=override_model_data,
                                       strategy=strategy, instance_count=instance_count,
                                       dry_run=True)  # fmt: skip
        run = self._run_directory(f"promote to {endpoint_name}", steps, reports, chain)
        if pins and dry_run and steps[-1].passed:  # what the plan job hands the gated job
            run = run.with_new_file(PLAN_FILE, json.dumps(pins, sort_keys=True) + "\n")
        return run

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
    async def replay(
        self,
        image_uri: Annotated[
            str, Doc("The release's image by digest, REPO@sha256:... (the failed run names it)")
        ] = "",
        model_data: Annotated[str, Doc("The release's s3:// model.tar.gz")] = "",
        endpoint_name: Annotated[
            str, Doc("Instead of the two above: replay what this endpoint serves")
        ] = "",
        config: Annotated[
            str, Doc("With --endpoint-name: replay this endpoint config of it instead")
        ] = "",
        payload: Annotated[
            dagger.File | None,
            Doc("Smoke request JSON (default: the model's own serving example)"),
        ] = None,
        keep_failed: Annotated[
            bool, Doc("Return the container of a failed replay instead of failing, to explore it")
        ] = False,
    ) -> dagger.Container:
        """Serve one release's exact image and model locally, as SageMaker does, and smoke it.

        Pulls the image by digest from ECR, downloads the model archive (its sha256 checked
        against its key), unpacks it at /opt/ml/model, starts the image's `serve`, waits for
        /ping and sends the smoke request with the checks of `smoke`. A failure names its step
        (start, ping or invoke) with the server's last log lines. Returns the container: its
        stdout is the verdict and the log; `terminal` opens a shell in it.
        """
        image_uri, model_data = await self._release_to_replay(
            image_uri, model_data, endpoint_name, config
        )
        image = await self._release_image(image_uri)
        serving = image.with_directory(SAGEMAKER_MODEL_DIR, self._release_model(model_data))
        probe = (
            dag.directory()
            .with_file("replay.py", self.source.file("src/bikeshare/deploy/replay.py"))
            .with_file("answers.py", self.source.file("src/bikeshare/serving/answers.py"))
        )
        serving = serving.with_directory(REPLAY_PROBE_DIR, probe)
        request = SERVING_EXAMPLE
        if payload is not None:
            serving, request = serving.with_file(REPLAY_PAYLOAD, payload), REPLAY_PAYLOAD
        serve = [*await image.entrypoint(), "serve"]
        ran = (
            await containers.with_run_token(serving, uuid.uuid4().hex)
            .with_exec(
                ["python3", f"{REPLAY_PROBE_DIR}/replay.py", "--payload", request, "--", *serve],
                expect=ReturnType.ANY,
            )
            .sync()
        )
        if await ran.exit_code() != 0 and not keep_failed:
            raise ReplayFailed(
                f"replay of {image_uri} with {model_data}:\n{(await ran.stdout()).rstrip()}"
            )
        return ran

    @function(cache="never")
    async def replay_service(
        self,
        image_uri: Annotated[str, Doc("The release's image by digest, REPO@sha256:...")] = "",
        model_data: Annotated[str, Doc("The release's s3:// model.tar.gz")] = "",
        endpoint_name: Annotated[
            str, Doc("Instead of the two above: what this endpoint serves")
        ] = "",
        config: Annotated[str, Doc("With --endpoint-name: this endpoint config of it")] = "",
    ) -> dagger.Service:
        """One release's image serving its model on port 8080, as a SageMaker instance does.

        `up --ports 8080:8080`, then send it requests from the laptop.
        """
        image_uri, model_data = await self._release_to_replay(
            image_uri, model_data, endpoint_name, config
        )
        image = await self._release_image(image_uri)
        return (
            image.with_directory(SAGEMAKER_MODEL_DIR, self._release_model(model_data))
            .with_exposed_port(8080)
            .as_service(args=["serve"], use_entrypoint=True)
        )

    @function(cache="never")
    async def cd_staging(
        self,
        repository_url: Annotated[str, Doc("ECR repository URL (Terraform output)")],
        endpoint_name: Annotated[str, Doc("The staging endpoint, e.g. bikeshare-staging")],
        instance_type: Annotated[str, Doc("e.g. ml.m5.large")],
        execution_role_arn: Annotated[str, Doc("SageMaker execution role (Terraform output)")],
        model_data: Annotated[
            str, Doc("s3:// URI of the model.tar.gz to ship (upload-model's; the S3_MODEL_TAR var)")
        ],
        alarms: Annotated[
            list[str] | None, Doc("CloudWatch alarms that roll the update back")
        ] = None,
        strategy: Annotated[str, Doc("all-at-once, canary or linear")] = "all-at-once",
        platform: Annotated[str, Doc("Target platform of the image")] = PLATFORM,
    ) -> dagger.Directory:
        """Build and publish the image, deploy it with the given model, smoke, roll back on failure.

        Returns summary.md (the job summary) and outcome, also when it failed. CD never trains a
        model: it ships the one named by --model-data.
        """
        steps: list[StepResult] = []
        reports: list[str] = []
        uri = model_data.strip() or None
        if uri is None:  # refused before anything is built or pushed
            steps.append(StepResult("model", False, 0.0, NO_MODEL))
            image_uri = None
            steps.append(StepResult("build and publish image", False, 0.0, skipped=True))
        else:
            image_uri = await _step(
                steps, "build and publish image", self.publish(repository_url, platform=platform)
            )
        if image_uri is None or uri is None:
            steps.append(StepResult("deploy, verify, smoke", False, 0.0, skipped=True))
        else:
            args = ["deploy", "--image-uri", image_uri, "--model-data", uri,
                    *self._rollout_args(endpoint_name, instance_type, execution_role_arn,
                                        alarms, strategy, 1, False)]  # fmt: skip
            step, report = await self._release_command("deploy, verify, smoke", args)
            steps.append(step)
            reports.append(report)
        replay = ""
        if image_uri is not None and uri is not None and not steps[-1].passed:
            replay = self._with_laptop_keys("replay", image_uri=image_uri, model_data=uri)
        return self._run_directory(
            f"cd-staging to {endpoint_name}", steps, reports, "rehearse" if uri else "", replay
        )

    # ---- helpers (not functions) ---------------------------------------------------------------

    def _commit_tag(self) -> str:
        if self.git_sha == UNSET_GIT_SHA:
            raise ValueError(
                "publish needs the commit: pass --git-sha=COMMIT before the first function, or "
                "--tag=TAG to publish; ECR tags are immutable, so a fixed 'dev' tag would return "
                "the first image ever pushed under it"
            )
        return self.git_sha[:12]

    async def _ecr_login(self) -> tuple[str, dagger.Secret]:
        """The ECR registry's address and a password for it, as a secret (never in stdout)."""
        login_command = ["bikeshare", "ecr-login", "--password-file", ECR_PASSWORD_FILE]
        login = await (
            self._tools()
            .with_directory(ECR_LOGIN_DIR, dag.directory())
            .with_exec([*login_command, *self.aws.cli_args()])
            .sync()
        )
        registry = (await login.stdout()).strip()
        password = dag.set_secret(
            f"ecr-password-{registry}", await login.file(ECR_PASSWORD_FILE).contents()
        )
        return registry, password

    async def _release_to_replay(
        self, image_uri: str, model_data: str, endpoint_name: str, config: str
    ) -> tuple[str, str]:
        """The image and model data to replay: given, or read from the endpoint's release."""
        if endpoint_name:
            if image_uri or model_data:
                raise ValueError("pass --endpoint-name, or --image-uri and --model-data, not both")
            args = ["release-of", "--endpoint-name", endpoint_name, "--config", config]
            release = json.loads(await self._bikeshare(args))
            return release["image_uri"], release["model_data"]
        if not image_uri or not model_data:
            raise ValueError(
                "replay needs --image-uri and --model-data (the failed run's report names both), "
                "or --endpoint-name [--config]"
            )
        return by_digest(image_uri), model_data

    async def _release_image(self, image_uri: str) -> dagger.Container:
        """The release's image, pulled by digest from its registry with ECR credentials."""
        registry, password = await self._ecr_login()
        base = dag.container(platform=dagger.Platform(PLATFORM))
        if image_uri.startswith(f"{registry}/"):
            base = base.with_registry_auth(registry, "AWS", password)
        return base.from_(image_uri)

    def _release_model(self, model_data: str) -> dagger.Directory:
        """The release's model archive, downloaded, checked and unpacked as SageMaker does."""
        return (
            self._tools()
            .with_directory(REPLAY_MODEL_DIR, dag.directory())
            .with_exec(["bikeshare", "fetch-model", "--model-data", model_data,
                        "--output", REPLAY_MODEL_DIR, *self.aws.cli_args()])
            .directory(REPLAY_MODEL_DIR)
        )  # fmt: skip

    def _tools(self) -> dagger.Container:
        """The tools container with credentials and a per-call token: never a cache replay."""
        tools = self.aws.apply(containers.tools_container(self.source, self.base_image))
        return containers.with_run_token(tools, uuid.uuid4().hex)

    async def _bikeshare(self, args: list[str]) -> str:
        return await self._tools().with_exec(["bikeshare", *args, *self.aws.cli_args()]).stdout()

    async def _promotion_pins(
        self,
        steps: list[StepResult],
        from_endpoint: str,
        override_model_data: str,
        plan: str | None,
        dry_run: bool,
    ) -> dict[str, str] | None:
        """The release this promotion must ship: the approved plan's, or (a dry run, which is
        the plan) what staging serves now; None for an unpinned run. A failure is a step."""
        if plan is not None:
            try:
                pins = pins_from_plan(plan, from_endpoint)
            except ValueError as error:
                steps.append(StepResult("the approved plan", False, 0.0, str(error)))
                return None
            steps.append(StepResult("the approved plan", True, 0.0))
            return pins
        if not dry_run:
            return None
        read = self._staging_pins(from_endpoint, override_model_data)
        return await _step(steps, f"what {from_endpoint} serves", read)

    async def _staging_pins(self, from_endpoint: str, override_model_data: str) -> dict[str, str]:
        """What staging serves now (`release-of`), as the pins a plan hands the approved run."""
        args = ["release-of", "--endpoint-name", from_endpoint]
        release = json.loads(await self._bikeshare(args))
        return {
            "from_endpoint": from_endpoint,
            "config": release["config"],
            "image_uri": by_digest(release["image_uri"]),
            "model_data": override_model_data or release["model_data"],
            "override": "yes" if override_model_data else "no",
        }

    def _rollout_args(
        self,
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
            "--execution-role-arn", execution_role_arn, "--strategy", strategy,
            "--instance-count", str(instance_count), *alarm_args, "--git-sha", self.git_sha,
            *(["--dry-run"] if dry_run else []),
        ]  # fmt: skip

    async def _release_command(self, name: str, args: list[str]) -> tuple[StepResult, str]:
        """Run a release command; its Markdown report and outcome, also when it failed."""
        started = time.monotonic()
        ran = await (
            self._tools()
            .with_directory(REPORT_DIR, dag.directory())
            .with_exec(
                ["bikeshare", *args, "--report", REPORT_FILE, *self.aws.cli_args()],
                expect=ReturnType.ANY,
            )
            .sync()
        )
        code = await ran.exit_code()
        seconds = time.monotonic() - started
        files = await ran.directory(REPORT_DIR).entries()
        report = await ran.file(REPORT_FILE).contents() if files else ""
        detail = ""
        if code != 0:
            output = output_tail(await ran.stdout(), await ran.stderr())
            detail = f"bikeshare {args[0]} exited {code}:\n{output}"
        return StepResult(name, code == 0, seconds, detail), report

    def _with_laptop_keys(self, function: str, **arguments: object) -> str:
        """`function --name=value ...` after a laptop's credentials, for the reproduce line.

        No --session-token: `env://` fails when the variable is unset, and long-lived keys have
        none; the report says to add it for temporary (SSO) keys.
        """
        keys = (
            "with-aws-keys --access-key-id=env://AWS_ACCESS_KEY_ID "
            f"--secret-access-key=env://AWS_SECRET_ACCESS_KEY --region={self.aws.region}"
        )
        if self.aws.endpoint_url:  # the same AWS: LocalStack, the stand-in, a private endpoint
            keys += f" --endpoint-url={self.aws.endpoint_url}"
        flags = [_flag(name, value) for name, value in arguments.items()]
        return " ".join([keys, function, *(flag for flag in flags if flag)])

    def _constructor_flags(self, chain: str) -> str:
        """The chain after the constructor's other non-default inputs (a mirror's base image)."""
        if self.base_image and self.base_image != containers.PYTHON_BASE:
            return f"--base-image={self.base_image} {chain}"
        return chain

    def _run_directory(
        self,
        title: str,
        steps: list[StepResult],
        reports: list[str],
        chain: str,
        replay: str = "",
    ) -> dagger.Directory:
        """summary.md and outcome: what the workflows put in the job summary and fail on."""
        ok = all(s.passed or s.skipped for s in steps)
        real = (
            "With temporary keys (an SSO session), add "
            "`--session-token=env://AWS_SESSION_TOKEN` after `with-aws-keys`. A real re-run "
            "needs AWS access and no `--dry-run`; production changes only through the approved "
            "GitHub workflow."
        )
        module = (self.github_repository, self.git_sha)
        summary = run_report(
            title,
            steps,
            reports,
            reproduce_line(*module, self._constructor_flags(chain)) if chain else "",
            real,
            replay=reproduce_line(*module, self._constructor_flags(replay)) if replay else "",
        )
        return (
            dag.directory()
            .with_new_file(SUMMARY_FILE, summary)
            .with_new_file(OUTCOME_FILE, SUCCEEDED if ok else FAILED)
        )


def pins_from_plan(plan: str, from_endpoint: str) -> dict[str, str]:
    """The pinned release in the plan job's output: its last non-empty line, plan.json.

    The job output is the plan step's whole stdout (the dagger shell prints each export's path
    first), so only the last line counts; anything else there is refused, never guessed at.
    """
    lines = [line.strip() for line in plan.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    try:
        pins = json.loads(last)
    except json.JSONDecodeError:
        pins = None
    if (
        not isinstance(pins, dict)
        or set(pins) != PLAN_KEYS
        or not all(isinstance(value, str) and value for value in pins.values())
    ):
        raise ValueError(
            f"the approved plan names no release (its last line is {last[:200]!r}, not the "
            f"JSON of {PLAN_FILE}); nothing was changed: run the workflow again from its plan"
        )
    if pins["from_endpoint"] != from_endpoint:
        raise ValueError(
            f"the approved plan promotes from {pins['from_endpoint']}, not {from_endpoint}; "
            "nothing was changed"
        )
    return pins


def _pins_markdown(pins: dict[str, str], dry_run: bool) -> str:
    """The pinned release in the job summary: what reviewers approve, what the gated job got."""
    heading = (
        "The release this plan pins (the promote job ships exactly this, or refuses)"
        if dry_run
        else "The approved plan's release (shipped exactly, or refused and nothing changed)"
    )
    source = (
        "the override (`override_model_tar`), not staging's"
        if pins["override"] == "yes"
        else f"staging's ({_code_span(pins['from_endpoint'])})"
    )
    return "\n".join([
        f"### {heading}",
        "",
        f"- {_code_span(pins['from_endpoint'])} serves: {_code_span(pins['config'])}",
        f"- image: {_code_span(pins['image_uri'])}",
        f"- model data: {_code_span(pins['model_data'])}, {source}",
        "",
    ])  # fmt: skip


def _code_span(value: str) -> str:
    """`value` as one Markdown code span on one line, whatever it holds (the plan's values come
    from a job output). The same rule as bikeshare.deploy.report.code_span, which this module
    cannot import; test/pipeline/test_report_markup.py holds both to the same cases."""
    shown = re.sub(r"\r\n|\r|\n", r"\\n", value)
    if not shown:
        return "(empty)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", shown)), default=0) + 1)
    padded = f" {shown} " if shown[0] in "` " or shown[-1] in "` " else shown
    return f"{fence}{padded}{fence}"


class ReplayFailed(Exception):
    """A replayed release failed as it did in the CD run: the step, and the server's log."""


def _flag(name: str, value: object) -> str:
    """One `dagger call` flag as a person types it ('' when the value is unset)."""
    option = "--" + name.replace("_", "-")
    if value is True:
        return option
    if value in ("", None, False) or value == []:
        return ""
    shown = ",".join(value) if isinstance(value, list) else value
    return f"{option}={shown}"


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
        detail = f"$ {' '.join(error.command)}\n{output_tail(error.stdout, error.stderr)}"
        steps.append(StepResult(name, False, time.monotonic() - started, detail))
        return None
    except Exception as error:  # the report says what failed, and the job fails
        steps.append(StepResult(name, False, time.monotonic() - started, str(error)))
        return None
    steps.append(StepResult(name, True, time.monotonic() - started))
    return value
