"""The smoke test: `python get_started.py` logs one param and one metric, run alone in an empty folder."""

import time

import pytest
from expected_state import assert_smoke_test_runs
from guide_commands import SMOKE_TEST
from helpers import SECONDS_NOT_MINUTES, alone_in_a_folder, assert_one_line_error, run_command
from mlflow import MlflowClient

from tutorial import server_process


def test_smoke_test_logs_its_param_and_metric(tracking_server, tmp_path):
    # As on Windows with the output redirected (`python get_started.py > log.txt`, or GitHub's Windows job):
    # Python writes stdout in cp1252, which has no "🏃" for the run link MLflow prints when the run ends.
    cp1252_stdout = {"PYTHONIOENCODING": "cp1252"}
    folder = alone_in_a_folder("get_started.py", tmp_path)

    result = run_command(SMOKE_TEST, tracking_server.url, cwd=folder, extra_env=cp1252_stdout)

    assert result.returncode == 0, result.stderr
    assert_smoke_test_runs(tracking_server.client(), times_run=1)
    experiment_id = tracking_server.client().get_experiment_by_name("my_experiment").experiment_id
    run = tracking_server.client().search_runs([experiment_id])[0]
    # MLflow prints the run's link itself when the run ends.
    run_link = (
        f"View run {run.info.run_name} at: {tracking_server.url}/#/experiments/{experiment_id}/runs/{run.info.run_id}"
    )
    assert run_link in result.stdout + result.stderr


def test_no_server_fails_fast_with_one_line_that_points_to_make_doctor(tmp_path):
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"

    started = time.monotonic()
    result = run_command(SMOKE_TEST, dead_url, cwd=alone_in_a_folder("get_started.py", tmp_path), timeout=60)
    seconds = time.monotonic() - started

    assert_one_line_error(result, dead_url, "Connection refused", "make doctor")
    assert seconds < SECONDS_NOT_MINUTES, f"took {seconds:.1f} s to report a missing server"


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_any_tracking_uri_mlflow_accepts_works(store, tmp_path):
    """A copy of the lesson in another project, logging to a store MLflow opens itself: no server, no check."""
    folder = alone_in_a_folder("get_started.py", tmp_path / "project")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if store == "sqlite" else (tmp_path / "mlruns").as_uri()
    # MLflow 3.17 writes a file store only when told to (its message says so).
    allow = {"MLFLOW_ALLOW_FILE_STORE": "true"} if store == "file" else {}

    result = run_command(SMOKE_TEST, uri, cwd=folder, extra_env=allow)

    assert result.returncode == 0, result.stderr
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in allow.items():
            monkeypatch.setenv(name, value)
        assert_smoke_test_runs(MlflowClient(tracking_uri=uri), times_run=1)
