"""The packages a model needs at predict time, and which versions an image or a lock carries.

A model's requirements.txt pins these as they were at training; the serving image declares the
versions it carries in the label `com.bikeshare.model-runtime`, filled from uv.lock at build time.
The release engine compares the two before it creates anything.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from bikeshare.errors import BikeshareError

# Order matters only for display; written into requirements.txt and the image label.
MODEL_REQUIREMENTS = ("mlflow-skinny", "scikit-learn", "skops", "pandas", "numpy")
RUNTIME_LABEL = "com.bikeshare.model-runtime"


def installed_versions() -> dict[str, str]:
    """Versions of the model's packages in this environment."""
    return {name: importlib.metadata.version(name) for name in MODEL_REQUIREMENTS}


def locked_versions(lock: Path) -> dict[str, str]:
    """Versions of the model's packages pinned by a uv.lock file."""
    try:
        packages = tomllib.loads(lock.read_text(encoding="utf-8")).get("package", [])
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BikeshareError(f"cannot read {lock}: {error}") from error
    pinned = {p["name"]: p["version"] for p in packages if "name" in p and "version" in p}
    missing = [name for name in MODEL_REQUIREMENTS if name not in pinned]
    if missing:
        raise BikeshareError(f"{lock} pins none of: {', '.join(missing)}")
    return {name: pinned[name] for name in MODEL_REQUIREMENTS}


def as_requirements(versions: dict[str, str]) -> str:
    """`name==version` separated by spaces: the label's value and a readable summary."""
    return " ".join(f"{name}=={version}" for name, version in versions.items())
