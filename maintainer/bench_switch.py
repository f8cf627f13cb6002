"""Measure the scoring service that follows @champion (docs/serving.md): the end of `make bench-serve`.

A tracking server with webhooks on, three versions of tracking-iris-lr (the notebook's best model, and two that call
every flower virginica or versicolor, so that each answer shows its version), and deploy/follower.py. Two clients
send one-row requests over keep-alive connections, 50 a second each, as the tests do: first steadily, then while the
alias moves to version 2 and back to 1 by webhook, then to 3 and back by polling. For each move: the seconds from the
move to the last answer of the old version, and the latency from the move to a second after, against the steady state.
"""

import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from cryptography.fernet import Fernet

from maintainer.scoring_load import run_load
from maintainer.tracking_server import WEBHOOK_SETTINGS, start_tracking_server
from tutorial import server_process
from tutorial.names import FEATURES, MODEL_NAME
from tutorial.venv import with_venv_on_path

FOLLOWER = Path(__file__).resolve().parent.parent / "deploy" / "follower.py"
SETOSA = {"dataframe_split": {"columns": FEATURES, "data": [[5.1, 3.5, 1.4, 0.2]]}}
CLIENTS, RATE, STEADY_SECONDS = 2, 50, 10
SECRET = "bench-only-webhook-secret"


def register_two_versions(client) -> None:
    """Version 1, the notebook's best model, is @champion; versions 2 and 3 call every flower virginica, versicolor."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    features, species = load_iris(return_X_y=True, as_frame=True)
    # The integer species make MLflow hint at missing values, which these flowers never have.
    warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column", UserWarning)
    mlflow.set_tracking_uri(client.tracking_uri)
    constant = [DummyClassifier(strategy="constant", constant=species) for species in (2, 1)]
    for model in (LogisticRegression(C=1.5, max_iter=1000), *constant):
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model.fit(features, species), name="model", input_example=features[:5],
                pip_requirements=["scikit-learn"], registered_model_name=MODEL_NAME,
            )  # fmt: skip
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")


def moves_under_load(client, proxy_url: str, moves: list) -> tuple[list, list]:
    """Move the alias to each version in turn under load; (alias moved at, old, new) for each, and every answer."""
    done = []

    def records() -> int:
        return len(client.search_runs([client.get_experiment_by_name("Deployments").experiment_id]))

    def move_and_wait() -> None:
        for old, new in moves:
            before = records()
            client.set_registered_model_alias(MODEL_NAME, "champion", new)
            done.append((time.time(), old, new))
            while records() == before:
                time.sleep(0.2)  # until the follower records the switch: the old colour is idle from then on
            time.sleep(1)

    load = run_load(
        f"{proxy_url}/invocations", SETOSA, CLIENTS, 10**6, True, retry_once=True, rate=RATE, during=move_and_wait
    )
    assert load.errors == 0, load.first_error
    return done, load.answers


def summary(latencies: list[float], steady_p99: float | None = None) -> str:
    """p50, p99 and max in ms, and p99 against the steady state's (the goal: at most 2x)."""
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    ratio = f"{cut[98] / steady_p99:9.2f}x" if steady_p99 else ""
    return f"{cut[49]:7.2f} {cut[98]:7.2f} {max(latencies):7.2f}{ratio}"


def main() -> None:
    if shutil.which("nginx") is None:
        print("\nA switch under load: not measured, no nginx here (Debian's `nginx` package)")
        return
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        settings = {**WEBHOOK_SETTINGS, "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode()}
        server, process = start_tracking_server(root, workers=2, settings=settings)
        follower = None
        try:
            client = server.client()
            register_two_versions(client)
            ports = [server_process.free_port() for _ in range(4)]
            proxy_url = f"http://127.0.0.1:{ports[0]}"
            webhook = client.create_webhook(
                "bench", f"http://127.0.0.1:{ports[3]}/webhook", ["model_version_alias.created"], secret=SECRET
            )
            # fmt: off
            command = [
                sys.executable, str(FOLLOWER), "--listen", f"127.0.0.1:{ports[0]}", "--ports", f"{ports[1]},{ports[2]}",
                "--webhook-listen", f"127.0.0.1:{ports[3]}", "--folder", str(root / "scoring"),
            ]
            # fmt: on
            env = with_venv_on_path(
                {**os.environ, "MLFLOW_TRACKING_URI": server.url, "FOLLOWER_WEBHOOK_SECRET": SECRET}
            )
            follower = server_process.start(command, root / "follower.log", cwd=root, env=env)
            server_process.wait_until_healthy(follower, f"{proxy_url}/ping", root / "follower.log")  # nginx is up
            steady = run_load(f"{proxy_url}/invocations", SETOSA, CLIENTS, CLIENTS * RATE * STEADY_SECONDS, rate=RATE)
            by_webhook = moves_under_load(client, proxy_url, [("1", "2"), ("2", "1")])
            client.update_webhook(webhook.webhook_id, status="DISABLED")
            time.sleep(int(WEBHOOK_SETTINGS["MLFLOW_WEBHOOK_CACHE_TTL"]) + 1)  # until every worker knows
            by_polling = moves_under_load(client, proxy_url, [("1", "3"), ("3", "1")])  # 2 is warm: not a start
        finally:
            if follower is not None:
                server_process.stop(follower)
            server_process.stop(process)
    print(f"\nA switch under load: {CLIENTS} keep-alive clients, {RATE} one-row requests a second each")
    print(f"{'':44} {'seconds':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99/steady':>10}")
    print(f"{'steady, ' + str(STEADY_SECONDS) + ' s':44} {'':7} {summary(steady.latencies_ms)}")
    steady_p99 = steady.percentile_ms(99)
    for how, (moves, answers) in (("webhook", by_webhook), ("polling", by_polling)):
        for (moved, old, new), (next_move, _, _) in zip(moves, [*moves[1:], (float("inf"), "", "")], strict=True):
            # From the move to the last answer of the old version; the latency from the move to a second after it.
            last_old = max(when for when, version, _, _ in answers if version == old and moved < when < next_move)
            during = [ms for when, _, _, ms in answers if moved <= when <= last_old + 1]
            name = f"{'rollback to the warm colour' if new == '1' else 'rollout'} {old} -> {new}, {how}"
            print(f"{name:44} {last_old - moved:7.2f} {summary(during, steady_p99)}")
