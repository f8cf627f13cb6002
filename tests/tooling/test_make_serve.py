"""`make serve`: the README's serving command, on the port after the tracking server's, for the model you choose;
and its one-line errors, in seconds."""

import shlex
import socket
import time

import mlflow
import pytest
from guide_commands import MAKE_SERVE, MAKE_SERVE_VERSION
from helpers import REPO, SECONDS_NOT_MINUTES, dataframe_split, port_of, post_json, run_command, step_env
from sklearn.datasets import load_iris

from tutorial import run, server_process
from tutorial.names import MODEL_NAME

# The 150 iris flowers' measurements: the champion and version 2 disagree on one of them, so a server asked for all of
# them tells the two apart.
ALL_FLOWERS = load_iris(as_frame=True).data


def predictions_from_make_serve(command: str, tracking_server, port: int, log_file) -> list:
    """Run a `make serve` command, and ask it for all 150 flowers at once."""
    server = server_process.start(shlex.split(command), log_file, cwd=REPO, env=step_env(tracking_server.url))
    try:
        server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/ping", log_file)
        status, answer = post_json(f"http://127.0.0.1:{port}/invocations", dataframe_split(ALL_FLOWERS))
        assert status == 200, answer
        return answer["predictions"]
    finally:
        server_process.stop(server)


def test_the_tutorials_hint_serves_the_champion_on_the_next_port(
    tracking_server, champion, capsys, tmp_path, monkeypatch
):
    """The macOS path: `make tutorial PORT=5001` (AirPlay holds 5000), then the `make serve` line it prints."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    expected = champion.predict(ALL_FLOWERS).tolist()
    for version in ("1", "2"):  # the other versions: a server of either would not pass
        assert mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}").predict(ALL_FLOWERS).tolist() != expected
    tracking_port = port_of(tracking_server.url)
    run.print_next_steps(tracking_server.url, keep_server=True)
    [hint] = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith(MAKE_SERVE)]
    command, comment = hint.split("#")
    assert shlex.split(command) == [*shlex.split(MAKE_SERVE), f"PORT={tracking_port}"]  # no other switch
    serve_port = int(comment.rsplit(" ", 1)[1])
    assert serve_port == tracking_port + 1

    served = predictions_from_make_serve(command, tracking_server, serve_port, tmp_path / "make-serve.log")

    assert served == expected


def test_make_serve_model_serves_that_version(tracking_server, champion, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    version_2 = mlflow.pyfunc.load_model(MAKE_SERVE_VERSION.split("MODEL=")[1])
    expected = version_2.predict(ALL_FLOWERS).tolist()
    assert expected != champion.predict(ALL_FLOWERS).tolist()  # one flower tells them apart
    port = server_process.free_port()
    command = f"{MAKE_SERVE_VERSION} PORT={port_of(tracking_server.url)} SERVE_PORT={port}"

    assert predictions_from_make_serve(command, tracking_server, port, tmp_path / "make-serve.log") == expected


@pytest.mark.parametrize(
    "make_arguments, expected_message",
    [
        (["PORT={free_port}"], "no MLflow tracking server answers"),
        # No PORT=: `make serve` asks the server that MLFLOW_TRACKING_URI names, as the other targets do.
        (["MODEL=models:/tracking-iris-lr@no-such-alias"], "alias no-such-alias not found"),
        (["PORT={tracking_port}", "SERVE_PORT={tracking_port}"], "is the tracking server's"),
        (["PORT={tracking_port}", "SERVE_PORT={busy_port}"], "port {busy_port} is already in use"),
        (["MODEL=runs:/0123/model"], "runs:/0123/model is not a registry URI: use models:/<name>@<alias>"),
    ],
    ids=["no-tracking-server", "unknown-alias", "serve-port-is-the-tracking-port", "busy-serving-port", "run-uri"],
)
def test_make_serve_says_what_is_missing_in_one_line(tracking_server, notebook_run, make_arguments, expected_message):
    with socket.create_server(("127.0.0.1", 0)) as busy:  # another program listens there
        ports = {
            "free_port": server_process.free_port(),
            "tracking_port": port_of(tracking_server.url),
            "busy_port": busy.getsockname()[1],
        }
        command = " ".join([MAKE_SERVE, *(argument.format(**ports) for argument in make_arguments)])
        started = time.monotonic()
        # MLFLOW_TRACKING_URI names the server on PORT, as in a terminal where step 8's export was typed for that port.
        no_server = "{free_port}" in make_arguments[0]
        result = run_command(command, f"http://127.0.0.1:{ports['free_port']}" if no_server else tracking_server.url)
    expected_message = expected_message.format(**ports)
    assert time.monotonic() - started < SECONDS_NOT_MINUTES
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert expected_message in error
