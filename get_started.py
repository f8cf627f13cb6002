"""Step 3 of the guide: a smoke test that logs one param and one metric to the tracking server.

    python get_started.py

The server comes from $MLFLOW_TRACKING_URI (default http://127.0.0.1:5000).
"""

import argparse

from tutorial_utils import (
    TrackingServerUnavailable,
    exit_with_error,
    require_tracking_server,
    tracking_uri,
)

EXPERIMENT_NAME = "my_experiment"


def log_smoke_test_run(uri: str) -> str:
    """Log param1=5 and metric1=0.85 in a new run of `my_experiment`; return the run's UI link."""
    # Imported here, after the server check: importing MLflow takes seconds,
    # and a missing server should be reported at once.
    import mlflow

    mlflow.set_tracking_uri(uri)
    # Creates the experiment on first use, then reuses it.
    experiment = mlflow.set_experiment(EXPERIMENT_NAME)
    # Name the experiment on the run: when two scripts create a new experiment at the same moment,
    # set_experiment can return it without making it active, and a bare start_run() would then
    # log to the Default experiment (see "Many clients at once" in README.md).
    # The `with` block ends the run (status FINISHED) even if a line inside fails.
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_param("param1", 5)
        mlflow.log_metric("metric1", 0.85)
    return f"{uri.rstrip('/')}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=tracking_uri(), help="default: %(default)s")
    args = parser.parse_args()

    try:
        require_tracking_server(args.tracking_uri)
    except TrackingServerUnavailable as err:
        exit_with_error(str(err))

    run_link = log_smoke_test_run(args.tracking_uri)
    print(f"Logged param1=5 and metric1=0.85 to experiment '{EXPERIMENT_NAME}'.")
    print(f"See the run at {run_link}")


if __name__ == "__main__":
    main()
