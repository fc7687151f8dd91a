"""Which MLflow models bikeshare will upload, deploy and serve: its own format and nothing else.

MLflow loads whatever a model's `MLmodel` file names: any loader module, pickle or cloudpickle
files (code that runs on load), extra code directories put on `sys.path`, and paths anywhere on
the machine. The trust model is therefore an allow-list of exactly what `bikeshare train` writes:

- the flavors `python_function` (loader `mlflow.sklearn`, `predict`) and `sklearn`, with no
  other flavor and no flavor key this module does not know;
- the sklearn model serialized with skops (never pickle/cloudpickle), and the skops types it
  trusts a subset of the project's own `SKOPS_TRUSTED_TYPES`, so what MLflow hands skops on load
  is always within the project's list, never one an archive chose;
- no code paths (`code` absent or null);
- every path the file names relative and inside the model directory (no `..`, nothing absolute,
  no symbolic link out), and each a regular file there: the model file, the environment files
  (conda.yaml, python_env.yaml) and the input examples;
- a requirements.txt, a regular file there too, of `name==version` lines only (MLflow's
  requirement parser follows `-r`/`-c` lines to any path and imports requirement names it finds
  no distribution for; the server also loads with `suppress_warnings=True`, which skips it);
- the serving input example, if there, a JSON object (the smoke test and probe send it).

The same check runs at upload, at deploy preflight (on the archive's members) and at serve (on
the unpacked directory). It needs only PyYAML, the parser MLflow itself reads `MLmodel` with (so
the check and the loader cannot read the file differently), and imports neither scikit-learn nor
MLflow: the release tools run without them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bikeshare.errors import BikeshareError

# skops refuses to load HistGradientBoosting's tree nodes unless told to trust them (a forged file
# could index out of bounds); this is the one type the project trusts (see model/train.py).
SKOPS_TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)

LOADER_MODULE = "mlflow.sklearn"
SERIALIZATION_FORMAT = "skops"
# The keys each flavor may carry, as MLflow 3's sklearn flavor writes them; anything else (a
# python_model, model_code_path, artifacts, ...) is another kind of model and refused.
PYFUNC_KEYS = frozenset(
    {"env", "loader_module", "model_path", "predict_fn", "python_version", "code"}
)
SKLEARN_KEYS = frozenset(
    {"code", "pickled_model", "serialization_format", "sklearn_version", "skops_trusted_types"}
)
# Files MLflow or bikeshare read by name from the model directory, whether or not MLmodel names
# them; the serving example is optional (probe and smoke then need --payload).
REQUIREMENTS = "requirements.txt"
SERVING_EXAMPLE = "serving_input_example.json"
# A PEP 508 name pinned to one PEP 440 version (what `bikeshare train` writes), after an optional
# `# comment`; no options, URLs, markers or `-r`/`-c` includes.
_PIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*")


@dataclass(frozen=True)
class TrustedModel:
    """What an accepted MLmodel refers to: its model file and every other path it names (each
    must be a regular file in the model directory, as must requirements.txt)."""

    model_file: str
    paths: tuple[str, ...]


def check_mlmodel(text: str, where: str) -> TrustedModel:
    """Accept an MLmodel only in the project's own format; else a one-line reason naming `where`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _untrusted(where, f"its MLmodel is not valid YAML ({_first_line(error)})") from error
    if not isinstance(document, Mapping) or not isinstance(document.get("flavors"), Mapping):
        raise _untrusted(where, "its MLmodel has no flavors mapping")
    flavors = document["flavors"]
    if set(flavors) != {"python_function", "sklearn"}:
        raise _untrusted(
            where,
            f"its flavors are {sorted(map(str, flavors))}; only python_function and sklearn "
            "(as `bikeshare train` writes them) are served",
        )
    pyfunc = _flavor(flavors, "python_function", PYFUNC_KEYS, where)
    sklearn = _flavor(flavors, "sklearn", SKLEARN_KEYS, where)
    _require(pyfunc, "loader_module", LOADER_MODULE, where)
    if pyfunc.get("predict_fn", "predict") != "predict":
        raise _untrusted(where, f"python_function.predict_fn is {pyfunc['predict_fn']!r}")
    _require(sklearn, "serialization_format", SERIALIZATION_FORMAT, where)
    _check_trusted_types(sklearn.get("skops_trusted_types"), where)
    model_file = _path(pyfunc.get("model_path"), "python_function.model_path", where)
    if _path(sklearn.get("pickled_model"), "sklearn.pickled_model", where) != model_file:
        raise _untrusted(where, "python_function.model_path and sklearn.pickled_model differ")
    return TrustedModel(model_file, (model_file, *_other_paths(document, pyfunc, where)))


def check_model_directory(model_dir: Path) -> TrustedModel:
    """The serve-time check: the MLmodel, and every path it names and requirements.txt resolved
    inside `model_dir` (a symbolic link pointing out of it is refused) and regular files there;
    requirements.txt only pins and the serving example a JSON object."""
    where = str(model_dir)
    trusted = check_mlmodel((model_dir / "MLmodel").read_text(encoding="utf-8"), where)
    root = model_dir.resolve()
    for relative in ("MLmodel", REQUIREMENTS, *trusted.paths):
        resolved = (model_dir / relative).resolve()
        if not resolved.is_relative_to(root):
            raise _untrusted(
                where, f"{relative} resolves to {resolved}, outside the model directory"
            )
    check_members(trusted, lambda relative: (model_dir / relative).is_file(), where)
    check_requirements(_text(model_dir / REQUIREMENTS, where), where)
    if (model_dir / SERVING_EXAMPLE).is_file():
        check_serving_example(_text(model_dir / SERVING_EXAMPLE, where), where)
    return trusted


def check_members(trusted: TrustedModel, regular_files: Callable[[str], bool], where: str) -> None:
    """Every file the model is loaded from is a regular file (a regular member of the archive,
    at archive time): the model file, requirements.txt and each other path MLmodel names."""
    if not regular_files(trusted.model_file):
        raise _untrusted(where, f"its model file {trusted.model_file} is not a regular file in it")
    for relative in (REQUIREMENTS, *trusted.paths):
        if not regular_files(relative):
            raise _untrusted(where, f"{relative} is not a regular file in it")


def check_requirements(text: str, where: str) -> None:
    """requirements.txt holds only `name==version` lines (and comments and blank lines)."""
    for number, line in enumerate(text.splitlines(), start=1):
        pin = line.split("#", 1)[0].strip()
        if pin and not _PIN.fullmatch(pin):
            raise _untrusted(
                where,
                f"line {number} of its {REQUIREMENTS}, {line.strip()[:80]!r}, is not a "
                "`name==version` pin",
            )


def check_serving_example(text: str, where: str) -> dict[str, Any]:
    """The serving input example as the JSON object the smoke test and probe send."""
    try:
        example = json.loads(text)
    except json.JSONDecodeError as error:
        raise _untrusted(where, f"its {SERVING_EXAMPLE} is not JSON ({error})") from error
    if not isinstance(example, dict):
        raise _untrusted(where, f"its {SERVING_EXAMPLE} is not a JSON object")
    return example


def _text(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise _untrusted(where, f"its {path.name} is not UTF-8 text ({error})") from error


def _flavor(
    flavors: Mapping[str, Any], name: str, allowed: frozenset[str], where: str
) -> Mapping[str, Any]:
    flavor = flavors[name]
    if not isinstance(flavor, Mapping):
        raise _untrusted(where, f"its {name} flavor is not a mapping")
    unknown = sorted(str(key) for key in flavor if key not in allowed)
    if unknown:
        raise _untrusted(where, f"its {name} flavor has keys bikeshare does not write: {unknown}")
    if flavor.get("code") is not None:  # code paths are put on sys.path and imported
        raise _untrusted(where, f"its {name} flavor names code paths ({flavor['code']!r})")
    return flavor


def _require(flavor: Mapping[str, Any], key: str, wanted: str, where: str) -> None:
    if flavor.get(key) != wanted:
        raise _untrusted(where, f"its {key} is {flavor.get(key)!r}, not {wanted!r}")


def _check_trusted_types(types: Any, where: str) -> None:
    if types is None:
        return
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise _untrusted(where, "sklearn.skops_trusted_types is not a list of type names")
    extra = sorted(set(types) - set(SKOPS_TRUSTED_TYPES))
    if extra:
        raise _untrusted(where, f"it asks skops to trust types the project does not: {extra}")


def _other_paths(document: Mapping[str, Any], pyfunc: Mapping[str, Any], where: str) -> list[str]:
    """The environment files and input examples the MLmodel names (MLflow opens them too)."""
    named: list[tuple[str, Any]] = []
    env = pyfunc.get("env")
    if isinstance(env, Mapping):
        named += [(f"python_function.env.{k}", v) for k, v in env.items()]
    elif env is not None:
        named.append(("python_function.env", env))
    example = document.get("saved_input_example_info")
    if isinstance(example, Mapping):
        named += [
            (f"saved_input_example_info.{k}", example[k])
            for k in ("artifact_path", "serving_input_path")
            if example.get(k) is not None
        ]
    return [_path(value, label, where) for label, value in named]


def _path(value: Any, label: str, where: str) -> str:
    """A relative path inside the model directory, normalised; else refused."""
    if not isinstance(value, str) or not value.strip():
        raise _untrusted(where, f"{label} is {value!r}, not a path")
    if "\\" in value or value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        raise _untrusted(where, f"{label} {value!r} is not a relative path in the model directory")
    parts = PurePosixPath(value).parts
    if ".." in parts:
        raise _untrusted(where, f"{label} {value!r} leaves the model directory")
    return PurePosixPath(*[p for p in parts if p != "."]).as_posix()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _untrusted(where: str, reason: str) -> BikeshareError:
    return BikeshareError(
        f"{where} is not a model bikeshare serves: {reason}. Only models saved by `bikeshare "
        "train` (MLflow sklearn flavor, skops, no code) are uploaded, deployed and served"
    )
