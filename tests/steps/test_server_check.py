"""The lessons, when a server is there but will not serve them: each fails in one line that points to `make doctor`,
which names the cause (tooling/test_make_doctor.py checks that it does, for each of these conditions).

- A client whose address the server does not know (a team server's name, a forwarded port): `127.1` reaches
  the session server on loopback under a Host header that MLflow's defaults refuse.
- A team's own certificate authority, named by MLFLOW_TRACKING_SERVER_CERT_PATH, with a typo in the path.

No server at all is in each lesson's own test file.
"""

import shlex
import time

import pytest
from guide_commands import INFER_BY_ALIAS, RUN_NOTEBOOK, SMOKE_TEST
from helpers import (
    REPO,
    SECONDS_NOT_MINUTES,
    alone_in_a_folder,
    assert_one_line_error,
    notebook_cells,
    port_of,
    run_command,
)

from tutorial import server_process

LESSONS = pytest.mark.parametrize("command", [SMOKE_TEST, INFER_BY_ALIAS], ids=["get_started", "model_inferencing"])


@LESSONS
def test_a_server_that_refuses_the_clients_host_gets_one_line(tracking_server, command, tmp_path):
    unknown_address = f"http://127.1:{port_of(tracking_server.url)}"  # loopback, under a Host MLflow refuses

    result = run_command(command, unknown_address, cwd=alone_in_a_folder(shlex.split(command)[1], tmp_path))

    assert_one_line_error(result, "Invalid Host header", "make doctor")


@LESSONS
def test_a_certificate_path_that_is_not_a_file_gets_one_line(command, tmp_path):
    """A team with its own certificate authority sets MLFLOW_TRACKING_SERVER_CERT_PATH; a typo in it is named."""
    missing = tmp_path / "no-such-ca.pem"
    https_url = f"https://127.0.0.1:{server_process.free_port()}"
    folder = alone_in_a_folder(shlex.split(command)[1], tmp_path / "alone")

    result = run_command(command, https_url, cwd=folder, extra_env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(missing)})

    assert_one_line_error(result, str(missing), "make doctor")


def test_the_notebook_from_a_terminal_stops_at_once_with_one_line_without_a_server(tmp_path):
    """Step 4's terminal command: the connection cell's own line (MLflow's retries at 0: seconds, not minutes)."""
    folder = alone_in_a_folder("ml_project.ipynb", tmp_path)
    dead_url = f"http://127.0.0.1:{server_process.free_port()}"

    started = time.monotonic()
    result = run_command(RUN_NOTEBOOK, dead_url, cwd=folder, timeout=120, extra_env={"PYTHONPATH": str(REPO)})

    assert_one_line_error(result, f"ConnectionError: {dead_url}: ", "Connection refused", "(`make doctor` says why)")
    assert time.monotonic() - started < SECONDS_NOT_MINUTES
    assert (folder / "ml_project-run.ipynb").is_file()  # the failed cell's whole traceback is kept there


def test_the_notebooks_connection_cell_is_short():
    [connect] = notebook_cells(["connect-to-server"])
    assert len(connect.source.strip().splitlines()) <= 10
