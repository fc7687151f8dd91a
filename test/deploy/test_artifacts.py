"""Model archives in S3: trust (the key's sha256, the project's own format), archive bombs, the
extractor's modes, and the bucket's write-once rule, enforced by the stand-in as Terraform has it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from bikeshare.deploy.artifacts import (
    MAX_MEMBERS,
    MAX_UNPACKED_BYTES,
    read_model_archive,
    safe_extract,
    unpack_model,
    upload_model,
    verified_archive,
)
from bikeshare.deploy.release import deploy
from bikeshare.errors import BikeshareError
from support.account import admin_client, terraform
from support.aws import BUCKET, REGION, Aws

MiB = 1024 * 1024
STAGING = "bikeshare-staging"


def quiet(_: str) -> None:
    """Progress is not under test here."""


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def regular(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def model_members(model_archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The session's real archive, member by member."""
    with tarfile.open(model_archive) as archive:
        return [
            (m, archive.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in archive.getmembers()
        ]


def with_mlmodel(model_archive: Path, old: str, new: str) -> bytes:
    """The real archive with one change in its MLmodel (which must apply)."""
    members = []
    for info, data in model_members(model_archive):
        if info.name == "MLmodel":
            assert data is not None
            assert old.encode() in data, f"no {old!r} in the MLmodel"
            info, data = regular("MLmodel", data.replace(old.encode(), new.encode()))
        members.append((info, data))
    return tar_gz(members)


def size_bomb(size: int) -> bytes:
    """A ~1 MB tar.gz whose one member unpacks to `size` bytes of zeros: the header, then the
    same compressed MiB of zeros as many gzip members as needed (gzip readers concatenate them),
    so building it costs no time either."""
    info = tarfile.TarInfo("model.skops")
    info.size = size
    zeros = gzip.compress(bytes(MiB), compresslevel=9)
    return b"".join([gzip.compress(info.tobuf(tarfile.USTAR_FORMAT)), zeros * (size // MiB + 2)])


def count_bomb(members: int) -> bytes:
    return tar_gz([regular(f"f{i}", b"") for i in range(members)])


def peak_memory(action: Callable[[], Any]) -> int:
    """Peak bytes Python allocated while `action` ran (it must raise BikeshareError)."""
    tracemalloc.start()
    try:
        with pytest.raises(BikeshareError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- the key's sha256 ------------------------------------------------------------------------


def test_a_key_without_a_digest_is_refused() -> None:
    with pytest.raises(BikeshareError) as refused:
        verified_archive(b"bytes", "s3://b/models/model.tar.gz")
    assert "s3://b/models/model.tar.gz names no sha256" in str(refused.value)
    assert "`bikeshare upload-model`" in str(refused.value)


def test_bytes_that_are_not_what_the_key_names_are_refused() -> None:
    named = hashlib.sha256(b"what was uploaded").hexdigest()
    uri = f"s3://b/models/{named}/model.tar.gz"
    assert verified_archive(b"what was uploaded", uri) == b"what was uploaded"
    with pytest.raises(
        BikeshareError, match=f"its sha256 is [0-9a-f]{{64}}, the key names {named}"
    ):
        verified_archive(b"what was put there later", uri)


# -- archive bombs ---------------------------------------------------------------------------


def test_an_archive_that_unpacks_past_the_cap_is_refused_on_its_header(tmp_path: Path) -> None:
    bomb = size_bomb(MAX_UNPACKED_BYTES + 1)
    assert len(bomb) < 2 * MiB, "a small archive"
    for action in (
        lambda: read_model_archive(bomb, "bomb.tar.gz"),  # upload-model, deploy, smoke
        lambda: unpack_model(bomb, "bomb.tar.gz", tmp_path / "out"),  # fetch-model
    ):
        peak = peak_memory(action)
        assert peak < 8 * MiB, f"the refusal allocated {peak} bytes"
    with pytest.raises(BikeshareError) as refused:
        read_model_archive(bomb, "bomb.tar.gz")
    assert str(refused.value) == (
        f"bomb.tar.gz unpacks to more than {MAX_UNPACKED_BYTES} bytes, the cap for a model "
        "archive (an archive bomb?)"
    )
    assert not (tmp_path / "out").exists(), "nothing was unpacked"


def test_an_archive_with_too_many_members_is_refused(tmp_path: Path) -> None:
    bomb = count_bomb(MAX_MEMBERS + 1)
    peak = peak_memory(lambda: read_model_archive(bomb, "many.tar.gz"))
    assert peak < 8 * MiB, f"the refusal allocated {peak} bytes"
    with pytest.raises(BikeshareError, match=f"many.tar.gz has more than {MAX_MEMBERS} members"):
        unpack_model(bomb, "many.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with (
        tarfile.open(fileobj=io.BytesIO(bomb)) as archive,
        pytest.raises(BikeshareError, match=f"more than {MAX_MEMBERS} members"),
    ):
        safe_extract(archive, tmp_path / "direct")  # the extractor caps on its own too


def test_an_oversized_tar_metadata_header_is_refused_before_it_is_read() -> None:
    info = tarfile.TarInfo("MLmodel")
    info.pax_headers = {"comment": "x" * (2 * MiB)}
    bomb = tar_gz([(info, None)])
    with pytest.raises(BikeshareError) as refused:
        read_model_archive(bomb, "pax.tar.gz")
    assert "pax.tar.gz is not a readable tar.gz model archive: a tar metadata header" in str(
        refused.value
    )


def test_links_and_paths_out_of_the_root_are_refused(model_archive: Path) -> None:
    link = tarfile.TarInfo("model.skops")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = [m for m in model_members(model_archive) if m[0].name != "model.skops"]
    with pytest.raises(BikeshareError, match=r"'model\.skops', which is not a regular file"):
        read_model_archive(tar_gz([*members, (link, None)]), "linked.tar.gz")
    with pytest.raises(BikeshareError, match=r"'\.\./x', a path outside the archive root"):
        read_model_archive(tar_gz([*members, regular("../x", b"x")]), "out.tar.gz")


# -- the extractor without tarfile's filters (Python < 3.11.4) -----------------------------------


def special_modes() -> bytes:
    directory = tarfile.TarInfo("d")
    directory.type, directory.mode = tarfile.DIRTYPE, 0o7777
    return tar_gz([
        (directory, None),
        regular("d/setuid", b"#!/bin/sh\n", 0o4777),
        regular("setgid-sticky", b"data", 0o3666),
        regular("plain", b"data", 0o600),
    ])  # fmt: skip


def extracted_modes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in sorted(root.rglob("*"))
    }


def test_the_fallback_extractor_strips_setuid_setgid_and_sticky_bits_as_the_filter_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tarfile.open(fileobj=io.BytesIO(special_modes())) as archive:
        safe_extract(archive, tmp_path / "filtered")  # this Python's "data" filter
    monkeypatch.delattr(tarfile, "data_filter")  # as on Debian bookworm's Python 3.11.2
    with tarfile.open(fileobj=io.BytesIO(special_modes())) as archive:
        safe_extract(archive, tmp_path / "fallback")
    modes = extracted_modes(tmp_path / "fallback")
    assert modes == {"d": 0o755, "d/setuid": 0o755, "plain": 0o600, "setgid-sticky": 0o644}
    assert modes == extracted_modes(tmp_path / "filtered"), "the same as the data filter"


def test_the_fallback_extractor_still_refuses_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(tarfile, "data_filter")
    link = tarfile.TarInfo("escape")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    with (
        tarfile.open(fileobj=io.BytesIO(tar_gz([(link, None)]))) as archive,
        pytest.raises(tarfile.TarError, match=r"refusing archive member 'escape'"),
    ):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "escape").exists()


# -- against the stand-in: upload, preflight, the bucket policy -------------------------------


def publisher_s3(aws: Aws) -> Any:
    """S3 as a data scientist holding only Terraform's model_publisher document."""
    iam = admin_client("iam", aws.url, REGION)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole",
    }]}  # fmt: skip
    role = iam.create_role(RoleName="publisher", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="publisher",
        PolicyName="model-publisher",
        PolicyDocument=json.dumps(terraform().documents["model_publisher"]),
    )
    credentials = admin_client("sts", aws.url, REGION).assume_role(
        RoleArn=role["Role"]["Arn"], RoleSessionName="publisher"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    ).client("s3", endpoint_url=aws.url)


def nothing_released(aws: Aws) -> None:
    assert aws.sagemaker.list_models()["Models"] == []
    assert aws.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []


def test_a_served_key_cannot_be_overwritten_by_the_model_publisher(
    aws: Aws, model_uri: str, model_archive: Path, tmp_path: Path
) -> None:
    """Issue 20, item 1: the publisher overwrote models/<sha>/model.tar.gz. The bucket policy
    (write-once under the prefix) refuses that; new archives still upload."""
    s3 = publisher_s3(aws)
    key = model_uri.split("/", 3)[3]
    served = aws.target.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with pytest.raises(Exception, match="explicit deny in a resource-based policy"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"a model that runs code on load")
    with pytest.raises(
        Exception, match=r"PreconditionFailed|\(412\)"
    ):  # the header is no way round
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"a model that runs code", IfNoneMatch="*")
    with pytest.raises(Exception, match="AccessDenied"):
        s3.delete_object(Bucket=BUCKET, Key=key)
    assert aws.target.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == served
    assert upload_model(s3, model_archive, BUCKET, "models", "cafe") == model_uri, "idempotent"
    other = tmp_path / "other.tar.gz"
    other.write_bytes(with_mlmodel(model_archive, "seed: 0", "seed: 1"))
    uploaded = upload_model(s3, other, BUCKET, "models", "cafe")
    assert uploaded != model_uri
    assert hashlib.sha256(other.read_bytes()).hexdigest() in uploaded


def test_a_deploy_of_an_archive_that_is_not_what_its_key_says_is_refused_before_create_model(
    aws: Aws, model_archive: Path
) -> None:
    """Bytes under a key naming another digest (here written by the account administrator,
    whom the stand-in does not check) never reach CreateModel, nor does promote's or smoke's
    read of them (they share `read_verified_archive`)."""
    claimed = hashlib.sha256(b"the archive that was reviewed").hexdigest()
    key = f"models/{claimed}/model.tar.gz"
    aws.target.client("s3").put_object(Bucket=BUCKET, Key=key, Body=model_archive.read_bytes())
    with pytest.raises(BikeshareError) as refused:
        deploy(aws.clients, aws.request(STAGING, f"s3://{BUCKET}/{key}"), say=quiet)
    assert "does not hold what its key says: its sha256 is " in str(refused.value)
    assert "Nothing was changed" in str(refused.value)
    nothing_released(aws)


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("serialization_format: skops", "serialization_format: cloudpickle", "'cloudpickle'"),
        ("    code: null\n", "    code: code\n", "names code paths"),
        ("model_path: model.skops", "model_path: ../model.skops", "leaves the model directory"),
        ("model_path: model.skops", "model_path: /tmp/model.skops", "is not a relative path"),
    ],
)
def test_an_untrusted_model_is_refused_at_upload_and_at_deploy_preflight(
    aws: Aws, model_archive: Path, tmp_path: Path, old: str, new: str, said: str
) -> None:
    untrusted = tmp_path / "model.tar.gz"
    untrusted.write_bytes(with_mlmodel(model_archive, old, new))
    with pytest.raises(BikeshareError, match=f"is not a model bikeshare serves: .*{said}"):
        upload_model(aws.clients.s3, untrusted, BUCKET, "models", "cafe")
    assert aws.target.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    # put there by other means, under its true digest: preflight refuses it all the same
    key = f"models/{hashlib.sha256(untrusted.read_bytes()).hexdigest()}/model.tar.gz"
    aws.target.client("s3").put_object(Bucket=BUCKET, Key=key, Body=untrusted.read_bytes())
    with pytest.raises(BikeshareError, match=f"is not a model bikeshare serves: .*{said}"):
        deploy(aws.clients, aws.request(STAGING, f"s3://{BUCKET}/{key}"), say=quiet)
    nothing_released(aws)
