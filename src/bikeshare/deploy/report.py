"""The Markdown record of one release command: what was asked, what happened, what serves now.

`bikeshare deploy|promote|rollback --report FILE` writes it whether the command succeeded or not;
the Dagger release functions put it in their run report and the GitHub job summary.
"""

from __future__ import annotations

import contextlib
import re
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

# Every line break Markdown knows (CR, LF, CRLF): what a value must never carry into a report.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# What can start inline Markdown (code, emphasis, links, images, HTML, entities, escapes).
_INLINE = re.compile(r"([\\`*_\[\]<>!&~|])")


def _one_line(value: str) -> str:
    """A value on one line: each line break shown as the two characters `\\n`."""
    return _LINE_BREAK.sub(r"\\n", value)


def code_span(value: str) -> str:
    """`value` as one Markdown code span on one line, whatever it holds.

    The fence is one backtick longer than the longest run of backticks in the value, so nothing
    inside closes it; a space on each side keeps a leading or trailing backtick (or space) from
    joining the fence (CommonMark strips exactly one space each side)."""
    shown = _one_line(value)
    if not shown:
        return "(empty)"
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {shown} " if shown[0] in "` " or shown[-1] in "` " else shown
    return f"{fence}{padded}{fence}"


def plain_text(value: str) -> str:
    """`value` as Markdown text on one line that renders as exactly these characters."""
    return _INLINE.sub(r"\\\1", _one_line(value))


def fenced(language: str, lines: list[str]) -> list[str]:
    """A fenced code block holding `lines` verbatim: its fence is longer than any run of
    backticks in them, so no line closes it early."""
    text = _LINE_BREAK.sub("\n", "\n".join(lines))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", *text.split("\n"), fence]


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
        """One word or phrase for the heading; "succeeded" only with an outcome and no error."""
        if self.interrupted is not None:
            return "interrupted"
        if self.error is not None:
            return "failed"
        if self.outcome is None:
            return "did not finish"
        if self.outcome.dry_run:
            return "planned (dry run, nothing changed)"
        return "succeeded"

    def markdown(self) -> str:
        """The report: outcome first, then what was asked, what serves, and the full log."""
        # Every value from outside (options, AWS names, messages) goes through code_span,
        # plain_text or fenced: none can start a Markdown line or close what holds it.
        command, endpoint = code_span(f"bikeshare {self.command}"), code_span(self.endpoint_name)
        lines = [
            f"### {command} on {endpoint}: {self.result}",
            "",
            f"- duration: {self.seconds:.0f} s",
        ]
        lines += [
            f"- {plain_text(name)}: {code_span(value)}"
            for name, value in self.asked.items()
            if value
        ]
        if self.outcome is not None:
            lines += _outcome_lines(self.outcome)
        if self.interrupted is not None:
            lines.append(f"- serving now: {self.interrupted}")
        elif self.serving_now:
            lines.append(f"- serving now: {code_span(self.serving_now)}")
        if self.error is not None:
            lines += ["", "**Error**", "", *fenced("text", [self.error])]
        if self.log:
            lines += ["", "<details><summary>Log</summary>", "", *fenced("text", self.log)]
            lines += ["", "</details>"]
        return "\n".join(lines) + "\n"


def _outcome_lines(outcome: Outcome) -> list[str]:
    if outcome.dry_run:
        return ["", "**Plan**", "", *[f"1. {plain_text(step.strip())}" for step in outcome.plan]]
    lines = [
        f"- previous config: {code_span(outcome.previous_config or 'none (first deploy)')}",
        f"- new config: {code_span(outcome.new_config)}",
    ]
    if outcome.smoke is not None:
        lines.append(f"- smoke test: {plain_text(outcome.smoke.summary())}")
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
        return f"nothing: {code_span(endpoint)} does not exist"
    verified = "verified by bikeshare" if snapshot.verified else "not verified by bikeshare"
    return (
        f"{code_span(endpoint)} is {plain_text(snapshot.status)} on "
        f"{code_span(snapshot.config_name)}, {verified}"
    )


def _within(seconds: float, describe: Callable[[], str]) -> str:
    """`describe()` if it answers within `seconds`; else why not. It runs in a daemon thread,
    so a hung AWS call never keeps an interrupted command from exiting."""
    answer: list[str] = []

    def run() -> None:
        try:
            answer.append(describe())
        except Exception as error:  # the interruption is what the report is about
            answer.append(f"unknown ({plain_text(f'{type(error).__name__}: {error}')})")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return answer[0] if answer else f"unknown (no answer from AWS within {seconds:g} s)"


def interrupted_line(endpoint: str, serving: Callable[[], str] | None) -> str:
    """What an interrupted command's report says serves: described, or unknown, and always the
    command that tells for sure (SageMaker carries on with a change it accepted)."""
    known = _within(DESCRIBE_SECONDS, serving) if serving is not None else "unknown"
    if known.startswith("unknown"):
        return _unknown_line(endpoint, known)
    check = code_span(f"bikeshare status --endpoint-name {endpoint}")
    return f"{known} (as the command stopped; SageMaker carries on: {check} tells what serves)"


def _unknown_line(endpoint: str, known: str) -> str:
    """What serves is unknown (`known` says why); the command that tells."""
    check = code_span(f"bikeshare status --endpoint-name {endpoint}")
    return f"{known}; run {check} to see what serves"


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
        # Recorded before asking AWS: a second Ctrl-C during that (up to DESCRIBE_SECONDS) must
        # still leave a report that says interrupted, never one that falls through to success.
        record.error = "interrupted (Ctrl-C) before the command finished"
        record.interrupted = _unknown_line(
            record.endpoint_name, "unknown (interrupted again before AWS answered)"
        )
        with contextlib.suppress(KeyboardInterrupt):  # the unknown line stands
            record.interrupted = interrupted_line(record.endpoint_name, serving)
        raise
    except Exception as error:
        record.error = str(error)
        raise
    finally:
        record.seconds = clock() - started
        write_report(record, path)
