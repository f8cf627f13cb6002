"""What the guide's steps leave on a tracking server, checked through MlflowClient.

Shared by every test that runs the steps, whatever server or backend they ran against.
"""

import json
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient

from tutorial.names import IRIS_EXPERIMENT, MODEL_NAME, SMOKE_TEST_EXPERIMENT

# The notebook's three runs, in the order it logs them, with the params each one logs.
NOTEBOOK_RUNS = {
    "lr-baseline": {"l1_ratio": "0.0", "solver": "lbfgs", "max_iter": "1000", "random_state": "42"},
    "lr-newton-cg": {"solver": "newton-cg", "max_iter": "800", "random_state": "12"},
    "lr-C-1.5": {"solver": "lbfgs", "C": "1.5", "max_iter": "1000", "random_state": "42"},
}


def assert_smoke_test_runs(client: MlflowClient, times_run: int) -> None:
    """`get_started.py` ran `times_run` times: that many finished runs, each with param1=5 and metric1=0.85."""
    experiment = client.get_experiment_by_name(SMOKE_TEST_EXPERIMENT)
    assert experiment is not None, f"get_started.py created no experiment {SMOKE_TEST_EXPERIMENT!r}"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == times_run
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params == {"param1": "5"}
        assert run.data.metrics == {"metric1": 0.85}


SWEEP_RUN = "lr-grid-search"
SWEEP_C_VALUES = {"0.1", "0.3", "1.0", "3.0", "10.0"}  # one child run each
TRAIN, TEST = "iris-train", "iris-test"
MODEL_METRICS = {"accuracy": TEST, "cv_accuracy": TRAIN, "cv_log_loss": TRAIN}  # each linked to this dataset
EVALUATION_PLOTS = {"confusion_matrix.png", "roc_curve_plot.png", "precision_recall_curve_plot.png"}


def datasets_of(run) -> set[tuple[str, str]]:
    """(name, context) of each dataset a run logged with log_input."""
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return {(i.dataset.name, next((t.value for t in i.tags if t.key == "mlflow.data.context"), "")) for i in inputs}


def model_metrics(logged_model) -> dict:
    """The logged model's own metrics: {key: (value, dataset name)}."""
    return {metric.key: (metric.value, metric.dataset_name) for metric in logged_model.metrics}


def best_model(logged_models):
    """The notebook's rule, computed independently: highest cv_accuracy, lowest cv_log_loss, then the earliest."""

    def rank(model):
        metrics = model_metrics(model)
        return (-metrics["cv_accuracy"][0], metrics["cv_log_loss"][0], model.creation_timestamp)

    return min(logged_models, key=rank)


@dataclass
class NotebookRuns:
    """The runs of the notebook's experiment, sorted into what logged them."""

    all: list
    manual: list  # lr-baseline, lr-newton-cg, lr-C-1.5, once per notebook run
    sweeps: list
    children: list  # the sweep's candidates
    evaluations: list

    @property
    def by_id(self) -> dict:
        return {run.info.run_id: run for run in self.all}


def notebook_runs(client: MlflowClient, experiment_id: str) -> NotebookRuns:
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"], max_results=1000)
    return NotebookRuns(
        all=runs,
        manual=[run for run in runs if run.info.run_name in NOTEBOOK_RUNS],
        sweeps=[run for run in runs if run.info.run_name == SWEEP_RUN],
        children=[run for run in runs if "mlflow.parentRunId" in run.data.tags],
        evaluations=[run for run in runs if run.info.run_name.startswith("evaluate-v")],
    )


def assert_notebook_results(client: MlflowClient, times_run: int) -> None:
    """The notebook ran `times_run` times, each time logging 3 manual runs and a sweep with its children; the best
    model is registered once, passed the gate, and holds @champion; no two versions come from one logged model."""
    experiment = client.get_experiment_by_name(IRIS_EXPERIMENT)
    assert experiment is not None, f"the notebook created no experiment {IRIS_EXPERIMENT!r}"
    runs = notebook_runs(client, experiment.experiment_id)
    assert all(run.info.status == "FINISHED" for run in runs.all)
    # Every run is one of these: nothing else was logged.
    assert len(runs.all) == len(runs.manual) + len(runs.sweeps) + len(runs.children) + len(runs.evaluations)

    assert_manual_runs(client, runs.manual, times_run)
    assert_sweeps(runs, times_run)
    logged_models = list(client.search_logged_models(experiment_ids=[experiment.experiment_id], max_results=1000))
    assert_model_metrics(logged_models, runs, times_run)
    assert_registry(client, logged_models, runs, times_run)
    assert_evaluation(client, runs.evaluations)


def assert_manual_runs(client: MlflowClient, manual: list, times_run: int) -> None:
    """The manual runs: params, tag, metrics, the confusion matrix, and both datasets."""
    assert [run.info.run_name for run in manual] == list(NOTEBOOK_RUNS) * times_run
    for run in manual:
        assert run.data.params == NOTEBOOK_RUNS[run.info.run_name]
        assert run.data.tags["model"] == "Basic LR Model"
        assert set(run.data.metrics) == set(MODEL_METRICS)
        assert 0.9 <= run.data.metrics["cv_accuracy"] <= 1.0
        assert "confusion_matrix.png" in [artifact.path for artifact in client.list_artifacts(run.info.run_id)]
        assert datasets_of(run) == {(TRAIN, "training"), (TEST, "testing")}
    # Test accuracy cannot pick a winner (every run scores 1.0); the cross-validated log loss can.
    assert {run.data.metrics["accuracy"] for run in manual} == {1.0}
    assert len({round(run.data.metrics["cv_log_loss"], 6) for run in manual[:3]}) == 3


def assert_sweeps(runs: NotebookRuns, times_run: int) -> None:
    """A sweep's parent run per notebook run, with one finished child per candidate, each with its datasets."""
    assert len(runs.sweeps) == times_run
    features_digest = training_features_digest()
    for sweep in runs.sweeps:
        assert sweep.data.params["best_C"] == "1.0"
        # training_log_loss too: autolog skips a metric whose computation fails, and says so only in a warning
        expected_metrics = {"best_cv_score", "training_accuracy_score", "training_log_loss", *MODEL_METRICS}
        assert expected_metrics <= set(sweep.data.metrics)
        assert {(TRAIN, "training"), (TEST, "testing")} <= datasets_of(sweep)
        children = [run for run in runs.children if run.data.tags["mlflow.parentRunId"] == sweep.info.run_id]
        assert sorted(child.data.params["C"] for child in children) == sorted(SWEEP_C_VALUES)
        for child in children:
            assert {"mean_test_accuracy", "mean_test_neg_log_loss"} <= set(child.data.metrics)
            # autolog's own record of the training data: the rows of iris-train, without its species column
            assert [(i.dataset.digest, datasets_of(child)) for i in child.inputs.dataset_inputs] == [
                (features_digest, {("dataset", "train")})
            ]
    assert len(runs.children) == len(SWEEP_C_VALUES) * times_run


def training_features_digest() -> str:
    """The digest of the notebook's 120 training flowers, features only, computed here as the notebook splits them."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    iris = load_iris(as_frame=True)
    features = train_test_split(iris.data, iris.target, test_size=0.2, random_state=42)[0]
    return mlflow.data.from_pandas(features).digest


def assert_model_metrics(logged_models: list, runs: NotebookRuns, times_run: int) -> None:
    """Every candidate model carries its scores, linked to the dataset each was computed on."""
    assert len(logged_models) == (len(NOTEBOOK_RUNS) + 1) * times_run
    for logged_model in logged_models:
        source_run = runs.by_id[logged_model.source_run_id]
        assert source_run.info.run_name in [*NOTEBOOK_RUNS, SWEEP_RUN]
        metrics = model_metrics(logged_model)
        for key, dataset in MODEL_METRICS.items():
            assert metrics[key] == (source_run.data.metrics[key], dataset), (key, metrics)


def assert_registry(client: MlflowClient, logged_models: list, runs: NotebookRuns, times_run: int) -> None:
    """Runs 1 and 2 register themselves each time; the best model once, however often the notebook ran, as
    version 3, approved by the gate and holding @champion."""
    versions = {int(v.version): v for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}
    assert sorted(versions) == list(range(1, 3 + 2 * (times_run - 1) + 1))
    sources = [version.source for version in versions.values()]
    assert len(set(sources)) == len(sources), "two versions come from the same logged model"
    winner = best_model(logged_models)
    assert runs.by_id[winner.source_run_id].info.run_name == "lr-C-1.5"
    assert winner.source_run_id == runs.manual[2].info.run_id  # the first notebook run's, by the tie rule
    assert versions[3].source == winner.model_uri
    assert versions[3].tags == {"validation_status": "approved"}
    for number, version in versions.items():
        if number != 3:
            assert version.tags == {}, number
            assert runs.by_id[version.run_id].info.run_name in ("lr-baseline", "lr-newton-cg")
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "3"
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": "3"}


def assert_evaluation(client: MlflowClient, evaluations: list) -> None:
    """The gate evaluated the winner once, on the test set, and logged its metrics and plots."""
    assert [run.info.run_name for run in evaluations] == ["evaluate-v3"]
    [evaluation] = evaluations
    assert evaluation.data.metrics["accuracy_score"] >= 0.9
    assert {"log_loss", "f1_score", "roc_auc"} <= set(evaluation.data.metrics)
    assert EVALUATION_PLOTS <= {artifact.path for artifact in client.list_artifacts(evaluation.info.run_id)}
    assert {name for name, _ in datasets_of(evaluation)} == {TEST}


def expected_predictions(model_uri: str) -> list:
    """What `model_inferencing.py` must print for a model: pyfunc's predictions on its own input example."""
    model = mlflow.pyfunc.load_model(model_uri)
    return model.predict(model.input_example).tolist()


def printed_predictions(stdout: str) -> list:
    """The list on the "Predictions: [...]" line that `model_inferencing.py` prints."""
    [line] = [line for line in stdout.splitlines() if line.startswith("Predictions: ")]
    return json.loads(line.removeprefix("Predictions: "))
