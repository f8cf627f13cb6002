"""Run every step of the guide against a local tracking server: what `make tutorial` does.

It follows the guide's list of steps (tutorial/steps.py): it starts `mlflow ui` in the repository
folder (runs in ./mlflow.db, files in ./mlartifacts), runs each step that has a command, names the
ones you do by hand, then keeps the server running for you to explore the UI, until Ctrl+C.
Steps that need the same step run side by side, on a computer's several cores (tutorial/step_runs.py);
the tutorial prints each one whole, under its label, in the guide's order.
With --no-keep-server it stops the server and exits after the last step.
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from tutorial import doctor, server_process
from tutorial.names import BATCH_EXPERIMENT, CHAMPION_URI, IRIS_EXPERIMENT, SMOKE_TEST_EXPERIMENT, TRACKING_PORT
from tutorial.step_runs import StepFailed, StepRun, print_step
from tutorial.steps import (
    BATCH_SCORING,
    INFERENCE_FROM_FILES,
    ML_PROJECT,
    MODEL_REGISTRY,
    SERVING,
    SMOKE_TEST,
    STEPS,
    TRACKING_SERVER,
    Step,
    settings_and_words,
)
from tutorial.venv import VENV_BIN, with_venv_on_path

REPO = Path(__file__).resolve().parent.parent
SERVER_LOG = REPO / "mlflow-ui.log"
# The README's command: its settings (MLflow's job runner off) and its words.
WITHOUT_JOB_RUNNER, SERVER_WORDS = settings_and_words(TRACKING_SERVER.command)


# Steps that start before the steps they need have passed (once those named second have), and are given their
# command on stdin when they may go on: while the server starts, the notebook's kernel starts and runs its imports
# (tutorial/notebook.py) and the smoke test imports MLflow; steps 6, 7 and 9 import MLflow and the model's flavor
# while the notebook runs, on the core it leaves idle (tutorial/imports_first.py).
STARTS_EARLY = {
    ML_PROJECT: ("python -m tutorial.notebook --imports-first", ()),
    **{
        step: (f"python -m tutorial.imports_first {settings_and_words(step.command)[1][1]}", after)
        for step, after in (
            (SMOKE_TEST, ()),
            (INFERENCE_FROM_FILES, (TRACKING_SERVER,)),
            (MODEL_REGISTRY, (TRACKING_SERVER,)),
            (BATCH_SCORING, (TRACKING_SERVER,)),
        )
    },
}


def codespace_security_flags(port: int, env: dict) -> list[str]:
    """In a GitHub Codespace, let the server accept the forwarded address of its own port, and nothing wider.

    MLflow refuses a Host header outside localhost and private addresses, and a state-changing request from another
    origin; with these flags it accepts the address the browser uses too. Elsewhere, MLflow's defaults stay.
    """
    forwarded = doctor.codespace_address(port, env)
    if forwarded is None:
        return []
    return ["--allowed-hosts", f"localhost:*,127.0.0.1:*,{forwarded}", "--cors-allowed-origins", f"https://{forwarded}"]


def start_tracking_server(port: int) -> subprocess.Popen:
    """Start the guide's server, `mlflow ui` in the repository folder on loopback, once `make doctor`'s checks for
    it hold: they stop here, before the server starts and writes anything."""
    doctor.require(
        doctor.free_port(
            port,
            f"stop that program (an earlier `mlflow ui`, or AirPlay Receiver on macOS), or run "
            f"`make tutorial PORT={port + 1}`",
        ),
        doctor.file_store(REPO),
        doctor.database_schema(REPO, VENV_BIN.parent),
    )
    # The README's command, on loopback and the chosen port, and on mlflow.db even beside an mlruns/ folder.
    command = [
        *SERVER_WORDS,
        *("--backend-store-uri", "sqlite:///mlflow.db", "--host", "127.0.0.1", "--port", str(port)),
        *codespace_security_flags(port, os.environ),
    ]
    settings = " ".join(f"{name}={value}" for name, value in WITHOUT_JOB_RUNNER.items())
    print(f"{TRACKING_SERVER.label()}\n      $ {settings} {shlex.join(command)}  (log: {SERVER_LOG.name})", flush=True)
    return server_process.start(command, SERVER_LOG, cwd=REPO, env={**os.environ, **WITHOUT_JOB_RUNNER})


def wait_until_ready(server: subprocess.Popen, port: int) -> None:
    try:
        seconds = server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/health", SERVER_LOG)
    except server_process.ServerFailedToStart as err:
        doctor.exit_with_error(f"{err} (`make doctor` looks for the cause)")
    print(f"      ready in {seconds:.1f} s", flush=True)


def run_step(step: Step, env: dict) -> None:
    """Run one step exactly as the README shows it, in the repository folder, with `env` (where
    MLFLOW_TRACKING_URI names the server), printed as the tutorial prints it; stop if it fails.
    `make screenshots` runs steps so."""
    run = StepRun(step, env, REPO, passed=defaultdict(passed_already))
    run.start()
    try:
        print_step(run)
    except StepFailed as failed:
        raise SystemExit(f"error: {failed}") from None
    finally:
        run.stop()


def passed_already() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def skip_step(step: Step) -> None:
    """Name a step the tutorial does not run, and why, so the numbers match the README's headings."""
    print(f"\n{step.label()} (not run here: {step.not_run_because})", flush=True)


def newest_model_folder() -> str:
    """The folder of the newest logged model: the path you would copy from the UI."""
    models = sorted(REPO.glob("mlartifacts/*/models/m-*/artifacts/MLmodel"), key=lambda path: path.stat().st_mtime)
    if not models:
        raise SystemExit("error: the notebook logged no model under mlartifacts/")
    return str(models[-1].parent.relative_to(REPO))


def print_next_steps(ui_url: str, keep_server: bool) -> None:
    print(f"\nThe MLflow UI is at {ui_url}")
    print('  It opens on the GenAI view: switch to "Model training" (the toggle under the logo) to see the runs.')
    experiments = ", ".join([SMOKE_TEST_EXPERIMENT, IRIS_EXPERIMENT, BATCH_EXPERIMENT])
    print(f"  Experiments: {experiments}. Model: {CHAMPION_URI.removeprefix('models:/')}.")
    print("\nTry next, in another terminal:")
    print("  source .venv/bin/activate")
    if not ui_url.endswith(f":{TRACKING_PORT}"):
        print(f"  export MLFLOW_TRACKING_URI={ui_url}")
    print(f"  {MODEL_REGISTRY.command}")
    print(f"  {SMOKE_TEST.command}")
    if keep_server:
        # `make serve` serves on the port after the tracking server's (the Makefile's SERVE_PORT).
        port = int(ui_url.rsplit(":", 1)[1])
        port_switch = "" if port == TRACKING_PORT else f" PORT={port}"
        print(f"  make serve{port_switch}    # {SERVING.title}: the champion on port {port + 1}")
        print("\nThe server keeps running. Press Ctrl+C to stop it.", flush=True)


def stop_like_ctrl_c(signum, frame) -> None:
    """Stop once. A second signal must not cut the stopping short: make passes its own SIGTERM on to us, and a
    reader may press Ctrl+C twice."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> None:
    # Whatever ends the tutorial (Ctrl+C, a `kill`, an editor's stop button) must stop the server too.
    # A shell that starts us in the background ignores Ctrl+C for us; take it back.
    signal.signal(signal.SIGINT, stop_like_ctrl_c)
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=TRACKING_PORT, help="the server's port (default: %(default)s)")
    parser.add_argument(
        "--no-keep-server",
        dest="keep_server",
        action="store_false",
        help="stop the server after the last step (for tests and benchmarks)",
    )
    args = parser.parse_args()

    ui_url = f"http://127.0.0.1:{args.port}"
    # Steps find `python`, `jupyter` and `mlflow` in this venv, and the server through MLFLOW_TRACKING_URI.
    env = with_venv_on_path({**os.environ, "MLFLOW_TRACKING_URI": ui_url})
    os.environ["PATH"] = env["PATH"]  # so the server itself starts from the venv too

    started = time.monotonic()
    server, failed = None, None
    # Each step starts as soon as the steps it needs have passed (the server's start first of all); the loop below
    # prints them in the guide's order.
    passed = {step: threading.Event() for step in STEPS}
    placeholders = {INFERENCE_FROM_FILES: lambda: {"model_folder": newest_model_folder()}}
    runs = {
        step: StepRun(step, env, REPO, passed, placeholders.get(step, dict), *STARTS_EARLY.get(step, (None, ())))
        for step in STEPS
        if step is not TRACKING_SERVER and not step.not_run_because
    }
    try:
        for step in STEPS:
            if step is TRACKING_SERVER:
                server = start_tracking_server(args.port)
                for run in runs.values():
                    run.start()
                wait_until_ready(server, args.port)
                passed[TRACKING_SERVER].set()
            elif step in runs:
                print_step(runs[step])
            else:
                skip_step(step)
        print(f"\nAll steps passed in {time.monotonic() - started:.1f} s.")
        print_next_steps(ui_url, args.keep_server)
        if args.keep_server:
            server.wait()
    except StepFailed as failure:
        failed = failure
    except KeyboardInterrupt:
        print("\nStopping the server...", flush=True)
    finally:
        for run in runs.values():
            run.stop()
        if server is not None:
            server_process.stop_mlflow_cli(server)
    if failed:  # the last line, as when a step fails on its own
        print(f"error: {failed}", file=sys.stderr)
        sys.exit(failed.status)
    print("The server is stopped. Your runs stay in mlflow.db and mlartifacts/ for the next `make tutorial`.")


if __name__ == "__main__":
    main()
