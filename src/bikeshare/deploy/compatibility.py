"""Is this model loadable by the libraries this image carries? Decided before any change."""

from __future__ import annotations

from bikeshare.deploy.artifacts import normalise, parse_requirements
from bikeshare.errors import BikeshareError
from bikeshare.model.runtime import RUNTIME_LABEL

# How closely the image must match the model's training environment, per package: scikit-learn
# and skops serialise the estimator itself (only the same version is guaranteed to load it
# identically); MLflow's model format and pandas/NumPy behaviour hold within a minor release line.
EXACT = "exact"
SAME_MINOR = "same major.minor"
RULES = {
    "scikit-learn": EXACT,
    "skops": EXACT,
    "mlflow-skinny": SAME_MINOR,
    "mlflow": SAME_MINOR,
    "pandas": SAME_MINOR,
    "numpy": SAME_MINOR,
}


def image_runtime(labels: dict[str, str], image_uri: str) -> dict[str, str]:
    """The versions an image declares in its runtime label."""
    declared = labels.get(RUNTIME_LABEL, "").strip()
    if not declared:
        raise BikeshareError(
            f"image {image_uri} does not declare its model runtime (label {RUNTIME_LABEL}); "
            "build it from this repository's Dockerfile with --build-arg "
            'MODEL_RUNTIME="$(bikeshare runtime-versions)"; nothing was changed'
        )
    return parse_requirements(declared.replace(" ", "\n"))


def check_compatible(
    model: dict[str, str], image: dict[str, str], model_uri: str, image_uri: str
) -> None:
    """Refuse, naming both versions, when the image cannot be trusted to load the model."""
    image = {normalise(k): v for k, v in image.items()}
    problems = []
    for name, trained in sorted(model.items()):
        rule = RULES.get(normalise(name))
        if rule is None:
            continue
        carried = image.get(normalise(name)) or image.get(_alias(normalise(name)))
        if carried is None:
            problems.append(f"{name}=={trained} (the image has no {name})")
        elif not _matches(trained, carried, rule):
            problems.append(
                f"{name}=={trained} but the image carries {name}=={carried} " f"(needs {rule})"
            )
    if problems:
        raise BikeshareError(
            f"model {model_uri} was trained with " + "; ".join(problems) + f". Image: {image_uri}."
            " Retrain the model with this image's lock, or deploy an image built from the "
            "model's; nothing was changed"
        )


def _alias(name: str) -> str:
    return {"mlflow": "mlflow-skinny", "mlflow-skinny": "mlflow"}.get(name, name)


def _matches(trained: str, carried: str, rule: str) -> bool:
    if rule == EXACT:
        return trained == carried
    return trained.split(".")[:2] == carried.split(".")[:2]
