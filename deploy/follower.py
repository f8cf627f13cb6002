"""Keep a scoring service on the version that an alias names: blue/green `mlflow models serve` behind nginx.

It polls the registry every few seconds (the source of truth: a webhook can be lost) and acts at once on a signed
registry webhook. To move to a new version it starts the idle colour on it, gates it, switches nginx, and waits until
no request still goes to the old colour, which stays up, idle, for a rollback. A version that fails to start or fails
the gate never takes traffic. Every attempt becomes a run of the "Deployments" experiment. docs/serving.md shows how
to run it.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

MAX_AGE_SECONDS = 300  # a signed delivery older than this is refused, and ids are remembered this long


class Instance:
    """One colour: `mlflow models serve` pinned to one version, in its own process group."""

    def __init__(self, colour: str, port: int, folder: Path):
        self.colour, self.port, self.folder = colour, port, folder
        self.version, self.process = None, None

    def start(self, model: str, version: str) -> None:
        command = ["mlflow", "models", "serve", "-m", f"models:/{model}/{version}", "--env-manager", "local"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]  # 1 worker: no 40 ms stall
        with open(self.folder / f"{self.colour}.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        self.version = version
        print(f"{self.colour}: starting version {version}, process group {self.process.pid}", flush=True)

    def wait_until_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.colour} exited with code {self.process.returncode} ({self.colour}.log)")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.colour} did not answer /ping in {timeout:.0f} s ({self.colour}.log)")

    def predict(self, payload: dict) -> list:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/invocations",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)["predictions"]

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
        self.process, self.version = None, None


# tutorial/server_process.py has the same for the tooling; the follower ships alone in its image, without tutorial/.
def stop_group(process: subprocess.Popen, grace_seconds: float = 30) -> None:
    """SIGTERM a process group (uvicorn and nginx answer the requests in flight first), SIGKILL what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader, whose zombie would keep the group alive
            os.killpg(process.pid, 0)
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group is gone


class Proxy:
    """nginx, sending every request to the live colour and saying which version answered (X-Model-Version)."""

    def __init__(self, listen: str, folder: Path):
        self.listen, self.folder, self.process = listen, folder, None

    def route_to(self, instance: Instance) -> None:
        temp_paths = "".join(f"{kind}_temp_path {self.folder}/{kind};\n" for kind in ("client_body", "proxy"))
        (self.folder / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")  # as root, nginx's workers would run as `nobody`
            + f"daemon off;\nworker_processes 1;\npid {self.folder}/nginx.pid;\nerror_log stderr;\n"
            + f"events {{}}\nhttp {{\naccess_log off;\n{temp_paths}server {{\nlisten {self.listen};\nlocation / {{\n"
            + f"proxy_pass http://127.0.0.1:{instance.port};\nadd_header X-Model-Version {instance.version} always;\n"
            + "}\n}\n}\n"
        )
        if self.process is None:
            self.process = subprocess.Popen(
                ["nginx", "-e", "stderr", "-c", str(self.folder / "nginx.conf")], start_new_session=True
            )
            while not self.workers():  # a worker takes requests once the master has bound the port
                time.sleep(0.05)
            return
        old_workers = self.workers()
        self.process.send_signal(signal.SIGHUP)  # `nginx -s reload`: new workers; old ones finish what they hold
        while self.workers() & old_workers:  # until no old worker holds a request to the old colour
            time.sleep(0.05)

    def workers(self) -> set[int]:
        children = (Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")).read_text().split()
        return set(map(int, children))

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)


class Follower:
    def __init__(self, args: argparse.Namespace):
        self.model, self.alias, self.secret = args.model, args.alias, os.environ.get("FOLLOWER_WEBHOOK_SECRET", "")
        folder = Path(args.folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.live, self.idle = (
            Instance(colour, port, folder) for colour, port in zip(("blue", "green"), args.ports, strict=True)
        )
        self.proxy, self.client = Proxy(args.listen, folder), MlflowClient()
        self.wanted, self.reason, self.failed, self.seen = threading.Event(), "start", set(), {}
        self.lock, self.gates = threading.Lock(), {}
        mlflow.set_experiment("Deployments")

    def reconcile(self) -> None:
        """One at a time (the caller's one thread): make the live colour serve the alias's version."""
        reason, started = self.reason, time.monotonic()
        version = self.client.get_model_version_by_alias(self.model, self.alias).version
        if version == self.live.version or version in self.failed:
            return
        old, idle = self.live.version, self.idle
        try:
            if idle.version != version:  # not the previous version, kept warm for a rollback: start it
                idle.stop()
                idle.start(self.model, version)
            example, expected = self.expected(version)  # in this process, while the instance starts
            idle.wait_until_ready()
            ready = time.monotonic()
            served = idle.predict({"dataframe_split": example.to_dict(orient="split")})
            if served != expected:
                raise RuntimeError(f"the gate failed: served {served}, expected {expected}")
        except Exception as error:  # the live colour keeps serving; the failure is recorded once
            idle.stop()
            self.failed.add(version)
            return self.record(old, version, reason, {"rollout": time.monotonic() - started}, error=str(error))
        self.proxy.route_to(idle)  # returns once no request still goes to the old colour
        self.live, self.idle = idle, self.live  # the old colour stays up, idle: a rollback to it is a switch
        now = time.monotonic()
        self.record(old, version, reason, {"rollout": now - started, "ready": ready - started, "switch": now - ready})

    def expected(self, version: str) -> tuple[pd.DataFrame, list]:
        """The gate's question and answer: the version's own input example, and what the version predicts for it."""
        if version not in self.gates:  # a version's files never change: load it once
            model = mlflow.pyfunc.load_model(f"models:/{self.model}/{version}")
            example = pd.DataFrame(model.input_example)
            self.gates[version] = example, np.asarray(model.predict(example)).tolist()  # as JSON would have it
        return self.gates[version]

    def record(self, old, new, reason: str, seconds: dict, error: str = "") -> None:
        """A run of the Deployments experiment: from, to, why (poll, webhook, start), how long, and any error."""
        old = old or "none"
        print(f"{self.model}@{self.alias}: {old} -> {new} ({reason}): {error or 'switched'}", flush=True)
        with mlflow.start_run(run_name=f"{self.model} {old} -> {new}"):
            mlflow.set_tags({"model": self.model, "from_version": old, "to_version": new, "reason": reason})
            mlflow.log_metrics({f"{name}_seconds": value for name, value in seconds.items()})
            if error:
                mlflow.set_tag("error", error[:5000])
                mlflow.end_run("FAILED")

    def run(self, poll_seconds: float) -> None:
        while True:
            try:
                self.reconcile()
            except Exception as error:  # the registry is down, or the alias is gone: keep serving, try again
                print(f"{self.model}@{self.alias}: cannot reconcile: {error}", flush=True)
            self.reason = "webhook" if self.wanted.wait(poll_seconds) else "poll"
            self.wanted.clear()

    def refusal(self, headers, body: bytes) -> tuple[int, str] | None:
        """Why a webhook delivery is refused, or None for a fresh one that MLflow signed with our secret."""
        delivery, stamp = headers.get("X-MLflow-Delivery-Id", ""), headers.get("X-MLflow-Timestamp", "")
        signed = f"{delivery}.{stamp}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.digest(self.secret.encode(), signed, hashlib.sha256)).decode()
        if not self.secret or not hmac.compare_digest(
            headers.get("X-MLflow-Signature", "").encode(), expected.encode()
        ):
            return 401, "bad signature"
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_AGE_SECONDS:
            return 400, "stale timestamp"
        with self.lock:  # a replay inside the age limit; older ones are stale already
            self.seen = {key: when for key, when in self.seen.items() if time.time() - when < 2 * MAX_AGE_SECONDS}
            if delivery in self.seen:
                return 409, "delivery already seen"
            self.seen[delivery] = time.time()
        return None

    def on_webhook(self, headers, body: bytes) -> tuple[int, str]:
        refused = self.refusal(headers, body)
        if refused:
            return refused
        data = json.loads(body).get("data", {})
        if (data.get("name"), data.get("alias")) != (self.model, self.alias):
            return 200, "not ours: ignored"
        self.wanted.set()  # the reconcile thread wakes up now, not at the next poll
        return 200, "reconciling"


def serve_webhooks(follower: Follower, listen: str) -> ThreadingHTTPServer:
    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, text = follower.on_webhook(self.headers, body)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args):
            pass  # a line per delivery would bury the switches in the log

    host, port = listen.rsplit(":", 1)
    try:
        server = ThreadingHTTPServer((host, int(port)), Webhook)
    except OSError as error:
        sys.exit(
            f"error: the webhook listener cannot use {listen}: {error.strerror} (another follower? --webhook-listen)"
        )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tracking-iris-lr")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="where nginx takes the scoring requests")
    parser.add_argument("--ports", default="8081,8082", type=lambda text: [int(p) for p in text.split(",")])
    parser.add_argument("--webhook-listen", default="127.0.0.1:8090", help="an internal address only")
    parser.add_argument("--poll-seconds", default=5.0, type=float)
    parser.add_argument("--folder", default=".scoring", help="for nginx.conf and the instances' logs")
    args = parser.parse_args()
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        sys.exit("error: set MLFLOW_TRACKING_URI to the tracking server's address, such as http://127.0.0.1:5000")
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
    except OSError as error:
        sys.exit(f"error: no tracking server answers at {uri} ({error}): start it first (docs/serving.md)")
    if shutil.which("nginx") is None:
        sys.exit("error: no nginx on the PATH: install it (Debian and Ubuntu: sudo apt-get install nginx)")
    if not os.environ.get("FOLLOWER_WEBHOOK_SECRET"):
        print(
            f"no FOLLOWER_WEBHOOK_SECRET: every webhook is refused, the registry is read every {args.poll_seconds:g} s"
        )
    follower = Follower(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # then stop nginx and the instances, below
    try:
        serve_webhooks(follower, args.webhook_listen)
        follower.run(args.poll_seconds)
    finally:
        for process in (follower.proxy, follower.live, follower.idle):
            process.stop()


if __name__ == "__main__":
    main()
