"""The model trust check (bikeshare.model.trust): the project's own format, and nothing else.

Each untrusted variant is the session's real MLmodel with one thing changed, so every refusal
here is of a file that differs from an accepted one in exactly the way the test names. The same
variants are refused at upload and deploy preflight in test/deploy/test_artifacts.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bikeshare.errors import BikeshareError
from bikeshare.model.package import package_model
from bikeshare.model.trust import check_mlmodel, check_model_directory, check_requirements
from bikeshare.serving.server import load_model

# name -> (what is replaced in the real MLmodel, by what, the words of the refusal)
UNTRUSTED = {
    "cloudpickle": (
        "serialization_format: skops",
        "serialization_format: cloudpickle",
        "its serialization_format is 'cloudpickle', not 'skops'",
    ),
    "pickle python_model": (
        "    loader_module: mlflow.sklearn\n",
        "    loader_module: mlflow.pyfunc.model\n    python_model: python_model.pkl\n",
        "keys bikeshare does not write: ['python_model']",
    ),
    "code paths": ("    code: null\n", "    code: code\n", "names code paths ('code')"),
    "parent path": (
        "model.skops",
        "../model.skops",
        "python_function.model_path '../model.skops' leaves the model directory",
    ),
    "absolute path": (
        "model.skops",
        "/opt/ml/elsewhere/model.skops",
        "'/opt/ml/elsewhere/model.skops' is not a relative path in the model directory",
    ),
    "trusts more types": (
        "    skops_trusted_types:\n",
        "    skops_trusted_types:\n    - builtins.eval\n",
        "asks skops to trust types the project does not: ['builtins.eval']",
    ),
}


def untrusted_mlmodel(model_dir: Path, variant: str) -> str:
    """The real MLmodel with one untrusted change (which must apply, else it proves nothing)."""
    text = (model_dir / "MLmodel").read_text()
    old, new, _ = UNTRUSTED[variant]
    assert old in text, f"the MLmodel `bikeshare train` writes no longer has {old!r}"
    return text.replace(old, new)


def test_the_model_bikeshare_trains_is_trusted(model_dir: Path) -> None:
    trusted = check_model_directory(model_dir)
    assert trusted.model_file == "model.skops"
    assert "serving_input_example.json" in trusted.paths


@pytest.mark.parametrize("variant", sorted(UNTRUSTED))
def test_untrusted_mlmodels_are_refused_in_one_line(model_dir: Path, variant: str) -> None:
    with pytest.raises(BikeshareError) as refused:
        check_mlmodel(untrusted_mlmodel(model_dir, variant), "model.tar.gz")
    message = str(refused.value)
    assert message.startswith("model.tar.gz is not a model bikeshare serves: ")
    assert UNTRUSTED[variant][2] in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("flavors: [", "its MLmodel is not valid YAML"),
        ("flavors: {python_function: {loader_module: mlflow.sklearn}}", "its flavors are"),
        ("- a list", "no flavors mapping"),
    ],
)
def test_malformed_mlmodels_are_refused(text: str, said: str) -> None:
    with pytest.raises(BikeshareError, match=said):
        check_mlmodel(text, "m")


def serving_copy(model_dir: Path, target: Path, mlmodel: str | None = None) -> Path:
    shutil.copytree(model_dir, target)
    if mlmodel is not None:
        (target / "MLmodel").write_text(mlmodel)
    return target


@pytest.mark.parametrize("variant", ["cloudpickle", "code paths", "parent path", "absolute path"])
def test_the_server_refuses_to_load_an_untrusted_model(
    model_dir: Path, tmp_path: Path, variant: str
) -> None:
    """What `bikeshare serve` calls before MLflow sees the model (in-process, no server)."""
    copy = serving_copy(model_dir, tmp_path / "model", untrusted_mlmodel(model_dir, variant))
    with pytest.raises(BikeshareError) as refused:
        load_model(copy)
    assert str(refused.value).startswith(f"cannot serve: {copy} is not a model bikeshare serves")
    assert UNTRUSTED[variant][2] in str(refused.value)


def test_the_server_refuses_a_model_file_linked_out_of_the_directory(
    model_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.skops"
    outside.write_bytes((model_dir / "model.skops").read_bytes())  # loads fine, if followed
    copy = serving_copy(model_dir, tmp_path / "model")
    (copy / "model.skops").unlink()
    (copy / "model.skops").symlink_to(outside)
    with pytest.raises(BikeshareError, match=r"model\.skops resolves to .*, outside the model dir"):
        load_model(copy)


def test_packaging_refuses_an_untrusted_model(model_dir: Path, tmp_path: Path) -> None:
    copy = serving_copy(model_dir, tmp_path / "model", untrusted_mlmodel(model_dir, "code paths"))
    with pytest.raises(BikeshareError, match="names code paths"):
        package_model(copy, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()


def test_the_check_imports_neither_scikit_learn_nor_mlflow() -> None:
    """The release tools check archives without the model's libraries."""
    probe = (
        "import sys, bikeshare.model.trust, bikeshare.deploy.artifacts\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'mlflow', 'skops'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"


# -- requirements.txt and the other files MLflow reads by name (review of issue 20) ------------


@pytest.mark.parametrize(
    "line",
    [
        "this",  # MLflow __import__s a requirement it finds no distribution for
        "-r /etc/os-release",  # ... and follows includes to any path
        "-c constraints.txt",
        "--index-url https://example.invalid/simple",
        "numpy>=2",
        "numpy @ https://example.invalid/numpy.whl",
        "numpy==2.4.6; python_version < '3'",
    ],
)
def test_requirements_other_than_pins_are_refused(line: str) -> None:
    text = f"# pinned by bikeshare train\nscikit-learn==1.9.1\n\n{line}\nnumpy==2.4.6\n"
    with pytest.raises(BikeshareError) as refused:
        check_requirements(text, "m")
    assert str(refused.value).startswith("m is not a model bikeshare serves: line 4 of its ")
    assert f"{line!r}, is not a `name==version` pin" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_pins_comments_and_blank_lines_are_accepted(model_dir: Path) -> None:
    real = (model_dir / "requirements.txt").read_text()
    check_requirements(real, "m")
    check_requirements(f"# comment\n\n{real}\nskops==0.16.0  # why\nzope.interface==7.0rc1\n", "m")


def test_the_server_refuses_requirements_that_mlflow_would_follow_and_import(
    model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The reviewer's reproduction: MLflow printed the Zen of Python (it imported `this`) and read
    /etc/os-release as a requirements file, while loading a model the trust check accepted."""
    copy = serving_copy(model_dir, tmp_path / "model")
    with (copy / "requirements.txt").open("a") as handle:
        handle.write("\nthis\n-r /etc/os-release\n")  # the file ends without a newline
    with pytest.raises(BikeshareError) as refused:
        load_model(copy)
    assert str(refused.value).startswith(f"cannot serve: {copy} is not a model bikeshare serves")
    assert "'this', is not a `name==version` pin" in str(refused.value)
    assert "Zen of Python" not in capfd.readouterr().out


def test_mlflow_is_not_let_parse_the_requirements_of_a_model_it_loads(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second lock, on its own: a well-formed pin of a module with no installed distribution
    (which the trust check accepts) is not imported by the server's MLflow load."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "bikeshare_canary.py").write_text("__version__ = '1.0'\n")
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.delitem(sys.modules, "bikeshare_canary", raising=False)
    copy = serving_copy(model_dir, tmp_path / "model")
    with (copy / "requirements.txt").open("a") as handle:
        handle.write("\nbikeshare_canary==1.0\n")
    load_model(copy)
    assert "bikeshare_canary" not in sys.modules, "MLflow imported a name requirements.txt chose"


@pytest.mark.parametrize("name", ["requirements.txt", "conda.yaml", "python_env.yaml"])
def test_the_server_refuses_environment_files_linked_out_or_missing(
    model_dir: Path, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / f"elsewhere-{name}"
    outside.write_bytes((model_dir / name).read_bytes())  # harmless content: the link is refused
    linked = serving_copy(model_dir, tmp_path / "linked")
    (linked / name).unlink()
    (linked / name).symlink_to(outside)
    with pytest.raises(BikeshareError, match=rf"{name} resolves to .*, outside the model dir"):
        load_model(linked)
    missing = serving_copy(model_dir, tmp_path / "missing")
    (missing / name).unlink()
    with pytest.raises(BikeshareError, match=rf"{name} is not a regular file in it"):
        load_model(missing)


@pytest.mark.parametrize(("text", "said"), [("{", "is not JSON"), ("[1]", "is not a JSON object")])
def test_an_invalid_serving_example_is_refused_at_package_and_serve(
    model_dir: Path, tmp_path: Path, text: str, said: str
) -> None:
    copy = serving_copy(model_dir, tmp_path / "model")
    (copy / "serving_input_example.json").write_text(text)
    with pytest.raises(BikeshareError, match=f"its serving_input_example.json {said}"):
        package_model(copy, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()
    with pytest.raises(BikeshareError, match=f"its serving_input_example.json {said}"):
        load_model(copy)
