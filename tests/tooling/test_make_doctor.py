"""`make doctor`: one line per check, the fix for each problem, exit code 1 if any. Each condition a reader can meet
is reproduced on Linux by the condition itself: no server, another program on the port (AirPlay on a Mac), a Host the
server refuses, a database made by an older MLflow, an older MLflow's mlruns/, a busy serving port, a certificate
path with a typo, a cp1252 output (Windows), a Python the guide does not support, and a venv that does not match the
lock. A Codespace's forwarded address is in test_codespace.py, with the server that allows it."""

import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import make_in, port_of, run_as_a_group

from maintainer.checkout import reader_env
from tutorial import server_process
from tutorial.doctor import migration_revisions
from tutorial.venv import VENV_BIN

CHECKS = ["python", "venv", "server", "host", "database", "mlruns", "serving", "certificate", "output", "java"]


def doctor(checkout, port: int, **env_changes: str) -> subprocess.CompletedProcess:
    """`python -m tutorial.doctor`, as `make doctor` runs it, in a copy of the repository from a reader's shell."""
    command = [sys.executable, "-m", "tutorial.doctor", "--port", str(port)]
    return run_as_a_group(command, cwd=checkout, env=reader_env(**env_changes), timeout=60)


def finding(result: subprocess.CompletedProcess, check: str) -> str:
    """The one line a check printed."""
    [line] = [line for line in result.stdout.splitlines() if line.split(":")[0].split()[-1:] == [check]]
    return line


def assert_only_problem(result: subprocess.CompletedProcess, check: str, *expected: str) -> None:
    """`check` failed with a line that says `expected`, every other check held, and the exit code says so."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failed == [finding(result, check)], result.stdout
    for text in expected:
        assert text in failed[0], failed[0]


def test_every_check_holds_beside_a_running_server(fresh_checkout, tracking_server):
    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0].split()[-1] for line in result.stdout.splitlines()[:-1]] == CHECKS
    assert all(line.startswith("ok") for line in result.stdout.splitlines()[:-1]), result.stdout
    assert "MLflow 3." in finding(result, "server")
    assert result.stdout.splitlines()[-1] == "All checks hold."


def test_make_doctor_finds_no_server_and_says_how_to_start_one(fresh_checkout):
    port = server_process.free_port()

    result = make_in(fresh_checkout, "doctor", f"PORT={port}", timeout=60)

    assert result.returncode != 0
    assert f"FAIL server: no MLflow tracking server answers at http://127.0.0.1:{port}" in result.stdout
    assert "make tutorial" in finding(result, "server") and "mlflow ui" in finding(result, "server")
    assert result.stdout.splitlines()[-1] == "1 problem found"


class Forbidden(BaseHTTPRequestHandler):
    """Answers every request with 403, as AirPlay Receiver does on port 5000 of a Mac."""

    def do_GET(self):
        self.send_error(403)

    def log_message(self, *args):
        pass


def test_another_program_on_the_port_is_named_as_such(fresh_checkout):
    with ThreadingHTTPServer(("127.0.0.1", 0), Forbidden) as not_mlflow:
        threading.Thread(target=not_mlflow.serve_forever, daemon=True).start()
        result = doctor(fresh_checkout, not_mlflow.server_port)
        not_mlflow.shutdown()

    assert_only_problem(result, "server", "HTTP 403", "not an MLflow server", "AirPlay", "PORT=5001")


def test_a_server_that_refuses_this_host_is_told_to_allow_it(fresh_checkout, tracking_server):
    port = port_of(tracking_server.url)
    unknown_address = f"http://127.1:{port}"  # loopback, but not a Host that MLflow's defaults accept

    result = doctor(fresh_checkout, port, MLFLOW_TRACKING_URI=unknown_address)

    assert_only_problem(
        result,
        "host",
        "Invalid Host header",
        f"--allowed-hosts 127.1:{port}",
        f"MLFLOW_SERVER_ALLOWED_HOSTS=127.1:{port}",
    )


def previous_schema_revision() -> str:
    """The migration before the newest one: what an mlflow.db made by the previous MLflow release records."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    scripts = ScriptDirectory.from_config(_get_alembic_config("sqlite:///unused.db"))
    return scripts.get_revision(scripts.get_current_head()).down_revision


def test_the_doctor_knows_the_newest_schema_as_alembic_does():
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    revisions, newest = migration_revisions(VENV_BIN.parent)
    scripts = ScriptDirectory.from_config(_get_alembic_config("sqlite:///unused.db"))
    assert newest == scripts.get_current_head()
    assert revisions == {script.revision for script in scripts.walk_revisions()}


@pytest.mark.parametrize("made_by", ["older", "newer"])
def test_a_database_from_another_mlflow_gets_the_fix(checkout_with_runs, made_by):
    revision = previous_schema_revision() if made_by == "older" else "f00dfeedbeef"
    with sqlite3.connect(checkout_with_runs / "mlflow.db") as database:
        database.execute("UPDATE alembic_version SET version_num = ?", (revision,))

    result = doctor(checkout_with_runs, server_process.free_port())

    [line] = [line for line in result.stdout.splitlines() if line.startswith("FAIL database")]
    if made_by == "older":
        assert "made by an older MLflow" in line and "mlflow db upgrade sqlite:///mlflow.db" in line
    else:
        assert "made by a newer MLflow" in line


def test_an_older_mlflows_mlruns_gets_the_migration_command(fresh_checkout):
    (fresh_checkout / "mlruns" / "1").mkdir(parents=True)
    (fresh_checkout / "mlruns" / "1" / "meta.yaml").write_text("name: older-mlflow\n")

    result = doctor(fresh_checkout, server_process.free_port())

    line = finding(result, "mlruns")
    assert line.startswith("FAIL") and "mlflow migrate-filestore --source . --target sqlite:///mlflow.db" in line


def test_a_busy_serving_port_is_found(fresh_checkout, tracking_server):
    """The tracking server's port, given as the tracking port minus one: its serving port is then the server's."""
    port = port_of(tracking_server.url)

    result = doctor(fresh_checkout, port - 1, MLFLOW_TRACKING_URI=tracking_server.url)

    assert_only_problem(result, "serving", f"port {port} is already in use", "SERVE_PORT=")


@pytest.mark.parametrize("certificate", ["missing", "not-a-certificate"])
def test_a_certificate_setting_that_cannot_be_read_is_found(fresh_checkout, tracking_server, certificate, tmp_path):
    path = tmp_path / f"{certificate}.pem"
    if certificate == "not-a-certificate":
        path.write_text("the team's CA, pasted wrong\n")

    result = doctor(fresh_checkout, port_of(tracking_server.url), MLFLOW_TRACKING_SERVER_CERT_PATH=str(path))

    expected = "is not a file" if certificate == "missing" else "is not a PEM certificate"
    assert_only_problem(result, "certificate", f"MLFLOW_TRACKING_SERVER_CERT_PATH={path}", expected)


def test_an_output_that_cannot_show_run_links_gets_the_setting_that_can(fresh_checkout, tracking_server):
    # As on Windows with the output redirected (`make doctor > log.txt`, or GitHub's Windows job): cp1252.
    result = doctor(fresh_checkout, port_of(tracking_server.url), PYTHONIOENCODING="cp1252")

    assert_only_problem(result, "output", "cp1252", "PYTHONUTF8=1")


@pytest.mark.parametrize("minor", [9, 15], ids=["python-3.9", "python-3.15"])
def test_a_python_the_guide_does_not_support_is_named(fresh_checkout, tracking_server, minor):
    shadow = fresh_checkout.parent / "python-as-the-reader-has-it"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text(f"import sys\nsys.version_info = (3, {minor}, 0, 'final', 0)\n")

    result = doctor(fresh_checkout, port_of(tracking_server.url), PYTHONPATH=str(shadow))

    assert_only_problem(result, "python", f"is Python 3.{minor}.0", "needs Python 3.10 to 3.14", "PYTHON=")


def test_a_venv_that_does_not_match_the_lock_is_found(fresh_checkout, tracking_server):
    requirements = fresh_checkout / "requirements.txt"
    installed = next(line for line in requirements.read_text().splitlines() if line.startswith("mlflow=="))
    requirements.write_text(requirements.read_text().replace(installed, "mlflow==3.99.0"))

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    version = installed.split("==")[1]
    assert_only_problem(result, "venv", f"mlflow is {version}, not ==3.99.0", "make setup")


def test_no_venv_at_all_is_found(fresh_checkout, tracking_server):
    (fresh_checkout / ".venv").unlink()

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert_only_problem(result, "venv", "there is no .venv/", "make setup")


def test_a_local_store_needs_no_server(fresh_checkout):
    result = doctor(fresh_checkout, server_process.free_port(), MLFLOW_TRACKING_URI="sqlite:///mlflow.db")

    assert result.returncode == 0, result.stdout
    assert "no server needed" in finding(result, "server")
