"""Serve a registered model over REST: what `make serve` runs.

It hands over to the README's command (the last step of the guide, in tutorial/steps.py),

    mlflow models serve -m models:/tracking-iris-lr@champion -p 5001 --env-manager local

with the model and port you choose, after `make doctor`'s checks for it (the tracking server answers and
accepts this address, the port is free) and a check that the model version or alias exists: in about a
second, what would otherwise fail slowly or with a traceback.
"""

import argparse
import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request

from tutorial import doctor
from tutorial.names import CHAMPION_URI, SERVING_PORT, TRACKING_PORT
from tutorial.steps import SERVING
from tutorial.venv import with_venv_on_path

# models:/<name>@<alias> or models:/<name>/<version>: a model in the registry.
REGISTERED_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def check_registered_model(tracking_uri: str, model_uri: str) -> None:
    """Exit with one line unless the registry holds `model_uri` (asked over REST: no `import mlflow` needed)."""
    match = REGISTERED_MODEL_URI.match(model_uri)
    if not match:
        doctor.exit_with_error(
            f"{model_uri} is not a registry URI: use models:/<name>@<alias> or models:/<name>/<version>"
        )
    if match["alias"]:
        endpoint, query = "registered-models/alias", {"name": match["name"], "alias": match["alias"]}
    else:
        endpoint, query = "model-versions/get", {"name": match["name"], "version": match["version"]}
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError as err:
        message = json.loads(err.read() or b"{}").get("message", f"HTTP {err.code}")
        doctor.exit_with_error(f"cannot serve {model_uri}: {message} (run the notebook first, or `make tutorial`)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-uri", default=CHAMPION_URI, help="default: %(default)s")
    parser.add_argument("--port", type=int, default=SERVING_PORT, help="the port to serve on (default %(default)s)")
    parser.add_argument("--tracking-port", type=int, default=TRACKING_PORT, help="the tutorial's tracking server's")
    args = parser.parse_args()
    # As `make doctor` and the steps: the server MLFLOW_TRACKING_URI names, or else the tutorial's on its port.
    args.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"http://127.0.0.1:{args.tracking_port}"

    # `make doctor`'s checks for serving, then the model itself.
    doctor.require(doctor.tracking_server(args.tracking_uri), doctor.allowed_host(args.tracking_uri, os.environ))
    check_registered_model(args.tracking_uri, args.model_uri)
    if urllib.parse.urlsplit(args.tracking_uri).port == args.port:
        doctor.exit_with_error(
            f"port {args.port} is the tracking server's: serve on another, e.g. `make serve SERVE_PORT={args.port + 1}`"
        )
    tracking_port = urllib.parse.urlsplit(args.tracking_uri).port or TRACKING_PORT
    doctor.require(doctor.serving_port(args.port, tracking_port, serving_already=False))

    # The guide's command, with the model and the port this call asked for.
    command = shlex.split(SERVING.command)
    command[command.index("-m") + 1] = args.model_uri
    command[command.index("-p") + 1] = str(args.port)
    print(f"MLFLOW_TRACKING_URI={args.tracking_uri} {' '.join(command)}")
    print(f"It answers on http://127.0.0.1:{args.port}/invocations once uvicorn says it is running. Ctrl+C stops it.")
    sys.stdout.flush()
    # `mlflow models serve` starts `uvicorn` by name, so the venv must be on PATH, as in an activated terminal.
    env = with_venv_on_path({**os.environ, "MLFLOW_TRACKING_URI": args.tracking_uri})
    os.execvpe(command[0], command, env)  # replace this process: Ctrl+C goes straight to the server


if __name__ == "__main__":
    main()
