"""Fixtures for the offline checks of the Dagger module (no engine anywhere)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dagger import dag
from dagger.client._core import Field

import bikeshare_ci
from bikeshare_ci.main import ECR_PASSWORD_FILE
from support.dagger_plans import ROOT, OfflineEngine, calls

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "123456789012.dkr.ecr.ca-central-1.amazonaws.com"
REPOSITORY_URL = f"{REGISTRY}/bikeshare-serving"
DIGEST = "sha256:" + "ab" * 32
ECR_PASSWORD = "ecr-password-that-must-stay-secret"  # noqa: S105 - a test value


def last_command(plan: list[Field]) -> list[str]:
    execs = calls(plan, "withExec")
    return execs[-1]["args"] if execs else []


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
        return "ok\n"
    if leaf == "exitCode":
        return 0 if command[:2] != ["bikeshare", "image-digest"] or tag_exists else 1
    if leaf == "contents":
        path = calls(plan, "file")[-1]["path"]
        if path == ECR_PASSWORD_FILE:
            return ECR_PASSWORD
        if path == "pyproject.toml":
            return (ROOT / "pyproject.toml").read_text()
        return f"### `bikeshare {command[1] if len(command) > 1 else '?'}`: report\n"
    if leaf == "entries":
        return ["report.md"]
    if leaf == "stderr":
        return ""
    if leaf == "publish":
        return f"{REPOSITORY_URL}@{DIGEST}"
    if leaf == "id":
        return "placeholder-module-id"
    return None  # sync


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the backend the Python SDK runs on


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> OfflineEngine:
    return OfflineEngine(default_answer).install(monkeypatch)


@pytest.fixture
def make_engine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., OfflineEngine]:
    def make(answer: Callable[[list[Field]], Any]) -> OfflineEngine:
        return OfflineEngine(answer).install(monkeypatch)

    return make


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
        role_arn="arn:aws:iam::123456789012:role/bikeshare-deployer-staging",
        region="ca-central-1",
    )
