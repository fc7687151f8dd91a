"""Model archives in S3: content-addressed upload, and reading what an archive says about itself."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bikeshare.deploy.aws import error_code
from bikeshare.errors import BikeshareError

MAX_ARCHIVE_BYTES = 512 * 1024 * 1024  # read into memory for inspection; ours are ~1 MB


@dataclass(frozen=True)
class ModelArchive:
    """What a packaged MLflow model declares: its requirements and its serving input example."""

    requirements: dict[str, str]
    serving_example: dict[str, Any] | None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key), with a message naming the problem otherwise."""
    if not uri.startswith("s3://") or "/" not in uri[5:] or uri.endswith("/"):
        raise BikeshareError(
            f"model data must be an s3://bucket/key URI of a model.tar.gz: {uri!r}"
        )
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def read_model_archive(data: bytes, where: str) -> ModelArchive:
    """Check the bytes are a packaged MLflow model and read its declarations."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            names = set(archive.getnames())
            if "MLmodel" not in names:
                raise BikeshareError(
                    f"{where} is not a packaged MLflow model: no MLmodel at the archive root "
                    "(make it with `bikeshare package`)"
                )
            requirements = (
                _member_text(archive, "requirements.txt") if ("requirements.txt" in names) else ""
            )
            example = (
                _member_text(archive, "serving_input_example.json")
                if ("serving_input_example.json" in names)
                else None
            )
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BikeshareError(f"{where} is not a readable tar.gz model archive: {error}") from error
    return ModelArchive(
        requirements=parse_requirements(requirements),
        serving_example=json.loads(example) if example else None,
    )


def _member_text(archive: tarfile.TarFile, name: str) -> str:
    member = archive.extractfile(name)
    if member is None:
        raise BikeshareError(f"{name} in the model archive is not a regular file")
    return member.read().decode("utf-8")


def parse_requirements(text: str) -> dict[str, str]:
    """`name==version` lines -> {normalised name: version}; other lines are ignored."""
    pinned = {}
    for line in text.splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pinned[normalise(name)] = version.strip()
    return pinned


def normalise(name: str) -> str:
    """PEP 503 normalisation, so `scikit_learn` and `scikit-learn` compare equal."""
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


def fetch_archive(s3: Any, uri: str) -> bytes:
    """Download a model archive, refusing a missing one with a clear message."""
    bucket, key = parse_s3_uri(uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise BikeshareError(
                f"model artifact {uri} does not exist; nothing was changed"
            ) from error
        if error_code(error) in ("403", "AccessDenied", "Forbidden"):
            raise BikeshareError(
                f"reading model artifact {uri} was refused (AccessDenied). The deploy roles, and "
                "the SageMaker execution role that would load it, may read model archives only "
                "under the model prefix Terraform grants (s3://<model_bucket_name>/models/ by "
                "default): upload it there with `bikeshare upload-model`. (A role without "
                "s3:ListBucket, such as the plan job's, also gets this for a missing archive.) "
                "Nothing was changed"
            ) from error
        raise
    if head["ContentLength"] > MAX_ARCHIVE_BYTES:
        raise BikeshareError(f"model artifact {uri} is {head['ContentLength']} bytes; too large")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def upload_model(s3: Any, archive: Path, bucket: str, prefix: str, git_sha: str) -> str:
    """Upload under `<prefix>/<sha256>/model.tar.gz`; an identical upload is a no-op."""
    data = archive.read_bytes()
    read_model_archive(data, str(archive))
    digest = hashlib.sha256(data).hexdigest()
    key = "/".join(part for part in (prefix.strip("/"), digest, "model.tar.gz") if part)
    uri = f"s3://{bucket}/{key}"
    if not _exists(s3, bucket, key):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType="application/gzip",
            ChecksumAlgorithm="SHA256",
            Metadata={"sha256": digest},
            Tagging=f"git-sha={git_sha}",
        )
    return uri


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def verified_archive(data: bytes, uri: str) -> bytes:
    """The archive, once its sha256 matches the one its key names (`.../<sha256>/model.tar.gz`,
    as `upload_model` stores it); keys without a digest are taken as they are."""
    named = re.search(r"/([0-9a-f]{64})/[^/]+$", uri)
    if named is not None and hashlib.sha256(data).hexdigest() != named[1]:
        raise BikeshareError(
            f"{uri} does not hold what its key says: its sha256 is "
            f"{hashlib.sha256(data).hexdigest()}, the key names {named[1]}"
        )
    return data


def unpack_model(data: bytes, uri: str, target: Path) -> Path:
    """Unpack a model archive into `target` as SageMaker does into /opt/ml/model; members
    that would land outside it are refused."""
    read_model_archive(data, uri)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        safe_extract(archive, target)
    return target


def safe_extract(archive: tarfile.TarFile, target: Path) -> None:
    """extractall with the "data" filter (no absolute paths, links out or devices).

    The filter argument arrived in Python 3.11.4; Debian bookworm's 3.11.2 (the tools container
    on machines without a registry) lacks it, so there every member is checked by hand instead.
    """
    if hasattr(tarfile, "data_filter"):
        archive.extractall(target, filter="data")
        return
    root = target.resolve()
    for member in archive.getmembers():
        destination = (target / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not destination.is_relative_to(root):
            raise tarfile.TarError(f"refusing archive member {member.name!r}")
    archive.extractall(target)  # noqa: S202  # nosec B202 - every member was checked above
