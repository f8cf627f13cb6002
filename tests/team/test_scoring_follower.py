"""The scoring service that follows @champion (docs/serving.md), with real processes on loopback: the page's tracking
server with webhooks on (2 workers, logins as on the team server), nginx, two `mlflow models serve` and the follower.

Version 3, the champion, calls the setosa of the requests 0; the model unlike the champion, registered here as another
version of tracking-iris-lr, calls it 2. So every answer says which version produced it, whatever its header says.
"""

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
import uuid
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from guide_commands import (
    CREATE_WEBHOOK,
    FOLLOW_CHAMPION,
    MOVE_CHAMPION,
    SCORE_THROUGH_PROXY,
    WEBHOOK_KEY,
    WEBHOOK_SECRET,
    WEBHOOK_SERVER,
)
from helpers import REPO, STRICT_WARNINGS, assert_one_line_error, copy_the_data, missing_service
from mlflow import MlflowClient
from team_services import nginx_binary, page_command

from maintainer.scoring_load import LoadResult, run_load
from maintainer.tracking_server import SERVER_SETTINGS
from tutorial import server_process
from tutorial.names import FEATURES, MODEL_NAME
from tutorial.venv import VENV_BIN, with_venv_on_path

pytestmark = pytest.mark.xdist_group("scoring-follower")  # one worker: the tests share the module's service

ADMIN = ("admin", "test-only-admin-password")
FOLLOWER_LOGIN = ("scoring", "test-only-scoring-password")
POLL_SECONDS = 2  # --poll-seconds: the page keeps the default, 5; shorter here, for a shorter suite
WEBHOOK_CACHE_SECONDS = 5  # MLFLOW_WEBHOOK_CACHE_TTL in the page's command
SETOSA = {"dataframe_split": {"columns": FEATURES, "data": [[5.1, 3.5, 1.4, 0.2]]}}
# Two clients, each sending 50 requests a second without pause: a busy service that still leaves this machine's two
# cores the room to start an instance. Flat out, they would only measure how CPU-starved a start can get.
CLIENTS, RATE = 2, 50


@dataclass
class Service:
    tracking_url: str
    proxy_url: str
    webhook_url: str
    ports: list[int]  # the proxy's, blue's, green's and the webhook listener's
    follower: subprocess.Popen
    log: Path
    secret: str  # the webhook's
    answers: dict  # version -> the predictions it gives the setosa, as JSON
    champion: str
    unlike: str
    broken: str
    fails_the_gate: str

    def admin(self) -> MlflowClient:
        return MlflowClient(self.tracking_url, self.tracking_url)


def as_admin(command: str, service_port: int) -> str:
    """A curl command of the page against this server, with the admin's login, failing on an HTTP error."""
    return command.replace("curl ", f"curl -sS --fail-with-body -u {ADMIN[0]}:{ADMIN[1]} ", 1).replace(
        "127.0.0.1:5000", f"127.0.0.1:{service_port}"
    )


@contextmanager
def logged_in(login: tuple[str, str]) -> Iterator[None]:
    """MLflow's clients in this process log in as `login` (MLFLOW_TRACKING_USERNAME and _PASSWORD)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", login[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", login[1])
        yield


def served_version(service: Service) -> str:
    answer = requests.post(f"{service.proxy_url}/invocations", json=SETOSA, timeout=10)
    answer.raise_for_status()
    return answer.headers["X-Model-Version"]


def deployments(service: Service) -> list:
    """The follower's records, oldest first."""
    client = service.admin()
    with logged_in(ADMIN):
        experiment = client.get_experiment_by_name("Deployments")
        if experiment is None:
            return []  # the follower makes it as it starts
        # The follower's runs once it has ended them: a switch's, or a failure's with its error.
        finished = "attributes.status != 'RUNNING'"
        return client.search_runs([experiment.experiment_id], finished, order_by=["attributes.start_time ASC"])


def registered_with_a_broken_file(client: MlflowClient, root: Path) -> str:
    """A new version of the model whose MLmodel file is broken on the server's disk: it cannot load."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    with mlflow.start_run(experiment_id=client.create_experiment("broken-model")):
        info = mlflow.sklearn.log_model(
            DummyClassifier().fit([[0.0] * 4], [0]),
            name="broken",
            pip_requirements=["scikit-learn"],
            registered_model_name=MODEL_NAME,
        )
    folder = client.get_model_version_download_uri(MODEL_NAME, info.registered_model_version)
    (root / "mlartifacts" / folder.removeprefix("mlflow-artifacts:/") / "MLmodel").write_text("not: [an MLmodel")
    return info.registered_model_version


# A model that answers otherwise when served than when loaded, as a model whose serving environment differs would.
SERVED_DIFFERENTLY = """
import sys

import mlflow


class ServedDifferently(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return [1 if "uvicorn" in sys.modules else 0] * len(model_input)


mlflow.models.set_model(ServedDifferently())
"""


def registered_to_fail_the_gate(client: MlflowClient, root: Path) -> str:
    """A new version that starts and answers, but not what it predicts when loaded: the gate must stop it."""
    import mlflow
    from sklearn.datasets import load_iris

    code = root / "served_differently.py"
    code.write_text(SERVED_DIFFERENTLY)
    with mlflow.start_run(experiment_id=client.create_experiment("fails-the-gate")):
        info = mlflow.pyfunc.log_model(
            name="served_differently", python_model=str(code), input_example=load_iris(as_frame=True).data[:5],
            pip_requirements=["mlflow"], registered_model_name=MODEL_NAME,
        )  # fmt: skip
    return info.registered_model_version


@pytest.fixture(scope="module")
def service(tracking_server, notebook_run, unlike_the_champion, tmp_path_factory) -> Service:
    if nginx_binary() is None:
        missing_service("no nginx: install Debian's `nginx` package")
    root = tmp_path_factory.mktemp("scoring-follower")
    copy_the_data(tracking_server.root, root)  # the notebook's runs and versions, and the unlike model
    env = with_venv_on_path({**os.environ, **SERVER_SETTINGS})
    page_command(WEBHOOK_KEY, root, env, check=True)
    auth_config = root / "basic_auth.ini"
    auth_config.write_text(
        (REPO / "deploy" / "basic_auth.ini")
        .read_text()
        .replace("postgresql://mlflow@postgres:5432/mlflow_auth", f"sqlite:///{root}/basic_auth.db")
    )
    auth_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-secret-key",
    }
    port, proxy, blue, green, webhook = (server_process.free_port() for _ in range(5))
    # The page's command on a free port, with the team server's logins (deploy/basic_auth.ini).
    command = f"{WEBHOOK_SERVER} --port {port} --app-name basic-auth"
    server = server_process.start(["bash", "-c", command], root / "server.log", cwd=root, env={**env, **auth_env})
    follower = None
    try:
        tracking_url = f"http://127.0.0.1:{port}"
        server_process.wait_until_healthy(server, f"{tracking_url}/health", root / "server.log")
        login = {"username": FOLLOWER_LOGIN[0], "password": FOLLOWER_LOGIN[1]}
        created = requests.post(f"{tracking_url}/api/2.0/mlflow/users/create", json=login, auth=ADMIN, timeout=30)
        assert created.status_code == 200, created.text
        webhook_command = as_admin(CREATE_WEBHOOK, port).replace("127.0.0.1:8090", f"127.0.0.1:{webhook}")
        # The page's secret and webhook, in one shell as in the reader's terminal; the secret, for the follower.
        made = f'{WEBHOOK_SECRET} && {webhook_command} > /dev/null && echo "$FOLLOWER_WEBHOOK_SECRET"'
        secret = page_command(made, root, env, check=True, capture_output=True).stdout.strip()
        assert len(secret) == 64, secret
        client = MlflowClient(tracking_url, tracking_url)
        # MLflow's fluent API (log_model) finds the server in the environment: set_tracking_uri() would outlast
        # this module and send the worker's later tests to a server that is gone.
        with logged_in(ADMIN), pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", tracking_url)
            champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
            unlike = client.create_model_version(
                MODEL_NAME, unlike_the_champion.artifact_location, model_id=unlike_the_champion.model_id
            ).version
            broken = registered_with_a_broken_file(client, root)
            fails_the_gate = registered_to_fail_the_gate(client, root)
        follower_command = FOLLOW_CHAMPION.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        follower_command += f" --listen 127.0.0.1:{proxy} --ports {blue},{green} --webhook-listen 127.0.0.1:{webhook}"
        follower_command += f" --folder {root / 'scoring'} --poll-seconds {POLL_SECONDS}"
        follower_env = {
            **env,
            "FOLLOWER_WEBHOOK_SECRET": secret,
            "PYTHONWARNINGS": STRICT_WARNINGS,  # our code: no DeprecationWarning or FutureWarning
            **dict(zip(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"), FOLLOWER_LOGIN, strict=True)),
        }
        log = root / "follower.log"
        follower = server_process.start(["bash", "-c", follower_command], log, cwd=REPO, env=follower_env)
        service = Service(
            tracking_url=tracking_url,
            proxy_url=f"http://127.0.0.1:{proxy}",
            webhook_url=f"http://127.0.0.1:{webhook}/webhook",
            ports=[proxy, blue, green, webhook],
            follower=follower,
            log=log,
            secret=secret,
            answers={champion.version: "[0]", unlike: "[2]"},
            champion=champion.version,
            unlike=unlike,
            broken=broken,
            fails_the_gate=fails_the_gate,
        )
        wait_for_a_new_record(service, 0)  # the follower's first: none -> the champion
        assert served_version(service) == champion.version
        yield service
    finally:
        if follower is not None:
            server_process.stop(follower)
        server_process.stop(server)


def move_champion(service: Service, version: str) -> float:
    """The page's rollback command, to `version`; when it returned."""
    command = as_admin(MOVE_CHAMPION, int(service.tracking_url.rsplit(":", 1)[1]))
    page_command(
        command.replace('"version": "2"', f'"version": "{version}"'), REPO, os.environ, check=True, capture_output=True
    )
    return time.time()


def wait_for_a_new_record(service: Service, records: int, timeout: float = 90) -> None:
    """Until the follower has recorded one more attempt than `records`: it records a switch once it is complete."""
    deadline = time.monotonic() + timeout
    while len(deployments(service)) == records:
        assert service.follower.poll() is None, server_process.tail(service.log, 30)
        assert time.monotonic() < deadline, (
            f"nothing recorded after {timeout} s:\n{server_process.tail(service.log, 30)}"
        )
        time.sleep(0.2)


def switch_there_and_back(service: Service) -> list[tuple[float, str, str]]:
    """Move @champion to the unlike version and back, each once the last switch is complete; (moved, from, to)."""
    moves = []
    for old, new in ((service.champion, service.unlike), (service.unlike, service.champion)):
        records = len(deployments(service))
        moves.append((move_champion(service, new), old, new))
        wait_for_a_new_record(service, records)
        time.sleep(0.5)  # answers after the switch, too
    return moves


def there_and_back_under_load(service: Service, keep_alive: bool) -> tuple[LoadResult, list]:
    """The clients' answers while @champion goes to the unlike version and back; the moves. Keep-alive clients
    retry once on a connection reset before any answer, as the page tells a team's clients to."""
    moves = []
    result = run_load(
        f"{service.proxy_url}/invocations",
        SETOSA,
        CLIENTS,
        200_000,  # a bound; the clients stop once both switches are done
        keep_alive=keep_alive,
        retry_once=keep_alive,
        rate=RATE,
        during=lambda: moves.extend(switch_there_and_back(service)),
    )
    return result, moves


def assert_no_request_failed_and_each_switch_held(
    service: Service, result: LoadResult, moves: list, reaction_bound: float
) -> list[float]:
    """The checks of a switch under load; the seconds from each alias move to the last answer of the old version."""
    assert result.errors == 0, f"{result.errors} of {result.requests} requests failed: {result.first_error}"
    assert len(result.answers) > 100, "the clients sent too few requests to show anything"
    wrong = [
        (version, body)
        for _, version, body, _ in result.answers
        if json.loads(body)["predictions"] != json.loads(service.answers[version])
    ]
    assert not wrong, f"answers whose version header does not match their predictions: {wrong[:5]}"
    records = deployments(service)[-len(moves) :]
    switch_seconds = []
    next_moves = [moved for moved, _, _ in moves[1:]] + [float("inf")]
    for (moved, old, new), record, next_move in zip(moves, records, next_moves, strict=True):
        assert (record.data.tags["from_version"], record.data.tags["to_version"]) == (old, new)
        completed = record.info.start_time / 1000  # the follower records a switch once the old colour is stopped
        late = [when for when, version, _, _ in result.answers if completed < when < next_move and version != new]
        assert not late, f"version {old} still answered {len(late)} times after the switch to {new} completed"
        last_old = max(when for when, version, _, _ in result.answers if version == old and moved < when < completed)
        switch_seconds.append(last_old - moved)
        # How long the follower took to act, beyond the rollout it recorded (starting, gating, switching).
        reaction = last_old - moved - record.data.metrics["rollout_seconds"]
        assert reaction <= reaction_bound, (reaction, record.data.tags["reason"])
    return switch_seconds


@pytest.mark.parametrize("mistake", ["no MLFLOW_TRACKING_URI", "no server at it", "no nginx on the PATH"])
def test_a_follower_started_wrong_says_why_in_one_line(mistake, tracking_server):
    env = {**with_venv_on_path(dict(os.environ)), "MLFLOW_TRACKING_URI": tracking_server.url}
    expected = {
        "no MLFLOW_TRACKING_URI": "set MLFLOW_TRACKING_URI to the tracking server's address",
        "no server at it": "no tracking server answers at http://127.0.0.1:",
        "no nginx on the PATH": "no nginx on the PATH: install it",
    }[mistake]
    if mistake == "no MLFLOW_TRACKING_URI":
        del env["MLFLOW_TRACKING_URI"]
    elif mistake == "no server at it":
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{server_process.free_port()}"
    else:
        env["PATH"] = f"{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"  # Debian's nginx is in /usr/sbin
        assert shutil.which("nginx", path=env["PATH"]) is None
    result = subprocess.run(
        [str(VENV_BIN / "python"), "deploy/follower.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert_one_line_error(result, expected)


def test_the_follower_may_read_the_model_but_not_move_its_alias(service):
    with logged_in(FOLLOWER_LOGIN):
        client = MlflowClient(service.tracking_url, service.tracking_url)
        assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == service.champion
        with pytest.raises(Exception, match="403"):
            client.set_registered_model_alias(MODEL_NAME, "champion", service.unlike)


def test_the_pages_request_gets_the_champions_answer_and_its_version(service):
    port = service.ports[0]
    answer = page_command(SCORE_THROUGH_PROXY.replace("8080", str(port)), REPO, os.environ, capture_output=True)
    assert answer.returncode == 0, answer.stderr
    assert f"X-Model-Version: {service.champion}" in answer.stdout
    assert answer.stdout.rstrip().endswith('{"predictions": [0]}')


def signed_delivery(body: bytes, delivery: str, stamp: int, secret: str) -> dict:
    """The headers MLflow 3 sends with a webhook: v1, a base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>"."""
    signature = hmac.digest(secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256)
    return {
        "X-MLflow-Signature": f"v1,{b64encode(signature).decode()}",
        "X-MLflow-Timestamp": str(stamp),
        "X-MLflow-Delivery-Id": delivery,
        "Content-Type": "application/json",
    }


def test_a_webhook_that_is_unsigned_stale_or_replayed_is_refused_and_changes_nothing(service):
    payload = {"entity": "model_version_alias", "action": "created"}
    body = json.dumps(
        {**payload, "data": {"name": MODEL_NAME, "alias": "champion", "version": service.unlike}}
    ).encode()
    records = len(deployments(service))
    now, delivery = int(time.time()), str(uuid.uuid4())
    refused = {
        "unsigned": {"X-MLflow-Timestamp": str(now), "X-MLflow-Delivery-Id": delivery},
        "signed with another secret": signed_delivery(body, delivery, now, "not-the-secret"),
        "an hour old": signed_delivery(body, delivery, now - 3600, service.secret),
    }
    for case, headers in refused.items():
        answer = requests.post(service.webhook_url, data=body, headers=headers, timeout=10)
        assert 400 <= answer.status_code < 500, (case, answer.status_code, answer.text)
    # A fresh, signed delivery is taken once; the same delivery id again is a replay.
    assert requests.post(
        service.webhook_url, data=body, headers=signed_delivery(body, delivery, now, service.secret), timeout=10
    ).ok
    replayed = requests.post(
        service.webhook_url, data=body, headers=signed_delivery(body, delivery, now, service.secret), timeout=10
    )
    assert replayed.status_code == 409, replayed.text
    # Another model's alias, signed and fresh: answered, and ignored.
    other = body.replace(MODEL_NAME.encode(), b"always-virginica")
    ignored = requests.post(
        service.webhook_url, data=other, headers=signed_delivery(other, "another", now, service.secret), timeout=10
    )
    assert (ignored.status_code, ignored.text) == (200, "not ours: ignored")
    time.sleep(1)  # the accepted one woke the follower, which found the alias where it was: nothing to do
    assert served_version(service) == service.champion
    assert len(deployments(service)) == records


def test_a_switch_by_webhook_under_load_drops_no_request(service):
    result, moves = there_and_back_under_load(service, keep_alive=False)
    # Acted on at once: within a second of the move, the follower was starting the version (or switching to it).
    seconds = assert_no_request_failed_and_each_switch_held(service, result, moves, reaction_bound=1)
    assert [r.data.tags["reason"] for r in deployments(service)[-2:]] == ["webhook", "webhook"]
    print(f"switch by webhook: {seconds}, {result.requests} requests")


@pytest.mark.parametrize(
    ("version", "error"),
    [("broken", "MLmodel"), ("fails_the_gate", "the gate failed: served [1, 1, 1, 1, 1]")],
    ids=["broken", "fails-the-gate"],
)
def test_a_version_that_cannot_load_or_fails_the_gate_never_takes_traffic_and_is_recorded(service, version, error):
    records, version = len(deployments(service)), getattr(service, version)
    move_champion(service, version)
    deadline = time.monotonic() + 90
    while len(deployments(service)) == records:  # every answer meanwhile comes from the champion
        assert time.monotonic() < deadline, server_process.tail(service.log, 30)
        assert served_version(service) == service.champion
        time.sleep(0.2)
    [failure] = deployments(service)[records:]
    assert failure.info.status == "FAILED"
    assert failure.data.tags["to_version"] == version and error in failure.data.tags["error"]
    assert served_version(service) == service.champion
    move_champion(service, service.champion)


def test_a_switch_by_polling_under_load_drops_no_request_with_keep_alive_clients(service):
    with logged_in(ADMIN):
        [webhook] = service.admin().list_webhooks()
        service.admin().update_webhook(webhook.webhook_id, status="DISABLED")
    time.sleep(WEBHOOK_CACHE_SECONDS + 0.5)  # until every worker of the server has seen that it is disabled
    result, moves = there_and_back_under_load(service, keep_alive=True)

    seconds = assert_no_request_failed_and_each_switch_held(service, result, moves, reaction_bound=POLL_SECONDS + 1)
    assert [r.data.tags["reason"] for r in deployments(service)[-2:]] == ["poll", "poll"]
    print(f"switch by polling: {seconds}, {result.requests} requests, {result.resets} resets retried")


def test_stopping_the_follower_stops_nginx_and_both_instances(service):
    server_process.stop(service.follower)
    assert service.follower.returncode == 0, server_process.tail(service.log, 30)
    groups = [int(line.rsplit(" ", 1)[1]) for line in service.log.read_text().splitlines() if "process group" in line]
    assert groups and not any(server_process.group_is_alive(group) for group in groups)
    assert not any(server_process.port_is_taken(port) for port in service.ports)
