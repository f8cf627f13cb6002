"""`make tutorial`: the whole guide end to end, then the steps once more on the same data; and what it says, changing
nothing, when it cannot start: a busy port, an mlflow.db from an older MLflow, an older MLflow's mlruns/ folder."""

import re
import shlex
import sqlite3

import pytest
from expected_state import assert_notebook_results, assert_smoke_test_runs
from guide_commands import RUN_NOTEBOOK, SMOKE_TEST, TUTORIAL
from helpers import STRICT_WARNINGS, assert_readme_shows, fingerprint, make_in, port_of, run_command
from mlflow import MlflowClient

from maintainer.tracking_server import running_tracking_server
from tutorial import server_process
from tutorial.names import BATCH_EXPERIMENT, SMOKE_TEST_EXPERIMENT
from tutorial.steps import BATCH_SCORING, STEPS, TRACKING_SERVER


def make_tutorial(checkout, port):
    """`make tutorial KEEP_SERVER=0` under the warnings rule of every other step: a deprecated call in a step, or in
    the server, fails the tutorial."""
    arguments = [*shlex.split(TUTORIAL)[1:], "KEEP_SERVER=0", f"PORT={port}"]
    return make_in(checkout, *arguments, timeout=900, PYTHONWARNINGS=STRICT_WARNINGS)


def test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version(fresh_checkout, migrated_database):
    port = server_process.free_port()

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode == 0, f"make tutorial failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # Every step of the guide, announced with its README number, in order.
    labels = [line for line in result.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert [label.split(" (not run here")[0] for label in labels] == [step.label() for step in STEPS]
    assert f"The MLflow UI is at http://127.0.0.1:{port}" in result.stdout
    assert not server_process.port_is_taken(port), "KEEP_SERVER=0 left the server running"
    # The README shows what the steps print, on a new server: the first-time line (on stderr) then the step's own.
    assert f"$ {TRACKING_SERVER.command} --backend-store-uri sqlite:///mlflow.db" in result.stdout
    for command, experiment in ((SMOKE_TEST, SMOKE_TEST_EXPERIMENT), (BATCH_SCORING.command, BATCH_EXPERIMENT)):
        [first_time] = [line for line in result.stderr.splitlines() if f"name '{experiment}' does not exist" in line]
        printed = result.stdout.split(f"      $ {command}\n")[1].split("      done in")[0]
        assert_readme_shows(command, f"{first_time}\n{printed}", port)
    # The guide's server keeps its data in the checkout, as `mlflow ui` does.
    assert (fresh_checkout / "mlflow.db").is_file() and (fresh_checkout / "mlartifacts").is_dir()

    # A reader runs the steps again on the same data, another day: a server on the checkout's mlflow.db and
    # mlartifacts/, as `mlflow ui` serves them, and the smoke test and the notebook once more. (A second
    # `make tutorial` would only add a second server start; test_port_in_use_... covers the runner's own errors.)
    with running_tracking_server(fresh_checkout, migrated_database) as server:
        for command in (SMOKE_TEST, RUN_NOTEBOOK):
            rerun = run_command(command, server.url, cwd=fresh_checkout, timeout=600)
            assert rerun.returncode == 0, f"{command} failed the second time:\n{rerun.stdout}\n{rerun.stderr}"
        assert_smoke_test_runs(server.client(), times_run=2)
        assert_notebook_results(server.client(), times_run=2)
        # The summary names every experiment the tutorial wrote to, and no other.
        [summary] = [line for line in result.stdout.splitlines() if line.strip().startswith("Experiments: ")]
        named = summary.split("Experiments: ")[1].split(". Model:")[0].split(", ")
        on_server = {experiment.name for experiment in server.client().search_experiments()} - {"Default"}
        assert sorted(named) == sorted(on_server), summary


def test_port_in_use_gets_a_clear_error(fresh_checkout, tracking_server):
    port = port_of(tracking_server.url)

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode != 0
    assert f"error: port {port} is already in use" in result.stderr
    assert f"PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr


def previous_schema_revision() -> str:
    """The migration before the newest one: what an mlflow.db made by the previous MLflow release records."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    scripts = ScriptDirectory.from_config(_get_alembic_config("sqlite:///unused.db"))
    return scripts.get_revision(scripts.get_current_head()).down_revision


def test_make_tutorial_on_an_old_database_says_how_to_upgrade_it_and_changes_nothing(checkout_with_runs):
    with sqlite3.connect(checkout_with_runs / "mlflow.db") as database:
        database.execute("UPDATE alembic_version SET version_num = ?", (previous_schema_revision(),))
    before = fingerprint(checkout_with_runs)

    result = make_tutorial(checkout_with_runs, server_process.free_port())

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "mlflow.db was made by an older MLflow" in error
    assert "back it up" in error and "mlflow db upgrade sqlite:///mlflow.db" in error
    assert fingerprint(checkout_with_runs) == before


def tree_fingerprint(folder) -> dict:
    """Every file under `folder`, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_make_tutorial_beside_an_older_mlflows_mlruns_says_how_to_migrate_and_changes_nothing(fresh_checkout):
    # A file store as MLflow 2 wrote it by default: ./mlruns, one experiment with one run.
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.17 writes one only when told to
        old_store = MlflowClient(tracking_uri=f"file://{fresh_checkout / 'mlruns'}")
        run = old_store.create_run(old_store.create_experiment("older-mlflow"))
        old_store.log_param(run.info.run_id, "C", "1.0")
        old_store.set_terminated(run.info.run_id)
    before = tree_fingerprint(fresh_checkout / "mlruns")

    result = make_tutorial(fresh_checkout, server_process.free_port())

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "mlruns/ holds runs" in error
    assert "mlflow migrate-filestore --source . --target sqlite:///mlflow.db" in error
    assert tree_fingerprint(fresh_checkout / "mlruns") == before
    assert not (fresh_checkout / "mlflow.db").exists() and not (fresh_checkout / "mlartifacts").exists()
