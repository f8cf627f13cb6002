"""docs/team-server.md: the guide's steps, unchanged, against MLflow on PostgreSQL 15 and S3, with logins.

Real services on loopback: PostgreSQL from its server binaries, moto's S3 server, and the
`mlflow server` command of docs/team-server.md, with `--app-name basic-auth`.
"""

import base64
import http.client
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import team_services
from concurrent_logging import CLIENTS, RUNS_PER_CLIENT, run_clients
from expected_state import (
    IRIS_EXPERIMENT,
    MODEL_NAME,
    NOTEBOOK_RUNS,
    assert_notebook_results,
    assert_smoke_test_runs,
    expected_predictions,
    printed_predictions,
)
from guide_commands import (
    BACKUP_BUCKET,
    CHANGE_ADMIN_PASSWORD,
    CLIENT_RETRIES,
    CREATE_USER,
    DELETE_USER,
    DUMP_AUTH,
    DUMP_TRACKING,
    EXAMPLE_DOMAIN,
    INFER_BY_ALIAS,
    READ_ENV,
    RESTORE_AUTH,
    RESTORE_BUCKET,
    RESTORE_TRACKING,
    RUN_NOTEBOOK,
    SMOKE_TEST,
    TEAM_SERVER,
    UPGRADE_DATABASE,
    WAIT_FOR_POSTGRES,
)
from helpers import REPO, missing_service, run_command
from mlflow import MlflowClient
from resolve_hostnames.sitecustomize import resolving

from maintainer.tracking_server import SERVER_SETTINGS
from tutorial import server_process
from tutorial.venv import with_venv_on_path

# One worker runs the whole module: its tests share the module's services, and some restart them.
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("team-server")]

ADMIN_PASSWORD = "test-only-admin-password"
CACHED_LOGINS = "auth_cache_ttl_seconds = 60"  # what deploy/basic_auth.ini ships with
TEAM_NAMES = team_services.TEAM_NAMES
MLFLOW_DB_PASSWORD = "test-only-mlflow-password"


def team_server_command(postgres_port: int, port: int, auth: bool = True, workers: int = 4) -> list[str]:
    """The team server command, with this machine's database port and a free port, bound to loopback, as bash turns
    it into arguments with the operator's names of deploy/.env (team_services.TEAM_NAMES) in the shell."""
    command = TEAM_SERVER
    replacements = [("postgres:5432", f"127.0.0.1:{postgres_port}"), ("--host 0.0.0.0", "--host 127.0.0.1")]
    replacements += [("5000", str(port)), ("--workers 4", f"--workers {workers}")]
    if not auth:
        replacements.append((" --app-name basic-auth", ""))
    for old, new in replacements:
        assert old in command
        command = command.replace(old, new)
    return team_services.page_arguments(command)


class TeamServer:
    """The team server of docs/team-server.md, which the tests can stop and start again on the same port."""

    def __init__(self, postgres, s3, folder: Path, auth: bool = True, cached_logins: bool = True, workers: int = 4):
        self.postgres, self.folder, self.port, self.auth = postgres, folder, server_process.free_port(), auth
        self.s3, self.workers = s3, workers
        self.url = f"http://127.0.0.1:{self.port}"
        auth_config = (REPO / "deploy" / "basic_auth.ini").read_text()
        auth_config = auth_config.replace("postgres:5432", f"127.0.0.1:{postgres.port}")
        if not cached_logins:
            # The page's other choice ("Logins cost CPU"): every request checks its password, so a changed password
            # takes effect at once. The file ships with the cache.
            assert CACHED_LOGINS in auth_config
            auth_config = auth_config.replace(CACHED_LOGINS, "auth_cache_ttl_seconds = 0")
        auth_config_path = folder / f"basic_auth-{self.port}.ini"
        auth_config_path.write_text(auth_config)
        self.env = with_venv_on_path(
            {
                **os.environ,
                "PGPASSWORD": MLFLOW_DB_PASSWORD,
                "MLFLOW_S3_ENDPOINT_URL": s3.url,
                **s3.credentials,  # keys for the artifact bucket only
                "MLFLOW_AUTH_CONFIG_PATH": str(auth_config_path),
                "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-secret-key",
                **SERVER_SETTINGS,
            }
        )
        self.process = None

    def start(self) -> None:
        command = team_server_command(self.postgres.port, self.port, self.auth, self.workers)
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


@pytest.fixture(scope="module", autouse=True)
def downloads_through_the_server():
    """Clients fetch model files through the server, not from the bucket with presigned URLs.

    For an S3 artifact store, MLflow 3.17 tells clients to download straight from the bucket with presigned URLs.
    moto, enforcing IAM policies so that the server's keys are tested, fails on presigned requests (it looks for
    an Authorization header they do not carry), so the tests' clients take MLflow's other path, through the
    server. docs/team-server.md says what a team's clients need for the presigned one.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
        yield


@pytest.fixture(scope="module")
def postgres():
    bin_dir = team_services.postgres_bin_dir()
    if bin_dir is None:
        missing_service("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's `postgresql-15` package")
    found = team_services.postgres_major_version(bin_dir)
    if found != team_services.POSTGRES_MAJOR:
        missing_service(f"{bin_dir} holds PostgreSQL {found}; the team server is documented and tested on 15")
    with team_services.running_postgres(bin_dir) as postgres:
        # What the postgres image runs once on an empty volume: a role for MLflow, and the two databases it owns.
        create_databases = REPO / "deploy" / "create-mlflow-databases.sh"
        env = {**postgres.client_env(), "MLFLOW_DB_PASSWORD": MLFLOW_DB_PASSWORD, "POSTGRES_USER": "postgres"}
        subprocess.run(["sh", create_databases], env=env, check=True, capture_output=True, timeout=60)
        yield postgres


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    """The team server, with deploy/basic_auth.ini as it ships: logins cached for a minute, since each request of the
    guide's steps would otherwise pay a password hash, scrypt (its cost: maintainer/docs/speed.md, "The team
    server"). The password test has a server without the cache."""
    folder = tmp_path_factory.mktemp("team-server")
    with team_services.running_s3(folder) as s3:
        server = TeamServer(postgres, s3, folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()


DOCUMENTED_URL = f"https://{team_services.TEAM_HOSTNAME}"  # CLIENT_LOGIN's, with the operator's domain for the example


@dataclass
class PublicAddress:
    url: str  # https://<MLFLOW_DOMAIN>:<the proxy's port>
    port: int
    certificate: Path  # the team's certificate authority, which clients trust
    proxy: team_services.Proxy


def curl_through_proxy(command: str, proxy_port: int, certificate: Path) -> subprocess.CompletedProcess:
    """Run a curl command of docs/team-server.md against the proxy: the documented URL, on the test's port, with
    the name resolved to loopback and the run's certificate trusted."""
    command = command.replace(f"https://{EXAMPLE_DOMAIN}/", f"{DOCUMENTED_URL}:{proxy_port}/")
    resolve = f"{team_services.TEAM_HOSTNAME}:{proxy_port}:127.0.0.1"
    options = ["--resolve", resolve, "--cacert", str(certificate), "--fail", "--silent", "--show-error"]
    return subprocess.run([*shlex.split(command), *options], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def team_ca(tmp_path_factory) -> team_services.CertificateAuthority:
    """The team's certificate authority, made for this run: it issues the proxy's certificates, clients trust it."""
    return team_services.certificate_authority(tmp_path_factory.mktemp("team-ca"))


@pytest.fixture(scope="module")
def public_url(team_server, team_ca, tmp_path_factory) -> PublicAddress:
    """The address docs/team-server.md gives clients, https://<MLFLOW_DOMAIN>, served by deploy/nginx.conf.template.

    The proxy listens on a free loopback port rather than 443, and TEST_HOSTNAMES resolves the name to loopback,
    here and in every step the tests start (tests/resolve_hostnames). Clients trust the run's certificate through
    MLFLOW_TRACKING_SERVER_CERT_PATH, as the page tells a team with a private certificate authority to do.
    """
    if team_services.nginx_binary() is None:
        missing_service("no nginx: install Debian's `nginx` package")
    folder = tmp_path_factory.mktemp("tls-proxy")
    proxy = team_services.running_tls_proxy(folder, team_server.port, team_ca)
    with proxy as proxy, pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", resolving({team_services.TEAM_HOSTNAME: "127.0.0.1"}))
        patch.setenv("TEST_HOSTNAMES", f"{team_services.TEAM_HOSTNAME}=127.0.0.1")
        patch.setenv(
            "PYTHONPATH", os.pathsep.join([str(REPO / "tests" / "resolve_hostnames"), os.environ.get("PYTHONPATH", "")])
        )
        patch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(team_ca.certificate))
        yield PublicAddress(f"{DOCUMENTED_URL}:{proxy.port}", proxy.port, team_ca.certificate, proxy)


@pytest.fixture(scope="module")
def admin(team_server):
    """Logged in as admin: MLflow's client reads the login from the environment, here and in the steps it starts."""
    login = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in login.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(*CLIENT_RETRIES.removeprefix("export ").split("="))  # and the retries, as the page says
        yield login


@pytest.fixture(scope="module")
def guide_steps(team_server, public_url, admin):
    """The smoke test, the notebook and inference by alias, as the README shows them, logged in as admin, through
    the TLS proxy at the documented address."""
    outputs = {}
    for command in (SMOKE_TEST, RUN_NOTEBOOK, INFER_BY_ALIAS):
        result = run_command(command, public_url.url, timeout=600, extra_env=admin)
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
    s3 = team_services.s3_client(team_server.s3)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=team_services.S3_BUCKET)["Contents"]]
    # One model and one confusion matrix for each manual run and the sweep, and the gate's evaluation plots.
    candidates = len(NOTEBOOK_RUNS) + 1
    assert sum(key.endswith("/artifacts/MLmodel") and "/models/m-" in key for key in keys) == candidates
    assert sum(key.endswith("/artifacts/confusion_matrix.png") for key in keys) == candidates + 1
    assert sum(key.endswith("/artifacts/roc_curve_plot.png") for key in keys) == 1


def test_the_servers_keys_reach_the_artifact_bucket_and_no_other(team_server, guide_steps):
    """MLflow logged every artifact of the guide with keys limited by deploy/s3-artifacts-policy.json (the guide's
    steps passed with them); the same keys cannot list, read or write another bucket of the same store."""
    from botocore.exceptions import ClientError

    s3 = team_services.s3_client(team_server.s3)
    assert s3.list_objects_v2(Bucket=team_services.S3_BUCKET)["KeyCount"] > 0
    for attempt in (
        lambda: s3.list_objects_v2(Bucket=team_services.OTHER_BUCKET),
        lambda: s3.put_object(Bucket=team_services.OTHER_BUCKET, Key="taken", Body=b"x"),
        lambda: s3.get_object(Bucket=team_services.OTHER_BUCKET, Key="anything"),
    ):
        with pytest.raises(ClientError, match="AccessDenied"):
            attempt()


def test_a_request_without_login_is_refused(team_server):
    response = requests.get(f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10)
    assert response.status_code == 401


READER_PASSWORD = "test-only-reader-password"


@pytest.fixture(scope="module")
def reader(team_server, public_url, guide_steps) -> tuple[str, str]:
    """alice, created by the admin with the page's curl command, through the proxy. She has the default
    permission, READ, on everything the admin made."""
    command = CREATE_USER.replace("ADMIN_PASSWORD", ADMIN_PASSWORD).replace("USER_PASSWORD", READER_PASSWORD)
    result = curl_through_proxy(command, public_url.port, public_url.certificate)
    assert result.returncode == 0, result.stderr
    return ("alice", READER_PASSWORD)


def api(team_server, method: str, route: str, login=None, **kwargs) -> requests.Response:
    """One request to the team server's REST API, straight to MLflow (the proxy's rate limit is tested apart)."""
    return requests.request(method, f"{team_server.url}/api/2.0/mlflow/{route}", auth=login, timeout=30, **kwargs)


def test_a_reader_can_read_but_not_write_the_admins_experiment(team_server, reader):
    experiment_id = team_server.client().get_experiment_by_name(IRIS_EXPERIMENT).experiment_id
    runs_before = len(team_server.client().search_runs([experiment_id]))

    read = api(team_server, "GET", "experiments/get", reader, params={"experiment_id": experiment_id})
    assert read.status_code == 200 and read.json()["experiment"]["name"] == IRIS_EXPERIMENT
    write = api(team_server, "POST", "runs/create", reader, json={"experiment_id": experiment_id})
    assert write.status_code == 403, write.text
    assert len(team_server.client().search_runs([experiment_id])) == runs_before  # nothing was added


def test_a_reader_cannot_change_the_registry_delete_runs_or_manage_users(team_server, reader):
    client = team_server.client()
    experiment_id = client.get_experiment_by_name(IRIS_EXPERIMENT).experiment_id
    admins_run = client.search_runs([experiment_id], "attributes.run_name = 'lr-C-1.5'")[0]
    before = snapshot(client)
    attempts = {
        "move @champion": (
            "POST",
            "registered-models/alias",
            {"name": MODEL_NAME, "alias": "champion", "version": "1"},
        ),
        "tag a version": (
            "POST",
            "model-versions/set-tag",
            {"name": MODEL_NAME, "version": "3", "key": "k", "value": "v"},
        ),
        "delete a run": ("POST", "runs/delete", {"run_id": admins_run.info.run_id}),
        "create a user": ("POST", "users/create", {"username": "mallory", "password": "test-only-mallory-pw"}),
        "make herself admin": ("PATCH", "users/update-admin", {"username": "alice", "is_admin": True}),
        "change the admin's password": (
            "PATCH",
            "users/update-password",
            {"username": "admin", "password": "test-only-taken-over"},
        ),
        "delete the admin": ("DELETE", "users/delete", {"username": "admin"}),
    }
    for what, (method, route, body) in attempts.items():
        response = api(team_server, method, route, reader, json=body)
        assert response.status_code == 403, f"{what}: HTTP {response.status_code} {response.text[:200]}"
    assert snapshot(client) == before
    assert api(team_server, "GET", "users/get", ("admin", ADMIN_PASSWORD), params={"username": "admin"}).ok


def route_without_parameters(path: str) -> str:
    return re.sub(r"<(?:\w+:)?\w+>", "x", path)


# Routes MLflow answers without a login on purpose: server-info tells a client how the server is set up before it
# logs in, and MLflow keeps secrets out of it (mlflow/server/handlers.py, build_server_info_payload).
PUBLIC_ROUTES = ("/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info")


def test_without_a_login_every_api_route_but_health_and_server_info_gets_401(team_server):
    with warnings.catch_warnings():
        # Importing MLflow's server in this process: Starlette warns about a module MLflow's app uses.
        warnings.filterwarnings("ignore", message=r"starlette\.middleware\.wsgi is deprecated")
        from mlflow.server.auth import routes as auth_routes
        from mlflow.server.handlers import get_endpoints

    routes = {(route_without_parameters(path), methods[0]) for path, _, methods in get_endpoints()}
    routes |= {(getattr(auth_routes, name), "GET") for name in dir(auth_routes) if name.isupper()}
    routes = {(path, method) for path, method in routes if path.startswith(("/api/", "/ajax-api/"))}
    assert len(routes) > 300, "MLflow's route list was not found: the check looks at nothing"

    def status_of(route: tuple[str, str]) -> int:
        path, method = route
        return requests.request(method, f"{team_server.url}{path}", timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:  # the server has 4 workers: keep them busy
        ordered = sorted(routes)
        answers = {
            (method, path): status for (path, method), status in zip(ordered, pool.map(status_of, ordered), strict=True)
        }
    let_through = {
        route: status for route, status in answers.items() if status != 401 and route[1] not in PUBLIC_ROUTES
    }
    assert not let_through, f"answered without a login: {let_through}"
    assert requests.get(f"{team_server.url}/health", timeout=10).status_code == 200
    for route in PUBLIC_ROUTES:
        public = requests.get(f"{team_server.url}{route}", timeout=10).text
        for secret in (ADMIN_PASSWORD, MLFLOW_DB_PASSWORD, "postgresql://", "s3://", team_server.s3.url):
            assert secret not in public, (route, secret)


@pytest.mark.parametrize(
    "artifact_path",
    ["../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd", "..%2f..%2f..%2fetc%2fpasswd"],
    ids=["plain", "percent-encoded-dots", "percent-encoded-slashes"],
)
def test_artifact_paths_that_climb_out_of_the_store_are_refused(team_server, public_url, admin, artifact_path):
    login = ("admin", ADMIN_PASSWORD)
    # The control: a key inside the store is served through both addresses, so a refusal below is the path's own.
    control = f"{team_server.url}/api/2.0/mlflow-artifacts/artifacts/control/{uuid.uuid4().hex}.txt"
    assert requests.put(control, data=b"inside", auth=login, timeout=30).status_code == 200
    for base in (team_server.url, public_url.url):
        inside = requests.get(
            control.replace(team_server.url, base), auth=login, timeout=30, verify=str(public_url.certificate)
        )
        assert (inside.status_code, inside.content) == (200, b"inside"), (base, inside.status_code)
    for base in (team_server.url, public_url.url):
        url = f"{base}/api/2.0/mlflow-artifacts/artifacts/{artifact_path}"
        response = requests.get(url, auth=login, timeout=30, verify=str(public_url.certificate))
        assert response.status_code in (400, 403, 404), (url, response.status_code)
        assert "root:" not in response.text
        listing = requests.get(
            f"{base}/api/2.0/mlflow-artifacts/artifacts",
            params={"path": urllib.parse.unquote(artifact_path)},
            auth=login,
            timeout=30,
            verify=str(public_url.certificate),
        )
        assert listing.status_code in (400, 403, 404), (base, listing.status_code, listing.text[:200])


def test_the_documented_address_reaches_the_server_and_no_other_does(team_server, public_url, admin):
    """Clients send Host: <MLFLOW_DOMAIN> (and :port); the proxy passes the name on, and MLflow checks it."""
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    login, trusted = ("admin", ADMIN_PASSWORD), str(public_url.certificate)
    through_proxy = requests.get(f"{public_url.url}{search}", auth=login, timeout=30, verify=trusted)
    assert through_proxy.status_code == 200, through_proxy.text
    # Straight to MLflow, with the Host the proxy passes on: the name, without a port.
    direct = requests.get(
        f"{team_server.url}{search}", auth=login, headers={"Host": team_services.TEAM_HOSTNAME}, timeout=30
    )
    assert direct.status_code == 200, direct.text
    for foreign in ("evil.example", f"{team_services.TEAM_HOSTNAME}.evil.example"):
        assert requests.get(f"{team_server.url}{search}", headers={"Host": foreign}, timeout=30).status_code == 403
        # Through the proxy, a client that connects to the server's name but sends another Host.
        proxied = requests.get(
            f"{public_url.url}{search}", headers={"Host": foreign}, auth=login, timeout=30, verify=trusted
        )
        assert proxied.status_code == 403, foreign
    # A write from the UI's own origin goes through; one from another site's page is refused.
    create = f"{public_url.url}/api/2.0/mlflow/experiments/create"
    for origin, expected in ((DOCUMENTED_URL, 200), ("https://evil.example", 403)):
        response = requests.post(
            create,
            json={"name": f"cors-{origin.rsplit('/', 1)[1]}"},
            auth=login,
            headers={"Origin": origin},
            timeout=30,
            verify=str(public_url.certificate),
        )
        assert response.status_code == expected, (origin, response.text[:200])


def proxy_rate_limit(public_url) -> tuple[int, int]:
    """(requests a second, burst) that the running proxy allows one client address, read from its rendered file."""
    nginx = (public_url.proxy.folder / "mlflow.conf").read_text()
    rate = int(re.search(r"zone=per_address:\S+ rate=(\d+)r/s;", nginx)[1])
    burst = int(re.search(r"limit_req zone=per_address burst=(\d+) nodelay;", nginx)[1])
    return rate, burst


def test_a_flood_of_wrong_passwords_is_slowed_by_the_proxy_while_a_logged_in_client_works(team_server, public_url):
    """Guesses from one address (127.0.0.2, another loopback address), all at once, against the proxy, while the
    admin, from 127.0.0.1, keeps working. Beyond its rate the proxy answers 429 itself, and MLflow, which would
    spend a scrypt hash on each guess, never sees them."""
    rate, burst = proxy_rate_limit(public_url)
    assert (str(rate), str(burst)) == (TEAM_NAMES["MLFLOW_RATE_PER_ADDRESS"], TEAM_NAMES["MLFLOW_BURST_PER_ADDRESS"])
    guesses = 3 * burst  # all sent at once, as fast as they can be: far more than the burst

    def guess(index: int) -> int:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", public_url.port, source_address=("127.0.0.2", 0), timeout=60, context=tls_context(public_url)
        )
        token = base64.b64encode(f"admin:wrong-guess-{index}".encode()).decode()
        headers = {"Host": team_services.TEAM_HOSTNAME, "Authorization": f"Basic {token}"}
        connection.request("GET", "/api/2.0/mlflow/experiments/search", headers=headers)
        status = connection.getresponse().status
        connection.close()
        return status

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=guesses) as pool:  # an attacker does not wait for one guess before the next
        flood = pool.map(guess, range(guesses))
        admin_answers = []
        for _ in range(5):  # meanwhile, the logged-in client
            response = requests.get(
                f"{public_url.url}/api/2.0/mlflow/experiments/search?max_results=1",
                auth=("admin", ADMIN_PASSWORD),
                timeout=60,
                verify=str(public_url.certificate),
            )
            admin_answers.append(response.status_code)
        statuses = list(flood)
    seconds = time.monotonic() - started

    assert set(statuses) <= {401, 429}, set(statuses)
    assert statuses.count(429) > 0, "the proxy let every guess through"
    # The guesses that reached MLflow (its 401s): no more than the burst and the rate allow.
    assert statuses.count(401) <= burst + rate * seconds + 1, (statuses.count(401), seconds)
    assert admin_answers == [200] * 5


def tls_context(public_url):
    context = ssl.create_default_context(cafile=str(public_url.certificate))
    context.check_hostname = False  # connected by address; the name is checked in the other tests
    return context


@pytest.fixture
def uncached_team_server(team_server):
    """The same team server, on the same data, without the login cache: a changed password takes effect at once."""
    server = TeamServer(team_server.postgres, team_server.s3, team_server.folder, cached_logins=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_admin_changes_their_password_with_the_readme_command(uncached_team_server, team_ca, tmp_path):
    team_server = uncached_team_server

    def can_log_in(password: str) -> bool:
        url = f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        return requests.get(url, auth=("admin", password), timeout=10).status_code == 200

    new_password = "test-only-new-admin-password"
    command = CHANGE_ADMIN_PASSWORD.replace("OLD_PASSWORD", ADMIN_PASSWORD).replace("NEW_PASSWORD", new_password)
    try:
        with team_services.running_tls_proxy(tmp_path, team_server.port, team_ca) as proxy:
            result = curl_through_proxy(command, proxy.port, team_ca.certificate)
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


def shell_env() -> dict:
    """A terminal on the team's machine: the venv's commands (aws, mlflow) and PostgreSQL's on PATH."""
    path = f"{team_services.postgres_bin_dir()}{os.pathsep}{os.environ['PATH']}"
    return with_venv_on_path({**os.environ, "PATH": path})


@dataclass
class Restored:
    before: dict  # the team server's state when it was backed up
    postgres: team_services.Postgres
    s3: team_services.S3Store
    folder: Path


@pytest.fixture(scope="module")
def restored(team_server, guide_steps, reader, admin, tmp_path_factory) -> Restored:
    """The page's backup, from deploy/ with .env read into the shell, and its restore on a new PostgreSQL cluster and
    a new S3 store: both dumps and `aws s3 sync` out; a new cluster started without waiting, as `docker compose up
    -d postgres` leaves it, the page's wait, the two restores and `aws s3 sync` back in."""
    before = snapshot(team_server.client())
    old = team_services.deploy_folder(tmp_path_factory.mktemp("deploy-old"), team_server.s3)
    env = {**team_server.postgres.client_env(), **shell_env()}
    dumps = {}
    for dump in (DUMP_TRACKING, DUMP_AUTH):
        dumps[dump] = subprocess.run(shlex.split(dump), env=env, capture_output=True, check=True, timeout=120).stdout
    backup = team_services.page_command(f"{READ_ENV}; mkdir -p backup; {BACKUP_BUCKET}", old, shell_env(), timeout=300)
    assert backup.returncode == 0
    bucket = team_services.s3_client(team_server.s3).list_objects_v2(Bucket=team_services.S3_BUCKET)["Contents"]
    copied = {path.relative_to(old / "backup" / "artifacts").as_posix() for path in (old / "backup").rglob("*")}
    assert len(bucket) > 10 and {item["Key"] for item in bucket} <= copied  # the guide's models and plots, all

    folder = tmp_path_factory.mktemp("restored")
    with (
        team_services.running_postgres(team_server.postgres.bin_dir, wait=False) as new_postgres,
        team_services.running_s3(folder) as new_s3,
    ):
        new = team_services.deploy_folder(folder / "deploy", new_s3)
        new_env = {**new_postgres.client_env(), "MLFLOW_DB_PASSWORD": MLFLOW_DB_PASSWORD, "POSTGRES_USER": "postgres"}
        wait = team_services.page_command(f"until {WAIT_FOR_POSTGRES}; do sleep 1; done", new, new_env, timeout=60)
        assert wait.returncode == 0
        # The new cluster's first start, as the postgres image does it: the role and two empty databases.
        subprocess.run(["sh", REPO / "deploy" / "create-mlflow-databases.sh"], env=new_env, check=True, timeout=60)
        for restore, dump in ((RESTORE_TRACKING, DUMP_TRACKING), (RESTORE_AUTH, DUMP_AUTH)):
            subprocess.run(shlex.split(restore), env=new_env, input=dumps[dump], check=True, timeout=120)
        shutil.copytree(old / "backup", new / "backup")
        sync = team_services.page_command(f"{READ_ENV}; {RESTORE_BUCKET}", new, shell_env(), timeout=300)
        assert sync.returncode == 0
        yield Restored(before, new_postgres, new_s3, folder)


def assert_everything_is_there(server: "TeamServer", restored: Restored, reader, monkeypatch) -> None:
    """Every run, param, metric, artifact, version and @champion; alice's login; the champion's files."""
    import mlflow

    assert snapshot(server.client()) == restored.before
    users = f"{server.url}/api/2.0/mlflow/users/get"
    assert requests.get(users, params={"username": "alice"}, auth=reader, timeout=30).ok
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")  # its files, from the new bucket
    assert champion.predict(champion.input_example).tolist() == [0, 0, 1, 0, 0]


def test_a_backup_restores_into_a_new_cluster_and_bucket_with_everything(restored, reader, monkeypatch):
    """The runbook of docs/team-server.md: dump both databases, copy the bucket, restore them on new services."""
    # One worker: this server answers one client's checks, and starts in less time than four.
    server = TeamServer(restored.postgres, restored.s3, restored.folder, workers=1)
    server.start()
    try:
        assert_everything_is_there(server, restored, reader, monkeypatch)
    finally:
        server.stop()


def schema_revision(postgres: team_services.Postgres) -> str:
    import psycopg

    with psycopg.connect(postgres.url("mlflow", user="mlflow"), password=MLFLOW_DB_PASSWORD) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_an_upgrade_migrates_an_older_schema_and_keeps_everything(restored, reader, monkeypatch):
    """The page's upgrade, after its backup, on the restored database with MLflow's newest migration undone (alembic's
    downgrade): the schema the release before this one left. `mlflow db upgrade` migrates it once, before any server
    starts, and runs, versions, aliases and users are all there."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    monkeypatch.setenv("PGPASSWORD", MLFLOW_DB_PASSWORD)
    config = _get_alembic_config(restored.postgres.url("mlflow", user="mlflow"))
    newest = ScriptDirectory.from_config(config).get_current_head()
    command.downgrade(config, "-1")
    assert schema_revision(restored.postgres) != newest
    server = TeamServer(restored.postgres, restored.s3, restored.folder, workers=1)
    upgrade = UPGRADE_DATABASE.replace("postgres:5432", f"127.0.0.1:{restored.postgres.port}")

    result = subprocess.run(shlex.split(upgrade), env=server.env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    assert schema_revision(restored.postgres) == newest
    server.start()
    try:
        assert_everything_is_there(server, restored, reader, monkeypatch)
    finally:
        server.stop()


def served_certificate(port: int) -> bytes:
    """The certificate the proxy presents to a client that asks for the team's name."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # read it, whoever signed it
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=team_services.TEAM_HOSTNAME) as tls:
            return tls.getpeercert(binary_form=True)


def test_certbots_challenge_is_served_on_port_80_and_everything_else_goes_to_https(public_url):
    """certbot --webroot writes a file under certbot-webroot/.well-known/acme-challenge/; Let's Encrypt fetches it over
    plain HTTP while the proxy holds port 80."""
    challenges = public_url.proxy.folder / "certbot-webroot" / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True, exist_ok=True)
    (challenges / "a-token").write_text("a-token.the-account-key-thumbprint")
    plain = f"http://127.0.0.1:{public_url.proxy.plain_port}"
    host = {"Host": team_services.TEAM_HOSTNAME}

    challenge = requests.get(f"{plain}/.well-known/acme-challenge/a-token", headers=host, timeout=10)
    other = requests.get(f"{plain}/api/2.0/mlflow/experiments/search", headers=host, timeout=10, allow_redirects=False)

    assert (challenge.status_code, challenge.text) == (200, "a-token.the-account-key-thumbprint")
    assert other.status_code == 301
    assert other.headers["Location"] == f"{DOCUMENTED_URL}/api/2.0/mlflow/experiments/search"


def test_a_renewed_certificate_is_served_after_the_deploy_hook(team_server, public_url, team_ca, admin, tmp_path):
    """The page's renewal: certbot's deploy hook, deploy/renew-certificate.sh as it ships, in the proxy's copy of
    deploy/, with a certificate renewed where certbot puts one, and the running nginx's own reload command in place of
    `docker compose exec proxy nginx -s reload`. A proxy of its own, which no other test's traffic keeps busy."""
    with team_services.running_tls_proxy(tmp_path / "proxy", team_server.port, team_ca) as proxy:
        renew_and_check(proxy, team_ca, tmp_path)


def renew_and_check(proxy: team_services.Proxy, team_ca, tmp_path: Path) -> None:
    before = served_certificate(proxy.port)
    renewed_lineage = tmp_path / "letsencrypt-live"
    team_ca.issue(renewed_lineage)
    shutil.copy(REPO / "deploy" / "renew-certificate.sh", proxy.folder)
    env = {**os.environ, "RENEWED_LINEAGE": str(renewed_lineage), "RELOAD_PROXY": proxy.reload_command()}

    result = subprocess.run(["sh", proxy.folder / "renew-certificate.sh"], env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    new = ssl.PEM_cert_to_DER_cert(
        (renewed_lineage / "fullchain.pem").read_text().split("-----END CERTIFICATE-----")[0]
        + "-----END CERTIFICATE-----\n"
    )
    assert new != before
    # nginx's new worker takes the new files at once; the old one finishes what it was doing, then exits. From then
    # on, every new connection gets the new certificate: ten in a row, within a minute.
    seen, in_a_row, deadline = [], 0, time.monotonic() + 60
    while in_a_row < 10 and time.monotonic() < deadline:
        served = served_certificate(proxy.port)
        seen.append("new" if served == new else "old" if served == before else "other")
        in_a_row = in_a_row + 1 if served == new else 0
        time.sleep(0.1)
    errors = [line for line in (proxy.folder / "nginx-error.log").read_text().splitlines() if "limiting" not in line]
    assert in_a_row == 10, f"served: {seen[-30:]}\n" + "\n".join(errors[-12:])
    assert (proxy.folder / "certs" / "privkey.pem").stat().st_mode & 0o077 == 0  # the key, for its owner only
    login = ("admin", ADMIN_PASSWORD)
    search = f"{DOCUMENTED_URL}:{proxy.port}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, auth=login, timeout=30, verify=str(team_ca.certificate)).status_code == 200


def test_a_user_is_added_and_removed_with_the_pages_commands(team_server, public_url, guide_steps):
    def user_exists() -> bool:
        answer = api(team_server, "GET", "users/get", ("admin", ADMIN_PASSWORD), params={"username": "carol"})
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200

    def run(command: str) -> None:
        command = command.replace("alice", "carol").replace("ADMIN_PASSWORD", ADMIN_PASSWORD)
        result = curl_through_proxy(
            command.replace("USER_PASSWORD", READER_PASSWORD), public_url.port, public_url.certificate
        )
        assert result.returncode == 0, result.stderr

    run(CREATE_USER)
    assert user_exists()
    run(DELETE_USER)
    assert not user_exists()


def flood(port: int, certificate: Path, requests_sent: int) -> list[int]:
    """`requests_sent` requests at once from another loopback address (127.0.0.3): the statuses the proxy answers."""
    context = ssl.create_default_context(cafile=str(certificate))
    context.check_hostname = False

    def one(_: int) -> int:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, source_address=("127.0.0.3", 0), timeout=60, context=context
        )
        connection.request("GET", "/health", headers={"Host": team_services.TEAM_HOSTNAME})
        status = connection.getresponse().status
        connection.close()
        return status

    with ThreadPoolExecutor(max_workers=requests_sent) as pool:
        return list(pool.map(one, range(requests_sent)))


def test_a_team_behind_one_address_raises_the_limit_in_env(team_server, public_url, team_ca, tmp_path):
    """The same burst from one address: the shipped 10 a second in bursts of 40 answers part of it with 429; the
    page's numbers for 20 people behind one NAT, set in .env, let all of it through."""
    burst = 100
    shipped = flood(public_url.port, team_ca.certificate, burst)
    raised = {"MLFLOW_RATE_PER_ADDRESS": "100", "MLFLOW_BURST_PER_ADDRESS": "400"}
    with team_services.running_tls_proxy(tmp_path, team_server.port, team_ca, **raised) as proxy:
        after = flood(proxy.port, team_ca.certificate, burst)
    assert shipped.count(429) > 0 and set(shipped) <= {200, 429}
    assert after == [200] * burst
