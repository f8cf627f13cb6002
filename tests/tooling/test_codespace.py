"""A GitHub Codespace, reproduced on Linux by its condition: the browser reaches the UI through
https://<codespace>-<port>.<forwarding domain>, a Host that MLflow refuses unless told. CODESPACES, CODESPACE_NAME
and the forwarding domain are set as Codespaces sets them, for `make tutorial`'s server and for the dev container."""

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from helpers import REPO, port_of, step_env

from maintainer.checkout import reader_env
from maintainer.tracking_server import SERVER_SETTINGS
from tutorial import server_process
from tutorial.names import TRACKING_PORT
from tutorial.run import SERVER_WORDS, codespace_security_flags
from tutorial.venv import VENV_BIN

pytestmark = pytest.mark.xdist_group("codespace-server")  # one worker, one Codespace server

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
def codespace_server(migrated_database, tmp_path_factory):
    """The server of `make tutorial` in a Codespace: the README's `mlflow ui`, with the flags the runner adds."""
    port = server_process.free_port()
    root = tmp_path_factory.mktemp("codespace")
    shutil.copyfile(migrated_database, root / "mlflow.db")  # migrated already: the server starts sooner
    command = [
        str(VENV_BIN / "mlflow"),
        *SERVER_WORDS[1:],
        *("--host", "127.0.0.1", "--port", str(port)),
        *codespace_security_flags(port, CODESPACE),
    ]
    env = {**step_env(f"http://127.0.0.1:{port}"), **SERVER_SETTINGS}
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
    assert codespace_security_flags(TRACKING_PORT, {}) == []
    assert codespace_security_flags(TRACKING_PORT, {**CODESPACE, "CODESPACES": ""}) == []


def test_the_dev_container_gives_a_hand_typed_mlflow_ui_the_same_hosts_as_the_tutorial():
    """The dev container sets MLflow's variables for port TRACKING_PORT, in Codespaces' ${containerEnv:...} syntax.

    Codespaces fills those in inside the container; this test fills them in from CODESPACE the same way.
    """
    remote_env = json.loads((REPO / ".devcontainer/devcontainer.json").read_text())["remoteEnv"]
    filled = {name: re.sub(r"\$\{containerEnv:(\w+)\}", lambda m: CODESPACE[m[1]], v) for name, v in remote_env.items()}
    flags = codespace_security_flags(TRACKING_PORT, CODESPACE)
    assert filled == {
        "MLFLOW_SERVER_ALLOWED_HOSTS": flags[flags.index("--allowed-hosts") + 1],
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": flags[flags.index("--cors-allowed-origins") + 1],
    }


@pytest.mark.parametrize("allows_the_forwarded_address", [True, False], ids=["tutorials-server", "bare-mlflow-ui"])
def test_make_doctor_in_a_codespace_checks_the_forwarded_address(
    codespace_server, tracking_server, allows_the_forwarded_address
):
    """The tutorial's server passes; a server started without the flags (the session's own) is named, with the fix."""
    port = codespace_server if allows_the_forwarded_address else port_of(tracking_server.url)
    command = [str(VENV_BIN / "python"), "-m", "tutorial.doctor", "--port", str(port)]

    result = subprocess.run(command, cwd=REPO, env=reader_env(**CODESPACE), capture_output=True, text=True, timeout=60)

    [host_line] = [line for line in result.stdout.splitlines() if line.split(":")[0].endswith(" host")]
    if allows_the_forwarded_address:
        assert host_line.startswith("ok") and forwarded_host(port) in host_line, host_line
    else:
        assert host_line.startswith("FAIL") and forwarded_host(port) in host_line and "make tutorial" in host_line
