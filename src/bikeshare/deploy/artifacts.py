"""Model archives in S3: content-addressed upload, and reading what an archive says about itself."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import re
import tarfile
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bikeshare.deploy.aws import error_code
from bikeshare.errors import BikeshareError
from bikeshare.model.trust import (
    REQUIREMENTS,
    SERVING_EXAMPLE,
    check_members,
    check_mlmodel,
    check_requirements,
    check_serving_example,
)

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
# tarfile reads a metadata header's member by recursing into the next header, so a chain of them
# recurses once per link: past the interpreter's limit that is a RecursionError, not a refusal.
# A real archive chains at most a pax global header, a pax header and GNU long name and link.
MAX_CHAINED_HEADERS = 4
_TEXT_MEMBERS = ("MLmodel", REQUIREMENTS, SERVING_EXAMPLE)


@dataclass(frozen=True)
class ModelArchive:
    """What a packaged MLflow model declares: its requirements and its serving input example."""

    requirements: dict[str, str]
    serving_example: dict[str, Any] | None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key), with a message naming the problem otherwise.

    S3 allows any character in a key, but ours are `<prefix>/<sha256>/model.tar.gz`: a URI with
    whitespace, control or format characters or a backtick is refused, as it would break out of
    the line or the code span it is printed in (step summaries, pull-request comments, logs).
    """
    if not uri.startswith("s3://") or "/" not in uri[5:] or uri.endswith("/"):
        raise BikeshareError(
            f"model data must be an s3://bucket/key URI of a model.tar.gz: {uri!r}"
        )
    unsafe = sorted({c for c in uri if c == "`" or c.isspace() or _is_control(c)})
    if unsafe:
        raise BikeshareError(
            f"model data {uri!r} holds {', '.join(map(repr, unsafe))}: a model archive's S3 URI "
            "has no whitespace, control characters or backticks (upload it with `bikeshare "
            "upload-model` and use the URI it prints)"
        )
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def _is_control(character: str) -> bool:
    """Unicode's "other" categories: controls, format (bidi overrides), unassigned, private."""
    return unicodedata.category(character).startswith("C")


def read_model_archive(data: bytes, where: str) -> ModelArchive:
    """Check the bytes are a packaged model in the project's own format (bikeshare.model.trust)
    within the archive caps, and read its declarations; the archive is streamed, never unpacked
    into memory."""
    texts: dict[str, str] = {}
    files: set[str] = set()
    seen: set[str] = set()
    try:
        with _open_stream(data) as archive:
            for member in bounded_members(archive, where):
                path = _check_member(member, where)
                # Keyed by the path it unpacks to: `MLmodel` and `./MLmodel` are one file, and
                # the one checked must be the one extracted (the last), so neither may repeat.
                if path in seen:
                    raise BikeshareError(
                        f"{where} holds {path!r} more than once (as {member.name!r} too); a model "
                        "archive names each file once"
                    )
                seen.add(path)
                if member.isreg():
                    files.add(path)
                    if path in _TEXT_MEMBERS:
                        texts[path] = _member_text(archive, member, where)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise BikeshareError(f"{where} is not a readable tar.gz model archive: {error}") from error
    except RecursionError as error:  # a chain of headers that the cap somehow let through
        raise BikeshareError(
            f"{where} is not a readable tar.gz model archive: its tar headers nest too deeply"
        ) from error
    if "MLmodel" not in texts:
        raise BikeshareError(
            f"{where} is not a packaged MLflow model: no MLmodel at the archive root "
            "(make it with `bikeshare package`)"
        )
    check_members(check_mlmodel(texts["MLmodel"], where), files.__contains__, where)
    check_requirements(texts[REQUIREMENTS], where)  # check_members: it is there
    example = texts.get(SERVING_EXAMPLE)
    return ModelArchive(
        requirements=parse_requirements(texts[REQUIREMENTS]),
        serving_example=check_serving_example(example, where) if example is not None else None,
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
    whole into memory before it returns a member, are refused past MAX_HEADER_BYTES, and whose
    chain of them (one recursion each in tarfile) is refused past MAX_CHAINED_HEADERS."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        metadata = (
            tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
            tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
        )  # fmt: skip
        if self.type not in metadata:
            return super()._proc_member(tarfile_)  # type: ignore[misc]
        if self.size > MAX_HEADER_BYTES:
            raise tarfile.HeaderError(  # read_model_archive names the archive
                f"a tar metadata header of {self.size} bytes is over the cap of "
                f"{MAX_HEADER_BYTES} bytes (an archive bomb?)"
            )
        # tarfile reads the member this header describes by recursing, so the depth here is the
        # number of metadata headers in a row; it is kept on the archive being read.
        depth = getattr(tarfile_, "_bikeshare_chained", 0) + 1
        if depth > MAX_CHAINED_HEADERS:
            raise tarfile.HeaderError(
                f"more than {MAX_CHAINED_HEADERS} tar metadata headers in a row (a malformed "
                "or hostile archive)"
            )
        tarfile_._bikeshare_chained = depth  # type: ignore[attr-defined]
        try:
            return super()._proc_member(tarfile_)  # type: ignore[misc]
        finally:
            tarfile_._bikeshare_chained = depth - 1  # type: ignore[attr-defined]


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


def _check_member(member: tarfile.TarInfo, where: str) -> str:
    """Only regular files and directories under the archive root: `bikeshare package` writes
    nothing else, and a link could point the loader anywhere. Returns the path it unpacks to."""
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise BikeshareError(
            f"{where} holds {member.name!r}, which is not a regular file or directory; "
            "model archives hold only the model's own files"
        )
    return _member_path(member.name, where)


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
    """Upload under `<prefix>/<sha256>/model.tar.gz`; an identical upload is a no-op, and a key
    that already holds other bytes is refused (the key is write-once, so it stays wrong)."""
    data = archive.read_bytes()
    read_model_archive(data, str(archive))
    digest = hashlib.sha256(data).hexdigest()
    key = "/".join(part for part in (prefix.strip("/"), digest, "model.tar.gz") if part)
    uri = f"s3://{bucket}/{key}"
    existing = _head(s3, bucket, key)
    if existing is None:
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
            # 412: another upload made the key between HEAD and PUT; of these bytes, or not
            if error_code(error) not in ("412", "PreconditionFailed"):
                raise
            existing = _head(s3, bucket, key)
    if existing is not None:
        _check_holds(s3, existing, data, uri, archive)
    return uri


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's HEAD with its stored checksum, or None if there is no such key."""
    try:
        head: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head


def _check_holds(s3: Any, head: dict[str, Any], data: bytes, uri: str, archive: Path) -> None:
    """An existing key is the same upload only if it holds these bytes. S3's own SHA-256 of it
    (computed and verified on the PUT; `upload_model` always asks for one) says so; an object
    written without one is downloaded and hashed. The metadata is whatever the writer chose, so
    it can only disagree, never vouch. Anything else is a key squatted by other bytes."""
    digest = hashlib.sha256(data).digest()
    expected = base64.b64encode(digest).decode()
    stored = head.get("ChecksumSHA256")
    if stored is None and head.get("ContentLength") == len(data):  # else it differs already
        bucket, key = parse_s3_uri(uri)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        stored = base64.b64encode(hashlib.sha256(body).digest()).decode()
    claimed = head.get("Metadata", {}).get("sha256")
    if stored == expected and claimed in (None, digest.hex()):
        return
    if stored != expected:
        what = f"SHA-256 {stored}" if stored else f"{head.get('ContentLength')} bytes"
        found = f"already holds other bytes than {archive} ({what}, not {expected})"
    else:
        found = f"already holds an object whose metadata names another sha256, {claimed!r}"
    raise BikeshareError(
        f"{uri} {found}; the key is write-once, so an administrator of the bucket must remove "
        "that object before this archive can be uploaded. Nothing was uploaded"
    )


def verified_archive(data: bytes, uri: str) -> bytes:
    """The archive, once its sha256 matches the one its key names (`.../<sha256>/model.tar.gz`,
    as `upload_model` stores it). A key naming no digest is refused: nothing would tie what is
    checked now to what SageMaker reads from that key later."""
    parse_s3_uri(uri)  # the URI is printed in summaries: no characters that break out of a line
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
