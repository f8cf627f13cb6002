"""Is an MLflow tracking server answering? The tooling's check (`make serve`, the tests' clients).

The teaching files (get_started.py, model_inferencing.py, the notebook) carry their own copy of
this check in plain sight, so that each one can be copied into another project alone.
Only the standard library is imported here: the check runs before the seconds `import mlflow` takes.
"""

import sys
import urllib.error
import urllib.request
from typing import NoReturn

START_SERVER_HINT = "start it with `mlflow ui` in another terminal (or run `make tutorial`)"


class TrackingServerUnavailable(RuntimeError):
    """No MLflow tracking server answers at the URI."""


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
            f"{uri} answered HTTP {err.code}, so it is not an MLflow server (on macOS, AirPlay uses port 5000)"
        ) from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingServerUnavailable(
            f"no MLflow tracking server answers at {uri} ({reason}): {START_SERVER_HINT}, "
            "or set MLFLOW_TRACKING_URI to your server"
        ) from None
    if answer != "OK":
        raise TrackingServerUnavailable(f"{health_url} answered {answer[:40]!r}, not MLflow's 'OK'")


def exit_with_error(message: str, exit_code: int = 2) -> NoReturn:
    """A user's mistake gets one line on stderr and a non-zero exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)
