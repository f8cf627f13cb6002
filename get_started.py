"""Smoke test: log one parameter and one metric to MLflow, in a run of the experiment `my_experiment`.

    python get_started.py

MLflow logs to $MLFLOW_TRACKING_URI, or else to the local server of `mlflow ui` at http://127.0.0.1:5000.
"""

import os
import sys

import mlflow
from mlflow.exceptions import MlflowException

# MLflow retries a server that does not answer for minutes. This is a smoke test: fail at once instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
# MLflow prints "🏃 View run ..." when a run ends; a Windows file (`> log.txt`) cannot hold the emoji: print "?".
sys.stdout.reconfigure(errors="replace")


def main() -> None:
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    # Creates the experiment the first time, then reuses it.
    experiment = mlflow.set_experiment("my_experiment")
    # The `with` block ends the run, as FINISHED, even if a line inside it fails.
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        mlflow.log_param("param1", 5)
        mlflow.log_metric("metric1", 0.85)
    print("Logged param1=5 and metric1=0.85 to experiment 'my_experiment'.")


if __name__ == "__main__":
    try:
        main()
    except MlflowException as err:
        sys.exit(f"error: {err.message.splitlines()[0]} (run `make doctor` to find out why)")
