"""Benchmark: our `bikeshare serve` against stock `mlflow models serve`, side by side.

Same model, same machine, same run, same payloads (MLflow's own `dataframe_split`, which both
accept). Measures cold start (process start -> first /ping 200), single-row latency p50/p99 at
concurrency 1 and 16, throughput for 1-row and 100-row payloads at concurrency 16, and the model's
own single-row predict cost (the floor under all of it). Load comes from wrk on the same cores.

    uv run --locked --all-extras python benchmarks/serving.py            # project venv
    uv run --locked --all-extras python benchmarks/serving.py --docker   # inside the serving image

Needs wrk (Debian: apt-get install wrk); --docker needs the image built (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bikeshare.model.data import synthetic_rides
from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# The model's own contract (src/bikeshare/model/features.py), so a new feature is benchmarked too.
COLUMNS = list(FEATURE_NAMES)
ROW = [EXAMPLE_ROW[name] for name in COLUMNS]


@dataclass(frozen=True)
class Server:
    """How to start one server under test on a port."""

    name: str
    command: Callable[[int], list[str]]
    stop: Callable[[subprocess.Popen[bytes]], None]


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=60)


def host_servers(model_dir: Path, workers: int) -> list[Server]:
    ours = Server(
        "bikeshare serve",
        lambda port: [
            str(VENV_BIN / "bikeshare"),
            "serve",
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        _terminate,
    )
    stock = Server(
        "mlflow models serve",
        lambda port: [
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "-p",
            str(port),
            "--env-manager",
            "local",
        ],
        _terminate,
    )
    stock_workers = Server(
        f"mlflow models serve -w {workers}",
        lambda port: [*stock.command(port), "-w", str(workers)],
        _terminate,
    )
    return [ours, stock, stock_workers]


def docker_servers(model_dir: Path, image: str, workers: int) -> list[Server]:
    def run(name: str, *args: str) -> Callable[[int], list[str]]:
        return lambda port: [
            "docker",
            "run",
            "--rm",
            "--name",
            f"bench-{name}-{port}",
            "--network",
            "host",
            "-e",
            f"SAGEMAKER_BIND_TO_PORT={port}",
            "-v",
            f"{model_dir}:/opt/ml/model:ro",
            *[a.replace("{port}", str(port)) for a in args],
        ]

    def stop(process: subprocess.Popen[bytes]) -> None:
        name = process.args[process.args.index("--name") + 1]  # type: ignore[union-attr]
        subprocess.run(["docker", "stop", name], capture_output=True, check=False)
        process.wait(timeout=60)

    stock = (
        "--entrypoint",
        "mlflow",
        image,
        "models",
        "serve",
        "-m",
        "/opt/ml/model",
        "-p",
        "{port}",
        "--env-manager",
        "local",
    )
    return [
        Server(
            "bikeshare serve (image)", run("ours", image, "serve", "--workers", str(workers)), stop
        ),
        Server("mlflow models serve (image)", run("stock", *stock), stop),
        Server(
            f"mlflow models serve -w {workers} (image)",
            run("stockw", *stock, "-w", str(workers)),
            stop,
        ),
    ]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ping_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def start(server: Server) -> tuple[subprocess.Popen[bytes], int, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        server.command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while not ping_ok(port):
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {process.returncode}")
        if time.perf_counter() - started > 120:
            raise TimeoutError(f"{server.name} not ready after 120 s")
        time.sleep(0.01)
    return process, port, time.perf_counter() - started


def wrk(port: int, body: Path, connections: int, seconds: int) -> dict[str, float]:
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "benchmarks" / "wrk_report.lua"),
            f"http://127.0.0.1:{port}/invocations",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_BODY": str(body)},
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
    stats = json.loads(line.removeprefix("BENCH "))
    if stats["non_2xx"] or stats["socket_errors"]:
        raise RuntimeError(f"load test saw errors: {stats}")
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def measure(server: Server, bodies: dict[str, Path], seconds: int, starts: int) -> dict:
    cold = []
    for _ in range(starts - 1):
        process, _, took = start(server)
        cold.append(took)
        server.stop(process)
    process, port, took = start(server)
    cold.append(took)
    try:
        wrk(port, bodies["1-row"], 16, 2)  # warm both workers and every code path
        result = {
            "cold_start_s": statistics.median(cold),
            "c1": wrk(port, bodies["1-row"], 1, seconds),
            "c16": wrk(port, bodies["1-row"], 16, seconds),
            "c16_100rows": wrk(port, bodies["100-row"], 16, seconds),
        }
    finally:
        server.stop(process)
    return result


def predict_floor(model_dir: Path, repeats: int = 2000) -> dict[str, float]:
    """Median single-row cost of MLflow's pyfunc.predict and of the bare sklearn pipeline."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd

    frame = pd.DataFrame([ROW], columns=COLUMNS)
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    raw = mlflow.sklearn.load_model(str(model_dir))

    def median_ms(call: Callable[[], object]) -> float:
        for _ in range(50):
            call()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    return {
        "pyfunc_ms": median_ms(lambda: pyfunc.predict(frame)),
        "sklearn_ms": median_ms(lambda: raw.predict(frame)),
    }


def write_bodies(directory: Path) -> dict[str, Path]:
    one = {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}}
    # 100 varied rows, every feature's column, from the synthetic history the model trains on.
    rows = synthetic_rides(0).sample(100, random_state=0)[COLUMNS]
    hundred = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    paths = {"1-row": directory / "one.json", "100-row": directory / "hundred.json"}
    paths["1-row"].write_text(json.dumps(one))
    paths["100-row"].write_text(json.dumps(hundred))
    return paths


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            x.split(":", 1)[1].strip()
            for x in cpuinfo.read_text().splitlines()
            if x.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def python_version(image: str | None) -> str:
    """The interpreter the servers ran on: this venv's, or the image's."""
    if not image:
        return f"Python {platform.python_version()} (project venv)"
    answer = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python3", image, "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{answer.stdout.strip() or 'Python ?'} (in the image)"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def table(names: list[str], results: list[dict], floor: dict[str, float]) -> str:
    """Rows of measures, one column per server, then our ratio against stock's defaults."""
    ours, stock = results[0], results[1]

    def ms(us: float) -> str:
        return f"{us / 1000:.1f} ms"

    measures: list[tuple[str, Callable[[dict], float], Callable[[float], str], bool]] = [
        (
            "cold start (start -> /ping 200)",
            lambda r: r["cold_start_s"],
            lambda v: f"{v:.2f} s",
            False,
        ),
        ("1 row, c=1: p50", lambda r: r["c1"]["p50_us"], ms, False),
        ("1 row, c=1: p99", lambda r: r["c1"]["p99_us"], ms, False),
        ("1 row, c=16: p50", lambda r: r["c16"]["p50_us"], ms, False),
        ("1 row, c=16: p99", lambda r: r["c16"]["p99_us"], ms, False),
        ("1 row, c=16: throughput", lambda r: r["c16"]["rps"], lambda v: f"{v:.0f} req/s", True),
        (
            "100 rows, c=16: throughput",
            lambda r: r["c16_100rows"]["rps"],
            lambda v: f"{v:.0f} req/s",
            True,
        ),
    ]
    lines = [
        "| measure | " + " | ".join(names) + " | ours vs stock defaults |",
        "| --- " * (len(names) + 2) + "|",
    ]
    for label, get, show, higher_is_better in measures:
        a, b = get(ours), get(stock)
        better = (
            ratio(a, b)
            if higher_is_better
            else ratio(b, a) + (" faster" if "cold" in label else " lower")
        )
        lines.append(f"| {label} | " + " | ".join(show(get(r)) for r in results) + f" | {better} |")
    lines.append(
        f"| model's own 1-row predict (the floor) | pyfunc {floor['pyfunc_ms']:.2f} ms, "
        f"bare sklearn {floor['sklearn_ms']:.2f} ms |" + " same model |" * (len(names) - 1) + " |"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="MLflow model (default: train one)")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load test")
    parser.add_argument("--starts", type=int, default=3, help="cold starts per server (median)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="our workers (default: CPU count, our serve's own default)",
    )
    parser.add_argument(
        "--docker",
        metavar="IMAGE",
        nargs="?",
        const="bikeshare-serving:test",
        help="run both servers inside the serving image (default tag: the "
        "one the test suite builds)",
    )
    parser.add_argument("--output", type=Path, help="write the JSON results here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        parser.error("wrk is not installed (Debian: apt-get install wrk)")

    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = scratch_dir / "model"
            subprocess.run(
                [str(VENV_BIN / "bikeshare"), "train", "--output", str(model_dir)],
                check=True,
                capture_output=True,
            )
            model_dir.chmod(0o755)
            scratch_dir.chmod(0o755)
        bodies = write_bodies(scratch_dir)
        servers = (
            docker_servers(model_dir, args.docker, args.workers)
            if args.docker
            else host_servers(model_dir, args.workers)
        )
        results = {s.name: measure(s, bodies, args.seconds, args.starts) for s in servers}
        floor = predict_floor(model_dir)

    where = f"inside the serving image `{args.docker}`" if args.docker else "the project venv"
    print(f"## Serving benchmark, {where}\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {machine()}, {python_version(args.docker)}; "
        f"our serve: {args.workers} workers; stock: its defaults (1 worker) and "
        f"{args.workers} workers; "
        f"wrk on the same cores, {args.seconds} s per load test, cold start median of "
        f"{args.starts}.\n"
    )
    print(table([s.name for s in servers], [results[s.name] for s in servers], floor))
    if args.output:
        args.output.write_text(json.dumps({"results": results, "floor": floor}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
