"""Serving: `mlflow models serve` puts the champion behind a REST API. Tested over real HTTP."""

import json
import shlex
import subprocess
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest
from conftest import REPO, SECONDS_NOT_MINUTES, run_command, step_env
from expected_state import MODEL_NAME
from guide_commands import MAKE_SERVE, MAKE_SERVE_VERSION, PING, PREDICT_DATAFRAME_SPLIT, PREDICT_INPUTS, SERVE, on_port
from sklearn.datasets import load_iris

from maintainer.scoring_load import run_load
from tutorial import run, server_process

IRIS = load_iris(as_frame=True).frame.drop(columns="target")
ALL_FLOWERS = IRIS.to_numpy().tolist()


@pytest.fixture(scope="module")
def scoring_server(tracking_server, notebook_run, tmp_path_factory) -> str:
    """The README's `mlflow models serve` command, on a free port, as its own process group."""
    port = server_process.free_port()
    log_file = tmp_path_factory.mktemp("scoring-server") / "serve.log"
    server = server_process.start(
        shlex.split(on_port(SERVE, port)), log_file, cwd=REPO, env=step_env(tracking_server.url)
    )
    try:
        server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/ping", log_file)
        yield f"http://127.0.0.1:{port}"
    finally:
        server_process.stop(server)


@pytest.fixture(scope="module")
def champion(tracking_server, notebook_run):
    """The same model, loaded in this process: what the server's answers must equal."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
        return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_ping_answers(scoring_server):
    result = subprocess.run(shlex.split(on_port(PING, port_of(scoring_server))), capture_output=True, text=True)
    assert result.stdout.startswith("HTTP/1.1 200 OK"), result.stdout + result.stderr


def readme_rows(command: str) -> list[list[float]]:
    """The flowers a README `curl` command sends, read from its JSON body."""
    body = json.loads(shlex.split(command)[-1])
    return body["inputs"] if "inputs" in body else body["dataframe_split"]["data"]


@pytest.mark.parametrize("command", [PREDICT_INPUTS, PREDICT_DATAFRAME_SPLIT], ids=["inputs", "dataframe_split"])
def test_readme_curl_commands_return_the_champions_predictions(scoring_server, champion, command):
    result = subprocess.run(shlex.split(on_port(command, port_of(scoring_server))), capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    # The README's own flowers, predicted here by the champion, and the answer the README shows: [0, 2].
    expected = champion.predict(np.array(readme_rows(command))).tolist()
    assert json.loads(result.stdout) == {"predictions": expected}
    assert expected == [0, 2]  # a setosa and a virginica, as the README says


@pytest.mark.parametrize("payload_format", ["inputs", "dataframe_split"])
def test_predictions_over_http_equal_pyfunc_predictions(scoring_server, champion, payload_format):
    """All 150 iris flowers, in one request."""
    if payload_format == "inputs":
        payload = {"inputs": IRIS.to_numpy().tolist()}
    else:
        payload = {"dataframe_split": IRIS.to_dict(orient="split", index=False)}
    status, answer = post(f"{scoring_server}/invocations", json.dumps(payload).encode())
    assert status == 200, answer
    assert answer["predictions"] == champion.predict(IRIS.to_numpy()).tolist()
    assert set(answer["predictions"]) == {0, 1, 2}


@pytest.mark.parametrize(
    "body, expected_message",
    [
        (b'{"inputs": [[5.1, 3.5, 1.4', "valid JSON"),  # malformed JSON
        (b'{"inputs": [[5.1, 3.5, 1.4]]}', "does not match expected shape"),  # 3 features instead of 4
        (b"", "valid JSON"),  # empty body
    ],
    ids=["malformed-json", "three-features", "empty-body"],
)
def test_bad_requests_get_a_readable_400_and_the_server_keeps_serving(scoring_server, body, expected_message):
    status, answer = post(f"{scoring_server}/invocations", body)
    assert status == 400, answer
    assert expected_message in answer["message"]
    status, answer = post(f"{scoring_server}/invocations", b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}')
    assert (status, answer) == (200, {"predictions": [0]})


def test_four_clients_send_2000_requests_without_an_error(scoring_server):
    virginica = {"inputs": [[6.7, 3.0, 5.2, 2.3]]}
    result = run_load(f"{scoring_server}/invocations", virginica, clients=4, total_requests=2000)
    assert result.errors == 0, result.first_error
    assert len(result.latencies_ms) == 2000
    print(f"\n4 clients: {result.requests_per_second:.0f} req/s, p99 {result.percentile_ms(99):.1f} ms")


def predictions_from_make_serve(command: str, tracking_server, port: int, log_file) -> list:
    """Run a `make serve` command, and ask it for all 150 flowers at once."""
    server = server_process.start(shlex.split(command), log_file, cwd=REPO, env=step_env(tracking_server.url))
    try:
        server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/ping", log_file)
        status, answer = post(f"http://127.0.0.1:{port}/invocations", json.dumps({"inputs": ALL_FLOWERS}).encode())
        assert status == 200, answer
        return answer["predictions"]
    finally:
        server_process.stop(server)


def test_the_tutorials_hint_serves_the_champion_on_the_next_port(tracking_server, champion, capsys, tmp_path):
    """The macOS path: `make tutorial PORT=5001` (AirPlay holds 5000), then the `make serve` line it prints."""
    tracking_port = port_of(tracking_server.url)
    run.print_next_steps(tracking_server.url, keep_server=True)
    [hint] = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith(MAKE_SERVE)]
    command, comment = hint.split("#")
    assert shlex.split(command) == [*shlex.split(MAKE_SERVE), f"PORT={tracking_port}"]  # no other switch
    serve_port = int(comment.rsplit(" ", 1)[1])
    assert serve_port == tracking_port + 1

    served = predictions_from_make_serve(command, tracking_server, serve_port, tmp_path / "make-serve.log")

    assert served == champion.predict(np.array(ALL_FLOWERS)).tolist()


def test_make_serve_model_serves_that_version(tracking_server, champion, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    version_2 = mlflow.pyfunc.load_model(MAKE_SERVE_VERSION.split("MODEL=")[1])
    expected = version_2.predict(np.array(ALL_FLOWERS)).tolist()
    assert expected != champion.predict(np.array(ALL_FLOWERS)).tolist()  # one flower tells them apart
    port = server_process.free_port()
    command = f"{MAKE_SERVE_VERSION} PORT={port_of(tracking_server.url)} SERVE_PORT={port}"

    assert predictions_from_make_serve(command, tracking_server, port, tmp_path / "make-serve.log") == expected


@pytest.mark.parametrize(
    "make_arguments, expected_message",
    [
        (["PORT={free_port}"], "no MLflow tracking server answers"),
        (["PORT={tracking_port}", "MODEL=models:/tracking-iris-lr@no-such-alias"], "alias no-such-alias not found"),
        (["PORT={tracking_port}", "SERVE_PORT={tracking_port}"], "is the tracking server's"),
    ],
    ids=["no-tracking-server", "unknown-alias", "serve-port-is-the-tracking-port"],
)
def test_make_serve_says_what_is_missing_in_one_line(tracking_server, notebook_run, make_arguments, expected_message):
    ports = {"free_port": server_process.free_port(), "tracking_port": port_of(tracking_server.url)}
    command = " ".join([MAKE_SERVE, *(argument.format(**ports) for argument in make_arguments)])
    started = time.monotonic()
    result = run_command(command, tracking_server.url, timeout=60)
    assert time.monotonic() - started < SECONDS_NOT_MINUTES
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert expected_message in error
