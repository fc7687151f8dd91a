import hashlib
import tarfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pytest

from bikeshare.errors import BikeshareError
from bikeshare.model.features import EXAMPLE_ROW
from bikeshare.model.package import package_model
from support import extract


def test_archive_has_the_model_files_at_its_root(model_archive: Path, model_dir: Path) -> None:
    with tarfile.open(model_archive) as archive:
        names = archive.getnames()
        members = archive.getmembers()
    assert "MLmodel" in names
    assert sorted(names) == sorted(
        p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")
    )
    assert all(not n.startswith(("/", "./", "..")) for n in names)
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}


def test_packaging_is_byte_for_byte_deterministic(model_dir: Path, tmp_path: Path) -> None:
    first = package_model(model_dir, tmp_path / "one.tar.gz").read_bytes()
    second = package_model(model_dir, tmp_path / "two.tar.gz").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_unpacked_archive_loads_and_predicts(model_archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "opt-ml-model"
    with tarfile.open(model_archive) as archive:
        extract(archive, target)
    model = mlflow.pyfunc.load_model(str(target))
    assert model.predict(pd.DataFrame([EXAMPLE_ROW]))[0] > 0


def test_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(BikeshareError, match="not an MLflow model: no MLmodel file"):
        package_model(tmp_path, tmp_path / "out.tar.gz")
    assert not (tmp_path / "out.tar.gz").exists()


def test_refuses_links_that_could_point_outside(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "escape").symlink_to("/etc/passwd")
    with pytest.raises(BikeshareError, match="symbolic link"):
        package_model(copy, tmp_path / "out.tar.gz")
