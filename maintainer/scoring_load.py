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
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    first_error: str = ""
    # Every answer, in the order they came: (time.time(), X-Model-Version or "", the predictions' JSON, milliseconds).
    answers: list[tuple[float, str, str, float]] = field(default_factory=list)
    resets: int = 0  # connections reset before any byte of an answer, each retried once (retry_once)

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
    answers: list[tuple[float, str, str, float]]
    resets: int


# What a keep-alive client sees when the server closes an idle connection just as a request goes out (nginx does on
# a reload): nothing of an answer has come back, so sending the request again is safe for an idempotent one.
RESET_BEFORE_ANSWER = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


def send_requests(url: str, body: bytes, count: int, barrier, keep_alive: bool, retry_once: bool, rate, stop, results):
    """One client: up to `count` POSTs of `body` until `stop` is set, as fast as the server answers or `rate` a second,
    over one connection, or a new one each time if not `keep_alive`. With `retry_once`, a request whose connection was
    reset before any answer is sent again, once, on a new connection.

    It waits at `barrier` until every client has started, then puts its ClientResult on `results`.
    """
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    latencies, errors, first_error, answers, resets = [], 0, "", [], 0
    barrier.wait(timeout=120)  # every client starts at the same moment, however long the others took to start
    began, next_request = time.time(), time.perf_counter()
    for _ in range(count):
        if stop.is_set():
            break
        if rate:
            next_request += 1 / rate
            time.sleep(max(0.0, next_request - time.perf_counter()))
        started = time.perf_counter()
        try:
            for attempt in (1, 2):
                try:
                    connection.request("POST", address.path, body=body, headers=headers)
                    response = connection.getresponse()
                    break
                except RESET_BEFORE_ANSWER:
                    connection.close()
                    if not retry_once or attempt == 2:
                        raise
                    resets += 1
            answer = response.read()
            if response.status != 200 or b'"predictions"' not in answer:
                raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
            latency_ms = (time.perf_counter() - started) * 1000
            answers.append((time.time(), response.getheader("X-Model-Version", ""), answer.decode(), latency_ms))
            if not keep_alive:
                connection.close()  # the next request opens a new connection
        except Exception as err:  # count it and go on: the caller decides whether errors are allowed
            errors += 1
            first_error = first_error or repr(err)
            connection.close()
            continue
        latencies.append(latency_ms)
    connection.close()
    results.put(ClientResult(latencies, errors, first_error, began, time.time(), answers, resets))


def run_load(
    url: str,
    payload: dict,
    clients: int,
    total_requests: int,
    keep_alive: bool = True,
    retry_once: bool = False,
    rate: float | None = None,
    during=None,
) -> LoadResult:
    """`clients` processes send `total_requests` requests between them, all at once; each `rate` a second if given.

    With `during`, a function, this process calls it while the clients send, and the clients stop when it returns.
    """
    body = json.dumps(payload).encode()
    per_client = total_requests // clients
    context = multiprocessing.get_context("spawn")
    barrier, queue, stop = context.Barrier(clients + 1), context.Queue(), context.Event()
    processes = [
        context.Process(
            target=send_requests, args=(url, body, per_client, barrier, keep_alive, retry_once, rate, stop, queue)
        )
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=120)
        if during is not None:
            during()
            stop.set()
        results = [queue.get(timeout=600) for _ in processes]
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()  # a client stuck on a dead server: never leave it behind
    latencies = [latency for result in results for latency in result.latencies_ms]
    errors = sum(result.errors for result in results)
    first_error = next((result.first_error for result in results if result.first_error), "")
    # Wall time from the first client's first request to the last client's last answer.
    seconds = max(result.ended for result in results) - min(result.began for result in results)
    answers = sorted(answer for result in results for answer in result.answers)
    requests = len(latencies) + errors
    return LoadResult(requests, errors, seconds, latencies, first_error, answers, sum(r.resets for r in results))
