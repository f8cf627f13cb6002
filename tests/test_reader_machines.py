"""Places the README promises that this Linux machine is not, each reproduced by its condition.

- A Codespace: the browser reaches the UI through https://<codespace>-<port>.<forwarding domain>, a Host that
  MLflow refuses unless told (CODESPACES, CODESPACE_NAME and the forwarding domain set as Codespaces sets them).
- A client whose address the server does not know (a team server's name, a forwarded port): `127.1` reaches
  the session server on loopback under a Host header that MLflow's defaults refuse.
- A reader's python3 that is too old (macOS's 3.9), too new for the pins (3.15), or has no venv module (Debian
  without python3-venv): an interpreter that reports that version, or that cannot import ensurepip.

Windows' cp1252 stdout is in test_get_started.py and test_model_inferencing.py, macOS's port 5001 in
test_serving.py, GitHub's container job in test_workspace.py, an older MLflow's mlruns/ in test_data_safety.py.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from conftest import MIGRATED_DATABASE, REPO, VENV_BIN, alone_in_a_folder, assert_one_line_error, run_command, step_env
from guide_commands import INFER_BY_ALIAS, SMOKE_TEST

from maintainer.checkout import reader_env
from tutorial import server_process
from tutorial.run import codespace_security_flags
from tutorial.steps import TRACKING_SERVER

CODESPACE = {
    "CODESPACES": "true",
    "CODESPACE_NAME": "reader-mlflow-starter-x7q9",
    "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN": "app.github.dev",
}


def forwarded_host(port: int) -> str:
    return f"{CODESPACE['CODESPACE_NAME']}-{port}.{CODESPACE['GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN']}"


def status_of(url: str, host: str, method: str = "GET", origin: str | None = None, body: dict | None = None) -> int:
    """The HTTP status `url` answers to a request with this Host header (and Origin, for a browser's write)."""
    headers = {"Host": host, "Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def codespace_server(tracking_server, tmp_path_factory):
    """The server of `make tutorial` in a Codespace: the README's `mlflow ui`, with the flags the runner adds."""
    port = server_process.free_port()
    root = tmp_path_factory.mktemp("codespace")
    shutil.copyfile(MIGRATED_DATABASE[0], root / "mlflow.db")  # migrated already: the server starts sooner
    command = [
        str(VENV_BIN / "mlflow"),
        *shlex.split(TRACKING_SERVER.command)[1:],
        *("--host", "127.0.0.1", "--port", str(port)),
        *codespace_security_flags(port, CODESPACE),
    ]
    env = {**step_env(f"http://127.0.0.1:{port}"), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = server_process.start(command, root / "server.log", cwd=root, env=env)
    try:
        server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/health", root / "server.log")
        yield port
    finally:
        server_process.stop(server)


def test_in_a_codespace_the_tutorials_server_accepts_its_forwarded_address_and_nothing_wider(codespace_server):
    port = codespace_server
    local = f"http://127.0.0.1:{port}"
    search = f"{local}/ajax-api/2.0/mlflow/experiments/search?max_results=1"
    create = f"{local}/ajax-api/2.0/mlflow/experiments/create"
    forwarded = forwarded_host(port)

    # The UI and the API, through the address the browser uses, and a write from the UI's own origin.
    assert status_of(f"{local}/", forwarded) == 200
    assert status_of(search, forwarded) == 200
    assert status_of(create, forwarded, "POST", f"https://{forwarded}", {"name": "from-the-codespace-ui"}) == 200
    assert status_of(search, f"127.0.0.1:{port}") == 200  # the Codespace's own terminal
    # Nothing wider: another port's forwarded address, another host, a write from another origin.
    assert status_of(search, forwarded_host(port + 1)) == 403
    assert status_of(search, "mlflow.evil.example") == 403
    assert status_of(create, forwarded, "POST", "https://evil.example", {"name": "from-elsewhere"}) == 403


def test_outside_a_codespace_the_tutorial_keeps_mlflows_defaults():
    assert codespace_security_flags(5000, {}) == []
    assert codespace_security_flags(5000, {**CODESPACE, "CODESPACES": ""}) == []


def test_the_dev_container_gives_a_hand_typed_mlflow_ui_the_same_hosts_as_the_tutorial():
    """The dev container sets MLflow's variables for port 5000, in Codespaces' ${containerEnv:...} syntax.

    Codespaces fills those in inside the container; this test fills them in from CODESPACE the same way.
    """
    remote_env = json.loads((REPO / ".devcontainer/devcontainer.json").read_text())["remoteEnv"]
    filled = {name: re.sub(r"\$\{containerEnv:(\w+)\}", lambda m: CODESPACE[m[1]], v) for name, v in remote_env.items()}
    flags = codespace_security_flags(5000, CODESPACE)
    assert filled == {
        "MLFLOW_SERVER_ALLOWED_HOSTS": flags[flags.index("--allowed-hosts") + 1],
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": flags[flags.index("--cors-allowed-origins") + 1],
    }


@pytest.mark.parametrize("command", [SMOKE_TEST, INFER_BY_ALIAS], ids=["get_started", "model_inferencing"])
def test_a_server_that_refuses_the_clients_host_gets_one_line_naming_allowed_hosts(tracking_server, command, tmp_path):
    port = tracking_server.url.rsplit(":", 1)[1]
    unknown_address = f"http://127.1:{port}"  # loopback, but not a Host that MLflow's defaults accept
    teaching_file = shlex.split(command)[1]

    result = run_command(command, unknown_address, cwd=alone_in_a_folder(teaching_file, tmp_path), timeout=60)

    assert_one_line_error(
        result, "Invalid Host header", f"--allowed-hosts 127.1:{port}", f"MLFLOW_SERVER_ALLOWED_HOSTS=127.1:{port}"
    )


def test_the_notebook_names_allowed_hosts_too(tracking_server):
    """The notebook's imports and its server check, run in plain Python: the cells a reader runs first."""
    cells = json.loads((REPO / "ml_project.ipynb").read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    first_cells = "\n".join(code[:2])
    assert "refuses requests addressed to" in first_cells
    port = tracking_server.url.rsplit(":", 1)[1]

    result = run_command(f"python -c {shlex.quote(first_cells)}", f"http://127.1:{port}", timeout=120)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("RuntimeError: ") and f"--allowed-hosts 127.1:{port}" in last_line, result.stderr


FAKE_VERSION = "import sys\nsys.version_info = ({}, {}, 0, 'final', 0)\n"
NO_ENSUREPIP = "raise ModuleNotFoundError(\"No module named 'ensurepip'\")\n"


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("sitecustomize.py", FAKE_VERSION.format(3, 9), "needs Python 3.10 to 3.14"),
        ("sitecustomize.py", FAKE_VERSION.format(3, 15), "needs Python 3.10 to 3.14"),
        ("ensurepip/__init__.py", NO_ENSUREPIP, "sudo apt install python3-venv"),
    ],
    ids=["python-3.9", "python-3.15", "no-venv-module"],
)
def test_make_setup_with_a_python_it_cannot_use_says_what_to_install(fresh_checkout, module, source, expected):
    (fresh_checkout / ".venv").unlink()  # the test venv's link: make would see the venv built already
    shadow = fresh_checkout.parent / "python-as-the-reader-has-it"
    (shadow / module).parent.mkdir(parents=True, exist_ok=True)
    (shadow / module).write_text(source)

    result = subprocess.run(
        ["make", "setup", f"PYTHON={sys.executable}"],
        cwd=fresh_checkout,
        env=reader_env(PYTHONPATH=str(shadow)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert expected in error and "PYTHON=" in error, error
    assert not (fresh_checkout / ".venv").exists()


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
