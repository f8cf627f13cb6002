"""Find what stops the guide from working, and say how to fix it: `make doctor`, or `python -m tutorial.doctor`.

Each check prints one line: what it found and, for a problem, the exact fix. The exit code is 0 when every
check holds and 1 otherwise. `make tutorial` and `make serve` run the checks they need (require) before
they start, so each condition is checked in one place. docs/troubleshooting.md covers what this cannot fix.

Standard library only, in Python 3.9 syntax: it must run before .venv exists, and on the python3 of a
Mac that is too old for the guide, to say so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tutorial import check_python
from tutorial.names import CHAMPION_URI, MODEL_NAME, TRACKING_PORT

REPO = Path(__file__).resolve().parent.parent
MIGRATE_FILE_STORE = ".venv/bin/mlflow migrate-filestore --source . --target sqlite:///mlflow.db"
UPGRADE_DATABASE = "back it up (cp mlflow.db mlflow.db.bak), then run `.venv/bin/mlflow db upgrade sqlite:///mlflow.db`"
RUN_LINK = "\N{RUNNER}"  # MLflow starts the line with a run's link with this emoji


@dataclass(frozen=True)
class Finding:
    """One check's result: `message` says what it found and, when not `ok`, ends with the fix."""

    check: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.check}: {self.message}"


def exit_with_error(message: str, exit_code: int = 2) -> NoReturn:
    """A user's mistake gets one line on stderr and a non-zero exit, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)


def require(*findings: Finding) -> None:
    """What `make tutorial` and `make serve` do with a check: stop, in one line, at the first problem."""
    for finding in findings:
        if not finding.ok:
            exit_with_error(finding.message)


# ---- The checks, in the order `make doctor` runs them ----


def python_version() -> Finding:
    problem = check_python.problem()
    found = "{}.{}.{}".format(*sys.version_info[:3])
    return Finding("python", not problem, problem or f"{sys.executable} is Python {found}, which the guide supports")


def venv_python(venv: Path) -> Path:
    windows = venv / "Scripts" / "python.exe"
    return windows if windows.exists() else venv / "bin" / "python"


# Run by the venv's own Python, which has `packaging` (MLflow needs it): evaluates requirements.txt's markers there.
COMPARE_WITH_REQUIREMENTS = """
import importlib.metadata as metadata, json, sys
from packaging.requirements import Requirement
pinned, wrong = 0, []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#")[0].strip()
    if not line or line.startswith("-"):
        continue
    requirement = Requirement(line)
    if requirement.marker and not requirement.marker.evaluate():
        continue
    pinned += 1
    try:
        found = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        wrong.append(f"{requirement.name} is missing")
        continue
    if not requirement.specifier.contains(found, prereleases=True):
        wrong.append(f"{requirement.name} is {found}, not {requirement.specifier}")
print(json.dumps({"python": sys.version.split()[0], "pinned": pinned, "wrong": wrong}))
"""


# `make test-latest` writes what it installed beside its venv (the newest releases, not the lock's): that venv is judged
# by it. Any other venv is judged by the lock.
BUILT_FROM = "requirements-installed.txt"


def built_from(venv: Path) -> Path:
    return venv / BUILT_FROM if (venv / BUILT_FROM).is_file() else REPO / "requirements.txt"


def venv_packages(venv: Path, requirements: Path) -> Finding:
    python = venv_python(venv)
    if not python.exists():
        return Finding("venv", False, f"there is no {venv.name}/: run `make setup` (without make, README step 1)")
    try:
        result = subprocess.run(
            [str(python), "-I", "-c", COMPARE_WITH_REQUIREMENTS, str(requirements)],  # -I: no PYTHONPATH
            capture_output=True,
            text=True,
            timeout=60,
        )
        report = json.loads(result.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return Finding("venv", False, f"{python} does not run: delete {venv.name}/ and run `make setup`")
    pins = requirements.name if requirements.parent == REPO else f"{venv.name}/{requirements.name}"
    if report["wrong"]:
        more = f" (and {len(report['wrong']) - 1} more)" if len(report["wrong"]) > 1 else ""
        fix = (
            f"`rm {venv.name}/.installed` and `make setup` (without make: `pip install -r requirements.txt`)"
            if requirements.parent == REPO
            else "`make test-latest`, which builds it again"
        )
        return Finding("venv", False, f"{venv.name}/ does not match {pins}: {report['wrong'][0]}{more}: run {fix}")
    return Finding("venv", True, f"{venv.name}/ (Python {report['python']}) has the {report['pinned']} pins of {pins}")


def tls_context() -> ssl.SSLContext:
    """Trust what MLflow trusts: the CA named by MLFLOW_TRACKING_SERVER_CERT_PATH, if it can be read."""
    try:
        return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    except (OSError, ssl.SSLError):
        return ssl.create_default_context()  # the certificate check below names the problem


def get(url: str, host: str | None = None, timeout: float = 2, limit: int | None = 200) -> tuple[int, str]:
    """GET `url` (with another Host header, if given): the status and the first `limit` bytes of the answer."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=tls_context()) as response:
            return response.status, response.read(limit).decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(limit).decode(errors="replace")


def get_json(url: str) -> tuple[int, dict]:
    """GET a JSON answer of MLflow's REST API: the status and the answer, an error's too."""
    try:
        status, answer = get(url, timeout=5, limit=None)
        return status, json.loads(answer)
    except (OSError, ValueError):  # a server that stopped meanwhile, or an answer that is not JSON
        return 0, {}


def is_server_uri(uri: str) -> bool:
    """http(s) URIs name a server; sqlite:///..., file:... and the like are local stores MLflow opens itself."""
    return uri.startswith(("http://", "https://"))


def start_server(uri: str) -> str:
    """How to start the tracking server at `uri`, on its own port."""
    port = urllib.parse.urlsplit(uri).port or TRACKING_PORT
    on_port = ("", "") if port == TRACKING_PORT else (f" PORT={port}", f" --port {port}")
    return f"start it with `make tutorial{on_port[0]}`, or `mlflow ui --workers 1{on_port[1]}` in another terminal"


def tracking_server(uri: str) -> Finding:
    """Something answers at `uri`, and it is MLflow."""
    if not is_server_uri(uri):
        return Finding("server", True, f"MLFLOW_TRACKING_URI={uri} is a store MLflow opens itself: no server needed")
    try:
        status, answer = get(f"{uri.rstrip('/')}/health")
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return Finding(
                "server",
                False,
                f"{uri} has a certificate this machine does not trust ({reason.verify_message}): set "
                "MLFLOW_TRACKING_SERVER_CERT_PATH to your team's CA certificate",
            )
        return Finding(
            "server",
            False,
            f"no MLflow tracking server answers at {uri} ({reason}): {start_server(uri)}, "
            "or set MLFLOW_TRACKING_URI to your server",
        )
    if status != 200 or answer.strip() != "OK":
        # Something listens, but it is not MLflow. On macOS, AirPlay Receiver holds port 5000 and answers 403.
        return Finding(
            "server",
            False,
            f"{uri} answered HTTP {status}, so it is not an MLflow server (on macOS, AirPlay Receiver holds port "
            "5000): use another port, `make tutorial PORT=5001`, or `mlflow ui --port 5001` with "
            "MLFLOW_TRACKING_URI=http://127.0.0.1:5001",
        )
    try:
        version = get(f"{uri.rstrip('/')}/version")[1].strip()
    except OSError:
        version = "?"
    return Finding("server", True, f"MLflow {version} answers at {uri}")


def codespace_address(port: int, env: dict) -> str | None:
    """In a GitHub Codespace, the address the browser reaches `port` at: <codespace>-<port>.<forwarding domain>."""
    name, domain = env.get("CODESPACE_NAME"), env.get("GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN")
    if env.get("CODESPACES") != "true" or not name or not domain:
        return None
    return f"{name}-{port}.{domain}"


def allowed_host(uri: str, env: dict) -> Finding:
    """The server serves requests addressed to this URI's host (and, in a Codespace, to its forwarded address).

    /health answers any address. The rest of MLflow refuses a Host header outside localhost and private addresses,
    its protection against DNS rebinding: a team server's name, or a Codespace's forwarded address, must be listed.
    """
    if not is_server_uri(uri):
        return Finding("host", True, "no server, so no Host header")
    search = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    address = urllib.parse.urlsplit(uri).netloc
    forwarded = codespace_address(urllib.parse.urlsplit(uri).port or 80, env)
    for host in [address] + ([forwarded] if forwarded else []):
        try:
            status, answer = get(search, host=host if host != address else None)
        except OSError as err:
            reason = getattr(err, "reason", err)
            return Finding("host", False, f"{search} did not answer ({reason}): {start_server(uri)}")
        if status == 403 and answer.startswith("Invalid Host header"):  # MLflow's own words
            if host == forwarded:
                return Finding(
                    "host",
                    False,
                    f"the server refuses this Codespace's address {forwarded} (HTTP 403, Invalid Host header), so "
                    "the browser cannot use the UI: start it with `make tutorial`, which allows that address",
                )
            return Finding(
                "host",
                False,
                f"{uri} refuses requests addressed to {address} (HTTP 403, Invalid Host header): start the server "
                f"with --allowed-hosts {address} (or MLFLOW_SERVER_ALLOWED_HOSTS={address}), or use its local address",
            )
    accepted = f"{address} and {forwarded}" if forwarded else address
    return Finding("host", True, f"the server accepts requests addressed to {accepted}")


def local_experiments(folder: Path) -> list[str]:
    """The names of the experiments in folder/mlflow.db, Default aside, read without changing it."""
    if not (folder / "mlflow.db").exists():
        return []
    try:
        with sqlite3.connect(f"file:{folder / 'mlflow.db'}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT name FROM experiments WHERE name != 'Default' ORDER BY experiment_id")
            return [name for (name,) in rows]
    except sqlite3.Error:
        return []


def same_store(uri: str, folder: Path, port: int) -> Finding:
    """The server keeps its runs in this folder's mlflow.db: a server started in another folder holds other runs."""
    names = local_experiments(folder)
    if not is_server_uri(uri) or not names:
        return Finding("store", True, "no runs in this folder's mlflow.db to look for on the server")
    query = urllib.parse.urlencode({"experiment_name": names[0]})
    status, _ = get_json(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?{query}")
    if status == 404:
        return Finding(
            "store",
            False,
            f"this folder's mlflow.db holds the experiment {names[0]!r}, which the server at {uri} does not: it was "
            f"started in another folder. Stop it (Ctrl+C in its terminal), and in {folder}, "
            f"{start_server(f'http://127.0.0.1:{port}')}",
        )
    return Finding("store", True, f"the server holds this folder's experiment {names[0]!r}")


def registry(uri: str, folder: Path) -> Finding:
    """The notebook's model is registered, and @champion names a version whose files the server has: what steps 6
    to 9 load."""
    if not is_server_uri(uri):
        return Finding("registry", True, f"not checked: MLFLOW_TRACKING_URI={uri} is a store MLflow opens itself")
    api = f"{uri.rstrip('/')}/api/2.0"
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    status, answer = get_json(f"{api}/mlflow/registered-models/alias?{query}")
    if status != 200:
        run_notebook = f"MLFLOW_TRACKING_URI={uri} python -m tutorial.notebook"
        return Finding(
            "registry",
            False,
            f"the server has no {CHAMPION_URI} ({answer.get('error_code', f'HTTP {status}')}), which steps 6 to 9 "
            f"load: run the notebook first, README step 4 (`{run_notebook}`)",
        )
    version = answer["model_version"]["version"]
    query = urllib.parse.urlencode({"name": MODEL_NAME, "version": version})
    artifact_uri = get_json(f"{api}/mlflow/model-versions/get-download-uri?{query}")[1].get("artifact_uri", "")
    if not artifact_uri.startswith("mlflow-artifacts:/"):
        where = f"its files at {artifact_uri} not checked"
        return Finding("registry", True, f"{CHAMPION_URI} is version {version}; {where}")
    path = urllib.parse.quote(artifact_uri.removeprefix("mlflow-artifacts:/").lstrip("/"))
    files = get_json(f"{api}/mlflow-artifacts/artifacts?path={path}")[1].get("files", [])
    if not any(entry.get("path") == "MLmodel" for entry in files):
        return Finding(
            "registry",
            False,
            f"{CHAMPION_URI} is version {version}, but the server has none of its files ({artifact_uri}/MLmodel): "
            f"its mlartifacts/ is not the one beside its mlflow.db. Start the server in the folder that holds both",
        )
    return Finding("registry", True, f"{CHAMPION_URI} is version {version}, and the server has its files")


def migration_revisions(venv: Path) -> tuple[set[str], str | None]:
    """Every schema revision the venv's MLflow knows, and the newest, read from its migration scripts."""
    scripts = list(venv.glob("lib/python3*/site-packages/mlflow/store/db_migrations/versions/*.py"))
    scripts += venv.glob("Lib/site-packages/mlflow/store/db_migrations/versions/*.py")  # Windows
    revisions, parents = set(), set()
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        revision = re.search(r"^revision = ['\"](\w+)['\"]", text, re.MULTILINE)
        if revision:
            revisions.add(revision[1])
            parents.update(re.findall(r"['\"](\w+)['\"]", text.split("down_revision", 1)[1].split("\n", 1)[0]))
    heads = revisions - parents
    return revisions, heads.pop() if len(heads) == 1 else None


def database_schema(folder: Path, venv: Path) -> Finding:
    """mlflow.db's schema is the one the venv's MLflow expects: MLflow refuses to start on an older one."""
    database = folder / "mlflow.db"
    if not database.exists():
        return Finding("database", True, "no mlflow.db yet: the tracking server creates it")
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        row = None  # an empty file, or tables MLflow has not made yet: the server migrates it
    revisions, newest = migration_revisions(venv)
    if row is None or newest is None or row[0] == newest:
        return Finding("database", True, "mlflow.db's schema is the one the venv's MLflow expects")
    if row[0] in revisions:
        return Finding(
            "database", False, f"mlflow.db was made by an older MLflow and needs a schema migration: {UPGRADE_DATABASE}"
        )
    return Finding(
        "database",
        False,
        "mlflow.db was made by a newer MLflow than the venv's: `git pull` and `make setup` to get it, "
        "or start over in another folder",
    )


def has_file_store_runs(folder: Path) -> bool:
    """True if folder/mlruns holds an older MLflow's file store: MLflow's own test, an mlruns/<id>/meta.yaml."""
    experiments = folder / "mlruns"
    return experiments.is_dir() and any(
        entry.name.isdigit() and (entry / "meta.yaml").exists() for entry in experiments.iterdir()
    )


def file_store(folder: Path) -> Finding:
    """An older MLflow's ./mlruns: MLflow 3 opens it instead of a new mlflow.db, then refuses it."""
    if not has_file_store_runs(folder):
        return Finding("mlruns", True, "no older MLflow's mlruns/ store")
    if (folder / "mlflow.db").exists():
        return Finding("mlruns", True, "mlruns/ holds an older MLflow's runs; the guide's server uses mlflow.db")
    return Finding(
        "mlruns",
        False,
        "mlruns/ holds runs in the file store of an older MLflow, which MLflow 3.17 refuses to open: copy them "
        f"into mlflow.db with `{MIGRATE_FILE_STORE}`, then run `make tutorial` again (their files stay in mlruns/)",
    )


def port_is_taken(port: int) -> bool:
    """True if something already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port(port: int, fix: str, check: str = "port") -> Finding:
    if port_is_taken(port):
        return Finding(check, False, f"port {port} is already in use: {fix}")
    return Finding(check, True, f"port {port} is free")


def serving_port(port: int, tracking_port: int, serving_already: bool = True) -> Finding:
    """`make serve` and the README's `mlflow models serve` need the port after the tracking server's. For `make
    doctor`, a scoring server that answers there already (step 8's, `serving_already`) is no problem."""
    try:
        if serving_already and get(f"http://127.0.0.1:{port}/ping")[0] == 200:  # as a scoring server answers
            return Finding("serving", True, f"a scoring server answers on port {port} (step 8's `make serve`?)")
    except (OSError, ValueError):
        pass  # nothing answers HTTP there, or not as a scoring server
    on_port = "" if tracking_port == TRACKING_PORT else f" PORT={tracking_port}"
    fix = f"stop the program on it (an earlier `make serve`?), or `make serve{on_port} SERVE_PORT={port + 2}`"
    return free_port(port, fix, "serving")


def certificate(env: dict) -> Finding:
    """MLFLOW_TRACKING_SERVER_CERT_PATH, set for a team server with its own certificate authority, can be read."""
    path = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if not path:
        return Finding("certificate", True, "MLFLOW_TRACKING_SERVER_CERT_PATH is not set: the system's CAs are used")
    if not os.path.isfile(path):
        return Finding(
            "certificate",
            False,
            f"MLFLOW_TRACKING_SERVER_CERT_PATH={path} is not a file: give your server's CA certificate",
        )
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as err:
        return Finding(
            "certificate", False, f"MLFLOW_TRACKING_SERVER_CERT_PATH={path} is not a PEM certificate ({err.reason})"
        )
    return Finding("certificate", True, f"MLFLOW_TRACKING_SERVER_CERT_PATH={path} is a certificate")


def output_encoding(stream) -> Finding:
    """The steps' output can show MLflow's run links, which start with an emoji."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        RUN_LINK.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return Finding(
            "output",
            False,
            f"this output is in {encoding}, which cannot show MLflow's run links (the smoke test prints '?'): "
            "set PYTHONUTF8=1 (PowerShell: `$env:PYTHONUTF8 = 1`) before you run the steps",
        )
    return Finding("output", True, f"this output is in {encoding}, which shows MLflow's run links")


INSTALL_JAVA = (
    "install Java 17 or newer (Debian, Ubuntu: `sudo apt install openjdk-17-jre-headless`; macOS: "
    "`brew install openjdk@17`; Windows: `winget install Microsoft.OpenJDK.17`)"
)


def java(env: dict) -> Finding:
    """Spark needs Java 17 or newer: the one JAVA_HOME names, as Spark picks it, or else `java` on PATH."""
    java_home = env.get("JAVA_HOME")
    command = str(Path(java_home, "bin", "java")) if java_home else shutil.which("java", path=env.get("PATH"))
    where = f"JAVA_HOME={java_home}" if java_home else "PATH"
    if not command or not Path(command).is_file():
        return Finding("java", False, f"Spark needs Java, and there is none on {where}: {INSTALL_JAVA}")
    try:
        banner = subprocess.run([command, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as err:
        return Finding("java", False, f"{command} does not run ({err}): {INSTALL_JAVA}")
    version = re.search(r'version "(?:1\.)?(\d+)', banner)
    if version is None or int(version[1]) < 17:
        found = f"Java {version[1]}" if version else "an unknown Java"
        return Finding("java", False, f"{command} is {found}, and Spark 4 needs 17 or newer: {INSTALL_JAVA}")
    return Finding("java", True, f"{command} is Java {version[1]}, which Spark 4 runs on")


def has_pyspark(venv: Path) -> bool:
    return any(venv.glob("lib/python3*/site-packages/pyspark")) or (venv / "Lib/site-packages/pyspark").is_dir()


def run_checks(port: int, venv: Path, env: dict) -> list[Finding]:
    uri = env.get("MLFLOW_TRACKING_URI") or f"http://127.0.0.1:{port}"
    server = tracking_server(uri)
    host = allowed_host(uri, env) if server.ok else Finding("host", True, "not checked: no server answered")
    # What the server holds, asked only of a server that answers this address.
    answers = server.ok and host.ok
    why_not = "no server answered" if not server.ok else "the server refuses this address"
    return [
        python_version(),
        venv_packages(venv, built_from(venv)),
        server,
        host,
        same_store(uri, REPO, port) if answers else Finding("store", True, f"not checked: {why_not}"),
        registry(uri, REPO) if answers else Finding("registry", True, f"not checked: {why_not}"),
        database_schema(REPO, venv),
        file_store(REPO),
        serving_port(port + 1, port),
        certificate(env),
        output_encoding(sys.stdout),
        java(env) if has_pyspark(venv) else Finding("java", True, "not needed: no pyspark (make batch-spark adds it)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=TRACKING_PORT, help="the tracking server's (default %(default)s)")
    parser.add_argument("--venv", type=Path, default=REPO / ".venv", help="the guide's venv (default .venv)")
    args = parser.parse_args()

    findings = run_checks(args.port, args.venv, dict(os.environ))
    for finding in findings:
        print(finding.line(), flush=True)
    problems = sum(not finding.ok for finding in findings)
    print(f"{problems} problem{'' if problems == 1 else 's'} found" if problems else "All checks hold.")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
