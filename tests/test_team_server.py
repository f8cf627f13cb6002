"""docs/team-server.md: the guide's steps, unchanged, against MLflow on PostgreSQL 15 and S3, with logins.

Real services on loopback: PostgreSQL from its server binaries, moto's S3 server, and the
`mlflow server` command of docs/team-server.md, with `--app-name basic-auth`.
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import requests
import team_services
from concurrent_logging import CLIENTS, RUNS_PER_CLIENT, run_clients
from conftest import REPO, VENV_BIN, missing_service, run_command
from expected_state import (
    IRIS_EXPERIMENT,
    MODEL_NAME,
    NOTEBOOK_RUNS,
    assert_notebook_results,
    assert_smoke_test_runs,
    expected_predictions,
    printed_predictions,
)
from guide_commands import CHANGE_ADMIN_PASSWORD, INFER_BY_ALIAS, RUN_NOTEBOOK, SMOKE_TEST, TEAM_SERVER
from mlflow import MlflowClient

from tutorial import server_process

pytestmark = pytest.mark.postgres

ADMIN_PASSWORD = "test-only-admin-password"
MLFLOW_DB_PASSWORD = "test-only-mlflow-password"


def team_server_command(postgres_port: int, port: int, auth: bool = True) -> list[str]:
    """The team server command, with this machine's database port and a free port, bound to loopback."""
    command = TEAM_SERVER
    replacements = [("postgres:5432", f"127.0.0.1:{postgres_port}"), ("--host 0.0.0.0", "--host 127.0.0.1")]
    replacements.append(("5000", str(port)))
    if not auth:
        replacements.append((" --app-name basic-auth", ""))
    for old, new in replacements:
        assert old in command
        command = command.replace(old, new)
    return shlex.split(command)


class TeamServer:
    """The team server of docs/team-server.md, which the tests can stop and start again on the same port."""

    def __init__(self, postgres, s3_url: str, folder: Path, auth: bool = True, auth_cache_seconds: int = 0):
        self.postgres, self.folder, self.port, self.auth = postgres, folder, server_process.free_port(), auth
        self.s3_url = s3_url
        self.url = f"http://127.0.0.1:{self.port}"
        auth_config = (REPO / "deploy" / "basic_auth.ini").read_text()
        auth_config = auth_config.replace("postgres:5432", f"127.0.0.1:{postgres.port}")
        if auth_cache_seconds:
            # The documented trade-off (docs/team-server.md, "Logins cost CPU"): each worker checks a login once
            # per period instead of on every request, and a changed password may work on for that long.
            auth_config += f"auth_cache_ttl_seconds = {auth_cache_seconds}\n"
        auth_config_path = folder / f"basic_auth-{self.port}.ini"
        auth_config_path.write_text(auth_config)
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "PGPASSWORD": MLFLOW_DB_PASSWORD,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            **team_services.S3_CREDENTIALS,
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config_path),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-secret-key",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        self.process = None

    def start(self) -> None:
        command = team_server_command(self.postgres.port, self.port, self.auth)
        log_file = self.folder / f"team-server-{self.port}.log"
        self.process = server_process.start(command, log_file, cwd=self.folder, env=self.env)
        try:
            server_process.wait_until_healthy(self.process, f"{self.url}/health", log_file)
        except BaseException:  # a failed start, or Ctrl+C: stop its whole group before saying so
            server_process.stop(self.process)
            raise

    def stop(self) -> None:
        server_process.stop(self.process)

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@pytest.fixture(scope="module")
def postgres():
    bin_dir = team_services.postgres_bin_dir()
    if bin_dir is None:
        missing_service("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql-15` package")
    found = team_services.postgres_major_version(bin_dir)
    if found != team_services.POSTGRES_MAJOR:
        missing_service(f"{bin_dir} holds PostgreSQL {found}; the team server is documented and tested on 15")
    with team_services.running_postgres(bin_dir) as postgres:
        # What a team's database admin does once: a login for MLflow, and two databases it owns.
        postgres.run_sql(
            f"CREATE ROLE mlflow LOGIN PASSWORD '{MLFLOW_DB_PASSWORD}'",
            "CREATE DATABASE mlflow OWNER mlflow",
            "CREATE DATABASE mlflow_auth OWNER mlflow",
        )
        yield postgres


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    """The team server, with logins cached for a minute: each request of the guide's steps would otherwise pay a
    password hash (scrypt), which makes the notebook minutes slower. The password test has a server without it."""
    folder = tmp_path_factory.mktemp("team-server")
    with team_services.running_s3(folder) as s3_url:
        server = TeamServer(postgres, s3_url, folder, auth_cache_seconds=60)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def admin(team_server):
    """Logged in as admin: MLflow's client reads the login from the environment, here and in the steps it starts."""
    login = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in login.items():
            monkeypatch.setenv(name, value)
        yield login


@pytest.fixture(scope="module")
def guide_steps(team_server, admin):
    """The smoke test, the notebook and inference by alias, as the README shows them, logged in as admin."""
    outputs = {}
    for command in (SMOKE_TEST, RUN_NOTEBOOK, INFER_BY_ALIAS):
        result = run_command(command, team_server.url, timeout=600, extra_env=admin)
        assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
        outputs[command] = result.stdout
    return outputs


def test_guide_steps_pass_the_same_checks_as_on_sqlite(team_server, guide_steps, monkeypatch):
    client = team_server.client()
    assert_smoke_test_runs(client, times_run=1)
    assert_notebook_results(client, times_run=1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.url)
    champion_uri = INFER_BY_ALIAS.split()[-1]
    assert printed_predictions(guide_steps[INFER_BY_ALIAS]) == expected_predictions(champion_uri)


def test_artifacts_are_in_the_object_store(team_server, guide_steps):
    import boto3

    credentials = team_services.S3_CREDENTIALS
    s3 = boto3.client(
        "s3",
        endpoint_url=team_server.s3_url,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=credentials["AWS_DEFAULT_REGION"],
    )
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=team_services.S3_BUCKET)["Contents"]]
    # One model and one confusion matrix for each manual run and the sweep, and the gate's evaluation plots.
    candidates = len(NOTEBOOK_RUNS) + 1
    assert sum(key.endswith("/artifacts/MLmodel") and "/models/m-" in key for key in keys) == candidates
    assert sum(key.endswith("/artifacts/confusion_matrix.png") for key in keys) == candidates + 1
    assert sum(key.endswith("/artifacts/roc_curve_plot.png") for key in keys) == 1


def test_a_request_without_login_is_refused(team_server):
    response = requests.get(f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10)
    assert response.status_code == 401


def test_a_second_user_can_read_but_not_write_the_admins_experiment(team_server, guide_steps):
    admin_login = ("admin", ADMIN_PASSWORD)
    create = requests.post(
        f"{team_server.url}/api/2.0/mlflow/users/create",
        json={"username": "analyst", "password": "test-only-analyst-password"},
        auth=admin_login,
        timeout=10,
    )
    assert create.status_code == 200, create.text
    analyst = ("analyst", "test-only-analyst-password")
    experiment_id = team_server.client().get_experiment_by_name(IRIS_EXPERIMENT).experiment_id
    runs_before = len(team_server.client().search_runs([experiment_id]))

    read = requests.get(
        f"{team_server.url}/api/2.0/mlflow/experiments/get",
        params={"experiment_id": experiment_id},
        auth=analyst,
        timeout=10,
    )
    assert read.status_code == 200 and read.json()["experiment"]["name"] == IRIS_EXPERIMENT
    write = requests.post(
        f"{team_server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}, auth=analyst, timeout=10
    )
    assert write.status_code == 403, write.text
    assert len(team_server.client().search_runs([experiment_id])) == runs_before  # nothing was added


@pytest.fixture
def uncached_team_server(team_server):
    """The same team server, on the same data, without the login cache: a changed password takes effect at once."""
    server = TeamServer(team_server.postgres, team_server.s3_url, team_server.folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_admin_changes_their_password_with_the_readme_command(uncached_team_server):
    team_server = uncached_team_server

    def can_log_in(password: str) -> bool:
        url = f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        return requests.get(url, auth=("admin", password), timeout=10).status_code == 200

    new_password = "test-only-new-admin-password"
    command = CHANGE_ADMIN_PASSWORD.replace("OLD_PASSWORD", ADMIN_PASSWORD).replace("NEW_PASSWORD", new_password)
    command = command.replace("127.0.0.1:5000", f"127.0.0.1:{team_server.port}")
    try:
        result = subprocess.run([*shlex.split(command), "--fail", "--silent", "--show-error"], capture_output=True)
        assert result.returncode == 0, result.stderr
        assert can_log_in(new_password) and not can_log_in(ADMIN_PASSWORD)
    finally:  # the other tests log in with the first password
        restore = {"username": "admin", "current_password": new_password, "password": ADMIN_PASSWORD}
        requests.patch(
            f"{team_server.url}/api/2.0/mlflow/users/update-password",
            json=restore,
            auth=("admin", new_password),
            timeout=10,
        )
    assert can_log_in(ADMIN_PASSWORD)


def snapshot(client: MlflowClient) -> dict:
    """Everything the guide logged: runs with params, metrics and artifacts, versions, aliases, model files."""
    state = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            artifacts = sorted(artifact.path for artifact in client.list_artifacts(run.info.run_id))
            state[run.info.run_id] = (run.info.run_name, run.data.params, run.data.metrics, run.info.status, artifacts)
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    state["versions"] = sorted((v.version, v.run_id, v.source, v.tags.get("validation_status")) for v in versions)
    state["champion"] = client.get_model_version_by_alias(MODEL_NAME, "champion").version
    return state


def test_everything_survives_a_restart_of_mlflow_and_postgres(team_server, guide_steps, admin, monkeypatch):
    import mlflow

    before = snapshot(team_server.client())
    assert len(before["versions"]) == 3
    team_server.stop()
    team_server.postgres.stop()
    team_server.postgres.start()
    team_server.start()

    after = snapshot(team_server.client())
    assert after == before
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server.url)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")  # its files come back from S3
    assert champion.predict(champion.input_example).tolist() == [0, 0, 1, 0, 0]


def test_clients_log_into_a_new_experiment_at_once_and_none_go_astray(team_server, admin, capsys):
    """Logged in as the admin, as the team's clients are. The logins are cached, as on the team server of
    docs/team-server.md: each worker checks the password hash once, not on every request."""
    result = run_clients(team_server.url, "concurrency-postgres", CLIENTS, RUNS_PER_CLIENT, explicit_experiment_id=True)
    with capsys.disabled():
        print("\n" + result.summary("PostgreSQL, 4 workers, logged in"))
    assert (result.lost, result.misfiled, result.failed) == (0, 0, 0), result.first_error
    assert result.runs_in_experiment == CLIENTS * RUNS_PER_CLIENT
