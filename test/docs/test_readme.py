"""The README is the front door: its commands must be the ones that actually run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_opens_with_the_main_job_and_the_test_command() -> None:
    assert _readme_commands() == ["dagger call ci", "uv run --locked --all-extras pytest"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines
    # pytest is the last thing CI runs, so its summary line closes the log.
    assert [line for line in ci_lines if line and not line.startswith("#")][-1] == test_command
