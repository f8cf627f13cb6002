"""Serving: `mlflow models serve` puts the champion behind a REST API, as the README runs it. Tested over real HTTP.

`make serve`, which runs the same command, is tested in tooling/test_make_serve.py."""

import ast
import json
import shlex
import subprocess

import pandas as pd
import pytest
from guide_commands import PING, PREDICT_ANY_SHELL, PREDICT_DATAFRAME_SPLIT, PREDICT_INPUTS, SERVE, on_port
from helpers import REPO, dataframe_split, port_of, post_json, step_env
from sklearn.datasets import load_iris

from maintainer.scoring_load import run_load
from tutorial import server_process
from tutorial.names import FEATURES

pytestmark = pytest.mark.xdist_group("scoring-server")  # one worker, one scoring server

IRIS = load_iris(as_frame=True).data


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


def test_ping_answers(scoring_server):
    result = subprocess.run(shlex.split(on_port(PING, port_of(scoring_server))), capture_output=True, text=True)
    assert result.stdout.startswith("HTTP/1.1 200 OK"), result.stdout + result.stderr


def readme_rows(command: str) -> pd.DataFrame:
    """The flowers a README request sends, with their column names: the JSON body of a `curl` command, or the `json=`
    of the Python line."""
    if command.startswith("python"):
        split = ast.literal_eval(command.split("json=")[1].rsplit(").text", 1)[0])["dataframe_split"]
    else:
        split = json.loads(shlex.split(command)[-1])["dataframe_split"]
    return pd.DataFrame(split["data"], columns=split["columns"])


@pytest.mark.parametrize("command", [PREDICT_DATAFRAME_SPLIT, PREDICT_ANY_SHELL], ids=["curl", "python"])
def test_readme_requests_return_the_champions_predictions(scoring_server, champion, command):
    # The venv's `python`, as in a terminal where it is active.
    argv = shlex.split(on_port(command, port_of(scoring_server)))
    result = subprocess.run(argv, capture_output=True, timeout=60, env=step_env("http://127.0.0.1:1"))
    assert result.returncode == 0, result.stderr
    # The README's own flowers, predicted here by the champion, and the answer the README shows: [0, 2].
    rows = readme_rows(command)
    assert rows.columns.tolist() == FEATURES
    expected = champion.predict(rows).tolist()
    assert json.loads(result.stdout) == {"predictions": expected}
    assert expected == [0, 2]  # a setosa and a virginica, as the README says


def test_rows_without_names_are_refused_not_read_by_position(scoring_server):
    """under-the-hood.md's `inputs` request: a list of numbers per flower, without the features' names."""
    status, answer = post_json(f"{scoring_server}/invocations", shlex.split(PREDICT_INPUTS)[-1].encode())
    assert status == 400 and "Model is missing inputs" in answer["message"], answer


@pytest.mark.parametrize("payload_format", ["dataframe_split", "dataframe_records"])
def test_predictions_over_http_equal_pyfunc_predictions(scoring_server, champion, payload_format):
    """All 150 iris flowers, in one request."""
    orient = payload_format.removeprefix("dataframe_")
    payload = {payload_format: IRIS.to_dict(orient="split", index=False) if orient == "split" else IRIS.to_dict(orient)}
    status, answer = post_json(f"{scoring_server}/invocations", json.dumps(payload).encode())
    assert status == 200, answer
    assert answer["predictions"] == champion.predict(IRIS).tolist()
    assert set(answer["predictions"]) == {0, 1, 2}


def test_columns_in_any_order_and_an_extra_id_get_the_same_predictions(scoring_server, champion):
    """The 150 flowers with their columns reversed, after an `id` column: the names decide, not the positions."""
    expected = champion.predict(IRIS).tolist()
    reordered = IRIS[FEATURES[::-1]].assign(id=range(len(IRIS)))[["id", *FEATURES[::-1]]]
    by_position = pd.DataFrame(reordered.to_numpy()[:, 1:], columns=FEATURES)
    assert champion.predict(by_position).tolist() != expected  # read by position, they would differ

    status, answer = post_json(f"{scoring_server}/invocations", dataframe_split(reordered))

    assert status == 200, answer
    assert answer["predictions"] == expected


ONE_FLOWER = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=FEATURES)


@pytest.mark.parametrize(
    "body, expected_message",
    [
        (b'{"dataframe_split": {"columns": ["sepal length (cm)"', "valid JSON"),  # malformed JSON
        (dataframe_split(ONE_FLOWER.drop(columns="petal width (cm)")), "missing inputs ['petal width (cm)']"),
        (dataframe_split(ONE_FLOWER.astype(object).assign(**{"petal width (cm)": "wide"})), "column petal width (cm)"),
        (dataframe_split(ONE_FLOWER.assign(**{"petal width (cm)": None})), "Verify that the serialized input"),
        (b"", "valid JSON"),  # empty body
    ],
    ids=["malformed-json", "missing-column", "text-value", "empty-value", "empty-body"],
)
def test_bad_requests_get_a_readable_400_and_the_server_keeps_serving(scoring_server, body, expected_message):
    status, answer = post_json(f"{scoring_server}/invocations", body)
    assert status == 400, answer
    assert expected_message in answer["message"]
    status, answer = post_json(f"{scoring_server}/invocations", dataframe_split(ONE_FLOWER))
    assert (status, answer) == (200, {"predictions": [0]})


def test_four_clients_send_2000_requests_without_an_error(scoring_server):
    virginica = {"dataframe_split": {"columns": FEATURES, "data": [[6.7, 3.0, 5.2, 2.3]]}}
    result = run_load(f"{scoring_server}/invocations", virginica, clients=4, total_requests=2000)
    assert result.errors == 0, result.first_error
    assert len(result.latencies_ms) == 2000
    # Every answer is the virginica's, not merely a 200 that holds predictions.
    assert {answer for _, _, answer, _ in result.answers} == {'{"predictions": [2]}'}
    print(f"\n4 clients: {result.requests_per_second:.0f} req/s, p99 {result.percentile_ms(99):.1f} ms")
