"""`make tutorial KEEP_SERVER=0`: the whole guide end to end; then the steps once more on the same data."""

import re

from conftest import STRICT_WARNINGS, run_as_a_group, run_command, running_tracking_server
from expected_state import assert_notebook_results, assert_smoke_test_runs
from guide_commands import RUN_NOTEBOOK, SMOKE_TEST, TUTORIAL

from maintainer.checkout import reader_env
from tutorial import server_process
from tutorial.steps import STEPS


def make_tutorial(checkout, port):
    command = f"{TUTORIAL} KEEP_SERVER=0 PORT={port}".split()
    # The warnings rule of every other step: a deprecated call in a step, or in the server, fails the tutorial.
    return run_as_a_group(command, cwd=checkout, env=reader_env(PYTHONWARNINGS=STRICT_WARNINGS), timeout=900)


def test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version(fresh_checkout):
    port = server_process.free_port()

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode == 0, f"make tutorial failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # Every step of the guide, announced with its README number, in order.
    labels = [line for line in result.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert [label.split(" (not run here")[0] for label in labels] == [step.label() for step in STEPS]
    assert f"The MLflow UI is at http://127.0.0.1:{port}" in result.stdout
    assert not server_process.port_is_taken(port), "KEEP_SERVER=0 left the server running"
    # The guide's server keeps its data in the checkout, as `mlflow ui` does.
    assert (fresh_checkout / "mlflow.db").is_file() and (fresh_checkout / "mlartifacts").is_dir()

    # A reader runs the steps again on the same data, another day: a server on the checkout's mlflow.db and
    # mlartifacts/, as `mlflow ui` serves them, and the smoke test and the notebook once more. (A second
    # `make tutorial` would only add a second server start; test_port_in_use_... covers the runner's own errors.)
    with running_tracking_server(fresh_checkout) as server:
        for command in (SMOKE_TEST, RUN_NOTEBOOK):
            rerun = run_command(command, server.url, cwd=fresh_checkout, timeout=600)
            assert rerun.returncode == 0, f"{command} failed the second time:\n{rerun.stdout}\n{rerun.stderr}"
        assert_smoke_test_runs(server.client(), times_run=2)
        assert_notebook_results(server.client(), times_run=2)


def test_port_in_use_gets_a_clear_error(fresh_checkout, tracking_server):
    port = int(tracking_server.url.rsplit(":", 1)[1])

    result = make_tutorial(fresh_checkout, port)

    assert result.returncode != 0
    assert f"error: port {port} is already in use" in result.stderr
    assert f"PORT={port + 1}" in result.stderr
    assert "Traceback" not in result.stderr
