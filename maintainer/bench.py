"""Measure how long the guide takes, and print a table: what `make bench` runs.

Every figure is the median of --repeats runs (3 by default), with the ratios taken from
figures measured in this same run, because shared machines are noisy. hyperfine times the whole commands
(maintainer/hyperfine.py). It measures:

- the floor under every step: interpreter start, and `import mlflow`;
- how long a step takes to report that no server answers;
- the tracking server's ready time: `mlflow ui` as it comes, and as `make tutorial` starts it; and step 3's time on
  a server just started by step 2's command, and without its setting (--first-step: only that);
- each step of `make tutorial KEEP_SERVER=0`, and the whole of it, in a fresh copy of the repository,
  taking turns with the original guide, kept in maintainer/original_guide.py;
- with --setup, once each: a fresh clone with cold caches and `make tutorial`, set-up included (with and
  without --compile-bytecode, where Python may and may not write __pycache__), against
  `pip install -r requirements.txt` followed by the original guide;
- with --suite, once: `make test`, with 2 and 4 workers (--suite-workers), and with --suite-baseline REV the suite
  of an earlier commit too;
- with --batch, step 9's jobs on generated tables (maintainer/bench_batch.py); with --batch-baseline REV, the same
  jobs against commit REV's, alternately in one process.

The numbers are not committed: maintainer/docs/speed.md records the latest run, with its date and machine,
and the project's goals for the ratios.
"""

import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maintainer import hyperfine
from maintainer.bench_batch import against_baseline, measure_batch_scoring, print_ratios
from maintainer.checkout import fresh_copy, reader_env
from maintainer.original_guide import run_original_guide
from tutorial import server_process
from tutorial.run import SERVER_WORDS, WITHOUT_JOB_RUNNER
from tutorial.steps import MODEL_REGISTRY, SMOKE_TEST, STEPS, Step
from tutorial.venv import VENV_BIN, with_venv_on_path

REPO = Path(__file__).resolve().parent.parent


def server_down_seconds(step: Step) -> float:
    """How long a step takes to say that no tracking server answers (it must exit with its one-line error)."""
    env = with_venv_on_path({**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server_process.free_port()}"})
    started = time.monotonic()
    result = subprocess.run(shlex.split(step.command), cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode == 0 or "make doctor" not in result.stderr.strip().splitlines()[-1]:
        sys.exit(f"error: {step.command} did not report the missing server:\n{result.stderr[-2000:]}")
    return seconds


@contextmanager
def started_ui(folder: Path, words: list[str], settings: dict) -> Iterator[tuple[str, float]]:
    """`mlflow ui` (these words, with these settings) on a new mlflow.db in `folder`, on loopback: its address and
    its seconds until /health answers. Stopped after."""
    port = server_process.free_port()
    command = [str(VENV_BIN / words[0]), *words[1:], "--host", "127.0.0.1", "--port", str(port)]
    server = server_process.start(command, folder / "server.log", cwd=folder, env={**os.environ, **settings})
    try:
        url = f"http://127.0.0.1:{port}"
        yield url, server_process.wait_until_healthy(server, f"{url}/health", folder / "server.log")
    finally:
        server_process.stop(server)


def server_ready_seconds(folder: Path, as_the_tutorial_starts_it: bool) -> float:
    """`mlflow ui` as it comes, or as step 2 and `make tutorial` start it: time /health."""
    words, settings = (SERVER_WORDS, WITHOUT_JOB_RUNNER) if as_the_tutorial_starts_it else (["mlflow", "ui"], {})
    with started_ui(folder, words, settings) as (_, seconds):
        return seconds


def first_step_seconds(folder: Path, settings: dict) -> float:
    """Step 2's `mlflow ui --workers 1` with these settings (the README's, or none); once it is ready, how long step 3,
    `python get_started.py`, takes: the first requests are where the job runner costs."""
    with started_ui(folder, SERVER_WORDS, settings) as (url, _):
        env = with_venv_on_path({**os.environ, "MLFLOW_TRACKING_URI": url})
        return hyperfine.seconds(shlex.split(SMOKE_TEST.command), REPO, env)


def tutorial_step_seconds(folder: Path) -> dict:
    """`make tutorial KEEP_SERVER=0` in a fresh copy: the whole, and each step as the runner reports it."""
    checkout = fresh_copy(folder / "checkout")
    env = reader_env()
    port = server_process.free_port()
    cpu_before, started = cpu_seconds_of_children(), time.monotonic()
    result = subprocess.run(
        ["make", "tutorial", "KEEP_SERVER=0", f"PORT={port}"], cwd=checkout, env=env, capture_output=True, text=True
    )
    whole, cpu = time.monotonic() - started, cpu_seconds_of_children() - cpu_before
    if result.returncode != 0:
        sys.exit(f"error: make tutorial failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    shutil.rmtree(checkout)
    return {**step_seconds(result.stdout), TUTORIAL_WHOLE: whole, TUTORIAL_CPU: cpu}


TUTORIAL_WHOLE = "make tutorial KEEP_SERVER=0 (whole)"
TUTORIAL_CPU = "make tutorial KEEP_SERVER=0: CPU time, every process (user + sys)"


def cpu_seconds_of_children() -> float:
    """The CPU time of this process's children that have ended, and of theirs: what the cores did for them."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def fresh_clone_tutorial_seconds(folder: Path, env_changes: dict) -> float:
    """A fresh clone with no download cache, then `make tutorial KEEP_SERVER=0`: the set-up included."""
    clone = Path(tempfile.mkdtemp(dir=folder))
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone / "repo")], check=True)
    env = reader_env(VIRTUAL_ENV=None, UV_NO_CACHE="1", PIP_NO_CACHE_DIR="1", **env_changes)
    port = server_process.free_port()
    seconds = hyperfine.seconds(["make", "tutorial", "KEEP_SERVER=0", f"PORT={port}"], clone / "repo", env=env)
    shutil.rmtree(clone)
    return seconds


def pip_and_original_guide_seconds(folder: Path) -> float:
    """`pip install -r requirements.txt` into a new venv with no cache, then the original guide as written."""
    work = Path(tempfile.mkdtemp(dir=folder))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    pip = [str(work / "venv/bin/python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    subprocess.run([*pip, "-r", str(REPO / "requirements.txt")], check=True)
    run_original_guide(work, work / "venv/bin")
    seconds = time.monotonic() - started
    shutil.rmtree(work)
    return seconds


def measure_the_suite(table: "Table", baseline_rev: str | None, workers: list[str], new_folder) -> None:
    """`make test` once, in this checkout (with as many workers as -n auto picks, then with each of `workers`) and
    at `baseline_rev`, one after the other in one hyperfine call; each checkout's venv is built first, not timed."""
    checkouts = {"make test (whole suite)": REPO}
    if baseline_rev:
        baseline = new_folder() / "baseline"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(baseline)], check=True)
        subprocess.run(["git", "checkout", "--quiet", baseline_rev], cwd=baseline, check=True)
        checkouts[f"make test at {baseline_rev}"] = baseline
    env = reader_env(PYTEST_ADDOPTS=None, CI="true")  # CI: a test that lacks a service fails, not skips
    for checkout in checkouts.values():
        subprocess.run(["make", ".venv/.installed-dev"], cwd=checkout, env=env, check=True, capture_output=True)
    commands = {name: ["make", "-C", str(checkout), "test"] for name, checkout in checkouts.items()}
    for count in workers:
        commands[f"make test, {count} workers"] = ["make", "-C", str(REPO), "test", f"PYTEST_ADDOPTS=-n {count}"]
    for name, samples in hyperfine.samples(commands, 1, REPO, env).items():
        table.add(name, samples)


FIRST_STEP_AS_README = "first step after: MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --workers 1"
FIRST_STEP_WITH_JOB_RUNNER = "first step after: mlflow ui --workers 1 (job runner on)"


def measure_the_tutorial(table: Table, temp: Path, new_folder, repeats: int) -> None:
    """The default measurements: floors, 'server down' answers, server start, the tutorial and the original guide."""
    floors = {"floor: python -c pass": "pass", "floor: python -c 'import mlflow'": "import mlflow"}
    commands = {name: [sys.executable, "-c", code] for name, code in floors.items()}
    for name, samples in hyperfine.samples(commands, repeats, temp).items():
        table.add(name, samples)
    for step in (SMOKE_TEST, MODEL_REGISTRY):
        table.measure(f"server down: {step.command}", lambda step=step: server_down_seconds(step))
    table.measure("server ready: mlflow ui (4 workers)", lambda: server_ready_seconds(new_folder(), False))
    table.measure(
        "server ready: the tutorial's (1 worker, no job runner)", lambda: server_ready_seconds(new_folder(), True)
    )
    measure_the_first_step(table, new_folder)

    # The tutorial and the original guide take turns, so that a noisy moment hits both alike.
    tutorial_runs, original_runs = [], []
    for _ in range(repeats):
        tutorial_runs.append(tutorial_step_seconds(temp))
        original_runs.append(run_original_guide(new_folder(), VENV_BIN))
    for step in tutorial_runs[0]:
        table.add(f"tutorial: {step}", [run[step] for run in tutorial_runs])
    table.add("the original guide as written (baseline)", original_runs)


def measure_the_first_step(table: Table, new_folder) -> None:
    """Step 3 on a server just started by step 2's command, with its setting and without it."""
    table.measure(FIRST_STEP_AS_README, lambda: first_step_seconds(new_folder(), WITHOUT_JOB_RUNNER))
    table.measure(FIRST_STEP_WITH_JOB_RUNNER, lambda: first_step_seconds(new_folder(), {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--setup", action="store_true", help="also a fresh clone with cold caches, against pip + the original guide"
    )
    parser.add_argument("--suite", action="store_true", help="also `make test`, once (minutes)")
    parser.add_argument("--suite-baseline", metavar="REV", help="and the suite of commit REV, in the same run")
    parser.add_argument(
        "--suite-workers", metavar="N", nargs="*", default=["2", "4"], help="and with N workers (default: 2 4)"
    )
    parser.add_argument("--batch", action="store_true", help="also step 9: batch scoring, in one process and on Spark")
    parser.add_argument("--batch-baseline", metavar="REV", help="and step 9's jobs against commit REV's, alternately")
    parser.add_argument("--first-step", action="store_true", help="with --skip-tutorial: step 3 after step 2")
    parser.add_argument("--skip-tutorial", action="store_true", help="only the long variants asked for")
    args = parser.parse_args()
    table = Table(args.repeats)

    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)

        def new_folder() -> Path:
            return Path(tempfile.mkdtemp(dir=temp))

        if not args.skip_tutorial:
            measure_the_tutorial(table, temp, new_folder, args.repeats)
        if args.first_step and args.skip_tutorial:
            measure_the_first_step(table, new_folder)
        if args.setup:
            once = Table(1)
            once.measure("fresh clone, cold caches: make tutorial", lambda: fresh_clone_tutorial_seconds(temp, {}))
            once.measure(
                "  the same, where Python writes __pycache__",
                lambda: fresh_clone_tutorial_seconds(temp, {"PYTHONDONTWRITEBYTECODE": None}),
            )
            once.measure(
                "  the same, without --compile-bytecode",
                lambda: fresh_clone_tutorial_seconds(temp, {"UV_COMPILE": ""}),
            )
            once.measure(
                "  without --compile-bytecode, where Python writes __pycache__",
                lambda: fresh_clone_tutorial_seconds(temp, {"UV_COMPILE": "", "PYTHONDONTWRITEBYTECODE": None}),
            )
            once.measure(
                "pip install -r requirements.txt + the original guide", lambda: pip_and_original_guide_seconds(temp)
            )
            table.rows.update(once.rows)
        batch_rates = measure_batch_scoring(table, new_folder()) if args.batch else {}
        baseline_ratios = against_baseline(args.batch_baseline, new_folder()) if args.batch_baseline else {}
        if args.suite:
            measure_the_suite(table, args.suite_baseline, args.suite_workers, new_folder)

    table.print()
    # Ratios only: the project's goals for them are on maintainer/docs/speed.md, with the figures of earlier runs.
    print("\nRatios of figures from this run:")
    if not args.skip_tutorial:
        tutorial = table.median(f"tutorial: {TUTORIAL_WHOLE}")
        original = table.median("the original guide as written (baseline)")
        print(f"  make tutorial KEEP_SERVER=0 / the original guide: {tutorial / original:.2f}")
        cpu = table.median(f"tutorial: {TUTORIAL_CPU}")
        print(f"  make tutorial KEEP_SERVER=0, CPU time / its time: {cpu / tutorial:.2f} (of {os.cpu_count()} cores)")
        down = max(table.median(f"server down: {step.command}") for step in (SMOKE_TEST, MODEL_REGISTRY))
        print(f"  slowest 'server down' answer: {down:.2f} s")
        ready = table.median("server ready: the tutorial's (1 worker, no job runner)")
        default_ready = table.median("server ready: mlflow ui (4 workers)")
        print(f"  server ready, the tutorial's / the default mlflow ui: {ready / default_ready:.2f}")
    if FIRST_STEP_AS_README in table.rows:
        ratio = table.median(FIRST_STEP_AS_README) / table.median(FIRST_STEP_WITH_JOB_RUNNER)
        print(f"  the first step after step 2's start, the README's / with the job runner: {ratio:.2f}")
    if args.setup:
        ours = table.median("fresh clone, cold caches: make tutorial")
        theirs = table.median("pip install -r requirements.txt + the original guide")
        print(f"  fresh clone + make tutorial / pip + the original guide: {ours / theirs:.2f}")
    print_ratios(batch_rates)
    for (rows, job), ratio in baseline_ratios.items():
        print(f"  batch, {rows:,} rows: {job}, rows/s now / at {args.batch_baseline}: {ratio:.2f}")
    if args.suite and args.suite_baseline:
        baseline = table.median(f"make test at {args.suite_baseline}")
        for name in ["make test (whole suite)", *(f"make test, {count} workers" for count in args.suite_workers)]:
            print(f"  {name} / make test at {args.suite_baseline}: {table.median(name) / baseline:.2f}")
    reference_ms = min(timeit.repeat("sum(range(10**6))", number=10, repeat=5)) / 10 * 1000
    print(f"CPU reference: sum(range(10**6)) takes {reference_ms:.1f} ms here (compare machines with it)")


if __name__ == "__main__":
    main()
