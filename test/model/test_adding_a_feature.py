"""Adding a feature as docs/guide.md says: edit features.py, and it trains, packages and serves.

The guide's "Adding a feature to the model" promises that one `Feature(...)` line in `FEATURES`
and the column's value in `EXAMPLE_ROW` are all the code a new feature needs. The test makes
exactly those two edits in a copy of src/ (so every module, the serving app included, imports
the edited list, as after a real edit) and runs train -> package -> serve -> invoke with it in
one subprocess (added_feature_walkthrough.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bikeshare
from bikeshare.model.features import FEATURE_NAMES, TARGET

NEW_FEATURE = "precip_mm"
# The guide's example, verbatim: a number with the range that makes sense for it.
FEATURE_LINE = f'    Feature("{NEW_FEATURE}", "number", 0, 300),\n'
EXAMPLE_VALUE = 1.5
WALKTHROUGH = Path(__file__).with_name("added_feature_walkthrough.py")

# One subprocess for the module: about 10 s (imports, training on 2,000 rows, one model load).
pytestmark = pytest.mark.slow


def _edit_once(text: str, pattern: str, replacement: str) -> str:
    edited, count = re.subn(pattern, replacement, text, count=1, flags=re.DOTALL)
    assert count == 1, f"features.py no longer matches {pattern!r}: update this test and the guide"
    return edited


def add_feature_as_the_guide_says(features_py: Path) -> None:
    """The guide's two edits: a Feature line at the end of FEATURES, its value in EXAMPLE_ROW."""
    text = features_py.read_text(encoding="utf-8")
    text = _edit_once(
        text, r"(FEATURES: tuple\[Feature, \.\.\.\] = \(\n.*?)(\)\n)", rf"\g<1>{FEATURE_LINE}\g<2>"
    )
    text = _edit_once(
        text,
        r"(EXAMPLE_ROW: dict\[str, Any\] = \{[^}]*)\}",
        rf'\g<1>, "{NEW_FEATURE}": {EXAMPLE_VALUE}}}',
    )
    features_py.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of one train -> package -> serve -> invoke run with the feature added."""
    work = tmp_path_factory.mktemp("added-feature")
    package = work / "src" / "bikeshare"
    shutil.copytree(
        Path(bikeshare.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    add_feature_as_the_guide_says(package / "model" / "features.py")
    # OMP_NUM_THREADS=1 comes from test/conftest.py, for every process the suite starts.
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    ran = subprocess.run(
        [sys.executable, str(WALKTHROUGH), str(work), NEW_FEATURE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, f"the walkthrough failed:\n{ran.stdout[-2000:]}{ran.stderr[-4000:]}"
    report = json.loads(ran.stdout.splitlines()[-1])
    # Proof the subprocess ran the edited copy, not the installed package.
    assert Path(report["package"]).is_relative_to(work), report["package"]
    return report


EXPECTED_COLUMNS = [*FEATURE_NAMES, NEW_FEATURE]


def test_the_synthetic_history_and_the_signature_have_the_new_column(
    walkthrough: dict[str, Any],
) -> None:
    assert walkthrough["synthetic_columns"] == [*EXPECTED_COLUMNS, TARGET]
    assert walkthrough["signature_columns"] == EXPECTED_COLUMNS


def test_train_help_names_the_new_column(walkthrough: dict[str, Any]) -> None:
    help_text = " ".join(walkthrough["train_help"].split())
    assert f"columns {', '.join(EXPECTED_COLUMNS)} and {TARGET}" in help_text, help_text


def test_the_served_model_requires_the_new_column(walkthrough: dict[str, Any]) -> None:
    assert walkthrough["ping"] == [200, {"status": "ok"}]
    status, body = walkthrough["with"]
    assert status == 200, body
    (prediction,) = body["predictions"]
    assert prediction > 0, body
    status, body = walkthrough["without"]
    assert 400 <= status < 500, body
    assert NEW_FEATURE in json.dumps(body), body
