"""Deploying to one endpoint again and again: its deployment record stays one tag per key, and
the engine finds it whichever ListTags page holds it (issue #15, item 3).

After about a dozen deploys `bikeshare status` called a verified release unverified: moto's
AddTags appended a second tag per key, and the record the engine read was an old one. The
stand-in now overwrites by key and holds at most 50 tags, as SageMaker does; the engine reads
every page. These tests hold the real engine to both, against the stand-in.

What makes a second page: the engine passes ListTags no MaxResults, so the service picks the
page size. SageMaker documents no default (MaxResults' minimum is 50, and botocore refuses less)
and an endpoint holds at most 50 tags, so with moto's page of 50 every list is one page. A
service may answer with fewer than it holds and a NextToken (the paginator follows it until
there is none); the second test makes the stand-in's pages smaller than the endpoint's tags.

More deploys than a page holds (51) are not run: each deploy starts a real model server, 15 to
25 s a deploy on the 2-core test machine, so 51 would take a quarter of an hour.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.sagemaker.models import PAGINATION_MODEL

from bikeshare.deploy.endpoint import TAG_VERIFIED_CONFIG
from bikeshare.deploy.release import Outcome, deploy
from support import run_cli
from support.aws import REGION, Aws

ENDPOINT = "bikeshare-staging"
TAG_LIMIT = 50  # SageMaker's, per resource; the stand-in refuses a 51st
PAGE = 40  # the stand-in's ListTags page in the second test: fewer than the endpoint's tags


def quiet(_: str) -> None:
    """Progress is not under test here."""


def release(aws: Aws, model_uri: str, number: int) -> Outcome:
    """Deploy the session's image and model again, as commit `number` (a release name of its
    own: names carry the commit)."""
    request = aws.request(ENDPOINT, model_uri, git_sha=f"{number:07d}")
    return deploy(aws.clients, request, say=quiet)


def tags(aws: Aws) -> list[dict[str, str]]:
    """Every tag on the endpoint, every page, as the account's administrator lists them."""
    arn = aws.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    pages = aws.sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn)
    return [tag for page in pages for tag in page["Tags"]]


def status(aws: Aws) -> dict[str, Any]:
    """`bikeshare status --json`, run as the staging workflow runs it."""
    shown = run_cli("status", "--endpoint-name", ENDPOINT, "--json", "--region", REGION,
                    "--endpoint-url", aws.url, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def serving(aws: Aws) -> tuple[str, bool, str | None]:
    """What `status` says serves, whether bikeshare verified it, and what served before."""
    shown = status(aws)
    return shown["config_name"], shown["verified"], shown["previous_config"]


def test_every_deploy_keeps_one_tag_per_key_and_status_calls_it_verified(
    aws: Aws, model_uri: str
) -> None:
    counts, previous = [], None
    for number in range(1, 4):  # the third is the first to overwrite every key of the record
        outcome = release(aws, model_uri, number)
        keys = [tag["Key"] for tag in tags(aws)]
        assert sorted(keys) == sorted(set(keys)), f"deploy {number} left a key twice: {keys}"
        counts.append(len(keys))
        assert serving(aws) == (outcome.new_config, True, previous), f"after deploy {number}"
        previous = outcome.new_config
    assert counts[2] == counts[1] > counts[0], "only the first lacks a previous config"


def test_the_record_is_found_on_the_second_page_of_tags(
    aws: Aws, model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = release(aws, model_uri, 1)
    arn = aws.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointArn"]
    others = TAG_LIMIT - len(tags(aws)) - 1  # room for the one key the next deploy adds
    aws.sagemaker.add_tags(  # another team's, as the account administrator adds them
        ResourceArn=arn,
        Tags=[{"Key": f"finance:cost-line-{n:02d}", "Value": "bikes"} for n in range(others)],
    )
    monkeypatch.setitem(PAGINATION_MODEL["list_tags"], "limit_default", PAGE)
    second = release(aws, model_uri, 2)  # its record is rewritten last: onto the second page

    page = aws.sagemaker.list_tags(ResourceArn=arn)
    assert "NextToken" in page, "the endpoint's tags take two pages"
    assert TAG_VERIFIED_CONFIG not in [tag["Key"] for tag in page["Tags"]]
    assert len(tags(aws)) == TAG_LIMIT
    assert serving(aws) == (second.new_config, True, first.new_config)

    full = tags(aws)  # SageMaker refuses a 51st tag, and then adds none of the call's tags
    with pytest.raises(Exception, match="more than 50 tags"):
        aws.sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "one-too-many", "Value": "x"}])
    assert tags(aws) == full, "a refused AddTags changed the endpoint's tags"
