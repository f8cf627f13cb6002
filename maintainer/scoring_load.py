"""Send many /invocations requests from several client processes at once, and time each one.

Shared by the serving tests (a bounded load check) and `make bench-serve` (the figures).
Each client is its own process with one keep-alive HTTP connection, like a real application,
so the clients do not share Python's GIL.
"""

import http.client
import json
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    first_error: str = ""

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, percent: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[percent - 1]


@dataclass
class ClientResult:
    latencies_ms: list[float]
    errors: int
    first_error: str
    began: float  # when its first request went out (time.time())
    ended: float  # when its last answer came back


def send_requests(url: str, body: bytes, count: int, barrier, keep_alive: bool, results) -> None:
    """One client: `count` POSTs of `body`, over one connection, or a new one each time if not `keep_alive`.

    It waits at `barrier` until every client has started, then puts its ClientResult on `results`.
    """
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    latencies, errors, first_error = [], 0, ""
    barrier.wait(timeout=120)  # every client starts at the same moment, however long the others took to start
    began = time.time()
    for _ in range(count):
        started = time.perf_counter()
        try:
            connection.request("POST", address.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200 or b'"predictions"' not in answer:
                raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
            if not keep_alive:
                connection.close()  # the next request opens a new connection
        except Exception as err:  # count it and go on: the caller decides whether errors are allowed
            errors += 1
            first_error = first_error or repr(err)
            connection.close()
            continue
        latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    results.put(ClientResult(latencies, errors, first_error, began, time.time()))


def run_load(url: str, payload: dict, clients: int, total_requests: int, keep_alive: bool = True) -> LoadResult:
    """`clients` processes send `total_requests` requests between them, all at once."""
    body = json.dumps(payload).encode()
    per_client = total_requests // clients
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(clients), context.Queue()
    processes = [
        context.Process(target=send_requests, args=(url, body, per_client, barrier, keep_alive, queue))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    try:
        results = [queue.get(timeout=600) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()  # a client stuck on a dead server: never leave it behind
    latencies = [latency for result in results for latency in result.latencies_ms]
    errors = sum(result.errors for result in results)
    first_error = next((result.first_error for result in results if result.first_error), "")
    # Wall time from the first client's first request to the last client's last answer.
    seconds = max(result.ended for result in results) - min(result.began for result in results)
    return LoadResult(per_client * clients, errors, seconds, latencies, first_error)
