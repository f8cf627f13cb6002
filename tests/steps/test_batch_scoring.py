"""Batch scoring, step 9: `python batch_scoring.py flowers.csv` scores a file with the champion and records which model
scored it; `make batch-spark` and `batch_scoring_spark.py` do the same on Spark, in `local[*]` and on a real standalone
cluster (pyspark's own `spark-class`: a master and a worker on loopback).

Every job's predictions must equal the champion's, computed here in-process, row for row: on the 150 iris flowers and
on a generated table of 100,000 flowers. The scripts run alone in an empty folder, as a reader who copied them would.
"""

import json
import os
import re
import shlex
import shutil
import socket
import sys
import time
import urllib.request

import mlflow
import pandas as pd
import pytest
from guide_commands import BATCH_SCORING_ON_A_CLUSTER, SCORE_ON_SPARK
from helpers import (
    REPO,
    SECONDS_NOT_MINUTES,
    alone_in_a_folder,
    assert_one_line_error,
    assert_readme_shows,
    make_in,
    missing_service,
    port_of,
    run_command,
    run_in_this_process,
    step_env,
)

from maintainer.bench_batch import generated_table
from tutorial import doctor, server_process
from tutorial.batch_spark import QUICK_JVM_START
from tutorial.names import CHAMPION_URI, FEATURES, MODEL_NAME
from tutorial.steps import BATCH_SCORING
from tutorial.venv import VENV_BIN

LARGE_TABLE_ROWS = 100_000
# Spark listens on loopback only: the tests' traffic stays on this machine. Its JVMs start as `make batch-spark`
# starts them, with the quick compiler only.
SPARK_ENV = {
    "SPARK_LOCAL_IP": "127.0.0.1",
    "SPARK_SUBMIT_OPTS": QUICK_JVM_START,
    "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM_START,
}


# The one-process jobs log their runs into one experiment, which the first creates and the tests search: one worker
# runs them all, one after the other.
ONE_WRITER = pytest.mark.xdist_group("batch-scoring-runs")


def score(tracking_server, folder, command: str, **extra_env: str):
    """Run a scoring command in `folder`, where the scripts lie alone with the data."""
    return run_command(command, tracking_server.url, cwd=folder, timeout=600, extra_env={**SPARK_ENV, **extra_env})


@pytest.fixture(scope="module")
def flowers_csv(tmp_path_factory):
    """flowers.csv, written by step 9's own command, once per worker."""
    folder = tmp_path_factory.mktemp("step-9")
    result = run_command(BATCH_SCORING.before, "http://127.0.0.1:1", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "flowers.csv"


@pytest.fixture
def flowers(tmp_path, flowers_csv):
    """A folder with batch_scoring.py, batch_scoring_spark.py and a copy of flowers.csv, for one test to change."""
    folder = alone_in_a_folder("batch_scoring.py", tmp_path / "project")
    shutil.copy(REPO / "batch_scoring_spark.py", folder)
    shutil.copy(flowers_csv, folder)
    return folder


@pytest.fixture(scope="module")
def large_table(tmp_path_factory):
    """100,000 flowers in Parquet, as `make bench` generates them: the iris flowers again and again, with noise."""
    return generated_table(LARGE_TABLE_ROWS, tmp_path_factory.mktemp("large-table") / "flowers.parquet")


def assert_champions_predictions(output, champion, input_rows: pd.DataFrame) -> None:
    """The output holds every input row, each with the prediction the champion gives it here, in this process."""
    scored = pd.read_parquet(output)
    assert len(scored) == len(input_rows)
    assert sorted(map(tuple, scored[FEATURES].to_numpy())) == sorted(map(tuple, input_rows[FEATURES].to_numpy()))
    expected = champion.predict(scored[FEATURES])
    assert scored["prediction"].tolist() == expected.tolist()
    assert set(expected) == {0, 1, 2}  # all three species: a constant answer would not pass


def batch_run_ids(client) -> set[str]:
    """The runs of "Batch scoring" so far: a test's own run is the one that is new after it scores."""
    experiment = client.get_experiment_by_name("Batch scoring")
    return {run.info.run_id for run in client.search_runs([experiment.experiment_id])} if experiment else set()


@ONE_WRITER
def test_scoring_the_flowers_records_which_model_scored_them(tracking_server, champion, flowers):
    runs_before = batch_run_ids(tracking_server.client())

    result = score(tracking_server, flowers, BATCH_SCORING.command)

    assert result.returncode == 0, result.stderr
    output = flowers / "flowers-predictions.parquet"
    rows = pd.read_csv(flowers / "flowers.csv")
    assert_champions_predictions(output, champion, rows)
    assert f"Scored flowers.csv with models:/{MODEL_NAME}@champion: {output.name}" in result.stdout
    # The README's search finds the run, and the run names the data, the model and the output.
    client = tracking_server.client()
    experiment = client.get_experiment_by_name("Batch scoring")
    [run] = [
        run
        for run in client.search_runs([experiment.experiment_id], filter_string="dataset.name = 'flowers.csv'")
        if run.info.run_id not in runs_before
    ]
    champion_version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert run.info.run_name == "score-flowers.csv" and run.info.status == "FINISHED"
    assert run.data.tags["model_version"] == champion_version.version
    assert run.data.tags["model_uri"] == f"models:/{MODEL_NAME}/{champion_version.version}"
    assert f"models:/{run.data.tags['model_id']}" == champion_version.source
    assert run.data.tags["output"] == str(output.resolve())
    assert run.data.metrics["rows"] == 150
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "flowers.csv"
    assert dataset_input.dataset.digest == mlflow.data.from_numpy(rows[FEATURES].to_numpy()).digest
    assert [(tag.key, tag.value) for tag in dataset_input.tags] == [("mlflow.data.context", "scoring")]


@ONE_WRITER
def test_another_version_scores_when_asked_and_is_recorded(tracking_server, champion, flowers, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    version_2 = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/2")
    rows = pd.read_csv(flowers / "flowers.csv")
    assert version_2.predict(rows).tolist() != champion.predict(rows).tolist()  # one flower tells them apart
    client = tracking_server.client()
    runs_before = batch_run_ids(client)

    result = score(tracking_server, flowers, f"{BATCH_SCORING.command} --model models:/{MODEL_NAME}/2")

    assert result.returncode == 0, result.stderr
    assert_champions_predictions(
        flowers / "flowers-predictions.parquet", version_2, pd.read_csv(flowers / "flowers.csv")
    )
    [new_run] = batch_run_ids(client) - runs_before
    run = client.get_run(new_run)
    assert run.data.tags["model_version"] == "2" and run.data.tags["model_uri"] == f"models:/{MODEL_NAME}/2"
    assert f"models:/{run.data.tags['model_id']}" == client.get_model_version(MODEL_NAME, "2").source


@ONE_WRITER
def test_a_table_of_100000_flowers_in_one_process(tracking_server, champion, large_table, tmp_path):
    folder = alone_in_a_folder("batch_scoring.py", tmp_path / "project")
    shutil.copy(large_table, folder)

    result = score(tracking_server, folder, "python batch_scoring.py flowers.parquet")

    assert result.returncode == 0, result.stderr
    assert_champions_predictions(folder / "flowers-predictions.parquet", champion, pd.read_parquet(large_table))


def spoil(path, problem: str) -> None:
    """Make one of the mistakes a hand-made file has, in the 4th flower's petal width or its whole column."""
    table = pd.read_csv(path)
    if problem == "missing-column":
        table = table.drop(columns="petal width (cm)")
    elif problem in ("text-value", "empty-value"):
        table = table.astype({"petal width (cm)": object})
        table.loc[3, "petal width (cm)"] = "wide" if problem == "text-value" else None
    table.to_csv(path, index=False)


def reordered_with_an_id(path) -> pd.DataFrame:
    """The file's flowers with their columns in reverse order, after an `id` column: what a hand-made file may be."""
    table = pd.read_csv(path)[FEATURES[::-1]]
    table.insert(0, "id", range(100, 100 + len(table)))
    table.to_csv(path, index=False)
    return table


def assert_same_predictions_by_id(output, canonical_predictions: list, table: pd.DataFrame) -> None:
    """Every row keeps its id, its columns and the prediction the flower got from the canonical file."""
    scored = pd.read_parquet(output).sort_values("id")
    assert scored.columns.tolist() == [*table.columns, "prediction"]
    assert scored["id"].tolist() == table["id"].tolist()
    assert scored["prediction"].tolist() == canonical_predictions


@ONE_WRITER
def test_columns_in_any_order_and_an_extra_id_get_the_same_predictions(tracking_server, champion, flowers):
    canonical = champion.predict(pd.read_csv(flowers / "flowers.csv")).tolist()
    table = reordered_with_an_id(flowers / "flowers.csv")
    by_position = pd.DataFrame(table.to_numpy()[:, 1:], columns=FEATURES)
    assert champion.predict(by_position).tolist() != canonical  # read by position, they would differ

    result = score(tracking_server, flowers, BATCH_SCORING.command)

    assert result.returncode == 0, result.stderr
    assert_same_predictions_by_id(flowers / "flowers-predictions.parquet", canonical, table)


@ONE_WRITER
@pytest.mark.parametrize(
    "problem, expected",
    [
        ("unknown-model", "no-such-model"),
        ("missing-file", "no-such-file.csv"),
        ("missing-column", "Model is missing inputs ['petal width (cm)']"),
        ("text-value", "Incompatible input types for column petal width (cm)"),
        ("empty-value", "column 'petal width (cm)' has empty values in flowers.csv"),
    ],
)
def test_bad_input_gets_one_line_and_leaves_no_output(
    tracking_server, notebook_run, flowers, problem, expected, monkeypatch, capfd
):
    """The script's own code, run in this process (run_in_this_process): the tests above run it as a new process."""
    spoil(flowers / "flowers.csv", problem)
    arguments = {
        "unknown-model": ["flowers.csv", "--model", "models:/no-such-model@champion"],
        "missing-file": ["no-such-file.csv"],
    }.get(problem, shlex.split(BATCH_SCORING.command)[2:])
    runs_before = batch_run_ids(tracking_server.client())

    result = run_in_this_process(flowers / "batch_scoring.py", arguments, tracking_server.url, monkeypatch, capfd)

    assert_one_line_error(result, expected)
    # The file's problems name the folder it was looked for in; only the registry's send the reader to make doctor.
    if problem == "unknown-model":
        assert "(no server or no notebook run? `make doctor`)" in result.stderr
    else:
        assert f"(in {flowers})" in result.stderr and "make doctor" not in result.stderr
    assert sorted(path.name for path in flowers.iterdir()) == [
        "batch_scoring.py",
        "batch_scoring_spark.py",
        "flowers.csv",
    ]
    # Nothing recorded either, not even a FAILED run (another worker's Spark job may log a finished one meanwhile).
    client = tracking_server.client()
    new_runs = [client.get_run(run_id) for run_id in batch_run_ids(client) - runs_before]
    assert [run.info.run_name for run in new_runs if run.info.status != "FINISHED"] == []


@ONE_WRITER
def test_a_write_that_fails_half_way_leaves_the_last_output_whole(
    tracking_server, notebook_run, flowers, monkeypatch, capfd
):
    """The output is written beside it, then renamed: a full disk half-way through leaves the last one as it was."""
    output = flowers / "flowers-predictions.parquet"
    output.write_bytes(b"the last run's output")
    real_to_parquet = pd.DataFrame.to_parquet

    def disk_full_half_way(table, path, *args, **kwargs):
        real_to_parquet(table.head(len(table) // 2), path, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full_half_way)
    arguments = shlex.split(BATCH_SCORING.command)[2:]

    result = run_in_this_process(flowers / "batch_scoring.py", arguments, tracking_server.url, monkeypatch, capfd)

    assert_one_line_error(result, "No space left on device", f"(in {flowers})")
    assert output.read_bytes() == b"the last run's output"


def test_no_server_fails_fast_with_one_line_that_points_to_make_doctor(flowers):
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"
    files_before = sorted(flowers.iterdir())

    started = time.monotonic()
    result = run_command(BATCH_SCORING.command, dead_url, cwd=flowers, timeout=60)
    seconds = time.monotonic() - started

    assert_one_line_error(result, "Connection refused", "make doctor")
    assert seconds < SECONDS_NOT_MINUTES, f"took {seconds:.1f} s to report a missing server"
    assert sorted(flowers.iterdir()) == files_before  # no output


# ---- Spark ----


@pytest.fixture(scope="module")
def spark():
    """Skip on a laptop without pyspark or Java 17 (fail in CI, which installs both)."""
    if shutil.which("spark-submit", path=str(VENV_BIN)) is None:
        missing_service("pyspark is not installed: `make test` installs requirements-spark.txt")
    java = doctor.java(dict(os.environ))
    if not java.ok:
        missing_service(java.message)


@pytest.mark.spark
def test_make_batch_spark_scores_the_flowers_on_spark_like_the_champion(
    spark, tracking_server, champion, checkout_with_runs
):
    """With another Spark program's web UI on port 4040, as a reader may have one running (or another test's)."""
    with socket.socket() as other_spark_ui:
        # Another test's Spark job may hold it for a while: wait for it, so that the warning below always shows.
        deadline, held = time.monotonic() + 120, False
        while not held and time.monotonic() < deadline:
            try:
                other_spark_ui.bind(("127.0.0.1", 4040))
                held = True
            except OSError:
                time.sleep(0.5)
        result = make_in(checkout_with_runs, "batch-spark", f"PORT={port_of(tracking_server.url)}", timeout=600)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = pd.read_csv(checkout_with_runs / "flowers.csv")
    assert_champions_predictions(checkout_with_runs / "flowers-predictions-spark", champion, rows)
    # The Spark page shows what the job prints, and explains every warning: it quotes each one's start.
    printed = result.stdout.split(f"$ {SCORE_ON_SPARK}\n")[1]
    assert_readme_shows(SCORE_ON_SPARK, printed, port_of(tracking_server.url), page="docs/batch-scoring-on-spark.md")
    page = (REPO / "docs" / "batch-scoring-on-spark.md").read_text()
    bullets = page.split("none needs a fix here:\n\n")[1].split("\n\n")[0]
    explained = [
        " ".join(quoted.split()) for _, quoted in re.findall(r"^- (`+) ?(.+?) ?\1", bullets, re.MULTILINE | re.DOTALL)
    ]
    warnings = [line for line in result.stderr.splitlines() if re.search(r"(^|\s)WARN(ING)?[\s:]", line)]
    assert explained and (not held or any("'SparkUI' could not bind" in warning for warning in warnings))
    for warning in warnings:
        assert any(quoted.split("...")[0] in warning for quoted in explained), (warning, explained)


@pytest.mark.spark
def test_100000_flowers_on_spark_by_name_and_a_failed_job_keeps_the_last_output(
    spark, tracking_server, champion, large_table, flowers, tmp_path
):
    """The generated flowers with their columns reversed after an `id`, in local[*]; then the same job with Python
    workers that die as they start, so that it fails in the middle, as it writes."""
    canonical = champion.predict(pd.read_parquet(large_table)).tolist()
    table = pd.read_parquet(large_table)[FEATURES[::-1]]
    table.insert(0, "id", range(100, 100 + len(table)))
    table.to_parquet(flowers / "flowers.parquet", index=False)
    by_position = pd.DataFrame(table.to_numpy()[:, 1:], columns=FEATURES)
    assert champion.predict(by_position).tolist() != canonical  # read by position, they would differ
    command = SCORE_ON_SPARK.replace("flowers.csv", "flowers.parquet")

    result = score(tracking_server, flowers, command)

    assert result.returncode == 0, result.stderr[-3000:]
    output = flowers / "flowers-predictions-spark"
    assert_same_predictions_by_id(output, canonical, table)
    scored = {path.relative_to(output): path.read_bytes() for path in output.rglob("*") if path.is_file()}
    crashing_python = tmp_path / "python"
    crashing_python.write_text("#!/bin/sh\nexit 1\n")
    crashing_python.chmod(0o755)

    failed = score(tracking_server, flowers, command, PYSPARK_PYTHON=str(crashing_python))

    assert_one_line_error(failed, "make doctor")
    assert {path.relative_to(output): path.read_bytes() for path in output.rglob("*") if path.is_file()} == scored
    assert sorted(path.name for path in flowers.iterdir()) == [
        "batch_scoring.py",
        "batch_scoring_spark.py",
        "flowers-predictions-spark",
        "flowers.csv",
        "flowers.parquet",
    ]


@pytest.fixture(scope="module")
def spark_session(spark):
    """A local[2] Spark session in this process, for the checks that stop before any job: no JVM start per case."""
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {**SPARK_ENV, "PYSPARK_PYTHON": str(VENV_BIN / "python")}.items():
            monkeypatch.setenv(name, value)
        session = SparkSession.builder.master("local[2]").appName("bad-input").getOrCreate()
        yield session
        session.stop()


@pytest.mark.spark
@pytest.mark.parametrize(
    "problem, expected",
    [
        ("missing-column", "Model is missing inputs ['petal width (cm)']"),
        ("text-value", "Incompatible input types for column petal width (cm)"),
        ("empty-value", "column 'petal width (cm)' has empty values in"),
    ],
)
def test_bad_input_on_spark_is_named_before_any_job_and_leaves_no_output(
    spark_session, tracking_server, notebook_run, flowers, problem, expected, monkeypatch
):
    """The Spark job's checks, in a session of this process; its one-line error is the script's (see the test above
    and the no-Java test)."""
    from mlflow.exceptions import MlflowException

    # The lessons set MLflow's retries to 0 when imported: only for this test, not for the worker's later ones.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    import batch_scoring_spark

    spoil(flowers / "flowers.csv", problem)
    output = flowers / "flowers-predictions-spark"

    with pytest.raises((MlflowException, ValueError)) as raised:
        batch_scoring_spark.score_on_spark(spark_session, CHAMPION_URI, str(flowers / "flowers.csv"), str(output))

    assert expected in str(raised.value).splitlines()[0]
    assert sorted(path.name for path in flowers.iterdir()) == [
        "batch_scoring.py",
        "batch_scoring_spark.py",
        "flowers.csv",
    ]


@pytest.mark.spark
def test_a_missing_file_on_spark_names_it_and_its_folder(spark_session, tracking_server, flowers, monkeypatch, capfd):
    """The script's own code in this process, in the session above. The path is absolute: a session's JVM resolves a
    relative one from the folder it started in, which a script's own session shares."""
    script, missing = flowers / "batch_scoring_spark.py", str(flowers / "no-such-file.csv")

    result = run_in_this_process(script, [missing], tracking_server.url, monkeypatch, capfd)

    assert_one_line_error(result, "PATH_NOT_FOUND", missing, f"(in {flowers})")
    assert "make doctor" not in result.stderr


@pytest.mark.spark
def test_no_server_on_spark_fails_fast_with_one_line(spark_session, flowers, monkeypatch, capfd):
    """The Spark script's fail-fast setting comes from batch_scoring.py, imported afresh here as by a new process."""
    monkeypatch.delitem(sys.modules, "batch_scoring", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"

    started = time.monotonic()
    source = str(flowers / "flowers.csv")  # the shared session's JVM resolves a relative path from its own folder
    result = run_in_this_process(flowers / "batch_scoring_spark.py", [source], dead_url, monkeypatch, capfd)
    seconds = time.monotonic() - started

    assert_one_line_error(result, "Connection refused", "make doctor")
    assert seconds < SECONDS_NOT_MINUTES, f"took {seconds:.1f} s to report a missing server"
    assert not (flowers / "flowers-predictions-spark").exists()


@pytest.mark.spark
def test_on_spark_a_folder_in_a_dotted_folder_is_scored_beside_it(
    spark_session, tracking_server, champion, flowers, monkeypatch, capfd
):
    """A folder of CSV files as input, in a folder whose name has a dot: the output is named after the input only."""
    folder = flowers / "exports.2026" / "flowers"
    folder.mkdir(parents=True)
    shutil.move(flowers / "flowers.csv", folder / "part-0.csv")
    monkeypatch.setattr(type(spark_session), "stop", lambda session: None)  # the script's stop: the session is shared

    result = run_in_this_process(
        flowers / "batch_scoring_spark.py", [f"{folder}/"], tracking_server.url, monkeypatch, capfd
    )

    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in folder.parent.iterdir()) == ["flowers", "flowers-predictions-spark"]
    assert_champions_predictions(
        folder.parent / "flowers-predictions-spark", champion, pd.read_csv(folder / "part-0.csv")
    )


def workers_alive(master_ui: str) -> int:
    with urllib.request.urlopen(f"{master_ui}/json/", timeout=5) as response:
        return sum(worker["state"] == "ALIVE" for worker in json.load(response)["workers"])


@pytest.fixture(scope="module")
def spark_cluster(spark, tmp_path_factory):
    """A standalone Spark cluster on loopback: a master and one worker with 2 cores, from pyspark's spark-class."""
    folder = tmp_path_factory.mktemp("spark-cluster")
    port, master_ui_port, worker_ui_port = (server_process.free_port() for _ in range(3))
    env = {**step_env("http://127.0.0.1:1"), **SPARK_ENV, "SPARK_LOG_DIR": str(folder), "SPARK_WORKER_DIR": str(folder)}
    spark_class = str(VENV_BIN / "spark-class")
    master_command = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master_command += ["--port", str(port), "--webui-port", str(master_ui_port)]
    worker_command = [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}"]
    worker_command += ["--host", "127.0.0.1", "--webui-port", str(worker_ui_port), "--cores", "2", "--memory", "2g"]
    master_ui = f"http://127.0.0.1:{master_ui_port}"
    master = server_process.start(master_command, folder / "master.log", cwd=folder, env=env)
    worker = None
    try:
        server_process.wait_until_healthy(master, master_ui, folder / "master.log")
        worker = server_process.start(worker_command, folder / "worker.log", cwd=folder, env=env)
        server_process.wait_until_healthy(worker, f"http://127.0.0.1:{worker_ui_port}", folder / "worker.log")
        for _ in range(150):  # the worker registers with the master a moment after its own UI is up
            if workers_alive(master_ui):
                break
            server_process.time.sleep(0.2)
        assert workers_alive(master_ui) == 1, server_process.tail(folder / "worker.log")
        yield f"spark://127.0.0.1:{port}"
    finally:
        for process in (worker, master):
            if process is not None:
                server_process.stop(process)


@pytest.mark.xdist_group("spark-cluster")  # one worker, one cluster
@pytest.mark.spark
@pytest.mark.parametrize("table", ["flowers.csv", "flowers.parquet"], ids=["150-flowers", "100000-flowers"])
def test_the_same_job_on_a_standalone_cluster(spark_cluster, tracking_server, champion, large_table, flowers, table):
    shutil.copy(large_table, flowers)
    command = BATCH_SCORING_ON_A_CLUSTER.replace("spark://<host>:7077", spark_cluster)
    command = command.replace("<shared-path>", str(flowers / table))

    result = score(tracking_server, flowers, command)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = pd.read_csv(flowers / table) if table.endswith(".csv") else pd.read_parquet(large_table)
    output = flowers / f"{table.split('.')[0]}-predictions-spark"
    assert_champions_predictions(output, champion, rows)
    assert_the_run_records(tracking_server, table, output, len(rows))


def assert_the_run_records(tracking_server, dataset_name: str, output, rows: int) -> None:
    """The Spark job's run, read back from the server: the data, the version the alias named then, the model's id,
    the rows and the output; the README's search for the file finds it."""
    client = tracking_server.client()
    experiment = client.get_experiment_by_name("Batch scoring")
    [run] = client.search_runs([experiment.experiment_id], filter_string=f"tags.output = '{output.resolve()}'")
    readme_search = client.search_runs([experiment.experiment_id], f"dataset.name = '{dataset_name}'", max_results=1000)
    assert run.info.run_id in [found.info.run_id for found in readme_search]
    champion_version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert run.info.status == "FINISHED" and run.info.run_name == f"score-{dataset_name}"
    assert run.data.tags["model_version"] == champion_version.version
    assert run.data.tags["model_uri"] == f"models:/{MODEL_NAME}/{champion_version.version}"
    assert f"models:/{run.data.tags['model_id']}" == champion_version.source
    assert run.data.metrics["rows"] == rows
    [dataset_input] = run.inputs.dataset_inputs
    assert (dataset_input.dataset.name, dataset_input.dataset.source_type) == (dataset_name, "spark")
    assert [column["name"] for column in json.loads(dataset_input.dataset.schema)["mlflow_colspec"]] == FEATURES
    assert [(tag.key, tag.value) for tag in dataset_input.tags] == [("mlflow.data.context", "scoring")]


@pytest.mark.spark
@pytest.mark.parametrize("how", ["make batch-spark", "the script"])
def test_no_java_gets_one_line_and_no_output(spark, tracking_server, notebook_run, flowers, checkout_with_runs, how):
    """Spark finds Java through JAVA_HOME first, as Spark's own launcher does: one that leads nowhere is a laptop
    without Java, as Spark sees it."""
    no_java = {"JAVA_HOME": str(flowers / "no-such-jdk")}
    if how == "make batch-spark":
        result = make_in(checkout_with_runs, "batch-spark", f"PORT={port_of(tracking_server.url)}", **no_java)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert "Spark needs Java" in error and "openjdk-17-jre-headless" in error, error
        assert not (checkout_with_runs / "flowers-predictions-spark").exists()
    else:
        result = score(tracking_server, flowers, SCORE_ON_SPARK, **no_java)
        assert_one_line_error(result, "make doctor")
        assert not (flowers / "flowers-predictions-spark").exists()


def test_the_spark_page_shows_the_cluster_command():
    page = (REPO / "docs/batch-scoring-on-spark.md").read_text()
    assert BATCH_SCORING_ON_A_CLUSTER in page and SCORE_ON_SPARK in page
    assert shlex.split(SCORE_ON_SPARK)[1] == "batch_scoring_spark.py"
