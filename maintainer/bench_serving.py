"""Measure the REST server of the serving step: what `make bench-serve` runs.

It saves an iris model like the notebook's champion into a temp folder (no tracking server
needed), serves it with `mlflow models serve --workers 1` and then `--workers 2`, and sends
single-row requests from 1 and from 4 client processes. Every figure is the median of
REPEATS rounds, measured in this run. Last, it times `pyfunc.predict` against the raw
scikit-learn `predict` in this process, one row per call, as the server calls it.
"""

import os
import statistics
import tempfile
import timeit
from pathlib import Path

from maintainer import bench_switch
from maintainer.scoring_load import run_load
from tutorial import server_process
from tutorial.names import FEATURES
from tutorial.venv import with_venv_on_path

# mlflow and scikit-learn are imported inside the functions that use them, not here: each client
# process of run_load() starts by importing this module, and should be sending requests in
# a fraction of a second, not after seconds of imports.

ROUND_SECONDS = 3  # each round sends about this many seconds' worth of requests (200 to 2000)
REPEATS = 3
ONE_FLOWER = {"dataframe_split": {"columns": FEATURES, "data": [[6.7, 3.0, 5.2, 2.3]]}}  # a virginica, by name


def save_iris_model(folder: Path) -> Path:
    """The notebook's best model (C=1.5), saved as an MLflow model folder with its signature."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, species = load_iris(return_X_y=True)
    model = LogisticRegression(C=1.5, max_iter=1000, random_state=42).fit(features, species)
    path = folder / "iris_lr"
    mlflow.sklearn.save_model(
        model, path, signature=infer_signature(features, model.predict(features)), input_example=features[:5]
    )
    return path


def measure_server(model_path: Path, workers: int, log_file: Path) -> list[tuple]:
    """Rows of (workers, connection, clients, req/s, p50 ms, p99 ms, errors, server CPU ms per request)."""
    port = server_process.free_port()
    # fmt: off
    command = [
        "mlflow", "models", "serve", "-m", str(model_path), "-p", str(port),
        "--env-manager", "local", "--workers", str(workers),
    ]
    # fmt: on
    server = server_process.start(command, log_file, cwd=model_path.parent, env=with_venv_on_path(dict(os.environ)))
    url = f"http://127.0.0.1:{port}/invocations"
    rows = []
    try:
        server_process.wait_until_healthy(server, f"http://127.0.0.1:{port}/ping", log_file)
        run_load(url, ONE_FLOWER, clients=4, total_requests=400, keep_alive=False)  # warm up every worker
        for keep_alive in (True, False):
            for clients in (1, 4):
                # Size the rounds to last about ROUND_SECONDS, whatever the speed of this configuration.
                probe = run_load(url, ONE_FLOWER, clients, 20 * clients, keep_alive)
                requests = clients * int(min(2000, max(200, probe.requests_per_second * ROUND_SECONDS)) // clients)
                cpu_before = group_cpu_seconds(server.pid)
                rounds = [run_load(url, ONE_FLOWER, clients, requests, keep_alive) for _ in range(REPEATS)]
                cpu_ms = (group_cpu_seconds(server.pid) - cpu_before) / (requests * REPEATS) * 1000
                rows.append(
                    (
                        workers,
                        "keep-alive" if keep_alive else "new",
                        clients,
                        statistics.median(r.requests_per_second for r in rounds),
                        statistics.median(r.percentile_ms(50) for r in rounds),
                        statistics.median(r.percentile_ms(99) for r in rounds),
                        sum(r.errors for r in rounds),
                        cpu_ms,
                    )
                )
    finally:
        server_process.stop(server)
    return rows


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group (Linux /proc; NaN elsewhere)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats = list(Path("/proc").glob("[0-9]*/stat"))
    if not stats:
        return float("nan")
    for stat in stats:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process has just exited
        if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ..., utime (11), stime (12)
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def per_call_microseconds(models: dict, rows, calls: int = 2000) -> dict:
    """The median time of one predict call for each model, the models taking turns so noise hits both alike."""
    timings = {name: [] for name in models}
    for _ in range(REPEATS * 2):
        for name, model in models.items():
            model.predict(rows)  # the first call pays one-off costs
            timings[name].append(timeit.timeit(lambda m=model: m.predict(rows), number=calls) / calls * 1e6)
    return {name: statistics.median(times) for name, times in timings.items()}


def main() -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as temp:
        model_path = save_iris_model(Path(temp))
        # A pure-Python reference, to compare this machine's figures with another's.
        reference_ms = min(timeit.repeat("sum(range(10**6))", number=10, repeat=5)) / 10 * 1000
        print(f"CPU reference: sum(range(10**6)) takes {reference_ms:.1f} ms here, on {os.cpu_count()} cores\n")
        print(f"REST server, one row per request: median of {REPEATS} rounds of ~{ROUND_SECONDS} s each")
        print("connection: one keep-alive connection per client, or a new connection for every request")
        header = ("workers", "connection", "clients", "req/s", "p50 ms", "p99 ms", "errors", "server CPU ms/req")
        print("{:>7} {:>10} {:>7} {:>6} {:>7} {:>7} {:>6} {:>17}".format(*header))
        for workers in (1, 2):
            for row in measure_server(model_path, workers, Path(temp) / f"serve-{workers}.log"):
                print("{:>7} {:>10} {:>7} {:>6.0f} {:>7.2f} {:>7.2f} {:>6} {:>17.2f}".format(*row), flush=True)

        pyfunc_model = mlflow.pyfunc.load_model(str(model_path))
        sklearn_model = mlflow.sklearn.load_model(str(model_path))
        flower = pyfunc_model.input_example[:1]
        timings = per_call_microseconds({"scikit-learn": sklearn_model, "pyfunc": pyfunc_model}, flower)
        print("\nIn-process predict, one row per call (median of alternating rounds):")
        print(f"  scikit-learn  {timings['scikit-learn']:6.0f} us")
        ratio = timings["pyfunc"] / timings["scikit-learn"]
        print(f"  pyfunc        {timings['pyfunc']:6.0f} us  ({ratio:.2f}x scikit-learn)")
    bench_switch.main()


if __name__ == "__main__":
    main()
