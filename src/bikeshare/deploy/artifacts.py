"""Model archives in S3: content-addressed upload, and reading what an archive says about itself."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bikeshare.deploy.aws import error_code
from bikeshare.errors import BikeshareError
from bikeshare.model.trust import check_members, check_mlmodel

MAX_ARCHIVE_BYTES = 512 * 1024 * 1024  # read into memory for inspection; ours are ~1 MB
# Archive bombs: what an archive may unpack to. Ours hold ~10 files and ~1 MB; a model trained
# on real data is larger, but not by these factors. Both are checked on each member's header, as
# it streams past, before its data is decompressed, so a refusal costs neither memory nor time.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 1000
# The members read into memory (MLmodel, requirements.txt, the serving example), and the tar
# metadata headers (pax, GNU long names) tarfile itself reads whole: all tiny in our archives.
MAX_TEXT_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
_TEXT_MEMBERS = ("MLmodel", "requirements.txt", "serving_input_example.json")


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
    """Check the bytes are a packaged model in the project's own format (bikeshare.model.trust)
    within the archive caps, and read its declarations; the archive is streamed, never unpacked
    into memory."""
    texts: dict[str, str] = {}
    files: set[str] = set()
    try:
        with _open_stream(data) as archive:
            for member in bounded_members(archive, where):
                _check_member(member, where)
                if member.isreg():
                    files.add(_member_path(member.name))
                    if member.name in _TEXT_MEMBERS:
                        texts[member.name] = _member_text(archive, member, where)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise BikeshareError(f"{where} is not a readable tar.gz model archive: {error}") from error
    if "MLmodel" not in texts:
        raise BikeshareError(
            f"{where} is not a packaged MLflow model: no MLmodel at the archive root "
            "(make it with `bikeshare package`)"
        )
    check_members(check_mlmodel(texts["MLmodel"], where), files.__contains__, where)
    example = texts.get("serving_input_example.json")
    return ModelArchive(
        requirements=parse_requirements(texts.get("requirements.txt", "")),
        serving_example=json.loads(example) if example else None,
    )


def read_verified_archive(s3: Any, uri: str) -> tuple[bytes, ModelArchive]:
    """Fetch, verify and read: what deploy preflight, promote, smoke and fetch-model all use.

    The archive's sha256 must be the one its content-addressed key names
    (`<prefix>/<sha256>/model.tar.gz`, as `upload_model` writes it), so what was checked here is
    what SageMaker loads from the same key; a key naming no digest is refused.
    """
    data = verified_archive(fetch_archive(s3, uri), uri)
    return data, read_model_archive(data, uri)


class _BoundedInfo(tarfile.TarInfo):
    """A tar header whose metadata records (pax headers, GNU long names), which tarfile reads
    whole into memory before it returns a member, are refused past MAX_HEADER_BYTES."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        metadata = (
            tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
            tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
        )  # fmt: skip
        if self.type in metadata and self.size > MAX_HEADER_BYTES:
            raise tarfile.HeaderError(  # read_model_archive names the archive
                f"a tar metadata header of {self.size} bytes is over the cap of "
                f"{MAX_HEADER_BYTES} bytes (an archive bomb?)"
            )
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def _open_stream(data: bytes) -> tarfile.TarFile:
    """The archive as a stream (`r|*`): members are read in order, each once."""
    return tarfile.open(fileobj=io.BytesIO(data), mode="r|*", tarinfo=_BoundedInfo)


def bounded_members(archive: tarfile.TarFile, where: str) -> Iterator[tarfile.TarInfo]:
    """The archive's members, refusing it once they number more than MAX_MEMBERS or their sizes
    add up past MAX_UNPACKED_BYTES (a running total of the headers, before any data is read)."""
    total = 0
    for count, member in enumerate(archive, start=1):
        total += member.size
        if count > MAX_MEMBERS:
            raise BikeshareError(
                f"{where} has more than {MAX_MEMBERS} members, the cap for a model archive "
                "(an archive bomb?)"
            )
        if total > MAX_UNPACKED_BYTES:
            raise BikeshareError(
                f"{where} unpacks to more than {MAX_UNPACKED_BYTES} bytes, the cap for a model "
                "archive (an archive bomb?)"
            )
        yield member


def _check_member(member: tarfile.TarInfo, where: str) -> None:
    """Only regular files and directories under the archive root: `bikeshare package` writes
    nothing else, and a link could point the loader anywhere."""
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise BikeshareError(
            f"{where} holds {member.name!r}, which is not a regular file or directory; "
            "model archives hold only the model's own files"
        )
    _member_path(member.name, where)


def _member_path(name: str, where: str = "the model archive") -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise BikeshareError(f"{where} holds {name!r}, a path outside the archive root")
    return path.as_posix()


def _member_text(archive: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> str:
    if member.size > MAX_TEXT_BYTES:
        raise BikeshareError(
            f"{member.name} in {where} is {member.size} bytes, over the cap of {MAX_TEXT_BYTES}"
        )
    handle = archive.extractfile(member)
    if handle is None:
        raise BikeshareError(f"{member.name} in {where} is not a regular file")
    try:
        return handle.read().decode("utf-8")
    except UnicodeDecodeError as error:
        raise BikeshareError(f"{member.name} in {where} is not UTF-8 text: {error}") from error


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
        try:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType="application/gzip",
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": digest},
                Tagging=f"git-sha={git_sha}",
                # Create, never overwrite: the bucket policy refuses a write under the model
                # prefix without this header (infra/terraform/s3.tf), so a served key is immutable.
                IfNoneMatch="*",
            )
        except Exception as error:
            # 412: another upload of these very bytes made the key between HEAD and PUT
            if error_code(error) not in ("412", "PreconditionFailed"):
                raise
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
    as `upload_model` stores it). A key naming no digest is refused: nothing would tie what is
    checked now to what SageMaker reads from that key later."""
    named = re.search(r"/([0-9a-f]{64})/[^/]+$", uri)
    if named is None:
        raise BikeshareError(
            f"{uri} names no sha256: model archives are deployed only from content-addressed "
            "keys (<prefix>/<sha256>/model.tar.gz); upload it with `bikeshare upload-model` and "
            "use the URI it prints. Nothing was changed"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != named[1]:
        raise BikeshareError(
            f"{uri} does not hold what its key says: its sha256 is {actual}, the key names "
            f"{named[1]}; it was changed after upload. Nothing was changed"
        )
    return data


def unpack_model(data: bytes, uri: str, target: Path) -> Path:
    """Unpack a model archive into `target` as SageMaker does into /opt/ml/model; members
    that would land outside it are refused."""
    read_model_archive(data, uri)
    target.mkdir(parents=True, exist_ok=True)
    with _open_stream(data) as archive:
        safe_extract(archive, target)
    return target


def safe_extract(archive: tarfile.TarFile, target: Path, where: str = "the archive") -> None:
    """Extract member by member within the archive caps (`bounded_members`), with the "data"
    filter: no absolute paths, links out or devices, no setuid/setgid/sticky bits or
    group/other write permission.

    The filter argument arrived in Python 3.11.4; Debian bookworm's 3.11.2 (the tools container
    on machines without a registry) lacks it, so there `_data_member` does the filter's work.
    """
    if hasattr(tarfile, "data_filter"):
        for member in bounded_members(archive, where):
            archive.extract(member, target, filter="data")
        return
    root = target.resolve()
    for member in bounded_members(archive, where):
        archive.extract(_data_member(member, root), target)  # nosec B202 - member checked


def _data_member(member: tarfile.TarInfo, root: Path) -> tarfile.TarInfo:
    """What the "data" filter makes of a member, for a tarfile without filters: only regular
    files and directories inside `root`, with the filter's modes and no owner."""
    destination = (root / member.name).resolve()
    if not (member.isfile() or member.isdir()) or not destination.is_relative_to(root):
        raise tarfile.TarError(f"refusing archive member {member.name!r}")
    safe = copy.copy(member)
    mode = member.mode & 0o755  # no setuid, setgid or sticky bit; no group/other write
    # The filter ignores directory modes (0o755 is what mkdir gives under umask 022); a file not
    # executable by its owner is executable by nobody, and its owner may read and write it.
    safe.mode = 0o755 if member.isdir() else (mode if mode & 0o100 else mode & ~0o111) | 0o600
    safe.uid, safe.gid, safe.uname, safe.gname = -1, -1, "", ""
    return safe
