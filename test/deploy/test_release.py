"""The deploy algorithm against the stand-in: happy paths and the fault matrix.

Every failure test ends by reading the endpoint back with describe_endpoint and checking it
serves a known good config (or, for a failed first deploy, that nothing is left behind).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bikeshare.deploy.endpoint import (
    TAG_PREVIOUS_CONFIG,
    TAG_VERIFIED_CONFIG,
    describe_endpoint,
)
from bikeshare.deploy.release import DeployFailed, Polling, deploy, rollback
from bikeshare.errors import BikeshareError
from bikeshare.model.runtime import RUNTIME_LABEL, as_requirements, installed_versions
from standin import sagemaker
from standin.registry import OCI_MANIFEST, PASSWORD
from standin.runners import DockerRunner
from support import broken_model_archive, docker_available
from support.aws import BUCKET, REPOSITORY, ROLE, Aws
from support.images import IMAGE_TAG, image_from, push

ENDPOINT = "bikeshare-staging"


def serving(aws: Aws, endpoint: str = ENDPOINT) -> tuple[str, str]:
    described = aws.sagemaker.describe_endpoint(EndpointName=endpoint)
    return described["EndpointStatus"], described["EndpointConfigName"]


def quiet(_: str) -> None:
    """Progress lines are checked where they matter; elsewhere they are dropped."""


@pytest.mark.containers
def test_first_deploy_creates_verifies_smokes_and_records(aws: Aws, model_uri: str) -> None:
    lines: list[str] = []
    outcome = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=lines.append)
    assert serving(aws) == ("InService", outcome.new_config)
    assert outcome.serving == outcome.new_config
    assert outcome.smoke is not None
    assert len(outcome.smoke.predictions) == 1
    snapshot = describe_endpoint(aws.sagemaker, ENDPOINT)
    assert snapshot is not None
    assert snapshot.verified
    assert snapshot.variants[0].image == aws.image
    assert snapshot.variants[0].model_data == model_uri
    assert any(line.startswith(f"{ENDPOINT}: Creating") for line in lines)
    assert lines[-1] == f"{ENDPOINT} is serving {outcome.new_config} (verified)"


def test_update_serves_the_new_release_and_records_the_previous(aws: Aws, model_uri: str) -> None:
    first = deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="1111111aaaa"), say=quiet)
    second = deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="2222222bbbb"), say=quiet)
    assert serving(aws) == ("InService", second.new_config)
    assert second.previous_config == first.new_config
    tags = describe_endpoint(aws.sagemaker, ENDPOINT).tags
    assert tags[TAG_VERIFIED_CONFIG] == second.new_config
    assert tags[TAG_PREVIOUS_CONFIG] == first.new_config
    assert "-2222222-" in second.new_config
    assert len(second.new_config) <= 63
    # SageMaker's AddTags overwrites a key (the stand-in too, unlike moto): one record, not two
    arn = aws.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    keys = [t["Key"] for t in aws.sagemaker.list_tags(ResourceArn=arn)["Tags"]]
    assert sorted(keys) == sorted(set(keys))
    assert TAG_VERIFIED_CONFIG in keys


def test_dry_run_prints_the_plan_and_changes_nothing(aws: Aws, model_uri: str) -> None:
    lines: list[str] = []
    outcome = deploy(aws.clients, aws.request(ENDPOINT, model_uri, dry_run=True), say=lines.append)
    assert outcome.dry_run
    assert lines[0] == (
        "acting as arn:aws:sts::123456789012:assumed-role/bikeshare-deployer-staging/github-staging"
    )
    assert lines[1].startswith("image checked: Docker v2 manifest; its model runtime matches")
    assert lines[2] == f"plan for {ENDPOINT}: create endpoint"
    assert lines[-1] == "dry run: nothing was changed"
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []
    assert aws.sagemaker.list_models()["Models"] == []


def test_silent_rollback_of_a_failed_update_is_detected(aws: Aws, model_uri: str) -> None:
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    aws.faults(
        fail_updates=[
            "Request to service failed. If failure persists after retry, contact customer support."
        ]
    )
    with pytest.raises(DeployFailed) as failed:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="badbadbad"), say=quiet)
    message = str(failed.value)
    assert "did not take: SageMaker rolled it back (Request to service failed" in message
    assert f"{ENDPOINT} is serving {good.new_config} (verified InService)" in message
    assert serving(aws) == ("InService", good.new_config)


def test_smoke_failure_after_a_good_update_rolls_back_and_verifies(
    aws: Aws, model_uri: str
) -> None:
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    aws.faults(invoke_errors={ENDPOINT: [500]})
    with pytest.raises(DeployFailed) as failed:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="3333333"), say=quiet)
    message = str(failed.value)
    assert "smoke test of" in message
    assert "ModelError" in message
    assert f"Rolled back: {ENDPOINT} is serving {good.new_config} again (verified InService)" in (
        message
    )
    assert serving(aws) == ("InService", good.new_config)


def test_failed_rollback_is_loud(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    # The update succeeds, the smoke test fails, and then the rollback's own update fails.
    aws.faults(invoke_errors={ENDPOINT: [503]}, fail_updates=[None, "Rollback target broke"])
    with pytest.raises(DeployFailed) as failed:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="4444444"), say=quiet)
    message = str(failed.value)
    assert message.startswith("ROLLBACK FAILED")
    assert "Rollback target broke" in message
    assert "bikeshare rollback --endpoint-name bikeshare-staging --to-config" in message


def test_first_deploy_that_fails_leaves_nothing_behind(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    from bikeshare.deploy.artifacts import upload_model

    broken = upload_model(aws.clients.s3, broken_model_archive(tmp_path), BUCKET, "models", "dead")
    with pytest.raises(DeployFailed) as failed:
        deploy(aws.clients, aws.request(ENDPOINT, broken), say=quiet)
    message = str(failed.value)
    assert "first deploy of bikeshare-staging failed: Failed: The primary container" in message
    assert "did not pass the ping health check" in message
    assert "for this endpoint. Removed the endpoint" in message, "SageMaker's period, not two"
    assert "nothing is left behind" in message
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []
    assert aws.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert aws.sagemaker.list_models()["Models"] == []


def test_model_that_does_not_load_fails_an_update_and_the_old_release_serves(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    from bikeshare.deploy.artifacts import upload_model

    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    broken = upload_model(aws.clients.s3, broken_model_archive(tmp_path), BUCKET, "models", "dead")
    with pytest.raises(DeployFailed, match="did not pass the ping health check"):
        deploy(aws.clients, aws.request(ENDPOINT, broken), say=quiet)
    assert serving(aws) == ("InService", good.new_config)


def _broken_image(aws: Aws, instruction: str, tag: str, workdir: Path) -> str:
    """The serving image with one instruction changed, pushed to the stand-in's ECR (the test
    is marked `containers`: its variants run the image)."""
    if sagemaker.STATE.runner_factory is not DockerRunner:
        if docker_available():
            pytest.fail("a test that ships a broken image must be marked `containers`")
        pytest.skip("broken images need Docker: without it, variants run as processes")
    local = image_from(IMAGE_TAG, instruction, f"bikeshare-broken:{tag}", workdir)
    return push(local, aws.registry.address, REPOSITORY, tag, PASSWORD)


@pytest.mark.containers
def test_image_that_never_passes_ping_fails_the_update_and_the_old_release_serves(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    silent = _broken_image(
        aws, 'ENTRYPOINT ["python3", "-m", "http.server", "8080"]', "noping", tmp_path
    )
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    aws.faults(health_timeout=8)
    with pytest.raises(DeployFailed) as failed:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, image_uri=silent), say=quiet)
    assert "did not pass the ping health check" in str(failed.value)
    assert f"is serving {good.new_config} (verified InService)" in str(failed.value)
    assert serving(aws) == ("InService", good.new_config)


@pytest.mark.containers
def test_image_whose_entrypoint_fails_leaves_nothing_behind(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    crashing = _broken_image(aws, 'ENTRYPOINT ["false"]', "crash", tmp_path)
    with pytest.raises(DeployFailed, match="nothing is left behind"):
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, image_uri=crashing), say=quiet)
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []
    assert aws.sagemaker.list_models()["Models"] == []


def test_missing_model_artifact_is_refused_before_any_change(aws: Aws, model_uri: str) -> None:
    missing = model_uri.replace("/models/", "/models/missing-")
    with pytest.raises(BikeshareError, match="does not exist; nothing was changed"):
        deploy(aws.clients, aws.request(ENDPOINT, missing), say=quiet)
    assert aws.sagemaker.list_models()["Models"] == []


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda image: image.split("@")[0] + ":latest", "referenced by tag only"),
        (lambda image: image + " ", "trailing whitespace"),
    ],
)
def test_unpinned_or_mistyped_images_are_refused(
    aws: Aws, model_uri: str, spoil: Callable[[str], str], message: str
) -> None:
    with pytest.raises(BikeshareError, match=message):
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, image_uri=spoil(aws.image)), say=quiet)
    assert aws.sagemaker.list_models()["Models"] == []


def test_oci_image_is_refused_before_any_change(aws: Aws, model_uri: str) -> None:
    runtime = {RUNTIME_LABEL: as_requirements(installed_versions())}
    oci = aws.registry.push_manifest(REPOSITORY, "oci", runtime, media_type=OCI_MANIFEST)
    with pytest.raises(BikeshareError, match="has an OCI manifest") as refused:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, image_uri=oci), say=quiet)
    assert "DockerMediaTypes" in str(refused.value)
    assert aws.sagemaker.list_models()["Models"] == []


def test_model_trained_with_other_library_versions_is_refused(aws: Aws, model_uri: str) -> None:
    versions = {**installed_versions(), "scikit-learn": "1.5.2"}
    old = aws.registry.push_manifest(REPOSITORY, "old", {RUNTIME_LABEL: as_requirements(versions)})
    with pytest.raises(BikeshareError) as refused:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, image_uri=old), say=quiet)
    message = str(refused.value)
    trained = installed_versions()["scikit-learn"]
    assert f"trained with scikit-learn=={trained} but the image carries scikit-learn==1.5.2" in (
        message
    )
    assert "nothing was changed" in message
    assert aws.sagemaker.list_models()["Models"] == []


def test_image_without_a_declared_runtime_is_refused(aws: Aws, model_uri: str) -> None:
    bare = aws.registry.push_manifest(REPOSITORY, "bare", {})
    with pytest.raises(BikeshareError, match="does not declare its model runtime"):
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, image_uri=bare), say=quiet)


def test_stand_in_sagemaker_itself_rejects_oci_images(aws: Aws, model_uri: str) -> None:
    runtime = {RUNTIME_LABEL: as_requirements(installed_versions())}
    oci = aws.registry.push_manifest(REPOSITORY, "oci-direct", runtime, media_type=OCI_MANIFEST)
    with pytest.raises(Exception, match="supports Docker image manifest V2, schema 2 only"):
        aws.sagemaker.create_model(
            ModelName="by-hand",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": oci, "ModelDataUrl": model_uri},
        )


def test_stand_in_sagemaker_refuses_a_model_or_config_name_twice(aws: Aws, model_uri: str) -> None:
    """As SageMaker does (moto would replace the model under a serving config)."""
    container = {"Image": aws.image, "ModelDataUrl": model_uri}
    aws.sagemaker.create_model(ModelName="twice", ExecutionRoleArn=ROLE, PrimaryContainer=container)
    with pytest.raises(Exception, match=r'Cannot create already existing model ".*:model/twice"'):
        aws.sagemaker.create_model(
            ModelName="twice", ExecutionRoleArn=ROLE, PrimaryContainer=container
        )
    variants = [
        {"VariantName": "v", "ModelName": "twice", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1},
    ]  # fmt: skip
    aws.sagemaker.create_endpoint_config(EndpointConfigName="twice", ProductionVariants=variants)
    with pytest.raises(Exception, match="Cannot create already existing endpoint configuration"):
        aws.sagemaker.create_endpoint_config(
            EndpointConfigName="twice", ProductionVariants=variants
        )


def test_a_deploy_of_the_serving_commit_within_its_second_waits_for_a_name_of_its_own(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    """Release names have one-second resolution: a second deploy of the same commit in the same
    second (found when variants started fast enough) took the serving release's name and
    'updated' the endpoint to the release it served, smoke-testing another model's payload."""
    from bikeshare.deploy.artifacts import upload_model

    second = datetime(2026, 12, 4, 16, 25, 54, tzinfo=UTC)
    clock = iter([second, second, second + timedelta(seconds=1)])
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet, now=lambda: second)
    broken = upload_model(aws.clients.s3, broken_model_archive(tmp_path), BUCKET, "models", "dead")
    with pytest.raises(DeployFailed, match="did not pass the ping health check"):
        deploy(aws.clients, aws.request(ENDPOINT, broken), say=quiet, now=lambda: next(clock))
    assert serving(aws) == ("InService", good.new_config)
    assert good.new_config.endswith("-20261204162554")


def test_a_clock_that_stays_in_the_serving_release_second_changes_nothing(
    aws: Aws, model_uri: str
) -> None:
    second = datetime(2026, 12, 4, 16, 25, 54, tzinfo=UTC)
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet, now=lambda: second)
    with pytest.raises(DeployFailed) as refused:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet, now=lambda: second)
    assert str(refused.value) == (
        f"release name {good.new_config} is the one {ENDPOINT} serves and the clock did not "
        f"advance in 2 s; nothing was changed: {ENDPOINT} still serves {good.new_config}"
    )
    assert serving(aws) == ("InService", good.new_config)


def test_a_release_name_taken_by_another_model_is_refused_before_any_change(
    aws: Aws, model_uri: str
) -> None:
    """Only the serving release's name is waited for; any other taken name (a failed release of
    the same commit in the same second) is SageMaker's refusal, said in one line."""
    second = datetime(2026, 12, 4, 16, 25, 54, tzinfo=UTC)
    taken = "bikeshare-staging-0123456-20261204162554"
    container = {"Image": aws.image, "ModelDataUrl": model_uri}
    aws.sagemaker.create_model(ModelName=taken, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    with pytest.raises(DeployFailed) as refused:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet, now=lambda: second)
    assert str(refused.value).startswith(
        f'SageMaker refused the model of {taken}: Cannot create already existing model "'
    )
    assert str(refused.value).endswith(f'". Nothing was changed: {ENDPOINT} does not exist yet')
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []


def _hand_made_endpoint(aws: Aws, model_data: str, variant: str, name: str) -> None:
    """What the seed's old deploy script left behind: no bikeshare tags, its own names."""
    aws.sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": aws.image, "ModelDataUrl": model_data},
    )
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    aws.sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)


def test_an_endpoint_made_by_the_old_script_is_adopted_with_its_variant_name(
    aws: Aws, model_uri: str
) -> None:
    _hand_made_endpoint(aws, model_uri, "blue", "bikeshare-staging-previous-config-name")
    deploy(aws.clients, aws.request(ENDPOINT, model_uri, wait=True), say=quiet)
    snapshot = describe_endpoint(aws.sagemaker, ENDPOINT)
    assert [v.name for v in snapshot.variants] == ["blue"]
    assert snapshot.tags[TAG_PREVIOUS_CONFIG] == "bikeshare-staging-previous-config-name"


def test_a_failed_endpoint_gets_an_explanation_not_a_deploy(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    from bikeshare.deploy.artifacts import upload_model

    broken = upload_model(aws.clients.s3, broken_model_archive(tmp_path), BUCKET, "models", "dead")
    _hand_made_endpoint(aws, broken, "AllTraffic", "bikeshare-staging-hand-made")
    with pytest.raises(BikeshareError, match="only allows deleting a Failed endpoint") as refused:
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, wait=True), say=quiet)
    assert "did not pass the ping health check" in str(refused.value)
    assert [m["ModelName"] for m in aws.sagemaker.list_models()["Models"]] == [
        "bikeshare-staging-hand-made"
    ]


def test_busy_endpoint_is_refused_unless_wait(aws: Aws, model_uri: str) -> None:
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    aws.faults(transition_seconds=3)
    aws.sagemaker.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=good.new_config)
    with pytest.raises(BikeshareError, match=r"is Updating .* Re-run with --wait"):
        deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    aws.faults(transition_seconds=0)
    waited = deploy(
        aws.clients, aws.request(ENDPOINT, model_uri, wait=True, git_sha="5555555"), say=quiet
    )
    assert serving(aws) == ("InService", waited.new_config)


def test_canary_alarm_rolls_back_and_is_reported(aws: Aws, model_uri: str) -> None:
    cloudwatch = aws.target.client("cloudwatch")  # the alarm is Terraform's (alarms.tf)
    good = deploy(aws.clients, aws.request(ENDPOINT, model_uri, instance_count=2), say=quiet)
    cloudwatch.set_alarm_state(
        AlarmName="bikeshare-staging-5xx", StateValue="ALARM", StateReason="test"
    )
    with pytest.raises(DeployFailed) as failed:
        deploy(
            aws.clients,
            aws.request(
                ENDPOINT,
                model_uri,
                instance_count=2,
                strategy="canary",
                canary_percent=50,
                bake_seconds=1,
                alarms=("bikeshare-staging-5xx",),
                git_sha="6666666",
            ),
            say=quiet,
        )
    assert "alarm bikeshare-staging-5xx went into ALARM" in str(failed.value)
    assert serving(aws) == ("InService", good.new_config)


def test_canary_bigger_than_half_is_refused_before_any_change(aws: Aws, model_uri: str) -> None:
    with pytest.raises(BikeshareError, match=r"at most 50% of capacity"):
        deploy(aws.clients, aws.request(ENDPOINT, model_uri, strategy="canary"), say=quiet)
    assert aws.sagemaker.list_models()["Models"] == []


def test_two_deploys_racing_one_wins_the_other_fails_cleanly(aws: Aws, model_uri: str) -> None:
    deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    results: dict[str, object] = {}

    def run(sha: str) -> None:
        try:
            results[sha] = deploy(
                aws.clients, aws.request(ENDPOINT, model_uri, git_sha=sha), say=quiet
            )
        except BikeshareError as error:
            results[sha] = error

    racers = [threading.Thread(target=run, args=(sha,)) for sha in ("aaaaaaa", "bbbbbbb")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    winners = [r for r in results.values() if not isinstance(r, BaseException)]
    losers = [r for r in results.values() if isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert "in progress" in str(losers[0]) or "Another change started first" in str(losers[0])
    assert serving(aws) == ("InService", winners[0].new_config)


def test_throttling_is_retried(aws: Aws, model_uri: str) -> None:
    aws.faults(throttle={"DescribeEndpoint": 3, "CreateModel": 2})
    outcome = deploy(aws.clients, aws.request(ENDPOINT, model_uri), say=quiet)
    assert serving(aws) == ("InService", outcome.new_config)


def test_rollback_command_returns_to_the_previous_release(aws: Aws, model_uri: str) -> None:
    first = deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="1111111"), say=quiet)
    second = deploy(aws.clients, aws.request(ENDPOINT, model_uri, git_sha="2222222"), say=quiet)
    final = rollback(aws.clients, ENDPOINT, None, Polling(seconds=0.2), say=quiet)
    assert final.config_name == first.new_config
    assert serving(aws) == ("InService", first.new_config)
    tags = describe_endpoint(aws.sagemaker, ENDPOINT).tags
    assert tags[TAG_PREVIOUS_CONFIG] == second.new_config


def test_old_releases_are_pruned_but_never_the_serving_or_rollback_one(
    aws: Aws, model_uri: str
) -> None:
    names = [
        deploy(
            aws.clients,
            aws.request(ENDPOINT, model_uri, git_sha=f"{i}{i}{i}{i}{i}{i}{i}", keep_releases=1),
            say=quiet,
        ).new_config
        for i in range(1, 4)
    ]
    left = {
        c["EndpointConfigName"] for c in aws.sagemaker.list_endpoint_configs()["EndpointConfigs"]
    }
    assert left == {names[1], names[2]}  # serving + rollback target, even though keep=1
    assert {m["ModelName"] for m in aws.sagemaker.list_models()["Models"]} == left
