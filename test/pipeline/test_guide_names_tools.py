"""The guide says why each check tool that cannot fully run here does not.

Apart from test_check_commands.py because it reads docs/guide.md: the docs area runs it
(bikeshare_ci.checks.WHOLE_REPOSITORY_TESTS), so a guide edit never re-runs the pipeline area.
"""

from __future__ import annotations

from support.dagger_plans import ROOT


def test_tools_that_cannot_fully_run_here_are_named_in_the_guide() -> None:
    guide = (ROOT / "docs/guide.md").read_text()
    for tool in ("actionlint", "Terraform", "pip-audit"):
        assert f"| {tool} |" in guide, f"docs/guide.md must say why {tool} does not run here"
