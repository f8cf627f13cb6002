"""Step 2's server as the README starts it. Many clients logging at once, into one brand-new experiment: no run may
be lost, misfiled or failed (the same check runs on PostgreSQL in team/test_team_server.py).
"""

import os
import shutil

import mlflow
import mlflow.tracking.fluent
from concurrent_logging import CLIENTS, RUNS_PER_CLIENT, run_clients
from helpers import assert_readme_shows
from mlflow.tracking._tracking_service.client import TrackingServiceClient

from maintainer.tracking_server import running_tracking_server
from tutorial import server_process
from tutorial.steps import TRACKING_SERVER, settings_and_words
from tutorial.venv import with_venv_on_path


def test_the_readmes_command_starts_the_server_as_the_readme_shows(tmp_path, migrated_database):
    """The command as a reader types it, with a reader's environment (MLflow's own warnings shown), on a free port."""
    shutil.copyfile(migrated_database, tmp_path / "mlflow.db")  # migrated already: it starts sooner
    settings, words = settings_and_words(TRACKING_SERVER.command)
    port = server_process.free_port()
    env = with_venv_on_path({**os.environ, **settings})
    env.pop("PYTHONWARNINGS", None)
    server = server_process.start([*words, "--port", str(port)], tmp_path / "ui.log", cwd=tmp_path, env=env)
    try:
        server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/health", tmp_path / "ui.log")
    finally:
        server_process.stop(server)

    log = (tmp_path / "ui.log").read_text()
    assert_readme_shows(TRACKING_SERVER.command, log[: log.index("\n", log.index("Uvicorn running"))], port)


def test_clients_log_into_a_new_experiment_at_once_on_sqlite_with_four_workers(tmp_path, migrated_database, capsys):
    with running_tracking_server(tmp_path, migrated_database, workers=4) as server:
        result = run_clients(server.url, "concurrency-sqlite", CLIENTS, RUNS_PER_CLIENT, explicit_experiment_id=True)
    with capsys.disabled():
        print("\n" + result.summary("SQLite, 4 workers"))
    assert (result.lost, result.misfiled, result.failed) == (0, 0, 0), result.first_error
    assert result.runs_in_experiment == CLIENTS * RUNS_PER_CLIENT


def test_a_client_that_loses_the_race_to_create_the_experiment_logs_to_default(tracking_server, monkeypatch):
    """MLflow's pitfall, made deterministic: another client creates the experiment between this client's
    lookup and its create call. set_experiment still returns the experiment, but leaves no active
    experiment, so a bare start_run() goes to Default (id 0). Naming the experiment on the run is safe."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    tracking_server.client().create_experiment("raced-experiment")  # the other client wins the race

    real_lookup = TrackingServiceClient.get_experiment_by_name
    lookups = []

    def lookup_before_the_other_client_created_it(self, name):
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(self, name)

    monkeypatch.setattr(TrackingServiceClient, "get_experiment_by_name", lookup_before_the_other_client_created_it)
    experiment = mlflow.set_experiment("raced-experiment")  # its create call gets RESOURCE_ALREADY_EXISTS
    assert experiment.name == "raced-experiment" and len(lookups) == 2

    with mlflow.start_run() as bare_run:
        pass
    with mlflow.start_run(experiment_id=experiment.experiment_id) as named_run:
        pass
    assert bare_run.info.experiment_id == "0"  # misfiled into Default
    assert named_run.info.experiment_id == experiment.experiment_id
