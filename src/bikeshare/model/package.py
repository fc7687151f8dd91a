"""Package an MLflow model directory as the `model.tar.gz` SageMaker unpacks into /opt/ml/model."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from bikeshare.errors import BikeshareError
from bikeshare.model.trust import check_model_directory

# Fixed metadata so the same directory always gives the same bytes (and so the same sha256, which
# the release engine uses as the archive's S3 key).
_FILE_MODE = 0o644
_DIR_MODE = 0o755


def check_model_dir(model_dir: Path) -> None:
    """Refuse anything but a model directory in the project's own format (bikeshare.model.trust),
    naming what is missing or untrusted: packaging and serving both call this."""
    if not model_dir.is_dir():
        raise BikeshareError(f"{model_dir} is not a directory")
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise BikeshareError(
            f"{model_dir} is not an MLflow model: no MLmodel file at its root "
            "(pass the directory `bikeshare train --output` wrote)"
        )
    check_model_directory(model_dir)


def package_model(model_dir: Path, output: Path) -> Path:
    """Write a deterministic gzipped tar with the model's files at the archive root."""
    check_model_dir(model_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in _model_entries(model_dir):
            archive.addfile(*_entry(model_dir, path))
    with (
        output.open("wb") as handle,
        gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=9) as zipped,
    ):
        zipped.write(raw.getvalue())
    return output


def _model_entries(model_dir: Path) -> list[Path]:
    entries = sorted(model_dir.rglob("*"), key=lambda p: p.relative_to(model_dir).as_posix())
    for path in entries:
        if path.is_symlink():
            raise BikeshareError(
                f"{path} is a symbolic link; a model archive holds only the model's own files"
            )
    return entries


def _entry(model_dir: Path, path: Path) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = tarfile.TarInfo(path.relative_to(model_dir).as_posix())
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
        return info, None
    info.mode = _FILE_MODE
    data = path.read_bytes()
    info.size = len(data)
    return info, io.BytesIO(data)
