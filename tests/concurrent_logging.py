"""K client processes log M runs each into one brand-new experiment, all starting at the same moment.

Then every run is looked up on the server: in the experiment (good), in another experiment
(misfiled), or nowhere (lost). A client call that raised counts as failed.
"""

import multiprocessing
import time
from dataclasses import dataclass

# Imported by each client process: only the standard library at the top, so clients start fast.

# The race is in creating the experiment: clients released at once all try to create it, and 4 of them make it
# happen (steps/test_tracking_server.py also makes it deterministic). A few runs each are enough to see whether any
# run lands astray afterwards; more clients and runs only measure logging speed, at seconds of start-up each.
CLIENTS, RUNS_PER_CLIENT = 4, 3


@dataclass
class ConcurrencyResult:
    runs_expected: int
    runs_in_experiment: int
    misfiled: int  # created, but in another experiment
    lost: int  # created (the client got its id), but not on the server
    failed: int  # never created because a client call raised, or not FINISHED
    seconds: float
    first_error: str

    @property
    def runs_per_second(self) -> float:
        return self.runs_in_experiment / self.seconds

    def summary(self, backend: str) -> str:
        return (
            f"{backend}: {self.runs_in_experiment}/{self.runs_expected} runs in the experiment, "
            f"{self.runs_per_second:.1f} runs/s, lost {self.lost}, misfiled {self.misfiled}, failed {self.failed}"
        )


def log_runs(tracking_uri, experiment_name, client_index, runs, explicit_experiment_id, barrier, results) -> None:
    """One client process: the guide's way of logging, `runs` times. Puts (run ids, errors) on `results`."""
    import os
    import sys

    from tutorial import doctor

    sys.stdout = open(os.devnull, "w")  # MLflow prints a "View run" link per run: 200 lines of noise
    doctor.require(doctor.tracking_server(tracking_uri))
    # A short retry policy: a client that loses the server fails in seconds, and one busy moment is retried.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "2"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    run_ids, errors = [], []
    barrier.wait()  # every client calls set_experiment for a brand-new experiment at the same moment
    try:
        experiment = mlflow.set_experiment(experiment_name)
        for index in range(runs):
            # The safe way names the experiment on every run. Without it, start_run() uses the "active"
            # experiment, which set_experiment leaves unset when it loses the race to create it.
            experiment_id = experiment.experiment_id if explicit_experiment_id else None
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"client{client_index}-run{index}") as run:
                run_ids.append(run.info.run_id)
                mlflow.log_params({"client": client_index, "index": index})
                for step in range(3):
                    mlflow.log_metric("loss", 1.0 / (step + 1 + index), step=step)
    except Exception as err:  # a failed client is a finding to count, not a crash of the test
        errors.append(f"client {client_index}: {type(err).__name__}: {str(err)[:300]}")
    results.put((run_ids, errors))


def run_clients(
    tracking_uri: str, experiment_name: str, clients: int, runs_per_client: int, explicit_experiment_id: bool
) -> ConcurrencyResult:
    """Start the clients, wait for all of them, and check where every run went."""
    from mlflow import MlflowClient

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(clients + 1), context.Queue()
    processes = [
        context.Process(
            target=log_runs,
            args=(tracking_uri, experiment_name, k, runs_per_client, explicit_experiment_id, barrier, results),
        )
        for k in range(clients)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=120)  # all clients have imported mlflow and are ready
    started = time.monotonic()
    outcomes = [results.get(timeout=600) for _ in processes]
    seconds = time.monotonic() - started
    for process in processes:
        process.join(timeout=30)

    run_ids = [run_id for ids, _ in outcomes for run_id in ids]
    errors = [error for _, client_errors in outcomes for error in client_errors]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    in_experiment = {run.info.run_id for run in client.search_runs([experiment.experiment_id], max_results=5000)}
    misfiled = lost = 0
    for run_id in set(run_ids) - in_experiment:
        try:
            client.get_run(run_id)
            misfiled += 1  # the run exists, in another experiment
        except Exception:
            lost += 1
    unfinished = sum(client.get_run(run_id).info.status != "FINISHED" for run_id in in_experiment)
    never_started = clients * runs_per_client - len(run_ids)  # a client stopped at an error
    return ConcurrencyResult(
        runs_expected=clients * runs_per_client,
        runs_in_experiment=len(in_experiment),
        misfiled=misfiled,
        lost=lost,
        failed=never_started + unfinished,
        seconds=seconds,
        first_error=errors[0] if errors else "",
    )
