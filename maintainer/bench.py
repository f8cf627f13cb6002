"""Measure how long the guide takes, and print a table: what `make bench` runs.

Every figure is the median of --repeats runs (3 by default), with the ratios taken from
figures measured in this same run, because shared machines are noisy. It measures:

- a fresh setup with cold caches: a new venv and requirements.txt, with uv and with plain pip;
- the tracking server's ready time: `mlflow ui` with its default 4 workers, with 1, and on restart;
- the floor under every step: interpreter start, and `import mlflow`;
- each step of `make tutorial KEEP_SERVER=0`, and the whole of it, in a fresh copy of the repository;
- how long a step takes to report that no server answers;
- the full test suite (`make test`), unless --skip-suite: it takes minutes a run.

The numbers are not committed: docs/speed.md records the latest run, with its date and machine.
"""

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

from tutorial import server_process
from tutorial.steps import MODEL_REGISTRY, SMOKE_TEST, STEPS, Step

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BASELINE_TUTORIAL_SECONDS = 34  # the original guide followed by hand on MLflow 3.17 (issue 6)


def seconds_of(command: list[str], cwd: Path, env: dict | None = None) -> float:
    """Run a command to the end and return its wall time; fail loudly if it fails."""
    started = time.monotonic()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - started


def fresh_setup_seconds(installer: str, folder: Path) -> float:
    """A new venv and requirements.txt with no download cache: what a first `make setup` pays."""
    venv = folder / f"venv-{installer}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if installer == "uv":
        subprocess.run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--no-cache-dir", "uv"], check=True)
        command = [
            str(venv / "bin/uv"),
            "pip",
            "install",
            "--quiet",
            "--no-cache",
            "--python",
            str(venv / "bin/python"),
        ]
    else:
        command = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    seconds = seconds_of([*command, "-r", str(REPO / "requirements.txt")], cwd=folder)
    shutil.rmtree(venv)
    return seconds


def server_down_seconds(step: Step) -> float:
    """How long a step takes to say that no tracking server answers (it must exit with its one-line error)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server_process.free_port()}"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    started = time.monotonic()
    result = subprocess.run(shlex.split(step.command), cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode == 0 or "error: no MLflow tracking server answers" not in result.stderr:
        sys.exit(f"error: {step.command} did not report the missing server:\n{result.stderr[-2000:]}")
    return seconds


def server_ready_seconds(folder: Path, workers: int | None) -> float:
    """Start `mlflow ui` in `folder` (a new or an existing mlflow.db), time /health, and stop it."""
    port = server_process.free_port()
    command = [str(VENV_BIN / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    server = server_process.start(command, folder / "server.log", cwd=folder)
    try:
        return server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/health", folder / "server.log")
    finally:
        server_process.stop(server)


def tutorial_step_seconds(folder: Path) -> dict:
    """`make tutorial KEEP_SERVER=0` in a fresh copy: the whole, and each step as the runner reports it."""
    checkout = folder / "checkout"
    ignore = shutil.ignore_patterns(".git", ".venv*", "mlflow.db", "mlartifacts", "*.log", "__pycache__", ".*cache")
    shutil.copytree(REPO, checkout, ignore=ignore)
    (checkout / VENV_BIN.parent.name).symlink_to(VENV_BIN.parent)
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MLFLOW_", "MAKE"))}
    port = server_process.free_port()
    started = time.monotonic()
    result = subprocess.run(
        ["make", "tutorial", "KEEP_SERVER=0", f"PORT={port}"], cwd=checkout, env=env, capture_output=True, text=True
    )
    whole = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"error: make tutorial failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    shutil.rmtree(checkout)
    return {**step_seconds(result.stdout), "make tutorial KEEP_SERVER=0 (whole)": whole}


def step_seconds(runner_output: str) -> dict:
    """Each step's time as the runner reports it: the step's label on a line of its own, later
    "      done in 7.5 s" ("ready in" for the server). Steps the tutorial does not run have no time."""
    lines = runner_output.splitlines()
    seconds = {}
    for step in STEPS:
        if step.not_run_because:
            continue
        start = lines.index(step.label())
        matches = (re.fullmatch(r"\s+(?:ready|done) in ([\d.]+) s", line) for line in lines[start + 1 :])
        timing = next(match for match in matches if match)
        seconds[f"{step.number}. {step.title}"] = float(timing[1])
    return seconds


class Table:
    """Rows of (what, median, min, max, runs), each from `repeats` measurements taken in this run."""

    def __init__(self, repeats: int):
        self.repeats, self.rows = repeats, {}

    def measure(self, name: str, measurement) -> None:
        self.add(name, [measurement() for _ in range(self.repeats)])

    def add(self, name: str, samples: list[float]) -> None:
        self.rows[name] = (statistics.median(samples), min(samples), max(samples), len(samples))

    def median(self, name: str) -> float:
        return self.rows[name][0]

    def print(self) -> None:
        machine = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        print(f"\n{time.strftime('%Y-%m-%d')}, {machine}")
        print(f"{'what':<60} {'median s':>9} {'min':>7} {'max':>7} {'runs':>5}")
        for name, (median, low, high, count) in self.rows.items():
            print(f"{name:<60} {median:>9.2f} {low:>7.2f} {high:>7.2f} {count:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-setup", action="store_true", help="skip the fresh installs (pip takes a minute a run)")
    parser.add_argument("--skip-suite", action="store_true", help="skip `make test` (minutes a run)")
    args = parser.parse_args()
    table = Table(args.repeats)

    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        if not args.skip_setup:
            table.measure("fresh setup, uv (no cache)", lambda: fresh_setup_seconds("uv", temp))
            table.measure("fresh setup, pip (no cache)", lambda: fresh_setup_seconds("pip", temp))

        table.measure("floor: python -c pass", lambda: seconds_of([sys.executable, "-c", "pass"], temp))
        table.measure(
            "floor: python -c 'import mlflow'", lambda: seconds_of([sys.executable, "-c", "import mlflow"], temp)
        )

        for step in (SMOKE_TEST, MODEL_REGISTRY):
            table.measure(f"server down: {step.command}", lambda step=step: server_down_seconds(step))

        def new_folder() -> Path:
            return Path(tempfile.mkdtemp(dir=temp))

        table.measure("server ready: mlflow ui (4 workers)", lambda: server_ready_seconds(new_folder(), None))
        table.measure("server ready: mlflow ui --workers 1", lambda: server_ready_seconds(new_folder(), 1))
        existing = new_folder()
        server_ready_seconds(existing, 1)  # creates mlflow.db
        table.measure("server ready: restart over an existing mlflow.db", lambda: server_ready_seconds(existing, 1))

        tutorial_runs = [tutorial_step_seconds(temp) for _ in range(args.repeats)]
        for step in tutorial_runs[0]:
            table.add(f"tutorial: {step}", [run[step] for run in tutorial_runs])

        if not args.skip_suite:
            table.measure("make test (whole suite)", lambda: seconds_of(["make", "test"], REPO))

    table.print()
    print()
    if not args.skip_setup:
        uv_ratio = table.median("fresh setup, uv (no cache)") / table.median("fresh setup, pip (no cache)")
        print(f"uv / pip, fresh setup: {uv_ratio:.2f}")
    workers = table.median("server ready: mlflow ui --workers 1") / table.median("server ready: mlflow ui (4 workers)")
    print(f"1 worker / 4 workers, server ready: {workers:.2f}")
    tutorial_ratio = table.median("tutorial: make tutorial KEEP_SERVER=0 (whole)") / BASELINE_TUTORIAL_SECONDS
    print(f"make tutorial KEEP_SERVER=0 / the baseline's {BASELINE_TUTORIAL_SECONDS} s: {tutorial_ratio:.2f}")
    reference_ms = min(timeit.repeat("sum(range(10**6))", number=10, repeat=5)) / 10 * 1000
    print(f"CPU reference: sum(range(10**6)) takes {reference_ms:.1f} ms here (compare machines with it)")


if __name__ == "__main__":
    main()
