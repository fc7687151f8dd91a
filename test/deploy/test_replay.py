"""Replaying a release locally: the exact image and model, served as SageMaker serves them.

The replay runs here exactly as `dagger call ... replay` runs it: `bikeshare fetch-model` (the
model archive from the stand-in's S3, sha256 checked, unpacked), then the release's image by
digest with the model at /opt/ml/model and replay.py (beside answers.py) started with
`python3 replay.py --payload ... -- ENTRYPOINT serve`. Each failure a release can hit is
replayed beside the release itself: the replay names the step and says it in the same words.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bikeshare.deploy.artifacts import upload_model
from bikeshare.deploy.release import DeployFailed, deploy
from support import broken_model_archive, docker_or_skip, run_cli
from support.aws import BUCKET, REGION, Aws
from support.images import docker, image_from

SRC = Path(__file__).resolve().parents[2] / "src" / "bikeshare"
STAGING = "bikeshare-staging"
PING_WORDS = "The primary container for production variant AllTraffic did not pass the ping"


def quiet(_: str) -> None:
    """Progress is not under test here."""


def replay(aws: Aws, image: str, model_data: str, tmp_path: Path, payload: str = "") -> str:
    """What the Dagger function does, with Docker; the probe's report (exit status first)."""
    docker_or_skip()
    model = tmp_path / "model"
    fetched = run_cli("fetch-model", "--model-data", model_data, "--output", str(model),
                      "--region", REGION, "--endpoint-url", aws.url, check=False)  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    probe = tmp_path / "probe"
    probe.mkdir()
    shutil.copy(SRC / "deploy" / "replay.py", probe)
    shutil.copy(SRC / "serving" / "answers.py", probe)
    request = "/opt/ml/model/serving_input_example.json"
    if payload:
        (probe / "payload.json").write_text(payload)
        request = "/opt/bikeshare-replay/payload.json"
    for path in [tmp_path, model, probe, *model.rglob("*"), *probe.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the image runs as a non-root user
    entrypoint = json.loads(docker("inspect", "--format", "{{json .Config.Entrypoint}}", image)
                            .stdout)  # fmt: skip
    ran = docker(
        "run", "--rm", "-v", f"{model}:/opt/ml/model:ro", "-v", f"{probe}:/opt/bikeshare-replay:ro",
        "--entrypoint", "python3", image, "/opt/bikeshare-replay/replay.py",
        "--payload", request, "--timeout", "60", "--", *entrypoint, "serve",
        check=False, timeout=300,
    )  # fmt: skip
    return f"exit {ran.returncode}\n{ran.stdout}{ran.stderr}"


def test_a_release_that_works_replays_to_a_passed_smoke(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    report = replay(aws, aws.image, model_uri, tmp_path)
    assert report.startswith("exit 0\nreplay passed: 1 prediction(s) ["), report
    assert "(smoke passed)" in report
    assert "--- the server's last" in report


def test_a_model_the_runtime_cannot_load_replays_to_the_same_ping_failure(
    aws: Aws, tmp_path: Path
) -> None:
    broken = upload_model(aws.clients.s3, broken_model_archive(tmp_path), BUCKET, "models", "dead")
    with pytest.raises(DeployFailed) as released:
        deploy(aws.clients, aws.request(STAGING, broken), say=quiet)
    assert PING_WORDS in str(released.value)
    report = replay(aws, aws.image, broken, tmp_path / "replay")
    assert report.startswith("exit 1\nreplay failed at start: the server exited"), report
    assert PING_WORDS in report, "the words the release hit"
    assert "File is not a zip file" in report, "the server's own log says why"


@pytest.fixture
def crashing_image(serving_image: str, tmp_path: Path) -> str:
    """The serving image with a server that exits at once. Built on the serving image, so it
    skips with it where Docker or the base image is missing; the session removes its tag."""
    return image_from(
        serving_image,
        'ENTRYPOINT ["sh", "-c", "echo cannot bind the model server >&2; exit 3", "--"]',
        "bikeshare-broken:crashes-on-start",
        tmp_path,
    )


def test_an_image_whose_server_crashes_replays_to_a_start_failure(
    aws: Aws, model_uri: str, crashing_image: str, tmp_path: Path
) -> None:
    report = replay(aws, crashing_image, model_uri, tmp_path / "replay")
    assert report.startswith("exit 1\nreplay failed at start: the server exited with status 3")
    assert report.rstrip().endswith("cannot bind the model server")


def test_an_invoke_error_replays_in_the_words_of_the_smoke_test(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    first = deploy(aws.clients, aws.request(STAGING, model_uri), say=quiet)
    bad = {"dataframe_split": {"columns": ["station_id", "hour"], "data": [["72", 8.5]]}}
    with pytest.raises(DeployFailed) as released:
        deploy(aws.clients, aws.request(STAGING, model_uri, git_sha="badpay1", smoke_payload=bad),
               say=quiet)  # fmt: skip
    said = str(released.value)
    assert f"serving {first.new_config} again" in said
    words = said[said.index("Received client error (400)") :].split('".')[0]
    report = replay(aws, aws.image, model_uri, tmp_path, payload=json.dumps(bad))
    assert report.startswith("exit 1\nreplay failed at invoke: Received client error (400)")
    assert words in report, "the same words as the release's smoke failure"


def test_a_model_archive_that_is_not_what_its_key_says_is_refused(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    key = model_uri.split("/", 3)[3]
    aws.target.client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=broken_model_archive(tmp_path).read_bytes()
    )
    fetched = run_cli("fetch-model", "--model-data", model_uri, "--output", str(tmp_path / "m"),
                      "--region", REGION, "--endpoint-url", aws.url, check=False)  # fmt: skip
    assert fetched.returncode == 1
    assert "does not hold what its key says: its sha256 is" in fetched.stderr
    assert not (tmp_path / "m").exists()
