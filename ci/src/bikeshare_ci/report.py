"""The Markdown run reports: the `ci` summary table and the CD run report with its reproduce line.

Plain Python, no Dagger import, so the suite renders real reports without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The files every release function's result directory holds; the workflows' scripts read them.
SUMMARY_FILE = "summary.md"
OUTCOME_FILE = "outcome"
SUCCEEDED, FAILED = "succeeded", "failed"
STDERR_TAIL_LINES = 30


@dataclass(frozen=True)
class StepResult:
    """One step of a run (a check, or a CD step): its name, result, duration and what went wrong."""

    name: str
    passed: bool
    seconds: float
    detail: str = ""  # for a failure: the command and the tail of its output
    skipped: bool = False

    @property
    def result(self) -> str:
        return "skipped" if self.skipped else ("passed" if self.passed else "FAILED")


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last `lines` lines of a command's output (where its error is)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def output_tail(stdout: str, stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The end of both streams of a failed command: pytest, ruff and black report on stdout,
    most other tools on stderr, and noise on one must not hide the failure on the other."""
    return "\n".join(tail(text, lines) for text in (stdout, stderr) if text and text.strip())


def steps_table(steps: list[StepResult]) -> str:
    """A Markdown table: step, result, duration."""
    rows = ["| step | result | duration |", "| --- | --- | --- |"]
    rows += [f"| {s.name} | {s.result} | {s.seconds:.0f} s |" for s in steps]
    return "\n".join(rows)


def failures(steps: list[StepResult]) -> str:
    """Every failed step with its detail, none left out."""
    return "\n\n".join(
        f"{s.name} failed:\n{s.detail}" for s in steps if not s.passed and not s.skipped
    )


def reproduce_line(github_repository: str, git_sha: str, chain: str) -> str:
    """The `dagger call` that re-runs this on a laptop with the same pinned inputs."""
    module = f"github.com/{github_repository}@{git_sha}" if github_repository else "."
    return f"dagger call -m {module} --git-sha={git_sha} {chain}"


def run_report(
    title: str,
    steps: list[StepResult],
    release_reports: list[str],
    reproduce: str,
    real_rerun_hint: str,
    replay: str = "",
) -> str:
    """The CD report: outcome, steps with durations, the release reports, how to reproduce
    (left out when `reproduce` is empty: a run refused before anything ran)."""
    ok = all(s.passed or s.skipped for s in steps)
    parts = [
        f"## {title}: {SUCCEEDED if ok else FAILED}",
        "",
        steps_table(steps),
    ]
    if not ok:
        parts += ["", "```text", failures(steps), "```"]
    parts += ["", *release_reports]
    if not reproduce:  # nothing ran: nothing to reproduce
        return "\n".join([*parts, ""])
    parts += [
        "",
        "### Reproduce on a laptop",
        "",
        "Same commit, same pinned inputs, against the local AWS stand-in or as a dry run "
        "(no change to AWS):",
        "",
        "```bash",
        reproduce,
        "```",
        "",
        real_rerun_hint,
        "",
    ]
    if replay:
        parts += [
            "### Replay the release that failed",
            "",
            "Its exact image and model, served on a laptop as SageMaker serves them, with the "
            "same smoke request; it names the step that failed (start, ping or invoke) and "
            "shows the server's log (`terminal` instead of `stdout` opens a shell; "
            "`--keep-failed` keeps the container of a failed replay):",
            "",
            "```bash",
            replay,
            "```",
            "",
        ]
    return "\n".join(parts)
