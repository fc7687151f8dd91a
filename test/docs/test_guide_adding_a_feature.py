"""The guide's "Adding a feature to the model" shows exactly what test_adding_a_feature.py runs.

That test makes the guide's edits to features.py and trains, packages, serves and invokes the
result; this one keeps the guide's text tied to it: the same two edits, tests and commands that
exist, and the transcript step.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide.md"
FEATURES_PY = ROOT / "src" / "bikeshare" / "model" / "features.py"


def _section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("### Adding a feature to the model\n")
    return text[start : text.index("\n### ", start + 1)]


def _walkthrough_test() -> ModuleType:
    path = ROOT / "test" / "model" / "test_adding_a_feature.py"
    spec = importlib.util.spec_from_file_location("walkthrough_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _python_lines(section: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_guide_shows_the_edits_the_walkthrough_test_makes(tmp_path: Path) -> None:
    walkthrough = _walkthrough_test()
    edited = tmp_path / "features.py"
    edited.write_text(FEATURES_PY.read_text(encoding="utf-8"), encoding="utf-8")
    walkthrough.add_feature_as_the_guide_says(edited)
    edited_lines = {line.strip() for line in edited.read_text(encoding="utf-8").splitlines()}
    shown = _python_lines(_section())
    assert walkthrough.FEATURE_LINE.strip() in shown, shown
    example = next((line for line in shown if line.startswith("EXAMPLE_ROW")), None)
    assert example is not None, f"the guide shows no EXAMPLE_ROW edit: {shown}"
    assert example in edited_lines, f"{example!r} is not what the test's edit gives"


def test_every_path_the_section_names_exists() -> None:
    paths = set(re.findall(r"`((?:test|src|benchmarks|docs)/[\w./-]+)`", _section()))
    paths |= set(re.findall(r"\s((?:test|src)/[\w./-]+\.py)\b", _section()))
    assert "test/model/test_adding_a_feature.py" in paths
    assert "test/docs/record_transcript.py" in paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"the guide names paths that do not exist: {missing}"


def test_the_section_says_to_re_record_the_transcript_the_way_the_recorder_takes_it() -> None:
    section = " ".join(_section().split())
    command = "uv run --locked --all-extras python test/docs/record_transcript.py"
    assert f"{command} --with-working-tree" in section
    recorder = (ROOT / "test" / "docs" / "record_transcript.py").read_text(encoding="utf-8")
    assert '"--with-working-tree"' in recorder
    assert "docs/transcripts/day-one.md" in section
