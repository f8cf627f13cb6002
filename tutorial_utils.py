"""The few lines every step of the guide shares: where the tracking server is, and whether it answers.

Only the standard library is imported here, so a step can check the server
before it pays the seconds that `import mlflow` takes.
"""

import os
import sys
import urllib.error
import urllib.request

DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
START_SERVER_HINT = "start it with `mlflow ui` in another terminal (or run `make tutorial`)"


class TrackingServerUnavailable(RuntimeError):
    """No MLflow tracking server answers at the configured URI."""


def tracking_uri() -> str:
    """The server every step talks to: $MLFLOW_TRACKING_URI, or the guide's local server."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def require_tracking_server(uri: str, timeout_seconds: float = 2.0) -> None:
    """Raise TrackingServerUnavailable, with the fix in one line, unless an MLflow server answers at `uri`."""
    if not uri.startswith(("http://", "https://")):
        return  # a local store (sqlite:///..., a folder) needs no server
    health_url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health_url, timeout=timeout_seconds) as response:
            answer = response.read(100).decode(errors="replace").strip()
    except urllib.error.HTTPError as err:
        # Something listens, but it is not MLflow. On macOS, AirPlay Receiver holds port 5000.
        raise TrackingServerUnavailable(
            f"{uri} answered HTTP {err.code}, so it is not an MLflow server "
            "(on macOS, AirPlay uses port 5000): start MLflow on another port with "
            "`mlflow ui --port 5001` and set MLFLOW_TRACKING_URI=http://127.0.0.1:5001"
        ) from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingServerUnavailable(
            f"no MLflow tracking server answers at {uri} ({reason}): {START_SERVER_HINT}, "
            "or set MLFLOW_TRACKING_URI to your server"
        ) from None
    if answer != "OK":
        raise TrackingServerUnavailable(f"{health_url} answered {answer[:40]!r}, not MLflow's 'OK'")
    # MLflow retries a failing request for minutes by default. Once the server has
    # answered, a few quick retries are enough; a server that dies mid-step should
    # fail the step in seconds, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def exit_with_error(message: str, exit_code: int = 2) -> None:
    """A user's mistake gets one line on stderr and a non-zero exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)
