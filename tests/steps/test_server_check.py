"""The teaching files' own server check, when the server is there but will not serve them.

- A client whose address the server does not know (a team server's name, a forwarded port): `127.1` reaches
  the session server on loopback under a Host header that MLflow's defaults refuse.
- A team's own certificate authority, named by MLFLOW_TRACKING_SERVER_CERT_PATH, with a typo in the path.

No server at all, or another program on the port, is in each teaching file's own test file.
"""

import shlex

import pytest
from guide_commands import INFER_BY_ALIAS, SMOKE_TEST
from helpers import alone_in_a_folder, assert_one_line_error, notebook_cells, port_of, run_command


@pytest.mark.parametrize("command", [SMOKE_TEST, INFER_BY_ALIAS], ids=["get_started", "model_inferencing"])
def test_a_server_that_refuses_the_clients_host_gets_one_line_naming_allowed_hosts(tracking_server, command, tmp_path):
    port = port_of(tracking_server.url)
    unknown_address = f"http://127.1:{port}"  # loopback, but not a Host that MLflow's defaults accept
    teaching_file = shlex.split(command)[1]

    result = run_command(command, unknown_address, cwd=alone_in_a_folder(teaching_file, tmp_path), timeout=60)

    assert_one_line_error(
        result, "Invalid Host header", f"--allowed-hosts 127.1:{port}", f"MLFLOW_SERVER_ALLOWED_HOSTS=127.1:{port}"
    )


def test_the_notebook_names_allowed_hosts_too(tracking_server):
    """The notebook's imports and its server check, run in plain Python: the cells a reader runs first."""
    first_cells = "\n".join(cell.source for cell in notebook_cells(["imports", "connect-to-server"]))
    assert "refuses requests addressed to" in first_cells
    port = port_of(tracking_server.url)

    result = run_command(f"python -c {shlex.quote(first_cells)}", f"http://127.1:{port}", timeout=120)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("RuntimeError: ") and f"--allowed-hosts 127.1:{port}" in last_line, result.stderr


@pytest.mark.parametrize("command", [SMOKE_TEST, INFER_BY_ALIAS], ids=["get_started", "model_inferencing"])
def test_a_certificate_path_that_is_not_a_file_gets_one_line(tracking_server, command, tmp_path):
    """A team with its own certificate authority sets MLFLOW_TRACKING_SERVER_CERT_PATH; a typo in it is named."""
    missing = tmp_path / "no-such-ca.pem"
    folder = alone_in_a_folder(shlex.split(command)[1], tmp_path / "alone")

    result = run_command(
        command,
        tracking_server.url,
        cwd=folder,
        timeout=60,
        extra_env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(missing)},
    )

    assert_one_line_error(result, f"MLFLOW_TRACKING_SERVER_CERT_PATH={missing} is not a file")
