"""What the guide's steps leave on a tracking server, checked through MlflowClient.

Shared by every test that runs the steps, whatever server or backend they ran against.
"""

import json

import mlflow
from mlflow import MlflowClient

IRIS_EXPERIMENT = "Iris Classification Experiment"
MODEL_NAME = "tracking-iris-lr"
# The notebook's three runs, in the order it logs them, with the params each one logs.
NOTEBOOK_RUNS = {
    "lr-baseline": {"l1_ratio": "0.0", "solver": "lbfgs", "max_iter": "1000", "random_state": "42"},
    "lr-newton-cg": {"solver": "newton-cg", "max_iter": "800", "random_state": "12"},
    "lr-C-1.5": {"solver": "lbfgs", "C": "1.5", "max_iter": "1000", "random_state": "42"},
}


def assert_smoke_test_runs(client: MlflowClient, times_run: int) -> None:
    """`get_started.py` ran `times_run` times: that many finished runs, each with param1=5 and metric1=0.85."""
    experiment = client.get_experiment_by_name("my_experiment")
    assert experiment is not None, "get_started.py created no experiment 'my_experiment'"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == times_run
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params == {"param1": "5"}
        assert run.data.metrics == {"metric1": 0.85}


def best_run(runs):
    """The notebook's rule, computed independently: highest cv_accuracy, then lowest cv_log_loss, then earliest."""
    return min(runs, key=lambda r: (-r.data.metrics["cv_accuracy"], r.data.metrics["cv_log_loss"], r.info.start_time))


def assert_notebook_results(client: MlflowClient, times_run: int) -> None:
    """The notebook ran `times_run` times: 3 runs and 3 new model versions each time, the best run is @champion."""
    experiment = client.get_experiment_by_name(IRIS_EXPERIMENT)
    assert experiment is not None, f"the notebook created no experiment {IRIS_EXPERIMENT!r}"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 3 * times_run

    assert [run.info.run_name for run in runs] == list(NOTEBOOK_RUNS) * times_run
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params == NOTEBOOK_RUNS[run.info.run_name]
        assert run.data.tags["model"] == "Basic LR Model"
        assert set(run.data.metrics) == {"accuracy", "cv_accuracy", "cv_log_loss"}
        assert 0.9 <= run.data.metrics["cv_accuracy"] <= 1.0
        assert "confusion_matrix.png" in [artifact.path for artifact in client.list_artifacts(run.info.run_id)]
    # Test accuracy cannot pick a winner (every run scores 1.0); the cross-validated log loss can.
    assert {run.data.metrics["accuracy"] for run in runs} == {1.0}
    assert len({round(run.data.metrics["cv_log_loss"], 6) for run in runs[:3]}) == 3

    # Each time: runs 1 and 2 registered themselves, run 3 did not, and the promotion cell
    # registered the best run so far as the third version and moved @champion to it.
    versions = {int(v.version): v for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}
    assert sorted(versions) == list(range(1, 3 * times_run + 1))
    for first in range(0, 3 * times_run, 3):
        assert versions[first + 1].run_id == runs[first].info.run_id
        assert versions[first + 2].run_id == runs[first + 1].info.run_id
        assert versions[first + 3].run_id == best_run(runs[: first + 3]).info.run_id
        assert versions[first + 1].tags == versions[first + 2].tags == {}
        assert versions[first + 3].tags == {"validation_status": "approved"}
    assert best_run(runs).info.run_name == "lr-C-1.5"

    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(champion.version) == 3 * times_run
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": champion.version}


def expected_predictions(model_uri: str) -> list:
    """What `model_inferencing.py` must print for a model: pyfunc's predictions on its own input example."""
    model = mlflow.pyfunc.load_model(model_uri)
    return model.predict(model.input_example).tolist()


def printed_predictions(stdout: str) -> list:
    """The list on the "Predictions: [...]" line that `model_inferencing.py` prints."""
    [line] = [line for line in stdout.splitlines() if line.startswith("Predictions: ")]
    return json.loads(line.removeprefix("Predictions: "))
