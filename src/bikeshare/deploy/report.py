"""The Markdown record of one release command: what was asked, what happened, what serves now.

`bikeshare deploy|promote|rollback --report FILE` writes it whether the command succeeded or not;
the Dagger release functions put it in their run report and the GitHub job summary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bikeshare.deploy.endpoint import describe_endpoint
from bikeshare.deploy.release import Outcome, Say, say_on_stderr

# After Ctrl-C, how long the report waits to learn what serves: a person is waiting to get
# their prompt back, and the AWS client may be retrying a slow or unreachable endpoint.
DESCRIBE_SECONDS = 5.0


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
    interrupted: str | None = None  # what serves, as far as known, when Ctrl-C stopped it

    def say(self) -> Say:
        """A progress printer that also keeps each line for the report."""

        def say(message: str) -> None:
            say_on_stderr(message)
            self.log.append(message)

        return say

    @property
    def result(self) -> str:
        if self.interrupted is not None:
            return "interrupted"
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
        if self.interrupted is not None:
            lines.append(f"- serving now: {self.interrupted}")
        elif self.serving_now:
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


def serving_now(sagemaker: Any, endpoint: str) -> str:
    """One line on what the endpoint serves, for a report written after an interruption."""
    snapshot = describe_endpoint(sagemaker, endpoint)
    if snapshot is None:
        return f"nothing: `{endpoint}` does not exist"
    verified = "verified by bikeshare" if snapshot.verified else "not verified by bikeshare"
    return f"`{endpoint}` is {snapshot.status} on `{snapshot.config_name}`, {verified}"


def _within(seconds: float, describe: Callable[[], str]) -> str:
    """`describe()` if it answers within `seconds`; else why not. It runs in a daemon thread,
    so a hung AWS call never keeps an interrupted command from exiting."""
    answer: list[str] = []

    def run() -> None:
        try:
            answer.append(describe())
        except Exception as error:  # the interruption is what the report is about
            answer.append(f"unknown ({type(error).__name__}: {error})")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return answer[0] if answer else f"unknown (no answer from AWS within {seconds:g} s)"


def interrupted_line(endpoint: str, serving: Callable[[], str] | None) -> str:
    """What an interrupted command's report says serves: described, or unknown, and always the
    command that tells for sure (SageMaker carries on with a change it accepted)."""
    known = _within(DESCRIBE_SECONDS, serving) if serving is not None else "unknown"
    check = f"`bikeshare status --endpoint-name {endpoint}`"
    if known.startswith("unknown"):
        return f"{known}; run {check} to see what serves"
    return f"{known} (as the command stopped; SageMaker carries on: {check} tells what serves)"


def recorded(
    record: ReleaseRecord,
    path: Path | None,
    run: Callable[[Say], Outcome],
    clock: Callable[[], float] = time.monotonic,
    serving: Callable[[], str] | None = None,
) -> Outcome:
    """Run a release step, then write its report, on failure too (the error is re-raised).

    Interrupted (Ctrl-C), the report says so and what serves, from `serving` (best effort,
    within DESCRIBE_SECONDS), and the interruption goes on.
    """
    started = clock()
    try:
        record.outcome = run(record.say())
        record.serving_now = record.outcome.serving
        return record.outcome
    except KeyboardInterrupt:
        record.interrupted = interrupted_line(record.endpoint_name, serving)
        record.error = "interrupted (Ctrl-C) before the command finished"
        raise
    except Exception as error:
        record.error = str(error)
        raise
    finally:
        record.seconds = clock() - started
        write_report(record, path)
