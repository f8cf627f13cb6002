"""The original guide's flow, the baseline `make bench` compares with: the pre-MLflow 3 tutorial this repository
grew from, kept here whole so that the baseline needs nothing outside the repository.

Its three files are kept as that guide had them, with the one change MLflow 3 requires (`name=` in place of
the removed argument `artifact_path`): a default `mlflow ui` (four workers, job runner on), the smoke test, a
notebook of two runs that register their models with MLflow's own requirement inference, and
inference from a model's folder. `run_original_guide` follows it in an empty folder and times it.
"""

import os
import subprocess
import time
from pathlib import Path

import nbformat

from tutorial import server_process
from tutorial.venv import VENV_BIN, with_venv_on_path

GET_STARTED = """
import mlflow
mlflow.set_tracking_uri("{uri}")
mlflow.set_experiment("my_experiment")
with mlflow.start_run():
    mlflow.log_param("param1", 5)
    mlflow.log_metric("metric1", 0.85)
"""

# The original's two runs train and log in the same way, with other params; it repeats the cells, we fill them in.
TRAIN = """
params = {params}
lr = LogisticRegression(**params)
lr.fit(X_train, y_train)
y_pred = lr.predict(X_test)
_as = accuracy_score(y_test, y_pred)
"""
LOG_RUN = """
with mlflow.start_run(run_name="Logistic Regression Model"):
    mlflow.log_params(params)
    mlflow.log_metric("accuracy", _as)
    mlflow.set_tag("model", "Basic LR Model")
    signature = infer_signature(X_train, lr.predict(X_train))
    model_info = mlflow.sklearn.log_model(
        sk_model=lr, name="iris_model", signature=signature, input_example=X_train,
        registered_model_name="tracking-quickstart",
    )
"""
NOTEBOOK_CELLS = [
    """
import mlflow
from mlflow.models import infer_signature
import pandas as pd
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.metrics import accuracy_score
""",
    """
X, y = datasets.load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
""",
    TRAIN.replace("{params}", '{"penalty": "l2", "solver": "lbfgs", "max_iter": 1000, "random_state": 42}'),
    """
mlflow.set_tracking_uri(uri="{uri}/")
mlflow.set_experiment("Iris Classification Experiment")
"""
    + LOG_RUN,
    TRAIN.replace("{params}", '{"solver": "newton-cg", "max_iter": 800, "random_state": 12}') + LOG_RUN,
]

# The original reads input_example.json into a DataFrame; MLflow 3 saves it in another layout, which the
# model loads itself as `input_example`.
MODEL_INFERENCING = """
import mlflow.pyfunc
model_path = "{model_path}"
model = mlflow.pyfunc.load_model(model_path)
print(model.predict(model.input_example))
"""


def run_original_guide(folder: Path, python_bin: Path) -> float:
    """Follow the original guide in `folder` with the venv in `python_bin`; return the seconds it took."""
    port = server_process.free_port()
    uri = f"http://127.0.0.1:{port}"
    (folder / "get-started.py").write_text(GET_STARTED.replace("{uri}", uri))
    cells = [nbformat.v4.new_code_cell(cell.replace("{uri}", uri).strip()) for cell in NOTEBOOK_CELLS]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "ml-project.ipynb")
    env = with_venv_on_path(
        {name: value for name, value in os.environ.items() if name != "MLFLOW_TRACKING_URI"}, python_bin
    )

    def step(*command: str) -> None:
        subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)

    started = time.monotonic()
    log = folder / "mlflow-ui.log"
    server = server_process.start(["mlflow", "ui", "--port", str(port)], log, cwd=folder, env=env)
    try:
        server_process.wait_until_healthy(server, f"{uri}/health", log)
        step("python", "get-started.py")
        step("jupyter", "execute", "ml-project.ipynb")
        model = next(folder.glob("mlartifacts/*/models/m-*/artifacts")).relative_to(folder)
        (folder / "model_inferencing.py").write_text(MODEL_INFERENCING.replace("{model_path}", model.as_posix()))
        step("python", "model_inferencing.py")
    finally:
        server_process.stop(server)
    return time.monotonic() - started


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as temp:
        print(f"The original guide took {run_original_guide(Path(temp), VENV_BIN):.1f} s")
