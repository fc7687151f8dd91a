"""Fixtures shared by the whole suite: one trained model and its SageMaker archive per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import run_cli

# One OpenMP thread in this process and every process it starts (CLIs, `bikeshare serve`), as
# the serving image runs. On CI's 2 cores, shared with servers and containers, OpenMP's spinning
# threads made each HistGradientBoosting fit 10-20x slower (the determinism test: 19.8 s, 1.2 s
# with one thread). Set before anything imports scikit-learn: OpenMP reads it once, at load.
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the CLI exactly as the pipeline trains it (synthetic data, seed 0)."""
    output = tmp_path_factory.mktemp("model") / "model"
    run_cli("train", "--output", str(output))
    return output


@pytest.fixture(scope="session")
def model_archive(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model packaged as SageMaker's model.tar.gz."""
    archive = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    run_cli("package", str(model_dir), "--output", str(archive))
    return archive


@pytest.fixture(scope="session")
def serving_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The serving image built from the Dockerfile (skips without a Docker daemon)."""
    from support import docker_or_skip
    from support.images import build_serving_image

    docker_or_skip()
    return build_serving_image(tmp_path_factory.mktemp("docker-context"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests measured for people (for example the serving image's size)."""
    from support import REPORT_LINES

    if REPORT_LINES:
        terminalreporter.section("bikeshare reports")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)
