"""Fixtures for the offline checks of the Dagger module (no engine anywhere)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dagger import dag
from dagger.client._core import Field

import bikeshare_ci
from bikeshare_ci.release import ECR_PASSWORD_FILE, REPORT_FILE
from support.container_files import replay
from support.dagger_plans import ROOT, OfflineEngine, calls

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "123456789012.dkr.ecr.ca-central-1.amazonaws.com"
REPOSITORY_URL = f"{REGISTRY}/bikeshare-serving"
DIGEST = "sha256:" + "ab" * 32
ECR_PASSWORD = "ecr-password-that-must-stay-secret"  # noqa: S105 - a test value


def last_command(plan: list[Field]) -> list[str]:
    execs = calls(plan, "withExec")
    return execs[-1]["args"] if execs else []


def dockerfile_entrypoint() -> list[str]:
    """The serving image's ENTRYPOINT, as the engine reports it for an image built from it."""
    (line,) = [
        r for r in (ROOT / "Dockerfile").read_text().splitlines() if r.startswith("ENTRYPOINT ")
    ]
    return json.loads(line.removeprefix("ENTRYPOINT "))


def dockerfile_healthcheck() -> dict[str, Any]:
    """The serving image's HEALTHCHECK as the engine reports it (durations as Go prints them)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [row for row in text.splitlines() if row.startswith("HEALTHCHECK ")]
    options, _, command = line.removeprefix("HEALTHCHECK ").partition(" CMD ")
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in options.split())
    return {
        "args": json.loads(command),
        "timeout": flags.get("timeout", "0s"),
        "startPeriod": flags.get("start-period", "0s"),
        "interval": flags.get("interval", "0s"),
        "startInterval": "0s",
        "retries": int(flags.get("retries", 0)),
        "shell": False,
    }


def host_file(plan: list[Field]) -> Path | None:
    """The host file a `host.directory(...)...file(path)` plan reads, if that is its origin."""
    if plan[0].name != "host" or any(s.name not in ("directory", "file") for s in plan[1:-1]):
        return None
    path = Path(plan[1].args["path"])
    for step in plan[2:]:
        if step.name in ("directory", "file"):
            path = path / step.args["path"]
    return path


def default_answer(plan: list[Field], tag_exists: bool = False) -> Any:
    """What an engine would answer for the leaf at the end of `plan`."""
    leaf = plan[-1].name
    command = last_command(plan)
    if leaf == "stdout":
        if command[:2] == ["bikeshare", "runtime-versions"]:
            return "mlflow-skinny==3.17.2\nscikit-learn==1.9.1\n"
        if command[:2] == ["bikeshare", "ecr-login"]:
            return REGISTRY + "\n"
        if command[:2] == ["bikeshare", "image-digest"]:
            return f"{REPOSITORY_URL}@{DIGEST}\n"
        if command[:2] == ["bikeshare", "upload-model"]:
            return "s3://bikeshare-models/models/" + "cd" * 32 + "/model.tar.gz\n"
        if command[:2] == ["bikeshare", "release-of"]:
            model = "s3://bikeshare-models/models/" + "cd" * 32 + "/model.tar.gz"
            image = f"{REPOSITORY_URL}@{DIGEST}"
            return json.dumps({"config": "c", "image_uri": image, "model_data": model}) + "\n"
        return "ok\n"
    if leaf == "exitCode":
        return 0 if command[:2] != ["bikeshare", "image-digest"] or tag_exists else 1
    if leaf == "contents":
        return file_contents(plan)
    if leaf == "entries":
        return directory_entries(plan)
    if leaf == "stderr":
        return ""
    if leaf == "publish":  # the engine keeps the tag: reference.WithDigest (core/container.go)
        return f"{plan[-1].args['address']}@{DIGEST}"
    if plan[-2].name == "dockerHealthcheck":
        return dockerfile_healthcheck()[leaf]
    if leaf == "entrypoint":
        return dockerfile_entrypoint()
    if leaf == "id":
        return "placeholder-module-id"
    return None  # sync


def file_contents(plan: list[Field]) -> str:
    host = host_file(plan)
    if host is not None:
        return host.read_text()
    fs, _ = replay(plan)
    path = fs.resolve(calls(plan, "file")[-1]["path"])
    if path == ECR_PASSWORD_FILE:
        return ECR_PASSWORD
    if path == REPORT_FILE:
        return f"### `bikeshare {last_command(plan)[1]}`: report\n"
    known = fs.files.get(path)
    if known is None:
        raise AssertionError(f"the fake knows no contents for {path}")
    return known


def directory_entries(plan: list[Field]) -> list[str]:
    host = host_file(plan)
    if host is not None:
        return sorted(item.name for item in host.iterdir())
    fs, _ = replay(plan)
    root = fs.resolve(calls(plan, "directory")[-1]["path"])
    names = {p[len(root) + 1 :].split("/")[0] for p in [*fs.files, *fs.dirs]
             if p.startswith(root + "/")}  # fmt: skip
    return sorted(names)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the backend the Python SDK runs on


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[OfflineEngine]:
    engine = OfflineEngine(default_answer).install(monkeypatch)
    yield engine
    assert engine.problems == [], "the engine would have refused these"


@pytest.fixture
def make_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OfflineEngine]]:
    made: list[OfflineEngine] = []

    def make(answer: Callable[[list[Field]], Any]) -> OfflineEngine:
        made.append(OfflineEngine(answer).install(monkeypatch))
        return made[-1]

    yield make
    assert [p for engine in made for p in engine.problems] == [], "the engine would refuse"


@pytest.fixture
def pipeline() -> bikeshare_ci.BikeshareCi:
    """The main object as the engine constructs it for `dagger call --git-sha=...`."""
    return bikeshare_ci.BikeshareCi(
        source=dag.host().directory(str(ROOT)),
        git_sha=GIT_SHA,
        github_repository="example-org/bikeshare-delivery",
    )


@pytest.fixture
def with_oidc(pipeline: bikeshare_ci.BikeshareCi) -> bikeshare_ci.BikeshareCi:
    return pipeline.with_aws_oidc(
        request_url=dag.set_secret("request-url", "https://token.actions.example/url"),
        request_token=dag.set_secret("request-token", "actions-token-value"),
        deployer_role_arn="arn:aws:iam::123456789012:role/bikeshare-deployer-staging",
        region="ca-central-1",
    )
