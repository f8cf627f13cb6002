"""Inference: load a logged model by its path or URI, and predict on the input example saved with it.

    python model_inferencing.py mlflow-artifacts:/<experiment id>/models/m-<model id>/artifacts/MLmodel
    python model_inferencing.py mlartifacts/<experiment id>/models/m-<model id>/artifacts
    python model_inferencing.py models:/m-<model id>
    python model_inferencing.py models:/tracking-iris-lr@champion

MODEL is the path the UI shows (open a logged model, its "Artifacts" tab, and copy the Path above MLmodel),
the same folder on disk under mlartifacts/ (where `mlflow ui` runs), or a models:/ URI: a logged model by its
id, or a registered model by version (models:/tracking-iris-lr/2) or alias (@champion).
URIs are resolved by the server at $MLFLOW_TRACKING_URI, or else http://127.0.0.1:5000.
"""

import argparse
import os
import re
import sys

import mlflow
from mlflow.exceptions import MlflowException

# MLflow retries a server that does not answer for minutes: fail at once instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def predict_on_input_example(model_uri: str):
    """Load the model as a generic pyfunc model and predict on its own saved input example."""
    # pyfunc is MLflow's flavor-independent interface: the same two lines load and call
    # a scikit-learn, PyTorch or custom model.
    model = mlflow.pyfunc.load_model(model_uri)
    # log_model(input_example=...) saved a few training rows next to the model.
    input_example = model.input_example
    if input_example is None:
        raise MlflowException("it was logged without an input example, so there is nothing to predict on")
    return input_example, model.predict(input_example)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="a model's path, folder or models:/ URI")
    args = parser.parse_args()
    # The UI copies the path of the MLmodel file; the model is the folder that holds it.
    model_uri = re.sub(r"[/\\]MLmodel$", "", args.model)

    # A path without a scheme is a folder on this disk: say so if it is not there, before MLflow looks elsewhere.
    if not re.match(r"[a-z][a-z0-9+.-]+:/", model_uri) and not os.path.isdir(model_uri):
        sys.exit(
            f"error: there is no folder {model_uri} in {os.getcwd()}: run this where `mlflow ui` runs, "
            "or give the mlflow-artifacts:/ path the UI shows"
        )
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    try:
        input_example, predictions = predict_on_input_example(model_uri)
    except MlflowException as err:
        # MLflow's first line, and when it only announces a list of failures (it ends with ':'), the last: the reason.
        lines = [line.strip() for line in err.message.strip().splitlines()]
        reason = f"{lines[0]} {lines[-1]}" if lines[0].endswith(":") else lines[0]
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            reason += " (is this the server the notebook logged to?)"
        sys.exit(f"error: cannot load {model_uri}: {reason} (`make doctor` finds why)")

    print(f"Model: {model_uri}")
    print(f"Input example ({len(input_example)} rows):")
    print(input_example)
    print(f"Predictions: {predictions.tolist()}")


if __name__ == "__main__":
    main()
