"""Inference from a model's files: load a logged model and predict on the input example saved with it.

    python model_inferencing.py mlflow-artifacts:/<experiment id>/models/m-<model id>/artifacts/MLmodel
    python model_inferencing.py mlartifacts/<experiment id>/models/m-<model id>/artifacts
    python model_inferencing.py models:/tracking-iris-lr@champion

MODEL is either a model folder on disk or an MLflow model URI:
  - the path the UI shows: open a run, click its model under "Logged models", open the
    "Artifacts" tab and copy the Path shown above MLmodel,
    mlflow-artifacts:/<experiment id>/models/m-<model id>/artifacts/MLmodel;
  - the same folder on disk, mlartifacts/<experiment id>/models/m-<model id>/artifacts,
    inside the folder where `mlflow ui` runs (a local folder needs no server);
  - models:/m-<model id>           a logged model, by its id;
  - models:/tracking-iris-lr/2     a registered model, by version;
  - models:/tracking-iris-lr@champion  a registered model, by alias.
A URI is resolved by the tracking server at $MLFLOW_TRACKING_URI
(default http://127.0.0.1:5000).
This file stands alone: copy it into any project with MLflow installed and it runs.
"""

import argparse
import os
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NoReturn


def exit_with_error(message: str) -> NoReturn:
    """A user's mistake gets one line and exit code 2, not a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")


def check_tracking_server(uri: str) -> None:
    """Exit with one line unless an MLflow server answers at `uri`.

    Without this check, MLflow retries a server that is not there for minutes before it fails.
    """
    # A team server may have a certificate from the team's own authority: trust the one MLflow is told to trust.
    certificate = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if certificate and not os.path.isfile(certificate):
        exit_with_error(
            f"MLFLOW_TRACKING_SERVER_CERT_PATH={certificate} is not a file: give your server's CA certificate"
        )
    tls = ssl.create_default_context(cafile=certificate)
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=2, context=tls) as response:
            response.read()
    except urllib.error.HTTPError as err:
        # Something listens, but it is not MLflow: on macOS, AirPlay Receiver holds port 5000.
        exit_with_error(f"{uri} answered HTTP {err.code}, so it is not an MLflow server: set MLFLOW_TRACKING_URI")
    except (OSError, ValueError) as err:
        exit_with_error(
            f"no MLflow tracking server answers at {uri} ({getattr(err, 'reason', err)}): start it with "
            "`mlflow ui` in another terminal (or run `make tutorial`), or set MLFLOW_TRACKING_URI to your server"
        )
    # /health answers whatever the address. The rest of the server refuses a Host header outside localhost and
    # private addresses (MLflow's protection against DNS rebinding), such as a Codespace's forwarded address or a
    # team server's name that was not listed: every MLflow call would then fail with HTTP 403.
    try:
        search = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
        urllib.request.urlopen(search, timeout=2, context=tls).close()
    except urllib.error.HTTPError as err:
        if err.code == 403 and err.read(100).startswith(b"Invalid Host header"):
            address = urllib.parse.urlsplit(uri).netloc
            exit_with_error(
                f"{uri} refuses requests addressed to {address} (HTTP 403, Invalid Host header): start the server "
                f"with --allowed-hosts {address} (or MLFLOW_SERVER_ALLOWED_HOSTS={address}), or use its local address"
            )
    except OSError:
        pass  # the request itself failed: MLflow reports that, with its own error, on its first call


def folder_of_mlmodel_file(path: str) -> str:
    """The UI's copy button copies the path of the MLmodel file; the model is the folder that holds it."""
    for mlmodel_file in ("/MLmodel", "\\MLmodel"):
        if path.endswith(mlmodel_file):
            return path.removesuffix(mlmodel_file)
    return path


def check_model_folder(folder: Path) -> None:
    """Exit with one line unless `folder` holds an MLflow model (an MLmodel file)."""
    if not folder.exists():
        exit_with_error(
            f"{folder} does not exist: copy the model's path from the UI "
            "(mlflow-artifacts:/<experiment id>/models/m-<model id>/artifacts/MLmodel), or give its folder "
            "mlartifacts/<experiment id>/models/m-<model id>/artifacts from where you started `mlflow ui`"
        )
    if not (folder / "MLmodel").is_file():
        exit_with_error(
            f"{folder} is not an MLflow model folder (it has no MLmodel file): copy the Path of a model's MLmodel file"
        )


def predict_on_input_example(model_uri: str):
    """Load the model as a generic pyfunc model and predict on its own saved input example."""
    # Imported here, after the checks: importing MLflow takes seconds,
    # and a wrong path should be reported at once.
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri())  # where models:/ URIs are looked up

    try:
        # pyfunc is MLflow's flavor-independent interface: the same two lines
        # load and call a scikit-learn, PyTorch or custom model.
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as err:
        exit_with_error(f"cannot load {model_uri}: {err.message.splitlines()[0]}")
    # log_model(input_example=...) saved a few training rows next to the model.
    input_example = model.input_example
    if input_example is None:
        exit_with_error(f"{model_uri} was logged without an input example, so there is nothing to predict on")
    return input_example, model.predict(input_example)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", metavar="MODEL", help="a model's path, folder or URI")
    args = parser.parse_args()

    if args.model is None:
        parser.print_help()
        exit_with_error("give the model to load: its path (copied from the UI), its folder, or a models:/ URI")
    model = folder_of_mlmodel_file(args.model)

    # A scheme of two or more letters (models:/, runs:/) marks a URI; C:/ is a Windows drive.
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", model):
        check_tracking_server(tracking_uri())
        # The server answered. If it goes away mid-download, fail in seconds, not after MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        model_uri = model
    else:
        folder = Path(model)
        check_model_folder(folder)
        model_uri = str(folder)

    input_example, predictions = predict_on_input_example(model_uri)
    print(f"Model: {model}")
    print(f"Input example ({len(input_example)} rows):")
    print(input_example)
    print(f"Predictions: {predictions.tolist()}")


if __name__ == "__main__":
    main()
