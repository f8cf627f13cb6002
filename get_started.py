"""The guide's smoke test: log one param and one metric to the tracking server.

    python get_started.py

The server comes from $MLFLOW_TRACKING_URI (default http://127.0.0.1:5000).
This file stands alone: copy it into any project with MLflow installed and it runs.
"""

import argparse
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import NoReturn

EXPERIMENT_NAME = "my_experiment"


def exit_with_error(message: str) -> NoReturn:
    """A user's mistake gets one line and exit code 2, not a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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
        exit_with_error(
            f"{uri} answered HTTP {err.code}, so it is not an MLflow server (on macOS, AirPlay uses port 5000): "
            "start MLflow with `mlflow ui --port 5001` and set MLFLOW_TRACKING_URI=http://127.0.0.1:5001"
        )
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


def log_smoke_test_run(uri: str) -> None:
    """Log param1=5 and metric1=0.85 in a new run of `my_experiment`."""
    # Imported here, after the server check: importing MLflow takes seconds,
    # and a missing server should be reported at once.
    import mlflow

    mlflow.set_tracking_uri(uri)
    # Creates the experiment on first use, then reuses it.
    experiment = mlflow.set_experiment(EXPERIMENT_NAME)
    # Name the experiment on the run: when two scripts create a new experiment at the same moment,
    # set_experiment can return it without making it active, and a bare start_run() would then
    # log to the Default experiment.
    # The `with` block ends the run (status FINISHED) even if a line inside fails, and MLflow
    # prints the run's link in the UI when it ends.
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        mlflow.log_param("param1", 5)
        mlflow.log_metric("metric1", 0.85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        help="the tracking server (default: $MLFLOW_TRACKING_URI, else %(default)s)",
    )
    args = parser.parse_args()
    # MLflow prints "🏃 View run ..." when a run ends. A stdout that cannot encode it (Windows writes cp1252 to a
    # redirected one: `python get_started.py > log.txt`) would crash the script after the run is logged; print "?".
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")

    check_tracking_server(args.tracking_uri)
    # The server answered. If it goes away mid-run, fail in seconds: MLflow's default retries take minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

    log_smoke_test_run(args.tracking_uri)
    print(f"Logged param1=5 and metric1=0.85 to experiment '{EXPERIMENT_NAME}'.")


if __name__ == "__main__":
    main()
