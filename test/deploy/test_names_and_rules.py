"""Pure rules of the release engine, without AWS: names, image references, compatibility."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bikeshare.deploy import registry as registry_module
from bikeshare.deploy.compatibility import check_compatible, image_runtime
from bikeshare.deploy.ecr import registry_login
from bikeshare.deploy.endpoint import NAME_LIMIT, release_name, release_prefix
from bikeshare.deploy.images import parse_image, require_digest
from bikeshare.deploy.names import check_endpoint_name
from bikeshare.deploy.registry import DOCKER_MANIFEST
from bikeshare.deploy.release import DeployRequest, check_request, deployment_config
from bikeshare.errors import BikeshareError

NOW = datetime(2026, 11, 28, 9, 30, 5, tzinfo=UTC)
DIGEST = "sha256:" + "0f" * 32
IMAGE = f"123456789012.dkr.ecr.ca-central-1.amazonaws.com/bikeshare-serving@{DIGEST}"


@pytest.mark.parametrize("endpoint", ["bikeshare-staging", "bikeshare-" + "x" * 80])
def test_release_names_fit_sagemakers_limit_and_share_the_endpoint_prefix(endpoint: str) -> None:
    name = release_name(endpoint, "0123456789abcdef", NOW)
    assert len(name) <= NAME_LIMIT
    assert name.endswith("-0123456-20261128093005")
    assert name.startswith(release_prefix(endpoint))


def test_image_references_are_split_and_pinned() -> None:
    image = parse_image(IMAGE.replace("@", ":abc123@"))
    assert image.tag == "abc123"
    assert image.digest == DIGEST
    assert image.pinned == IMAGE
    assert parse_image("127.0.0.1:5000/bikeshare-serving@" + DIGEST).registry == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (IMAGE.split("@")[0] + ":latest", "referenced by tag only"),
        (" " + IMAGE, "leading or trailing whitespace"),
        ("bikeshare-serving", "is not an image reference"),
    ],
)
def test_bad_image_references_are_named(uri: str, message: str) -> None:
    with pytest.raises(BikeshareError, match=message):
        require_digest(uri)


MODEL = {
    "mlflow-skinny": "3.17.2",
    "scikit-learn": "1.9.1",
    "skops": "0.16.0",
    "pandas": "3.1.1",
    "numpy": "2.4.6",
}


def test_same_runtime_is_compatible_and_patch_drift_is_allowed_where_safe() -> None:
    check_compatible(MODEL, dict(MODEL), "s3://b/m", IMAGE)
    check_compatible(
        MODEL, {**MODEL, "pandas": "3.1.4", "mlflow-skinny": "3.17.9"}, "s3://b/m", IMAGE
    )


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (
            {**MODEL, "scikit-learn": "1.9.2"},
            "scikit-learn==1.9.1 but the image carries " "scikit-learn==1.9.2 (needs exact)",
        ),
        ({**MODEL, "mlflow-skinny": "3.18.0"}, "needs same major.minor"),
        ({k: v for k, v in MODEL.items() if k != "skops"}, "(the image has no skops)"),
    ],
)
def test_incompatible_runtime_names_both_versions(image: dict[str, str], fragment: str) -> None:
    with pytest.raises(BikeshareError) as refused:
        check_compatible(MODEL, image, "s3://b/m", IMAGE)
    assert fragment in str(refused.value)
    assert "nothing was changed" in str(refused.value)


def test_runtime_label_is_required() -> None:
    with pytest.raises(BikeshareError, match="does not declare its model runtime"):
        image_runtime({}, IMAGE)
    label = {"com.bikeshare.model-runtime": "scikit-learn==1.9.1 skops==0.16.0"}
    assert image_runtime(label, IMAGE) == {"scikit-learn": "1.9.1", "skops": "0.16.0"}


def _request(**overrides: object) -> DeployRequest:
    values: dict[str, object] = {
        "endpoint_name": "bikeshare-staging",
        "image_uri": IMAGE,
        "model_data": "s3://b/m",
        "instance_type": "ml.m5.large",
        "execution_role_arn": "arn:aws:iam::1:role/r",
    }
    values.update(overrides)
    return DeployRequest(**values)  # type: ignore[arg-type]


def test_deployment_config_follows_the_strategy() -> None:
    canary = deployment_config(
        _request(
            strategy="canary",
            canary_percent=25,
            bake_seconds=600,
            instance_count=4,
            alarms=("a", "b"),
        )
    )
    routing = canary["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 600,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
    }
    assert canary["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]
    }
    linear = deployment_config(_request(strategy="linear", instance_count=4))
    assert linear["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "LINEAR"
    plain = deployment_config(_request())
    assert plain["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert "AutoRollbackConfiguration" not in plain
    assert 600 <= plain["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] <= 28800


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alarms": tuple(f"a{i}" for i in range(11))}, "1 to 10 --alarm names"),
        ({"strategy": "canary", "canary_percent": 60, "instance_count": 4}, "between 1 and 50"),
        ({"strategy": "linear", "instance_count": 1}, "at most 50% of capacity"),
        ({"instance_count": 0}, "at least 1"),
    ],
)
def test_impossible_requests_are_refused_before_aws(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(BikeshareError, match=message):
        check_request(_request(**overrides))


ECR_REGISTRY = "123456789012.dkr.ecr.ca-central-1.amazonaws.com"


@pytest.mark.parametrize(
    ("proxy_endpoint", "scheme", "registry"),
    [
        (f"https://{ECR_REGISTRY}", "https", ECR_REGISTRY),
        ("http://172.17.0.1:5079", "http", "172.17.0.1:5079"),  # LocalStack, the stand-in
    ],
)  # fmt: skip
def test_the_registry_is_reached_with_the_scheme_ecr_names(
    proxy_endpoint: str, scheme: str, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found on the first real engine run: a stand-in registry on the Docker bridge (not
    loopback) was asked over HTTPS although ECR's login said http://."""
    token = base64.b64encode(b"AWS:secret").decode()
    answer = {"authorizationData": [{"authorizationToken": token, "proxyEndpoint": proxy_endpoint}]}
    login = registry_login(SimpleNamespace(get_authorization_token=lambda: answer))
    assert (login.registry, login.scheme, login.username) == (registry, scheme, "AWS")
    asked: list[str] = []

    def get(url: str, *_: str) -> tuple[str, bytes]:
        asked.append(url)
        if "/manifests/" in url:
            return DOCKER_MANIFEST, b'{"config": {"digest": "sha256:c"}}'
        return "application/json", b'{"config": {"Labels": {"a": "b"}}}'

    monkeypatch.setattr(registry_module, "_get", get)
    image = parse_image(f"{registry}/bikeshare-serving@sha256:{'ab' * 32}")
    facts = registry_module.inspect_image(image, login.username, login.password, login.scheme)
    assert facts.labels == {"a": "b"}
    assert all(url.startswith(f"{scheme}://{registry}/v2/bikeshare-serving/") for url in asked)


@pytest.mark.parametrize("name", ["bikeshare-staging", "a", "a--b", "A1", "x" * 63])
def test_endpoint_names_sagemaker_accepts_pass(name: str) -> None:
    assert check_endpoint_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 64, "-a", "a-", "a_b", "a b", "a\n", "prod`](http://evil.example)", "é"],
)
def test_endpoint_names_sagemaker_refuses_are_refused_in_one_line(name: str) -> None:
    """Issue 20 item 10: a name ends up in Markdown reports; SageMaker's rule keeps it plain."""
    with pytest.raises(BikeshareError, match="is not a SageMaker endpoint name") as refused:
        check_endpoint_name(name)
    assert "\n" not in str(refused.value)
