"""The Markdown record of one release command: what was asked, what happened, what serves now.

`bikeshare deploy|promote|rollback --report FILE` writes it whether the command succeeded or not;
the Dagger release functions put it in their run report and the GitHub job summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bikeshare.deploy.release import Outcome, Say, say_on_stderr


@dataclass
class ReleaseRecord:
    """Everything a reviewer needs to know about one release command, filled in as it runs."""

    command: str
    endpoint_name: str
    asked: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    serving_now: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def say(self) -> Say:
        """A progress printer that also keeps each line for the report."""

        def say(message: str) -> None:
            say_on_stderr(message)
            self.log.append(message)

        return say

    @property
    def result(self) -> str:
        if self.error is not None:
            return "failed"
        if self.outcome is not None and self.outcome.dry_run:
            return "planned (dry run, nothing changed)"
        return "succeeded"

    def markdown(self) -> str:
        """The report: outcome first, then what was asked, what serves, and the full log."""
        lines = [
            f"### `bikeshare {self.command}` on `{self.endpoint_name}`: {self.result}",
            "",
            f"- duration: {self.seconds:.0f} s",
        ]
        lines += [f"- {name}: `{value}`" for name, value in self.asked.items() if value]
        if self.outcome is not None:
            lines += _outcome_lines(self.outcome)
        if self.serving_now:
            lines.append(f"- serving now: `{self.serving_now}`")
        if self.error is not None:
            lines += ["", "**Error**", "", "```text", self.error, "```"]
        if self.log:
            lines += ["", "<details><summary>Log</summary>", "", "```text", *self.log, "```"]
            lines += ["", "</details>"]
        return "\n".join(lines) + "\n"


def _outcome_lines(outcome: Outcome) -> list[str]:
    if outcome.dry_run:
        return ["", "**Plan**", "", *[f"1. {step}" for step in outcome.plan]]
    lines = [
        f"- previous config: `{outcome.previous_config or 'none (first deploy)'}`",
        f"- new config: `{outcome.new_config}`",
    ]
    if outcome.smoke is not None:
        lines.append(f"- smoke test: {outcome.smoke.summary()}")
    return lines


def write_report(record: ReleaseRecord, path: Path | None) -> None:
    """Write the report if one was asked for (the directory is created)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(record.markdown())


def recorded(
    record: ReleaseRecord,
    path: Path | None,
    run: Callable[[Say], Outcome],
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run a release step, then write its report, on failure too (the error is re-raised)."""
    started = clock()
    try:
        record.outcome = run(record.say())
        record.serving_now = record.outcome.serving
        return record.outcome
    except Exception as error:
        record.error = str(error)
        raise
    finally:
        record.seconds = clock() - started
        write_report(record, path)
