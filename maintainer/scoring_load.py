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


def send_requests(
    url: str, body: bytes, count: int, start_at: float, keep_alive: bool
) -> tuple[list[float], int, str, float, float]:
    """One client: `count` POSTs of `body`, over one connection, or a new one each time if not `keep_alive`.

    Returns the latencies, the error count, the first error, and when the client started and finished.
    """
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    latencies, errors, first_error = [], 0, ""
    time.sleep(max(0.0, start_at - time.time()))  # every client starts at the same moment
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
    return latencies, errors, first_error, began, time.time()


def run_load(url: str, payload: dict, clients: int, total_requests: int, keep_alive: bool = True) -> LoadResult:
    """`clients` processes send `total_requests` requests between them, all at once."""
    body = json.dumps(payload).encode()
    per_client = total_requests // clients
    start_at = time.time() + 1.0  # time for every process to start
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        pending = pool.starmap_async(send_requests, [(url, body, per_client, start_at, keep_alive)] * clients)
        results = pending.get(timeout=600)
    latencies = [latency for result in results for latency in result[0]]
    errors = sum(result[1] for result in results)
    first_error = next((result[2] for result in results if result[2]), "")
    # Wall time from the first client's first request to the last client's last answer.
    seconds = max(result[4] for result in results) - min(result[3] for result in results)
    return LoadResult(per_client * clients, errors, seconds, latencies, first_error)
