"""The ML project: the notebook logs manual runs and a sweep with their datasets, ranks the logged models, registers
the winner once, and promotes it to @champion through an evaluation gate.

The notebook runs alone in an empty folder (the `notebook_run` fixture in conftest.py). The gate's rejection path
runs the notebook's own cells, in a kernel, with a registered model and an experiment of its own.
"""

import json
import re

import mlflow
import nbformat
import pandas as pd
from expected_state import assert_notebook_results
from helpers import REPO, STRICT_WARNINGS, champion_folder, notebook_cells
from nbclient import NotebookClient

from tutorial.names import FEATURES, MODEL_NAME


def test_notebook_logs_registers_and_promotes(tracking_server, notebook_run):
    assert_notebook_results(tracking_server.client(), times_run=1)


def test_from_a_terminal_it_prints_what_the_cells_print_and_saves_their_outputs(notebook_run):
    """Step 4's terminal command (python -m tutorial.notebook) shows the ranking and the gate's outcome, without the
    kernel's warning about TCP, and keeps the outputs in ml_project-run.ipynb."""
    printed = notebook_run["stdout"]
    assert re.search(r"^1\. m-\w+ from lr-C-1\.5: ", printed, re.MULTILINE), printed
    assert "Version 3 passed the gate and is now @champion" in printed
    assert "Champion test accuracy: 1.0" in printed
    assert "without encryption" not in notebook_run["stderr"], notebook_run["stderr"]
    executed = nbformat.read(notebook_run["executed"], as_version=4)
    saved = "".join(output.get("text", "") for cell in executed.cells for output in cell.get("outputs", []))
    assert "Version 3 passed the gate and is now @champion" in saved


def test_the_readmes_file_tree_lists_every_file_of_a_logged_model(tracking_server, notebook_run):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tree = readme.split("/artifacts/\n", 1)[1].split("```", 1)[0]
    shown = {name for line in tree.splitlines() for name in re.split(r"\s{2,}", line[4:])[0].split(", ")}
    assert shown == {path.name for path in champion_folder(tracking_server).iterdir()}


def test_the_readmes_figures_are_the_winners(tracking_server, notebook_run):
    """Step 5 names the winner, its cv_accuracy as printed and the 30 test flowers: all read back from the server."""
    client = tracking_server.client()
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    run = client.get_run(champion.run_id)
    readme = (REPO / "README.md").read_text()
    assert run.info.run_name == "lr-C-1.5" and "`lr-C-1.5` wins" in readme
    assert f"ties on `cv_accuracy` ({run.data.metrics['cv_accuracy']:.3f})" in readme
    [test_set] = [i.dataset for i in run.inputs.dataset_inputs if i.dataset.name == "iris-test"]
    assert json.loads(test_set.profile)["num_rows"] == 30 and "the 30 test flowers" in readme
    assert [column["name"] for column in json.loads(test_set.schema)["mlflow_colspec"]] == [*FEATURES, "species"]


def test_champion_predicts_iris_species(tracking_server, notebook_run, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    # Three flowers of the iris data set: a setosa, a versicolor and a virginica, by the names of their features.
    flowers = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]], columns=FEATURES)
    assert champion.predict(flowers).tolist() == [0, 1, 2]
    assert champion.metadata.get_input_schema().input_names() == FEATURES  # the signature names the features
    # The same flowers with their columns in reverse order: read by name, not by position.
    assert champion.predict(flowers[FEATURES[::-1]]).tolist() == [0, 1, 2]


# The notebook's cells that define the data, the registry helpers and the gate, by their tags (in VS Code: a cell's
# "..." menu, or View > Command Palette > "Add Cell Tag"), which survive a rewording of the text around them.
DEFINITIONS = ["imports", "connect-to-server", "load-data", "register-once", "promotion-gate"]
# Then, in the same kernel: a good model becomes @champion; a model trained on shuffled labels and a copy of the
# champion are candidates that must fail the gate, one on the accuracy threshold, one on the comparison. The notebook's
# functions read MODEL_NAME and `experiment` when called: the scenario gives them names of its own.
GATE_MODEL_NAME = "gate-test"
GATE_SCENARIO = (
    f'MODEL_NAME = experiment_name = "{GATE_MODEL_NAME}"\n'
    + """
import numpy as np

experiment = mlflow.set_experiment(experiment_name)

def logged(model, run_name):
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=run_name):
        signature = infer_signature(X_train, model.predict(X_train))
        info = mlflow.sklearn.log_model(model, name="iris_lr", signature=signature, pip_requirements=[])
    return mlflow.get_logged_model(info.model_id)

good = LogisticRegression(C=1.5, max_iter=1000).fit(X_train, y_train)
shuffled = LogisticRegression(max_iter=1000).fit(X_train, np.random.default_rng(0).permutation(y_train))
outcomes = {}
for name, model in [("good", good), ("shuffled-labels", shuffled), ("copy-of-good", good)]:
    version = version_from(logged(model, name))
    outcomes[name] = (version.version, promote_if_it_passes(version))
print("OUTCOMES " + json.dumps(outcomes))
"""
)


def run_notebook_cells(tags: list[str], extra_code: str) -> str:
    """Execute the notebook's code cells with these tags, then `extra_code`, in one kernel; return its output."""
    notebook = nbformat.v4.new_notebook()
    chosen = notebook_cells(tags)
    notebook.cells = [*chosen, nbformat.v4.new_code_cell("import json\n" + extra_code)]
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    return "".join(output.get("text", "") for output in notebook.cells[-1].outputs)


def test_the_gate_rejects_a_weak_candidate_and_a_copy_and_champion_stays(tracking_server, notebook_run, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)  # the kernel inherits it, as VS Code's would
    monkeypatch.setenv("PYTHONWARNINGS", STRICT_WARNINGS)
    output = run_notebook_cells(DEFINITIONS, GATE_SCENARIO)

    [line] = [line for line in output.splitlines() if line.startswith("OUTCOMES ")]
    outcomes = json.loads(line.removeprefix("OUTCOMES "))
    assert outcomes == {"good": ["1", True], "shuffled-labels": ["2", False], "copy-of-good": ["3", False]}
    client = tracking_server.client()
    assert client.get_registered_model(GATE_MODEL_NAME).aliases == {"champion": "1"}  # where the good model put it
    good, shuffled, copy = (client.get_model_version(GATE_MODEL_NAME, number) for number in ("1", "2", "3"))
    assert good.tags == {"validation_status": "approved"}
    assert shuffled.tags["validation_status"] == copy.tags["validation_status"] == "rejected"
    # The reasons name the checks that failed: the absolute accuracy threshold, and the comparison with the
    # champion's log loss (a copy is not 1% better than the original).
    assert "accuracy_score" in shuffled.tags["validation_reason"]
    assert "log_loss" in shuffled.tags["validation_reason"]
    assert "accuracy_score" not in copy.tags["validation_reason"]
    assert "log_loss minimum relative change check failed" in copy.tags["validation_reason"]
    # The guide's own model and champion are untouched.
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": "3"}
