"""Record docs/transcripts/day-one.md: the day-one blocks run in a fresh clone, as written.

    uv run --locked --all-extras python test/docs/record_transcript.py \
        [--base-image IMAGE] [--ca-bundle FILE] [--with-working-tree]

Each block of the README and of the guide's day-one sections (test/docs/day_one.py) runs with
`bash -euo pipefail` in a fresh `git clone` of this repository in a temporary directory, in
reading order; its output (stdout and stderr, the last 30 lines) and exit status are written
down. The stand-in's block runs in the foreground by design: it is started in the background,
left running for the blocks after it (as "in another shell"), and stopped with SIGINT (Ctrl-C)
at the end. Blocks that need a Dagger engine and the README's test command are not run; the
transcript says why.

--base-image sets BASE_IMAGE in the blocks' environment (a machine without an image registry,
docs/guide.md "No image registry reachable"); --ca-bundle copies a proxy's CA bundle into the
clone as build-ca.pem ("Behind an intercepting proxy"). --with-working-tree copies this checkout's
uncommitted changes into the clone, for recording before they are committed; the transcript's
header lists them. All of it is written into the transcript's header.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from day_one import (
    NOT_RUN_DAGGER,
    ROOT,
    RUN_BY_CI,
    TRANSCRIPT,
    Block,
    day_one_blocks,
    render_entry,
)

TAIL_LINES = 30
BLOCK_TIMEOUT = 1800
STANDIN_URL = "http://127.0.0.1:5077/"


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def fresh_clone(target: Path, with_working_tree: bool) -> list[str]:
    """Clone HEAD into target; with the working tree's changes on top if asked. Returns them."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    if not with_working_tree:
        return []
    changed = git("diff", "--name-only", "HEAD").splitlines()
    untracked = git("ls-files", "--others", "--exclude-standard").splitlines()
    overlaid = []
    for name in sorted(set(changed + untracked)):
        source, copy = ROOT / name, target / name
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
            overlaid.append(name)
        elif copy.exists():
            copy.unlink()
            overlaid.append(f"{name} (deleted)")
    return overlaid


def tail(text: str) -> str:
    lines = text.rstrip("\n").splitlines()
    shown = lines[-TAIL_LINES:]
    cut = len(lines) - len(shown)
    return (f"[... {cut} earlier lines]\n" if cut else "") + "\n".join(shown)


def outcome(output: str, status: int, note: str = "") -> str:
    return (
        f"Output (stdout and stderr, the last {TAIL_LINES} lines){note}:\n\n"
        f"````text\n{tail(output)}\n````\n\nExit status: {status}\n"
    )


def run_block(block: Block, clone: Path, env: dict[str, str]) -> tuple[str, int]:
    started = time.monotonic()
    ran = subprocess.run(
        block.argv,
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    print(f"{block.title}: exit {ran.returncode} in {time.monotonic() - started:.0f} s")
    return ran.stdout, ran.returncode


class Server:
    """A block that runs until Ctrl-C, started in its own process group."""

    def __init__(self, block: Block, clone: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            block.argv,
            cwd=clone,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return
            try:
                urllib.request.urlopen(STANDIN_URL, timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"the stand-in did not answer on {STANDIN_URL} in {timeout} s")

    def stop(self) -> tuple[str, int]:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # Ctrl-C, to this group only
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.handle.close()
        return self.log.read_text(errors="replace"), self.process.returncode


def record(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="day-one-"))
    clone = work / "bikeshare-delivery"
    overlaid = fresh_clone(clone, args.with_working_tree)
    setup = []
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "BASE_IMAGE")}
    if args.base_image:
        env["BASE_IMAGE"] = args.base_image
        setup.append(f"`export BASE_IMAGE={args.base_image}` (no image registry reachable)")
    if args.ca_bundle:
        shutil.copy2(args.ca_bundle, clone / "build-ca.pem")
        setup.append("the proxy's CA bundle copied into the clone as `build-ca.pem`")
    entries: list[str] = []
    server: tuple[int, Block, Server] | None = None
    try:
        for block in day_one_blocks():
            if block.kind == "dagger":
                entries.append(render_entry(block, NOT_RUN_DAGGER))
            elif block.kind == "ci":
                entries.append(render_entry(block, RUN_BY_CI))
            elif block.kind == "server":
                process = Server(block, clone, env, work / "server.log")
                process.wait_ready()
                server = (len(entries), block, process)
                entries.append("")  # filled in when it stops
                print(f"{block.title}: started")
            else:
                output, status = run_block(block, clone, env)
                entries.append(render_entry(block, outcome(output, status)))
    finally:
        if server is not None:
            index, block, process = server
            output, status = process.stop()
            note = ", running in the background while the blocks after it ran, then Ctrl-C"
            entries[index] = render_entry(block, outcome(output, status, note))
    commit = git("rev-parse", "HEAD", cwd=clone)
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    header = [
        "# Day one, as written: a recorded transcript",
        "",
        "Written by `test/docs/record_transcript.py`; checked by `test/docs/test_readme_blocks.py`",
        "(a block edited without re-recording fails it). Do not edit by hand.",
        "",
        f"- recorded: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, in a fresh `git clone` at {commit}",
        f"- machine: {os.uname().sysname} {os.uname().release}, {os.cpu_count()} CPUs, "
        f"Docker {docker or 'not reachable'}",
        "- each block: `bash -euo pipefail -c BLOCK` in the clone's root",
    ]
    if overlaid:
        header.append(
            "- with this checkout's uncommitted changes copied on top: "
            + ", ".join(f"`{n}`" for n in overlaid)
        )
    header += [f"- set up first: {step}" for step in setup]
    shutil.rmtree(work, ignore_errors=True)
    return "\n".join(header) + "\n\n" + "".join(entries).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-image", help="BASE_IMAGE for the blocks' docker builds")
    parser.add_argument("--ca-bundle", type=Path, help="proxy CA bundle, copied as build-ca.pem")
    parser.add_argument(
        "--with-working-tree", action="store_true", help="include uncommitted changes"
    )
    parser.add_argument("--output", type=Path, default=TRANSCRIPT)
    args = parser.parse_args()
    text = record(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
