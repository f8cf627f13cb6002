"""`make doctor`: one line per check, the fix for each problem, exit code 1 if any. Each condition a reader can meet
is reproduced on Linux by the condition itself: no server, another program on the port (AirPlay on a Mac), a Host the
server refuses, a database made by an older MLflow, an older MLflow's mlruns/, a busy serving port, a certificate
path with a typo, a cp1252 output (Windows), a Python the guide does not support, and a venv that does not match the
lock. A Codespace's forwarded address is in test_codespace.py, with the server that allows it."""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import REPO, make_in, missing_service, port_of, run_as_a_group

from maintainer.checkout import reader_env
from maintainer.tracking_server import running_tracking_server
from tutorial import doctor as doctor_module
from tutorial import server_process
from tutorial.doctor import migration_revisions
from tutorial.names import CHAMPION_URI, MODEL_NAME
from tutorial.venv import VENV_BIN

CHECKS = [
    "python",
    "venv",
    "server",
    "host",
    "store",
    "registry",
    "database",
    "mlruns",
    "serving",
    "certificate",
    "output",
    "java",
]


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


def test_every_check_holds_beside_a_running_server(fresh_checkout, tracking_server, notebook_run):
    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0].split()[-1] for line in result.stdout.splitlines()[:-1]] == CHECKS
    assert all(line.startswith("ok") for line in result.stdout.splitlines()[:-1]), result.stdout
    assert "MLflow 3." in finding(result, "server")
    assert "which Spark 4 runs on" in finding(result, "java")  # checked, not "not needed": this venv has pyspark
    assert result.stdout.splitlines()[-1] == "All checks hold."


def test_a_java_home_that_leads_nowhere_is_the_one_problem(fresh_checkout, tracking_server, notebook_run, tmp_path):
    nowhere = tmp_path / "no-java-here"

    result = doctor(fresh_checkout, port_of(tracking_server.url), JAVA_HOME=str(nowhere))

    assert_only_problem(result, "java", f"there is none on JAVA_HOME={nowhere}", "openjdk-17-jre-headless")


def test_the_troubleshooting_page_has_a_row_for_every_check():
    page = (REPO / "docs/troubleshooting.md").read_text()
    assert re.findall(r"^\| `(\w+)` \|", page, re.MULTILINE) == CHECKS


def test_make_doctor_finds_no_server_and_says_how_to_start_one(fresh_checkout):
    port = server_process.free_port()

    result = make_in(fresh_checkout, "doctor", f"PORT={port}", timeout=60)

    assert result.returncode != 0
    assert f"FAIL server: no MLflow tracking server answers at http://127.0.0.1:{port}" in result.stdout
    # The commands it suggests start the server on the port it checked, not on 5000 (AirPlay's on a Mac).
    assert f"`make tutorial PORT={port}`" in finding(result, "server"), finding(result, "server")
    assert f"`mlflow ui --workers 1 --port {port}`" in finding(result, "server")
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


def test_a_server_that_refuses_this_host_is_told_to_allow_it(fresh_checkout, tracking_server, notebook_run):
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
def test_a_database_from_another_mlflow_gets_the_fix(checkout_with_runs, tracking_server, made_by):
    revision = previous_schema_revision() if made_by == "older" else "f00dfeedbeef"
    with sqlite3.connect(checkout_with_runs / "mlflow.db") as database:
        database.execute("UPDATE alembic_version SET version_num = ?", (revision,))

    # Beside a server that holds the same runs, so that the database is the one problem.
    result = doctor(checkout_with_runs, port_of(tracking_server.url))

    if made_by == "older":
        assert_only_problem(result, "database", "made by an older MLflow", "mlflow db upgrade sqlite:///mlflow.db")
    else:
        assert_only_problem(result, "database", "made by a newer MLflow")


def test_an_older_mlflows_mlruns_gets_the_migration_command(fresh_checkout, tracking_server, notebook_run):
    (fresh_checkout / "mlruns" / "1").mkdir(parents=True)
    (fresh_checkout / "mlruns" / "1" / "meta.yaml").write_text("name: older-mlflow\n")

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert_only_problem(result, "mlruns", "mlflow migrate-filestore --source . --target sqlite:///mlflow.db")


def test_a_busy_serving_port_is_found(fresh_checkout, tracking_server, notebook_run):
    """The tracking server's port, given as the tracking port minus one: its serving port is then the server's."""
    port = port_of(tracking_server.url)

    result = doctor(fresh_checkout, port - 1, MLFLOW_TRACKING_URI=tracking_server.url)

    assert_only_problem(result, "serving", f"port {port} is already in use", f"`make serve PORT={port - 1} SERVE_PORT=")


class ScoringServer(BaseHTTPRequestHandler):
    """Answers /ping with 200, as `mlflow models serve` does (step 8's `make serve`)."""

    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_scoring_server_on_the_serving_port_is_step_8_running_not_a_problem(
    fresh_checkout, tracking_server, notebook_run
):
    with ThreadingHTTPServer(("127.0.0.1", 0), ScoringServer) as scoring:
        threading.Thread(target=scoring.serve_forever, daemon=True).start()
        # The serving port is the one after the tracking server's: give the port before the scoring server's.
        result = doctor(fresh_checkout, scoring.server_port - 1, MLFLOW_TRACKING_URI=tracking_server.url)

    assert result.returncode == 0, result.stdout
    assert (
        finding(result, "serving")
        == f"ok   serving: a scoring server answers on port {scoring.server_port} (step 8's `make serve`?)"
    )


@pytest.mark.parametrize("certificate", ["missing", "not-a-certificate"])
def test_a_certificate_setting_that_cannot_be_read_is_found(
    fresh_checkout, tracking_server, notebook_run, certificate, tmp_path
):
    path = tmp_path / f"{certificate}.pem"
    if certificate == "not-a-certificate":
        path.write_text("the team's CA, pasted wrong\n")

    result = doctor(fresh_checkout, port_of(tracking_server.url), MLFLOW_TRACKING_SERVER_CERT_PATH=str(path))

    expected = "is not a file" if certificate == "missing" else "is not a PEM certificate"
    assert_only_problem(result, "certificate", f"MLFLOW_TRACKING_SERVER_CERT_PATH={path}", expected)


def test_an_output_that_cannot_show_run_links_gets_the_setting_that_can(fresh_checkout, tracking_server, notebook_run):
    # As on Windows with the output redirected (`make doctor > log.txt`, or GitHub's Windows job): cp1252.
    result = doctor(fresh_checkout, port_of(tracking_server.url), PYTHONIOENCODING="cp1252")

    assert_only_problem(result, "output", "cp1252", "PYTHONUTF8=1")


@pytest.mark.parametrize("minor", [9, 15], ids=["python-3.9", "python-3.15"])
def test_a_python_the_guide_does_not_support_is_named(fresh_checkout, tracking_server, notebook_run, minor):
    shadow = fresh_checkout.parent / "python-as-the-reader-has-it"
    shadow.mkdir()
    (shadow / "sitecustomize.py").write_text(f"import sys\nsys.version_info = (3, {minor}, 0, 'final', 0)\n")

    result = doctor(fresh_checkout, port_of(tracking_server.url), PYTHONPATH=str(shadow))

    assert_only_problem(result, "python", f"is Python 3.{minor}.0", "needs Python 3.10 to 3.14", "PYTHON=")


def what_this_venv_has() -> str:
    """`name==version` for every package of the venv running the tests, as `make test-latest` writes it."""
    freeze = [str(VENV_BIN / "uv"), "pip", "freeze", "--python", str(VENV_BIN / "python")]
    return subprocess.run(freeze, capture_output=True, text=True, check=True).stdout


def link_this_venv(checkout, built_from: str | None = None) -> None:
    """The copy's .venv: this venv's entries, linked one by one; with `built_from`, what it says it was built from.
    Without, it is a venv that `make setup` built from the lock, whatever venv the tests run in."""
    venv = checkout / ".venv"
    if venv.is_symlink():
        venv.unlink()
    else:
        shutil.rmtree(venv)  # the links only: rmtree does not follow them
    venv.mkdir()
    for entry in VENV_BIN.parent.iterdir():
        if entry.name != doctor_module.BUILT_FROM:
            (venv / entry.name).symlink_to(entry)
    if built_from is not None:
        (venv / doctor_module.BUILT_FROM).write_text(built_from)


def with_mlflow(requirements: str, version: str) -> str:
    return re.sub(r"^mlflow==\S+", f"mlflow=={version}", requirements, count=1, flags=re.MULTILINE)


def test_a_venv_that_does_not_match_the_lock_is_found(fresh_checkout, tracking_server, notebook_run):
    """A venv built from the lock, and a package moved since: here, a lock of what this venv has, and mlflow moved
    on. The same test holds in `make test-latest`'s venv, whose packages are newer than the repository's lock."""
    (fresh_checkout / "requirements.txt").write_text(with_mlflow(what_this_venv_has(), "3.99.0"))
    link_this_venv(fresh_checkout)

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert_only_problem(result, "venv", f"mlflow is {mlflow_version()}, not ==3.99.0", "make setup")


def test_the_latest_venv_is_judged_by_what_it_was_built_from(fresh_checkout, tracking_server, notebook_run):
    """`make test-latest`'s venv holds releases newer than the lock (here, a lock that pins an older mlflow): the
    doctor judges it by the set it installed, which it writes beside it, and finds a package moved since."""
    installed = what_this_venv_has()
    (fresh_checkout / "requirements.txt").write_text(with_mlflow(installed, "3.0.0"))
    link_this_venv(fresh_checkout, built_from=installed)

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pins of .venv/requirements-installed.txt" in finding(result, "venv")

    link_this_venv(fresh_checkout, built_from=with_mlflow(installed, "3.99.0"))
    result = doctor(fresh_checkout, port_of(tracking_server.url))
    expected = f".venv/ does not match .venv/requirements-installed.txt: mlflow is {mlflow_version()}, not ==3.99.0"
    assert_only_problem(result, "venv", expected, "make test-latest")


def mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def test_no_venv_at_all_is_found(fresh_checkout, tracking_server, notebook_run):
    (fresh_checkout / ".venv").unlink()

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert_only_problem(result, "venv", "there is no .venv/", "make setup")


def test_a_venv_whose_python_does_not_run_is_found(fresh_checkout, tracking_server, notebook_run):
    (fresh_checkout / ".venv").unlink()
    python = fresh_checkout / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 1\n")  # what a venv whose Python was removed or upgraded away does
    python.chmod(0o755)

    result = doctor(fresh_checkout, port_of(tracking_server.url))

    assert_only_problem(result, "venv", f"{python} does not run", "delete .venv/ and run `make setup`")


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_a_server_whose_certificate_is_not_trusted_gets_the_setting(fresh_checkout):
    import ssl

    import trustme

    authority = trustme.CA()  # a team's own certificate authority, which this machine does not trust
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with ThreadingHTTPServer(("127.0.0.1", 0), Healthy) as https:
        https.socket = context.wrap_socket(https.socket, server_side=True)
        threading.Thread(target=https.serve_forever, daemon=True).start()
        try:
            url = f"https://127.0.0.1:{https.server_address[1]}"
            result = doctor(fresh_checkout, server_process.free_port(), MLFLOW_TRACKING_URI=url)
        finally:
            https.shutdown()

    assert_only_problem(result, "server", f"{url} has a certificate this machine does not trust", "CERT_PATH")


def test_a_local_store_needs_no_server(fresh_checkout):
    result = doctor(fresh_checkout, server_process.free_port(), MLFLOW_TRACKING_URI="sqlite:///mlflow.db")

    assert result.returncode == 0, result.stdout
    assert "no server needed" in finding(result, "server")


@pytest.fixture(scope="module")
def empty_server(migrated_database, tmp_path_factory):
    """A tracking server that holds nothing yet: one started before the notebook ran, or in another folder."""
    with running_tracking_server(tmp_path_factory.mktemp("empty-server"), migrated_database) as server:
        yield server


EMPTY_SERVER = pytest.mark.xdist_group("doctor-empty-server")  # one worker, one server for the two tests


@EMPTY_SERVER
def test_a_server_without_the_notebooks_model_is_told_to_run_the_notebook(fresh_checkout, empty_server):
    """The worst moment of step 9 run before step 4: "not found" from the script, and a doctor that said all is well."""
    result = doctor(fresh_checkout, port_of(empty_server.url))

    assert_only_problem(result, "registry", f"no {CHAMPION_URI}", "run the notebook first, README step 4")
    assert f"MLFLOW_TRACKING_URI={empty_server.url} python -m tutorial.notebook" in finding(result, "registry")


@EMPTY_SERVER
def test_make_batch_spark_without_the_notebooks_model_stops_before_spark_starts(fresh_checkout, empty_server):
    """`make batch-spark` checks the registry as the doctor does, before the seconds of a JVM's start."""
    java = doctor_module.java(dict(os.environ))
    if not java.ok:
        missing_service(java.message)

    result = make_in(fresh_checkout, "batch-spark", f"PORT={port_of(empty_server.url)}", timeout=300)

    assert result.returncode != 0 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]  # make adds its own line
    assert f"no {CHAMPION_URI}" in error and "run the notebook first, README step 4" in error, error
    assert "$ " not in result.stdout  # no step of it ran
    assert not (fresh_checkout / "flowers.csv").exists()


@EMPTY_SERVER
def test_a_server_started_in_another_folder_is_named_with_the_command_for_this_one(checkout_with_runs, empty_server):
    """`mlflow ui` started in another folder: this folder's runs and models are not on the server it answers with."""
    port = port_of(empty_server.url)
    result = doctor(checkout_with_runs, port)

    assert result.returncode == 1, result.stdout
    store = finding(result, "store")
    assert store.startswith("FAIL") and "this folder's mlflow.db holds the experiment '" in store, store
    assert "started in another folder" in store and f"mlflow ui --workers 1 --port {port}" in store, store
    assert f"make tutorial PORT={port}" in store and str(checkout_with_runs) in store
    assert finding(result, "registry").startswith("FAIL")
    assert [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("FAIL")] == [
        "FAIL store",
        "FAIL registry",
    ]


def test_a_champion_whose_files_the_server_lacks_is_found(checkout_with_runs, migrated_database, tracking_server):
    """The server's mlflow.db names @champion, but its mlartifacts/ lacks the version's files."""
    champion = tracking_server.client().get_model_version_by_alias(MODEL_NAME, "champion")
    artifact_uri = tracking_server.client().get_model_version_download_uri(MODEL_NAME, champion.version)
    shutil.rmtree(checkout_with_runs / "mlartifacts" / artifact_uri.removeprefix("mlflow-artifacts:/"))
    with running_tracking_server(checkout_with_runs) as server:
        result = doctor(checkout_with_runs, port_of(server.url))

    assert_only_problem(result, "registry", f"is version {champion.version}, but the server has none of its files")
