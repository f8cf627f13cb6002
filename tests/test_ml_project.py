"""The ML project: the notebook trains, logs and registers three runs, then promotes the best to @champion.

The notebook runs alone in an empty folder (the `notebook_run` fixture in conftest.py).
"""

import mlflow
import numpy as np
from expected_state import MODEL_NAME, assert_notebook_results


def test_notebook_logs_registers_and_promotes(tracking_server, notebook_run):
    assert_notebook_results(tracking_server.client(), times_run=1)


def test_champion_predicts_iris_species(tracking_server, notebook_run, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    # Three flowers of the iris data set: a setosa, a versicolor and a virginica.
    flowers = np.array([[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]])
    assert champion.predict(flowers).tolist() == [0, 1, 2]
