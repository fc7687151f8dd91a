"""Every container the pipeline runs, defined once: pinned images, caches and the builders.

The tools and serving containers come from the repository's Dockerfile (targets `tools` and
`serving`): the very file the test suite builds with Docker, so there is one recipe for each.
"""

from __future__ import annotations

import tomllib

import dagger
from dagger import dag

from . import checks

#: = the Dockerfile's `ARG BASE_IMAGE` default (the suite checks they agree): python:3.11-slim by
#: tag and multi-platform digest, from docker-library/repo-info (see the Dockerfile's comment).
PYTHON_BASE = (
    "python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff"
)
#: actionlint from its own image (it cannot be installed from PyPI offline). Tag and digest as
#: published for 1.7.12 (read in two public pipelines that pin it; the first pull confirms it).
ACTIONLINT_IMAGE = (
    "rhysd/actionlint:1.7.12"
    "@sha256:b1934ee5f1c509618f2508e6eb47ee0d3520686341fec936f3b79331f9315667"
)
#: Terraform >= 1.10 (S3-native state locking, `use_lockfile`), by exact tag. Its digest could
#: not be read from here; Dependabot's docker updates and the first engine run pin it.
TERRAFORM_IMAGE = "hashicorp/terraform:1.13.3"

WORKSPACE = "/workspace"
ACTIONLINT_ROOT = "/repo"
UV_CACHE = "/root/.cache/uv"
TERRAFORM_PLUGIN_CACHE = "/root/.terraform.d/plugin-cache"
MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks model.tar.gz
SERVING_PORT = 8080  # SageMaker's contract
#: The cache-buster: a new value per side-effecting call, so no step is a cache replay.
RUN_TOKEN_VARIABLE = "BIKESHARE_RUN"  # noqa: S105  # nosec B105


def tools_image(source: dagger.Directory, base_image: str = PYTHON_BASE) -> dagger.Container:
    """The Dockerfile's `tools` target: the locked dev toolchain, dependencies only.

    Built from only what that target COPYs, so a source change never rebuilds it."""
    context = source.filter(include=list(checks.TOOLS_IMAGE_INPUTS))
    return context.docker_build(target="tools", build_args=[base_image_arg(base_image)])


def base_image_arg(base_image: str) -> dagger.BuildArg:
    """The Dockerfile's BASE_IMAGE; an empty value (an unset workflow variable) is the default."""
    return dagger.BuildArg(name="BASE_IMAGE", value=base_image or PYTHON_BASE)


def tools_container(
    source: dagger.Directory,
    base_image: str = PYTHON_BASE,
    inputs: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
) -> dagger.Container:
    """The tools image with the repository on top and the project installed from the lock.

    The lock's dependencies are in the image already; only the project itself installs here, so a
    source change costs seconds. uv's cache is a cache volume (checkov's tool environment too).
    `inputs` (checks.*_INPUTS, an area's inputs) narrows /workspace to the files a check reads,
    so a change to any other file leaves the check's steps cached; `exclude` drops files another
    check runs (an area's `elsewhere`), so editing them does not re-run this one.
    """
    # An empty exclude is the filter's default: the query, and so the cache key, omit it.
    workspace = (
        source if inputs is None else source.filter(include=list(inputs), exclude=list(exclude))
    )
    return (
        tools_image(source, base_image)
        .with_mounted_cache(UV_CACHE, dag.cache_volume("bikeshare-uv-cache"))
        .with_directory(WORKSPACE, workspace)
        .with_workdir(WORKSPACE)
        .with_exec(["uv", "sync", "--locked", "--all-extras"])
    )


def with_run_token(container: dagger.Container, token: str) -> dagger.Container:
    """Make every later step of `container` unique to this call, so it is never a cache replay."""
    return container.with_env_variable(RUN_TOKEN_VARIABLE, token)


def serving_image(
    source: dagger.Directory,
    model_runtime: str,
    base_image: str,
    platform: str,
    labels: dict[str, str],
) -> dagger.Container:
    """The Dockerfile's `serving` target (no model inside), labelled for what it carries; built
    from what its .dockerignore lets through, so only a change to those rebuilds it."""
    context = source.filter(include=list(checks.SERVING_IMAGE_INPUTS))
    image = context.docker_build(
        target="serving",
        platform=dagger.Platform(platform),
        build_args=[
            base_image_arg(base_image),
            dagger.BuildArg(name="MODEL_RUNTIME", value=model_runtime),
        ],
    )
    for name, value in labels.items():
        image = image.with_label(name, value)
    return image


async def labelled_serving_image(
    source: dagger.Directory,
    base_image: str,
    platform: str,
    git_sha: str,
    github_repository: str,
) -> dagger.Container:
    """The serving image labelled with the model runtime it carries (from uv.lock, which deploy
    checks models against), the commit, the version and the repository."""
    runtime = await (
        tools_container(source, base_image, checks.PROJECT_INPUTS)
        .with_exec(["bikeshare", "runtime-versions", "--lock", "uv.lock"])
        .stdout()
    )
    pyproject = tomllib.loads(await source.file("pyproject.toml").contents())
    labels = {
        "org.opencontainers.image.revision": git_sha,
        "org.opencontainers.image.version": pyproject["project"]["version"],
    }
    if github_repository:
        labels["org.opencontainers.image.source"] = f"https://github.com/{github_repository}"
    return serving_image(source, runtime.strip(), base_image, platform, labels)


def trained_model(
    tools: dagger.Container, seed: int = 0, data: dagger.File | None = None
) -> dagger.File:
    """A trained, packaged model.tar.gz: on `data` (a rides CSV) or, without it, on synthetic
    data (tests and rehearsals only; deterministic per seed)."""
    train = ["bikeshare", "train", "--output", "/build/model", "--seed", str(seed)]
    if data is not None:
        tools = tools.with_mounted_file(TRAINING_DATA, data)
        train += ["--data", TRAINING_DATA]
    return (
        tools.with_exec(train)
        .with_exec(["bikeshare", "package", "/build/model", "--output", "/build/model.tar.gz"])
        .file("/build/model.tar.gz")
    )


#: Where a training data file given to `model --data` is mounted.
TRAINING_DATA = "/input/rides.csv"


def unpacked_model(tools: dagger.Container, archive: dagger.File) -> dagger.Directory:
    """model.tar.gz unpacked the way SageMaker unpacks it into /opt/ml/model."""
    return (
        tools.with_mounted_file("/input/model.tar.gz", archive)
        .with_exec(["mkdir", "-p", MODEL_DIR])
        .with_exec(["tar", "-xzf", "/input/model.tar.gz", "-C", MODEL_DIR])
        .directory(MODEL_DIR)
    )


#: How often the engine re-runs the image's HEALTHCHECK while the server starts. The Dockerfile's
#: 30 s interval suits Docker's own monitoring, but the engine waits a whole interval after a
#: first probe that came too early (core/healthcheck.go); `--start-interval` is the fix, and the
#: legacy builder some machines build the Dockerfile with does not know that flag.
HEALTHCHECK_START_INTERVAL = "1s"


async def model_service(image: dagger.Container, model: dagger.Directory) -> dagger.Service:
    """The image run as SageMaker runs it: `docker run IMAGE serve`, model in /opt/ml/model.

    Ready when the image's own HEALTHCHECK (GET /ping) passes, re-run every second meanwhile.
    """
    check = image.docker_healthcheck()
    if await check.shell():
        raise ValueError("the Dockerfile's HEALTHCHECK must use the exec form: CMD [...]")
    return (
        image.with_directory(MODEL_DIR, model, owner="1000")
        .with_exposed_port(SERVING_PORT)
        .with_docker_healthcheck(
            await check.args(),
            timeout=await check.timeout(),
            start_period=await check.start_period(),
            start_interval=HEALTHCHECK_START_INTERVAL,
            retries=await check.retries(),
        )
        .as_service(args=["serve"], use_entrypoint=True)
    )


def terraform_container(infra: dagger.Directory, image: str = TERRAFORM_IMAGE) -> dagger.Container:
    """Terraform with its provider plugins in a cache volume, in the Terraform directory."""
    return (
        dag.container()
        .from_(image)
        .with_mounted_cache(TERRAFORM_PLUGIN_CACHE, dag.cache_volume("terraform-plugin-cache"))
        .with_env_variable("TF_PLUGIN_CACHE_DIR", TERRAFORM_PLUGIN_CACHE)
        .with_env_variable("TF_IN_AUTOMATION", "1")
        .with_directory("/infra", infra)
        .with_workdir("/infra")
    )


def actionlint_container(
    workflows: dagger.Directory, image: str = ACTIONLINT_IMAGE
) -> dagger.Container:
    """actionlint with the workflows at /repo/.github/workflows, run from /repo.

    There is no .git in here (the source leaves it out), so actionlint finds no project by
    itself: the check names the workflow files (checks.actionlint_command).
    """
    return (
        dag.container()
        .from_(image)
        .with_directory(f"{ACTIONLINT_ROOT}/{checks.WORKFLOWS}", workflows)
        .with_workdir(ACTIONLINT_ROOT)
    )
