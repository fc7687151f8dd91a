"""Model archives in S3: trust (the key's sha256, the project's own format), archive bombs, the
extractor's modes, and the bucket's write-once rule, enforced by the stand-in as Terraform has it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bikeshare.deploy import artifacts
from bikeshare.deploy.artifacts import (
    MAX_CHAINED_HEADERS,
    MAX_MEMBERS,
    MAX_UNPACKED_BYTES,
    parse_s3_uri,
    read_model_archive,
    safe_extract,
    unpack_model,
    upload_model,
    verified_archive,
)
from bikeshare.deploy.release import deploy
from bikeshare.errors import BikeshareError
from support.account import role_session, terraform
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
    return with_member(model_archive, "MLmodel", old, new)


def with_member(model_archive: Path, name: str, old: str, new: str) -> bytes:
    """The real archive with one change in one of its text members (which must apply)."""
    members = []
    for info, data in model_members(model_archive):
        if info.name == name:
            assert data is not None
            assert old.encode() in data, f"no {old!r} in {name}"
            info, data = regular(name, data.replace(old.encode(), new.encode()))
        members.append((info, data))
    return tar_gz(members)


def header_chain(links: int) -> bytes:
    """`links` GNU long-name headers in a row, then an empty MLmodel: tarfile reads each link by
    recursing into the next (the reviewer's /tmp/rv/mk_chain.py)."""
    raw = io.BytesIO()
    name = b"A" * 100 + b"\0"
    for _ in range(links):
        link = tarfile.TarInfo("././@LongLink")
        link.type, link.size = tarfile.GNUTYPE_LONGNAME, len(name)
        raw.write(link.tobuf(format=tarfile.GNU_FORMAT)[:512])
        raw.write(name.ljust(512, b"\0"))
    raw.write(tarfile.TarInfo("MLmodel").tobuf(format=tarfile.USTAR_FORMAT) + bytes(1024))
    return gzip.compress(raw.getvalue())


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
        safe_extract(archive, tmp_path / "filtered")  # this Python's "data" filter, if it has one
    # raising=False: Debian bookworm's Python 3.11.2 (the tools image's) has no filter to remove
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with tarfile.open(fileobj=io.BytesIO(special_modes())) as archive:
        safe_extract(archive, tmp_path / "fallback")
    modes = extracted_modes(tmp_path / "fallback")
    assert modes == {"d": 0o755, "d/setuid": 0o755, "plain": 0o600, "setgid-sticky": 0o644}
    if hasattr(tarfile, "data_filter"):  # else both extractions above were the fallback's
        assert modes == extracted_modes(tmp_path / "filtered"), "the same as the data filter"


def test_the_fallback_extractor_still_refuses_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
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
    policy = terraform().documents["model_publisher"]
    return role_session(aws.url, REGION, "publisher", policy).client("s3", endpoint_url=aws.url)


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


# -- review of issue 20: what is checked is what is extracted and loaded ------------------------


def test_a_path_that_occurs_twice_is_refused_so_the_checked_file_is_the_loaded_one(
    model_archive: Path, tmp_path: Path
) -> None:
    """`MLmodel` (trusted) then `./MLmodel` (cloudpickle): both unpack to one file, the last."""
    members = model_members(model_archive)
    mlmodel = next(data for info, data in members if info.name == "MLmodel")
    assert mlmodel is not None
    cloudpickle = mlmodel.replace(b"serialization_format: skops", b"serialization_format: pickle")
    twice = tar_gz([*members, regular("./MLmodel", cloudpickle)])
    with pytest.raises(BikeshareError) as refused:
        read_model_archive(twice, "dup.tar.gz")
    assert str(refused.value) == (
        "dup.tar.gz holds 'MLmodel' more than once (as './MLmodel' too); a model archive names "
        "each file once"
    )
    with pytest.raises(BikeshareError, match="holds 'MLmodel' more than once"):
        unpack_model(twice, "dup.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing was unpacked"
    directory = tarfile.TarInfo("model.skops/")
    directory.type = tarfile.DIRTYPE
    with pytest.raises(BikeshareError, match=r"holds 'model\.skops' more than once"):
        read_model_archive(tar_gz([*members, (directory, None)]), "dir.tar.gz")


def test_a_chain_of_tar_metadata_headers_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5000 chained GNU long-name headers made tarfile recurse past Python's limit."""
    for links in (MAX_CHAINED_HEADERS + 1, 5000):
        with pytest.raises(BikeshareError) as refused:
            read_model_archive(header_chain(links), "chain.tar.gz")
        assert str(refused.value) == (
            "chain.tar.gz is not a readable tar.gz model archive: more than "
            f"{MAX_CHAINED_HEADERS} tar metadata headers in a row (a malformed or hostile archive)"
        )
    # Should the cap ever be raised past what the stack holds: still one line, not a traceback.
    monkeypatch.setattr(artifacts, "MAX_CHAINED_HEADERS", 10**6)
    with pytest.raises(BikeshareError) as refused:
        read_model_archive(header_chain(5000), "chain.tar.gz")
    assert str(refused.value) == (
        "chain.tar.gz is not a readable tar.gz model archive: its tar headers nest too deeply"
    )


def test_long_names_in_pax_and_gnu_archives_are_still_read(model_archive: Path) -> None:
    """The chain cap leaves room for what tar tools write for one long name."""
    long = regular("notes/" + "n" * 200, b"a long name")
    pax = tar_gz([*model_members(model_archive), long])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in [*model_members(model_archive), long]:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    for data in (pax, gzip.compress(raw.getvalue())):
        assert read_model_archive(data, "long.tar.gz").requirements["scikit-learn"]


@pytest.mark.parametrize(
    ("name", "old", "new", "said"),
    [
        ("requirements.txt", "numpy==", "this\nnumpy==", "'this', is not a `name==version` pin"),
        ("requirements.txt", "numpy==", "-r /etc/os-release\nnumpy==", "'-r /etc/os-release'"),
        ("serving_input_example.json", "{", "{{", "its serving_input_example.json is not JSON"),
    ],
)
def test_an_archive_with_bad_requirements_or_example_is_refused_in_one_line(
    model_archive: Path, name: str, old: str, new: str, said: str
) -> None:
    with pytest.raises(BikeshareError) as refused:
        read_model_archive(with_member(model_archive, name, old, new), "m.tar.gz")
    assert str(refused.value).startswith("m.tar.gz is not a model bikeshare serves: ")
    assert said in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", ["requirements.txt", "conda.yaml", "python_env.yaml"])
def test_an_archive_without_an_environment_file_or_with_it_linked_is_refused(
    model_archive: Path, name: str
) -> None:
    others = [m for m in model_members(model_archive) if m[0].name != name]
    with pytest.raises(BikeshareError, match=f"{name} is not a regular file in it"):
        read_model_archive(tar_gz(others), "m.tar.gz")
    link = tarfile.TarInfo(name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/os-release"
    with pytest.raises(BikeshareError, match="which is not a regular file or directory"):
        read_model_archive(tar_gz([*others, (link, None)]), "m.tar.gz")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://b/models/" + "ab" * 32 + "/model`.tar.gz",
        "s3://b/models/" + "ab" * 32 + "/model.tar.gz\n# injected",
        "s3://b/models/" + "ab" * 32 + "/model .tar.gz",
        "s3://b/models/" + "ab" * 32 + "/model\u202e.tar.gz",  # a right-to-left override
        "s3://b/models/" + "ab" * 32 + "/model\x1b[2J.tar.gz",
    ],
)
def test_uris_that_would_break_out_of_a_summary_line_are_refused(uri: str) -> None:
    named = "ab" * 32
    for check in (parse_s3_uri, lambda u: verified_archive(bytes.fromhex(named), u)):
        with pytest.raises(BikeshareError) as refused:
            check(uri)
        message = str(refused.value)
        assert message.startswith(f"model data {uri!r} holds ")
        assert "no whitespace, control characters or backticks" in message
        assert message.isprintable(), "the refusal itself is one plain line"


def test_an_upload_to_a_key_that_holds_other_bytes_is_refused(
    aws: Aws, model_archive: Path
) -> None:
    """A key squatted before the upload (here by the account administrator): the no-op would
    have printed its URI as this archive's, and the key is write-once, so it stays wrong."""
    digest = hashlib.sha256(model_archive.read_bytes()).hexdigest()
    key = f"models/{digest}/model.tar.gz"
    admin = aws.target.client("s3")
    admin.put_object(
        Bucket=BUCKET, Key=key, Body=b"other bytes", Metadata={"sha256": digest}
    )  # the metadata claims the digest: only S3's own checksum (or the bytes) can tell
    with pytest.raises(BikeshareError) as refused:
        upload_model(aws.clients.s3, model_archive, BUCKET, "models", "cafe")
    assert str(refused.value).startswith(
        f"s3://{BUCKET}/{key} already holds other bytes than {model_archive} ("
    )
    assert "Nothing was uploaded" in str(refused.value)
    assert admin.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"other bytes"
    admin.put_object(Bucket=BUCKET, Key=key, Body=b"x", ChecksumAlgorithm="SHA256")
    with pytest.raises(BikeshareError, match=r"already holds other bytes than .*SHA-256 "):
        upload_model(aws.clients.s3, model_archive, BUCKET, "models", "cafe")


def test_an_upload_of_the_same_bytes_is_a_no_op_with_or_without_a_stored_checksum(
    aws: Aws, model_archive: Path
) -> None:
    uri = upload_model(aws.clients.s3, model_archive, BUCKET, "models", "cafe")
    assert upload_model(aws.clients.s3, model_archive, BUCKET, "models", "cafe") == uri
    key = uri.split("/", 3)[3]
    head = aws.target.client("s3").head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"], "S3 keeps the SHA-256 the upload asked for"
    # The same bytes written by another tool, with no SHA-256 checksum: hashed, then accepted.
    aws.target.client("s3").delete_object(Bucket=BUCKET, Key=key)
    aws.target.client("s3").put_object(Bucket=BUCKET, Key=key, Body=model_archive.read_bytes())
    assert upload_model(aws.clients.s3, model_archive, BUCKET, "models", "cafe") == uri


def test_a_conditional_write_that_is_not_create_only_is_refused_by_the_bucket_policy(
    aws: Aws,
) -> None:
    """`If-None-Match` with an ETag instead of `*` carries the header but does not promise a
    create (S3 answers it 501 today): the bucket policy denies it on its own terms."""
    s3 = publisher_s3(aws)
    key = f"models/{'cd' * 32}/model.tar.gz"
    with pytest.raises(Exception, match="explicit deny in a resource-based policy"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"archive", IfNoneMatch='"an-etag"')
    assert aws.target.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
