"""Batch scoring's speed: `make bench BENCH_ARGS=--batch` (maintainer/docs/speed.md, "Batch scoring").

On one generated table per size, in one run: `model.predict` on the whole table in this process (the floor),
pandas reading and writing it alone, the lessons' own functions in this process (`batch_scoring.score`, and
`batch_scoring_spark.score_on_spark` in a Spark session started once), and each lesson as a whole process, start-up
and imports included. Also a Spark session's start-up on its own. The model is a champion like the guide's (the
notebook's `lr-C-1.5`), registered in a SQLite store of its own, so no tracking server is needed.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from maintainer import hyperfine
from tutorial.names import FEATURES
from tutorial.venv import VENV_BIN, with_venv_on_path

REPO = Path(__file__).resolve().parent.parent
CHAMPION = "models:/tracking-iris-lr@champion"  # what the jobs score, as in the guide
SPARK_START = "from pyspark.sql import SparkSession; SparkSession.builder.getOrCreate().stop()"


def register_a_champion(folder: Path) -> str:
    """Train the guide's winning model, register it and give it @champion, in folder/mlflow.db; return the URI."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    features, species = load_iris(return_X_y=True, as_frame=True)  # named columns, as the notebook trains on
    model = LogisticRegression(solver="lbfgs", C=1.5, max_iter=1000, random_state=42).fit(features, species)
    experiment = mlflow.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="iris_lr",
            input_example=features[:5],
            pip_requirements=["scikit-learn"],
            registered_model_name="tracking-iris-lr",
        )
    mlflow.MlflowClient().set_registered_model_alias("tracking-iris-lr", "champion", info.registered_model_version)
    return uri


def generated_table(rows: int, path: Path) -> Path:
    """`rows` flowers: the iris flowers over and over, each measured again with a little noise (as the tests make)."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).data
    table = iris.sample(rows, replace=True, random_state=7).reset_index(drop=True)
    table = (table + np.random.default_rng(7).normal(0, 0.1, table.shape)).round(2).clip(lower=0.1)
    table.to_parquet(path, index=False)
    return path


def measure_batch_scoring(table, folder: Path, sizes: tuple[int, ...] = (100_000, 1_000_000)) -> dict:
    """Add the figures to `table` (bench.Table); return the rows per second of each job, by size."""
    uri = register_a_champion(folder)
    env = with_venv_on_path({**os.environ, "MLFLOW_TRACKING_URI": uri, "SPARK_LOCAL_IP": "127.0.0.1"})
    python = str(VENV_BIN / "python")
    table.measure(
        "batch: a Spark session's start-up (local[*])",
        lambda: hyperfine.seconds([python, "-c", SPARK_START], folder, env),
    )
    os.environ.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=python)  # for the session in this process
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[*]").appName("bench").getOrCreate()
    rates = {}
    try:
        for rows in sizes:
            path = generated_table(rows, folder / f"flowers-{rows}.parquet")
            for name, job in jobs_on(path, folder, env, spark).items():
                table.measure(f"batch, {rows:,} rows: {name}", job)
                rates[(rows, name)] = rows / table.median(f"batch, {rows:,} rows: {name}")
    finally:
        spark.stop()
    return rates


def jobs_on(path: Path, folder: Path, env: dict, spark) -> dict:
    """What to time on one table: each a function that returns its seconds."""
    import mlflow

    import batch_scoring
    import batch_scoring_spark

    flowers = pd.read_parquet(path)[FEATURES]
    model = mlflow.pyfunc.load_model(CHAMPION)
    python = str(VENV_BIN / "python")

    def predict_only() -> float:
        started = time.monotonic()
        model.predict(flowers)
        return time.monotonic() - started

    def read_and_write_only() -> float:
        started = time.monotonic()
        pd.read_parquet(path).assign(prediction=0).to_parquet(folder / "written.parquet", index=False)
        return time.monotonic() - started

    def in_process(job) -> float:
        started = time.monotonic()
        job()
        return time.monotonic() - started

    return {
        "model.predict on the table, in this process": predict_only,
        "pandas: read the table and write it back": read_and_write_only,
        "batch_scoring.score(), in this process": lambda: in_process(lambda: batch_scoring.score(CHAMPION, path)),
        "batch_scoring_spark.score_on_spark(), in a running session": lambda: in_process(
            lambda: batch_scoring_spark.score_on_spark(spark, CHAMPION, str(path), str(folder / "spark-output"))
        ),
        "python batch_scoring.py (whole process)": lambda: hyperfine.seconds(
            [python, str(REPO / "batch_scoring.py"), str(path)], folder, env
        ),
        "python batch_scoring_spark.py, local[*] (whole process)": lambda: hyperfine.seconds(
            [python, str(REPO / "batch_scoring_spark.py"), str(path)], folder, env
        ),
    }


def against_baseline(rev: str, folder: Path, sizes: tuple[int, ...] = (100_000, 1_000_000)) -> dict:
    """Rows per second of both jobs in this checkout against commit `rev`'s, in this process: the two commits' jobs run
    alternately (in one Spark session for Spark), each with a champion registered by its own commit's
    register_a_champion, so a change to the model's signature is measured with the code made for it."""
    import importlib.util
    import statistics
    import subprocess

    import mlflow
    from pyspark.sql import SparkSession

    baseline = folder / "baseline"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(baseline)], check=True)
    subprocess.run(["git", "checkout", "--quiet", rev], cwd=baseline, check=True)
    # Each commit registers its own champion, in a folder of its own: the model its jobs were written for.
    register = (
        "import sys, pathlib, maintainer.bench_batch as bench\n"
        "print(bench.register_a_champion(pathlib.Path(sys.argv[1])))"
    )
    jobs = {}
    for name, tree in (("now", REPO), ("then", baseline)):
        (folder / name).mkdir()
        command = [sys.executable, "-c", register, str(folder / name)]
        found = subprocess.run(command, cwd=tree, capture_output=True, check=True)
        sys.path.insert(0, str(tree))  # batch_scoring_spark imports its neighbour, batch_scoring
        modules = {}
        for module in ("batch_scoring", "batch_scoring_spark"):
            spec = importlib.util.spec_from_file_location(module, tree / f"{module}.py")
            modules[module] = sys.modules[module] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[module])
        sys.path.remove(str(tree))
        jobs[name] = (found.stdout.decode().split()[-1], modules)
    os.environ.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=str(VENV_BIN / "python"))
    spark = SparkSession.builder.master("local[*]").appName("bench").getOrCreate()

    def seconds(name: str, job: str, path: Path) -> float:
        uri, modules = jobs[name]
        mlflow.set_tracking_uri(uri)
        started = time.monotonic()
        if job == "batch_scoring.score()":
            modules["batch_scoring"].score(CHAMPION, path)
        else:
            modules["batch_scoring_spark"].score_on_spark(spark, CHAMPION, str(path), str(folder / name / "spark"))
        return time.monotonic() - started

    ratios = {}
    try:
        for rows in sizes:
            path = generated_table(rows, folder / f"flowers-{rows}.parquet")
            for job, rounds in (("batch_scoring.score()", 15), ("batch_scoring_spark.score_on_spark()", 7)):
                times = {name: [] for name in jobs}
                for _ in range(rounds):
                    for name in jobs:
                        times[name].append(seconds(name, job, path))
                now, then = (statistics.median(times[name]) for name in jobs)
                ratios[(rows, job)] = then / now
    finally:
        spark.stop()
    return ratios


def print_ratios(rates: dict) -> None:
    for (rows, name), per_second in rates.items():
        print(f"  batch, {rows:,} rows: {name}: {per_second:,.0f} rows/s")


if __name__ == "__main__":
    sys.exit("error: run it through `make bench BENCH_ARGS=--batch`")
